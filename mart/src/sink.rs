//! The mart sink loop: mart log → batches → a [`MartWriter`], exactly once.
//!
//! The runtime appends one [`MartBatch`] per applied batch of events to the
//! mart log (postcard records, durable before the checkpoint that covers
//! the events). This loop tails that log from its own durable cursor and
//! writes the rows to a store:
//!
//! 1. At start it asks the writer for the highest stored position per
//!    (table, source partition) and drops every row at or below it; while
//!    batching it raises those marks with every row it takes, so rows the
//!    runtime re-emitted after a crash (same positions) are dropped too.
//! 2. Rows are batched by rows, bytes and time ([`SinkConfig`], defaults
//!    [`DEFAULT_MAX_ROWS`], [`DEFAULT_MAX_BYTES`], [`DEFAULT_MAX_WAIT`]).
//! 3. A write that fails with [`MartError::Unavailable`] (or I/O) is retried
//!    with capped exponential backoff until shutdown; before each retry the
//!    stored positions are read again, so a write that landed but whose
//!    answer was lost is not written twice.
//! 4. [`MartError::Refused`] is never retried as is: the batch is bisected
//!    (table by table, then halves) until the refused rows are isolated;
//!    those go to the dead-letter sink with the store's message, the rest
//!    is written. Nothing is dropped silently.
//! 5. A record with erasures ends the batch: its rows (and all before) are
//!    written, then the erasures applied (retried until they succeed: PIPL
//!    erasures are never skipped).
//! 6. Only after the writer acknowledged does the cursor move (a small file,
//!    rewritten atomically) and the log hear `commit` (its retention may
//!    then delete consumed segments, never unconsumed ones).
//!
//! A crash anywhere re-reads from the cursor; the positions make the rows
//! already stored disappear, so the store holds each row once.

use std::future::Future;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use storepulse_core::source::{EventSource, SourcePosition, SourceRecord};
use storepulse_core::RetryHint;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use crate::rows::{MartBatch, SourcePos, Table};
use crate::write::{MartWriter, StoredPositions};
use crate::MartError;

/// Rows that end a batch. 100,000.
pub const DEFAULT_MAX_ROWS: usize = 100_000;
/// Encoded bytes that end a batch. 16 MiB.
pub const DEFAULT_MAX_BYTES: usize = 16 * 1024 * 1024;
/// Longest a row waits in a batch. 1 s.
pub const DEFAULT_MAX_WAIT: Duration = Duration::from_secs(1);
/// First retry delay; doubles up to [`BACKOFF_MAX`].
pub const BACKOFF_START: Duration = Duration::from_millis(100);
/// Longest retry delay.
pub const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// Mart-log records read per poll.
const READ_RECORDS: usize = 256;

/// How the loop batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SinkConfig {
    pub max_rows: usize,
    pub max_bytes: usize,
    pub max_wait: Duration,
}

impl Default for SinkConfig {
    fn default() -> Self {
        Self {
            max_rows: DEFAULT_MAX_ROWS,
            max_bytes: DEFAULT_MAX_BYTES,
            max_wait: DEFAULT_MAX_WAIT,
        }
    }
}

/// A row the store refused for good, with the store's message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefusedRow {
    pub table: Table,
    pub position: SourcePos,
    /// The row as JSON.
    pub row: String,
    pub message: String,
}

/// Where refused rows go (the dead-letter log). Durable when `Ok`.
pub trait RefusedSink: Send + Sync {
    /// Writes the rows durably.
    fn send(&self, rows: Vec<RefusedRow>) -> impl Future<Output = Result<(), String>> + Send;
}

/// The sink's cursor: the next mart-log offset to read, in a small file
/// rewritten atomically (tmp, fsync, rename, fsync dir).
#[derive(Debug, Clone)]
pub struct Cursor {
    path: PathBuf,
}

impl Cursor {
    /// The cursor file `dir/<name>.cursor`.
    pub fn new(dir: &Path, name: &str) -> Self {
        Self {
            path: dir.join(format!("{name}.cursor")),
        }
    }

    /// The stored offset; `None` when there is no cursor yet.
    ///
    /// # Errors
    /// An unreadable or damaged file.
    pub fn load(&self) -> Result<Option<u64>, MartError> {
        match std::fs::read_to_string(&self.path) {
            Ok(text) => text
                .trim()
                .parse()
                .map(Some)
                .map_err(|e| MartError::Refused(format!("cursor {}: {e}", self.path.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Stores `offset` durably. Blocking.
    ///
    /// # Errors
    /// I/O errors.
    pub fn store(&self, offset: u64) -> Result<(), MartError> {
        let dir = self.path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir)?;
        let tmp = self.path.with_extension("cursor.tmp");
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(format!("{offset}\n").as_bytes())?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, &self.path)?;
        sync_dir(dir)
    }
}

/// Fsyncs a directory (makes a rename in it durable).
///
/// # Errors
/// I/O errors.
pub fn sync_dir(dir: &Path) -> Result<(), MartError> {
    #[cfg(unix)]
    std::fs::File::open(dir)?.sync_all()?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TableLabels {
    table: &'static str,
}

/// The sink's metrics (`storepulse_mart_*`).
#[derive(Debug, Clone, Default)]
pub struct SinkMetrics {
    rows_written: Family<TableLabels, Counter>,
    batches: Counter,
    retries: Counter,
    refused_rows: Counter,
    erasures: Counter,
    bad_records: Counter,
    lag: Gauge,
    last_write_seconds: Gauge<f64, AtomicU64>,
    /// The cursor as last stored.
    cursor: Arc<AtomicU64>,
}

impl SinkMetrics {
    /// Registers the metrics under `storepulse_mart_`.
    pub fn register(&self, registry: &mut Registry) {
        let r = registry.sub_registry_with_prefix("storepulse_mart");
        r.register(
            "rows_written",
            "Rows acknowledged by the mart store, per table",
            self.rows_written.clone(),
        );
        r.register(
            "batches",
            "Batches acknowledged by the mart store",
            self.batches.clone(),
        );
        r.register(
            "retries",
            "Writes retried after a transient failure",
            self.retries.clone(),
        );
        r.register(
            "refused_rows",
            "Rows the store refused, sent to the dead-letter log",
            self.refused_rows.clone(),
        );
        r.register(
            "erasures",
            "Member erasures applied to the store",
            self.erasures.clone(),
        );
        r.register(
            "bad_records",
            "Mart-log records that could not be decoded (skipped, logged)",
            self.bad_records.clone(),
        );
        r.register(
            "lag_records",
            "Mart-log records not yet written to the store",
            self.lag.clone(),
        );
        r.register(
            "last_write_seconds",
            "Duration of the last acknowledged write",
            self.last_write_seconds.clone(),
        );
    }

    /// The cursor as last stored (the next mart-log offset to write).
    pub fn cursor(&self) -> u64 {
        self.cursor.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Sets the lag gauge from the mart log's end and returns the lag.
    pub fn refresh_lag(&self, log_end: u64) -> u64 {
        let lag = log_end.saturating_sub(self.cursor());
        self.lag.set(i64::try_from(lag).unwrap_or(i64::MAX));
        lag
    }

    /// Rows written to `table` so far.
    pub fn rows_written(&self, table: Table) -> u64 {
        self.rows_written
            .get_or_create(&TableLabels {
                table: table.name(),
            })
            .get()
    }

    /// Refused rows so far.
    pub fn refused(&self) -> u64 {
        self.refused_rows.get()
    }

    /// Retries so far.
    pub fn retried(&self) -> u64 {
        self.retries.get()
    }
}

/// Why the loop stopped.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// Shutdown was asked for while a write was being retried (the rows
    /// are re-read from the cursor at the next start).
    #[error("shut down while {0} was failing")]
    Interrupted(String),
    #[error(transparent)]
    Mart(#[from] MartError),
    #[error("mart log: {0}")]
    Source(String),
}

/// The loop's fixed parts.
pub struct MartSink<W, R> {
    pub writer: Arc<W>,
    pub refused: R,
    pub cursor: Cursor,
    pub config: SinkConfig,
    pub metrics: SinkMetrics,
    /// The mart log's committed end (for the lag gauge).
    pub log_end: Arc<dyn Fn() -> u64 + Send + Sync>,
}

/// The batch being built.
#[derive(Default)]
struct Pending {
    batch: MartBatch,
    bytes: usize,
    /// Offset after the last record taken.
    next: Option<u64>,
    since: Option<Instant>,
}

impl<W: MartWriter, R: RefusedSink> MartSink<W, R> {
    /// Runs until `shutdown`: tails `source` (the mart log) from the cursor
    /// and writes to the store. On shutdown the pending batch is written
    /// (when the store answers) and the cursor stored.
    ///
    /// # Errors
    /// The cursor or the log fails for good, or shutdown came while the
    /// store was failing (nothing is lost: the cursor did not move).
    pub async fn run<S: EventSource>(
        &self,
        mut source: S,
        shutdown: CancellationToken,
    ) -> Result<(), SinkError> {
        let cursor = self.cursor.clone();
        let start = blocking(move || cursor.load()).await?.unwrap_or(0);
        let mut start = start;
        if let Err(e) = source
            .seek(&[SourcePosition {
                partition: 0,
                offset: start,
            }])
            .await
        {
            // A cursor past the log (the log was replaced): read the whole
            // log; positions drop what the store already has.
            warn!(start, error = %e, "mart cursor outside the mart log; reading it from its start");
            source
                .seek(&[])
                .await
                .map_err(|e| SinkError::Source(e.to_string()))?;
            start = 0;
        }
        let mut seen = self
            .retry("reading stored positions", &shutdown, || {
                self.writer.stored_positions()
            })
            .await?;
        info!(
            start,
            backend = self.writer.backend(),
            tables = seen.len(),
            "mart sink started"
        );
        let mut committed = start;
        self.metrics
            .cursor
            .store(start, std::sync::atomic::Ordering::Release);
        self.metrics.refresh_lag((self.log_end)());
        let mut pending = Pending::default();
        let mut records: Vec<SourceRecord> = Vec::with_capacity(READ_RECORDS);
        loop {
            records.clear();
            let wait = pending.since.map_or(Duration::from_secs(3600), |t| {
                self.config.max_wait.saturating_sub(t.elapsed())
            });
            let stop = shutdown.clone();
            let read = source.next_batch(READ_RECORDS, &mut records, async move {
                tokio::select! {
                    () = stop.cancelled() => {}
                    () = tokio::time::sleep(wait) => {}
                }
            });
            if let Err(e) = read.await {
                if shutdown.is_cancelled() {
                    break;
                }
                warn!(error = %e, "mart log read failed; retrying");
                tokio::time::sleep(BACKOFF_START).await;
                continue;
            }
            for record in &records {
                let next = record.position.offset + 1;
                let mut batch = match MartBatch::decode(&record.payload) {
                    Ok(b) => b,
                    Err(e) => {
                        // Written by this program's runtime: a bad record is
                        // a bug or damage; say so loudly and go on.
                        error!(offset = record.position.offset, error = %e, "undecodable mart-log record skipped");
                        self.metrics.bad_records.inc();
                        pending.next = Some(next);
                        continue;
                    }
                };
                let erasures = std::mem::take(&mut batch.erasures);
                batch.retain_after(&mut seen);
                pending.bytes += record.payload.len();
                pending.batch.append(batch);
                pending.next = Some(next);
                pending.since.get_or_insert_with(Instant::now);
                if !erasures.is_empty() {
                    self.flush(&mut pending, &mut seen, &shutdown).await?;
                    for erasure in &erasures {
                        self.retry("erasing a member", &shutdown, || self.writer.erase(erasure))
                            .await?;
                        self.metrics.erasures.inc();
                        info!(
                            event_id = %erasure.event_id,
                            ids = erasure.member_ids.len(),
                            "member erased from the mart"
                        );
                    }
                    self.commit(&mut source, &mut committed, next).await?;
                } else if pending.batch.rows() >= self.config.max_rows
                    || pending.bytes >= self.config.max_bytes
                {
                    self.flush(&mut pending, &mut seen, &shutdown).await?;
                    self.commit(&mut source, &mut committed, next).await?;
                }
            }
            let due = pending
                .since
                .is_some_and(|t| t.elapsed() >= self.config.max_wait);
            if due || shutdown.is_cancelled() {
                let next = pending.next;
                self.flush(&mut pending, &mut seen, &shutdown).await?;
                if let Some(next) = next {
                    self.commit(&mut source, &mut committed, next).await?;
                }
            }
            self.metrics.refresh_lag((self.log_end)());
            if shutdown.is_cancelled() {
                break;
            }
        }
        info!(cursor = committed, "mart sink stopped");
        Ok(())
    }

    async fn commit<S: EventSource>(
        &self,
        source: &mut S,
        committed: &mut u64,
        next: u64,
    ) -> Result<(), SinkError> {
        if next <= *committed {
            return Ok(());
        }
        let cursor = self.cursor.clone();
        blocking(move || cursor.store(next)).await?;
        *committed = next;
        self.metrics
            .cursor
            .store(next, std::sync::atomic::Ordering::Release);
        // Lets retention delete segments the sink has consumed.
        if let Err(e) = source
            .commit(&[SourcePosition {
                partition: 0,
                offset: next,
            }])
            .await
        {
            warn!(error = %e, "mart log commit failed");
        }
        Ok(())
    }

    /// Writes the pending rows (acknowledged, or dead-lettered when
    /// refused) and empties the batch.
    async fn flush(
        &self,
        pending: &mut Pending,
        seen: &mut StoredPositions,
        shutdown: &CancellationToken,
    ) -> Result<(), SinkError> {
        let batch = std::mem::take(&mut pending.batch);
        pending.bytes = 0;
        pending.since = None;
        pending.next = None;
        if batch.rows() == 0 {
            return Ok(());
        }
        let started = Instant::now();
        let counts = batch.table_rows();
        let rows = batch.rows();
        let mut backoff = BACKOFF_START;
        let mut batch = batch;
        loop {
            match self.writer.write(&batch).await {
                Ok(()) => break,
                Err(e) if e.retry_hint() == RetryHint::Backoff => {
                    warn!(error = %e, rows = batch.rows(), "mart write failed; retrying");
                    self.metrics.retries.inc();
                    self.sleep(&mut backoff, shutdown, "the mart store").await?;
                    // A write whose answer was lost may have landed.
                    batch = self.without_stored(batch, shutdown).await?;
                    if batch.rows() == 0 {
                        break;
                    }
                }
                Err(e) => {
                    warn!(error = %e, rows = batch.rows(), "mart store refused a batch; isolating the refused rows");
                    let batch = self.without_stored(batch, shutdown).await?;
                    self.isolate(batch, shutdown).await?;
                    break;
                }
            }
        }
        for (table, n) in counts {
            self.metrics
                .rows_written
                .get_or_create(&TableLabels {
                    table: table.name(),
                })
                .inc_by(n as u64);
        }
        self.metrics.batches.inc();
        self.metrics
            .last_write_seconds
            .set(started.elapsed().as_secs_f64());
        debug!(
            rows,
            ms = started.elapsed().as_millis() as u64,
            "mart batch written"
        );
        // `seen` already covers these rows; keep it as is.
        let _ = seen;
        Ok(())
    }

    /// Drops rows the store already holds (asks it again).
    async fn without_stored(
        &self,
        mut batch: MartBatch,
        shutdown: &CancellationToken,
    ) -> Result<MartBatch, SinkError> {
        let mut stored = self
            .retry("reading stored positions", shutdown, || {
                self.writer.stored_positions()
            })
            .await?;
        batch.retain_after(&mut stored);
        Ok(batch)
    }

    /// Writes what the store takes, table by table and by halves, and
    /// dead-letters the rows it refuses one by one.
    async fn isolate(
        &self,
        batch: MartBatch,
        shutdown: &CancellationToken,
    ) -> Result<(), SinkError> {
        let mut stack: Vec<MartBatch> = batch
            .table_rows()
            .into_iter()
            .rev()
            .map(|(t, _)| batch.only(t))
            .collect();
        let mut backoff = BACKOFF_START;
        while let Some(part) = stack.pop() {
            match self.writer.write(&part).await {
                Ok(()) => {
                    backoff = BACKOFF_START;
                }
                Err(e) if e.retry_hint() == RetryHint::Backoff => {
                    self.metrics.retries.inc();
                    self.sleep(&mut backoff, shutdown, "the mart store").await?;
                    let part = self.without_stored(part, shutdown).await?;
                    if part.rows() > 0 {
                        stack.push(part);
                    }
                }
                Err(e) if part.rows() <= 1 => {
                    let message = e.to_string();
                    let rows: Vec<RefusedRow> = part
                        .rows_json()
                        .into_iter()
                        .map(|(table, position, row)| RefusedRow {
                            table,
                            position,
                            row,
                            message: message.clone(),
                        })
                        .collect();
                    warn!(table = ?rows.first().map(|r| r.table.name()), error = %message, "mart row refused; sent to the dead-letter log");
                    self.metrics.refused_rows.inc_by(rows.len() as u64);
                    let mut backoff = BACKOFF_START;
                    loop {
                        match self.refused.send(rows.clone()).await {
                            Ok(()) => break,
                            Err(e) => {
                                warn!(error = %e, "dead-letter log write failed; retrying");
                                self.sleep(&mut backoff, shutdown, "the dead-letter log")
                                    .await?;
                            }
                        }
                    }
                }
                Err(_) => {
                    let (left, right) = part.split_half();
                    stack.push(right);
                    stack.push(left);
                }
            }
        }
        Ok(())
    }

    /// Retries `call` on transient errors with backoff until it succeeds or
    /// shutdown; a refusal is returned at once.
    async fn retry<T, F, Fut>(
        &self,
        what: &str,
        shutdown: &CancellationToken,
        mut call: F,
    ) -> Result<T, SinkError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, MartError>>,
    {
        let mut backoff = BACKOFF_START;
        loop {
            match call().await {
                Ok(v) => return Ok(v),
                Err(e) if e.retry_hint() == RetryHint::Backoff => {
                    warn!(error = %e, what, "mart store failed; retrying");
                    self.metrics.retries.inc();
                    self.sleep(&mut backoff, shutdown, what).await?;
                }
                Err(e) => {
                    // Erasures and position reads must not be skipped:
                    // keep trying, but say it is not transient.
                    error!(error = %e, what, "mart store refused; retrying (this will not pass by itself)");
                    self.metrics.retries.inc();
                    self.sleep(&mut backoff, shutdown, what).await?;
                }
            }
        }
    }

    async fn sleep(
        &self,
        backoff: &mut Duration,
        shutdown: &CancellationToken,
        what: &str,
    ) -> Result<(), SinkError> {
        tokio::select! {
            () = shutdown.cancelled() => return Err(SinkError::Interrupted(what.to_owned())),
            () = tokio::time::sleep(*backoff) => {}
        }
        *backoff = (*backoff * 2).min(BACKOFF_MAX);
        Ok(())
    }
}

/// Runs blocking file work on the blocking pool.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, MartError> + Send + 'static,
) -> Result<T, MartError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| MartError::Unavailable(format!("blocking task: {e}")))?
}

#[cfg(test)]
mod tests;
