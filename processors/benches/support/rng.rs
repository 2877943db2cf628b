//! A small deterministic RNG for the member benchmarks (`#[path]`-included
//! by each), so that every run builds the same stream.

/// SplitMix64: small, fast, deterministic.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// A stateless hash of a member index (its stores, its phone).
pub fn mix(m: u64, salt: u64) -> u64 {
    Rng(m.wrapping_mul(0x2545_F491_4F6C_DD1D) ^ salt).next()
}
