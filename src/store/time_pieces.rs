//! Time pieces: the time index of posted spans, packed.
//!
//! [`TIMES`] holds one 16-byte key per event. Events stored out of time order (a
//! backfill, the benchmark's fill) land at random places in it, which leaves its leaves
//! about 69 % full and makes each group commit copy a leaf per event. So [`TIMES`] keeps
//! only the newest events: when a span is posted (see `postings`), its events leave
//! [`TIMES`], in the same transaction, for [`SPAN_TIMES`]: sorted by (ts, seq) and cut
//! into pieces of [`PIECE_ENTRIES`] entries, each a row `(tenant, span's first seq, first
//! ts, first seq) → piece`, holding its entries' time gaps and seq offsets bit-packed
//! (about 4 bytes per event where [`TIMES`] took 23 of pages).
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

/// Entries per piece (the last of a span may hold fewer): about 1 KB, three to a page.
#[cfg(not(test))]
const PIECE_ENTRIES: usize = 256;
/// Small pieces, so that tests cut spans into many.
#[cfg(test)]
const PIECE_ENTRIES: usize = 8;

/// Format byte of an encoded piece.
const PIECE_FORMAT: u8 = 1;

/// Spans packed per transaction when a store is brought up to date at open.
const CATCH_UP_SPANS: usize = 16;

fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt(format!("time piece: {what}"))
}

/// The (ts, seq) of `tenant`'s events with seqs in `[first, end)`, from the log, sorted.
fn span_times(
    log: &impl ReadableTable<(u32, u64), &'static [u8]>,
    tenant: u32,
    first: u64,
    end: u64,
) -> Result<Vec<(u64, u64)>, StoreError> {
    let mut times = Vec::with_capacity(SPAN_BLOCKS * BLOCK);
    for row in log.range((tenant, first)..(tenant, end))? {
        let (key, bytes) = row?;
        times.push((RecordHead::decode(bytes.value())?.ts, key.value().1));
    }
    times.sort_unstable();
    Ok(times)
}

/// The pieces of a span starting at seq `first`, from its (ts, seq) sorted: ((first ts,
/// first seq), piece), in key order.
fn pieces_of(first: u64, times: &[(u64, u64)]) -> Vec<((u64, u64), Vec<u8>)> {
    times
        .chunks(PIECE_ENTRIES)
        .map(|piece| (piece[0], encode_piece(first, piece)))
        .collect()
}

/// Encodes entries (ts, seq), sorted, at least one, of a span starting at seq `first`.
fn encode_piece(first: u64, entries: &[(u64, u64)]) -> Vec<u8> {
    let mut out = BitWriter::framed(PIECE_FORMAT, entries.len());
    out.number(entries[0].0);
    let gaps = entries
        .iter()
        .scan(entries[0].0, |previous, &(ts, _)| {
            let gap = ts - *previous;
            *previous = ts;
            Some(gap)
        })
        .collect::<Vec<_>>();
    out.column(gaps.into_iter());
    out.column(entries.iter().map(|&(_, seq)| seq - first));
    out.into_bytes()
}

/// Calls `visit` with the (ts, seq) of each entry of piece `bytes` (of a span starting
/// at seq `first`), in order.
fn decode_piece(
    first: u64,
    bytes: &[u8],
    gaps: &mut Vec<u64>,
    seqs: &mut Vec<u64>,
    mut visit: impl FnMut(u64, u64) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    let (mut piece, len) = BitReader::framed(bytes, PIECE_FORMAT, SPAN_BLOCKS * BLOCK, corrupt)?;
    let mut ts = piece.number()?;
    piece.column(len, gaps)?;
    piece.column(len, seqs)?;
    piece.finish()?;
    for (&gap, &offset) in gaps.iter().zip(seqs.iter()) {
        ts = ts.checked_add(gap).ok_or_else(|| corrupt("time"))?;
        visit(ts, first.checked_add(offset).ok_or_else(|| corrupt("seq"))?)?;
    }
    Ok(())
}

/// Moves the time index entries of `tenant`'s span `[first, end)` from [`TIMES`] into
/// its pieces. The span must not be packed yet.
pub(super) fn pack_span(
    log: &impl ReadableTable<(u32, u64), &'static [u8]>,
    times: &mut Table<'_, u128, ()>,
    pieces: &mut Table<'_, SpanTimeKey, &'static [u8]>,
    tenant: u32,
    first: u64,
    end: u64,
) -> Result<(), StoreError> {
    let entries = span_times(log, tenant, first, end)?;
    for &(ts, seq) in &entries {
        times.remove(time_key(tenant, ts, seq))?;
    }
    for ((ts, seq), piece) in pieces_of(first, &entries) {
        pieces.insert((tenant, first, ts, seq), piece.as_slice())?;
    }
    Ok(())
}

/// Whether `tenant`'s span starting at `first` has pieces.
fn is_packed(
    pieces: &impl ReadableTable<SpanTimeKey, &'static [u8]>,
    tenant: u32,
    first: u64,
) -> Result<bool, StoreError> {
    let span = (tenant, first, 0, 0)..=(tenant, first, u64::MAX, u64::MAX);
    Ok(pieces.range(span)?.next().is_some())
}

/// Packs at most `limit` posted spans that have no pieces yet; returns how many it
/// packed.
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
        if !is_packed(&pieces, tenant, first)? {
            pack_span(&log, &mut times, &mut pieces, tenant, first, end)?;
            packed += 1;
        }
    }
    Ok(packed)
}

/// Packs every posted span that has no pieces, [`CATCH_UP_SPANS`] per transaction: for a
/// store written before pieces existed (schema 7), or one whose spans were posted at
/// open.
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
    times: redb::ReadOnlyTable<u128, ()>,
}

impl TimeReader {
    /// Calls `visit` with the (ts, seq) of every event of the tenant whose ts is in
    /// `[from, to)`, from the pieces (span by span, each in time order) and then
    /// [`TIMES`] (in time order): in no overall order.
    pub(super) fn for_each(
        &self,
        from: u64,
        to: u64,
        mut visit: impl FnMut(u64, u64) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        if from >= to {
            return Ok(());
        }
        let tenant = self.tenant;
        let (mut gaps, mut seqs) = (Vec::new(), Vec::new());
        let mut in_range = |ts: u64, seq: u64| {
            if (from..to).contains(&ts) {
                visit(ts, seq)?;
            }
            Ok(())
        };
        for &first in &self.spans {
            // The pieces starting before `to`, newest first, down to the first one that
            // starts before `from` (the ones before it end before `from`).
            let starting_before_to = (tenant, first, 0, 0)..(tenant, first, to, 0);
            for piece in self.pieces.range(starting_before_to)?.rev() {
                let (key, bytes) = piece?;
                decode_piece(first, bytes.value(), &mut gaps, &mut seqs, &mut in_range)?;
                if key.value().2 < from {
                    break;
                }
            }
        }
        let keys = time_key(tenant, from, 0)..time_key(tenant, to, 0);
        for entry in self.times.range(keys)? {
            let (_, ts, seq) = time_key_parts(entry?.0.value());
            in_range(ts, seq)?;
        }
        Ok(())
    }
}

impl TimeReader {
    /// The tenant's (ts, seq) with ts at least `from` and strictly before `below`, newest
    /// first: each packed span's pieces and [`TIMES`] walked backwards and merged, so that
    /// a listing decodes about one piece per span before its first event.
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
            gaps: Vec::new(),
            seqs: Vec::new(),
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
    times: redb::Range<'static, u128, ()>,
    /// The newest entry not yet taken of each source that has one: (entry, source), the
    /// source `walks.len()` being [`TIMES`].
    heads: BinaryHeap<((u64, u64), usize)>,
    gaps: Vec<u64>,
    seqs: Vec<u64>,
}

/// One packed span's pieces, walked backwards.
struct SpanWalk {
    first: u64,
    pieces: redb::Range<'static, SpanTimeKey, &'static [u8]>,
    /// The entries of the pieces decoded and not taken yet, oldest first.
    decoded: Vec<(u64, u64)>,
    /// Set once a piece starting before `from` has been decoded.
    done: bool,
}

impl NewestFirst {
    /// The next (ts, seq), newest first.
    pub(super) fn next(&mut self) -> Result<Option<(u64, u64)>, StoreError> {
        let Some((entry, source)) = self.heads.pop() else {
            return Ok(None);
        };
        self.advance(source)?;
        Ok(Some(entry))
    }

    /// Puts the next entry of `source` in the heads, if it has one.
    fn advance(&mut self, source: usize) -> Result<(), StoreError> {
        let Some(walk) = self.walks.get_mut(source) else {
            if let Some(key) = self.times.next_back() {
                let (_, ts, seq) = time_key_parts(key?.0.value());
                self.heads.push(((ts, seq), source));
            }
            return Ok(());
        };
        loop {
            if let Some(entry) = walk.decoded.pop() {
                if entry.0 < self.from {
                    walk.decoded.clear();
                    walk.done = true;
                    return Ok(());
                }
                if entry < self.below {
                    self.heads.push((entry, source));
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
            decode_piece(
                walk.first,
                bytes.value(),
                &mut self.gaps,
                &mut self.seqs,
                |ts, seq| {
                    decoded.push((ts, seq));
                    Ok(())
                },
            )?;
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
            if !is_packed(&pieces, tenant, first)? {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_hold_their_entries_in_order() {
        let first = 1_000;
        let mut entries: Vec<(u64, u64)> = (0..100u64)
            .map(|i| (1_764_633_600_000 + (i * 7919 % 37) * 1_000, first + i * 3))
            .collect();
        entries.sort_unstable();
        let pieces = pieces_of(first, &entries);
        assert_eq!(pieces.len(), 100usize.div_ceil(PIECE_ENTRIES));
        let mut decoded = Vec::new();
        let (mut gaps, mut seqs) = (Vec::new(), Vec::new());
        for ((ts, seq), bytes) in &pieces {
            let before = decoded.len();
            decode_piece(first, bytes, &mut gaps, &mut seqs, |ts, seq| {
                decoded.push((ts, seq));
                Ok(())
            })
            .expect("decodes");
            assert_eq!(
                decoded[before],
                (*ts, *seq),
                "a piece's key is its first entry"
            );
        }
        assert_eq!(decoded, entries);
    }

    #[test]
    fn damaged_pieces_are_corruption_not_panics() {
        let entries: Vec<(u64, u64)> = (0..8u64).map(|i| (i * 1_000, 10 + i)).collect();
        let bytes = encode_piece(10, &entries);
        let (mut gaps, mut seqs) = (Vec::new(), Vec::new());
        let mut seen = 0;
        for cut in 0..bytes.len() {
            let result = decode_piece(10, &bytes[..cut], &mut gaps, &mut seqs, |_, _| {
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
        assert!(decode_piece(10, &wrong_format, &mut gaps, &mut seqs, |_, _| Ok(())).is_err());
        // A seq offset that overflows is refused.
        assert!(decode_piece(u64::MAX, &bytes, &mut gaps, &mut seqs, |_, _| Ok(())).is_err());
    }
}
