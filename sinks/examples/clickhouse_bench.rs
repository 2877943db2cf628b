//! ClickHouse mart benchmark (BENCHMARKS.md "ClickHouse mart (issue 6)").
//!
//! 1. Insert rate: sale lines through `ClickHouseMart::write` (the
//!    sink's path: RowBinary, LZ4, one INSERT per batch), batches of
//!    `--batch-events` events (40,000 events, ~100,000 lines: the sink
//!    loop's default batch), timed around `write` only. Returns,
//!    registrations and tag changes of the same events are written
//!    untimed; `--no-compression` sends plain RowBinary.
//! 2. Dashboard queries over what was loaded (default 10 million sale
//!    lines): each `MartReader` query with HQ, region-like (8 stores) and
//!    single-store scopes, for one day, a day vs the same day last week,
//!    and 7 days; p50/p95/max per query.
//!
//! ```text
//! ./deploy/clickhouse.sh start
//! cargo run --release -p storepulse-sinks --example clickhouse_bench -- --lines 10000000
//! ```
//! Environment: `STOREPULSE_TEST_CLICKHOUSE` (default http://127.0.0.1:8123).
//! The database `sp_bench` is dropped and created afresh; `--queries-only`
//! keeps it and runs the queries again.

use std::time::{Duration, Instant};

use storepulse_mart::query::{MartFilter, MartReader, SalesGroup};
use storepulse_mart::rows::MartBatch;
use storepulse_mart::write::MartWriter;
use storepulse_sinks::clickhouse::query::date_of;
use storepulse_sinks::clickhouse::testdata::{Generator, FIRST_DAY};
use storepulse_sinks::clickhouse::{ClickHouseConfig, ClickHouseMart};

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1e3
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let target_lines = arg("--lines", 10_000_000);
    let batch_events = arg("--batch-events", 40_000) as usize;
    let runs = arg("--runs", 40) as usize;
    let stores = 500u32;
    let days = 30u16;
    let url = std::env::var("STOREPULSE_TEST_CLICKHOUSE")
        .unwrap_or_else(|_| "http://127.0.0.1:8123".into());
    let mut cfg = ClickHouseConfig::new(&url, "sp_bench");
    cfg.compression = !std::env::args().any(|a| a == "--no-compression");
    let queries_only = std::env::args().any(|a| a == "--queries-only");
    if !queries_only {
        clickhouse::Client::default()
            .with_url(&url)
            .query_raw("DROP DATABASE IF EXISTS sp_bench")
            .execute()
            .await?;
    }
    let mart = ClickHouseMart::connect(cfg).await?;
    let t = Instant::now();
    let stored = mart.stored_positions().await?;
    println!(
        "stored_positions: {} entries in {:.1} ms",
        stored.len(),
        t.elapsed().as_secs_f64() * 1e3
    );

    // 1. Inserts.
    // Events in time order, as they arrive live: ~3.9 M events over 30 days.
    // ~2.55 sale lines per event (85 % sales of 1-5 lines).
    let events_per_day = (target_lines as f64 / 2.55 / f64::from(days)) as u64;
    let mut g = Generator::new(2026, 0, stores, 20_000, days).in_time_order(events_per_day);
    let (mut lines, mut write_time, mut batches) = (0u64, Duration::ZERO, 0u32);
    let mut per_batch = Vec::new();
    while !queries_only && lines < target_lines {
        let mut rest = g.batch(batch_events);
        // The fact table alone is timed (the rate asked for is sale lines
        // per second); the other tables are written untimed, so member
        // and tag queries have data.
        let batch = MartBatch {
            sale_lines: std::mem::take(&mut rest.sale_lines),
            ..MartBatch::default()
        };
        rest.stock_changes.clear();
        rest.stock_levels.clear();
        mart.write(&rest).await?;
        let n = batch.sale_lines.len() as u64;
        let t = Instant::now();
        mart.write(&batch).await?;
        let dt = t.elapsed();
        write_time += dt;
        per_batch.push(n as f64 / dt.as_secs_f64());
        lines += n;
        batches += 1;
    }
    per_batch.sort_by(f64::total_cmp);
    if !queries_only {
        println!(
        "insert: {lines} sale lines in {batches} batches of {batch_events} events (~{} lines), write time {:.2} s: {:.0} lines/s overall, median batch {:.0} lines/s",
        lines / u64::from(batches),
        write_time.as_secs_f64(),
        lines as f64 / write_time.as_secs_f64(),
        per_batch[per_batch.len() / 2]
    );
    }

    // 2. Queries.
    let last = date_of(FIRST_DAY + days - 1);
    let week_ago = last - chrono::Days::new(7);
    let region: Vec<String> = (0..8).map(|i| Generator::store_id(i * 4)).collect();
    let scopes: Vec<(&str, Option<Vec<String>>)> = vec![
        ("hq", None),
        ("region(8 stores)", Some(region)),
        ("store", Some(vec![Generator::store_id(17)])),
    ];
    let ranges = [
        ("1 day", last, last),
        ("7 days", last - chrono::Days::new(6), last),
    ];
    let mut rows = Vec::new();
    let mut all = Vec::new();
    for (scope, stores) in &scopes {
        for (range, from, to) in &ranges {
            let f = MartFilter {
                from: *from,
                to: *to,
                stores: stores.clone(),
            };
            let week = MartFilter::day(week_ago, stores.clone());
            let mut times: Vec<(&str, Vec<Duration>)> = vec![
                ("sales_by_hour(store) today+last week", vec![]),
                ("sales_by_hour(region)", vec![]),
                ("top_skus(20)", vec![]),
                ("members_by_tag", vec![]),
                ("new_members", vec![]),
                ("totals", vec![]),
            ];
            for _ in 0..runs {
                let t = Instant::now();
                let (a, b) = tokio::join!(
                    mart.sales_by_hour(&f, SalesGroup::Store),
                    mart.sales_by_hour(&week, SalesGroup::Store)
                );
                a?;
                b?;
                times[0].1.push(t.elapsed());
                let t = Instant::now();
                mart.sales_by_hour(&f, SalesGroup::Region).await?;
                times[1].1.push(t.elapsed());
                let t = Instant::now();
                mart.top_skus(&f, 20).await?;
                times[2].1.push(t.elapsed());
                let t = Instant::now();
                mart.members_by_tag(&f).await?;
                times[3].1.push(t.elapsed());
                let t = Instant::now();
                mart.new_members(&f).await?;
                times[4].1.push(t.elapsed());
                let t = Instant::now();
                mart.totals(&f).await?;
                times[5].1.push(t.elapsed());
            }
            for (q, mut ts) in times {
                ts.sort();
                all.extend(ts.iter().copied());
                rows.push(format!(
                    "| {q} | {scope} | {range} | {:.1} | {:.1} | {:.1} |",
                    pct(&ts, 0.5),
                    pct(&ts, 0.95),
                    pct(&ts, 1.0)
                ));
            }
        }
    }
    all.sort();
    println!("| query | scope | range | p50 ms | p95 ms | max ms |");
    println!("|---|---|---|---|---|---|");
    for r in rows {
        println!("{r}");
    }
    println!(
        "all dashboard queries: {} timings, p50 {:.1} ms, p95 {:.1} ms, max {:.1} ms",
        all.len(),
        pct(&all, 0.5),
        pct(&all, 0.95),
        pct(&all, 1.0)
    );
    Ok(())
}
