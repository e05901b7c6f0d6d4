//! Hour pieces: the column entries of each posted span again, ordered by hour, so that
//! `/top` over part of the time reads the entries of those hours instead of every block
//! (events stored out of time order, as a backfill stores them, leave every block holding
//! every hour).
//!
//! For each column, the entries of a posted span (see `postings`) that carry a number are
//! sorted by (hour, number, outcome) and cut, at hour boundaries, into pieces of at least
//! [`PIECE_ENTRIES`] entries (the last may hold fewer). Each piece is one row of
//! [`SPAN_HOURS`]: `(tenant, span's first seq, column, first hour) → piece`. A piece holds
//! its runs, one per hour (the hour, how many entries, the first number), then each
//! entry's gap to the number before it in its run (0 for a run's first) and its outcome
//! code, each as a bit-packed column (see `bitpack`).
//!
//! Pieces are a function of a span's entries alone, written and checked with the span.

use std::ops::RangeInclusive;

use super::bitpack::{BitReader, BitWriter};
use super::columns::{Column, Entry, Hours, BLOCK};
use super::postings::SPAN_BLOCKS;
use super::read::Snapshot;
use super::tables::*;
use super::tally::Tally;
use super::StoreError;
use crate::model::Outcome;

/// Entries a piece holds at least (unless it is its column's last): a few hours of a span
/// whose events spread over days, one hour of a span of live traffic.
#[cfg(not(test))]
const PIECE_ENTRIES: usize = 512;
/// Small pieces, so that tests cut spans into many.
#[cfg(test)]
const PIECE_ENTRIES: usize = 8;

/// Format byte of an encoded piece.
const PIECE_FORMAT: u8 = 1;

fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt(format!("hour piece: {what}"))
}

/// The pieces of one span: ((column code, first hour), piece), in key order.
pub(super) fn span_pieces(entries: &[Entry]) -> Vec<((u8, u32), Vec<u8>)> {
    let mut pieces = Vec::new();
    let mut sorted = Vec::with_capacity(entries.len());
    for column in Column::ALL {
        sorted.clear();
        sorted.extend(entries.iter().filter_map(|e| {
            let number = column.of(e);
            (number != 0).then_some((e.hour, number, e.outcome))
        }));
        sorted.sort_unstable();
        let mut rest = sorted.as_slice();
        while let Some(&(first_hour, _, _)) = rest.first() {
            // The piece ends at the first hour boundary past PIECE_ENTRIES entries.
            let mut end = PIECE_ENTRIES.min(rest.len());
            let last_hour = rest[end - 1].0;
            end += rest[end..].iter().take_while(|e| e.0 == last_hour).count();
            let (piece, after) = rest.split_at(end);
            pieces.push(((column.code(), first_hour), encode_piece(piece)));
            rest = after;
        }
    }
    pieces
}

/// Encodes entries (hour, number, outcome), sorted, at least one.
fn encode_piece(entries: &[(u32, u64, u8)]) -> Vec<u8> {
    let mut runs: Vec<(u32, u64, u64)> = Vec::new(); // (hour, entries, first number)
    let mut gaps = Vec::with_capacity(entries.len());
    let mut previous = None;
    for &(hour, number, _) in entries {
        match runs.last_mut() {
            Some(run) if run.0 == hour => {
                run.1 += 1;
                gaps.push(number - previous.unwrap_or(number));
            }
            _ => {
                runs.push((hour, 1, number));
                gaps.push(0);
            }
        }
        previous = Some(number);
    }
    let mut out = BitWriter::framed(PIECE_FORMAT, runs.len());
    out.column(runs.iter().map(|r| u64::from(r.0)));
    out.column(runs.iter().map(|r| r.1));
    out.column(runs.iter().map(|r| r.2));
    out.column(gaps.into_iter());
    out.column(entries.iter().map(|e| u64::from(e.2)));
    out.into_bytes()
}

/// Buffers for decoding pieces, kept across them.
#[derive(Default)]
struct Scratch {
    hours: Vec<u64>,
    lengths: Vec<u64>,
    firsts: Vec<u64>,
    gaps: Vec<u64>,
    codes: Vec<u64>,
}

/// Counts the entries of piece `bytes` of `hours` (and outcome code `outcome`) into
/// `tally`.
fn count_piece(
    bytes: &[u8],
    hours: Hours,
    outcome: Option<u8>,
    tally: &mut Tally,
    s: &mut Scratch,
) -> Result<(), StoreError> {
    let (mut piece, runs) = BitReader::framed(bytes, PIECE_FORMAT, SPAN_BLOCKS * BLOCK, corrupt)?;
    piece.column(runs, &mut s.hours)?;
    piece.column(runs, &mut s.lengths)?;
    let taken = |hour: &u64| u32::try_from(*hour).is_ok_and(|hour| hours.takes(hour));
    if !s.hours.iter().any(taken) {
        return Ok(());
    }
    let len = s.lengths.iter().try_fold(0u64, |sum, &l| {
        sum.checked_add(l)
            .filter(|&sum| sum <= (SPAN_BLOCKS * BLOCK) as u64)
    });
    let len = len.ok_or_else(|| corrupt("length"))? as usize;
    piece.column(runs, &mut s.firsts)?;
    piece.column(len, &mut s.gaps)?;
    piece.column(len, &mut s.codes)?;
    piece.finish()?;
    let failure = u64::from(Outcome::Failure.code());
    let mut at = 0;
    for ((hour, &length), &first) in s.hours.iter().zip(&s.lengths).zip(&s.firsts) {
        let run = at..at + length as usize; // the lengths' sum is at most len
        at = run.end;
        if !taken(hour) {
            continue;
        }
        // The run's gaps become its numbers, in place: its first, then each gap added to
        // the number before. (Counting as they are decoded is slower: the counts' random
        // accesses then overlap less.)
        let mut number = first;
        for gap in &mut s.gaps[run.clone()] {
            number = number.checked_add(*gap).ok_or_else(|| corrupt("number"))?;
            *gap = number;
        }
        let entries = s.gaps[run.clone()].iter().zip(&s.codes[run]);
        tally.add_entries(entries.map(|(&n, &c)| (n, c)), outcome, failure);
    }
    Ok(())
}

impl Snapshot {
    /// Counts `column` over the entries of `tenant`'s posted spans whose first seq is in
    /// `firsts`, of `hours` (and outcome code `outcome`), into `tally`.
    pub(super) fn count_posted(
        &self,
        tenant: u32,
        firsts: RangeInclusive<u64>,
        column: Column,
        hours: Hours,
        outcome: Option<u8>,
        tally: &mut Tally,
    ) -> Result<(), StoreError> {
        let spans = self.txn().open_table(POSTING_SPANS)?;
        let pieces = self.txn().open_table(SPAN_HOURS)?;
        let code = column.code();
        let mut scratch = Scratch::default();
        for span in spans.range((tenant, *firsts.start())..=(tenant, *firsts.end()))? {
            let first = span?.0.value().1;
            let key = |hour| (tenant, first, code, hour);
            let mut count = |row: Result<_, redb::StorageError>| -> Result<(), StoreError> {
                let (_, bytes): (_, redb::AccessGuard<&[u8]>) = row?;
                count_piece(bytes.value(), hours, outcome, tally, &mut scratch)
            };
            let (from, to, inside) = hours.bounds();
            if inside {
                // From the piece holding the first hour to the last starting before the end.
                let holding = pieces.range(key(0)..=key(from))?.next_back();
                let start = match holding {
                    Some(row) => row?.0.value().3,
                    None => from,
                };
                for row in pieces.range(key(start)..key(to.max(start)))? {
                    count(row)?;
                }
            } else {
                // Outside the range: every piece starting before it, the last one starting
                // in it (the only one that may reach past it), every one starting after it.
                for row in pieces.range(key(0)..key(from))? {
                    count(row)?;
                }
                if let Some(row) = pieces.range(key(from)..key(to.max(from)))?.next_back() {
                    count(row)?;
                }
                for row in pieces.range(key(to.max(from))..=key(u32::MAX))? {
                    count(row)?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(seq: u64, hour: u32, outcome: u8, user: u32, ip: u32, token: u64) -> Entry {
        // Routes that repeat, with some events without one.
        let route = (user + ip) % 11;
        Entry::from_tail(seq, (hour, outcome, user, ip, token, route))
    }

    /// Counts of `column` over `entries` of `hours`, one by one.
    fn brute_force(
        entries: &[Entry],
        column: Column,
        hours: Hours,
        outcome: Option<u8>,
    ) -> Vec<(u64, u64, u64)> {
        let mut tally = Tally::default();
        for e in entries {
            let number = column.of(e);
            if number != 0 && hours.takes(e.hour) && outcome.is_none_or(|o| o == e.outcome) {
                tally.add(number, e.outcome == Outcome::Failure.code());
            }
        }
        let mut counts = tally.into_counts();
        counts.sort_unstable();
        counts
    }

    fn spread_entries(n: u64) -> Vec<Entry> {
        (0..n)
            .map(|i| {
                let hour = 400_000 + (i * 7919 % 61) as u32;
                let outcome = (i % 5) as u8;
                let user = (i * 31 % 97) as u32;
                let ip = if i % 3 == 0 {
                    0
                } else {
                    (i % 1_000) as u32 + 1
                };
                entry(100 + i, hour, outcome, user, ip, i * 7 + 1)
            })
            .collect()
    }

    #[test]
    fn pieces_count_exactly_the_entries_of_their_hours() {
        let entries = spread_entries(1_000);
        let pieces = span_pieces(&entries);
        for column in Column::ALL {
            let of_column: Vec<_> = pieces.iter().filter(|p| p.0 .0 == column.code()).collect();
            assert!(of_column.len() > 3, "{column:?} cut into pieces");
            assert!(of_column.windows(2).all(|w| w[0].0 .1 < w[1].0 .1));
            let ranges = [
                (0, u32::MAX),
                (400_010, 400_011),
                (400_003, 400_040),
                (0, 400_001),
            ];
            for (from, to) in ranges {
                for hours in [Hours::inside(from, to), Hours::outside(from, to)] {
                    for outcome in [None, Some(Outcome::Failure.code()), Some(0)] {
                        let mut tally = Tally::default();
                        let mut scratch = Scratch::default();
                        for (_, bytes) in &of_column {
                            count_piece(bytes, hours, outcome, &mut tally, &mut scratch)
                                .expect("count");
                        }
                        let mut counts = tally.into_counts();
                        counts.sort_unstable();
                        let expected = brute_force(&entries, column, hours, outcome);
                        assert_eq!(counts, expected, "{column:?} {hours:?} {outcome:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn an_hour_is_never_split_between_pieces() {
        // 3 hours of 20 entries each, then one: pieces cut at hour boundaries only.
        let mut entries: Vec<Entry> = (0..60)
            .map(|i| entry(i, 10 + (i / 20) as u32, 0, 1 + i as u32, 0, 0))
            .collect();
        entries.push(entry(60, 99, 0, 5, 0, 0));
        let firsts: Vec<u32> = span_pieces(&entries)
            .iter()
            .filter(|p| p.0 .0 == Column::User.code())
            .map(|p| p.0 .1)
            .collect();
        assert_eq!(firsts, vec![10, 11, 12, 99]);
    }

    #[test]
    fn damaged_pieces_are_corruption_not_panics() {
        let entries = spread_entries(200);
        let (_, bytes) = span_pieces(&entries).remove(0);
        let all = Hours::inside(0, u32::MAX);
        for cut in 0..bytes.len() {
            let mut tally = Tally::default();
            let result = count_piece(
                &bytes[..cut],
                all,
                None,
                &mut tally,
                &mut Scratch::default(),
            );
            assert!(result.is_err(), "cut at {cut}");
        }
        let mut longer = bytes.clone();
        longer.push(1);
        let mut scratch = Scratch::default();
        let result = count_piece(&longer, all, None, &mut Tally::default(), &mut scratch);
        assert!(result.is_err());
        // Any byte changed to any of these values: an answer or an error, never a panic.
        for at in 0..bytes.len() {
            for value in [0, 1, 0x7f, 0x80, 0xff, !bytes[at]] {
                let mut changed = bytes.clone();
                changed[at] = value;
                let mut tally = Tally::default();
                let _ = count_piece(&changed, all, None, &mut tally, &mut scratch);
            }
        }
    }
}
