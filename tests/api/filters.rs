//! Per-client and per-user figures of `/stats` and `/timeseries` (what the dashboard's
//! client and user filters show), checked against a brute-force count.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::support::{now_ms, spawn_app, DAY_MS, HOUR_MS};

/// (ts, type, outcome, client, user, grant, token)
type Row = (
    u64,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    Option<&'static str>,
    String,
);

fn generated(now: u64) -> Vec<Row> {
    let types = [
        ("token.issued", "success", Some("authorization_code")),
        ("token.issued", "success", Some("client_credentials")),
        ("token.refreshed", "success", Some("refresh_token")),
        ("token.validation_failed", "failure", None),
        ("auth.rate_limited", "rate_limited", None),
        ("token.revoked", "info", None),
    ];
    let clients = ["web", "ios", "cli"];
    let users = ["alice", "bob", "carol", "dave"];
    let start = (now - 3 * DAY_MS) / HOUR_MS * HOUR_MS + HOUR_MS;
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    (0..400)
        .map(|_| {
            let ts = start + next() % (2 * DAY_MS);
            let (t, o, g) = types[(next() % types.len() as u64) as usize];
            let client = clients[(next() % 3) as usize];
            let user = users[(next() % 4) as usize];
            let token = format!("tok{}", next() % 40);
            (ts, t, o, client, user, g, token)
        })
        .collect()
}

async fn load(app: &crate::support::TestApp, now: u64) -> Vec<Row> {
    let events = generated(now);
    let body: Vec<Value> = events
        .iter()
        .map(|(ts, t, _, client, user, grant, token)| {
            let mut e = json!({"type": t, "ts": ts, "client_id": client, "user_id": user,
                "token": token, "ip": format!("10.0.{}.1", token.len())});
            if let Some(g) = grant {
                e["grant_type"] = json!(g);
            }
            e
        })
        .collect();
    app.ingest_ok(&Value::Array(body)).await;
    events
}

#[tokio::test]
async fn stats_of_one_user_or_one_client_match_a_brute_force_count() {
    let app = spawn_app().await;
    let now = now_ms();
    let events = load(&app, now).await;
    for (client, user) in [
        (None, Some("alice")),
        (Some("web"), Some("bob")),
        (Some("ios"), None),
        (None, Some("nobody")),
    ] {
        let mut query = "range=7d".to_owned();
        if let Some(c) = client {
            query.push_str(&format!("&client_id={c}"));
        }
        if let Some(u) = user {
            query.push_str(&format!("&user_id={u}"));
        }
        let stats = app.stats("default", &query).await;
        let chosen: Vec<&Row> = events
            .iter()
            .filter(|r| client.is_none_or(|c| r.3 == c) && user.is_none_or(|u| r.4 == u))
            .collect();
        let count = |pred: &dyn Fn(&Row) -> bool| chosen.iter().filter(|r| pred(r)).count() as u64;
        assert_eq!(stats["total_events"], chosen.len() as u64, "{query}");
        assert_eq!(
            stats["total_issued"],
            count(&|r| r.1 == "token.issued"),
            "{query}"
        );
        assert_eq!(
            stats["total_refreshed"],
            count(&|r| r.1 == "token.refreshed"),
            "{query}"
        );
        assert_eq!(
            stats["total_failed"],
            count(&|r| r.2 == "failure"),
            "{query}"
        );
        assert_eq!(
            stats["total_rate_limited"],
            count(&|r| r.2 == "rate_limited"),
            "{query}"
        );
        let mut grants: BTreeMap<&str, u64> = BTreeMap::new();
        for r in chosen.iter().filter(|r| r.1 == "token.issued") {
            *grants.entry(r.5.expect("issued has a grant")).or_default() += 1;
        }
        let sent: BTreeMap<String, u64> = stats["issued_by_grant_type"]
            .as_object()
            .expect("an object")
            .iter()
            .map(|(k, v)| (k.clone(), v.as_u64().expect("a count")))
            .collect();
        let expected: BTreeMap<String, u64> =
            grants.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
        assert_eq!(sent, expected, "{query}");
        let clients: std::collections::BTreeSet<&str> = chosen.iter().map(|r| r.3).collect();
        assert_eq!(stats["unique_clients"], clients.len() as u64, "{query}");
        let mut hours = vec![0u64; 24];
        for r in &chosen {
            hours[((r.0 / HOUR_MS) % 24) as usize] += 1;
        }
        assert_eq!(stats["by_hour_of_day"], json!(hours), "{query}");
    }
}

#[tokio::test]
async fn timeseries_of_one_user_or_one_client_match_a_brute_force_count() {
    let app = spawn_app().await;
    let now = now_ms();
    let events = load(&app, now).await;
    let from = (now - 3 * DAY_MS) / HOUR_MS * HOUR_MS;
    let to = (now / HOUR_MS + 1) * HOUR_MS;
    for (client, user) in [
        (Some("web"), None),
        (None, Some("carol")),
        (Some("cli"), Some("dave")),
        (Some("never-seen"), None),
    ] {
        for group_by in ["type", "outcome", "grant_type", "client_id", ""] {
            let mut path =
                format!("/api/v1/tenants/default/timeseries?from={from}&to={to}&interval=hour");
            if !group_by.is_empty() {
                path.push_str(&format!("&group_by={group_by}"));
            }
            if let Some(c) = client {
                path.push_str(&format!("&client_id={c}"));
            }
            if let Some(u) = user {
                path.push_str(&format!("&user_id={u}"));
            }
            let reply = app.get(&path, app.owner()).await;
            assert_eq!(reply.status, 200, "{path}: {}", reply.json);
            let buckets = ((to - from) / HOUR_MS) as usize;
            let mut expected: BTreeMap<String, Vec<u64>> = BTreeMap::new();
            if group_by.is_empty() {
                expected.insert("total".into(), vec![0; buckets]);
            }
            for r in events
                .iter()
                .filter(|r| client.is_none_or(|c| r.3 == c) && user.is_none_or(|u| r.4 == u))
            {
                // Per-client grant counters count token.issued only (documented).
                let key = match group_by {
                    "type" => Some(r.1.to_owned()),
                    "outcome" => Some(r.2.to_owned()),
                    "grant_type" if client.is_some() && user.is_none() => {
                        r.5.filter(|_| r.1 == "token.issued").map(str::to_owned)
                    }
                    "grant_type" => r.5.map(str::to_owned),
                    "client_id" => Some(r.3.to_owned()),
                    _ => Some("total".to_owned()),
                };
                if let Some(key) = key {
                    expected.entry(key).or_insert_with(|| vec![0; buckets])
                        [((r.0 - from) / HOUR_MS) as usize] += 1;
                }
            }
            let got: BTreeMap<String, Vec<u64>> = reply.json["series"]
                .as_array()
                .expect("series")
                .iter()
                .map(|s| {
                    let points = s["points"]
                        .as_array()
                        .expect("points")
                        .iter()
                        .map(|p| p[1].as_u64().expect("a count"))
                        .collect();
                    (s["key"].as_str().expect("a key").to_owned(), points)
                })
                .collect();
            assert_eq!(got, expected, "{path}");
        }
    }
}
