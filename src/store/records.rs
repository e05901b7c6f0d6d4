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

/// An event as stored in the log (the value of [`super::tables::LOG`]), in the layout of
/// `event_format`. Repeated strings are interned (see `names`); the token and the user id
/// are stored as their per-tenant numbers; times other than `ts` are stored as their
/// difference to `ts`, which is small in real traffic and makes a short varint.
///
/// The first five fields are also read alone, as a [`RecordHead`], to filter without
/// decoding whole records.
#[derive(Debug, Clone)]
pub struct EventRecord {
    pub ts: u64,
    /// `received_at − ts`, wrapping (see [`delta`]).
    pub received_delta: i64,
    pub type_id: u32,
    pub outcome: u8,
    pub client: Option<u32>,
    pub id: Option<String>,
    /// The token's number (see [`TokenRecord`]), set by the writer.
    pub token: Option<u64>,
    /// The user id's number (see `columns::KIND_USER`), set by the writer.
    pub user: Option<u32>,
    pub device_id: Option<String>,
    pub grant: Option<u32>,
    pub scopes: Vec<Text>,
    pub ip: Option<IpAddr>,
    pub user_agent: Option<Text>,
    pub method: Option<u32>,
    pub route: Option<Text>,
    pub status: Option<u16>,
    pub error: Option<Text>,
    /// `expires_at − ts`, wrapping.
    pub expires_delta: Option<i64>,
    pub duration_ms: Option<u32>,
    pub context: Option<String>,
}

/// The leading fields of an [`EventRecord`], decodable from its bytes alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordHead {
    pub ts: u64,
    pub received_delta: i64,
    pub type_id: u32,
    pub outcome: u8,
    pub client: Option<u32>,
}

/// `time − ts` as a signed difference. Wrapping both ways, so that [`undelta`] gives back
/// any `u64` exactly, while times near `ts` encode in a byte or a few.
pub fn delta(time: u64, ts: u64) -> i64 {
    time.wrapping_sub(ts) as i64
}

/// The time whose [`delta`] to `ts` is `delta`.
pub fn undelta(delta: i64, ts: u64) -> u64 {
    ts.wrapping_add(delta as u64)
}

impl RecordHead {
    pub fn received_at(&self) -> u64 {
        undelta(self.received_delta, self.ts)
    }

    /// The head of an encoded [`EventRecord`].
    pub fn decode(bytes: &[u8]) -> Result<RecordHead, StoreError> {
        super::event_format::decode_head(bytes)
    }
}

/// The texts of the numbers a tenant's records hold, to turn records back into events.
pub trait Numbers {
    fn token(&self, id: u64) -> Result<String, StoreError>;
    fn user(&self, id: u32) -> Result<String, StoreError>;
}

/// A sender-chosen text that is usually repeated (user agents, routes, errors, scopes):
/// interned while the names table is below its cap ([`super::names::MAX_FREE_NAMES`]),
/// stored inline beyond it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Text {
    Id(u32),
    Inline(String),
}

/// A token's stored state (the value of [`super::tables::TOKENS`]) with its number: log
/// records refer to the token by this number, [`super::tables::TOKEN_IDS`] maps it back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRecord {
    pub id: u64,
    pub state: crate::model::TokenState,
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
    /// `name(text, free)` is asked with `free` set for free texts (user agents, routes,
    /// errors, scopes); when it
    /// knows no id for one, the text is stored inline if `inline_unknown` is set, else no
    /// record is built.
    pub fn with_names(
        event: &Event,
        received_at: u64,
        inline_unknown: bool,
        mut name: impl FnMut(&str, bool) -> Option<u32>,
    ) -> Option<Self> {
        // A free text's stored form; `Err` when it has no id and may not be inlined.
        let mut free = |text: &str| -> Result<Text, ()> {
            match name(text, true) {
                Some(id) => Ok(Text::Id(id)),
                None if inline_unknown => Ok(Text::Inline(text.to_owned())),
                None => Err(()),
            }
        };
        let user_agent = event
            .user_agent
            .as_deref()
            .map(&mut free)
            .transpose()
            .ok()?;
        let route = event.route.as_deref().map(&mut free).transpose().ok()?;
        let error = event.error.as_deref().map(&mut free).transpose().ok()?;
        let scopes = event
            .scopes
            .iter()
            .map(|scope| free(scope))
            .collect::<Result<Vec<_>, _>>()
            .ok()?;
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
            ts: event.ts,
            received_delta: delta(received_at, event.ts),
            type_id: name(event.event_type.as_str(), false)?,
            outcome: event.outcome.code(),
            id: event.id.clone(),
            token: None,
            client,
            user: None,
            device_id: event.device_id.clone(),
            grant,
            scopes,
            ip: event.ip,
            user_agent,
            method,
            route,
            status: event.status,
            error,
            expires_delta: event.expires_at.map(|at| delta(at, event.ts)),
            duration_ms: event.duration_ms,
            context: event.context.clone(),
        })
    }

    pub fn received_at(&self) -> u64 {
        undelta(self.received_delta, self.ts)
    }

    pub fn encode(&self) -> Result<Vec<u8>, StoreError> {
        super::event_format::encode(self)
    }

    pub fn decode(bytes: &[u8]) -> Result<EventRecord, StoreError> {
        super::event_format::decode(bytes)
    }

    pub fn counter_fields(&self) -> CounterFields {
        CounterFields {
            type_id: self.type_id,
            outcome: self.outcome,
            client: self.client,
            grant: self.grant,
        }
    }

    /// The domain event back, with interned strings resolved and the token's and user's
    /// numbers turned back into text by `numbers`.
    pub fn into_event(self, names: &Names, numbers: &impl Numbers) -> Result<Event, StoreError> {
        let name = |id: u32| -> Result<String, StoreError> {
            names
                .text(id)
                .map(str::to_owned)
                .ok_or_else(|| StoreError::Corrupt(format!("name id {id} is unknown")))
        };
        let text = |text: Text| match text {
            Text::Id(id) => name(id),
            Text::Inline(text) => Ok(text),
        };
        let event_type = EventType::parse(&name(self.type_id)?)
            .ok_or_else(|| StoreError::Corrupt("stored event type is malformed".into()))?;
        let outcome = Outcome::from_code(self.outcome)
            .ok_or_else(|| StoreError::Corrupt(format!("outcome code {}", self.outcome)))?;
        let ts = self.ts;
        Ok(Event {
            event_type,
            ts,
            id: self.id,
            outcome,
            token: self.token.map(|id| numbers.token(id)).transpose()?,
            client_id: self.client.map(name).transpose()?,
            user_id: self.user.map(|id| numbers.user(id)).transpose()?,
            device_id: self.device_id,
            grant_type: self.grant.map(name).transpose()?,
            scopes: self
                .scopes
                .into_iter()
                .map(text)
                .collect::<Result<_, _>>()?,
            ip: self.ip,
            user_agent: self.user_agent.map(text).transpose()?,
            method: self.method.map(name).transpose()?,
            route: self.route.map(text).transpose()?,
            status: self.status,
            error: self.error.map(text).transpose()?,
            expires_at: self.expires_delta.map(|d| undelta(d, ts)),
            duration_ms: self.duration_ms,
            context: self.context,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::EventType;

    /// For records that hold no numbers.
    struct NoNumbers;

    impl Numbers for NoNumbers {
        fn token(&self, id: u64) -> Result<String, StoreError> {
            Err(StoreError::Corrupt(format!("token {id}")))
        }
        fn user(&self, id: u32) -> Result<String, StoreError> {
            Err(StoreError::Corrupt(format!("user {id}")))
        }
    }

    /// Names every number `n` as `t{n}` / `u{n}`.
    struct Echo;

    impl Numbers for Echo {
        fn token(&self, id: u64) -> Result<String, StoreError> {
            Ok(format!("t{id}"))
        }
        fn user(&self, id: u32) -> Result<String, StoreError> {
            Ok(format!("u{id}"))
        }
    }

    #[test]
    fn times_take_six_bytes_and_numbers_are_named_back() {
        let names = Names::from_ordered(vec!["a.b".into()]);
        for ts in [0, 1, 1_764_633_600_000, (1 << 48) - 1] {
            let event = Event::new(EventType::parse("a.b").expect("valid"), ts);
            let mut record =
                EventRecord::with_names(&event, ts + 3, false, |t, _| names.id(t)).expect("ok");
            record.user = Some(70_000);
            record.token = Some(5);
            let bytes = record.encode().expect("encodes");
            assert_eq!(bytes[0], crate::store::codec::EVENT_FORMAT);
            // Format byte, then the six bytes of `ts`.
            assert_eq!(bytes[1..7], ts.to_be_bytes()[2..]);
            let back = EventRecord::decode(&bytes).expect("decodes");
            assert_eq!(back.ts, ts);
            assert_eq!(back.received_at(), ts + 3);
            let event = back.into_event(&names, &Echo).expect("named");
            assert_eq!(event.user_id.as_deref(), Some("u70000"));
            assert_eq!(event.token.as_deref(), Some("t5"));
            assert!(EventRecord::decode(&bytes)
                .expect("decodes")
                .into_event(&names, &NoNumbers)
                .is_err());
        }
        let event = Event::new(EventType::parse("a.b").expect("valid"), 1 << 48);
        let record = EventRecord::with_names(&event, 0, false, |t, _| names.id(t)).expect("ok");
        assert!(record.encode().is_err(), "a time beyond 48 bits is refused");
        // A record of the older format is not mistaken for one of this format.
        let old = crate::store::codec::encode(&(record.ts, 0u8)).expect("encodes");
        assert!(EventRecord::decode(&old).is_err());
    }

    #[test]
    fn user_agents_are_interned_or_inlined_and_read_back() {
        let names = Names::from_ordered(vec!["a.b".into(), "Mozilla".into()]);
        let mut event = Event::new(EventType::parse("a.b").expect("valid"), 5);
        event.user_agent = Some("Mozilla".into());
        let interned = EventRecord::with_names(&event, 7, false, |t, _| names.id(t))
            .expect("every name known");
        assert_eq!(interned.user_agent, Some(Text::Id(1)));
        assert_eq!(
            interned
                .clone()
                .into_event(&names, &NoNumbers)
                .expect("decodes"),
            event
        );

        event.user_agent = Some("curl/8".into());
        assert!(EventRecord::with_names(&event, 7, false, |t, _| names.id(t)).is_none());
        let inlined = EventRecord::with_names(&event, 7, true, |t, _| names.id(t))
            .expect("unknown agents inline");
        assert_eq!(inlined.user_agent, Some(Text::Inline("curl/8".into())));
        assert_eq!(
            inlined.into_event(&names, &NoNumbers).expect("decodes"),
            event
        );
    }

    #[test]
    fn the_head_decodes_from_a_whole_record() {
        let names = Names::from_ordered(vec!["a.b".into(), "web".into()]);
        let mut event = Event::new(EventType::parse("a.b").expect("valid"), 5);
        event.client_id = Some("web".into());
        event.token = Some("t".into());
        let record = EventRecord::with_names(&event, 7, false, |t, _| names.id(t)).expect("ok");
        let bytes = record.encode().expect("encodes");
        let head = RecordHead::decode(&bytes).expect("decodes");
        assert_eq!(
            head,
            RecordHead {
                ts: 5,
                received_delta: 2,
                type_id: 0,
                outcome: event.outcome.code(),
                client: Some(1)
            }
        );
    }
}
