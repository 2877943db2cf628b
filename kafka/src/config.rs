//! `[kafka]` section of `storepulse.toml`.
//!
//! Setting `brokers` switches StorePulse from the embedded event log to
//! Kafka; everything else has a default that suits a small cluster.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Default partitions of the topics StorePulse creates: the most processor
/// instances a group can use. Fixed once created (see [`KafkaConfig::partitions`]).
pub const DEFAULT_PARTITIONS: i32 = 12;
/// Default time the HTTP ingest waits for the broker's acknowledgement
/// before answering 503.
pub const DEFAULT_PRODUCE_TIMEOUT_MS: u64 = 10_000;
/// Default consumer-group session timeout: how long a dead processor holds
/// its partitions before the group hands them to a survivor.
pub const DEFAULT_SESSION_TIMEOUT_MS: u64 = 10_000;
/// Default of [`KafkaConfig::member_snapshot_interval_ms`].
pub const DEFAULT_MEMBER_SNAPSHOT_INTERVAL_MS: u64 = 500;

/// `[kafka]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaConfig {
    /// `host:port` list of bootstrap brokers. Empty (the default): embedded
    /// mode, no Kafka.
    pub brokers: String,
    /// Topic names are `<prefix>.events`, `<prefix>.dlq`, `<prefix>.stock`,
    /// `<prefix>.alerts`, `<prefix>.events.by-member`. Default `storepulse`.
    pub topic_prefix: String,
    /// Create missing topics at start (partitions, replication, compaction
    /// of the stock topic). Default true; turn off where topics are managed
    /// by the platform team.
    pub create_topics: bool,
    /// Partitions of the topics StorePulse creates. Default 12. A store's
    /// state lives in the partition its `store_id` hashes to, so the count
    /// of the events topic must not change once events flowed (moving to
    /// more partitions is a `replay --from-topic` into a new topic).
    pub partitions: i32,
    /// Replication factor of created topics. Default 1 (set 3 in production).
    pub replication_factor: i32,
    /// Consumer group of the processors. Default `storepulse-processors`.
    pub group_id: String,
    /// Producer compression: `none`, `gzip`, `snappy`, `lz4`, `zstd`.
    /// Default `lz4`.
    pub compression: String,
    /// How long ingest waits for `acks=all` before answering 503 with
    /// `Retry-After`. Default 10000.
    pub produce_timeout_ms: u64,
    /// Consumer-group session timeout. Default 10000.
    pub session_timeout_ms: u64,
    /// Idempotent producers (no duplicates or reordering from the
    /// producers' own retries). Default true. Turn it off only for a broker
    /// whose support is broken: Tansu 0.6 with sqlite storage panics when a
    /// producer id from before a broker restart comes back. StorePulse's
    /// guarantees do not rest on it: the processors drop duplicate events
    /// by `event_id` and do not need arrival order within the allowed
    /// lateness, and the stock read model keeps the newest record by
    /// `source`.
    pub idempotence: bool,
    /// How often a member partition sends its changed persons to
    /// `<p>.members`, in milliseconds. Default 500. A person changed several
    /// times in between is sent once, with its latest state (as Kafka
    /// Streams' record cache does for a table): each record is the whole
    /// person, and a member card used for many sales (a store's house card)
    /// would otherwise be re-sent whole with every applied batch. Every
    /// checkpoint and every partition handover sends what is pending first,
    /// so nothing a checkpoint covers is left unsent. 0 sends after every
    /// applied batch.
    pub member_snapshot_interval_ms: u64,
    /// Where processors keep each partition's state snapshots. Default
    /// `<storage.data_dir>/kafka-state`. With instances on several machines
    /// this must be storage they all reach (an NFS or object-store mount):
    /// whoever takes over a partition restores its snapshot from here.
    pub state_dir: Option<PathBuf>,
    /// Extra librdkafka properties for every client (security, tuning), e.g.
    /// `"security.protocol" = "SASL_SSL"`. They override StorePulse's own.
    pub client: BTreeMap<String, String>,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        Self {
            brokers: String::new(),
            topic_prefix: "storepulse".into(),
            create_topics: true,
            partitions: DEFAULT_PARTITIONS,
            replication_factor: 1,
            group_id: "storepulse-processors".into(),
            compression: "lz4".into(),
            produce_timeout_ms: DEFAULT_PRODUCE_TIMEOUT_MS,
            session_timeout_ms: DEFAULT_SESSION_TIMEOUT_MS,
            idempotence: true,
            member_snapshot_interval_ms: DEFAULT_MEMBER_SNAPSHOT_INTERVAL_MS,
            state_dir: None,
            client: BTreeMap::new(),
        }
    }
}

impl KafkaConfig {
    /// Whether Kafka mode is on.
    pub fn enabled(&self) -> bool {
        !self.brokers.trim().is_empty()
    }

    /// Checks the values; the error names the field.
    ///
    /// # Errors
    /// A message `kafka.<field>: <rule>`.
    pub fn validate(&self) -> Result<(), String> {
        if !self.enabled() {
            return Ok(());
        }
        if self.topic_prefix.is_empty()
            || !self
                .topic_prefix
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        {
            return Err("kafka.topic_prefix: must be non-empty [a-zA-Z0-9._-]".into());
        }
        if !(1..=10_000).contains(&self.partitions) {
            return Err("kafka.partitions: must be 1..=10000".into());
        }
        if self.replication_factor < 1 {
            return Err("kafka.replication_factor: must be >= 1".into());
        }
        if self.group_id.is_empty() {
            return Err("kafka.group_id: must not be empty".into());
        }
        if !matches!(
            self.compression.as_str(),
            "none" | "gzip" | "snappy" | "lz4" | "zstd"
        ) {
            return Err("kafka.compression: must be none, gzip, snappy, lz4 or zstd".into());
        }
        if self.produce_timeout_ms < 100 {
            return Err("kafka.produce_timeout_ms: must be >= 100".into());
        }
        if !(1_000..=300_000).contains(&self.session_timeout_ms) {
            return Err("kafka.session_timeout_ms: must be 1000..=300000".into());
        }
        if self.member_snapshot_interval_ms > 60_000 {
            return Err("kafka.member_snapshot_interval_ms: must be 0..=60000".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enabled() -> KafkaConfig {
        KafkaConfig {
            brokers: "127.0.0.1:9092".into(),
            ..KafkaConfig::default()
        }
    }

    #[test]
    fn member_snapshot_interval_defaults_to_half_a_second_and_is_bounded() {
        let config = enabled();
        assert_eq!(config.member_snapshot_interval_ms, 500);
        assert_eq!(config.validate(), Ok(()));
        let every_batch = KafkaConfig {
            member_snapshot_interval_ms: 0,
            ..enabled()
        };
        assert_eq!(every_batch.validate(), Ok(()));
        let too_long = KafkaConfig {
            member_snapshot_interval_ms: 60_001,
            ..enabled()
        };
        let error = too_long.validate().unwrap_err();
        assert!(
            error.starts_with("kafka.member_snapshot_interval_ms"),
            "{error}"
        );
    }

    #[test]
    fn member_snapshot_interval_reads_from_toml() {
        let config: KafkaConfig =
            toml::from_str("brokers = \"b:9092\"\nmember_snapshot_interval_ms = 0\n").unwrap();
        assert_eq!(config.member_snapshot_interval_ms, 0);
    }
}
