//! The topics of a StorePulse deployment and their creation.
//!
//! | topic | key | value | cleanup |
//! |---|---|---|---|
//! | `<p>.events` | `store_id` | contract event (EVENTS.md), unchanged | delete (retention) |
//! | `<p>.events.by-member` | raw `member_id` | contract event, or a control record between member partitions (header `storepulse.control`, [`Control`](storepulse_processors::members::partitioned::Control) JSON) | delete |
//! | `<p>.dlq` | original key | [`DeadLetter`](storepulse_core::dead_letter::DeadLetter), reason also in a header | delete |
//! | `<p>.stock` | `store_id/sku` | [`StockRecord`](crate::records::StockRecord) | compact |
//! | `<p>.events.by-account` | `payment.account_ref` | a sale (contract event) paid with that account, or the stock stage's clock (header `storepulse.control`) | delete |
//! | `<p>.alerts` | `alert_id` | stock and points alerts: [`AlertRecord`](storepulse_runtime::alerts::AlertRecord) (`{"family":..,"alert":..}`); fraud alerts: `{"type":"alert.raised","rule":..,"alert":{FraudAlert}}` or `{"type":"alert.withdrawn","rule":..,"withdrawn":{AlertWithdrawn}}` (see [`crate::records::AlertsTopicRecord`]) | compact |
//! | `<p>.alert-decisions` | `alert_id` | a review [`Decision`](storepulse_runtime::review::Decision) (the latest per alert) | compact |
//! | `<p>.fraud-rules` | `rules` | the whole fraud rule set ([`RulesRecord`](crate::rules::RulesRecord)) | compact |
//! | `<p>.members` | `phone:<hash>` of a registered person, else its member id; `p<N>` with header `storepulse.kind: settlement` | [`MemberSnapshot`](crate::records::MemberSnapshot), a tombstone when the person is gone (erased, merged, moved); a partition's settlement table | compact |
//! | `<p>.mart` | mart partition of the rows (`crate::mart::mart_partition`) | a postcard [`MartBatch`](storepulse_mart::rows::MartBatch) of one stage partition's applied batch, as in the embedded mart log; **one partition** (the sink needs each mart partition's rows in production order) | delete |
//! | `<p>.member-tags` | canonical member id | a member-log record (`{"type":"tag_change",...}` or `{"type":"member_erased",...}`) | delete |
//!
//! `events.by-account` is the repartition topic of the account-keyed fraud
//! rules (ARCHITECTURE.md "Fraud on Kafka").
//! `events.by-member` is the repartition topic for member-keyed work
//! (members, points, fraud; ARCHITECTURE.md "Repartitioning by member"). It
//! is created here so that its partition count matches the events topic.

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::types::RDKafkaErrorCode;
use tracing::info;

use crate::config::KafkaConfig;
use crate::error::{KafkaError, Result};

/// Names of the topics, from the configured prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topics {
    pub events: String,
    pub events_by_member: String,
    pub dlq: String,
    pub stock: String,
    pub alerts: String,
    /// Member tag changes and erasures (issue 4), keyed by member id.
    pub member_tags: String,
    /// The member read model: one record per person (compacted).
    pub members: String,
    /// Sales by `payment.account_ref`, for the account-keyed fraud rules.
    pub events_by_account: String,
    /// Review decisions, keyed by alert id (compacted).
    pub alert_decisions: String,
    /// The fraud rules in force (compacted, one key).
    pub fraud_rules: String,
    /// The stages' mart rows (one partition), read by the mart sink.
    pub mart: String,
}

impl Topics {
    /// The names under `prefix`.
    pub fn new(prefix: &str) -> Self {
        Self {
            events: format!("{prefix}.events"),
            events_by_member: format!("{prefix}.events.by-member"),
            dlq: format!("{prefix}.dlq"),
            stock: format!("{prefix}.stock"),
            alerts: format!("{prefix}.alerts"),
            member_tags: format!("{prefix}.member-tags"),
            members: format!("{prefix}.members"),
            events_by_account: format!("{prefix}.events.by-account"),
            alert_decisions: format!("{prefix}.alert-decisions"),
            fraud_rules: format!("{prefix}.fraud-rules"),
            mart: format!("{prefix}.mart"),
        }
    }

    /// Every topic: name, compacted, one partition only (else
    /// `kafka.partitions`).
    fn all(&self) -> [(&str, bool, bool); 11] {
        [
            (&self.events, false, false),
            (&self.events_by_member, false, false),
            (&self.dlq, false, false),
            (&self.stock, true, false),
            (&self.alerts, true, false),
            (&self.member_tags, false, false),
            (&self.members, true, false),
            (&self.events_by_account, false, false),
            (&self.alert_decisions, true, false),
            (&self.fraud_rules, true, false),
            (&self.mart, false, true),
        ]
    }
}

/// Creates the missing topics (when `create_topics`), then checks that the
/// events topic exists and returns its partition count.
///
/// # Errors
/// The broker is unreachable, refuses the creation, or the events topic is
/// missing while creation is off.
pub async fn ensure(config: &KafkaConfig, topics: &Topics) -> Result<u32> {
    if config.create_topics {
        let admin: AdminClient<DefaultClientContext> =
            crate::client::producer(config, "storepulse-admin", 30_000)
                .create()
                .map_err(KafkaError::client("admin client"))?;
        let compact = [("cleanup.policy", "compact")];
        let new: Vec<NewTopic<'_>> = topics
            .all()
            .iter()
            .map(|(name, compacted, single)| {
                let mut t = NewTopic::new(
                    name,
                    if *single { 1 } else { config.partitions },
                    TopicReplication::Fixed(config.replication_factor),
                );
                if *compacted {
                    for (k, v) in compact {
                        t = t.set(k, v);
                    }
                }
                t
            })
            .collect();
        let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
        let results = admin
            .create_topics(new.iter(), &options)
            .await
            .map_err(KafkaError::client("create topics"))?;
        for result in results {
            match result {
                Ok(name) => info!(topic = %name, "created topic"),
                Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((name, code)) => {
                    return Err(KafkaError::Topic {
                        topic: name,
                        reason: format!("cannot create: {code}"),
                    })
                }
            }
        }
    }
    let config = config.clone();
    let events = topics.events.clone();
    tokio::task::spawn_blocking(move || partition_count(&config, &events))
        .await
        .map_err(|e| KafkaError::Config(format!("metadata task: {e}")))?
}

/// The partition count of `topic` (blocking: a metadata request).
///
/// # Errors
/// The broker is unreachable or the topic does not exist.
pub fn partition_count(config: &KafkaConfig, topic: &str) -> Result<u32> {
    let consumer: BaseConsumer =
        crate::client::consumer(config, "storepulse-metadata", "storepulse-metadata")
            .create()
            .map_err(KafkaError::client("metadata client"))?;
    let mut last = None;
    // A topic just created may take a moment to show its partitions.
    for _ in 0..50 {
        match consumer.fetch_metadata(Some(topic), Duration::from_secs(10)) {
            Ok(metadata) => {
                let n = metadata
                    .topics()
                    .iter()
                    .find(|t| t.name() == topic && t.error().is_none())
                    .map_or(0, |t| t.partitions().len());
                if n > 0 {
                    return Ok(n as u32);
                }
            }
            Err(e) => last = Some(e),
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    match last {
        Some(source) => Err(KafkaError::Client {
            operation: "fetch metadata",
            source,
        }),
        None => Err(KafkaError::Topic {
            topic: topic.to_owned(),
            reason: "does not exist (create it, or set kafka.create_topics = true)".into(),
        }),
    }
}
