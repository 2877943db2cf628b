//! The error enum of the simulate crate.
//!
//! Everything here stops a run: bad options (the user's to fix, never worth
//! retrying), an ingest endpoint that refuses us or stays away after the
//! retry budget is spent, and a Kafka cluster that cannot be set up or does
//! not acknowledge. Transient HTTP trouble (503, connection resets) is
//! retried inside the sender, and transient broker trouble inside
//! librdkafka (until the message timeout); neither surfaces as an error.

use std::path::PathBuf;

/// Why a simulation could not start or had to stop.
#[derive(Debug, thiserror::Error)]
pub enum SimulateError {
    /// An option is out of range or contradicts another one.
    #[error("invalid option --{option}: {reason}")]
    InvalidOption {
        option: &'static str,
        reason: String,
    },
    /// The store master could not be loaded.
    #[error(transparent)]
    Stores(#[from] storepulse_core::Error),
    /// The store master has nothing the generator can sell from.
    #[error("store master: {reason}")]
    UnusableStores { reason: String },
    /// An output file could not be opened or written.
    #[error("{path}: {source}")]
    Output {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The ingest endpoint refused the request for good (bad key, batch too large ...).
    #[error("ingest endpoint {url} answered {status}: {detail}")]
    Refused {
        url: String,
        status: u16,
        detail: String,
    },
    /// The ingest endpoint stayed unreachable or failing after every retry.
    #[error("ingest endpoint {url} still failing after {attempts} attempts: {last_error}")]
    RetriesExhausted {
        url: String,
        attempts: u32,
        last_error: String,
    },
    /// The ingest endpoint answered 2xx with a body we cannot read.
    #[error("ingest endpoint {url} answered with an unreadable body: {detail}")]
    BadResponse { url: String, detail: String },
    /// The HTTP client could not be built.
    #[error("HTTP client: {0}")]
    Client(String),
    /// The Kafka cluster could not be used: topics not created or not
    /// found, brokers unreachable, producer settings refused.
    #[error("kafka brokers {brokers}")]
    Kafka {
        brokers: String,
        #[source]
        source: storepulse_kafka::KafkaError,
    },
    /// The broker did not acknowledge an event: librdkafka retried until
    /// the message timeout, or the producer failed for good.
    #[error("kafka topic {topic}: event not acknowledged: {detail}")]
    Delivery { topic: String, detail: String },
}

impl SimulateError {
    pub(crate) fn option(option: &'static str, reason: impl Into<String>) -> Self {
        Self::InvalidOption {
            option,
            reason: reason.into(),
        }
    }
}
