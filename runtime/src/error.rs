//! The runtime's error enum, with a retry hint on each error.

use std::path::PathBuf;

use storepulse_core::RetryHint;

/// Errors of the runtime.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// Reading or writing a checkpoint failed.
    #[error("checkpoint {path}: {source}")]
    CheckpointIo {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A checkpoint file exists but cannot be used.
    #[error("checkpoint {path}: {reason}")]
    CheckpointInvalid { path: PathBuf, reason: String },
    /// The event source failed.
    #[error(transparent)]
    Source(#[from] storepulse_core::Error),
    /// The dead-letter sink failed.
    #[error("dead-letter sink: {0}")]
    DeadLetter(String),
    /// The configuration is invalid (the message names the field).
    #[error("config: {0}")]
    Config(String),
    /// The member log failed.
    #[error("member log: {0}")]
    MemberLog(String),
    /// The mart log failed.
    #[error("mart log: {0}")]
    MartLog(String),
    /// The decision log could not be read or written.
    #[error("decision log {path}: {reason}")]
    DecisionLog { path: PathBuf, reason: String },
    /// The alert outbox (webhooks) failed.
    #[error("alert outbox: {0}")]
    AlertOutbox(String),
    /// Replay input or output failed.
    #[error("replay {path}: {source}")]
    ReplayIo {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl RuntimeError {
    /// Whether retrying may help.
    pub fn retry_hint(&self) -> RetryHint {
        match self {
            RuntimeError::CheckpointIo { .. }
            | RuntimeError::DeadLetter(_)
            | RuntimeError::MemberLog(_)
            | RuntimeError::MartLog(_)
            | RuntimeError::DecisionLog { .. }
            | RuntimeError::AlertOutbox(_) => RetryHint::Backoff,
            RuntimeError::CheckpointInvalid { .. }
            | RuntimeError::ReplayIo { .. }
            | RuntimeError::Config(_) => RetryHint::Never,
            RuntimeError::Source(e) => e.retry_hint(),
        }
    }
}

/// Result with [`RuntimeError`].
pub type Result<T, E = RuntimeError> = std::result::Result<T, E>;
