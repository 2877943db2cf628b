//! The processing loop: source -> parse -> processors -> state, alerts,
//! dead letters -> checkpoint -> commit.
//!
//! Order of effects for one batch of records, and why it is crash-safe:
//! 1. records are parsed and applied to the in-memory state (under the
//!    write lock, so queries see whole batches);
//! 2. rejections are written to the dead-letter sink, member tag changes
//!    and erasures to the member log, and the batch's mart rows
//!    ([`storepulse_mart::rows::MartBatch`], derived per applied event with
//!    the event's log position) to the mart log (each retried with backoff
//!    until it is durable: nothing is dropped);
//! 3. every `checkpoint_interval` the state and the position after the batch
//!    are written atomically, then the source is told (`commit`).
//!
//! A crash anywhere restarts from the last checkpoint and replays the
//! records after it: state is rebuilt exactly (each record applied once
//! into the restored state); dead letters and alerts of the replayed tail
//! may be written again, with the same content and ids (at-least-once
//! outputs, de-duplicable by id and offset).

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use storepulse_core::dead_letter::{DeadLetter, RejectedAt};
use storepulse_core::source::{EventSource, SourcePosition, SourceRecord};
use storepulse_core::{EventParser, EventType};
use storepulse_mart::derive::{EventPos, RowDeriver};
use storepulse_mart::rows::MartBatch;
use storepulse_processors::fraud::{FraudConfig, FraudOutput, FraudProcessor, RuleSet};
use storepulse_processors::inventory::{
    InventoryConfig, InventoryOutput, InventoryProcessor, InventoryState,
};
use storepulse_processors::members::{MemberConfig, MemberOutput, MemberProcessor};
use storepulse_processors::{Outcome, Processor};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::alerts::{Alert, AlertBook, AlertRecord};
use crate::checkpoint::{CheckpointRef, CheckpointStore};
use crate::error::{Result, RuntimeError};
use crate::metrics::{AlertLabels, LateLabels, ProcessedLabels, RuleLabels};
use crate::review::{ReviewAlert, ReviewQueue};
use crate::shared::Shared;

/// `[runtime]` section of `storepulse.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DriverConfig {
    /// Most records read and applied per batch. Default 2000.
    pub batch_size: usize,
    /// Seconds between checkpoints. Default 5.
    pub checkpoint_interval_secs: f64,
    /// Recent alerts kept for the API. Default 10000.
    pub alert_book_capacity: usize,
}

impl Default for DriverConfig {
    fn default() -> Self {
        Self {
            batch_size: 2000,
            checkpoint_interval_secs: 5.0,
            alert_book_capacity: 10_000,
        }
    }
}

impl DriverConfig {
    /// Checks the values; the error names the field.
    ///
    /// # Errors
    /// A message `runtime.<field>: <rule>`.
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.batch_size == 0 || self.batch_size > 1_000_000 {
            return Err("runtime.batch_size: must be 1..=1000000".into());
        }
        if !(self.checkpoint_interval_secs.is_finite() && self.checkpoint_interval_secs > 0.0) {
            return Err("runtime.checkpoint_interval_secs: must be > 0".into());
        }
        if self.alert_book_capacity == 0 {
            return Err("runtime.alert_book_capacity: must be > 0".into());
        }
        Ok(())
    }
}

/// Where rejected events go. Must be durable when `send` returns `Ok`.
pub trait DeadLetterSink: Send + Sync {
    /// Writes the letters durably.
    fn send(
        &self,
        letters: Vec<DeadLetter>,
    ) -> impl Future<Output = std::result::Result<(), String>> + Send;
}

/// Where member tag changes and erasures go (one JSON object per record).
/// Must be durable when `send` returns `Ok`.
pub trait MemberLogSink: Send + Sync {
    /// Writes the records durably.
    fn send(
        &self,
        records: Vec<Vec<u8>>,
    ) -> impl Future<Output = std::result::Result<(), String>> + Send;
}

/// A member-log record: a tag change or an erasure, tagged by `type`.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum MemberLogRecord<'a> {
    TagChange(&'a storepulse_processors::members::TagChange),
    MemberErased(&'a storepulse_processors::members::MemberErased),
}

/// A notification for the risk team's webhooks: an alert raised or
/// withdrawn, or a decision. `id` is unique per notification and stable
/// across re-emission (`raised:<alert_id>`, `withdrawn:<alert_id>`,
/// `decided:<alert_id>:<n>`), so an outbox can keep one of each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertNotice {
    pub id: String,
    /// The alert's rule (webhooks may subscribe to some rules only).
    pub rule: String,
    /// The JSON body to deliver.
    pub body: Vec<u8>,
}

impl AlertNotice {
    /// The notice of a raised alert.
    pub fn raised(alert: &storepulse_processors::fraud::FraudAlert) -> Self {
        Self::new(
            format!("raised:{}", alert.alert_id),
            &alert.rule,
            serde_json::json!({"type": "alert.raised", "rule": alert.rule, "alert": alert}),
        )
    }

    /// The notice of a withdrawn alert.
    pub fn withdrawn(w: &storepulse_processors::fraud::AlertWithdrawn) -> Self {
        Self::new(
            format!("withdrawn:{}", w.alert_id),
            &w.rule,
            serde_json::json!({"type": "alert.withdrawn", "rule": w.rule, "withdrawn": w}),
        )
    }

    /// The notice of a review decision (`decided:<alert_id>:<decided_at>`,
    /// the nanoseconds of the decision: unique per decision, the same
    /// wherever it is read, embedded API or Kafka's decisions topic).
    pub fn decided(rule: &str, decision: &crate::review::Decision) -> Self {
        Self::new(
            format!("decided:{}:{}", decision.alert_id, decision.decided_at),
            rule,
            serde_json::json!({"type": "alert.decided", "rule": rule, "decision": decision}),
        )
    }

    /// A notice with a JSON body.
    pub fn new(id: String, rule: &str, body: serde_json::Value) -> Self {
        Self {
            id,
            rule: rule.to_owned(),
            body: body.to_string().into_bytes(),
        }
    }
}

/// Where alert notices go (the webhook outbox). Must be durable when the
/// future resolves to `Ok`.
pub type AlertSink = Arc<
    dyn Fn(
            Vec<AlertNotice>,
        )
            -> std::pin::Pin<Box<dyn Future<Output = std::result::Result<(), String>> + Send>>
        + Send
        + Sync,
>;

/// Where mart batches go (the mart log): postcard records, durable when
/// the future resolves to `Ok`.
pub type MartLogSink = Arc<
    dyn Fn(
            Vec<Vec<u8>>,
        )
            -> std::pin::Pin<Box<dyn Future<Output = std::result::Result<(), String>> + Send>>
        + Send
        + Sync,
>;

/// Largest mart-log record (the embedded log takes up to 1 MiB).
pub const MART_RECORD_BYTES: usize = 1000 * 1024;

/// The mart output of the loop: how rows are derived and where they go.
#[derive(Clone)]
pub struct MartOutput {
    pub deriver: RowDeriver,
    pub sink: MartLogSink,
}

/// Fraud rules of the pipeline (`[fraud]` and the rules file).
#[derive(Debug, Clone)]
pub struct FraudSetup {
    pub config: FraudConfig,
    pub rules: RuleSet,
    /// Closed alerts the review queue keeps.
    pub review_capacity: usize,
}

/// What a restart restores.
#[derive(Debug)]
pub struct Restored {
    pub inventory: InventoryProcessor,
    pub members: MemberProcessor,
    pub fraud: FraudProcessor,
    pub review: ReviewQueue,
    pub alerts: AlertBook,
    /// Where reading resumes.
    pub positions: Vec<SourcePosition>,
}

/// Loads the checkpoint (if any) into processors.
///
/// `log_start` is the first offset the event log still holds (0 when
/// retention never deleted anything). When no checkpoint generation is
/// usable but the log holds everything from offset 0, the state is rebuilt
/// from the log instead (slower start, same result), with a warning.
///
/// # Errors
/// No usable checkpoint while the log no longer starts at 0; a checkpoint
/// older than what the log still holds; one that does not fit the store
/// master.
pub fn restore(
    checkpoints: &CheckpointStore,
    inventory_config: &InventoryConfig,
    member_config: &MemberConfig,
    fraud: &FraudSetup,
    driver: &DriverConfig,
    parser: &EventParser,
    log_start: u64,
) -> Result<Restored> {
    let stores = parser.stores().clone();
    let loaded = match checkpoints.load() {
        Ok(loaded) => loaded,
        Err(e @ RuntimeError::CheckpointInvalid { .. }) if log_start == 0 => {
            warn!(error = %e, "no usable checkpoint; rebuilding the state from the whole event log");
            None
        }
        Err(RuntimeError::CheckpointInvalid { path, reason }) => {
            return Err(RuntimeError::CheckpointInvalid {
                path,
                reason: format!(
                    "{reason}; the event log no longer starts at offset 0 (retention), so the state cannot be rebuilt from it: restore the data directory from a backup, or replay an archive of the events"
                ),
            })
        }
        Err(e) => return Err(e),
    };
    if let Some(cp) = &loaded {
        if let Some(p) = cp.positions.iter().find(|p| p.offset < log_start) {
            return Err(RuntimeError::CheckpointInvalid {
                path: "checkpoint.bin".into(),
                reason: format!(
                    "it resumes at offset {} but the event log starts at {log_start}: events in between were deleted",
                    p.offset
                ),
            });
        }
    }
    match loaded {
        None => Ok(Restored {
            members: MemberProcessor::new(member_config.clone(), stores.clone())
                .map_err(RuntimeError::Config)?
                .without_dedup(),
            fraud: FraudProcessor::new(fraud.config.clone(), fraud.rules.clone(), stores.clone()),
            review: ReviewQueue::new(fraud.review_capacity),
            inventory: InventoryProcessor::new(inventory_config.clone(), stores),
            alerts: AlertBook::new(driver.alert_book_capacity),
            positions: Vec::new(),
        }),
        Some(cp) => {
            let members = match cp.members {
                Some(state) => {
                    MemberProcessor::from_state(state, member_config.clone(), stores.clone())
                        .map_err(|reason| RuntimeError::CheckpointInvalid {
                            path: "checkpoint.bin".into(),
                            reason,
                        })?
                }
                None => MemberProcessor::new(member_config.clone(), stores.clone())
                    .map_err(RuntimeError::Config)?,
            }
            .without_dedup();
            let (fraud_state, review_state) = cp.fraud.unwrap_or_default();
            let fraud_processor = FraudProcessor::from_state(
                fraud_state,
                fraud.config.clone(),
                fraud.rules.clone(),
                stores.clone(),
            );
            let review = ReviewQueue::from_state(review_state, fraud.review_capacity);
            let inventory =
                InventoryProcessor::from_state(cp.inventory, inventory_config.clone(), stores)
                    .map_err(|reason| RuntimeError::CheckpointInvalid {
                        path: "checkpoint.bin".into(),
                        reason,
                    })?;
            info!(positions = ?cp.positions, pairs = inventory.len(), "restored checkpoint");
            Ok(Restored {
                inventory,
                members,
                fraud: fraud_processor,
                review,
                alerts: cp.alerts,
                positions: cp.positions,
            })
        }
    }
}

/// Everything the loop needs besides the source and sink.
pub struct PipelineContext {
    pub shared: Arc<Shared>,
    pub parser: EventParser,
    pub checkpoints: CheckpointStore,
    pub config: DriverConfig,
    /// The webhook outbox, if webhooks are configured.
    pub alert_sink: Option<AlertSink>,
    /// The mart log, if the mart is on.
    pub mart: Option<MartOutput>,
}

/// Runs the processing loop until `shutdown`, then writes a final checkpoint.
///
/// `positions` is where reading starts (from [`restore`]); the caller has
/// already `seek`ed the source there.
///
/// # Errors
/// A source that fails for good, a checkpoint that cannot be written, or a
/// dead-letter sink that stays down until shutdown (then no final
/// checkpoint is written, so the unsent rejections are redone on restart).
pub async fn run_pipeline<S: EventSource, D: DeadLetterSink, M: MemberLogSink>(
    mut source: S,
    dead_letters: &D,
    member_log: &M,
    ctx: PipelineContext,
    positions: Vec<SourcePosition>,
    shutdown: CancellationToken,
) -> Result<()> {
    let PipelineContext {
        shared,
        parser,
        checkpoints,
        config,
        alert_sink,
        mart,
    } = ctx;
    let mut next: BTreeMap<u32, u64> = positions.iter().map(|p| (p.partition, p.offset)).collect();
    let interval = Duration::from_secs_f64(config.checkpoint_interval_secs);
    let mut last_checkpoint = Instant::now();
    let mut dirty = false;
    let mut in_flight: Option<CheckpointTask> = None;
    let mut spare: Option<InventoryState> = None;
    let mut records: Vec<SourceRecord> = Vec::with_capacity(config.batch_size);
    let mut outputs: Vec<InventoryOutput> = Vec::new();
    let mut member_outputs: Vec<MemberOutput> = Vec::new();
    let mut fraud_outputs: Vec<FraudOutput> = Vec::new();
    let mut late_seen = (0u64, 0u64);
    let mut latencies = Vec::new();
    loop {
        records.clear();
        let wait = tokio::time::sleep(interval.saturating_sub(last_checkpoint.elapsed()));
        let stop = shutdown.clone();
        let read = source.next_batch(config.batch_size, &mut records, async move {
            tokio::select! {
                () = stop.cancelled() => {}
                () = wait => {}
            }
        });
        if let Err(e) = read.await {
            warn!(error = %e, "event source failed; retrying");
            if shutdown.is_cancelled() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
            continue;
        }
        if !records.is_empty() {
            let (letters, member_lines, mart_batches) = apply_batch(
                &shared,
                &parser,
                &records,
                &mut outputs,
                &mut member_outputs,
                &mut fraud_outputs,
                mart.as_ref().map(|m| &m.deriver),
            );
            let notices = publish_fraud(&shared, &mut fraud_outputs, &mut late_seen);
            let alerted = !notices.is_empty();
            if !letters.is_empty() {
                send_letters(dead_letters, letters, &shutdown).await?;
            }
            if !member_lines.is_empty() {
                send_member_log(member_log, member_lines, &shutdown).await?;
            }
            if let Some(mart) = &mart {
                send_mart_log(&mart.sink, &mart_batches, &shutdown).await?;
            }
            if let (Some(sink), false) = (&alert_sink, notices.is_empty()) {
                until_durable("alert outbox", notices.len(), &shutdown, || {
                    sink(notices.clone())
                })
                .await
                .map_err(RuntimeError::AlertOutbox)?;
            }
            for r in &records {
                next.insert(r.position.partition, r.position.offset + 1);
            }
            let end = next.get(&0).copied().unwrap_or(0);
            shared.applied_end.store(end, Ordering::Release);
            shared.metrics.applied_offset.set(end as i64);
            latencies.clear();
            shared
                .visibility
                .visible(end, Instant::now(), &mut latencies);
            for l in &latencies {
                shared.metrics.visible_seconds.observe(l.as_secs_f64());
            }
            // Alerts of this batch were made durable before this point; the
            // oldest arrival of the batch bounds their latency from above.
            if alerted {
                if let Some(worst) = latencies.iter().max() {
                    shared
                        .metrics
                        .fraud_alert_seconds
                        .observe(worst.as_secs_f64());
                }
            }
            dirty = true;
        }
        if in_flight
            .as_ref()
            .is_some_and(tokio::task::JoinHandle::is_finished)
        {
            if let Some(handle) = in_flight.take() {
                match finish_checkpoint(&mut source, &shared, handle).await {
                    Ok(copy) => spare = Some(copy),
                    Err(e) => {
                        // The previous checkpoint stays valid; try again later.
                        warn!(error = %e, "checkpoint failed; retrying at the next interval");
                        dirty = true;
                    }
                }
            }
        }
        if dirty && in_flight.is_none() && last_checkpoint.elapsed() >= interval {
            let snapshot = Snapshot::take(&shared, &next, spare.take());
            in_flight = Some(start_checkpoint(checkpoints.clone(), snapshot));
            last_checkpoint = Instant::now();
            dirty = false;
        }
        if shutdown.is_cancelled() {
            break;
        }
    }
    if let Some(handle) = in_flight.take() {
        spare = Some(finish_checkpoint(&mut source, &shared, handle).await?);
    }
    let snapshot = Snapshot::take(&shared, &next, spare.take());
    finish_checkpoint(
        &mut source,
        &shared,
        start_checkpoint(checkpoints.clone(), snapshot),
    )
    .await?;
    info!(positions = ?next, "processing stopped after a final checkpoint");
    Ok(())
}

/// Parses and applies a batch to inventory, then members; returns the dead
/// letters, the member-log records and the mart rows it produced (the mart
/// batches are cut after each erasure, so a sink applies an erasure after
/// exactly the rows before it).
#[allow(clippy::too_many_lines)]
fn apply_batch(
    shared: &Shared,
    parser: &EventParser,
    records: &[SourceRecord],
    outputs: &mut Vec<InventoryOutput>,
    member_outputs: &mut Vec<MemberOutput>,
    fraud_outputs: &mut Vec<FraudOutput>,
    deriver: Option<&RowDeriver>,
) -> (Vec<DeadLetter>, Vec<Vec<u8>>, Vec<MartBatch>) {
    let parsed: Vec<_> = records.iter().map(|r| parser.parse(&r.payload)).collect();
    let mut letters = Vec::new();
    let mut mart_batches = Vec::new();
    let mut mart = MartBatch::default();
    let mut counts: BTreeMap<(&'static str, &'static str), u64> = BTreeMap::new();
    outputs.clear();
    member_outputs.clear();
    {
        let mut inventory = shared.inventory_mut();
        let mut members = shared.members_mut();
        let mut fraud = shared.fraud_mut();
        for (record, parsed) in records.iter().zip(parsed) {
            let pos = EventPos {
                partition: record.position.partition,
                offset: record.position.offset,
            };
            let first_inventory = outputs.len();
            let first_fraud = fraud_outputs.len();
            let result = parsed.and_then(|event| {
                let kind = event.event_type();
                let outcome = inventory.apply(&event, outputs)?;
                // Members and fraud see each event once: inventory
                // de-duplicates.
                if outcome == Outcome::Duplicate {
                    return Ok((kind, outcome));
                }
                let first_new = member_outputs.len();
                if let Some(members) = members.as_mut() {
                    members.apply(&event, member_outputs)?;
                }
                // The canonical id of the event's member, re-linking after a
                // registration, forgetting after an erasure: the same feeding
                // as `replay` and a Kafka member partition.
                if let Some(fraud) = fraud.as_mut() {
                    fraud.apply_with_members(
                        members.as_ref(),
                        &event,
                        &member_outputs[first_new..],
                        fraud_outputs,
                    );
                }
                if let Some(deriver) = deriver {
                    let erased = derive_rows(
                        deriver,
                        pos,
                        &event,
                        &inventory,
                        members.as_ref(),
                        &outputs[first_inventory..],
                        &member_outputs[first_new..],
                        &fraud_outputs[first_fraud..],
                        &mut mart,
                    );
                    if erased {
                        mart_batches.push(std::mem::take(&mut mart));
                    }
                }
                Ok((kind, outcome))
            });
            match result {
                Ok((kind, outcome)) => {
                    let label = match outcome {
                        Outcome::Duplicate => "duplicate",
                        Outcome::Applied | Outcome::Ignored => "applied",
                    };
                    *counts.entry((kind.as_str(), label)).or_default() += 1;
                }
                Err(rejection) => {
                    let kind = EventType::sniff(&record.payload);
                    *counts.entry((kind, "rejected")).or_default() += 1;
                    let mut letter = DeadLetter::new(
                        RejectedAt::Processor,
                        rejection.reason(),
                        rejection.event_id.clone(),
                        &record.payload,
                    );
                    letter.offset = Some(record.position.offset);
                    if let Some(deriver) = deriver {
                        deriver.rejected(
                            pos,
                            letter.event_id.as_deref(),
                            "processor",
                            &letter.reason,
                            &sniff_store(&record.payload),
                            &letter.raw,
                            storepulse_core::time::now(),
                            &mut mart,
                        );
                    }
                    letters.push(letter);
                }
            }
        }
    }
    let mut book = shared.alerts_mut();
    for output in outputs.drain(..) {
        if let InventoryOutput::Alert(alert) = output {
            shared
                .metrics
                .alerts
                .get_or_create(&AlertLabels {
                    kind: alert.kind.as_str(),
                })
                .inc();
            book.push(AlertRecord {
                family: "stock".into(),
                alert: Alert::Stock(*alert),
            });
        }
    }
    let mut member_lines = Vec::new();
    for output in member_outputs.drain(..) {
        let record = match &output {
            MemberOutput::Overdraft(alert) => {
                shared
                    .metrics
                    .alerts
                    .get_or_create(&AlertLabels {
                        kind: "points_overdraft",
                    })
                    .inc();
                if let Some(review) = shared
                    .fraud()
                    .as_ref()
                    .and_then(|f| ReviewAlert::overdraft_to_review(f, alert))
                {
                    fraud_outputs.push(FraudOutput::Raised(Box::new(review)));
                }
                book.push(AlertRecord {
                    family: "points".into(),
                    alert: Alert::PointsOverdraft((**alert).clone()),
                });
                continue;
            }
            MemberOutput::Tag(change) => {
                shared.metrics.member_tag_changes.inc();
                MemberLogRecord::TagChange(change)
            }
            MemberOutput::Erased(erased) => MemberLogRecord::MemberErased(erased),
            // For stores' member counts (the mart) only.
            MemberOutput::TagsMoved(_) => continue,
        };
        // These types always serialise.
        if let Ok(line) = serde_json::to_vec(&record) {
            member_lines.push(line);
        }
    }
    drop(book);
    for ((event_type, outcome), n) in counts {
        shared
            .metrics
            .processed
            .get_or_create(&ProcessedLabels {
                event_type,
                outcome,
            })
            .inc_by(n);
    }
    shared.metrics.dead_letters.inc_by(letters.len() as u64);
    if !mart.is_empty() {
        mart_batches.push(mart);
    }
    (letters, member_lines, mart_batches)
}

/// The `store_id` of a raw event, when it has a readable one (for a
/// rejected event's row; rejections are rare, so a full parse is fine).
pub fn sniff_store(payload: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(payload)
        .ok()
        .and_then(|v| {
            v.get("store_id")
                .and_then(|s| s.as_str())
                .map(str::to_owned)
        })
        .unwrap_or_default()
}

/// Derives the mart rows of one applied event from the event and what the
/// processors emitted for it; returns whether it erased a member.
#[allow(clippy::too_many_arguments)]
pub(crate) fn derive_rows(
    deriver: &RowDeriver,
    pos: EventPos,
    event: &storepulse_core::Event,
    inventory: &InventoryProcessor,
    members: Option<&MemberProcessor>,
    inventory_outputs: &[InventoryOutput],
    member_outputs: &[MemberOutput],
    fraud_outputs: &[FraudOutput],
    out: &mut MartBatch,
) -> bool {
    let canonical = event
        .member_id
        .as_ref()
        .and_then(|id| members.and_then(|m| m.canonical_of(id)))
        .map(|c| c.as_str());
    deriver.event(pos, event, canonical, out);
    let event_id = event.event_id.as_str();
    deriver.inventory_outputs(pos, event_id, inventory, inventory_outputs, out);
    let erased = derive_member_output_rows(deriver, pos, member_outputs, out);
    deriver.fraud_outputs(pos, fraud_outputs, out);
    erased
}

/// The mart rows of what the member processor emitted for the record at
/// `pos`: tag changes (at the favourite store each counts at, moved with
/// it), points overdrafts (as review alerts) and erasures. Returns whether
/// it erased a member. Shared by the embedded driver and the Kafka member
/// stage.
pub fn derive_member_output_rows(
    deriver: &RowDeriver,
    pos: EventPos,
    member_outputs: &[MemberOutput],
    out: &mut MartBatch,
) -> bool {
    let mut erased = false;
    for o in member_outputs {
        match o {
            MemberOutput::Tag(change) => deriver.tag_change(pos, change, out),
            MemberOutput::TagsMoved(moved) => deriver.tags_moved(pos, moved, out),
            MemberOutput::Overdraft(alert) => {
                deriver.fraud_alert(pos, &ReviewAlert::from_overdraft(alert), out);
            }
            MemberOutput::Erased(e) => {
                deriver.erasure(pos, e, out);
                erased = true;
            }
        }
    }
    erased
}

/// Appends the batch's mart rows to the mart log, retried until durable.
async fn send_mart_log(
    sink: &MartLogSink,
    batches: &[MartBatch],
    shutdown: &CancellationToken,
) -> Result<()> {
    let records: Vec<Vec<u8>> = batches
        .iter()
        .flat_map(|b| b.encode_parts(MART_RECORD_BYTES))
        .collect();
    if records.is_empty() {
        return Ok(());
    }
    until_durable("mart log", records.len(), shutdown, || {
        sink(records.clone())
    })
    .await
    .map_err(RuntimeError::MartLog)
}

/// Puts fraud outputs into the review queue and metrics; returns the
/// notices for the webhooks.
fn publish_fraud(
    shared: &Shared,
    fraud_outputs: &mut Vec<FraudOutput>,
    late_seen: &mut (u64, u64),
) -> Vec<AlertNotice> {
    if let Some(stats) = shared.fraud().as_ref().map(|f| f.stats().clone()) {
        let (evaluated, dropped) = *late_seen;
        for (label, now, before) in [
            ("true", stats.late_evaluated, evaluated),
            ("false", stats.late_dropped, dropped),
        ] {
            if now > before {
                shared
                    .metrics
                    .fraud_late_sales
                    .get_or_create(&LateLabels { evaluated: label })
                    .inc_by(now - before);
            }
        }
        *late_seen = (stats.late_evaluated, stats.late_dropped);
    }
    if fraud_outputs.is_empty() {
        return Vec::new();
    }
    let mut notices = Vec::with_capacity(fraud_outputs.len());
    let mut review = shared.review_mut();
    for output in fraud_outputs.drain(..) {
        match output {
            FraudOutput::Raised(alert) => {
                notices.push(AlertNotice::raised(&alert));
                shared
                    .metrics
                    .fraud_alerts
                    .get_or_create(&RuleLabels {
                        rule: alert.rule.clone(),
                    })
                    .inc();
                review.raise(*alert, None);
            }
            FraudOutput::Withdrawn(w) => {
                notices.push(AlertNotice::withdrawn(&w));
                shared.metrics.fraud_withdrawn.inc();
                review.withdraw(*w);
            }
        }
    }
    notices
}

async fn send_member_log<M: MemberLogSink>(
    sink: &M,
    records: Vec<Vec<u8>>,
    shutdown: &CancellationToken,
) -> Result<()> {
    until_durable("member log", records.len(), shutdown, || {
        sink.send(records.clone())
    })
    .await
    .map_err(RuntimeError::MemberLog)
}

async fn send_letters<D: DeadLetterSink>(
    sink: &D,
    letters: Vec<DeadLetter>,
    shutdown: &CancellationToken,
) -> Result<()> {
    until_durable("dead-letter sink", letters.len(), shutdown, || {
        sink.send(letters.clone())
    })
    .await
    .map_err(RuntimeError::DeadLetter)
}

/// Retries a write with backoff (100 ms doubling to 10 s) until it is
/// durable; gives up with the last error only once shutdown was asked for.
async fn until_durable<F, Fut>(
    what: &str,
    count: usize,
    shutdown: &CancellationToken,
    mut write: F,
) -> std::result::Result<(), String>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = std::result::Result<(), String>>,
{
    let mut backoff = Duration::from_millis(100);
    loop {
        match write().await {
            Ok(()) => return Ok(()),
            Err(e) => {
                warn!(error = %e, count, what, "write failed; retrying");
                if shutdown.is_cancelled() {
                    return Err(e);
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(10));
            }
        }
    }
}

/// A consistent copy of everything a checkpoint holds.
struct Snapshot {
    positions: Vec<SourcePosition>,
    inventory: InventoryState,
    members: Option<storepulse_processors::members::MemberState>,
    alerts: AlertBook,
    fraud: Option<(
        storepulse_processors::fraud::FraudState,
        crate::review::ReviewState,
    )>,
    taken_at: i64,
}

impl Snapshot {
    /// Copies the state as of `next`. The driver is the only writer, so the
    /// copy is consistent with the positions; copying (memory speed) is the
    /// only pause processing takes for a checkpoint.
    fn take(shared: &Shared, next: &BTreeMap<u32, u64>, spare: Option<InventoryState>) -> Self {
        let inventory = {
            let live = shared.inventory();
            match spare {
                Some(mut copy) => {
                    copy.clone_from(live.state());
                    copy
                }
                None => live.state().clone(),
            }
        };
        let members = shared.members().as_ref().map(|m| m.state().clone());
        let fraud = shared
            .fraud()
            .as_ref()
            .map(|f| (f.state().clone(), shared.review().state().clone()));
        Self {
            members,
            fraud,
            positions: next
                .iter()
                .map(|(&partition, &offset)| SourcePosition { partition, offset })
                .collect(),
            inventory,
            alerts: shared.alerts().clone(),
            taken_at: storepulse_core::time::now(),
        }
    }
}

/// What a finished checkpoint hands back: its positions, time and size, and
/// the state copy, whose memory the next snapshot reuses.
struct Written {
    positions: Vec<SourcePosition>,
    taken_at: i64,
    bytes: u64,
    spare: InventoryState,
}

/// A checkpoint being encoded and written on the blocking pool.
type CheckpointTask = tokio::task::JoinHandle<Result<Written>>;

fn start_checkpoint(store: CheckpointStore, snapshot: Snapshot) -> CheckpointTask {
    tokio::task::spawn_blocking(move || {
        let bytes = store.save(&CheckpointRef {
            positions: &snapshot.positions,
            inventory: &snapshot.inventory,
            members: snapshot.members.as_ref(),
            alerts: &snapshot.alerts,
            fraud: snapshot.fraud.as_ref().map(|(f, r)| (f, r)),
            taken_at: snapshot.taken_at,
        })?;
        Ok(Written {
            positions: snapshot.positions,
            taken_at: snapshot.taken_at,
            bytes,
            spare: snapshot.inventory,
        })
    })
}

/// Waits for a checkpoint to be durable, then tells the source.
async fn finish_checkpoint<S: EventSource>(
    source: &mut S,
    shared: &Shared,
    task: CheckpointTask,
) -> Result<InventoryState> {
    let Written {
        positions,
        taken_at,
        bytes,
        spare,
    } = task.await.map_err(|e| RuntimeError::CheckpointInvalid {
        path: "checkpoint.bin".into(),
        reason: format!("checkpoint task: {e}"),
    })??;
    source.commit(&positions).await?;
    shared.last_checkpoint.store(taken_at, Ordering::Release);
    shared.metrics.checkpoints.inc();
    let age_ms = (storepulse_core::time::now() - taken_at) / 1_000_000;
    debug!(bytes, age_ms, "checkpoint written");
    Ok(spare)
}
