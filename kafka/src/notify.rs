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
//! read-model thread (materialize::run, reads the topics from the beginning)
//!    │ NoticeTap::offer: only records past the forward checkpoint's floor
//!    ▼ bounded channel (back-pressure on the read model)
//! forwarder thread (run_forwarder): append to the outbox (fsynced, de-duplicated
//!    │ by id), then persist the checkpoint (next offset per topic partition)
//!    ▼
//! webhook senders (storepulse_sinks::webhook), as embedded
//! ```
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
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender};

use serde::{Deserialize, Serialize};
use storepulse_runtime::driver::AlertNotice;
use tracing::{error, info, warn};

use crate::error::{KafkaError, Result};

/// File name of the forward checkpoint inside the outbox directory.
pub const CHECKPOINT_FILE: &str = "kafka-forward.json";

/// Notices waiting between the read model and the forwarder.
pub const CHANNEL_CAPACITY: usize = 10_000;

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

/// A notice with the record it came from.
#[derive(Debug)]
pub struct Forwarded {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub notice: AlertNotice,
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

/// The read model's side: decides which records are notices to forward
/// (from the checkpoint as loaded at start) and hands them over.
#[derive(Debug)]
pub struct NoticeTap {
    floor: ForwardCheckpoint,
    tx: SyncSender<Forwarded>,
}

impl NoticeTap {
    /// A tap over `floor` (the checkpoint as loaded) sending to `tx`.
    pub fn new(floor: ForwardCheckpoint, tx: SyncSender<Forwarded>) -> Self {
        Self { floor, tx }
    }

    /// Whether the record is to be forwarded (check before building the
    /// notice).
    pub fn wants(
        &self,
        topic: &str,
        partition: i32,
        offset: i64,
        timestamp_ms: Option<i64>,
    ) -> bool {
        self.floor.wants(topic, partition, offset, timestamp_ms)
    }

    /// Hands a notice to the forwarder; blocks while its channel is full
    /// (the outbox is slow), which holds the read model back.
    pub fn offer(&self, topic: &str, partition: i32, offset: i64, notice: AlertNotice) {
        let sent = self.tx.send(Forwarded {
            topic: topic.to_owned(),
            partition,
            offset,
            notice,
        });
        if sent.is_err() {
            error!("webhook forwarder is gone: notice dropped (serve is stopping)");
        }
    }
}

/// The forwarder loop: appends each notice with `append` (which must be
/// durable when it returns `Ok(true)` for a new id, `Ok(false)` for one
/// already there), then saves the checkpoint once per batch. Runs until
/// the channel is closed (the read model stopped and dropped its
/// [`NoticeTap`]), having appended everything it was handed. A failed append is retried (1 s doubling to 30 s)
/// while the read model waits: nothing is skipped.
///
/// # Errors
/// The checkpoint cannot be written; an append fails ([`KafkaError::Outbox`]:
/// serve stops, and its restart resumes from the checkpoint, skipping
/// nothing).
pub fn run_forwarder(
    rx: Receiver<Forwarded>,
    mut checkpoint: ForwardCheckpoint,
    dir: PathBuf,
    mut append: impl FnMut(&AlertNotice) -> std::result::Result<bool, String>,
    progress: &ForwardProgress,
) -> Result<()> {
    info!(
        cutoff_ms = checkpoint.cutoff_ms,
        partitions = checkpoint.next.len(),
        "webhook forwarder started"
    );
    let mut batch = Vec::new();
    loop {
        match rx.recv() {
            Ok(first) => batch.push(first),
            Err(_) => return Ok(()),
        }
        while batch.len() < 1000 {
            match rx.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        for f in batch.drain(..) {
            match append(&f.notice) {
                Ok(true) => progress.appended.fetch_add(1, Ordering::Relaxed),
                Ok(false) => progress.duplicates.fetch_add(1, Ordering::Relaxed),
                Err(e) => {
                    error!(id = %f.notice.id, error = %e, "webhook outbox append failed");
                    // What was appended so far is kept; the rest comes again
                    // at the restart (offsets past the checkpoint).
                    checkpoint.save(&dir)?;
                    return Err(KafkaError::Outbox(e));
                }
            };
            checkpoint.advance(&f.topic, f.partition, f.offset);
        }
        checkpoint.save(&dir)?;
    }
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
    fn the_forwarder_appends_then_saves_and_counts_duplicates() {
        let dir = tempfile::tempdir().unwrap();
        let (c, _) = ForwardCheckpoint::load_or_start(dir.path(), "p", 0).unwrap();
        let (tx, rx) = std::sync::mpsc::sync_channel(16);
        let tap = NoticeTap::new(c.clone(), tx);
        for (offset, id) in [(0, "raised:a"), (1, "raised:b"), (2, "raised:a")] {
            let notice = AlertNotice::new(id.into(), "r", serde_json::json!({"rule": "r"}));
            tap.offer("p.alerts", 0, offset, notice);
        }
        drop(tap);
        let mut seen = std::collections::HashSet::new();
        let progress = ForwardProgress::default();
        run_forwarder(
            rx,
            c,
            dir.path().to_owned(),
            |n| Ok(seen.insert(n.id.clone())),
            &progress,
        )
        .unwrap();
        assert_eq!(progress.appended.load(Ordering::Relaxed), 2);
        assert_eq!(progress.duplicates.load(Ordering::Relaxed), 1);
        let (saved, _) = ForwardCheckpoint::load_or_start(dir.path(), "p", 0).unwrap();
        assert!(!saved.wants("p.alerts", 0, 2, Some(1)));
        assert!(saved.wants("p.alerts", 0, 3, Some(1)));
    }

    #[test]
    fn a_failed_append_stops_the_forwarder_keeping_what_was_appended() {
        let dir = tempfile::tempdir().unwrap();
        let (c, _) = ForwardCheckpoint::load_or_start(dir.path(), "p", 0).unwrap();
        let (tx, rx) = std::sync::mpsc::sync_channel(16);
        let tap = NoticeTap::new(c.clone(), tx);
        for offset in 0..3 {
            let notice = AlertNotice::new(format!("raised:{offset}"), "r", serde_json::json!({}));
            tap.offer("p.alerts", 0, offset, notice);
        }
        drop(tap);
        let result = run_forwarder(
            rx,
            c,
            dir.path().to_owned(),
            |n| match n.id.as_str() {
                "raised:1" => Err("disk full".into()),
                _ => Ok(true),
            },
            &ForwardProgress::default(),
        );
        assert!(matches!(result, Err(KafkaError::Outbox(_))), "{result:?}");
        let (saved, _) = ForwardCheckpoint::load_or_start(dir.path(), "p", 0).unwrap();
        assert!(!saved.wants("p.alerts", 0, 0, Some(1)));
        assert!(
            saved.wants("p.alerts", 0, 1, Some(1)),
            "comes again at the restart"
        );
    }
}
