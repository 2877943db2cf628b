//! Stock as a compacted topic carries it, and the read model built from it.
//!
//! In Kafka mode each processor instance owns some partitions; the query
//! API on every instance answers for all stores from a *materialised*
//! inventory: an [`InventoryProcessor`] whose entries are put from
//! [`StockSnapshot`]s read off the stock topic instead of being computed
//! from events. Such a processor answers every query (stock, availability,
//! suggestions, routing) but must not be fed events.

use serde::{Deserialize, Serialize};
use storepulse_core::{StoreIdx, Ts};

use super::{key, InventoryProcessor, StockChange, StockEntry, NO_COUNT, RING};

/// The part of a (store, SKU) entry that queries need: on-hand, last
/// change, and the 14-day ring of units sold (for velocity).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockSnapshot {
    pub on_hand: i64,
    /// Event time of the latest change.
    pub updated_at: Ts,
    /// China day (days since 1970-01-01) of the newest slot of `sold`.
    pub sold_day: i32,
    /// Units sold per China day, a ring indexed by `day % 14`.
    pub sold: [u16; RING],
}

impl InventoryProcessor {
    /// The snapshot of the entry a change touched, with its store and SKU
    /// names (`None` if the entry is unknown, which a fresh change never is).
    pub fn snapshot_of(&self, change: &StockChange) -> Option<(&str, &str, StockSnapshot)> {
        let entry = self.state.entries.get(&key(change.store, change.sku))?;
        Some((
            self.stores.id(change.store),
            self.state.skus.resolve(change.sku),
            StockSnapshot {
                on_hand: entry.on_hand,
                updated_at: entry.updated_at,
                sold_day: entry.sold_day,
                sold: entry.sold,
            },
        ))
    }

    /// Puts a snapshot read from the stock topic, and moves the clock to
    /// `clock` if it is later (the clock of the partition that wrote it).
    pub fn put_snapshot(
        &mut self,
        store: StoreIdx,
        sku: &str,
        snapshot: &StockSnapshot,
        clock: Ts,
    ) {
        let sku = self.state.skus.intern(sku);
        let entry = self
            .state
            .entries
            .entry(key(store, sku))
            .or_insert_with(StockEntry::new);
        entry.on_hand = snapshot.on_hand;
        entry.updated_at = snapshot.updated_at;
        entry.sold_day = snapshot.sold_day;
        entry.sold = snapshot.sold;
        entry.count_at = Ts::MIN;
        entry.count_id = NO_COUNT;
        if clock > self.state.clock {
            self.state.clock = clock;
        }
    }
}
