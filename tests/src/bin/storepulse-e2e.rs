//! The storepulse program under a test name (see Cargo.toml).

fn main() -> anyhow::Result<()> {
    storepulse::main_with_args()
}
