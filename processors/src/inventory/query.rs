//! Read-only views of inventory state, for the query API and `replay`.

use serde::Serialize;
use storepulse_core::time::{china_day, format_china};
use storepulse_core::StoreIdx;

use super::{key, key_parts, InventoryProcessor, StockEntry};

/// Stock of one (store, SKU), as the API answers it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StockView {
    pub store_id: String,
    pub sku: String,
    pub on_hand: i64,
    /// Event time of the latest change (RFC 3339, China time).
    pub updated_at: Option<String>,
    pub velocity_per_day: f64,
    /// on_hand / velocity; `null` when velocity is zero.
    pub days_of_cover: Option<f64>,
}

/// A store that has a SKU, for nearby availability.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Availability {
    pub store_id: String,
    pub name: String,
    pub on_hand: i64,
    pub distance_km: f64,
}

/// One page of a listing; `next` is the cursor of the following page.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<String>,
}

/// Rounds to 3 decimals for answers (velocities and covers are estimates).
pub(crate) fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

impl InventoryProcessor {
    /// Units sold per day over the velocity window ending at `T`.
    pub(crate) fn velocity_of(&self, entry: &StockEntry) -> f64 {
        let Some(clock) = self.clock() else {
            return 0.0;
        };
        let days = self.config.velocity_days;
        entry.units_sold(china_day(clock), days) as f64 / f64::from(days)
    }

    /// Days of cover (`None` when nothing sells).
    pub(crate) fn cover_of(&self, entry: &StockEntry) -> Option<f64> {
        let v = self.velocity_of(entry);
        (v > 0.0).then(|| entry.on_hand as f64 / v)
    }

    fn view(&self, store: StoreIdx, sku: &str, entry: &StockEntry) -> StockView {
        StockView {
            store_id: self.stores.id(store).to_owned(),
            sku: sku.to_owned(),
            on_hand: entry.on_hand,
            updated_at: (entry.updated_at != i64::MIN).then(|| format_china(entry.updated_at)),
            velocity_per_day: round3(self.velocity_of(entry)),
            days_of_cover: self.cover_of(entry).map(round3),
        }
    }

    pub(crate) fn entry(&self, store: StoreIdx, sku: &str) -> Option<&StockEntry> {
        let sku_id = self.state.skus.get(sku)?;
        self.state.entries.get(&key(store, sku_id))
    }

    /// Stock of one (store, SKU); `None` if the pair has never been seen.
    pub fn stock(&self, store: StoreIdx, sku: &str) -> Option<StockView> {
        self.entry(store, sku).map(|e| self.view(store, sku, e))
    }

    /// A store's SKUs in SKU order, `limit` per page, after the cursor `after`.
    pub fn store_stock(
        &self,
        store: StoreIdx,
        after: Option<&str>,
        limit: usize,
    ) -> Page<StockView> {
        let mut skus: Vec<(&str, &StockEntry)> = self
            .state
            .entries
            .iter()
            .filter_map(|(k, e)| {
                let (s, sku) = key_parts(*k);
                (s == store).then(|| (self.state.skus.resolve(sku), e))
            })
            .filter(|(sku, _)| after.is_none_or(|a| *sku > a))
            .collect();
        skus.sort_unstable_by(|a, b| a.0.cmp(b.0));
        let more = skus.len() > limit;
        skus.truncate(limit);
        let next = if more {
            skus.last().map(|(s, _)| (*s).to_owned())
        } else {
            None
        };
        Page {
            items: skus
                .into_iter()
                .map(|(sku, e)| self.view(store, sku, e))
                .collect(),
            next,
        }
    }

    /// Other stores with `on_hand > 0` of a SKU, nearest to `near` first.
    pub fn availability(&self, sku: &str, near: StoreIdx, limit: usize) -> Vec<Availability> {
        let mut found: Vec<Availability> = self
            .stores
            .iter()
            .filter(|(idx, _)| *idx != near)
            .filter_map(|(idx, store)| {
                let entry = self.entry(idx, sku)?;
                (entry.on_hand > 0).then(|| Availability {
                    store_id: store.store_id.clone(),
                    name: store.name.clone(),
                    on_hand: entry.on_hand,
                    distance_km: round3(self.stores.distance_km(near, idx)),
                })
            })
            .collect();
        found.sort_by(|a, b| {
            a.distance_km
                .total_cmp(&b.distance_km)
                .then_with(|| a.store_id.cmp(&b.store_id))
        });
        found.truncate(limit);
        found
    }

    /// Every (store_id, sku, on_hand), sorted, for `replay`'s `stock.csv`.
    pub fn all_stock(&self) -> Vec<(String, String, i64)> {
        let mut rows: Vec<(String, String, i64)> = self
            .state
            .entries
            .iter()
            .map(|(k, e)| {
                let (store, sku) = key_parts(*k);
                (
                    self.stores.id(store).to_owned(),
                    self.state.skus.resolve(sku).to_owned(),
                    e.on_hand,
                )
            })
            .collect();
        rows.sort_unstable();
        rows
    }

    /// The SKU string of an interned id (for stock-change outputs).
    pub fn sku_name(&self, sku: super::SkuId) -> &str {
        self.state.skus.resolve(sku)
    }
}
