//! StorePulse on Kafka: the connectors that let the same processors run on
//! a Kafka cluster instead of the embedded event log.
//!
//! Layout:
//! - [`config`]: the `[kafka]` section (brokers, topic prefix, group...).
//! - [`topics`]: topic names and their creation (partitions, compaction).
//! - [`partitioner`]: Kafka's murmur2 partitioner, shared by every producer.
//! - [`client`]: librdkafka settings shared by producers and consumers.
//! - [`producer`]: ingest's producer (the HTTP answer waits for `acks=all`).
//! - [`records`]: the JSON records StorePulse writes (stock, alerts, dead letters).
//! - [`process`]: the partitioned processing loop of `storepulse process`.
//! - [`lag`]: its consumer lag, from librdkafka's statistics.
//! - [`materialize`]: the read model of `storepulse serve` (stock, alerts
//!   and dead letters from their topics).
//! - [`rules`]: the fraud rules topic every process follows.
//! - [`mart`]: the stages' mart rows on `<p>.mart`, and that topic as the
//!   mart sink's source (the designated serve).
//! - [`notify`]: the fraud records forwarded to the webhook outbox (the
//!   serve that has webhooks configured).
//! - [`dump`]: reading a whole topic, for `replay --from-topic`.
//! - [`error`]: this crate's error enum.

pub mod client;
pub mod config;
pub mod dump;
pub mod error;
pub mod lag;
pub mod mart;
pub mod materialize;
pub mod notify;
pub mod orphans;
pub mod partitioner;
pub mod process;
pub mod producer;
pub mod records;
pub mod rules;
pub mod topics;

pub use config::KafkaConfig;
pub use error::{KafkaError, Result};
pub use topics::Topics;
