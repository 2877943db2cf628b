//! Where ingest puts accepted events and rejections: the embedded event log,
//! or Kafka (the `storepulse-kafka` crate implements [`EventAppender`]).
//!
//! Either way `append_*` returns only once the records are durable (fsynced
//! by the log, or acknowledged by every in-sync replica), so the HTTP answer
//! never acknowledges something a crash could lose.

use std::future::Future;
use std::pin::Pin;

use crate::log::{EventLog, LogError};

/// Why an append failed; both answer 503 with `Retry-After`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AppendError {
    /// The writer's queue is full: the emitter should slow down.
    #[error("busy")]
    Backpressure,
    /// The log or broker is unavailable (the message says why).
    #[error("{0}")]
    Unavailable(String),
}

/// One accepted event with its partitioning key (`store_id`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyedEvent {
    pub key: String,
    pub payload: Vec<u8>,
}

/// A boxed future of an append (the trait is used as `dyn`).
pub type AppendFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, AppendError>> + Send + 'a>>;

/// A durable destination for ingested events and dead letters.
pub trait EventAppender: Send + Sync {
    /// Appends the events durably. Returns the exclusive end offset of the
    /// log after them when the destination is one ordered log (embedded);
    /// `None` for Kafka, whose partitions have offsets of their own.
    fn append_events(&self, events: Vec<KeyedEvent>) -> AppendFuture<'_, Option<u64>>;

    /// Appends dead letters (JSON records) durably, each with its key.
    fn append_dead_letters(&self, letters: Vec<KeyedEvent>) -> AppendFuture<'_, ()>;

    /// A short name for logs and answers (`event log`, `kafka`).
    fn name(&self) -> &'static str;
}

/// The embedded event log and dead-letter log.
#[derive(Clone)]
pub struct LogAppender {
    pub events: EventLog,
    pub dead_letters: EventLog,
}

fn log_error(e: LogError) -> AppendError {
    match e {
        LogError::Backpressure => AppendError::Backpressure,
        other => AppendError::Unavailable(other.to_string()),
    }
}

impl EventAppender for LogAppender {
    fn append_events(&self, events: Vec<KeyedEvent>) -> AppendFuture<'_, Option<u64>> {
        Box::pin(async move {
            let payloads = events.into_iter().map(|e| e.payload).collect();
            let range = self.events.append(payloads).await.map_err(log_error)?;
            Ok(Some(range.end))
        })
    }

    fn append_dead_letters(&self, letters: Vec<KeyedEvent>) -> AppendFuture<'_, ()> {
        Box::pin(async move {
            let payloads = letters.into_iter().map(|e| e.payload).collect();
            self.dead_letters
                .append(payloads)
                .await
                .map(|_| ())
                .map_err(log_error)
        })
    }

    fn name(&self) -> &'static str {
        "event log"
    }
}
