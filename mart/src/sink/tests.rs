#![allow(clippy::unwrap_used, clippy::field_reassign_with_default)]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use super::*;
use crate::embedded::{live_files, read_parquet, table_dir, ParquetMart};
use crate::rows::Erasure;
use crate::testutil::{sale, Faulty, MemLog, MemRefused};

fn config() -> SinkConfig {
    SinkConfig {
        max_rows: 7,
        max_bytes: 1 << 20,
        max_wait: Duration::from_millis(20),
    }
}

/// Every sale line in the mart: (offset, index) -> member.
fn stored_sales(root: &Path) -> Vec<((u64, u32), String)> {
    use datafusion::arrow::array::{Array, StringArray, UInt32Array, UInt64Array};
    let mut out = Vec::new();
    for (_, path) in live_files(&table_dir(root, Table::SaleLines)).unwrap() {
        for rb in read_parquet(&path).unwrap() {
            let off = rb.column_by_name("src_offset").unwrap();
            let off = off.as_any().downcast_ref::<UInt64Array>().unwrap();
            let idx = rb.column_by_name("src_index").unwrap();
            let idx = idx.as_any().downcast_ref::<UInt32Array>().unwrap();
            let m = rb.column_by_name("member_id").unwrap();
            let m = m.as_any().downcast_ref::<StringArray>().unwrap();
            for i in 0..rb.num_rows() {
                out.push(((off.value(i), idx.value(i)), m.value(i).to_owned()));
            }
        }
    }
    out.sort();
    out
}

/// The runtime's output for events 0..n, as it would append it, with a
/// crash replay: after event `k` the runtime restarts from checkpoint `c`
/// and re-emits the same rows for events c..k.
fn mart_log(
    n: u64,
    replays: &[(u64, u64)],
    erase_at: u64,
) -> (MemLog, BTreeMap<(u64, u32), String>) {
    let d = 20_000;
    let event = |o: u64| {
        let mut b = MartBatch::default();
        let member = if o.is_multiple_of(5) { "gone" } else { "kept" };
        for i in 0..(1 + o % 3) as u32 {
            b.sale_lines
                .push(sale(o, i, "KM-001", "central", "A", member, 1, 100, d, 9));
        }
        if o == erase_at {
            b.erasures.push(Erasure {
                member_ids: vec!["gone".into()],
                event_id: format!("e{o}"),
                src_partition: 0,
                src_offset: o,
            });
        }
        b
    };
    let log = MemLog::default();
    let mut expected = BTreeMap::new();
    let mut o = 0;
    let mut replays = replays.iter().peekable();
    while o < n {
        // The runtime appends one record per batch of 3 events (cut after an erasure).
        let mut batch = MartBatch::default();
        let end = (o + 3).min(n);
        while o < end {
            let b = event(o);
            let erased = !b.erasures.is_empty();
            for r in &b.sale_lines {
                expected.insert((r.src_offset, r.src_index), r.member_id.clone());
            }
            batch.append(b);
            o += 1;
            if erased {
                break;
            }
        }
        log.push(&batch);
        if let Some(&&(at, from)) = replays.peek() {
            if o >= at {
                replays.next();
                o = from;
            }
        }
    }
    // Sale lines of "gone" before and at the erasure stay, anonymised (the
    // member id blanked); later ones keep the id.
    for ((off, _), m) in &mut expected {
        if m == "gone" && *off <= erase_at {
            m.clear();
        }
    }
    (log, expected)
}

async fn run_until_done<W: MartWriter + 'static>(
    sink: MartSink<W, MemRefused>,
    log: &MemLog,
    shutdown: CancellationToken,
) -> Result<(), SinkError> {
    let sink = Arc::new(sink);
    let task = {
        let (sink, source, stop) = (sink.clone(), log.reader(), shutdown.clone());
        tokio::spawn(async move { sink.run(source, stop).await })
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while !shutdown.is_cancelled() {
        if sink.cursor.load().unwrap() == Some(log.len()) {
            shutdown.cancel();
            break;
        }
        assert!(Instant::now() < deadline, "sink did not finish");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    task.await.unwrap()
}

#[tokio::test]
async fn each_row_once_through_failures_crashes_and_replays() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("mart");
    let (log, expected) = mart_log(300, &[(40, 31), (150, 120), (151, 149)], 77);
    let refused = MemRefused::default();
    let mut crashes = 0;
    for attempt in 0u64.. {
        assert!(attempt < 200, "never finished");
        let shutdown = CancellationToken::new();
        let writer = Faulty {
            inner: ParquetMart::open(&root).unwrap().with_inline_merges(),
            seed: Mutex::new(0x9E37_79B9_7F4A_7C15 ^ attempt),
            fail_before: 100,
            fail_after: 100,
            crash: 60,
            crashed: Arc::new(AtomicBool::new(false)),
            on_crash: shutdown.clone(),
        };
        let crashed = writer.crashed.clone();
        let sink = MartSink {
            writer: Arc::new(writer),
            refused: refused.clone(),
            cursor: Cursor::new(&root, "sink"),
            config: config(),
            metrics: SinkMetrics::default(),
            log_end: Arc::new(|| 0),
        };
        let result = run_until_done(sink, &log, shutdown).await;
        if crashed.load(Ordering::SeqCst) {
            crashes += 1;
            continue;
        }
        result.unwrap();
        if Cursor::new(&root, "sink").load().unwrap() == Some(log.len()) {
            break;
        }
    }
    assert!(crashes > 0, "the test never crashed the sink");
    let stored = stored_sales(&root);
    let want: Vec<((u64, u32), String)> = expected.into_iter().collect();
    assert_eq!(stored.len(), want.len(), "rows missing or doubled");
    assert_eq!(stored, want);
    assert!(refused.0.lock().unwrap().is_empty());
}

#[tokio::test]
async fn refused_rows_are_isolated_and_dead_lettered() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("mart");
    let log = MemLog::default();
    let d = 20_000;
    let mut b = MartBatch::default();
    for o in 0..20u64 {
        let sku = if o == 6 || o == 13 { "BAD" } else { "A" };
        b.sale_lines
            .push(sale(o, 0, "KM-001", "central", sku, "", 1, 100, d, 9));
    }
    log.push(&b);
    let refused = MemRefused::default();
    let shutdown = CancellationToken::new();
    let sink = MartSink {
        writer: Arc::new(Faulty {
            inner: ParquetMart::open(&root).unwrap().with_inline_merges(),
            seed: Mutex::new(1),
            fail_before: 0,
            fail_after: 0,
            crash: 0,
            crashed: Arc::new(AtomicBool::new(false)),
            on_crash: CancellationToken::new(),
        }),
        refused: refused.clone(),
        cursor: Cursor::new(&root, "sink"),
        config: SinkConfig {
            max_rows: 100,
            ..config()
        },
        metrics: SinkMetrics::default(),
        log_end: Arc::new(|| 1),
    };
    let metrics = sink.metrics.clone();
    run_until_done(sink, &log, shutdown).await.unwrap();
    let refused = refused.0.lock().unwrap().clone();
    let offsets: Vec<u64> = refused.iter().map(|r| r.position.offset).collect();
    assert_eq!(offsets, vec![6, 13]);
    assert!(refused
        .iter()
        .all(|r| r.message.contains("SKU BAD") && r.row.contains("\"BAD\"")));
    assert_eq!(stored_sales(&root).len(), 18);
    assert_eq!(metrics.refused(), 2);
}

#[test]
fn cursor_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let c = Cursor::new(dir.path(), "x");
    assert_eq!(c.load().unwrap(), None);
    c.store(42).unwrap();
    assert_eq!(c.load().unwrap(), Some(42));
    c.store(43).unwrap();
    assert_eq!(c.load().unwrap(), Some(43));
}
