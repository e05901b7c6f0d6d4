//! Tallies: events and failures per value number, as `/top` counts them, and the
//! selection of the values that can make a top list.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

/// Events and failures per value number: dense below [`DENSE_MAX`], in a map above. The
/// dense counts are never longer than [`DENSE_MAX`].
///
/// The dense counts are `u32`, half the memory traffic of `u64`; so that they can never
/// overflow, they are moved into the wide counts before 2³² events have been added.
#[derive(Default)]
pub struct Tally {
    dense: Vec<[u32; 2]>,
    added: u64,
    wide: HashMap<u64, (u64, u64)>,
}

pub(super) const DENSE_MAX: u64 = 1 << 24;

impl Tally {
    /// An empty tally with dense counts for the numbers below `numbers` (at most
    /// [`DENSE_MAX`]): counting numbers known in advance then never grows them.
    pub(super) fn for_numbers(numbers: u64) -> Tally {
        Tally {
            dense: vec![[0, 0]; numbers.min(DENSE_MAX) as usize], // at most 2²⁴
            ..Tally::default()
        }
    }

    pub(super) fn add(&mut self, id: u64, failure: bool) {
        self.add_all(&[(id, failure)]);
    }

    /// Counts one block's wanted (number, failure) pairs.
    #[inline]
    pub(super) fn add_all(&mut self, wanted: &[(u64, bool)]) {
        self.reserve(wanted.len());
        for &(id, failure) in wanted {
            self.count(id, u32::from(failure));
        }
    }

    /// Counts `entries`, (number, outcome code) pairs, those with code `outcome` only when
    /// given; `failure` is the failure's code.
    #[inline]
    pub(super) fn add_entries(
        &mut self,
        entries: impl ExactSizeIterator<Item = (u64, u64)>,
        outcome: Option<u8>,
        failure: u64,
    ) {
        self.reserve(entries.len());
        for (number, code) in entries {
            if outcome.is_none_or(|o| u64::from(o) == code) {
                self.count(number, u32::from(code == failure));
            }
        }
    }

    /// Makes room for `n` more events in the dense counts' `u32`s: the check that need
    /// not be made per event.
    #[inline]
    fn reserve(&mut self, n: usize) {
        if self.added + n as u64 >= u64::from(u32::MAX) {
            self.widen();
        }
        self.added += n as u64;
    }

    /// Counts one event of `number`, a failure when `failure` is 1.
    #[inline]
    fn count(&mut self, number: u64, failure: u32) {
        // The dense counts never reach past DENSE_MAX (see `count_outside`).
        match usize::try_from(number)
            .ok()
            .and_then(|i| self.dense.get_mut(i))
        {
            Some(slot) => {
                slot[0] += 1;
                slot[1] += failure;
            }
            None => self.count_outside(number, 1, failure),
        }
    }

    /// Adds `counts`, (number, events, failures) each.
    pub(super) fn add_counts(&mut self, counts: &[(u64, u32, u32)]) {
        let events: u64 = counts.iter().map(|&(_, events, _)| u64::from(events)).sum();
        if self.added + events >= u64::from(u32::MAX) {
            self.widen();
        }
        self.added += events;
        for &(number, events, failures) in counts {
            match usize::try_from(number)
                .ok()
                .and_then(|i| self.dense.get_mut(i))
            {
                Some(slot) => {
                    slot[0] += events;
                    slot[1] += failures;
                }
                None => self.count_outside(number, events, failures),
            }
        }
    }

    /// (number, events, failures) of every number counted, by number; none when a count
    /// is past `u32`.
    pub(super) fn to_counts(&self) -> Option<Vec<(u64, u32, u32)>> {
        let mut counts: Vec<(u64, u32, u32)> = self
            .nonzero_dense()
            .map(|(n, c, f)| (n, c as u32, f as u32)) // dense counts are u32s
            .collect();
        for (&number, &(count, failures)) in &self.wide {
            counts.push((
                number,
                u32::try_from(count).ok()?,
                u32::try_from(failures).ok()?,
            ));
        }
        counts.sort_unstable_by_key(|&(number, _, _)| number);
        Some(counts)
    }

    /// Counts a number past the dense counts: it grows them when the number is below
    /// [`DENSE_MAX`], else the number goes to the wide counts.
    #[cold]
    fn count_outside(&mut self, number: u64, events: u32, failures: u32) {
        if number < DENSE_MAX {
            let at = number as usize; // below 2²⁴
            self.dense.resize(at + 1, [0, 0]); // amortised: the Vec's capacity doubles
            self.dense[at][0] += events;
            self.dense[at][1] += failures;
        } else {
            let slot = self.wide.entry(number).or_default();
            slot.0 += u64::from(events);
            slot.1 += u64::from(failures);
        }
    }

    /// Adds `other`'s counts to these.
    pub(super) fn merge(&mut self, mut other: Tally) {
        if self.added + other.added >= u64::from(u32::MAX) {
            self.widen();
            other.widen();
        }
        self.added += other.added;
        if other.dense.len() > self.dense.len() {
            std::mem::swap(&mut self.dense, &mut other.dense);
        }
        for (slot, [count, failures]) in self.dense.iter_mut().zip(other.dense) {
            slot[0] += count;
            slot[1] += failures;
        }
        for (id, (count, failures)) in other.wide {
            let slot = self.wide.entry(id).or_default();
            slot.0 += count;
            slot.1 += failures;
        }
    }

    /// Moves the dense counts into the wide ones.
    fn widen(&mut self) {
        for (id, [count, failures]) in self.dense.iter_mut().enumerate() {
            if *count > 0 {
                let slot = self.wide.entry(id as u64).or_default();
                slot.0 += u64::from(*count);
                slot.1 += u64::from(*failures);
                (*count, *failures) = (0, 0);
            }
        }
        self.added = 0;
    }

    pub fn into_counts(mut self) -> Vec<(u64, u64, u64)> {
        if !self.wide.is_empty() {
            self.widen();
            return self
                .wide
                .into_iter()
                .map(|(id, (c, f))| (id, c, f))
                .collect();
        }
        self.nonzero_dense().collect()
    }

    /// (number, events, failures) of each number of the dense counts with events.
    fn nonzero_dense(&self) -> impl Iterator<Item = (u64, u64, u64)> + '_ {
        let dense = self.dense.iter().enumerate();
        dense
            .filter(|(_, [count, _])| *count > 0)
            .map(|(id, [count, failures])| (id as u64, u64::from(*count), u64::from(*failures)))
    }
}

impl Tally {
    /// A tally of the counts in `dense`, indexed by value number.
    pub(super) fn from_dense(dense: Vec<[u32; 2]>) -> Tally {
        let added = dense.iter().map(|[count, _]| u64::from(*count)).sum();
        Tally {
            dense,
            added,
            wide: HashMap::new(),
        }
    }

    /// Takes one event of value `id` back out; false if it was not counted.
    pub(super) fn remove(&mut self, id: u64, failure: bool) -> bool {
        self.subtract_one(id, 1, u64::from(failure))
    }

    /// Takes `other`'s counts out of these; false if `other` counted an event these did
    /// not (the counts are then unusable).
    pub(super) fn subtract(&mut self, other: Tally) -> bool {
        let wide = other.wide.iter().map(|(id, (c, f))| (*id, *c, *f));
        other
            .nonzero_dense()
            .chain(wide)
            .all(|(id, count, failures)| self.subtract_one(id, count, failures))
    }

    fn subtract_one(&mut self, id: u64, count: u64, failures: u64) -> bool {
        if let Some(slot) = usize::try_from(id).ok().and_then(|i| self.dense.get_mut(i)) {
            let (Ok(count), Ok(failures)) = (u32::try_from(count), u32::try_from(failures)) else {
                return false;
            };
            return match (slot[0].checked_sub(count), slot[1].checked_sub(failures)) {
                (Some(c), Some(f)) => {
                    *slot = [c, f];
                    true
                }
                _ => false,
            };
        }
        match self.wide.get_mut(&id) {
            Some(slot) if slot.0 >= count && slot.1 >= failures => {
                slot.0 -= count;
                slot.1 -= failures;
                true
            }
            _ => false,
        }
    }

    /// Keeps only the failures: each value's count becomes its failure count.
    pub(super) fn keep_failures(&mut self) {
        for slot in &mut self.dense {
            slot[0] = slot[1];
        }
        for slot in self.wide.values_mut() {
            slot.0 = slot.1;
        }
    }

    /// (value number, events, failures) of every value that can be among the `limit`
    /// with the most events: those with at least as many events as the `limit`-th most,
    /// so that ties at the last place can still be broken by name. In no particular order.
    pub fn candidates(mut self, limit: usize) -> Vec<(u64, u64, u64)> {
        if limit == 0 {
            return Vec::new();
        }
        if !self.wide.is_empty() {
            self.widen();
        }
        let counts = self
            .dense
            .iter()
            .map(|[count, _]| u64::from(*count))
            .chain(self.wide.values().map(|(count, _)| *count));
        let floor = limit_th_largest(counts, limit).unwrap_or(1).max(1);
        let dense = self.dense.iter().enumerate();
        dense
            .filter(|(_, [count, _])| u64::from(*count) >= floor)
            .map(|(id, [count, failures])| (id as u64, u64::from(*count), u64::from(*failures)))
            .chain(
                self.wide
                    .iter()
                    .filter(|(_, (count, _))| *count >= floor)
                    .map(|(id, (count, failures))| (*id, *count, *failures)),
            )
            .collect()
    }
}

/// The `limit`-th largest of `counts` (zeros ignored), or `None` when fewer than `limit`
/// are not zero (or `limit` is 0).
pub fn limit_th_largest(mut counts: impl Iterator<Item = u64>, limit: usize) -> Option<u64> {
    if limit == 0 {
        return None;
    }
    let mut least_kept: BinaryHeap<Reverse<u64>> = BinaryHeap::with_capacity(limit.min(4096) + 1);
    for count in counts.by_ref() {
        if count > 0 {
            least_kept.push(Reverse(count));
            if least_kept.len() == limit {
                break;
            }
        }
    }
    // The least kept is at least 1 from here on, so zeros fall out at the first test.
    let mut least = least_kept.peek().map_or(u64::MAX, |Reverse(least)| *least);
    for count in counts {
        if count > least {
            least_kept.pop();
            least_kept.push(Reverse(count));
            least = least_kept.peek().map_or(u64::MAX, |Reverse(least)| *least);
        }
    }
    (least_kept.len() == limit)
        .then(|| least_kept.peek().map(|Reverse(least)| *least))
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sorted(tally: Tally) -> Vec<(u64, u64, u64)> {
        let mut counts = tally.into_counts();
        counts.sort();
        counts
    }

    #[test]
    fn tallies_merge_and_widen_to_the_same_counts() {
        let pairs = |seed: u64| -> Vec<(u64, bool)> {
            (0..500u64)
                .map(|i| {
                    let id = (i * 7919 + seed) % 300;
                    // A few numbers beyond the dense range go to the map.
                    let id = if i % 50 == 0 { DENSE_MAX + id } else { id + 1 };
                    (id, (i + seed) % 3 == 0)
                })
                .collect()
        };
        let (a, b) = (pairs(1), pairs(2));
        let mut whole = Tally::default();
        whole.add_all(&a);
        whole.add_all(&b);
        let want = sorted(whole);
        let brute = {
            let mut counts: HashMap<u64, (u64, u64)> = HashMap::new();
            for &(id, failure) in a.iter().chain(&b) {
                let slot = counts.entry(id).or_default();
                slot.0 += 1;
                slot.1 += u64::from(failure);
            }
            let mut counts: Vec<_> = counts.into_iter().map(|(id, (c, f))| (id, c, f)).collect();
            counts.sort();
            counts
        };
        assert_eq!(want, brute);
        for widen_first in [false, true] {
            let (mut left, mut right) = (Tally::default(), Tally::default());
            left.add_all(&a);
            right.add_all(&b);
            if widen_first {
                // As if billions of events had been counted: the merge must widen first.
                left.added = u64::from(u32::MAX) - 10;
            }
            left.merge(right);
            assert_eq!(sorted(left), want, "widened first: {widen_first}");
        }
        // Counting past the u32 limit widens on the way.
        let mut near = Tally::default();
        near.add_all(&a);
        near.added = u64::from(u32::MAX) - 1;
        near.add_all(&b);
        assert_eq!(near.added, b.len() as u64, "widened before counting on");
        assert_eq!(sorted(near), want);
    }

    #[test]
    fn candidates_are_every_value_that_can_make_the_list() {
        // Counts with many ties, some beyond the dense range.
        let mut tally = Tally::default();
        let mut brute: HashMap<u64, (u64, u64)> = HashMap::new();
        for i in 0..3_000u64 {
            let id = match i % 7 {
                0 => DENSE_MAX + i % 5,
                _ => 1 + (i * i) % 211,
            };
            let failure = i % 4 == 0;
            tally.add(id, failure);
            let slot = brute.entry(id).or_default();
            slot.0 += 1;
            slot.1 += u64::from(failure);
        }
        let mut by_count: Vec<u64> = brute.values().map(|(count, _)| *count).collect();
        by_count.sort_unstable_by(|a, b| b.cmp(a));
        for limit in [0, 1, 2, 5, 17, 100, 216, 10_000] {
            let mut got = Tally::default();
            got.merge(Tally {
                dense: tally.dense.clone(),
                added: tally.added,
                wide: tally.wide.clone(),
            });
            let mut got = got.candidates(limit);
            got.sort_unstable();
            let floor = match limit {
                0 => u64::MAX,
                _ => by_count.get(limit - 1).copied().unwrap_or(1),
            };
            let mut want: Vec<(u64, u64, u64)> = brute
                .iter()
                .filter(|(_, (count, _))| *count >= floor)
                .map(|(id, (count, failures))| (*id, *count, *failures))
                .collect();
            want.sort_unstable();
            assert_eq!(got, want, "limit {limit}");
        }
    }

    #[test]
    fn entries_count_like_pairs_whatever_their_numbers() {
        let failure = 1;
        let runs: [&[u64]; 4] = [
            &[1, 1, 4, 900],
            &[2, DENSE_MAX - 1, DENSE_MAX, DENSE_MAX + 9],
            &[],
            &[3_000_000, 5, 70_000],
        ];
        // Dense counts grown as numbers come, or made in advance for fewer or more numbers
        // than come.
        let tallies = [None, Some(5), Some(1_000)];
        for (outcome, numbers) in [None, Some(0), Some(1)].into_iter().zip(tallies) {
            let mut entries = numbers.map_or_else(Tally::default, Tally::for_numbers);
            let mut brute: HashMap<u64, (u64, u64)> = HashMap::new();
            for numbers in runs {
                let codes: Vec<u64> = (0..numbers.len() as u64).map(|i| i % 3).collect();
                let zipped = numbers.iter().copied().zip(codes.iter().copied());
                entries.add_entries(zipped, outcome, failure);
                for (&number, &code) in numbers.iter().zip(&codes) {
                    if outcome.is_none_or(|o| u64::from(o) == code) {
                        let slot = brute.entry(number).or_default();
                        slot.0 += 1;
                        slot.1 += u64::from(code == failure);
                    }
                }
            }
            assert!(entries.dense.len() <= DENSE_MAX as usize);
            let mut want: Vec<_> = brute.into_iter().map(|(n, (c, f))| (n, c, f)).collect();
            want.sort_unstable();
            assert_eq!(sorted(entries), want, "{outcome:?}");
        }
    }

    #[test]
    fn subtracting_takes_counts_out_and_refuses_what_was_never_counted() {
        let mut whole = Tally::from_dense(vec![[0, 0], [5, 2], [1, 1], [3, 0]]);
        let mut part = Tally::default();
        part.add_all(&[(1, true), (1, false), (3, false)]);
        assert!(whole.subtract(part));
        assert!(whole.remove(2, true));
        let mut left = whole.into_counts();
        left.sort_unstable();
        assert_eq!(left, vec![(1, 3, 1), (3, 2, 0)]);
        // A count taken out that was not there fails, in the dense counts or the wide.
        let whole = || Tally::from_dense(vec![[0, 0], [2, 1], [1, 0]]);
        let parts: [(&[(u64, bool)], bool); 5] = [
            (&[(1, true), (2, false)], true),
            (&[(2, true)], false),
            (&[(1, false), (1, false), (1, false)], false),
            (&[(3, false)], false),
            (&[(DENSE_MAX + 1, false)], false),
        ];
        for (taken, fits) in parts {
            let mut part = Tally::default();
            part.add_all(taken);
            assert_eq!(whole().subtract(part), fits, "{taken:?}");
        }
        let mut wide = whole();
        wide.add_all(&[(DENSE_MAX + 1, true), (DENSE_MAX + 1, false)]);
        let mut part = Tally::default();
        part.add_all(&[(DENSE_MAX + 1, true), (2, false)]);
        assert!(wide.subtract(part));
        let mut left = wide.into_counts();
        left.sort_unstable();
        assert_eq!(left, vec![(1, 2, 1), (DENSE_MAX + 1, 1, 0)]);
        let mut whole = Tally::from_dense(vec![[0, 0], [1, 0]]);
        assert!(!whole.remove(1, true), "a failure that was not counted");
        assert!(!whole.remove(7, false), "a value that was not counted");
        let mut failures = Tally::from_dense(vec![[0, 0], [4, 1], [2, 0]]);
        failures.keep_failures();
        assert_eq!(failures.candidates(5), vec![(1, 1, 1)]);
    }
}
