//! Criterion benchmark of `FraudProcessor::apply` on a realistic stream
//! with RULES.md's default rules.
//!
//! Target (issue 5, "Fraud rules"): >= 1,000,000 events/s on one core.
//!
//! The stream (`support/fraud_stream.rs`, fixed seed): 200 events per second
//! of event time over the 40 stores of `data/stores.csv`, 87 % sales (30 %
//! with one of 1,000,000 members, 90 % paid with a card or wallet token),
//! a planted episode (an alert) every 50,000 events. A processor is warmed
//! with 2 hours of it (1,440,000 events: every key the lateness horizon
//! of 60 + 30 minutes holds is there), then each measured batch applies
//! the next 200,000 events (~17 minutes) to a copy of it (the copy is not
//! timed).
//!
//! Cases: `in_order` (event time never goes back) and `jitter_5min`
//! (`occurred_at` up to 5 minutes early: sales land inside windows and
//! re-run the grouping from there). mimalloc is the global allocator, as
//! in the `storepulse` binary.
//!
//! `cargo bench -p storepulse-processors --bench fraud`

#![allow(clippy::unwrap_used)] // a benchmark panics on the first surprise, by design

use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use storepulse_core::time::MINUTE;
use storepulse_core::*;
use storepulse_processors::fraud::{FraudConfig, FraudOutput, FraudProcessor, RuleSet};
use storepulse_processors::Processor;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[path = "support/rng.rs"]
mod rng;

#[path = "support/fraud_stream.rs"]
mod fraud_stream;
use fraud_stream::FraudStream;

const MEMBERS: u64 = 1_000_000;
const RATE: u64 = 200;
const WARM_EVENTS: usize = 1_440_000;
const EVENTS: usize = 200_000;

fn bench_apply(c: &mut Criterion) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/stores.csv");
    let stores = Arc::new(StoreMaster::load(&path).expect("data/stores.csv"));
    let rules = RuleSet::defaults(&stores).unwrap();
    let t0 = storepulse_core::time::parse_rfc3339("2026-11-25T08:00:00+08:00").unwrap();

    let mut group = c.benchmark_group("fraud");
    group.throughput(Throughput::Elements(EVENTS as u64));
    group.sample_size(10);
    for (name, jitter) in [("in_order", 0), ("jitter_5min", 5 * MINUTE)] {
        let mut stream = FraudStream::new(0x5EED_0005, stores.len(), MEMBERS, t0, RATE, jitter);
        let mut warmed = FraudProcessor::new(FraudConfig::default(), rules.clone(), stores.clone());
        let mut out = Vec::new();
        for _ in 0..WARM_EVENTS {
            out.clear();
            warmed.apply(&stream.next_event(), &mut out).unwrap();
        }
        let events: Vec<Event> = (0..EVENTS).map(|_| stream.next_event()).collect();
        let copy = || {
            FraudProcessor::from_state(
                warmed.state().clone(),
                FraudConfig::default(),
                rules.clone(),
                stores.clone(),
            )
        };
        // One untimed pass: what the stream does to the processor.
        let mut p = copy();
        let (mut raised, mut withdrawn) = (0usize, 0usize);
        for e in &events {
            out.clear();
            p.apply(e, &mut out).unwrap();
            for o in &out {
                match o {
                    FraudOutput::Raised(_) => raised += 1,
                    FraudOutput::Withdrawn(_) => withdrawn += 1,
                }
            }
        }
        eprintln!(
            "fraud/{name}: after warm-up {} keys, {} sales held; in the stream {} sales, \
             {raised} alerts raised, {withdrawn} withdrawn, late evaluated {}, dropped {}",
            warmed.state().keys(),
            warmed.state().sales(),
            events
                .iter()
                .filter(|e| matches!(e.body, EventBody::Sale(_)))
                .count(),
            p.stats().late_evaluated,
            p.stats().late_dropped,
        );
        drop(p);
        group.bench_function(name, |b| {
            b.iter_batched(
                copy,
                |mut p| {
                    let mut out = Vec::with_capacity(16);
                    for e in &events {
                        out.clear();
                        black_box(p.apply(e, &mut out).unwrap());
                    }
                    p
                },
                BatchSize::LargeInput,
            );
        });
    }
    group.finish();
}

criterion_group!(benches, bench_apply);
criterion_main!(benches);
