//! Analytics endpoints checked against a brute-force count of a generated event set.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::support::{now_ms, rfc3339, spawn_app, DAY_MS, HOUR_MS};

/// (ts, type, outcome, client, grant)
type Row = (
    u64,
    &'static str,
    &'static str,
    Option<&'static str>,
    Option<&'static str>,
);

/// A deterministic event set over the last six days: (ts, type, outcome, client, grant).
fn generated(now: u64) -> Vec<Row> {
    let types = [
        ("token.issued", "success"),
        ("token.refreshed", "success"),
        ("token.pkce_failed", "failure"),
        ("join.rate_limited", "rate_limited"),
        ("captcha.firewall", "blocked"),
    ];
    let clients = [Some("web"), Some("ios"), None];
    let grants = [Some("authorization_code"), Some("refresh_token"), None];
    let start = (now - 6 * DAY_MS) / HOUR_MS * HOUR_MS + HOUR_MS;
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    (0..600)
        .map(|_| {
            let ts = start + next() % (5 * DAY_MS);
            let (t, o) = types[(next() % 5) as usize];
            let client = clients[(next() % 3) as usize];
            let grant = grants[(next() % 3) as usize];
            (ts, t, o, client, grant)
        })
        .collect()
}

async fn load(app: &crate::support::TestApp, now: u64) -> Vec<Row> {
    let events = generated(now);
    let body: Vec<Value> = events
        .iter()
        .map(|(ts, t, _, client, grant)| {
            let mut e = json!({"type": t, "ts": ts});
            if let Some(c) = client {
                e["client_id"] = json!(c);
            }
            if let Some(g) = grant {
                e["grant_type"] = json!(g);
            }
            e
        })
        .collect();
    app.ingest_ok(&Value::Array(body)).await;
    events
}

fn points(series: &Value, key: &str) -> Vec<u64> {
    series["series"]
        .as_array()
        .expect("series")
        .iter()
        .find(|s| s["key"] == key)
        .map(|s| {
            s["points"]
                .as_array()
                .expect("points")
                .iter()
                .map(|p| p[1].as_u64().expect("count"))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn timeseries_match_a_brute_force_count_with_every_bucket_present() {
    let app = spawn_app().await;
    let now = now_ms();
    let events = load(&app, now).await;
    let owner = app.owner();
    let from = (now - 6 * DAY_MS) / DAY_MS * DAY_MS;
    let to = (now / DAY_MS + 1) * DAY_MS;
    for (interval, width) in [("hour", HOUR_MS), ("day", DAY_MS)] {
        for group_by in ["type", "outcome", "grant_type", "client_id", ""] {
            let mut path = format!(
                "/api/v1/tenants/default/timeseries?from={from}&to={to}&interval={interval}"
            );
            if !group_by.is_empty() {
                path.push_str(&format!("&group_by={group_by}"));
            }
            let reply = app.get(&path, owner).await;
            assert_eq!(reply.status, 200, "{path}: {}", reply.json);
            let buckets = ((to - from) / width) as usize;
            let mut expected: BTreeMap<String, Vec<u64>> = BTreeMap::new();
            for (ts, t, o, client, grant) in &events {
                let key = match group_by {
                    "type" => Some(t.to_string()),
                    "outcome" => Some(o.to_string()),
                    "grant_type" => grant.map(str::to_owned),
                    "client_id" => client.map(str::to_owned),
                    _ => Some("total".to_owned()),
                };
                if let Some(key) = key {
                    expected.entry(key).or_insert_with(|| vec![0; buckets])
                        [((ts - from) / width) as usize] += 1;
                }
            }
            let series = reply.json["series"].as_array().expect("series");
            assert_eq!(series.len(), expected.len(), "{path}");
            for (key, counts) in &expected {
                assert_eq!(&points(&reply.json, key), counts, "{path} key {key}");
            }
            assert_eq!(reply.json["interval"], interval);
        }
    }
}

#[tokio::test]
async fn timeseries_filter_types_and_widen_to_whole_buckets() {
    let app = spawn_app().await;
    let now = now_ms();
    let events = load(&app, now).await;
    let from = now - 3 * DAY_MS + 123;
    let to = now - DAY_MS - 456;
    let path = format!(
        "/api/v1/tenants/default/timeseries?from={from}&to={to}&interval=hour&group_by=type&types=token.issued,token.refreshed"
    );
    let reply = app.get(&path, app.owner()).await;
    assert_eq!(reply.status, 200, "{}", reply.json);
    let start = from / HOUR_MS * HOUR_MS;
    let end = to.div_ceil(HOUR_MS) * HOUR_MS;
    assert_eq!(reply.json["from"], crate::support::rfc3339(start));
    assert_eq!(reply.json["to"], crate::support::rfc3339(end));
    let keys: Vec<&str> = reply.json["series"]
        .as_array()
        .expect("series")
        .iter()
        .filter_map(|s| s["key"].as_str())
        .collect();
    assert!(
        keys.iter()
            .all(|k| *k == "token.issued" || *k == "token.refreshed"),
        "{keys:?}"
    );
    let issued: u64 = points(&reply.json, "token.issued").iter().sum();
    let expected = events
        .iter()
        .filter(|(ts, t, ..)| *t == "token.issued" && *ts >= start && *ts < end)
        .count() as u64;
    assert_eq!(issued, expected);
    assert_eq!(
        points(&reply.json, "token.issued").len() as u64,
        (end - start) / HOUR_MS
    );
}

#[tokio::test]
async fn timeseries_refuses_bad_parameters() {
    let app = spawn_app().await;
    for query in [
        "interval=week",
        "group_by=user",
        "types=Not-A-Type",
        "interval=hour&from=0&to=100000000000",
    ] {
        let reply = app
            .get(
                &format!("/api/v1/tenants/default/timeseries?{query}"),
                app.owner(),
            )
            .await;
        assert_eq!(reply.status, 400, "{query}: {}", reply.json);
    }
    let reply = app
        .get("/api/v1/tenants/nope/timeseries", app.owner())
        .await;
    assert_eq!(reply.status, 404);
}

#[tokio::test]
async fn ndjson_export_streams_every_match_across_pages() {
    let app = spawn_app().await;
    let now = now_ms();
    let mut expected = 0;
    for batch in 0..3u64 {
        let events: Vec<Value> = (0..900u64)
            .map(|i| {
                let kind = if i % 3 == 0 { "token.pkce_failed" } else { "token.issued" };
                expected += u64::from(kind == "token.pkce_failed");
                json!({"type": kind, "ts": now - (batch * 900 + i) * 1000, "id": format!("e{batch}-{i}")})
            })
            .collect();
        app.ingest_ok(&Value::Array(events)).await;
    }
    let reply = app
        .get(
            "/api/v1/tenants/default/events/export?format=ndjson&type=token.pkce_failed&range=24h",
            app.owner(),
        )
        .await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("content-type"), Some("application/x-ndjson"));
    let text = std::str::from_utf8(&reply.body).expect("UTF-8");
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect();
    assert_eq!(lines.len() as u64, expected);
    assert!(lines.iter().all(|e| e["type"] == "token.pkce_failed"));
    let mut ids: Vec<&str> = lines.iter().filter_map(|e| e["id"].as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len() as u64, expected, "no event twice");
}

#[tokio::test]
async fn csv_export_quotes_commas_and_quotes() {
    let app = spawn_app().await;
    app.ingest_ok(&json!([
        {"type": "captcha.failed", "user_agent": "Agent, \"quoted\"", "error": "plain", "context": {"note": "x,y"}}
    ]))
    .await;
    let reply = app
        .get(
            "/api/v1/tenants/default/events/export?format=csv",
            app.owner(),
        )
        .await;
    assert_eq!(reply.status, 200);
    let text = std::str::from_utf8(&reply.body).expect("UTF-8");
    let mut rows = text.split("\r\n");
    let header = rows.next().expect("header");
    assert!(
        header.starts_with("seq,ts,received_at,type,outcome"),
        "{header}"
    );
    let row = rows.next().expect("one row");
    assert!(row.contains(",\"Agent, \"\"quoted\"\"\","), "{row}");
    assert!(row.contains(",plain,"), "{row}");
    assert!(row.ends_with("\"{\"\"note\"\":\"\"x,y\"\"}\""), "{row}");
    assert_eq!(rows.next(), Some(""), "records end in CRLF");
}

#[tokio::test]
async fn export_refuses_bad_formats_and_hides_other_tenants() {
    let app = spawn_app().await;
    let reply = app
        .get(
            "/api/v1/tenants/default/events/export?format=xml",
            app.owner(),
        )
        .await;
    assert_eq!(reply.status, 400, "{}", reply.json);
    let reply = app
        .get("/api/v1/tenants/other/events/export", app.owner())
        .await;
    assert_eq!(reply.status, 404);
}

#[tokio::test]
async fn top_matches_a_brute_force_count_for_every_dimension() {
    let app = spawn_app().await;
    let now = now_ms();
    let base = now / HOUR_MS * HOUR_MS - 20 * HOUR_MS;
    let mut state = 7u64;
    let mut next = move |n: u64| {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (state >> 33) % n
    };
    let types = [
        "token.issued",
        "token.pkce_failed",
        "join.access",
        "join.invalid_token",
    ];
    let mut events = Vec::new();
    for i in 0..400u64 {
        let t = types[next(4) as usize];
        let mut e = json!({
            "type": t,
            "ts": base + next(20 * HOUR_MS),
            "client_id": format!("c{}", next(5)),
            "user_id": format!("u{}", next(9)),
            "token": format!("t{}", next(12)),
            "ip": format!("10.0.{}.{}", next(2), next(4)),
            "route": format!("/r/{}", next(6)),
        });
        if t == "token.issued" {
            e["grant_type"] = json!(["authorization_code", "refresh_token"][(i % 2) as usize]);
        }
        events.push(e);
    }
    app.ingest_ok(&Value::Array(events.clone())).await;
    let failing = |t: &str| t == "token.pkce_failed" || t == "join.invalid_token";
    for dim in [
        "client_id",
        "user_id",
        "ip",
        "token",
        "route",
        "type",
        "grant_type",
    ] {
        for outcome in [None, Some("failure")] {
            let mut counts: BTreeMap<String, (u64, u64)> = BTreeMap::new();
            for e in &events {
                let t = e["type"].as_str().expect("type");
                if outcome.is_some() && !failing(t) {
                    continue;
                }
                if let Some(key) = e[dim].as_str() {
                    let entry = counts.entry(key.to_owned()).or_default();
                    entry.0 += 1;
                    entry.1 += u64::from(failing(t));
                }
            }
            let mut expected: Vec<(String, u64, u64)> =
                counts.into_iter().map(|(k, (c, f))| (k, c, f)).collect();
            expected.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
            expected.truncate(4);
            let mut path = format!("/api/v1/tenants/default/top?dim={dim}&range=24h&limit=4");
            if let Some(o) = outcome {
                path.push_str(&format!("&outcome={o}"));
            }
            let reply = app.get(&path, app.owner()).await;
            assert_eq!(reply.status, 200, "{path}: {}", reply.json);
            assert_eq!(top_items(&reply.json), expected, "{path}");
            assert_eq!(reply.json["dim"], dim);
        }
    }
    for bad in ["dim=nope", "", "dim=ip&limit=0", "dim=ip&outcome=meh"] {
        let reply = app
            .get(&format!("/api/v1/tenants/default/top?{bad}"), app.owner())
            .await;
        assert_eq!(reply.status, 400, "{bad}: {}", reply.json);
    }
}
/// One answer of `/top`: (key, count, failures), as listed.
type TopItems = Vec<(String, u64, u64)>;

fn top_items(reply: &Value) -> TopItems {
    reply["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| {
            (
                i["key"].as_str().expect("key").to_owned(),
                i["count"].as_u64().expect("count"),
                i["failures"].as_u64().expect("failures"),
            )
        })
        .collect()
}

#[tokio::test]
async fn top_answers_are_whole_batches_while_events_arrive() {
    const BATCHES: u64 = 30;
    const PER_BATCH: u64 = 40;
    let app = spawn_app().await;
    let now = now_ms();
    let event = |b: u64, i: u64| {
        let n = b * PER_BATCH + i;
        json!({
            "type": if n % 3 == 0 { "token.pkce_failed" } else { "join.access" },
            "ts": now - (n % 50) * 60_000,
            "user_id": format!("u{}", (n * 7) % 11),
            "ip": format!("10.1.{}.{}", n % 3, (n * 5) % 7),
            "token": format!("t{}", (n * 3) % 17),
        })
    };
    let batch = |b: u64| Value::Array((0..PER_BATCH).map(|i| event(b, i)).collect());
    // What `/top` must answer once the first `k` batches are stored.
    let expected = |dim: &str, k: u64| -> TopItems {
        let mut counts: BTreeMap<String, (u64, u64)> = BTreeMap::new();
        for b in 0..k {
            for i in 0..PER_BATCH {
                let e = event(b, i);
                let slot = counts
                    .entry(e[dim].as_str().expect("key").to_owned())
                    .or_default();
                slot.0 += 1;
                slot.1 += u64::from(e["type"] == "token.pkce_failed");
            }
        }
        let mut items: TopItems = counts.into_iter().map(|(k, (c, f))| (k, c, f)).collect();
        items.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        items
    };
    let dims = ["user_id", "ip", "token"];
    let ingest = async {
        for b in 0..BATCHES {
            app.ingest_ok(&batch(b)).await;
        }
    };
    let query = async {
        let mut answers = Vec::new();
        for round in 0..40 {
            let dim = dims[round % dims.len()];
            let path = format!("/api/v1/tenants/default/top?dim={dim}&range=24h&limit=100");
            let reply = app.get(&path, app.owner()).await;
            assert_eq!(reply.status, 200, "{}", reply.json);
            answers.push((dim, top_items(&reply.json)));
        }
        answers
    };
    let ((), answers) = tokio::join!(ingest, query);
    // Batches are stored whole and in order, and every event has each value, so each
    // answer, read from one snapshot, is that of the first k batches for some k.
    let mut ks = Vec::new();
    for (dim, items) in answers {
        let total: u64 = items.iter().map(|(_, count, _)| count).sum();
        assert_eq!(total % PER_BATCH, 0, "{dim}: part of a batch in {items:?}");
        let k = total / PER_BATCH;
        assert_eq!(items, expected(dim, k), "{dim} after {k} batches");
        ks.push(k);
    }
    assert!(
        ks.windows(2).all(|w| w[0] <= w[1]),
        "answers went back in time: {ks:?}"
    );
    for dim in dims {
        let path = format!("/api/v1/tenants/default/top?dim={dim}&range=24h&limit=100");
        let reply = app.get(&path, app.owner()).await;
        assert_eq!(top_items(&reply.json), expected(dim, BATCHES), "{dim}");
    }
}

#[tokio::test]
async fn stats_answer_every_field_of_the_contract() {
    let app = spawn_app().await;
    let ts = now_ms() - 2 * HOUR_MS;
    app.ingest_ok(&json!([
        {"type": "token.issued", "ts": ts, "token": "t1", "client_id": "web", "user_id": "alice", "ip": "10.0.0.1", "grant_type": "authorization_code", "duration_ms": 10},
        {"type": "token.userinfo_accessed", "ts": ts + 1000, "token": "t1", "client_id": "web", "user_id": "alice", "ip": "10.0.0.2", "duration_ms": 30},
        {"type": "token.revoked", "ts": ts + 60_000, "token": "t1", "client_id": "svc", "user_id": "bob", "ip": "10.0.0.2"}
    ]))
    .await;
    let stats = app.stats("default", "").await;
    for field in [
        "from",
        "to",
        "total_events",
        "total_issued",
        "issued_by_grant_type",
        "total_refreshed",
        "total_userinfo",
        "total_failed",
        "total_rate_limited",
        "total_blocked",
        "unique_users",
        "unique_clients",
        "unique_ips",
        "failure_rate",
        "refresh_rate",
        "by_type",
        "by_hour_of_day",
        "token_lifetime_ms",
        "duration_ms",
    ] {
        assert!(
            stats.get(field).is_some(),
            "/stats lacks `{field}`: {stats}"
        );
    }
    assert_eq!(stats["total_userinfo"], 1);
    // Exact below 1,000.
    assert_eq!(stats["unique_users"], 2, "{stats}");
    assert_eq!(stats["unique_clients"], 2, "{stats}");
    assert_eq!(stats["unique_ips"], 2, "{stats}");
    for field in ["count", "mean", "p50", "p90", "p99", "max"] {
        assert!(
            stats["token_lifetime_ms"][field].is_number(),
            "token_lifetime_ms.{field}: {stats}"
        );
    }
    // t1 lived from its issue to its revocation: one minute.
    assert_eq!(stats["token_lifetime_ms"]["count"], 1, "{stats}");
    let lifetime = stats["token_lifetime_ms"]["max"].as_f64().unwrap_or(0.0);
    assert!((lifetime - 60_000.0).abs() <= 600.0, "{lifetime}");
    for field in ["count", "p50", "p90", "p99", "max"] {
        assert!(
            stats["duration_ms"][field].is_number(),
            "duration_ms.{field}: {stats}"
        );
    }
    assert_eq!(stats["duration_ms"]["count"], 2, "{stats}");
    let longest = stats["duration_ms"]["max"].as_f64().unwrap_or(0.0);
    assert!((longest - 30.0).abs() <= 1.0, "{longest}");
}

#[tokio::test]
async fn token_summary_counts_outcomes_volume_and_distinct_sources() {
    let app = spawn_app().await;
    let now = now_ms();
    let t = "link/with space";
    app.ingest_ok(&json!([
        {"type": "token.issued", "token": t, "client_id": "web", "ts": now - 3 * DAY_MS, "ip": "10.0.0.1", "device_id": "d1"},
        {"type": "join.access", "token": t, "ts": now - 2 * DAY_MS, "ip": "10.0.0.2", "device_id": "d1"},
        {"type": "join.upload", "token": t, "ts": now - 20 * HOUR_MS, "ip": "10.0.0.2", "device_id": "d2"},
        {"type": "join.download", "token": t, "ts": now - HOUR_MS, "ip": "::ffff:10.0.0.1"},
        {"type": "join.invalid_token", "token": t, "ts": now - 30 * 60_000, "ip": "2001:db8::1"},
        {"type": "join.rate_limited", "token": t, "ts": now - 60_000},
        {"type": "token.revoked", "token": t, "ts": now - 1000},
        {"type": "join.access", "token": "other", "ts": now - 1000, "ip": "10.9.9.9"}
    ]))
    .await;
    let reply = app
        .get(
            "/api/v1/tenants/default/tokens/link%2Fwith%20space",
            app.owner(),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.json);
    let s = &reply.json;
    assert_eq!(s["token"], t);
    assert_eq!(s["client_id"], "web");
    assert_eq!(s["successes"], 4, "{s}");
    assert_eq!(s["failures"], 1);
    assert_eq!(s["rate_limited"], 1);
    assert_eq!(s["uploads"], 1);
    assert_eq!(s["downloads"], 1);
    assert_eq!(s["last_24h"], 5, "{s}");
    assert_eq!(s["distinct_ips"], 3, "{s}");
    assert_eq!(s["distinct_devices"], 2);
    assert_eq!(s["issued_at"], crate::support::rfc3339(now - 3 * DAY_MS));
    assert_eq!(s["ended_at"], crate::support::rfc3339(now - 1000));
    assert_eq!(s["first_seen"], crate::support::rfc3339(now - 3 * DAY_MS));
    let missing = app
        .get("/api/v1/tenants/default/tokens/nope", app.owner())
        .await;
    assert_eq!(missing.status, 404);
}

#[tokio::test]
async fn stale_tokens_are_listed_page_by_page() {
    let app = spawn_app().await;
    let now = now_ms();
    let mut events = Vec::new();
    for i in 0..7 {
        events.push(
            json!({"type": "join.access", "token": format!("old{i}"), "ts": now - 5 * DAY_MS}),
        );
    }
    events.push(json!({"type": "join.access", "token": "fresh", "ts": now - HOUR_MS}));
    events.push(json!({"type": "join.access", "token": "old0", "ts": now - 5 * DAY_MS / 2}));
    app.ingest_ok(&Value::Array(events)).await;
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = "/api/v1/tenants/default/tokens?inactive_days=2&limit=3".to_owned();
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let reply = app.get(&path, app.owner()).await;
        assert_eq!(reply.status, 200, "{}", reply.json);
        for token in reply.json["tokens"].as_array().expect("tokens") {
            seen.push(token["token"].as_str().expect("token").to_owned());
        }
        match reply.json["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    let expected: Vec<String> = (0..7).map(|i| format!("old{i}")).collect();
    assert_eq!(seen, expected);
    let reply = app
        .get(
            "/api/v1/tenants/default/tokens?inactive_days=4&limit=10",
            app.owner(),
        )
        .await;
    let tokens = reply.json["tokens"].as_array().expect("tokens").len();
    assert_eq!(tokens, 6, "old0 was seen 2.5 days ago: {}", reply.json);
    let bad = app
        .get("/api/v1/tenants/default/tokens?cursor=zz", app.owner())
        .await;
    assert_eq!(bad.status, 400);
}

#[tokio::test]
async fn event_filters_match_a_brute_force_selection() {
    let app = spawn_app().await;
    let now = now_ms();
    let ips = [
        "10.1.2.3",
        "10.1.2.200",
        "10.1.3.1",
        "2001:db8::1",
        "2001:db8:0:1::9",
        "::ffff:10.1.2.7",
    ];
    let agent = |i: u64| {
        if i % 10 == 0 {
            "Mozilla BOT-Scanner"
        } else {
            "Mozilla"
        }
    };
    let route = |i: u64| {
        if i % 11 == 0 {
            "/Join/Secret"
        } else {
            "/oauth/token"
        }
    };
    let mut events = Vec::new();
    let types = ["token.issued", "join.access", "captcha.failed"];
    for i in 0..120u64 {
        let kind = types[(i % 3) as usize];
        events.push(json!({
            "type": kind,
            "ts": now - i * 60_000,
            "client_id": format!("c{}", i % 4),
            "user_id": format!("u{}", i % 5),
            "token": format!("t{}", i % 7),
            "ip": ips[(i % 6) as usize],
            "user_agent": agent(i),
            "route": route(i),
            "id": format!("e{i}"),
        }));
    }
    app.ingest_ok(&Value::Array(events.clone())).await;
    fn canonical(ip: &str) -> String {
        ip.trim_start_matches("::ffff:").to_owned()
    }
    fn in_v4_24(ip: &str) -> bool {
        canonical(ip).starts_with("10.1.2.")
    }
    fn in_v6_64(ip: &str) -> bool {
        ip.starts_with("2001:db8::") || ip.starts_with("2001:db8:0:0:")
    }
    type Pick = Box<dyn Fn(&Value) -> bool>;
    let cases: Vec<(&str, Pick)> = vec![
        (
            "type=join.access",
            Box::new(|e: &Value| e["type"] == "join.access"),
        ),
        (
            "outcome=failure",
            Box::new(|e: &Value| e["type"] == "captcha.failed"),
        ),
        ("client_id=c1", Box::new(|e: &Value| e["client_id"] == "c1")),
        (
            "user_id=u2&token=t3",
            Box::new(|e: &Value| e["user_id"] == "u2" && e["token"] == "t3"),
        ),
        (
            "ip=10.1.2.0/24",
            Box::new(|e: &Value| in_v4_24(e["ip"].as_str().unwrap_or(""))),
        ),
        (
            "ip=10.1.2.7",
            Box::new(|e: &Value| canonical(e["ip"].as_str().unwrap_or("")) == "10.1.2.7"),
        ),
        (
            "ip=2001:db8::/64",
            Box::new(|e: &Value| in_v6_64(e["ip"].as_str().unwrap_or(""))),
        ),
        (
            "q=bot-scanner",
            Box::new(|e: &Value| e["user_agent"] == "Mozilla BOT-Scanner"),
        ),
        (
            "q=join/secret&type=token.issued",
            Box::new(|e: &Value| e["route"] == "/Join/Secret" && e["type"] == "token.issued"),
        ),
    ];
    for (query, pick) in cases {
        let mut expected: Vec<String> = events
            .iter()
            .filter(|e| pick(e))
            .map(|e| e["id"].as_str().expect("id").to_owned())
            .collect();
        expected.sort();
        let listed = app.events("default", &format!("{query}&limit=1000")).await;
        let mut got: Vec<String> = listed
            .iter()
            .map(|e| e["id"].as_str().expect("id").to_owned())
            .collect();
        got.sort();
        assert!(
            !expected.is_empty(),
            "{query} selects nothing: a useless case"
        );
        assert_eq!(got, expected, "{query}");
    }
}

#[tokio::test]
async fn cursor_paging_never_skips_or_repeats_while_events_arrive() {
    let app = spawn_app().await;
    let now = now_ms();
    let old: Vec<Value> = (0..500u64)
        .map(|i| json!({"type": "join.access", "ts": now - HOUR_MS - (i / 3) * 1000, "id": format!("old{i}")}))
        .collect();
    app.ingest_ok(&Value::Array(old)).await;
    let mut seen: Vec<String> = Vec::new();
    let mut cursor: Option<String> = None;
    let mut round = 0u64;
    loop {
        // New events arrive between pages, newer than anything already listed.
        let fresh: Vec<Value> = (0..20u64)
            .map(|i| json!({"type": "join.access", "id": format!("new{round}-{i}")}))
            .collect();
        app.ingest_ok(&Value::Array(fresh)).await;
        round += 1;
        let mut path = format!(
            "from={}&to={}&limit=37",
            now - 2 * HOUR_MS,
            now - HOUR_MS + 1
        );
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let page = app.events_page("default", &path).await;
        for e in page["events"].as_array().expect("events") {
            seen.push(e["id"].as_str().expect("id").to_owned());
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), seen.len(), "an event was listed twice");
    assert_eq!(seen.len(), 500, "every old event exactly once");
    assert!(seen.iter().all(|id| id.starts_with("old")));
}

#[tokio::test]
async fn unique_counts_are_exact_to_a_thousand_and_within_one_percent_beyond() {
    let app = spawn_app().await;
    let now = now_ms();
    // Users: 100,000 distinct; clients: 1,000 distinct; IPs: 10 distinct.
    for chunk in 0..10u64 {
        let body: String = (0..10_000u64)
            .map(|i| {
                let n = chunk * 10_000 + i;
                format!(
                    "{{\"type\":\"token.issued\",\"ts\":{},\"user_id\":\"user-{n}\",\"client_id\":\"client-{}\",\"ip\":\"10.0.0.{}\"}}\n",
                    now - (n % 3_000) * 1000,
                    n % 1000,
                    n % 10
                )
            })
            .collect();
        app.ingest_ndjson_ok(body).await;
    }
    let stats = app.stats("default", "range=24h").await;
    assert_eq!(stats["unique_ips"], 10, "{stats}");
    assert_eq!(stats["unique_clients"], 1000, "{stats}");
    let users = stats["unique_users"].as_f64().expect("a number");
    assert!(
        (users - 100_000.0).abs() <= 1_000.0,
        "unique_users {users} is not within 1 % of 100,000"
    );
    assert_eq!(stats["total_events"], 100_000);
}

/// 80,000 events: more than one posted span (65,536 events, see ARCHITECTURE.md), so these
/// listings read the postings, and `/top` the hour pieces, then the blocks after them and
/// the tail.
#[tokio::test]
async fn one_value_filters_and_top_past_a_posted_span_answer_like_a_brute_force() {
    let app = spawn_app().await;
    let now = now_ms();
    let user = |n: u64| format!("user-{}", n % 400);
    let token = |n: u64| format!("t{}", n % 250);
    let ip = |n: u64| format!("10.9.{}.{}", (n % 1000) / 256, (n % 1000) % 256);
    let route = |n: u64| format!("/join/{}/files", n % 700);
    // All distinct, in no order, over the last 6.5 days: a span's hours hold fewer
    // entries than an hour piece, so pieces hold several hours.
    let ts = |n: u64| now - (n * 7919 % 80_000) * 7_000;
    for chunk in 0..8u64 {
        let body: String = (0..10_000u64)
            .map(|i| {
                let n = chunk * 10_000 + i;
                format!(
                    "{{\"type\":\"join.access\",\"ts\":{},\"user_id\":\"{}\",\"token\":\"{}\",\"ip\":\"{}\",\"route\":\"{}\"}}\n",
                    ts(n),
                    user(n),
                    token(n),
                    ip(n),
                    route(n)
                )
            })
            .collect();
        app.ingest_ndjson_ok(body).await;
    }
    // What each listing must return: the matching events' times, newest first.
    let expect = |pick: &dyn Fn(u64) -> bool| -> Vec<String> {
        let mut times: Vec<u64> = (0..80_000u64).filter(|&n| pick(n)).map(ts).collect();
        times.sort_unstable_by(|a, b| b.cmp(a));
        times.into_iter().map(rfc3339).collect()
    };
    let walk = |query: String, limit: usize| {
        let app = &app;
        async move {
            let (mut listed, mut cursor) = (Vec::new(), None::<String>);
            loop {
                let mut path = format!("range=7d&limit={limit}&{query}");
                if let Some(c) = &cursor {
                    path.push_str(&format!("&cursor={c}"));
                }
                let page = app.events_page("default", &path).await;
                for e in page["events"].as_array().expect("events") {
                    listed.push(e["ts"].as_str().expect("ts").to_owned());
                }
                match page["next_cursor"].as_str() {
                    Some(c) => cursor = Some(c.to_owned()),
                    None => return listed,
                }
            }
        }
    };
    let cases: Vec<(String, Vec<String>)> = vec![
        ("user_id=user-7".into(), expect(&|n| n % 400 == 7)),
        ("user_id=user-399".into(), expect(&|n| n % 400 == 399)),
        ("token=t11".into(), expect(&|n| n % 250 == 11)),
        ("ip=10.9.3.200".into(), expect(&|n| n % 1000 == 968)),
        (
            "user_id=user-10&token=t10".into(),
            expect(&|n| n % 400 == 10 && n % 250 == 10),
        ),
    ];
    for (query, expected) in cases {
        assert!(expected.len() > 20, "{query} selects too little");
        assert_eq!(walk(query.clone(), 1000).await, expected, "{query}");
        assert_eq!(
            walk(query.clone(), 37).await,
            expected,
            "{query}, 37 a page"
        );
    }

    // /top over part of the day (hour pieces), and over most of it (running totals less
    // the hours outside, from the pieces), equal a brute-force count.
    let hour = 3_600_000;
    let this_hour = now / hour * hour;
    let keys: [(&str, &dyn Fn(u64) -> String); 4] = [
        ("user_id", &user),
        ("token", &token),
        ("ip", &ip),
        ("route", &route),
    ];
    for (hours_ago_from, hours_ago_to) in [(101, 40), (150, 2), (31, 30)] {
        let (from, to) = (
            this_hour - hours_ago_from * hour,
            this_hour - hours_ago_to * hour,
        );
        for (dim, key_of) in keys {
            let mut counts = std::collections::BTreeMap::<String, u64>::new();
            for n in (0..80_000u64).filter(|&n| (from..to).contains(&ts(n))) {
                *counts.entry(key_of(n)).or_default() += 1;
            }
            let mut expected: TopItems = counts.into_iter().map(|(k, c)| (k, c, 0)).collect();
            expected.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
            expected.truncate(100);
            let path = format!(
                "/api/v1/tenants/default/top?dim={dim}&limit=100&from={}&to={}",
                rfc3339(from),
                rfc3339(to)
            );
            let reply = app.get(&path, app.owner()).await;
            assert_eq!(reply.status, 200, "{path}: {}", reply.json);
            assert_eq!(top_items(&reply.json), expected, "{path}");
        }
    }
}
