//! A tiny deterministic PRNG (SplitMix64) and a stateless 64-bit mixer.
//!
//! The load generator must produce the same event mix for the same seed on every
//! machine and every run, so it carries its own generator instead of a crate whose
//! algorithm could change between versions.

/// The SplitMix64 increment (2^64 / golden ratio).
const GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

/// Stateless finaliser: a well-spread 64-bit hash of `x` (the SplitMix64 output step).
pub fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(GAMMA);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Hash of two values, used to derive stable per-entity attributes from a seed.
pub fn mix2(a: u64, b: u64) -> u64 {
    mix(mix(a) ^ b.rotate_left(17))
}

/// Maps a hash to a float in `[0, 1)` using its top 53 bits.
pub fn unit_of(h: u64) -> f64 {
    (h >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// SplitMix64: 64 bits of state, passes BigCrush, and any seed (even 0) is fine.
#[derive(Debug, Clone)]
pub struct Rng {
    state: u64,
}

impl Rng {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    /// The generator for the `index`-th item of a stream seeded with `seed`, so that
    /// item `index` is the same however the stream is split among workers.
    pub fn for_item(seed: u64, index: u64) -> Self {
        Self::new(mix2(seed, index))
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(GAMMA);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A uniform integer in `[0, n)` (Lemire's multiply-shift; `n == 0` gives 0).
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// A uniform float in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        unit_of(self.next_u64())
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// One of `items`, chosen with probability proportional to its weight (`items`
    /// must not be empty).
    pub fn weighted<'a, T>(&mut self, items: &'a [(T, u32)]) -> &'a T {
        let total: u64 = items.iter().map(|item| u64::from(item.1)).sum();
        let mut pick = self.below(total);
        for item in items {
            let w = u64::from(item.1);
            if pick < w {
                return &item.0;
            }
            pick -= w;
        }
        &items[items.len().saturating_sub(1)].0
    }

    /// An element of `items`, chosen uniformly (`items` must not be empty).
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        let i = self.below(items.len() as u64) as usize;
        &items[i.min(items.len().saturating_sub(1))]
    }
}

/// An index in `[0, n)` skewed towards small values: `floor(n * u^power)`.
/// With `power = 3`, the first 5% of indices get about 37% of the picks.
pub fn skewed(u: f64, n: u64, power: i32) -> u64 {
    if n == 0 {
        return 0;
    }
    let v = (n as f64 * u.powi(power)) as u64;
    v.min(n - 1)
}
