//! The sales of one key under one rule, and the greedy grouping that turns
//! them into alerts.
//!
//! **Which sales make an alert.** Sales are kept in event-time order
//! (`occurred_at`, then `event_id`). Walking them in that order, at each
//! sale `j` that is in no alert yet, the *window* is every sale `i <= j`
//! with `at_j - window <= at_i` that is in no alert yet; if the window
//! reaches the rule's thresholds it becomes an alert and its sales are
//! taken. So an alert fires at the first sale that completes a pattern (in
//! event time), holds every free sale of the span before it, and a sale is
//! in at most one alert of a rule and key (RULES.md). The grouping is a
//! function of the set of sales alone, so it does not depend on arrival
//! order.
//!
//! **Late sales.** A sale that lands before others re-runs the walk from
//! its place: alerts with a sale at or after it are undone and the walk
//! redone from there. Alerts that come out the same keep their id (it is a
//! hash of their event ids) and are not emitted again; the others are
//! withdrawn and the new ones raised. In time order (the usual case) only
//! the new sale is looked at.

use serde::{Deserialize, Serialize};
use smallvec::SmallVec;
use storepulse_core::{Id, StoreIdx, Ts};
use xxhash_rust::xxh3::Xxh3;

use super::rules::CompiledRule;

/// One sale as a fraud window keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowSale {
    pub at: Ts,
    pub event_id: Id,
    pub order_id: Id,
    pub store: StoreIdx,
    pub total: u64,
    /// Hash of the alert this sale is in (0: none).
    pub alert: u64,
}

/// Not scheduled for expiry.
pub(crate) const UNSCHEDULED: i64 = i64::MIN;

/// The sales of one key under one rule.
///
/// Most keys hold one sale (a card or member seen once in the horizon), so
/// one sale is kept inline, without an allocation of its own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyWindow {
    /// Sorted by (`at`, `event_id`).
    pub sales: SmallVec<[WindowSale; 1]>,
    /// Expiry bucket this key is filed under, or [`UNSCHEDULED`].
    pub(crate) due: i64,
}

impl Default for KeyWindow {
    fn default() -> Self {
        Self {
            sales: SmallVec::new(),
            due: UNSCHEDULED,
        }
    }
}

/// An alert found by a walk: its hash and the indexes of its sales.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub hash: u64,
    pub sales: Vec<usize>,
}

/// Buffers a re-evaluation reuses, so grouping allocates only when an
/// alert fires.
#[derive(Debug, Default)]
pub struct Scratch {
    undone: Vec<u64>,
    stores: Vec<StoreIdx>,
    members: Vec<usize>,
}

/// What a re-evaluation changed.
#[derive(Debug, Default)]
pub struct Diff {
    /// Alerts that no longer stand (hashes).
    pub withdrawn: Vec<u64>,
    /// Alerts that are new.
    pub raised: Vec<Found>,
}

impl KeyWindow {
    /// Inserts a sale in order. `None` when a sale with its `event_id` is
    /// already there (a duplicate changes nothing).
    pub fn insert(&mut self, sale: WindowSale) -> Option<usize> {
        let pos = self
            .sales
            .partition_point(|s| (s.at, &s.event_id) < (sale.at, &sale.event_id));
        // A duplicate (same id, same time) sorts onto the same place.
        if self
            .sales
            .get(pos)
            .is_some_and(|s| s.event_id == sale.event_id)
        {
            return None;
        }
        self.sales.insert(pos, sale);
        Some(pos)
    }

    /// Moves every sale of `other` in (duplicates dropped, their alert
    /// marks kept); returns the first index that changed, if any.
    pub fn absorb(&mut self, other: KeyWindow) -> Option<usize> {
        let mut first: Option<usize> = None;
        for sale in other.sales {
            if let Some(pos) = self.insert(sale) {
                first = Some(first.map_or(pos, |f| f.min(pos)));
                // Inserting before `first` shifts it, but `pos <= first`
                // then, so the minimum stays right.
            }
        }
        first
    }

    /// Drops the sales before `before`.
    pub fn prune(&mut self, before: Ts) {
        let keep_from = self.sales.partition_point(|s| s.at < before);
        if keep_from > 0 {
            self.sales.drain(..keep_from);
        }
    }

    /// The latest sale time, if any.
    pub fn last_at(&self) -> Option<Ts> {
        self.sales.last().map(|s| s.at)
    }

    /// Re-runs the grouping from index `from`: undoes every alert with a
    /// sale at or after it, walks again, and says which alerts went and
    /// which came (an alert found again with the same sales is in neither).
    pub fn reevaluate(&mut self, from: usize, rule: &CompiledRule, scratch: &mut Scratch) -> Diff {
        let Scratch {
            undone,
            stores,
            members,
        } = scratch;
        undone.clear();
        for s in self.sales.iter().skip(from) {
            if s.alert != 0 && !undone.contains(&s.alert) {
                undone.push(s.alert);
            }
        }
        if !undone.is_empty() {
            for s in &mut self.sales {
                if s.alert != 0 && undone.contains(&s.alert) {
                    s.alert = 0;
                }
            }
        }
        let mut raised = Vec::new();
        for j in from..self.sales.len() {
            if self.sales[j].alert != 0 {
                continue;
            }
            let start = self.sales[j].at.saturating_sub(rule.window);
            stores.clear();
            members.clear();
            let mut total: u64 = 0;
            for i in (0..=j).rev() {
                let s = &self.sales[i];
                if s.at < start {
                    break;
                }
                if s.alert != 0 {
                    continue;
                }
                total = total.saturating_add(s.total);
                if !stores.contains(&s.store) {
                    stores.push(s.store);
                }
                members.push(i);
            }
            if rule.met(total, stores.len(), members.len()) {
                members.reverse();
                let hash = alert_hash(rule.name(), members.iter().map(|&i| &self.sales[i]));
                for &i in members.iter() {
                    self.sales[i].alert = hash;
                }
                raised.push(Found {
                    hash,
                    sales: members.clone(),
                });
            }
        }
        // Alerts found again unchanged are neither withdrawn nor raised.
        let mut diff = Diff::default();
        for &h in undone.iter() {
            if let Some(i) = raised.iter().position(|f| f.hash == h) {
                raised.swap_remove(i);
            } else {
                diff.withdrawn.push(h);
            }
        }
        raised.sort_by_key(|f| f.sales.last().copied());
        diff.raised = raised;
        diff
    }

    /// The indexes of the sales of the alert `hash`, as a [`Found`].
    pub fn found(&self, hash: u64) -> Found {
        Found {
            hash,
            sales: (0..self.sales.len())
                .filter(|&i| self.sales[i].alert == hash)
                .collect(),
        }
    }

    /// The distinct alerts this window's sales are in.
    pub fn alerts(&self) -> Vec<u64> {
        let mut v: Vec<u64> = self
            .sales
            .iter()
            .map(|s| s.alert)
            .filter(|&a| a != 0)
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    }
}

/// The hash that names an alert: its rule and its event ids, in order.
fn alert_hash<'a>(rule: &str, sales: impl Iterator<Item = &'a WindowSale>) -> u64 {
    let mut h = Xxh3::new();
    h.update(rule.as_bytes());
    for s in sales {
        h.update(b"\n");
        h.update(s.event_id.as_bytes());
    }
    // 0 means "no alert" in `WindowSale::alert`.
    h.digest().max(1)
}

/// The alert id of a hash: `<rule>:<16 hex>`.
pub fn alert_id(rule: &str, hash: u64) -> String {
    format!("{rule}:{hash:016x}")
}
