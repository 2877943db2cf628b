//! The error enum of the sinks crate.
//!
//! Every error says whether retrying can help ([`SinkError::retry_hint`],
//! the core crate's [`RetryHint`], after Arroyo's error domains): a bad
//! config or a malformed notification fails the same way every time, an I/O
//! error or a webhook answering 503 may pass. The webhook sender retries
//! `Backoff` errors forever and skips a notification on a `Never` delivery
//! error (see `webhook/sender.rs`).

use std::path::PathBuf;

pub use storepulse_core::RetryHint;

/// Errors of the sinks crate.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// The sink configuration is invalid (found by `validate()`, before
    /// anything starts).
    #[error("{field}: {reason}")]
    Config {
        /// The offending field, e.g. `webhooks[1].url`.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A webhook's `secret_env` names a variable that is unset or empty.
    #[error("webhook {webhook:?}: environment variable {var} (secret_env) is unset or empty")]
    SecretEnv {
        /// The webhook's name.
        webhook: String,
        /// The variable named by `secret_env`.
        var: String,
    },
    /// An I/O operation on the outbox or a cursor file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Another outbox (in this or another process) holds the directory lock.
    #[error("outbox {path} is locked by another sink")]
    OutboxLocked {
        /// The outbox directory.
        path: PathBuf,
    },
    /// An outbox segment is damaged somewhere other than its torn tail.
    #[error("outbox segment {path} is corrupt at byte {position}: {reason}")]
    OutboxCorrupt {
        /// The segment file.
        path: PathBuf,
        /// Byte position of the bad record.
        position: u64,
        /// What is wrong.
        reason: String,
    },
    /// A webhook cursor file cannot be read as a cursor.
    #[error("cursor {path}: {reason}")]
    CursorInvalid {
        /// The cursor file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A notification was refused at append (empty or long id, body not a
    /// JSON object, body too large).
    #[error("notification {id:?}: {reason}")]
    NotificationInvalid {
        /// The notification id (truncated to 200 bytes).
        id: String,
        /// What is wrong.
        reason: String,
    },
    /// The HTTP client could not be built (TLS backend initialisation).
    #[error("webhook {webhook:?}: HTTP client: {reason}")]
    HttpClient {
        /// The webhook's name.
        webhook: String,
        /// The client builder's error.
        reason: String,
    },
    /// The webhook answered with a status that will not change on retry
    /// (a 4xx other than 408 and 429, or a 3xx).
    #[error("webhook answered {status}")]
    Rejected {
        /// The HTTP status.
        status: u16,
    },
    /// The webhook answered 408, 429 or 5xx.
    #[error("webhook answered {status}")]
    Unavailable {
        /// The HTTP status.
        status: u16,
        /// The server's `Retry-After`, in seconds, when it sent one.
        retry_after_secs: Option<u64>,
    },
    /// The request did not get an answer: refused, reset, DNS, TLS, timeout.
    #[error("webhook unreachable: {reason}")]
    Transport {
        /// The transport error, as text (it never contains the body).
        reason: String,
        /// Whether it was the request timeout.
        timeout: bool,
    },
    /// The mart store (ClickHouse) failed at start: unreachable, or it
    /// refused a statement. The inner error carries the retry hint.
    #[error("clickhouse: {0}")]
    Mart(#[from] storepulse_mart::MartError),
    /// An applied migration's text differs from this binary's: migrations
    /// must not change once applied (add a new one).
    #[error("clickhouse migration {version} ({name}) was applied with checksum {recorded}, this binary has {ours}; applied migrations must not change, add a new one")]
    MigrationChanged {
        /// The migration's number.
        version: u32,
        /// Its file name.
        name: String,
        /// The checksum recorded in `schema_migrations`.
        recorded: String,
        /// The checksum of this binary's text.
        ours: String,
    },
    /// The database records a migration this binary does not know (a newer
    /// StorePulse migrated it).
    #[error("clickhouse database has migration {version} ({name}), unknown to this binary; run a StorePulse that knows it")]
    MigrationUnknown {
        /// The migration's number.
        version: u32,
        /// Its recorded name.
        name: String,
    },
    /// The sender task panicked or was aborted.
    #[error("webhook {webhook:?}: sender task ended abnormally: {reason}")]
    TaskFailed {
        /// The webhook's name.
        webhook: String,
        /// The join error.
        reason: String,
    },
}

impl SinkError {
    /// Whether retrying the same operation may succeed.
    pub fn retry_hint(&self) -> RetryHint {
        match self {
            SinkError::Mart(e) => e.retry_hint(),
            SinkError::Io { .. }
            | SinkError::OutboxLocked { .. }
            | SinkError::Unavailable { .. }
            | SinkError::Transport { .. } => RetryHint::Backoff,
            SinkError::Config { .. }
            | SinkError::SecretEnv { .. }
            | SinkError::OutboxCorrupt { .. }
            | SinkError::CursorInvalid { .. }
            | SinkError::NotificationInvalid { .. }
            | SinkError::HttpClient { .. }
            | SinkError::Rejected { .. }
            | SinkError::TaskFailed { .. }
            | SinkError::MigrationChanged { .. }
            | SinkError::MigrationUnknown { .. } => RetryHint::Never,
        }
    }

    /// Shorthand for `retry_hint() == RetryHint::Backoff`.
    pub fn retryable(&self) -> bool {
        self.retry_hint() == RetryHint::Backoff
    }

    /// A `Config` error for `field`.
    pub(crate) fn config(field: impl Into<String>, reason: impl Into<String>) -> Self {
        SinkError::Config {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// Maps an `io::Error` on `path` to [`SinkError::Io`]: `.map_err(io_at(&p))`.
pub(crate) fn io_at(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> SinkError + '_ {
    move |source| SinkError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Result with [`SinkError`].
pub type Result<T, E = SinkError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivery_errors_carry_the_right_hint() {
        assert!(SinkError::Unavailable {
            status: 503,
            retry_after_secs: None
        }
        .retryable());
        assert!(SinkError::Transport {
            reason: "refused".into(),
            timeout: false
        }
        .retryable());
        assert!(!SinkError::Rejected { status: 400 }.retryable());
        assert!(!SinkError::config("webhooks[0].url", "empty").retryable());
    }
}
