//! Read use cases: events and stats of one tenant.

use std::sync::Arc;

use ipnet::IpNet;

use super::secrets;
use super::{App, AppError, Principal};
use crate::model::{EventType, Outcome, Role};
use crate::query::{
    self, GroupBy, HourRange, Interval, RangeError, Series, SeriesRequest, Stats, StatsFilter,
    TokenSummary, TopDim, TopItem,
};
use crate::store::{EventFilter, EventPage, StoredEvent};

/// The time part of a read request, as sent.
#[derive(Debug, Clone, Default)]
pub struct TimeSpec {
    pub from: Option<u64>,
    pub to: Option<u64>,
    pub range: Option<String>,
}

/// An event listing request, as sent (already split into typed parts by `http`).
#[derive(Debug, Clone, Default)]
pub struct EventQuery {
    pub time: TimeSpec,
    pub event_type: Option<String>,
    pub outcome: Option<String>,
    pub client_id: Option<String>,
    pub user_id: Option<String>,
    pub token: Option<String>,
    pub ip: Option<String>,
    pub q: Option<String>,
    pub limit: Option<usize>,
    /// Opaque cursor from a previous page.
    pub cursor: Option<String>,
}

impl EventQuery {
    /// The filters of an event listing from named parameters (a URL's query, a page's
    /// form): the same names and parsing for the API and the dashboard.
    pub fn from_params<'a>(get: impl Fn(&str) -> Option<&'a str>) -> Result<EventQuery, AppError> {
        let text = |name: &str| get(name).map(str::to_owned);
        let time = |name: &str| get(name).map(|v| parse_time_param(name, v)).transpose();
        let limit = get("limit")
            .map(|v| {
                v.parse::<u64>().map_err(|_| {
                    AppError::field("invalid_field", "limit", "`limit` must be an integer")
                })
            })
            .transpose()?;
        Ok(EventQuery {
            time: TimeSpec {
                from: time("from")?,
                to: time("to")?,
                range: text("range"),
            },
            event_type: text("type"),
            outcome: text("outcome"),
            client_id: text("client_id"),
            user_id: text("user_id"),
            token: text("token"),
            ip: text("ip"),
            q: text("q"),
            limit: limit.map(|n| n.min(usize::MAX as u64) as usize),
            cursor: text("cursor"),
        })
    }
}

/// A time parameter: RFC 3339 or epoch milliseconds.
pub fn parse_time_param(name: &str, value: &str) -> Result<u64, AppError> {
    value
        .parse::<u64>()
        .ok()
        .or_else(|| crate::model::time::parse_rfc3339_ms(value))
        .ok_or_else(|| {
            AppError::field(
                "invalid_field",
                name,
                format!("`{name}` must be an RFC 3339 time or epoch milliseconds"),
            )
        })
}

/// Largest page of events.
pub const MAX_EVENTS_LIMIT: usize = 1000;
const DEFAULT_EVENTS_LIMIT: usize = 50;

impl From<RangeError> for AppError {
    fn from(e: RangeError) -> Self {
        let field = match e {
            RangeError::UnknownRange => "range",
            RangeError::Inverted | RangeError::TooLong | RangeError::OutOfRange => "from",
        };
        AppError::field("invalid_range", field, e.to_string())
    }
}

fn resolve(time: &TimeSpec, now: u64) -> Result<(u64, u64), AppError> {
    Ok(query::range::resolve(
        time.from,
        time.to,
        time.range.as_deref(),
        now,
    )?)
}

/// `ts.seq` in hex: opaque to clients, stable across restarts.
pub fn encode_cursor((ts, seq): (u64, u64)) -> String {
    format!("{ts:x}.{seq:x}")
}

fn decode_cursor(text: &str) -> Result<(u64, u64), AppError> {
    let bad = || {
        AppError::field(
            "invalid_cursor",
            "cursor",
            "not a cursor this server issued",
        )
    };
    let (ts, seq) = text.split_once('.').ok_or_else(bad)?;
    Ok((
        u64::from_str_radix(ts, 16).map_err(|_| bad())?,
        u64::from_str_radix(seq, 16).map_err(|_| bad())?,
    ))
}

impl App {
    /// Newest-first events of a tenant (viewer).
    pub async fn list_events(
        &self,
        principal: &Principal,
        slug: &str,
        request: EventQuery,
        now: u64,
    ) -> Result<EventPage, AppError> {
        let limit = request.limit.unwrap_or(DEFAULT_EVENTS_LIMIT);
        if limit == 0 || limit > MAX_EVENTS_LIMIT {
            return Err(AppError::field(
                "invalid_field",
                "limit",
                format!("must be from 1 to {MAX_EVENTS_LIMIT}"),
            ));
        }
        let cursor = request.cursor.as_deref().map(decode_cursor).transpose()?;
        let export = self.export_events(principal, slug, request, now).await?;
        export.page(self, cursor, limit).await
    }

    /// Checks access and the filters of an export; its pages are then read with
    /// [`EventExport::page`] until one comes back without a next cursor.
    pub async fn export_events(
        &self,
        principal: &Principal,
        slug: &str,
        request: EventQuery,
        now: u64,
    ) -> Result<EventExport, AppError> {
        let tenant = self.tenant_for(principal, slug, Role::Viewer).await?;
        let (from, to) = resolve(&request.time, now)?;
        let outcome = parse_outcome(request.outcome.as_deref())?;
        let ip = match request.ip.as_deref() {
            Some(text) => Some(parse_ip_filter(text)?),
            None => None,
        };
        let filter = EventFilter {
            from,
            to,
            event_type: request.event_type,
            outcome,
            client_id: request.client_id,
            user_id: request.user_id,
            token: request.token,
            ip,
            q: request.q.map(|q| q.to_lowercase()),
        };
        Ok(EventExport {
            tenant: tenant.id,
            filter: Arc::new(filter),
        })
    }

    /// One event of a tenant by its server id (viewer).
    pub async fn event(
        &self,
        principal: &Principal,
        slug: &str,
        seq: u64,
    ) -> Result<StoredEvent, AppError> {
        let tenant = self.tenant_for(principal, slug, Role::Viewer).await?;
        self.store
            .read(move |snap| snap.event(tenant.id, seq))
            .await?
            .ok_or_else(|| AppError::NotFound(format!("event {seq} not found")))
    }

    /// Totals of a tenant over whole hours (viewer).
    pub async fn stats(
        &self,
        principal: &Principal,
        slug: &str,
        time: TimeSpec,
        filter: StatsFilter,
        now: u64,
    ) -> Result<Stats, AppError> {
        let tenant = self.tenant_for(principal, slug, Role::Viewer).await?;
        let (from, to) = resolve(&time, now)?;
        let range = HourRange::covering(from, to);
        let stats = self
            .store
            .read(move |snap| query::stats::stats(snap, tenant.id, range, &filter, now))
            .await?;
        Ok(stats)
    }
}

/// A validated, authorised event listing: its pages can be read one after another, each
/// in its own snapshot, so a long export never holds a read transaction for long.
#[derive(Debug, Clone)]
pub struct EventExport {
    tenant: u32,
    filter: Arc<EventFilter>,
}

impl EventExport {
    /// Up to `limit` events strictly older than `cursor`, newest first.
    pub async fn page(
        &self,
        app: &App,
        cursor: Option<(u64, u64)>,
        limit: usize,
    ) -> Result<EventPage, AppError> {
        let (tenant, filter) = (self.tenant, self.filter.clone());
        Ok(app
            .store
            .read(move |snap| snap.events_page(tenant, &filter, cursor, limit))
            .await?)
    }
}

/// A `/timeseries` request, as sent.
#[derive(Debug, Clone, Default)]
pub struct SeriesQuery {
    pub time: TimeSpec,
    pub interval: Option<String>,
    pub group_by: Option<String>,
    /// Comma-separated event types.
    pub types: Option<String>,
    pub client_id: Option<String>,
    pub user_id: Option<String>,
}

impl App {
    /// Counts per hour or day, split by a dimension (viewer). Returns the effective request
    /// (bounds widened to whole buckets) with the series.
    pub async fn timeseries(
        &self,
        principal: &Principal,
        slug: &str,
        request: SeriesQuery,
        now: u64,
    ) -> Result<(SeriesRequest, Vec<Series>), AppError> {
        let tenant = self.tenant_for(principal, slug, Role::Viewer).await?;
        let (from, to) = resolve(&request.time, now)?;
        let interval = match request.interval.as_deref() {
            Some(text) => Interval::parse(text).ok_or_else(|| {
                AppError::field("invalid_field", "interval", "must be hour or day")
            })?,
            None if to - from <= 7 * crate::model::time::DAY_MS => Interval::Hour,
            None => Interval::Day,
        };
        let group_by = match request.group_by.as_deref() {
            Some(text) => GroupBy::parse(text).ok_or_else(|| {
                AppError::field(
                    "invalid_field",
                    "group_by",
                    "must be type, outcome, grant_type or client_id",
                )
            })?,
            None => GroupBy::Nothing,
        };
        let types = match request.types.as_deref() {
            Some(list) => Some(
                list.split(',')
                    .map(|t| {
                        EventType::parse(t.trim())
                            .map(|t| t.as_str().to_owned())
                            .ok_or_else(|| {
                                AppError::field(
                                    "invalid_field",
                                    "types",
                                    format!("`{t}` is not an event type"),
                                )
                            })
                    })
                    .collect::<Result<Vec<_>, _>>()?,
            ),
            None => None,
        };
        let width = interval.millis();
        let from = from / width * width;
        let to = to.div_ceil(width) * width;
        if (to - from) / width > query::timeseries::MAX_BUCKETS {
            return Err(AppError::field(
                "invalid_range",
                "interval",
                format!(
                    "at most {} buckets per answer; use a shorter range or interval=day",
                    query::timeseries::MAX_BUCKETS
                ),
            ));
        }
        let series_request = SeriesRequest {
            interval,
            from,
            to,
            group_by,
            types,
            client: request.client_id,
            user: request.user_id,
        };
        let asked = series_request.clone();
        let series = self
            .store
            .read(move |snap| query::timeseries::timeseries(snap, tenant.id, &asked))
            .await?;
        Ok((series_request, series))
    }
}

/// A `/top` request, as sent.
#[derive(Debug, Clone, Default)]
pub struct TopQuery {
    pub time: TimeSpec,
    pub dim: Option<String>,
    pub outcome: Option<String>,
    pub limit: Option<u64>,
}

impl App {
    /// The values of a dimension with the most events over whole hours (viewer).
    pub async fn top(
        &self,
        principal: &Principal,
        slug: &str,
        request: TopQuery,
        now: u64,
    ) -> Result<(HourRange, Vec<TopItem>), AppError> {
        let tenant = self.tenant_for(principal, slug, Role::Viewer).await?;
        let TopQuery {
            time,
            dim,
            outcome,
            limit,
        } = request;
        let dim = dim.as_deref().and_then(TopDim::parse).ok_or_else(|| {
            AppError::field(
                "invalid_field",
                "dim",
                "must be client_id, user_id, ip, token, route, type or grant_type",
            )
        })?;
        let outcome = parse_outcome(outcome.as_deref())?;
        let limit = match limit {
            None => 10,
            Some(n @ 1..=1000) => n as usize,
            Some(_) => {
                return Err(AppError::field(
                    "invalid_field",
                    "limit",
                    "must be from 1 to 1000",
                ))
            }
        };
        let (from, to) = resolve(&time, now)?;
        let range = HourRange::covering(from, to);
        let items = self
            .store
            .read(move |snap| query::top::top(snap, tenant.id, dim, range, outcome, limit))
            .await?;
        Ok((range, items))
    }
}

/// Default and largest page of `/tokens`.
const DEFAULT_TOKENS_LIMIT: u64 = 50;

impl App {
    /// What is known of one token (viewer); an unknown token is not found.
    pub async fn token_summary(
        &self,
        principal: &Principal,
        slug: &str,
        token: String,
        now: u64,
    ) -> Result<TokenSummary, AppError> {
        let tenant = self.tenant_for(principal, slug, Role::Viewer).await?;
        let shown = token.clone();
        self.store
            .read(move |snap| query::tokens::summary(snap, tenant.id, &token, now))
            .await?
            .ok_or_else(|| AppError::NotFound(format!("token {shown} not found")))
    }

    /// Tokens not seen for `inactive_days` (default 30), a page at a time (viewer).
    /// Returns the page and the cursor of the next one.
    pub async fn inactive_tokens(
        &self,
        principal: &Principal,
        slug: &str,
        inactive_days: Option<u64>,
        limit: Option<u64>,
        cursor: Option<String>,
        now: u64,
    ) -> Result<query::tokens::TokenPage, AppError> {
        let tenant = self.tenant_for(principal, slug, Role::Viewer).await?;
        let days = inactive_days.unwrap_or(30);
        if days > 3650 {
            return Err(AppError::field(
                "invalid_field",
                "inactive_days",
                "at most 3650",
            ));
        }
        let limit = match limit.unwrap_or(DEFAULT_TOKENS_LIMIT) {
            n @ 1..=1000 => n as usize,
            _ => {
                return Err(AppError::field(
                    "invalid_field",
                    "limit",
                    "must be from 1 to 1000",
                ))
            }
        };
        let after = match cursor {
            Some(c) => Some(decode_token_cursor(&c)?),
            None => None,
        };
        let cutoff = now.saturating_sub(days * crate::model::time::DAY_MS);
        let (page, next) = self
            .store
            .read(move |snap| {
                query::tokens::inactive(snap, tenant.id, cutoff, after.as_deref(), limit)
            })
            .await?;
        Ok((page, next.map(|t| secrets::hex(t.as_bytes()))))
    }
}

fn decode_token_cursor(text: &str) -> Result<String, AppError> {
    let bad = || {
        AppError::field(
            "invalid_cursor",
            "cursor",
            "not a cursor this server issued",
        )
    };
    if text.len() % 2 != 0 {
        return Err(bad());
    }
    let bytes = (0..text.len())
        .step_by(2)
        .map(|i| {
            text.get(i..i + 2)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        })
        .collect::<Option<Vec<u8>>>()
        .ok_or_else(bad)?;
    String::from_utf8(bytes).map_err(|_| bad())
}

/// An optional outcome filter.
fn parse_outcome(text: Option<&str>) -> Result<Option<Outcome>, AppError> {
    text.map(|t| {
        Outcome::parse(t)
            .ok_or_else(|| AppError::field("invalid_field", "outcome", "not a known outcome"))
    })
    .transpose()
}

/// An address (as a /32 or /128) or a CIDR range; IPv4-mapped IPv6 becomes IPv4.
pub fn parse_ip_filter(text: &str) -> Result<IpNet, AppError> {
    let bad = || AppError::field("invalid_cidr", "ip", "not an IP address or CIDR range");
    if let Ok(ip) = text.parse::<std::net::IpAddr>() {
        return Ok(IpNet::from(crate::ingest::canonical_ip(ip)));
    }
    let net: IpNet = text.parse().map_err(|_| bad())?;
    Ok(net.trunc())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        let c = encode_cursor((1_795_000_000_123, 42));
        assert_eq!(decode_cursor(&c), Ok((1_795_000_000_123, 42)));
        assert!(decode_cursor("nope").is_err());
        assert!(decode_cursor("zz.1").is_err());
    }

    #[test]
    fn ip_filters() {
        assert_eq!(
            parse_ip_filter("10.0.0.1").expect("ok").to_string(),
            "10.0.0.1/32"
        );
        assert_eq!(
            parse_ip_filter("10.0.0.7/24").expect("ok").to_string(),
            "10.0.0.0/24"
        );
        assert_eq!(
            parse_ip_filter("::ffff:10.0.0.1").expect("ok").to_string(),
            "10.0.0.1/32"
        );
        assert!(parse_ip_filter("10.0.0.0/33").is_err());
    }
}
