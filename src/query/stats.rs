//! `/stats`: totals over a range of whole hours from hourly counter buckets; unique counts and
//! request durations from per-hour and per-day sketches; token lifetimes from token states.

use std::collections::{BTreeMap, HashSet};

use hdrhistogram::Histogram;

use crate::store::sketches::histogram;

use super::HourRange;
use crate::model::time::HOUR_MS;
use crate::model::Outcome;
use crate::store::{Dim, Granularity, Snapshot, StoreError};

/// Everything `/stats` answers from counters.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Stats {
    pub range: Option<HourRange>,
    pub total_events: u64,
    pub by_type: BTreeMap<String, u64>,
    pub by_outcome: BTreeMap<&'static str, u64>,
    pub total_issued: u64,
    pub issued_by_grant_type: BTreeMap<String, u64>,
    pub total_refreshed: u64,
    pub total_userinfo: u64,
    pub total_failed: u64,
    pub total_success: u64,
    pub total_rate_limited: u64,
    pub total_blocked: u64,
    /// Per UTC hour of day.
    pub by_hour_of_day: [u64; 24],
    pub unique_users: u64,
    pub unique_clients: u64,
    pub unique_ips: u64,
    /// Lifetimes of the tokens whose life ended in the range.
    pub token_lifetime_ms: Distribution,
    /// `duration_ms` of the events that carry one.
    pub duration_ms: Distribution,
}

/// Summary of a distribution of milliseconds (percentiles within 0.1%, by hdrhistogram).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Distribution {
    pub count: u64,
    pub mean: f64,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub max: u64,
}

impl Distribution {
    fn of(histogram: &Histogram<u64>) -> Distribution {
        if histogram.is_empty() {
            return Distribution::default();
        }
        Distribution {
            count: histogram.len(),
            mean: histogram.mean(),
            p50: histogram.value_at_quantile(0.5),
            p90: histogram.value_at_quantile(0.9),
            p99: histogram.value_at_quantile(0.99),
            max: histogram.max(),
        }
    }
}

impl Stats {
    /// failed / (failed + success), 0 when there is neither.
    pub fn failure_rate(&self) -> f64 {
        ratio(self.total_failed, self.total_failed + self.total_success)
    }

    /// Counts `n` events of `type_name` with `outcome` in hour bucket `hour` (hours since
    /// the epoch) into every total they belong to — the one tally of counters and scans.
    fn count(&mut self, type_name: &str, outcome: Option<Outcome>, hour: u32, n: u64) {
        self.total_events += n;
        *self.by_type.entry(type_name.to_owned()).or_default() += n;
        if let Some(o) = outcome {
            *self.by_outcome.entry(o.as_str()).or_default() += n;
        }
        self.by_hour_of_day[(hour % 24) as usize] += n;
        match outcome {
            Some(Outcome::Success) => self.total_success += n,
            Some(Outcome::Failure) => self.total_failed += n,
            Some(Outcome::RateLimited) => self.total_rate_limited += n,
            Some(Outcome::Blocked) => self.total_blocked += n,
            Some(Outcome::Info) | None => {}
        }
        match type_name {
            "token.issued" => self.total_issued += n,
            "token.refreshed" => self.total_refreshed += n,
            "token.userinfo_accessed" => self.total_userinfo += n,
            _ => {}
        }
    }

    /// refreshed / issued, 0 when nothing was issued.
    pub fn refresh_rate(&self) -> f64 {
        ratio(self.total_refreshed, self.total_issued)
    }
}

fn ratio(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

/// Which events the stats count: all of the tenant's, one client's, one user's, or both.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatsFilter {
    pub client_id: Option<String>,
    pub user_id: Option<String>,
}

/// Computes the stats of `tenant` over `range` for the events `filter` selects. `now`
/// decides which planned expiries have passed.
///
/// Tenant-wide and per-client totals come from counters; a user filter has no counters
/// (user ids are unbounded), so its stats are computed from the user's events, found in
/// the column blocks.
pub fn stats(
    snap: &Snapshot,
    tenant: u32,
    range: HourRange,
    filter: &StatsFilter,
    now: u64,
) -> Result<Stats, StoreError> {
    let client_id = filter.client_id.as_deref();
    if let Some(user) = filter.user_id.as_deref() {
        return of_user(snap, tenant, range, client_id, user, now);
    }
    let mut stats = totals(snap, tenant, range, client_id)?;
    match client_id {
        None => {
            let buckets: Vec<_> = range
                .spans()
                .into_iter()
                .flat_map(|(granularity, first, end)| (first..end).map(move |b| (granularity, b)))
                .collect();
            let sketches = snap.sketches(tenant, &buckets)?;
            stats.unique_users = sketches.users.estimate();
            stats.unique_clients = sketches.clients.estimate();
            stats.unique_ips = sketches.ips.estimate();
            stats.duration_ms = Distribution::of(&sketches.durations);
        }
        Some(_) => distinct_and_durations(snap, tenant, range, client_id, &mut stats)?,
    }
    stats.token_lifetime_ms = lifetimes(snap, tenant, range, client_id, now)?;
    Ok(stats)
}

/// Unique users, clients and IPs and the duration distribution of one client, from the
/// range of the log: exact, but a scan (the per-bucket sketches are per tenant, not per
/// client).
fn distinct_and_durations(
    snap: &Snapshot,
    tenant: u32,
    range: HourRange,
    client_id: Option<&str>,
    stats: &mut Stats,
) -> Result<(), StoreError> {
    let mut users: HashSet<String> = HashSet::new();
    let mut clients: HashSet<String> = HashSet::new();
    let mut ips: HashSet<std::net::IpAddr> = HashSet::new();
    let mut durations = histogram()?;
    let mut visit = |stored: crate::store::StoredEvent| {
        let e = stored.event;
        if let Some(user) = e.user_id {
            users.insert(user);
        }
        if let Some(client) = e.client_id {
            clients.insert(client);
        }
        if let Some(ip) = e.ip {
            ips.insert(ip);
        }
        if let Some(d) = e.duration_ms {
            // Within the histogram's auto-resizing range: never fails for a u32.
            let _ = durations.record(u64::from(d));
        }
        Ok(())
    };
    match client_id {
        Some(client) => {
            snap.for_each_event_of_client(tenant, range.from, range.to, client, &mut visit)?
        }
        None => snap.for_each_event(tenant, range.from, range.to, &mut visit)?,
    }
    stats.unique_users = users.len() as u64;
    stats.unique_clients = clients.len() as u64;
    stats.unique_ips = ips.len() as u64;
    stats.duration_ms = Distribution::of(&durations);
    Ok(())
}

/// Every figure of one user's events (of one client, when given) over the range, from one
/// pass over those events. Token lifetimes are those of the tokens the user's
/// events in the range carry.
fn of_user(
    snap: &Snapshot,
    tenant: u32,
    range: HourRange,
    client_id: Option<&str>,
    user_id: &str,
    now: u64,
) -> Result<Stats, StoreError> {
    let mut stats = Stats {
        range: Some(range),
        ..Stats::default()
    };
    let mut clients: HashSet<String> = HashSet::new();
    let mut ips: HashSet<std::net::IpAddr> = HashSet::new();
    let mut tokens: HashSet<String> = HashSet::new();
    let mut durations = histogram()?;
    snap.for_each_event_of_user(tenant, range.from, range.to, user_id, |stored| {
        let e = stored.event;
        if client_id.is_some() && e.client_id.as_deref() != client_id {
            return Ok(());
        }
        let hour = crate::model::time::hour_of(e.ts);
        stats.count(e.event_type.as_str(), Some(e.outcome), hour, 1);
        if let (Some(grant), "token.issued") = (e.grant_type, e.event_type.as_str()) {
            *stats.issued_by_grant_type.entry(grant).or_default() += 1;
        }
        if let Some(client) = e.client_id {
            clients.insert(client);
        }
        if let Some(ip) = e.ip {
            ips.insert(ip);
        }
        if let Some(token) = e.token {
            tokens.insert(token);
        }
        if let Some(d) = e.duration_ms {
            // Within the histogram's auto-resizing range: never fails for a u32.
            let _ = durations.record(u64::from(d));
        }
        Ok(())
    })?;
    stats.unique_users = u64::from(stats.total_events > 0);
    stats.unique_clients = clients.len() as u64;
    stats.unique_ips = ips.len() as u64;
    stats.duration_ms = Distribution::of(&durations);
    let mut lifetimes = histogram()?;
    let to = range.to.min(now.saturating_add(1));
    snap.for_each_token_life(tenant, range.from, to, |token, end, issued| {
        if tokens.contains(token) {
            let _ = lifetimes.record(end.saturating_sub(issued));
        }
        Ok(())
    })?;
    stats.token_lifetime_ms = Distribution::of(&lifetimes);
    Ok(stats)
}

/// Lifetimes (issued → revoked/expired, or → a planned expiry that has passed) of the
/// tokens whose life ended within the range.
///
/// Tenant-wide: the lifetime buckets of every whole hour before `now`, plus the `token_ends`
/// entries of the hour holding `now` up to `now` (planned expiries count only once they
/// have passed). For one client: the `token_ends` entries of the range whose token's client
/// it is.
fn lifetimes(
    snap: &Snapshot,
    tenant: u32,
    range: HourRange,
    client_id: Option<&str>,
    now: u64,
) -> Result<Distribution, StoreError> {
    let mut lifetimes = histogram()?;
    let to = range.to.min(now.saturating_add(1));
    let scan_from = match client_id {
        Some(_) => range.from,
        None => {
            let whole_to = (to / HOUR_MS * HOUR_MS).max(range.from);
            if whole_to > range.from {
                let whole = HourRange {
                    from: range.from,
                    to: whole_to,
                };
                for (granularity, first, end) in whole.spans() {
                    snap.for_each_lifetime(tenant, granularity, first, end, |value, count| {
                        // Within the histogram's auto-resizing range: never fails.
                        let _ = lifetimes.record_n(value, count);
                    })?;
                }
            }
            whole_to
        }
    };
    snap.for_each_token_life(tenant, scan_from, to, |token, end, issued| {
        if let Some(client) = client_id {
            let state = snap.token_state(tenant, token)?;
            if state.and_then(|s| s.client_id).as_deref() != Some(client) {
                return Ok(());
            }
        }
        let _ = lifetimes.record(end.saturating_sub(issued));
        Ok(())
    })?;
    Ok(Distribution::of(&lifetimes))
}

/// The counter-backed totals.
fn totals(
    snap: &Snapshot,
    tenant: u32,
    range: HourRange,
    client_id: Option<&str>,
) -> Result<Stats, StoreError> {
    let mut stats = Stats {
        range: Some(range),
        ..Stats::default()
    };
    let names = snap.names();
    let (dim, value) = match client_id {
        Some(client) => match names.id(client) {
            Some(id) => (Dim::Client, Some(id)),
            None => return Ok(stats), // never seen: all zero
        },
        None => (Dim::Type, Some(0)),
    };
    let (from, to) = range.buckets();
    for row in snap.counters(tenant, Granularity::Hour, dim, value, from, to)? {
        let type_name = names.text(row.type_id).unwrap_or("?");
        stats.count(
            type_name,
            Outcome::from_code(row.outcome),
            row.bucket,
            row.count,
        );
    }
    let grants = match client_id.and_then(|c| names.id(c)) {
        Some(client) => snap
            .counters(
                tenant,
                Granularity::Hour,
                Dim::ClientGrant,
                Some(client),
                from,
                to,
            )?
            .into_iter()
            .map(|row| (row.type_id, row.count))
            .collect::<Vec<_>>(),
        None => {
            let issued = names.id("token.issued");
            snap.counters(tenant, Granularity::Hour, Dim::GrantType, None, from, to)?
                .into_iter()
                .filter(|row| Some(row.type_id) == issued)
                .map(|row| (row.value, row.count))
                .collect()
        }
    };
    for (grant, count) in grants {
        let grant = names.text(grant).unwrap_or("?").to_owned();
        *stats.issued_by_grant_type.entry(grant).or_default() += count;
    }
    Ok(stats)
}
