//! Criterion benchmark of `InventoryProcessor::apply` on parsed events.
//!
//! Target (issue #2): >= 2,000,000 events/s on one core for a sale with 3
//! lines. Events are built once; each measured batch starts from a fresh
//! processor (setup not timed), because replaying the same ids into one
//! processor would measure the duplicate path.
//!
//! `cargo bench -p storepulse-processors --bench inventory`

#![allow(clippy::unwrap_used)] // a test panics on the first surprise, by design

use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use storepulse_core::time::SECOND;
use storepulse_core::*;
use storepulse_processors::inventory::{InventoryConfig, InventoryProcessor};
use storepulse_processors::Processor;

const EVENTS: usize = 100_000;

fn stores() -> Arc<StoreMaster> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/stores.csv");
    Arc::new(StoreMaster::load(&path).expect("data/stores.csv"))
}

/// Deterministic skewed SKU choice (a cheap Zipf-like draw).
fn sku(state: &mut u64) -> String {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    let u = (*state % 1_000_000) as f64 / 1_000_000.0;
    format!("SKU-{:06}", 100_000 + (5000.0 * u * u * u) as u64)
}

fn sales(stores: &StoreMaster, prefix: &str, t0: Ts, seed: u64) -> Vec<Event> {
    let mut rng = seed;
    (0..EVENTS)
        .map(|i| Event {
            event_id: format!("{prefix}-{i:08}").into(),
            occurred_at: t0 + i as i64 * SECOND / 10,
            store: StoreIdx((i % stores.len()) as u16),
            channel: Channel::Pos,
            member_id: None,
            body: EventBody::Sale(Sale {
                order_id: format!("o-{i}").into(),
                lines: (0..3)
                    .map(|_| SaleLine {
                        sku: sku(&mut rng).into(),
                        qty: 1,
                        unit_price_cents: 1990,
                        promo: false,
                    })
                    .collect(),
                total_cents: 5970,
                payment: Payment {
                    method: PaymentMethod::Wechat,
                    account_ref: None,
                },
                fulfillment: Fulfillment::InStore,
            }),
        })
        .collect()
}

fn parse_rfc3339(s: &str) -> Ts {
    storepulse_core::time::parse_rfc3339(s).expect("valid time")
}

fn bench_apply(c: &mut Criterion) {
    let stores = stores();
    let t0 = parse_rfc3339("2026-11-25T08:00:00+08:00");
    // Steady state: a processor that already knows the stores' SKUs (a
    // warm-up stream with other ids), cloned for each measured batch.
    let warm = sales(&stores, "warm", t0, 0x2545_F491_4F6C_DD1D);
    let events = sales(
        &stores,
        "pos",
        t0 + EVENTS as i64 * SECOND / 10,
        0x9E37_79B9_7F4A_7C15,
    );
    let mut warmed = InventoryProcessor::new(InventoryConfig::default(), stores.clone());
    let mut out = Vec::new();
    for e in &warm {
        out.clear();
        let _ = warmed.apply(e, &mut out);
    }
    let mut group = c.benchmark_group("inventory");
    group.throughput(Throughput::Elements(EVENTS as u64));
    group.sample_size(20);
    group.bench_function("apply_sale_3_lines", |b| {
        b.iter_batched(
            || warmed.clone(),
            |mut p| {
                let mut out = Vec::with_capacity(16);
                for e in &events {
                    out.clear();
                    black_box(p.apply(e, &mut out).ok());
                }
                p
            },
            BatchSize::LargeInput,
        );
    });
    group.finish();
}

criterion_group!(benches, bench_apply);
criterion_main!(benches);
