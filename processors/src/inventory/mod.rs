//! On-hand stock per (store, SKU): the Stock part of RULES.md.
//!
//! **Order independence.** The state after a set of events does not depend on
//! the order they arrive in (within the allowed lateness), which the
//! property test in `tests` checks by shuffling and duplicating streams:
//! - receipts, `transfer_in` and restocked returns add; sales and
//!   `transfer_out` subtract; sums commute;
//! - a stocktake sets on-hand *as of its `occurred_at`*: on-hand is the
//!   latest count (greatest `(occurred_at, event_id)`) plus every change with
//!   a later `occurred_at`. A change at or before the count's time is taken to
//!   be in the count, whenever it arrives. When a newer count arrives, the
//!   changes after it are summed from a per-store history of recent changes;
//! - duplicates are ignored by `event_id` ([`DedupWindow`]).
//!
//! **Bounded memory.** The per-store change history keeps only changes
//! within `allowed_lateness` of the event-time clock `T` (16 bytes each);
//! a stocktake older than that cannot be placed exactly and is rejected with
//! a reason, as is any event too old to de-duplicate. Per (store, SKU) the
//! state is one fixed-size [`StockEntry`] (see its docs for the byte count).
//!
//! **Velocity** is units sold in the last `velocity_days` China calendar
//! days ending with `T`'s day (RULES.md says `(T-14d, T]`; we read it in
//! whole days, the unit a store plans in), divided by `velocity_days`.
//! Returns do not reduce it. Days of cover = on_hand / velocity.
//!
//! Layout: [`config`], [`alert`] (outputs), [`materialized`] (the stock-topic
//! read model of Kafka mode), [`query`] (read-only views for
//! the API), [`routing`] (online order fulfilment), [`suggest`]
//! (replenishment and transfers).

pub mod alert;
pub mod config;
pub mod materialized;
pub mod query;
pub mod routing;
pub mod suggest;

use std::collections::VecDeque;
use std::sync::Arc;

use compact_str::CompactString;
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};
use storepulse_core::time::{china_day, format_china, Ts};
use storepulse_core::{Event, EventBody, Rejection, StoreIdx, StoreMaster};

use crate::dedup::{DedupVerdict, DedupWindow};
use crate::processor::{Outcome, Processor};
pub use alert::{InventoryOutput, StockAlert, StockAlertKind, StockChange};
pub use config::InventoryConfig;
pub use materialized::StockSnapshot;

/// Dense id of an interned SKU string.
pub type SkuId = u32;

const NO_COUNT: u32 = u32::MAX;
const RING: usize = config::MAX_VELOCITY_DAYS as usize;
const _: () = assert!(std::mem::size_of::<StockEntry>() == 64);

/// The state of one (store, SKU): 64 bytes, plus 8 for its key in the map.
///
/// Daily units sold are `u16` and saturate at 65,535 units of one SKU in one
/// store in one day, far beyond any store's day; velocity would then read low.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StockEntry {
    /// Current on-hand (may be negative: oversold).
    pub on_hand: i64,
    /// Latest `occurred_at` among the changes applied (or the count).
    pub updated_at: Ts,
    /// `occurred_at` of the stocktake that stands, or `Ts::MIN`.
    count_at: Ts,
    /// Interned event id of that stocktake, or `NO_COUNT`.
    count_id: u32,
    /// China day of the newest slot of `sold`.
    sold_day: i32,
    /// Units sold per day, a ring indexed by `day % 14`.
    sold: [u16; RING],
}

impl StockEntry {
    fn new() -> Self {
        Self {
            on_hand: 0,
            updated_at: Ts::MIN,
            count_at: Ts::MIN,
            count_id: NO_COUNT,
            sold_day: i32::MIN,
            sold: [0; RING],
        }
    }

    fn record_sale(&mut self, day: i32, qty: u32) {
        if self.sold_day == i32::MIN || day > self.sold_day {
            // Clear the slots of the days between the old newest and `day`.
            let gap = if self.sold_day == i32::MIN {
                RING as i64
            } else {
                (i64::from(day) - i64::from(self.sold_day)).min(RING as i64)
            };
            for k in 0..gap {
                let d = i64::from(day) - k;
                self.sold[d.rem_euclid(RING as i64) as usize] = 0;
            }
            self.sold_day = day;
        } else if day <= self.sold_day - RING as i32 {
            return; // older than anything the window can reach
        }
        let slot = i64::from(day).rem_euclid(RING as i64) as usize;
        self.sold[slot] = self.sold[slot].saturating_add(u16::try_from(qty).unwrap_or(u16::MAX));
    }

    /// Units sold over the `days` China days ending with `today`.
    pub fn units_sold(&self, today: i32, days: u32) -> u64 {
        if self.sold_day == i32::MIN {
            return 0;
        }
        let first = today - days as i32 + 1;
        let lo = first.max(self.sold_day - RING as i32 + 1);
        let hi = today.min(self.sold_day);
        (lo..=hi)
            .map(|d| u64::from(self.sold[i64::from(d).rem_euclid(RING as i64) as usize]))
            .sum()
    }
}

/// One applied change remembered for placing late stocktakes (per store,
/// sorted by `at`).
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct RecentChange {
    at: Ts,
    sku: SkuId,
    delta: i32,
}

/// Interned strings (SKUs, stocktake event ids): each stored once.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Interner {
    ids: FxHashMap<CompactString, u32>,
    strings: Vec<CompactString>,
}

impl Clone for Interner {
    fn clone(&self) -> Self {
        Self {
            ids: self.ids.clone(),
            strings: self.strings.clone(),
        }
    }

    fn clone_from(&mut self, source: &Self) {
        self.ids.clone_from(&source.ids);
        self.strings.clone_from(&source.strings);
    }
}

impl Interner {
    fn intern(&mut self, s: &str) -> u32 {
        if let Some(&id) = self.ids.get(s) {
            return id;
        }
        let id = self.strings.len() as u32;
        let owned = CompactString::from(s);
        self.strings.push(owned.clone());
        self.ids.insert(owned, id);
        id
    }

    /// The id of a string, if interned.
    pub fn get(&self, s: &str) -> Option<u32> {
        self.ids.get(s).copied()
    }

    /// The string of an id.
    pub fn resolve(&self, id: u32) -> &str {
        self.strings
            .get(id as usize)
            .map_or("", CompactString::as_str)
    }

    /// Number of interned strings.
    pub fn len(&self) -> usize {
        self.strings.len()
    }

    /// Whether nothing is interned.
    pub fn is_empty(&self) -> bool {
        self.strings.is_empty()
    }
}

/// The checkpointable state of the inventory processor.
#[derive(Debug, Serialize, Deserialize)]
pub struct InventoryState {
    skus: Interner,
    count_ids: Interner,
    entries: FxHashMap<u64, StockEntry>,
    /// Per store (by index): changes within the allowed lateness.
    recent: Vec<VecDeque<RecentChange>>,
    dedup: DedupWindow,
    /// The event-time clock `T`: the latest `occurred_at` applied.
    clock: Ts,
}

impl Clone for InventoryState {
    fn clone(&self) -> Self {
        Self {
            skus: self.skus.clone(),
            count_ids: self.count_ids.clone(),
            entries: self.entries.clone(),
            recent: self.recent.clone(),
            dedup: self.dedup.clone(),
            clock: self.clock,
        }
    }

    /// Field by field, reusing `self`'s allocations: the runtime copies the
    /// state for every checkpoint into the previous copy, so the copy runs at
    /// memory speed instead of faulting in fresh pages.
    fn clone_from(&mut self, source: &Self) {
        self.skus.clone_from(&source.skus);
        self.count_ids.clone_from(&source.count_ids);
        self.entries.clone_from(&source.entries);
        self.recent.clone_from(&source.recent);
        self.dedup.clone_from(&source.dedup);
        self.clock = source.clock;
    }
}

/// The inventory processor: state plus the configuration and store master
/// it is read with.
#[derive(Debug, Clone)]
pub struct InventoryProcessor {
    state: InventoryState,
    config: InventoryConfig,
    stores: Arc<StoreMaster>,
}

/// The map key of a (store, SKU): SKU high, store low, so that the bits a
/// multiplicative hash mixes best (the low ones) tell stores apart.
fn key(store: StoreIdx, sku: SkuId) -> u64 {
    (u64::from(sku) << 16) | u64::from(store.0)
}

fn key_parts(key: u64) -> (StoreIdx, SkuId) {
    (StoreIdx(key as u16), (key >> 16) as u32)
}

impl InventoryProcessor {
    /// A processor with empty state.
    pub fn new(config: InventoryConfig, stores: Arc<StoreMaster>) -> Self {
        let state = InventoryState {
            skus: Interner::default(),
            count_ids: Interner::default(),
            entries: FxHashMap::default(),
            recent: vec![VecDeque::new(); stores.len()],
            dedup: DedupWindow::new(config.allowed_lateness()),
            clock: Ts::MIN,
        };
        Self {
            state,
            config,
            stores,
        }
    }

    /// A processor resuming from a checkpointed state.
    ///
    /// # Errors
    /// When the state was made with a different store master (fewer or more
    /// stores): it cannot be read safely.
    pub fn from_state(
        state: InventoryState,
        config: InventoryConfig,
        stores: Arc<StoreMaster>,
    ) -> Result<Self, String> {
        if state.recent.len() != stores.len() {
            return Err(format!(
                "checkpoint was made with {} stores, the store master has {}",
                state.recent.len(),
                stores.len()
            ));
        }
        Ok(Self {
            state,
            config,
            stores,
        })
    }

    /// The state, for checkpoints.
    pub fn state(&self) -> &InventoryState {
        &self.state
    }

    /// The configuration.
    pub fn config(&self) -> &InventoryConfig {
        &self.config
    }

    /// The store master.
    pub fn stores(&self) -> &Arc<StoreMaster> {
        &self.stores
    }

    /// The event-time clock `T` (`None` before the first event).
    pub fn clock(&self) -> Option<Ts> {
        (self.state.clock != Ts::MIN).then_some(self.state.clock)
    }

    /// Number of (store, SKU) pairs with state.
    pub fn len(&self) -> usize {
        self.state.entries.len()
    }

    /// Whether there is no stock state yet.
    pub fn is_empty(&self) -> bool {
        self.state.entries.is_empty()
    }

    /// The window of remembered event ids (every event type the processor
    /// accepted). Ingest starts its own window from a copy of it.
    pub fn dedup_window(&self) -> &storepulse_core::dedup::DedupWindow {
        &self.state.dedup
    }

    /// Remembered event ids (de-duplication).
    pub fn dedup_len(&self) -> usize {
        self.state.dedup.len()
    }

    /// Changes remembered for placing late stocktakes, over all stores.
    pub fn recent_len(&self) -> usize {
        self.state.recent.iter().map(VecDeque::len).sum()
    }

    fn horizon(&self) -> Ts {
        if self.state.clock == Ts::MIN {
            Ts::MIN
        } else {
            self.state
                .clock
                .saturating_sub(self.config.allowed_lateness())
        }
    }

    fn change(
        &mut self,
        event: &Event,
        store: StoreIdx,
        sku: &str,
        delta: i64,
        sold: u32,
        out: &mut Vec<InventoryOutput>,
    ) {
        let at = event.occurred_at;
        let sku_id = self.state.skus.intern(sku);
        let entry = self
            .state
            .entries
            .entry(key(store, sku_id))
            .or_insert_with(StockEntry::new);
        if sold > 0 {
            entry.record_sale(china_day(at), sold);
        }
        if at <= entry.count_at {
            return; // in the stocktake that stands
        }
        let before = entry.on_hand;
        entry.on_hand += delta;
        entry.updated_at = entry.updated_at.max(at);
        let after = entry.on_hand;
        let horizon = if self.state.clock == Ts::MIN {
            Ts::MIN
        } else {
            self.state
                .clock
                .saturating_sub(self.config.allowed_lateness())
        };
        if at > horizon {
            // Kept sorted by time: arrivals are nearly in order, so the
            // insertion point is at or next to the back.
            let recent = &mut self.state.recent[usize::from(store.0)];
            // |delta| <= 10^6 by the contract, so it fits an i32.
            let change = RecentChange {
                at,
                sku: sku_id,
                delta: delta as i32,
            };
            if recent.back().is_none_or(|last| last.at <= at) {
                recent.push_back(change);
            } else {
                let pos = recent.partition_point(|c| c.at <= at);
                recent.insert(pos, change);
            }
        }
        out.push(InventoryOutput::Changed(StockChange {
            store,
            sku: sku_id,
            on_hand: after,
            occurred_at: at,
        }));
        self.alert_on_transition(event, store, sku, before, after, out);
    }

    fn alert_on_transition(
        &self,
        event: &Event,
        store: StoreIdx,
        sku: &str,
        before: i64,
        after: i64,
        out: &mut Vec<InventoryOutput>,
    ) {
        let kind = if after < 0 && before >= 0 {
            StockAlertKind::Oversold
        } else if after == 0 && before != 0 {
            StockAlertKind::OutOfStock
        } else {
            return;
        };
        let store_id = self.stores.id(store);
        out.push(InventoryOutput::Alert(Box::new(StockAlert {
            alert_id: format!("{}:{store_id}:{sku}:{}", kind.as_str(), event.event_id),
            kind,
            store_id: store_id.to_owned(),
            sku: sku.to_owned(),
            on_hand: after,
            event_id: event.event_id.to_string(),
            occurred_at: event.occurred_at,
        })));
    }

    fn count(
        &mut self,
        event: &Event,
        lines: &[storepulse_core::CountLine],
        out: &mut Vec<InventoryOutput>,
    ) {
        let store = event.store;
        let at = event.occurred_at;
        let count_id = self.state.count_ids.intern(&event.event_id);
        // Which counted SKUs does this count replace the standing count of?
        let mut sums: FxHashMap<SkuId, i64> = FxHashMap::default();
        let mut winners = Vec::with_capacity(lines.len());
        for line in lines {
            let sku_id = self.state.skus.intern(&line.sku);
            let entry = self
                .state
                .entries
                .entry(key(store, sku_id))
                .or_insert_with(StockEntry::new);
            let newer = match entry.count_at.cmp(&at) {
                std::cmp::Ordering::Less => true,
                std::cmp::Ordering::Greater => false,
                std::cmp::Ordering::Equal => {
                    entry.count_id == NO_COUNT
                        || self.state.count_ids.resolve(entry.count_id) < event.event_id.as_str()
                }
            };
            if newer {
                sums.insert(sku_id, 0);
                winners.push((sku_id, line));
            }
        }
        if winners.is_empty() {
            return;
        }
        // Only the changes after the count matter; the history is sorted.
        let recent = &self.state.recent[usize::from(store.0)];
        let after = recent.partition_point(|c| c.at <= at);
        for change in recent.range(after..) {
            if let Some(sum) = sums.get_mut(&change.sku) {
                *sum += i64::from(change.delta);
            }
        }
        for (sku_id, line) in winners {
            let after_count = sums.get(&sku_id).copied().unwrap_or(0);
            let Some(entry) = self.state.entries.get_mut(&key(store, sku_id)) else {
                continue; // inserted above
            };
            let before = entry.on_hand;
            entry.on_hand = i64::from(line.on_hand) + after_count;
            entry.count_at = at;
            entry.count_id = count_id;
            entry.updated_at = entry.updated_at.max(at);
            let after = entry.on_hand;
            out.push(InventoryOutput::Changed(StockChange {
                store,
                sku: sku_id,
                on_hand: after,
                occurred_at: at,
            }));
            self.alert_on_transition(event, store, &line.sku, before, after, out);
        }
    }

    fn advance_clock(&mut self, at: Ts) {
        if at <= self.state.clock {
            return;
        }
        let old_hour = self.state.clock.div_euclid(storepulse_core::time::HOUR);
        self.state.clock = at;
        // Housekeeping at most once per hour of event time.
        if at.div_euclid(storepulse_core::time::HOUR) != old_hour {
            self.expire();
        }
    }

    /// Drops history and ids that the allowed lateness no longer reaches.
    pub fn expire(&mut self) {
        let horizon = self.horizon();
        for recent in &mut self.state.recent {
            while recent.front().is_some_and(|c| c.at <= horizon) {
                recent.pop_front();
            }
            if recent.capacity() > 64 && recent.len() < recent.capacity() / 4 {
                recent.shrink_to(recent.len() * 2);
            }
        }
        self.state.dedup.expire(self.state.clock);
    }

    /// Formats the clock for answers.
    pub fn clock_text(&self) -> Option<String> {
        self.clock().map(format_china)
    }
}

impl Processor for InventoryProcessor {
    type Output = InventoryOutput;

    fn apply(
        &mut self,
        event: &Event,
        out: &mut Vec<InventoryOutput>,
    ) -> Result<Outcome, Rejection> {
        let is_count = matches!(event.body, EventBody::StockCount(_));
        if is_count && event.occurred_at <= self.horizon() {
            return Err(Rejection::semantic(
                "occurred_at",
                format!(
                    "stocktake is more than {}h behind the event-time clock ({}); it can no longer be placed exactly among later changes: count again, or raise inventory.allowed_lateness_hours",
                    self.config.allowed_lateness_hours,
                    format_china(self.state.clock)
                ),
                &event.event_id,
            ));
        }
        // Every event type is de-duplicated here, so the runtime can count
        // duplicates of any type from this processor's verdict.
        match self.state.dedup.check(&event.event_id, event.occurred_at, self.state.clock) {
            DedupVerdict::New => {}
            DedupVerdict::Duplicate => return Ok(Outcome::Duplicate),
            DedupVerdict::TooLate => {
                return Err(Rejection::semantic(
                    "occurred_at",
                    format!(
                        "event is more than {}h behind the event-time clock ({}); too late to tell from a duplicate: raise inventory.allowed_lateness_hours to accept it",
                        self.config.allowed_lateness_hours,
                        format_china(self.state.clock)
                    ),
                    &event.event_id,
                ))
            }
        }
        let affects_stock = matches!(
            event.body,
            EventBody::Sale(_)
                | EventBody::Return(Return { restock: true, .. })
                | EventBody::StockReceipt(_)
                | EventBody::StockCount(_)
                | EventBody::TransferIn(_)
                | EventBody::TransferOut(_)
        );
        if !affects_stock {
            self.advance_clock(event.occurred_at);
            return Ok(Outcome::Ignored);
        }
        let store = event.store;
        match &event.body {
            EventBody::Sale(sale) => {
                for line in &sale.lines {
                    self.change(event, store, &line.sku, -i64::from(line.qty), line.qty, out);
                }
            }
            EventBody::Return(ret) => {
                for line in &ret.lines {
                    self.change(event, store, &line.sku, i64::from(line.qty), 0, out);
                }
            }
            EventBody::StockReceipt(receipt) => {
                for line in &receipt.lines {
                    self.change(event, store, &line.sku, i64::from(line.qty), 0, out);
                }
            }
            EventBody::TransferIn(transfer) => {
                for line in &transfer.lines {
                    self.change(event, store, &line.sku, i64::from(line.qty), 0, out);
                }
            }
            EventBody::TransferOut(transfer) => {
                for line in &transfer.lines {
                    self.change(event, store, &line.sku, -i64::from(line.qty), 0, out);
                }
            }
            EventBody::StockCount(count) => self.count(event, &count.lines, out),
            EventBody::MemberRegister(_) | EventBody::PointsRedeem(_) | EventBody::MemberErase => {}
        }
        self.advance_clock(event.occurred_at);
        Ok(Outcome::Applied)
    }
}

use storepulse_core::Return;

#[cfg(test)]
mod tests;
