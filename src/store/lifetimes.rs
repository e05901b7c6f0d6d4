//! Token lifetimes by the hour and the day their life ends: what `/stats` reads for its
//! `token_lifetime_ms` percentiles instead of walking every token that ended in the range.
//!
//! A bucket holds, per lifetime value, how many lives of that length ended in it. Values
//! are rounded down to what a three-digit hdrhistogram cannot tell apart, so a bucket
//! stays small and a histogram rebuilt from it is the one the exact lifetimes would give.
//! A token's life can change (a revoke after its planned expiry, a re-issue): the writer
//! moves it — minus in the old bucket, plus in the new one — in the same transaction that
//! moves its `token_ends` entry, so the buckets always equal that index folded.

use std::collections::{BTreeMap, HashMap};
use std::sync::OnceLock;

use hdrhistogram::Histogram;
use redb::{ReadableTable, Table, WriteTransaction};

use super::codec::{decode, encode};
use super::read::Snapshot;
use super::tables::{Granularity, LifetimeKey, LIFETIMES, TOKEN_ENDS};
use super::StoreError;
use crate::model::time::{day_of, hour_of};

/// The lowest value an hdrhistogram of three significant digits files `ms` with.
fn quantize(ms: u64) -> u64 {
    static SHAPE: OnceLock<Option<Histogram<u64>>> = OnceLock::new();
    match SHAPE.get_or_init(|| Histogram::new(3).ok()) {
        Some(h) => h.lowest_equivalent(ms),
        // Only if hdrhistogram refused its own default shape: keep exact values.
        None => ms,
    }
}

/// One bucket as stored: (lifetime, count), by lifetime.
type Lives = Vec<(u64, u64)>;

/// Changes to lifetime buckets, folded in memory and written once per bucket.
#[derive(Debug, Default)]
pub struct LifetimeDeltas(HashMap<LifetimeKey, BTreeMap<u64, i64>>);

impl LifetimeDeltas {
    /// A life ending at `end`, issued at `issued`, now exists.
    pub fn add(&mut self, tenant: u32, (end, issued): (u64, u64)) {
        self.bump(tenant, end, end.saturating_sub(issued), 1);
    }

    /// A life that existed no longer does (its token's life changed).
    pub fn remove(&mut self, tenant: u32, (end, issued): (u64, u64)) {
        self.bump(tenant, end, end.saturating_sub(issued), -1);
    }

    fn bump(&mut self, tenant: u32, end: u64, lifetime: u64, delta: i64) {
        let value = quantize(lifetime);
        for key in [
            (tenant, Granularity::Hour as u8, hour_of(end)),
            (tenant, Granularity::Day as u8, day_of(end)),
        ] {
            *self.0.entry(key).or_default().entry(value).or_default() += delta;
        }
    }

    /// Applies every delta to its stored bucket; emptied buckets are deleted. A count that
    /// would go below zero stops at zero (only a damaged store could ask that, and
    /// `verify` reports it) rather than failing the group commit.
    pub fn write(&self, table: &mut Table<LifetimeKey, &[u8]>) -> Result<(), StoreError> {
        for (key, deltas) in &self.0 {
            let mut counts: BTreeMap<u64, u64> = match table.get(*key)? {
                Some(bytes) => decode::<Lives>(bytes.value(), "lifetimes")?
                    .into_iter()
                    .collect(),
                None => BTreeMap::new(),
            };
            for (&value, &delta) in deltas {
                let count = counts.entry(value).or_default();
                *count = count.saturating_add_signed(delta);
                if *count == 0 {
                    counts.remove(&value);
                }
            }
            if counts.is_empty() {
                table.remove(*key)?;
            } else {
                let lives: Lives = counts.into_iter().collect();
                table.insert(*key, encode(&lives)?.as_slice())?;
            }
        }
        Ok(())
    }

    /// The buckets these deltas make when they are all additions (a recount).
    pub fn into_buckets(self) -> BTreeMap<LifetimeKey, Lives> {
        self.0
            .into_iter()
            .map(|(key, counts)| {
                let lives: Lives = counts
                    .into_iter()
                    .filter_map(|(v, c)| u64::try_from(c).ok().filter(|&c| c > 0).map(|c| (v, c)))
                    .collect();
                (key, lives)
            })
            .filter(|(_, lives)| !lives.is_empty())
            .collect()
    }
}

/// Fills the lifetime buckets from the `token_ends` index (a store written before they
/// existed, or a rebuild).
pub fn build_from_ends(txn: &WriteTransaction) -> Result<(), StoreError> {
    let mut deltas = LifetimeDeltas::default();
    {
        let ends = txn.open_table(TOKEN_ENDS)?;
        for entry in ends.iter()? {
            let (key, issued) = entry?;
            let (tenant, end, _) = key.value();
            deltas.add(tenant, (end, issued.value()));
        }
    }
    let mut table = txn.open_table(LIFETIMES)?;
    table.retain(|_, _| false)?;
    deltas.write(&mut table)
}

impl Snapshot {
    /// Calls `visit(lifetime, count)` for every lifetime in the buckets `[first, end)` of
    /// `granularity`.
    pub fn for_each_lifetime(
        &self,
        tenant: u32,
        granularity: Granularity,
        first: u32,
        end: u32,
        mut visit: impl FnMut(u64, u64),
    ) -> Result<(), StoreError> {
        let table = self.txn().open_table(LIFETIMES)?;
        let g = granularity as u8;
        for entry in table.range((tenant, g, first)..(tenant, g, end))? {
            let (_, bytes) = entry?;
            for (value, count) in decode::<Lives>(bytes.value(), "lifetimes")? {
                visit(value, count);
            }
        }
        Ok(())
    }

    /// Every stored lifetime bucket (for `verify`).
    pub fn lifetime_buckets(&self) -> Result<BTreeMap<LifetimeKey, Lives>, StoreError> {
        let table = self.txn().open_table(LIFETIMES)?;
        let mut out = BTreeMap::new();
        for entry in table.iter()? {
            let (key, bytes) = entry?;
            out.insert(key.value(), decode::<Lives>(bytes.value(), "lifetimes")?);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantized_values_fall_in_the_same_histogram_bucket() {
        let mut exact = Histogram::<u64>::new(3).expect("a histogram");
        let mut rounded = Histogram::<u64>::new(3).expect("a histogram");
        for v in [
            0,
            1,
            999,
            1_000,
            3_600_383,
            3_601_999,
            86_400_000,
            123_456_789_012,
        ] {
            exact.record(v).expect("records");
            rounded.record(quantize(v)).expect("records");
            assert!(quantize(v) <= v);
        }
        for q in [0.0, 0.5, 0.9, 0.99, 1.0] {
            assert_eq!(exact.value_at_quantile(q), rounded.value_at_quantile(q));
        }
        assert_eq!(exact.max(), rounded.max());
        assert!((exact.mean() - rounded.mean()).abs() < 1e-9);
    }

    #[test]
    fn a_moved_life_leaves_nothing_behind() {
        let mut d = LifetimeDeltas::default();
        d.add(1, (10_000, 1_000));
        d.remove(1, (10_000, 1_000));
        d.add(1, (20_000, 1_000));
        let buckets = d.into_buckets();
        // One hour and one day bucket, each with the one remaining life.
        assert_eq!(buckets.len(), 2);
        assert!(buckets
            .values()
            .all(|lives| lives == &vec![(quantize(19_000), 1)]));
    }
}
