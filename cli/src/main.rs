//! The `storepulse` binary; everything is in the library (`src/lib.rs`).

use std::process::ExitCode;

/// mimalloc: the runtime and `replay` allocate events on one thread and free
/// them on another, where glibc's allocator spends much of its time.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    match storepulse::main_with_args() {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // The whole cause chain on one line, without a backtrace: these
            // are the user's errors (config, paths, ports), not ours.
            eprintln!("storepulse: {error:#}");
            ExitCode::FAILURE
        }
    }
}
