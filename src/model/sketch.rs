//! Mergeable distinct-count sketches: exact up to [`EXACT_LIMIT`] values, then a
//! HyperLogLog of 2^15 registers (standard error 0.57 %).
//!
//! Values are hashed with [`hash64`] (FNV-1a then a 64-bit finaliser): stable across
//! processes, so sketches written by one run merge with those of the next.

/// Up to this many distinct values are kept exactly.
pub const EXACT_LIMIT: usize = 1024;
/// Register-index bits of the HyperLogLog.
const P: u32 = 15;
const M: usize = 1 << P;

/// A stable 64-bit hash of `bytes`.
pub fn hash64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    // MurmurHash3's finaliser spreads FNV's weak low bits over the whole word.
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// A distinct-count sketch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Distinct {
    /// The sorted, deduplicated hashes themselves.
    Exact(Vec<u64>),
    /// HyperLogLog registers.
    Dense(Vec<u8>),
}

impl Default for Distinct {
    fn default() -> Self {
        Distinct::Exact(Vec::new())
    }
}

impl Distinct {
    pub fn insert(&mut self, hash: u64) {
        match self {
            Distinct::Exact(hashes) => {
                if let Err(at) = hashes.binary_search(&hash) {
                    hashes.insert(at, hash);
                    if hashes.len() > EXACT_LIMIT {
                        *self = Self::densify(hashes);
                    }
                }
            }
            Distinct::Dense(registers) => observe(registers, hash),
        }
    }

    /// Adds everything `other` counted.
    pub fn merge(&mut self, other: &Distinct) {
        match (&mut *self, other) {
            (_, Distinct::Exact(hashes)) => {
                for h in hashes {
                    self.insert(*h);
                }
            }
            (Distinct::Dense(mine), Distinct::Dense(theirs)) => {
                for (a, b) in mine.iter_mut().zip(theirs) {
                    *a = (*a).max(*b);
                }
            }
            (Distinct::Exact(hashes), Distinct::Dense(theirs)) => {
                let mut registers = theirs.clone();
                for h in hashes.iter() {
                    observe(&mut registers, *h);
                }
                *self = Distinct::Dense(registers);
            }
        }
    }

    /// A dense sketch from its registers, if there are as many as this build uses.
    pub fn dense_from(registers: Vec<u8>) -> Option<Distinct> {
        (registers.len() == M).then_some(Distinct::Dense(registers))
    }

    /// The number of distinct values: exact up to [`EXACT_LIMIT`], estimated beyond.
    pub fn estimate(&self) -> u64 {
        match self {
            Distinct::Exact(hashes) => hashes.len() as u64,
            Distinct::Dense(registers) => estimate(registers),
        }
    }

    fn densify(hashes: &[u64]) -> Distinct {
        let mut registers = vec![0u8; M];
        for h in hashes {
            observe(&mut registers, *h);
        }
        Distinct::Dense(registers)
    }
}

fn observe(registers: &mut [u8], hash: u64) {
    let index = (hash >> (64 - P)) as usize;
    // The remaining bits, with a guard bit so the rank is at most 64 - P + 1.
    let rest = (hash << P) | (1 << (P - 1));
    let rank = rest.leading_zeros() as u8 + 1;
    if let Some(r) = registers.get_mut(index) {
        *r = (*r).max(rank);
    }
}

/// Ertl's improved estimator ("New cardinality estimation algorithms for HyperLogLog
/// sketches", 2017): nearly unbiased over the whole range, with no empirical tables.
fn estimate(registers: &[u8]) -> u64 {
    let q = (64 - P) as usize;
    let mut histogram = vec![0u32; q + 2];
    for r in registers {
        histogram[usize::from(*r).min(q + 1)] += 1;
    }
    let m = registers.len() as f64;
    let mut z = m * tau(1.0 - f64::from(histogram[q + 1]) / m);
    for k in (1..=q).rev() {
        z = 0.5 * (z + f64::from(histogram[k]));
    }
    z += m * sigma(f64::from(histogram[0]) / m);
    let alpha_infinity = 0.5 / std::f64::consts::LN_2;
    (alpha_infinity * m * m / z).round() as u64
}

fn sigma(mut x: f64) -> f64 {
    if x == 1.0 {
        return f64::INFINITY;
    }
    let mut y = 1.0;
    let mut z = x;
    loop {
        x *= x;
        let previous = z;
        z += x * y;
        y += y;
        if z == previous {
            return z;
        }
    }
}

fn tau(mut x: f64) -> f64 {
    if x == 0.0 || x == 1.0 {
        return 0.0;
    }
    let mut y = 1.0;
    let mut z = 1.0 - x;
    loop {
        x = x.sqrt();
        let previous = z;
        y *= 0.5;
        z -= (1.0 - x).powi(2) * y;
        if z == previous {
            return z / 3.0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(n: u64, salt: &str) -> u64 {
        let mut d = Distinct::default();
        for i in 0..n {
            d.insert(hash64(format!("{salt}-{i}").as_bytes()));
        }
        d.estimate()
    }

    #[test]
    fn exact_up_to_the_limit() {
        assert_eq!(count(0, "a"), 0);
        assert_eq!(count(10, "a"), 10);
        assert_eq!(count(1000, "b"), 1000);
        let mut d = Distinct::default();
        for _ in 0..3 {
            d.insert(hash64(b"same"));
        }
        assert_eq!(d.estimate(), 1);
    }

    #[test]
    fn within_one_percent_beyond() {
        let sizes = [
            1_500, 3_000, 5_000, 10_000, 20_000, 40_000, 60_000, 80_000, 100_000, 150_000, 300_000,
            1_000_000,
        ];
        for (i, n) in sizes.into_iter().enumerate() {
            let salt = format!("s{i}");
            let salt = salt.as_str();
            let got = count(n, salt) as f64;
            let error = (got - n as f64).abs() / n as f64;
            assert!(
                error <= 0.01,
                "{n}: estimated {got} ({:.2} %)",
                error * 100.0
            );
        }
    }

    #[test]
    fn merging_is_a_union() {
        let mut a = Distinct::default();
        let mut b = Distinct::default();
        for i in 0..800u64 {
            a.insert(hash64(&i.to_le_bytes()));
            b.insert(hash64(&(i + 400).to_le_bytes()));
        }
        let mut u = a.clone();
        u.merge(&b);
        let error = (u.estimate() as f64 - 1200.0).abs() / 1200.0;
        assert!(
            error <= 0.01,
            "union past the exact limit: {}",
            u.estimate()
        );
        // Dense ∪ exact and exact ∪ dense agree.
        let mut big = Distinct::default();
        for i in 0..50_000u64 {
            big.insert(hash64(&i.to_be_bytes()));
        }
        let mut x = big.clone();
        x.merge(&a);
        let mut y = a.clone();
        y.merge(&big);
        assert_eq!(x, y);
    }
}
