//! The `storepulse` binary; everything is in the library (`src/lib.rs`).

fn main() -> anyhow::Result<()> {
    storepulse::main_with_args()
}
