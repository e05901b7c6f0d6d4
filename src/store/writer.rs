//! The single writer: group commit.
//!
//! One thread owns every write transaction. It blocks for the first queued command, drains
//! whatever else is queued (up to `max_group_events`), applies all of it in ONE transaction —
//! log append, counters, token state, dedup keys — commits durably, and only then answers
//! every request of the group. A request's success therefore means its events are on disk.
//!
//! After a storage error the writer refuses further ingest (never retrying a failed fsync in
//! place); readiness reports it and a restart reopens the file.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use redb::{Database, Durability, ReadableTable};
use tokio::sync::mpsc::{self, error::SendTimeoutError};
use tokio::sync::oneshot;

use super::columns::{ColumnState, ColumnWriter, Entry, Fields, RouteOf, ValueRef};
use super::counters::CounterDeltas;
use super::lifetimes::LifetimeDeltas;
use super::names::Names;
use super::names::{self, PendingNames, SharedNames};
use super::records::{EventRecord, RouteRef, TokenRecord};
use super::sketches::{self, Deltas, SharedBook};
use super::tables::*;
use super::time_pieces::pack_span;
use super::totals::Totals;
use super::{IngestIds, StoreError, WriterConfig};
use crate::model::time::DAY_MS;
use crate::model::{Event, TokenState};

/// How long an idempotency key suppresses repeats.
pub const DEDUP_WINDOW_MS: u64 = 7 * DAY_MS;

/// The type whose events feed the per-client grant-type counters.
pub const ISSUED: &str = "token.issued";

/// An event with as much of its storage work done as could be done before the writer:
/// when every name it uses is already interned, its record is built by the request's
/// task, off the writer thread (the writer adds the token's number and encodes it).
pub struct Prepared {
    pub event: Event,
    pub record: Option<EventRecord>,
}

impl Prepared {
    pub fn new(event: Event, received_at: u64, names: &Names) -> Prepared {
        let record = EventRecord::with_names(&event, received_at, false, |t, _| names.id(t));
        Prepared { event, record }
    }
}

/// A batch of one request's events, with where to send the answer.
pub struct IngestJob {
    pub tenant: u32,
    pub received_at: u64,
    pub events: Vec<Prepared>,
    pub reply: oneshot::Sender<Result<IngestIds, StoreError>>,
}

/// What the writer thread is asked to do.
pub enum Command {
    Ingest(IngestJob),
    /// Anything else that writes (tenants, keys, maintenance), run in its own transaction
    /// between groups. The closure answers its caller itself.
    Exec(Box<dyn FnOnce(&Database) + Send>),
}

pub struct Writer {
    queue: Mutex<Option<mpsc::Sender<Command>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
    running: Arc<AtomicBool>,
    enqueue_wait: Duration,
}

impl Writer {
    pub fn start(
        db: Arc<Database>,
        names: SharedNames,
        book: SharedBook,
        totals: Arc<Totals>,
        writable: Arc<AtomicBool>,
        next_seq: u64,
        config: WriterConfig,
    ) -> Result<Writer, StoreError> {
        let (tx, rx) = mpsc::channel(config.queue_capacity.max(1));
        let running = Arc::new(AtomicBool::new(true));
        let state = WriterState {
            db,
            names,
            book,
            totals,
            writable,
            next_seq,
            max_group_events: config.max_group_events.max(1),
            columns: ColumnState::default(),
        };
        let flag = running.clone();
        let thread = std::thread::Builder::new()
            .name("gatewatch-writer".into())
            .spawn(move || {
                state.run(rx);
                flag.store(false, Ordering::Release);
            })
            .map_err(|e| StoreError::Storage(format!("starting the writer thread: {e}")))?;
        Ok(Writer {
            queue: Mutex::new(Some(tx)),
            thread: Mutex::new(Some(thread)),
            running,
            enqueue_wait: config.enqueue_wait,
        })
    }

    pub fn is_running(&self) -> bool {
        self.running.load(Ordering::Acquire)
    }

    /// Commands waiting in the queue.
    pub fn queued(&self) -> usize {
        lock(&self.queue)
            .as_ref()
            .map_or(0, |q| q.max_capacity() - q.capacity())
    }

    /// Queues `command`, waiting at most the configured time for room.
    pub async fn submit(&self, command: Command) -> Result<(), StoreError> {
        let sender = lock(&self.queue).clone().ok_or(StoreError::Unavailable)?;
        match sender.send_timeout(command, self.enqueue_wait).await {
            Ok(()) => Ok(()),
            Err(SendTimeoutError::Timeout(_)) => Err(StoreError::Busy),
            Err(SendTimeoutError::Closed(_)) => Err(StoreError::Unavailable),
        }
    }

    /// Closes the queue and waits until everything already queued is committed.
    pub fn stop(&self) {
        drop(lock(&self.queue).take());
        if let Some(thread) = lock(&self.thread).take() {
            if thread.join().is_err() {
                tracing::error!("the writer thread panicked");
            }
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// What a group's transaction committed: the events' ids, the next seq and the events'
/// column entries.
type Applied = (Vec<IngestIds>, u64, Vec<(u32, Entry)>);

struct WriterState {
    db: Arc<Database>,
    names: SharedNames,
    book: SharedBook,
    totals: Arc<Totals>,
    writable: Arc<AtomicBool>,
    next_seq: u64,
    max_group_events: usize,
    /// Value numbers and tail sizes remembered between groups.
    columns: ColumnState,
}

impl WriterState {
    fn run(mut self, mut rx: mpsc::Receiver<Command>) {
        while let Some(first) = rx.blocking_recv() {
            let mut group = Vec::new();
            let mut size = 0;
            let mut after = None;
            match first {
                Command::Ingest(job) => {
                    size += job.events.len();
                    group.push(job);
                }
                Command::Exec(f) => after = Some(f),
            }
            while after.is_none() && size < self.max_group_events {
                match rx.try_recv() {
                    Ok(Command::Ingest(job)) => {
                        size += job.events.len();
                        group.push(job);
                    }
                    Ok(Command::Exec(f)) => after = Some(f),
                    Err(_) => break,
                }
            }
            if !group.is_empty() {
                self.commit_group(group);
            }
            if let Some(f) = after {
                f(&self.db);
                // It may have rewritten the column tables (a rebuild).
                self.columns.reset();
            }
        }
        if self.writable.load(Ordering::Acquire) {
            if let Err(error) =
                sketches::flush(&self.book, self.next_seq, Durability::Immediate, true)
            {
                tracing::error!(%error, "flushing sketches at stop failed; they replay at start");
            }
        }
    }

    fn commit_group(&mut self, mut group: Vec<IngestJob>) {
        if !self.writable.load(Ordering::Acquire) {
            for job in group {
                let _ = job.reply.send(Err(StoreError::Unavailable));
            }
            return;
        }
        match self.apply(&mut group) {
            Ok((ids, next_seq, entries)) => {
                self.next_seq = next_seq;
                self.totals.absorb(next_seq, entries);
                let mut deltas = Deltas::default();
                for (job, ids) in group.iter().zip(&ids) {
                    let stored = job.events.iter().zip(ids).filter(|(_, id)| id.is_some());
                    for (prepared, _) in stored {
                        if let Err(error) = deltas.observe(job.tenant, &prepared.event) {
                            tracing::error!(%error, "sketching an event failed");
                        }
                    }
                }
                // Before the answers, so that whoever got one reads its events' sketches.
                sketches::absorb(&self.book, deltas);
                for (job, ids) in group.into_iter().zip(ids) {
                    let _ = job.reply.send(Ok(ids));
                }
                if let Err(error) = sketches::flush(&self.book, next_seq, Durability::None, false) {
                    tracing::error!(%error, "flushing sketches failed; retrying on the next group");
                }
            }
            Err(error) => {
                // Whatever failed, no later group may reuse this one's name ids (they may
                // be published already): writes stop until a restart reloads the names.
                tracing::error!(%error, "group commit failed; refusing writes until restart");
                self.writable.store(false, Ordering::Release);
                for job in group {
                    let _ = job.reply.send(Err(error.clone()));
                }
            }
        }
    }

    /// Applies a whole group in one durable transaction; returns the events' ids, the next
    /// seq and the events' column entries.
    fn apply(&mut self, group: &mut [IngestJob]) -> Result<Applied, StoreError> {
        // The records built before the writer, taken out so the events can stay borrowed.
        let mut built: Vec<Vec<Option<EventRecord>>> = group
            .iter_mut()
            .map(|job| job.events.iter_mut().map(|p| p.record.take()).collect())
            .collect();
        let txn = self.db.begin_write()?;
        let mut pending = PendingNames::new(names::snapshot(&self.names));
        let mut counters = CounterDeltas::default();
        let mut tokens: HashMap<(u32, String), TokenRecord> = HashMap::new();
        // The life each touched token had before this group, to move its `token_ends` entry.
        let mut lives_before: HashMap<(u32, String), Option<(u64, u64)>> = HashMap::new();
        let mut keys_in_group: HashSet<(u32, &str)> = HashSet::new();
        let mut next_seq = self.next_seq;
        let mut all_ids = Vec::with_capacity(group.len());
        let mut entries = Vec::new();
        {
            let mut log = txn.open_table(LOG)?;
            let mut times = txn.open_table(TIMES)?;
            let mut dedup = txn.open_table(DEDUP)?;
            let mut token_table = txn.open_table(TOKENS)?;
            let mut token_ids = txn.open_table(TOKEN_IDS)?;
            let mut meta = txn.open_table(META)?;
            let mut next_token = meta.get(META_NEXT_TOKEN)?.map_or(1, |v| v.value());
            let mut columns = ColumnWriter::open(&txn, &mut self.columns)?;
            for (job, built) in group.iter().zip(&mut built) {
                let mut ids = Vec::with_capacity(job.events.len());
                for (Prepared { event, .. }, record) in job.events.iter().zip(built) {
                    if let Some(key) = event.id.as_deref() {
                        let repeat = !keys_in_group.insert((job.tenant, key))
                            || dedup.get((job.tenant, key))?.is_some_and(|seen| {
                                seen.value() + DEDUP_WINDOW_MS > job.received_at
                            });
                        if repeat {
                            ids.push(None);
                            continue;
                        }
                        dedup.insert((job.tenant, key), job.received_at)?;
                    }
                    let seq = next_seq;
                    next_seq += 1;
                    let mut record = match record.take() {
                        Some(record) => record,
                        None => EventRecord::from_event(event, job.received_at, &mut pending),
                    };
                    if let Some(token) = &event.token {
                        let key = (job.tenant, token.clone());
                        if !tokens.contains_key(&key) {
                            let stored = match token_table.get((job.tenant, token.as_str()))? {
                                Some(bytes) => TokenRecord::decode(bytes.value())?,
                                None => {
                                    let id = next_token;
                                    next_token += 1;
                                    token_ids.insert((job.tenant, id), token.as_str())?;
                                    TokenRecord {
                                        id,
                                        state: TokenState::default(),
                                    }
                                }
                            };
                            lives_before.insert(key.clone(), stored.state.life());
                            tokens.insert(key.clone(), stored);
                        }
                        if let Some(stored) = tokens.get_mut(&key) {
                            stored.state.apply(event);
                            record.token = Some(stored.id);
                        }
                    }
                    if let Some(user) = &event.user_id {
                        record.user = Some(columns.number(job.tenant, ValueRef::User(user))?);
                    }
                    let route = match &event.route {
                        Some(route) => Some(columns.number(job.tenant, ValueRef::Route(route))?),
                        None => None,
                    };
                    record.route = route.map(RouteRef::Number);
                    counters.add(
                        job.tenant,
                        event.ts,
                        record.counter_fields(),
                        pending.get(ISSUED),
                    );
                    log.insert((job.tenant, seq), record.encode()?.as_slice())?;
                    let head = time_head(record.type_id, record.outcome, record.client);
                    times.insert(time_key(job.tenant, event.ts, seq), head)?;
                    let entry = columns.append(
                        job.tenant,
                        seq,
                        Fields::of(&record, route.map(RouteOf::Number)),
                    )?;
                    entries.push((job.tenant, entry));
                    ids.push(Some(seq));
                }
                all_ids.push(ids);
            }
            // At most one span per group: its chunks cost about what a big group's events do.
            // Its events' time index entries move into its time pieces.
            for job in group.iter() {
                if let Some(&(first, end)) = columns.post_due(job.tenant, 1)?.first() {
                    let mut pieces = txn.open_table(SPAN_TIMES)?;
                    pack_span(&log, &mut times, &mut pieces, job.tenant, first, end)?;
                    break;
                }
            }
            columns.finish()?;
            let mut ends = txn.open_table(TOKEN_ENDS)?;
            let mut lifetimes = LifetimeDeltas::default();
            for (key, stored) in &tokens {
                let (tenant, token) = (&key.0, &key.1);
                token_table.insert((*tenant, token.as_str()), stored.encode()?.as_slice())?;
                let before = lives_before.get(key).copied().flatten();
                let after = stored.state.life();
                if before != after {
                    if let Some(life @ (end, _)) = before {
                        ends.remove((*tenant, end, token.as_str()))?;
                        lifetimes.remove(*tenant, life);
                    }
                    if let Some(life @ (end, issued)) = after {
                        ends.insert((*tenant, end, token.as_str()), issued)?;
                        lifetimes.add(*tenant, life);
                    }
                }
            }
            lifetimes.write(&mut txn.open_table(LIFETIMES)?)?;
            counters.write(&mut txn.open_table(COUNTERS)?)?;
            let mut names_table = txn.open_table(NAMES)?;
            for (id, text) in pending.added() {
                names_table.insert(id, text)?;
            }
            meta.insert(META_NEXT_SEQ, next_seq)?;
            meta.insert(META_NEXT_TOKEN, next_token)?;
        }
        // Published before the commit makes the events visible, so a reader never meets an
        // id it cannot name. If the commit fails, the writer stops (see `commit_group`), so
        // no stored record ever refers to a published-but-uncommitted id.
        pending.publish(&self.names);
        txn.commit()?;
        Ok((all_ids, next_seq, entries))
    }
}
