//! Replenishment and transfer suggestions (RULES.md "Stock").
//!
//! - Replenish: a (store, SKU) whose days of cover are below
//!   `replenish_below_days`. The suggested quantity (our reading; the rule
//!   names none) brings it to `transfer_target_days` of cover, the same
//!   target a transfer aims at.
//! - Transfer: for a SKU, from a giver (cover above
//!   `transfer_giver_above_days`, or stock and no sales) to a receiver of the
//!   same region (cover below `replenish_below_days`), enough to bring the
//!   receiver to `transfer_target_days` of cover without taking the giver
//!   below `transfer_giver_keep_days`. Receivers with the least cover are
//!   served first, each from the nearest giver that still has surplus.

use std::collections::BTreeMap;

use serde::Serialize;
use storepulse_core::StoreIdx;

use super::query::round3;
use super::{key_parts, InventoryProcessor, SkuId};

/// A replenishment suggestion.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Replenish {
    pub store_id: String,
    pub sku: String,
    pub on_hand: i64,
    pub velocity_per_day: f64,
    pub days_of_cover: f64,
    pub suggested_qty: i64,
}

/// A transfer suggestion between two stores of one region.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TransferSuggestion {
    pub sku: String,
    pub from_store: String,
    pub to_store: String,
    pub qty: i64,
    pub distance_km: f64,
    pub from_days_of_cover: Option<f64>,
    pub to_days_of_cover: f64,
}

impl InventoryProcessor {
    /// Replenishment suggestions for one store, lowest cover first.
    pub fn replenish(&self, store: StoreIdx) -> Vec<Replenish> {
        let target = self.config.transfer_target_days;
        let mut out: Vec<Replenish> = self
            .state
            .entries
            .iter()
            .filter_map(|(k, e)| {
                let (s, sku) = key_parts(*k);
                if s != store {
                    return None;
                }
                let v = self.velocity_of(e);
                let cover = self.cover_of(e)?;
                (cover < self.config.replenish_below_days).then(|| Replenish {
                    store_id: self.stores.id(store).to_owned(),
                    sku: self.state.skus.resolve(sku).to_owned(),
                    on_hand: e.on_hand,
                    velocity_per_day: round3(v),
                    days_of_cover: round3(cover),
                    suggested_qty: ((target * v).ceil() as i64 - e.on_hand).max(1),
                })
            })
            .collect();
        out.sort_by(|a, b| {
            a.days_of_cover
                .total_cmp(&b.days_of_cover)
                .then_with(|| a.sku.cmp(&b.sku))
        });
        out
    }

    /// Transfer suggestions within a region (all regions when `None`).
    pub fn transfers(&self, region: Option<&str>) -> Vec<TransferSuggestion> {
        struct Side {
            store: StoreIdx,
            cover: Option<f64>,
            amount: i64,
        }
        let cfg = &self.config;
        // (region, sku) -> (givers, receivers); BTreeMap for a stable order.
        /// Givers and receivers of one SKU in one region.
        #[derive(Default)]
        struct Sides {
            givers: Vec<Side>,
            receivers: Vec<Side>,
        }
        let mut by_sku: BTreeMap<(&str, SkuId), Sides> = BTreeMap::new();
        for (k, e) in &self.state.entries {
            let (store, sku) = key_parts(*k);
            let store_region = self.stores.get(store).region.as_str();
            if region.is_some_and(|r| r != store_region) {
                continue;
            }
            let v = self.velocity_of(e);
            let cover = self.cover_of(e);
            let giver_surplus = match cover {
                Some(c) if c > cfg.transfer_giver_above_days => {
                    e.on_hand - (cfg.transfer_giver_keep_days * v).ceil() as i64
                }
                None if e.on_hand > 0 => e.on_hand,
                _ => 0,
            };
            let slot = by_sku.entry((store_region, sku)).or_default();
            if giver_surplus > 0 {
                slot.givers.push(Side {
                    store,
                    cover,
                    amount: giver_surplus,
                });
            } else if let Some(c) = cover.filter(|c| *c < cfg.replenish_below_days) {
                let need = (cfg.transfer_target_days * v).ceil() as i64 - e.on_hand;
                if need > 0 {
                    slot.receivers.push(Side {
                        store,
                        cover: Some(c),
                        amount: need,
                    });
                }
            }
        }
        let mut out = Vec::new();
        for (
            (_, sku),
            Sides {
                mut givers,
                mut receivers,
            },
        ) in by_sku
        {
            if givers.is_empty() || receivers.is_empty() {
                continue;
            }
            receivers.sort_by(|a, b| {
                a.cover
                    .unwrap_or(0.0)
                    .total_cmp(&b.cover.unwrap_or(0.0))
                    .then(a.store.cmp(&b.store))
            });
            for receiver in &receivers {
                let mut need = receiver.amount;
                givers.sort_by(|a, b| {
                    self.stores
                        .distance_km(receiver.store, a.store)
                        .total_cmp(&self.stores.distance_km(receiver.store, b.store))
                        .then(a.store.cmp(&b.store))
                });
                for giver in givers.iter_mut().filter(|g| g.amount > 0) {
                    if need == 0 {
                        break;
                    }
                    let qty = need.min(giver.amount);
                    giver.amount -= qty;
                    need -= qty;
                    out.push(TransferSuggestion {
                        sku: self.state.skus.resolve(sku).to_owned(),
                        from_store: self.stores.id(giver.store).to_owned(),
                        to_store: self.stores.id(receiver.store).to_owned(),
                        qty,
                        distance_km: round3(self.stores.distance_km(giver.store, receiver.store)),
                        from_days_of_cover: giver.cover.map(round3),
                        to_days_of_cover: round3(receiver.cover.unwrap_or(0.0)),
                    });
                }
            }
        }
        out
    }
}
