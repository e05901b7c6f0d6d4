//! Postings: the column entries of each user, IP and token number, kept apart by number,
//! so that listing one value's events reads a small share of a tenant's entries instead
//! of every column block.
//!
//! Every [`SPAN_BLOCKS`] sealed blocks of a tenant are posted as one span
//! ([`POSTING_SPANS`]: `(tenant, first seq) → (seq after the last, partitions)`). For each
//! column, the span's entries that carry a number are split by `number % partitions`, and
//! each non-empty partition is one chunk ([`POSTINGS`]: `(tenant, span's first seq, column,
//! partition) → chunk`) holding, as bit-packed columns (see `bitpack`), the seq (as
//! gaps), the hour and `number / partitions` of each of its entries. A lookup reads one
//! chunk per span, then the blocks after the last span and the tail.
//!
//! Spans are a function of the blocks alone (a tenant's blocks taken [`SPAN_BLOCKS`] at a
//! time from its first), posted in order: `verify` recomputes them, `rebuild` rewrites
//! them. The writer posts at most one span per group commit, in that transaction, so a
//! span costs no commit of its own; `prepare` posts whatever is due at open.

use std::collections::BTreeMap;
use std::ops::Range;

use redb::{ReadableTable, ReadableTableMetadata, Table, WriteTransaction};

use super::bitpack::{BitReader, BitWriter};
use super::columns::{BlockView, Column, Entry, BLOCK};
use super::hour_pieces::span_pieces;
use super::read::Snapshot;
use super::tables::*;
use super::StoreError;

/// Sealed blocks per span: 65,536 entries.
#[cfg(not(test))]
pub const SPAN_BLOCKS: usize = 512;
/// Small spans, so that tests post many of them.
#[cfg(test)]
pub const SPAN_BLOCKS: usize = 4;

/// Partitions per span and column: about 128 entries per chunk for a column that every
/// event carries.
#[cfg(not(test))]
const PARTITIONS: u16 = 512;
#[cfg(test)]
const PARTITIONS: u16 = 8;

/// Format byte of an encoded chunk.
const CHUNK_FORMAT: u8 = 1;

fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt(format!("posting chunk: {what}"))
}

/// Encodes entries of one partition of `column` (ascending seq, at least one) of the span
/// that starts at seq `span_first`.
fn encode_chunk(column: Column, partitions: u16, span_first: u64, entries: &[&Entry]) -> Vec<u8> {
    let mut out = BitWriter::framed(CHUNK_FORMAT, entries.len());
    let first = entries.first().map_or(span_first, |e| e.seq);
    out.number(first - span_first);
    // The first gap repeats the second, as in a block, so a constant column stays constant.
    let mut gaps: Vec<u64> = entries.windows(2).map(|w| w[1].seq - w[0].seq).collect();
    gaps.insert(0, gaps.first().copied().unwrap_or(0));
    out.column(gaps.into_iter());
    out.column(entries.iter().map(|e| u64::from(e.hour)));
    let partitions = u64::from(partitions);
    out.column(entries.iter().map(|e| column.of(e) / partitions));
    out.into_bytes()
}

/// The (hour, seq) of each entry of chunk `bytes` (of the span that starts at seq
/// `span_first`) whose number's quotient is `quotient` and whose hour is in `hours`,
/// appended to `found` in seq order.
fn find_in_chunk(
    bytes: &[u8],
    span_first: u64,
    quotient: u64,
    hours: &Range<u32>,
    found: &mut Vec<(u32, u64)>,
) -> Result<(), StoreError> {
    let (mut chunk, len) = BitReader::framed(bytes, CHUNK_FORMAT, SPAN_BLOCKS * BLOCK, corrupt)?;
    let first = span_first
        .checked_add(chunk.number()?)
        .ok_or_else(|| corrupt("seq"))?;
    let (mut gaps, mut hour_values, mut quotients) = (Vec::new(), Vec::new(), Vec::new());
    chunk.column(len, &mut gaps)?;
    chunk.column(len, &mut hour_values)?;
    chunk.column(len, &mut quotients)?;
    chunk.finish()?;
    let mut seq = first;
    for (i, ((&gap, &hour), &value)) in gaps.iter().zip(&hour_values).zip(&quotients).enumerate() {
        if i > 0 {
            seq = seq.checked_add(gap).ok_or_else(|| corrupt("seq"))?;
        }
        let hour = u32::try_from(hour).map_err(|_| corrupt("hour"))?;
        if value == quotient && hours.contains(&hour) {
            found.push((hour, seq));
        }
    }
    Ok(())
}

/// The chunks of one span: (column code, partition) → chunk.
fn span_chunks(entries: &[Entry], partitions: u16) -> BTreeMap<(u8, u16), Vec<u8>> {
    let mut chunks = BTreeMap::new();
    let span_first = entries.first().map_or(0, |e| e.seq);
    let mut parts: Vec<Vec<&Entry>> = vec![Vec::new(); usize::from(partitions)];
    for column in Column::POSTED {
        for part in &mut parts {
            part.clear();
        }
        for e in entries {
            let number = column.of(e);
            if number != 0 {
                parts[(number % u64::from(partitions)) as usize].push(e);
            }
        }
        for (partition, part) in (0..partitions).zip(&parts) {
            if !part.is_empty() {
                let chunk = encode_chunk(column, partitions, span_first, part);
                chunks.insert((column.code(), partition), chunk);
            }
        }
    }
    chunks
}

/// The entries of the first [`SPAN_BLOCKS`] blocks of `tenant` from seq `from` on, or
/// `None` when there are fewer.
fn span_entries(
    blocks: &impl ReadableTable<(u32, u64), &'static [u8]>,
    tenant: u32,
    from: u64,
) -> Result<Option<Vec<Entry>>, StoreError> {
    let mut entries = Vec::with_capacity(SPAN_BLOCKS * BLOCK);
    let mut taken = 0;
    for block in blocks
        .range((tenant, from)..=(tenant, u64::MAX))?
        .take(SPAN_BLOCKS)
    {
        let (key, bytes) = block?;
        entries.extend(BlockView::parse(key.value().1, bytes.value())?.entries()?);
        taken += 1;
    }
    Ok((taken == SPAN_BLOCKS).then_some(entries))
}

/// Where a tenant's postings stop, as the writer keeps it between transactions.
#[derive(Debug, Clone, Copy)]
pub struct Unposted {
    /// The seq after the last posted span (0: none posted).
    from: u64,
    /// Sealed blocks from `from` on.
    blocks: usize,
}

/// The posting tables of one write transaction.
pub struct PostingWriter<'txn> {
    spans: Table<'txn, (u32, u64), (u64, u16)>,
    chunks: Table<'txn, (u32, u64, u8, u16), &'static [u8]>,
    pieces: Table<'txn, (u32, u64, u8, u32), &'static [u8]>,
}

impl<'txn> PostingWriter<'txn> {
    pub fn open(txn: &'txn WriteTransaction) -> Result<PostingWriter<'txn>, StoreError> {
        Ok(PostingWriter {
            spans: txn.open_table(POSTING_SPANS)?,
            chunks: txn.open_table(POSTINGS)?,
            pieces: txn.open_table(SPAN_HOURS)?,
        })
    }

    /// Where `tenant`'s postings stop, read from the tables.
    pub fn unposted(
        &self,
        blocks: &impl ReadableTable<(u32, u64), &'static [u8]>,
        tenant: u32,
    ) -> Result<Unposted, StoreError> {
        let last = self
            .spans
            .range((tenant, 0)..=(tenant, u64::MAX))?
            .next_back()
            .transpose()?;
        let from = last.map_or(0, |(_, value)| value.value().0);
        let blocks = blocks.range((tenant, from)..=(tenant, u64::MAX))?.count();
        Ok(Unposted { from, blocks })
    }

    /// Posts at most `limit` of `tenant`'s due spans; returns the (first, end) seqs of
    /// those it posted.
    pub fn post_due(
        &mut self,
        blocks: &impl ReadableTable<(u32, u64), &'static [u8]>,
        tenant: u32,
        unposted: &mut Unposted,
        limit: usize,
    ) -> Result<Vec<(u64, u64)>, StoreError> {
        let mut posted = Vec::new();
        while posted.len() < limit && unposted.blocks >= SPAN_BLOCKS {
            let Some(entries) = span_entries(blocks, tenant, unposted.from)? else {
                return Err(StoreError::Corrupt(format!(
                    "tenant {tenant} has fewer blocks to post than counted"
                )));
            };
            let (Some(first), Some(last)) = (entries.first(), entries.last()) else {
                return Err(corrupt("empty span"));
            };
            let (first, end) = (first.seq, last.seq + 1);
            for ((column, partition), chunk) in span_chunks(&entries, PARTITIONS) {
                self.chunks
                    .insert((tenant, first, column, partition), chunk.as_slice())?;
            }
            for ((column, hour), piece) in span_pieces(&entries) {
                self.pieces
                    .insert((tenant, first, column, hour), piece.as_slice())?;
            }
            self.spans.insert((tenant, first), (end, PARTITIONS))?;
            *unposted = Unposted {
                from: end,
                blocks: unposted.blocks - SPAN_BLOCKS,
            };
            posted.push((first, end));
        }
        Ok(posted)
    }

    /// Forgets every span (before a rebuild rewrites the blocks).
    pub fn clear(&mut self) -> Result<(), StoreError> {
        self.spans.retain(|_, _| false)?;
        self.chunks.retain(|_, _| false)?;
        self.pieces.retain(|_, _| false)?;
        Ok(())
    }
}

impl Unposted {
    /// One more block sealed.
    pub fn sealed(&mut self) {
        self.blocks += 1;
    }
}

/// Spans posted per transaction when a store is brought up to date at open.
const CATCH_UP_SPANS: usize = 16;

/// Posts every due span of every tenant, [`CATCH_UP_SPANS`] per transaction: for a store
/// written before postings existed, or whose writer stopped with a span due.
pub fn catch_up(db: &redb::Database) -> Result<(), StoreError> {
    loop {
        let txn = db.begin_write()?;
        let mut posted = 0;
        {
            let blocks = txn.open_table(COLUMN_BLOCKS)?;
            let mut writer = PostingWriter::open(&txn)?;
            // Every tenant with blocks, each found by a seek past the one before.
            let mut next = Some(0);
            while let Some(from) = next.filter(|_| posted < CATCH_UP_SPANS) {
                let Some(row) = blocks.range((from, 0)..)?.next() else {
                    break;
                };
                let tenant = row?.0.value().0;
                let mut unposted = writer.unposted(&blocks, tenant)?;
                posted += writer
                    .post_due(&blocks, tenant, &mut unposted, CATCH_UP_SPANS - posted)?
                    .len();
                next = tenant.checked_add(1);
            }
        }
        txn.commit()?;
        if posted == 0 {
            return Ok(());
        }
    }
}

impl Snapshot {
    /// The (hour, seq) of each of `tenant`'s events in hours `hours` whose `column` holds
    /// number `id`, from the posted spans; and the seq from which on blocks are not posted.
    pub(super) fn posted_seqs_with(
        &self,
        tenant: u32,
        column: Column,
        id: u64,
        hours: &Range<u32>,
    ) -> Result<(Vec<(u32, u64)>, u64), StoreError> {
        let spans = self.txn().open_table(POSTING_SPANS)?;
        let chunks = self.txn().open_table(POSTINGS)?;
        let mut found = Vec::new();
        let mut unposted = 0;
        for span in spans.range((tenant, 0)..=(tenant, u64::MAX))? {
            let (key, value) = span?;
            let (first, (end, partitions)) = (key.value().1, value.value());
            if partitions == 0 {
                return Err(corrupt("no partitions"));
            }
            let partitions = u64::from(partitions);
            let partition = (id % partitions) as u16;
            if let Some(chunk) = chunks.get((tenant, first, column.code(), partition))? {
                find_in_chunk(chunk.value(), first, id / partitions, hours, &mut found)?;
            }
            unposted = end;
        }
        Ok((found, unposted))
    }

    /// The seq after `tenant`'s last posted span (0 when none is posted): its blocks from
    /// there on are not posted.
    pub(super) fn posted_end(&self, tenant: u32) -> Result<u64, StoreError> {
        let spans = self.txn().open_table(POSTING_SPANS)?;
        let last = spans.range((tenant, 0)..=(tenant, u64::MAX))?.next_back();
        Ok(match last {
            Some(row) => row?.1.value().0,
            None => 0,
        })
    }

    /// Posting spans, chunks and hour pieces that differ from what the blocks give
    /// (missing and extra ones included).
    pub(super) fn posting_mismatches(&self) -> Result<u64, StoreError> {
        let spans = self.txn().open_table(POSTING_SPANS)?;
        let chunks = self.txn().open_table(POSTINGS)?;
        let pieces = self.txn().open_table(SPAN_HOURS)?;
        let blocks = self.txn().open_table(COLUMN_BLOCKS)?;
        let mut mismatches = 0;
        let (mut checked_chunks, mut checked_pieces) = (0, 0);
        let mut previous: Option<(u32, u64)> = None;
        for span in spans.iter()? {
            let (key, value) = span?;
            let ((tenant, first), (end, partitions)) = (key.value(), value.value());
            // Spans follow each other: this one starts at the first block after the last.
            let from = match previous {
                Some((t, end)) if t == tenant => end,
                _ => 0,
            };
            previous = Some((tenant, end));
            let expected = match span_entries(&blocks, tenant, from)? {
                Some(entries) if partitions > 0 => entries,
                _ => {
                    mismatches += 1;
                    continue;
                }
            };
            let bounds = expected.first().zip(expected.last());
            if bounds.map(|(f, l)| (f.seq, l.seq + 1)) != Some((first, end)) {
                mismatches += 1;
                continue;
            }
            for ((column, partition), chunk) in span_chunks(&expected, partitions) {
                let stored = chunks.get((tenant, first, column, partition))?;
                if stored.is_some() {
                    checked_chunks += 1;
                }
                if stored.is_none_or(|stored| stored.value() != chunk.as_slice()) {
                    mismatches += 1;
                }
            }
            for ((column, hour), piece) in span_pieces(&expected) {
                let stored = pieces.get((tenant, first, column, hour))?;
                if stored.is_some() {
                    checked_pieces += 1;
                }
                if stored.is_none_or(|stored| stored.value() != piece.as_slice()) {
                    mismatches += 1;
                }
            }
        }
        // Chunks and pieces of no span, or of a span that was not checked.
        mismatches += chunks.len()?.abs_diff(checked_chunks);
        mismatches += pieces.len()?.abs_diff(checked_pieces);
        Ok(mismatches)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(seq: u64, hour: u32, user: u32, ip: u32, token: u64) -> Entry {
        Entry {
            seq,
            hour,
            outcome: 0,
            user,
            ip,
            token,
            route: 0,
        }
    }

    /// What [`Snapshot::posted_seqs_with`] should find in `entries`.
    fn brute_force(
        entries: &[Entry],
        column: Column,
        id: u64,
        hours: &Range<u32>,
    ) -> Vec<(u32, u64)> {
        entries
            .iter()
            .filter(|e| column.of(e) == id && hours.contains(&e.hour))
            .map(|e| (e.hour, e.seq))
            .collect()
    }

    #[test]
    fn chunks_find_exactly_the_entries_of_a_number() {
        let entries: Vec<Entry> = (0..500u64)
            .map(|i| {
                let seq = 1_000 + i * 8 + i % 7;
                let hour = 400_000 + (i * 37 % 50) as u32;
                let user = (i * 13 % 41) as u32; // 0 = no user
                let ip = (i % 5) as u32 + 1;
                let token = if i % 3 == 0 { 0 } else { (1 << 40) + i % 97 };
                entry(seq, hour, user, ip, token)
            })
            .collect();
        for partitions in [1u16, 7, 512] {
            let chunks = span_chunks(&entries, partitions);
            for column in Column::POSTED {
                for id in (1..45).chain([(1 << 40) + 5, (1 << 40) + 96, (1 << 40) + 200]) {
                    for hours in [0..u32::MAX, 400_010..400_020, 400_049..400_050] {
                        let mut found = Vec::new();
                        let partition = (id % u64::from(partitions)) as u16;
                        if let Some(chunk) = chunks.get(&(column.code(), partition)) {
                            let quotient = id / u64::from(partitions);
                            find_in_chunk(chunk, entries[0].seq, quotient, &hours, &mut found)
                                .expect("decodes");
                        }
                        assert_eq!(
                            found,
                            brute_force(&entries, column, id, &hours),
                            "{column:?} {id} in {hours:?}, {partitions} partitions"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn damaged_chunks_are_corruption_not_panics() {
        let entries: Vec<Entry> = (1..50u64).map(|i| entry(i * 2, 7, 3, 0, 0)).collect();
        let chunks = span_chunks(&entries, 1);
        let chunk = chunks.get(&(Column::User.code(), 0)).expect("a user chunk");
        for cut in 0..chunk.len() {
            let result = find_in_chunk(&chunk[..cut], 2, 3, &(0..u32::MAX), &mut Vec::new());
            assert!(
                matches!(result, Err(StoreError::Corrupt(_))),
                "cut at {cut}"
            );
        }
        let mut bad = chunk.clone();
        bad[0] = 9;
        assert!(find_in_chunk(&bad, 2, 3, &(0..u32::MAX), &mut Vec::new()).is_err());
    }
}
