//! The fraud rules on Kafka: the compacted `<prefix>.fraud-rules` topic
//! (key `rules`, the whole rule set as JSON), which every stage of
//! `process` and every `serve` follows (Flink's broadcast-rules pattern).
//!
//! `serve` publishes the rules it installs (`PUT`/`DELETE /v1/rules`, or a
//! change of its rules file); the newest record is in force everywhere. A
//! process starts with the topic's newest rules, or with its rules file
//! when the topic is still empty. So the rules file needs no shared storage:
//! it is where a `serve` keeps the rules, and the topic is how they reach
//! everyone.
//!
//! Limits: a rule set is one record (at most 64 rules, far below the
//! broker's message size); records the stores of this deployment cannot
//! compile (a rule naming a store that is gone) are refused with a warning
//! and the rules in force stay.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError as RdKafkaError;
use rdkafka::message::Message;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};
use storepulse_core::StoreMaster;
use storepulse_processors::fraud::{RuleSet, RuleSpec};
use tracing::warn;

use crate::config::KafkaConfig;
use crate::error::{KafkaError, Result};

/// The key of every record of `<p>.fraud-rules`.
pub const RULES_KEY: &str = "rules";

/// A record of `<p>.fraud-rules`: the whole rule set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RulesRecord {
    pub rules: Vec<RuleSpec>,
}

impl RulesRecord {
    /// The rules of a record, compiled against `stores`.
    ///
    /// # Errors
    /// Not a rules record, or rules that do not compile here.
    pub fn parse(payload: &[u8], stores: &StoreMaster) -> std::result::Result<RuleSet, String> {
        let record: RulesRecord = serde_json::from_slice(payload).map_err(|e| e.to_string())?;
        RuleSet::compile(&record.rules, stores)
    }
}

/// Follows `<p>.fraud-rules`.
pub struct RulesFeed {
    consumer: BaseConsumer<crate::client::ReadToEndContext>,
    topic: String,
}

impl RulesFeed {
    /// Assigns every partition of `topic` from the beginning and reads to
    /// the end (at most `timeout`); returns the feed and the newest rules
    /// found, if any.
    ///
    /// # Errors
    /// librdkafka refuses the configuration, or the topic's metadata cannot
    /// be fetched.
    pub fn open(
        config: &KafkaConfig,
        topic: &str,
        stores: &StoreMaster,
        timeout: Duration,
    ) -> Result<(Self, Option<RuleSet>)> {
        let group = format!("storepulse-rules-{}", std::process::id());
        let mut client = crate::client::consumer(config, "storepulse-rules", &group);
        // The end is the end-of-partition signal, not the listed high
        // watermark (Tansu 0.6 lists less than the true end).
        client.set("enable.partition.eof", "true");
        // Rules change rarely and are polled every 0.5 s: no need for the
        // processors' 10 ms fetches, which Tansu holds open for their whole
        // wait (three such idle feeds per `process` cost the broker CPU
        // that the data topics need).
        client.set("fetch.wait.max.ms", "250");
        let consumer: BaseConsumer<crate::client::ReadToEndContext> = client
            .create_with_context(crate::client::ReadToEndContext("rules consumer"))
            .map_err(KafkaError::client("rules consumer"))?;
        let n = crate::topics::partition_count(config, topic)?;
        let mut tpl = TopicPartitionList::new();
        for p in 0..n as i32 {
            tpl.add_partition_offset(topic, p, Offset::Beginning)
                .map_err(KafkaError::client("assign"))?;
        }
        consumer
            .assign(&tpl)
            .map_err(KafkaError::client("assign"))?;
        let feed = Self {
            consumer,
            topic: topic.to_owned(),
        };
        let mut at_end: BTreeSet<i32> = BTreeSet::new();
        let mut newest = None;
        let deadline = Instant::now() + timeout;
        while at_end.len() < n as usize && Instant::now() < deadline {
            match feed.consumer.poll(Duration::from_millis(100)) {
                Some(Ok(m)) => {
                    at_end.remove(&m.partition());
                    if let Some(rules) = feed.read(m.payload(), stores) {
                        newest = Some(rules);
                    }
                }
                Some(Err(RdKafkaError::PartitionEOF(p))) => {
                    at_end.insert(p);
                }
                Some(Err(_)) | None => {}
            }
        }
        if at_end.len() < n as usize {
            warn!(topic = %feed.topic, "fraud rules topic not read to its end at start; following it");
        }
        Ok((feed, newest))
    }

    /// The newest rules published since the last call (non-blocking).
    pub fn poll(&mut self, stores: &StoreMaster) -> Option<RuleSet> {
        let mut newest = None;
        for _ in 0..100 {
            match self.consumer.poll(Duration::ZERO) {
                Some(Ok(m)) => {
                    if let Some(rules) = self.read(m.payload(), stores) {
                        newest = Some(rules);
                    }
                }
                Some(Err(_)) => {}
                None => break,
            }
        }
        newest
    }

    fn read(&self, payload: Option<&[u8]>, stores: &StoreMaster) -> Option<RuleSet> {
        let payload = payload?;
        match RulesRecord::parse(payload, stores) {
            Ok(rules) => Some(rules),
            Err(reason) => {
                warn!(topic = %self.topic, %reason, "fraud rules record refused; the rules in force stay");
                None
            }
        }
    }
}
