//! The synthetic product catalogue and skewed samplers.
//!
//! SKU ids look like the chain's (`SKU-100234`): the first digit is the
//! category, then a five-digit number. Each category has a realistic price
//! band (a bottle of water is 2 yuan, a phone 3000) and a popularity factor,
//! so the best sellers are snacks and drinks, not televisions. Popularity is
//! Zipf-skewed over a seeded ranking: a few SKUs sell constantly, the long
//! tail rarely, as in any store.

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::Rng;

/// A product category: price band, how big a pack a customer takes, and how
/// popular its products tend to be.
struct Category {
    digit: u8,
    share: f64,
    min_cents: f64,
    max_cents: f64,
    max_qty: u32,
    popularity: f64,
}

const CATEGORIES: [Category; 9] = [
    // snacks and groceries
    Category {
        digit: 1,
        share: 0.25,
        min_cents: 300.0,
        max_cents: 3_000.0,
        max_qty: 6,
        popularity: 1.0,
    },
    // household
    Category {
        digit: 2,
        share: 0.12,
        min_cents: 1_000.0,
        max_cents: 20_000.0,
        max_qty: 3,
        popularity: 0.5,
    },
    // electronics
    Category {
        digit: 3,
        share: 0.05,
        min_cents: 20_000.0,
        max_cents: 899_900.0,
        max_qty: 1,
        popularity: 0.15,
    },
    // apparel
    Category {
        digit: 4,
        share: 0.10,
        min_cents: 5_000.0,
        max_cents: 60_000.0,
        max_qty: 2,
        popularity: 0.4,
    },
    // beverages
    Category {
        digit: 5,
        share: 0.15,
        min_cents: 200.0,
        max_cents: 1_500.0,
        max_qty: 12,
        popularity: 1.0,
    },
    // personal care
    Category {
        digit: 6,
        share: 0.10,
        min_cents: 800.0,
        max_cents: 12_000.0,
        max_qty: 3,
        popularity: 0.6,
    },
    // baby
    Category {
        digit: 7,
        share: 0.06,
        min_cents: 2_000.0,
        max_cents: 30_000.0,
        max_qty: 3,
        popularity: 0.4,
    },
    // fresh
    Category {
        digit: 8,
        share: 0.10,
        min_cents: 500.0,
        max_cents: 6_000.0,
        max_qty: 4,
        popularity: 0.9,
    },
    // Yunnan specialties (Pu'er tea, flower cakes, coffee)
    Category {
        digit: 9,
        share: 0.07,
        min_cents: 2_000.0,
        max_cents: 80_000.0,
        max_qty: 3,
        popularity: 0.5,
    },
];

/// Draws an index in `0..n` with a precomputed cumulative distribution.
#[derive(Debug, Clone)]
pub struct Skewed {
    cdf: Vec<f64>,
}

impl Skewed {
    /// Zipf with exponent `s` over `n >= 1` ranks (rank 0 most likely).
    pub fn zipf(n: usize, s: f64) -> Self {
        Self::from_weights((0..n).map(|k| 1.0 / ((k + 1) as f64).powf(s)))
    }

    /// From non-negative weights, not all zero.
    pub fn from_weights(weights: impl IntoIterator<Item = f64>) -> Self {
        let mut cdf: Vec<f64> = weights
            .into_iter()
            .scan(0.0, |acc, w| {
                *acc += w;
                Some(*acc)
            })
            .collect();
        let total = cdf.last().copied().unwrap_or(0.0);
        if total > 0.0 {
            for c in &mut cdf {
                *c /= total;
            }
        }
        Self { cdf }
    }

    /// The probability of index `i`.
    pub fn probability(&self, i: usize) -> f64 {
        let hi = self.cdf.get(i).copied().unwrap_or(0.0);
        let lo = if i == 0 {
            0.0
        } else {
            self.cdf.get(i - 1).copied().unwrap_or(0.0)
        };
        hi - lo
    }

    /// One draw.
    pub fn sample(&self, rng: &mut StdRng) -> usize {
        let u: f64 = rng.gen();
        self.cdf
            .partition_point(|&c| c <= u)
            .min(self.cdf.len().saturating_sub(1))
    }
}

/// The products on sale.
#[derive(Debug)]
pub struct Catalogue {
    /// `SKU-...` id of each SKU index.
    pub ids: Vec<String>,
    /// List price in cents.
    pub price: Vec<u64>,
    /// Most units of this SKU one customer takes.
    pub max_qty: Vec<u32>,
    /// Popularity rank -> SKU index.
    by_rank: Vec<u32>,
    ranks: Skewed,
    /// SKUs of at least 500 yuan, for planted fraud.
    pub expensive: Vec<u32>,
}

impl Catalogue {
    /// A catalogue of `n >= 1` SKUs.
    pub fn new(n: usize, rng: &mut StdRng) -> Self {
        let shares = Skewed::from_weights(CATEGORIES.iter().map(|c| c.share));
        let mut counters = [0u32; CATEGORIES.len()];
        let mut ids = Vec::with_capacity(n);
        let mut price = Vec::with_capacity(n);
        let mut max_qty = Vec::with_capacity(n);
        let mut scores = Vec::with_capacity(n);
        for sku in 0..n {
            let c = shares.sample(rng);
            let cat = &CATEGORIES[c];
            let number = 234 + counters[c] * 37 % 99_000 + counters[c] / 99_000 * 100_000;
            counters[c] += 1;
            ids.push(if number < 100_000 {
                format!("SKU-{}{number:05}", cat.digit)
            } else {
                format!("SKU-{}{number}", cat.digit)
            });
            let log = rng.gen_range(cat.min_cents.ln()..=cat.max_cents.ln());
            price.push(retail_price(log.exp()));
            max_qty.push(cat.max_qty);
            scores.push((rng.gen::<f64>() * cat.popularity, sku as u32));
        }
        scores.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        let by_rank: Vec<u32> = scores.into_iter().map(|(_, sku)| sku).collect();
        let mut expensive: Vec<u32> = (0..n as u32)
            .filter(|&s| price[s as usize] >= 50_000)
            .collect();
        if expensive.is_empty() {
            // A tiny catalogue: use its dearest SKUs.
            let mut all: Vec<u32> = (0..n as u32).collect();
            all.sort_by_key(|&s| std::cmp::Reverse(price[s as usize]));
            all.truncate(3);
            expensive = all;
        }
        expensive.shuffle(rng);
        Self {
            ids,
            price,
            max_qty,
            by_rank,
            ranks: Skewed::zipf(n, 1.0),
            expensive,
        }
    }

    /// Number of SKUs.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// A SKU drawn by popularity.
    pub fn sample(&self, rng: &mut StdRng) -> u32 {
        self.by_rank[self.ranks.sample(rng)]
    }

    /// The share of all units sold that fall on each SKU index.
    pub fn popularity(&self) -> Vec<f64> {
        let mut p = vec![0.0; self.len()];
        for (rank, &sku) in self.by_rank.iter().enumerate() {
            p[sku as usize] = self.ranks.probability(rank);
        }
        p
    }

    /// The SKU at a popularity rank (0 = best seller).
    pub fn at_rank(&self, rank: usize) -> u32 {
        self.by_rank[rank.min(self.by_rank.len() - 1)]
    }
}

/// Rounds a raw price the way shelves show it: 2.50, 19.90, 129.00, 2999.00.
fn retail_price(raw_cents: f64) -> u64 {
    let cents = raw_cents.max(100.0) as u64;
    if cents < 1_000 {
        cents / 10 * 10
    } else if cents < 100_000 {
        (cents / 100 * 100).saturating_sub(10).max(990)
    } else {
        cents / 10_000 * 10_000 - 100
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn ids_are_unique_and_prices_realistic() {
        let mut rng = StdRng::seed_from_u64(1);
        let c = Catalogue::new(20_000, &mut rng);
        let unique: std::collections::HashSet<_> = c.ids.iter().collect();
        assert_eq!(unique.len(), c.len());
        assert!(c
            .ids
            .iter()
            .all(|id| id.starts_with("SKU-") && id.len() <= 64));
        assert!(c.price.iter().all(|&p| (100..1_000_000).contains(&p)));
        assert!(!c.expensive.is_empty());
    }

    #[test]
    fn popularity_is_skewed() {
        let mut rng = StdRng::seed_from_u64(2);
        let c = Catalogue::new(5_000, &mut rng);
        let top = c.at_rank(0);
        let hits = (0..10_000).filter(|_| c.sample(&mut rng) == top).count();
        // Zipf(1) over 5000 ranks gives rank 0 about 11%.
        assert!((800..1_400).contains(&hits), "{hits}");
        let total: f64 = c.popularity().iter().sum();
        assert!((total - 1.0).abs() < 1e-9);
    }
}
