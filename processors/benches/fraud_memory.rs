//! Memory of the fraud processor on an endless stream: it must plateau.
//!
//! The processor keeps a key's sales for `allowed lateness + window` (60 +
//! 30 minutes by default) behind the clock and drops keys from an expiry
//! wheel, so what it holds depends on the traffic of the last 90 minutes,
//! not on how long it has run. This streams `EVENTS` events (default
//! 20,000,000: ~28 hours of event time at `RATE` = 200 events/s, the
//! stream of `support/fraud_stream.rs` with 5 minutes of jitter) through
//! one processor with the default rules and prints, every simulated hour,
//! keys held, sales held and live heap bytes (a counting allocator; the
//! stream's own buffers are freed before each reading), and at the end the
//! growth between the 3rd hour and the last.
//!
//! `cargo bench -p storepulse-processors --bench fraud_memory`
//! (`EVENTS=...`, `RATE=...`). Under `cargo test --all-targets` (no
//! `--bench`) only a smoke run of 20,000 events.

#![allow(clippy::unwrap_used)] // a benchmark panics on the first surprise, by design

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use storepulse_core::time::{HOUR, MINUTE};
use storepulse_core::*;
use storepulse_processors::fraud::{FraudConfig, FraudOutput, FraudProcessor, RuleSet};
use storepulse_processors::Processor;

#[path = "support/counting.rs"]
mod counting;

#[global_allocator]
static ALLOC: counting::Counting = counting::Counting;

use counting::live;

#[path = "support/rng.rs"]
mod rng;

#[path = "support/fraud_stream.rs"]
mod fraud_stream;
use fraud_stream::FraudStream;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn mib(bytes: isize) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --all-targets` runs this
    // too, unoptimised: then only a smoke run.
    let benching = std::env::args().any(|a| a == "--bench");
    let events = env_u64("EVENTS", if benching { 20_000_000 } else { 20_000 });
    let rate = env_u64("RATE", 200).max(1);
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/stores.csv");
    let stores = Arc::new(StoreMaster::load(&path).expect("data/stores.csv"));
    let t0 = storepulse_core::time::parse_rfc3339("2026-11-25T00:00:00+08:00").unwrap();
    let base = live();
    let mut p = FraudProcessor::new(
        FraudConfig::default(),
        RuleSet::defaults(&stores).unwrap(),
        stores.clone(),
    );
    let mut stream = FraudStream::new(0x5EED_0555, stores.len(), 1_000_000, t0, rate, 5 * MINUTE);
    let mut out = Vec::new();
    let (mut raised, mut withdrawn) = (0u64, 0u64);
    let mut rows: Vec<(i64, u64, usize, usize, f64)> = Vec::new();
    let mut next_hour = t0 + HOUR;
    let started = Instant::now();
    println!("hour | events | keys held | sales held | live heap MiB | alerts raised");
    let mut report = |hour: i64, applied: u64, p: &FraudProcessor, raised: u64| {
        // `out` keeps its capacity; everything else of the stream is freed.
        let heap = mib(live() - base);
        let (keys, sales) = (p.state().keys(), p.state().sales());
        println!("{hour:>4} | {applied:>10} | {keys:>9} | {sales:>10} | {heap:>13.1} | {raised}");
        rows.push((hour, applied, keys, sales, heap));
    };
    for applied in 1..=events {
        let e = stream.next_event();
        if stream.clock >= next_hour {
            report((next_hour - t0) / HOUR, applied - 1, &p, raised);
            next_hour += HOUR;
        }
        out.clear();
        p.apply(&e, &mut out).unwrap();
        for o in &out {
            match o {
                FraudOutput::Raised(_) => raised += 1,
                FraudOutput::Withdrawn(_) => withdrawn += 1,
            }
        }
    }
    report((stream.clock - t0) / HOUR, events, &p, raised);
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{events} events in {secs:.1} s ({:.0} events/s with the counting allocator and the \
         stream generator); {raised} alerts raised, {withdrawn} withdrawn; late evaluated {}, \
         dropped {}",
        events as f64 / secs,
        p.stats().late_evaluated,
        p.stats().late_dropped
    );
    if let (Some(third), Some(last)) = (rows.iter().find(|r| r.0 == 3), rows.last()) {
        println!(
            "growth from hour 3 to hour {}: keys x{:.3}, sales x{:.3}, heap x{:.3}",
            last.0,
            last.2 as f64 / third.2.max(1) as f64,
            last.3 as f64 / third.3.max(1) as f64,
            last.4 / third.4.max(f64::MIN_POSITIVE)
        );
    }
}
