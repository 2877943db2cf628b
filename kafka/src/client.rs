//! librdkafka settings shared by every StorePulse client.
//!
//! Producers are idempotent with `acks=all` (no duplicates or reordering
//! from the producer's own retries) and pick partitions with Kafka's murmur2
//! (see [`crate::partitioner`]). Consumers never auto-commit: offsets are
//! committed after the state that reflects them is durable.

use rdkafka::client::ClientContext;
use rdkafka::consumer::ConsumerContext;
use rdkafka::error::KafkaError as RdKafkaError;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::ClientConfig;

use crate::config::KafkaConfig;

fn base(config: &KafkaConfig, client_id: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &config.brokers)
        .set("client.id", client_id)
        // Reconnect quickly after a broker restart, without hammering it.
        .set("reconnect.backoff.ms", "100")
        .set("reconnect.backoff.max.ms", "2000");
    c
}

fn overrides(mut c: ClientConfig, config: &KafkaConfig) -> ClientConfig {
    for (key, value) in &config.client {
        c.set(key, value);
    }
    c
}

/// An idempotent producer's settings. `message_timeout_ms` 0 retries
/// forever (the processors' outputs); ingest uses its produce timeout.
pub fn producer(config: &KafkaConfig, client_id: &str, message_timeout_ms: u64) -> ClientConfig {
    let mut c = base(config, client_id);
    c.set("enable.idempotence", config.idempotence.to_string())
        .set("max.in.flight.requests.per.connection", "5")
        .set("acks", "all")
        .set("compression.type", &config.compression)
        .set("partitioner", "murmur2_random")
        .set("linger.ms", "5")
        .set("batch.num.messages", "10000")
        .set("queue.buffering.max.messages", "200000")
        .set("message.timeout.ms", message_timeout_ms.to_string());
    overrides(c, config)
}

/// A consumer's settings (manual commits; every position is set
/// explicitly, and a position outside the partition is an error, never a
/// silent jump: `auto.offset.reset = error`).
pub fn consumer(config: &KafkaConfig, client_id: &str, group_id: &str) -> ClientConfig {
    let mut c = base(config, client_id);
    c.set("group.id", group_id)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "error")
        .set("session.timeout.ms", config.session_timeout_ms.to_string())
        .set(
            "heartbeat.interval.ms",
            (config.session_timeout_ms / 4).max(250).to_string(),
        )
        // Eager rebalancing: a partition is revoked everywhere before it is
        // assigned anywhere, so its state is never owned twice at once.
        .set("partition.assignment.strategy", "range,roundrobin")
        // Tansu 0.6 holds a fetch for its whole max wait even when records
        // arrive meanwhile (measured: p50 event-to-visible 219 ms at 50 ms,
        // 97 ms at 10 ms); Apache Kafka answers as soon as data is there,
        // where 10 ms only means more idle fetches. Raise it through
        // `kafka.client` there if idle fetches matter.
        .set("fetch.wait.max.ms", "10")
        .set("isolation.level", "read_committed");
    overrides(c, config)
}

/// The context of a consumer that reads partitions to their end
/// (`enable.partition.eof`): librdkafka reports each end reached as a
/// global error, which its default context logs at ERROR on every start;
/// here it is expected and not logged. Other errors are warnings, named by
/// the consumer's role.
pub struct ReadToEndContext(pub &'static str);

impl ClientContext for ReadToEndContext {
    fn error(&self, error: RdKafkaError, reason: &str) {
        if !is_partition_end(&error) {
            tracing::warn!(consumer = self.0, error = %error, reason, "kafka client error");
        }
    }
}

impl ConsumerContext for ReadToEndContext {}

/// Whether an error only says that a partition's end was reached
/// (librdkafka reports it as a global error).
fn is_partition_end(error: &RdKafkaError) -> bool {
    matches!(
        error,
        RdKafkaError::PartitionEOF(_) | RdKafkaError::Global(RDKafkaErrorCode::PartitionEOF)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_partition_ends_are_expected() {
        assert!(is_partition_end(&RdKafkaError::Global(
            RDKafkaErrorCode::PartitionEOF
        )));
        assert!(is_partition_end(&RdKafkaError::PartitionEOF(3)));
        assert!(!is_partition_end(&RdKafkaError::Global(
            RDKafkaErrorCode::BrokerTransportFailure
        )));
    }
}
