//! The records stored as table values, and their conversion from and to domain types.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::names::{Names, PendingNames};
use super::StoreError;
use crate::model::{Event, EventType, Outcome};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TenantRecord {
    pub slug: String,
    pub name: String,
    pub created_at: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UserRecord {
    pub name: String,
    /// PHC string of an argon2id hash.
    pub password_hash: String,
    pub owner: bool,
    pub created_at: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeyRecord {
    pub id: u64,
    pub tenant: u32,
    /// `true` for an ingest key, `false` for an admin key.
    pub ingest: bool,
    /// For admin keys: the user the key acts as.
    pub user: Option<u32>,
    pub name: String,
    /// The first characters of the secret, to recognise it in a list.
    pub prefix: String,
    /// SHA-256 of the secret.
    pub hash: [u8; 32],
    pub created_at: u64,
}

/// A dashboard session: who is logged in, the CSRF token of their forms, and until when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionRecord {
    /// SHA-256 of the cookie's secret.
    pub hash: [u8; 32],
    pub user: u32,
    /// The token every state-changing form of this session must carry.
    pub csrf: String,
    pub created_at: u64,
    pub expires_at: u64,
}

/// An event as stored in the log. Repeated strings are interned (see `names`).
///
/// Field order is part of the format: the first four fields are also read alone, as a
/// [`RecordHead`], to filter a listing without decoding whole records.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EventRecord {
    pub received_at: u64,
    pub type_id: u32,
    pub outcome: u8,
    pub client: Option<u32>,
    pub id: Option<String>,
    pub token: Option<String>,
    pub user_id: Option<String>,
    pub device_id: Option<String>,
    pub grant: Option<u32>,
    pub scopes: Vec<String>,
    pub ip: Option<IpAddr>,
    pub user_agent: Option<Text>,
    pub method: Option<u32>,
    pub route: Option<String>,
    pub status: Option<u16>,
    pub error: Option<String>,
    pub expires_at: Option<u64>,
    pub duration_ms: Option<u32>,
    pub context: Option<String>,
}

/// The leading fields of an [`EventRecord`], decodable from its bytes alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct RecordHead {
    pub received_at: u64,
    pub type_id: u32,
    pub outcome: u8,
    pub client: Option<u32>,
}

/// A free-text field that is usually repeated: interned while the names table is below
/// its cap ([`super::names::MAX_FREE_NAMES`]), stored inline beyond it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Text {
    Id(u32),
    Inline(String),
}

/// The parts of a record that counter keys are made of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CounterFields {
    pub type_id: u32,
    pub outcome: u8,
    pub client: Option<u32>,
    pub grant: Option<u32>,
}

impl EventRecord {
    /// The record for `event`, interning its repeated strings into `pending`.
    pub fn from_event(event: &Event, received_at: u64, pending: &mut PendingNames) -> Self {
        let record = Self::with_names(event, received_at, true, |text, free| {
            if free {
                pending.intern_capped(text)
            } else {
                Some(pending.intern(text))
            }
        });
        // `intern` always answers and refused free texts are inlined, so `with_names`
        // always builds a record here.
        record.expect("interning never fails")
    }

    /// The record for `event` if `name` knows the id of each of its repeated strings.
    /// `name(text, free)` is asked with `free` set for free texts (user agents); when it
    /// knows no id for one, the text is stored inline if `inline_unknown` is set, else no
    /// record is built.
    pub fn with_names(
        event: &Event,
        received_at: u64,
        inline_unknown: bool,
        mut name: impl FnMut(&str, bool) -> Option<u32>,
    ) -> Option<Self> {
        let user_agent = match &event.user_agent {
            None => None,
            Some(text) => match name(text, true) {
                Some(id) => Some(Text::Id(id)),
                None if inline_unknown => Some(Text::Inline(text.clone())),
                None => return None,
            },
        };
        let mut optional = |text: &Option<String>| -> Option<Option<u32>> {
            match text {
                Some(t) => name(t, false).map(Some),
                None => Some(None),
            }
        };
        let client = optional(&event.client_id)?;
        let grant = optional(&event.grant_type)?;
        let method = optional(&event.method)?;
        Some(EventRecord {
            received_at,
            type_id: name(event.event_type.as_str(), false)?,
            outcome: event.outcome.code(),
            id: event.id.clone(),
            token: event.token.clone(),
            client,
            user_id: event.user_id.clone(),
            device_id: event.device_id.clone(),
            grant,
            scopes: event.scopes.clone(),
            ip: event.ip,
            user_agent,
            method,
            route: event.route.clone(),
            status: event.status,
            error: event.error.clone(),
            expires_at: event.expires_at,
            duration_ms: event.duration_ms,
            context: event.context.clone(),
        })
    }

    pub fn counter_fields(&self) -> CounterFields {
        CounterFields {
            type_id: self.type_id,
            outcome: self.outcome,
            client: self.client,
            grant: self.grant,
        }
    }

    /// The domain event back, with interned strings resolved.
    pub fn into_event(self, ts: u64, names: &Names) -> Result<Event, StoreError> {
        let name = |id: u32| -> Result<String, StoreError> {
            names
                .text(id)
                .map(str::to_owned)
                .ok_or_else(|| StoreError::Corrupt(format!("name id {id} is unknown")))
        };
        let event_type = EventType::parse(&name(self.type_id)?)
            .ok_or_else(|| StoreError::Corrupt("stored event type is malformed".into()))?;
        let outcome = Outcome::from_code(self.outcome)
            .ok_or_else(|| StoreError::Corrupt(format!("outcome code {}", self.outcome)))?;
        Ok(Event {
            event_type,
            ts,
            id: self.id,
            outcome,
            token: self.token,
            client_id: self.client.map(name).transpose()?,
            user_id: self.user_id,
            device_id: self.device_id,
            grant_type: self.grant.map(name).transpose()?,
            scopes: self.scopes,
            ip: self.ip,
            user_agent: match self.user_agent {
                Some(Text::Id(id)) => Some(name(id)?),
                Some(Text::Inline(text)) => Some(text),
                None => None,
            },
            method: self.method.map(name).transpose()?,
            route: self.route,
            status: self.status,
            error: self.error,
            expires_at: self.expires_at,
            duration_ms: self.duration_ms,
            context: self.context,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::EventType;

    #[test]
    fn user_agents_are_interned_or_inlined_and_read_back() {
        let names = Names::from_ordered(vec!["a.b".into(), "Mozilla".into()]);
        let mut event = Event::new(EventType::parse("a.b").expect("valid"), 5);
        event.user_agent = Some("Mozilla".into());
        let interned = EventRecord::with_names(&event, 7, false, |t, _| names.id(t))
            .expect("every name known");
        assert_eq!(interned.user_agent, Some(Text::Id(1)));
        assert_eq!(
            interned.clone().into_event(5, &names).expect("decodes"),
            event
        );

        event.user_agent = Some("curl/8".into());
        assert!(EventRecord::with_names(&event, 7, false, |t, _| names.id(t)).is_none());
        let inlined = EventRecord::with_names(&event, 7, true, |t, _| names.id(t))
            .expect("unknown agents inline");
        assert_eq!(inlined.user_agent, Some(Text::Inline("curl/8".into())));
        assert_eq!(inlined.into_event(5, &names).expect("decodes"), event);
    }

    #[test]
    fn the_head_decodes_from_a_whole_record() {
        let names = Names::from_ordered(vec!["a.b".into(), "web".into()]);
        let mut event = Event::new(EventType::parse("a.b").expect("valid"), 5);
        event.client_id = Some("web".into());
        event.token = Some("t".into());
        let record = EventRecord::with_names(&event, 7, false, |t, _| names.id(t)).expect("ok");
        let bytes = crate::store::codec::encode(&record).expect("encodes");
        let head: RecordHead = crate::store::codec::decode(&bytes, "head").expect("decodes");
        assert_eq!(
            head,
            RecordHead {
                received_at: 7,
                type_id: 0,
                outcome: event.outcome.code(),
                client: Some(1)
            }
        );
    }
}
