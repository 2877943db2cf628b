//! The storepulse program under a test name (see Cargo.toml).

use std::process::ExitCode;

fn main() -> ExitCode {
    match storepulse::main_with_args() {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("storepulse: {error:#}");
            ExitCode::FAILURE
        }
    }
}
