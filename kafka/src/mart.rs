//! The mart in Kafka mode: the stages' rows on `<p>.mart`, and the topic as
//! the [`EventSource`] of the mart sink loop.
//!
//! **Producing (each `process` stage).** A stage derives the mart rows of
//! every record it applies with the embedded driver's
//! [`RowDeriver`](storepulse_mart::derive::RowDeriver), each row at the
//! position of its input record: the *mart partition*
//! ([`mart_partition`]: the input topic partition plus a per-stage offset,
//! so the stages never share one) and the input offset. The rows of one
//! input partition are collected per applied batch ([`PendingRows`], cut
//! after each erasure as embedded) and produced as postcard
//! [`MartBatch`] records, the encoding of the embedded mart log, to the
//! single partition of `<p>.mart`, before the checkpoint that covers them
//! (the stage's delivery barrier). After a crash a stage resumes from its
//! checkpoint with the same state and the same input, so it derives the
//! same rows at the same positions, which the sink drops.
//!
//! **Consuming (the designated `serve`).** [`MartTopicSource`] reads that
//! partition for `storepulse_mart::sink::MartSink::run`: `seek` to the
//! sink's cursor (or the group's committed offset, whichever is further),
//! `commit` after the store acknowledged. One partition keeps every mart
//! partition's rows in the order they were produced, which the sink's
//! "drop at or below the stored position" rule needs.
//!
//! Limits: reading resumes [`RESUME_REWIND`] records early (Tansu 0.6
//! skips the rest of a batch on a mid-batch fetch) and skips what the
//! cursor covers; the lag gauge uses the broker's high watermark, which
//! Tansu reports low.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use storepulse_core::source::{EventSource, SourcePosition, SourceRecord};
use storepulse_core::Event;
use storepulse_core::RetryHint;
use storepulse_mart::derive::{EventPos, RowDeriver};
use storepulse_mart::rows::MartBatch;
use storepulse_processors::fraud::FraudOutput;
use storepulse_processors::inventory::{InventoryOutput, InventoryProcessor};
use storepulse_processors::members::{MemberOutput, MemberProcessor};
use storepulse_runtime::driver::derive_member_output_rows;
use tracing::{info, warn};

use crate::config::KafkaConfig;
use crate::error::{KafkaError, Result};
use crate::process::Stage;

/// How far apart the stages' mart partitions are: a stage's input
/// partition `p` writes mart partition `stage base + p`. Stock `p`,
/// members `1_000_000 + p`, accounts `2_000_000 + p` (far below the
/// embedded side feeds' `u32::MAX - 1` and `u32::MAX`).
pub const STAGE_STRIDE: u32 = 1_000_000;

/// Largest mart record produced (under Kafka's default `message.max.bytes`
/// of 1,000,000 with room for headers and batch overhead).
pub const MART_RECORD_BYTES: usize = 900 * 1024;

/// Records read again before the cursor on seek (see
/// [`crate::process::RESUME_REWIND`]).
pub const RESUME_REWIND: u64 = crate::process::RESUME_REWIND as u64;

/// The only partition of `<p>.mart`.
pub const MART_TOPIC_PARTITION: i32 = 0;

/// The mart partition of a stage's input partition.
pub fn mart_partition(stage: Stage, input_partition: i32) -> u32 {
    let base = match stage {
        Stage::Stock => 0,
        Stage::Members => STAGE_STRIDE,
        Stage::Accounts => 2 * STAGE_STRIDE,
    };
    // Partition numbers are small and never negative.
    base + u32::try_from(input_partition).unwrap_or(0)
}

/// The stock stage's rows of an applied event: its sale and return lines
/// and stock changes, the stock levels and stock alerts inventory emitted,
/// and the order-keyed fraud alerts. Points and registrations are left to
/// the member stage, which knows the canonical member id; sale and return
/// lines carry the event's own `member_id` (no dashboard query reads it;
/// an erasure blanks every alias).
#[allow(clippy::too_many_arguments)]
pub fn derive_stock_rows(
    deriver: &RowDeriver,
    pos: EventPos,
    event: &Event,
    inventory: &InventoryProcessor,
    inventory_outputs: &[InventoryOutput],
    fraud_outputs: &[FraudOutput],
    out: &mut MartBatch,
) {
    let mut own = MartBatch::default();
    deriver.event(pos, event, None, &mut own);
    out.sale_lines.append(&mut own.sale_lines);
    out.return_lines.append(&mut own.return_lines);
    out.stock_changes.append(&mut own.stock_changes);
    let event_id = event.event_id.as_str();
    deriver.inventory_outputs(pos, event_id, inventory, inventory_outputs, out);
    deriver.fraud_outputs(pos, fraud_outputs, out);
}

/// The member stage's rows of one record of a member partition: with
/// `event` (applied in this partition), its points entries and
/// registration under the canonical id; then the tag changes (with the
/// member's favourite store), overdraft alerts and erasures the member
/// processor emitted (for an event, a handover or a forget), and the
/// member-keyed fraud alerts. Returns whether a member was erased (the
/// caller cuts the batch there).
pub fn derive_member_rows(
    deriver: &RowDeriver,
    pos: EventPos,
    event: Option<&Event>,
    members: &MemberProcessor,
    member_outputs: &[MemberOutput],
    fraud_outputs: &[FraudOutput],
    out: &mut MartBatch,
) -> bool {
    if let Some(event) = event {
        let canonical = event
            .member_id
            .as_ref()
            .and_then(|id| members.canonical_of(id))
            .map(|c| c.as_str());
        let mut own = MartBatch::default();
        deriver.event(pos, event, canonical, &mut own);
        out.points_ledger.append(&mut own.points_ledger);
        out.member_registrations
            .append(&mut own.member_registrations);
    }
    let erased = derive_member_output_rows(deriver, pos, member_outputs, out);
    deriver.fraud_outputs(pos, fraud_outputs, out);
    erased
}

/// The rows of one input partition since its last emit: batches cut after
/// each erasure, so the sink applies an erasure after exactly the rows
/// before it.
#[derive(Debug, Default)]
pub struct PendingRows {
    batches: Vec<MartBatch>,
}

impl PendingRows {
    /// The batch rows go to now.
    pub fn current(&mut self) -> &mut MartBatch {
        if self.batches.is_empty() {
            self.batches.push(MartBatch::default());
        }
        let last = self.batches.len() - 1;
        &mut self.batches[last]
    }

    /// Ends the current batch (after an erasure).
    pub fn cut(&mut self) {
        self.batches.push(MartBatch::default());
    }

    /// Whether no rows wait.
    pub fn is_empty(&self) -> bool {
        self.batches.iter().all(MartBatch::is_empty)
    }

    /// The waiting rows as mart records (postcard, at most
    /// [`MART_RECORD_BYTES`] each), emptied.
    pub fn take_records(&mut self) -> Vec<Vec<u8>> {
        std::mem::take(&mut self.batches)
            .iter()
            .filter(|b| !b.is_empty())
            .flat_map(|b| b.encode_parts(MART_RECORD_BYTES))
            .collect()
    }
}

/// `<p>.mart` as the mart sink's source: partition 0, read with consumer
/// group `<group_id>-mart` (offsets committed after the store acknowledged).
pub struct MartTopicSource {
    consumer: StreamConsumer,
    reading: Reading,
}

/// Where reading stands (apart from the consumer, which messages borrow).
struct Reading {
    topic: String,
    /// The first offset the sink wants; earlier records (the rewind) are
    /// skipped.
    want: u64,
    /// Whether a record arrived since the last seek (the first is checked
    /// for a gap).
    first_seen: bool,
    /// The topic's end as far as seen.
    end: Arc<AtomicU64>,
}

fn source_error(retry: RetryHint) -> impl FnOnce(String) -> storepulse_core::Error {
    move |reason| storepulse_core::Error::Source { reason, retry }
}

impl MartTopicSource {
    /// A consumer of `topic` (not yet positioned: the sink seeks).
    ///
    /// # Errors
    /// The client cannot be created.
    pub fn new(config: &KafkaConfig, topic: &str) -> Result<Self> {
        let consumer: StreamConsumer = crate::client::consumer(
            config,
            "storepulse-mart-sink",
            &format!("{}-mart", config.group_id),
        )
        .create()
        .map_err(KafkaError::client("mart consumer"))?;
        Ok(Self {
            consumer,
            reading: Reading {
                topic: topic.to_owned(),
                want: 0,
                first_seen: false,
                end: Arc::default(),
            },
        })
    }

    /// The topic's end as last seen (for the sink's lag gauge).
    pub fn end_offset(&self) -> Arc<AtomicU64> {
        self.reading.end.clone()
    }

    fn watermarks(&self) -> std::result::Result<(i64, i64), String> {
        self.consumer
            .fetch_watermarks(
                &self.reading.topic,
                MART_TOPIC_PARTITION,
                Duration::from_secs(10),
            )
            .map_err(|e| format!("{}: watermarks: {e}", self.reading.topic))
    }

    fn committed(&self) -> Option<u64> {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition(&self.reading.topic, MART_TOPIC_PARTITION);
        let committed = self
            .consumer
            .committed_offsets(tpl, Duration::from_secs(10))
            .ok()?;
        match committed
            .find_partition(&self.reading.topic, MART_TOPIC_PARTITION)?
            .offset()
        {
            Offset::Offset(o) if o >= 0 => u64::try_from(o).ok(),
            _ => None,
        }
    }

    fn seek_blocking(&mut self, positions: &[SourcePosition]) -> storepulse_core::Result<()> {
        let asked = positions
            .iter()
            .find(|p| p.partition == 0)
            .map(|p| p.offset);
        let (low, high) = self
            .watermarks()
            .map_err(source_error(RetryHint::Backoff))?;
        let low = u64::try_from(low).unwrap_or(0);
        self.reading
            .end
            .store(u64::try_from(high).unwrap_or(0), Ordering::Release);
        // The group's offset counts when this machine's cursor is behind
        // (a sink moved to a new data directory).
        let want = match asked {
            None => low,
            Some(o) => o.max(self.committed().unwrap_or(0)),
        };
        if want < low {
            warn!(want, low, topic = %self.reading.topic, "mart records before the topic's start were deleted by retention before the sink read them");
        }
        let want = want.max(low);
        let start = want.saturating_sub(RESUME_REWIND).max(low);
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(
            &self.reading.topic,
            MART_TOPIC_PARTITION,
            Offset::Offset(i64::try_from(start).unwrap_or(i64::MAX)),
        )
        .map_err(|e| source_error(RetryHint::Never)(e.to_string()))?;
        self.consumer
            .assign(&tpl)
            .map_err(|e| source_error(RetryHint::Backoff)(format!("assign: {e}")))?;
        self.reading.want = want;
        self.reading.first_seen = false;
        info!(topic = %self.reading.topic, want, start, "mart sink reading the mart topic");
        Ok(())
    }
}

impl Reading {
    /// Takes one message into `out` unless it is before `want`.
    fn take(
        &mut self,
        message: &rdkafka::message::BorrowedMessage<'_>,
        out: &mut Vec<SourceRecord>,
    ) -> storepulse_core::Result<()> {
        let offset = u64::try_from(message.offset()).unwrap_or(0);
        if !self.first_seen {
            self.first_seen = true;
            if offset > self.want {
                return Err(source_error(RetryHint::Never)(format!(
                    "{}: the broker delivered offset {offset} first, but the sink resumes at {}: records in between were skipped",
                    self.topic, self.want
                )));
            }
        }
        if offset < self.want {
            return Ok(());
        }
        self.want = offset + 1;
        self.end.fetch_max(offset + 1, Ordering::AcqRel);
        out.push(SourceRecord {
            position: SourcePosition {
                partition: 0,
                offset,
            },
            payload: message.payload().unwrap_or_default().to_vec(),
        });
        Ok(())
    }
}

impl EventSource for MartTopicSource {
    fn seek(
        &mut self,
        positions: &[SourcePosition],
    ) -> impl Future<Output = storepulse_core::Result<()>> + Send {
        // Metadata and committed-offset requests block for a round trip;
        // this runs once per sink start.
        let result = tokio::task::block_in_place(|| self.seek_blocking(positions));
        async move { result }
    }

    async fn next_batch(
        &mut self,
        max: usize,
        out: &mut Vec<SourceRecord>,
        shutdown: impl Future<Output = ()> + Send,
    ) -> storepulse_core::Result<()> {
        let first = tokio::select! {
            () = shutdown => return Ok(()),
            m = self.consumer.recv() => m,
        };
        let message =
            first.map_err(|e| source_error(RetryHint::Backoff)(format!("mart topic: {e}")))?;
        self.reading.take(&message, out)?;
        drop(message);
        while out.len() < max {
            match tokio::time::timeout(Duration::ZERO, self.consumer.recv()).await {
                Ok(Ok(message)) => self.reading.take(&message, out)?,
                Ok(Err(e)) => {
                    warn!(error = %e, "mart topic read");
                    break;
                }
                Err(_) => break,
            }
        }
        Ok(())
    }

    fn commit(
        &mut self,
        positions: &[SourcePosition],
    ) -> impl Future<Output = storepulse_core::Result<()>> + Send {
        let result = positions
            .iter()
            .find(|p| p.partition == 0)
            .map_or(Ok(()), |p| {
                let mut tpl = TopicPartitionList::new();
                tpl.add_partition_offset(
                    &self.reading.topic,
                    MART_TOPIC_PARTITION,
                    Offset::Offset(i64::try_from(p.offset).unwrap_or(i64::MAX)),
                )
                .and_then(|()| self.consumer.commit(&tpl, CommitMode::Async))
                .map_err(|e| source_error(RetryHint::Backoff)(format!("commit: {e}")))
            });
        async move { result }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use storepulse_mart::rows::Erasure;

    #[test]
    fn stages_never_share_a_mart_partition() {
        let mut seen = std::collections::BTreeSet::new();
        for stage in [Stage::Stock, Stage::Members, Stage::Accounts] {
            for p in 0..1000 {
                assert!(seen.insert(mart_partition(stage, p)), "{stage:?} {p}");
            }
        }
        assert_eq!(mart_partition(Stage::Stock, 3), 3);
        assert_eq!(mart_partition(Stage::Members, 3), 1_000_003);
        assert_eq!(mart_partition(Stage::Accounts, 3), 2_000_003);
        assert!(seen
            .iter()
            .all(|p| *p < storepulse_mart::rows::INGEST_DLQ_PARTITION));
    }

    fn sale(id: &str, store: &str, member: &str) -> Vec<u8> {
        serde_json::json!({
            "v": 1, "event_id": id, "event_type": "sale",
            "occurred_at": "2026-11-25T08:30:00+08:00",
            "store_id": store, "channel": "pos", "member_id": member, "order_id": format!("o-{id}"),
            "lines": [{"sku": "S", "qty": 2, "unit_price_cents": 3000},
                      {"sku": "T", "qty": 1, "unit_price_cents": 1000}],
            "total_cents": 7000, "payment": {"method": "cash"},
        })
        .to_string()
        .into_bytes()
    }

    /// Stock and member stage rows of one sale, from the given states.
    fn derive_both(
        deriver: &RowDeriver,
        parser: &storepulse_core::EventParser,
        inventory: &mut InventoryProcessor,
        members: &mut MemberProcessor,
        payload: &[u8],
        offset: u64,
    ) -> (MartBatch, MartBatch) {
        use storepulse_processors::Processor;
        let event = parser.parse(payload).unwrap();
        let mut inv_out = Vec::new();
        inventory.apply(&event, &mut inv_out).unwrap();
        let mut stock = MartBatch::default();
        let pos = EventPos {
            partition: mart_partition(Stage::Stock, 2),
            offset,
        };
        derive_stock_rows(deriver, pos, &event, inventory, &inv_out, &[], &mut stock);
        let mut member_out = Vec::new();
        members.apply(&event, &mut member_out).unwrap();
        let mut member = MartBatch::default();
        let pos = EventPos {
            partition: mart_partition(Stage::Members, 1),
            offset: offset + 100,
        };
        let erased = derive_member_rows(
            deriver,
            pos,
            Some(&event),
            members,
            &member_out,
            &[],
            &mut member,
        );
        assert!(!erased);
        (stock, member)
    }

    #[test]
    fn stages_split_an_events_rows_and_rederive_them_identically() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/stores.csv");
        let stores = Arc::new(storepulse_core::StoreMaster::load(&path).unwrap());
        let parser = storepulse_core::EventParser::new(stores.clone());
        let deriver = RowDeriver::new(stores.clone());
        let mut inventory = InventoryProcessor::new(Default::default(), stores.clone());
        let mut members = MemberProcessor::new(Default::default(), stores.clone()).unwrap();
        let (stock, member) = derive_both(
            &deriver,
            &parser,
            &mut inventory,
            &mut members,
            &sale("s1", "KM-001", "M1"),
            7,
        );
        // The stock stage: lines and stock, no points; the member stage:
        // points, no lines.
        assert_eq!(stock.sale_lines.len(), 2);
        assert_eq!(stock.stock_changes.len(), 2);
        assert!(stock.points_ledger.is_empty() && stock.member_registrations.is_empty());
        assert!(stock
            .sale_lines
            .iter()
            .all(|r| r.src_partition == 2 && r.src_offset == 7));
        assert_eq!(
            stock
                .sale_lines
                .iter()
                .map(|r| r.src_index)
                .collect::<Vec<_>>(),
            vec![0, 1]
        );
        assert!(member.sale_lines.is_empty() && member.stock_changes.is_empty());
        assert_eq!(member.points_ledger.len(), 1);
        assert_eq!(member.points_ledger[0].src_partition, 1_000_001);
        assert_eq!(member.points_ledger[0].points, 70);

        // A restart from a checkpoint taken before the next sale derives
        // exactly the rows derived before the crash.
        let mut inventory_again = InventoryProcessor::from_state(
            inventory.state().clone(),
            Default::default(),
            stores.clone(),
        )
        .unwrap();
        let mut members_again =
            MemberProcessor::from_state(members.state().clone(), Default::default(), stores)
                .unwrap();
        let next = sale("s2", "KM-001", "M1");
        let before = derive_both(&deriver, &parser, &mut inventory, &mut members, &next, 8);
        let after = derive_both(
            &deriver,
            &parser,
            &mut inventory_again,
            &mut members_again,
            &next,
            8,
        );
        assert_eq!(
            before.0.encode_parts(MART_RECORD_BYTES),
            after.0.encode_parts(MART_RECORD_BYTES)
        );
        assert_eq!(
            before.1.encode_parts(MART_RECORD_BYTES),
            after.1.encode_parts(MART_RECORD_BYTES)
        );
        assert_eq!(before.0.stock_levels.len(), 2);
    }

    #[test]
    fn pending_rows_cut_after_an_erasure_and_empty_when_taken() {
        let mut pending = PendingRows::default();
        assert!(pending.is_empty());
        assert!(pending.take_records().is_empty());
        pending.current().erasures.push(Erasure {
            member_ids: vec!["M1".into()],
            event_id: "e1".into(),
            src_partition: 1_000_000,
            src_offset: 4,
        });
        pending.cut();
        pending.current().erasures.push(Erasure {
            member_ids: vec!["M2".into()],
            event_id: "e2".into(),
            src_partition: 1_000_000,
            src_offset: 5,
        });
        assert!(!pending.is_empty());
        let records = pending.take_records();
        assert_eq!(records.len(), 2, "one record per erasure batch");
        let first = MartBatch::decode(&records[0]).unwrap();
        assert_eq!(first.erasures[0].event_id, "e1");
        assert!(pending.is_empty());
    }
}
