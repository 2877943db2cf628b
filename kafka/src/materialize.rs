//! The read model of `storepulse serve`: every serving instance reads the
//! whole compacted stock topic (and the alerts and dead-letter topics) into
//! memory, so `GET /v1/stock/...` on any instance answers for every store,
//! whichever processor instance owns it.
//!
//! **Staleness.** A change is visible here once its processor emitted it
//! (at the end of the batch that applied it: at most `batch_size` records
//! or 100 ms) and this reader fetched it (`fetch.wait.max.ms` = 10 ms), plus
//! the producer's `linger.ms` (5 ms) and the broker's own produce and fetch
//! time, which dominates: see BENCHMARKS.md. The metric
//! `storepulse_event_visible_seconds` observes, per stock record, the time
//! from its input event entering Kafka to its arrival here.
//!
//! **Duplicates.** A processor restart re-sends the records after its last
//! checkpoint; each carries `source` (the input that last changed it), and
//! a record older than the one already held for its key is ignored, so the
//! view never steps back.
//!
//! **Members.** The compacted `<p>.members` topic holds one record per
//! person (its whole record, keyed by `phone:<hash>` once registered, else
//! by its id) and each member partition's settlement table; it is read into
//! a [`MemberProcessor`](storepulse_processors::members::MemberProcessor) in
//! read-model mode, so the member API answers the same as embedded.
//!
//! **Fraud review.** `<p>.alerts` also carries the fraud alerts raised and
//! withdrawn by the processors ([`AlertsTopicRecord`]); they fill the
//! review queue of `shared` (when it has one), as do points-overdraft
//! alerts while that rule is on. The compacted `<p>.alert-decisions` holds
//! the risk team's decisions (any serve instance produces them); every
//! instance applies them to its queue, so all agree and decisions survive
//! restarts. The rules in force (`GET /v1/rules`) follow
//! `<p>.fraud-rules` ([`crate::rules`]).
//!
//! Reading starts at the beginning of every partition (no consumer-group
//! offsets): the compacted topic holds one record per (store, SKU), so a
//! start costs one pass over the current stock.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use storepulse_core::dead_letter::DeadLetter;
use storepulse_processors::members::ledger::Settlement;
use storepulse_runtime::alerts::Alert;
use storepulse_runtime::review::{Decision, ReviewAlert};
use storepulse_runtime::Shared;
use tracing::{debug, info, warn};

use crate::config::KafkaConfig;
use crate::error::{KafkaError, Result};
use crate::records::{
    AlertsTopicRecord, MemberSnapshot, SettlementSnapshot, SourceRef, StockRecord, HEADER_KIND,
};
use crate::topics::Topics;

/// Dead letters kept for `GET /v1/dlq`.
pub const DEAD_LETTERS_KEPT: usize = 1000;

/// The newest dead letters, newest last.
#[derive(Debug, Default)]
pub struct RecentDeadLetters {
    letters: Mutex<VecDeque<DeadLetter>>,
}

impl RecentDeadLetters {
    fn push(&self, letter: DeadLetter) {
        let mut letters = self
            .letters
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if letters.len() >= DEAD_LETTERS_KEPT {
            letters.pop_front();
        }
        letters.push_back(letter);
    }

    /// The newest `limit`, newest first.
    pub fn newest(&self, limit: usize) -> Vec<DeadLetter> {
        let letters = self
            .letters
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        letters.iter().rev().take(limit).cloned().collect()
    }
}

/// Progress of the reader, for `/healthz`.
#[derive(Debug, Default)]
pub struct MaterializeProgress {
    /// Stock records applied to the view.
    pub stock_records: AtomicU64,
    /// Stock records ignored as older than the view's.
    pub stale_records: AtomicU64,
    /// Records that could not be read (bad JSON, unknown store).
    pub unreadable: AtomicU64,
    /// Fraud alert records (raised or withdrawn) read into the review queue.
    pub fraud_records: AtomicU64,
    /// Review decisions read.
    pub decisions: AtomicU64,
}

/// Reads the output topics into `shared` until `stop` is set. Blocking:
/// run it on its own thread.
///
/// # Errors
/// librdkafka refuses the configuration, or the topics' metadata cannot be
/// fetched at start.
pub fn run(
    config: &KafkaConfig,
    topics: &Topics,
    shared: &Shared,
    dead_letters: &RecentDeadLetters,
    progress: &MaterializeProgress,
    stop: &AtomicBool,
) -> Result<()> {
    // A group id is required by librdkafka; this reader never joins or
    // commits (it assigns partitions itself).
    let group = format!("storepulse-serve-{}", std::process::id());
    let consumer: BaseConsumer = crate::client::consumer(config, "storepulse-serve", &group)
        .create()
        .map_err(KafkaError::client("read-model consumer"))?;
    let mut tpl = TopicPartitionList::new();
    for topic in [
        &topics.stock,
        &topics.alerts,
        &topics.dlq,
        &topics.members,
        &topics.alert_decisions,
        &topics.fraud_rules,
    ] {
        let n = crate::topics::partition_count(config, topic)?;
        for p in 0..n as i32 {
            tpl.add_partition_offset(topic, p, Offset::Beginning)
                .map_err(KafkaError::client("assign"))?;
        }
    }
    consumer
        .assign(&tpl)
        .map_err(KafkaError::client("assign"))?;
    info!(stock = %topics.stock, "read model: reading the stock, alerts and dead-letter topics");
    let mut versions: HashMap<String, SourceRef> = HashMap::new();
    let mut settlement: BTreeMap<u32, Settlement> = BTreeMap::new();
    let mut stock: Vec<StockRecord> = Vec::new();
    let stores = shared.inventory().stores().clone();
    while !stop.load(Ordering::Acquire) {
        let mut wait = Duration::from_millis(100);
        stock.clear();
        for _ in 0..5000 {
            let Some(polled) = consumer.poll(wait) else {
                break;
            };
            wait = Duration::ZERO;
            let message = match polled {
                Ok(m) => m,
                Err(e) => {
                    debug!(error = %e, "read-model consumer error");
                    continue;
                }
            };
            let topic = message.topic();
            if topic == topics.members {
                apply_member_record(shared, &message, &mut settlement, progress);
                continue;
            }
            let Some(payload) = message.payload() else {
                continue; // a tombstone
            };
            if topic == topics.stock {
                match serde_json::from_slice::<StockRecord>(payload) {
                    Ok(record) => {
                        let key = StockRecord::key(&record.store_id, &record.sku);
                        let newer = versions.get(&key).is_none_or(|held| {
                            held.partition != record.source.partition
                                || held.offset <= record.source.offset
                        });
                        if newer {
                            versions.insert(key, record.source);
                            stock.push(record);
                        } else {
                            progress.stale_records.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    Err(e) => {
                        progress.unreadable.fetch_add(1, Ordering::Relaxed);
                        warn!(error = %e, "unreadable stock record");
                    }
                }
            } else if topic == topics.alerts {
                match AlertsTopicRecord::parse(payload) {
                    Ok(record) => apply_alert_record(shared, record, progress),
                    Err(e) => {
                        progress.unreadable.fetch_add(1, Ordering::Relaxed);
                        warn!(error = %e, "unreadable alert record");
                    }
                }
            } else if topic == topics.fraud_rules {
                match crate::rules::RulesRecord::parse(payload, &stores) {
                    Ok(rules) => {
                        if let Some(fraud) = shared.fraud_mut().as_mut() {
                            fraud.set_rules(rules);
                        }
                    }
                    Err(reason) => {
                        progress.unreadable.fetch_add(1, Ordering::Relaxed);
                        warn!(%reason, "fraud rules record refused; the rules in force stay");
                    }
                }
            } else if topic == topics.alert_decisions {
                match serde_json::from_slice::<Decision>(payload) {
                    Ok(decision) => {
                        progress.decisions.fetch_add(1, Ordering::Relaxed);
                        shared.review_mut().decide(decision);
                    }
                    Err(e) => {
                        progress.unreadable.fetch_add(1, Ordering::Relaxed);
                        warn!(error = %e, "unreadable decision record");
                    }
                }
            } else if let Ok(letter) = serde_json::from_slice::<DeadLetter>(payload) {
                dead_letters.push(letter);
            } else {
                progress.unreadable.fetch_add(1, Ordering::Relaxed);
            }
        }
        if stock.is_empty() {
            continue;
        }
        let now_ms = storepulse_core::time::now() / 1_000_000;
        let mut applied = 0;
        {
            let mut inventory = shared.inventory_mut();
            for record in &stock {
                let Some(store) = inventory.stores().lookup(&record.store_id) else {
                    progress.unreadable.fetch_add(1, Ordering::Relaxed);
                    warn!(store_id = %record.store_id, "stock record of a store not in the store master");
                    continue;
                };
                inventory.put_snapshot(store, &record.sku, &record.snapshot(), record.clock);
                applied += 1;
            }
        }
        for record in &stock {
            if record.ingested_at_ms > 0 {
                let seconds = (now_ms - record.ingested_at_ms).max(0) as f64 / 1000.0;
                shared.metrics.visible_seconds.observe(seconds);
            }
        }
        progress.stock_records.fetch_add(applied, Ordering::Relaxed);
    }
    Ok(())
}

/// Applies one record of `<p>.alerts`: stock and points alerts to the
/// alert book, fraud alerts (and points overdrafts while that rule is on)
/// to the review queue.
fn apply_alert_record(shared: &Shared, record: AlertsTopicRecord, progress: &MaterializeProgress) {
    match record {
        AlertsTopicRecord::Alert(alert) => {
            if let Alert::PointsOverdraft(overdraft) = &alert.alert {
                let review = shared
                    .fraud()
                    .as_ref()
                    .and_then(|f| ReviewAlert::overdraft_to_review(f, overdraft));
                if let Some(review) = review {
                    shared.review_mut().raise(review, None);
                }
            }
            shared.alerts_mut().push(*alert);
        }
        AlertsTopicRecord::Raised(alert) => {
            progress.fraud_records.fetch_add(1, Ordering::Relaxed);
            shared.review_mut().raise(*alert, None);
        }
        AlertsTopicRecord::Withdrawn(w) => {
            progress.fraud_records.fetch_add(1, Ordering::Relaxed);
            shared.review_mut().withdraw(*w);
        }
    }
}

/// Applies one record of `<p>.members` to the served member processor.
fn apply_member_record(
    shared: &Shared,
    message: &rdkafka::message::BorrowedMessage<'_>,
    settlement: &mut BTreeMap<u32, Settlement>,
    progress: &MaterializeProgress,
) {
    let mut members = shared.members_mut();
    let Some(members) = members.as_mut() else {
        return;
    };
    let is_settlement = message.headers().is_some_and(|h| {
        h.iter()
            .any(|h| h.key == HEADER_KIND && h.value == Some(b"settlement"))
    });
    let key = message
        .key()
        .map(|k| String::from_utf8_lossy(k).into_owned())
        .unwrap_or_default();
    match (is_settlement, message.payload()) {
        (true, Some(payload)) => match serde_json::from_slice::<SettlementSnapshot>(payload) {
            Ok(s) => {
                settlement.insert(s.partition, s.table());
                members.put_settlement(settlement);
            }
            Err(e) => {
                progress.unreadable.fetch_add(1, Ordering::Relaxed);
                warn!(error = %e, "unreadable settlement record");
            }
        },
        (true, None) => {}
        (false, None) => members.put_person(&key, None, 0),
        (false, Some(payload)) => match serde_json::from_slice::<MemberSnapshot>(payload) {
            Ok(s) => members.put_person(&key, Some(s.person), s.clock),
            Err(e) => {
                progress.unreadable.fetch_add(1, Ordering::Relaxed);
                warn!(error = %e, "unreadable member record");
            }
        },
    }
}

/// Shared handles of a running read model.
#[derive(Debug, Default, Clone)]
pub struct ReadModel {
    pub dead_letters: Arc<RecentDeadLetters>,
    pub progress: Arc<MaterializeProgress>,
}
