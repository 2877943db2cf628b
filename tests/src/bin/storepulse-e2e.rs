//! The storepulse program under a test name (see Cargo.toml).

fn main() -> std::process::ExitCode {
    storepulse::main_exit_code()
}
