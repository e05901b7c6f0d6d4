//! Time pieces: the time index of posted spans, packed.
//!
//! [`TIMES`] holds one 16-byte key per event (and its head, see [`TimeHead`]). Events
//! stored out of time order (a
//! backfill, the benchmark's fill) land at random places in it, which leaves its leaves
//! about 69 % full and makes each group commit copy a leaf per event. So [`TIMES`] keeps
//! only the newest events: when a span is posted (see `postings`), its events leave
//! [`TIMES`], in the same transaction, for [`SPAN_TIMES`]: sorted by (ts, seq) and cut
//! into pieces of at most [`PIECE_BYTES`], each a row `(tenant, span's first seq, first
//! ts, first seq) → piece`, holding its entries' time gaps and seq offsets bit-packed
//! (about 4 bytes per event where [`TIMES`] took 23 of pages), and the type, outcome and
//! client of each (see [`Head`]), so that a listing filtered by them fetches from the log
//! only the events that match.
//!
//! Every logged event is in exactly one of the two: a span is packed whole, in one
//! transaction. Readers take the union ([`TimeReader::for_each`]); a posted span not
//! packed yet (a store written before pieces existed) keeps its events in [`TIMES`] until
//! [`catch_up`] packs it at open.

use std::collections::BinaryHeap;

use redb::{ReadableTable, ReadableTableMetadata, Table, WriteTransaction};

use super::bitpack::{BitReader, BitWriter};
use super::columns::BLOCK;
use super::postings::SPAN_BLOCKS;
use super::read::Snapshot;
use super::records::RecordHead;
use super::tables::*;
use super::StoreError;

/// The most entries a piece holds.
#[cfg(not(test))]
const PIECE_ENTRIES: usize = 1_024;
/// The most bytes a piece takes, unless it holds one entry: three pieces and their keys
/// fill a 4 KiB leaf of redb (pieces cut by count alone, of sizes that vary with their
/// columns' widths, left the leaves about 80 % full). About 200 entries at 10 M events.
#[cfg(not(test))]
const PIECE_BYTES: usize = 1_320;
/// Small pieces, so that tests cut spans into many, by both limits.
#[cfg(test)]
const PIECE_ENTRIES: usize = 8;
#[cfg(test)]
const PIECE_BYTES: usize = 64;

/// Format byte of an encoded piece. Format 1 (schema 8) held no [`Head`]s: a span whose
/// pieces are of it is packed again at open ([`pack_posted`]).
const PIECE_FORMAT: u8 = 2;

/// Spans packed per transaction when a store is brought up to date at open.
const CATCH_UP_SPANS: usize = 16;

fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt(format!("time piece: {what}"))
}

/// What a listing checks on an event before fetching it: its type, outcome and client
/// (interned name ids), as its record's head holds them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Head {
    pub type_id: u32,
    pub outcome: u8,
    pub client: Option<u32>,
}

impl Head {
    fn of(record: &RecordHead) -> Head {
        Head {
            type_id: record.type_id,
            outcome: record.outcome,
            client: record.client,
        }
    }

    /// The head a [`TIMES`] entry holds.
    fn of_time((type_id, outcome, client): TimeHead) -> Result<Head, StoreError> {
        let client = match client {
            0 => None,
            c => Some(u32::try_from(c - 1).map_err(|_| corrupt("client"))?),
        };
        Ok(Head {
            type_id,
            outcome,
            client,
        })
    }
}

/// An event's place in the time index: (ts, seq).
pub(super) type Place = (u64, u64);

/// One event of a span's time index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    ts: u64,
    seq: u64,
    head: Head,
}

/// The entries of `tenant`'s events with seqs in `[first, end)`, from the log, sorted
/// by (ts, seq).
fn span_times(
    log: &impl ReadableTable<(u32, u64), &'static [u8]>,
    tenant: u32,
    first: u64,
    end: u64,
) -> Result<Vec<Entry>, StoreError> {
    let mut times = Vec::with_capacity(SPAN_BLOCKS * BLOCK);
    for row in log.range((tenant, first)..(tenant, end))? {
        let (key, bytes) = row?;
        let head = RecordHead::decode(bytes.value())?;
        times.push(Entry {
            ts: head.ts,
            seq: key.value().1,
            head: Head::of(&head),
        });
    }
    times.sort_unstable_by_key(|e| (e.ts, e.seq));
    Ok(times)
}

/// The pieces of a span starting at seq `first`, from its entries sorted: ((first ts,
/// first seq), piece), in key order. Each holds as many entries as fit in
/// [`PIECE_BYTES`], at most [`PIECE_ENTRIES`].
fn pieces_of(first: u64, entries: &[Entry]) -> Vec<((u64, u64), Vec<u8>)> {
    let mut pieces = Vec::new();
    let mut rest = entries;
    let mut previous = PIECE_ENTRIES;
    while !rest.is_empty() {
        // A span's pieces hold about as many entries each: the search starts at twice as
        // many as the previous one took.
        let mut len = rest
            .len()
            .min(PIECE_ENTRIES)
            .min(previous.saturating_mul(2).max(16));
        let mut bytes = encode_piece(first, &rest[..len]);
        if bytes.len() > PIECE_BYTES && len > 1 {
            // The most entries that fit, between one (always taken) and `len` (too many),
            // by bisection: fewer entries never take more bytes.
            let (mut fits, mut over, mut fitted) = (1, len, None);
            while over - fits > 1 {
                let middle = fits + (over - fits) / 2;
                let tried = encode_piece(first, &rest[..middle]);
                if tried.len() <= PIECE_BYTES {
                    (fits, fitted) = (middle, Some(tried));
                } else {
                    over = middle;
                }
            }
            len = fits;
            bytes = fitted.unwrap_or_else(|| encode_piece(first, &rest[..1]));
        }
        previous = len;
        pieces.push(((rest[0].ts, rest[0].seq), bytes));
        rest = &rest[len..];
    }
    pieces
}

/// Encodes entries, sorted, at least one, of a span starting at seq `first`: the first
/// ts, then the columns of time gaps and seq offsets; the (type id, outcome) pairs the
/// piece holds (how many, then a column of each, sorted) and each entry's place among
/// them (a few bits where the pair took nine or more); the clients (0 for none, else the
/// id plus one).
fn encode_piece(first: u64, entries: &[Entry]) -> Vec<u8> {
    let mut out = BitWriter::framed(PIECE_FORMAT, entries.len());
    out.number(entries[0].ts);
    let gaps = entries
        .iter()
        .scan(entries[0].ts, |previous, e| {
            let gap = e.ts - *previous;
            *previous = e.ts;
            Some(gap)
        })
        .collect::<Vec<_>>();
    out.column(gaps.into_iter());
    out.column(entries.iter().map(|e| e.seq - first));
    let mut kinds: Vec<(u32, u8)> = entries
        .iter()
        .map(|e| (e.head.type_id, e.head.outcome))
        .collect();
    kinds.sort_unstable();
    kinds.dedup();
    out.number(kinds.len() as u64);
    out.column(kinds.iter().map(|&(type_id, _)| u64::from(type_id)));
    out.column(kinds.iter().map(|&(_, outcome)| u64::from(outcome)));
    out.column(entries.iter().map(|e| {
        let kind = (e.head.type_id, e.head.outcome);
        kinds.binary_search(&kind).unwrap_or(0) as u64 // every entry's kind is in `kinds`
    }));
    out.column(
        entries
            .iter()
            .map(|e| e.head.client.map_or(0, |c| u64::from(c) + 1)),
    );
    out.into_bytes()
}

/// The columns of a piece being decoded, reused from piece to piece.
#[derive(Default)]
struct Scratch {
    gaps: Vec<u64>,
    seqs: Vec<u64>,
    types: Vec<u64>,
    outcomes: Vec<u64>,
    kinds: Vec<u64>,
    clients: Vec<u64>,
}

/// Calls `visit` with each entry of piece `bytes` (of a span starting at seq `first`), in
/// order.
fn decode_piece(
    first: u64,
    bytes: &[u8],
    s: &mut Scratch,
    mut visit: impl FnMut(Entry) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    let (mut piece, len) = BitReader::framed(bytes, PIECE_FORMAT, SPAN_BLOCKS * BLOCK, corrupt)?;
    let mut ts = piece.number()?;
    piece.column(len, &mut s.gaps)?;
    piece.column(len, &mut s.seqs)?;
    let kinds = usize::try_from(piece.number()?)
        .ok()
        .filter(|&kinds| kinds <= len)
        .ok_or_else(|| corrupt("kinds"))?;
    piece.column(kinds, &mut s.types)?;
    piece.column(kinds, &mut s.outcomes)?;
    piece.column(len, &mut s.kinds)?;
    piece.column(len, &mut s.clients)?;
    piece.finish()?;
    let columns = s.gaps.iter().zip(&s.seqs).zip(&s.kinds);
    for (((&gap, &offset), &kind), &client) in columns.zip(&s.clients) {
        ts = ts.checked_add(gap).ok_or_else(|| corrupt("time"))?;
        let kind = usize::try_from(kind).map_err(|_| corrupt("kind"))?;
        let (Some(&type_id), Some(&outcome)) = (s.types.get(kind), s.outcomes.get(kind)) else {
            return Err(corrupt("kind"));
        };
        let head = Head {
            type_id: u32::try_from(type_id).map_err(|_| corrupt("type"))?,
            outcome: u8::try_from(outcome).map_err(|_| corrupt("outcome"))?,
            client: match client {
                0 => None,
                c => Some(u32::try_from(c - 1).map_err(|_| corrupt("client"))?),
            },
        };
        let seq = first.checked_add(offset).ok_or_else(|| corrupt("seq"))?;
        visit(Entry { ts, seq, head })?;
    }
    Ok(())
}

/// Moves the time index entries of `tenant`'s span `[first, end)` from [`TIMES`] into
/// its pieces. The span must not be packed yet.
pub(super) fn pack_span(
    log: &impl ReadableTable<(u32, u64), &'static [u8]>,
    times: &mut Table<'_, u128, TimeHead>,
    pieces: &mut Table<'_, SpanTimeKey, &'static [u8]>,
    tenant: u32,
    first: u64,
    end: u64,
) -> Result<(), StoreError> {
    let entries = span_times(log, tenant, first, end)?;
    for e in &entries {
        times.remove(time_key(tenant, e.ts, e.seq))?;
    }
    insert_pieces(pieces, tenant, first, &entries)
}

fn insert_pieces(
    pieces: &mut Table<'_, SpanTimeKey, &'static [u8]>,
    tenant: u32,
    first: u64,
    entries: &[Entry],
) -> Result<(), StoreError> {
    for ((ts, seq), piece) in pieces_of(first, entries) {
        pieces.insert((tenant, first, ts, seq), piece.as_slice())?;
    }
    Ok(())
}

/// The keys of `tenant`'s span starting at `first` in [`SPAN_TIMES`].
fn span_keys(tenant: u32, first: u64) -> std::ops::RangeInclusive<SpanTimeKey> {
    (tenant, first, 0, 0)..=(tenant, first, u64::MAX, u64::MAX)
}

/// The format of the pieces of `tenant`'s span starting at `first` (that of its first
/// piece), none when it has none.
fn packed_format(
    pieces: &impl ReadableTable<SpanTimeKey, &'static [u8]>,
    tenant: u32,
    first: u64,
) -> Result<Option<u8>, StoreError> {
    match pieces.range(span_keys(tenant, first))?.next() {
        Some(piece) => Ok(Some(piece?.1.value().first().copied().unwrap_or(0))),
        None => Ok(None),
    }
}

/// Packs at most `limit` posted spans that have no pieces yet, or pieces of an older
/// format (packed again from the log: their events are not in [`TIMES`]); returns how
/// many it packed.
pub(super) fn pack_posted(txn: &WriteTransaction, limit: usize) -> Result<usize, StoreError> {
    let spans = txn.open_table(POSTING_SPANS)?;
    let log = txn.open_table(LOG)?;
    let mut times = txn.open_table(TIMES)?;
    let mut pieces = txn.open_table(SPAN_TIMES)?;
    let mut packed = 0;
    for span in spans.iter()? {
        if packed == limit {
            break;
        }
        let (key, value) = span?;
        let ((tenant, first), (end, _)) = (key.value(), value.value());
        match packed_format(&pieces, tenant, first)? {
            Some(PIECE_FORMAT) => continue,
            Some(_) => {
                let entries = span_times(&log, tenant, first, end)?;
                pieces.retain_in(span_keys(tenant, first), |_, _| false)?;
                insert_pieces(&mut pieces, tenant, first, &entries)?;
            }
            None => pack_span(&log, &mut times, &mut pieces, tenant, first, end)?,
        }
        packed += 1;
    }
    Ok(packed)
}

/// Entries moved from [`LEGACY_TIMES`] to [`TIMES`] per transaction.
const HEADS_CHUNK: usize = 50_000;

/// Moves the time index of a store written before [`TIMES`] held heads (schemas 4 to
/// 9) into it, each entry with its record's head, [`HEADS_CHUNK`] entries per
/// transaction: an interrupted move resumes with the entries left.
pub fn add_heads(db: &redb::Database) -> Result<(), StoreError> {
    loop {
        let txn = db.begin_write()?;
        let done = match txn.open_table(LEGACY_TIMES) {
            Ok(mut legacy) => {
                let keys = legacy
                    .iter()?
                    .take(HEADS_CHUNK)
                    .map(|key| Ok(key?.0.value()))
                    .collect::<Result<Vec<u128>, StoreError>>()?;
                let log = txn.open_table(LOG)?;
                let mut times = txn.open_table(TIMES)?;
                for &key in &keys {
                    let (tenant, ts, seq) = time_key_parts(key);
                    // An entry of no logged event has nothing to list: it goes.
                    if let Some(bytes) = log.get((tenant, seq))? {
                        let head = RecordHead::decode(bytes.value())?;
                        let head = time_head(head.type_id, head.outcome, head.client);
                        times.insert(time_key(tenant, ts, seq), head)?;
                    }
                }
                if let Some(&last) = keys.last() {
                    legacy.retain_in(..=last, |_, _| false)?;
                }
                keys.len() < HEADS_CHUNK
            }
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        if done {
            txn.delete_table(LEGACY_TIMES)?;
        }
        txn.commit()?;
        tracing::info!("time index: entries given their heads");
        if done {
            return Ok(());
        }
    }
}

/// Packs every posted span that has no pieces or pieces of an older format,
/// [`CATCH_UP_SPANS`] per transaction: for a store written before pieces existed (schema
/// 7) or before they held heads (schema 8), or one whose spans were posted at open.
pub fn catch_up(db: &redb::Database) -> Result<(), StoreError> {
    loop {
        let txn = db.begin_write()?;
        let packed = pack_posted(&txn, CATCH_UP_SPANS)?;
        txn.commit()?;
        if packed == 0 {
            return Ok(());
        }
        tracing::info!(spans = packed, "time index: packed posted spans");
    }
}

/// One tenant's time index in a read transaction: its packed spans' pieces and
/// [`TIMES`].
pub(super) struct TimeReader {
    tenant: u32,
    /// The first seq of each posted span (packed or not).
    spans: Vec<u64>,
    pieces: redb::ReadOnlyTable<SpanTimeKey, &'static [u8]>,
    times: redb::ReadOnlyTable<u128, TimeHead>,
}

impl TimeReader {
    /// Calls `visit` with the ts, seq and head of every event of the tenant whose ts is in
    /// `[from, to)`, from the pieces (span by span, each in time order) and then [`TIMES`]
    /// (in time order): in no overall order.
    pub(super) fn for_each(
        &self,
        from: u64,
        to: u64,
        mut visit: impl FnMut(u64, u64, Head) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        if from >= to {
            return Ok(());
        }
        let tenant = self.tenant;
        let mut scratch = Scratch::default();
        let mut in_range = |ts: u64, seq: u64, head: Head| {
            if (from..to).contains(&ts) {
                visit(ts, seq, head)?;
            }
            Ok(())
        };
        for &first in &self.spans {
            // The pieces starting before `to`, newest first, down to the first one that
            // starts before `from` (the ones before it end before `from`).
            let starting_before_to = (tenant, first, 0, 0)..(tenant, first, to, 0);
            for piece in self.pieces.range(starting_before_to)?.rev() {
                let (key, bytes) = piece?;
                decode_piece(first, bytes.value(), &mut scratch, |e| {
                    in_range(e.ts, e.seq, e.head)
                })?;
                if key.value().2 < from {
                    break;
                }
            }
        }
        let keys = time_key(tenant, from, 0)..time_key(tenant, to, 0);
        for entry in self.times.range(keys)? {
            let (key, head) = entry?;
            let (_, ts, seq) = time_key_parts(key.value());
            in_range(ts, seq, Head::of_time(head.value())?)?;
        }
        Ok(())
    }
}

impl TimeReader {
    /// The tenant's (ts, seq) with ts at least `from` and strictly before `below`, newest
    /// first, each with its [`Head`]: each
    /// packed span's pieces and [`TIMES`] walked backwards and merged, so that a listing
    /// decodes about one piece per span before its first event.
    pub(super) fn newest_first(
        &self,
        from: u64,
        below: (u64, u64),
    ) -> Result<NewestFirst, StoreError> {
        let tenant = self.tenant;
        // No range ends before it starts.
        let below = below.max((from, 0));
        let mut walks = Vec::with_capacity(self.spans.len());
        for &first in &self.spans {
            let pieces = (tenant, first, 0, 0)..(tenant, first, below.0, below.1);
            walks.push(SpanWalk {
                first,
                pieces: self.pieces.range(pieces)?,
                decoded: Vec::new(),
                done: false,
            });
        }
        let keys = time_key(tenant, from, 0)..time_key(tenant, below.0, below.1);
        let mut merged = NewestFirst {
            from,
            below,
            walks,
            times: self.times.range(keys)?,
            heads: BinaryHeap::new(),
            scratch: Scratch::default(),
        };
        for source in 0..=merged.walks.len() {
            merged.advance(source)?;
        }
        Ok(merged)
    }
}

/// A newest-first walk over one tenant's time index (see [`TimeReader::newest_first`]).
pub(super) struct NewestFirst {
    from: u64,
    below: (u64, u64),
    walks: Vec<SpanWalk>,
    times: redb::Range<'static, u128, TimeHead>,
    /// The newest entry not yet taken of each source that has one: ((ts, seq), source,
    /// head), the source `walks.len()` being [`TIMES`].
    heads: BinaryHeap<(Place, usize, Head)>,
    scratch: Scratch,
}

/// One packed span's pieces, walked backwards.
struct SpanWalk {
    first: u64,
    pieces: redb::Range<'static, SpanTimeKey, &'static [u8]>,
    /// The entries of the pieces decoded and not taken yet, oldest first.
    decoded: Vec<Entry>,
    /// Set once a piece starting before `from` has been decoded.
    done: bool,
}

impl NewestFirst {
    /// The next (ts, seq), newest first, with its head.
    pub(super) fn next(&mut self) -> Result<Option<(Place, Head)>, StoreError> {
        let Some((entry, source, head)) = self.heads.pop() else {
            return Ok(None);
        };
        self.advance(source)?;
        Ok(Some((entry, head)))
    }

    /// Puts the next entry of `source` in the heads, if it has one.
    fn advance(&mut self, source: usize) -> Result<(), StoreError> {
        let Some(walk) = self.walks.get_mut(source) else {
            if let Some(entry) = self.times.next_back() {
                let (key, head) = entry?;
                let (_, ts, seq) = time_key_parts(key.value());
                self.heads
                    .push(((ts, seq), source, Head::of_time(head.value())?));
            }
            return Ok(());
        };
        loop {
            if let Some(entry) = walk.decoded.pop() {
                if entry.ts < self.from {
                    walk.decoded.clear();
                    walk.done = true;
                    return Ok(());
                }
                if (entry.ts, entry.seq) < self.below {
                    self.heads.push(((entry.ts, entry.seq), source, entry.head));
                    return Ok(());
                }
                continue;
            }
            if walk.done {
                return Ok(());
            }
            let Some(piece) = walk.pieces.next_back() else {
                walk.done = true;
                return Ok(());
            };
            let (key, bytes) = piece?;
            // The pieces before one that starts before `from` end before `from`.
            walk.done = key.value().2 < self.from;
            let decoded = &mut walk.decoded;
            decode_piece(walk.first, bytes.value(), &mut self.scratch, |e| {
                decoded.push(e);
                Ok(())
            })?;
        }
    }
}

impl Snapshot {
    /// `tenant`'s time index.
    pub(super) fn time_reader(&self, tenant: u32) -> Result<TimeReader, StoreError> {
        let posted = self.txn().open_table(POSTING_SPANS)?;
        let spans = posted
            .range((tenant, 0)..=(tenant, u64::MAX))?
            .map(|span| Ok(span?.0.value().1))
            .collect::<Result<_, StoreError>>()?;
        Ok(TimeReader {
            tenant,
            spans,
            pieces: self.txn().open_table(SPAN_TIMES)?,
            times: self.txn().open_table(TIMES)?,
        })
    }

    /// Time pieces that differ from what the log gives for their span, and pieces of no
    /// posted span. `packed` gets each packed span as (tenant, first seq, end seq), in
    /// order.
    pub(super) fn time_piece_mismatches(
        &self,
        packed: &mut Vec<(u32, u64, u64)>,
    ) -> Result<u64, StoreError> {
        let spans = self.txn().open_table(POSTING_SPANS)?;
        let pieces = self.txn().open_table(SPAN_TIMES)?;
        let log = self.txn().open_table(LOG)?;
        let mut mismatches = 0;
        let mut checked = 0;
        for span in spans.iter()? {
            let (key, value) = span?;
            let ((tenant, first), (end, _)) = (key.value(), value.value());
            if packed_format(&pieces, tenant, first)?.is_none() {
                continue;
            }
            packed.push((tenant, first, end));
            let entries = span_times(&log, tenant, first, end)?;
            for ((ts, seq), piece) in pieces_of(first, &entries) {
                let stored = pieces.get((tenant, first, ts, seq))?;
                if stored.is_some() {
                    checked += 1;
                }
                if stored.is_none_or(|stored| stored.value() != piece.as_slice()) {
                    mismatches += 1;
                }
            }
        }
        Ok(mismatches + pieces.len()?.abs_diff(checked))
    }
}

/// Rewrites every time piece as format 1 (schema 8) wrote it: time gaps and seq offsets,
/// no heads.
#[cfg(test)]
pub(super) fn headless_pieces(txn: &WriteTransaction) {
    let mut pieces = txn.open_table(SPAN_TIMES).expect("pieces");
    let mut old = Vec::new();
    let mut scratch = Scratch::default();
    for piece in pieces.iter().expect("pieces") {
        let (key, bytes) = piece.expect("piece");
        let key = key.value();
        let mut entries = Vec::new();
        decode_piece(key.1, bytes.value(), &mut scratch, |e| {
            entries.push(e);
            Ok(())
        })
        .expect("decodes");
        let mut out = BitWriter::framed(1, entries.len());
        out.number(entries[0].ts);
        let mut previous = entries[0].ts;
        let gaps: Vec<u64> = entries
            .iter()
            .map(|e| e.ts - std::mem::replace(&mut previous, e.ts))
            .collect();
        out.column(gaps.into_iter());
        out.column(entries.iter().map(|e| e.seq - key.1));
        old.push((key, out.into_bytes()));
    }
    for (key, bytes) in old {
        pieces.insert(key, bytes.as_slice()).expect("rewrites");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(ts: u64, seq: u64, i: u64) -> Entry {
        Entry {
            ts,
            seq,
            head: Head {
                type_id: 3 + (i % 5) as u32,
                outcome: (i % 3) as u8,
                client: (i % 4 != 0).then_some(1_000 + (i % 7) as u32),
            },
        }
    }

    fn decode_all(first: u64, pieces: &[((u64, u64), Vec<u8>)]) -> Vec<Entry> {
        let mut decoded = Vec::new();
        let mut scratch = Scratch::default();
        for ((ts, seq), bytes) in pieces {
            let before = decoded.len();
            decode_piece(first, bytes, &mut scratch, |e| {
                decoded.push(e);
                Ok(())
            })
            .expect("decodes");
            let head = &decoded[before];
            assert_eq!(
                (head.ts, head.seq),
                (*ts, *seq),
                "a piece's key is its first entry"
            );
        }
        decoded
    }

    #[test]
    fn pieces_hold_their_entries_in_order() {
        let first = 1_000;
        let mut entries: Vec<Entry> = (0..100u64)
            .map(|i| {
                entry(
                    1_764_633_600_000 + (i * 7919 % 37) * 1_000,
                    first + i * 3,
                    i,
                )
            })
            .collect();
        entries.sort_unstable_by_key(|e| (e.ts, e.seq));
        let pieces = pieces_of(first, &entries);
        assert!(pieces.len() >= 100usize.div_ceil(PIECE_ENTRIES));
        let mut sizes = Vec::new();
        for (_, bytes) in &pieces {
            let mut count = 0;
            decode_piece(first, bytes, &mut Scratch::default(), |_| {
                count += 1;
                Ok(())
            })
            .expect("decodes");
            assert!(count <= PIECE_ENTRIES);
            assert!(
                bytes.len() <= PIECE_BYTES || count == 1,
                "{} bytes",
                bytes.len()
            );
            sizes.push(count);
        }
        assert!(
            sizes.iter().any(|&n| n < PIECE_ENTRIES) && sizes.contains(&PIECE_ENTRIES),
            "cut by both limits: {sizes:?}"
        );
        assert_eq!(decode_all(first, &pieces), entries);
        // The extremes of each head field come back too.
        let extremes = [
            Entry {
                ts: 5,
                seq: first,
                head: Head {
                    type_id: 0,
                    outcome: 0,
                    client: Some(0),
                },
            },
            Entry {
                ts: 6,
                seq: first + 1,
                head: Head {
                    type_id: u32::MAX,
                    outcome: u8::MAX,
                    client: Some(u32::MAX),
                },
            },
            Entry {
                ts: 6,
                seq: first + 2,
                head: Head {
                    type_id: 1,
                    outcome: 2,
                    client: None,
                },
            },
        ];
        assert_eq!(decode_all(first, &pieces_of(first, &extremes)), extremes);
    }

    #[test]
    fn damaged_pieces_are_corruption_not_panics() {
        let entries: Vec<Entry> = (0..8u64).map(|i| entry(i * 1_000, 10 + i, i)).collect();
        let bytes = encode_piece(10, &entries);
        let mut scratch = Scratch::default();
        let mut seen = 0;
        for cut in 0..bytes.len() {
            let result = decode_piece(10, &bytes[..cut], &mut scratch, |_| {
                seen += 1;
                Ok(())
            });
            assert!(
                matches!(result, Err(StoreError::Corrupt(_))),
                "cut at {cut}"
            );
        }
        assert_eq!(seen, 0, "nothing is visited from a damaged piece");
        let mut wrong_format = bytes.clone();
        wrong_format[0] ^= 0xff;
        assert!(decode_piece(10, &wrong_format, &mut scratch, |_| Ok(())).is_err());
        // A seq offset that overflows is refused.
        assert!(decode_piece(u64::MAX, &bytes, &mut scratch, |_| Ok(())).is_err());
        // A head field past its type is refused.
        // One entry: its gap and seq offset, then the pairs, its kind and its client.
        let piece = |kinds: u64, [type_id, outcome, kind, client]: [u64; 4]| {
            let mut out = BitWriter::framed(PIECE_FORMAT, 1);
            out.number(0);
            out.column([0].into_iter());
            out.column([0].into_iter());
            out.number(kinds);
            out.column(std::iter::repeat_n(type_id, kinds as usize));
            out.column(std::iter::repeat_n(outcome, kinds as usize));
            out.column([kind].into_iter());
            out.column([client].into_iter());
            decode_piece(10, &out.into_bytes(), &mut Scratch::default(), |_| Ok(()))
        };
        assert!(piece(1, [7, 1, 0, 0]).is_ok());
        for (kinds, columns) in [
            (1, [u64::from(u32::MAX) + 1, 1, 0, 0]), // a type id past u32
            (1, [7, 256, 0, 0]),                     // an outcome past u8
            (1, [7, 1, 1, 0]),                       // a kind past the pairs
            (2, [7, 1, 0, 0]),                       // more pairs than entries
            (1, [7, 1, 0, u64::from(u32::MAX) + 2]), // a client id past u32
        ] {
            assert!(
                matches!(piece(kinds, columns), Err(StoreError::Corrupt(_))),
                "{kinds} {columns:?}"
            );
        }
    }
}
