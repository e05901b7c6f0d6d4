//! `/stats`: totals over a range of whole hours, from hourly counter buckets.

use std::collections::BTreeMap;

use super::HourRange;
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
}

impl Stats {
    /// failed / (failed + success), 0 when there is neither.
    pub fn failure_rate(&self) -> f64 {
        ratio(self.total_failed, self.total_failed + self.total_success)
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

/// Computes the stats of `tenant` over `range`, for one client when `client_id` is given.
pub fn stats(
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
        let outcome = Outcome::from_code(row.outcome);
        stats.total_events += row.count;
        *stats.by_type.entry(type_name.to_owned()).or_default() += row.count;
        if let Some(o) = outcome {
            *stats.by_outcome.entry(o.as_str()).or_default() += row.count;
        }
        stats.by_hour_of_day[(row.bucket % 24) as usize] += row.count;
        match outcome {
            Some(Outcome::Success) => stats.total_success += row.count,
            Some(Outcome::Failure) => stats.total_failed += row.count,
            Some(Outcome::RateLimited) => stats.total_rate_limited += row.count,
            Some(Outcome::Blocked) => stats.total_blocked += row.count,
            Some(Outcome::Info) | None => {}
        }
        match type_name {
            "token.issued" => stats.total_issued += row.count,
            "token.refreshed" => stats.total_refreshed += row.count,
            "token.userinfo_accessed" => stats.total_userinfo += row.count,
            _ => {}
        }
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
