//! Measures the heap bytes of inventory state per (store, SKU) pair.
//!
//! Target (issue #2): <= 128 bytes per (store, SKU) beyond the strings.
//! A counting global allocator records live heap bytes; the state is built
//! for 40 stores x N SKUs with receipts and sales, then the figures are
//! printed: the whole processor, and the part that grows with pairs (the
//! entry map) versus with events (the de-duplication window and the
//! per-store change history, bounded by the allowed lateness).
//!
//! `cargo bench -p storepulse-processors --bench state_memory`

#![allow(clippy::unwrap_used)] // a test panics on the first surprise, by design

use std::path::Path;
use std::sync::Arc;

use storepulse_core::time::SECOND;
use storepulse_core::*;
use storepulse_processors::inventory::{InventoryConfig, InventoryProcessor};
use storepulse_processors::Processor;

#[path = "support/counting.rs"]
mod counting;

#[global_allocator]
static ALLOC: counting::Counting = counting::Counting;

use counting::live;

fn main() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/stores.csv");
    let stores = Arc::new(StoreMaster::load(&path).expect("data/stores.csv"));
    let t0 = storepulse_core::time::parse_rfc3339("2026-11-25T08:00:00+08:00").expect("time");
    for skus in [2_500usize, 10_000] {
        let base = live();
        let mut p = InventoryProcessor::new(InventoryConfig::default(), stores.clone());
        let mut out = Vec::new();
        let mut n = 0i64;
        // A receipt of every SKU at every store (creates every pair), then
        // one sale per pair a day later.
        for (idx, _) in stores.iter() {
            for chunk in (0..skus).collect::<Vec<_>>().chunks(500) {
                n += 1;
                let e = Event {
                    event_id: format!("r-{n}").into(),
                    occurred_at: t0 + n * SECOND,
                    store: idx,
                    channel: Channel::Backoffice,
                    member_id: None,
                    body: EventBody::StockReceipt(StockReceipt {
                        reference: None,
                        lines: chunk
                            .iter()
                            .map(|k| QtyLine {
                                sku: format!("SKU-{k:06}").into(),
                                qty: 10,
                            })
                            .collect(),
                    }),
                };
                p.apply(&e, &mut out).expect("receipt");
                out.clear();
            }
        }
        let after_receipts = live() - base;
        let pairs = p.len();
        println!(
            "skus={skus} pairs={pairs} heap_total={}B per_pair={:.1}B dedup_ids={} recent_changes={}",
            after_receipts,
            after_receipts as f64 / pairs as f64,
            p.dedup_len(),
            p.recent_len()
        );
        // Drop the event-bound parts by moving the clock far ahead.
        let e = Event {
            event_id: "clock".into(),
            occurred_at: t0 + 30 * storepulse_core::time::DAY,
            store: StoreIdx(0),
            channel: Channel::Backoffice,
            member_id: None,
            body: EventBody::MemberErase,
        };
        p.apply(&e, &mut out).expect("clock");
        p.expire();
        let steady = live() - base;
        println!(
            "skus={skus} pairs={pairs} after expiry of event-bound state: heap={steady}B per_pair={:.1}B (includes the SKU string table: {skus} SKUs)",
            steady as f64 / pairs as f64
        );
        drop(p);
    }
}
