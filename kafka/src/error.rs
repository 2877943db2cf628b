//! This crate's error enum, with a retry hint on each error.

use storepulse_core::RetryHint;

/// Errors of the Kafka connectors.
#[derive(Debug, thiserror::Error)]
pub enum KafkaError {
    /// The `[kafka]` configuration is wrong (the message names the key).
    #[error("kafka config: {0}")]
    Config(String),
    /// librdkafka refused or failed an operation.
    #[error("kafka {operation}: {source}")]
    Client {
        operation: &'static str,
        #[source]
        source: rdkafka::error::KafkaError,
    },
    /// A topic is missing, or its shape (partitions) is not what the
    /// pipeline needs.
    #[error("kafka topic {topic}: {reason}")]
    Topic { topic: String, reason: String },
    /// A partition's saved state cannot be used with the topic as it is now.
    #[error("state of {topic}[{partition}]: {reason}")]
    State {
        topic: String,
        partition: i32,
        reason: String,
    },
    /// A checkpoint could not be read or written.
    #[error(transparent)]
    Checkpoint(#[from] storepulse_runtime::RuntimeError),
    /// An output was refused for good by the broker; the processors restart
    /// from their checkpoints and send it again.
    #[error("kafka output lost: {0}")]
    OutputLost(String),
    /// The processors left the group to join it again (see `process`).
    #[error("kafka: rejoining the consumer group to get orphaned partitions reassigned")]
    Rejoin,
    /// The broker did not acknowledge in time (it may be down).
    #[error("kafka: broker did not acknowledge within {0} ms")]
    Timeout(u64),
    /// The webhook forwarder's checkpoint (`crate::notify`) cannot be read
    /// or written.
    #[error("webhook forward checkpoint {path}: {reason}")]
    NoticeCheckpoint {
        path: std::path::PathBuf,
        reason: String,
    },
    /// The webhook outbox refused a notice (disk full, a write it could not
    /// roll back): serve stops; at its restart the outbox is reopened and
    /// the forwarder resumes from its checkpoint.
    #[error("webhook outbox: {0}")]
    Outbox(String),
}

impl KafkaError {
    /// Whether retrying may help.
    pub fn retry_hint(&self) -> RetryHint {
        match self {
            KafkaError::Config(_)
            | KafkaError::Topic { .. }
            | KafkaError::State { .. }
            | KafkaError::NoticeCheckpoint { .. } => RetryHint::Never,
            KafkaError::Client { .. }
            | KafkaError::Timeout(_)
            | KafkaError::OutputLost(_)
            | KafkaError::Rejoin
            | KafkaError::Outbox(_) => RetryHint::Backoff,
            KafkaError::Checkpoint(e) => e.retry_hint(),
        }
    }

    pub(crate) fn client(
        operation: &'static str,
    ) -> impl FnOnce(rdkafka::error::KafkaError) -> Self {
        move |source| KafkaError::Client { operation, source }
    }
}

/// Result with [`KafkaError`].
pub type Result<T, E = KafkaError> = std::result::Result<T, E>;
