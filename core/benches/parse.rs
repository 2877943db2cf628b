//! Parse + validate throughput of [`EventParser`].
//!
//! - `sale_3_lines`: the contract's sale example grown to three lines, the
//!   typical POS receipt; the target is >= 600,000 events/s on one core.
//! - `sale_100_lines`: a big basket, to see the cost per line and of the
//!   nesting scan big events get.
//! - `contract_mix`: every example of `shared/contract/examples/` (one of each
//!   event type, two sales), parsed as one batch.
//!
//! Run: `cargo bench -p storepulse-core --bench parse`.

#![allow(clippy::unwrap_used)] // a test panics on the first surprise, by design

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use storepulse_core::{EventParser, StoreMaster};

/// The contract's `sale.json` with a third line, compact as emitters send it.
const SALE_3_LINES: &str = r#"{"v":1,"event_id":"pos-KM-001-t3-000918","event_type":"sale","occurred_at":"2026-11-25T10:15:02.120+08:00","store_id":"KM-001","channel":"pos","member_id":"M00012345","order_id":"KM-001-20261125-0918","lines":[{"sku":"SKU-100234","qty":2,"unit_price_cents":1990},{"sku":"SKU-200871","qty":1,"unit_price_cents":12900,"promo":true},{"sku":"SKU-300019","qty":3,"unit_price_cents":450}],"total_cents":17730,"payment":{"method":"wechat","account_ref":"wx_tok_8f3a"},"fulfillment":"in_store"}"#;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn parser() -> EventParser {
    let stores = StoreMaster::load(&repo().join("data/stores.csv")).expect("data/stores.csv loads");
    EventParser::new(Arc::new(stores))
}

fn examples() -> Vec<Vec<u8>> {
    let dir = repo().join("tests/data/examples");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("tests/data/examples is readable")
        .map(|entry| entry.expect("directory entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|path| std::fs::read(path).expect("example is readable"))
        .collect()
}

/// A sale of `lines` lines, built from the 3-line one.
fn big_sale(lines: usize) -> Vec<u8> {
    let body: Vec<String> = (0..lines)
        .map(|i| {
            format!(
                r#"{{"sku":"SKU-{:06}","qty":{},"unit_price_cents":{}}}"#,
                100_000 + i,
                1 + i % 3,
                450 + i
            )
        })
        .collect();
    let start = SALE_3_LINES.find(r#""lines":["#).expect("has lines") + r#""lines":["#.len();
    let end = SALE_3_LINES.find(r#"],"total_cents""#).expect("has total");
    format!(
        "{}{}{}",
        &SALE_3_LINES[..start],
        body.join(","),
        &SALE_3_LINES[end..]
    )
    .into_bytes()
}

fn bench_parse(c: &mut Criterion) {
    let parser = parser();

    let sale = SALE_3_LINES.as_bytes();
    parser.parse(sale).expect("the 3-line sale is valid");
    let mut group = c.benchmark_group("parse");
    group.throughput(Throughput::Elements(1));
    group.bench_function("sale_3_lines", |b| b.iter(|| parser.parse(black_box(sale))));

    // A big basket: more opening brackets than `MAX_NESTING`, so the parser
    // also runs its exact, string-aware nesting scan.
    let big = big_sale(100);
    parser.parse(&big).expect("the 100-line sale is valid");
    group.throughput(Throughput::Elements(1));
    group.bench_function("sale_100_lines", |b| {
        b.iter(|| parser.parse(black_box(&big)))
    });

    let batch = examples();
    for event in &batch {
        parser
            .parse(event)
            .expect("every contract example is valid");
    }
    group.throughput(Throughput::Elements(batch.len() as u64));
    group.bench_function("contract_mix", |b| {
        b.iter(|| {
            for event in &batch {
                // Dropping the event is part of the cost the pipeline pays too.
                let _ = black_box(parser.parse(black_box(event)));
            }
        })
    });
    group.finish();
}

criterion_group!(benches, bench_parse);
criterion_main!(benches);
