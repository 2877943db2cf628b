//! `storepulse replay`: the offline path, with a progress bar on a terminal.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use storepulse_core::{EventParser, StoreMaster};

use crate::config::Config;

/// Options of `storepulse replay`.
#[derive(Args, Debug, Clone)]
pub struct ReplayArgs {
    /// NDJSON file of contract events, one per line.
    #[arg(long)]
    pub input: PathBuf,
    /// Output directory (created if missing).
    #[arg(long)]
    pub out: PathBuf,
    /// Threads in all. With 1, one thread reads, parses and applies. With
    /// N > 1, N-1 threads parse while one applies in file order (and a light
    /// reader thread feeds them). Default: the number of cores.
    #[arg(long)]
    pub threads: Option<usize>,
}

/// Runs a replay and prints the summary as JSON.
///
/// # Errors
/// Unreadable input, unwritable output, bad store master.
pub fn run(config: &Config, args: &ReplayArgs) -> anyhow::Result<()> {
    let stores = Arc::new(StoreMaster::load(&config.storage.stores_csv)?);
    let parser = EventParser::new(stores);
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from));
    let bar = std::io::stderr().is_terminal().then(|| {
        let bar = indicatif::ProgressBar::new(0);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar
    });
    let started = Instant::now();
    let (summary, _) = storepulse_runtime::replay::replay(
        &args.input,
        &args.out,
        &parser,
        &config.inventory,
        threads,
        |done, total| {
            if let Some(bar) = &bar {
                bar.set_length(total);
                bar.set_position(done);
            }
        },
    )
    .with_context(|| format!("replaying {}", args.input.display()))?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "replay: {} lines in {secs:.2}s ({:.0} lines/s, {threads} threads) -> {}",
        summary.lines,
        summary.lines as f64 / secs.max(1e-9),
        args.out.display()
    );
    println!("{}", serde_json::to_string(&summary)?);
    Ok(())
}
