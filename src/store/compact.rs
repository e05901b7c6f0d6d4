//! `gatewatch compact`: the store rewritten into a new file, table by table in key order,
//! which then replaces the old one.
//!
//! redb's own compaction moves pages towards the front of the file but keeps them as they
//! are, and leaves free space it cannot move (11–26 MB of a 1 M-event store's 170 MB).
//! Tables filled in random key order (the time index, token states, value numbers) keep
//! leaves split in half. A copy inserts every table's rows in key order, so each leaf is
//! filled before the next is started, and the new file holds nothing else.
//!
//! The copy is written beside the store and renamed over it only once it is durable: a
//! crash at any point leaves the old store intact (and a stale copy, removed by the next
//! compaction).

use std::path::Path;

use redb::{
    Database, Durability, Key, ReadTransaction, ReadableDatabase, ReadableTable, TableDefinition,
    TableHandle, Value,
};

use super::tables::*;
use super::{StoreError, CACHE_BYTES, DB_FILE};

/// The name of the copy while it is written.
const COPY_FILE: &str = "gatewatch.redb.compacting";

/// Rows copied per transaction, so that the copy's dirty pages stay bounded in memory.
const COPY_CHUNK: usize = 200_000;

fn storage(what: &str, path: &Path, e: impl std::fmt::Display) -> StoreError {
    StoreError::Storage(format!("{what} {}: {e}", path.display()))
}

/// Compacts the store in `dir` (no server may have it open): upgrades it to the current
/// schema if it is older, copies it and replaces it with the copy. Returns the file size
/// before and after.
pub fn compact(dir: &Path) -> Result<(u64, u64), StoreError> {
    let path = dir.join(DB_FILE);
    let copy_path = dir.join(COPY_FILE);
    let size = |p: &Path| {
        std::fs::metadata(p)
            .map(|m| m.len())
            .map_err(|e| storage("reading", p, e))
    };
    let before = size(&path)?;
    if copy_path.exists() {
        std::fs::remove_file(&copy_path).map_err(|e| storage("removing", &copy_path, e))?;
    }
    let copied =
        copy_store(&path, &copy_path).and_then(|()| keep_owner_and_mode(&path, &copy_path));
    if copied.is_err() {
        // Best effort: the next compaction removes it too.
        let _ = std::fs::remove_file(&copy_path);
    }
    copied?;
    std::fs::rename(&copy_path, &path).map_err(|e| storage("replacing", &path, e))?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| storage("syncing", dir, e))?;
    Ok((before, size(&path)?))
}

/// Writes the store at `path`, brought to the current schema, into a new store at
/// `copy_path`, durably.
fn copy_store(path: &Path, copy_path: &Path) -> Result<(), StoreError> {
    let source = Database::builder().set_cache_size(CACHE_BYTES).open(path)?;
    super::migrate::prepare(&source)?;
    let mut copy = Database::builder()
        .set_cache_size(CACHE_BYTES)
        .create(copy_path)?;
    copy_all(&source.begin_read()?, &copy)?;
    // Every chunk so far was committed without a sync; this one makes them all durable.
    let mut last = copy.begin_write()?;
    last.set_durability(Durability::Immediate)
        .map_err(|e| StoreError::Storage(e.to_string()))?;
    last.commit()?;
    // redb grew the copy's file by doubling it: its own compaction (which syncs) gives
    // back the unused end, so the file is the size of its pages (2.28 → 1.88 GB for 13.5 M
    // events, in 20 s).
    copy.compact()?;
    Ok(())
}

/// Gives the copy the store file's owner and permissions: `compact` run as root on a
/// packaged install must leave a file the service's own user can still open.
fn keep_owner_and_mode(path: &Path, copy_path: &Path) -> Result<(), StoreError> {
    let meta = std::fs::metadata(path).map_err(|e| storage("reading", path, e))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        std::os::unix::fs::chown(copy_path, Some(meta.uid()), Some(meta.gid()))
            .map_err(|e| storage("changing the owner of", copy_path, e))?;
    }
    std::fs::set_permissions(copy_path, meta.permissions())
        .map_err(|e| storage("setting the permissions of", copy_path, e))
}

/// Copies every table of `from` into `to`; refuses, before copying anything, a store
/// holding a table this build does not know, which the copy would lose.
fn copy_all(from: &ReadTransaction, to: &Database) -> Result<(), StoreError> {
    macro_rules! every_table {
        ($then:ident) => {
            $then!(
                META,
                TENANTS,
                TENANT_SLUGS,
                USERS,
                USER_NAMES,
                MEMBERS,
                API_KEYS,
                SESSIONS,
                NAMES,
                LOG,
                TIMES,
                SPAN_TIMES,
                COUNTERS,
                TOKENS,
                TOKEN_IDS,
                TOKEN_ENDS,
                LIFETIMES,
                VALUE_IDS,
                VALUE_NAMES,
                COLUMN_TAIL,
                COLUMN_BLOCKS,
                POSTING_SPANS,
                POSTINGS,
                SPAN_HOURS,
                DEDUP,
                SKETCHES
            )
        };
    }
    macro_rules! names {
        ($($table:ident),*) => { [$( $table.name() ),*] };
    }
    macro_rules! copy {
        ($($table:ident),*) => { $( copy_table(from, to, $table)?; )* };
    }
    let known = every_table!(names);
    for table in from.list_tables()? {
        if !known.contains(&table.name()) {
            return Err(StoreError::Storage(format!(
                "the store holds a table this build does not know ({}); not compacted",
                table.name()
            )));
        }
    }
    if from.list_multimap_tables()?.next().is_some() {
        return Err(StoreError::Storage(
            "the store holds a multimap table this build does not know; not compacted".into(),
        ));
    }
    every_table!(copy);
    Ok(())
}

/// Copies one table (absent in `from`: nothing), [`COPY_CHUNK`] rows per transaction.
fn copy_table<K: Key + 'static, V: Value + 'static>(
    from: &ReadTransaction,
    to: &Database,
    table: TableDefinition<K, V>,
) -> Result<(), StoreError> {
    let source = match from.open_table(table) {
        Ok(source) => source,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    let mut rows = source.iter()?;
    loop {
        let mut txn = to.begin_write()?;
        txn.set_durability(Durability::None)
            .map_err(|e| StoreError::Storage(e.to_string()))?;
        let mut copied = 0;
        {
            let mut target = txn.open_table(table)?;
            for row in rows.by_ref().take(COPY_CHUNK) {
                let (key, value) = row?;
                target.insert(key.value(), value.value())?;
                copied += 1;
            }
        }
        txn.commit()?;
        if copied < COPY_CHUNK {
            return Ok(());
        }
    }
}
