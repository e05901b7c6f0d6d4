//! Property: whatever batches arrive, counters and token state equal a recount of the log,
//! and `/stats` over any hour-aligned range equals a brute-force count of the accepted events.

use std::collections::{BTreeMap, HashSet};

use gatewatch::model::time::HOUR_MS;
use gatewatch::model::{Event, EventType, Outcome, TokenState};
use gatewatch::query::{stats::stats, HourRange};
use gatewatch::store::{Store, WriterConfig};
use hdrhistogram::Histogram;
use proptest::prelude::*;

const BASE: u64 = 1_795_000_000_000 / HOUR_MS * HOUR_MS;
const TYPES: [&str; 7] = [
    "token.issued",
    "token.revoked",
    "token.refreshed",
    "token.pkce_failed",
    "join.rate_limited",
    "captcha.firewall",
    "custom.thing",
];

#[derive(Debug, Clone)]
struct Spec {
    tenant: u32,
    kind: usize,
    outcome: Option<usize>,
    token: Option<u8>,
    client: Option<u8>,
    grant: Option<u8>,
    minute: u64,
    id: Option<u8>,
}

fn spec() -> impl Strategy<Value = Spec> {
    (
        1u32..3,
        0..TYPES.len(),
        proptest::option::of(0..5usize),
        proptest::option::of(0u8..4),
        proptest::option::of(0u8..3),
        proptest::option::of(0u8..2),
        0u64..(48 * 60),
        proptest::option::weighted(0.3, 0u8..10),
    )
        .prop_map(
            |(tenant, kind, outcome, token, client, grant, minute, id)| Spec {
                tenant,
                kind,
                outcome,
                token,
                client,
                grant,
                minute,
                id,
            },
        )
}

fn event(s: &Spec) -> Event {
    let mut e = Event::new(
        EventType::parse(TYPES[s.kind]).expect("valid type"),
        BASE + s.minute * 60_000,
    );
    if let Some(o) = s.outcome {
        e.outcome = Outcome::ALL[o];
    }
    e.token = s.token.map(|t| format!("tok-{t}"));
    e.client_id = s.client.map(|c| format!("client-{c}"));
    e.grant_type = s
        .grant
        .map(|g| ["authorization_code", "refresh_token"][g as usize].to_owned());
    e.id = s.id.map(|i| format!("key-{i}"));
    if e.event_type.as_str() == "token.issued" && s.minute % 2 == 0 {
        // Planned expiries, some already passed, some ahead of "now".
        e.expires_at = Some(e.ts + (s.minute % 7) * 3_600_000 * 8);
    }
    e
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn counters_equal_a_recount_and_stats_a_brute_force_count(
        batches in proptest::collection::vec(proptest::collection::vec(spec(), 1..30), 1..6),
        range_start in 0u64..48,
        range_len in 1u64..48,
        client_filter in proptest::option::of(0u8..3),
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::open(dir.path(), WriterConfig::default()).expect("opens");
        // "Now" inside an hour, so lifetimes come from whole-hour buckets and a part hour.
        let received_at = BASE + 30 * HOUR_MS + 29 * 60_000 + 7;
        let mut accepted: Vec<(u32, Event)> = Vec::new();
        let mut keys = HashSet::new();
        for batch in &batches {
            // Group by tenant: one request is one tenant's.
            let mut by_tenant: BTreeMap<u32, Vec<Event>> = BTreeMap::new();
            for s in batch {
                by_tenant.entry(s.tenant).or_default().push(event(s));
            }
            for (tenant, events) in by_tenant {
                let ids = runtime
                    .block_on(store.ingest(tenant, received_at, events.clone()))
                    .expect("ingests");
                for (e, id) in events.into_iter().zip(ids) {
                    let fresh = e.id.as_ref().is_none_or(|k| keys.insert((tenant, k.clone())));
                    prop_assert_eq!(id.is_some(), fresh, "dedup decision for {:?}", e.id);
                    if fresh {
                        accepted.push((tenant, e));
                    }
                }
            }
        }
        let snap = store.snapshot().expect("snapshot");
        let report = snap.verify().expect("verifies");
        prop_assert!(report.is_consistent(), "{:?}", report);
        prop_assert_eq!(report.events, accepted.len() as u64);

        let range = HourRange {
            from: BASE + range_start * HOUR_MS,
            to: BASE + (range_start + range_len) * HOUR_MS,
        };
        let client = client_filter.map(|c| format!("client-{c}"));
        let filter = gatewatch::query::StatsFilter { client_id: client.clone(), user_id: None };
        for tenant in 1..3 {
            let got = stats(&snap, tenant, range, &filter, received_at).expect("stats");
            let mut total = 0;
            let mut failed = 0;
            let mut by_type: BTreeMap<String, u64> = BTreeMap::new();
            let mut by_grant: BTreeMap<String, u64> = BTreeMap::new();
            let mut clients: HashSet<String> = HashSet::new();
            for (t, e) in &accepted {
                let in_range = *t == tenant && e.ts >= range.from && e.ts < range.to;
                if !in_range || (client.is_some() && e.client_id != client) {
                    continue;
                }
                total += 1;
                clients.extend(e.client_id.clone());
                failed += u64::from(e.outcome == Outcome::Failure);
                *by_type.entry(e.event_type.to_string()).or_default() += 1;
                if let (Some(g), "token.issued") = (&e.grant_type, e.event_type.as_str()) {
                    *by_grant.entry(g.clone()).or_default() += 1;
                }
            }
            prop_assert_eq!(got.total_events, total);
            prop_assert_eq!(got.total_failed, failed);
            prop_assert_eq!(&got.by_type, &by_type);
            prop_assert_eq!(&got.issued_by_grant_type, &by_grant);
            prop_assert_eq!(got.unique_clients, clients.len() as u64);

            // Token lifetimes: every token's life folded from its events, counted when it
            // ends in the range and no later than now.
            let mut states: BTreeMap<&str, TokenState> = BTreeMap::new();
            for (t, e) in &accepted {
                if let (true, Some(token)) = (*t == tenant, e.token.as_deref()) {
                    states.entry(token).or_default().apply(e);
                }
            }
            let mut lives = Histogram::<u64>::new(3).expect("a histogram");
            for state in states.values() {
                let Some((end, issued)) = state.life() else { continue };
                let mine = client.is_none() || state.client_id == client;
                if mine && end >= range.from && end < range.to && end <= received_at {
                    lives.record(end.saturating_sub(issued)).expect("records");
                }
            }
            let l = &got.token_lifetime_ms;
            prop_assert_eq!(l.count, lives.len());
            if !lives.is_empty() {
                prop_assert_eq!(l.p50, lives.value_at_quantile(0.5));
                prop_assert_eq!(l.p99, lives.value_at_quantile(0.99));
                prop_assert_eq!(l.max, lives.max());
            }
        }
    }
}

/// Lifetimes ending in past hours come from the hour and day buckets, those of the hour
/// holding "now" from the index up to now; a planned expiry still ahead does not count.
#[test]
fn lifetimes_count_whole_hours_and_the_current_part_hour_up_to_now() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(dir.path(), WriterConfig::default()).expect("opens");
    let now = BASE + 72 * HOUR_MS + 40 * 60_000;
    let issued = |token: &str, ts: u64, expires: Option<u64>| {
        let mut e = Event::new(EventType::parse("token.issued").expect("a type"), ts);
        e.token = Some(token.into());
        e.expires_at = expires;
        e
    };
    let revoked = |token: &str, ts: u64| {
        let mut e = Event::new(EventType::parse("token.revoked").expect("a type"), ts);
        e.token = Some(token.into());
        e
    };
    let events = vec![
        // Ended two days ago: a day bucket.
        issued("a", BASE, None),
        revoked("a", BASE + 60_000),
        // Ended 10 minutes ago: the part hour.
        issued("b", BASE + 71 * HOUR_MS, None),
        revoked("b", now - 10 * 60_000),
        // Expires in 10 minutes: not yet a lifetime.
        issued("c", BASE + 72 * HOUR_MS, Some(now + 10 * 60_000)),
        // Planned to expire in 10 minutes, but revoked an hour ago: its life moved.
        issued("d", BASE + 70 * HOUR_MS, Some(now + 10 * 60_000)),
        revoked("d", now - HOUR_MS),
    ];
    runtime
        .block_on(store.ingest(1, now, events))
        .expect("ingests");
    let snap = store.snapshot().expect("snapshot");
    assert!(snap.verify().expect("verifies").is_consistent());
    let range = HourRange {
        from: BASE,
        to: BASE + 96 * HOUR_MS,
    };
    let filter = gatewatch::query::StatsFilter::default();
    let got = stats(&snap, 1, range, &filter, now).expect("stats");
    assert_eq!(
        got.token_lifetime_ms.count, 3,
        "{:?}",
        got.token_lifetime_ms
    );
    assert_eq!(
        got.token_lifetime_ms.p50 / 60_000,
        90,
        "a lived 1 min, b 1 h 30 min, d 1 h 40 min"
    );
    // Once c's expiry has passed, it counts too.
    let later = stats(&snap, 1, range, &filter, now + HOUR_MS).expect("stats");
    assert_eq!(later.token_lifetime_ms.count, 4);
}
