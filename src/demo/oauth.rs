//! The OAuth/OIDC tenant's traffic model: ~20 clients of four kinds, a few thousand users,
//! authorization-code logins with userinfo calls and refresh chains, machine clients on
//! client credentials, token ends (revoked or expired), the usual trickle of failures, and
//! one brute force from [`super::ATTACKER_IP`].

use std::net::IpAddr;

use super::{address, daily_curve, event, latency, Rng, Sink, Tenant, ATTACKER_IP, BROWSERS};
use crate::model::Event;

const USERS: u64 = 3_000;
const MINUTE: u64 = 60_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Browser single-page app: public client, PKCE, short tokens.
    Spa,
    /// Native app: public client, PKCE, refreshes a lot.
    Mobile,
    /// Server-side web app: confidential client.
    Web,
    /// Service on client credentials.
    Machine,
}

/// (client id, kind, popularity weight)
const CLIENTS: [(&str, Kind, u32); 20] = [
    ("acme-web", Kind::Spa, 30),
    ("acme-admin-console", Kind::Spa, 4),
    ("helpdesk-portal", Kind::Spa, 6),
    ("docs-site", Kind::Spa, 5),
    ("acme-ios", Kind::Mobile, 22),
    ("acme-android", Kind::Mobile, 20),
    ("acme-watch", Kind::Mobile, 2),
    ("partner-crm", Kind::Web, 8),
    ("shopfront", Kind::Web, 14),
    ("analytics-dashboard", Kind::Web, 5),
    ("community-forum", Kind::Web, 6),
    ("newsletter", Kind::Web, 3),
    ("hr-portal", Kind::Web, 3),
    ("travel-desk", Kind::Web, 2),
    ("wiki", Kind::Web, 4),
    ("billing-service", Kind::Machine, 6),
    ("reporting-etl", Kind::Machine, 3),
    ("search-indexer", Kind::Machine, 4),
    ("backup-agent", Kind::Machine, 1),
    ("monitoring", Kind::Machine, 5),
];

const MOBILE_AGENTS: [&str; 4] = [
    "AcmeID/4.2.1 (iPhone; iOS 17.5; Scale/3.00)",
    "AcmeID/4.2.0 (iPad; iOS 17.4; Scale/2.00)",
    "AcmeID/4.2.1 (Android 14; Pixel 8)",
    "okhttp/4.12.0",
];

const MACHINE_AGENTS: [&str; 3] = ["Go-http-client/2.0", "python-httpx/0.27.0", "reqwest/0.12"];

/// A stable hash of a name.
fn name_hash(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

/// Requests a minute (relative, peak 1) by UTC hour: a working-day curve.
pub(super) fn rhythm(hour: u32) -> f64 {
    daily_curve(hour, 14, 0.15)
}

#[derive(Debug, Clone)]
pub(super) struct Model {
    salt: u64,
    total_weight: u32,
}

/// Who is behind one flow.
struct Actor {
    client: &'static str,
    kind: Kind,
    user: Option<String>,
    ip: IpAddr,
    agent: &'static str,
}

impl Model {
    pub(super) fn new(rng: &mut Rng) -> Model {
        Model {
            salt: rng.next_u64(),
            total_weight: CLIENTS.iter().map(|c| c.2).sum(),
        }
    }

    fn client(&self, rng: &mut Rng) -> (&'static str, Kind) {
        let mut left = rng.below(u64::from(self.total_weight)) as u32;
        for (id, kind, weight) in CLIENTS {
            if left < weight {
                return (id, kind);
            }
            left -= weight;
        }
        ("acme-web", Kind::Spa)
    }

    fn actor(&self, rng: &mut Rng) -> Actor {
        let (client, kind) = self.client(rng);
        if kind == Kind::Machine {
            let h = self.salt ^ super::rng::mix(name_hash(client));
            return Actor {
                client,
                kind,
                user: None,
                ip: address(h),
                agent: MACHINE_AGENTS[(h % 3) as usize],
            };
        }
        let user = rng.skewed(USERS);
        // Each user has a home and a mobile address and a favourite browser.
        let place = u64::from(rng.chance(0.3));
        let h = self.salt ^ (user << 1 | place);
        let agent = match kind {
            Kind::Mobile => MOBILE_AGENTS[(super::rng::mix(h) % 4) as usize],
            _ => BROWSERS[(super::rng::mix(h ^ 1) % 6) as usize],
        };
        Actor {
            client,
            kind,
            user: Some(format!("user-{user:05}")),
            ip: address(h),
            agent,
        }
    }

    fn base(&self, kind: &'static str, ts: u64, who: &Actor) -> Event {
        let mut e = event(kind, ts);
        e.client_id = Some(who.client.to_owned());
        e.user_id.clone_from(&who.user);
        e.ip = Some(who.ip);
        e.user_agent = Some(who.agent.to_owned());
        e
    }

    fn request(
        &self,
        rng: &mut Rng,
        kind: &'static str,
        ts: u64,
        who: &Actor,
        (method, route, status): (&str, &str, u16),
    ) -> Event {
        let mut e = self.base(kind, ts, who);
        e.method = Some(method.to_owned());
        e.route = Some(route.to_owned());
        e.status = Some(status);
        e.duration_ms = Some(match route {
            "/userinfo" => latency(rng, 4, 10),
            "/oauth/authorize" => latency(rng, 15, 25),
            _ => latency(rng, 25, 40),
        });
        e
    }

    /// One flow starting at `ts`: mostly a login or a machine token, sometimes a failure.
    pub(super) fn flow(&self, rng: &mut Rng, ts: u64, sink: &mut Sink) {
        let who = self.actor(rng);
        let roll = rng.unit();
        // A misconfigured or retired client, at the token or the authorize endpoint; a
        // stale token at userinfo; a client going too fast.
        let failure = if roll < 0.012 {
            let route = if rng.chance(0.5) {
                ("POST", "/oauth/token", 401)
            } else {
                ("GET", "/oauth/authorize", 400)
            };
            Some((
                "auth.invalid_client",
                route,
                "invalid_client: client authentication failed",
            ))
        } else if roll < 0.02 {
            Some((
                "token.validation_failed",
                ("GET", "/userinfo", 401),
                "invalid_token: malformed or unknown token",
            ))
        } else if roll < 0.024 {
            Some((
                "auth.rate_limited",
                ("POST", "/oauth/token", 429),
                "slow_down",
            ))
        } else {
            None
        };
        if let Some((kind, route, error)) = failure {
            let mut e = self.request(rng, kind, ts, &who, route);
            e.error = Some(error.into());
            sink.push(Tenant::OAuth, e);
        } else if who.kind == Kind::Machine {
            self.machine(rng, ts, &who, sink);
        } else {
            self.login(rng, ts, &who, sink);
        }
    }

    fn issue(
        &self,
        rng: &mut Rng,
        ts: u64,
        who: &Actor,
        grant: &str,
        life: u64,
        sink: &mut Sink,
    ) -> String {
        let token = format!("at_{:016x}", rng.next_u64());
        let mut e = self.request(rng, "token.issued", ts, who, ("POST", "/oauth/token", 200));
        e.grant_type = Some(grant.to_owned());
        e.token = Some(token.clone());
        e.expires_at = Some(ts + life);
        e.scopes = match who.kind {
            Kind::Machine => vec!["api.read".into(), "api.write".into()],
            Kind::Mobile => ["openid", "profile", "email", "offline_access"]
                .map(String::from)
                .to_vec(),
            _ => ["openid", "profile", "email"].map(String::from).to_vec(),
        };
        sink.push(Tenant::OAuth, e);
        token
    }

    fn end(
        &self,
        rng: &mut Rng,
        token: &str,
        issued: u64,
        life: u64,
        who: &Actor,
        sink: &mut Sink,
    ) {
        let mut e = if who.kind != Kind::Machine && rng.chance(0.12) {
            // Signed out before the token expired.
            let at = issued + MINUTE + rng.below(life.saturating_sub(MINUTE));
            self.request(
                rng,
                "token.revoked",
                at,
                who,
                ("POST", "/oauth/revoke", 200),
            )
        } else {
            self.base("token.expired", issued + life, who)
        };
        e.token = Some(token.to_owned());
        sink.push(Tenant::OAuth, e);
    }

    fn machine(&self, rng: &mut Rng, ts: u64, who: &Actor, sink: &mut Sink) {
        let life = 60 * MINUTE;
        let token = self.issue(rng, ts, who, "client_credentials", life, sink);
        self.end(rng, &token, ts, life, who, sink);
    }

    fn login(&self, rng: &mut Rng, ts: u64, who: &Actor, sink: &mut Sink) {
        let public = matches!(who.kind, Kind::Spa | Kind::Mobile);
        let mut at = ts;
        if rng.chance(0.03) {
            let mut e = self.request(
                rng,
                "auth.invalid_code",
                at,
                who,
                ("POST", "/oauth/token", 400),
            );
            e.error = Some("invalid_grant: authorization code expired or already used".into());
            sink.push(Tenant::OAuth, e);
            if rng.chance(0.5) {
                return;
            }
            at += 5_000 + rng.below(20_000);
        } else if public && rng.chance(0.012) {
            let mut e = self.request(
                rng,
                "token.pkce_failed",
                at,
                who,
                ("POST", "/oauth/token", 400),
            );
            e.error = Some("invalid_grant: code_verifier does not match the challenge".into());
            sink.push(Tenant::OAuth, e);
            return;
        }
        let (life, refresh_p) = match who.kind {
            Kind::Spa => (30 * MINUTE, 0.45),
            Kind::Mobile => (60 * MINUTE, 0.7),
            _ => (60 * MINUTE, 0.3),
        };
        let mut token = self.issue(rng, at, who, "authorization_code", life, sink);
        let mut issued = at;
        for depth in 0..5 {
            // A few userinfo calls while the token lives.
            for _ in 0..rng.count(1.6) {
                let t = issued + 200 + rng.below(life / 2);
                let mut e = self.request(
                    rng,
                    "token.userinfo_accessed",
                    t,
                    who,
                    ("GET", "/userinfo", 200),
                );
                e.token = Some(token.clone());
                e.scopes = vec!["openid".into(), "profile".into()];
                sink.push(Tenant::OAuth, e);
            }
            if depth == 4 || !rng.chance(refresh_p) {
                if rng.chance(0.04) {
                    // A client that keeps using the expired token.
                    let t = issued + life + 1_000 + rng.below(10 * MINUTE);
                    let mut e = self.request(
                        rng,
                        "token.validation_failed",
                        t,
                        who,
                        ("GET", "/userinfo", 401),
                    );
                    e.token = Some(token.clone());
                    e.error = Some("invalid_token: token expired".into());
                    sink.push(Tenant::OAuth, e);
                }
                self.end(rng, &token, issued, life, who, sink);
                return;
            }
            // Refreshed shortly before expiry: the old token runs out, a new one starts.
            let t = issued + life - 30_000 - rng.below(5 * MINUTE);
            let mut e = self.request(
                rng,
                "token.refreshed",
                t,
                who,
                ("POST", "/oauth/token", 200),
            );
            e.token = Some(token.clone());
            e.grant_type = Some("refresh_token".into());
            sink.push(Tenant::OAuth, e);
            let mut expired = self.base("token.expired", issued + life, who);
            expired.token = Some(token);
            sink.push(Tenant::OAuth, expired);
            token = self.issue(rng, t + 5, who, "refresh_token", life, sink);
            issued = t + 5;
        }
    }

    /// [`ATTACKER_IP`] guessing client secrets and tokens for 25 minutes from `start`;
    /// the app starts rate-limiting it after six. Returns when it stopped.
    pub(super) fn brute_force(&self, rng: &mut Rng, start: u64, sink: &mut Sink) -> u64 {
        let who = Actor {
            client: "acme-web",
            kind: Kind::Web,
            user: None,
            ip: IpAddr::V4(ATTACKER_IP),
            agent: "python-requests/2.31.0",
        };
        let end = start + 25 * MINUTE;
        let mut ts = start;
        while ts < end {
            let limited = ts > start + 6 * MINUTE && rng.chance(0.3);
            let mut e = if limited {
                let mut e = self.request(
                    rng,
                    "auth.rate_limited",
                    ts,
                    &who,
                    ("POST", "/oauth/token", 429),
                );
                e.error = Some("slow_down".into());
                e
            } else if rng.chance(0.65) {
                let mut e = self.request(
                    rng,
                    "auth.invalid_client",
                    ts,
                    &who,
                    ("POST", "/oauth/token", 401),
                );
                e.error = Some("invalid_client: client authentication failed".into());
                e
            } else {
                let mut e = self.request(
                    rng,
                    "token.validation_failed",
                    ts,
                    &who,
                    ("GET", "/userinfo", 401),
                );
                e.error = Some("invalid_token: signature mismatch".into());
                e
            };
            e.client_id = Some(CLIENTS[rng.below(8) as usize].0.to_owned());
            sink.push(Tenant::OAuth, e);
            ts += 800 + rng.below(3_400);
        }
        end
    }
}
