//! The mart's error type, with a retry hint.

use storepulse_core::RetryHint;

/// Why a mart operation failed.
#[derive(Debug, thiserror::Error)]
pub enum MartError {
    /// The store is unreachable or overloaded; the same call may succeed later.
    #[error("mart store unavailable: {0}")]
    Unavailable(String),
    /// The store refused the data or the query (schema, types); retrying the
    /// same call will fail the same way.
    #[error("mart store refused the request: {0}")]
    Refused(String),
    /// A request parameter is out of range (a date, a limit).
    #[error("invalid mart query: {0}")]
    InvalidQuery(String),
    /// Reading or writing local files failed.
    #[error("mart i/o: {0}")]
    Io(#[from] std::io::Error),
}

impl MartError {
    /// Whether retrying the same operation can succeed.
    pub fn retry_hint(&self) -> RetryHint {
        match self {
            Self::Unavailable(_) | Self::Io(_) => RetryHint::Backoff,
            Self::Refused(_) | Self::InvalidQuery(_) => RetryHint::Never,
        }
    }
}
