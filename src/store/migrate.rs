//! Opening a store: schema version check, upgrade of older layouts, table creation,
//! loading what the writer needs.

use std::sync::Arc;

use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, WriteTransaction};

use super::codec::decode;
use super::columns::{ColumnState, ColumnWriter, ValueRef};
use super::names::{Names, PendingNames};
use super::records::{EventRecord, RouteRef, TokenRecord};
use super::tables::*;
use super::StoreError;

/// The schema this build writes and reads.
///
/// 1. The log keyed by (tenant, ts, seq) plus a seq → (tenant, ts) index.
/// 2. The log keyed by (tenant, seq) plus a (tenant, ts, seq) time index; records hold
///    their `ts`, other times as differences to it, intern routes, errors and scopes, and
///    name their token by number (`token_states` holds each token's number and state,
///    `token_ids` maps numbers back).
/// 3. Adds per-tenant numbers of users and IPs and the column blocks (see `columns`),
///    built from the log at open.
/// 4. Records (event format 2) name their user by that number and hold `ts` in six
///    bytes; the time index is keyed by one `u128` ([`time_key`]) instead of a tuple.
/// 5. Adds the postings (see `postings`), posted from the column blocks at open. A
///    version 4 binary would not keep them up to date, so it must not open the store.
/// 6. Adds the hour pieces of each posted span (see `hour_pieces`): a version 5 store's
///    spans are posted again at open.
/// 7. Adds the route column: per-tenant route numbers, a route in each column entry
///    (blocks of format 2), route pieces; new records name their route by its number
///    (event format 4), older ones keep its text. An older store's column tables,
///    postings and pieces are dropped and built again from the log at open.
/// 8. Packs the time index of posted spans (see `time_pieces`): a version 7 store's
///    posted spans move from `times` into `span_times` at open, 16 spans per
///    transaction. A version 7 binary would list none of the moved events.
/// 9. Time pieces (format 2) hold each event's type, outcome and client, so that a
///    listing filtered by them fetches only the matching events from the log: a version
///    8 store's pieces are packed again from the log at open, 16 spans per transaction.
///    A version 8 binary would take the new pieces for corruption.
/// 10. The time index of the newest events (`recent_times`, was `times`) holds each
///     event's type, outcome and client too, so that a listing filtered by them fetches
///     only the matching events among those as well: moved at open, 50,000 entries per
///     transaction. A version 9 binary would list none of them.
pub const SCHEMA_VERSION: u64 = 10;

/// Events moved from a version 1 log per transaction.
const UPGRADE_CHUNK: usize = 50_000;

/// Creates every table, upgrades an older layout, records or checks the schema version,
/// and returns the next event sequence number and the sketch watermark.
pub fn prepare(db: &Database) -> Result<(u64, u64), StoreError> {
    let found = {
        let txn = db.begin_read()?;
        match txn.open_table(META) {
            Ok(meta) => meta.get(META_SCHEMA_VERSION)?.map(|v| v.value()),
            Err(redb::TableError::TableDoesNotExist(_)) => None,
            Err(e) => return Err(e.into()),
        }
    };
    match found {
        Some(v) if v > SCHEMA_VERSION => {
            return Err(StoreError::TooNew {
                found: v,
                supported: SCHEMA_VERSION,
            })
        }
        // First, so that an upgrade cut short finds them forgotten at the next open.
        Some(3..=6) => super::columns::forget_all(db)?,
        _ => {}
    }
    match found {
        Some(1) => v1::upgrade(db)?,
        Some(2 | 3) => v3::upgrade(db)?,
        _ => {}
    }
    // Version 1 and 2 stores (and an interrupted build) get their column tables here.
    super::columns::build(db)?;
    // Before anything else writes, so that every tenant's due spans are posted; this
    // creates the posting tables too.
    super::postings::catch_up(db)?;
    // The time index without heads (schemas 4 to 9) gets them; then the posted spans'
    // (schema 7 had none) is packed (again, for schema 8's pieces without heads).
    super::time_pieces::add_heads(db)?;
    super::time_pieces::catch_up(db)?;
    let txn = db.begin_write()?;
    let next_seq;
    let sketch_seq;
    {
        let mut meta = txn.open_table(META)?;
        meta.insert(META_SCHEMA_VERSION, SCHEMA_VERSION)?;
        next_seq = meta.get(META_NEXT_SEQ)?.map_or(1, |v| v.value());
        sketch_seq = meta.get(META_SKETCH_SEQ)?.map_or(1, |v| v.value());
        txn.open_table(TENANTS)?;
        txn.open_table(TENANT_SLUGS)?;
        txn.open_table(USERS)?;
        txn.open_table(USER_NAMES)?;
        txn.open_table(MEMBERS)?;
        txn.open_table(API_KEYS)?;
        txn.open_table(NAMES)?;
        txn.open_table(LOG)?;
        txn.open_table(TIMES)?;
        txn.open_table(SPAN_TIMES)?;
        txn.open_table(COUNTERS)?;
        txn.open_table(TOKENS)?;
        txn.open_table(TOKEN_IDS)?;
        txn.open_table(DEDUP)?;
        txn.open_table(SKETCHES)?;
        txn.open_table(TOKEN_ENDS)?;
        txn.open_table(SESSIONS)?;
        txn.open_table(LIFETIMES)?;
        txn.open_table(VALUE_IDS)?;
        txn.open_table(VALUE_NAMES)?;
        txn.open_table(COLUMN_TAIL)?;
        txn.open_table(COLUMN_BLOCKS)?;
        txn.open_table(POSTING_SPANS)?;
        txn.open_table(POSTINGS)?;
        txn.open_table(SPAN_HOURS)?;
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
    names_of(&db.begin_read()?.open_table(NAMES)?)
}

pub(super) fn names_of(table: &impl ReadableTable<u32, &'static str>) -> Result<Names, StoreError> {
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

/// The version 1 layout, and its upgrade.
pub(super) mod v1 {
    use std::net::IpAddr;

    use redb::TableDefinition;
    use serde::{Deserialize, Serialize};

    use super::*;
    use crate::model::{Event, EventType, Outcome, TokenState};
    use crate::store::records::Text;

    /// (tenant, ts ms, seq) → [`Record`].
    pub const EVENTS: TableDefinition<(u32, u64, u64), &[u8]> = TableDefinition::new("events");
    /// seq → (tenant, ts ms).
    pub const EVENT_SEQ: TableDefinition<u64, (u32, u64)> = TableDefinition::new("event_seq");
    /// (tenant, token) → its [`TokenState`], without a number.
    pub const TOKENS: TableDefinition<(u32, &str), &[u8]> = TableDefinition::new("tokens");

    /// An event record as version 1 stored it.
    #[derive(Debug, Clone, Serialize, Deserialize)]
    pub struct Record {
        pub received_at: u64,
        pub type_id: u32,
        pub outcome: u8,
        pub client: Option<u32>,
        pub id: Option<String>,
        pub token: Option<String>,
        pub user_id: Option<String>,
        pub device_id: Option<String>,
        pub grant: Option<u32>,
        pub scopes: Vec<String>,
        pub ip: Option<IpAddr>,
        pub user_agent: Option<Text>,
        pub method: Option<u32>,
        pub route: Option<String>,
        pub status: Option<u16>,
        pub error: Option<String>,
        pub expires_at: Option<u64>,
        pub duration_ms: Option<u32>,
        pub context: Option<String>,
    }

    impl Record {
        fn into_event(self, ts: u64, names: &Names) -> Result<Event, StoreError> {
            let name = |id: u32| -> Result<String, StoreError> {
                names
                    .text(id)
                    .map(str::to_owned)
                    .ok_or_else(|| StoreError::Corrupt(format!("name id {id} is unknown")))
            };
            Ok(Event {
                event_type: EventType::parse(&name(self.type_id)?)
                    .ok_or_else(|| StoreError::Corrupt("stored event type is malformed".into()))?,
                ts,
                id: self.id,
                outcome: Outcome::from_code(self.outcome)
                    .ok_or_else(|| StoreError::Corrupt(format!("outcome code {}", self.outcome)))?,
                token: self.token,
                client_id: self.client.map(name).transpose()?,
                user_id: self.user_id,
                device_id: self.device_id,
                grant_type: self.grant.map(name).transpose()?,
                scopes: self.scopes,
                ip: self.ip,
                user_agent: match self.user_agent {
                    Some(Text::Id(id)) => Some(name(id)?),
                    Some(Text::Inline(text)) => Some(text),
                    None => None,
                },
                method: self.method.map(name).transpose()?,
                route: self.route,
                status: self.status,
                error: self.error,
                expires_at: self.expires_at,
                duration_ms: self.duration_ms,
                context: self.context,
            })
        }
    }

    /// Moves a version 1 log into the current layout, a chunk of events per transaction.
    /// Each chunk leaves the old table in the transaction that writes it to the new one,
    /// so an upgrade cut short resumes where it stopped at the next open. Aggregates,
    /// tokens and seqs are unchanged.
    pub fn upgrade(db: &Database) -> Result<(), StoreError> {
        let total = db.begin_read()?.open_table(EVENTS)?.len()?;
        tracing::info!(
            events = total,
            "upgrading the store's log to schema version {SCHEMA_VERSION}"
        );
        loop {
            let txn = db.begin_write()?;
            let chunk = number_tokens(&txn, UPGRADE_CHUNK)?;
            txn.commit()?;
            if chunk == 0 {
                break;
            }
        }
        let mut moved = 0u64;
        loop {
            let txn = db.begin_write()?;
            let chunk = move_chunk(&txn, UPGRADE_CHUNK)?;
            txn.commit()?;
            if chunk == 0 {
                break;
            }
            moved += chunk;
            tracing::info!(moved, total, "upgrading the log");
        }
        let txn = db.begin_write()?;
        txn.delete_table(EVENTS)?;
        txn.delete_table(EVENT_SEQ)?;
        txn.delete_table(TOKENS)?;
        txn.open_table(META)?
            .insert(META_SCHEMA_VERSION, SCHEMA_VERSION)?;
        txn.commit()?;
        tracing::info!(moved, "store upgraded to schema version {SCHEMA_VERSION}");
        Ok(())
    }

    /// Moves the next `chunk` token states into the numbered table; returns how many.
    pub(in crate::store) fn number_tokens(
        txn: &WriteTransaction,
        chunk: usize,
    ) -> Result<u64, StoreError> {
        let mut old = txn.open_table(TOKENS)?;
        let mut moving = Vec::with_capacity(chunk);
        for entry in old.iter()?.take(chunk) {
            let (key, bytes) = entry?;
            let (tenant, token) = key.value();
            let state: TokenState = decode(bytes.value(), "version 1 token")?;
            moving.push((tenant, token.to_owned(), state));
        }
        let Some((tenant, token, _)) = moving.last() else {
            return Ok(0);
        };
        old.retain_in(..=(*tenant, token.as_str()), |_, _| false)?;
        let mut numbered = txn.open_table(super::TOKENS)?;
        let mut token_ids = txn.open_table(TOKEN_IDS)?;
        let mut meta = txn.open_table(META)?;
        let mut next = meta.get(META_NEXT_TOKEN)?.map_or(1, |v| v.value());
        for (tenant, token, state) in moving.iter() {
            // A token an interrupted upgrade already numbered (for a moved event) keeps
            // its number.
            let known = match numbered.get((*tenant, token.as_str()))? {
                Some(bytes) => Some(TokenRecord::decode(bytes.value())?.id),
                None => None,
            };
            let id = match known {
                Some(id) => id,
                None => {
                    next += 1;
                    token_ids.insert((*tenant, next - 1), token.as_str())?;
                    next - 1
                }
            };
            let stored = TokenRecord {
                id,
                state: state.clone(),
            };
            numbered.insert((*tenant, token.as_str()), stored.encode()?.as_slice())?;
        }
        meta.insert(META_NEXT_TOKEN, next)?;
        Ok(moving.len() as u64)
    }

    /// The number of `tenant`'s `token`, numbering a token the old table lacked.
    fn token_number(txn: &WriteTransaction, tenant: u32, token: &str) -> Result<u64, StoreError> {
        let mut numbered = txn.open_table(super::TOKENS)?;
        if let Some(bytes) = numbered.get((tenant, token))? {
            return Ok(TokenRecord::decode(bytes.value())?.id);
        }
        let mut meta = txn.open_table(META)?;
        let id = meta.get(META_NEXT_TOKEN)?.map_or(1, |v| v.value());
        meta.insert(META_NEXT_TOKEN, id + 1)?;
        let stored = TokenRecord {
            id,
            state: TokenState::default(),
        };
        numbered.insert((tenant, token), stored.encode()?.as_slice())?;
        txn.open_table(TOKEN_IDS)?.insert((tenant, id), token)?;
        Ok(id)
    }

    /// Moves the next `chunk` events of the old log, in seq order so that the new log is
    /// written by appends; returns how many. Events the seq index misses (a damaged
    /// index) are moved once it is empty.
    pub(in crate::store) fn move_chunk(
        txn: &WriteTransaction,
        chunk: usize,
    ) -> Result<u64, StoreError> {
        let mut names_table = txn.open_table(NAMES)?;
        let mut pending = PendingNames::new(Arc::new(names_of(&names_table)?));
        let mut old = txn.open_table(EVENTS)?;
        let mut by_seq = txn.open_table(EVENT_SEQ)?;
        let mut places = Vec::with_capacity(chunk);
        for entry in by_seq.iter()?.take(chunk) {
            let (seq, (tenant, ts)) = entry.map(|(k, v)| (k.value(), v.value()))?;
            places.push((tenant, ts, seq));
        }
        if let Some(&(_, _, last)) = places.last() {
            by_seq.retain_in(..=last, |_, _| false)?;
        } else {
            for entry in old.iter()?.take(chunk) {
                places.push(entry?.0.value());
            }
        }
        let mut log = txn.open_table(LOG)?;
        let mut times = txn.open_table(TIMES)?;
        let mut state = ColumnState::default();
        let mut columns = ColumnWriter::open(txn, &mut state)?;
        for &(tenant, ts, seq) in &places {
            let Some(bytes) = old.remove((tenant, ts, seq))? else {
                continue; // the index pointed at nothing: there is no event to keep
            };
            let record: Record = decode(bytes.value(), "version 1 event")?;
            let received_at = record.received_at;
            let event = record.into_event(ts, pending.base())?;
            let mut record = EventRecord::from_event(&event, received_at, &mut pending);
            if let Some(token) = &event.token {
                record.token = Some(token_number(txn, tenant, token)?);
            }
            if let Some(user) = &event.user_id {
                record.user = Some(columns.number(tenant, ValueRef::User(user))?);
            }
            if let Some(route) = &event.route {
                let number = columns.number(tenant, ValueRef::Route(route))?;
                record.route = Some(RouteRef::Number(number));
            }
            log.insert((tenant, seq), record.encode()?.as_slice())?;
            let head = time_head(record.type_id, record.outcome, record.client);
            times.insert(time_key(tenant, ts, seq), head)?;
        }
        columns.finish()?;
        for (id, text) in pending.added() {
            names_table.insert(id, text)?;
        }
        Ok(places.len() as u64)
    }
}

/// The layout of versions 2 and 3, and its upgrade.
pub(super) mod v3 {
    use std::net::IpAddr;

    use redb::TableDefinition;
    use serde::{Deserialize, Serialize};

    use super::*;
    use crate::store::records::Text;

    /// The log: (tenant, seq) → [`Record`].
    pub const LOG: TableDefinition<(u32, u64), &[u8]> = TableDefinition::new("log");
    /// The time index: (tenant, ts ms, seq), no value.
    pub const EVENT_TIMES: TableDefinition<(u32, u64, u64), ()> =
        TableDefinition::new("event_times");

    /// An event record as versions 2 and 3 stored it (format byte 1): as
    /// [`EventRecord`], but with `ts` as a varint and the user id as text.
    #[derive(Debug, Clone, Serialize, Deserialize)]
    pub struct Record {
        pub ts: u64,
        pub received_delta: i64,
        pub type_id: u32,
        pub outcome: u8,
        pub client: Option<u32>,
        pub id: Option<String>,
        pub token: Option<u64>,
        pub user_id: Option<String>,
        pub device_id: Option<String>,
        pub grant: Option<u32>,
        pub scopes: Vec<Text>,
        pub ip: Option<IpAddr>,
        pub user_agent: Option<Text>,
        pub method: Option<u32>,
        pub route: Option<Text>,
        pub status: Option<u16>,
        pub error: Option<Text>,
        pub expires_delta: Option<i64>,
        pub duration_ms: Option<u32>,
        pub context: Option<String>,
    }

    impl Record {
        /// The current record, its user numbered `user`.
        fn into_current(self, user: Option<u32>) -> EventRecord {
            EventRecord {
                ts: self.ts,
                received_delta: self.received_delta,
                type_id: self.type_id,
                outcome: self.outcome,
                client: self.client,
                id: self.id,
                token: self.token,
                user,
                device_id: self.device_id,
                grant: self.grant,
                scopes: self.scopes,
                ip: self.ip,
                user_agent: self.user_agent,
                method: self.method,
                route: self.route.map(RouteRef::Text),
                status: self.status,
                error: self.error,
                expires_delta: self.expires_delta,
                duration_ms: self.duration_ms,
                context: self.context,
            }
        }

        /// The record version 3 stored for `record`, whose user id is `user_id` and route
        /// `route` (for tests that make older stores).
        #[cfg(test)]
        pub fn from_current(
            record: EventRecord,
            user_id: Option<String>,
            route: Option<Text>,
        ) -> Record {
            Record {
                ts: record.ts,
                received_delta: record.received_delta,
                type_id: record.type_id,
                outcome: record.outcome,
                client: record.client,
                id: record.id,
                token: record.token,
                user_id,
                device_id: record.device_id,
                grant: record.grant,
                scopes: record.scopes,
                ip: record.ip,
                user_agent: record.user_agent,
                method: record.method,
                route,
                status: record.status,
                error: record.error,
                expires_delta: record.expires_delta,
                duration_ms: record.duration_ms,
                context: record.context,
            }
        }
    }

    /// Moves every record into the new log in the current format, numbering users (a
    /// version 2 store has no numbers yet; a version 3 store's columns already gave
    /// them), and builds the new time index, a chunk of events per transaction. Each
    /// chunk leaves the old log in the transaction that writes it to the new one (whose
    /// pages, written by appends, fill completely); the last one drops the old tables and
    /// records the new version. So an upgrade cut short resumes where it stopped, and a
    /// finished one never runs again.
    pub fn upgrade(db: &Database) -> Result<(), StoreError> {
        let total = db.begin_read()?.open_table(LOG)?.len()?;
        tracing::info!(
            events = total,
            "upgrading the store's records to schema version {SCHEMA_VERSION}"
        );
        let mut moved = 0u64;
        loop {
            let txn = db.begin_write()?;
            let (chunk, done) = move_chunk(&txn, UPGRADE_CHUNK)?;
            if done {
                txn.delete_table(LOG)?;
                txn.delete_table(EVENT_TIMES)?;
                txn.open_table(META)?
                    .insert(META_SCHEMA_VERSION, SCHEMA_VERSION)?;
            }
            txn.commit()?;
            moved += chunk;
            if done {
                break;
            }
            tracing::info!(moved, total, "upgrading the records");
        }
        tracing::info!(moved, "store upgraded to schema version {SCHEMA_VERSION}");
        Ok(())
    }

    /// Moves the next `chunk` records of the old log, in (tenant, seq) order; returns how
    /// many, and whether the old log is now empty.
    pub(in crate::store) fn move_chunk(
        txn: &WriteTransaction,
        chunk: usize,
    ) -> Result<(u64, bool), StoreError> {
        let mut old_log = txn.open_table(LOG)?;
        let mut rows = Vec::with_capacity(chunk);
        for entry in old_log.iter()?.take(chunk) {
            let (key, bytes) = entry?;
            rows.push((key.value(), bytes.value().to_vec()));
        }
        if let Some((last, _)) = rows.last() {
            old_log.retain_in(..=*last, |_, _| false)?;
        }
        let done = old_log.is_empty()?;
        let mut log = txn.open_table(super::LOG)?;
        let mut times = txn.open_table(TIMES)?;
        let mut state = ColumnState::default();
        let mut columns = ColumnWriter::open(txn, &mut state)?;
        for ((tenant, seq), bytes) in &rows {
            let old: Record = decode(bytes, "version 3 event")?;
            let user = match &old.user_id {
                Some(user) => Some(columns.number(*tenant, ValueRef::User(user))?),
                None => None,
            };
            let record = old.into_current(user);
            log.insert((*tenant, *seq), record.encode()?.as_slice())?;
            let head = time_head(record.type_id, record.outcome, record.client);
            times.insert(time_key(*tenant, record.ts, *seq), head)?;
        }
        columns.finish()?;
        Ok((rows.len() as u64, done))
    }
}
