//! The event table of the API: one rule per field, applied to a parsed JSON object.

use serde_json::Value;

use super::sanitize::{canonical_ip, sanitize_route, strip_controls, truncate_bytes};
use super::Problem;
use crate::model::time::{parse_rfc3339_ms, DAY_MS, MAX_TIME_MS};
use crate::model::{Event, EventType, Outcome};

/// How far in the past an event's `ts` may lie.
pub const MAX_PAST_MS: u64 = 7 * DAY_MS;
/// How far in the future an event's `ts` may lie (clock skew).
pub const MAX_FUTURE_MS: u64 = 5 * 60 * 1000;
/// Largest serialized `context` object.
pub const MAX_CONTEXT_BYTES: usize = 4096;

type FieldResult<T> = Result<T, String>;

/// Builds an event from the fields of one JSON object, or lists every problem found.
pub(super) fn event_from_fields(
    fields: Vec<(String, Value)>,
    now: u64,
) -> Result<Event, Vec<Problem>> {
    let mut problems = Vec::new();
    let mut complain = |field: &str, message: String| {
        problems.push(Problem {
            index: 0,
            field: Some(field.to_owned()),
            message,
        })
    };

    let mut seen: Vec<&str> = Vec::with_capacity(fields.len());
    for (name, _) in &fields {
        if seen.contains(&name.as_str()) {
            complain(name, format!("field `{name}` appears more than once"));
        }
        seen.push(name);
    }

    let mut event = Event::new(EventType::parse("unset").expect("a valid literal"), now);
    let mut event_type = None;
    let mut outcome = None;
    for (name, value) in &fields {
        if value.is_null() && name != "type" {
            continue; // an explicit null is the same as an absent optional field
        }
        let result: FieldResult<()> = match name.as_str() {
            "type" => value
                .as_str()
                .and_then(EventType::parse)
                .map(|t| event_type = Some(t))
                .ok_or_else(|| {
                    "must be a string of dot-separated [a-z0-9_] words, at most 64 characters"
                        .to_owned()
                }),
            "ts" => time_field(value).and_then(|ts| {
                if ts.saturating_add(MAX_PAST_MS) < now || ts > now.saturating_add(MAX_FUTURE_MS) {
                    Err("must lie within the last 7 days and at most 5 minutes ahead".to_owned())
                } else {
                    event.ts = ts;
                    Ok(())
                }
            }),
            "id" => bounded(value, 128).map(|v| event.id = v),
            "outcome" => value
                .as_str()
                .and_then(Outcome::parse)
                .map(|o| outcome = Some(o))
                .ok_or_else(|| {
                    "must be one of success, failure, rate_limited, blocked, info".to_owned()
                }),
            "token" => bounded(value, 128).map(|v| event.token = v),
            "client_id" => bounded(value, 128).map(|v| event.client_id = v),
            "user_id" => bounded(value, 128).map(|v| event.user_id = v),
            "device_id" => bounded(value, 128).map(|v| event.device_id = v),
            "grant_type" => bounded(value, 64).map(|v| event.grant_type = v),
            "scopes" => scopes(value).map(|v| event.scopes = v),
            "ip" => value
                .as_str()
                .and_then(|s| s.trim().parse().ok())
                .map(|ip| event.ip = Some(canonical_ip(ip)))
                .ok_or_else(|| "must be an IPv4 or IPv6 address".to_owned()),
            "user_agent" => string(value)
                .map(|s| event.user_agent = non_empty(truncate_bytes(strip_controls(s), 512))),
            "method" => bounded(value, 16).map(|v| event.method = v),
            "route" => string(value).map(|s| event.route = non_empty(sanitize_route(s))),
            "status" => integer(value, 100, 599).map(|v| event.status = Some(v as u16)),
            "error" => bounded(value, 256).map(|v| event.error = v),
            "expires_at" => time_field(value).map(|v| event.expires_at = Some(v)),
            "duration_ms" => {
                integer(value, 0, 3_600_000).map(|v| event.duration_ms = Some(v as u32))
            }
            "context" => context(value).map(|v| event.context = Some(v)),
            _ => Err(format!("unknown field `{name}`")),
        };
        if let Err(message) = result {
            complain(name, message);
        }
    }
    match event_type {
        Some(t) => {
            event.outcome = outcome.unwrap_or_else(|| t.default_outcome());
            event.event_type = t;
        }
        None if !fields.iter().any(|(n, _)| n == "type") => {
            complain("type", "is required".to_owned())
        }
        None => {}
    }
    if problems.is_empty() {
        Ok(event)
    } else {
        Err(problems)
    }
}

fn string(value: &Value) -> FieldResult<&str> {
    value.as_str().ok_or_else(|| "must be a string".to_owned())
}

fn non_empty(text: String) -> Option<String> {
    (!text.is_empty()).then_some(text)
}

/// A string of at most `max` characters, control characters removed; empty means absent.
fn bounded(value: &Value, max: usize) -> FieldResult<Option<String>> {
    let text = string(value)?;
    if text.chars().count() > max {
        return Err(format!("must be at most {max} characters"));
    }
    Ok(non_empty(strip_controls(text)))
}

fn integer(value: &Value, min: u64, max: u64) -> FieldResult<u64> {
    value
        .as_u64()
        .filter(|v| (min..=max).contains(v))
        .ok_or_else(|| format!("must be an integer from {min} to {max}"))
}

/// RFC 3339 text or integer epoch milliseconds.
fn time_field(value: &Value) -> FieldResult<u64> {
    let parsed = match value {
        Value::String(s) => parse_rfc3339_ms(s),
        Value::Number(n) => n.as_u64().filter(|ms| *ms <= MAX_TIME_MS),
        _ => None,
    };
    parsed.ok_or_else(|| "must be an RFC 3339 time or epoch milliseconds".to_owned())
}

fn scopes(value: &Value) -> FieldResult<Vec<String>> {
    let items = value
        .as_array()
        .ok_or_else(|| "must be an array of strings".to_owned())?;
    if items.len() > 32 {
        return Err("must hold at most 32 scopes".to_owned());
    }
    items
        .iter()
        .map(|item| match item.as_str() {
            Some(s) if s.chars().count() <= 64 => Ok(strip_controls(s)),
            _ => Err("each scope must be a string of at most 64 characters".to_owned()),
        })
        .collect()
}

fn context(value: &Value) -> FieldResult<String> {
    if !value.is_object() {
        return Err("must be a JSON object".to_owned());
    }
    let text = value.to_string();
    if text.len() > MAX_CONTEXT_BYTES {
        return Err(format!(
            "must be at most {MAX_CONTEXT_BYTES} bytes serialized"
        ));
    }
    Ok(text)
}
