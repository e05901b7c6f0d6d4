//! Read methods over a consistent snapshot: events by time range and filters, one event by
//! seq, counter buckets. Readers never block the writer (redb MVCC).

use std::collections::HashMap;
use std::sync::Arc;

use ipnet::IpNet;
use redb::ReadTransaction;

use super::columns::{Column, ValueRef, KIND_ROUTE, KIND_USER};
use super::counters::CounterRow;
use super::day_tallies::DayTallies;
use super::names::Names;
use super::records::{EventRecord, Numbers, RecordHead, RouteRef, Text, TokenRecord};
use super::sketches::SharedBook;
use super::tables::*;
use super::totals::Totals;
use super::StoreError;
use crate::model::time::{day_of, hour_of, HOUR_MS};
use crate::model::{Event, Outcome};

/// A range scan reads the tenant's whole log in seq order when at least one in this many
/// of its events is in the range: reading pages in order is several times cheaper per
/// event than fetching each one through the time index.
const SEQUENTIAL_SHARE: u64 = 4;

/// A listing filtered by type, outcome or client gathers an hour's candidates and sorts
/// them when the hour's counters saw at most this many matching events; in an hour with
/// more, it merges the time index newest first and stops when its page is full.
#[cfg(not(test))]
const GATHERED_MAX: u64 = 4_096;
/// Low, so that tests list hours both ways.
#[cfg(test)]
const GATHERED_MAX: u64 = 16;

/// The hours `[first, end)` that hold `[from, to)` (`to` > `from`), saturated at the
/// largest hour.
fn hours_of(from: u64, to: u64) -> (u32, u32) {
    let hour = |ms: u64| u32::try_from(ms / HOUR_MS).unwrap_or(u32::MAX);
    (hour(from), hour(to.saturating_sub(1)).saturating_add(1))
}

/// The token `tenant` numbered `id` (log records name tokens by number).
pub(super) fn token_named(
    table: &impl redb::ReadableTable<(u32, u64), &'static str>,
    tenant: u32,
    id: u64,
) -> Result<String, StoreError> {
    match table.get((tenant, id))? {
        Some(token) => Ok(token.value().to_owned()),
        None => Err(StoreError::Corrupt(format!("token number {id} is unknown"))),
    }
}

/// The text numbered `id` of `kind` in `tenant`, from a [`VALUE_NAMES`] table: a user id
/// or a route (log records name both by number; routes since schema 7).
pub(super) fn text_named(
    table: &impl redb::ReadableTable<(u32, u8, u32), &'static [u8]>,
    tenant: u32,
    kind: u8,
    id: u32,
) -> Result<String, StoreError> {
    let what = if kind == KIND_ROUTE { "route" } else { "user" };
    let bytes = table
        .get((tenant, kind, id))?
        .ok_or_else(|| StoreError::Corrupt(format!("{what} number {id} is unknown")))?;
    String::from_utf8(bytes.value().to_vec())
        .map_err(|_| StoreError::Corrupt(format!("{what} number {id} is not text")))
}

/// The numbers one tenant's records hold, named from the tables that map them back
/// ([`TOKEN_IDS`], [`VALUE_NAMES`]) of any transaction.
pub(super) struct TenantNumbers<'a, T, V> {
    pub tenant: u32,
    pub tokens: &'a T,
    pub values: &'a V,
}

impl<T, V> Numbers for TenantNumbers<'_, T, V>
where
    T: redb::ReadableTable<(u32, u64), &'static str>,
    V: redb::ReadableTable<(u32, u8, u32), &'static [u8]>,
{
    fn token(&self, id: u64) -> Result<String, StoreError> {
        token_named(self.tokens, self.tenant, id)
    }

    fn user(&self, id: u32) -> Result<String, StoreError> {
        text_named(self.values, self.tenant, KIND_USER, id)
    }

    fn route(&self, id: u32) -> Result<String, StoreError> {
        text_named(self.values, self.tenant, KIND_ROUTE, id)
    }
}

type TokenIds = redb::ReadOnlyTable<(u32, u64), &'static str>;
type ValueNames = redb::ReadOnlyTable<(u32, u8, u32), &'static [u8]>;

/// The tables a snapshot decodes records with.
struct NumberTables {
    tokens: TokenIds,
    values: ValueNames,
}

impl NumberTables {
    fn of(&self, tenant: u32) -> TenantNumbers<'_, TokenIds, ValueNames> {
        TenantNumbers {
            tenant,
            tokens: &self.tokens,
            values: &self.values,
        }
    }
}

/// The logged record of an event the time index lists.
pub(super) fn logged<'a>(
    log: &'a redb::ReadOnlyTable<(u32, u64), &'static [u8]>,
    tenant: u32,
    seq: u64,
) -> Result<redb::AccessGuard<'a, &'static [u8]>, StoreError> {
    log.get((tenant, seq))?
        .ok_or_else(|| StoreError::Corrupt(format!("event {seq} is indexed but not logged")))
}

/// A read transaction plus the interned names it may refer to.
pub struct Snapshot {
    txn: ReadTransaction,
    names: Arc<Names>,
    book: Option<SharedBook>,
    totals: Option<Arc<Totals>>,
    days: Arc<DayTallies>,
}

/// An event as stored: the validated event plus what the server added.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    pub seq: u64,
    pub tenant: u32,
    pub received_at: u64,
    pub event: Event,
}

/// Which events a listing wants. Time bounds are `[from, to)` in epoch ms.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    pub from: u64,
    pub to: u64,
    pub event_type: Option<String>,
    pub outcome: Option<Outcome>,
    pub client_id: Option<String>,
    pub user_id: Option<String>,
    pub token: Option<String>,
    pub ip: Option<IpNet>,
    /// Lower-cased substring searched in route, user agent, error and context.
    pub q: Option<String>,
}

impl EventFilter {
    pub fn matches(&self, e: &Event) -> bool {
        fn same(want: &Option<String>, have: &Option<String>) -> bool {
            want.is_none() || want.as_deref() == have.as_deref()
        }
        (self.event_type.is_none() || self.event_type.as_deref() == Some(e.event_type.as_str()))
            && self.outcome.is_none_or(|o| o == e.outcome)
            && same(&self.client_id, &e.client_id)
            && same(&self.user_id, &e.user_id)
            && same(&self.token, &e.token)
            && self
                .ip
                .is_none_or(|net| e.ip.is_some_and(|ip| net.contains(&ip)))
            && self.q.as_deref().is_none_or(|q| {
                [&e.route, &e.user_agent, &e.error, &e.context]
                    .into_iter()
                    .flatten()
                    .any(|text| contains_folded(text, q))
            })
    }
}

/// What a listing checks on a record before naming its token and user (two lookups
/// each): its address and the text search, which need nothing but the record, the
/// interned names and the route's text. Whether each interned text and each numbered
/// route matches the search is remembered, so each is looked at once.
struct RecordCheck<'f, N> {
    filter: &'f EventFilter,
    names: &'f Names,
    numbers: N,
    texts: HashMap<u32, bool>,
    routes: HashMap<u32, bool>,
}

impl<'f, N: Numbers> RecordCheck<'f, N> {
    fn new(filter: &'f EventFilter, names: &'f Names, numbers: N) -> RecordCheck<'f, N> {
        RecordCheck {
            filter,
            names,
            numbers,
            texts: HashMap::new(),
            routes: HashMap::new(),
        }
    }

    /// False when `record` cannot match the filter; true says nothing yet (the decoded
    /// event goes through [`EventFilter::matches`]).
    fn may_match(&mut self, record: &EventRecord) -> Result<bool, StoreError> {
        if let Some(net) = &self.filter.ip {
            if !record.ip.is_some_and(|ip| net.contains(&ip)) {
                return Ok(false);
            }
        }
        let Some(q) = self.filter.q.as_deref() else {
            return Ok(true);
        };
        let (names, texts) = (self.names, &mut self.texts);
        let mut text_matches = |text: &Text| match text {
            Text::Id(id) => *texts
                .entry(*id)
                .or_insert_with(|| names.text(*id).is_some_and(|t| contains_folded(t, q))),
            Text::Inline(t) => contains_folded(t, q),
        };
        let route_matches = match &record.route {
            None => false,
            Some(RouteRef::Text(text)) => text_matches(text),
            Some(RouteRef::Number(id)) => match self.routes.get(id) {
                Some(matches) => *matches,
                None => {
                    let matches = contains_folded(&self.numbers.route(*id)?, q);
                    self.routes.insert(*id, matches);
                    matches
                }
            },
        };
        Ok(route_matches
            || [&record.user_agent, &record.error]
                .into_iter()
                .flatten()
                .any(&mut text_matches)
            || record
                .context
                .as_deref()
                .is_some_and(|c| contains_folded(c, q)))
    }
}

/// Whether `text`, lower-cased, contains `q` (lower-cased already): as
/// `text.to_lowercase().contains(q)`, without the copy when `text` is ASCII.
fn contains_folded(text: &str, q: &str) -> bool {
    if !text.is_ascii() {
        return text.to_lowercase().contains(q);
    }
    q.is_empty()
        || text
            .as_bytes()
            .windows(q.len())
            .any(|w| w.eq_ignore_ascii_case(q.as_bytes()))
}

/// One page of a newest-first listing.
#[derive(Debug, Clone, PartialEq)]
pub struct EventPage {
    pub events: Vec<StoredEvent>,
    /// Where the next page starts: the (ts, seq) of the last event returned, exclusive.
    pub next: Option<(u64, u64)>,
}

impl Snapshot {
    pub(super) fn new(
        txn: ReadTransaction,
        names: Arc<Names>,
        book: Option<SharedBook>,
        totals: Option<Arc<Totals>>,
        days: Arc<DayTallies>,
    ) -> Snapshot {
        Snapshot {
            txn,
            names,
            book,
            totals,
            days,
        }
    }

    pub(super) fn days(&self) -> &DayTallies {
        &self.days
    }

    pub(super) fn book(&self) -> Option<&SharedBook> {
        self.book.as_ref()
    }

    pub(super) fn totals(&self) -> Option<&Totals> {
        self.totals.as_deref()
    }

    pub(super) fn txn(&self) -> &ReadTransaction {
        &self.txn
    }

    pub fn names(&self) -> &Names {
        &self.names
    }

    /// Newest-first events of `tenant` matching `filter`, strictly older than `before`
    /// (a (ts, seq) cursor) when given.
    pub fn events_page(
        &self,
        tenant: u32,
        filter: &EventFilter,
        before: Option<(u64, u64)>,
        limit: usize,
    ) -> Result<EventPage, StoreError> {
        let log = self.txn.open_table(LOG)?;
        let tokens = self.number_tables()?;
        // Events come strictly before this (ts, seq), newest first.
        let upper = match before {
            Some((ts, seq)) if ts < filter.to => (ts, seq),
            _ => (filter.to, 0),
        };
        // Type, outcome and client are checked on the record's head, before decoding it.
        let want_id = |text: &Option<String>| match text {
            Some(t) => self.names.id(t).map(Some).ok_or(()),
            None => Ok(None),
        };
        let (Ok(want_type), Ok(want_client)) =
            (want_id(&filter.event_type), want_id(&filter.client_id))
        else {
            // A type or client never seen has no events.
            return Ok(EventPage {
                events: Vec::new(),
                next: None,
            });
        };
        // An exact user, token or address is looked up in the column blocks.
        match self.column_filter(tenant, filter)? {
            Some(Some((column, number))) => {
                let (from, to) = hours_of(filter.from, filter.to);
                let seqs = self.seqs_with(tenant, column, number, from, to)?;
                return self.page_of(tenant, filter, seqs, before, limit);
            }
            Some(None) => {
                return Ok(EventPage {
                    events: Vec::new(),
                    next: None,
                })
            }
            None => {}
        }
        let want_outcome = filter.outcome.map(|o| o.code());
        let wanted = |type_id: u32, outcome: u8, client: Option<u32>| {
            want_type.is_none_or(|t| t == type_id)
                && want_outcome.is_none_or(|o| o == outcome)
                && want_client.is_none_or(|c| Some(c) == client)
        };
        let mut events: Vec<StoredEvent> = Vec::new();
        let mut next = None;
        let mut check = RecordCheck::new(filter, &self.names, tokens.of(tenant));
        // Fetches and checks the event `seq` (whose head matched); true once the page is
        // full.
        let mut take = |seq: u64| -> Result<bool, StoreError> {
            let record = EventRecord::decode(logged(&log, tenant, seq)?.value())?;
            if !check.may_match(&record)? {
                return Ok(false);
            }
            let stored = self.stored_event(&tokens, tenant, seq, record)?;
            if filter.matches(&stored.event) {
                if let Some(last) = events.last().filter(|_| events.len() == limit) {
                    next = Some((last.event.ts, last.seq));
                    return Ok(true);
                }
                events.push(stored);
            }
            Ok(false)
        };
        // Hour by hour, newest first, over the hours whose counters saw the wanted type,
        // outcome and client (or any event). The time index holds each event's head, so
        // only the matching ones are fetched from the log.
        let hours = self.hours_with(tenant, want_type, want_outcome, want_client, filter)?;
        let times = self.time_reader(tenant)?;
        let narrowed = want_type.is_some() || want_outcome.is_some() || want_client.is_some();
        let mut found = Vec::new();
        'hours: for &(h, matching) in hours.iter().rev() {
            let start = (u64::from(h) * HOUR_MS).max(filter.from);
            let end = ((u64::from(h) + 1) * HOUR_MS).min(filter.to);
            if start >= end || start > upper.0 {
                continue;
            }
            let below = upper.min((end, 0));
            if narrowed && matching <= GATHERED_MAX {
                // Few events of the hour match: the hour's entries are walked source by
                // source (no merge), the candidates gathered and sorted.
                found.clear();
                times.for_each(start, end, |ts, seq, head| {
                    if (ts, seq) < below && wanted(head.type_id, head.outcome, head.client) {
                        found.push((ts, seq));
                    }
                    Ok(())
                })?;
                found.sort_unstable_by(|a, b| b.cmp(a));
                for &(_, seq) in &found {
                    if take(seq)? {
                        break 'hours;
                    }
                }
            } else {
                // The time index merged newest first, so that a page stops early.
                let mut hour = times.newest_first(start, below)?;
                while let Some(((_, seq), head)) = hour.next()? {
                    if !wanted(head.type_id, head.outcome, head.client) {
                        continue;
                    }
                    if take(seq)? {
                        break 'hours;
                    }
                }
            }
        }
        Ok(EventPage { events, next })
    }

    /// The hours of `[filter.from, filter.to)`, ascending, in which `tenant`'s counters saw
    /// an event of the wanted type, outcome and client (any event when none is set), each
    /// with how many they saw.
    fn hours_with(
        &self,
        tenant: u32,
        event_type: Option<u32>,
        outcome: Option<u8>,
        client: Option<u32>,
        filter: &EventFilter,
    ) -> Result<Vec<(u32, u64)>, StoreError> {
        let (from, to) = hours_of(filter.from, filter.to);
        let (dim, value) = match client {
            Some(c) => (Dim::Client, Some(c)),
            None => (Dim::Type, Some(0)),
        };
        let mut hours: Vec<(u32, u64)> = self
            .counters(tenant, Granularity::Hour, dim, value, from, to)?
            .into_iter()
            .filter(|row| {
                row.count > 0
                    && event_type.is_none_or(|t| t == row.type_id)
                    && outcome.is_none_or(|o| o == row.outcome)
            })
            .map(|row| (row.bucket, row.count))
            .collect();
        hours.sort_unstable();
        hours.dedup_by(|later, first| {
            let same = later.0 == first.0;
            if same {
                first.1 += later.1;
            }
            same
        });
        Ok(hours)
    }

    /// Calls `visit` for every event of client `client` of `tenant` in `[from, to)`, in
    /// no particular order. The client is checked on each record's head, so the others
    /// are never decoded whole.
    pub fn for_each_event_of_client(
        &self,
        tenant: u32,
        from: u64,
        to: u64,
        client: &str,
        visit: impl FnMut(StoredEvent) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let Some(want) = self.names.id(client) else {
            return Ok(()); // a client never seen has no events
        };
        self.scan(
            tenant,
            from,
            to,
            |head, _| Ok(head.client == Some(want)),
            visit,
        )
    }

    /// Calls `visit` for every event of `tenant` in `[from, to)`, in no particular order.
    pub fn for_each_event(
        &self,
        tenant: u32,
        from: u64,
        to: u64,
        visit: impl FnMut(StoredEvent) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        self.scan(tenant, from, to, |_, _| Ok(true), visit)
    }

    /// Calls `visit` for every event of `tenant` in `[from, to)` that carries `token`, in
    /// no particular order. The token's number is compared on each record before anything
    /// is resolved.
    pub fn for_each_event_of_token(
        &self,
        tenant: u32,
        from: u64,
        to: u64,
        token: &str,
        visit: impl FnMut(StoredEvent) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        match self.token_number(tenant, token)? {
            Some(number) => self.for_each_event_in(tenant, from, to, Column::Token, number, visit),
            None => Ok(()), // a token never seen has no events
        }
    }

    /// Calls `visit` for every event of `tenant` in `[from, to)` of user `user`, in seq
    /// order. The user's events are found in the column blocks.
    pub fn for_each_event_of_user(
        &self,
        tenant: u32,
        from: u64,
        to: u64,
        user: &str,
        visit: impl FnMut(StoredEvent) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        match self.value_number(tenant, ValueRef::User(user))? {
            Some(n) => self.for_each_event_in(tenant, from, to, Column::User, n.into(), visit),
            None => Ok(()), // a user never seen has no events
        }
    }

    /// Calls `visit` for every event of `tenant` in `[from, to)` whose `column` holds
    /// `number`, in seq order.
    fn for_each_event_in(
        &self,
        tenant: u32,
        from: u64,
        to: u64,
        column: Column,
        number: u64,
        mut visit: impl FnMut(StoredEvent) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let (log, tokens) = (self.txn.open_table(LOG)?, self.number_tables()?);
        let hours = hours_of(from, to);
        for (_, seq) in self.seqs_with(tenant, column, number, hours.0, hours.1)? {
            let stored =
                self.decode_event(&tokens, tenant, seq, logged(&log, tenant, seq)?.value())?;
            if (from..to).contains(&stored.event.ts) {
                visit(stored)?;
            }
        }
        Ok(())
    }

    /// The number of `token` in `tenant`, if it has been seen.
    fn token_number(&self, tenant: u32, token: &str) -> Result<Option<u64>, StoreError> {
        match self.txn.open_table(TOKENS)?.get((tenant, token))? {
            Some(bytes) => Ok(Some(TokenRecord::decode(bytes.value())?.id)),
            None => Ok(None),
        }
    }

    /// The column and number that an exact user, token or single-address filter selects
    /// (the first of them that is set); `Some(None)` when that value has no number, so no
    /// event carries it.
    fn column_filter(
        &self,
        tenant: u32,
        filter: &EventFilter,
    ) -> Result<Option<Option<(Column, u64)>>, StoreError> {
        if let Some(token) = &filter.token {
            let number = self.token_number(tenant, token)?;
            return Ok(Some(number.map(|n| (Column::Token, n))));
        }
        let value = match (&filter.user_id, filter.ip) {
            (Some(user), _) => (Column::User, ValueRef::User(user)),
            (None, Some(net)) if net.prefix_len() == net.max_prefix_len() => {
                (Column::Ip, ValueRef::Ip(net.addr()))
            }
            _ => return Ok(None),
        };
        let number = self.value_number(tenant, value.1)?;
        Ok(Some(number.map(|n| (value.0, u64::from(n)))))
    }

    /// A newest-first page of the events among `found` ((hour, seq) pairs) that match
    /// `filter`, older than `before` when given. Hours order the events but within an
    /// hour, so heads are read one hour at a time, newest hour first, until the page is
    /// full.
    fn page_of(
        &self,
        tenant: u32,
        filter: &EventFilter,
        mut found: Vec<(u32, u64)>,
        before: Option<(u64, u64)>,
        limit: usize,
    ) -> Result<EventPage, StoreError> {
        let (log, tokens) = (self.txn.open_table(LOG)?, self.number_tables()?);
        let last_hour = before.map_or(u32::MAX, |(ts, _)| hour_of(ts));
        found.retain(|(hour, _)| *hour <= last_hour);
        found.sort_unstable_by(|a, b| b.cmp(a));
        let mut events: Vec<StoredEvent> = Vec::new();
        let mut hour_places = Vec::new();
        for hour in found.chunk_by(|a, b| a.0 == b.0) {
            hour_places.clear();
            for &(_, seq) in hour {
                let head = RecordHead::decode(logged(&log, tenant, seq)?.value())?;
                let place = (head.ts, seq);
                if (filter.from..filter.to).contains(&head.ts) && before.is_none_or(|b| place < b) {
                    hour_places.push(place);
                }
            }
            hour_places.sort_unstable_by(|a, b| b.cmp(a));
            for &(_, seq) in &hour_places {
                let stored =
                    self.decode_event(&tokens, tenant, seq, logged(&log, tenant, seq)?.value())?;
                if filter.matches(&stored.event) {
                    if let Some(last) = events.last().filter(|_| events.len() == limit) {
                        let next = Some((last.event.ts, last.seq));
                        return Ok(EventPage { events, next });
                    }
                    events.push(stored);
                }
            }
        }
        Ok(EventPage { events, next: None })
    }

    /// The events of `tenant` in `[from, to)` whose head passes `keep`. When the range
    /// holds most of the tenant's events, its log is read in seq order (pages one after
    /// the other) and the rest skipped on their heads; otherwise the time index is walked
    /// and each event fetched from the log.
    fn scan(
        &self,
        tenant: u32,
        from: u64,
        to: u64,
        keep: impl Fn(&RecordHead, &[u8]) -> Result<bool, StoreError>,
        mut visit: impl FnMut(StoredEvent) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let log = self.txn.open_table(LOG)?;
        let tokens = self.number_tables()?;
        let mut consider = |seq: u64, bytes: &[u8]| -> Result<(), StoreError> {
            let head = RecordHead::decode(bytes)?;
            if (from..to).contains(&head.ts) && keep(&head, bytes)? {
                visit(self.decode_event(&tokens, tenant, seq, bytes)?)?;
            }
            Ok(())
        };
        let (in_range, total) = self.events_near(tenant, from, to)?;
        if in_range.saturating_mul(SEQUENTIAL_SHARE) >= total {
            for entry in log.range((tenant, 0)..=(tenant, u64::MAX))? {
                let (key, bytes) = entry?;
                consider(key.value().1, bytes.value())?;
            }
        } else {
            self.time_reader(tenant)?.for_each(from, to, |_, seq, _| {
                consider(seq, logged(&log, tenant, seq)?.value())
            })?;
        }
        Ok(())
    }

    /// How many events of `tenant` fall on the UTC days touching `[from, to)`, and how
    /// many it has in all, from the day counters.
    pub(super) fn events_near(
        &self,
        tenant: u32,
        from: u64,
        to: u64,
    ) -> Result<(u64, u64), StoreError> {
        let days = day_of(from)..=day_of(to.saturating_sub(1));
        let rows = self.counters(tenant, Granularity::Day, Dim::Type, Some(0), 0, u32::MAX)?;
        Ok(rows.iter().fold((0, 0), |(near, total), row| {
            let here = if days.contains(&row.bucket) {
                row.count
            } else {
                0
            };
            (near + here, total + row.count)
        }))
    }

    /// The token `tenant` numbered `id`.
    pub fn token_named(&self, tenant: u32, id: u64) -> Result<String, StoreError> {
        token_named(&self.txn.open_table(TOKEN_IDS)?, tenant, id)
    }

    /// The event with server id `seq`, if it belongs to `tenant`.
    pub fn event(&self, tenant: u32, seq: u64) -> Result<Option<StoredEvent>, StoreError> {
        let tokens = self.number_tables()?;
        match self.txn.open_table(LOG)?.get((tenant, seq))? {
            Some(bytes) => self
                .decode_event(&tokens, tenant, seq, bytes.value())
                .map(Some),
            None => Ok(None),
        }
    }

    fn number_tables(&self) -> Result<NumberTables, StoreError> {
        Ok(NumberTables {
            tokens: self.txn.open_table(TOKEN_IDS)?,
            values: self.txn.open_table(VALUE_NAMES)?,
        })
    }

    fn decode_event(
        &self,
        numbers: &NumberTables,
        tenant: u32,
        seq: u64,
        bytes: &[u8],
    ) -> Result<StoredEvent, StoreError> {
        self.stored_event(numbers, tenant, seq, EventRecord::decode(bytes)?)
    }

    /// Event `seq` of `tenant` from its decoded record, its token and user named.
    fn stored_event(
        &self,
        numbers: &NumberTables,
        tenant: u32,
        seq: u64,
        record: EventRecord,
    ) -> Result<StoredEvent, StoreError> {
        Ok(StoredEvent {
            seq,
            tenant,
            received_at: record.received_at(),
            event: record.into_event(&self.names, &numbers.of(tenant))?,
        })
    }

    /// Counter buckets of `tenant` for `dim` in buckets `[from, to)`, for every value of
    /// the dimension (or only `value`), skipping from one value's range to the next.
    pub fn counters(
        &self,
        tenant: u32,
        granularity: Granularity,
        dim: Dim,
        value: Option<u32>,
        from: u32,
        to: u32,
    ) -> Result<Vec<CounterRow>, StoreError> {
        let table = self.txn.open_table(COUNTERS)?;
        let (g, d) = (granularity as u8, dim as u8);
        let mut rows = Vec::new();
        let mut next_value = value.unwrap_or(0);
        loop {
            let start: CounterKey = (tenant, g, d, next_value, from, 0, 0);
            let end: CounterKey = (tenant, g, d, next_value, to, 0, 0);
            for entry in table.range(start..end)? {
                let (key, count) = entry?;
                rows.push(CounterRow::from_key(key.value(), count.value()));
            }
            if value.is_some() || next_value == u32::MAX {
                break;
            }
            // Find the next dimension value that has any bucket at all.
            let after: CounterKey = (tenant, g, d, next_value + 1, 0, 0, 0);
            let limit: CounterKey = (tenant, g, d + 1, 0, 0, 0, 0);
            match table.range(after..limit)?.next() {
                Some(entry) => next_value = entry?.0.value().3,
                None => break,
            }
        }
        Ok(rows)
    }

    /// Calls `visit` with every token of `tenant` and its state, in token order.
    pub fn for_each_token(
        &self,
        tenant: u32,
        mut visit: impl FnMut(&str, crate::model::TokenState) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        self.for_each_token_after(tenant, None, |token, state| {
            visit(token, state).map(|()| true)
        })
    }

    /// Calls `visit` with the tokens of `tenant` after `after` (exclusive), in token order,
    /// until it answers `false`.
    pub fn for_each_token_after(
        &self,
        tenant: u32,
        after: Option<&str>,
        mut visit: impl FnMut(&str, crate::model::TokenState) -> Result<bool, StoreError>,
    ) -> Result<(), StoreError> {
        use std::ops::Bound;
        let table = self.txn.open_table(TOKENS)?;
        let start = match after {
            Some(token) => Bound::Excluded((tenant, token)),
            None => Bound::Included((tenant, "")),
        };
        let end = match tenant.checked_add(1) {
            Some(next) => Bound::Excluded((next, "")),
            None => Bound::Unbounded,
        };
        for entry in table.range::<(u32, &str)>((start, end))? {
            let (key, bytes) = entry?;
            let stored = TokenRecord::decode(bytes.value())?;
            if !visit(key.value().1, stored.state)? {
                break;
            }
        }
        Ok(())
    }

    /// Calls `visit` with (token, end, issued) for every token of `tenant` whose life ends
    /// in `[from, to)`.
    pub fn for_each_token_life(
        &self,
        tenant: u32,
        from: u64,
        to: u64,
        mut visit: impl FnMut(&str, u64, u64) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let ends = self.txn.open_table(TOKEN_ENDS)?;
        for entry in ends.range((tenant, from, "")..(tenant, to, ""))? {
            let (key, issued) = entry?;
            let (_, end, token) = key.value();
            visit(token, end, issued.value())?;
        }
        Ok(())
    }

    /// The stored state of one token.
    pub fn token_state(
        &self,
        tenant: u32,
        token: &str,
    ) -> Result<Option<crate::model::TokenState>, StoreError> {
        let table = self.txn.open_table(TOKENS)?;
        match table.get((tenant, token))? {
            Some(bytes) => TokenRecord::decode(bytes.value()).map(|t| Some(t.state)),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::contains_folded;

    #[test]
    fn folded_search_equals_lowercasing_the_text() {
        let texts = [
            "",
            "Mozilla BOT-Scanner",
            "/Join/Secret?x=1",
            "ÉCOLE Zürich",
            "\u{212A}elvin", // the Kelvin sign lower-cases to an ASCII k
            "İstanbul",
            "a",
        ];
        let needles = [
            "",
            "bot",
            "bot-scanner",
            "join/s",
            "école",
            "zür",
            "kelvin",
            "k",
            "i̇st",
            "x",
            "a",
        ];
        for text in texts {
            for q in needles {
                assert_eq!(
                    contains_folded(text, q),
                    text.to_lowercase().contains(q),
                    "{text:?} / {q:?}"
                );
            }
        }
    }
}
