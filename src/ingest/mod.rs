//! Raw request bodies → validated, sanitised [`Event`]s.
//!
//! Pure: no I/O, no clock (`now` is passed in). Everything the network sends passes through
//! here before it reaches the store, so every rule of the API's event table lives here, once.
//! A batch is all-or-nothing: one bad event makes the whole body a list of problems.

mod fields;
mod sanitize;

use serde::de::{Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::Value;

use crate::model::Event;

pub use sanitize::{canonical_ip, sanitize_route, strip_controls, truncate_bytes};

/// Most events one request may carry.
pub const MAX_EVENTS_PER_REQUEST: usize = 10_000;
/// Most problems listed in one error answer.
pub const MAX_PROBLEMS: usize = 100;

/// How the body is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFormat {
    /// One JSON object or a JSON array of objects.
    Json,
    /// One JSON object per line.
    Ndjson,
}

/// One thing wrong with one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Position of the event in the request (0 for a single object).
    pub index: usize,
    /// The field at fault, when one is.
    pub field: Option<String>,
    pub message: String,
}

/// Why a body was refused. Nothing of a refused body is stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IngestError {
    #[error("body is not valid JSON: {0}")]
    Malformed(String),
    #[error("the request carries no event")]
    Empty,
    #[error("the request carries {0} events; at most {MAX_EVENTS_PER_REQUEST} are allowed")]
    TooMany(usize),
    #[error("{} of the events are invalid", .0.len())]
    Invalid(Vec<Problem>),
}

/// Parses and validates a whole request body received at `now` (epoch ms).
pub fn parse_body(body: &[u8], format: BodyFormat, now: u64) -> Result<Vec<Event>, IngestError> {
    let text = std::str::from_utf8(body)
        .map_err(|_| IngestError::Malformed("body is not UTF-8".to_owned()))?;
    let raws: Vec<&str> = match format {
        BodyFormat::Ndjson => text
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty())
            .collect(),
        BodyFormat::Json if text.trim_start().starts_with('[') => {
            let items: Vec<&RawValue> =
                serde_json::from_str(text).map_err(|e| IngestError::Malformed(e.to_string()))?;
            items.into_iter().map(RawValue::get).collect()
        }
        BodyFormat::Json => vec![text],
    };
    if raws.is_empty() {
        return Err(IngestError::Empty);
    }
    if raws.len() > MAX_EVENTS_PER_REQUEST {
        return Err(IngestError::TooMany(raws.len()));
    }
    let single = raws.len() == 1 && format == BodyFormat::Json;
    let mut events = Vec::with_capacity(raws.len());
    let mut problems = Vec::new();
    for (index, raw) in raws.into_iter().enumerate() {
        match serde_json::from_str::<RawObject>(raw) {
            Ok(object) => match fields::event_from_fields(object.0, now) {
                Ok(event) => events.push(event),
                Err(mut found) => {
                    for p in &mut found {
                        p.index = index;
                    }
                    problems.extend(found);
                }
            },
            // A lone body that is not JSON at all is malformed, not an invalid event.
            Err(e) if single && (e.is_syntax() || e.is_eof()) => {
                return Err(IngestError::Malformed(e.to_string()))
            }
            Err(e) => problems.push(Problem {
                index,
                field: None,
                message: format!("not a JSON object of fields: {e}"),
            }),
        }
    }
    if problems.is_empty() {
        Ok(events)
    } else {
        problems.truncate(MAX_PROBLEMS);
        Err(IngestError::Invalid(problems))
    }
}

/// A JSON object kept as its list of fields, so that a duplicated key is seen (and refused by
/// `fields`), not silently resolved to its last value as `serde_json::Map` would.
struct RawObject(Vec<(String, Value)>);

impl<'de> serde::Deserialize<'de> for RawObject {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ObjectVisitor;
        impl<'de> Visitor<'de> for ObjectVisitor {
            type Value = RawObject;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawObject, A::Error> {
                let mut fields: Vec<(String, Value)> = Vec::new();
                while let Some(entry) = map.next_entry::<String, Value>()? {
                    fields.push(entry);
                }
                Ok(RawObject(fields))
            }
        }
        deserializer.deserialize_map(ObjectVisitor)
    }
}

#[cfg(test)]
mod tests;
