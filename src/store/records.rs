//! The records stored as table values, and their conversion from and to domain types.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::codec;
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
    /// Set by the writer (see [`RouteRef`]).
    pub route: Option<RouteRef>,
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
    fn route(&self, id: u32) -> Result<String, StoreError>;
}

/// A sender-chosen text that is usually repeated (user agents, errors, scopes; routes in
/// records written before schema 7):
/// interned while the names table is below its cap ([`super::names::MAX_FREE_NAMES`]),
/// stored inline beyond it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Text {
    Id(u32),
    Inline(String),
}

/// A record's route: its per-tenant number (`columns::KIND_ROUTE`), which the writer gives
/// every route since schema 7, so that a route carrying an id is stored once, not in every
/// record; or, in a record written before, its text (interned or inline).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteRef {
    Number(u32),
    Text(Text),
}

/// A token's stored state (the value of [`super::tables::TOKENS`]) with its number: log
/// records refer to the token by this number, [`super::tables::TOKEN_IDS`] maps it back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRecord {
    pub id: u64,
    pub state: crate::model::TokenState,
}

/// How a [`TokenRecord`] is stored ([`codec::TOKEN_FORMAT`]): every time but the first
/// event's as its difference to it, and times that are 0 (never set) as `None`, so that
/// most take 3 to 5 bytes where a millisecond time takes 9.
#[derive(Serialize, Deserialize)]
struct TokenWire {
    id: u64,
    client_id: Option<String>,
    first_seen: u64,
    last_seen: i128,
    client_seen_at: Option<i128>,
    counts: [u64; 6],
    issued_at: Option<i128>,
    ended_at: Option<i128>,
    expires_at: Option<i128>,
    expiry_set_at: Option<i128>,
}

impl TokenRecord {
    pub fn encode(&self) -> Result<Vec<u8>, StoreError> {
        let s = &self.state;
        let first = s.first_seen;
        let after = |t: u64| i128::from(t) - i128::from(first);
        let set = |t: u64| (t != 0).then(|| after(t));
        let wire = TokenWire {
            id: self.id,
            client_id: s.client_id.clone(),
            first_seen: first,
            last_seen: after(s.last_seen),
            client_seen_at: set(s.client_seen_at),
            counts: [
                s.events,
                s.successes,
                s.failures,
                s.rate_limited,
                s.uploads,
                s.downloads,
            ],
            issued_at: s.issued_at.map(after),
            ended_at: s.ended_at.map(after),
            expires_at: s.expires_at.map(after),
            expiry_set_at: set(s.expiry_set_at),
        };
        codec::encode_as(codec::TOKEN_FORMAT, &wire)
    }

    /// A token record of either format ([`codec::TOKEN_FORMAT`], or the plain bincode of
    /// schema 6 and earlier).
    pub fn decode(bytes: &[u8]) -> Result<TokenRecord, StoreError> {
        if bytes.first() != Some(&codec::TOKEN_FORMAT) {
            return codec::decode(bytes, "token");
        }
        let wire: TokenWire = codec::decode_as(codec::TOKEN_FORMAT, bytes, "token")?;
        let first = wire.first_seen;
        let at = |delta: i128| {
            i128::from(first)
                .checked_add(delta)
                .and_then(|t| u64::try_from(t).ok())
                .ok_or_else(|| StoreError::Corrupt("token record: a time is out of range".into()))
        };
        let [events, successes, failures, rate_limited, uploads, downloads] = wire.counts;
        Ok(TokenRecord {
            id: wire.id,
            state: crate::model::TokenState {
                client_id: wire.client_id,
                client_seen_at: wire.client_seen_at.map(at).transpose()?.unwrap_or(0),
                first_seen: first,
                last_seen: at(wire.last_seen)?,
                events,
                successes,
                failures,
                rate_limited,
                uploads,
                downloads,
                issued_at: wire.issued_at.map(at).transpose()?,
                ended_at: wire.ended_at.map(at).transpose()?,
                expires_at: wire.expires_at.map(at).transpose()?,
                expiry_set_at: wire.expiry_set_at.map(at).transpose()?.unwrap_or(0),
            },
        })
    }
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
    /// `name(text, free)` is asked with `free` set for free texts (user agents, errors,
    /// scopes); when it
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
            // Numbered by the writer.
            route: None,
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

    /// The domain event back, with interned strings resolved and the token's, user's and
    /// route's numbers turned back into text by `numbers`.
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
            route: match self.route {
                Some(RouteRef::Number(id)) => Some(numbers.route(id)?),
                Some(RouteRef::Text(route)) => Some(text(route)?),
                None => None,
            },
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
        fn route(&self, id: u32) -> Result<String, StoreError> {
            Err(StoreError::Corrupt(format!("route {id}")))
        }
    }

    /// Names every number `n` as `t{n}` / `u{n}` / `/r{n}`.
    struct Echo;

    impl Numbers for Echo {
        fn token(&self, id: u64) -> Result<String, StoreError> {
            Ok(format!("t{id}"))
        }
        fn user(&self, id: u32) -> Result<String, StoreError> {
            Ok(format!("u{id}"))
        }
        fn route(&self, id: u32) -> Result<String, StoreError> {
            Ok(format!("/r{id}"))
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
            record.route = Some(RouteRef::Number(300));
            let bytes = record.encode().expect("encodes");
            assert_eq!(bytes[0], crate::store::codec::EVENT_FORMAT_ROUTED);
            // Format byte, then the six bytes of `ts`.
            assert_eq!(bytes[1..7], ts.to_be_bytes()[2..]);
            let back = EventRecord::decode(&bytes).expect("decodes");
            assert_eq!(back.ts, ts);
            assert_eq!(back.received_at(), ts + 3);
            let event = back.into_event(&names, &Echo).expect("named");
            assert_eq!(event.user_id.as_deref(), Some("u70000"));
            assert_eq!(event.token.as_deref(), Some("t5"));
            assert_eq!(event.route.as_deref(), Some("/r300"));
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
    fn routes_of_records_written_before_schema_7_are_texts_of_the_older_format() {
        let names = Names::from_ordered(vec!["a.b".into(), "/oauth/token".into()]);
        let event = Event::new(EventType::parse("a.b").expect("valid"), 5);
        let mut record = EventRecord::with_names(&event, 7, false, |t, _| names.id(t)).expect("ok");
        for (route, text) in [
            (Text::Id(1), "/oauth/token"),
            (Text::Inline("/join/x".into()), "/join/x"),
        ] {
            record.route = Some(RouteRef::Text(route));
            let bytes = record.encode().expect("encodes");
            assert_eq!(bytes[0], crate::store::codec::EVENT_FORMAT);
            let back = EventRecord::decode(&bytes).expect("decodes");
            assert_eq!(back.route, record.route);
            let event = back.into_event(&names, &NoNumbers).expect("named");
            assert_eq!(event.route.as_deref(), Some(text));
        }
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

    fn token_state(first: u64) -> crate::model::TokenState {
        crate::model::TokenState {
            client_id: Some("web-app".into()),
            client_seen_at: first + 3_600_000,
            first_seen: first,
            last_seen: first + 5 * 86_400_000,
            events: 40,
            successes: 31,
            failures: 6,
            rate_limited: 3,
            uploads: 2,
            downloads: 9,
            issued_at: Some(first),
            ended_at: None,
            expires_at: Some(first + 30 * 86_400_000),
            expiry_set_at: first,
        }
    }

    #[test]
    fn token_records_store_times_as_differences_and_read_the_old_format_too() {
        let record = TokenRecord {
            id: 1_234_567,
            state: token_state(1_764_000_000_000),
        };
        let new = record.encode().expect("encodes");
        let old = codec::encode(&record).expect("encodes");
        assert_eq!(new[0], codec::TOKEN_FORMAT);
        assert_eq!(TokenRecord::decode(&new).expect("decodes"), record);
        assert_eq!(TokenRecord::decode(&old).expect("decodes"), record);
        assert!(new.len() + 20 < old.len(), "{} vs {}", new.len(), old.len());
        // A fresh state (all zeros) and one whose times lie before its first event.
        let mut odd = token_state(5);
        odd.expires_at = Some(0);
        odd.ended_at = Some(u64::MAX);
        for state in [crate::model::TokenState::default(), odd] {
            let record = TokenRecord { id: 0, state };
            let bytes = record.encode().expect("encodes");
            assert_eq!(TokenRecord::decode(&bytes).expect("decodes"), record);
        }
        // A difference that lands outside the u64 times is corruption.
        let bad = TokenWire {
            id: 1,
            client_id: None,
            first_seen: 10,
            last_seen: -11,
            client_seen_at: None,
            counts: [0; 6],
            issued_at: None,
            ended_at: None,
            expires_at: None,
            expiry_set_at: None,
        };
        let bytes = codec::encode_as(codec::TOKEN_FORMAT, &bad).expect("encodes");
        assert!(TokenRecord::decode(&bytes).is_err());
    }

    proptest::proptest! {
        #[test]
        fn token_records_round_trip_whatever_their_times(
            id in proptest::prelude::any::<u64>(),
            times in proptest::collection::vec(proptest::prelude::any::<u64>(), 9),
            counts in proptest::collection::vec(proptest::prelude::any::<u64>(), 6),
            flags in proptest::prelude::any::<u8>(),
        ) {
            let pick = |bit: u8, t: u64| (flags & (1 << bit) != 0).then_some(t);
            let state = crate::model::TokenState {
                client_id: pick(0, 0).map(|_| "c".to_owned()),
                client_seen_at: if flags & 32 != 0 { times[0] } else { 0 },
                first_seen: times[2],
                last_seen: times[3],
                events: counts[0],
                successes: counts[1],
                failures: counts[2],
                rate_limited: counts[3],
                uploads: counts[4],
                downloads: counts[5],
                issued_at: pick(1, times[4]),
                ended_at: pick(2, times[5]),
                expires_at: pick(3, times[6]),
                expiry_set_at: if flags & 16 != 0 { times[7] } else { 0 },
            };
            let record = TokenRecord { id, state };
            let bytes = record.encode().expect("encodes");
            proptest::prop_assert_eq!(TokenRecord::decode(&bytes).expect("decodes"), record);
        }
    }
}
