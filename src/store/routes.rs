//! Counting routes for `/top?dim=route`. Routes are free texts, often carrying ids, so
//! they have no column of their own: they are counted from the log. Only each record's
//! head and route are read, and no name is looked up but the routes' own; a range that
//! holds most of a tenant's events is read in seq order, on two threads for a large
//! tenant, and a smaller one through the time index.

use std::collections::HashMap;

use super::columns::{on_two_threads, tenant_bounds};
use super::event_format::{decode_route, TextRef};
use super::read::{logged, Snapshot};
use super::tables::*;
use super::StoreError;
use crate::model::Outcome;

/// The log is read in seq order when at least one in this many of the tenant's events is
/// in the range. Reading only the route makes each event cheap in seq order (0.4 µs at
/// 10 M events) and leaves the time index's random fetches (about 7 µs each, cold) as
/// costly as ever, so the share is lower than the event scans' (`read::SEQUENTIAL_SHARE`).
const ROUTE_SEQUENTIAL_SHARE: u64 = 16;

/// A tenant whose log spans this many seqs is read on two threads.
const PARALLEL_SEQS: u64 = 16_384;

/// Events and failures per route, as stored: by name id, or by text for a route stored
/// inline.
#[derive(Default)]
struct RouteTally {
    by_id: HashMap<u32, (u64, u64)>,
    inline: HashMap<String, (u64, u64)>,
}

impl RouteTally {
    fn add(&mut self, route: TextRef<'_>, failure: bool) {
        let slot = match route {
            TextRef::Id(id) => self.by_id.entry(id).or_default(),
            TextRef::Inline(text) => match self.inline.get_mut(text) {
                Some(slot) => slot,
                None => self.inline.entry(text.to_owned()).or_default(),
            },
        };
        slot.0 += 1;
        slot.1 += u64::from(failure);
    }

    fn merge(mut self, other: RouteTally) -> RouteTally {
        for (id, (count, failures)) in other.by_id {
            let slot = self.by_id.entry(id).or_default();
            slot.0 += count;
            slot.1 += failures;
        }
        for (text, (count, failures)) in other.inline {
            let slot = self.inline.entry(text).or_default();
            slot.0 += count;
            slot.1 += failures;
        }
        self
    }
}

impl Snapshot {
    /// Events and failures per route of `tenant`'s events in `[from, to)` (only those
    /// with outcome code `outcome`, when given).
    pub fn route_counts(
        &self,
        tenant: u32,
        from: u64,
        to: u64,
        outcome: Option<u8>,
    ) -> Result<HashMap<String, (u64, u64)>, StoreError> {
        let failure = Outcome::Failure.code();
        let count = |tally: &mut RouteTally, bytes: &[u8]| -> Result<(), StoreError> {
            let (head, route) = decode_route(bytes)?;
            if let Some(route) = route {
                if (from..to).contains(&head.ts) && outcome.is_none_or(|o| o == head.outcome) {
                    tally.add(route, head.outcome == failure);
                }
            }
            Ok(())
        };
        let log = self.txn().open_table(LOG)?;
        let (in_range, total) = self.events_near(tenant, from, to)?;
        let tally = if in_range.saturating_mul(ROUTE_SEQUENTIAL_SHARE) >= total {
            let (first, last) = tenant_bounds(&log, tenant)?;
            let read = |seqs: std::ops::RangeInclusive<u64>| {
                let mut tally = RouteTally::default();
                let (start, end) = (*seqs.start(), *seqs.end());
                for entry in log.range((tenant, start)..=(tenant, end))? {
                    count(&mut tally, entry?.1.value())?;
                }
                Ok(tally)
            };
            on_two_threads(first, last, PARALLEL_SEQS, read, RouteTally::merge)?
        } else {
            let mut tally = RouteTally::default();
            let times = self.txn().open_table(TIMES)?;
            for entry in times.range(time_key(tenant, from, 0)..time_key(tenant, to, 0))? {
                let (_, _, seq) = time_key_parts(entry?.0.value());
                count(&mut tally, logged(&log, tenant, seq)?.value())?;
            }
            tally
        };
        let mut counts = tally.inline;
        for (id, (count, failures)) in tally.by_id {
            let text = self
                .names()
                .text(id)
                .ok_or_else(|| StoreError::Corrupt(format!("route name {id} is unknown")))?;
            let slot = counts.entry(text.to_owned()).or_default();
            slot.0 += count;
            slot.1 += failures;
        }
        Ok(counts)
    }
}
