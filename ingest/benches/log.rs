//! Criterion benchmark of the embedded event log: group-committed appends
//! (with and without fsync) and reading back, 450-byte records.
//!
//! `cargo bench -p storepulse-ingest --bench log`

#![allow(clippy::unwrap_used)] // a benchmark panics on the first surprise, by design

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use storepulse_core::source::EventSource;
use storepulse_ingest::log::{EventLog, LogConfig};

const RECORDS: u64 = 100_000;
const PER_APPEND: usize = 100;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Appends `RECORDS` from 8 concurrent writers in requests of 100 records,
/// as HTTP ingest does.
async fn fill(log: &EventLog) {
    let body = vec![b'x'; 450];
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (log, body) = (log.clone(), body.clone());
        tasks.push(tokio::spawn(async move {
            for _ in 0..RECORDS as usize / PER_APPEND / 8 {
                loop {
                    match log.append(vec![body.clone(); PER_APPEND]).await {
                        Ok(_) => break,
                        Err(storepulse_ingest::log::LogError::Backpressure) => {
                            tokio::task::yield_now().await
                        }
                        Err(e) => panic!("{e}"),
                    }
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

fn bench_log(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("event_log");
    group.throughput(Throughput::Elements(RECORDS));
    group.sample_size(10);
    for fsync in [true, false] {
        let name = if fsync {
            "append_fsync"
        } else {
            "append_no_fsync"
        };
        group.bench_function(name, |b| {
            b.iter_batched(
                || {
                    let dir = tempfile::tempdir().unwrap();
                    let log = EventLog::open(
                        dir.path(),
                        LogConfig {
                            fsync,
                            ..LogConfig::default()
                        },
                    )
                    .unwrap();
                    (dir, log)
                },
                |(dir, log)| {
                    rt.block_on(async {
                        fill(&log).await;
                        log.close().await.unwrap();
                    });
                    dir
                },
                BatchSize::PerIteration,
            );
        });
    }
    let dir = tempfile::tempdir().unwrap();
    let log = EventLog::open(
        dir.path(),
        LogConfig {
            fsync: false,
            ..LogConfig::default()
        },
    )
    .unwrap();
    rt.block_on(fill(&log));
    group.bench_function("read", |b| {
        b.iter(|| {
            rt.block_on(async {
                let mut reader = log.reader();
                let mut out = Vec::with_capacity(2000);
                let mut n = 0u64;
                while n < RECORDS {
                    out.clear();
                    reader
                        .next_batch(2000, &mut out, std::future::pending())
                        .await
                        .unwrap();
                    n += out.len() as u64;
                }
            });
        });
    });
    group.finish();
}

criterion_group!(benches, bench_log);
criterion_main!(benches);
