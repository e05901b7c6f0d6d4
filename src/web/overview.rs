//! `/t/{tenant}`: the overview. Cards with the change against the previous period, events by
//! outcome over time, failures over time, tokens issued by grant type, top clients, peak
//! hours, token lifetimes and the latest events. Range and client filter live in the URL,
//! so a view can be shared; every number links to the events behind it.

use std::sync::Arc;

use askama::Template;

use super::chart::{self, BarChart, Column, Segment};
use super::events::EventRow;
use super::format::{self, query_string, Change};
use super::layout::{render, Chrome};
use super::{WebRequest, WebResponse};
use crate::app::{App, AppError, EventQuery, SeriesQuery, Session, TimeSpec, TopQuery};
use crate::model::time::{format_ms, DAY_MS, HOUR_MS};
use crate::model::Outcome;
use crate::query::{Series, Stats, StatsFilter};

/// The ranges the selector offers.
const RANGES: [&str; 4] = ["24h", "7d", "30d", "90d"];

/// Outcomes in the order the charts stack them (bottom first).
const OUTCOMES: [Outcome; 5] = [
    Outcome::Success,
    Outcome::Info,
    Outcome::Failure,
    Outcome::RateLimited,
    Outcome::Blocked,
];

pub struct RangeLink {
    pub name: &'static str,
    pub href: String,
    pub current: bool,
}

pub struct Card {
    pub metric: &'static str,
    pub label: &'static str,
    pub value: String,
    pub change: Change,
    /// `good` or `bad`: whether this card's change is welcome (more failures are not).
    pub tone: &'static str,
    pub href: String,
}

pub struct Share {
    pub key: String,
    pub count: String,
    pub percent: String,
    /// Bar width in percent of the largest, for the inline bar (an SVG width).
    pub width: String,
    pub href: String,
}

pub struct TopRow {
    pub key: String,
    pub count: String,
    pub failures: String,
    pub href: String,
    pub failures_href: String,
}

pub struct Percentiles {
    pub count: String,
    pub p50: String,
    pub p90: String,
    pub p99: String,
    pub max: String,
}

#[derive(Template)]
#[template(path = "overview.html")]
struct OverviewPage {
    chrome: Chrome,
    range: &'static str,
    ranges: Vec<RangeLink>,
    client: String,
    user: String,
    period: String,
    cards: Vec<Card>,
    outcomes: BarChart,
    failures: BarChart,
    hours: BarChart,
    grants: Vec<Share>,
    clients: Vec<TopRow>,
    lifetimes: Option<Percentiles>,
    durations: Option<Percentiles>,
    recent: Vec<EventRow>,
    events_href: String,
    /// No event at all in the range: show how to send the first one.
    empty: bool,
    curl: String,
}

/// Links into the events explorer for the page's range and client, plus `extra`.
struct Links<'a> {
    slug: &'a str,
    from: u64,
    to: u64,
    client: Option<&'a str>,
    user: Option<&'a str>,
}

impl Links<'_> {
    fn events(&self, extra: &[(&str, Option<&str>)]) -> String {
        self.events_between(self.from, self.to, extra)
    }

    fn events_between(&self, from: u64, to: u64, extra: &[(&str, Option<&str>)]) -> String {
        let (from, to) = (format_ms(from), format_ms(to));
        let mut pairs = vec![
            ("from", Some(from.as_str())),
            ("to", Some(to.as_str())),
            ("client_id", self.client),
            ("user_id", self.user),
        ];
        pairs.extend_from_slice(extra);
        format!("/t/{}/events?{}", self.slug, query_string(&pairs))
    }
}

pub async fn page(
    app: &Arc<App>,
    session: &Session,
    request: &WebRequest,
    slug: &str,
) -> Result<WebResponse, AppError> {
    let chrome = Chrome::for_tenant(app, session, slug, "overview").await?;
    let principal = session.principal();
    let now = request.now;
    let range = RANGES
        .into_iter()
        .find(|r| Some(*r) == request.param("range"))
        .unwrap_or("24h");
    let client = request.param("client_id").map(str::to_owned);
    let user = request.param("user_id").map(str::to_owned);
    let filter = StatsFilter {
        client_id: client.clone(),
        user_id: user.clone(),
    };
    let span = crate::query::range::named_range_ms(range).unwrap_or(DAY_MS);
    let spec = TimeSpec {
        range: Some(range.to_owned()),
        ..TimeSpec::default()
    };
    let current = app
        .stats(&principal, slug, spec.clone(), filter.clone(), now)
        .await?;
    let (from, to) = current.range.map_or((now - span, now), |r| (r.from, r.to));
    let previous = app
        .stats(
            &principal,
            slug,
            TimeSpec {
                from: Some(from.saturating_sub(to - from)),
                to: Some(from),
                range: None,
            },
            filter,
            now,
        )
        .await?;
    let interval = if span <= 7 * DAY_MS { "hour" } else { "day" };
    let (_, series) = app
        .timeseries(
            &principal,
            slug,
            SeriesQuery {
                time: TimeSpec {
                    from: Some(from),
                    to: Some(to),
                    range: None,
                },
                interval: Some(interval.into()),
                group_by: Some("outcome".into()),
                types: None,
                client_id: client.clone(),
                user_id: user.clone(),
            },
            now,
        )
        .await?;
    let (_, top_clients) = app
        .top(
            &principal,
            slug,
            TopQuery {
                time: spec.clone(),
                dim: Some("client_id".into()),
                outcome: None,
                limit: Some(10),
            },
            now,
        )
        .await?;
    let recent = app
        .list_events(
            &principal,
            slug,
            EventQuery {
                time: spec,
                client_id: client.clone(),
                user_id: user.clone(),
                limit: Some(10),
                ..EventQuery::default()
            },
            now,
        )
        .await?;

    let links = Links {
        slug,
        from,
        to,
        client: client.as_deref(),
        user: user.as_deref(),
    };
    let width = if interval == "hour" { HOUR_MS } else { DAY_MS };
    let outcomes = outcome_chart(&series, &links, width, interval);
    let failures = failure_chart(&series, &links, width, interval);
    let hours = hour_chart(&current, &links);
    let ranges = RANGES
        .iter()
        .map(|name| RangeLink {
            name,
            href: format!(
                "/t/{slug}?{}",
                query_string(&[
                    ("range", Some(name)),
                    ("client_id", client.as_deref()),
                    ("user_id", user.as_deref()),
                ])
            ),
            current: *name == range,
        })
        .collect();
    let host = request.host.as_deref().unwrap_or("127.0.0.1:8080");
    let page = OverviewPage {
        range,
        ranges,
        period: format!(
            "{} – {} UTC",
            format::time(from).get(..16).unwrap_or_default(),
            format::time(to).get(..16).unwrap_or_default()
        ),
        cards: cards(&current, &previous, &links),
        grants: grant_shares(&current, &links),
        clients: top_clients
            .iter()
            .map(|item| TopRow {
                key: item.key.clone(),
                count: format::thousands(item.count),
                failures: format::thousands(item.failures),
                href: links.events(&[("client_id", Some(&item.key))]),
                failures_href: links
                    .events(&[("client_id", Some(&item.key)), ("outcome", Some("failure"))]),
            })
            .collect(),
        lifetimes: percentiles(&current.token_lifetime_ms),
        durations: percentiles(&current.duration_ms),
        recent: recent
            .events
            .iter()
            .map(|e| EventRow::of(e, slug))
            .collect(),
        events_href: links.events(&[]),
        empty: current.total_events == 0 && client.is_none() && user.is_none(),
        curl: super::settings::curl_example(host),
        client: client.unwrap_or_default(),
        user: user.unwrap_or_default(),
        outcomes,
        failures,
        hours,
        chrome,
    };
    render(200, &page)
}

fn cards(current: &Stats, previous: &Stats, links: &Links<'_>) -> Vec<Card> {
    let count = |metric, label, now: u64, before: u64, more_is_good: bool, href: String| {
        let change = format::change(now, before);
        Card {
            metric,
            label,
            value: format::thousands(now),
            tone: tone(&change, more_is_good),
            change,
            href,
        }
    };
    let rate_change = format::rate_change(current.failure_rate(), previous.failure_rate());
    vec![
        count(
            "issued",
            "Tokens issued",
            current.total_issued,
            previous.total_issued,
            true,
            links.events(&[("type", Some("token.issued"))]),
        ),
        count(
            "refreshed",
            "Refreshed",
            current.total_refreshed,
            previous.total_refreshed,
            true,
            links.events(&[("type", Some("token.refreshed"))]),
        ),
        count(
            "unique_users",
            "Unique users",
            current.unique_users,
            previous.unique_users,
            true,
            links.events(&[]),
        ),
        count(
            "failed",
            "Failed attempts",
            current.total_failed,
            previous.total_failed,
            false,
            links.events(&[("outcome", Some("failure"))]),
        ),
        count(
            "rate_limited",
            "Rate-limit hits",
            current.total_rate_limited,
            previous.total_rate_limited,
            false,
            links.events(&[("outcome", Some("rate_limited"))]),
        ),
        Card {
            metric: "failure_rate",
            label: "Failure rate",
            value: format::percent(current.failure_rate()),
            tone: tone(&rate_change, false),
            change: rate_change,
            href: links.events(&[("outcome", Some("failure"))]),
        },
    ]
}

fn tone(change: &Change, more_is_good: bool) -> &'static str {
    match (change.direction, more_is_good) {
        ("flat", _) => "neutral",
        ("up", true) | ("down", false) => "good",
        _ => "bad",
    }
}

fn bucket_label(start: u64, interval: &str) -> String {
    let text = format::time(start);
    match interval {
        // `12-01 14h`
        "hour" => format!(
            "{} {}h",
            text.get(5..10).unwrap_or_default(),
            text.get(11..13).unwrap_or_default()
        ),
        _ => text.get(5..10).unwrap_or_default().to_owned(),
    }
}

fn outcome_chart(series: &[Series], links: &Links<'_>, width: u64, interval: &str) -> BarChart {
    let buckets: Vec<u64> = series
        .first()
        .map(|s| s.points.iter().map(|p| p.0).collect())
        .unwrap_or_default();
    let columns: Vec<Column> = buckets
        .iter()
        .enumerate()
        .map(|(i, &start)| Column {
            label: bucket_label(start, interval),
            segments: OUTCOMES
                .iter()
                .map(|outcome| {
                    let count = series
                        .iter()
                        .find(|s| s.key == outcome.as_str())
                        .and_then(|s| s.points.get(i))
                        .map_or(0, |p| p.1);
                    Segment {
                        count,
                        class: format!("o-{}", outcome.as_str()),
                        href: links.events_between(
                            start,
                            start + width,
                            &[("outcome", Some(outcome.as_str()))],
                        ),
                        title: format!(
                            "{}: {} {}",
                            format::time(start),
                            format::thousands(count),
                            outcome.as_str()
                        ),
                    }
                })
                .collect(),
        })
        .collect();
    let total: u64 = columns
        .iter()
        .flat_map(|c| c.segments.iter().map(|s| s.count))
        .sum();
    chart::stacked(
        &columns,
        720.0,
        200.0,
        format!(
            "{} events in {} buckets of one {interval}",
            format::thousands(total),
            columns.len()
        ),
    )
}

fn failure_chart(series: &[Series], links: &Links<'_>, width: u64, interval: &str) -> BarChart {
    let failures = series.iter().find(|s| s.key == Outcome::Failure.as_str());
    let columns: Vec<Column> = failures
        .map(|s| s.points.as_slice())
        .unwrap_or_default()
        .iter()
        .map(|&(start, count)| Column {
            label: bucket_label(start, interval),
            segments: vec![Segment {
                count,
                class: "o-failure".into(),
                href: links.events_between(start, start + width, &[("outcome", Some("failure"))]),
                title: format!(
                    "{}: {} failures",
                    format::time(start),
                    format::thousands(count)
                ),
            }],
        })
        .collect();
    let total: u64 = columns.iter().map(|c| c.segments[0].count).sum();
    chart::stacked(
        &columns,
        360.0,
        160.0,
        format!("{} failed attempts", format::thousands(total)),
    )
}

fn hour_chart(stats: &Stats, links: &Links<'_>) -> BarChart {
    let peak = stats
        .by_hour_of_day
        .iter()
        .enumerate()
        .max_by_key(|(hour, count)| (**count, std::cmp::Reverse(*hour)))
        .map(|(hour, _)| hour);
    let columns: Vec<Column> = stats
        .by_hour_of_day
        .iter()
        .enumerate()
        .map(|(hour, &count)| Column {
            label: format!("{hour:02}"),
            segments: vec![Segment {
                count,
                class: if Some(hour) == peak && count > 0 {
                    "peak".into()
                } else {
                    "hour".into()
                },
                href: links.events(&[]),
                title: format!(
                    "{hour:02}:00–{hour:02}:59 UTC: {} events",
                    format::thousands(count)
                ),
            }],
        })
        .collect();
    let summary = match peak {
        Some(hour) if stats.total_events > 0 => format!("The busiest hour is {hour:02}:00 UTC"),
        _ => "No events".into(),
    };
    chart::stacked(&columns, 360.0, 160.0, summary)
}

fn grant_shares(stats: &Stats, links: &Links<'_>) -> Vec<Share> {
    let mut grants: Vec<(&String, &u64)> = stats.issued_by_grant_type.iter().collect();
    grants.sort_by(|a, b| b.1.cmp(a.1).then_with(|| a.0.cmp(b.0)));
    let max = grants.first().map_or(1, |g| (*g.1).max(1));
    grants
        .into_iter()
        .map(|(key, &count)| Share {
            key: key.clone(),
            count: format::thousands(count),
            percent: format::percent(count as f64 / stats.total_issued.max(1) as f64),
            width: format!("{:.1}", count as f64 / max as f64 * 100.0),
            href: links.events(&[("type", Some("token.issued"))]),
        })
        .collect()
}

fn percentiles(d: &crate::query::stats::Distribution) -> Option<Percentiles> {
    (d.count > 0).then(|| Percentiles {
        count: format::thousands(d.count),
        p50: format::duration(d.p50),
        p90: format::duration(d.p90),
        p99: format::duration(d.p99),
        max: format::duration(d.max),
    })
}
