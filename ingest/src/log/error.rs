//! The error enum of the event log ([`LogError`]) and its mapping to the core
//! error that [`EventSource`](storepulse_core::source::EventSource) methods
//! return.

use std::io;
use std::path::PathBuf;

use storepulse_core::RetryHint;

/// Errors of the embedded event log.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// A file or directory of the log could not be read or written.
    #[error("event log {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A segment holds bytes that are not a valid record where a valid record
    /// must be (a torn tail of the last segment is repaired at open instead).
    #[error("event log {path}, byte {position}: corrupt: {reason}")]
    Corrupt {
        path: PathBuf,
        position: u64,
        reason: String,
    },
    /// Too many append requests are waiting for the writer; try again shortly.
    #[error("event log is busy: the append queue is full")]
    Backpressure,
    /// The log is closed (or closing) and takes no more appends.
    #[error("event log is closed")]
    Closed,
    /// An earlier write or fsync failed; the log refuses all further writes
    /// until it is reopened (reopening repairs any torn tail).
    #[error("event log failed and refuses writes until reopened: {reason}")]
    Failed { reason: String },
    /// A payload is bigger than [`MAX_PAYLOAD_BYTES`](super::MAX_PAYLOAD_BYTES).
    #[error("payload of {size} bytes exceeds the limit of {max} bytes")]
    TooLarge { size: usize, max: usize },
    /// A payload is empty (every event is a non-empty JSON object).
    #[error("empty payload")]
    EmptyPayload,
    /// Another `EventLog` (in this or another process) has the directory open.
    #[error("event log {path} is already open elsewhere (lock held)")]
    Locked { path: PathBuf },
    /// A read or seek asked for an offset the log does not hold (deleted by
    /// retention, or not written yet).
    #[error("offset {offset} is outside the log, which holds offsets {start}..{end}")]
    OffsetOutOfRange { offset: u64, start: u64, end: u64 },
    /// The embedded log has a single partition, 0.
    #[error("the embedded event log has only partition 0, got partition {0}")]
    UnknownPartition(u32),
    /// The configuration is invalid.
    #[error("event log config: {0}")]
    Config(String),
    /// A background task of the log panicked or was cancelled (a bug).
    #[error("event log internal error: {0}")]
    Internal(String),
}

impl LogError {
    /// Whether retrying may help: transient conditions (I/O, a full queue, a
    /// log being restarted) say [`RetryHint::Backoff`]; bad input, bad config
    /// and corrupt data say [`RetryHint::Never`].
    pub fn retry_hint(&self) -> RetryHint {
        match self {
            LogError::Io { .. }
            | LogError::Backpressure
            | LogError::Closed
            | LogError::Failed { .. }
            | LogError::Locked { .. }
            | LogError::Internal(_) => RetryHint::Backoff,
            LogError::Corrupt { .. }
            | LogError::TooLarge { .. }
            | LogError::EmptyPayload
            | LogError::OffsetOutOfRange { .. }
            | LogError::UnknownPartition(_)
            | LogError::Config(_) => RetryHint::Never,
        }
    }

    /// A copy for the second and later waiters of a failed write group
    /// (`io::Error` is not `Clone`; kind and message are kept).
    pub(super) fn duplicate(&self) -> LogError {
        match self {
            LogError::Io { path, source } => LogError::Io {
                path: path.clone(),
                source: io::Error::new(source.kind(), source.to_string()),
            },
            other => LogError::Failed {
                reason: other.to_string(),
            },
        }
    }
}

impl From<LogError> for storepulse_core::Error {
    fn from(e: LogError) -> Self {
        storepulse_core::Error::Source {
            retry: e.retry_hint(),
            reason: e.to_string(),
        }
    }
}

/// Builds a closure wrapping an `io::Error` with the path it concerns.
pub(super) fn io_at(path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> LogError {
    let path = path.into();
    move |source| LogError::Io { path, source }
}
