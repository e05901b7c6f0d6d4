//! Per-bucket sketches: distinct users, clients and IPs ([`Distinct`]) and request-duration
//! histograms (hdrhistogram), per hour and per UTC day.
//!
//! They are derived data, kept off the hot commit (a dense sketch is 32 KiB; rewriting
//! several per commit would dominate it). After each durable group commit the writer folds
//! the group's events into in-memory deltas (the [`SketchBook`]), and at most once a second
//! flushes them into the `sketches` table together with the watermark: the first seq whose
//! event is not yet in the table. At start-up, events from the watermark on are replayed
//! from the log, so a crash loses nothing. Readers merge the table with the unflushed
//! deltas under the book's lock (see [`Snapshot::sketches`]), so they see every committed
//! event.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use hdrhistogram::serialization::{Deserializer, Serializer, V2Serializer};
use hdrhistogram::Histogram;
use redb::{Database, Durability, ReadableDatabase, ReadableTable, WriteTransaction};

use super::codec::FORMAT_V1;
use super::names::Names;
use super::read::Snapshot;
use super::read::TenantNumbers;
use super::records::EventRecord;
use super::tables::*;
use super::StoreError;
use crate::model::sketch::{hash64, Distinct};
use crate::model::time::{day_of, hour_of};
use crate::model::Event;

/// How often unflushed deltas are written to the table.
pub const FLUSH_EVERY: Duration = Duration::from_secs(1);

/// What a sketch counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Users = 0,
    Clients = 1,
    Ips = 2,
    Durations = 3,
}

/// A sketch in memory.
#[derive(Debug, Clone)]
pub enum Sketch {
    Distinct(Distinct),
    Durations(Histogram<u64>),
}

/// A histogram of milliseconds with three significant digits, growing as needed.
pub fn histogram() -> Result<Histogram<u64>, StoreError> {
    Histogram::new(3).map_err(|e| StoreError::Storage(format!("histogram: {e}")))
}

impl Sketch {
    fn empty(kind: Kind) -> Result<Sketch, StoreError> {
        Ok(match kind {
            Kind::Durations => Sketch::Durations(histogram()?),
            _ => Sketch::Distinct(Distinct::default()),
        })
    }

    fn merge(&mut self, other: &Sketch) {
        match (self, other) {
            (Sketch::Distinct(a), Sketch::Distinct(b)) => a.merge(b),
            (Sketch::Durations(a), Sketch::Durations(b)) => {
                // Auto-resizing histograms accept any other histogram.
                let _ = a.add(b);
            }
            _ => {}
        }
    }

    /// Whether both counted the same: equal hash sets or registers, equal histogram
    /// counts. (Not equal encodings: a histogram's bounds depend on the order it grew in.)
    fn counts_the_same_as(&self, other: &Sketch) -> bool {
        let recorded = |h: &Histogram<u64>| {
            h.iter_recorded()
                .map(|v| (v.value_iterated_to(), v.count_at_value()))
                .collect::<Vec<_>>()
        };
        match (self, other) {
            (Sketch::Distinct(a), Sketch::Distinct(b)) => a == b,
            (Sketch::Durations(a), Sketch::Durations(b)) => {
                a.len() == b.len() && recorded(a) == recorded(b)
            }
            _ => false,
        }
    }

    /// Layout: the format byte, a tag, then — exact: the hashes as little-endian u64s;
    /// dense: the registers, raw; durations: a V2-serialized hdrhistogram. (Raw bytes, not
    /// serde: a dense sketch is 32 KiB and is decoded on every read of its bucket.)
    fn decode(bytes: &[u8]) -> Result<Sketch, StoreError> {
        let corrupt = |what: &str| StoreError::Corrupt(format!("sketch: {what}"));
        let (tag, body) = match bytes {
            [FORMAT_V1, tag, body @ ..] => (*tag, body),
            _ => return Err(corrupt("unknown format")),
        };
        Ok(match tag {
            TAG_EXACT => {
                if body.len() % 8 != 0 {
                    return Err(corrupt("ragged hash list"));
                }
                let hashes = body
                    .chunks_exact(8)
                    .map(|c| u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
                    .collect();
                Sketch::Distinct(Distinct::Exact(hashes))
            }
            TAG_DENSE => Sketch::Distinct(
                Distinct::dense_from(body.to_vec()).ok_or_else(|| corrupt("register count"))?,
            ),
            TAG_DURATIONS => {
                // The V2 header declares a payload length and value bounds that the
                // deserializer allocates for; check them against what is really there.
                let field = |at: usize| {
                    body.get(at..at + 4)
                        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
                };
                let high = body
                    .get(24..32)
                    .map(|b| u64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]));
                let sane = matches!(
                    (field(4), field(12), high),
                    (Some(len), Some(digits), Some(high))
                        if len as usize <= body.len().saturating_sub(40) && digits <= 5 && high <= 1 << 50
                );
                if !sane {
                    return Err(corrupt("histogram header"));
                }
                let mut histogram: Histogram<u64> = Deserializer::new()
                    .deserialize(&mut &body[..])
                    .map_err(|e| corrupt(&format!("histogram: {e:?}")))?;
                // A deserialized histogram keeps the bounds it was saved with; without
                // this, merging a longer duration into it fails and its counts are lost.
                histogram.auto(true);
                Sketch::Durations(histogram)
            }
            _ => return Err(corrupt("unknown tag")),
        })
    }

    fn encode(&self) -> Result<Vec<u8>, StoreError> {
        let mut out = vec![FORMAT_V1];
        match self {
            Sketch::Distinct(Distinct::Exact(hashes)) => {
                out.push(TAG_EXACT);
                for h in hashes {
                    out.extend_from_slice(&h.to_le_bytes());
                }
            }
            Sketch::Distinct(Distinct::Dense(registers)) => {
                out.push(TAG_DENSE);
                out.extend_from_slice(registers);
            }
            Sketch::Durations(h) => {
                out.push(TAG_DURATIONS);
                V2Serializer::new()
                    .serialize(h, &mut out)
                    .map_err(|e| StoreError::Storage(format!("histogram: {e:?}")))?;
            }
        }
        Ok(out)
    }
}

const TAG_EXACT: u8 = 0;
const TAG_DENSE: u8 = 1;
const TAG_DURATIONS: u8 = 2;

/// Sketch deltas keyed by bucket and kind.
#[derive(Debug, Default)]
pub struct Deltas(HashMap<SketchKey, Sketch>);

impl Deltas {
    /// Folds one stored event of `tenant` into every bucket it belongs to.
    pub fn observe(&mut self, tenant: u32, event: &Event) -> Result<(), StoreError> {
        let users = event.user_id.as_deref().map(|u| hash64(u.as_bytes()));
        let clients = event.client_id.as_deref().map(|c| hash64(c.as_bytes()));
        let ips = event.ip.map(|ip| match ip {
            std::net::IpAddr::V4(v4) => hash64(&v4.octets()),
            std::net::IpAddr::V6(v6) => hash64(&v6.octets()),
        });
        for (granularity, bucket) in [
            (Granularity::Hour, hour_of(event.ts)),
            (Granularity::Day, day_of(event.ts)),
        ] {
            let key = |kind: Kind| (tenant, granularity as u8, bucket, kind as u8);
            for (kind, hash) in [
                (Kind::Users, users),
                (Kind::Clients, clients),
                (Kind::Ips, ips),
            ] {
                if let Some(hash) = hash {
                    if let Sketch::Distinct(d) = self.entry(key(kind), kind)? {
                        d.insert(hash);
                    }
                }
            }
            if let Some(duration) = event.duration_ms {
                if let Sketch::Durations(h) = self.entry(key(Kind::Durations), Kind::Durations)? {
                    let _ = h.record(u64::from(duration));
                }
            }
        }
        Ok(())
    }

    fn entry(&mut self, key: SketchKey, kind: Kind) -> Result<&mut Sketch, StoreError> {
        Ok(match self.0.entry(key) {
            Entry::Occupied(entry) => entry.into_mut(),
            Entry::Vacant(entry) => entry.insert(Sketch::empty(kind)?),
        })
    }

    fn absorb(&mut self, other: Deltas) {
        for (key, sketch) in other.0 {
            match self.0.get_mut(&key) {
                Some(mine) => mine.merge(&sketch),
                None => {
                    self.0.insert(key, sketch);
                }
            }
        }
    }
}

/// The unflushed deltas, shared by the writer and readers.
#[derive(Debug)]
pub struct SketchBook {
    deltas: Deltas,
    last_flush: Instant,
    db: Arc<Database>,
}

/// The book behind its lock.
pub type SharedBook = Arc<Mutex<SketchBook>>;

fn lock(book: &SharedBook) -> MutexGuard<'_, SketchBook> {
    book.lock().unwrap_or_else(|p| p.into_inner())
}

/// An empty book over `db`.
pub fn new_book(db: Arc<Database>) -> SharedBook {
    Arc::new(Mutex::new(SketchBook {
        deltas: Deltas::default(),
        last_flush: Instant::now(),
        db,
    }))
}

/// Adds a committed group's deltas.
pub fn absorb(book: &SharedBook, deltas: Deltas) {
    lock(book).deltas.absorb(deltas);
}

/// Writes the deltas into the table with `watermark` when a flush is due (or `force`d).
pub fn flush(
    book: &SharedBook,
    watermark: u64,
    durability: Durability,
    force: bool,
) -> Result<(), StoreError> {
    let mut guard = lock(book);
    if !force && guard.last_flush.elapsed() < FLUSH_EVERY {
        return Ok(());
    }
    let mut txn = guard.db.begin_write()?;
    txn.set_durability(durability)
        .map_err(|e| StoreError::Storage(e.to_string()))?;
    write_deltas(&txn, &guard.deltas)?;
    txn.open_table(META)?.insert(META_SKETCH_SEQ, watermark)?;
    txn.commit()?;
    guard.deltas.0.clear();
    guard.last_flush = Instant::now();
    Ok(())
}

fn write_deltas(txn: &WriteTransaction, deltas: &Deltas) -> Result<(), StoreError> {
    let mut table = txn.open_table(SKETCHES)?;
    for (key, delta) in &deltas.0 {
        let merged = match table.get(*key)? {
            Some(bytes) => {
                let mut stored = Sketch::decode(bytes.value())?;
                stored.merge(delta);
                stored
            }
            None => delta.clone(),
        };
        table.insert(*key, merged.encode()?.as_slice())?;
    }
    Ok(())
}

/// Folds the events with seq in `[from, to)` into the book (start-up recovery).
pub fn replay(book: &SharedBook, names: &Names, from: u64, to: u64) -> Result<u64, StoreError> {
    let mut deltas = Deltas::default();
    let mut replayed = 0;
    {
        let guard = lock(book);
        let txn = guard.db.begin_read()?;
        let log = txn.open_table(LOG)?;
        let tokens = txn.open_table(TOKEN_IDS)?;
        let values = txn.open_table(VALUE_NAMES)?;
        // The log is keyed by (tenant, seq): visit each tenant's stretch of seqs, jumping
        // from one tenant to the next.
        let mut next_tenant = Some(0u32);
        while let Some(lowest) = next_tenant {
            let Some(first) = log.range((lowest, 0)..)?.next() else {
                break;
            };
            let tenant = first?.0.value().0;
            let numbers = TenantNumbers {
                tenant,
                tokens: &tokens,
                values: &values,
            };
            for entry in log.range((tenant, from)..(tenant, to))? {
                let record = EventRecord::decode(entry?.1.value())?;
                let event = record.into_event(names, &numbers)?;
                deltas.observe(tenant, &event)?;
                replayed += 1;
            }
            next_tenant = tenant.checked_add(1);
        }
    }
    absorb(book, deltas);
    Ok(replayed)
}

/// Recomputes every sketch from the whole log inside `txn`, dropping unflushed deltas.
pub fn rebuild_in(
    txn: &WriteTransaction,
    book: &SharedBook,
    names: &Names,
    watermark: u64,
) -> Result<(), StoreError> {
    let mut guard = lock(book);
    guard.deltas.0.clear();
    txn.open_table(SKETCHES)?.retain(|_, _| false)?;
    let mut deltas = Deltas::default();
    let tokens = txn.open_table(TOKEN_IDS)?;
    let values = txn.open_table(VALUE_NAMES)?;
    for entry in txn.open_table(LOG)?.iter()? {
        let (key, bytes) = entry?;
        let numbers = TenantNumbers {
            tenant: key.value().0,
            tokens: &tokens,
            values: &values,
        };
        let event = EventRecord::decode(bytes.value())?.into_event(names, &numbers)?;
        let tenant = numbers.tenant;
        deltas.observe(tenant, &event)?;
    }
    write_deltas(txn, &deltas)?;
    txn.open_table(META)?.insert(META_SKETCH_SEQ, watermark)?;
    Ok(())
}

/// Sketch buckets whose stored value (table plus unflushed delta) differs from the same
/// sketch recomputed from `expected` (missing and extra buckets included).
pub fn mismatches(book: &SharedBook, expected: &Deltas) -> Result<u64, StoreError> {
    let guard = lock(book);
    let txn = guard.db.begin_read()?;
    let table = txn.open_table(SKETCHES)?;
    let mut differ = 0;
    for (key, want) in &expected.0 {
        let mut have: Option<Sketch> = match table.get(*key)? {
            Some(bytes) => Some(Sketch::decode(bytes.value())?),
            None => None,
        };
        if let Some(delta) = guard.deltas.0.get(key) {
            match &mut have {
                Some(h) => h.merge(delta),
                None => have = Some(delta.clone()),
            }
        }
        let same = have.is_some_and(|h| h.counts_the_same_as(want));
        differ += u64::from(!same);
    }
    for entry in table.iter()? {
        let (key, _) = entry?;
        differ += u64::from(!expected.0.contains_key(&key.value()));
    }
    Ok(differ)
}

/// What the sketches say about a set of buckets.
#[derive(Debug, Clone)]
pub struct SketchSummary {
    pub users: Distinct,
    pub clients: Distinct,
    pub ips: Distinct,
    pub durations: Histogram<u64>,
}

impl Snapshot {
    /// Merges the sketches of `tenant` over `buckets`: the table as of now plus the
    /// unflushed deltas, read under the book's lock so a concurrent flush is seen whole.
    pub fn sketches(
        &self,
        tenant: u32,
        buckets: &[(Granularity, u32)],
    ) -> Result<SketchSummary, StoreError> {
        let mut summary = SketchSummary {
            users: Distinct::default(),
            clients: Distinct::default(),
            ips: Distinct::default(),
            durations: histogram()?,
        };
        let Some(book) = self.book() else {
            return Ok(summary);
        };
        let guard = lock(book);
        let txn = guard.db.begin_read()?;
        let table = txn.open_table(SKETCHES)?;
        for (granularity, bucket) in buckets {
            for kind in [Kind::Users, Kind::Clients, Kind::Ips, Kind::Durations] {
                let key = (tenant, *granularity as u8, *bucket, kind as u8);
                let stored = match table.get(key)? {
                    Some(bytes) => Some(Sketch::decode(bytes.value())?),
                    None => None,
                };
                for sketch in stored.iter().chain(guard.deltas.0.get(&key)) {
                    match (kind, sketch) {
                        (Kind::Users, Sketch::Distinct(d)) => summary.users.merge(d),
                        (Kind::Clients, Sketch::Distinct(d)) => summary.clients.merge(d),
                        (Kind::Ips, Sketch::Distinct(d)) => summary.ips.merge(d),
                        (Kind::Durations, Sketch::Durations(h)) => {
                            let _ = summary.durations.add(h);
                        }
                        _ => {}
                    }
                }
            }
        }
        Ok(summary)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn sketches_round_trip() {
        let mut d = Distinct::default();
        for i in 0..2000u64 {
            d.insert(hash64(&i.to_le_bytes()));
        }
        let mut h = histogram().expect("histogram");
        let _ = h.record(42);
        for sketch in [
            Sketch::Distinct(d),
            Sketch::Durations(h),
            Sketch::Distinct(Distinct::default()),
        ] {
            let bytes = sketch.encode().expect("encodes");
            let back = Sketch::decode(&bytes).expect("decodes");
            assert_eq!(back.encode().expect("encodes"), bytes);
        }
    }

    /// `verify` compares what sketches counted, not their bytes: a histogram that grew in
    /// another order has other bounds in its header but the same counts.
    #[test]
    fn sketches_compare_by_what_they_counted() {
        let mut grown = histogram().expect("histogram");
        let _ = grown.record(3);
        let stored =
            Sketch::decode(&Sketch::Durations(grown).encode().expect("encodes")).expect("decodes");
        let mut late = histogram().expect("histogram");
        let _ = late.record(900_000);
        let mut merged = stored;
        merged.merge(&Sketch::Durations(late));
        let mut at_once = histogram().expect("histogram");
        let _ = at_once.record(900_000);
        let _ = at_once.record(3);
        let at_once = Sketch::Durations(at_once);
        assert_ne!(merged.encode().ok(), at_once.encode().ok(), "other bounds");
        assert!(merged.counts_the_same_as(&at_once));
        let mut more = at_once.clone();
        if let Sketch::Durations(h) = &mut more {
            let _ = h.record(3);
        }
        assert!(!merged.counts_the_same_as(&more));
        let (mut a, mut b) = (Distinct::default(), Distinct::default());
        a.insert(1);
        b.insert(2);
        assert!(!Sketch::Distinct(a.clone()).counts_the_same_as(&Sketch::Distinct(b)));
        assert!(Sketch::Distinct(a.clone()).counts_the_same_as(&Sketch::Distinct(a)));
        assert!(!at_once.counts_the_same_as(&Sketch::Distinct(Distinct::default())));
    }

    /// Regression: a stored histogram came back with the bounds it was saved with, so a
    /// later, longer duration merged into it was silently dropped with all its bucket's
    /// counts (two stores of the same events disagreed on `duration_ms.count`).
    #[test]
    fn a_stored_histogram_takes_longer_durations_when_merged() {
        let mut short = histogram().expect("histogram");
        let _ = short.record(40);
        let mut stored =
            Sketch::decode(&Sketch::Durations(short).encode().expect("encodes")).expect("decodes");
        let mut long = histogram().expect("histogram");
        let _ = long.record(3_600_000);
        let _ = long.record(12);
        stored.merge(&Sketch::Durations(long));
        let Sketch::Durations(merged) = stored else {
            panic!("a duration sketch")
        };
        assert_eq!(merged.len(), 3);
        assert_eq!(merged.max(), merged.highest_equivalent(3_600_000));
    }

    #[test]
    fn a_histogram_header_claiming_a_huge_payload_is_refused() {
        let mut h = histogram().expect("histogram");
        let _ = h.record(42);
        let mut bytes = Sketch::Durations(h).encode().expect("encodes");
        // Payload length: bytes 4..8 of the V2 header, after the format byte and the tag.
        bytes[2 + 4..2 + 8].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(Sketch::decode(&bytes).is_err());
    }

    proptest! {
        /// A damaged sketch is an error, never a panic.
        #[test]
        fn arbitrary_bytes_decode_or_fail_cleanly(
            tag in 0u8..4,
            body in proptest::collection::vec(any::<u8>(), 0..300),
        ) {
            let mut bytes = vec![FORMAT_V1, tag];
            bytes.extend_from_slice(&body);
            let _ = Sketch::decode(&bytes);
            let _ = Sketch::decode(&body);
        }
    }
}
