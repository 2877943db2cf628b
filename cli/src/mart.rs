//! The mart in `storepulse run` (embedded mode): the mart log, the sink
//! loop writing the embedded Parquet mart, the DataFusion reader for the
//! dashboard, and the side feeds (review decisions, ingest dead letters).
//! In Kafka mode ([`start_kafka`]) the same sink loop reads `<p>.mart`
//! instead of the mart log, on the serve with `mart.kafka_sink`.
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
use async_trait::async_trait;
use prometheus_client::registry::Registry;
use storepulse_core::dead_letter::{DeadLetter, RejectedAt};
use storepulse_core::StoreMaster;
use storepulse_ingest::log::EventLog;
use storepulse_mart::derive::{EventPos, RowDeriver};
use storepulse_mart::embedded::ParquetMart;
use storepulse_mart::query::{
    DayCount, MartFilter, MartReader, SalesGroup, SalesPoint, SalesTotals, SkuTotal, TagCount,
};
use storepulse_mart::rows::{Erasure, MartBatch, Table, DECISIONS_PARTITION, INGEST_DLQ_PARTITION};
use storepulse_mart::sink::{Cursor, MartSink, RefusedRow, RefusedSink, SinkError, SinkMetrics};
use storepulse_mart::write::{MartWriter, StoredPositions};
use storepulse_mart::MartError;
use storepulse_runtime::driver::{sniff_store, MartLogSink, MartOutput, MART_RECORD_BYTES};
use storepulse_runtime::review::Decision;
use storepulse_sinks::clickhouse::{ClickHouseConfig, ClickHouseMart};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::config::Config;

/// How often the side feeds look for new decisions and dead letters.
const FEED_INTERVAL: Duration = Duration::from_secs(1);

/// Opens (creating) the embedded mart under `root`, off the async threads.
async fn open_parquet_mart(root: &std::path::Path) -> anyhow::Result<ParquetMart> {
    let dir = root.to_owned();
    tokio::task::spawn_blocking(move || ParquetMart::open(&dir))
        .await
        .context("opening the mart")?
        .with_context(|| format!("opening the mart in {}", root.display()))
}

/// A refused mart row as a dead letter: the row's JSON, the store's
/// message, and the row's source position.
fn refused_letter(r: &RefusedRow) -> DeadLetter {
    let mut letter = DeadLetter::new(
        RejectedAt::Processor,
        format!("mart {}: {}", r.table.name(), r.message),
        None,
        r.row.as_bytes(),
    );
    letter.partition = Some(r.position.partition);
    letter.offset = Some(r.position.offset);
    letter
}

/// Refused rows as dead letters in the dead-letter log.
struct LogRefused(EventLog);

impl RefusedSink for LogRefused {
    async fn send(&self, rows: Vec<RefusedRow>) -> Result<(), String> {
        let payloads = rows
            .iter()
            .map(|r| serde_json::to_vec(&refused_letter(r)).map_err(|e| e.to_string()))
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
    std::fs::create_dir_all(&root)
        .with_context(|| format!("creating the mart directory {}", root.display()))?;
    let metrics = SinkMetrics::default();
    metrics.register(registry);
    let output = MartOutput {
        deriver: RowDeriver::new(stores.clone()),
        sink: log_sink(log.clone()),
    };
    let parts = SinkParts {
        log: log.clone(),
        refused: LogRefused(dead_letter_log.clone()),
        // A cursor per store (per ClickHouse database): switching stores
        // must not skip rows the new one never received.
        cursor: match &config.mart.clickhouse {
            Some(ch) => Cursor::new(&root, &format!("sink-clickhouse-{}", ch.database)),
            None => Cursor::new(&root, "sink"),
        },
        config: config.mart.sink_config(),
        metrics: metrics.clone(),
        shutdown: shutdown.clone(),
    };
    let (reader, sink, positions): (Arc<dyn MartReader>, _, Arc<dyn PositionsOf>) =
        match &config.mart.clickhouse {
            Some(ch) => {
                info!(url = %ch.url, database = %ch.database, "mart on ClickHouse");
                let store = Arc::new(LazyClickHouse::new(ch.clone()));
                (store.clone(), spawn_sink(store.clone(), parts), store)
            }
            None => {
                let writer = open_parquet_mart(&root).await?;
                let reader: Arc<dyn MartReader> =
                    Arc::new(writer.reader().with_stores(stores.clone()));
                let writer = Arc::new(writer);
                (reader, spawn_sink(writer.clone(), parts), writer)
            }
        };
    let feeds = tokio::spawn(feeds(
        data.join("decisions").join("decisions.ndjson"),
        dead_letter_log,
        output.clone(),
        positions,
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

/// What every sink loop needs besides its store.
struct SinkParts {
    log: EventLog,
    refused: LogRefused,
    cursor: Cursor,
    config: storepulse_mart::sink::SinkConfig,
    metrics: SinkMetrics,
    shutdown: CancellationToken,
}

/// Starts the sink loop writing the mart log into `writer`.
fn spawn_sink<W: MartWriter + 'static>(
    writer: Arc<W>,
    parts: SinkParts,
) -> JoinHandle<Result<(), SinkError>> {
    let end_log = parts.log.clone();
    let sink = MartSink {
        writer,
        refused: parts.refused,
        cursor: parts.cursor,
        config: parts.config,
        metrics: parts.metrics,
        log_end: Arc::new(move || end_log.end_offset()),
    };
    let source = parts.log.reader();
    tokio::spawn(async move { sink.run(source, parts.shutdown).await })
}

/// The store's highest positions, for the side feeds (object-safe).
#[async_trait]
trait PositionsOf: Send + Sync {
    async fn positions(&self) -> Result<StoredPositions, MartError>;
}

#[async_trait]
impl<W: MartWriter> PositionsOf for W {
    async fn positions(&self) -> Result<StoredPositions, MartError> {
        self.stored_positions().await
    }
}

/// The ClickHouse mart, connected on first use (database created,
/// migrations applied), so that a server away at start holds back only the
/// mart and the dashboard's charts, never processing; every call until the
/// connection succeeds answers `Unavailable` and the sink loop retries.
struct LazyClickHouse {
    config: ClickHouseConfig,
    mart: tokio::sync::OnceCell<ClickHouseMart>,
}

impl LazyClickHouse {
    fn new(config: ClickHouseConfig) -> Self {
        Self {
            config,
            mart: tokio::sync::OnceCell::new(),
        }
    }

    async fn get(&self) -> Result<&ClickHouseMart, MartError> {
        self.mart
            .get_or_try_init(|| async {
                ClickHouseMart::connect(self.config.clone())
                    .await
                    .map_err(|e| match e {
                        storepulse_sinks::SinkError::Mart(m) => m,
                        other => MartError::Unavailable(other.to_string()),
                    })
            })
            .await
    }
}

#[async_trait]
impl MartWriter for LazyClickHouse {
    async fn stored_positions(&self) -> Result<StoredPositions, MartError> {
        self.get().await?.stored_positions().await
    }

    async fn write(&self, batch: &MartBatch) -> Result<(), MartError> {
        self.get().await?.write(batch).await
    }

    async fn erase(&self, erasure: &Erasure) -> Result<(), MartError> {
        self.get().await?.erase(erasure).await
    }

    fn backend(&self) -> &'static str {
        "clickhouse"
    }
}

#[async_trait]
impl MartReader for LazyClickHouse {
    async fn sales_by_hour(
        &self,
        filter: &MartFilter,
        group: SalesGroup,
    ) -> Result<Vec<SalesPoint>, MartError> {
        self.get().await?.sales_by_hour(filter, group).await
    }

    async fn top_skus(
        &self,
        filter: &MartFilter,
        limit: usize,
    ) -> Result<Vec<SkuTotal>, MartError> {
        self.get().await?.top_skus(filter, limit).await
    }

    async fn members_by_tag(&self, filter: &MartFilter) -> Result<Vec<TagCount>, MartError> {
        self.get().await?.members_by_tag(filter).await
    }

    async fn new_members(&self, filter: &MartFilter) -> Result<Vec<DayCount>, MartError> {
        self.get().await?.new_members(filter).await
    }

    async fn totals(&self, filter: &MartFilter) -> Result<SalesTotals, MartError> {
        self.get().await?.totals(filter).await
    }

    fn backend(&self) -> &'static str {
        "clickhouse"
    }
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
    store: Arc<dyn PositionsOf>,
    shutdown: CancellationToken,
) {
    // Where the store is: retried while it is away (ClickHouse down at start
    // holds back only these feeds, never processing).
    let mut backoff = Duration::from_millis(100);
    let stored = loop {
        match store.positions().await {
            Ok(stored) => break stored,
            Err(e) => {
                warn!(error = %e, "mart: reading the store's positions failed; retrying");
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(10));
            }
        }
    };
    let mut next_decision = stored
        .get(&(Table::AlertDecisions, DECISIONS_PARTITION))
        .map_or(0, |p| p.offset + 1);
    let mut next_letter = stored
        .get(&(Table::RejectedEvents, INGEST_DLQ_PARTITION))
        .map_or(0, |p| p.offset + 1);
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
                        &sniff_store(letter.raw.as_bytes()),
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

/// Refused rows as dead letters on `<p>.dlq` (Kafka mode).
struct TopicRefused(storepulse_kafka::producer::KafkaAppender);

impl RefusedSink for TopicRefused {
    async fn send(&self, rows: Vec<RefusedRow>) -> Result<(), String> {
        use storepulse_ingest::append::{EventAppender, KeyedEvent};
        let letters = rows
            .iter()
            .map(|r| {
                serde_json::to_vec(&refused_letter(r))
                    .map(|payload| KeyedEvent {
                        key: String::new(),
                        payload,
                    })
                    .map_err(|e| e.to_string())
            })
            .collect::<Result<Vec<_>, _>>()?;
        self.0
            .append_dead_letters(letters)
            .await
            .map_err(|e| e.to_string())
    }
}

/// The mart of a Kafka-mode `serve`.
pub struct KafkaMart {
    /// The dashboard's queries; `None`: `/v1/mart/*` answers 503 (an
    /// embedded mart kept by another serve).
    pub reader: Option<Arc<dyn MartReader>>,
    /// The sink loop, on the designated serve (`mart.kafka_sink`).
    sink: Option<JoinHandle<Result<(), SinkError>>>,
}

/// The mart of a Kafka-mode `serve` (ARCHITECTURE.md "The mart on
/// Kafka"): with `mart.kafka_sink`, the sink loop reading `<p>.mart` into
/// ClickHouse (`[mart.clickhouse]`) or the embedded Parquet mart under
/// `data_dir/mart`; the dashboard's reader of that store. A serve without
/// the sink reads ClickHouse when configured, else has no mart.
///
/// # Errors
/// The mart directory cannot be opened, the mart consumer not created.
pub async fn start_kafka(
    config: &Config,
    stores: Arc<StoreMaster>,
    topics: &storepulse_kafka::Topics,
    refused: storepulse_kafka::producer::KafkaAppender,
    registry: &mut Registry,
    shutdown: CancellationToken,
    failed: tokio::sync::mpsc::UnboundedSender<anyhow::Error>,
) -> anyhow::Result<KafkaMart> {
    if !config.mart.enabled {
        return Ok(KafkaMart {
            reader: None,
            sink: None,
        });
    }
    let root = config.storage.data_dir.join("mart");
    let clickhouse = config
        .mart
        .clickhouse
        .as_ref()
        .map(|ch| Arc::new(LazyClickHouse::new(ch.clone())));
    if !config.mart.kafka_sink {
        let reader = clickhouse.map(|ch| ch as Arc<dyn MartReader>);
        return Ok(KafkaMart { reader, sink: None });
    }
    std::fs::create_dir_all(&root)
        .with_context(|| format!("creating the mart directory {}", root.display()))?;
    let metrics = SinkMetrics::default();
    metrics.register(registry);
    let source = storepulse_kafka::mart::MartTopicSource::new(&config.kafka, &topics.mart)
        .context("the mart topic's consumer")?;
    let end = source.end_offset();
    let cursor = match &config.mart.clickhouse {
        Some(ch) => Cursor::new(
            &root,
            &format!(
                "kafka-{}-clickhouse-{}",
                config.kafka.topic_prefix, ch.database
            ),
        ),
        None => Cursor::new(&root, &format!("kafka-{}", config.kafka.topic_prefix)),
    };
    let refused = TopicRefused(refused);
    let sink_config = config.mart.sink_config();
    let log_end: Arc<dyn Fn() -> u64 + Send + Sync> =
        Arc::new(move || end.load(std::sync::atomic::Ordering::Acquire));
    info!(topic = %topics.mart, "mart: this serve runs the mart sink (set mart.kafka_sink on one serve only)");
    let (reader, sink): (Arc<dyn MartReader>, _) = match clickhouse {
        Some(store) => {
            let sink = MartSink {
                writer: store.clone(),
                refused,
                cursor,
                config: sink_config,
                metrics,
                log_end,
            };
            (store, spawn_reporting(sink, source, shutdown, failed))
        }
        None => {
            let writer = open_parquet_mart(&root).await?;
            let reader: Arc<dyn MartReader> = Arc::new(writer.reader().with_stores(stores));
            let sink = MartSink {
                writer: Arc::new(writer),
                refused,
                cursor,
                config: sink_config,
                metrics,
                log_end,
            };
            (reader, spawn_reporting(sink, source, shutdown, failed))
        }
    };
    Ok(KafkaMart {
        reader: Some(reader),
        sink: Some(sink),
    })
}

/// Runs the sink loop over the mart topic; a failure that retrying cannot
/// cure (not a shutdown) stops serve through `failed`, for its supervisor to
/// restart it (the sink resumes from its cursor).
fn spawn_reporting<W: MartWriter + 'static>(
    sink: MartSink<W, TopicRefused>,
    source: storepulse_kafka::mart::MartTopicSource,
    shutdown: CancellationToken,
    failed: tokio::sync::mpsc::UnboundedSender<anyhow::Error>,
) -> JoinHandle<Result<(), SinkError>> {
    tokio::spawn(async move {
        let result = sink.run(source, shutdown).await;
        if let Err(e) = &result {
            if !matches!(e, SinkError::Interrupted(_)) {
                let _ = failed.send(anyhow::anyhow!("mart sink: {e}"));
            }
        }
        result
    })
}

impl KafkaMart {
    /// Waits for the sink loop to stop (after shutdown).
    ///
    /// # Errors
    /// The sink loop failed for good.
    pub async fn join(self) -> anyhow::Result<()> {
        let Some(sink) = self.sink else {
            return Ok(());
        };
        // A failure was reported through `failed` already.
        let _ = sink.await.context("mart sink task")?;
        Ok(())
    }
}
