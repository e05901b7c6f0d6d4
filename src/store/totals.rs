//! Running totals: for each tenant, the events and failures of every user, IP, token and
//! route over all of its stored events, and its events per hour, kept in memory.
//!
//! `/top` by user, IP, token or route over a range that holds most of a tenant's events starts
//! from these instead of counting every column entry of the range: it takes the totals as
//! of its snapshot and subtracts the events outside the range, which it counts from the
//! column blocks. A range that holds all of a tenant's events (the dashboard's 30 or 90
//! days on a store of that age) reads no block at all.
//!
//! The writer adds each group's column entries right after its commit
//! ([`Totals::absorb`]). A thread counts the column blocks at start-up and after a rebuild
//! ([`Totals::spawn_build`]); until it is done, readers count the blocks as before. The
//! newest entries are also kept in commit order, so that a reader whose snapshot is older
//! than the totals can take back out the entries it does not see. Nothing here is stored:
//! it is derived from the column tables, which are derived from the log.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use redb::{Database, ReadableDatabase, ReadableTable};

use super::columns::{BlockView, Column, Entry};
use super::read::Snapshot;
use super::tables::*;
use super::tally::Tally;
use super::StoreError;
use crate::model::Outcome;

/// Value numbers at or above this are not kept: the totals of a column that meets one
/// are given up (readers count the blocks). 2²⁴ numbers take 128 MiB of counts.
const NUMBERS_MAX: u64 = 1 << 24;

/// Newest entries kept for readers whose snapshot is older than the totals.
const RECENT_MAX: usize = 1 << 16;

/// How long a reader waits for the writer to add a group its snapshot already sees.
const CATCH_UP_WAIT: Duration = Duration::from_millis(100);

/// Events and failures by value number (index 0, "no value", stays empty).
#[derive(Debug, Default, Clone)]
struct Slots {
    counts: Vec<[u32; 2]>,
    /// A number or a count outgrew what is kept: these counts are unusable.
    given_up: bool,
}

impl Slots {
    fn add(&mut self, id: u64, failure: bool) {
        if id == 0 || self.given_up {
            return;
        }
        if id >= NUMBERS_MAX {
            return self.give_up();
        }
        let index = id as usize;
        if index >= self.counts.len() {
            self.counts.resize(index + 1, [0, 0]);
        }
        let slot = &mut self.counts[index];
        match (
            slot[0].checked_add(1),
            slot[1].checked_add(u32::from(failure)),
        ) {
            (Some(count), Some(failures)) => *slot = [count, failures],
            _ => self.give_up(),
        }
    }

    fn give_up(&mut self) {
        self.given_up = true;
        self.counts = Vec::new();
    }
}

/// One tenant's users, IPs, routes and hours.
#[derive(Debug, Default)]
struct TenantTotals {
    users: Slots,
    ips: Slots,
    routes: Slots,
    /// Events per hour.
    hours: HashMap<u32, u64>,
}

/// Everything counted, as of `next_seq`.
#[derive(Debug, Default)]
struct Counted {
    tenants: HashMap<u32, TenantTotals>,
    /// Token numbers are global, so one array serves all tenants, with each token's tenant.
    tokens: Slots,
    token_tenants: Vec<u32>,
}

impl Counted {
    fn add(&mut self, tenant: u32, e: &Entry) {
        let failure = e.outcome == Outcome::Failure.code();
        let totals = self.tenants.entry(tenant).or_default();
        totals.users.add(u64::from(e.user), failure);
        totals.ips.add(u64::from(e.ip), failure);
        totals.routes.add(u64::from(e.route), failure);
        *totals.hours.entry(e.hour).or_default() += 1;
        self.tokens.add(e.token, failure);
        if e.token != 0 && !self.tokens.given_up {
            let index = e.token as usize;
            if index >= self.token_tenants.len() {
                self.token_tenants.resize(index + 1, 0);
            }
            // Tenant ids start at 1, so 0 is "not seen yet". A token number is one
            // tenant's; one seen under two is not counted on.
            match self.token_tenants[index] {
                0 => self.token_tenants[index] = tenant,
                owner if owner == tenant => {}
                _ => {
                    self.tokens.give_up();
                    self.token_tenants = Vec::new();
                }
            }
        }
    }

    /// `tenant`'s counts of `column`, or `None` if they were given up.
    fn tally(&self, tenant: u32, column: Column) -> Option<Tally> {
        let totals = self.tenants.get(&tenant);
        let slots = match column {
            Column::User => totals.map(|t| &t.users),
            Column::Ip => totals.map(|t| &t.ips),
            Column::Route => totals.map(|t| &t.routes),
            Column::Token => Some(&self.tokens),
        };
        let Some(slots) = slots else {
            return Some(Tally::default());
        };
        if slots.given_up {
            return None;
        }
        if column != Column::Token {
            return Some(Tally::from_dense(slots.counts.clone()));
        }
        let owners = self.token_tenants.iter();
        let counts = slots.counts.iter().zip(owners);
        Some(Tally::from_dense(
            counts
                .map(|(slot, owner)| if *owner == tenant { *slot } else { [0, 0] })
                .collect(),
        ))
    }
}

#[derive(Debug, Default, PartialEq, Eq)]
enum State {
    /// A build runs: the writer's entries wait in `recent` until it is done.
    #[default]
    Building,
    Ready,
    /// The last build failed: nothing is counted until the next one.
    Off,
}

#[derive(Debug, Default)]
struct Inner {
    state: State,
    /// Bumped by each new build, so that an outdated one does not install its counts.
    generation: u64,
    /// The writer's next seq: every event below it is committed.
    next_seq: u64,
    counted: Counted,
    /// The newest entries, in commit order.
    recent: VecDeque<(u32, Entry)>,
    /// Every entry with this seq or a later one is in `recent`.
    recent_from: u64,
}

impl Inner {
    fn trim_recent(&mut self) {
        while self.recent.len() > RECENT_MAX {
            if let Some((_, e)) = self.recent.pop_front() {
                self.recent_from = e.seq + 1;
            }
        }
    }

    /// Whether the totals can be given as of `next_seq`: ready, and not so far ahead that
    /// the entries to take back out are gone.
    fn serves(&self, next_seq: u64) -> bool {
        self.state == State::Ready && self.next_seq >= next_seq && self.recent_from <= next_seq
    }

    /// `tenant`'s entries committed at or after `next_seq`.
    fn newer(&self, tenant: u32, next_seq: u64) -> impl Iterator<Item = &Entry> {
        let start = self.recent.partition_point(|(_, e)| e.seq < next_seq);
        self.recent
            .range(start..)
            .filter(move |(t, _)| *t == tenant)
            .map(|(_, e)| e)
    }
}

/// The running totals of one store.
#[derive(Debug, Default)]
pub struct Totals {
    inner: Mutex<Inner>,
    /// Signalled when the writer adds entries.
    added: Condvar,
    /// Tells a running build to stop.
    cancel: AtomicBool,
    builder: Mutex<Option<JoinHandle<()>>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Totals {
    /// Totals of a store whose writer starts at `next_seq`; nothing is counted until
    /// [`Totals::spawn_build`].
    pub fn new(next_seq: u64) -> Totals {
        let inner = Inner {
            next_seq,
            ..Inner::default()
        };
        Totals {
            inner: Mutex::new(inner),
            ..Totals::default()
        }
    }

    /// Called by the writer after each commit with the group's entries (in seq order) and
    /// the next seq.
    pub fn absorb(&self, next_seq: u64, entries: Vec<(u32, Entry)>) {
        let mut inner = lock(&self.inner);
        inner.next_seq = next_seq;
        match inner.state {
            State::Off => {}
            State::Building => inner.recent.extend(entries),
            State::Ready => {
                for (tenant, e) in &entries {
                    inner.counted.add(*tenant, e);
                }
                inner.recent.extend(entries);
                inner.trim_recent();
            }
        }
        drop(inner);
        self.added.notify_all();
    }

    /// Forgets the counts until the next build is done. The writer calls it (through a
    /// rebuild's transaction) when the column tables are rewritten.
    pub fn forget(&self) {
        let mut inner = lock(&self.inner);
        inner.generation += 1;
        inner.state = State::Building;
        inner.counted = Counted::default();
        inner.recent.clear();
    }

    /// Counts the column tables of `db` on a thread of its own, stopping a build that
    /// still runs first; the totals serve readers once it is done.
    pub fn spawn_build(self: &Arc<Self>, db: Arc<Database>) {
        self.stop_build();
        self.forget();
        let generation = lock(&self.inner).generation;
        let totals = self.clone();
        let spawned = std::thread::Builder::new()
            .name("gatewatch-totals".into())
            .spawn(move || {
                let started = std::time::Instant::now();
                let result = count_all(&db, &totals.cancel);
                if totals.install(generation, result) {
                    let ms = started.elapsed().as_millis() as u64;
                    tracing::info!(ms, "running totals counted");
                }
            });
        match spawned {
            Ok(handle) => *lock(&self.builder) = Some(handle),
            Err(error) => {
                tracing::warn!(%error, "starting the totals thread failed; /top counts blocks");
                lock(&self.inner).state = State::Off;
            }
        }
    }

    /// Stops a running build and waits for its thread.
    pub fn stop_build(&self) {
        self.cancel.store(true, Ordering::Release);
        if let Some(handle) = lock(&self.builder).take() {
            if handle.join().is_err() {
                tracing::error!("the totals thread panicked");
            }
        }
        self.cancel.store(false, Ordering::Release);
    }

    /// Installs a build's counts unless a later build replaced it; true if they serve.
    fn install(&self, generation: u64, result: Result<Option<(u64, Counted)>, StoreError>) -> bool {
        let mut inner = lock(&self.inner);
        if inner.generation != generation {
            return false;
        }
        match result {
            Ok(Some((built_at, mut counted))) => {
                // Entries committed before the build's snapshot are counted already.
                while inner.recent.front().is_some_and(|(_, e)| e.seq < built_at) {
                    inner.recent.pop_front();
                }
                for (tenant, e) in &inner.recent {
                    counted.add(*tenant, e);
                }
                inner.counted = counted;
                inner.recent_from = built_at;
                inner.state = State::Ready;
                inner.trim_recent();
                true
            }
            Ok(None) => false,
            Err(error) => {
                tracing::warn!(%error, "counting the running totals failed; /top counts blocks");
                inner.state = State::Off;
                inner.recent.clear();
                false
            }
        }
    }

    /// Whether the totals serve readers (for tests and start-up logs).
    pub fn is_ready(&self) -> bool {
        lock(&self.inner).state == State::Ready
    }

    /// The inner state as of `next_seq`, once the writer has added every entry below it;
    /// `None` when the totals cannot serve that snapshot.
    fn as_of(&self, next_seq: u64) -> Option<MutexGuard<'_, Inner>> {
        let inner = lock(&self.inner);
        let (inner, _) = self
            .added
            .wait_timeout_while(inner, CATCH_UP_WAIT, |inner| {
                inner.state == State::Ready && inner.next_seq < next_seq
            })
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        inner.serves(next_seq).then_some(inner)
    }

    /// `tenant`'s events per hour as of `next_seq`.
    fn hours(&self, tenant: u32, next_seq: u64) -> Option<HashMap<u32, u64>> {
        let inner = self.as_of(next_seq)?;
        let mut hours = inner
            .counted
            .tenants
            .get(&tenant)
            .map(|t| t.hours.clone())
            .unwrap_or_default();
        for e in inner.newer(tenant, next_seq) {
            let count = hours.get_mut(&e.hour)?;
            *count = count.checked_sub(1)?;
            if *count == 0 {
                hours.remove(&e.hour);
            }
        }
        Some(hours)
    }

    /// `tenant`'s counts of `column` as of `next_seq`.
    fn tally(&self, tenant: u32, column: Column, next_seq: u64) -> Option<Tally> {
        let inner = self.as_of(next_seq)?;
        let mut tally = inner.counted.tally(tenant, column)?;
        let failure = Outcome::Failure.code();
        for e in inner.newer(tenant, next_seq) {
            let id = column.of(e);
            if id != 0 && !tally.remove(id, e.outcome == failure) {
                return None;
            }
        }
        Some(tally)
    }
}

/// Counts every column entry of `db` as of one snapshot; `None` if cancelled.
fn count_all(db: &Database, cancel: &AtomicBool) -> Result<Option<(u64, Counted)>, StoreError> {
    let txn = db.begin_read()?;
    let next_seq = txn
        .open_table(META)?
        .get(META_NEXT_SEQ)?
        .map_or(1, |v| v.value());
    let mut counted = Counted::default();
    for block in txn.open_table(COLUMN_BLOCKS)?.iter()? {
        if cancel.load(Ordering::Acquire) {
            return Ok(None);
        }
        let (key, bytes) = block?;
        let (tenant, first) = key.value();
        for e in BlockView::parse(first, bytes.value())?.entries()? {
            counted.add(tenant, &e);
        }
    }
    for row in txn.open_table(COLUMN_TAIL)?.iter()? {
        let (key, value) = row?;
        let (tenant, seq) = key.value();
        counted.add(tenant, &Entry::from_tail(seq, value.value()));
    }
    Ok(Some((next_seq, counted)))
}

impl Snapshot {
    /// The counts of `column` over `tenant`'s events in hours `[from_hour, to_hour)` (only
    /// failures, when `failures_only`), from the running totals less the events outside
    /// the range; `None` when the totals do not serve this snapshot or the range holds
    /// fewer events than lie outside it (counting the range itself is then cheaper).
    pub(super) fn counts_from_totals(
        &self,
        tenant: u32,
        column: Column,
        from_hour: u32,
        to_hour: u32,
        failures_only: bool,
    ) -> Result<Option<Tally>, StoreError> {
        let Some(totals) = self.totals() else {
            return Ok(None);
        };
        let next_seq = self
            .txn()
            .open_table(META)?
            .get(META_NEXT_SEQ)?
            .map_or(1, |v| v.value());
        let Some(hours) = totals.hours(tenant, next_seq) else {
            return Ok(None);
        };
        let range = from_hour..to_hour;
        let inside: u64 = hours
            .iter()
            .filter(|(hour, _)| range.contains(hour))
            .map(|(_, n)| n)
            .sum();
        let outside = hours.values().sum::<u64>() - inside;
        if outside > inside {
            return Ok(None);
        }
        let Some(mut tally) = totals.tally(tenant, column, next_seq) else {
            return Ok(None);
        };
        if outside > 0 {
            let hours = super::columns::Hours::outside(from_hour, to_hour);
            let excluded = self.count_column(tenant, column, hours, None)?;
            if !tally.subtract(excluded) {
                tracing::warn!(tenant, "running totals disagree with the column blocks");
                return Ok(None);
            }
        }
        if failures_only {
            tally.keep_failures();
        }
        Ok(Some(tally))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(seq: u64, hour: u32, user: u32, failure: bool) -> Entry {
        let outcome = if failure {
            Outcome::Failure.code()
        } else {
            Outcome::Success.code()
        };
        Entry {
            seq,
            hour,
            outcome,
            user,
            ip: user + 100,
            token: u64::from(user) + 1000,
            route: user + 200,
        }
    }

    fn counts(tally: Option<Tally>) -> Vec<(u64, u64, u64)> {
        let mut counts = tally.expect("served").into_counts();
        counts.sort_unstable();
        counts
    }

    /// Totals whose build counted `built` (all below seq `built_at`) while the writer went
    /// on: `absorb` was called with `during` before the build was installed.
    fn built(built_at: u64, built: &[(u32, Entry)], during: Vec<(u32, Entry)>) -> Totals {
        let totals = Totals::new(built_at);
        let generation = lock(&totals.inner).generation;
        let next = during.last().map_or(built_at, |(_, e)| e.seq + 1);
        totals.absorb(next, during);
        let mut counted = Counted::default();
        for (tenant, e) in built {
            counted.add(*tenant, e);
        }
        assert!(totals.install(generation, Ok(Some((built_at, counted)))));
        totals
    }

    #[test]
    fn entries_the_writer_adds_during_a_build_are_counted_once() {
        // The build saw seqs 1–3; the writer committed 3 (already seen) and 4–5 meanwhile.
        let seen = [(7, entry(1, 10, 1, false)), (7, entry(2, 11, 1, true))];
        let mut all = seen.to_vec();
        all.push((7, entry(3, 11, 2, false)));
        let during = vec![
            (7, entry(3, 11, 2, false)),
            (7, entry(4, 12, 1, true)),
            (8, entry(5, 12, 5, false)),
        ];
        let totals = built(4, &all, during);
        assert_eq!(
            counts(totals.tally(7, Column::User, 6)),
            vec![(1, 3, 2), (2, 1, 0)]
        );
        assert_eq!(counts(totals.tally(8, Column::Ip, 6)), vec![(105, 1, 0)]);
        // Tokens are numbered across tenants: each tenant sees only its own.
        assert_eq!(
            counts(totals.tally(7, Column::Token, 6)),
            vec![(1001, 3, 2), (1002, 1, 0)]
        );
        let hours = totals.hours(7, 6).expect("served");
        assert_eq!(hours, HashMap::from([(10, 1), (11, 2), (12, 1)]));
        // As of seq 4, the entries from 4 on are taken back out.
        assert_eq!(
            counts(totals.tally(7, Column::User, 4)),
            vec![(1, 2, 1), (2, 1, 0)]
        );
        assert_eq!(
            totals.hours(7, 4).expect("served"),
            HashMap::from([(10, 1), (11, 2)])
        );
        // Older than the build: those entries are gone.
        assert!(totals.tally(7, Column::User, 3).is_none());
    }

    #[test]
    fn a_reader_ahead_of_the_totals_waits_for_the_writer() {
        let totals = Arc::new(built(1, &[], Vec::new()));
        let writer = totals.clone();
        let adding = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            writer.absorb(
                3,
                vec![(1, entry(1, 5, 9, true)), (1, entry(2, 5, 9, false))],
            );
        });
        // A snapshot that already sees seqs 1 and 2.
        assert_eq!(counts(totals.tally(1, Column::User, 3)), vec![(9, 2, 1)]);
        adding.join().expect("joins");
        // One that sees more than the writer ever adds gets nothing, after a bounded wait.
        assert!(totals.tally(1, Column::User, 9).is_none());
    }

    #[test]
    fn forgotten_or_outgrown_totals_serve_nobody() {
        let totals = built(1, &[], vec![(1, entry(1, 5, 2, false))]);
        assert!(totals.is_ready());
        totals.forget();
        assert!(!totals.is_ready());
        assert!(totals.tally(1, Column::User, 2).is_none());
        assert!(totals.hours(1, 2).is_none());

        let mut huge = entry(2, 5, 3, false);
        huge.token = NUMBERS_MAX;
        let totals = built(1, &[], vec![(1, entry(1, 5, 2, false)), (1, huge)]);
        assert!(totals.tally(1, Column::Token, 3).is_none(), "given up");
        assert_eq!(
            counts(totals.tally(1, Column::User, 3)),
            vec![(2, 1, 0), (3, 1, 0)]
        );

        // A token number under two tenants.
        let mut counted = Counted::default();
        counted.add(1, &entry(1, 5, 2, false));
        counted.add(2, &entry(2, 5, 2, false));
        assert!(counted.tally(1, Column::Token).is_none());
        assert!(counted.tally(2, Column::User).is_some());

        let mut slots = Slots {
            counts: vec![[0, 0], [u32::MAX, 0]],
            given_up: false,
        };
        slots.add(1, false);
        assert!(slots.given_up && slots.counts.is_empty());
    }

    #[test]
    fn a_failed_build_stops_keeping_entries() {
        let totals = Totals::new(1);
        let generation = lock(&totals.inner).generation;
        totals.absorb(2, vec![(1, entry(1, 5, 2, false))]);
        let failed = Err(StoreError::Corrupt("test".into()));
        assert!(!totals.install(generation, failed));
        totals.absorb(3, vec![(1, entry(2, 5, 2, false))]);
        assert!(lock(&totals.inner).recent.is_empty());
        // A build of an older generation is not installed.
        totals.forget();
        assert!(!totals.install(generation, Ok(Some((3, Counted::default())))));
        assert!(!totals.is_ready());
    }
}
