//! The generator's model of the chain: stores and regions, stock on hand,
//! members and their points.
//!
//! The model keeps the stream plausible rather than exact: it remembers what
//! it sold so that receipts replenish what runs low (stock stays mostly
//! positive), members redeem only points they have, transfers move stock a
//! store actually holds, and a member's in-store shopping stays at one store
//! for a while so that ordinary traffic never looks like the fraud pattern.

use rand::rngs::StdRng;
use rand::Rng;
use storepulse_core::{StoreIdx, StoreMaster, Ts};

use crate::catalogue::{Catalogue, Skewed};

/// Members' activity skew (Zipf exponent): some shop every week, most rarely.
const MEMBER_SKEW: f64 = 0.7;
/// Share of members who also register a second id (an app account) with the
/// same phone: an alias.
const ALIAS_SHARE: f64 = 0.08;
/// Units sold per generated event, roughly (0.87 sales x 2.4 lines x 1.4 units).
const UNITS_PER_EVENT: f64 = 3.0;
/// A store keeps stock for about this many events' worth of its sales.
const STOCK_HORIZON_EVENTS: f64 = 40_000.0;
/// Traffic weight of a store in the provincial capital against the others.
const CAPITAL_WEIGHT: f64 = 1.6;

pub(crate) mod flags {
    pub const REGISTERED: u8 = 1;
    pub const HAS_ALIAS: u8 = 2;
    pub const ALIAS_REGISTERED: u8 = 4;
    pub const ERASED: u8 = 8;
    /// Used in a planted fraud episode: kept out of ordinary traffic.
    pub const FRAUD: u8 = 16;
    pub const SHOPPED: u8 = 32;
}

/// One member's state.
#[derive(Debug, Clone)]
pub(crate) struct Member {
    pub points: i64,
    pub last_time: Ts,
    pub last_store: u16,
    pub home: u16,
    pub flags: u8,
}

impl Member {
    pub fn has(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }

    /// Whether ordinary traffic may use this member.
    pub fn active(&self) -> bool {
        !self.has(flags::ERASED | flags::FRAUD)
    }
}

/// The chain as the generator sees it.
pub(crate) struct World {
    pub n_skus: usize,
    /// Stores that sell over the counter (all but distribution centres).
    pub pos_stores: Vec<u16>,
    pos_sampler: Skewed,
    /// The distribution centre that ships online orders, if the master has one.
    pub dc: Option<u16>,
    /// Region of each store.
    region_of: Vec<u16>,
    /// Counter stores of each region.
    region_pos: Vec<Vec<u16>>,
    /// All stores of each region.
    pub region_all: Vec<Vec<u16>>,
    /// The store id as it may appear inside event ids.
    pub store_token: Vec<String>,
    stock: Vec<i32>,
    pending: Vec<bool>,
    pending_lists: Vec<Vec<u32>>,
    pending_stores: Vec<u16>,
    popularity: Vec<f64>,
    store_share: Vec<f64>,
    pub members: Vec<Member>,
    member_sampler: Skewed,
}

impl World {
    /// Builds the model; `None` when no store sells over the counter.
    pub fn new(
        stores: &StoreMaster,
        catalogue: &Catalogue,
        members: usize,
        rng: &mut StdRng,
    ) -> Option<Self> {
        let n_stores = stores.len();
        let mut region_names: Vec<&str> = Vec::new();
        let mut region_of = Vec::with_capacity(n_stores);
        let mut pos_stores = Vec::new();
        let mut weights = Vec::new();
        let mut dc = None;
        let mut store_token = Vec::with_capacity(n_stores);
        let capital = stores
            .iter()
            .next()
            .map(|(_, s)| s.city.clone())
            .unwrap_or_default();
        for (StoreIdx(i), store) in stores.iter() {
            let region = match region_names.iter().position(|r| *r == store.region) {
                Some(r) => r,
                None => {
                    region_names.push(&store.region);
                    region_names.len() - 1
                }
            };
            region_of.push(region as u16);
            store_token.push(if is_id_token(&store.store_id) {
                store.store_id.clone()
            } else {
                format!("S{i}")
            });
            if is_distribution_centre(&store.store_id, &store.name) {
                dc.get_or_insert(i);
            } else {
                pos_stores.push(i);
                weights.push(if store.city == capital {
                    CAPITAL_WEIGHT
                } else {
                    1.0
                });
            }
        }
        let mut region_pos = vec![Vec::new(); region_names.len()];
        let mut region_all = vec![Vec::new(); region_names.len()];
        for (i, &r) in region_of.iter().enumerate() {
            region_all[usize::from(r)].push(i as u16);
            if Some(i as u16) != dc {
                region_pos[usize::from(r)].push(i as u16);
            }
        }
        if pos_stores.is_empty() {
            return None;
        }
        let pos_sampler = Skewed::from_weights(weights.iter().copied());

        // Share of units each store sells: counter sales by weight, online
        // orders shipped from the DC (about 8% of units) when there is one.
        let mut store_share = vec![0.0; n_stores];
        let weight_sum: f64 = weights.iter().sum();
        let dc_share = if dc.is_some() { 0.08 } else { 0.0 };
        for (j, &s) in pos_stores.iter().enumerate() {
            store_share[usize::from(s)] = (1.0 - dc_share) * weights[j] / weight_sum;
        }
        if let Some(d) = dc {
            store_share[usize::from(d)] = dc_share;
        }

        let mut member_vec = Vec::with_capacity(members);
        for _ in 0..members {
            let home = pos_stores[pos_sampler.sample(rng)];
            let mut f = 0;
            if rng.gen_bool(ALIAS_SHARE) {
                f |= flags::HAS_ALIAS;
            }
            member_vec.push(Member {
                points: 0,
                last_time: Ts::MIN,
                last_store: home,
                home,
                flags: f,
            });
        }

        let n_skus = catalogue.len();
        Some(Self {
            n_skus,
            pos_stores,
            pos_sampler,
            dc,
            region_of,
            region_pos,
            region_all,
            store_token,
            stock: vec![0; n_stores * n_skus],
            pending: vec![false; n_stores * n_skus],
            pending_lists: vec![Vec::new(); n_stores],
            pending_stores: Vec::new(),
            popularity: catalogue.popularity(),
            store_share,
            members: member_vec,
            member_sampler: Skewed::zipf(members.max(1), MEMBER_SKEW),
        })
    }

    pub fn n_stores(&self) -> usize {
        self.region_of.len()
    }

    /// A counter store drawn by traffic weight.
    pub fn random_pos_store(&self, rng: &mut StdRng) -> u16 {
        self.pos_stores[self.pos_sampler.sample(rng)]
    }

    /// A counter store of the same region as `store`, other than it if possible.
    pub fn neighbour_pos_store(&self, store: u16, rng: &mut StdRng) -> u16 {
        let peers = &self.region_pos[usize::from(self.region_of[usize::from(store)])];
        let others: Vec<u16> = peers.iter().copied().filter(|&s| s != store).collect();
        if others.is_empty() {
            self.random_pos_store(rng)
        } else {
            others[rng.gen_range(0..others.len())]
        }
    }

    /// Another store of the same region (any kind), if there is one.
    pub fn region_peer(&self, store: u16, rng: &mut StdRng) -> Option<u16> {
        let peers = &self.region_all[usize::from(self.region_of[usize::from(store)])];
        let n_others = peers.len().saturating_sub(1);
        if n_others == 0 {
            return None;
        }
        let pick = rng.gen_range(0..n_others);
        peers.iter().copied().filter(|&s| s != store).nth(pick)
    }

    /// A member index drawn by activity.
    pub fn random_member(&self, rng: &mut StdRng) -> Option<u32> {
        (!self.members.is_empty()).then(|| self.member_sampler.sample(rng) as u32)
    }

    fn cell(&self, store: u16, sku: u32) -> usize {
        usize::from(store) * self.n_skus + sku as usize
    }

    pub fn on_hand(&self, store: u16, sku: u32) -> i32 {
        self.stock[self.cell(store, sku)]
    }

    /// The stock a store aims to hold of a SKU (what a receipt tops up to).
    pub fn target(&self, store: u16, sku: u32) -> i32 {
        let units = self.popularity[sku as usize]
            * self.store_share[usize::from(store)]
            * UNITS_PER_EVENT
            * STOCK_HORIZON_EVENTS;
        // A floor of 8: a store keeps a few facings of even a slow SKU, so
        // selling the last unit (an `out_of_stock` alert) stays the exception.
        (units.ceil() as i32).clamp(8, 5_000)
    }

    fn reorder_point(&self, store: u16, sku: u32) -> i32 {
        (self.target(store, sku) / 2).max(4)
    }

    /// Changes on-hand by `delta` and queues a replenishment when it runs low.
    pub fn add_stock(&mut self, store: u16, sku: u32, delta: i64) {
        let cell = self.cell(store, sku);
        let value =
            (i64::from(self.stock[cell]) + delta).clamp(i64::from(i32::MIN), i64::from(i32::MAX));
        self.stock[cell] = value as i32;
        if self.stock[cell] < self.reorder_point(store, sku) && !self.pending[cell] {
            self.pending[cell] = true;
            let list = &mut self.pending_lists[usize::from(store)];
            if list.is_empty() {
                self.pending_stores.push(store);
            }
            list.push(sku);
        }
    }

    /// Sets on-hand (a stocktake).
    pub fn set_stock(&mut self, store: u16, sku: u32, value: u32) {
        let current = i64::from(self.on_hand(store, sku));
        self.add_stock(store, sku, i64::from(value) - current);
    }

    /// A store with SKUs waiting for replenishment, and up to `max` of them.
    pub fn take_pending(&mut self, max: usize, rng: &mut StdRng) -> Option<(u16, Vec<u32>)> {
        if self.pending_stores.is_empty() {
            return None;
        }
        let at = rng.gen_range(0..self.pending_stores.len());
        let store = self.pending_stores[at];
        let list = &mut self.pending_lists[usize::from(store)];
        let take = list.len().min(max);
        let skus: Vec<u32> = list.drain(..take).collect();
        if list.is_empty() {
            self.pending_stores.swap_remove(at);
        }
        for &sku in &skus {
            let cell = self.cell(store, sku);
            self.pending[cell] = false;
        }
        Some((store, skus))
    }

    /// SKUs a store waits for (without taking them).
    pub fn pending_of(&self, store: u16) -> &[u32] {
        &self.pending_lists[usize::from(store)]
    }
}

/// Whether a store is a distribution centre (no counter, ships online orders).
fn is_distribution_centre(store_id: &str, name: &str) -> bool {
    store_id.ends_with("-DC") || name.contains("配送中心") || name.contains("Distribution")
}

/// Whether `s` may be used verbatim inside an event id.
fn is_id_token(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 24
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-'))
}
