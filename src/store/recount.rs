//! Recounting the log: the invariant "counters and token state equal a recount of the log",
//! checked (for tests and operators) and restored (`gatewatch rebuild`).

use std::collections::{BTreeMap, HashMap};

use redb::{ReadableTable, ReadableTableMetadata};

use super::columns::{route_of, Fields};
use super::counters::CounterDeltas;
use super::lifetimes::LifetimeDeltas;
use super::names::{self, Names};
use super::read::Snapshot;
use super::read::{token_named, TenantNumbers};
use super::records::{EventRecord, TokenRecord};
use super::sketches::Deltas;
use super::tables::*;
use super::{Store, StoreError};
use crate::model::TokenState;

/// What a recount found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecountReport {
    /// Events in the log.
    pub events: u64,
    /// Counter buckets whose stored value differs from the recount (missing or extra ones
    /// included).
    pub counter_mismatches: u64,
    /// Tokens whose stored state differs from the recount.
    pub token_mismatches: u64,
    /// Logged events missing from the time index at their time, plus the difference in
    /// entries between the two.
    pub index_mismatches: u64,
    /// Sketch buckets that differ from the same sketches recomputed from the log.
    pub sketch_mismatches: u64,
    /// Column entries that differ from those of the logged events (missing or extra ones
    /// included), blocks that are not full, value numbers that do not map both ways, and
    /// posting spans and chunks that differ from the blocks they were posted from.
    pub column_mismatches: u64,
}

impl RecountReport {
    pub fn is_consistent(&self) -> bool {
        self.counter_mismatches == 0
            && self.token_mismatches == 0
            && self.index_mismatches == 0
            && self.sketch_mismatches == 0
            && self.column_mismatches == 0
    }
}

/// Aggregates recomputed from the log alone.
struct Recount {
    events: u64,
    counters: BTreeMap<CounterKey, u64>,
    /// By (tenant, token number).
    tokens: HashMap<(u32, u64), TokenState>,
    sketches: Deltas,
}

/// Recomputes counters and token states from every event of `log`.
/// `visit` sees each record (with its tenant and seq) before it is counted.
fn recount_log(
    log: &impl ReadableTable<(u32, u64), &'static [u8]>,
    token_ids: &impl ReadableTable<(u32, u64), &'static str>,
    values: &impl ReadableTable<(u32, u8, u32), &'static [u8]>,
    names: &Names,
    mut visit: impl FnMut(u32, u64, &EventRecord) -> Result<(), StoreError>,
) -> Result<Recount, StoreError> {
    let mut counters = CounterDeltas::default();
    let mut tokens: HashMap<(u32, u64), TokenState> = HashMap::new();
    let mut sketches = Deltas::default();
    let mut events = 0;
    for entry in log.iter()? {
        let (key, bytes) = entry?;
        let (tenant, seq) = key.value();
        let record = EventRecord::decode(bytes.value())?;
        visit(tenant, seq, &record)?;
        counters.add(
            tenant,
            record.ts,
            record.counter_fields(),
            names.id(super::writer::ISSUED),
        );
        let token = record.token;
        let numbers = TenantNumbers {
            tenant,
            tokens: token_ids,
            values,
        };
        let event = record.into_event(names, &numbers)?;
        sketches.observe(tenant, &event)?;
        if let Some(id) = token {
            tokens.entry((tenant, id)).or_default().apply(&event);
        }
        events += 1;
    }
    Ok(Recount {
        events,
        counters: counters.into_map(),
        tokens,
        sketches,
    })
}

impl Snapshot {
    /// Compares every stored aggregate with a recount of the log.
    pub fn verify(&self) -> Result<RecountReport, StoreError> {
        let token_ids = self.txn().open_table(TOKEN_IDS)?;
        let log = self.txn().open_table(LOG)?;
        let value_names = self.txn().open_table(VALUE_NAMES)?;
        let mut report = RecountReport::default();
        // The time index must list every logged event at its time, and nothing else: in
        // its span's pieces when the span is packed, else in `times`; the column tables
        // must hold every logged event's entry, in the log's order. Both are checked on
        // the recount's one walk over the log.
        let times = self.txn().open_table(TIMES)?;
        let mut packed = Vec::new();
        report.index_mismatches += self.time_piece_mismatches(&mut packed)?;
        let is_packed = |tenant: u32, seq: u64| {
            let after = packed.partition_point(|&(t, first, _)| (t, first) <= (tenant, seq));
            after > 0 && {
                let (t, _, end) = packed[after - 1];
                t == tenant && seq < end
            }
        };
        let mut unpacked = 0u64;
        let value_ids = self.txn().open_table(VALUE_IDS)?;
        let (columned, short_blocks) = self.stored_entries()?;
        report.column_mismatches += short_blocks;
        // Both in (tenant, seq) order: walked side by side, so a lost entry counts once.
        let mut columned = columned.into_iter().peekable();
        let expected = recount_log(
            &log,
            &token_ids,
            &value_names,
            self.names(),
            |tenant, seq, record| {
                if !is_packed(tenant, seq) {
                    unpacked += 1;
                    let head = time_head(record.type_id, record.outcome, record.client);
                    let stored = times.get(time_key(tenant, record.ts, seq))?;
                    if stored.is_none_or(|stored| stored.value() != head) {
                        report.index_mismatches += 1;
                    }
                }
                while columned
                    .next_if(|(t, e)| (*t, e.seq) < (tenant, seq))
                    .is_some()
                {
                    report.column_mismatches += 1; // an entry of no logged event
                }
                let stored = columned.next_if(|(t, e)| (*t, e.seq) == (tenant, seq));
                let route = route_of(record, self.names())?;
                let fields = Fields::of(record, route);
                let expected = self.expected_entry(&value_ids, tenant, seq, fields)?;
                if stored.map(|(_, e)| e) != expected || expected.is_none() {
                    report.column_mismatches += 1;
                }
                Ok(())
            },
        )?;
        report.column_mismatches += columned.count() as u64;
        report.column_mismatches += self.posting_mismatches()?;
        report.index_mismatches += times.len()?.abs_diff(unpacked);
        report.events = expected.events;
        let counters = self.txn().open_table(COUNTERS)?;
        let mut seen = 0u64;
        for entry in counters.iter()? {
            let (key, count) = entry?;
            seen += 1;
            if expected.counters.get(&key.value()) != Some(&count.value()) {
                report.counter_mismatches += 1;
            }
        }
        // Buckets the recount has but the table lacks.
        let matched = seen - report.counter_mismatches;
        report.counter_mismatches += expected.counters.len() as u64 - matched;

        let tokens = self.txn().open_table(TOKENS)?;
        let mut stored_tokens = 0u64;
        for entry in tokens.iter()? {
            let (key, bytes) = entry?;
            stored_tokens += 1;
            let (tenant, token) = key.value();
            let stored = TokenRecord::decode(bytes.value())?;
            let named = token_ids.get((tenant, stored.id))?;
            if expected.tokens.get(&(tenant, stored.id)) != Some(&stored.state)
                || named.is_none_or(|name| name.value() != token)
            {
                report.token_mismatches += 1;
            }
        }
        let matched = stored_tokens - report.token_mismatches;
        report.token_mismatches += expected.tokens.len() as u64 - matched;

        // The token_ends index must hold exactly the lives of the recounted tokens.
        let mut lives: HashMap<(u32, u64, String), u64> = HashMap::new();
        for (&(tenant, id), state) in &expected.tokens {
            if let Some((end, issued)) = state.life() {
                lives.insert((tenant, end, token_named(&token_ids, tenant, id)?), issued);
            }
        }
        let ends = self.txn().open_table(TOKEN_ENDS)?;
        let mut indexed = 0u64;
        for entry in ends.iter()? {
            let (key, issued) = entry?;
            let (tenant, end, token) = key.value();
            indexed += 1;
            if lives.get(&(tenant, end, token.to_owned())) != Some(&issued.value()) {
                report.token_mismatches += 1;
            }
        }
        report.token_mismatches += (lives.len() as u64).saturating_sub(indexed);

        // The lifetime buckets must be those lives folded.
        let mut folded = LifetimeDeltas::default();
        for ((tenant, end, _), issued) in &lives {
            folded.add(*tenant, (*end, *issued));
        }
        let expected_buckets = folded.into_buckets();
        let stored_buckets = self.lifetime_buckets()?;
        report.token_mismatches += expected_buckets
            .iter()
            .filter(|(key, lives)| stored_buckets.get(key) != Some(lives))
            .count() as u64;
        report.token_mismatches += stored_buckets
            .keys()
            .filter(|key| !expected_buckets.contains_key(key))
            .count() as u64;

        for entry in value_ids.iter()? {
            let (key, id) = entry?;
            let (tenant, kind, bytes) = key.value();
            let named = value_names.get((tenant, kind, id.value()))?;
            if named.is_none_or(|named| named.value() != bytes) {
                report.column_mismatches += 1;
            }
        }
        report.column_mismatches += value_ids.len()?.abs_diff(value_names.len()?);
        if let Some(book) = self.book() {
            report.sketch_mismatches = super::sketches::mismatches(book, &expected.sketches)?;
        }
        Ok(report)
    }
}

impl Store {
    /// Recomputes every counter bucket, token state, sketch, the time index and the column
    /// tables from the log and replaces the stored ones, in one transaction. Returns what
    /// differed before the rebuild.
    pub async fn rebuild(&self) -> Result<RecountReport, StoreError> {
        let before = self.read(|snap| snap.verify()).await?;
        let shared = self.names.clone();
        let book = self.book.clone();
        let totals = self.totals.clone();
        // Recount inside the write transaction: the writer is single, so no event can
        // slip in between the recount and the replacement.
        let rebuilt = self
            .write(move |txn| {
                let names = names::snapshot(&shared);
                // Every event into `times`; the posted spans are packed again below.
                txn.open_table(SPAN_TIMES)?.retain(|_, _| false)?;
                let mut times = txn.open_table(TIMES)?;
                times.retain(|_, _| false)?;
                let expected = recount_log(
                    &txn.open_table(LOG)?,
                    &txn.open_table(TOKEN_IDS)?,
                    &txn.open_table(VALUE_NAMES)?,
                    &names,
                    |tenant, seq, record| {
                        let head = time_head(record.type_id, record.outcome, record.client);
                        times.insert(time_key(tenant, record.ts, seq), head)?;
                        Ok(())
                    },
                )?;
                drop(times);
                let watermark = txn
                    .open_table(META)?
                    .get(META_NEXT_SEQ)?
                    .map_or(1, |v| v.value());
                super::sketches::rebuild_in(txn, &book, &names, watermark)?;
                let mut counters = txn.open_table(COUNTERS)?;
                counters.retain(|_, _| false)?;
                for (key, count) in &expected.counters {
                    counters.insert(*key, *count)?;
                }
                let mut tokens = txn.open_table(TOKENS)?;
                tokens.retain(|_, _| false)?;
                let mut ends = txn.open_table(TOKEN_ENDS)?;
                ends.retain(|_, _| false)?;
                let token_ids = txn.open_table(TOKEN_IDS)?;
                for (&(tenant, id), state) in &expected.tokens {
                    let token = token_named(&token_ids, tenant, id)?;
                    let stored = TokenRecord {
                        id,
                        state: state.clone(),
                    };
                    tokens.insert((tenant, token.as_str()), stored.encode()?.as_slice())?;
                    if let Some((end, issued)) = state.life() {
                        ends.insert((tenant, end, token.as_str()), issued)?;
                    }
                }
                drop(ends);
                super::lifetimes::build_from_ends(txn)?;
                // Log records name users and routes by number, so numbers stay; the lookup from values
                // to numbers is remade from the numbers' table.
                let mut ids = txn.open_table(VALUE_IDS)?;
                ids.retain(|_, _| false)?;
                for entry in txn.open_table(VALUE_NAMES)?.iter()? {
                    let (key, bytes) = entry?;
                    let (tenant, kind, id) = key.value();
                    ids.insert((tenant, kind, bytes.value()), id)?;
                }
                drop(ids);
                txn.open_table(COLUMN_TAIL)?.retain(|_, _| false)?;
                txn.open_table(COLUMN_BLOCKS)?.retain(|_, _| false)?;
                super::postings::PostingWriter::open(txn)?.clear()?;
                super::columns::fold_log(txn, None, usize::MAX, &names)?;
                super::time_pieces::pack_posted(txn, usize::MAX)?;
                // The day tallies counted before this generation are not used again.
                let mut meta = txn.open_table(META)?;
                let rebuilds = meta.get(META_REBUILDS)?.map_or(0, |v| v.value());
                meta.insert(META_REBUILDS, rebuilds + 1)?;
                drop(meta);
                // On the writer thread, before any later group: the totals count the new
                // blocks once this transaction has committed.
                totals.forget();
                Ok(())
            })
            .await;
        // Counting starts after the commit; stopping a build still running joins its
        // thread, so off the async runtime.
        let (totals, db) = (self.totals.clone(), self.db.clone());
        tokio::task::spawn_blocking(move || totals.spawn_build(db))
            .await
            .map_err(|e| StoreError::Storage(format!("starting the totals count failed: {e}")))?;
        rebuilt?;
        Ok(before)
    }
}
