//! The deterministic, realistic event mix shared by `ingest`, `fill` and `ndjson`.
//!
//! Event `i` of a stream depends only on the seed, the pool sizes, the time window
//! and `i` itself, so the same data set comes out however many connections or
//! workers split the work. Entities are correlated the way real traffic is: a token
//! belongs to one OAuth client and (except for `client_credentials`) one user; a
//! user mostly comes from a home IP with a fixed browser; a small pool of abusive IPs
//! produces a large share of the failures; a few clients dominate the volume.

use serde::Serialize;

use crate::rng::{mix2, skewed, unit_of, Rng};

/// One millisecond-precision day.
pub const DAY_MS: i64 = 86_400_000;
/// One hour in milliseconds.
pub const HOUR_MS: i64 = 3_600_000;

/// Sizes of the entity pools the events draw from.
#[derive(Debug, Clone, Copy)]
pub struct Pools {
    /// Distinct OAuth clients (`client_id`).
    pub clients: u64,
    /// Distinct users (`user_id`).
    pub users: u64,
    /// Distinct OAuth tokens (join links get a quarter of this, at least one).
    pub tokens: u64,
}

/// How events get their `ts`.
#[derive(Debug, Clone, Copy)]
pub enum TsMode {
    /// No `ts` field: the server stamps the receive time.
    Omit,
    /// `ts` spread over `[start_ms, start_ms + span_ms)` with a day/night cycle.
    Spread { start_ms: i64, span_ms: i64 },
}

/// The generator of the event stream.
#[derive(Debug, Clone)]
pub struct Mix {
    seed: u64,
    pools: Pools,
    ts: TsMode,
    /// Prefix of the idempotency `id` (`PREFIX{index}`), when events carry one.
    id_prefix: Option<String>,
}

/// An event in the ingest form of the API (fields that are `None` are left out).
#[derive(Debug, Serialize)]
pub struct Event {
    #[serde(rename = "type")]
    pub kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ts: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grant_type: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scopes: Option<&'static [&'static str]>,
    pub ip: String,
    pub user_agent: &'static str,
    pub route: String,
    pub method: &'static str,
    pub status: u16,
    pub duration_ms: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<i64>,
}

/// The event types of the mix and their relative weights (per 1,000 events).
const TYPES: [(&str, u32); 15] = [
    ("token.issued", 140),
    ("token.refreshed", 100),
    ("token.userinfo_accessed", 220),
    ("token.revoked", 20),
    ("token.validation_failed", 30),
    ("token.pkce_failed", 5),
    ("auth.invalid_client", 10),
    ("auth.rate_limited", 10),
    ("join.access", 180),
    ("join.invalid_token", 20),
    ("join.rate_limited", 10),
    ("join.upload", 40),
    ("join.download", 90),
    ("captcha.verified", 100),
    ("captcha.failed", 25),
];

/// `grant_type` of `token.issued` for user tokens, weighted; machine tokens (one in
/// ten) always use `client_credentials`, which makes the overall mix about 55/35/10.
const USER_GRANTS: [(&str, u32); 2] = [("authorization_code", 61), ("refresh_token", 39)];

const SCOPES_USER: &[&str] = &["openid", "profile", "email"];
const SCOPES_OFFLINE: &[&str] = &["openid", "profile", "email", "offline_access"];
const SCOPES_MACHINE: &[&str] = &["api.read", "api.write"];

/// Browsers that users have (one per user, fixed).
const BROWSER_AGENTS: [&str; 6] = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15",
    "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0",
];

/// Agents of machine clients (`client_credentials`) and of scripted abuse.
const TOOL_AGENTS: [&str; 4] = [
    "okhttp/4.12.0",
    "python-requests/2.32.3",
    "curl/8.5.0",
    "Go-http-client/1.1",
];

/// Names of the dominant clients; the rest are numbered.
const CLIENT_NAMES: [&str; 6] = [
    "web-portal",
    "mobile-ios",
    "mobile-android",
    "partner-api",
    "support-desk",
    "cli",
];

/// Relative activity by UTC hour of day: a trough around 03:00, a peak mid-afternoon.
const DIURNAL: [f64; 24] = [
    0.35, 0.30, 0.27, 0.25, 0.27, 0.33, 0.45, 0.60, 0.75, 0.86, 0.93, 0.97, 1.00, 1.00, 0.99, 0.97,
    0.95, 0.92, 0.86, 0.78, 0.68, 0.58, 0.48, 0.40,
];

/// Size of the pool of abusive IPs that produce many of the failures.
const ABUSIVE_IPS: u64 = 48;

// Salts that keep the derived attributes of different entities independent.
const SALT_TOKEN: u64 = 1;
const SALT_TOKEN_CLIENT: u64 = 2;
const SALT_TOKEN_USER: u64 = 3;
const SALT_USER_IP: u64 = 4;
const SALT_USER_AGENT: u64 = 5;
const SALT_ABUSE_IP: u64 = 6;
const SALT_ROAMING_IP: u64 = 7;
const SALT_LINK: u64 = 8;
const SALT_MACHINE: u64 = 9;
const SALT_LINK_USER: u64 = 10;

impl Mix {
    /// A generator for `seed`, drawing from `pools`, stamping `ts` per `ts`.
    pub fn new(seed: u64, pools: Pools, ts: TsMode) -> Self {
        let pools = Pools {
            clients: pools.clients.max(1),
            users: pools.users.max(1),
            tokens: pools.tokens.max(1),
        };
        Self {
            seed,
            pools,
            ts,
            id_prefix: None,
        }
    }

    /// The same stream with an idempotency `id` of `{prefix}{index}` on each event.
    pub fn with_ids(mut self, prefix: String) -> Self {
        self.id_prefix = Some(prefix);
        self
    }

    /// A stable hash of entity `x` for the attribute `salt`, under this seed.
    fn h(&self, salt: u64, x: u64) -> u64 {
        mix2(mix2(self.seed, salt), x)
    }

    /// Appends event `index` as one JSON object (no separator) to `out`.
    pub fn write_json(&self, index: u64, out: &mut Vec<u8>) -> anyhow::Result<()> {
        serde_json::to_writer(&mut *out, &self.event(index))?;
        Ok(())
    }

    /// Events `[first, first + count)` as a JSON array.
    pub fn json_array(&self, first: u64, count: u64) -> anyhow::Result<Vec<u8>> {
        let mut out = Vec::with_capacity(count as usize * 360 + 2);
        out.push(b'[');
        for i in 0..count {
            if i > 0 {
                out.push(b',');
            }
            self.write_json(first + i, &mut out)?;
        }
        out.push(b']');
        Ok(out)
    }

    /// Events `[first, first + count)` as NDJSON (one object per line).
    pub fn ndjson(&self, first: u64, count: u64) -> anyhow::Result<Vec<u8>> {
        let mut out = Vec::with_capacity(count as usize * 360);
        for i in 0..count {
            self.write_json(first + i, &mut out)?;
            out.push(b'\n');
        }
        Ok(out)
    }

    /// Event number `index` of the stream.
    pub fn event(&self, index: u64) -> Event {
        let mut rng = Rng::for_item(self.seed, index);
        let kind = *rng.weighted(&TYPES);
        let ts = self.timestamp(&mut rng);
        let mut event = match kind.split('.').next() {
            Some("join") => self.join_event(kind, ts, &mut rng),
            Some("captcha") => self.captcha_event(kind, ts, &mut rng),
            _ => self.oauth_event(kind, ts, &mut rng),
        };
        if let Some(prefix) = &self.id_prefix {
            event.id = Some(format!("{prefix}{index}"));
        }
        event
    }

    fn timestamp(&self, rng: &mut Rng) -> Option<i64> {
        match self.ts {
            TsMode::Omit => None,
            TsMode::Spread { start_ms, span_ms } => {
                let span = span_ms.max(1) as u64;
                // Rejection sampling against the day/night curve; bounded tries.
                let mut t = start_ms + rng.below(span) as i64;
                for _ in 0..8 {
                    let hour = t.rem_euclid(DAY_MS) / HOUR_MS;
                    if rng.unit() < DIURNAL[hour as usize] {
                        break;
                    }
                    t = start_ms + rng.below(span) as i64;
                }
                Some(t)
            }
        }
    }

    /// A token of the OAuth pool; some tokens are far busier than others.
    fn oauth_token(&self, rng: &mut Rng) -> u64 {
        skewed(rng.unit(), self.pools.tokens, 2)
    }

    fn token_name(&self, t: u64) -> String {
        format!("tok_{:016x}", self.h(SALT_TOKEN, t))
    }

    /// One token in ten belongs to a machine client (no user).
    fn is_machine_token(&self, t: u64) -> bool {
        self.h(SALT_MACHINE, t) % 10 == 0
    }

    /// The client a token was issued to: skewed so that a few clients dominate.
    fn client_of_token(&self, t: u64) -> u64 {
        let u = unit_of(self.h(SALT_TOKEN_CLIENT, t));
        skewed(u, self.pools.clients, 3)
    }

    fn client_name(c: u64) -> String {
        match CLIENT_NAMES.get(c as usize) {
            Some(name) => (*name).to_string(),
            None => format!("client-{c:04}"),
        }
    }

    fn user_of_token(&self, t: u64) -> u64 {
        self.h(SALT_TOKEN_USER, t) % self.pools.users
    }

    fn user_name(u: u64) -> String {
        format!("user-{u:06}")
    }

    fn user_agent_of(&self, user: u64) -> &'static str {
        let h = self.h(SALT_USER_AGENT, user);
        BROWSER_AGENTS[(h % BROWSER_AGENTS.len() as u64) as usize]
    }

    /// The IP an event comes from: abusive pool for some failures, else the user's
    /// home address most of the time, else a roaming (mobile, travel) address.
    fn ip(&self, user: Option<u64>, failure: bool, rng: &mut Rng) -> String {
        if failure && rng.chance(0.4) {
            let n = rng.below(ABUSIVE_IPS);
            return ip_from_hash(self.h(SALT_ABUSE_IP, n), 0.1);
        }
        match user {
            Some(u) if rng.chance(0.8) => ip_from_hash(self.h(SALT_USER_IP, u), 0.12),
            _ => {
                let n = rng.below(self.pools.users.saturating_mul(2).max(16));
                ip_from_hash(self.h(SALT_ROAMING_IP, n), 0.12)
            }
        }
    }

    fn oauth_event(&self, kind: &'static str, ts: Option<i64>, rng: &mut Rng) -> Event {
        let mut t = self.oauth_token(rng);
        // Machine tokens (client_credentials) are never refreshed, never call
        // userinfo and never fail PKCE: draw a user token for those types.
        if matches!(
            kind,
            "token.refreshed" | "token.userinfo_accessed" | "token.pkce_failed"
        ) {
            for _ in 0..16 {
                if !self.is_machine_token(t) {
                    break;
                }
                t = self.oauth_token(rng);
            }
        }
        let machine = self.is_machine_token(t);
        let client = self.client_of_token(t);
        let grant = match kind {
            "token.issued" if machine => Some("client_credentials"),
            "token.issued" => Some(*rng.weighted(&USER_GRANTS)),
            _ => None,
        };
        let user = if machine {
            None
        } else {
            Some(self.user_of_token(t))
        };
        let failure = matches!(
            kind,
            "token.validation_failed" | "token.pkce_failed" | "auth.invalid_client"
        );
        let abuse = failure || kind == "auth.rate_limited";
        let user_agent = match user {
            Some(u) if !(abuse && rng.chance(0.5)) => self.user_agent_of(u),
            _ => *rng.pick(&TOOL_AGENTS),
        };
        let (route, method, status, error, base_ms) = match kind {
            "token.issued" | "token.refreshed" => ("/oauth/token", "POST", 200, None, 45.0),
            "token.userinfo_accessed" => ("/oauth/userinfo", "GET", 200, None, 8.0),
            "token.revoked" => ("/oauth/revoke", "POST", 200, None, 12.0),
            "token.validation_failed" => {
                ("/oauth/userinfo", "GET", 401, Some("invalid_token"), 4.0)
            }
            "token.pkce_failed" => (
                "/oauth/token",
                "POST",
                400,
                Some("invalid_grant: PKCE verification failed"),
                20.0,
            ),
            "auth.invalid_client" => ("/oauth/token", "POST", 401, Some("invalid_client"), 15.0),
            _ => ("/oauth/token", "POST", 429, Some("rate_limited"), 1.0),
        };
        let scopes = match grant {
            Some("client_credentials") => Some(SCOPES_MACHINE),
            Some("refresh_token") => Some(SCOPES_OFFLINE),
            Some(_) => Some(SCOPES_USER),
            None => None,
        };
        let expires_at = match (grant, ts) {
            (Some("client_credentials"), Some(ts)) => Some(ts + 2 * HOUR_MS),
            (Some(_), Some(ts)) => Some(ts + HOUR_MS),
            _ => None,
        };
        Event {
            kind,
            id: None,
            ts,
            token: Some(self.token_name(t)),
            client_id: Some(Self::client_name(client)),
            user_id: user.map(Self::user_name),
            grant_type: grant,
            scopes,
            ip: self.ip(user, abuse, rng),
            user_agent,
            route: route.to_string(),
            method,
            status,
            duration_ms: duration(base_ms, rng),
            error,
            expires_at,
        }
    }

    fn join_event(&self, kind: &'static str, ts: Option<i64>, rng: &mut Rng) -> Event {
        let links = (self.pools.tokens / 4).max(1);
        let link = skewed(rng.unit(), links, 2);
        let link_id = format!("{:012x}", self.h(SALT_LINK, link) >> 16);
        // Six in ten join-link visitors are signed in.
        let user = if rng.chance(0.6) {
            Some(self.h(SALT_LINK_USER, link) % self.pools.users)
        } else {
            None
        };
        let failure = kind == "join.invalid_token";
        let abuse = failure || kind == "join.rate_limited";
        let user_agent = match user {
            Some(u) if !abuse => self.user_agent_of(u),
            _ if abuse && rng.chance(0.5) => *rng.pick(&TOOL_AGENTS),
            _ => *rng.pick(&BROWSER_AGENTS),
        };
        let (route, method, status, error, base_ms) = match kind {
            "join.access" => (format!("/join/{link_id}"), "GET", 200, None, 25.0),
            "join.invalid_token" => (
                format!("/join/{link_id}"),
                "GET",
                404,
                Some("unknown or expired link"),
                6.0,
            ),
            "join.rate_limited" => (
                format!("/join/{link_id}"),
                "GET",
                429,
                Some("rate_limited"),
                1.0,
            ),
            "join.upload" => (format!("/join/{link_id}/upload"), "POST", 201, None, 300.0),
            _ => {
                let file = rng.below(12) + 1;
                let route = format!("/join/{link_id}/files/{file}");
                (route, "GET", 200, None, 120.0)
            }
        };
        Event {
            kind,
            id: None,
            ts,
            token: Some(format!("jl_{link_id}")),
            client_id: None,
            user_id: user.map(Self::user_name),
            grant_type: None,
            scopes: None,
            ip: self.ip(user, abuse, rng),
            user_agent,
            route,
            method,
            status,
            duration_ms: duration(base_ms, rng),
            error,
            expires_at: None,
        }
    }

    fn captcha_event(&self, kind: &'static str, ts: Option<i64>, rng: &mut Rng) -> Event {
        let failure = kind == "captcha.failed";
        let user_agent = if failure && rng.chance(0.5) {
            *rng.pick(&TOOL_AGENTS)
        } else {
            *rng.pick(&BROWSER_AGENTS)
        };
        let (status, error) = if failure {
            (403, Some("captcha_failed"))
        } else {
            (200, None)
        };
        Event {
            kind,
            id: None,
            ts,
            token: None,
            client_id: None,
            user_id: None,
            grant_type: None,
            scopes: None,
            ip: self.ip(None, failure, rng),
            user_agent,
            route: "/captcha/verify".to_string(),
            method: "POST",
            status,
            duration_ms: duration(60.0, rng),
            error,
            expires_at: None,
        }
    }
}

/// A log-normal-ish latency around `base_ms` (product of uniforms in the exponent),
/// clamped to the API's `0..=3_600_000`.
fn duration(base_ms: f64, rng: &mut Rng) -> u32 {
    let z = rng.unit() + rng.unit() + rng.unit() - 1.5; // mean 0, sd 0.5
    let ms = base_ms * (z * 1.4).exp();
    ms.round().clamp(0.0, 3_600_000.0) as u32
}

/// A public-looking IPv4 address, or an IPv6 one (documentation prefix) with
/// probability `v6`, derived from the hash `h`.
fn ip_from_hash(h: u64, v6: f64) -> String {
    if unit_of(mix2(h, 0x66)) < v6 {
        let g = mix2(h, 0x77);
        return format!(
            "2001:db8:{:x}:{:x}::{:x}",
            (g >> 48) & 0xffff,
            (g >> 32) & 0xffff,
            (g & 0xffff).max(1)
        );
    }
    // First octet in 11..=223 minus loopback; last octet never 0 or 255.
    let mut a = 11 + (h % 213);
    if a == 127 {
        a = 128;
    }
    let b = (h >> 8) & 0xff;
    let c = (h >> 16) & 0xff;
    let d = 1 + ((h >> 24) % 254);
    format!("{a}.{b}.{c}.{d}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mix() -> Mix {
        Mix::new(
            42,
            Pools {
                clients: 200,
                users: 50_000,
                tokens: 100_000,
            },
            TsMode::Spread {
                start_ms: 1_700_000_000_000,
                span_ms: 7 * DAY_MS,
            },
        )
    }

    #[test]
    fn same_seed_same_events() -> anyhow::Result<()> {
        let a = mix().ndjson(0, 500)?;
        let b = mix().ndjson(0, 500)?;
        assert_eq!(a, b);
        let c = Mix::new(43, mix().pools, mix().ts).ndjson(0, 500)?;
        assert_ne!(a, c);
        Ok(())
    }

    #[test]
    fn split_does_not_change_the_stream() -> anyhow::Result<()> {
        let whole = mix().ndjson(0, 100)?;
        let mut parts = mix().ndjson(0, 37)?;
        parts.extend(mix().ndjson(37, 63)?);
        assert_eq!(whole, parts);
        Ok(())
    }

    #[test]
    fn events_respect_the_window_and_field_rules() {
        let m = mix();
        let mut types = std::collections::BTreeSet::new();
        for i in 0..20_000 {
            let e = m.event(i);
            types.insert(e.kind);
            let ts = e.ts.unwrap_or(0);
            assert!((1_700_000_000_000..1_700_000_000_000 + 7 * DAY_MS).contains(&ts));
            assert!(e.ip.parse::<std::net::IpAddr>().is_ok(), "{}", e.ip);
            assert!((100..=599).contains(&e.status));
            assert!(e.duration_ms <= 3_600_000);
            if e.kind == "token.issued" {
                assert!(e.grant_type.is_some());
            }
        }
        assert_eq!(types.len(), TYPES.len());
    }

    #[test]
    fn a_token_keeps_its_client() {
        let m = mix();
        let mut seen = std::collections::HashMap::new();
        for i in 0..20_000 {
            let e = m.event(i);
            if let (Some(t), Some(c)) = (e.token, e.client_id) {
                let prev = seen.entry(t).or_insert_with(|| c.clone());
                assert_eq!(*prev, c);
            }
        }
    }
}
