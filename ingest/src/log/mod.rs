//! The embedded event log: a durable, append-only, single-partition log on
//! local disk, the single-machine stand-in for a Kafka topic.
//!
//! The HTTP endpoint appends events with [`EventLog::append`]; processors
//! read them back through [`LogReader`], which implements
//! [`EventSource`](storepulse_core::source::EventSource) with partition 0.
//!
//! # On disk
//! A directory of segment files named by the offset of their first record,
//! 20 digits (`00000000000000000000.log`, ...), plus a `LOCK` file and, for
//! sealed segments, a `.idx` sidecar (record count and sparse index; a cache
//! that open rebuilds when it is missing or stale). A record is
//! `[u32 LE payload length][u32 LE crc32 of payload][payload]`; offsets are
//! record numbers, so a record's offset is its segment's base plus its index
//! in the segment. A new segment starts when the next record would take the
//! active one past `segment_bytes`.
//!
//! # Protocol
//! - Appends go over a bounded queue to one writer thread, which writes every
//!   request waiting at that moment, fsyncs once (group commit) and only then
//!   answers: an `Ok` range is durable. A full queue fails at once with
//!   [`LogError::Backpressure`], it never waits.
//! - After a write or fsync error the log is *failed*: that group gets the
//!   error and every later append gets [`LogError::Failed`] until the log is
//!   reopened. Records of a failed group may or may not survive the reopen
//!   (at-least-once, as with any broker).
//! - Readers see only committed records (the end offset published after each
//!   fsync) and wait on it when caught up.
//! - Open takes an exclusive lock on the directory, then checks every record
//!   of the last segment (length and CRC) and cuts a torn tail; earlier
//!   segments are trusted.
//! - Retention deletes the oldest segments while the log is larger than
//!   `retention_bytes`, but only segments wholly below the last committed
//!   checkpoint, and never the active one.
//!
//! # Limits
//! Payloads of 1 to [`MAX_PAYLOAD_BYTES`] bytes (an empty payload could not be
//! told apart from zeroed blocks after a crash). One process per directory.
//! The last checkpoint is kept in memory only: after a restart nothing is
//! deleted until the runtime commits again. Dropping the last handle stops
//! the writer in the background, holding the lock until it has finished;
//! use [`EventLog::close`] to wait for it.
//!
//! Layout: `config` (settings), `error` ([`LogError`]), `segment` (format,
//! lock, recovery), `writer` (group commit thread), `reader` ([`LogReader`]).

mod config;
mod error;
mod reader;
mod segment;
mod writer;

#[cfg(test)]
mod tests;

use std::fs::{self, File};
use std::io;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::thread::JoinHandle;

use tokio::sync::{oneshot, watch};
use tracing::{info, warn};

pub use config::{LogConfig, DEFAULT_CHANNEL_CAPACITY, DEFAULT_SEGMENT_BYTES, MIN_SEGMENT_BYTES};
pub use error::LogError;
pub use reader::LogReader;
pub use segment::MAX_PAYLOAD_BYTES;

use error::io_at;
use segment::SegmentInfo;
use writer::{Request, Writer};

/// Handle to an open event log. Cheap to clone; all clones share one writer.
#[derive(Clone)]
pub struct EventLog {
    handle: Arc<Handle>,
}

/// What the handles share; dropping it closes the writer's queue.
struct Handle {
    tx: SyncSender<Request>,
    shared: Arc<Shared>,
    closing: AtomicBool,
    thread: Mutex<Option<JoinHandle<()>>>,
}

/// State shared by handles, readers and the writer thread.
pub(crate) struct Shared {
    dir: PathBuf,
    config: LogConfig,
    /// Segments, oldest first; the last one is being written.
    segments: Mutex<Vec<SegmentInfo>>,
    /// Committed end offset, published by the writer after each fsync.
    end_rx: watch::Receiver<u64>,
    /// Offset last passed to `commit`.
    checkpoint: AtomicU64,
    /// Set once a write fails; the log then refuses writes.
    failure: OnceLock<String>,
    /// Holds the directory lock for as long as anything uses the log.
    _lock: File,
}

impl EventLog {
    /// Opens (creating if needed) the log in `dir`, repairing a torn tail.
    ///
    /// Blocking: call it at start-up or from `spawn_blocking`.
    ///
    /// # Errors
    /// [`LogError::Config`] for an invalid config, [`LogError::Locked`] when
    /// the directory is open elsewhere, I/O errors, and
    /// [`LogError::Corrupt`] when a sealed segment is damaged.
    pub fn open(dir: &Path, config: LogConfig) -> Result<Self, LogError> {
        Self::open_inner(dir, config, None)
    }

    /// Like `open`, but the writer thread takes no request until the returned
    /// sender sends (or is dropped).
    #[cfg(test)]
    fn open_gated(dir: &Path, config: LogConfig) -> Result<(Self, SyncSender<()>), LogError> {
        let (gate_tx, gate_rx) = mpsc::sync_channel(1);
        let log = Self::open_inner(dir, config, Some(gate_rx))?;
        Ok((log, gate_tx))
    }

    fn open_inner(
        dir: &Path,
        config: LogConfig,
        gate: Option<Receiver<()>>,
    ) -> Result<Self, LogError> {
        config.validate().map_err(LogError::Config)?;
        fs::create_dir_all(dir).map_err(io_at(dir))?;
        let lock = segment::lock_dir(dir)?;
        let (segments, active_file) = segment::recover(dir, config.fsync)?;
        let Some(active) = segments.last().cloned() else {
            return Err(LogError::Internal(
                "recovery returned no segment".to_owned(),
            ));
        };
        let end = active.base + active.records;
        let (end_tx, end_rx) = watch::channel(end);
        let segment_count = segments.len();
        let shared = Arc::new(Shared {
            dir: dir.to_owned(),
            segments: Mutex::new(segments),
            end_rx,
            checkpoint: AtomicU64::new(0),
            failure: OnceLock::new(),
            _lock: lock,
            config,
        });
        let (tx, rx) = mpsc::sync_channel(shared.config.channel_capacity);
        let writer = Writer::new(Arc::clone(&shared), rx, end_tx, active_file, &active);
        let thread = std::thread::Builder::new()
            .name("storepulse-log-writer".to_owned())
            .spawn(move || writer.run(gate))
            .map_err(io_at(dir))?;
        info!(
            dir = %dir.display(),
            segments = segment_count,
            start_offset = shared.start_offset(),
            end_offset = end,
            "event log opened"
        );
        Ok(Self {
            handle: Arc::new(Handle {
                tx,
                shared,
                closing: AtomicBool::new(false),
                thread: Mutex::new(Some(thread)),
            }),
        })
    }

    /// Appends `payloads` as consecutive records and returns their offsets.
    /// Resolves only once the records are written and fsynced; concurrent
    /// appends share one fsync. Dropping the future does not withdraw records
    /// already queued.
    ///
    /// # Errors
    /// [`LogError::Backpressure`] at once when the queue is full;
    /// [`LogError::TooLarge`] / [`LogError::EmptyPayload`] for a bad payload
    /// (nothing of the request is written); [`LogError::Closed`],
    /// [`LogError::Failed`], or the I/O error of the group.
    pub async fn append(&self, payloads: Vec<Vec<u8>>) -> Result<Range<u64>, LogError> {
        for p in &payloads {
            if p.is_empty() {
                return Err(LogError::EmptyPayload);
            }
            if p.len() > MAX_PAYLOAD_BYTES {
                return Err(LogError::TooLarge {
                    size: p.len(),
                    max: MAX_PAYLOAD_BYTES,
                });
            }
        }
        if self.handle.closing.load(Ordering::Acquire) {
            return Err(LogError::Closed);
        }
        if let Some(reason) = self.handle.shared.failure.get() {
            return Err(LogError::Failed {
                reason: reason.clone(),
            });
        }
        if payloads.is_empty() {
            let end = self.end_offset();
            return Ok(end..end);
        }
        let (reply, answer) = oneshot::channel();
        match self.handle.tx.try_send(Request::Append { payloads, reply }) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => return Err(LogError::Backpressure),
            Err(TrySendError::Disconnected(_)) => return Err(LogError::Closed),
        }
        // A dropped reply means the writer stopped before answering.
        answer.await.map_err(|_| LogError::Closed)?
    }

    /// A reader positioned at the oldest record still held.
    pub fn reader(&self) -> LogReader {
        LogReader::new(Arc::clone(&self.handle.shared))
    }

    /// The committed end: one past the last durable record.
    pub fn end_offset(&self) -> u64 {
        self.handle.shared.end_offset()
    }

    /// The oldest offset still held (0 until retention deletes a segment).
    pub fn start_offset(&self) -> u64 {
        self.handle.shared.start_offset()
    }

    /// Total bytes of all segment files.
    pub fn size_bytes(&self) -> u64 {
        self.handle.shared.segments().iter().map(|s| s.bytes).sum()
    }

    /// The log directory.
    pub fn dir(&self) -> &Path {
        &self.handle.shared.dir
    }

    /// Up to `max` committed records from offset `from`, for tools. Blocking.
    /// Empty when `from` is at or past the committed end.
    ///
    /// # Errors
    /// [`LogError::OffsetOutOfRange`] when `from` was deleted by retention;
    /// I/O or corruption errors.
    pub fn read_range(&self, from: u64, max: usize) -> Result<Vec<(u64, Vec<u8>)>, LogError> {
        let shared = &self.handle.shared;
        let end = shared.end_offset();
        if from >= end || max == 0 {
            return Ok(Vec::new());
        }
        shared.check_readable(from)?;
        let n = usize::try_from(end - from).map_or(max, |avail| avail.min(max));
        let mut out = Vec::with_capacity(n);
        reader::read_committed(shared, None, from, n, &mut |offset, payload| {
            out.push((offset, payload));
        })?;
        Ok(out)
    }

    /// Stops taking appends, lets the writer finish every request already
    /// queued, and waits for it to exit. Other clones get
    /// [`LogError::Closed`] afterwards. The directory lock is released once
    /// the last clone and reader are dropped too.
    ///
    /// # Errors
    /// [`LogError::Internal`] if the writer thread panicked.
    pub async fn close(self) -> Result<(), LogError> {
        self.handle.closing.store(true, Ordering::Release);
        let thread = self
            .handle
            .thread
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let tx = self.handle.tx.clone();
        drop(self);
        let joined = tokio::task::spawn_blocking(move || {
            // Blocks while the queue is full; fails if the writer is gone.
            let _ = tx.send(Request::Shutdown);
            drop(tx);
            thread.map(JoinHandle::join)
        })
        .await
        .map_err(|e| LogError::Internal(format!("close task: {e}")))?;
        match joined {
            Some(Err(_)) => Err(LogError::Internal("writer thread panicked".to_owned())),
            _ => Ok(()),
        }
    }
}

impl std::fmt::Debug for EventLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventLog")
            .field("dir", &self.handle.shared.dir)
            .field("end_offset", &self.end_offset())
            .finish_non_exhaustive()
    }
}

impl Shared {
    fn segments(&self) -> MutexGuard<'_, Vec<SegmentInfo>> {
        // A panic while holding the lock leaves plain data behind; keep going.
        self.segments.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn start_offset(&self) -> u64 {
        self.segments().first().map_or(0, |s| s.base)
    }

    fn end_offset(&self) -> u64 {
        *self.end_rx.borrow()
    }

    /// Errors unless `offset` is between the oldest held offset and the
    /// committed end, inclusive.
    fn check_readable(&self, offset: u64) -> Result<(), LogError> {
        let (start, end) = (self.start_offset(), self.end_offset());
        if offset < start || offset > end {
            return Err(LogError::OffsetOutOfRange { offset, start, end });
        }
        Ok(())
    }

    /// The segment holding `offset`: (base, byte position of the nearest
    /// indexed record at or before it, records to skip from there).
    fn locate(&self, offset: u64) -> Result<(u64, u64, u64), LogError> {
        let segments = self.segments();
        let i = segments.partition_point(|s| s.base <= offset);
        let Some(s) = i.checked_sub(1).and_then(|i| segments.get(i)) else {
            let start = segments.first().map_or(0, |s| s.base);
            drop(segments);
            return Err(LogError::OffsetOutOfRange {
                offset,
                start,
                end: self.end_offset(),
            });
        };
        let rel = offset - s.base;
        let slot = usize::try_from(rel / segment::INDEX_STRIDE)
            .unwrap_or(usize::MAX)
            .min(s.index.len().saturating_sub(1));
        let pos = s.index.get(slot).copied().unwrap_or(0);
        Ok((s.base, pos, rel - slot as u64 * segment::INDEX_STRIDE))
    }

    /// Offset just past the segment starting at `base` (the next segment's
    /// base), or `u64::MAX` for the active segment.
    fn segment_end(&self, base: u64) -> u64 {
        let segments = self.segments();
        let i = segments.partition_point(|s| s.base <= base);
        segments.get(i).map_or(u64::MAX, |s| s.base)
    }

    fn set_checkpoint(&self, offset: u64) {
        self.checkpoint.store(offset, Ordering::Release);
    }

    /// Deletes the oldest segments while the log is over `retention_bytes`
    /// and the segment is wholly below the checkpoint. Blocking.
    fn apply_retention(&self) {
        let Some(limit) = self.config.retention_bytes else {
            return;
        };
        let checkpoint = self.checkpoint.load(Ordering::Acquire);
        let mut doomed = Vec::new();
        {
            let mut segments = self.segments();
            let mut total: u64 = segments.iter().map(|s| s.bytes).sum();
            // segments[1].base is one past segments[0]'s last record.
            while total > limit && segments.len() > 1 && segments[1].base <= checkpoint {
                let s = segments.remove(0);
                total -= s.bytes;
                doomed.push((s.base, s.bytes));
            }
        }
        for (base, bytes) in doomed {
            let path = segment::segment_path(&self.dir, base);
            match fs::remove_file(&path) {
                Ok(()) => info!(path = %path.display(), base, bytes, "retention deleted segment"),
                Err(e) => {
                    warn!(path = %path.display(), error = %e, "retention could not delete segment")
                }
            }
            match fs::remove_file(segment::sidecar_path(&self.dir, base)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => warn!(base, error = %e, "retention could not delete segment index"),
            }
        }
    }
}
