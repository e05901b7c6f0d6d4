//! `/timeseries`: event counts per hour or day, optionally split by a dimension, every
//! bucket present (zeros included). Answered from counter buckets.

use std::collections::BTreeMap;

use crate::model::time::{DAY_MS, HOUR_MS};
use crate::model::Outcome;
use crate::store::{Dim, Granularity, Snapshot, StoreError};

/// Bucket width.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interval {
    Hour,
    Day,
}

impl Interval {
    pub fn parse(text: &str) -> Option<Interval> {
        match text {
            "hour" => Some(Interval::Hour),
            "day" => Some(Interval::Day),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Interval::Hour => "hour",
            Interval::Day => "day",
        }
    }

    pub fn millis(self) -> u64 {
        match self {
            Interval::Hour => HOUR_MS,
            Interval::Day => DAY_MS,
        }
    }

    fn granularity(self) -> Granularity {
        match self {
            Interval::Hour => Granularity::Hour,
            Interval::Day => Granularity::Day,
        }
    }
}

/// What the series are split by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupBy {
    /// One series, keyed `total`.
    Nothing,
    Type,
    Outcome,
    GrantType,
    ClientId,
}

impl GroupBy {
    pub fn parse(text: &str) -> Option<GroupBy> {
        match text {
            "type" => Some(GroupBy::Type),
            "outcome" => Some(GroupBy::Outcome),
            "grant_type" => Some(GroupBy::GrantType),
            "client_id" => Some(GroupBy::ClientId),
            _ => None,
        }
    }
}

/// A request for series over `[from, to)`, both multiples of the interval.
#[derive(Debug, Clone)]
pub struct SeriesRequest {
    pub interval: Interval,
    pub from: u64,
    pub to: u64,
    pub group_by: GroupBy,
    /// Only these event types, when given.
    pub types: Option<Vec<String>>,
    /// Only this client's events, when given (read from the per-client counters).
    pub client: Option<String>,
    /// Only this user's events, when given: read from the log, found through the column
    /// blocks (there are no per-user counters).
    pub user: Option<String>,
}

/// One series: its key and a count per bucket start (epoch ms), in time order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Series {
    pub key: String,
    pub points: Vec<(u64, u64)>,
}

/// Most buckets one answer may hold.
pub const MAX_BUCKETS: u64 = 10_000;

/// The series of `tenant`, sorted by key.
pub fn timeseries(
    snap: &Snapshot,
    tenant: u32,
    request: &SeriesRequest,
) -> Result<Vec<Series>, StoreError> {
    if let Some(user) = request.user.as_deref() {
        return of_user(snap, tenant, request, user);
    }
    let names = snap.names();
    let width = request.interval.millis();
    let (first, last) = ((request.from / width) as u32, (request.to / width) as u32);
    // A client never seen has no events: every bucket is zero.
    let client = request
        .client
        .as_deref()
        .map(|name| names.id(name).ok_or(()));
    let dim = match (request.group_by, client) {
        (_, Some(Err(()))) => None,
        (GroupBy::GrantType, Some(Ok(_))) => Some(Dim::ClientGrant),
        (_, Some(Ok(_))) | (GroupBy::ClientId, None) => Some(Dim::Client),
        (GroupBy::GrantType, None) => Some(Dim::GrantType),
        (GroupBy::Nothing | GroupBy::Type | GroupBy::Outcome, None) => Some(Dim::Type),
    };
    let wanted_types: Option<Vec<u32>> = request
        .types
        .as_ref()
        .map(|types| types.iter().filter_map(|t| names.id(t)).collect());
    let value = match (dim, client) {
        (_, Some(Ok(id))) => Some(id),
        (Some(Dim::Type), _) => Some(0),
        _ => None,
    };
    let rows = match dim {
        Some(dim) => snap.counters(
            tenant,
            request.interval.granularity(),
            dim,
            value,
            first,
            last,
        )?,
        None => Vec::new(),
    };
    // Per-client grant counters keep the grant in the type slot; they count token.issued.
    let client_grants = dim == Some(Dim::ClientGrant);
    let issued = names.id("token.issued");
    let buckets = (last - first) as usize;
    let mut series: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    if request.group_by == GroupBy::Nothing {
        series.insert("total".to_owned(), vec![0; buckets]);
    }
    for row in rows {
        let type_id = if client_grants {
            issued
        } else {
            Some(row.type_id)
        };
        if wanted_types
            .as_ref()
            .is_some_and(|types| !type_id.is_some_and(|t| types.contains(&t)))
        {
            continue;
        }
        let key = match request.group_by {
            GroupBy::Nothing => "total",
            GroupBy::Type => names.text(row.type_id).unwrap_or("?"),
            GroupBy::Outcome => Outcome::from_code(row.outcome).map_or("?", Outcome::as_str),
            GroupBy::GrantType if client_grants => names.text(row.type_id).unwrap_or("?"),
            GroupBy::GrantType | GroupBy::ClientId => names.text(row.value).unwrap_or("?"),
        };
        let counts = series
            .entry(key.to_owned())
            .or_insert_with(|| vec![0; buckets]);
        counts[(row.bucket - first) as usize] += row.count;
    }
    Ok(into_series(series, request))
}

/// The series of one user's events (of one client, when given), from those events.
fn of_user(
    snap: &Snapshot,
    tenant: u32,
    request: &SeriesRequest,
    user: &str,
) -> Result<Vec<Series>, StoreError> {
    let width = request.interval.millis();
    let buckets = ((request.to - request.from) / width) as usize;
    let mut series: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    if request.group_by == GroupBy::Nothing {
        series.insert("total".to_owned(), vec![0; buckets]);
    }
    let client = request.client.as_deref();
    snap.for_each_event_of_user(tenant, request.from, request.to, user, |stored| {
        let e = stored.event;
        let wanted = (client.is_none() || e.client_id.as_deref() == client)
            && request
                .types
                .as_ref()
                .is_none_or(|types| types.iter().any(|t| t == e.event_type.as_str()));
        if !wanted {
            return Ok(());
        }
        let key = match request.group_by {
            GroupBy::Nothing => Some("total".to_owned()),
            GroupBy::Type => Some(e.event_type.as_str().to_owned()),
            GroupBy::Outcome => Some(e.outcome.as_str().to_owned()),
            GroupBy::GrantType => e.grant_type,
            GroupBy::ClientId => e.client_id,
        };
        if let Some(key) = key {
            let index = ((e.ts - request.from) / width) as usize;
            if let Some(count) = series
                .entry(key)
                .or_insert_with(|| vec![0; buckets])
                .get_mut(index)
            {
                *count += 1;
            }
        }
        Ok(())
    })?;
    Ok(into_series(series, request))
}

fn into_series(series: BTreeMap<String, Vec<u64>>, request: &SeriesRequest) -> Vec<Series> {
    let width = request.interval.millis();
    series
        .into_iter()
        .map(|(key, counts)| Series {
            key,
            points: counts
                .into_iter()
                .enumerate()
                .map(|(i, count)| (request.from + i as u64 * width, count))
                .collect(),
        })
        .collect()
}
