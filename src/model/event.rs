//! Events as gatewatch understands them once validated: types, outcomes, the taxonomy.

use std::fmt;
use std::net::IpAddr;

/// What happened, from the point of view of the gate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Outcome {
    Success,
    Failure,
    RateLimited,
    Blocked,
    Info,
}

impl Outcome {
    /// Every outcome, in code order.
    pub const ALL: [Outcome; 5] = [
        Outcome::Success,
        Outcome::Failure,
        Outcome::RateLimited,
        Outcome::Blocked,
        Outcome::Info,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
            Outcome::RateLimited => "rate_limited",
            Outcome::Blocked => "blocked",
            Outcome::Info => "info",
        }
    }

    pub fn parse(text: &str) -> Option<Outcome> {
        Outcome::ALL.into_iter().find(|o| o.as_str() == text)
    }

    /// A stable one-byte code, used in storage keys. Never renumber.
    pub fn code(self) -> u8 {
        match self {
            Outcome::Success => 0,
            Outcome::Failure => 1,
            Outcome::RateLimited => 2,
            Outcome::Blocked => 3,
            Outcome::Info => 4,
        }
    }

    pub fn from_code(code: u8) -> Option<Outcome> {
        Outcome::ALL.get(usize::from(code)).copied()
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An event type such as `token.issued`: `[a-z0-9_]+(\.[a-z0-9_]+)*`, at most 64 bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EventType(String);

impl EventType {
    pub const MAX_LEN: usize = 64;

    pub fn parse(text: &str) -> Option<EventType> {
        let well_formed = !text.is_empty()
            && text.len() <= Self::MAX_LEN
            && text.split('.').all(|part| {
                !part.is_empty()
                    && part
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            });
        well_formed.then(|| EventType(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The outcome an event of this type has when the sender names none.
    pub fn default_outcome(&self) -> Outcome {
        match self.0.as_str() {
            "token.issued"
            | "token.refreshed"
            | "token.userinfo_accessed"
            | "join.access"
            | "join.upload"
            | "join.download"
            | "captcha.verified"
            | "captcha.underattack_passed" => Outcome::Success,
            "token.validation_failed"
            | "token.pkce_failed"
            | "auth.invalid_code"
            | "auth.invalid_client"
            | "join.invalid_token"
            | "captcha.failed" => Outcome::Failure,
            "auth.rate_limited" | "join.rate_limited" | "captcha.ratelimit" => Outcome::RateLimited,
            "captcha.firewall" => Outcome::Blocked,
            _ => Outcome::Info,
        }
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A validated, sanitised event, ready to be stored. Produced only by `ingest`.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub event_type: EventType,
    /// When it happened, epoch milliseconds.
    pub ts: u64,
    /// The sender's idempotency key.
    pub id: Option<String>,
    pub outcome: Outcome,
    pub token: Option<String>,
    pub client_id: Option<String>,
    pub user_id: Option<String>,
    pub device_id: Option<String>,
    pub grant_type: Option<String>,
    pub scopes: Vec<String>,
    pub ip: Option<IpAddr>,
    pub user_agent: Option<String>,
    pub method: Option<String>,
    pub route: Option<String>,
    pub status: Option<u16>,
    pub error: Option<String>,
    pub expires_at: Option<u64>,
    pub duration_ms: Option<u32>,
    /// A JSON object, serialized compactly.
    pub context: Option<String>,
}

impl Event {
    /// A bare event of `event_type` at `ts` with the type's default outcome.
    pub fn new(event_type: EventType, ts: u64) -> Event {
        Event {
            outcome: event_type.default_outcome(),
            event_type,
            ts,
            id: None,
            token: None,
            client_id: None,
            user_id: None,
            device_id: None,
            grant_type: None,
            scopes: Vec::new(),
            ip: None,
            user_agent: None,
            method: None,
            route: None,
            status: None,
            error: None,
            expires_at: None,
            duration_ms: None,
            context: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_type_grammar() {
        for ok in ["token.issued", "a", "a_b.c1.d", "x9"] {
            assert!(EventType::parse(ok).is_some(), "{ok}");
        }
        for bad in [
            "",
            "Token.issued",
            "a..b",
            ".a",
            "a.",
            "a-b",
            "a b",
            &"a".repeat(65),
        ] {
            assert!(EventType::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn taxonomy_defaults() {
        let t = |s: &str| EventType::parse(s).expect("valid").default_outcome();
        assert_eq!(t("token.issued"), Outcome::Success);
        assert_eq!(t("token.pkce_failed"), Outcome::Failure);
        assert_eq!(t("join.rate_limited"), Outcome::RateLimited);
        assert_eq!(t("captcha.firewall"), Outcome::Blocked);
        assert_eq!(t("token.revoked"), Outcome::Info);
        assert_eq!(t("my.custom"), Outcome::Info);
    }

    #[test]
    fn outcome_codes_round_trip() {
        for o in Outcome::ALL {
            assert_eq!(Outcome::from_code(o.code()), Some(o));
            assert_eq!(Outcome::parse(o.as_str()), Some(o));
        }
    }
}
