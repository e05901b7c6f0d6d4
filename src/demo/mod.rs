//! `gatewatch demo`: realistic, deterministic traffic for two demo tenants, and the set-up
//! that loads it into a fresh store and keeps it alive while the demo runs.
//!
//! Owns: the demo's tenants, logins and landmarks (this file), the traffic [`Generator`]
//! (pure: a seed and `now` in, events per tenant out; [`oauth`] and [`join`] hold the two
//! tenants' traffic models, [`rng`] the seeded PRNG), and [`run`], the edge that calls
//! `App` to set the demo up, fills the store and feeds it live events until shutdown.
//!
//! Events are built as `ingest` would leave them (sanitised: routes are paths, addresses
//! canonical) and go straight to `Store::ingest`, which, unlike HTTP ingest, takes any
//! timestamp: that is how the stale join token gets events more than 30 days old.

mod join;
mod oauth;
mod rng;
pub mod run;
#[cfg(test)]
mod tests;

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::model::time::{DAY_MS, HOUR_MS};
use crate::model::{Event, EventType};
pub use rng::Rng;
pub use run::{fill, live, setup, DemoSetup};

/// The OAuth/OIDC provider tenant (the bootstrap tenant).
pub const OAUTH_TENANT: &str = "acme-id";
/// Its display name; see [`run::setup`] for why the store may show the slug instead.
pub const OAUTH_TENANT_NAME: &str = "Acme Identity";
/// The join-link photo app tenant.
pub const JOIN_TENANT: &str = "photo-party";
pub const JOIN_TENANT_NAME: &str = "Photo Party";
/// The owner login printed by the demo.
pub const OWNER: &str = "admin";
pub const OWNER_PASSWORD: &str = "demo-password";
/// A viewer of both tenants.
pub const VIEWER: &str = "viewer";
pub const VIEWER_PASSWORD: &str = "viewer-password";
/// Days of history by default, and at most (HTTP ingest's window, and `range=7d`).
pub const DEFAULT_DAYS: u32 = 5;
pub const MAX_DAYS: u32 = 7;
/// The address that brute-forces the OAuth tenant.
pub const ATTACKER_IP: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 66);

/// Events of both demo tenants, each list in time order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Traffic {
    pub oauth: Vec<Event>,
    pub join: Vec<Event>,
}

impl Traffic {
    pub fn len(&self) -> usize {
        self.oauth.len() + self.join.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What is worth looking at in the generated traffic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Landmarks {
    /// When [`ATTACKER_IP`]'s brute force on the OAuth tenant starts, and ends.
    pub brute_force: (u64, u64),
    /// The join token hammered with invalid attempts, and when.
    pub attacked_token: String,
    pub attack: (u64, u64),
    /// The join token last used more than 30 days before `now`.
    pub stale_token: String,
}

/// Which tenant an event belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tenant {
    OAuth,
    Join,
}

/// An event generated ahead of its time, waiting in [`Generator`] until it is due.
#[derive(Debug, Clone)]
struct Planned {
    /// Generation order, so that equal times keep a deterministic order.
    n: u64,
    tenant: Tenant,
    event: Event,
}

impl Planned {
    fn key(&self) -> (u64, u64) {
        (self.event.ts, self.n)
    }
}

impl PartialEq for Planned {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}

impl Eq for Planned {}

impl PartialOrd for Planned {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Planned {
    fn cmp(&self, other: &Self) -> Ordering {
        self.key().cmp(&other.key())
    }
}

/// Where generated events go: those due by `now` out, later ones kept for a later tick
/// (a token issued a minute ago expires live, while the demo runs).
struct Sink {
    now: u64,
    due: Traffic,
    later: Vec<(Tenant, Event)>,
}

impl Sink {
    fn new(now: u64) -> Sink {
        Sink {
            now,
            due: Traffic::default(),
            later: Vec::new(),
        }
    }

    fn push(&mut self, tenant: Tenant, event: Event) {
        if event.ts > self.now {
            self.later.push((tenant, event));
            return;
        }
        match tenant {
            Tenant::OAuth => self.due.oauth.push(event),
            Tenant::Join => self.due.join.push(event),
        }
    }

    fn finish(mut self) -> (Traffic, Vec<(Tenant, Event)>) {
        self.due.oauth.sort_by_key(|e| e.ts);
        self.due.join.sort_by_key(|e| e.ts);
        (self.due, self.later)
    }
}

/// OAuth flows a minute at the busiest hour of history (≈ 5 events each).
const OAUTH_FLOWS_PER_MIN: f64 = 2.8;
/// Join-link visits a minute at the busiest hour of history (≈ 6 events each).
const JOIN_VISITS_PER_MIN: f64 = 1.2;
/// Live traffic, per second, whatever the hour: a few events a second, so that a
/// dashboard left open visibly moves.
const LIVE_OAUTH_FLOWS_PER_S: f64 = 0.5;
const LIVE_JOIN_VISITS_PER_S: f64 = 0.2;
/// A stalled live loop does not catch up on more than this.
const LIVE_MAX_GAP_MS: u64 = 10_000;

/// The traffic generator: history first, then live ticks. Pure — every time comes in as
/// an argument — and deterministic for a seed and the same sequence of `now`s.
#[derive(Debug, Clone)]
pub struct Generator {
    rng: Rng,
    oauth: oauth::Model,
    join: join::Model,
    /// Soonest first.
    later: BinaryHeap<Reverse<Planned>>,
    planned: u64,
    last: u64,
}

impl Generator {
    pub fn new(seed: u64) -> Generator {
        let mut rng = Rng::new(seed);
        let oauth = oauth::Model::new(&mut rng);
        let join = join::Model::new(&mut rng);
        Generator {
            rng,
            oauth,
            join,
            later: BinaryHeap::new(),
            planned: 0,
            last: 0,
        }
    }

    /// The `days` days (1 to [`MAX_DAYS`]) before `now`, with a daily rhythm, the brute
    /// force and the join-token attack, plus the stale token's life 5 to 6 weeks ago.
    pub fn history(&mut self, now: u64, days: u32) -> (Traffic, Landmarks) {
        let days = days.clamp(1, MAX_DAYS);
        let span = u64::from(days) * DAY_MS;
        let start = now.saturating_sub(span);
        let mut sink = Sink::new(now);
        let mut minute = start;
        while minute < now {
            let hour = hour_of_day(minute);
            let flows = self.rng.count(OAUTH_FLOWS_PER_MIN * oauth::rhythm(hour));
            for _ in 0..flows {
                let ts = minute + self.rng.below(60_000);
                self.oauth.flow(&mut self.rng, ts, &mut sink);
            }
            let visits = self.rng.count(JOIN_VISITS_PER_MIN * join::rhythm(hour));
            for _ in 0..visits {
                let ts = minute + self.rng.below(60_000);
                self.join.visit(&mut self.rng, ts, &mut sink);
            }
            minute += 60_000;
        }
        // About two days ago (half the span when it is shorter).
        let brute_start =
            now.saturating_sub((2 * DAY_MS).min(span / 2)) - self.rng.below(HOUR_MS) + 60_000;
        let brute_end = self
            .oauth
            .brute_force(&mut self.rng, brute_start, &mut sink);
        let attack_start = now.saturating_sub(DAY_MS.min(span / 3)) - self.rng.below(HOUR_MS);
        let attack_end = self.join.attack(&mut self.rng, attack_start, &mut sink);
        let stale_end = now.saturating_sub(36 * DAY_MS);
        self.join
            .stale(&mut self.rng, stale_end - 3 * DAY_MS, stale_end, &mut sink);
        let (traffic, later) = sink.finish();
        self.plan(later);
        self.last = now;
        let landmarks = Landmarks {
            brute_force: (brute_start, brute_end),
            attacked_token: self.join.attacked_token().to_owned(),
            attack: (attack_start, attack_end),
            stale_token: self.join.stale_token().to_owned(),
        };
        (traffic, landmarks)
    }

    /// Live traffic between the previous call (or the history's `now`) and `now`, plus
    /// the events planned earlier that are now due (expiries, refreshes).
    pub fn tick(&mut self, now: u64) -> Traffic {
        let since = self.last.max(now.saturating_sub(LIVE_MAX_GAP_MS));
        let mut sink = Sink::new(now);
        if now > since {
            let gap = now - since;
            let secs = gap as f64 / 1000.0;
            for _ in 0..self.rng.count(LIVE_OAUTH_FLOWS_PER_S * secs) {
                let ts = since + 1 + self.rng.below(gap);
                self.oauth.flow(&mut self.rng, ts, &mut sink);
            }
            for _ in 0..self.rng.count(LIVE_JOIN_VISITS_PER_S * secs) {
                let ts = since + 1 + self.rng.below(gap);
                self.join.visit(&mut self.rng, ts, &mut sink);
            }
        }
        while self
            .later
            .peek()
            .is_some_and(|Reverse(p)| p.event.ts <= now)
        {
            if let Some(Reverse(p)) = self.later.pop() {
                sink.push(p.tenant, p.event);
            }
        }
        self.last = self.last.max(now);
        let (traffic, later) = sink.finish();
        self.plan(later);
        traffic
    }

    fn plan(&mut self, events: Vec<(Tenant, Event)>) {
        for (tenant, event) in events {
            self.planned += 1;
            self.later.push(Reverse(Planned {
                n: self.planned,
                tenant,
                event,
            }));
        }
    }
}

/// The history of [`Generator::history`] for `seed`, without the live part.
pub fn generate(seed: u64, now: u64, days: u32) -> (Traffic, Landmarks) {
    Generator::new(seed).history(now, days)
}

fn hour_of_day(ts: u64) -> u32 {
    ((ts / HOUR_MS) % 24) as u32
}

/// A smooth daily curve in `[floor, 1]` peaking at `peak` hours UTC.
fn daily_curve(hour: u32, peak: u32, floor: f64) -> f64 {
    let phase = f64::from((hour + 24 - peak) % 24) / 24.0 * std::f64::consts::TAU;
    floor + (1.0 - floor) * (0.5 + 0.5 * phase.cos())
}

/// The types the demo emits, all from the API's taxonomy.
pub const TYPES: [&str; 15] = [
    "token.issued",
    "token.refreshed",
    "token.userinfo_accessed",
    "token.revoked",
    "token.expired",
    "token.validation_failed",
    "token.pkce_failed",
    "auth.invalid_code",
    "auth.invalid_client",
    "auth.rate_limited",
    "join.access",
    "join.upload",
    "join.download",
    "join.invalid_token",
    "join.rate_limited",
];

/// A bare event of one of [`TYPES`] with its default outcome.
fn event(kind: &'static str, ts: u64) -> Event {
    // Only ever called with literals from TYPES, which all match the type grammar (the
    // test `every_type_is_valid` parses each), so this cannot fail.
    let event_type = EventType::parse(kind).unwrap_or_else(|| unreachable!("{kind} is valid"));
    Event::new(event_type, ts)
}

/// A deterministic, realistic-looking client address for hash `h`: mostly carrier-grade
/// NAT IPv4 (100.64.0.0/10), some documentation IPv4 ranges, about 15 % IPv6
/// (2001:db8::/32). Never [`ATTACKER_IP`].
fn address(h: u64) -> IpAddr {
    let h = rng::mix(h);
    match h % 100 {
        0..=14 => IpAddr::V6(Ipv6Addr::new(
            0x2001,
            0x0db8,
            (h >> 8) as u16,
            (h >> 24) as u16 & 0x0fff,
            0,
            0,
            (h >> 40) as u16,
            (h >> 52) as u16 | 1,
        )),
        15..=39 => {
            let nets = [[192, 0, 2], [198, 51, 100], [203, 0, 113]];
            let [a, b, c] = nets[((h >> 8) % 3) as usize];
            let mut host = ((h >> 16) % 254) as u8 + 1;
            if [a, b, c, host] == ATTACKER_IP.octets() {
                host += 1;
            }
            IpAddr::V4(Ipv4Addr::new(a, b, c, host))
        }
        _ => {
            let n = (h >> 8) as u32 & 0x003f_ffff;
            IpAddr::V4(Ipv4Addr::from(0x6440_0000 | n))
        }
    }
}

const BROWSERS: [&str; 6] = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15",
    "Mozilla/5.0 (X11; Linux x86_64; rv:127.0) Gecko/20100101 Firefox/127.0",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36 Edg/126.0.0.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Mobile Safari/537.36",
];

/// A request latency: usually `base` plus a little, now and then a slow tail.
fn latency(rng: &mut Rng, base: u64, spread: u64) -> u32 {
    let mut ms = base + rng.below(spread) + rng.below(spread);
    if rng.chance(0.03) {
        ms += rng.below(base * 20 + 200);
    }
    ms.min(3_600_000) as u32
}
