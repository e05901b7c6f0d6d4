//! Opening a store: schema version check, table creation, loading what the writer needs.

use redb::{Database, ReadableDatabase, ReadableTable};

use super::names::Names;
use super::tables::*;
use super::StoreError;

/// The schema this build writes and reads.
pub const SCHEMA_VERSION: u64 = 1;

/// Creates every table, records or checks the schema version, and returns the next event
/// sequence number and the sketch watermark.
pub fn prepare(db: &Database) -> Result<(u64, u64), StoreError> {
    let txn = db.begin_write()?;
    let next_seq;
    let sketch_seq;
    {
        let mut meta = txn.open_table(META)?;
        let found = meta.get(META_SCHEMA_VERSION)?.map(|v| v.value());
        match found {
            Some(v) if v > SCHEMA_VERSION => {
                return Err(StoreError::TooNew {
                    found: v,
                    supported: SCHEMA_VERSION,
                })
            }
            Some(_) => {}
            None => {
                meta.insert(META_SCHEMA_VERSION, SCHEMA_VERSION)?;
            }
        }
        next_seq = meta.get(META_NEXT_SEQ)?.map_or(1, |v| v.value());
        sketch_seq = meta.get(META_SKETCH_SEQ)?.map_or(1, |v| v.value());
        txn.open_table(TENANTS)?;
        txn.open_table(TENANT_SLUGS)?;
        txn.open_table(USERS)?;
        txn.open_table(USER_NAMES)?;
        txn.open_table(MEMBERS)?;
        txn.open_table(API_KEYS)?;
        txn.open_table(NAMES)?;
        txn.open_table(EVENTS)?;
        txn.open_table(EVENT_SEQ)?;
        txn.open_table(COUNTERS)?;
        txn.open_table(TOKENS)?;
        txn.open_table(DEDUP)?;
        txn.open_table(SKETCHES)?;
        txn.open_table(TOKEN_ENDS)?;
        txn.open_table(SESSIONS)?;
        txn.open_table(LIFETIMES)?;
        if meta.get(META_LIFETIMES_BUILT)?.is_none() {
            super::lifetimes::build_from_ends(&txn)?;
            meta.insert(META_LIFETIMES_BUILT, 1)?;
        }
    }
    txn.commit()?;
    Ok((next_seq, sketch_seq))
}

/// Every interned string, in id order.
pub fn load_names(db: &Database) -> Result<Names, StoreError> {
    let txn = db.begin_read()?;
    let table = txn.open_table(NAMES)?;
    let mut texts = Vec::new();
    for (expected, entry) in table.iter()?.enumerate() {
        let (id, text) = entry?;
        if id.value() as usize != expected {
            return Err(StoreError::Corrupt(format!(
                "name ids are not dense at {}",
                id.value()
            )));
        }
        texts.push(text.value().to_owned());
    }
    Ok(Names::from_ordered(texts))
}
