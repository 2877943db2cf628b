//! The error enum of the core crate.
//!
//! Errors that cross a component boundary say whether retrying can help
//! ([`RetryHint`]), following Arroyo's error domains: a bad store master file
//! is the user's to fix, an I/O error on a log segment may pass.

use std::path::PathBuf;

/// Whether an operation that failed with this error may succeed if retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryHint {
    /// Retrying the same input will fail the same way (bad config, bad data).
    Never,
    /// A transient condition (I/O, a service away); retry with backoff.
    Backoff,
}

/// Errors of the core crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The store master file could not be read.
    #[error("store master data {path}: {source}")]
    StoreMasterIo {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The store master file is readable but wrong.
    #[error("store master data {path}, line {line}: {reason}")]
    StoreMasterInvalid {
        path: PathBuf,
        line: u64,
        reason: String,
    },
    /// An event source failed to read or commit.
    #[error("event source: {reason}")]
    Source { reason: String, retry: RetryHint },
}

impl Error {
    /// Whether retrying may help.
    pub fn retry_hint(&self) -> RetryHint {
        match self {
            Error::StoreMasterIo { .. } | Error::StoreMasterInvalid { .. } => RetryHint::Never,
            Error::Source { retry, .. } => *retry,
        }
    }
}

/// Result with the core [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
