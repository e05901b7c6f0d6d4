//! `/top`: the values of one dimension with the most events in a range, exact.
//!
//! Types, grant types and clients are read from counter buckets. Users, IPs, tokens and
//! routes are counted from the column blocks (a few bytes per event, see `store::columns`), or, for a
//! range that holds most of a tenant's events, taken from the running totals less the
//! events outside it (`store::Totals`); only the values that can make the list are named.

use std::collections::HashMap;

use super::HourRange;
use crate::model::time::hour_of;
use crate::model::Outcome;
use crate::store::columns::{Column, KIND_IP, KIND_ROUTE, KIND_USER};
use crate::store::tally::limit_th_largest;
use crate::store::{Dim, Snapshot, StoreError};

/// What `/top` ranks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopDim {
    ClientId,
    UserId,
    Ip,
    Token,
    Route,
    Type,
    GrantType,
}

impl TopDim {
    pub fn parse(text: &str) -> Option<TopDim> {
        Some(match text {
            "client_id" => TopDim::ClientId,
            "user_id" => TopDim::UserId,
            "ip" => TopDim::Ip,
            "token" => TopDim::Token,
            "route" => TopDim::Route,
            "type" => TopDim::Type,
            "grant_type" => TopDim::GrantType,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            TopDim::ClientId => "client_id",
            TopDim::UserId => "user_id",
            TopDim::Ip => "ip",
            TopDim::Token => "token",
            TopDim::Route => "route",
            TopDim::Type => "type",
            TopDim::GrantType => "grant_type",
        }
    }
}

/// One ranked value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopItem {
    pub key: String,
    pub count: u64,
    /// Events of this value with outcome `failure`.
    pub failures: u64,
}

#[derive(Default)]
struct Tally(HashMap<String, (u64, u64)>);

impl Tally {
    fn add(&mut self, key: &str, outcome: Outcome, count: u64) {
        let entry = match self.0.get_mut(key) {
            Some(entry) => entry,
            None => self.0.entry(key.to_owned()).or_default(),
        };
        entry.0 += count;
        if outcome == Outcome::Failure {
            entry.1 += count;
        }
    }

    /// Most events first, ties broken by key. Only the values at or above the last
    /// place's count are collected.
    fn ranked(self, limit: usize) -> Vec<TopItem> {
        let counts = self.0.values().map(|(count, _)| *count);
        let floor = limit_th_largest(counts, limit).unwrap_or(1);
        let items = self
            .0
            .into_iter()
            .filter(|(_, (count, _))| *count >= floor)
            .map(|(key, (count, failures))| TopItem {
                key,
                count,
                failures,
            })
            .collect();
        best(items, limit)
    }
}

/// The first `limit` of `items`, most events first and ties broken by key.
fn best(mut items: Vec<TopItem>, limit: usize) -> Vec<TopItem> {
    items.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.key.cmp(&b.key)));
    items.truncate(limit);
    items
}

fn narrow(id: u64) -> Result<u32, StoreError> {
    u32::try_from(id).map_err(|_| StoreError::Corrupt(format!("value number {id} is too large")))
}

/// The `limit` values with the most events among `candidates` (number, events, failures),
/// most first and ties broken by key. The candidates are the values at or above the last
/// place's count (see `Tally::candidates`), so only they are named.
fn ranked_numbers(
    candidates: Vec<(u64, u64, u64)>,
    limit: usize,
    name: impl Fn(u64) -> Result<String, StoreError>,
) -> Result<Vec<TopItem>, StoreError> {
    let items = candidates
        .into_iter()
        .map(|(id, count, failures)| {
            Ok(TopItem {
                key: name(id)?,
                count,
                failures,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    Ok(best(items, limit))
}

/// The `limit` values of `dim` with the most events of `tenant` in `range` (only events
/// with `outcome`, when given).
pub fn top(
    snap: &Snapshot,
    tenant: u32,
    dim: TopDim,
    range: HourRange,
    outcome: Option<Outcome>,
    limit: usize,
) -> Result<Vec<TopItem>, StoreError> {
    let column = |column| top_of_column(snap, tenant, column, range, outcome, limit);
    let counter_dim = match dim {
        TopDim::Type => Dim::Type,
        TopDim::GrantType => Dim::GrantType,
        TopDim::ClientId => Dim::Client,
        TopDim::UserId => return column(Column::User),
        TopDim::Ip => return column(Column::Ip),
        TopDim::Token => return column(Column::Token),
        TopDim::Route => return column(Column::Route),
    };
    let names = snap.names();
    let mut tally = Tally::default();
    let wanted = |o: Outcome| outcome.is_none_or(|want| want == o);
    let value = (counter_dim == Dim::Type).then_some(0);
    let mut rows = Vec::new();
    for (granularity, from, to) in range.spans() {
        rows.extend(snap.counters(tenant, granularity, counter_dim, value, from, to)?);
    }
    for row in rows {
        let Some(o) = Outcome::from_code(row.outcome).filter(|o| wanted(*o)) else {
            continue;
        };
        let key_id = if counter_dim == Dim::Type {
            row.type_id
        } else {
            row.value
        };
        tally.add(names.text(key_id).unwrap_or("?"), o, row.count);
    }
    Ok(tally.ranked(limit))
}

/// [`top`] of a dimension with a column: counted from the column tables.
fn top_of_column(
    snap: &Snapshot,
    tenant: u32,
    column: Column,
    range: HourRange,
    outcome: Option<Outcome>,
    limit: usize,
) -> Result<Vec<TopItem>, StoreError> {
    let (from, to) = (hour_of(range.from), hour_of(range.to));
    let counts = snap.column_counts(tenant, column, from, to, outcome.map(|o| o.code()))?;
    ranked_numbers(counts.candidates(limit), limit, |id| match column {
        Column::User => snap.value_named(tenant, KIND_USER, narrow(id)?),
        Column::Ip => snap.value_named(tenant, KIND_IP, narrow(id)?),
        Column::Route => snap.value_named(tenant, KIND_ROUTE, narrow(id)?),
        Column::Token => snap.token_named(tenant, id),
    })
}
