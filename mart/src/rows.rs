//! The mart's tables as row structs.
//!
//! Column types are chosen so that ClickHouse 18.16 (the oldest supported
//! server) and current releases read them the same way, and so that the
//! embedded Parquet mart has an obvious Arrow type for each:
//!
//! | Rust | ClickHouse | Arrow / Parquet |
//! |---|---|---|
//! | `String` | `String` | `Utf8` |
//! | `i64` | `Int64` | `Int64` |
//! | `u32` / `u64` | `UInt32` / `UInt64` | `UInt32` / `UInt64` |
//! | `u8` (flag, hour) | `UInt8` | `UInt8` |
//! | `day: u16` | `Date` (days since 1970-01-01) | `Date32` |
//! | `*_ms: i64` | `Int64` (Unix milliseconds) | `Int64` |
//!
//! There is no `DateTime64` (18.16 lacks it): instants are Unix
//! milliseconds, and `day`/`hour` are China time (UTC+8), computed when the
//! row is made. Amounts are integer cents, quantities integer units.
//!
//! Every row has a [`SourcePos`] (`src_partition`, `src_offset`,
//! `src_index`): where the fact came from. For an event-derived row that is
//! the event's partition and offset in the event log (partition 0 in the
//! embedded log; the `<p>.events` partition on Kafka) and the row's index
//! among the rows of the same table that event produced. Positions strictly
//! grow within a (table, source partition), so "highest stored position"
//! is a complete, crash-proof de-duplication key for the sinks.
//!
//! Rows of one member carry the *canonical* member id (RULES.md: a person
//! is unified by phone hash), so an erasure finds every row of the person.

use serde::{Deserialize, Serialize};

/// Where a row came from: the source partition and offset of its event,
/// and its index among that event's rows of one table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct SourcePos {
    pub partition: u32,
    pub offset: u64,
    pub index: u32,
}

/// Source partition used for rows that do not come from the event log:
/// review decisions, which the API takes (their offset is the decision
/// log's sequence number).
pub const DECISIONS_PARTITION: u32 = u32::MAX;

/// Source partition of rejected events refused by ingest (they never
/// reached the event log): the offset is the dead-letter log's.
pub const INGEST_DLQ_PARTITION: u32 = u32::MAX - 1;

/// The mart's tables, in the order migrations create them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Table {
    SaleLines,
    ReturnLines,
    StockChanges,
    StockLevels,
    PointsLedger,
    MemberRegistrations,
    TagChanges,
    Alerts,
    AlertDecisions,
    RejectedEvents,
}

impl Table {
    /// Every table.
    pub const ALL: [Table; 10] = [
        Table::SaleLines,
        Table::ReturnLines,
        Table::StockChanges,
        Table::StockLevels,
        Table::PointsLedger,
        Table::MemberRegistrations,
        Table::TagChanges,
        Table::Alerts,
        Table::AlertDecisions,
        Table::RejectedEvents,
    ];

    /// The table's name in every store.
    pub fn name(self) -> &'static str {
        match self {
            Table::SaleLines => "sale_lines",
            Table::ReturnLines => "return_lines",
            Table::StockChanges => "stock_changes",
            Table::StockLevels => "stock_levels",
            Table::PointsLedger => "points_ledger",
            Table::MemberRegistrations => "member_registrations",
            Table::TagChanges => "tag_changes",
            Table::Alerts => "alerts",
            Table::AlertDecisions => "alert_decisions",
            Table::RejectedEvents => "rejected_events",
        }
    }

    /// Whether rows of this table name a member (erasure rewrites them).
    pub fn has_member(self) -> bool {
        self.erase_action().is_some()
    }

    /// What a member erasure does to this table's rows of the erased
    /// person, the same in every store (EVENTS.md `member_erase`: "their
    /// past sales stay in aggregates without the member id"). `None`: the
    /// table names no member.
    pub fn erase_action(self) -> Option<EraseAction> {
        match self {
            Table::SaleLines | Table::ReturnLines | Table::Alerts => Some(EraseAction::Anonymise),
            Table::PointsLedger | Table::MemberRegistrations | Table::TagChanges => {
                Some(EraseAction::Delete)
            }
            Table::StockChanges
            | Table::StockLevels
            | Table::AlertDecisions
            | Table::RejectedEvents => None,
        }
    }
}

/// How a mart erasure treats a table's rows of the erased member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EraseAction {
    /// The rows are deleted (they are about the person: points, tags,
    /// registrations).
    Delete,
    /// The member id is blanked; the rest stays (a sale happened whoever
    /// bought: revenue and stock must not change with an erasure).
    Anonymise,
}

/// One line of a sale (the fact table of the dashboard).
///
/// `net_cents` is the line's share of what the customer paid
/// (`total_cents`), split over the lines in proportion to
/// `qty * unit_price_cents` with the remainder cents going to the first
/// lines, so the lines of a sale always add up to its `total_cents` exactly
/// (a retailer's revenue is what was paid, after promotions).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SaleLineRow {
    pub event_id: String,
    pub line_no: u32,
    pub order_id: String,
    pub store_id: String,
    pub region: String,
    pub channel: String,
    pub fulfillment: String,
    pub payment_method: String,
    /// Canonical member id, or empty for an anonymous sale.
    pub member_id: String,
    pub sku: String,
    pub qty: i64,
    pub unit_price_cents: i64,
    pub net_cents: i64,
    pub promo: u8,
    pub occurred_ms: i64,
    pub day: u16,
    pub hour: u8,
    pub src_partition: u32,
    pub src_offset: u64,
    pub src_index: u32,
}

/// One line of a return. `refund_cents` is the line's share of the refund,
/// split in proportion to quantity (a return carries no prices), remainder
/// to the first lines.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReturnLineRow {
    pub event_id: String,
    pub line_no: u32,
    pub order_id: String,
    pub store_id: String,
    pub region: String,
    pub channel: String,
    pub member_id: String,
    pub sku: String,
    pub qty: i64,
    pub refund_cents: i64,
    pub restock: u8,
    pub occurred_ms: i64,
    pub day: u16,
    pub hour: u8,
    pub src_partition: u32,
    pub src_offset: u64,
    pub src_index: u32,
}

/// A change of on-hand stock caused by one line of an event. `delta` is the
/// signed change (a sale `-qty`, a restocking return `+qty`, a receipt
/// `+qty`, a transfer out `-qty`, in `+qty`); a stocktake has `delta = 0`
/// and `counted` = the counted quantity (`-1` on other kinds).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockChangeRow {
    pub event_id: String,
    pub line_no: u32,
    /// The event type (`sale`, `return`, `stock_receipt`, ...).
    pub kind: String,
    pub store_id: String,
    pub region: String,
    pub sku: String,
    pub delta: i64,
    pub counted: i64,
    pub occurred_ms: i64,
    pub day: u16,
    pub hour: u8,
    pub src_partition: u32,
    pub src_offset: u64,
    pub src_index: u32,
}

/// The on-hand of one (store, SKU) right after an event, as the inventory
/// processor computed it (RULES.md "Stock"). Current stock is the row with
/// the highest position per (store, SKU).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockLevelRow {
    pub store_id: String,
    pub region: String,
    pub sku: String,
    pub on_hand: i64,
    pub event_id: String,
    pub occurred_ms: i64,
    pub day: u16,
    pub src_partition: u32,
    pub src_offset: u64,
    pub src_index: u32,
}

/// A points ledger entry (RULES.md "Points"): `earn` (a sale,
/// floor(total / 100)), `return` (floor(refund / 100), negative), `redeem`
/// (negative). `points` is signed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PointsRow {
    pub member_id: String,
    pub event_id: String,
    pub kind: String,
    pub store_id: String,
    pub region: String,
    pub points: i64,
    pub occurred_ms: i64,
    pub day: u16,
    pub src_partition: u32,
    pub src_offset: u64,
    pub src_index: u32,
}

/// A `member_register` event. `canonical_id` is the person's canonical id
/// after the registration; a new member of a day is a person whose first
/// registration falls on that day.
///
/// `person_key` is the registration's `phone_hash`: the key that makes ids
/// one person (EVENTS.md `member_register`). New members are counted by it,
/// not by `canonical_id`: the canonical id of a person changes when an alias
/// with an earlier `occurred_at` arrives late, so a count by canonical id
/// would depend on arrival order (a live mart and a replay disagreed by one).
/// Erasure deletes the row, `person_key` with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberRegistrationRow {
    pub member_id: String,
    pub canonical_id: String,
    pub person_key: String,
    pub event_id: String,
    pub store_id: String,
    pub region: String,
    pub channel: String,
    pub occurred_ms: i64,
    pub day: u16,
    pub src_partition: u32,
    pub src_offset: u64,
    pub src_index: u32,
}

/// A member tag added (`change = 1`) or removed (`change = -1`). Changes
/// of one (member, tag) alternate, so `sum(change)` over a member's rows is
/// 1 while the tag is on: members by tag is a plain sum, correct with no
/// de-duplication at query time.
///
/// `store_id`/`region` are the member's store preference (RULES.md tag
/// `store_preference`) when the change was made, empty when it has none:
/// a store manager sees the members who prefer their store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TagChangeRow {
    pub member_id: String,
    pub tag: String,
    pub change: i8,
    /// The event that caused it; empty when the clock moving on did.
    pub event_id: String,
    pub store_id: String,
    pub region: String,
    pub as_of_ms: i64,
    pub day: u16,
    pub src_partition: u32,
    pub src_offset: u64,
    pub src_index: u32,
}

/// An alert raised or withdrawn: stock (`oversold`, `out_of_stock`, ...),
/// points overdraft, and fraud rules. `status` is `raised` or `withdrawn`;
/// the current state of an alert is its row with the highest position.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertRow {
    pub alert_id: String,
    /// `stock`, `points` or `fraud`.
    pub family: String,
    /// The stock alert kind or the fraud rule name.
    pub rule: String,
    pub status: String,
    /// Canonical member id, or the grouping key of a non-member rule, or empty.
    pub member_id: String,
    /// The alert's stores, comma-separated, sorted.
    pub store_ids: String,
    /// The first of `store_ids` (scoping: a store manager sees alerts of their stores).
    pub store_id: String,
    pub region: String,
    pub sku: String,
    pub total_cents: i64,
    pub first_ms: i64,
    pub last_ms: i64,
    pub day: u16,
    pub src_partition: u32,
    pub src_offset: u64,
    pub src_index: u32,
}

/// A review decision on a fraud alert.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertDecisionRow {
    pub alert_id: String,
    pub decision: String,
    pub decided_by: String,
    pub comment: String,
    pub decided_ms: i64,
    pub day: u16,
    pub src_partition: u32,
    pub src_offset: u64,
    pub src_index: u32,
}

/// An event refused by ingest or a processor (the dead-letter record).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RejectedEventRow {
    pub event_id: String,
    pub stage: String,
    pub reason: String,
    pub store_id: String,
    pub raw: String,
    pub rejected_ms: i64,
    pub day: u16,
    pub src_partition: u32,
    pub src_offset: u64,
    pub src_index: u32,
}

/// Rows for every table, as one unit of writing: the rows of a batch of
/// events. A sink writes a batch table by table; within a table the rows
/// are in position order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MartBatch {
    pub sale_lines: Vec<SaleLineRow>,
    pub return_lines: Vec<ReturnLineRow>,
    pub stock_changes: Vec<StockChangeRow>,
    pub stock_levels: Vec<StockLevelRow>,
    pub points_ledger: Vec<PointsRow>,
    pub member_registrations: Vec<MemberRegistrationRow>,
    pub tag_changes: Vec<TagChangeRow>,
    pub alerts: Vec<AlertRow>,
    pub alert_decisions: Vec<AlertDecisionRow>,
    pub rejected_events: Vec<RejectedEventRow>,
    /// Canonical member ids (with their aliases) erased by events of this
    /// batch, in order. A sink applies them after the batch's rows: rows of
    /// these members are removed from every table with `has_member`.
    pub erasures: Vec<Erasure>,
}

/// A member erased (PIPL): every id the person had.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Erasure {
    pub member_ids: Vec<String>,
    pub event_id: String,
    pub src_partition: u32,
    pub src_offset: u64,
}

impl MartBatch {
    /// Whether the batch holds nothing to write.
    pub fn is_empty(&self) -> bool {
        self.rows() == 0 && self.erasures.is_empty()
    }

    /// Number of rows over every table.
    pub fn rows(&self) -> usize {
        self.sale_lines.len()
            + self.return_lines.len()
            + self.stock_changes.len()
            + self.stock_levels.len()
            + self.points_ledger.len()
            + self.member_registrations.len()
            + self.tag_changes.len()
            + self.alerts.len()
            + self.alert_decisions.len()
            + self.rejected_events.len()
    }

    /// Appends `other`'s rows after this batch's.
    pub fn append(&mut self, mut other: MartBatch) {
        self.sale_lines.append(&mut other.sale_lines);
        self.return_lines.append(&mut other.return_lines);
        self.stock_changes.append(&mut other.stock_changes);
        self.stock_levels.append(&mut other.stock_levels);
        self.points_ledger.append(&mut other.points_ledger);
        self.member_registrations
            .append(&mut other.member_registrations);
        self.tag_changes.append(&mut other.tag_changes);
        self.alerts.append(&mut other.alerts);
        self.alert_decisions.append(&mut other.alert_decisions);
        self.rejected_events.append(&mut other.rejected_events);
        self.erasures.append(&mut other.erasures);
    }
}

impl MartBatch {
    /// Encodes the batch as mart-log records of at most `max_bytes` each
    /// (postcard). A batch too large for one record is split table by
    /// table in position order; erasures ride in the last part, so they
    /// still follow every row of the batch.
    ///
    /// A single row larger than `max_bytes` is kept in a record of its own
    /// (the log refuses it; the caller reports that).
    pub fn encode_parts(&self, max_bytes: usize) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        self.encode_into(max_bytes, &mut out);
        out
    }

    fn encode_into(&self, max_bytes: usize, out: &mut Vec<Vec<u8>>) {
        // Encoding plain structs of strings and integers cannot fail.
        let bytes = postcard::to_allocvec(self).unwrap_or_default();
        if bytes.len() <= max_bytes || self.rows() <= 1 {
            out.push(bytes);
            return;
        }
        let (left, right) = self.split_half();
        left.encode_into(max_bytes, out);
        right.encode_into(max_bytes, out);
    }

    /// Splits the rows in two halves (by row count, in table then position
    /// order); erasures go with the second half.
    pub fn split_half(&self) -> (MartBatch, MartBatch) {
        let half = self.rows() / 2;
        let mut left = MartBatch::default();
        let mut right = MartBatch::default();
        let mut taken = 0usize;
        macro_rules! split {
            ($($t:ident),*) => {$(
                let n = self.$t.len().min(half.saturating_sub(taken));
                left.$t.extend_from_slice(&self.$t[..n]);
                right.$t.extend_from_slice(&self.$t[n..]);
                taken += n;
            )*};
        }
        split!(
            sale_lines,
            return_lines,
            stock_changes,
            stock_levels,
            points_ledger,
            member_registrations,
            tag_changes,
            alerts,
            alert_decisions,
            rejected_events
        );
        let _ = taken;
        right.erasures = self.erasures.clone();
        (left, right)
    }

    /// Decodes a mart-log record.
    ///
    /// # Errors
    /// The record is not a postcard-encoded batch.
    pub fn decode(bytes: &[u8]) -> Result<MartBatch, String> {
        postcard::from_bytes(bytes).map_err(|e| e.to_string())
    }

    /// Keeps only rows above `seen` (highest position per (table, partition))
    /// and raises `seen` to the rows kept: what a sink has already stored,
    /// or already taken into its pending batch, is dropped.
    pub fn retain_after(&mut self, seen: &mut crate::write::StoredPositions) {
        macro_rules! keep {
            ($($t:ident => $table:expr),*) => {$(
                self.$t.retain(|r| {
                    let pos = SourcePos { partition: r.src_partition, offset: r.src_offset, index: r.src_index };
                    let key = ($table, r.src_partition);
                    match seen.get(&key) {
                        Some(top) if pos <= *top => false,
                        _ => {
                            seen.insert(key, pos);
                            true
                        }
                    }
                });
            )*};
        }
        keep!(
            sale_lines => Table::SaleLines,
            return_lines => Table::ReturnLines,
            stock_changes => Table::StockChanges,
            stock_levels => Table::StockLevels,
            points_ledger => Table::PointsLedger,
            member_registrations => Table::MemberRegistrations,
            tag_changes => Table::TagChanges,
            alerts => Table::Alerts,
            alert_decisions => Table::AlertDecisions,
            rejected_events => Table::RejectedEvents
        );
    }

    /// The batch's rows of one table only (no erasures).
    pub fn only(&self, table: Table) -> MartBatch {
        let mut b = MartBatch::default();
        match table {
            Table::SaleLines => b.sale_lines.clone_from(&self.sale_lines),
            Table::ReturnLines => b.return_lines.clone_from(&self.return_lines),
            Table::StockChanges => b.stock_changes.clone_from(&self.stock_changes),
            Table::StockLevels => b.stock_levels.clone_from(&self.stock_levels),
            Table::PointsLedger => b.points_ledger.clone_from(&self.points_ledger),
            Table::MemberRegistrations => {
                b.member_registrations
                    .clone_from(&self.member_registrations);
            }
            Table::TagChanges => b.tag_changes.clone_from(&self.tag_changes),
            Table::Alerts => b.alerts.clone_from(&self.alerts),
            Table::AlertDecisions => b.alert_decisions.clone_from(&self.alert_decisions),
            Table::RejectedEvents => b.rejected_events.clone_from(&self.rejected_events),
        }
        b
    }

    /// Rows per table (tables with rows only).
    pub fn table_rows(&self) -> Vec<(Table, usize)> {
        let counts = [
            self.sale_lines.len(),
            self.return_lines.len(),
            self.stock_changes.len(),
            self.stock_levels.len(),
            self.points_ledger.len(),
            self.member_registrations.len(),
            self.tag_changes.len(),
            self.alerts.len(),
            self.alert_decisions.len(),
            self.rejected_events.len(),
        ];
        Table::ALL
            .into_iter()
            .zip(counts)
            .filter(|(_, n)| *n > 0)
            .collect()
    }

    /// Each row of the batch as (table, position, JSON), for dead letters.
    pub fn rows_json(&self) -> Vec<(Table, SourcePos, String)> {
        let mut out = Vec::new();
        macro_rules! each {
            ($($t:ident => $table:expr),*) => {$(
                for r in &self.$t {
                    let pos = SourcePos { partition: r.src_partition, offset: r.src_offset, index: r.src_index };
                    out.push(($table, pos, serde_json::to_string(r).unwrap_or_default()));
                }
            )*};
        }
        each!(
            sale_lines => Table::SaleLines,
            return_lines => Table::ReturnLines,
            stock_changes => Table::StockChanges,
            stock_levels => Table::StockLevels,
            points_ledger => Table::PointsLedger,
            member_registrations => Table::MemberRegistrations,
            tag_changes => Table::TagChanges,
            alerts => Table::Alerts,
            alert_decisions => Table::AlertDecisions,
            rejected_events => Table::RejectedEvents
        );
        out
    }
}
