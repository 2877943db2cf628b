//! Fulfilment routing of an online order (RULES.md "Stock").
//!
//! The plan uses the fewest stores, then the smallest total distance from
//! the stores used to the delivery point; every line comes whole from one
//! store that has enough on-hand for it (lines of the same SKU are merged
//! first, so one store must hold their sum).
//!
//! Finding the fewest stores is set cover. Orders are small and chains have
//! tens to hundreds of stores, so the search is exact for plans of up to
//! three stores (all singles, pairs and, when at most 60 stores are
//! candidates, triples); beyond that it falls back to the greedy cover
//! (most remaining lines, then nearest), which the answer says (`exact`).

use serde::{Deserialize, Serialize};
use storepulse_core::stores::haversine_km;
use storepulse_core::StoreIdx;

use super::query::round3;
use super::InventoryProcessor;

/// An order line to route.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteLine {
    pub sku: String,
    pub qty: i64,
}

/// Where the order goes.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GeoPoint {
    pub lat: f64,
    pub lon: f64,
}

/// One store's part of a plan.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RouteLeg {
    pub store_id: String,
    pub distance_km: f64,
    pub lines: Vec<RouteLine>,
}

/// A fulfilment plan.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RoutePlan {
    pub legs: Vec<RouteLeg>,
    pub stores_used: usize,
    pub total_distance_km: f64,
    /// Whether the plan is proven minimal (false: greedy fallback).
    pub exact: bool,
}

/// Why an order cannot be routed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Unroutable {
    /// Lines no single store has enough of.
    pub lines: Vec<RouteLine>,
}

impl InventoryProcessor {
    /// Plans fulfilment of `lines` to `deliver_to`.
    ///
    /// # Errors
    /// [`Unroutable`] listing the lines that no store can serve whole.
    pub fn route(
        &self,
        lines: &[RouteLine],
        deliver_to: GeoPoint,
    ) -> Result<RoutePlan, Unroutable> {
        // Merge lines by SKU, keeping first-seen order.
        let mut merged: Vec<RouteLine> = Vec::new();
        for line in lines {
            match merged.iter_mut().find(|m| m.sku == line.sku) {
                Some(m) => m.qty += line.qty,
                None => merged.push(line.clone()),
            }
        }
        let distance: Vec<f64> = self
            .stores
            .iter()
            .map(|(_, s)| haversine_km(s.lat, s.lon, deliver_to.lat, deliver_to.lon))
            .collect();
        // can[i][line] = store i has enough of the line.
        let can: Vec<Vec<bool>> = self
            .stores
            .iter()
            .map(|(idx, _)| {
                merged
                    .iter()
                    .map(|l| self.entry(idx, &l.sku).is_some_and(|e| e.on_hand >= l.qty))
                    .collect()
            })
            .collect();
        let unserved: Vec<RouteLine> = merged
            .iter()
            .enumerate()
            .filter(|(j, _)| !can.iter().any(|row| row[*j]))
            .map(|(_, l)| l.clone())
            .collect();
        if !unserved.is_empty() {
            return Err(Unroutable { lines: unserved });
        }
        let candidates: Vec<usize> = (0..can.len())
            .filter(|i| can[*i].iter().any(|c| *c))
            .collect();
        let covers = |set: &[usize]| (0..merged.len()).all(|j| set.iter().any(|i| can[*i][j]));
        let cost = |set: &[usize]| set.iter().map(|i| distance[*i]).sum::<f64>();

        let mut best: Option<(Vec<usize>, f64)> = None;
        let consider = |best: &mut Option<(Vec<usize>, f64)>, set: Vec<usize>| {
            if covers(&set) {
                let c = cost(&set);
                if best.as_ref().is_none_or(|(_, b)| c < *b) {
                    *best = Some((set, c));
                }
            }
        };
        for &a in &candidates {
            consider(&mut best, vec![a]);
        }
        if best.is_none() {
            for (x, &a) in candidates.iter().enumerate() {
                for &b in &candidates[x + 1..] {
                    consider(&mut best, vec![a, b]);
                }
            }
        }
        if best.is_none() && candidates.len() <= 60 {
            for (x, &a) in candidates.iter().enumerate() {
                for (y, &b) in candidates.iter().enumerate().skip(x + 1) {
                    for &c in &candidates[y + 1..] {
                        consider(&mut best, vec![a, b, c]);
                    }
                }
            }
        }
        let (set, exact) = match best {
            Some((set, _)) => (set, true),
            None => (
                greedy_cover(&candidates, &can, &distance, merged.len()),
                false,
            ),
        };
        // Assign each line to the nearest store of the set that can serve it.
        let mut legs: Vec<RouteLeg> = Vec::new();
        let mut sorted = set.clone();
        sorted.sort_by(|a, b| distance[*a].total_cmp(&distance[*b]));
        for (j, line) in merged.iter().enumerate() {
            // `set` covers every line, so a server exists.
            let Some(&store) = sorted.iter().find(|i| can[**i][j]) else {
                continue;
            };
            let store_id = self.stores.id(StoreIdx(store as u16));
            match legs.iter_mut().find(|l| l.store_id == store_id) {
                Some(leg) => leg.lines.push(line.clone()),
                None => legs.push(RouteLeg {
                    store_id: store_id.to_owned(),
                    distance_km: round3(distance[store]),
                    lines: vec![line.clone()],
                }),
            }
        }
        let total: f64 = legs.iter().map(|l| l.distance_km).sum();
        Ok(RoutePlan {
            stores_used: legs.len(),
            legs,
            total_distance_km: round3(total),
            exact,
        })
    }
}

fn greedy_cover(
    candidates: &[usize],
    can: &[Vec<bool>],
    distance: &[f64],
    lines: usize,
) -> Vec<usize> {
    let mut remaining: Vec<bool> = vec![true; lines];
    let mut set = Vec::new();
    while remaining.iter().any(|r| *r) {
        let pick = candidates
            .iter()
            .filter(|i| !set.contains(*i))
            .map(|&i| {
                (
                    i,
                    (0..lines).filter(|j| remaining[*j] && can[i][*j]).count(),
                )
            })
            .filter(|(_, n)| *n > 0)
            .max_by(|a, b| a.1.cmp(&b.1).then(distance[b.0].total_cmp(&distance[a.0])));
        let Some((i, _)) = pick else { break };
        for (j, r) in remaining.iter_mut().enumerate() {
            if can[i][j] {
                *r = false;
            }
        }
        set.push(i);
    }
    set
}
