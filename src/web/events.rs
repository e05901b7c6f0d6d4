//! `/t/{tenant}/events`: the explorer (every filter of the API, cursor paging, export
//! links) and `/t/{tenant}/events/{seq}`: one event in full.

use std::sync::Arc;

use askama::Template;

use super::format::{self, query_string};
use super::layout::{render, Chrome};
use super::{WebRequest, WebResponse};
use crate::app::{encode_cursor, App, AppError, EventQuery, Session};
use crate::store::StoredEvent;

/// The filters of the explorer: the API's own names, so a page's query is an API query.
pub const FILTERS: [&str; 11] = [
    "range",
    "from",
    "to",
    "type",
    "outcome",
    "client_id",
    "user_id",
    "token",
    "ip",
    "q",
    "limit",
];

/// One event as a table row.
pub struct EventRow {
    pub seq: u64,
    pub href: String,
    pub time: String,
    pub event_type: String,
    pub outcome: &'static str,
    pub client_id: String,
    pub user_id: String,
    pub token: String,
    pub token_href: String,
    pub ip: String,
    pub route: String,
    pub user_agent: String,
}

impl EventRow {
    pub fn of(stored: &StoredEvent, slug: &str) -> EventRow {
        let e = &stored.event;
        let text = |v: &Option<String>| v.clone().unwrap_or_default();
        EventRow {
            seq: stored.seq,
            href: format!("/t/{slug}/events/{}", stored.seq),
            time: format::time(e.ts),
            event_type: e.event_type.as_str().to_owned(),
            outcome: e.outcome.as_str(),
            client_id: text(&e.client_id),
            user_id: text(&e.user_id),
            token_href: e.token.as_deref().map_or_else(String::new, |t| {
                format!("/t/{slug}/tokens?{}", query_string(&[("token", Some(t))]))
            }),
            token: text(&e.token),
            ip: e.ip.map(|ip| ip.to_string()).unwrap_or_default(),
            route: text(&e.route),
            user_agent: text(&e.user_agent),
        }
    }
}

/// A filter field of the form, with its current value.
pub struct Filter {
    pub name: &'static str,
    pub label: &'static str,
    pub value: String,
    pub hint: &'static str,
}

/// An option of a select, and whether it is the chosen one.
pub struct Choice {
    pub value: &'static str,
    pub selected: bool,
}

fn choices(values: &[&'static str], chosen: Option<&str>) -> Vec<Choice> {
    values
        .iter()
        .map(|value| Choice {
            value,
            selected: Some(*value) == chosen,
        })
        .collect()
}

#[derive(Template)]
#[template(path = "events.html")]
struct EventsPage {
    chrome: Chrome,
    filters: Vec<Filter>,
    outcomes: Vec<Choice>,
    ranges: Vec<Choice>,
    rows: Vec<EventRow>,
    next_href: Option<String>,
    first_href: Option<String>,
    export_ndjson: String,
    export_csv: String,
}

/// The filters as sent, in the API's terms (the same parsing as `/api/v1/…/events`).
pub fn event_query(request: &WebRequest) -> Result<EventQuery, AppError> {
    EventQuery::from_params(|name| request.param(name))
}

/// The page's filters as a query string (without the cursor).
fn filter_query(request: &WebRequest) -> String {
    let pairs: Vec<(&str, Option<&str>)> = FILTERS
        .iter()
        .map(|name| (*name, request.param(name)))
        .collect();
    query_string(&pairs)
}

pub async fn list(
    app: &Arc<App>,
    session: &Session,
    request: &WebRequest,
    slug: &str,
) -> Result<WebResponse, AppError> {
    let chrome = Chrome::for_tenant(app, session, slug, "events").await?;
    let mut query = event_query(request)?;
    // Without any time, the explorer shows the last 7 days rather than the API's 24 h:
    // the page is for finding things.
    if query.time.from.is_none() && query.time.to.is_none() && query.time.range.is_none() {
        query.time.range = Some("7d".into());
    }
    let page = app
        .list_events(&session.principal(), slug, query, request.now)
        .await?;
    let base = filter_query(request);
    let joined = |extra: String| {
        if base.is_empty() {
            extra
        } else if extra.is_empty() {
            base.clone()
        } else {
            format!("{base}&{extra}")
        }
    };
    let next_href = page.next.map(|cursor| {
        format!(
            "/t/{slug}/events?{}",
            joined(query_string(&[("cursor", Some(&encode_cursor(cursor)))]))
        )
    });
    let first_href = request
        .param("cursor")
        .map(|_| format!("/t/{slug}/events?{}", joined(String::new())));
    let export = |format: &str| {
        format!(
            "/t/{slug}/events/export?{}",
            joined(query_string(&[("format", Some(format))]))
        )
    };
    let value = |name: &str| request.param(name).unwrap_or_default().to_owned();
    let filters = vec![
        Filter {
            name: "type",
            label: "Type",
            value: value("type"),
            hint: "token.issued",
        },
        Filter {
            name: "client_id",
            label: "Client",
            value: value("client_id"),
            hint: "",
        },
        Filter {
            name: "user_id",
            label: "User",
            value: value("user_id"),
            hint: "",
        },
        Filter {
            name: "token",
            label: "Token",
            value: value("token"),
            hint: "",
        },
        Filter {
            name: "ip",
            label: "IP or CIDR",
            value: value("ip"),
            hint: "203.0.113.0/24",
        },
        Filter {
            name: "q",
            label: "Text",
            value: value("q"),
            hint: "route, user agent, error, context",
        },
        Filter {
            name: "from",
            label: "From",
            value: value("from"),
            hint: "2026-11-30T00:00:00Z",
        },
        Filter {
            name: "to",
            label: "To",
            value: value("to"),
            hint: "RFC 3339 or epoch ms",
        },
    ];
    let rows = page.events.iter().map(|e| EventRow::of(e, slug)).collect();
    let page = EventsPage {
        filters,
        outcomes: choices(
            &["success", "failure", "rate_limited", "blocked", "info"],
            request.param("outcome"),
        ),
        ranges: choices(&["1h", "24h", "7d", "30d", "90d"], request.param("range")),
        rows,
        next_href,
        first_href,
        export_ndjson: export("ndjson"),
        export_csv: export("csv"),
        chrome,
    };
    render(200, &page)
}

/// One field of the detail view.
pub struct Field {
    pub name: &'static str,
    pub value: String,
    pub href: Option<String>,
}

#[derive(Template)]
#[template(path = "event.html")]
struct EventPage {
    chrome: Chrome,
    seq: u64,
    fields: Vec<Field>,
    context: Option<String>,
}

pub async fn detail(
    app: &Arc<App>,
    session: &Session,
    _request: &WebRequest,
    slug: &str,
    seq: &str,
) -> Result<WebResponse, AppError> {
    let chrome = Chrome::for_tenant(app, session, slug, "events").await?;
    let seq: u64 = seq
        .parse()
        .map_err(|_| AppError::NotFound(format!("event {seq} not found")))?;
    let stored = app.event(&session.principal(), slug, seq).await?;
    let e = &stored.event;
    let filter_link = |name: &str, value: &str| {
        Some(format!(
            "/t/{slug}/events?{}",
            query_string(&[(name, Some(value)), ("range", Some("90d"))])
        ))
    };
    let mut fields = vec![
        Field {
            name: "type",
            value: e.event_type.as_str().to_owned(),
            href: filter_link("type", e.event_type.as_str()),
        },
        Field {
            name: "outcome",
            value: e.outcome.as_str().to_owned(),
            href: None,
        },
        Field {
            name: "ts",
            value: format::time(e.ts),
            href: None,
        },
        Field {
            name: "received_at",
            value: format::time(stored.received_at),
            href: None,
        },
    ];
    let mut text = |name: &'static str, value: &Option<String>, linked: bool| {
        if let Some(v) = value {
            fields.push(Field {
                name,
                href: if linked { filter_link(name, v) } else { None },
                value: v.clone(),
            });
        }
    };
    text("id", &e.id, false);
    text("client_id", &e.client_id, true);
    text("user_id", &e.user_id, true);
    text("token", &e.token, true);
    text("device_id", &e.device_id, false);
    text("grant_type", &e.grant_type, false);
    text("method", &e.method, false);
    text("route", &e.route, false);
    text("error", &e.error, false);
    text("user_agent", &e.user_agent, false);
    let ip = e.ip.map(|ip| ip.to_string());
    text("ip", &ip, true);
    let status = e.status.map(|s| s.to_string());
    text("status", &status, false);
    let duration = e.duration_ms.map(|d| format!("{d} ms"));
    text("duration_ms", &duration, false);
    let expires = e.expires_at.map(format::time);
    text("expires_at", &expires, false);
    if !e.scopes.is_empty() {
        fields.push(Field {
            name: "scopes",
            value: e.scopes.join(" "),
            href: None,
        });
    }
    if let Some(token) = &e.token {
        if let Some(field) = fields.iter_mut().find(|f| f.name == "token") {
            field.href = Some(format!(
                "/t/{slug}/tokens?{}",
                query_string(&[("token", Some(token))])
            ));
        }
    }
    let context = e.context.as_deref().map(|c| {
        serde_json::from_str::<serde_json::Value>(c)
            .ok()
            .and_then(|v| serde_json::to_string_pretty(&v).ok())
            .unwrap_or_else(|| c.to_owned())
    });
    render(
        200,
        &EventPage {
            chrome,
            seq,
            fields,
            context,
        },
    )
}
