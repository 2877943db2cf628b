//! Webhook notifications in Kafka mode: the serve that has webhooks
//! configured forwards the fraud records it reads (alerts raised and
//! withdrawn on `<p>.alerts`, decisions on `<p>.alert-decisions`) into the
//! embedded mode's webhook outbox, with the same notification ids and
//! bodies as embedded (`raised:<alert_id>`, `withdrawn:<alert_id>`,
//! `decided:<alert_id>:<decided_at>`).
//!
//! # Flow
//!
//! ```text
//! <p>.alerts, <p>.alert-decisions
//!    │ its own consumer (run_forwarder, one thread), from the beginning of
//!    │ every partition; only records past the forward checkpoint
//!    ▼
//! webhook outbox: append (fsynced, de-duplicated by id), then the
//!    │ checkpoint (next offset per topic partition) is saved
//!    ▼
//! webhook senders (storepulse_sinks::webhook), as embedded
//! ```
//!
//! Its own consumer, not the read model's: the read model also
//! materialises `<p>.stock` (hundreds of thousands of records at start, a
//! record per changed SKU at 20,000 events/s), and one consumer queue
//! delivers the alerts behind that backlog (measured: a p50 of 1.3 s from
//! alert to webhook at 5,000 events/s, against 36 ms for a consumer of the
//! alerts topic alone). The decisions' rules and the overdraft rule come
//! from the read model (`Shared`: the review queue, the rules in force).
//!
//! # Which records are forwarded (the rule)
//!
//! The topics are read from their beginning at every start, and may hold
//! months of alerts; the outbox remembers only its last `dedup_window` ids.
//! So the forwarder keeps its own checkpoint beside the outbox,
//! `<outbox>/kafka-forward.json`: the topic prefix, a `cutoff_ms`, and per
//! topic partition the next offset not yet forwarded. A record is forwarded
//! when its offset is at or past that partition's next offset **and** its
//! broker timestamp is at or after `cutoff_ms`.
//!
//! - **Fresh outbox** (no checkpoint, or one of another topic prefix):
//!   `cutoff_ms` is the start of this serve, written at once. History is
//!   not sent; only what enters the topics from now on. A withdrawal or a
//!   decision of an alert raised before the cutoff is sent on its own.
//! - **Restart** (the checkpoint is there): everything after the saved
//!   offsets, whether it arrived while serve ran or while it was down for
//!   an hour. A record appended to the outbox whose offset the crash kept
//!   from the checkpoint comes again and is dropped by the outbox's
//!   de-duplication by id; a processor re-sending an alert (at least once)
//!   likewise.
//! - A record without a broker timestamp counts as history.
//! - Clocks: the cutoff is serve's clock, the timestamps are the producers'
//!   (`CreateTime`); a skew of s seconds moves the first start's boundary
//!   by s, nothing else.
//!
//! Deleting the outbox directory makes the outbox fresh again (the
//! checkpoint is inside it).
//!
//! # One sender
//!
//! Every serve reads the same topics: configure `[[fraud.webhooks]]` on one
//! designated serve only, or each will send every notification (with the
//! same `X-StorePulse-Delivery` ids, so a de-duplicating receiver copes,
//! but nothing here coordinates them).

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};
use storepulse_runtime::alerts::Alert;
use storepulse_runtime::driver::AlertNotice;
use storepulse_runtime::review::{Decision, ReviewAlert};
use storepulse_runtime::Shared;
use tracing::{debug, error, info, warn};

use crate::config::KafkaConfig;
use crate::error::{KafkaError, Result};
use crate::records::AlertsTopicRecord;
use crate::topics::Topics;

/// File name of the forward checkpoint inside the outbox directory.
pub const CHECKPOINT_FILE: &str = "kafka-forward.json";

/// How far the forwarder has appended, and from when it forwards.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForwardCheckpoint {
    /// The topic prefix the offsets belong to.
    pub prefix: String,
    /// Records whose broker timestamp is before this (unix ms) are history:
    /// never forwarded.
    pub cutoff_ms: i64,
    /// `"<topic>/<partition>"` -> the next offset not yet forwarded.
    #[serde(default)]
    pub next: BTreeMap<String, i64>,
}

impl ForwardCheckpoint {
    /// A fresh checkpoint: forward what arrives from `now_ms` on.
    pub fn fresh(prefix: &str, now_ms: i64) -> Self {
        Self {
            prefix: prefix.to_owned(),
            cutoff_ms: now_ms,
            next: BTreeMap::new(),
        }
    }

    /// Loads `dir/kafka-forward.json`; when it is missing or belongs to
    /// another prefix, starts fresh at `now_ms` and writes that at once (a
    /// crash before the first forward keeps the same cutoff). Returns the
    /// checkpoint and whether it is fresh.
    ///
    /// # Errors
    /// The file cannot be read, parsed or written.
    pub fn load_or_start(dir: &Path, prefix: &str, now_ms: i64) -> Result<(Self, bool)> {
        let path = dir.join(CHECKPOINT_FILE);
        let failed = |reason: String| KafkaError::NoticeCheckpoint {
            path: path.clone(),
            reason,
        };
        match fs::read(&path) {
            Ok(bytes) => {
                let saved: Self =
                    serde_json::from_slice(&bytes).map_err(|e| failed(e.to_string()))?;
                if saved.prefix == prefix {
                    return Ok((saved, false));
                }
                warn!(old = %saved.prefix, new = %prefix, "webhook forward checkpoint of another topic prefix: starting fresh");
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(failed(e.to_string())),
        }
        let fresh = Self::fresh(prefix, now_ms);
        fresh.save(dir)?;
        Ok((fresh, true))
    }

    fn key(topic: &str, partition: i32) -> String {
        format!("{topic}/{partition}")
    }

    /// Whether a record at (`topic`, `partition`, `offset`) with broker
    /// timestamp `timestamp_ms` is to be forwarded.
    pub fn wants(
        &self,
        topic: &str,
        partition: i32,
        offset: i64,
        timestamp_ms: Option<i64>,
    ) -> bool {
        let Some(ts) = timestamp_ms else {
            return false;
        };
        ts >= self.cutoff_ms
            && offset
                >= self
                    .next
                    .get(&Self::key(topic, partition))
                    .copied()
                    .unwrap_or(0)
    }

    /// Records that everything up to `offset` of the partition is appended.
    pub fn advance(&mut self, topic: &str, partition: i32, offset: i64) {
        let next = self.next.entry(Self::key(topic, partition)).or_insert(0);
        *next = (*next).max(offset + 1);
    }

    /// Writes `dir/kafka-forward.json` durably (temporary file, fsync,
    /// rename, directory fsync).
    ///
    /// # Errors
    /// Any I/O failure.
    pub fn save(&self, dir: &Path) -> Result<()> {
        let path = dir.join(CHECKPOINT_FILE);
        let tmp = dir.join(format!("{CHECKPOINT_FILE}.tmp"));
        let failed = |e: std::io::Error| KafkaError::NoticeCheckpoint {
            path: path.clone(),
            reason: e.to_string(),
        };
        let bytes = serde_json::to_vec(self).map_err(|e| KafkaError::NoticeCheckpoint {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        fs::create_dir_all(dir).map_err(failed)?;
        let mut file = fs::File::create(&tmp).map_err(failed)?;
        file.write_all(&bytes).map_err(failed)?;
        file.sync_all().map_err(failed)?;
        fs::rename(&tmp, &path).map_err(failed)?;
        fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(failed)?;
        Ok(())
    }
}

/// Counters of the forwarder (`/healthz`).
#[derive(Debug, Default)]
pub struct ForwardProgress {
    /// Notices appended to the outbox (new ids).
    pub appended: AtomicU64,
    /// Notices the outbox already had (re-read after a restart, re-sent by
    /// a processor).
    pub duplicates: AtomicU64,
}

/// Reads `<p>.alerts` and `<p>.alert-decisions` with its own consumer
/// until `stop` is set, and appends each notice past `checkpoint` with
/// `append` (durable when it returns: `Ok(true)` for a new id, `Ok(false)`
/// for one already there), saving the checkpoint in `dir` after the
/// appends of each poll (and at least every second while other records
/// pass). Blocking: run it on its own thread.
///
/// # Errors
/// librdkafka refuses the configuration or the topics' metadata cannot be
/// fetched; the checkpoint cannot be written; an append fails
/// ([`KafkaError::Outbox`]: serve stops, and its restart resumes from the
/// checkpoint, skipping nothing).
#[allow(clippy::too_many_arguments)]
pub fn run_forwarder(
    config: &KafkaConfig,
    topics: &Topics,
    shared: &Shared,
    mut checkpoint: ForwardCheckpoint,
    dir: &Path,
    mut append: impl FnMut(&AlertNotice) -> std::result::Result<bool, String>,
    progress: &ForwardProgress,
    stop: &AtomicBool,
) -> Result<()> {
    let group = format!("storepulse-webhooks-{}", std::process::id());
    let consumer: BaseConsumer = crate::client::consumer(config, "storepulse-webhooks", &group)
        .create()
        .map_err(KafkaError::client("webhook forwarder consumer"))?;
    let mut tpl = TopicPartitionList::new();
    for topic in [&topics.alerts, &topics.alert_decisions] {
        let n = crate::topics::partition_count(config, topic)?;
        for p in 0..n as i32 {
            tpl.add_partition_offset(topic, p, Offset::Beginning)
                .map_err(KafkaError::client("assign"))?;
        }
    }
    consumer
        .assign(&tpl)
        .map_err(KafkaError::client("assign"))?;
    info!(
        cutoff_ms = checkpoint.cutoff_ms,
        partitions = checkpoint.next.len(),
        "webhook forwarder started"
    );
    let mut last_save = Instant::now();
    let mut dirty = false;
    while !stop.load(Ordering::Acquire) {
        let mut wait = Duration::from_millis(100);
        let mut appended = false;
        for _ in 0..1000 {
            let Some(polled) = consumer.poll(wait) else {
                break;
            };
            wait = Duration::ZERO;
            let message = match polled {
                Ok(m) => m,
                Err(e) => {
                    debug!(error = %e, "webhook forwarder consumer error");
                    continue;
                }
            };
            let (topic, partition, offset) =
                (message.topic(), message.partition(), message.offset());
            let timestamp = message.timestamp().to_millis().filter(|ms| *ms >= 0);
            if !checkpoint.wants(topic, partition, offset, timestamp) {
                continue;
            }
            let notice = match message.payload() {
                Some(payload) if topic == topics.alerts => alert_notice(shared, payload),
                Some(payload) if topic == topics.alert_decisions => {
                    decision_notice(shared, payload)
                }
                _ => None,
            };
            appended |= forward_one(
                &mut checkpoint,
                (topic, partition, offset),
                notice,
                &mut append,
                progress,
                dir,
            )?;
            dirty = true;
        }
        if dirty && (appended || last_save.elapsed() >= Duration::from_secs(1)) {
            checkpoint.save(dir)?;
            last_save = Instant::now();
            dirty = false;
        }
    }
    if dirty {
        checkpoint.save(dir)?;
    }
    Ok(())
}

/// Appends `notice` (if any), then moves the checkpoint past the record.
/// Returns whether something was appended.
///
/// # Errors
/// The append fails: the checkpoint is saved as it stands (without this
/// record) and [`KafkaError::Outbox`] returned.
fn forward_one(
    checkpoint: &mut ForwardCheckpoint,
    (topic, partition, offset): (&str, i32, i64),
    notice: Option<AlertNotice>,
    append: &mut impl FnMut(&AlertNotice) -> std::result::Result<bool, String>,
    progress: &ForwardProgress,
    dir: &Path,
) -> Result<bool> {
    let appended = match &notice {
        None => false,
        Some(notice) => {
            match append(notice) {
                Ok(true) => progress.appended.fetch_add(1, Ordering::Relaxed),
                Ok(false) => progress.duplicates.fetch_add(1, Ordering::Relaxed),
                Err(e) => {
                    error!(id = %notice.id, error = %e, "webhook outbox append failed");
                    // What was appended so far is kept; the rest comes again
                    // at the restart (offsets past the checkpoint).
                    checkpoint.save(dir)?;
                    return Err(KafkaError::Outbox(e));
                }
            };
            true
        }
    };
    checkpoint.advance(topic, partition, offset);
    Ok(appended)
}

/// The webhook notice of a record of `<p>.alerts`: the record itself for a
/// raise or a withdrawal (it is the webhook body), `raised:<alert_id>` for
/// a points overdraft while that rule is on (as the embedded driver
/// raises it for review); none for stock alerts and unreadable records.
pub fn alert_notice(shared: &Shared, payload: &[u8]) -> Option<AlertNotice> {
    match AlertsTopicRecord::parse(payload) {
        Ok(AlertsTopicRecord::Raised(alert)) => Some(AlertNotice {
            id: format!("raised:{}", alert.alert_id),
            rule: alert.rule,
            body: payload.to_vec(),
        }),
        Ok(AlertsTopicRecord::Withdrawn(w)) => Some(AlertNotice {
            id: format!("withdrawn:{}", w.alert_id),
            rule: w.rule,
            body: payload.to_vec(),
        }),
        Ok(AlertsTopicRecord::Alert(record)) => match &record.alert {
            Alert::PointsOverdraft(overdraft) => shared
                .fraud()
                .as_ref()
                .and_then(|f| ReviewAlert::overdraft_to_review(f, overdraft))
                .map(|review| AlertNotice::raised(&review)),
            _ => None,
        },
        Err(e) => {
            warn!(error = %e, "webhook forwarder: unreadable alert record");
            None
        }
    }
}

/// The webhook notice of a record of `<p>.alert-decisions`, as the
/// embedded API sends it: the rule is the alert's in the review queue (an
/// alert id starts with its rule, for a decision read before its alert).
pub fn decision_notice(shared: &Shared, payload: &[u8]) -> Option<AlertNotice> {
    let decision: Decision = match serde_json::from_slice(payload) {
        Ok(d) => d,
        Err(e) => {
            warn!(error = %e, "webhook forwarder: unreadable decision record");
            return None;
        }
    };
    let rule = shared
        .review()
        .get(&decision.alert_id)
        .map(|v| v.alert.rule.clone())
        .unwrap_or_else(|| {
            decision
                .alert_id
                .split_once(':')
                .map_or_else(String::new, |(rule, _)| rule.to_owned())
        });
    Some(AlertNotice::decided(&rule, &decision))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fresh_checkpoint_forwards_only_records_from_the_start_on() {
        let dir = tempfile::tempdir().unwrap();
        let (c, fresh) = ForwardCheckpoint::load_or_start(dir.path(), "p", 1_000).unwrap();
        assert!(fresh);
        assert!(!c.wants("p.alerts", 0, 0, Some(999)), "history");
        assert!(c.wants("p.alerts", 0, 0, Some(1_000)));
        assert!(!c.wants("p.alerts", 0, 5, None), "no timestamp: history");
        // The cutoff was written at once: a restart keeps it.
        let (again, fresh) = ForwardCheckpoint::load_or_start(dir.path(), "p", 9_000).unwrap();
        assert!(!fresh);
        assert_eq!(again.cutoff_ms, 1_000);
    }

    #[test]
    fn a_restart_forwards_everything_after_the_saved_offsets() {
        let dir = tempfile::tempdir().unwrap();
        let (mut c, _) = ForwardCheckpoint::load_or_start(dir.path(), "p", 1_000).unwrap();
        c.advance("p.alerts", 1, 41);
        c.advance("p.alerts", 1, 7); // never steps back
        c.save(dir.path()).unwrap();
        let (c, fresh) = ForwardCheckpoint::load_or_start(dir.path(), "p", 50_000).unwrap();
        assert!(!fresh);
        assert!(!c.wants("p.alerts", 1, 41, Some(2_000)), "already appended");
        assert!(
            c.wants("p.alerts", 1, 42, Some(2_000)),
            "arrived while down"
        );
        assert!(c.wants("p.alerts", 0, 0, Some(2_000)), "another partition");
        assert!(c.wants("p.alert-decisions", 0, 3, Some(2_000)));
    }

    #[test]
    fn another_prefix_starts_fresh() {
        let dir = tempfile::tempdir().unwrap();
        ForwardCheckpoint::load_or_start(dir.path(), "old", 1_000).unwrap();
        let (c, fresh) = ForwardCheckpoint::load_or_start(dir.path(), "new", 5_000).unwrap();
        assert!(fresh);
        assert_eq!(c.cutoff_ms, 5_000);
    }

    #[test]
    fn each_notice_is_appended_then_counted_in_the_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let (mut c, _) = ForwardCheckpoint::load_or_start(dir.path(), "p", 0).unwrap();
        let mut seen = std::collections::HashSet::new();
        let mut append = |n: &AlertNotice| -> std::result::Result<bool, String> {
            match n.id.as_str() {
                "raised:broken" => Err("disk full".into()),
                id => Ok(seen.insert(id.to_owned())),
            }
        };
        let progress = ForwardProgress::default();
        let notice = |id: &str| Some(AlertNotice::new(id.into(), "r", serde_json::json!({})));
        for (offset, n) in [(0, notice("raised:a")), (1, None), (2, notice("raised:a"))] {
            forward_one(
                &mut c,
                ("p.alerts", 0, offset),
                n,
                &mut append,
                &progress,
                dir.path(),
            )
            .unwrap();
        }
        assert_eq!(progress.appended.load(Ordering::Relaxed), 1);
        assert_eq!(progress.duplicates.load(Ordering::Relaxed), 1);
        assert!(!c.wants("p.alerts", 0, 2, Some(1)));
        // A failed append saves what was done and stops.
        let failed = forward_one(
            &mut c,
            ("p.alerts", 0, 3),
            notice("raised:broken"),
            &mut append,
            &progress,
            dir.path(),
        );
        assert!(matches!(failed, Err(KafkaError::Outbox(_))), "{failed:?}");
        let (saved, _) = ForwardCheckpoint::load_or_start(dir.path(), "p", 0).unwrap();
        assert!(!saved.wants("p.alerts", 0, 2, Some(1)));
        assert!(
            saved.wants("p.alerts", 0, 3, Some(1)),
            "comes again at the restart"
        );
    }
}
