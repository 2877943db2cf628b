//! The `storepulse` binary; everything is in the library (`src/lib.rs`).

/// mimalloc: the runtime and `replay` allocate events on one thread and free
/// them on another, where glibc's allocator spends much of its time. Built
/// with `no_thp` (workspace `Cargo.toml`): no transparent huge pages, whose
/// zeroing stalled `process` for seconds under a growing state.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    storepulse::main_exit_code()
}
