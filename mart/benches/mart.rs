//! The embedded mart under load: the Parquet writer's rows/s, and the
//! dashboard's queries (DataFusion) over 10 million sale lines.
//!
//! `cargo bench -p storepulse-mart --bench mart` (set `MART_BENCH_ROWS`
//! for another size, `MART_BENCH_DIR` to keep the files). Prints medians
//! and p95 per query; the numbers go to BENCHMARKS.md "Mart (issue 6)".

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use storepulse_core::StoreMaster;
use storepulse_mart::embedded::ParquetMart;
use storepulse_mart::query::{MartFilter, MartReader, SalesGroup};
use storepulse_mart::rows::{MartBatch, MemberRegistrationRow, SaleLineRow, TagChangeRow};

const BATCH: usize = 100_000;
const DAYS: u64 = 30;
const SKUS: u64 = 5_000;
const RUNS: usize = 20;

fn xorshift(s: &mut u64) -> u64 {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    *s
}

fn main() {
    // `cargo test --all-targets` runs bench binaries without `--bench`:
    // then a smoke run of 20,000 rows checks the bench still works.
    let benching = std::env::args().any(|a| a == "--bench");
    let rows: u64 = std::env::var("MART_BENCH_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if benching { 10_000_000 } else { 20_000 });
    let keep = std::env::var("MART_BENCH_DIR").ok();
    let tmp = tempfile::tempdir().unwrap();
    let root = keep.map_or_else(|| tmp.path().join("mart"), std::path::PathBuf::from);
    let stores_path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/stores.csv");
    let stores = Arc::new(StoreMaster::load(&stores_path).unwrap());
    let ids: Vec<(String, String)> = stores
        .iter()
        .map(|(_, s)| (s.store_id.clone(), s.region.clone()))
        .collect();
    derive_cost(&stores);
    let first_day: u16 = 20_600; // 2026-05-27
    let mart = ParquetMart::open(&root).unwrap().with_inline_merges();
    let existing = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(storepulse_mart::write::MartWriter::stored_positions(&mart))
        .unwrap();
    if existing.is_empty() {
        let mut seed = 0x1234_5678_9abc_def1u64;
        let started = Instant::now();
        let mut written = 0u64;
        let mut write_time = Duration::ZERO;
        let mut offset = 0u64;
        while written < rows {
            let mut b = MartBatch::default();
            let n = BATCH.min(usize::try_from(rows - written).unwrap());
            for i in 0..n {
                let k = written + i as u64;
                // Time-ordered, as the log is: day grows with the offset.
                let day = first_day + u16::try_from(k * DAYS / rows).unwrap();
                let r = xorshift(&mut seed);
                let (store, region) = &ids[(r % ids.len() as u64) as usize];
                let qty = 1 + (r >> 8) as i64 % 4;
                let price = 100 + (r >> 16) as i64 % 9900;
                let line = (k % 3) as u32;
                if line == 0 {
                    offset += 1;
                }
                b.sale_lines.push(SaleLineRow {
                    event_id: format!("e{offset}"),
                    line_no: line,
                    order_id: format!("o{offset}"),
                    store_id: store.clone(),
                    region: region.clone(),
                    channel: ["pos", "app", "miniprogram"][(r >> 40) as usize % 3].into(),
                    fulfillment: "in_store".into(),
                    payment_method: "card".into(),
                    member_id: if r.is_multiple_of(3) {
                        format!("M{}", r % 500_000)
                    } else {
                        String::new()
                    },
                    sku: format!("SKU-{:05}", (r >> 24) % SKUS),
                    qty,
                    unit_price_cents: price,
                    net_cents: qty * price,
                    promo: 0,
                    occurred_ms: i64::from(day) * 86_400_000,
                    day,
                    hour: u8::try_from((k * 24 * DAYS / rows) % 24).unwrap(),
                    src_partition: 0,
                    src_offset: offset,
                    src_index: line,
                });
                if k.is_multiple_of(20) {
                    b.tag_changes.push(TagChangeRow {
                        member_id: format!("M{}", r % 500_000),
                        tag: ["high_value", "new_member", "churn_risk", "store_loyal"]
                            [(r >> 50) as usize % 4]
                            .into(),
                        change: 1,
                        event_id: String::new(),
                        store_id: store.clone(),
                        region: region.clone(),
                        as_of_ms: 0,
                        day,
                        src_partition: 0,
                        src_offset: offset,
                        src_index: 0,
                    });
                    b.member_registrations.push(MemberRegistrationRow {
                        member_id: format!("M{}", k / 20),
                        canonical_id: format!("M{}", k / 20),
                        person_key: format!("P{}", k / 20),
                        event_id: format!("r{k}"),
                        store_id: store.clone(),
                        region: region.clone(),
                        channel: "app".into(),
                        occurred_ms: 0,
                        day,
                        src_partition: 0,
                        src_offset: offset,
                        src_index: 0,
                    });
                }
            }
            // Positions must grow per table: tag rows of one offset get distinct indexes.
            dedup_index(&mut b);
            let t = Instant::now();
            mart.write_blocking(&b).unwrap();
            write_time += t.elapsed();
            written += n as u64;
        }
        let secs = write_time.as_secs_f64();
        println!(
            "writer: {written} sale lines (+{} tag changes, registrations) in {secs:.1} s of writing = {:.0} sale lines/s ({:.1} s with generation)",
            written / 20,
            written as f64 / secs,
            started.elapsed().as_secs_f64()
        );
    }
    let reader = mart.reader().with_stores(stores);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let day = |d: u16| {
        NaiveDate::from_ymd_opt(1970, 1, 1).unwrap() + chrono::Duration::days(i64::from(d))
    };
    let last = first_day + u16::try_from(DAYS - 1).unwrap();
    let today = MartFilter {
        from: day(last),
        to: day(last),
        stores: None,
    };
    let week_ago = MartFilter {
        from: day(last - 7),
        to: day(last - 7),
        stores: None,
    };
    let week = MartFilter {
        from: day(last - 6),
        to: day(last),
        stores: None,
    };
    let month = MartFilter {
        from: day(first_day),
        to: day(last),
        stores: None,
    };
    let region_stores: Vec<String> = (1..=10).map(|i| format!("KM-{i:03}")).collect();
    let region_month = MartFilter {
        stores: Some(region_stores),
        ..month.clone()
    };
    type Query<'a> = (
        &'a str,
        Box<dyn Fn() -> Result<usize, storepulse_mart::MartError> + 'a>,
    );
    let queries: Vec<Query<'_>> = vec![
        (
            "sales_by_hour store, today",
            Box::new(|| {
                rt.block_on(reader.sales_by_hour(&today, SalesGroup::Store))
                    .map(|v| v.len())
            }),
        ),
        (
            "sales_by_hour store, same day last week",
            Box::new(|| {
                rt.block_on(reader.sales_by_hour(&week_ago, SalesGroup::Store))
                    .map(|v| v.len())
            }),
        ),
        (
            "sales_by_hour region, 7 days",
            Box::new(|| {
                rt.block_on(reader.sales_by_hour(&week, SalesGroup::Region))
                    .map(|v| v.len())
            }),
        ),
        (
            "sales_by_hour channel, 30 days",
            Box::new(|| {
                rt.block_on(reader.sales_by_hour(&month, SalesGroup::Channel))
                    .map(|v| v.len())
            }),
        ),
        (
            "top_skus 20, 7 days",
            Box::new(|| rt.block_on(reader.top_skus(&week, 20)).map(|v| v.len())),
        ),
        (
            "top_skus 20, 30 days, 10 stores",
            Box::new(|| {
                rt.block_on(reader.top_skus(&region_month, 20))
                    .map(|v| v.len())
            }),
        ),
        (
            "totals, 30 days",
            Box::new(|| {
                rt.block_on(reader.totals(&month))
                    .map(|v| usize::try_from(v.lines).unwrap_or(0))
            }),
        ),
        (
            "members_by_tag",
            Box::new(|| rt.block_on(reader.members_by_tag(&month)).map(|v| v.len())),
        ),
        (
            "new_members, 30 days",
            Box::new(|| rt.block_on(reader.new_members(&month)).map(|v| v.len())),
        ),
    ];
    println!(
        "{:<42} {:>8} {:>8} {:>8}",
        "query", "p50 ms", "p95 ms", "rows"
    );
    for (name, q) in &queries {
        let n = q().unwrap(); // warm-up (footer cache)
        let mut times: Vec<f64> = (0..RUNS)
            .map(|_| {
                let t = Instant::now();
                q().unwrap();
                t.elapsed().as_secs_f64() * 1000.0
            })
            .collect();
        times.sort_by(f64::total_cmp);
        let p = |q: f64| times[((times.len() - 1) as f64 * q).round() as usize];
        println!("{name:<42} {:>8.1} {:>8.1} {n:>8}", p(0.5), p(0.95));
    }
}

/// What deriving costs the runtime per event: a 3-line member sale to
/// rows (sale lines, stock changes, points), then postcard-encoded as the
/// mart log takes it.
fn derive_cost(stores: &Arc<StoreMaster>) {
    use storepulse_core::{
        Channel, Event, EventBody, Fulfillment, Payment, PaymentMethod, Sale, SaleLine,
    };
    use storepulse_mart::derive::{EventPos, RowDeriver};
    let deriver = RowDeriver::new(stores.clone());
    let store = stores.lookup("KM-001").unwrap();
    let event = Event {
        event_id: "pos-20261204-000123".into(),
        occurred_at: 1_796_315_400_000_000_000,
        store,
        channel: Channel::Pos,
        member_id: Some("M-00012345".into()),
        body: EventBody::Sale(Sale {
            order_id: "ord-000123".into(),
            lines: (0..3)
                .map(|i| SaleLine {
                    sku: format!("SKU-{i:05}").into(),
                    qty: 2,
                    unit_price_cents: 1990,
                    promo: false,
                })
                .collect(),
            total_cents: 11_500,
            payment: Payment {
                method: PaymentMethod::Card,
                account_ref: None,
            },
            fulfillment: Fulfillment::InStore,
        }),
    };
    let n = 1_000_000u64;
    let mut batch = MartBatch::default();
    let mut encoded = 0usize;
    let started = Instant::now();
    for offset in 0..n {
        deriver.event(
            EventPos {
                partition: 0,
                offset,
            },
            &event,
            Some("M-00012345"),
            &mut batch,
        );
        if offset % 2000 == 1999 {
            encoded += batch
                .encode_parts(1000 * 1024)
                .iter()
                .map(Vec::len)
                .sum::<usize>();
            batch = MartBatch::default();
        }
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "derive + encode: {n} 3-line member sales in {secs:.2} s = {:.2} us/event ({:.0} bytes of mart log per event)",
        secs * 1e6 / n as f64,
        encoded as f64 / n as f64
    );
}

fn dedup_index(b: &mut MartBatch) {
    let mut prev = None;
    let mut idx = 0;
    for r in &mut b.tag_changes {
        if prev == Some(r.src_offset) {
            idx += 1;
        } else {
            idx = 0;
        }
        prev = Some(r.src_offset);
        r.src_index = idx;
    }
    let mut prev = None;
    for r in &mut b.member_registrations {
        if prev == Some(r.src_offset) {
            idx += 1;
        } else {
            idx = 0;
        }
        prev = Some(r.src_offset);
        r.src_index = idx;
    }
}
