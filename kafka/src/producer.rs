//! Ingest's producer: accepted events to `<prefix>.events` keyed by
//! `store_id`, rejections to `<prefix>.dlq`, and the HTTP answer only after
//! the broker acknowledged them (`acks=all`, idempotent, compressed).
//!
//! It also produces the risk team's review decisions (`serve`, Kafka mode)
//! to `<prefix>.alert-decisions`, and the fraud rules `serve` installs to
//! `<prefix>.fraud-rules`.
//!
//! A full producer queue answers 503 at once (back-pressure); a broker that
//! does not acknowledge within `produce_timeout_ms` answers 503 too. Events
//! of a failed request that did reach the broker become duplicates when the
//! emitter retries, and the processors drop them by `event_id`.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use rdkafka::error::KafkaError as RdKafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::types::RDKafkaErrorCode;
use storepulse_core::dead_letter::DeadLetter;
use storepulse_ingest::append::{AppendError, AppendFuture, EventAppender, KeyedEvent};

use crate::config::KafkaConfig;
use crate::error::{KafkaError, Result};
use crate::partitioner::partition_for;
use crate::records::{HEADER_REASON, HEADER_STAGE};
use crate::topics::Topics;

/// Produces events and dead letters, waiting for the broker's acknowledgement.
#[derive(Clone)]
pub struct KafkaAppender {
    /// Replaced when librdkafka reports a fatal error (an idempotent
    /// producer the broker no longer accepts): a new producer gets a new
    /// producer id.
    producer: Arc<RwLock<FutureProducer>>,
    config: KafkaConfig,
    topics: Topics,
    partitions: u32,
    timeout: Duration,
}

impl KafkaAppender {
    /// A producer for `topics`; `partitions` is the events topic's count.
    ///
    /// # Errors
    /// librdkafka refuses the configuration.
    pub fn new(config: &KafkaConfig, topics: Topics, partitions: u32) -> Result<Self> {
        Ok(Self {
            producer: Arc::new(RwLock::new(Self::create(config)?)),
            config: config.clone(),
            topics,
            partitions,
            timeout: Duration::from_millis(config.produce_timeout_ms),
        })
    }

    fn create(config: &KafkaConfig) -> Result<FutureProducer> {
        crate::client::producer(config, "storepulse-ingest", config.produce_timeout_ms)
            .create()
            .map_err(KafkaError::client("ingest producer"))
    }

    fn current(&self) -> FutureProducer {
        self.producer
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// After a failure: if the producer is in a fatal state, replace it.
    fn recover(&self, failed: &FutureProducer) {
        let Some((code, reason)) = failed.client().fatal_error() else {
            return;
        };
        let mut slot = self
            .producer
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // Another request may have replaced it already.
        if !std::ptr::eq(slot.client().native_ptr(), failed.client().native_ptr()) {
            return;
        }
        match Self::create(&self.config) {
            Ok(fresh) => {
                tracing::warn!(?code, %reason, "ingest producer hit a fatal error; replaced it");
                *slot = fresh;
            }
            Err(e) => tracing::warn!(error = %e, "ingest producer: cannot create a replacement"),
        }
    }

    /// Sends everything and waits for every acknowledgement.
    async fn send_all(
        &self,
        topic: &str,
        records: Vec<KeyedEvent>,
        headers: impl Fn(&KeyedEvent) -> Option<OwnedHeaders>,
    ) -> std::result::Result<(), AppendError> {
        let producer = self.current();
        let result = self.send_with(&producer, topic, records, headers).await;
        if result.is_err() {
            self.recover(&producer);
        }
        result
    }

    async fn send_with(
        &self,
        producer: &FutureProducer,
        topic: &str,
        records: Vec<KeyedEvent>,
        headers: impl Fn(&KeyedEvent) -> Option<OwnedHeaders>,
    ) -> std::result::Result<(), AppendError> {
        let mut pending = Vec::with_capacity(records.len());
        for record in &records {
            let partition = partition_for(record.key.as_bytes(), self.partitions) as i32;
            let mut message = FutureRecord::to(topic)
                .key(&record.key)
                .payload(&record.payload)
                .partition(partition);
            if let Some(h) = headers(record) {
                message = message.headers(h);
            }
            match producer.send_result(message) {
                Ok(delivery) => pending.push(delivery),
                Err((RdKafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    return Err(AppendError::Backpressure)
                }
                Err((e, _)) => return Err(AppendError::Unavailable(e.to_string())),
            }
        }
        let all = async {
            for delivery in pending {
                match delivery.await {
                    Ok(Ok(_)) => {}
                    Ok(Err((e, _))) => return Err(AppendError::Unavailable(e.to_string())),
                    Err(_) => return Err(AppendError::Unavailable("producer closed".into())),
                }
            }
            Ok(())
        };
        // librdkafka times messages out itself (message.timeout.ms); this
        // bound only guards against a delivery report that never comes.
        match tokio::time::timeout(self.timeout + Duration::from_secs(1), all).await {
            Ok(result) => result,
            Err(_) => Err(AppendError::Unavailable(format!(
                "broker did not acknowledge within {} ms",
                self.timeout.as_millis()
            ))),
        }
    }

    /// Produces a review decision to `<p>.alert-decisions` (key: its alert
    /// id) and waits for the broker's acknowledgement.
    ///
    /// # Errors
    /// The broker did not acknowledge it (nothing is recorded then, as far
    /// as the caller knows; a retry produces it again, which is harmless
    /// on a compacted topic keyed by alert id).
    pub async fn publish_decision(
        &self,
        decision: &storepulse_runtime::review::Decision,
    ) -> std::result::Result<(), AppendError> {
        let payload = serde_json::to_vec(decision)
            .map_err(|e| AppendError::Unavailable(format!("encode decision: {e}")))?;
        let record = KeyedEvent {
            key: decision.alert_id.clone(),
            payload,
        };
        self.send_all(&self.topics.alert_decisions, vec![record], |_| None)
            .await
    }

    /// Publishes the whole fraud rule set to `<p>.fraud-rules` (key
    /// `rules`) and waits for the broker's acknowledgement.
    ///
    /// # Errors
    /// The broker did not acknowledge it.
    pub async fn publish_rules(
        &self,
        rules: Vec<storepulse_processors::fraud::RuleSpec>,
    ) -> std::result::Result<(), AppendError> {
        let payload = serde_json::to_vec(&crate::rules::RulesRecord { rules })
            .map_err(|e| AppendError::Unavailable(format!("encode rules: {e}")))?;
        let record = KeyedEvent {
            key: crate::rules::RULES_KEY.to_owned(),
            payload,
        };
        self.send_all(&self.topics.fraud_rules, vec![record], |_| None)
            .await
    }

    /// Waits until everything queued is delivered (at shutdown).
    pub fn flush(&self, timeout: Duration) {
        if let Err(e) = self.current().flush(timeout) {
            tracing::warn!(error = %e, "ingest producer: not everything was delivered at shutdown");
        }
    }
}

impl EventAppender for KafkaAppender {
    fn append_events(&self, events: Vec<KeyedEvent>) -> AppendFuture<'_, Option<u64>> {
        Box::pin(async move {
            self.send_all(&self.topics.events, events, |_| None).await?;
            Ok(None)
        })
    }

    fn append_dead_letters(&self, letters: Vec<KeyedEvent>) -> AppendFuture<'_, ()> {
        Box::pin(async move {
            self.send_all(&self.topics.dlq, letters, |record| {
                let letter: DeadLetter = serde_json::from_slice(&record.payload).ok()?;
                Some(dead_letter_headers(&letter, None))
            })
            .await
        })
    }

    fn name(&self) -> &'static str {
        "kafka"
    }
}

/// The headers of a dead-letter message: reason, stage, and the input it
/// came from (processor stage).
pub fn dead_letter_headers(letter: &DeadLetter, source: Option<&str>) -> OwnedHeaders {
    let stage = match letter.stage {
        storepulse_core::dead_letter::RejectedAt::Ingest => "ingest",
        storepulse_core::dead_letter::RejectedAt::Processor => "processor",
    };
    let mut headers = OwnedHeaders::new()
        .insert(Header {
            key: HEADER_REASON,
            value: Some(letter.reason.as_str()),
        })
        .insert(Header {
            key: HEADER_STAGE,
            value: Some(stage),
        });
    if let Some(source) = source {
        headers = headers.insert(Header {
            key: crate::records::HEADER_SOURCE,
            value: Some(source),
        });
    }
    headers
}
