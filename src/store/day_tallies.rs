//! Whole-day tallies of the posted spans, in memory.
//!
//! `/top` by user, IP, token or route over days counts every entry of its range from the
//! hour pieces: millions at 10 M events. A posted span never changes (until a rebuild), so
//! the counts of one UTC day over the posted spans are kept once counted: per (tenant,
//! column, day), each number with events that day and its events and failures, and the
//! posted spans they cover (those starting before `covered_end`). A later count of the
//! same day counts only the spans posted since and keeps the sum. A range then counts its
//! whole days from here and only its partial days from the pieces (plus, as before, the
//! blocks after the last span and the tail, for every hour).
//!
//! A tally answers a snapshot that has posted at least the spans it covers, of the same
//! rebuild generation (`meta.rebuilds`, counted up by each rebuild in its transaction):
//! an older snapshot, or one of another generation, counts from the pieces. The tallies
//! kept are bounded in bytes ([`KEPT_BYTES`]); the least recently used go first.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// The most bytes of counts kept: about 20 days of IPs, or 5 of routes, at 10 M events.
const KEPT_BYTES: usize = 48 << 20;

/// (tenant, column code, UTC day).
pub(super) type DayKey = (u32, u8, u32);

/// One day's counts of one column over a tenant's posted spans.
#[derive(Debug)]
pub(super) struct DayTally {
    /// The rebuild generation it was counted in.
    pub generation: u64,
    /// The posted spans it covers: those starting before this seq.
    pub covered_end: u64,
    /// (number, events, failures), by number.
    pub counts: Vec<(u64, u32, u32)>,
}

impl DayTally {
    fn bytes(&self) -> usize {
        self.counts.len() * std::mem::size_of::<(u64, u32, u32)>() + 64
    }
}

#[derive(Debug, Default)]
struct Kept {
    tallies: HashMap<DayKey, (Arc<DayTally>, u64)>,
    bytes: usize,
    /// Counts uses, for the least recently used.
    clock: u64,
}

/// The day tallies kept, shared by every snapshot of a store.
#[derive(Debug, Default)]
pub struct DayTallies {
    kept: Mutex<Kept>,
}

impl DayTallies {
    /// The tally kept for `key`, if any, of generation `generation`.
    pub(super) fn get(&self, key: DayKey, generation: u64) -> Option<Arc<DayTally>> {
        let mut kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        kept.clock += 1;
        let now = kept.clock;
        let (tally, used) = kept.tallies.get_mut(&key)?;
        if tally.generation != generation {
            return None;
        }
        *used = now;
        Some(tally.clone())
    }

    /// Keeps `tally` for `key` unless one covering more of the same generation is kept;
    /// then drops the least recently used past [`KEPT_BYTES`].
    pub(super) fn put(&self, key: DayKey, tally: Arc<DayTally>) {
        let mut kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((old, _)) = kept.tallies.get(&key) {
            if old.generation == tally.generation && old.covered_end >= tally.covered_end {
                return;
            }
        }
        kept.clock += 1;
        let (now, bytes) = (kept.clock, tally.bytes());
        if let Some((old, _)) = kept.tallies.insert(key, (tally, now)) {
            kept.bytes -= old.bytes();
        }
        kept.bytes += bytes;
        while kept.bytes > KEPT_BYTES && kept.tallies.len() > 1 {
            let oldest = kept
                .tallies
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(key, _)| *key);
            let Some(oldest) = oldest else { break };
            if let Some((gone, _)) = kept.tallies.remove(&oldest) {
                kept.bytes -= gone.bytes();
            }
        }
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.kept.lock().map_or(0, |kept| kept.tallies.len())
    }
}

/// The whole UTC days `[first, end)` within hours `[from, to)`, if any.
pub(super) fn whole_days(from: u32, to: u32) -> Option<(u32, u32)> {
    let first = from.div_ceil(24);
    let end = to / 24;
    (first < end).then_some((first, end))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tally(generation: u64, covered_end: u64, n: usize) -> Arc<DayTally> {
        Arc::new(DayTally {
            generation,
            covered_end,
            counts: (0..n as u64).map(|i| (i, 1, 0)).collect(),
        })
    }

    #[test]
    fn whole_days_are_those_inside_the_hours() {
        assert_eq!(whole_days(0, 24), Some((0, 1)));
        assert_eq!(whole_days(1, 48), Some((1, 2)));
        assert_eq!(whole_days(1, 47), None);
        assert_eq!(whole_days(24, 95), Some((1, 3)));
        assert_eq!(whole_days(30, 30), None);
        assert_eq!(whole_days(30, 10), None);
    }

    #[test]
    fn kept_tallies_answer_their_generation_and_the_least_used_go_first() {
        let days = DayTallies::default();
        days.put((1, 2, 3), tally(0, 100, 10));
        assert!(days.get((1, 2, 3), 1).is_none(), "another generation");
        assert_eq!(days.get((1, 2, 3), 0).map(|t| t.covered_end), Some(100));
        // One covering less does not replace it; one covering more, or newer, does.
        days.put((1, 2, 3), tally(0, 50, 10));
        assert_eq!(days.get((1, 2, 3), 0).map(|t| t.covered_end), Some(100));
        days.put((1, 2, 3), tally(1, 50, 10));
        assert_eq!(days.get((1, 2, 3), 1).map(|t| t.covered_end), Some(50));
        // Past the bound, the least recently used go: three of these fit, not four.
        let big = KEPT_BYTES / 16 / 4;
        days.put((1, 0, 1), tally(1, 9, big));
        days.put((1, 0, 2), tally(1, 9, big));
        days.put((1, 0, 3), tally(1, 9, big));
        assert!(days.get((1, 0, 1), 1).is_some());
        assert_eq!(days.len(), 4);
        days.put((1, 0, 4), tally(1, 9, big));
        assert!(
            days.get((1, 2, 3), 1).is_none(),
            "the least recently used went"
        );
        assert!(days.get((1, 0, 2), 1).is_none(), "and the next");
        for day in [1, 3, 4] {
            assert!(days.get((1, 0, day), 1).is_some(), "{day}");
        }
        assert_eq!(days.len(), 3);
    }
}
