//! `storepulse process`: the processors in a Kafka consumer group.
//!
//! **Partitioned state.** The events topic is keyed by `store_id`, so all of
//! a store's events sit in one partition, and each partition has its own
//! [`InventoryProcessor`] (its own event-time clock and de-duplication
//! window, like a Kafka Streams task). An instance holds the state of the
//! partitions the group assigned to it, and nothing else.
//!
//! **Effectively-once state.** Each partition's state is checkpointed with
//! the offset after the last record it reflects, to
//! `<state_dir>/<events topic>/p<N>/checkpoint.bin` (atomic rename, two
//! generations, CRC; the same files as the embedded mode). When the group
//! assigns a partition, its checkpoint is loaded and consumption starts at
//! the checkpoint's offset, not at the group's committed offset: every
//! record after the checkpoint is applied exactly once into the restored
//! state, whatever crashed where. The group's offsets are committed after
//! each checkpoint, for lag tooling only.
//!
//! **Outputs** (stock records, alerts, dead letters, forwarded events) go to
//! their topics through an idempotent producer that never times out. Each
//! output has a sequence number; a checkpoint copies one partition's state
//! (the only pause in processing) and is written on a thread of its own once every
//! output sent before the copy is acknowledged, so everything a checkpoint
//! covers has been delivered. Records after the checkpoint are
//! re-sent after a crash, with the same identities (see [`crate::records`]):
//! outputs are at-least-once with deterministic ids, which a reader turns
//! into exactly-once by keeping the newest `source` per key (the stock read
//! model does), or by `alert_id`. Kafka transactions would make the outputs
//! themselves exactly-once only if the state snapshot were inside the same
//! transaction; Tansu has none, and on Apache Kafka this design gives the
//! same guarantee without them (ARCHITECTURE.md).
//!
//! **Rebalances** use the eager protocol: a revoked partition gets its
//! pending outputs sent and flushed and a final checkpoint before the
//! revocation completes, so its next owner resumes exactly there. A
//! partition *lost* (this instance was thrown out of the group) is dropped
//! without a checkpoint; its next owner resumes from the last one.
//!
//! **Fraud rules** run where their key is whole (ARCHITECTURE.md "Fraud on
//! Kafka"): order-keyed rules beside inventory in the stock stage (an
//! order's sale is in its store's partition); member-keyed rules in each
//! member partition ([`MemberPartition::with_fraud`]); account-keyed rules
//! in a third stage, [`Stage::Accounts`], on `<p>.events.by-account`, to
//! which the stock stage forwards every applied sale that names a
//! `payment.account_ref` (keyed by it, murmur2). Each stage's fraud windows
//! are in its partitions' checkpoints (`Checkpoint::fraud`). Alerts raised
//! and withdrawn go to `<p>.alerts`, keyed by `alert_id`, as
//! `{"type":"alert.raised",...}` / `{"type":"alert.withdrawn",...}` (the
//! webhook bodies). The rules come from `<p>.fraud-rules` (see
//! [`crate::rules`]; the rules file at start while the topic is empty),
//! followed while running; each stage keeps the rules of its key kind.
//!
//! **Mart rows** (with `[mart] enabled`): each stage derives the rows of
//! what it applies with the embedded driver's `RowDeriver`, at the input
//! record's position in the stage's mart partition, and produces them per
//! applied batch to `<p>.mart` before the checkpoint covering them (see
//! [`crate::mart`]). With the mart on, the member stage does not tick its
//! partitions' clocks between records (a tick's tag changes would have no
//! stable position); they move with the input.
//!
//! **Read-model records** (`<p>.stock`, `<p>.members`) are coalesced per
//! applied batch (one record per changed stock entry), and a member
//! partition sends its changed persons at most once per
//! `kafka.member_snapshot_interval_ms` (see
//! `GroupContext::emit_after_batch`); every checkpoint sends what is
//! pending first.
//!
//! **Wrong partition.** An event whose `store_id` hashes elsewhere (a POS
//! producing with another partitioner) is forwarded, unchanged and keyed by
//! `store_id`, to the right partition, where it is applied; forwarded twice
//! after a crash, it is a duplicate there, dropped by `event_id`.

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::error::KafkaError as RdKafkaError;
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::types::{RDKafkaErrorCode, RDKafkaRespErr};
use rdkafka::ClientContext;
use rustc_hash::FxHashMap;
use storepulse_core::dead_letter::{DeadLetter, RejectedAt};
use storepulse_core::source::SourcePosition;
use storepulse_core::{EventParser, EventType};
use storepulse_mart::derive::{EventPos, RowDeriver};
use storepulse_processors::fraud::{
    FraudConfig, FraudOutput, FraudProcessor, FraudState, KeyKind, RuleSet,
};
use storepulse_processors::inventory::{
    InventoryConfig, InventoryOutput, InventoryProcessor, InventoryState, StockChange,
};
use storepulse_processors::members::ledger::Settlement;
use storepulse_processors::members::partitioned::{Control, MemberPartition, Routed};
use storepulse_processors::members::{
    MemberConfig, MemberOutput, MemberProcessor, MemberState, PersonChange,
};
use storepulse_processors::{Outcome, Processor};
use storepulse_runtime::alerts::{Alert, AlertBook, AlertRecord};
use storepulse_runtime::checkpoint::{CheckpointRef, CheckpointStore};
use storepulse_runtime::driver::{AlertNotice, MemberLogRecord};
use storepulse_runtime::metrics::{AlertLabels, PipelineMetrics, ProcessedLabels, RuleLabels};
use storepulse_runtime::review::ReviewState;
use tracing::{debug, error, info, warn};

use crate::config::KafkaConfig;
use crate::error::{KafkaError, Result};
use crate::lag::{HighWatermarks, STATISTICS_INTERVAL_MS};
use crate::mart::{
    derive_member_rows, derive_stock_rows, mart_partition, PendingRows, MART_TOPIC_PARTITION,
};
use crate::orphans::OrphanWatch;
use crate::partitioner::partition_for;
use crate::producer::dead_letter_headers;
use crate::records::{MemberSnapshot, SettlementSnapshot, SourceRef, StockRecord, HEADER_KIND};
use crate::topics::Topics;

/// Header on a forwarded event: where it was first read (`partition/offset`).
pub const HEADER_FORWARDED_FROM: &str = "storepulse.forwarded-from";
/// Header marking a control record between member partitions.
pub const HEADER_CONTROL: &str = "storepulse.control";

/// Which processors a `process` loop runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Inventory per store, on `<p>.events`; forwards member events to
    /// `<p>.events.by-member`.
    Stock,
    /// Members per person, on `<p>.events.by-member` (see
    /// `storepulse_processors::members::partitioned`), with the
    /// member-keyed fraud rules.
    Members,
    /// Account-keyed fraud rules per `payment.account_ref`, on
    /// `<p>.events.by-account`.
    Accounts,
}

impl Stage {
    /// The fraud rules this stage runs: the window rules of its key kind.
    pub fn fraud_key(self) -> KeyKind {
        match self {
            Stage::Stock => KeyKind::Order,
            Stage::Members => KeyKind::Member,
            Stage::Accounts => KeyKind::PaymentAccount,
        }
    }
}

/// Everything `process` needs besides the broker.
#[derive(Debug, Clone)]
pub struct ProcessSettings {
    pub kafka: KafkaConfig,
    pub topics: Topics,
    /// Partitions of the events topic (fixed; see [`KafkaConfig::partitions`]).
    pub partitions: u32,
    /// `<state_dir>`; checkpoints go to `<state_dir>/<events topic>/p<N>/`.
    pub state_dir: PathBuf,
    pub inventory: InventoryConfig,
    pub members: MemberConfig,
    /// `[fraud]` settings of the fraud processors.
    pub fraud: FraudConfig,
    /// The fraud rules at start when `<p>.fraud-rules` is still empty (all
    /// kinds; each stage keeps its own).
    pub rules: RuleSet,
    /// Which processors this loop runs.
    pub stage: Stage,
    /// Most records processed between output flushes. Default 2000.
    pub batch_size: usize,
    /// Time between two checkpoints of a partition (the partitions take
    /// turns; see [`checkpoint_pace`]).
    pub checkpoint_interval: Duration,
    /// Derive mart rows and produce them to `<p>.mart` (`[mart] enabled`);
    /// see [`crate::mart`].
    pub mart: Option<RowDeriver>,
}

impl ProcessSettings {
    /// The topic this loop consumes.
    pub fn input_topic(&self) -> &str {
        match self.stage {
            Stage::Stock => &self.topics.events,
            Stage::Members => &self.topics.events_by_member,
            Stage::Accounts => &self.topics.events_by_account,
        }
    }

    /// The consumer group of this loop.
    pub fn group_id(&self) -> String {
        match self.stage {
            Stage::Stock => self.kafka.group_id.clone(),
            Stage::Members => format!("{}-members", self.kafka.group_id),
            Stage::Accounts => format!("{}-accounts", self.kafka.group_id),
        }
    }
}

/// Labels of per-partition gauges.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PartitionLabels {
    pub partition: i32,
}

/// Labels of the broker round-trip gauges.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct QuantileLabels {
    pub quantile: &'static str,
}

/// Metrics of the Kafka processing loop (on top of [`PipelineMetrics`]).
#[derive(Debug, Clone)]
pub struct ProcessMetrics {
    pub pipeline: PipelineMetrics,
    /// High watermark minus the next offset to process, per owned partition.
    pub consumer_lag: Family<PartitionLabels, Gauge>,
    /// Partitions this instance owns now.
    pub owned_partitions: Gauge,
    /// Sum of `consumer_lag` over the owned partitions (ingest's
    /// back-pressure when it runs in the same process).
    pub total_lag: Gauge,
    /// Events forwarded to the partition of their store.
    pub forwarded: Counter,
    /// Partitions assigned / revoked / lost since start.
    pub rebalances: Counter,
    /// Time a checkpoint round takes (flush of outputs + writing every
    /// moved partition), during which this instance does not process.
    pub checkpoint_seconds: Histogram,
    /// 2 ms waits because the output producer's queue was full.
    pub output_queue_full_waits: Counter,
    /// From an event's broker timestamp to its processing (the first hop
    /// of the event-to-visible latency).
    pub input_age_seconds: Histogram,
    /// Round trip of the consumer's requests (mostly fetches) to the
    /// slowest broker, median and 99th percentile over librdkafka's last
    /// statistics window.
    pub broker_rtt_seconds: Family<QuantileLabels, Gauge<f64, AtomicU64>>,
    /// Records fetched and waiting for this stage in librdkafka's queue.
    pub fetch_queue_records: Gauge,
}

impl Default for ProcessMetrics {
    fn default() -> Self {
        Self {
            pipeline: PipelineMetrics::default(),
            consumer_lag: Family::default(),
            owned_partitions: Gauge::default(),
            total_lag: Gauge::default(),
            forwarded: Counter::default(),
            rebalances: Counter::default(),
            checkpoint_seconds: Histogram::new(exponential_buckets(0.001, 2.0, 16)),
            output_queue_full_waits: Counter::default(),
            input_age_seconds: Histogram::new(exponential_buckets(0.000_5, 1.5, 25)),
            broker_rtt_seconds: Family::default(),
            fetch_queue_records: Gauge::default(),
        }
    }
}

impl ProcessMetrics {
    /// Metrics that count processed events into `pipeline`.
    pub fn with_pipeline(pipeline: PipelineMetrics) -> Self {
        Self {
            pipeline,
            ..Self::default()
        }
    }
}

impl ProcessMetrics {
    /// Registers the Kafka metrics under `storepulse_` (the caller
    /// registers `pipeline` once, as it may share it with a read model).
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "storepulse_kafka_consumer_lag",
            "Records of the events topic not yet processed, per partition owned by this instance",
            self.consumer_lag.clone(),
        );
        registry.register(
            "storepulse_kafka_owned_partitions",
            "Partitions of the events topic this instance processes",
            self.owned_partitions.clone(),
        );
        registry.register(
            "storepulse_kafka_forwarded_events",
            "Events found in another partition than their store's, forwarded to it",
            self.forwarded.clone(),
        );
        registry.register(
            "storepulse_kafka_checkpoint_seconds",
            "Time of a checkpoint round (output flush and partition snapshots), a pause in processing",
            self.checkpoint_seconds.clone(),
        );
        registry.register(
            "storepulse_kafka_output_queue_full_waits",
            "2 ms waits because the output producer's queue was full",
            self.output_queue_full_waits.clone(),
        );
        registry.register(
            "storepulse_kafka_input_age_seconds",
            "From an event's broker timestamp to the processor applying it",
            self.input_age_seconds.clone(),
        );
        registry.register(
            "storepulse_kafka_broker_rtt_seconds",
            "Round trip of this stage's fetches to the slowest broker over librdkafka's last statistics window",
            self.broker_rtt_seconds.clone(),
        );
        registry.register(
            "storepulse_kafka_fetch_queue_records",
            "Records fetched from the broker and waiting for this stage",
            self.fetch_queue_records.clone(),
        );
        registry.register(
            "storepulse_kafka_rebalances",
            "Partition assignments and revocations seen",
            self.rebalances.clone(),
        );
    }
}

/// The processor of one partition.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // one per owned partition, never moved in a hot loop
enum Task {
    /// Inventory and the order-keyed fraud rules.
    Stock(InventoryProcessor, Box<FraudProcessor>),
    Members(Box<MemberPartition>),
    /// The account-keyed fraud rules.
    Accounts(Box<FraudProcessor>),
}

/// A copy of a task's state for a background checkpoint.
#[allow(clippy::large_enum_variant)] // one per partition per checkpoint
enum TaskCopy {
    Stock(InventoryState, Box<FraudState>),
    Members(Box<MemberState>, Option<Box<FraudState>>),
    Accounts(Box<FraudState>),
}

impl Task {
    fn copy(&self) -> TaskCopy {
        match self {
            Task::Stock(p, f) => TaskCopy::Stock(p.state().clone(), Box::new(f.state().clone())),
            Task::Members(m) => TaskCopy::Members(
                Box::new(m.state().clone()),
                m.fraud_state().map(|f| Box::new(f.clone())),
            ),
            Task::Accounts(f) => TaskCopy::Accounts(Box::new(f.state().clone())),
        }
    }

    fn size(&self) -> usize {
        match self {
            Task::Stock(p, _) => p.len(),
            Task::Members(m) => m.members.len(),
            Task::Accounts(f) => f.state().keys(),
        }
    }

    /// Installs a new rule set (the task keeps the rules of its kind).
    fn set_rules(&mut self, rules: &RuleSet, stage: Stage) {
        let own = rules.only(stage.fraud_key());
        match self {
            Task::Stock(_, f) | Task::Accounts(f) => f.set_rules(own),
            Task::Members(m) => {
                if let Some(f) = m.fraud_mut() {
                    f.set_rules(own);
                }
            }
        }
    }
}

/// Encodes and writes one partition's checkpoint.
fn write_checkpoint(
    store: &CheckpointStore,
    partition: i32,
    next: i64,
    task: &TaskCopyRef<'_>,
    blank: &InventoryState,
    taken_at: i64,
) -> Result<()> {
    let positions = [SourcePosition {
        partition: partition as u32,
        offset: next as u64,
    }];
    let alerts = AlertBook::new(1);
    // The review queue lives in `serve` (from `<p>.alerts`), not here.
    let review = ReviewState::default();
    let (inventory, members, fraud) = match task {
        TaskCopyRef::Stock(i, f) => (*i, None, Some(*f)),
        TaskCopyRef::Members(m, f) => (blank, Some(*m), *f),
        TaskCopyRef::Accounts(f) => (blank, None, Some(*f)),
    };
    store.save(&CheckpointRef {
        positions: &positions,
        inventory,
        members,
        alerts: &alerts,
        fraud: fraud.map(|f| (f, &review)),
        taken_at,
    })?;
    Ok(())
}

/// A borrowed task state to checkpoint.
enum TaskCopyRef<'a> {
    Stock(&'a InventoryState, &'a FraudState),
    Members(&'a MemberState, Option<&'a FraudState>),
    Accounts(&'a FraudState),
}

impl Task {
    fn as_copy_ref(&self) -> TaskCopyRef<'_> {
        match self {
            Task::Stock(p, f) => TaskCopyRef::Stock(p.state(), f.state()),
            Task::Members(m) => TaskCopyRef::Members(m.state(), m.fraud_state()),
            Task::Accounts(f) => TaskCopyRef::Accounts(f.state()),
        }
    }
}

impl TaskCopy {
    fn as_ref(&self) -> TaskCopyRef<'_> {
        match self {
            TaskCopy::Stock(i, f) => TaskCopyRef::Stock(i, f),
            TaskCopy::Members(m, f) => TaskCopyRef::Members(m, f.as_deref()),
            TaskCopy::Accounts(f) => TaskCopyRef::Accounts(f),
        }
    }
}

/// One owned partition: its processor and where it stands.
struct PartitionState {
    task: Task,
    /// Next offset to apply.
    next: i64,
    /// Offset of the last checkpoint (`next` when it was written).
    checkpointed: i64,
    /// When the last checkpoint of this partition was started (or the
    /// partition assigned): the oldest goes first.
    checkpoint_started: Instant,
    /// The settlement table as last sent to `<p>.members` (member
    /// partitions; `None` until the first send after assignment).
    settlement_sent: Option<Settlement>,
    store: CheckpointStore,
    /// Stock changed since the last emit: entry -> (change, source, ingest ms).
    pending: FxHashMap<(u16, u32), (StockChange, SourceRef, i64)>,
    /// The partition's first offset when it was assigned.
    low: i64,
    /// Whether a record arrived since the assignment (the first one is
    /// checked for a gap).
    first_seen: bool,
    /// Mart rows derived since the last emit (with the mart on).
    mart: PendingRows,
    /// When this member partition last sent its changed persons; see
    /// [`GroupContext::emit_after_batch`].
    persons_sent: Instant,
}

/// How many records before its checkpoint a partition is read again on
/// assignment. Tansu 0.6 answers a fetch from an offset inside a record
/// batch with the *next* batch, silently skipping the rest of the one asked
/// for (ARCHITECTURE.md); starting up to one batch early (librdkafka
/// producers batch at most `batch.num.messages` = 10,000 records) lands on
/// a batch start at or before the checkpoint. Apache Kafka returns the
/// whole batch anyway, so there it only costs re-reading these records.
pub const RESUME_REWIND: i64 = 10_000;

/// Which outputs the broker has acknowledged: every output gets a sequence
/// number when sent; `low` is the first one not yet acknowledged. A
/// checkpoint taken when `next_seq` was `S` may be written once `low >= S`:
/// everything the checkpointed state produced is delivered by then.
#[derive(Debug, Default)]
struct DeliveryTracker {
    base: u64,
    done: VecDeque<bool>,
}

impl DeliveryTracker {
    fn next_seq(&self) -> u64 {
        self.base + self.done.len() as u64
    }

    fn push(&mut self) -> u64 {
        let seq = self.next_seq();
        self.done.push_back(false);
        seq
    }

    fn mark(&mut self, seq: u64) {
        if let Some(slot) = seq
            .checked_sub(self.base)
            .and_then(|i| self.done.get_mut(i as usize))
        {
            *slot = true;
        }
        while self.done.front() == Some(&true) {
            self.done.pop_front();
            self.base += 1;
        }
    }
}

/// Output producer's context: acknowledged outputs, and a delivery that
/// failed for good.
#[derive(Default)]
struct OutputContext {
    failed: Mutex<Option<String>>,
    tracker: Mutex<DeliveryTracker>,
}

impl OutputContext {
    fn tracker(&self) -> MutexGuard<'_, DeliveryTracker> {
        self.tracker
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn failure(&self) -> Option<String> {
        self.failed.lock().ok().and_then(|s| s.clone())
    }

    /// Waits until every output sent before sequence `barrier` is
    /// acknowledged.
    fn wait_delivered(&self, barrier: u64, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(reason) = self.failure() {
                return Err(KafkaError::OutputLost(reason));
            }
            if self.tracker().base >= barrier {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(KafkaError::Timeout(timeout.as_millis() as u64));
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

impl ClientContext for OutputContext {}

impl ProducerContext for OutputContext {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, seq: Self::DeliveryOpaque) {
        if let Err((e, message)) = result {
            // With message.timeout.ms = 0 librdkafka retries transient
            // errors forever; what arrives here is permanent.
            let text = format!("output to {}: {e}", message.topic());
            error!(error = %text, "output delivery failed for good");
            if let Ok(mut slot) = self.failed.lock() {
                slot.get_or_insert(text);
            }
        }
        self.tracker().mark(seq as u64);
    }
}

/// A checkpoint being written in the background: the partition and the
/// offset it covers once it succeeds.
type CheckpointJob = std::thread::JoinHandle<Result<(i32, i64)>>;

type OutputProducer = ThreadedProducer<OutputContext>;

/// The consumer's context: owns the partition states, so that the
/// rebalance callback (which runs inside `poll` on the processing thread)
/// can checkpoint and load them.
struct GroupContext {
    settings: ProcessSettings,
    parser: EventParser,
    owned: Mutex<BTreeMap<i32, PartitionState>>,
    outputs: OutputProducer,
    metrics: ProcessMetrics,
    /// A failure inside a callback, returned by the loop.
    failure: Mutex<Option<KafkaError>>,
    /// The background checkpoint in progress, if any.
    in_flight: Mutex<Option<CheckpointJob>>,
    /// An empty inventory state (member checkpoints carry one).
    blank: Arc<InventoryState>,
    /// The fraud rules in force (all kinds).
    rules: Mutex<RuleSet>,
    /// The input partitions' high watermarks, from librdkafka's statistics
    /// (the lag gauges; no broker round trip on the stage's thread).
    high_watermarks: HighWatermarks,
}

impl ClientContext for GroupContext {
    fn stats_raw(&self, statistics: &[u8]) {
        match self.high_watermarks.record(statistics) {
            Ok(report) => {
                if let Some((p50, p99)) = report.broker_rtt {
                    for (quantile, value) in [("0.5", p50), ("0.99", p99)] {
                        self.metrics
                            .broker_rtt_seconds
                            .get_or_create(&QuantileLabels { quantile })
                            .set(value);
                    }
                }
                self.metrics.fetch_queue_records.set(report.fetch_queue);
            }
            Err(e) => {
                debug!(error = %e, "librdkafka statistics not understood; the lag, round-trip and fetch-queue gauges keep their last values");
            }
        }
    }
}

impl ConsumerContext for GroupContext {
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        self.metrics.rebalances.inc();
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                if let Err(e) = self.on_assign(consumer, tpl) {
                    error!(error = %e, "cannot take the assigned partitions");
                    self.fail(e);
                    // Take nothing: the loop stops and leaves the group.
                    let _ = consumer.unassign();
                    return;
                }
                if let Err(e) = consumer.assign(tpl) {
                    self.fail(KafkaError::client("assign")(e));
                }
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                let lost = consumer.assignment_lost();
                self.on_revoke(consumer, tpl, lost);
                if let Err(e) = consumer.unassign() {
                    warn!(error = %e, "unassign after revoke");
                }
            }
            other => {
                warn!(error = ?other, "rebalance error; dropping the assignment");
                self.on_revoke(consumer, tpl, true);
                let _ = consumer.unassign();
            }
        }
    }
}

impl GroupContext {
    fn fail(&self, e: KafkaError) {
        if let Ok(mut slot) = self.failure.lock() {
            slot.get_or_insert(e);
        }
    }

    fn owned(&self) -> MutexGuard<'_, BTreeMap<i32, PartitionState>> {
        self.owned
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn partition_dir(&self, partition: i32) -> PathBuf {
        partition_dir(
            &self.settings.state_dir,
            self.settings.input_topic(),
            partition,
        )
    }

    /// Loads each assigned partition's checkpoint and sets where its
    /// consumption starts.
    fn on_assign(&self, consumer: &BaseConsumer<Self>, tpl: &mut TopicPartitionList) -> Result<()> {
        let topic = self.settings.input_topic().to_owned();
        let partitions: Vec<i32> = tpl
            .elements_for_topic(&topic)
            .iter()
            .map(rdkafka::topic_partition_list::TopicPartitionListElem::partition)
            .collect();
        let mut owned = self.owned();
        for partition in partitions {
            let mut state = self.load_partition(consumer, partition)?;
            // Start a little before the checkpoint (see `RESUME_REWIND`);
            // records it already covers are skipped by offset.
            let offset = if state.next == 0 {
                Offset::Beginning
            } else {
                Offset::Offset(state.next.saturating_sub(RESUME_REWIND).max(state.low))
            };
            state.first_seen = false;
            tpl.set_partition_offset(&topic, partition, offset)
                .map_err(KafkaError::client("set start offset"))?;
            info!(
                partition,
                start = state.next,
                size = state.task.size(),
                "partition assigned"
            );
            owned.insert(partition, state);
        }
        self.metrics.owned_partitions.set(owned.len() as i64);
        Ok(())
    }

    fn load_partition(
        &self,
        consumer: &BaseConsumer<Self>,
        partition: i32,
    ) -> Result<PartitionState> {
        let topic = &self.settings.input_topic().to_owned();
        let store = CheckpointStore::open(&self.partition_dir(partition))?;
        let (low, _high) = consumer
            .fetch_watermarks(topic, partition, Duration::from_secs(10))
            .map_err(KafkaError::client("fetch watermarks"))?;
        let stores = self.parser.stores().clone();
        let state_error = |reason: String| KafkaError::State {
            topic: topic.clone(),
            partition,
            reason,
        };
        let loaded = match store.load() {
            Ok(loaded) => loaded,
            Err(e) if low == 0 => {
                warn!(partition, error = %e, "no usable checkpoint; rebuilding the partition's state from offset 0");
                None
            }
            Err(e) => return Err(e.into()),
        };
        let rules = self
            .rules
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .only(self.settings.stage.fraud_key());
        let fraud = |state: Option<FraudState>| -> Box<FraudProcessor> {
            let config = self.settings.fraud.clone();
            Box::new(match state {
                Some(state) => {
                    FraudProcessor::from_state(state, config, rules.clone(), stores.clone())
                }
                None => FraudProcessor::new(config, rules.clone(), stores.clone()),
            })
        };
        let members =
            |state: Option<MemberState>, fraud_state: Option<FraudState>| -> Result<Task> {
                let config = self.settings.members.clone();
                let processor = match state {
                    Some(state) => MemberProcessor::from_state(state, config, stores.clone()),
                    None => MemberProcessor::new(config, stores.clone()),
                }
                .map_err(state_error)?
                .tracking_changes();
                Ok(Task::Members(Box::new(
                    MemberPartition::new(
                        processor,
                        partition as u32,
                        self.settings.partitions,
                        partition_for,
                    )
                    .with_fraud(*fraud(fraud_state)),
                )))
            };
        let (task, next) = match loaded {
            None if low > 0 => {
                return Err(state_error(format!(
                    "no checkpoint, and the topic no longer holds offsets before {low} (retention): restore {} from a backup",
                    self.partition_dir(partition).display()
                )))
            }
            None => match self.settings.stage {
                Stage::Stock => (
                    Task::Stock(
                        InventoryProcessor::new(self.settings.inventory.clone(), stores.clone()),
                        fraud(None),
                    ),
                    0,
                ),
                Stage::Members => (members(None, None)?, 0),
                Stage::Accounts => (Task::Accounts(fraud(None)), 0),
            },
            Some(cp) => {
                let position = cp
                    .positions
                    .iter()
                    .find(|p| i64::from(p.partition) == i64::from(partition))
                    .copied()
                    .ok_or_else(|| {
                        state_error("the checkpoint in its directory is of another partition".into())
                    })?;
                let next = i64::try_from(position.offset).unwrap_or(i64::MAX);
                // No check against the high watermark: Tansu 0.6 reports the
                // start of the last batch + 1 there, below the true end. A
                // checkpoint past the real end (a re-created topic) fails at
                // the first fetch instead: `auto.offset.reset = error` turns
                // it into an error, never a silent restart from offset 0.
                if next < low {
                    return Err(state_error(format!(
                        "the checkpoint resumes at offset {next} but the topic starts at {low}: events in between were deleted by retention"
                    )));
                }
                // Checkpoints from before fraud ran on Kafka have no
                // windows: the rules start empty there.
                let fraud_state = cp.fraud.map(|(f, _)| f);
                let task = match self.settings.stage {
                    Stage::Stock => Task::Stock(
                        InventoryProcessor::from_state(
                            cp.inventory,
                            self.settings.inventory.clone(),
                            stores.clone(),
                        )
                        .map_err(state_error)?,
                        fraud(fraud_state),
                    ),
                    Stage::Members => members(cp.members, fraud_state)?,
                    Stage::Accounts => Task::Accounts(fraud(fraud_state)),
                };
                (task, next)
            }
        };
        Ok(PartitionState {
            task,
            next,
            checkpointed: next,
            checkpoint_started: Instant::now(),
            settlement_sent: None,
            store,
            pending: FxHashMap::default(),
            low,
            first_seen: false,
            mart: PendingRows::default(),
            persons_sent: Instant::now(),
        })
    }

    /// Sends pending outputs, flushes, checkpoints (unless `lost`) and drops
    /// the revoked partitions.
    fn on_revoke(&self, consumer: &BaseConsumer<Self>, tpl: &TopicPartitionList, lost: bool) {
        let topic = self.settings.input_topic().to_owned();
        let revoked: Vec<i32> = tpl
            .elements_for_topic(&topic)
            .iter()
            .map(rdkafka::topic_partition_list::TopicPartitionListElem::partition)
            .collect();
        let mut owned = self.owned();
        let mut taken: BTreeMap<i32, PartitionState> = revoked
            .iter()
            .filter_map(|p| owned.remove(p).map(|s| (*p, s)))
            .collect();
        self.metrics.owned_partitions.set(owned.len() as i64);
        for p in &revoked {
            self.metrics
                .consumer_lag
                .remove(&PartitionLabels { partition: *p });
            self.high_watermarks.forget(*p);
        }
        drop(owned);
        if lost {
            warn!(partitions = ?revoked, "partitions lost (left the group); their next owner resumes from their last checkpoint");
            return;
        }
        match self.checkpoint(&mut taken, Duration::from_secs(30)) {
            Ok(()) => {
                commit(consumer, &topic, &taken, CommitMode::Sync);
                info!(partitions = ?revoked, "partitions revoked after a final checkpoint");
            }
            Err(e) => {
                warn!(error = %e, partitions = ?revoked, "partitions revoked without a final checkpoint; their next owner resumes from the previous one");
            }
        }
    }

    /// Emits pending stock records of every partition in `parts`, waits for
    /// every output to be delivered, then writes the checkpoints of the
    /// partitions that moved.
    fn checkpoint(
        &self,
        parts: &mut BTreeMap<i32, PartitionState>,
        flush_timeout: Duration,
    ) -> Result<()> {
        let started = Instant::now();
        // One writer per partition directory at a time.
        if let Err(e) = self.join_in_flight() {
            debug!(error = %e, "background checkpoint failed; writing a new one");
        }
        for (partition, state) in parts.iter_mut() {
            self.emit_stock(*partition, state)?;
        }
        let barrier = self.outputs.context().tracker().next_seq();
        self.outputs
            .context()
            .wait_delivered(barrier, flush_timeout)?;
        let taken_at = storepulse_core::time::now();
        let blank = &*self.blank;
        let results: Vec<Result<()>> = std::thread::scope(|scope| {
            let handles: Vec<_> = parts
                .iter()
                .filter(|(_, s)| s.next != s.checkpointed)
                .map(|(partition, state)| {
                    scope.spawn(move || -> Result<()> {
                        write_checkpoint(
                            &state.store,
                            *partition,
                            state.next,
                            &state.task.as_copy_ref(),
                            blank,
                            taken_at,
                        )
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join().unwrap_or_else(|_| {
                        Err(KafkaError::Config("checkpoint thread panicked".into()))
                    })
                })
                .collect()
        });
        for r in results {
            r?;
        }
        for state in parts.values_mut() {
            if state.next != state.checkpointed {
                state.checkpointed = state.next;
                self.metrics.pipeline.checkpoints.inc();
            }
        }
        self.metrics
            .checkpoint_seconds
            .observe(started.elapsed().as_secs_f64());
        Ok(())
    }

    /// Starts a checkpoint of the partition that moved and whose last
    /// checkpoint is the oldest, written on a thread of its own once its
    /// outputs are acknowledged: processing pauses only to emit pending
    /// stock records and copy that one state. Returns how long the pause
    /// was (zero when no partition moved).
    ///
    /// One partition at a time (the loop paces them, see [`run`]) keeps
    /// each pause short: copying every partition at once stalled a stage
    /// for ~1 s at 20,000 events/s, and every record queued behind it.
    fn start_checkpoint(&self, parts: &mut BTreeMap<i32, PartitionState>) -> Result<Duration> {
        let started = Instant::now();
        let Some((&partition, state)) = parts
            .iter_mut()
            .filter(|(_, s)| s.next != s.checkpointed)
            .min_by_key(|(_, s)| s.checkpoint_started)
        else {
            return Ok(Duration::ZERO);
        };
        self.emit_stock(partition, state)?;
        state.checkpoint_started = started;
        let outputs = self.outputs.context().clone();
        let barrier = outputs.tracker().next_seq();
        let (next, task, store) = (state.next, state.task.copy(), state.store.clone());
        let blank = self.blank.clone();
        let job = std::thread::Builder::new()
            .name("storepulse-checkpoint".into())
            .spawn(move || -> Result<(i32, i64)> {
                outputs.wait_delivered(barrier, Duration::from_secs(120))?;
                let taken_at = storepulse_core::time::now();
                write_checkpoint(&store, partition, next, &task.as_ref(), &blank, taken_at)?;
                Ok((partition, next))
            })
            .map_err(|e| KafkaError::Config(format!("checkpoint thread: {e}")))?;
        *self
            .in_flight
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(job);
        let paused = started.elapsed();
        self.metrics
            .checkpoint_seconds
            .observe(paused.as_secs_f64());
        Ok(paused)
    }

    /// Takes the background checkpoint if it finished (or, with `wait`,
    /// waits for it); returns what it wrote.
    fn take_in_flight(&self, wait: bool) -> Option<Result<(i32, i64)>> {
        let mut slot = self
            .in_flight
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if !wait
            && !slot
                .as_ref()
                .is_some_and(std::thread::JoinHandle::is_finished)
        {
            return None;
        }
        let job = slot.take()?;
        drop(slot);
        Some(
            job.join()
                .unwrap_or_else(|_| Err(KafkaError::Config("checkpoint thread panicked".into()))),
        )
    }

    /// Waits for a background checkpoint, discarding what it covers (the
    /// caller writes newer ones).
    fn join_in_flight(&self) -> Result<()> {
        match self.take_in_flight(true) {
            Some(r) => r.map(|_| ()),
            None => Ok(()),
        }
    }

    /// Sends the partition's pending mart rows (one record per applied
    /// batch, cut after erasures) and the stock records of the entries
    /// changed since the last emit. Called before every checkpoint, so
    /// everything a checkpoint covers is delivered.
    fn emit_stock(&self, partition: i32, state: &mut PartitionState) -> Result<()> {
        self.emit_mart(partition, &mut state.mart)?;
        let processor = match &mut state.task {
            Task::Stock(processor, _) => processor,
            Task::Members(members) => {
                state.persons_sent = Instant::now();
                return self.emit_persons(partition, members, &mut state.settlement_sent);
            }
            Task::Accounts(_) => return Ok(()),
        };
        if state.pending.is_empty() {
            return Ok(());
        }
        let clock = processor.clock().unwrap_or(0);
        let mut pending = std::mem::take(&mut state.pending);
        for (_, (change, source, ingested_at_ms)) in pending.drain() {
            let Some((store_id, sku, snapshot)) = processor.snapshot_of(&change) else {
                continue;
            };
            let record = StockRecord {
                store_id: store_id.to_owned(),
                sku: sku.to_owned(),
                on_hand: snapshot.on_hand,
                updated_at: snapshot.updated_at,
                sold_day: snapshot.sold_day,
                sold: snapshot.sold,
                clock,
                source,
                ingested_at_ms,
            };
            let value = serde_json::to_vec(&record)
                .map_err(|e| KafkaError::Config(format!("encode stock record: {e}")))?;
            let key = StockRecord::key(store_id, sku);
            self.send(
                &self.settings.topics.stock,
                Some(partition),
                &key,
                &value,
                None,
            )?;
        }
        state.pending = pending;
        Ok(())
    }

    /// The outputs after an applied batch: [`Self::emit_stock`], except
    /// that a member partition sends its changed persons to `<p>.members`
    /// only once `kafka.member_snapshot_interval_ms` has passed since it
    /// last did (its mart rows go at once). A person changed several times
    /// in between is sent once, whole, with its latest state, as Kafka
    /// Streams' record cache does in front of a table. The checkpoint and
    /// handover paths call [`Self::emit_stock`], which sends everything
    /// pending, so a checkpoint never covers a change not yet sent.
    ///
    /// Stock records are sent after every batch: a 100 ms interval for them
    /// cut `<p>.stock`'s records by only 16 % at 20,000 events/s
    /// (BENCHMARKS.md), not worth the later stock answers.
    fn emit_after_batch(
        &self,
        partition: i32,
        state: &mut PartitionState,
        now: Instant,
    ) -> Result<()> {
        let interval = Duration::from_millis(self.settings.kafka.member_snapshot_interval_ms);
        if matches!(state.task, Task::Members(_))
            && now.saturating_duration_since(state.persons_sent) < interval
        {
            return self.emit_mart(partition, &mut state.mart);
        }
        self.emit_stock(partition, state)
    }

    /// Produces a partition's pending mart rows to `<p>.mart` (its only
    /// partition; keyed by the mart partition).
    fn emit_mart(&self, partition: i32, pending: &mut PendingRows) -> Result<()> {
        if pending.is_empty() {
            return Ok(());
        }
        let key = mart_partition(self.settings.stage, partition).to_string();
        let records = pending.take_records();
        debug!(partition, records = records.len(), "mart rows produced");
        for record in &records {
            self.send(
                &self.settings.topics.mart,
                Some(MART_TOPIC_PARTITION),
                &key,
                record,
                None,
            )?;
        }
        Ok(())
    }

    /// The mart position of an input record of this stage.
    fn mart_pos(&self, source: SourceRef) -> EventPos {
        EventPos {
            partition: mart_partition(self.settings.stage, source.partition as i32),
            offset: source.offset,
        }
    }

    /// Dead-letters a record the stage rejected, with its mart row
    /// (`rejected_events`, stage `processor`) when the mart is on.
    #[allow(clippy::too_many_arguments)]
    fn reject(
        &self,
        mart: &mut PendingRows,
        source: SourceRef,
        key: &str,
        store_id: &str,
        reason: &str,
        event_id: Option<String>,
        payload: &[u8],
    ) -> Result<()> {
        if let Some(deriver) = &self.settings.mart {
            deriver.rejected(
                self.mart_pos(source),
                event_id.as_deref(),
                "processor",
                reason,
                store_id,
                &String::from_utf8_lossy(payload),
                storepulse_core::time::now(),
                mart.current(),
            );
        }
        self.dead_letter(source, key, reason, event_id, payload)
    }

    /// Sends the persons changed since the last emit to `<p>.members`
    /// (tombstones for keys no longer held), then the partition's
    /// settlement table when anything changed.
    fn emit_persons(
        &self,
        partition: i32,
        members: &mut MemberPartition,
        settlement_sent: &mut Option<Settlement>,
    ) -> Result<()> {
        let clock = members.members.clock();
        let mut records: Vec<(String, Option<Vec<u8>>)> = Vec::new();
        let mut failed = None;
        members.members.drain_changes(|change| match change {
            PersonChange::Put(key, person) => match MemberSnapshot::encode(person, clock) {
                Ok(v) => records.push((key, Some(v))),
                Err(e) => failed = Some(e),
            },
            PersonChange::Retire(key) => records.push((key, None)),
        });
        if let Some(e) = failed {
            return Err(KafkaError::Config(format!("encode member snapshot: {e}")));
        }
        if records.is_empty() {
            return Ok(());
        }
        let topic = &self.settings.topics.members;
        for (key, value) in &records {
            match value {
                Some(v) => self.send(topic, None, key, v, None)?,
                None => self.send_record(topic, None, key, None, None)?,
            }
        }
        // The table only when it changed since it was last sent (it grows
        // by day; most batches do not touch it).
        let current = members.members.settlement_table();
        if settlement_sent.as_ref() == Some(current) {
            return Ok(());
        }
        let table = SettlementSnapshot::of(partition as u32, current);
        let value = serde_json::to_vec(&table)
            .map_err(|e| KafkaError::Config(format!("encode settlement: {e}")))?;
        let headers = OwnedHeaders::new().insert(Header {
            key: HEADER_KIND,
            value: Some("settlement"),
        });
        self.send(topic, None, &format!("p{partition}"), &value, Some(headers))?;
        *settlement_sent = Some(members.members.settlement_table().clone());
        Ok(())
    }

    /// Produces one output, waiting while the producer's queue is full.
    fn send(
        &self,
        topic: &str,
        partition: Option<i32>,
        key: &str,
        value: &[u8],
        headers: Option<OwnedHeaders>,
    ) -> Result<()> {
        self.send_record(topic, partition, key, Some(value), headers)
    }

    /// [`Self::send`], or a tombstone when `value` is `None`.
    fn send_record(
        &self,
        topic: &str,
        partition: Option<i32>,
        key: &str,
        value: Option<&[u8]>,
        headers: Option<OwnedHeaders>,
    ) -> Result<()> {
        let seq = self.outputs.context().tracker().push();
        let mut record: BaseRecord<'_, str, [u8], usize> =
            BaseRecord::with_opaque_to(topic, seq as usize).key(key);
        if let Some(value) = value {
            record = record.payload(value);
        }
        if let Some(p) = partition {
            record = record.partition(p);
        }
        if let Some(h) = headers {
            record = record.headers(h);
        }
        let mut waited = Duration::ZERO;
        loop {
            match self.outputs.send(record) {
                Ok(()) => return Ok(()),
                Err((RdKafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    if waited >= Duration::from_secs(10) && waited.as_millis() % 10_000 < 2 {
                        warn!(
                            topic,
                            waited_s = waited.as_secs(),
                            "output queue full (broker away?); waiting"
                        );
                    }
                    std::thread::sleep(Duration::from_millis(2));
                    waited += Duration::from_millis(2);
                    self.metrics.output_queue_full_waits.inc();
                }
                Err((e, _)) => return Err(KafkaError::client("produce output")(e)),
            }
        }
    }

    /// Parses and applies one record of `partition`, producing its outputs.
    #[allow(clippy::too_many_arguments)]
    fn process(
        &self,
        partition: i32,
        state: &mut PartitionState,
        offset: i64,
        payload: Option<&[u8]>,
        control: bool,
        ingested_at_ms: i64,
        outputs: &mut Vec<InventoryOutput>,
    ) -> Result<()> {
        let source = SourceRef {
            partition: partition as u32,
            offset: offset as u64,
        };
        let Some(payload) = payload else {
            return self.dead_letter(source, "", "message: has no value", None, b"");
        };
        match &mut state.task {
            Task::Members(members) => {
                return self.process_member(
                    partition,
                    members,
                    &mut state.mart,
                    source,
                    payload,
                    control,
                )
            }
            Task::Accounts(fraud) => {
                return self.process_account(fraud, &mut state.mart, source, payload, control)
            }
            Task::Stock(..) => {}
        }
        let event = match self.parser.parse(payload) {
            Ok(event) => event,
            Err(rejection) => {
                self.count(EventType::sniff(payload), "rejected", 1);
                let reason = rejection.reason();
                let store = storepulse_runtime::driver::sniff_store(payload);
                return self.reject(
                    &mut state.mart,
                    source,
                    "",
                    &store,
                    &reason,
                    rejection.event_id,
                    payload,
                );
            }
        };
        let store_id = self.parser.stores().id(event.store);
        let home = partition_for(store_id.as_bytes(), self.settings.partitions) as i32;
        if home != partition {
            let headers = OwnedHeaders::new().insert(Header {
                key: HEADER_FORWARDED_FROM,
                value: Some(&format!("{partition}/{offset}")),
            });
            self.send(
                &self.settings.topics.events,
                Some(home),
                store_id,
                payload,
                Some(headers),
            )?;
            self.metrics.forwarded.inc();
            return Ok(());
        }
        let kind = event.event_type();
        outputs.clear();
        let Task::Stock(processor, fraud) = &mut state.task else {
            return Ok(());
        };
        match processor.apply(&event, outputs) {
            Ok(outcome) => {
                let label = match outcome {
                    Outcome::Duplicate => "duplicate",
                    Outcome::Applied | Outcome::Ignored => "applied",
                };
                self.count(kind.as_str(), label, 1);
                if outcome != Outcome::Duplicate {
                    // Order-keyed rules here; the others where their key
                    // is whole (forwarded once, after the event applied).
                    let mut fraud_outputs = Vec::new();
                    fraud.apply_sale(&event, None, &mut fraud_outputs);
                    if let Some(deriver) = &self.settings.mart {
                        derive_stock_rows(
                            deriver,
                            self.mart_pos(source),
                            &event,
                            processor,
                            outputs,
                            &fraud_outputs,
                            state.mart.current(),
                        );
                    }
                    self.emit_fraud(fraud_outputs)?;
                    self.route_to_members(&event, payload)?;
                    self.route_to_accounts(&event, payload)?;
                }
            }
            Err(rejection) => {
                self.count(kind.as_str(), "rejected", 1);
                let reason = rejection.reason();
                return self.reject(
                    &mut state.mart,
                    source,
                    store_id,
                    store_id,
                    &reason,
                    rejection.event_id,
                    payload,
                );
            }
        }
        for output in outputs.drain(..) {
            match output {
                InventoryOutput::Changed(change) => {
                    state.pending.insert(
                        (change.store.0, change.sku),
                        (change, source, ingested_at_ms),
                    );
                }
                InventoryOutput::Alert(alert) => {
                    self.metrics
                        .pipeline
                        .alerts
                        .get_or_create(&AlertLabels {
                            kind: alert.kind.as_str(),
                        })
                        .inc();
                    let record = AlertRecord {
                        family: "stock".into(),
                        alert: Alert::Stock(*alert),
                    };
                    let value = serde_json::to_vec(&record)
                        .map_err(|e| KafkaError::Config(format!("encode alert: {e}")))?;
                    self.send(
                        &self.settings.topics.alerts,
                        None,
                        record.alert_id(),
                        &value,
                        None,
                    )?;
                }
            }
        }
        Ok(())
    }

    /// Sends an event that names a member to `<p>.events.by-member`, keyed
    /// (and partitioned) by its raw `member_id`.
    fn route_to_members(&self, event: &storepulse_core::Event, payload: &[u8]) -> Result<()> {
        let Some(member) = &event.member_id else {
            return Ok(());
        };
        if !matches!(
            event.event_type(),
            EventType::Sale
                | EventType::Return
                | EventType::PointsRedeem
                | EventType::MemberRegister
                | EventType::MemberErase
        ) {
            return Ok(());
        }
        self.forward_keyed(&self.settings.topics.events_by_member, member, payload)
    }

    /// Sends `payload` to `topic` keyed by `key`, in the key's partition
    /// (murmur2, the events topic's partition count).
    fn forward_keyed(&self, topic: &str, key: &str, payload: &[u8]) -> Result<()> {
        let partition = partition_for(key.as_bytes(), self.settings.partitions) as i32;
        self.send(topic, Some(partition), key, payload, None)
    }

    /// Sends a sale paid with a `payment.account_ref` to
    /// `<p>.events.by-account`, keyed (and partitioned) by the account.
    fn route_to_accounts(&self, event: &storepulse_core::Event, payload: &[u8]) -> Result<()> {
        let storepulse_core::EventBody::Sale(sale) = &event.body else {
            return Ok(());
        };
        let Some(account) = &sale.payment.account_ref else {
            return Ok(());
        };
        self.forward_keyed(&self.settings.topics.events_by_account, account, payload)
    }

    /// Applies one record of an account partition: a sale, or the stock
    /// stage's clock. A sale forwarded twice (a stock partition re-done
    /// after a crash) is a duplicate in its key's window, dropped by
    /// `event_id`.
    fn process_account(
        &self,
        fraud: &mut FraudProcessor,
        mart: &mut PendingRows,
        source: SourceRef,
        payload: &[u8],
        control: bool,
    ) -> Result<()> {
        if control {
            return match serde_json::from_slice::<Control>(payload) {
                Ok(Control::Clock { at }) => {
                    fraud.advance(at);
                    Ok(())
                }
                Ok(_) => Ok(()),
                Err(e) => {
                    let reason = format!("control record: {e}");
                    self.dead_letter(source, "", &reason, None, payload)
                }
            };
        }
        let event = match self.parser.parse(payload) {
            Ok(event) => event,
            Err(rejection) => {
                self.count(EventType::sniff(payload), "rejected", 1);
                let reason = rejection.reason();
                return self.dead_letter(source, "", &reason, rejection.event_id, payload);
            }
        };
        self.count(event.event_type().as_str(), "applied", 1);
        let mut outputs = Vec::new();
        fraud.apply_sale(&event, None, &mut outputs);
        if let Some(deriver) = &self.settings.mart {
            deriver.fraud_outputs(self.mart_pos(source), &outputs, mart.current());
        }
        self.emit_fraud(outputs)
    }

    /// Sends fraud outputs to `<p>.alerts`, keyed by `alert_id`: the
    /// webhook bodies, `{"type":"alert.raised","rule":..,"alert":{..}}` and
    /// `{"type":"alert.withdrawn","rule":..,"withdrawn":{..}}`. On the
    /// compacted topic the last record of an alert id says whether it
    /// stands.
    fn emit_fraud(&self, outputs: Vec<FraudOutput>) -> Result<()> {
        for output in outputs {
            let (key, notice) = match &output {
                FraudOutput::Raised(alert) => {
                    self.metrics
                        .pipeline
                        .fraud_alerts
                        .get_or_create(&RuleLabels {
                            rule: alert.rule.clone(),
                        })
                        .inc();
                    (&alert.alert_id, AlertNotice::raised(alert))
                }
                FraudOutput::Withdrawn(w) => {
                    self.metrics.pipeline.fraud_withdrawn.inc();
                    (&w.alert_id, AlertNotice::withdrawn(w))
                }
            };
            self.send(&self.settings.topics.alerts, None, key, &notice.body, None)?;
        }
        Ok(())
    }

    /// Installs rules published on `<p>.fraud-rules` in every owned
    /// partition (each keeps the rules of its stage's key kind; a rule
    /// whose definition is unchanged keeps its windows).
    fn install_rules(&self, rules: RuleSet) {
        {
            let mut current = self
                .rules
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if rules.specs() == current.specs() {
                return;
            }
            *current = rules.clone();
            // Not holding `rules` while taking `owned` (assignment takes
            // them the other way round).
        }
        info!(
            rules = rules.rules().len(),
            "fraud rules installed from the rules topic"
        );
        for state in self.owned().values_mut() {
            state.task.set_rules(&rules, self.settings.stage);
        }
    }

    /// Applies one record of a member partition: an event, or a control
    /// record from another member partition.
    fn process_member(
        &self,
        partition: i32,
        members: &mut MemberPartition,
        mart: &mut PendingRows,
        source: SourceRef,
        payload: &[u8],
        control: bool,
    ) -> Result<()> {
        let mut outputs = Vec::new();
        let mut routed = Vec::new();
        let mut key = String::new();
        // The event applied here (not forwarded to the partition its id
        // moved to, which derives its rows when it applies it).
        let mut applied_here = None;
        if control {
            match serde_json::from_slice::<Control>(payload) {
                Ok(c) => {
                    let handover = match &c {
                        Control::Handover {
                            member_id,
                            phone,
                            registered_at,
                            registration_id,
                            store_id,
                            channel,
                            ..
                        } => Some((
                            member_id.clone(),
                            phone.clone(),
                            *registered_at,
                            registration_id.clone(),
                            store_id.clone(),
                            channel.clone(),
                        )),
                        _ => None,
                    };
                    let applied = members.apply_control(c, &mut outputs, &mut routed);
                    // The registration's row, here where the person lives:
                    // ordered with its later erasure, which is derived here
                    // too.
                    if let (true, Some(deriver), Some(h)) = (applied, &self.settings.mart, handover)
                    {
                        let (member_id, phone, at, event_id, store_id, channel) = h;
                        let canonical = members
                            .members
                            .canonical_of(&member_id)
                            .map_or_else(|| member_id.to_string(), ToString::to_string);
                        deriver.registration(
                            self.mart_pos(source),
                            &member_id,
                            &canonical,
                            &phone,
                            &event_id,
                            &store_id,
                            &channel,
                            at,
                            mart.current(),
                        );
                    }
                }
                Err(e) => {
                    let reason = format!("control record: {e}");
                    return self.dead_letter(source, "", &reason, None, payload);
                }
            }
        } else {
            let event = match self.parser.parse(payload) {
                Ok(event) => event,
                Err(rejection) => {
                    self.count(EventType::sniff(payload), "rejected", 1);
                    let reason = rejection.reason();
                    return self.dead_letter(source, "", &reason, rejection.event_id, payload);
                }
            };
            key = event.member_id.as_deref().unwrap_or_default().to_owned();
            let kind = event.event_type();
            match members.apply(&event, &mut outputs, &mut routed) {
                Ok(outcome) => {
                    let label = match outcome {
                        Outcome::Duplicate => "duplicate",
                        Outcome::Applied | Outcome::Ignored => "applied",
                    };
                    self.count(kind.as_str(), label, 1);
                    // Rows of an event forwarded, or of a registration
                    // handed over, come from the partition it went to.
                    let forwarded = routed.iter().any(|r| {
                        matches!(r, Routed::Forward { .. })
                            || matches!(r, Routed::Control { control, .. } if matches!(**control, Control::Handover { .. }))
                    });
                    if outcome != Outcome::Duplicate && !forwarded {
                        applied_here = Some(event);
                    }
                }
                Err(rejection) => {
                    self.count(kind.as_str(), "rejected", 1);
                    let reason = rejection.reason();
                    let store = self.parser.stores().id(event.store).to_owned();
                    return self.reject(
                        mart,
                        source,
                        &key,
                        &store,
                        &reason,
                        rejection.event_id,
                        payload,
                    );
                }
            }
        }
        let fraud_outputs = members.drain_fraud();
        if let Some(deriver) = &self.settings.mart {
            let erased = derive_member_rows(
                deriver,
                self.mart_pos(source),
                applied_here.as_ref(),
                &members.members,
                &outputs,
                &fraud_outputs,
                mart.current(),
            );
            if erased {
                mart.cut();
            }
        }
        self.emit_fraud(fraud_outputs)?;
        for r in routed {
            match r {
                Routed::Forward { partition: to } => {
                    let headers = OwnedHeaders::new().insert(Header {
                        key: HEADER_FORWARDED_FROM,
                        value: Some(&format!("{partition}/{}", source.offset)),
                    });
                    self.send(
                        &self.settings.topics.events_by_member,
                        Some(to as i32),
                        &key,
                        payload,
                        Some(headers),
                    )?;
                    self.metrics.forwarded.inc();
                }
                Routed::Control {
                    partition: to,
                    control,
                } => {
                    let member = match &*control {
                        Control::Handover { member_id, .. } | Control::Forget { member_id, .. } => {
                            member_id.to_string()
                        }
                        Control::Clock { .. } => String::new(),
                    };
                    self.send_control(to, &member, &control)?;
                }
            }
        }
        self.emit_members(outputs)
    }

    /// Sends member outputs: tag changes and erasures to `<p>.member-tags`,
    /// overdraft alerts to `<p>.alerts`.
    fn emit_members(&self, outputs: Vec<MemberOutput>) -> Result<()> {
        for output in outputs {
            let (topic, key, value) = match &output {
                MemberOutput::Tag(change) => {
                    self.metrics.pipeline.member_tag_changes.inc();
                    (
                        &self.settings.topics.member_tags,
                        change.member_id.to_string(),
                        serde_json::to_vec(&MemberLogRecord::TagChange(change)),
                    )
                }
                MemberOutput::Erased(erased) => (
                    &self.settings.topics.member_tags,
                    erased.member_id.to_string(),
                    serde_json::to_vec(&MemberLogRecord::MemberErased(erased)),
                ),
                // For stores' member counts (the mart rows) only.
                MemberOutput::TagsMoved(_) => continue,
                MemberOutput::Overdraft(alert) => {
                    self.metrics
                        .pipeline
                        .alerts
                        .get_or_create(&AlertLabels {
                            kind: "points_overdraft",
                        })
                        .inc();
                    let record = AlertRecord {
                        family: "points".into(),
                        alert: Alert::PointsOverdraft((**alert).clone()),
                    };
                    (
                        &self.settings.topics.alerts,
                        alert.alert_id.clone(),
                        serde_json::to_vec(&record),
                    )
                }
            };
            let value =
                value.map_err(|e| KafkaError::Config(format!("encode member output: {e}")))?;
            self.send(topic, None, &key, &value, None)?;
        }
        Ok(())
    }

    /// Stock stage: tells every member and account partition the newest
    /// event time of the owned stock partitions when it moved on (once per
    /// batch at most).
    fn broadcast_clock(&self, last: &mut i64) -> Result<()> {
        let newest = self
            .owned()
            .values()
            .filter_map(|s| match &s.task {
                Task::Stock(p, _) => p.clock(),
                Task::Members(_) | Task::Accounts(_) => None,
            })
            .max();
        let Some(newest) = newest else {
            return Ok(());
        };
        if newest <= *last {
            return Ok(());
        }
        *last = newest;
        let clock = Control::Clock { at: newest };
        for partition in 0..self.settings.partitions {
            self.send_control(partition, "", &clock)?;
        }
        // The account partitions get the same clock (as a control record
        // on their topic), so their windows expire and late sales are
        // judged against the pipeline's clock, not only their own sales'.
        let value = serde_json::to_vec(&clock)
            .map_err(|e| KafkaError::Config(format!("encode control record: {e}")))?;
        for partition in 0..self.settings.partitions {
            let headers = OwnedHeaders::new().insert(Header {
                key: HEADER_CONTROL,
                value: Some("1"),
            });
            self.send(
                &self.settings.topics.events_by_account,
                Some(partition as i32),
                "",
                &value,
                Some(headers),
            )?;
        }
        Ok(())
    }

    /// Produces a control record to one partition of `<p>.events.by-member`.
    fn send_control(&self, partition: u32, key: &str, control: &Control) -> Result<()> {
        let value = serde_json::to_vec(control)
            .map_err(|e| KafkaError::Config(format!("encode control record: {e}")))?;
        let headers = OwnedHeaders::new().insert(Header {
            key: HEADER_CONTROL,
            value: Some("1"),
        });
        self.send(
            &self.settings.topics.events_by_member,
            Some(partition as i32),
            key,
            &value,
            Some(headers),
        )
    }

    /// Moves every owned member partition's clock to the newest among them,
    /// so that tags change with time on quiet partitions too.
    fn tick_members(&self) -> Result<()> {
        let mut owned = self.owned();
        let newest = owned
            .values()
            .filter_map(|s| match &s.task {
                Task::Members(m) => Some(m.members.clock()),
                Task::Stock(..) | Task::Accounts(_) => None,
            })
            .max();
        let Some(newest) = newest else {
            return Ok(());
        };
        let mut outputs = Vec::new();
        for state in owned.values_mut() {
            if let Task::Members(m) = &mut state.task {
                m.tick(newest, &mut outputs);
            }
        }
        drop(owned);
        self.emit_members(outputs)
    }

    fn count(&self, event_type: &'static str, outcome: &'static str, n: u64) {
        self.metrics
            .pipeline
            .processed
            .get_or_create(&ProcessedLabels {
                event_type,
                outcome,
            })
            .inc_by(n);
    }

    fn dead_letter(
        &self,
        source: SourceRef,
        key: &str,
        reason: &str,
        event_id: Option<String>,
        payload: &[u8],
    ) -> Result<()> {
        let mut letter =
            DeadLetter::new(RejectedAt::Processor, reason.to_owned(), event_id, payload);
        letter.partition = Some(source.partition);
        letter.offset = Some(source.offset);
        let value = serde_json::to_vec(&letter)
            .map_err(|e| KafkaError::Config(format!("encode dead letter: {e}")))?;
        let origin = format!(
            "{}/{}/{}",
            self.settings.input_topic(),
            source.partition,
            source.offset
        );
        let headers = dead_letter_headers(&letter, Some(&origin));
        debug!(
            partition = source.partition,
            offset = source.offset,
            reason,
            "dead letter"
        );
        self.metrics.pipeline.dead_letters.inc();
        self.send(&self.settings.topics.dlq, None, key, &value, Some(headers))
    }
}

/// Commits the next offsets of `parts` to the group (for lag tooling; the
/// checkpoints are what consumption resumes from).
fn commit(
    consumer: &BaseConsumer<GroupContext>,
    topic: &str,
    parts: &BTreeMap<i32, PartitionState>,
    mode: CommitMode,
) {
    let mut tpl = TopicPartitionList::new();
    for (partition, state) in parts {
        if state.checkpointed > 0 {
            let _ = tpl.add_partition_offset(topic, *partition, Offset::Offset(state.checkpointed));
        }
    }
    if tpl.count() == 0 {
        return;
    }
    if let Err(e) = consumer.commit(&tpl, mode) {
        debug!(error = %e, "offset commit failed (harmless: checkpoints hold the positions)");
    }
}

/// Directory of a partition's checkpoints.
pub fn partition_dir(state_dir: &Path, events_topic: &str, partition: i32) -> PathBuf {
    state_dir.join(events_topic).join(format!("p{partition}"))
}

/// Runs the processors until `stop` is set, then checkpoints every owned
/// partition and leaves the group. Blocking: run it on its own thread.
///
/// # Errors
/// librdkafka refuses the configuration; a partition's state cannot be
/// used (see [`KafkaError::State`]); an output fails for good; a
/// checkpoint cannot be written.
pub fn run(
    settings: ProcessSettings,
    parser: EventParser,
    metrics: ProcessMetrics,
    stop: Arc<AtomicBool>,
) -> Result<()> {
    // Every log line of this loop says which stage it is.
    let span = tracing::info_span!("process", stage = ?settings.stage);
    let _entered = span.enter();
    let outputs: OutputProducer = crate::client::producer(&settings.kafka, "storepulse-process", 0)
        .create_with_context(OutputContext::default())
        .map_err(KafkaError::client("output producer"))?;
    let topic = settings.input_topic().to_owned();
    let group_id = settings.group_id();
    let blank = Arc::new(
        InventoryProcessor::new(InventoryConfig::default(), parser.stores().clone())
            .state()
            .clone(),
    );
    let batch_size = settings.batch_size.max(1);
    let interval = settings.checkpoint_interval;
    // The newest published rules, else those of the rules file.
    let (mut rules_feed, published) = crate::rules::RulesFeed::open(
        &settings.kafka,
        &settings.topics.fraud_rules,
        parser.stores(),
        Duration::from_secs(10),
    )?;
    let rules = published.unwrap_or_else(|| settings.rules.clone());
    let context = GroupContext {
        settings,
        parser,
        owned: Mutex::new(BTreeMap::new()),
        outputs,
        metrics: metrics.clone(),
        failure: Mutex::new(None),
        in_flight: Mutex::new(None),
        blank,
        rules: Mutex::new(rules),
        high_watermarks: HighWatermarks::new(topic.clone()),
    };
    let mut client =
        crate::client::consumer(&context.settings.kafka, "storepulse-process", &group_id);
    if client.get("statistics.interval.ms").is_none() {
        client.set("statistics.interval.ms", STATISTICS_INTERVAL_MS);
    }
    let consumer: BaseConsumer<GroupContext> = client
        .create_with_context(context)
        .map_err(KafkaError::client("consumer"))?;
    consumer
        .subscribe(&[&topic])
        .map_err(KafkaError::client("subscribe"))?;
    info!(topic = %topic, group = %group_id, "processing: joined the consumer group");

    let mut outputs_buf: Vec<InventoryOutput> = Vec::new();
    let mut last_checkpoint = Instant::now();
    let mut pace = interval;
    let mut last_lag = Instant::now();
    let mut last_clock = i64::MIN;
    let mut last_rules = Instant::now();
    let settings = &consumer.context().settings;
    let watch = OrphanWatch::start(
        &crate::client::consumer(&settings.kafka, "storepulse-orphan-watch", &group_id),
        &topic,
        settings.partitions,
        Duration::from_millis(settings.kafka.session_timeout_ms) * 2,
    )?;
    let mut rejoin = false;
    let result = loop {
        if stop.load(Ordering::Acquire) {
            break Ok(());
        }
        if let Some(e) = consumer
            .context()
            .failure
            .lock()
            .ok()
            .and_then(|mut f| f.take())
        {
            break Err(e);
        }
        // A batch: wait up to 100 ms for the first record, then take what
        // is already fetched, up to the batch size.
        let mut taken = 0;
        let mut wait = Duration::from_millis(100);
        let mut failed = None;
        while taken < batch_size {
            let Some(polled) = consumer.poll(wait) else {
                break;
            };
            wait = Duration::ZERO;
            let message = match polled {
                Ok(m) => m,
                Err(RdKafkaError::MessageConsumption(RDKafkaErrorCode::OffsetOutOfRange)) => {
                    failed = Some(KafkaError::State {
                        topic: topic.clone(),
                        partition: -1,
                        reason: "a partition's checkpoint resumes outside the offsets the topic holds (topic re-created, or retention deleted unprocessed events): move its state directory away to start over, or restore the topic".into(),
                    });
                    break;
                }
                Err(e) => {
                    // Transport errors: librdkafka reconnects by itself.
                    debug!(error = %e, "consumer error");
                    continue;
                }
            };
            taken += 1;
            let ctx = consumer.context();
            let mut owned = ctx.owned();
            let partition = message.partition();
            let Some(state) = owned.get_mut(&partition) else {
                continue; // fetched before a revocation
            };
            let offset = message.offset();
            if !state.first_seen {
                state.first_seen = true;
                if offset > state.next {
                    failed = Some(KafkaError::State {
                        topic: topic.clone(),
                        partition,
                        reason: format!(
                            "the broker delivered offset {offset} first, but the state resumes at {}: records in between were skipped (a broker that drops part of a batch on a mid-batch fetch?)",
                            state.next
                        ),
                    });
                    break;
                }
            }
            if offset < state.next {
                continue; // already reflected in the state
            }
            let ingested_at_ms = message.timestamp().to_millis().unwrap_or(0);
            if ingested_at_ms > 0 && taken % 16 == 1 {
                let age_ms = storepulse_core::time::now() / 1_000_000 - ingested_at_ms;
                ctx.metrics
                    .input_age_seconds
                    .observe(age_ms.max(0) as f64 / 1000.0);
            }
            let control = message
                .headers()
                .is_some_and(|h| h.iter().any(|h| h.key == HEADER_CONTROL));
            if let Err(e) = ctx.process(
                partition,
                state,
                offset,
                message.payload(),
                control,
                ingested_at_ms,
                &mut outputs_buf,
            ) {
                failed = Some(e);
                break;
            }
            state.next = offset + 1;
        }
        if let Some(e) = failed {
            break Err(e);
        }
        let ctx = consumer.context();
        {
            let mut owned = ctx.owned();
            let now = Instant::now();
            for (partition, state) in owned.iter_mut() {
                if let Err(e) = ctx.emit_after_batch(*partition, state, now) {
                    failed = Some(e);
                    break;
                }
            }
        }
        if failed.is_none() && taken > 0 {
            let ticked = match ctx.settings.stage {
                // With the mart on, a member partition's clock moves with
                // its input only (events and the stock stage's broadcast
                // clock): a tick between records would give its tag
                // changes positions that differ after a restart.
                Stage::Members if ctx.settings.mart.is_some() => Ok(()),
                Stage::Members => ctx.tick_members(),
                Stage::Stock => ctx.broadcast_clock(&mut last_clock),
                Stage::Accounts => Ok(()),
            };
            if let Err(e) = ticked {
                failed = Some(e);
            }
        }
        if let Some(e) = failed {
            break Err(e);
        }
        match ctx.take_in_flight(false) {
            None => {}
            Some(Ok((partition, next))) => {
                let mut owned = ctx.owned();
                if let Some(state) = owned.get_mut(&partition) {
                    if state.checkpointed < next {
                        state.checkpointed = next;
                        ctx.metrics.pipeline.checkpoints.inc();
                    }
                }
                commit(&consumer, &topic, &owned, CommitMode::Async);
            }
            Some(Err(e @ KafkaError::OutputLost(_))) => break Err(e),
            Some(Err(e)) if e.retry_hint() == storepulse_core::RetryHint::Backoff => {
                warn!(error = %e, "checkpoint postponed; retrying at the next interval");
            }
            Some(Err(e)) => break Err(e),
        }
        if last_checkpoint.elapsed() >= pace && ctx.in_flight.lock().is_ok_and(|j| j.is_none()) {
            let mut owned = ctx.owned();
            let paused = match ctx.start_checkpoint(&mut owned) {
                Ok(paused) => paused,
                Err(e) => break Err(e),
            };
            pace = checkpoint_pace(interval, owned.len(), paused);
            last_checkpoint = Instant::now();
        }
        if last_rules.elapsed() >= Duration::from_millis(500) {
            if let Some(rules) = rules_feed.poll(ctx.parser.stores()) {
                ctx.install_rules(rules);
            }
            last_rules = Instant::now();
        }
        if last_lag.elapsed() >= Duration::from_secs(1) {
            update_lag(ctx);
            watch.set_owned(ctx.owned().keys().copied());
            last_lag = Instant::now();
        }
        let orphaned = watch.take_orphaned();
        if !orphaned.is_empty() {
            warn!(partitions = ?orphaned, "partitions owned by a member that stopped, and the broker did not reassign them; rejoining the group");
            rejoin = true;
            break Ok(());
        }
    };
    // Final checkpoint, then leave the group (the revoke callback that
    // unsubscribing triggers finds nothing left to write).
    let ctx = consumer.context();
    if result.is_ok() {
        let mut owned = ctx.owned();
        match ctx.checkpoint(&mut owned, Duration::from_secs(30)) {
            Ok(()) => {
                commit(&consumer, &topic, &owned, CommitMode::Sync);
                info!(
                    partitions = owned.len(),
                    "processing stopped after a final checkpoint"
                );
            }
            Err(e) => {
                warn!(error = %e, "no final checkpoint (outputs undelivered); the next owner resumes from the previous one");
            }
        }
        owned.clear();
    } else {
        // Whatever is not checkpointed is redone by the next owner. A
        // background checkpoint still running finishes first, so that no
        // two writers share a partition directory.
        if let Err(e) = ctx.join_in_flight() {
            debug!(error = %e, "background checkpoint failed at exit");
        }
        ctx.owned().clear();
    }
    consumer.unsubscribe();
    drop(consumer);
    if rejoin {
        return Err(KafkaError::Rejoin);
    }
    result
}

/// The time from one partition's checkpoint to the next: the interval
/// shared among the owned partitions, so each is checkpointed about once
/// per `interval`, but at least ten times the last pause, so copying states
/// takes at most a tenth of a stage's time however large they grow
/// (checkpoints of large states space out instead of starving processing;
/// a restart then re-reads more input, as with Flink's minimum pause
/// between checkpoints).
fn checkpoint_pace(interval: Duration, owned: usize, last_pause: Duration) -> Duration {
    let share = interval / u32::try_from(owned.max(1)).unwrap_or(u32::MAX);
    share.max(last_pause.saturating_mul(10))
}

/// Sets the lag gauges from the high watermarks librdkafka's statistics
/// last reported (see [`crate::lag`]): no request to the broker, so a slow
/// broker never pauses the stage here. A partition whose watermark is not
/// known yet keeps no gauge; with the broker away the values stay as the
/// last fetches left them.
fn update_lag(ctx: &GroupContext) {
    let owned: Vec<(i32, i64)> = ctx.owned().iter().map(|(p, s)| (*p, s.next)).collect();
    let mut total = 0;
    for (partition, next) in owned {
        if let Some(lag) = ctx.high_watermarks.lag(partition, next) {
            total += lag;
            ctx.metrics
                .consumer_lag
                .get_or_create(&PartitionLabels { partition })
                .set(lag);
        }
    }
    ctx.metrics.total_lag.set(total);
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{checkpoint_pace, DeliveryTracker};

    #[test]
    fn checkpoints_share_the_interval_but_never_take_more_than_a_tenth() {
        let interval = Duration::from_secs(5);
        // 12 partitions take turns: one every 5/12 s, each every 5 s.
        assert_eq!(
            checkpoint_pace(interval, 12, Duration::from_millis(5)),
            interval / 12
        );
        // A copy that paused the stage 100 ms: the next in 1 s.
        assert_eq!(
            checkpoint_pace(interval, 12, Duration::from_millis(100)),
            Duration::from_secs(1)
        );
        // No partition owned yet: the whole interval.
        assert_eq!(checkpoint_pace(interval, 0, Duration::ZERO), interval);
    }

    #[test]
    fn tracker_low_mark_waits_for_the_oldest_unacknowledged_output() {
        let mut t = DeliveryTracker::default();
        let seqs: Vec<u64> = (0..5).map(|_| t.push()).collect();
        assert_eq!(seqs, vec![0, 1, 2, 3, 4]);
        assert_eq!((t.base, t.next_seq()), (0, 5));
        // Acknowledgements out of order (other partitions first).
        t.mark(3);
        t.mark(1);
        assert_eq!(t.base, 0, "0 is still in flight");
        t.mark(0);
        assert_eq!(t.base, 2, "0 and 1 done, 2 in flight");
        t.mark(2);
        assert_eq!(t.base, 4);
        // A repeated or stale report changes nothing.
        t.mark(1);
        t.mark(3);
        assert_eq!(t.base, 4);
        t.mark(4);
        assert_eq!((t.base, t.next_seq()), (5, 5));
        assert_eq!(t.push(), 5);
    }
}
