//! The points ledger of one member, and franchise settlement.
//!
//! **Rules (RULES.md "Points").** A sale earns `floor(total_cents / 100)`,
//! a return takes back `floor(refund_cents / 100)`, a redemption takes its
//! `points`; the balance may go negative. Points are spent first-in
//! first-out in event time: the ledger is a queue of *lots* (points earned
//! in a store, oldest first). A redemption in a store of franchisee B that
//! consumes a lot earned in a store of franchisee A (A != B) makes A owe B
//! 0.01 CNY per point, dated the redemption's China day.
//!
//! Readings the contract leaves open, as a retailer would expect them:
//! - a take-back (return) consumes the oldest lots like a redemption but
//!   pays nobody: the points simply lapse;
//! - a redemption beyond the balance leaves a *debt* lot owed to the
//!   redeeming store; later earnings repay debts first, and a debt repaid
//!   with points earned at franchisee A (A != B) is settled on the day of
//!   the repaying sale. A debt from a take-back is repaid without settlement.
//!
//! **Order independence.** Entries of the last `exact_days` of event time
//! stay *pending*, sorted by (`occurred_at`, `event_id`); the balance,
//! overdrafts and settlement are recomputed over them whenever one arrives,
//! so a late event lands in its event-time place. Older entries are folded
//! into the lots (a few per member). An entry that arrives already older
//! than that is folded at once, at the end of the queue (documented limit).
//! The global settlement table always equals the flows of all folded
//! entries plus each member's pending flows: every change subtracts the
//! member's pending flows before and adds them after.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use storepulse_core::time::china_day;
use storepulse_core::{Id, StoreIdx, Ts};

use super::history::{reserve_one, trim};

/// What a ledger entry does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    Earn,
    TakeBack,
    Redeem,
}

/// One pending ledger entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerEntry {
    #[serde(with = "storepulse_core::time::rfc3339")]
    pub at: Ts,
    pub event_id: Id,
    pub kind: EntryKind,
    /// Points moved (positive).
    pub points: i64,
    pub store: StoreIdx,
    /// Whether this redemption has raised its overdraft alert.
    #[serde(default)]
    pub alerted: bool,
}

/// Points earned in one store (positive), or owed to one (negative: a debt).
///
/// Packed to 4-byte alignment: 20 bytes instead of 24 (a member keeps a
/// few lots for life). Fields are read and written by value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[repr(C, packed(4))]
pub struct Lot {
    /// Earning store, or the redeeming store of a debt; `None` for a debt
    /// left by a take-back.
    pub store: Option<StoreIdx>,
    pub points: i64,
    /// Event time of the lot's first point.
    #[serde(with = "storepulse_core::time::rfc3339")]
    pub since: Ts,
}

const _: () = assert!(std::mem::size_of::<Lot>() == 20);

/// Points that franchisee(`from`) owes franchisee(`to`) for points earned
/// in store `from` and spent in store `to`, on a China day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flow {
    pub day: i32,
    pub from: StoreIdx,
    pub to: StoreIdx,
    pub points: i64,
}

/// A redemption that took the balance below zero.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Overdraft {
    pub event_id: Id,
    pub at: Ts,
    pub store: StoreIdx,
    pub points: i64,
    pub balance_after: i64,
}

/// A member's ledger.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ledger {
    /// Folded history: all positive (available) or all negative (debts).
    pub lots: Vec<Lot>,
    /// Entries still re-ordered by event time, sorted by (at, event_id).
    pub pending: Vec<LedgerEntry>,
    /// Lifetime totals (for the ledger view and the export).
    pub earned: i64,
    pub taken_back: i64,
    pub redeemed: i64,
}

/// Maps a store to its franchisee's index (settlement is per franchisee).
pub trait Franchisees {
    fn franchisee(&self, store: StoreIdx) -> u16;
}

fn push_lot(lots: &mut Vec<Lot>, lot: Lot) {
    if let Some(last) = lots.last_mut() {
        if last.store == lot.store && (last.points > 0) == (lot.points > 0) {
            last.points += lot.points;
            return;
        }
    }
    reserve_one(lots);
    lots.push(lot);
}

/// Applies one entry to lots (FIFO), pushing the settlement flows.
fn apply_entry(lots: &mut Vec<Lot>, e: &LedgerEntry, fr: &impl Franchisees, flows: &mut Vec<Flow>) {
    let day = china_day(e.at);
    let mut left = e.points;
    match e.kind {
        EntryKind::Earn => {
            // Repay debts first.
            while left > 0 {
                let Some(front) = lots.first_mut() else { break };
                if front.points >= 0 {
                    break;
                }
                let take = left.min(-front.points);
                if let Some(to) = front.store {
                    if fr.franchisee(e.store) != fr.franchisee(to) {
                        flows.push(Flow {
                            day,
                            from: e.store,
                            to,
                            points: take,
                        });
                    }
                }
                front.points += take;
                left -= take;
                if front.points == 0 {
                    lots.remove(0);
                }
            }
            if left > 0 {
                push_lot(
                    lots,
                    Lot {
                        store: Some(e.store),
                        points: left,
                        since: e.at,
                    },
                );
            }
        }
        EntryKind::TakeBack | EntryKind::Redeem => {
            while left > 0 {
                let Some(front) = lots.first_mut() else { break };
                if front.points <= 0 {
                    break;
                }
                let take = left.min(front.points);
                if let (EntryKind::Redeem, Some(from)) = (e.kind, front.store) {
                    if fr.franchisee(from) != fr.franchisee(e.store) {
                        flows.push(Flow {
                            day,
                            from,
                            to: e.store,
                            points: take,
                        });
                    }
                }
                front.points -= take;
                left -= take;
                if front.points == 0 {
                    lots.remove(0);
                }
            }
            if left > 0 {
                push_lot(
                    lots,
                    Lot {
                        store: (e.kind == EntryKind::Redeem).then_some(e.store),
                        points: -left,
                        since: e.at,
                    },
                );
            }
        }
    }
}

fn lots_balance(lots: &[Lot]) -> i64 {
    lots.iter().map(|l| l.points).sum()
}

impl Ledger {
    /// The balance: folded lots plus pending entries.
    pub fn balance(&self) -> i64 {
        let pending: i64 = self
            .pending
            .iter()
            .map(|e| match e.kind {
                EntryKind::Earn => e.points,
                EntryKind::TakeBack | EntryKind::Redeem => -e.points,
            })
            .sum();
        lots_balance(&self.lots) + pending
    }

    /// The flows of the pending entries on top of the lots.
    pub fn pending_flows(&self, fr: &impl Franchisees, flows: &mut Vec<Flow>) {
        if self.pending.is_empty() {
            return;
        }
        let mut lots = self.lots.clone();
        for e in &self.pending {
            apply_entry(&mut lots, e, fr, flows);
        }
    }

    /// Walks the pending entries in event-time order and marks every
    /// redemption that takes the balance below zero and was not alerted yet.
    pub fn find_overdrafts(&mut self, out: &mut Vec<Overdraft>) {
        let mut balance = lots_balance(&self.lots);
        for e in &mut self.pending {
            match e.kind {
                EntryKind::Earn => balance += e.points,
                EntryKind::TakeBack => balance -= e.points,
                EntryKind::Redeem => {
                    balance -= e.points;
                    if balance < 0 && !e.alerted {
                        e.alerted = true;
                        out.push(Overdraft {
                            event_id: e.event_id.clone(),
                            at: e.at,
                            store: e.store,
                            points: e.points,
                            balance_after: balance,
                        });
                    }
                }
            }
        }
    }

    /// Adds an entry: pending when newer than `fold_before`, else folded at
    /// once (its flows go to `folded_flows`; an overdraft is reported).
    pub fn add(
        &mut self,
        entry: LedgerEntry,
        fold_before: Ts,
        fr: &impl Franchisees,
        folded_flows: &mut Vec<Flow>,
        overdrafts: &mut Vec<Overdraft>,
    ) {
        match entry.kind {
            EntryKind::Earn => self.earned += entry.points,
            EntryKind::TakeBack => self.taken_back += entry.points,
            EntryKind::Redeem => self.redeemed += entry.points,
        }
        if entry.at < fold_before {
            // Too old to be re-ordered: fold on top of everything folded.
            // It still goes before the pending entries (which are newer).
            apply_entry(&mut self.lots, &entry, fr, folded_flows);
            if entry.kind == EntryKind::Redeem && lots_balance(&self.lots) < 0 {
                overdrafts.push(Overdraft {
                    event_id: entry.event_id.clone(),
                    at: entry.at,
                    store: entry.store,
                    points: entry.points,
                    balance_after: self.balance(),
                });
            }
            return;
        }
        let key = (entry.at, entry.event_id.as_str());
        let at = self
            .pending
            .partition_point(|e| (e.at, e.event_id.as_str()) < key);
        reserve_one(&mut self.pending);
        self.pending.insert(at, entry);
    }

    /// Folds pending entries older than `fold_before` into the lots; their
    /// flows go to `flows` (they were part of the pending flows before).
    pub fn fold(&mut self, fold_before: Ts, fr: &impl Franchisees, flows: &mut Vec<Flow>) {
        let n = self.pending.partition_point(|e| e.at < fold_before);
        if n == 0 {
            return;
        }
        for e in self.pending.drain(..n) {
            apply_entry(&mut self.lots, &e, fr, flows);
        }
        // Most members have no entry of the last `exact_days` most of the
        // time: give the pending vector's memory back.
        trim(&mut self.pending);
        trim(&mut self.lots);
    }

    /// Event time of the oldest pending entry.
    pub fn oldest_pending(&self) -> Option<Ts> {
        self.pending.first().map(|e| e.at)
    }

    /// Adds another member's ledger (an alias link). Pending entries merge
    /// in event-time order; folded lots of both are combined oldest first
    /// (exact when at most one side has lots, which is the case unless both
    /// ids earned more than `exact_days` before the link arrived).
    pub fn merge(&mut self, other: Ledger, fr: &impl Franchisees, flows: &mut Vec<Flow>) {
        self.earned += other.earned;
        self.taken_back += other.taken_back;
        self.redeemed += other.redeemed;
        for e in other.pending {
            let key = (e.at, e.event_id.as_str());
            let at = self
                .pending
                .partition_point(|p| (p.at, p.event_id.as_str()) < key);
            reserve_one(&mut self.pending);
            self.pending.insert(at, e);
        }
        if other.lots.is_empty() {
            return;
        }
        if self.lots.is_empty() {
            self.lots = other.lots;
            return;
        }
        // Replay both folded queues as entries, oldest lot first.
        let mut all: Vec<Lot> = std::mem::take(&mut self.lots);
        all.extend(other.lots);
        all.sort_by_key(|l| l.since);
        for lot in all {
            let entry = LedgerEntry {
                at: lot.since,
                event_id: Id::default(),
                kind: if lot.points >= 0 {
                    EntryKind::Earn
                } else if lot.store.is_some() {
                    EntryKind::Redeem
                } else {
                    EntryKind::TakeBack
                },
                points: lot.points.abs(),
                store: lot.store.unwrap_or(StoreIdx(u16::MAX)),
                alerted: true,
            };
            apply_entry(&mut self.lots, &entry, fr, flows);
        }
    }
}

/// Points owed between franchisees per China day: `(day, from, to)` ->
/// points (franchisee indices; 1 point = 0.01 CNY).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settlement {
    pub owed: BTreeMap<(i32, u16, u16), i64>,
}

impl Settlement {
    /// Adds (`sign` = 1) or removes (`sign` = -1) flows.
    pub fn apply(&mut self, flows: &[Flow], fr: &impl Franchisees, sign: i64) {
        for f in flows {
            let key = (f.day, fr.franchisee(f.from), fr.franchisee(f.to));
            let v = self.owed.entry(key).or_insert(0);
            *v += sign * f.points;
            if *v == 0 {
                self.owed.remove(&key);
            }
        }
    }

    /// Rows of one day: (from, to, points).
    pub fn day(&self, day: i32) -> impl Iterator<Item = (u16, u16, i64)> + '_ {
        self.owed
            .range((day, 0, 0)..=(day, u16::MAX, u16::MAX))
            .map(|(&(_, a, b), &p)| (a, b, p))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use storepulse_core::time::HOUR;

    /// Stores 0 and 1 belong to franchisee 0, store 2 to franchisee 1.
    struct Fr;
    impl Franchisees for Fr {
        fn franchisee(&self, store: StoreIdx) -> u16 {
            u16::from(store.0 >= 2)
        }
    }

    fn entry(h: i64, kind: EntryKind, points: i64, store: u16) -> LedgerEntry {
        LedgerEntry {
            at: h * HOUR,
            event_id: format!("e{h}").into(),
            kind,
            points,
            store: StoreIdx(store),
            alerted: false,
        }
    }

    #[test]
    fn fifo_spends_the_oldest_points_first_and_settles_across_franchisees() {
        let mut l = Ledger::default();
        let (mut folded, mut od) = (Vec::new(), Vec::new());
        l.add(
            entry(1, EntryKind::Earn, 100, 2),
            Ts::MIN,
            &Fr,
            &mut folded,
            &mut od,
        );
        l.add(
            entry(2, EntryKind::Earn, 50, 0),
            Ts::MIN,
            &Fr,
            &mut folded,
            &mut od,
        );
        l.add(
            entry(3, EntryKind::Redeem, 120, 1),
            Ts::MIN,
            &Fr,
            &mut folded,
            &mut od,
        );
        let mut flows = Vec::new();
        l.pending_flows(&Fr, &mut flows);
        // 100 from store 2 (franchisee 1) spent at store 1 (franchisee 0);
        // 20 from store 0 spent at store 1: same franchisee, no flow.
        assert_eq!(flows.len(), 1);
        assert_eq!(
            (flows[0].from, flows[0].to, flows[0].points),
            (StoreIdx(2), StoreIdx(1), 100)
        );
        assert_eq!(l.balance(), 30);
        l.find_overdrafts(&mut od);
        assert!(od.is_empty());
    }

    #[test]
    fn a_late_earn_lands_in_its_event_time_place() {
        let mut late = Ledger::default();
        let (mut folded, mut od) = (Vec::new(), Vec::new());
        late.add(
            entry(3, EntryKind::Redeem, 80, 0),
            Ts::MIN,
            &Fr,
            &mut folded,
            &mut od,
        );
        late.add(
            entry(1, EntryKind::Earn, 100, 2),
            Ts::MIN,
            &Fr,
            &mut folded,
            &mut od,
        );
        let mut in_order = Ledger::default();
        in_order.add(
            entry(1, EntryKind::Earn, 100, 2),
            Ts::MIN,
            &Fr,
            &mut folded,
            &mut od,
        );
        in_order.add(
            entry(3, EntryKind::Redeem, 80, 0),
            Ts::MIN,
            &Fr,
            &mut folded,
            &mut od,
        );
        assert_eq!(late.pending, in_order.pending);
        late.find_overdrafts(&mut od);
        assert!(
            od.is_empty(),
            "in event-time order the redemption was covered"
        );
    }

    #[test]
    fn overdraft_leaves_a_debt_repaid_by_later_earnings() {
        let mut l = Ledger::default();
        let (mut folded, mut od) = (Vec::new(), Vec::new());
        l.add(
            entry(1, EntryKind::Redeem, 30, 2),
            Ts::MIN,
            &Fr,
            &mut folded,
            &mut od,
        );
        l.add(
            entry(2, EntryKind::Earn, 50, 0),
            Ts::MIN,
            &Fr,
            &mut folded,
            &mut od,
        );
        l.find_overdrafts(&mut od);
        assert_eq!(od.len(), 1);
        assert_eq!(od[0].balance_after, -30);
        let mut again = Vec::new();
        l.find_overdrafts(&mut again);
        assert!(again.is_empty(), "an overdraft is reported once");
        let mut flows = Vec::new();
        l.fold(10 * HOUR, &Fr, &mut flows);
        assert_eq!(
            flows,
            vec![Flow {
                day: china_day(2 * HOUR),
                from: StoreIdx(0),
                to: StoreIdx(2),
                points: 30
            }]
        );
        assert_eq!(
            l.lots,
            vec![Lot {
                store: Some(StoreIdx(0)),
                points: 20,
                since: 2 * HOUR
            }]
        );
        assert_eq!(l.balance(), 20);
    }

    #[test]
    fn a_packed_lot_keeps_its_wire_format() {
        /// `Lot` before it was packed.
        #[derive(Debug, PartialEq, Serialize, Deserialize)]
        struct Unpacked {
            store: Option<StoreIdx>,
            points: i64,
            #[serde(with = "storepulse_core::time::rfc3339")]
            since: Ts,
        }
        let lot = Lot {
            store: Some(StoreIdx(7)),
            points: -123_456_789_012,
            since: 5 * HOUR + 17_000_000,
        };
        let old = Unpacked {
            store: Some(StoreIdx(7)),
            points: -123_456_789_012,
            since: 5 * HOUR + 17_000_000,
        };
        let json = serde_json::to_string(&lot).unwrap();
        assert_eq!(json, serde_json::to_string(&old).unwrap());
        let back: Lot = serde_json::from_str(&json).unwrap();
        assert_eq!(back, lot);
        let bytes = postcard::to_allocvec(&lot).unwrap();
        assert_eq!(bytes, postcard::to_allocvec(&old).unwrap());
        let back: Lot = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(back, lot);
    }

    #[test]
    fn settlement_subtracts_back_to_nothing() {
        let mut s = Settlement::default();
        let f = [Flow {
            day: 3,
            from: StoreIdx(0),
            to: StoreIdx(2),
            points: 7,
        }];
        s.apply(&f, &Fr, 1);
        assert_eq!(s.day(3).collect::<Vec<_>>(), vec![(0, 1, 7)]);
        s.apply(&f, &Fr, -1);
        assert!(s.owed.is_empty());
    }
}
