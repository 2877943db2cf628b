//! Tests of the embedded event log.

use std::collections::HashSet;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::Path;

use storepulse_core::source::{EventSource, SourcePosition, SourceRecord};

use super::*;

fn small(segment_bytes: u64) -> LogConfig {
    LogConfig {
        segment_bytes,
        ..LogConfig::default()
    }
}

fn payload(i: u64) -> Vec<u8> {
    format!(
        r#"{{"event":"sale","seq":{i},"pad":"{}"}}"#,
        "x".repeat((i % 40) as usize)
    )
    .into_bytes()
}

fn segment_files(dir: &Path) -> Vec<u64> {
    let mut bases: Vec<u64> = fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            name.strip_suffix(".log").map(|d| d.parse().unwrap())
        })
        .collect();
    bases.sort_unstable();
    bases
}

async fn read_all(reader: &mut LogReader, until: u64) -> Vec<SourceRecord> {
    let mut out = Vec::new();
    while reader.next_offset() < until {
        reader
            .next_batch(97, &mut out, std::future::pending())
            .await
            .unwrap();
    }
    out
}

#[tokio::test]
async fn append_and_read_back_across_segment_rolls() {
    let dir = tempfile::tempdir().unwrap();
    let log = EventLog::open(dir.path(), small(1024)).unwrap();
    let mut next = 0;
    for chunk in 0..20u64 {
        let payloads: Vec<_> = (0..=chunk % 7).map(|k| payload(next + k)).collect();
        let n = payloads.len() as u64;
        let range = log.append(payloads).await.unwrap();
        assert_eq!(range, next..next + n);
        next += n;
    }
    assert_eq!(log.end_offset(), next);
    let bases = segment_files(dir.path());
    assert!(bases.len() > 3, "expected several segments, got {bases:?}");
    assert_eq!(
        log.size_bytes(),
        bases
            .iter()
            .map(|b| fs::metadata(segment::segment_path(dir.path(), *b))
                .unwrap()
                .len())
            .sum::<u64>()
    );

    let records = read_all(&mut log.reader(), next).await;
    assert_eq!(records.len() as u64, next);
    for (i, r) in records.iter().enumerate() {
        assert_eq!(
            r.position,
            SourcePosition {
                partition: 0,
                offset: i as u64
            }
        );
        assert_eq!(r.payload, payload(i as u64));
    }
    let tail = log.read_range(next - 3, 10).unwrap();
    assert_eq!(tail.len(), 3);
    assert_eq!(tail[2], (next - 1, payload(next - 1)));
    assert!(log.read_range(next, 10).unwrap().is_empty());
    log.close().await.unwrap();

    // Reopen: the sealed segments come from their sidecars, same content.
    let log = EventLog::open(dir.path(), small(1024)).unwrap();
    assert_eq!(log.end_offset(), next);
    let again = log.read_range(0, usize::MAX).unwrap();
    assert_eq!(again.len() as u64, next);
    assert!(again.iter().all(|(o, p)| *p == payload(*o)));
    log.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_appenders_get_distinct_contiguous_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let log = EventLog::open(dir.path(), small(64 * 1024)).unwrap();
    let mut tasks = Vec::new();
    for t in 0..50u64 {
        let log = log.clone();
        tasks.push(tokio::spawn(async move {
            let mut got = Vec::new();
            for i in 0..200u64 {
                let body = format!(r#"{{"task":{t},"i":{i}}}"#).into_bytes();
                loop {
                    match log.append(vec![body.clone()]).await {
                        Ok(r) => {
                            got.push((r.start, body));
                            break;
                        }
                        Err(LogError::Backpressure) => tokio::task::yield_now().await,
                        Err(e) => panic!("{e}"),
                    }
                }
            }
            got
        }));
    }
    let mut written = Vec::new();
    for t in tasks {
        written.extend(t.await.unwrap());
    }
    written.sort();
    assert_eq!(written.len(), 10_000);
    for (i, (offset, _)) in written.iter().enumerate() {
        assert_eq!(*offset, i as u64);
    }
    let records = read_all(&mut log.reader(), 10_000).await;
    assert_eq!(records.len(), 10_000);
    let mut seen = HashSet::new();
    for (r, (offset, body)) in records.iter().zip(&written) {
        assert_eq!(r.position.offset, *offset);
        assert_eq!(&r.payload, body);
        assert!(seen.insert(r.payload.clone()));
    }
    log.close().await.unwrap();
}

#[tokio::test]
async fn crash_recovery_cuts_torn_tail_and_continues() {
    let dir = tempfile::tempdir().unwrap();
    let log = EventLog::open(dir.path(), small(1024)).unwrap();
    for i in 0..25 {
        log.append(vec![payload(i)]).await.unwrap();
    }
    log.close().await.unwrap();
    let last = *segment_files(dir.path()).last().unwrap();
    let last_path = segment::segment_path(dir.path(), last);
    let good_len = fs::metadata(&last_path).unwrap().len();

    // A half record: header promising 100 bytes, only 10 present.
    let mut f = OpenOptions::new().append(true).open(&last_path).unwrap();
    f.write_all(&100u32.to_le_bytes()).unwrap();
    f.write_all(&0u32.to_le_bytes()).unwrap();
    f.write_all(&[b'{'; 10]).unwrap();
    drop(f);
    let log = EventLog::open(dir.path(), small(1024)).unwrap();
    assert_eq!(log.end_offset(), 25);
    assert_eq!(fs::metadata(&last_path).unwrap().len(), good_len);
    assert_eq!(log.append(vec![payload(25)]).await.unwrap(), 25..26);
    log.close().await.unwrap();

    // A complete record with a wrong CRC, then zeros (a filesystem may leave
    // zeroed blocks after a crash).
    let good_len = fs::metadata(&last_path).unwrap().len();
    let mut f = OpenOptions::new().append(true).open(&last_path).unwrap();
    f.write_all(&4u32.to_le_bytes()).unwrap();
    f.write_all(&12345u32.to_le_bytes()).unwrap();
    f.write_all(b"{}{}").unwrap();
    f.write_all(&[0u8; 64]).unwrap();
    drop(f);
    let log = EventLog::open(dir.path(), small(1024)).unwrap();
    assert_eq!(log.end_offset(), 26);
    assert_eq!(fs::metadata(&last_path).unwrap().len(), good_len);
    assert_eq!(log.append(vec![payload(26)]).await.unwrap(), 26..27);
    let all = log.read_range(0, 1000).unwrap();
    assert_eq!(all.len(), 27);
    assert!(all.iter().all(|(o, p)| *p == payload(*o)));
    log.close().await.unwrap();
}

#[tokio::test]
async fn blocked_reader_wakes_on_append_and_returns_empty_on_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let log = EventLog::open(dir.path(), LogConfig::default()).unwrap();
    let mut reader = log.reader();
    let waiting = tokio::spawn(async move {
        let mut out = Vec::new();
        reader
            .next_batch(10, &mut out, std::future::pending())
            .await
            .unwrap();
        (reader, out)
    });
    log.append(vec![b"{\"a\":1}".to_vec()]).await.unwrap();
    let (mut reader, out) = waiting.await.unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].payload, b"{\"a\":1}");

    // Caught up: waits until shutdown resolves, then returns nothing.
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let waiting = tokio::spawn(async move {
        let mut out = Vec::new();
        reader
            .next_batch(10, &mut out, async {
                let _ = stop_rx.await;
            })
            .await
            .unwrap();
        out
    });
    stop_tx.send(()).unwrap();
    assert!(waiting.await.unwrap().is_empty());
    log.close().await.unwrap();
}

#[tokio::test]
async fn full_queue_returns_backpressure_without_waiting() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        channel_capacity: 1,
        ..LogConfig::default()
    };
    let (log, gate) = EventLog::open_gated(dir.path(), config).unwrap();
    // The writer is held at the gate: the first request fills the queue.
    let first_handle = log.clone();
    let first = first_handle.append(vec![b"{\"n\":1}".to_vec()]);
    tokio::pin!(first);
    tokio::select! {
        biased;
        _ = &mut first => panic!("append answered before the writer started"),
        () = std::future::ready(()) => {}
    }
    let second = log.append(vec![b"{\"n\":2}".to_vec()]).await;
    assert!(matches!(second, Err(LogError::Backpressure)), "{second:?}");
    assert_eq!(
        storepulse_core::Error::from(LogError::Backpressure).retry_hint(),
        storepulse_core::RetryHint::Backoff
    );
    gate.send(()).unwrap();
    assert_eq!(first.await.unwrap(), 0..1);
    assert_eq!(log.append(vec![b"{\"n\":3}".to_vec()]).await.unwrap(), 1..2);
    log.close().await.unwrap();
}

#[tokio::test]
async fn seek_to_the_middle_uses_the_sparse_index() {
    let dir = tempfile::tempdir().unwrap();
    let log = EventLog::open(dir.path(), small(256 * 1024)).unwrap();
    let total = 20_000u64;
    for chunk in (0..total).collect::<Vec<_>>().chunks(1000) {
        log.append(chunk.iter().map(|i| payload(*i)).collect())
            .await
            .unwrap();
    }
    assert!(segment_files(dir.path()).len() > 2);
    check_seeks(&log, total).await;
    log.close().await.unwrap();
    // After a reopen the index comes from the sidecars (sealed segments) and
    // the recovery scan (last segment).
    let log = EventLog::open(dir.path(), small(256 * 1024)).unwrap();
    check_seeks(&log, total).await;
    log.close().await.unwrap();
}

async fn check_seeks(log: &EventLog, total: u64) {
    let mut reader = log.reader();
    for at in [0, 1, 4095, 4096, 4097, 9000, 12_345, total - 1] {
        reader
            .seek(&[SourcePosition {
                partition: 0,
                offset: at,
            }])
            .await
            .unwrap();
        let mut out = Vec::new();
        reader
            .next_batch(3, &mut out, std::future::pending())
            .await
            .unwrap();
        assert_eq!(out[0].position.offset, at);
        assert_eq!(out[0].payload, payload(at));
        assert_eq!(out.len() as u64, 3.min(total - at));
    }
    reader
        .seek(&[SourcePosition {
            partition: 0,
            offset: total,
        }])
        .await
        .unwrap();
    let past = reader
        .seek(&[SourcePosition {
            partition: 0,
            offset: total + 1,
        }])
        .await;
    assert!(past.is_err());
    let other = reader
        .seek(&[SourcePosition {
            partition: 1,
            offset: 0,
        }])
        .await;
    assert!(other.is_err());
}

#[tokio::test]
async fn retention_deletes_only_fully_committed_old_segments() {
    let dir = tempfile::tempdir().unwrap();
    let limit = 3000;
    let config = LogConfig {
        segment_bytes: 1024,
        retention_bytes: Some(limit),
        ..LogConfig::default()
    };
    let log = EventLog::open(dir.path(), config).unwrap();
    for i in 0..300 {
        log.append(vec![payload(i)]).await.unwrap();
    }
    let before = segment_files(dir.path());
    assert!(before.len() > 8, "{before:?}");
    let sizes: Vec<u64> = before
        .iter()
        .map(|b| {
            fs::metadata(segment::segment_path(dir.path(), *b))
                .unwrap()
                .len()
        })
        .collect();
    let mut reader = log.reader();

    // Nothing committed yet: nothing may go.
    reader
        .commit(&[SourcePosition {
            partition: 0,
            offset: 0,
        }])
        .await
        .unwrap();
    assert_eq!(segment_files(dir.path()), before);

    // Commit in the middle of segment k: segments before k go, k stays.
    let k = 3;
    reader
        .commit(&[SourcePosition {
            partition: 0,
            offset: before[k] + 2,
        }])
        .await
        .unwrap();
    assert_eq!(segment_files(dir.path()), before[k..].to_vec());
    assert_eq!(log.start_offset(), before[k]);
    assert!(log.read_range(0, 1).is_err());

    // Commit everything: delete oldest-first while over the limit, never the
    // active segment.
    reader
        .commit(&[SourcePosition {
            partition: 0,
            offset: 300,
        }])
        .await
        .unwrap();
    let mut keep = k;
    let mut total: u64 = sizes[k..].iter().sum();
    while total > limit && keep + 1 < sizes.len() {
        total -= sizes[keep];
        keep += 1;
    }
    assert!(keep < before.len() - 1, "the test should stop on the limit");
    assert_eq!(segment_files(dir.path()), before[keep..].to_vec());
    assert_eq!(log.size_bytes(), total);
    assert!(total <= limit);
    let rest = log.read_range(log.start_offset(), 1000).unwrap();
    assert_eq!(rest.first().unwrap().0, before[keep]);
    assert_eq!(rest.last().unwrap().0, 299);
    log.close().await.unwrap();
}

#[tokio::test]
async fn second_open_of_the_same_dir_fails() {
    let dir = tempfile::tempdir().unwrap();
    let log = EventLog::open(dir.path(), LogConfig::default()).unwrap();
    let second = EventLog::open(dir.path(), LogConfig::default());
    assert!(matches!(second, Err(LogError::Locked { .. })), "{second:?}");
    log.close().await.unwrap();
    let again = EventLog::open(dir.path(), LogConfig::default()).unwrap();
    again.close().await.unwrap();
}

#[tokio::test]
async fn bad_payloads_and_closed_log_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let log = EventLog::open(dir.path(), LogConfig::default()).unwrap();
    let big = vec![b'x'; MAX_PAYLOAD_BYTES + 1];
    assert!(matches!(
        log.append(vec![b"{}".to_vec(), big]).await,
        Err(LogError::TooLarge { .. })
    ));
    assert!(matches!(
        log.append(vec![Vec::new()]).await,
        Err(LogError::EmptyPayload)
    ));
    assert_eq!(log.end_offset(), 0);
    let other = log.clone();
    log.close().await.unwrap();
    assert!(matches!(
        other.append(vec![b"{}".to_vec()]).await,
        Err(LogError::Closed)
    ));
}

#[test]
fn config_defaults_and_validation() {
    let c: LogConfig = serde_json::from_str("{}").unwrap();
    assert_eq!(c, LogConfig::default());
    assert_eq!(c.segment_bytes, 128 * 1024 * 1024);
    assert_eq!(c.channel_capacity, 1024);
    assert!(c.fsync && c.retention_bytes.is_none());
    assert!(c.validate().is_ok());
    assert!(serde_json::from_str::<LogConfig>(r#"{"segment_byte": 1}"#).is_err());
    assert!(small(10).validate().unwrap_err().contains("segment_bytes"));
    let c = LogConfig {
        channel_capacity: 0,
        ..LogConfig::default()
    };
    assert!(c.validate().unwrap_err().contains("channel_capacity"));
}
