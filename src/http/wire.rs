//! JSON shapes of the API's answers.

use serde_json::{json, Map, Value};

use crate::app::IngestReceipt;
use crate::model::time::format_ms;
use crate::model::TokenState;
use crate::query::stats::Distribution;
use crate::query::{HourRange, Series, SeriesRequest, Stats, TokenSummary, TopItem};
use crate::store::{KeyInfo, MemberInfo, StoredEvent, TenantInfo, UserInfo};

pub fn receipt(r: &IngestReceipt) -> Value {
    json!({ "accepted": r.accepted, "duplicates": r.duplicates, "ids": r.ids })
}

pub fn tenant(t: &TenantInfo) -> Value {
    json!({ "slug": t.slug, "name": t.name, "created_at": format_ms(t.created_at) })
}

pub fn key(k: &KeyInfo) -> Value {
    json!({
        "id": k.id,
        "kind": if k.ingest { "ingest" } else { "admin" },
        "name": k.name,
        "prefix": k.prefix,
        "created_at": format_ms(k.created_at),
    })
}

/// A stored event: its ingest fields (absent ones omitted) plus the server's.
pub fn event(stored: &StoredEvent, tenant_slug: &str) -> Value {
    let e = &stored.event;
    let mut m = Map::new();
    m.insert("seq".into(), json!(stored.seq));
    m.insert("tenant".into(), json!(tenant_slug));
    m.insert("type".into(), json!(e.event_type.as_str()));
    m.insert("ts".into(), json!(format_ms(e.ts)));
    m.insert("received_at".into(), json!(format_ms(stored.received_at)));
    m.insert("outcome".into(), json!(e.outcome.as_str()));
    let mut text = |name: &str, value: &Option<String>| {
        if let Some(v) = value {
            m.insert(name.into(), json!(v));
        }
    };
    text("id", &e.id);
    text("token", &e.token);
    text("client_id", &e.client_id);
    text("user_id", &e.user_id);
    text("device_id", &e.device_id);
    text("grant_type", &e.grant_type);
    text("user_agent", &e.user_agent);
    text("method", &e.method);
    text("route", &e.route);
    text("error", &e.error);
    if !e.scopes.is_empty() {
        m.insert("scopes".into(), json!(e.scopes));
    }
    if let Some(ip) = e.ip {
        m.insert("ip".into(), json!(ip.to_string()));
    }
    if let Some(status) = e.status {
        m.insert("status".into(), json!(status));
    }
    if let Some(t) = e.expires_at {
        m.insert("expires_at".into(), json!(format_ms(t)));
    }
    if let Some(d) = e.duration_ms {
        m.insert("duration_ms".into(), json!(d));
    }
    if let Some(ctx) = &e.context {
        // Stored as the serialized object ingest accepted; it always parses back.
        let value = serde_json::from_str::<Value>(ctx).unwrap_or_else(|_| json!(ctx));
        m.insert("context".into(), value);
    }
    Value::Object(m)
}

pub fn stats(s: &Stats) -> Value {
    let (from, to) = s.range.map_or((0, 0), |r| (r.from, r.to));
    json!({
        "from": format_ms(from),
        "to": format_ms(to),
        "total_events": s.total_events,
        "total_issued": s.total_issued,
        "issued_by_grant_type": s.issued_by_grant_type,
        "total_refreshed": s.total_refreshed,
        "total_userinfo": s.total_userinfo,
        "total_failed": s.total_failed,
        "total_rate_limited": s.total_rate_limited,
        "total_blocked": s.total_blocked,
        "failure_rate": s.failure_rate(),
        "refresh_rate": s.refresh_rate(),
        "by_type": s.by_type,
        "by_outcome": s.by_outcome,
        "by_hour_of_day": s.by_hour_of_day,
        "unique_users": s.unique_users,
        "unique_clients": s.unique_clients,
        "unique_ips": s.unique_ips,
        "token_lifetime_ms": distribution(&s.token_lifetime_ms, true),
        "duration_ms": distribution(&s.duration_ms, false),
    })
}

/// Percentiles are `null` when nothing was measured.
fn distribution(d: &Distribution, with_mean: bool) -> Value {
    let or_null = |v: u64| if d.count == 0 { Value::Null } else { json!(v) };
    let mut value = json!({
        "count": d.count,
        "p50": or_null(d.p50),
        "p90": or_null(d.p90),
        "p99": or_null(d.p99),
        "max": or_null(d.max),
    });
    if with_mean {
        value["mean"] = if d.count == 0 {
            Value::Null
        } else {
            json!(d.mean)
        };
    }
    value
}

pub fn user(u: &UserInfo) -> Value {
    json!({ "id": u.id, "name": u.name, "owner": u.owner, "created_at": format_ms(u.created_at) })
}

pub fn member(m: &MemberInfo) -> Value {
    json!({ "user": m.name, "role": m.role.as_str() })
}

pub fn timeseries(asked: &SeriesRequest, series: &[Series]) -> Value {
    let list: Vec<Value> = series
        .iter()
        .map(|s| {
            let points: Vec<Value> = s
                .points
                .iter()
                .map(|(t, count)| json!([format_ms(*t), count]))
                .collect();
            json!({ "key": s.key, "points": points })
        })
        .collect();
    json!({
        "interval": asked.interval.as_str(),
        "from": format_ms(asked.from),
        "to": format_ms(asked.to),
        "series": list,
    })
}

pub fn top(dim: &str, range: HourRange, items: &[TopItem]) -> Value {
    let list: Vec<Value> = items
        .iter()
        .map(|i| json!({ "key": i.key, "count": i.count, "failures": i.failures }))
        .collect();
    json!({
        "dim": dim,
        "from": format_ms(range.from),
        "to": format_ms(range.to),
        "items": list,
    })
}

/// A token's stored state.
pub fn token_state(token: &str, s: &TokenState) -> Value {
    json!({
        "token": token,
        "client_id": s.client_id,
        "first_seen": format_ms(s.first_seen),
        "last_seen": format_ms(s.last_seen),
        "events": s.events,
        "successes": s.successes,
        "failures": s.failures,
        "rate_limited": s.rate_limited,
        "uploads": s.uploads,
        "downloads": s.downloads,
        "issued_at": s.issued_at.map(format_ms),
        "ended_at": s.ended_at.map(format_ms),
        "expires_at": s.expires_at.map(format_ms),
    })
}

/// `/tokens/{token}`: the state plus the scanned figures.
pub fn token_summary(t: &TokenSummary) -> Value {
    let mut value = token_state(&t.token, &t.state);
    value["last_24h"] = json!(t.last_24h);
    value["distinct_ips"] = json!(t.distinct_ips);
    value["distinct_devices"] = json!(t.distinct_devices);
    value
}

/// The CSV columns of an export, in order.
const CSV_COLUMNS: [&str; 21] = [
    "seq",
    "ts",
    "received_at",
    "type",
    "outcome",
    "id",
    "token",
    "client_id",
    "user_id",
    "device_id",
    "grant_type",
    "scopes",
    "ip",
    "user_agent",
    "method",
    "route",
    "status",
    "error",
    "expires_at",
    "duration_ms",
    "context",
];

pub fn csv_header() -> String {
    let mut line = CSV_COLUMNS.join(",");
    line.push_str("\r\n");
    line
}

/// One RFC 4180 record: fields holding a comma, a quote or a line break are quoted, with
/// quotes doubled; records end in CRLF.
pub fn csv_row(stored: &StoredEvent) -> String {
    let e = &stored.event;
    let opt = |v: &Option<String>| v.clone().unwrap_or_default();
    let fields = [
        stored.seq.to_string(),
        format_ms(e.ts),
        format_ms(stored.received_at),
        e.event_type.to_string(),
        e.outcome.to_string(),
        opt(&e.id),
        opt(&e.token),
        opt(&e.client_id),
        opt(&e.user_id),
        opt(&e.device_id),
        opt(&e.grant_type),
        e.scopes.join(" "),
        e.ip.map(|ip| ip.to_string()).unwrap_or_default(),
        opt(&e.user_agent),
        opt(&e.method),
        opt(&e.route),
        e.status.map(|s| s.to_string()).unwrap_or_default(),
        opt(&e.error),
        e.expires_at.map(format_ms).unwrap_or_default(),
        e.duration_ms.map(|d| d.to_string()).unwrap_or_default(),
        opt(&e.context),
    ];
    let mut line = String::new();
    for (i, field) in fields.iter().enumerate() {
        if i > 0 {
            line.push(',');
        }
        line.push_str(&csv_field(field));
    }
    line.push_str("\r\n");
    line
}

fn csv_field(text: &str) -> std::borrow::Cow<'_, str> {
    if text.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", text.replace('"', "\"\"")).into()
    } else {
        text.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quotes_commas_quotes_and_newlines() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("line\nbreak"), "\"line\nbreak\"");
        assert_eq!(csv_header().split(',').count(), CSV_COLUMNS.len());
    }
}
