//! The store: one redb file under the data directory. The only module that imports redb.
//!
//! Writes go through the single group-commit [`writer`]; reads run in redb read
//! transactions on tokio's blocking pool and never block the writer (MVCC).

pub mod admin;
mod bitpack;
pub mod codec;
pub mod columns;
mod compact;
mod counters;
mod day_tallies;
mod error;
mod event_format;
mod hour_pieces;
mod lifetimes;
mod migrate;
pub mod names;
mod postings;
mod read;
pub mod records;
mod recount;
pub mod sketches;
pub mod tables;
pub mod tally;
mod time_pieces;
mod totals;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use redb::{Database, ReadTransaction, ReadableDatabase, WriteTransaction};

use crate::model::Event;
pub use admin::{KeyInfo, MemberInfo, TenantInfo, UserInfo};
pub use compact::compact;
pub use counters::CounterRow;
pub use error::StoreError;
pub use names::Names;
pub use read::{EventFilter, EventPage, Snapshot, StoredEvent};
pub use recount::RecountReport;
pub use tables::{Dim, Granularity};
pub use totals::Totals;
use writer::{Command, Writer};

/// The file name of the database inside the data directory.
pub const DB_FILE: &str = "gatewatch.redb";

/// redb's page cache. Its default (1 GiB) let a server that bulk-loaded 10 M events grow to
/// 1.2 GiB of RSS; beyond this cache, reads fall back on the kernel's page cache.
pub const CACHE_BYTES: usize = 128 * 1024 * 1024;

/// How the writer batches.
#[derive(Debug, Clone)]
pub struct WriterConfig {
    /// Requests that may wait in the queue.
    pub queue_capacity: usize,
    /// Most events applied in one transaction. Each group commit copies every leaf its
    /// events touch in the tables keyed at random (token states, value ids, token ends),
    /// and the copies' old pages stay in the file as free space: 5,000 rather than 20,000
    /// keeps about 4 B per stored event off the disk (measured at 10 M events), for a
    /// bulk load about a fifth slower.
    pub max_group_events: usize,
    /// How long a request waits for room in a full queue before it gets 503.
    pub enqueue_wait: Duration,
}

impl Default for WriterConfig {
    fn default() -> Self {
        WriterConfig {
            queue_capacity: 4096,
            max_group_events: 5_000,
            enqueue_wait: Duration::from_millis(500),
        }
    }
}

/// What one ingest request got: the server id of each event, `None` for a duplicate.
pub type IngestIds = Vec<Option<u64>>;

/// A handle on the open store. Cheap to share behind an `Arc`.
pub struct Store {
    db: Arc<Database>,
    names: names::SharedNames,
    book: sketches::SharedBook,
    totals: Arc<Totals>,
    days: Arc<day_tallies::DayTallies>,
    writer: Writer,
    writable: Arc<AtomicBool>,
    path: PathBuf,
}

impl Store {
    /// Opens (creating if needed) the store in `dir` and starts its writer thread.
    pub fn open(dir: &Path, config: WriterConfig) -> Result<Store, StoreError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| StoreError::Storage(format!("creating {}: {e}", dir.display())))?;
        let path = dir.join(DB_FILE);
        let db = Database::builder()
            .set_cache_size(CACHE_BYTES)
            .create(&path)?;
        let (next_seq, sketch_seq) = migrate::prepare(&db)?;
        let names = migrate::load_names(&db)?;
        let db = Arc::new(db);
        let book = sketches::new_book(db.clone());
        if sketch_seq < next_seq {
            let replayed = sketches::replay(&book, &names, sketch_seq, next_seq)?;
            sketches::flush(&book, next_seq, redb::Durability::Immediate, true)?;
            tracing::info!(replayed, "sketches caught up with the log");
        }
        let names: names::SharedNames = Arc::new(std::sync::RwLock::new(Arc::new(names)));
        let writable = Arc::new(AtomicBool::new(true));
        let totals = Arc::new(Totals::new(next_seq));
        let writer = Writer::start(
            db.clone(),
            names.clone(),
            book.clone(),
            totals.clone(),
            writable.clone(),
            next_seq,
            config,
        )?;
        totals.spawn_build(db.clone());
        Ok(Store {
            db,
            names,
            book,
            totals,
            days: Arc::default(),
            writer,
            writable,
            path,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the writer runs and accepts writes.
    pub fn is_writable(&self) -> bool {
        self.writable.load(Ordering::Acquire) && self.writer.is_running()
    }

    /// Requests waiting for the writer.
    pub fn queue_depth(&self) -> usize {
        self.writer.queued()
    }

    /// Appends `events` of `tenant` durably; resolves once they are committed.
    pub async fn ingest(
        &self,
        tenant: u32,
        received_at: u64,
        events: Vec<Event>,
    ) -> Result<IngestIds, StoreError> {
        let names = names::snapshot(&self.names);
        let events = events
            .into_iter()
            .map(|event| writer::Prepared::new(event, received_at, &names))
            .collect();
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.writer
            .submit(Command::Ingest(writer::IngestJob {
                tenant,
                received_at,
                events,
                reply,
            }))
            .await?;
        answer.await.map_err(|_| StoreError::Unavailable)?
    }

    /// Runs `f` in its own durable write transaction on the writer thread.
    pub async fn write<R, F>(&self, f: F) -> Result<R, StoreError>
    where
        R: Send + 'static,
        F: FnOnce(&WriteTransaction) -> Result<R, StoreError> + Send + 'static,
    {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let job = move |db: &Database| {
            let result = (|| {
                let txn = db.begin_write()?;
                let value = f(&txn)?;
                txn.commit()?;
                Ok(value)
            })();
            let _ = reply.send(result);
        };
        self.writer.submit(Command::Exec(Box::new(job))).await?;
        answer.await.map_err(|_| StoreError::Unavailable)?
    }

    /// Runs `f` over a consistent snapshot, on the blocking pool.
    pub async fn read<R, F>(&self, f: F) -> Result<R, StoreError>
    where
        R: Send + 'static,
        F: FnOnce(&Snapshot) -> Result<R, StoreError> + Send + 'static,
    {
        let snapshot = self.snapshot()?;
        tokio::task::spawn_blocking(move || f(&snapshot))
            .await
            .map_err(|e| StoreError::Storage(format!("read task failed: {e}")))?
    }

    /// A consistent read snapshot, for synchronous callers (CLI, tests).
    pub fn snapshot(&self) -> Result<Snapshot, StoreError> {
        let txn: ReadTransaction = self.db.begin_read()?;
        Ok(Snapshot::new(
            txn,
            names::snapshot(&self.names),
            Some(self.book.clone()),
            Some(self.totals.clone()),
            self.days.clone(),
        ))
    }

    /// The running totals (see [`Totals`]).
    pub fn totals(&self) -> &Totals {
        &self.totals
    }

    /// Deletes idempotency keys received before `now` − 7 days; returns how many.
    pub async fn prune_dedup_keys(&self, now: u64) -> Result<u64, StoreError> {
        let cutoff = now.saturating_sub(writer::DEDUP_WINDOW_MS);
        self.write(move |txn| {
            let mut dedup = txn.open_table(tables::DEDUP)?;
            let before = redb::ReadableTableMetadata::len(&dedup)?;
            dedup.retain(|_, received| received > cutoff)?;
            Ok(before - redb::ReadableTableMetadata::len(&dedup)?)
        })
        .await
    }

    /// Stops the writer after everything queued before this call is committed.
    pub fn close(&self) {
        self.writer.stop();
        self.totals.stop_build();
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        self.writer.stop();
        self.totals.stop_build();
    }
}

#[cfg(test)]
mod tests;
