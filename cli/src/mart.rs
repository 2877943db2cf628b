//! The mart in `storepulse run` (embedded mode): the mart log, the sink
//! loop writing the embedded Parquet mart, the DataFusion reader for the
//! dashboard, and the side feeds (review decisions, ingest dead letters).
//!
//! ```text
//! runtime (apply_batch) ──MartBatch──▶ data_dir/mart-log (EventLog, fsynced before the checkpoint)
//! decision log, ingest dead letters ──▶        │
//!                                             ▼
//!                   sink loop (mart::sink) ── cursor data_dir/mart/sink.cursor
//!                                             ▼
//!                   ParquetMart data_dir/mart/<table>/*.parquet ◀── DataFusionMart (dashboard)
//! ```

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use prometheus_client::registry::Registry;
use storepulse_core::dead_letter::{DeadLetter, RejectedAt};
use storepulse_core::StoreMaster;
use storepulse_ingest::log::EventLog;
use storepulse_mart::derive::{EventPos, RowDeriver};
use storepulse_mart::embedded::ParquetMart;
use storepulse_mart::query::MartReader;
use storepulse_mart::rows::{MartBatch, Table, DECISIONS_PARTITION, INGEST_DLQ_PARTITION};
use storepulse_mart::sink::{Cursor, MartSink, RefusedRow, RefusedSink, SinkError, SinkMetrics};
use storepulse_mart::write::MartWriter;
use storepulse_runtime::driver::{MartLogSink, MartOutput, MART_RECORD_BYTES};
use storepulse_runtime::review::Decision;
use storepulse_sinks::clickhouse::ClickHouseMart;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use crate::config::Config;

/// How often the side feeds look for new decisions and dead letters.
const FEED_INTERVAL: Duration = Duration::from_secs(1);

/// Refused rows as dead letters in the dead-letter log.
struct LogRefused(EventLog);

impl RefusedSink for LogRefused {
    async fn send(&self, rows: Vec<RefusedRow>) -> Result<(), String> {
        let payloads = rows
            .iter()
            .map(|r| {
                let mut letter = DeadLetter::new(
                    RejectedAt::Processor,
                    format!("mart {}: {}", r.table.name(), r.message),
                    None,
                    r.row.as_bytes(),
                );
                letter.partition = Some(r.position.partition);
                letter.offset = Some(r.position.offset);
                serde_json::to_vec(&letter).map_err(|e| e.to_string())
            })
            .collect::<Result<Vec<_>, _>>()?;
        self.0
            .append(payloads)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

/// The running mart.
pub struct MartRuntime {
    /// The dashboard's queries (`/v1/mart/*` routes take this).
    pub reader: Arc<dyn MartReader>,
    /// What the processing loop needs.
    pub output: MartOutput,
    pub log: EventLog,
    pub metrics: SinkMetrics,
    sink: JoinHandle<Result<(), SinkError>>,
    feeds: JoinHandle<()>,
}

/// The mart log as the runtime's mart sink.
pub fn log_sink(log: EventLog) -> MartLogSink {
    Arc::new(move |records: Vec<Vec<u8>>| {
        let log = log.clone();
        Box::pin(async move {
            log.append(records)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        })
    })
}

/// Opens the mart log and store and starts the sink loop and feeds.
///
/// # Errors
/// A locked or damaged mart log, an unreadable mart directory.
pub async fn start(
    config: &Config,
    stores: Arc<StoreMaster>,
    dead_letter_log: EventLog,
    registry: &mut Registry,
    shutdown: CancellationToken,
) -> anyhow::Result<MartRuntime> {
    let data = &config.storage.data_dir;
    let log = EventLog::open(&data.join("mart-log"), config.log.clone())
        .context("opening the mart log")?;
    let root = data.join("mart");
    let metrics = SinkMetrics::default();
    metrics.register(registry);
    let output = MartOutput {
        deriver: RowDeriver::new(stores.clone()),
        sink: log_sink(log.clone()),
    };
    let sink_parts = SinkParts {
        refused: LogRefused(dead_letter_log.clone()),
        config: config.mart.sink_config(),
        metrics: metrics.clone(),
        log: log.clone(),
        shutdown: shutdown.clone(),
    };
    let (reader, stored, sink): (Arc<dyn MartReader>, _, _) = if let Some(ch) =
        &config.mart.clickhouse
    {
        let mart = Arc::new(
            ClickHouseMart::connect(ch.clone())
                .await
                .with_context(|| format!("connecting to the ClickHouse mart at {}", ch.url))?,
        );
        let stored = mart
            .stored_positions()
            .await
            .context("reading the ClickHouse mart's positions")?;
        // A cursor per ClickHouse database: switching stores or
        // databases must not skip rows the new one never received.
        std::fs::create_dir_all(&root).with_context(|| format!("creating {}", root.display()))?;
        let cursor = Cursor::new(&root, &format!("sink-clickhouse-{}", ch.database));
        let sink = spawn_sink(mart.clone(), cursor, sink_parts);
        (mart, stored, sink)
    } else {
        let writer = {
            let dir = root.clone();
            tokio::task::spawn_blocking(move || ParquetMart::open(&dir))
                .await
                .context("opening the mart")?
                .with_context(|| format!("opening the mart in {}", root.display()))?
        };
        let reader = Arc::new(writer.reader().with_stores(stores.clone()));
        let stored = writer
            .stored_positions()
            .await
            .context("reading the mart's positions")?;
        let sink = spawn_sink(Arc::new(writer), Cursor::new(&root, "sink"), sink_parts);
        (reader, stored, sink)
    };
    let next_decision = stored
        .get(&(Table::AlertDecisions, DECISIONS_PARTITION))
        .map_or(0, |p| p.offset + 1);
    let next_letter = stored
        .get(&(Table::RejectedEvents, INGEST_DLQ_PARTITION))
        .map_or(0, |p| p.offset + 1);
    let feeds = tokio::spawn(feeds(
        data.join("decisions").join("decisions.ndjson"),
        dead_letter_log,
        output.clone(),
        (next_decision, next_letter),
        shutdown,
    ));
    Ok(MartRuntime {
        reader,
        output,
        log,
        metrics,
        sink,
        feeds,
    })
}

/// What the sink loop needs besides its writer and cursor.
struct SinkParts {
    refused: LogRefused,
    config: storepulse_mart::sink::SinkConfig,
    metrics: SinkMetrics,
    log: EventLog,
    shutdown: CancellationToken,
}

/// Starts the sink loop from the mart log into `writer`.
fn spawn_sink<W: MartWriter + 'static>(
    writer: Arc<W>,
    cursor: Cursor,
    parts: SinkParts,
) -> JoinHandle<Result<(), SinkError>> {
    let end_log = parts.log.clone();
    let sink = MartSink {
        writer,
        refused: parts.refused,
        cursor,
        config: parts.config,
        metrics: parts.metrics,
        log_end: Arc::new(move || end_log.end_offset()),
    };
    let source = parts.log.reader();
    let shutdown = parts.shutdown;
    tokio::spawn(async move { sink.run(source, shutdown).await })
}

impl MartRuntime {
    /// Waits for the sink loop and feeds to stop (after shutdown), then
    /// closes the mart log.
    ///
    /// # Errors
    /// The sink loop failed for good.
    pub async fn join(self) -> anyhow::Result<()> {
        let _ = self.feeds.await;
        let sunk = self.sink.await.context("mart sink task")?;
        self.log.close().await.context("closing the mart log")?;
        match sunk {
            Ok(()) | Err(SinkError::Interrupted(_)) => Ok(()),
            Err(e) => Err(e).context("mart sink"),
        }
    }
}

/// Appends review decisions and ingest-stage dead letters to the mart log
/// as they appear. Positions: (`DECISIONS_PARTITION`, decision number) and
/// (`INGEST_DLQ_PARTITION`, dead-letter log offset); starting from what the
/// store holds, so a restart re-appends at most what the sink had not
/// written yet (dropped there by position).
async fn feeds(
    decisions: std::path::PathBuf,
    dlq: EventLog,
    output: MartOutput,
    (mut next_decision, mut next_letter): (u64, u64),
    shutdown: CancellationToken,
) {
    let mut seen_decisions = 0u64;
    let mut read_bytes = 0u64;
    loop {
        let mut batch = MartBatch::default();
        match read_decisions(&decisions, &mut read_bytes) {
            Ok(list) => {
                for d in list {
                    let seq = seen_decisions;
                    seen_decisions += 1;
                    if seq < next_decision {
                        continue;
                    }
                    next_decision = seq + 1;
                    output.deriver.decision(
                        seq,
                        &d.alert_id,
                        d.decision.as_str(),
                        &d.decided_by,
                        &d.comment,
                        d.decided_at,
                        &mut batch,
                    );
                }
            }
            Err(e) => warn!(error = %e, "mart: reading the decision log failed"),
        }
        let start = next_letter.max(dlq.start_offset());
        match dlq.read_range(start, 10_000) {
            Ok(records) => {
                for (offset, payload) in records {
                    next_letter = offset + 1;
                    let Ok(letter) = serde_json::from_slice::<DeadLetter>(&payload) else {
                        continue;
                    };
                    if letter.stage != RejectedAt::Ingest {
                        continue;
                    }
                    let at = storepulse_core::time::parse_rfc3339(&letter.rejected_at)
                        .unwrap_or_else(storepulse_core::time::now);
                    output.deriver.rejected(
                        EventPos {
                            partition: INGEST_DLQ_PARTITION,
                            offset,
                        },
                        letter.event_id.as_deref(),
                        "ingest",
                        &letter.reason,
                        &store_of(&letter.raw),
                        &letter.raw,
                        at,
                        &mut batch,
                    );
                }
            }
            Err(e) => warn!(error = %e, "mart: reading the dead-letter log failed"),
        }
        if !batch.is_empty() {
            let records = batch.encode_parts(MART_RECORD_BYTES);
            let mut backoff = Duration::from_millis(100);
            while let Err(e) = (output.sink)(records.clone()).await {
                warn!(error = %e, "mart: appending decisions/dead letters failed; retrying");
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(10));
            }
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(FEED_INTERVAL) => {}
        }
    }
}

/// New complete lines of the decision log since `from` (advanced).
fn read_decisions(path: &Path, from: &mut u64) -> std::io::Result<Vec<Decision>> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    file.seek(SeekFrom::Start(*from))?;
    let mut text = Vec::new();
    file.read_to_end(&mut text)?;
    let complete = text.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    let mut out = Vec::new();
    for line in text[..complete].split(|b| *b == b'\n') {
        if line.is_empty() {
            continue;
        }
        match serde_json::from_slice::<Decision>(line) {
            Ok(d) => out.push(d),
            Err(e) => warn!(error = %e, "mart: unreadable decision line skipped"),
        }
    }
    *from += complete as u64;
    Ok(out)
}

fn store_of(raw: &str) -> String {
    serde_json::from_str::<serde_json::Value>(raw)
        .ok()
        .and_then(|v| {
            v.get("store_id")
                .and_then(|s| s.as_str())
                .map(str::to_owned)
        })
        .unwrap_or_default()
}
