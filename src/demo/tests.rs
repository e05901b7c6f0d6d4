//! Tests of the demo generator (pure) and of a small fill through `App` (temp store).

use std::collections::HashMap;
use std::net::IpAddr;

use super::*;
use crate::app::{App, TimeSpec};
use crate::model::time::{DAY_MS, HOUR_MS};
use crate::model::EventType;
use crate::store::{Store, WriterConfig};

/// 2026-11-18T10:13:20Z, off any hour boundary.
const NOW: u64 = 1_795_000_000_000;

#[test]
fn deterministic_for_a_seed_and_now() {
    let (a, la) = generate(7, NOW, 2);
    let (b, lb) = generate(7, NOW, 2);
    assert_eq!(a, b);
    assert_eq!(la, lb);
    let (c, _) = generate(8, NOW, 2);
    assert_ne!(a, c);
}

#[test]
fn default_history_looks_alive() {
    let (traffic, _) = generate(1, NOW, DEFAULT_DAYS);
    assert!(traffic.oauth.len() > 20_000, "{}", traffic.oauth.len());
    assert!(traffic.join.len() > 5_000, "{}", traffic.join.len());
    assert!(
        (50_000..=150_000).contains(&traffic.len()),
        "{} events",
        traffic.len()
    );
    for list in [&traffic.oauth, &traffic.join] {
        assert!(list.windows(2).all(|w| w[0].ts <= w[1].ts), "time order");
        assert!(list.iter().all(|e| e.ts <= NOW));
    }
    // All OAuth events lie inside the window; so do the join events but the stale link's.
    let start = NOW - u64::from(DEFAULT_DAYS) * DAY_MS;
    assert!(traffic.oauth.iter().all(|e| e.ts >= start));
    assert_eq!(
        traffic
            .join
            .iter()
            .filter(|e| e.ts < start && e.ts + 30 * DAY_MS > NOW)
            .count(),
        0
    );
}

#[test]
fn every_type_is_valid_with_its_default_outcome() {
    for name in TYPES {
        assert!(EventType::parse(name).is_some(), "{name}");
    }
    let (traffic, _) = generate(3, NOW, 2);
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for e in traffic.oauth.iter().chain(&traffic.join) {
        assert_eq!(
            EventType::parse(e.event_type.as_str()).as_ref(),
            Some(&e.event_type)
        );
        assert!(TYPES.contains(&e.event_type.as_str()));
        assert_eq!(e.outcome, e.event_type.default_outcome());
        *seen.entry(e.event_type.as_str()).or_default() += 1;
        if let Some(route) = &e.route {
            assert!(route.starts_with('/') && !route.contains('?'), "{route}");
        }
        if let Some(status) = e.status {
            assert!((100..=599).contains(&status));
        }
    }
    for name in TYPES {
        assert!(seen.contains_key(name), "no {name} generated");
    }
    let grants: std::collections::BTreeSet<_> = traffic
        .oauth
        .iter()
        .filter(|e| e.event_type.as_str() == "token.issued")
        .filter_map(|e| {
            assert!(e.expires_at.is_some_and(|x| x > e.ts));
            e.grant_type.as_deref()
        })
        .collect();
    assert_eq!(
        grants.into_iter().collect::<Vec<_>>(),
        ["authorization_code", "client_credentials", "refresh_token"]
    );
}

#[test]
fn variety_of_clients_users_and_addresses() {
    let (traffic, _) = generate(1, NOW, DEFAULT_DAYS);
    let clients: std::collections::HashSet<_> = traffic
        .oauth
        .iter()
        .filter_map(|e| e.client_id.as_deref())
        .collect();
    let users: std::collections::HashSet<_> = traffic
        .oauth
        .iter()
        .filter_map(|e| e.user_id.as_deref())
        .collect();
    let v6 = traffic
        .oauth
        .iter()
        .filter(|e| matches!(e.ip, Some(IpAddr::V6(_))))
        .count();
    assert_eq!(clients.len(), 20);
    assert!(users.len() > 1_500, "{} users", users.len());
    assert!(v6 > traffic.oauth.len() / 20);
    let links: std::collections::HashSet<_> = traffic
        .join
        .iter()
        .filter(|e| e.event_type.as_str() == "join.access")
        .filter_map(|e| e.token.as_deref())
        .collect();
    assert!(links.len() >= 45, "{} links", links.len());
}

#[test]
fn daily_rhythm() {
    let (traffic, _) = generate(1, NOW, DEFAULT_DAYS);
    let by_hour = |list: &[crate::model::Event], hours: std::ops::Range<u64>| {
        list.iter()
            .filter(|e| hours.contains(&((e.ts / HOUR_MS) % 24)))
            .count()
    };
    assert!(by_hour(&traffic.oauth, 12..17) > 3 * by_hour(&traffic.oauth, 0..5));
    assert!(by_hour(&traffic.join, 18..23) > 3 * by_hour(&traffic.join, 4..9));
}

#[test]
fn the_brute_force_is_there() {
    let (traffic, marks) = generate(1, NOW, DEFAULT_DAYS);
    let attacker = IpAddr::V4(ATTACKER_IP);
    let mine: Vec<_> = traffic
        .oauth
        .iter()
        .filter(|e| e.ip == Some(attacker))
        .collect();
    let first = mine.first().map(|e| e.ts).unwrap_or_default();
    let failures_in_an_hour = mine
        .iter()
        .filter(|e| e.outcome == crate::model::Outcome::Failure && e.ts < first + HOUR_MS)
        .count();
    assert!(failures_in_an_hour >= 200, "{failures_in_an_hour}");
    assert!(mine
        .iter()
        .any(|e| e.event_type.as_str() == "auth.rate_limited"));
    // About two days ago.
    let ago = NOW - marks.brute_force.0;
    assert!((2 * DAY_MS - 2 * HOUR_MS..=2 * DAY_MS + 2 * HOUR_MS).contains(&ago));
    assert_eq!(first.max(marks.brute_force.0), first);
}

#[test]
fn a_join_link_under_attack() {
    let (traffic, marks) = generate(1, NOW, DEFAULT_DAYS);
    let (from, to) = marks.attack;
    let burst = traffic
        .join
        .iter()
        .filter(|e| e.token.as_deref() == Some(marks.attacked_token.as_str()))
        .filter(|e| (from..to).contains(&e.ts))
        .filter(|e| e.outcome != crate::model::Outcome::Success)
        .count();
    assert!(burst >= 200, "{burst}");
}

#[test]
fn the_stale_link_is_idle_for_over_30_days() {
    let (traffic, marks) = generate(1, NOW, DEFAULT_DAYS);
    let last = traffic
        .join
        .iter()
        .filter(|e| e.token.as_deref() == Some(marks.stale_token.as_str()))
        .map(|e| e.ts)
        .max()
        .expect("the stale link has events");
    assert!(last + 30 * DAY_MS < NOW);
    // No other link is idle that long.
    let mut lasts: HashMap<&str, u64> = HashMap::new();
    for e in &traffic.join {
        if let Some(t) = e.token.as_deref() {
            let l = lasts.entry(t).or_default();
            *l = (*l).max(e.ts);
        }
    }
    let stale: Vec<_> = lasts
        .iter()
        .filter(|(_, &l)| l + 30 * DAY_MS < NOW)
        .map(|(t, _)| *t)
        .collect();
    assert_eq!(stale, [marks.stale_token.as_str()]);
}

#[test]
fn live_ticks_add_a_few_events_and_due_expiries() {
    let mut generator = Generator::new(5);
    let (history, _) = generator.history(NOW, 1);
    let mut total = 0;
    let mut expired = 0;
    for second in 1..=60 {
        let now = NOW + second * 1000;
        let tick = generator.tick(now);
        for e in tick.oauth.iter().chain(&tick.join) {
            assert!(e.ts <= now);
            assert!(e.ts > NOW);
            expired += usize::from(e.event_type.as_str() == "token.expired");
        }
        total += tick.len();
    }
    assert!(
        (60..=600).contains(&total),
        "{total} live events in a minute"
    );
    assert!(expired > 0, "tokens issued before now expire live");
    assert!(!history.is_empty());
}

#[tokio::test]
async fn a_small_fill_is_consistent_and_readable() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(dir.path(), WriterConfig::default()).expect("opens");
    let app = App::new(store).expect("app");
    let setup = setup(&app, NOW).await.expect("sets up");
    let (traffic, marks) = generate(11, NOW, 1);
    let (oauth_n, join_n) = (traffic.oauth.len() as u64, traffic.join.len() as u64);
    let stored = fill(app.store(), &setup, traffic).await.expect("fills");
    assert_eq!(stored as u64, oauth_n + join_n);

    let owner = app.authenticate(&setup.owner_token).await.expect("owner");
    let tenants = app.list_tenants(&owner).await.expect("tenants");
    let slugs: Vec<_> = tenants.iter().map(|t| t.slug.as_str()).collect();
    assert_eq!(slugs, [OAUTH_TENANT, JOIN_TENANT]);
    let week = || TimeSpec {
        range: Some("7d".into()),
        ..TimeSpec::default()
    };
    let oauth = app
        .stats(&owner, OAUTH_TENANT, week(), Default::default(), NOW)
        .await
        .expect("stats");
    assert_eq!(oauth.total_events, oauth_n);
    assert!(oauth.total_issued > 0 && oauth.total_failed > 0);
    let join = app
        .stats(&owner, JOIN_TENANT, week(), Default::default(), NOW)
        .await
        .expect("stats");
    // The stale link's events are older than the week.
    assert!(join.total_events > 0 && join.total_events < join_n);

    let (stale, _) = app
        .inactive_tokens(&owner, JOIN_TENANT, Some(30), None, None, NOW)
        .await
        .expect("stale tokens");
    assert_eq!(stale.len(), 1);

    // The viewer sees both tenants, read-only; the ingest keys work.
    let viewer_key = app
        .create_key(
            &owner,
            JOIN_TENANT,
            crate::model::KeyKind::Admin,
            "t",
            Some(VIEWER),
            NOW,
        )
        .await
        .expect("key");
    let viewer = app.authenticate(&viewer_key.secret).await.expect("viewer");
    assert_eq!(app.list_tenants(&viewer).await.expect("tenants").len(), 2);
    assert!(app
        .tenant_for(&viewer, OAUTH_TENANT, crate::model::Role::Viewer)
        .await
        .is_ok());
    for key in [&setup.oauth_key, &setup.join_key] {
        assert!(matches!(
            app.authenticate(key).await,
            Ok(crate::app::Principal::Ingest { .. })
        ));
    }

    let report = app
        .store()
        .snapshot()
        .expect("snap")
        .verify()
        .expect("verify");
    assert!(report.is_consistent(), "{report:?}");
    assert_eq!(report.events, oauth_n + join_n);
    let _ = marks;
}
