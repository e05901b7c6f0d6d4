//! The join-link photo app's traffic model: ~50 party links (tokens) of very different
//! popularity, guests' devices opening them, browsing and uploading photos in the evening,
//! the odd dead link or rate limit; one link under attack and one gone stale.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::rng::mix;
use super::{address, daily_curve, event, latency, Rng, Sink, Tenant, BROWSERS};

const PARTIES: usize = 50;
/// The party whose link is attacked (a popular one).
const ATTACKED: usize = 2;

const NAMES: [&str; 10] = [
    "anna", "ben", "clara", "dev", "emma", "finn", "gia", "hugo", "ines", "jon",
];
const OCCASIONS: [&str; 10] = [
    "wedding",
    "birthday",
    "reunion",
    "offsite",
    "graduation",
    "gala",
    "festival",
    "hackathon",
    "housewarming",
    "bbq",
];

const APP_AGENTS: [&str; 3] = [
    "PhotoParty/3.1.0 (iOS 17.5)",
    "PhotoParty/3.1.0 (Android 14)",
    "PhotoParty/3.0.2 (Android 13)",
];

/// Visits a minute (relative, peak 1) by UTC hour: parties happen in the evening.
pub(super) fn rhythm(hour: u32) -> f64 {
    daily_curve(hour, 20, 0.08)
}

#[derive(Debug, Clone)]
struct Party {
    slug: String,
    token: String,
    guests: u64,
}

#[derive(Debug, Clone)]
pub(super) struct Model {
    salt: u64,
    parties: Vec<Party>,
    stale: Party,
}

impl Model {
    pub(super) fn new(rng: &mut Rng) -> Model {
        let parties = (0..PARTIES)
            .map(|i| Party {
                slug: format!(
                    "{}-{}",
                    NAMES[i % NAMES.len()],
                    OCCASIONS[(i / NAMES.len() + i) % OCCASIONS.len()]
                ),
                token: format!("jl_{:012x}", rng.next_u64() >> 16),
                guests: rng.between(6, 80),
            })
            .collect();
        let stale = Party {
            slug: "spring-picnic".into(),
            token: format!("jl_{:012x}", rng.next_u64() >> 16),
            guests: 25,
        };
        Model {
            salt: rng.next_u64(),
            parties,
            stale,
        }
    }

    pub(super) fn attacked_token(&self) -> &str {
        &self.parties[ATTACKED].token
    }

    pub(super) fn stale_token(&self) -> &str {
        &self.stale.token
    }

    /// One guest's visit at `ts` to a party chosen by popularity.
    pub(super) fn visit(&self, rng: &mut Rng, ts: u64, sink: &mut Sink) {
        let party = rng.skewed(PARTIES as u64) as usize;
        self.visit_party(rng, party, ts, true, sink);
    }

    /// A visit to party `index` (past the list: the stale one); `dead_links` lets it be a
    /// visit with a wrong token instead.
    fn visit_party(&self, rng: &mut Rng, index: usize, ts: u64, dead_links: bool, sink: &mut Sink) {
        let party = self.parties.get(index).unwrap_or(&self.stale);
        let guest = rng.below(party.guests);
        let h = mix(self.salt ^ ((index as u64) << 16) ^ guest);
        let device = format!("dev-{:08x}", h >> 32);
        let ip = address(h);
        let agent = if h % 3 == 0 {
            BROWSERS[(h % 6) as usize]
        } else {
            APP_AGENTS[(h % 3) as usize]
        };
        let base = |rng: &mut Rng, kind: &'static str, ts: u64, method: &str, route: String| {
            let mut e = event(kind, ts);
            e.token = Some(party.token.clone());
            e.device_id = Some(device.clone());
            e.ip = Some(ip);
            e.user_agent = Some(agent.to_owned());
            e.method = Some(method.to_owned());
            e.route = Some(route);
            e.status = Some(match e.event_type.as_str() {
                "join.upload" => 201,
                "join.invalid_token" => 401,
                "join.rate_limited" => 429,
                _ => 200,
            });
            e.duration_ms = Some(match kind {
                "join.upload" => latency(rng, 300, 900),
                "join.download" => latency(rng, 40, 120),
                _ => latency(rng, 15, 30),
            });
            e
        };
        let event_route = format!("/api/v1/events/{}", party.slug);
        let photos = format!("/api/v1/events/{}/photos", party.slug);
        if dead_links && rng.chance(0.02) {
            // An old or mistyped link: not this party's token.
            let mut e = base(rng, "join.invalid_token", ts, "GET", event_route);
            e.token = Some(format!("jl_{:012x}", rng.next_u64() >> 16));
            e.error = Some("unknown or expired join link".into());
            sink.push(Tenant::Join, e);
            return;
        }
        sink.push(
            Tenant::Join,
            base(rng, "join.access", ts, "GET", event_route),
        );
        let mut at = ts;
        for _ in 0..rng.count(2.8) {
            at += 2_000 + rng.below(40_000);
            sink.push(
                Tenant::Join,
                base(rng, "join.download", at, "GET", photos.clone()),
            );
        }
        if rng.chance(0.4) {
            for _ in 0..rng.between(1, 4) {
                at += 5_000 + rng.below(60_000);
                let mut e = if rng.chance(0.015) {
                    let mut e = base(rng, "join.rate_limited", at, "POST", photos.clone());
                    e.error = Some("too many uploads, retry later".into());
                    e
                } else {
                    base(rng, "join.upload", at, "POST", photos.clone())
                };
                e.context = Some(format!(
                    r#"{{"bytes":{}}}"#,
                    rng.between(400_000, 6_000_000)
                ));
                sink.push(Tenant::Join, e);
            }
        }
    }

    /// A script guessing at the attacked party's link from `start` for 15 minutes, from
    /// three IPv4 and one IPv6 address; rate-limited after two minutes. Returns its end.
    pub(super) fn attack(&self, rng: &mut Rng, start: u64, sink: &mut Sink) -> u64 {
        let party = &self.parties[ATTACKED];
        let sources = [
            IpAddr::V4(Ipv4Addr::new(198, 51, 100, 201)),
            IpAddr::V4(Ipv4Addr::new(198, 51, 100, 202)),
            IpAddr::V4(Ipv4Addr::new(198, 51, 100, 203)),
            IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0xbad, 0, 0, 0, 0, 1)),
        ];
        let end = start + 15 * 60_000;
        let mut ts = start;
        while ts < end {
            let limited = ts > start + 2 * 60_000 && rng.chance(0.35);
            let (kind, status) = if limited {
                ("join.rate_limited", 429)
            } else {
                ("join.invalid_token", 401)
            };
            let mut e = event(kind, ts);
            e.token = Some(party.token.clone());
            e.ip = rng.pick(&sources).copied();
            e.device_id = Some(format!("dev-{:08x}", rng.below(1 << 32)));
            e.user_agent = Some("curl/8.5.0".into());
            e.method = Some("GET".into());
            e.route = Some(format!("/api/v1/events/{}/photos", party.slug));
            e.status = Some(status);
            e.error = Some(if limited {
                "too many attempts".into()
            } else {
                "join link signature mismatch".into()
            });
            e.duration_ms = Some(latency(rng, 3, 6));
            sink.push(Tenant::Join, e);
            ts += 600 + rng.below(2_400);
        }
        end
    }

    /// The stale party's life: visits spread over `[from, to)`, nothing after.
    pub(super) fn stale(&self, rng: &mut Rng, from: u64, to: u64, sink: &mut Sink) {
        let mut staged = Sink::new(u64::MAX);
        for _ in 0..60 {
            let ts = from + rng.below(to.saturating_sub(from));
            self.visit_party(rng, PARTIES, ts, false, &mut staged);
        }
        // A visit's later events may run past `to`; keep them before it, so the link is
        // certainly idle since.
        let (traffic, _) = staged.finish();
        for e in traffic.join.into_iter().filter(|e| e.ts < to) {
            sink.push(Tenant::Join, e);
        }
    }
}
