//! `/t/{tenant}/tokens`: look a token up (the seed's "join link" panel: successes,
//! failures, rate-limit hits, 24 h volume, last activity), its latest events, and the
//! tokens gone quiet.

use std::sync::Arc;

use askama::Template;

use super::events::EventRow;
use super::format::{self, query_string};
use super::layout::{render, Chrome};
use super::{WebRequest, WebResponse};
use crate::app::{App, AppError, EventQuery, Session, TimeSpec};

/// One figure of the summary panel.
pub struct Figure {
    pub field: &'static str,
    pub label: &'static str,
    pub value: String,
    pub href: Option<String>,
}

pub struct StaleRow {
    pub token: String,
    pub href: String,
    pub client_id: String,
    pub last_seen: String,
    pub events: String,
}

#[derive(Template)]
#[template(path = "tokens.html")]
struct TokensPage {
    chrome: Chrome,
    token: String,
    /// The looked-up token's figures; `None` with `not_found` when it is unknown.
    summary: Option<Vec<Figure>>,
    not_found: bool,
    recent: Vec<EventRow>,
    recent_href: String,
    inactive_days: u64,
    stale: Vec<StaleRow>,
    stale_next: Option<String>,
}

pub async fn page(
    app: &Arc<App>,
    session: &Session,
    request: &WebRequest,
    slug: &str,
) -> Result<WebResponse, AppError> {
    let chrome = Chrome::for_tenant(app, session, slug, "tokens").await?;
    let principal = session.principal();
    let now = request.now;
    let token = request.param("token").map(str::to_owned);
    let all_time = |token: &str| {
        format!(
            "/t/{slug}/events?{}",
            query_string(&[("token", Some(token)), ("range", Some("90d"))])
        )
    };
    let (summary, not_found, recent) = match &token {
        Some(t) => match app.token_summary(&principal, slug, t.clone(), now).await {
            Ok(s) => {
                let st = &s.state;
                let events = |extra: (&str, &str)| {
                    format!(
                        "/t/{slug}/events?{}",
                        query_string(&[
                            ("token", Some(t)),
                            ("range", Some("90d")),
                            (extra.0, Some(extra.1))
                        ])
                    )
                };
                let figure = |field, label, value: String, href: Option<String>| Figure {
                    field,
                    label,
                    value,
                    href,
                };
                let time = |ms: Option<u64>| ms.map_or_else(|| "—".to_owned(), format::time);
                let figures = vec![
                    figure(
                        "successes",
                        "Successes",
                        format::thousands(st.successes),
                        Some(events(("outcome", "success"))),
                    ),
                    figure(
                        "failures",
                        "Failures",
                        format::thousands(st.failures),
                        Some(events(("outcome", "failure"))),
                    ),
                    figure(
                        "rate_limited",
                        "Rate-limit hits",
                        format::thousands(st.rate_limited),
                        Some(events(("outcome", "rate_limited"))),
                    ),
                    figure(
                        "last_24h",
                        "Last 24 h",
                        format::thousands(s.last_24h),
                        Some(format!(
                            "/t/{slug}/events?{}",
                            query_string(&[("token", Some(t)), ("range", Some("24h"))])
                        )),
                    ),
                    figure(
                        "last_seen",
                        "Last activity",
                        format::time(st.last_seen),
                        None,
                    ),
                    figure(
                        "first_seen",
                        "First seen",
                        format::time(st.first_seen),
                        None,
                    ),
                    figure(
                        "uploads",
                        "Uploads",
                        format::thousands(st.uploads),
                        Some(events(("type", "join.upload"))),
                    ),
                    figure(
                        "downloads",
                        "Downloads",
                        format::thousands(st.downloads),
                        Some(events(("type", "join.download"))),
                    ),
                    figure(
                        "distinct_ips",
                        "Distinct IPs",
                        format::thousands(s.distinct_ips),
                        None,
                    ),
                    figure(
                        "distinct_devices",
                        "Distinct devices",
                        format::thousands(s.distinct_devices),
                        None,
                    ),
                    figure("issued_at", "Issued", time(st.issued_at), None),
                    figure("ended_at", "Ended", time(st.ended_at), None),
                    figure(
                        "client_id",
                        "Client",
                        st.client_id.clone().unwrap_or_else(|| "—".into()),
                        None,
                    ),
                ];
                let recent = app
                    .list_events(
                        &principal,
                        slug,
                        EventQuery {
                            time: TimeSpec {
                                from: Some(st.first_seen),
                                to: Some(st.last_seen.saturating_add(1)),
                                range: None,
                            },
                            token: Some(t.clone()),
                            limit: Some(20),
                            ..EventQuery::default()
                        },
                        now,
                    )
                    .await?;
                let rows = recent
                    .events
                    .iter()
                    .map(|e| EventRow::of(e, slug))
                    .collect();
                (Some(figures), false, rows)
            }
            Err(AppError::NotFound(_)) => (None, true, Vec::new()),
            Err(other) => return Err(other),
        },
        None => (None, false, Vec::new()),
    };
    let inactive_days = request
        .param("inactive_days")
        .and_then(|d| d.parse::<u64>().ok())
        .unwrap_or(30);
    let (stale, next) = app
        .inactive_tokens(
            &principal,
            slug,
            Some(inactive_days),
            Some(50),
            request.param("cursor").map(str::to_owned),
            now,
        )
        .await?;
    let stale_next = next.map(|cursor| {
        format!(
            "/t/{slug}/tokens?{}",
            query_string(&[
                ("token", token.as_deref()),
                ("inactive_days", Some(&inactive_days.to_string())),
                ("cursor", Some(&cursor)),
            ])
        )
    });
    let stale = stale
        .iter()
        .map(|(t, st)| StaleRow {
            href: format!("/t/{slug}/tokens?{}", query_string(&[("token", Some(t))])),
            token: t.clone(),
            client_id: st.client_id.clone().unwrap_or_default(),
            last_seen: format::time(st.last_seen),
            events: format::thousands(st.events),
        })
        .collect();
    let recent_href = token.as_deref().map(all_time).unwrap_or_default();
    render(
        200,
        &TokensPage {
            chrome,
            token: token.unwrap_or_default(),
            summary,
            not_found,
            recent,
            recent_href,
            inactive_days,
            stale,
            stale_next,
        },
    )
}
