//! Column blocks: a compact copy of the few fields of every event that `/top` ranks by
//! (user, IP, token, route) with its hour and outcome, so that ranking a high-cardinality
//! dimension over a range reads a few bytes per event instead of decoding the log.
//!
//! Users, IPs and routes get per-tenant numbers, dense from 1 ([`VALUE_IDS`],
//! [`VALUE_NAMES`]); tokens already have numbers. Log records name their user and route
//! by this number too (routes since schema 7), so those numbers are never reassigned; IP
//! numbers only the columns use. A tenant's newest events sit in [`COLUMN_TAIL`], one row each; every [`BLOCK`] of
//! them are sealed, in the same transaction, into one [`COLUMN_BLOCKS`] value that stores
//! each column frame-of-reference encoded (its minimum, then each value's difference to it
//! in the fewest whole bytes that hold the largest). Blocks follow the tenant's log in seq
//! order, so their layout is a function of the log (and the IPs' and routes' numbers)
//! alone: `verify` recomputes it, `rebuild` rewrites it.
//!
//! Everything here is written in the same transaction as the log append; all but the
//! user numbers is derived data.

use std::borrow::Cow;
use std::collections::HashMap;
use std::net::IpAddr;
use std::ops::Bound;
use std::sync::Arc;

use redb::{Database, ReadableTable, Table, WriteTransaction};

use super::day_tallies::{whole_days, DayTally};
use super::names::Names;
use super::postings::{PostingWriter, Unposted};
use super::read::{text_named, Snapshot};
use super::records::{EventRecord, RouteRef, Text};
use super::tables::*;
use super::tally::Tally;
use super::StoreError;
use crate::model::time::hour_of;
use crate::model::Outcome;

/// Events per sealed block.
pub const BLOCK: usize = 128;

/// Value kinds that get per-tenant numbers.
pub const KIND_USER: u8 = 0;
pub const KIND_IP: u8 = 1;
/// Routes are numbered by their text, whether the log interns it or stores it inline.
pub const KIND_ROUTE: u8 = 2;

/// Format byte of an encoded block. Format 1 (schema 6 and earlier) had no route column.
const BLOCK_FORMAT: u8 = 2;

/// Events folded per transaction when an older store's blocks are built at open.
const BUILD_CHUNK: usize = 50_000;

/// Value numbers the writer keeps in memory before it forgets them all and starts over.
const KNOWN_MAX: usize = 1 << 18;

/// The columned fields of one event. Numbers are 0 when the event has no such field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    pub seq: u64,
    pub hour: u32,
    pub outcome: u8,
    pub user: u32,
    pub ip: u32,
    pub token: u64,
    pub route: u32,
}

impl Entry {
    /// The entry of event `seq` with `fields`, whose IP and route have numbers `ip` and
    /// `route` (0 = none).
    fn new(seq: u64, fields: Fields<'_>, ip: u32, route: u32) -> Entry {
        Entry {
            seq,
            hour: hour_of(fields.ts),
            outcome: fields.outcome,
            user: fields.user.unwrap_or(0),
            ip,
            token: fields.token.unwrap_or(0),
            route,
        }
    }

    pub(super) fn from_tail(seq: u64, (hour, outcome, user, ip, token, route): TailValue) -> Entry {
        Entry {
            seq,
            hour,
            outcome,
            user,
            ip,
            token,
            route,
        }
    }

    fn tail_value(&self) -> TailValue {
        (
            self.hour,
            self.outcome,
            self.user,
            self.ip,
            self.token,
            self.route,
        )
    }
}

/// The fields of a logged event that go into its entry, before its IP (and the route of
/// a record written before schema 7) are numbered.
#[derive(Debug, Clone, Copy)]
pub struct Fields<'a> {
    pub ts: u64,
    pub outcome: u8,
    pub user: Option<u32>,
    pub ip: Option<IpAddr>,
    pub token: Option<u64>,
    pub route: Option<RouteOf<'a>>,
}

/// An entry's route: the record's number, or the text of a record written before routes
/// had numbers.
#[derive(Debug, Clone, Copy)]
pub enum RouteOf<'a> {
    Number(u32),
    Text(&'a str),
}

impl<'a> Fields<'a> {
    /// The fields of `record`, whose route is `route` (see [`route_of`]).
    pub fn of(record: &EventRecord, route: Option<RouteOf<'a>>) -> Fields<'a> {
        Fields {
            ts: record.ts,
            outcome: record.outcome,
            user: record.user,
            ip: record.ip,
            token: record.token,
            route,
        }
    }
}

/// `record`'s route: its number, or its text (its name looked up in `names` if the record
/// holds an id).
pub fn route_of<'a>(
    record: &'a EventRecord,
    names: &'a Names,
) -> Result<Option<RouteOf<'a>>, StoreError> {
    Ok(match &record.route {
        None => None,
        Some(RouteRef::Number(number)) => Some(RouteOf::Number(*number)),
        Some(RouteRef::Text(Text::Inline(text))) => Some(RouteOf::Text(text)),
        Some(RouteRef::Text(Text::Id(id))) => match names.text(*id) {
            Some(text) => Some(RouteOf::Text(text)),
            None => return Err(StoreError::Corrupt(format!("route name {id} is unknown"))),
        },
    })
}

fn ip_bytes(ip: IpAddr) -> Vec<u8> {
    match ip {
        IpAddr::V4(v4) => v4.octets().to_vec(),
        IpAddr::V6(v6) => v6.octets().to_vec(),
    }
}

/// Which column a reader ranks by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Column {
    User,
    Ip,
    Token,
    Route,
}

impl Column {
    /// Every column, in the order of their [`Column::code`]s.
    pub const ALL: [Column; 4] = [Column::User, Column::Ip, Column::Token, Column::Route];

    /// The columns that `/events` filters by, which get postings (see `postings`).
    pub const POSTED: [Column; 3] = [Column::User, Column::Ip, Column::Token];

    /// The column's number in stored keys (see `postings`).
    pub(super) fn code(self) -> u8 {
        match self {
            Column::User => 0,
            Column::Ip => 1,
            Column::Token => 2,
            Column::Route => 3,
        }
    }

    fn position(self) -> usize {
        match self {
            Column::User => USER,
            Column::Ip => IP,
            Column::Token => TOKEN,
            Column::Route => ROUTE,
        }
    }

    /// This column's value in `e` (0: none).
    pub(super) fn of(self, e: &Entry) -> u64 {
        match self {
            Column::User => u64::from(e.user),
            Column::Ip => u64::from(e.ip),
            Column::Token => e.token,
            Column::Route => u64::from(e.route),
        }
    }
}

/// A user id, an IP address or a route, to look its number up.
#[derive(Debug, Clone, Copy)]
pub enum ValueRef<'a> {
    User(&'a str),
    Ip(IpAddr),
    Route(&'a str),
}

impl<'a> ValueRef<'a> {
    /// The value's kind and the bytes it is numbered by.
    fn key(self) -> (u8, Cow<'a, [u8]>) {
        match self {
            ValueRef::User(user) => (KIND_USER, Cow::Borrowed(user.as_bytes())),
            ValueRef::Ip(ip) => (KIND_IP, Cow::Owned(ip_bytes(ip))),
            ValueRef::Route(route) => (KIND_ROUTE, Cow::Borrowed(route.as_bytes())),
        }
    }
}

// Column positions inside a block.
const SEQ_GAP: usize = 0;
const HOUR_OUTCOME: usize = 1;
const USER: usize = 2;
const IP: usize = 3;
const TOKEN: usize = 4;
const ROUTE: usize = 5;
const COLUMNS: usize = 6;

/// Outcome codes take the low three bits of the hour-and-outcome column.
const OUTCOME_BITS: u32 = 3;

/// Encodes `entries` (of one tenant, ascending seq, at least one) as a block.
pub fn encode_block(entries: &[Entry]) -> Vec<u8> {
    let min_hour = entries.iter().map(|e| e.hour).min().unwrap_or(0);
    let max_hour = entries.iter().map(|e| e.hour).max().unwrap_or(0);
    let mut out = Vec::with_capacity(16 + entries.len() * 12);
    out.push(BLOCK_FORMAT);
    out.extend_from_slice(&(entries.len() as u32).to_le_bytes());
    out.extend_from_slice(&min_hour.to_le_bytes());
    out.extend_from_slice(&max_hour.to_le_bytes());
    // Each seq as its gap to the one before. The first entry's seq is the block's key, so
    // its gap is never read: it repeats the second's, which keeps a constant column constant.
    let mut gaps: Vec<u64> = entries.windows(2).map(|w| w[1].seq - w[0].seq).collect();
    gaps.insert(0, gaps.first().copied().unwrap_or(0));
    let hour_outcome =
        |e: &Entry| (u64::from(e.hour - min_hour) << OUTCOME_BITS) | u64::from(e.outcome & 0b111);
    encode_column(&mut out, gaps.into_iter());
    encode_column(&mut out, entries.iter().map(hour_outcome));
    encode_column(&mut out, entries.iter().map(|e| u64::from(e.user)));
    encode_column(&mut out, entries.iter().map(|e| u64::from(e.ip)));
    encode_column(&mut out, entries.iter().map(|e| e.token));
    encode_column(&mut out, entries.iter().map(|e| u64::from(e.route)));
    out
}

/// Appends `values` frame-of-reference encoded: the width in bytes of the largest
/// difference to the minimum, the minimum, then each difference in that many bytes.
fn encode_column(out: &mut Vec<u8>, values: impl Iterator<Item = u64> + Clone) {
    let base = values.clone().min().unwrap_or(0);
    let span = values.clone().map(|v| v - base).max().unwrap_or(0);
    let width = (8 - span.leading_zeros() as usize / 8) as u8;
    out.push(width);
    out.extend_from_slice(&base.to_le_bytes());
    for value in values {
        out.extend_from_slice(&(value - base).to_le_bytes()[..usize::from(width)]);
    }
}

/// A decoded view of a block's bytes.
pub struct BlockView<'a> {
    first_seq: u64,
    len: usize,
    pub min_hour: u32,
    pub max_hour: u32,
    columns: [ColumnBytes<'a>; COLUMNS],
}

/// One column as [`encode_column`] wrote it, not yet decoded.
#[derive(Clone, Copy)]
struct ColumnBytes<'a> {
    width: usize,
    base: u64,
    data: &'a [u8],
}

impl<'a> ColumnBytes<'a> {
    /// Reads a column of `len` values from the front of `rest`.
    fn read(rest: &mut Reader<'a>, len: usize) -> Result<ColumnBytes<'a>, StoreError> {
        let width = usize::from(rest.take(1)?[0]);
        if width > 8 {
            return Err(corrupt("bad width"));
        }
        let base = u64::from_le_bytes(rest.array()?);
        let data = rest.take(width * len)?;
        Ok(ColumnBytes { width, base, data })
    }

    /// Whether the column holds `value`, read from its bytes without decoding them.
    fn contains(&self, value: u64) -> bool {
        let Some(offset) = value.checked_sub(self.base) else {
            return false;
        };
        if self.width < 8 && offset >> (8 * self.width) != 0 {
            return false;
        }
        if self.width == 0 {
            return true;
        }
        let wanted = &offset.to_le_bytes()[..self.width];
        self.data.chunks_exact(self.width).any(|c| c == wanted)
    }

    /// Every value of the column, into `out` (cleared first). The common widths get
    /// their own loops: this is the inner loop of every ranking.
    fn decode_into(&self, len: usize, out: &mut Vec<u64>) {
        out.clear();
        let base = self.base;
        let data = self.data;
        match self.width {
            0 => out.resize(len, base),
            1 => out.extend(data.iter().map(|&b| base.wrapping_add(u64::from(b)))),
            2 => out.extend(
                data.chunks_exact(2)
                    .map(|c| base.wrapping_add(u64::from(u16::from_le_bytes([c[0], c[1]])))),
            ),
            3 => {
                out.extend(data.chunks_exact(3).map(|c| {
                    base.wrapping_add(u64::from(u32::from_le_bytes([c[0], c[1], c[2], 0])))
                }))
            }
            4 => out.extend(data.chunks_exact(4).map(|c| {
                base.wrapping_add(u64::from(u32::from_le_bytes([c[0], c[1], c[2], c[3]])))
            })),
            width => out.extend(data.chunks_exact(width).map(|c| {
                let value = c
                    .iter()
                    .rev()
                    .fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
                base.wrapping_add(value)
            })),
        }
    }
}

/// Reads a block's bytes front to back.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], StoreError> {
        if self.0.len() < n {
            return Err(corrupt("truncated"));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], StoreError> {
        self.take(N)?.try_into().map_err(|_| corrupt("truncated"))
    }

    fn u32(&mut self) -> Result<u32, StoreError> {
        self.array().map(u32::from_le_bytes)
    }
}

fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt(format!("column block: {what}"))
}

impl<'a> BlockView<'a> {
    pub fn parse(first_seq: u64, bytes: &'a [u8]) -> Result<BlockView<'a>, StoreError> {
        let mut rest = Reader(bytes);
        if rest.take(1)?[0] != BLOCK_FORMAT {
            return Err(corrupt("unknown format"));
        }
        let len = rest.u32()? as usize;
        let min_hour = rest.u32()?;
        let max_hour = rest.u32()?;
        if len == 0 || len > BLOCK || min_hour > max_hour {
            return Err(corrupt("bad header"));
        }
        let mut columns = [ColumnBytes {
            width: 0,
            base: 0,
            data: &[],
        }; COLUMNS];
        for column in &mut columns {
            *column = ColumnBytes::read(&mut rest, len)?;
        }
        if !rest.0.is_empty() {
            return Err(corrupt("trailing bytes"));
        }
        Ok(BlockView {
            first_seq,
            len,
            min_hour,
            max_hour,
            columns,
        })
    }

    /// Every entry, in seq order.
    pub fn entries(&self) -> Result<Vec<Entry>, StoreError> {
        let mut cols: [Vec<u64>; COLUMNS] = Default::default();
        for column in [HOUR_OUTCOME, USER, IP, TOKEN, ROUTE] {
            self.columns[column].decode_into(self.len, &mut cols[column]);
        }
        let narrow = |v: u64| u32::try_from(v).map_err(|_| corrupt("value too wide"));
        self.seqs_and_hours()?
            .into_iter()
            .enumerate()
            .map(|(i, (seq, hour))| {
                Ok(Entry {
                    seq,
                    hour,
                    outcome: (cols[HOUR_OUTCOME][i] & 0b111) as u8,
                    user: narrow(cols[USER][i])?,
                    ip: narrow(cols[IP][i])?,
                    token: cols[TOKEN][i],
                    route: narrow(cols[ROUTE][i])?,
                })
            })
            .collect()
    }

    /// The seq and hour of every entry, in seq order (the other columns left encoded).
    fn seqs_and_hours(&self) -> Result<Vec<(u64, u32)>, StoreError> {
        let (mut gaps, mut hour_outcomes) = (Vec::new(), Vec::new());
        self.columns[SEQ_GAP].decode_into(self.len, &mut gaps);
        self.columns[HOUR_OUTCOME].decode_into(self.len, &mut hour_outcomes);
        let mut seq = self.first_seq;
        gaps.iter()
            .zip(&hour_outcomes)
            .enumerate()
            .map(|(i, (&gap, &hour_outcome))| {
                if i > 0 {
                    seq = seq.checked_add(gap).ok_or_else(|| corrupt("seq"))?;
                }
                let hour = (hour_outcome >> OUTCOME_BITS) + u64::from(self.min_hour);
                let hour = u32::try_from(hour).map_err(|_| corrupt("value too wide"))?;
                Ok((seq, hour))
            })
            .collect()
    }
}

/// A [`VALUE_NAMES`] key: (tenant, kind, number).
type ValueKey = (u32, u8, u32);

/// Values of one (tenant, kind) and their numbers.
type Numbers = HashMap<Box<[u8]>, u32>;

/// What the writer remembers between transactions; forgotten (and reloaded from the
/// tables) after anything else wrote, see [`ColumnState::reset`].
#[derive(Debug, Default)]
pub struct ColumnState {
    /// The next number per (tenant, kind), once looked up.
    next_ids: HashMap<(u32, u8), u32>,
    /// Numbers of recently seen values.
    known: HashMap<(u32, u8), Numbers>,
    known_len: usize,
    /// Rows in each tenant's tail, once counted.
    tails: HashMap<u32, usize>,
    /// Where each tenant's postings stop, once read.
    unposted: HashMap<u32, Unposted>,
}

impl ColumnState {
    /// Forgets everything, for after a transaction this state did not see.
    pub fn reset(&mut self) {
        *self = ColumnState::default();
    }
}

/// The column tables of one write transaction.
pub struct ColumnWriter<'txn, 's> {
    ids: Table<'txn, (u32, u8, &'static [u8]), u32>,
    values: Table<'txn, (u32, u8, u32), &'static [u8]>,
    tail: Table<'txn, (u32, u64), TailValue>,
    blocks: Table<'txn, (u32, u64), &'static [u8]>,
    postings: PostingWriter<'txn>,
    state: &'s mut ColumnState,
    /// Values numbered in this transaction, not yet in [`VALUE_NAMES`]: (key, value), in
    /// the order numbered (see [`ColumnWriter::finish`]).
    fresh: Vec<(ValueKey, Box<[u8]>)>,
}

impl<'txn, 's> ColumnWriter<'txn, 's> {
    pub fn open(
        txn: &'txn WriteTransaction,
        state: &'s mut ColumnState,
    ) -> Result<ColumnWriter<'txn, 's>, StoreError> {
        Ok(ColumnWriter {
            ids: txn.open_table(VALUE_IDS)?,
            values: txn.open_table(VALUE_NAMES)?,
            tail: txn.open_table(COLUMN_TAIL)?,
            blocks: txn.open_table(COLUMN_BLOCKS)?,
            postings: PostingWriter::open(txn)?,
            state,
            fresh: Vec::new(),
        })
    }

    /// Writes the values numbered in this transaction into [`VALUE_NAMES`]; must be called
    /// before the transaction commits. Each (tenant, kind) gets its new numbers as one run
    /// at the end of its range, through a cursor: redb packs a run into full leaves,
    /// where inserting the numbers one by one in the middle of the table (the users' and
    /// IPs' ranges lie before the routes') splits each full leaf in half and leaves the
    /// first half behind.
    pub fn finish(mut self) -> Result<(), StoreError> {
        let mut fresh = std::mem::take(&mut self.fresh);
        fresh.sort_unstable_by_key(|(key, _)| *key);
        for run in fresh.chunk_by(|a, b| (a.0 .0, a.0 .1) == (b.0 .0, b.0 .1)) {
            let (tenant, kind, _) = run[0].0;
            let mut cursor =
                self.values
                    .upper_bound_mut(Bound::Included((tenant, kind, u32::MAX)))?;
            for (key, value) in run {
                cursor
                    .insert_before(key, value.as_ref())
                    .map_err(|e| match e {
                        redb::CursorError::UnorderedKey => {
                            StoreError::Corrupt(format!("value number {key:?} is taken"))
                        }
                        other => StoreError::from(redb::Error::from(other)),
                    })?;
            }
            cursor.close()?;
        }
        Ok(())
    }

    /// Posts at most `limit` of `tenant`'s due spans (see `postings`); returns the (first,
    /// end) seqs of those it posted.
    pub fn post_due(&mut self, tenant: u32, limit: usize) -> Result<Vec<(u64, u64)>, StoreError> {
        let unposted = match self.state.unposted.get_mut(&tenant) {
            Some(unposted) => unposted,
            None => {
                let unposted = self.postings.unposted(&self.blocks, tenant)?;
                self.state.unposted.entry(tenant).or_insert(unposted)
            }
        };
        self.postings
            .post_due(&self.blocks, tenant, unposted, limit)
    }

    /// The number of user id, IP or route `value` in `tenant`, assigning the next one if
    /// it is new.
    pub fn number(&mut self, tenant: u32, value: ValueRef<'_>) -> Result<u32, StoreError> {
        let (kind, bytes) = value.key();
        self.value_id(tenant, kind, &bytes)
    }

    fn value_id(&mut self, tenant: u32, kind: u8, value: &[u8]) -> Result<u32, StoreError> {
        if let Some(id) = self
            .state
            .known
            .get(&(tenant, kind))
            .and_then(|known| known.get(value))
        {
            return Ok(*id);
        }
        let stored = self.ids.get((tenant, kind, value))?.map(|id| id.value());
        let id = match stored {
            Some(id) => id,
            None => {
                let next = match self.state.next_ids.get(&(tenant, kind)) {
                    Some(next) => *next,
                    None => next_value_number(&self.values, tenant, kind)?,
                };
                self.ids.insert((tenant, kind, value), next)?;
                self.fresh.push(((tenant, kind, next), value.into()));
                self.state.next_ids.insert((tenant, kind), next + 1);
                next
            }
        };
        if self.state.known_len >= KNOWN_MAX {
            self.state.known.clear();
            self.state.known_len = 0;
        }
        self.state
            .known
            .entry((tenant, kind))
            .or_default()
            .insert(value.into(), id);
        self.state.known_len += 1;
        Ok(id)
    }

    /// Adds the entry of event `seq` of `tenant`, sealing the tenant's tail into a block
    /// when it is full; returns the entry.
    pub fn append(
        &mut self,
        tenant: u32,
        seq: u64,
        fields: Fields<'_>,
    ) -> Result<Entry, StoreError> {
        let ip = match fields.ip {
            Some(ip) => self.number(tenant, ValueRef::Ip(ip))?,
            None => 0,
        };
        let route = match fields.route {
            Some(RouteOf::Number(number)) => number,
            Some(RouteOf::Text(route)) => self.number(tenant, ValueRef::Route(route))?,
            None => 0,
        };
        let entry = Entry::new(seq, fields, ip, route);
        self.tail.insert((tenant, seq), entry.tail_value())?;
        let rows = match self.state.tails.get(&tenant) {
            Some(rows) => rows + 1,
            None => self.tail.range((tenant, 0)..=(tenant, u64::MAX))?.count(),
        };
        if rows < BLOCK {
            self.state.tails.insert(tenant, rows);
            return Ok(entry);
        }
        let entries = self
            .tail
            .range((tenant, 0)..=(tenant, u64::MAX))?
            .map(|row| {
                let (key, value) = row?;
                Ok(Entry::from_tail(key.value().1, value.value()))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        if let Some(first) = entries.first() {
            self.blocks
                .insert((tenant, first.seq), encode_block(&entries).as_slice())?;
        }
        self.tail
            .retain_in((tenant, 0)..=(tenant, u64::MAX), |_, _| false)?;
        self.state.tails.insert(tenant, 0);
        if let Some(unposted) = self.state.unposted.get_mut(&tenant) {
            unposted.sealed();
        }
        Ok(entry)
    }
}

/// Folds every logged event into the column tables, in (tenant, seq) order: all of them
/// (`start` = None), or those from `start` on; and posts every span that becomes due.
/// `names` are the interned names, for routes that older records hold as a name's id.
pub fn fold_log(
    txn: &WriteTransaction,
    start: Option<(u32, u64)>,
    limit: usize,
    names: &Names,
) -> Result<Option<(u32, u64)>, StoreError> {
    let mut state = ColumnState::default();
    let mut columns = ColumnWriter::open(txn, &mut state)?;
    let log = txn.open_table(LOG)?;
    let mut tenants: Vec<u32> = Vec::new();
    let mut stopped_at = None;
    for (folded, entry) in log.range(start.unwrap_or((0, 0))..)?.enumerate() {
        let (key, bytes) = entry?;
        let (tenant, seq) = key.value();
        if folded == limit {
            stopped_at = Some((tenant, seq));
            break;
        }
        if tenants.last() != Some(&tenant) {
            tenants.push(tenant);
        }
        let record = EventRecord::decode(bytes.value())?;
        let route = route_of(&record, names)?;
        columns.append(tenant, seq, Fields::of(&record, route))?;
    }
    for tenant in tenants {
        columns.post_due(tenant, usize::MAX)?;
    }
    columns.finish()?;
    Ok(stopped_at)
}

/// The number the next new value of `kind` in `tenant` gets: one past the highest in
/// `values` (a [`VALUE_NAMES`] table), 1 for the first.
fn next_value_number(
    values: &impl ReadableTable<(u32, u8, u32), &'static [u8]>,
    tenant: u32,
    kind: u8,
) -> Result<u32, StoreError> {
    let last = values
        .range((tenant, kind, 0)..=(tenant, kind, u32::MAX))?
        .next_back()
        .transpose()?;
    Ok(last.map_or(1, |(key, _)| key.value().2 + 1))
}

/// Drops the column tables of a store whose entries lack a column (its tail, blocks,
/// postings and hour pieces, all derived from the log) and marks them unbuilt, for
/// [`build`] to make them again. The value numbers stay: log records name users and
/// routes by theirs.
pub fn forget_all(db: &Database) -> Result<(), StoreError> {
    tracing::info!("the column tables are of an older schema: building them again");
    let txn = db.begin_write()?;
    // By name: the old tail's rows are of another type.
    txn.delete_table(COLUMN_TAIL)?;
    txn.delete_table(COLUMN_BLOCKS)?;
    txn.delete_table(POSTING_SPANS)?;
    txn.delete_table(POSTINGS)?;
    txn.delete_table(SPAN_HOURS)?;
    {
        let mut meta = txn.open_table(META)?;
        meta.remove(META_COLUMNS_BUILT)?;
        meta.remove(META_COLUMNS_TENANT)?;
        meta.remove(META_COLUMNS_SEQ)?;
    }
    txn.commit()?;
    Ok(())
}

/// Builds the column tables of a store written before they existed, in chunks: each
/// transaction folds the next events and records where it stopped, so an interrupted
/// build resumes where it was.
pub fn build(db: &Database) -> Result<(), StoreError> {
    // Read once the build is known to be needed: nothing adds names while it runs.
    let mut loaded: Option<Names> = None;
    loop {
        let txn = db.begin_write()?;
        let done = {
            let mut meta = txn.open_table(META)?;
            if meta.get(META_COLUMNS_BUILT)?.is_some() {
                return Ok(());
            }
            let start = match (
                meta.get(META_COLUMNS_TENANT)?.map(|v| v.value()),
                meta.get(META_COLUMNS_SEQ)?.map(|v| v.value()),
            ) {
                (Some(tenant), Some(seq)) => Some((tenant as u32, seq)),
                _ => None,
            };
            if start.is_none() {
                // Postings are posted from the blocks: none can be older than the first.
                PostingWriter::open(&txn)?.clear()?;
            }
            let names = match loaded.take() {
                Some(names) => names,
                None => super::migrate::names_of(&txn.open_table(NAMES)?)?,
            };
            let folded = fold_log(&txn, start, BUILD_CHUNK, &names)?;
            loaded = Some(names);
            match folded {
                Some((tenant, seq)) => {
                    meta.insert(META_COLUMNS_TENANT, u64::from(tenant))?;
                    meta.insert(META_COLUMNS_SEQ, seq)?;
                    false
                }
                None => {
                    meta.remove(META_COLUMNS_TENANT)?;
                    meta.remove(META_COLUMNS_SEQ)?;
                    meta.insert(META_COLUMNS_BUILT, 1)?;
                    true
                }
            }
        };
        txn.commit()?;
        if done {
            return Ok(());
        }
    }
}

/// A tenant with blocks spanning this many blocks' worth of seqs is ranked on two threads.
const PARALLEL_BLOCKS: u64 = 64;

/// `work` over all seqs: when the seqs in use, `first..=last`, span at least `min_span`,
/// on two threads, each taking half of them, the upper half's result joined to the
/// lower's by `join`; else on this thread alone.
pub(super) fn on_two_threads<T: Send>(
    first: u64,
    last: u64,
    min_span: u64,
    work: impl Fn(std::ops::RangeInclusive<u64>) -> Result<T, StoreError> + Sync,
    join: impl FnOnce(T, T) -> T,
) -> Result<T, StoreError> {
    if last.saturating_sub(first) < min_span {
        return work(0..=u64::MAX);
    }
    let middle = first + (last - first) / 2;
    std::thread::scope(|scope| {
        let upper = scope.spawn(|| work(middle + 1..=u64::MAX));
        let lower = work(0..=middle)?;
        let upper = upper
            .join()
            .map_err(|_| StoreError::Corrupt("a counting thread failed".into()))??;
        Ok(join(lower, upper))
    })
}

/// The seqs of `tenant`'s first and last rows in `table`, keyed (tenant, seq) ((0, 0)
/// when it has none).
pub(super) fn tenant_bounds(
    table: &impl ReadableTable<(u32, u64), &'static [u8]>,
    tenant: u32,
) -> Result<(u64, u64), StoreError> {
    let mut range = table.range((tenant, 0)..=(tenant, u64::MAX))?;
    let first = range.next().transpose()?.map(|(key, _)| key.value().1);
    let last = range.next_back().transpose()?.map(|(key, _)| key.value().1);
    Ok(match (first, last) {
        (Some(first), Some(last)) => (first, last),
        (Some(first), None) => (first, first),
        _ => (0, 0),
    })
}

/// Which hours a count takes: those of `[from, to)`, or all the others.
#[derive(Debug, Clone, Copy)]
pub(super) struct Hours {
    from: u32,
    to: u32,
    inside: bool,
}

impl Hours {
    pub(super) fn inside(from: u32, to: u32) -> Hours {
        Hours {
            from,
            to,
            inside: true,
        }
    }

    pub(super) fn outside(from: u32, to: u32) -> Hours {
        Hours {
            from,
            to,
            inside: false,
        }
    }

    pub(super) fn takes(&self, hour: u32) -> bool {
        (self.from..self.to).contains(&hour) == self.inside
    }

    /// The range's first hour, the hour after its last, and whether the hours taken are
    /// those inside it (else those outside).
    pub(super) fn bounds(&self) -> (u32, u32, bool) {
        (self.from, self.to, self.inside)
    }

    /// Whether it takes no hour at all.
    fn is_empty(&self) -> bool {
        self.inside && self.from >= self.to
    }

    /// Whether a block of hours `[min, max]` may hold an hour this takes.
    fn takes_any(&self, min: u32, max: u32) -> bool {
        if self.inside {
            max >= self.from && min < self.to
        } else {
            min < self.from || max >= self.to
        }
    }
}

impl Snapshot {
    /// Calls `visit` with every sealed block of `tenant` whose first seq is in `firsts`
    /// and that may hold an event of `hours`, in seq order.
    fn for_each_block_in(
        &self,
        tenant: u32,
        firsts: std::ops::RangeInclusive<u64>,
        hours: Hours,
        mut visit: impl FnMut(&BlockView<'_>) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let blocks = self.txn().open_table(COLUMN_BLOCKS)?;
        for block in blocks.range((tenant, *firsts.start())..=(tenant, *firsts.end()))? {
            let (key, bytes) = block?;
            let view = BlockView::parse(key.value().1, bytes.value())?;
            if hours.takes_any(view.min_hour, view.max_hour) {
                visit(&view)?;
            }
        }
        Ok(())
    }

    /// Calls `visit` with every entry of `tenant`'s tail, in seq order.
    fn for_each_tail_entry(
        &self,
        tenant: u32,
        mut visit: impl FnMut(Entry),
    ) -> Result<(), StoreError> {
        let tail = self.txn().open_table(COLUMN_TAIL)?;
        for row in tail.range((tenant, 0)..=(tenant, u64::MAX))? {
            let (key, value) = row?;
            visit(Entry::from_tail(key.value().1, value.value()));
        }
        Ok(())
    }

    /// The events and failures of every value of `column` that `tenant`'s events in hours
    /// `[from_hour, to_hour)` carry (only events with outcome code `outcome`, when given):
    /// from the running totals when they serve the range, else counted from the blocks.
    pub fn column_counts(
        &self,
        tenant: u32,
        column: Column,
        from_hour: u32,
        to_hour: u32,
        outcome: Option<u8>,
    ) -> Result<Tally, StoreError> {
        let failure = Outcome::Failure.code();
        if outcome.is_none_or(|o| o == failure) {
            let failures_only = outcome.is_some();
            let totals =
                self.counts_from_totals(tenant, column, from_hour, to_hour, failures_only)?;
            if let Some(tally) = totals {
                return Ok(tally);
            }
        }
        self.count_column(tenant, column, Hours::inside(from_hour, to_hour), outcome)
    }

    /// The counts of `column` over `tenant`'s events of `hours`, counted from the hour
    /// pieces of the posted spans, the blocks after them and the tail (see
    /// [`Self::column_counts`]).
    pub(super) fn count_column(
        &self,
        tenant: u32,
        column: Column,
        hours: Hours,
        outcome: Option<u8>,
    ) -> Result<Tally, StoreError> {
        let failure = Outcome::Failure.code();
        let unposted = self.posted_end(tenant)?;
        let numbers = self.numbers_of(tenant, column)?;
        // The whole days of a range come from the day tallies of the posted spans, its
        // partial days from their pieces (the blocks after them and the tail, for every
        // hour).
        let (from, to, inside) = hours.bounds();
        let days = match (inside, outcome) {
            (true, None) => whole_days(from, to),
            _ => None,
        };
        let posted_hours = match days {
            Some((first, end)) => {
                vec![Hours::inside(from, first * 24), Hours::inside(end * 24, to)]
            }
            None => vec![hours],
        };
        // The whole days on which the day counters saw events of the tenant.
        let mut event_days = Vec::new();
        if let Some((first, end)) = days {
            let rows = self.counters(tenant, Granularity::Day, Dim::Type, Some(0), first, end)?;
            event_days = rows
                .iter()
                .filter(|row| row.count > 0)
                .map(|row| row.bucket)
                .collect();
            event_days.sort_unstable();
            event_days.dedup();
        }
        let count = |firsts: std::ops::RangeInclusive<u64>| {
            let mut tally = Tally::for_numbers(numbers);
            for &part in &posted_hours {
                if !part.is_empty() {
                    self.count_posted(tenant, firsts.clone(), column, part, outcome, &mut tally)?;
                }
            }
            let blocks = unposted.max(*firsts.start())..=*firsts.end();
            if !blocks.is_empty() {
                self.count_blocks(tenant, blocks, column, hours, outcome, &mut tally)?;
            }
            Ok(tally)
        };
        let mut tally = self.on_halves(tenant, count, |mut lower, upper| {
            lower.merge(upper);
            lower
        })?;
        for &day in &event_days {
            self.add_day(tenant, column, day, unposted, numbers, &mut tally)?;
        }
        self.for_each_tail_entry(tenant, |e| {
            let id = column.of(&e);
            if id != 0 && hours.takes(e.hour) && outcome.is_none_or(|o| o == e.outcome) {
                tally.add(id, e.outcome == failure);
            }
        })?;
        Ok(tally)
    }

    /// Adds to `tally` the counts of `column` over `tenant`'s posted spans (those starting
    /// before `posted_end`) on UTC day `day`: from the day tally kept, when there is one
    /// this snapshot may use, plus the spans posted since; the sum is kept.
    fn add_day(
        &self,
        tenant: u32,
        column: Column,
        day: u32,
        posted_end: u64,
        numbers: u64,
        tally: &mut Tally,
    ) -> Result<(), StoreError> {
        let generation = self
            .txn()
            .open_table(META)?
            .get(META_REBUILDS)?
            .map_or(0, |v| v.value());
        let key = (tenant, column.code(), day);
        let kept = self
            .days()
            .get(key, generation)
            .filter(|kept| kept.covered_end <= posted_end);
        let covered_end = kept.as_ref().map_or(0, |kept| kept.covered_end);
        if let Some(kept) = kept.as_ref().filter(|_| covered_end == posted_end) {
            tally.add_counts(&kept.counts);
            return Ok(());
        }
        // The spans posted since, counted on two threads when there are many.
        let hours = Hours::inside(day * 24, (day + 1) * 24);
        let newer = |firsts: std::ops::RangeInclusive<u64>| {
            let mut counted = Tally::for_numbers(numbers);
            let start = covered_end.max(*firsts.start());
            let last = (*firsts.end()).min(posted_end.saturating_sub(1));
            if start <= last {
                self.count_posted(tenant, start..=last, column, hours, None, &mut counted)?;
            }
            Ok(counted)
        };
        let mut counted = self.on_halves(tenant, newer, |mut lower, upper| {
            lower.merge(upper);
            lower
        })?;
        if let Some(kept) = &kept {
            counted.add_counts(&kept.counts);
        }
        if let Some(counts) = counted.to_counts() {
            let day_tally = DayTally {
                generation,
                covered_end: posted_end,
                counts,
            };
            self.days().put(key, Arc::new(day_tally));
        }
        tally.merge(counted);
        Ok(())
    }

    /// One past the highest number of `column`'s values in `tenant`: how many dense counts
    /// a tally of the column needs.
    fn numbers_of(&self, tenant: u32, column: Column) -> Result<u64, StoreError> {
        let kind = match column {
            Column::User => KIND_USER,
            Column::Ip => KIND_IP,
            Column::Route => KIND_ROUTE,
            Column::Token => {
                let ids = self.txn().open_table(TOKEN_IDS)?;
                let last = ids.range((tenant, 0)..=(tenant, u64::MAX))?.next_back();
                let last = last.transpose()?.map(|(key, _)| key.value().1);
                return Ok(last.map_or(0, |last| last.saturating_add(1)));
            }
        };
        let names = self.txn().open_table(VALUE_NAMES)?;
        Ok(u64::from(next_value_number(&names, tenant, kind)?))
    }

    /// `work` over all of `tenant`'s blocks, given as a range of their first seqs: for a
    /// tenant of many blocks, on two threads, each taking half of the seqs, the upper
    /// half's result joined to the lower's by `join`.
    fn on_halves<T: Send>(
        &self,
        tenant: u32,
        work: impl Fn(std::ops::RangeInclusive<u64>) -> Result<T, StoreError> + Sync,
        join: impl FnOnce(T, T) -> T,
    ) -> Result<T, StoreError> {
        let (first, last) = self.block_bounds(tenant)?;
        on_two_threads(first, last, PARALLEL_BLOCKS * BLOCK as u64, work, join)
    }

    /// The first seqs of `tenant`'s first and last blocks ((0, 0) when it has none).
    fn block_bounds(&self, tenant: u32) -> Result<(u64, u64), StoreError> {
        tenant_bounds(&self.txn().open_table(COLUMN_BLOCKS)?, tenant)
    }

    /// Counts `column` over the blocks whose first seq is in `firsts` into `tally` (see
    /// [`Self::column_counts`]).
    fn count_blocks(
        &self,
        tenant: u32,
        firsts: std::ops::RangeInclusive<u64>,
        column: Column,
        hours: Hours,
        outcome: Option<u8>,
        tally: &mut Tally,
    ) -> Result<(), StoreError> {
        let position = column.position();
        let failure = u64::from(Outcome::Failure.code());
        let (mut hour_outcomes, mut values, mut wanted) = (Vec::new(), Vec::new(), Vec::new());
        self.for_each_block_in(tenant, firsts, hours, |view| {
            view.columns[HOUR_OUTCOME].decode_into(view.len, &mut hour_outcomes);
            view.columns[position].decode_into(view.len, &mut values);
            // Hour offsets within the block that are in `[from, to)`.
            let first = u64::from(hours.from.saturating_sub(view.min_hour)) << OUTCOME_BITS;
            let end = (u64::from(hours.to - view.min_hour.min(hours.to))) << OUTCOME_BITS;
            wanted.clear();
            wanted.extend(
                hour_outcomes
                    .iter()
                    .zip(&values)
                    .filter_map(|(&hour_outcome, &id)| {
                        let code = hour_outcome & 0b111;
                        let keep = id != 0
                            && (first..end).contains(&hour_outcome) == hours.inside
                            && outcome.is_none_or(|o| u64::from(o) == code);
                        keep.then_some((id, code == failure))
                    }),
            );
            tally.add_all(&wanted);
            Ok(())
        })
    }

    /// The user id, IP address (as text) or route numbered `id` of `kind` in `tenant`.
    pub fn value_named(&self, tenant: u32, kind: u8, id: u32) -> Result<String, StoreError> {
        let values = self.txn().open_table(VALUE_NAMES)?;
        match kind {
            KIND_USER | KIND_ROUTE => return text_named(&values, tenant, kind, id),
            _ => {}
        }
        let bytes = values
            .get((tenant, kind, id))?
            .ok_or_else(|| StoreError::Corrupt(format!("value number {id} is unknown")))?;
        let bytes = bytes.value();
        let ip = match bytes.len() {
            4 => <[u8; 4]>::try_from(bytes).map(IpAddr::from).ok(),
            16 => <[u8; 16]>::try_from(bytes).map(IpAddr::from).ok(),
            _ => None,
        };
        ip.map(|ip| ip.to_string())
            .ok_or_else(|| StoreError::Corrupt(format!("IP number {id} is malformed")))
    }

    /// The (hour, seq) of each of `tenant`'s events in hours `[from_hour, to_hour)` whose
    /// `column` holds number `id`, in seq order: from the postings, then the blocks not
    /// yet posted and the tail.
    pub fn seqs_with(
        &self,
        tenant: u32,
        column: Column,
        id: u64,
        from_hour: u32,
        to_hour: u32,
    ) -> Result<Vec<(u32, u64)>, StoreError> {
        let position = column.position();
        let hours = from_hour..to_hour;
        let (mut found, unposted) = self.posted_seqs_with(tenant, column, id, &hours)?;
        let mut values = Vec::new();
        let unposted = unposted..=u64::MAX;
        self.for_each_block_in(
            tenant,
            unposted,
            Hours::inside(from_hour, to_hour),
            |view| {
                if !view.columns[position].contains(id) {
                    return Ok(());
                }
                view.columns[position].decode_into(view.len, &mut values);
                let places = view.seqs_and_hours()?;
                found.extend(
                    values
                        .iter()
                        .zip(places)
                        .filter(|(&value, (_, hour))| value == id && hours.contains(hour))
                        .map(|(_, (seq, hour))| (hour, seq)),
                );
                Ok(())
            },
        )?;
        self.for_each_tail_entry(tenant, |e| {
            if column.of(&e) == id && hours.contains(&e.hour) {
                found.push((e.hour, e.seq));
            }
        })?;
        Ok(found)
    }

    /// The number `tenant` gave to user id, IP or route `value`, if it has one.
    pub fn value_number(
        &self,
        tenant: u32,
        value: ValueRef<'_>,
    ) -> Result<Option<u32>, StoreError> {
        value_number_in(&self.txn().open_table(VALUE_IDS)?, tenant, value)
    }

    /// Every stored entry, per tenant in seq order, and how many blocks are not full.
    pub(super) fn stored_entries(&self) -> Result<(Vec<(u32, Entry)>, u64), StoreError> {
        let mut entries = Vec::new();
        let mut short_blocks = 0;
        let blocks = self.txn().open_table(COLUMN_BLOCKS)?;
        let tail = self.txn().open_table(COLUMN_TAIL)?;
        let mut tails = tail.iter()?.peekable();
        for block in blocks.iter()? {
            let (key, bytes) = block?;
            let (tenant, first) = key.value();
            // Tail rows of earlier tenants come first.
            while let Some(row) =
                tails.next_if(|row| row.as_ref().map_or(true, |(key, _)| key.value().0 < tenant))
            {
                let (key, value) = row?;
                let (t, seq) = key.value();
                entries.push((t, Entry::from_tail(seq, value.value())));
            }
            let view = BlockView::parse(first, bytes.value())?;
            short_blocks += u64::from(view.len != BLOCK);
            entries.extend(view.entries()?.into_iter().map(|e| (tenant, e)));
        }
        for row in tails {
            let (key, value) = row?;
            let (t, seq) = key.value();
            entries.push((t, Entry::from_tail(seq, value.value())));
        }
        Ok((entries, short_blocks))
    }

    /// The entry each logged event should have, given the stored IP and route numbers
    /// (`None` where its IP or route has no number).
    pub(super) fn expected_entry(
        &self,
        ids: &impl ReadableTable<(u32, u8, &'static [u8]), u32>,
        tenant: u32,
        seq: u64,
        fields: Fields<'_>,
    ) -> Result<Option<Entry>, StoreError> {
        let number = |value: Option<ValueRef<'_>>| match value {
            None => Ok(Some(0)),
            Some(value) => value_number_in(ids, tenant, value),
        };
        let ip = number(fields.ip.map(ValueRef::Ip))?;
        let route = match fields.route {
            Some(RouteOf::Number(number)) => Some(number),
            Some(RouteOf::Text(route)) => number(Some(ValueRef::Route(route)))?,
            None => Some(0),
        };
        Ok(ip
            .zip(route)
            .map(|(ip, route)| Entry::new(seq, fields, ip, route)))
    }
}

/// The number `tenant` gave to `value` in `ids`, if it has one.
fn value_number_in(
    ids: &impl ReadableTable<(u32, u8, &'static [u8]), u32>,
    tenant: u32,
    value: ValueRef<'_>,
) -> Result<Option<u32>, StoreError> {
    let (kind, bytes) = value.key();
    Ok(ids.get((tenant, kind, &*bytes))?.map(|id| id.value()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(seq: u64, hour: u32, user: u32, token: u64) -> Entry {
        Entry {
            seq,
            hour,
            outcome: (seq % 5) as u8,
            user,
            ip: (seq % 3) as u32,
            token,
            route: (seq % 4) as u32,
        }
    }

    #[test]
    fn blocks_round_trip_whatever_the_widths() {
        let cases: Vec<Vec<Entry>> = vec![
            vec![entry(7, 100, 0, 0)],
            (0..BLOCK as u64)
                .map(|i| entry(10 + i, 500, 3, 9))
                .collect(),
            (0..BLOCK as u64)
                .map(|i| {
                    entry(
                        1 + i * 7919,
                        400_000 + (i % 700) as u32,
                        i as u32 * 60,
                        i << 40,
                    )
                })
                .collect(),
            vec![
                entry(1, 0, u32::MAX, u64::MAX),
                entry(u64::MAX, u32::MAX >> 4, 0, 0),
            ],
        ];
        for entries in cases {
            let bytes = encode_block(&entries);
            let view = BlockView::parse(entries[0].seq, &bytes).expect("parses");
            assert_eq!(view.entries().expect("decodes"), entries);
            for column in Column::ALL {
                let bytes = view.columns[column.position()];
                let values: Vec<u64> = entries.iter().map(|e| column.of(e)).collect();
                assert!(values.iter().all(|v| bytes.contains(*v)));
                for absent in [0, 1, 2, 1 << 20, u64::MAX - 1, u64::MAX] {
                    assert_eq!(bytes.contains(absent), values.contains(&absent), "{absent}");
                }
            }
        }
    }

    #[test]
    fn constant_columns_take_no_bytes_per_entry() {
        let entries: Vec<Entry> = (0..BLOCK as u64)
            .map(|i| Entry {
                seq: 50 + i,
                hour: 9,
                outcome: 0,
                user: 4,
                ip: 4,
                token: 0,
                route: 7,
            })
            .collect();
        // The header (format, length, hours), then each column's width and base.
        assert_eq!(encode_block(&entries).len(), 13 + COLUMNS * 9);
    }

    #[test]
    fn damaged_blocks_are_corruption_not_panics() {
        let bytes = encode_block(&[entry(3, 10, 1, 2), entry(4, 11, 2, 3)]);
        for cut in 0..bytes.len() {
            assert!(BlockView::parse(3, &bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(BlockView::parse(3, &longer).is_err());
        let mut wide = bytes;
        wide[13] = 9;
        assert!(BlockView::parse(3, &wide).is_err());
    }
}
