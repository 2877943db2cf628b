//! Rows from facts: pure functions from an applied event (and what the
//! processors said about it) to mart rows. No I/O, no clock.
//!
//! The runtime calls [`RowDeriver`] once per *applied* event (duplicates
//! are dropped by the inventory processor first), in the order it applies
//! them, and once per processor output of that event. The position of a
//! row is its event's (partition, offset) plus its index among the rows of
//! the same table for that event ([`next_index`]), so re-deriving the same
//! event after a crash gives the same positions.

use std::sync::Arc;

use storepulse_core::time::{china_day, SECOND};
use storepulse_core::{Event, EventBody, StoreIdx, StoreMaster, Ts};
use storepulse_processors::fraud::{AlertWithdrawn, FraudAlert, FraudOutput};
use storepulse_processors::inventory::{InventoryOutput, InventoryProcessor, StockAlert};
use storepulse_processors::members::{Change, MemberErased, TagChange, TagsMoved};

use crate::rows::{
    AlertDecisionRow, AlertRow, Erasure, MartBatch, MemberRegistrationRow, PointsRow,
    RejectedEventRow, ReturnLineRow, SaleLineRow, StockChangeRow, StockLevelRow, TagChangeRow,
    DECISIONS_PARTITION,
};

/// Milliseconds in one `Ts` unit's second.
const NANOS_PER_MS: i64 = 1_000_000;

/// Turns facts into mart rows; holds the store master for regions.
#[derive(Debug, Clone)]
pub struct RowDeriver {
    stores: Arc<StoreMaster>,
}

/// The source position of an event: partition and offset in the event log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventPos {
    pub partition: u32,
    pub offset: u64,
}

/// Unix milliseconds of a timestamp.
pub fn millis(ts: Ts) -> i64 {
    ts.div_euclid(NANOS_PER_MS)
}

/// China calendar day as ClickHouse `Date` (days since 1970, clamped to its range).
pub fn mart_day(ts: Ts) -> u16 {
    u16::try_from(china_day(ts).max(0)).unwrap_or(u16::MAX)
}

/// China hour of the day (0-23).
pub fn mart_hour(ts: Ts) -> u8 {
    let secs_of_day = (ts + 8 * 3600 * SECOND).rem_euclid(24 * 3600 * SECOND) / SECOND;
    // 0..86400 / 3600 < 24.
    (secs_of_day / 3600) as u8
}

/// The index the next row of an event gets in a table: one more than the
/// rows already there with the same position (rows of an event are pushed
/// together, so they sit at the end).
pub fn next_index<T>(rows: &[T], pos: EventPos, of: impl Fn(&T) -> (u32, u64)) -> u32 {
    let same = rows
        .iter()
        .rev()
        .take_while(|r| of(r) == (pos.partition, pos.offset))
        .count();
    u32::try_from(same).unwrap_or(u32::MAX)
}

/// Splits `total` over `weights` in proportion, the remainder one by one to
/// the first lines; the parts always add up to `total`. With all weights
/// zero the split is even.
pub fn split_cents(total: i64, weights: &[i64]) -> Vec<i64> {
    if weights.is_empty() {
        return Vec::new();
    }
    let sum: i128 = weights.iter().map(|w| i128::from((*w).max(0))).sum();
    let even = sum == 0;
    let n = weights.len() as i128;
    let mut parts: Vec<i64> = weights
        .iter()
        .map(|w| {
            let share = if even {
                i128::from(total) / n
            } else {
                i128::from(total) * i128::from((*w).max(0)) / sum
            };
            // |share| <= |total|.
            share as i64
        })
        .collect();
    let mut rest = total - parts.iter().sum::<i64>();
    let step = if rest >= 0 { 1 } else { -1 };
    let len = parts.len();
    let mut i = 0;
    while rest != 0 {
        parts[i % len] += step;
        rest -= step;
        i += 1;
    }
    parts
}

impl RowDeriver {
    /// A deriver over `stores`.
    pub fn new(stores: Arc<StoreMaster>) -> Self {
        Self { stores }
    }

    fn store(&self, idx: StoreIdx) -> (String, String) {
        let s = self.stores.get(idx);
        (s.store_id.clone(), s.region.clone())
    }

    fn region_of(&self, store_id: &str) -> String {
        self.stores
            .lookup(store_id)
            .map(|i| self.stores.get(i).region.clone())
            .unwrap_or_default()
    }

    /// Rows of an applied event: sale and return lines, stock changes,
    /// points entries, registrations. `canonical_member` is the canonical
    /// id of the event's member right after the member processor applied
    /// it (`None`: no member, or members are off). A `member_erase`
    /// produces no rows here; its [`MemberErased`] output does
    /// ([`RowDeriver::erasure`]).
    pub fn event(
        &self,
        pos: EventPos,
        event: &Event,
        canonical_member: Option<&str>,
        out: &mut MartBatch,
    ) {
        let (store_id, region) = self.store(event.store);
        let occurred_ms = millis(event.occurred_at);
        let day = mart_day(event.occurred_at);
        let hour = mart_hour(event.occurred_at);
        let member = canonical_member
            .map(str::to_owned)
            .or_else(|| event.member_id.as_ref().map(ToString::to_string))
            .unwrap_or_default();
        let event_id = event.event_id.to_string();
        let kind = event.event_type().as_str();
        let stock = |out: &mut MartBatch, line_no: u32, sku: &str, delta: i64, counted: i64| {
            let src_index =
                next_index(&out.stock_changes, pos, |r| (r.src_partition, r.src_offset));
            out.stock_changes.push(StockChangeRow {
                event_id: event_id.clone(),
                line_no,
                kind: kind.to_owned(),
                store_id: store_id.clone(),
                region: region.clone(),
                sku: sku.to_owned(),
                delta,
                counted,
                occurred_ms,
                day,
                hour,
                src_partition: pos.partition,
                src_offset: pos.offset,
                src_index,
            });
        };
        let points = |out: &mut MartBatch, kind: &str, points: i64| {
            if member.is_empty() || points == 0 {
                return;
            }
            let src_index =
                next_index(&out.points_ledger, pos, |r| (r.src_partition, r.src_offset));
            out.points_ledger.push(PointsRow {
                member_id: member.clone(),
                event_id: event_id.clone(),
                kind: kind.to_owned(),
                store_id: store_id.clone(),
                region: region.clone(),
                points,
                occurred_ms,
                day,
                src_partition: pos.partition,
                src_offset: pos.offset,
                src_index,
            });
        };
        match &event.body {
            EventBody::Sale(sale) => {
                let weights: Vec<i64> = sale
                    .lines
                    .iter()
                    .map(|l| i64::from(l.qty).saturating_mul(clamp_i64(l.unit_price_cents)))
                    .collect();
                let net = split_cents(clamp_i64(sale.total_cents), &weights);
                for (i, (line, net_cents)) in sale.lines.iter().zip(net).enumerate() {
                    let line_no = u32::try_from(i).unwrap_or(u32::MAX);
                    let src_index =
                        next_index(&out.sale_lines, pos, |r| (r.src_partition, r.src_offset));
                    out.sale_lines.push(SaleLineRow {
                        event_id: event_id.clone(),
                        line_no,
                        order_id: sale.order_id.to_string(),
                        store_id: store_id.clone(),
                        region: region.clone(),
                        channel: event.channel.as_str().to_owned(),
                        fulfillment: sale.fulfillment.as_str().to_owned(),
                        payment_method: sale.payment.method.as_str().to_owned(),
                        member_id: member.clone(),
                        sku: line.sku.to_string(),
                        qty: i64::from(line.qty),
                        unit_price_cents: clamp_i64(line.unit_price_cents),
                        net_cents,
                        promo: u8::from(line.promo),
                        occurred_ms,
                        day,
                        hour,
                        src_partition: pos.partition,
                        src_offset: pos.offset,
                        src_index,
                    });
                    stock(out, line_no, &line.sku, -i64::from(line.qty), -1);
                }
                points(out, "earn", clamp_i64(sale.total_cents / 100));
            }
            EventBody::Return(ret) => {
                let weights: Vec<i64> = ret.lines.iter().map(|l| i64::from(l.qty)).collect();
                let refunds = split_cents(clamp_i64(ret.refund_cents), &weights);
                for (i, (line, refund_cents)) in ret.lines.iter().zip(refunds).enumerate() {
                    let line_no = u32::try_from(i).unwrap_or(u32::MAX);
                    let src_index =
                        next_index(&out.return_lines, pos, |r| (r.src_partition, r.src_offset));
                    out.return_lines.push(ReturnLineRow {
                        event_id: event_id.clone(),
                        line_no,
                        order_id: ret.order_id.to_string(),
                        store_id: store_id.clone(),
                        region: region.clone(),
                        channel: event.channel.as_str().to_owned(),
                        member_id: member.clone(),
                        sku: line.sku.to_string(),
                        qty: i64::from(line.qty),
                        refund_cents,
                        restock: u8::from(ret.restock),
                        occurred_ms,
                        day,
                        hour,
                        src_partition: pos.partition,
                        src_offset: pos.offset,
                        src_index,
                    });
                    if ret.restock {
                        stock(out, line_no, &line.sku, i64::from(line.qty), -1);
                    }
                }
                points(out, "return", -clamp_i64(ret.refund_cents / 100));
            }
            EventBody::StockReceipt(receipt) => {
                for (i, line) in receipt.lines.iter().enumerate() {
                    let line_no = u32::try_from(i).unwrap_or(u32::MAX);
                    stock(out, line_no, &line.sku, i64::from(line.qty), -1);
                }
            }
            EventBody::StockCount(count) => {
                for (i, line) in count.lines.iter().enumerate() {
                    let line_no = u32::try_from(i).unwrap_or(u32::MAX);
                    stock(out, line_no, &line.sku, 0, i64::from(line.on_hand));
                }
            }
            EventBody::TransferOut(t) | EventBody::TransferIn(t) => {
                let sign = if matches!(event.body, EventBody::TransferOut(_)) {
                    -1
                } else {
                    1
                };
                for (i, line) in t.lines.iter().enumerate() {
                    let line_no = u32::try_from(i).unwrap_or(u32::MAX);
                    stock(out, line_no, &line.sku, sign * i64::from(line.qty), -1);
                }
            }
            EventBody::MemberRegister(register) => {
                let member_id = event
                    .member_id
                    .as_ref()
                    .map(ToString::to_string)
                    .unwrap_or_default();
                let canonical_id = if member.is_empty() {
                    member_id.clone()
                } else {
                    member.clone()
                };
                let src_index = next_index(&out.member_registrations, pos, |r| {
                    (r.src_partition, r.src_offset)
                });
                out.member_registrations.push(MemberRegistrationRow {
                    member_id,
                    canonical_id,
                    person_key: register.phone_hash.to_string(),
                    event_id: event_id.clone(),
                    store_id: store_id.clone(),
                    region: region.clone(),
                    channel: event.channel.as_str().to_owned(),
                    occurred_ms,
                    day,
                    src_partition: pos.partition,
                    src_offset: pos.offset,
                    src_index,
                });
            }
            EventBody::PointsRedeem(redeem) => {
                points(out, "redeem", -clamp_i64(redeem.points));
            }
            EventBody::MemberErase => {}
        }
    }

    /// The on-hand of (`store`, `sku`) after the event at `pos`.
    /// The row of a registration applied elsewhere than where its event
    /// was read (Kafka: a registration handed over to its phone's member
    /// partition, which derives it at the handover's position, in order
    /// with that person's later erasure). The same row as [`Self::event`]
    /// makes for a `member_register`.
    #[allow(clippy::too_many_arguments)]
    pub fn registration(
        &self,
        pos: EventPos,
        member_id: &str,
        canonical_id: &str,
        person_key: &str,
        event_id: &str,
        store_id: &str,
        channel: &str,
        occurred_at: Ts,
        out: &mut MartBatch,
    ) {
        let src_index = next_index(&out.member_registrations, pos, |r| {
            (r.src_partition, r.src_offset)
        });
        out.member_registrations.push(MemberRegistrationRow {
            member_id: member_id.to_owned(),
            canonical_id: canonical_id.to_owned(),
            person_key: person_key.to_owned(),
            event_id: event_id.to_owned(),
            store_id: store_id.to_owned(),
            region: self.region_of(store_id),
            channel: channel.to_owned(),
            occurred_ms: millis(occurred_at),
            day: mart_day(occurred_at),
            src_partition: pos.partition,
            src_offset: pos.offset,
            src_index,
        });
    }

    /// Rows of the fraud alerts raised and withdrawn while applying the
    /// record at `pos` (a withdrawal of an alert raised by the same record
    /// keeps its details).
    pub fn fraud_outputs(&self, pos: EventPos, outputs: &[FraudOutput], out: &mut MartBatch) {
        for o in outputs {
            match o {
                FraudOutput::Raised(alert) => self.fraud_alert(pos, alert, out),
                FraudOutput::Withdrawn(w) => {
                    let raised = outputs.iter().find_map(|r| match r {
                        FraudOutput::Raised(a) if a.alert_id == w.alert_id => Some(&**a),
                        FraudOutput::Raised(_) | FraudOutput::Withdrawn(_) => None,
                    });
                    self.withdrawn(pos, w, raised, out);
                }
            }
        }
    }

    /// The stock levels and stock alerts the inventory processor emitted
    /// for the event `event_id` at `pos` (SKU names from `inventory`).
    pub fn inventory_outputs(
        &self,
        pos: EventPos,
        event_id: &str,
        inventory: &InventoryProcessor,
        outputs: &[InventoryOutput],
        out: &mut MartBatch,
    ) {
        for o in outputs {
            match o {
                InventoryOutput::Changed(c) => self.stock_level(
                    pos,
                    c.store,
                    inventory.sku_name(c.sku),
                    c.on_hand,
                    event_id,
                    c.occurred_at,
                    out,
                ),
                InventoryOutput::Alert(a) => self.stock_alert(pos, a, out),
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub fn stock_level(
        &self,
        pos: EventPos,
        store: StoreIdx,
        sku: &str,
        on_hand: i64,
        event_id: &str,
        occurred_at: Ts,
        out: &mut MartBatch,
    ) {
        let (store_id, region) = self.store(store);
        let src_index = next_index(&out.stock_levels, pos, |r| (r.src_partition, r.src_offset));
        out.stock_levels.push(StockLevelRow {
            store_id,
            region,
            sku: sku.to_owned(),
            on_hand,
            event_id: event_id.to_owned(),
            occurred_ms: millis(occurred_at),
            day: mart_day(occurred_at),
            src_partition: pos.partition,
            src_offset: pos.offset,
            src_index,
        });
    }

    /// A tag change made while applying the record at `pos`, counted at
    /// the store the member processor named (`change.store`: the favourite
    /// store it was counted at, or the new one for an addition).
    pub fn tag_change(&self, pos: EventPos, change: &TagChange, out: &mut MartBatch) {
        let event_id = change.event_id.as_deref().unwrap_or_default();
        let row = (&*change.member_id, &*change.tag, change.as_of, event_id);
        self.tag_row(pos, row, change.change, change.store, out);
    }

    /// The rows of tags a member kept while its favourite store moved: -1
    /// at the store it was counted at, +1 at the new one, per tag.
    pub fn tags_moved(&self, pos: EventPos, moved: &TagsMoved, out: &mut MartBatch) {
        let event_id = moved.event_id.as_deref().unwrap_or_default();
        for tag in &moved.tags {
            let row = (&*moved.member_id, &**tag, moved.as_of, event_id);
            self.tag_row(pos, row, Change::Removed, moved.from, out);
            self.tag_row(pos, row, Change::Added, moved.to, out);
        }
    }

    /// One `tag_changes` row: (member, tag, as of, event id), the change,
    /// the store it counts at.
    fn tag_row(
        &self,
        pos: EventPos,
        (member_id, tag, as_of, event_id): (&str, &str, Ts, &str),
        change: Change,
        store: Option<StoreIdx>,
        out: &mut MartBatch,
    ) {
        let (store_id, region) = store.map(|s| self.store(s)).unwrap_or_default();
        let src_index = next_index(&out.tag_changes, pos, |r| (r.src_partition, r.src_offset));
        out.tag_changes.push(TagChangeRow {
            member_id: member_id.to_owned(),
            tag: tag.to_owned(),
            change: match change {
                Change::Added => 1,
                Change::Removed => -1,
            },
            event_id: event_id.to_owned(),
            store_id,
            region,
            as_of_ms: millis(as_of),
            day: mart_day(as_of),
            src_partition: pos.partition,
            src_offset: pos.offset,
            src_index,
        });
    }

    /// A member erased by the event at `pos`.
    pub fn erasure(&self, pos: EventPos, erased: &MemberErased, out: &mut MartBatch) {
        let mut member_ids: Vec<String> = std::iter::once(erased.member_id.to_string())
            .chain(erased.aliases.iter().map(ToString::to_string))
            .collect();
        member_ids.sort();
        member_ids.dedup();
        out.erasures.push(Erasure {
            member_ids,
            event_id: erased.event_id.to_string(),
            src_partition: pos.partition,
            src_offset: pos.offset,
        });
    }

    /// A stock alert raised by the event at `pos`.
    pub fn stock_alert(&self, pos: EventPos, alert: &StockAlert, out: &mut MartBatch) {
        let src_index = next_index(&out.alerts, pos, |r| (r.src_partition, r.src_offset));
        out.alerts.push(AlertRow {
            alert_id: alert.alert_id.clone(),
            family: "stock".into(),
            rule: alert.kind.as_str().to_owned(),
            status: "raised".into(),
            member_id: String::new(),
            store_ids: alert.store_id.clone(),
            store_id: alert.store_id.clone(),
            region: self.region_of(&alert.store_id),
            sku: alert.sku.clone(),
            total_cents: 0,
            first_ms: millis(alert.occurred_at),
            last_ms: millis(alert.occurred_at),
            day: mart_day(alert.occurred_at),
            src_partition: pos.partition,
            src_offset: pos.offset,
            src_index,
        });
    }

    /// A fraud (or points-overdraft, `family = "points"`) alert raised while
    /// applying the event at `pos`.
    pub fn fraud_alert(&self, pos: EventPos, alert: &FraudAlert, out: &mut MartBatch) {
        let mut stores = alert.stores.clone();
        stores.sort();
        stores.dedup();
        let first = stores.first().cloned().unwrap_or_default();
        let family = if alert.rule == "points_overdraft" {
            "points"
        } else {
            "fraud"
        };
        let src_index = next_index(&out.alerts, pos, |r| (r.src_partition, r.src_offset));
        out.alerts.push(AlertRow {
            alert_id: alert.alert_id.clone(),
            family: family.into(),
            rule: alert.rule.clone(),
            status: "raised".into(),
            member_id: alert.key.to_string(),
            store_ids: stores.join(","),
            region: self.region_of(&first),
            store_id: first,
            sku: String::new(),
            total_cents: clamp_i64(alert.total_cents),
            first_ms: millis(alert.first_at),
            last_ms: millis(alert.last_at),
            day: mart_day(alert.last_at),
            src_partition: pos.partition,
            src_offset: pos.offset,
            src_index,
        });
    }

    /// A fraud alert withdrawn while applying the event at `pos`; `raised`
    /// is the alert as it was raised (for its stores and member).
    pub fn withdrawn(
        &self,
        pos: EventPos,
        withdrawn: &AlertWithdrawn,
        raised: Option<&FraudAlert>,
        out: &mut MartBatch,
    ) {
        let before = out.alerts.len();
        match raised {
            Some(alert) => self.fraud_alert(pos, alert, out),
            None => {
                let src_index = next_index(&out.alerts, pos, |r| (r.src_partition, r.src_offset));
                out.alerts.push(AlertRow {
                    alert_id: withdrawn.alert_id.clone(),
                    family: "fraud".into(),
                    rule: withdrawn.rule.clone(),
                    status: String::new(),
                    member_id: withdrawn.key.to_string(),
                    store_ids: String::new(),
                    store_id: String::new(),
                    region: String::new(),
                    sku: String::new(),
                    total_cents: 0,
                    first_ms: millis(withdrawn.as_of),
                    last_ms: millis(withdrawn.as_of),
                    day: mart_day(withdrawn.as_of),
                    src_partition: pos.partition,
                    src_offset: pos.offset,
                    src_index,
                });
            }
        }
        if let Some(row) = out.alerts.get_mut(before) {
            row.status = "withdrawn".into();
        }
    }

    /// A review decision, the `seq`-th of the decision log.
    #[allow(clippy::too_many_arguments)]
    pub fn decision(
        &self,
        seq: u64,
        alert_id: &str,
        decision: &str,
        decided_by: &str,
        comment: &str,
        decided_at: Ts,
        out: &mut MartBatch,
    ) {
        out.alert_decisions.push(AlertDecisionRow {
            alert_id: alert_id.to_owned(),
            decision: decision.to_owned(),
            decided_by: decided_by.to_owned(),
            comment: comment.to_owned(),
            decided_ms: millis(decided_at),
            day: mart_day(decided_at),
            src_partition: DECISIONS_PARTITION,
            src_offset: seq,
            src_index: 0,
        });
    }

    /// An event rejected at `pos` (by a processor; ingest rejections have
    /// their dead-letter log's offset as position, in partition `u32::MAX - 1`).
    #[allow(clippy::too_many_arguments)]
    pub fn rejected(
        &self,
        pos: EventPos,
        event_id: Option<&str>,
        stage: &str,
        reason: &str,
        store_id: &str,
        raw: &str,
        rejected_at: Ts,
        out: &mut MartBatch,
    ) {
        let src_index = next_index(&out.rejected_events, pos, |r| {
            (r.src_partition, r.src_offset)
        });
        out.rejected_events.push(RejectedEventRow {
            event_id: event_id.unwrap_or_default().to_owned(),
            stage: stage.to_owned(),
            reason: reason.to_owned(),
            store_id: store_id.to_owned(),
            raw: raw.to_owned(),
            rejected_ms: millis(rejected_at),
            day: mart_day(rejected_at),
            src_partition: pos.partition,
            src_offset: pos.offset,
            src_index,
        });
    }
}

/// `u64` cents or points as `i64` (saturating: no real amount comes close).
fn clamp_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn split_adds_up_and_follows_weights() {
        assert_eq!(split_cents(1000, &[1, 1, 2]), vec![250, 250, 500]);
        assert_eq!(split_cents(100, &[1, 1, 1]), vec![34, 33, 33]);
        assert_eq!(split_cents(7, &[0, 0]), vec![4, 3]);
        assert!(split_cents(5, &[]).is_empty());
    }

    proptest! {
        #[test]
        fn split_always_adds_up(total in 0i64..10_000_000_000, weights in proptest::collection::vec(0i64..1_000_000_000, 1..20)) {
            let parts = split_cents(total, &weights);
            prop_assert_eq!(parts.len(), weights.len());
            prop_assert_eq!(parts.iter().sum::<i64>(), total);
            prop_assert!(parts.iter().all(|p| *p >= 0));
        }
    }

    #[test]
    fn day_and_hour_are_china_time() {
        // 2026-12-03T16:30:00Z is 2026-12-04 00:30 in China.
        let ts = storepulse_core::time::parse_rfc3339("2026-12-03T16:30:00Z").unwrap();
        assert_eq!(mart_hour(ts), 0);
        let day = chrono::NaiveDate::from_ymd_opt(2026, 12, 4).unwrap();
        let epoch = chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap();
        assert_eq!(i64::from(mart_day(ts)), (day - epoch).num_days());
        assert_eq!(millis(ts), 1_796_315_400_000);
    }
}
