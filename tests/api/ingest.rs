//! `POST /api/v1/events` and the reads that show what it stored: every rule of the event
//! table, batch semantics, idempotency, credentials, limits, listing and `/stats`.

use std::time::Duration;

use serde_json::{json, Value};

use crate::support::{
    assert_error, assert_error_status, assert_invalid_field, now_ms, raw_request, rfc3339,
    spawn_app, write_all, TestApp, DAY_MS, HOUR_MS,
};

const EVENTS: &str = "/api/v1/events";

/// What the default tenant holds: its event total (stats, last 7 days) and the seqs of
/// every event listed over the last 7 days.
async fn store_view(app: &TestApp) -> (u64, Vec<u64>) {
    let total = app.stats("default", "range=7d").await["total_events"]
        .as_u64()
        .expect("total_events");
    let seqs = app
        .events("default", "range=7d&limit=1000")
        .await
        .iter()
        .map(|e| e["seq"].as_u64().expect("seq"))
        .collect();
    (total, seqs)
}

/// Ingests one event and reads it back by its seq.
async fn accept_one(app: &TestApp, event: Value) -> Value {
    let reply = app.ingest_json(&event.to_string()).await;
    assert_eq!(
        reply.status, 200,
        "{event} should be accepted: {}",
        reply.json
    );
    assert_eq!(reply.json["accepted"], 1, "{}", reply.json);
    assert_eq!(reply.json["duplicates"], 0, "{}", reply.json);
    let seq = reply.json["ids"][0].as_u64().expect("a seq");
    app.event(seq).await
}

/// Sends a one-event body and checks the 400 names `field` (top level and in `details`)
/// and that nothing was stored.
async fn reject(app: &TestApp, body: &str, field: &str) {
    let before = store_view(app).await;
    let reply = app.ingest_json(body).await;
    assert_invalid_field(&reply, field);
    let details = reply.json["error"]["details"]
        .as_array()
        .unwrap_or_else(|| panic!("details listing the problem: {}", reply.json));
    assert!(
        details
            .iter()
            .any(|d| d["index"] == 0 && d["field"] == field && d["message"].is_string()),
        "details name event 0 and `{field}`: {}",
        reply.json
    );
    assert_eq!(
        store_view(app).await,
        before,
        "a refused body stores nothing: {body}"
    );
}

/// `reject` for `{"type": "t.x", field: value}`.
async fn reject_field(app: &TestApp, field: &str, value: Value) {
    let mut event = json!({ "type": "t.x" });
    event[field] = value;
    reject(app, &event.to_string(), field).await;
}

/// `accept_one` for `{"type": "t.x", field: value}`.
async fn accept_field(app: &TestApp, field: &str, value: Value) -> Value {
    let mut event = json!({ "type": "t.x" });
    event[field] = value;
    accept_one(app, event).await
}

// ---- body framing ----

#[tokio::test]
async fn a_single_object_is_stored_and_read_back() {
    let app = spawn_app().await;
    let reply = app
        .ingest_json(
            r#"{"type":"token.issued","client_id":"web","grant_type":"authorization_code"}"#,
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.json);
    assert_eq!(reply.json["accepted"], 1);
    assert_eq!(reply.json["duplicates"], 0);
    let ids = reply.json["ids"].as_array().expect("ids");
    assert_eq!(ids.len(), 1);
    let seq = ids[0].as_u64().expect("a numeric seq");
    let stored = app.event(seq).await;
    assert_eq!(stored["seq"], seq);
    assert_eq!(stored["tenant"], "default");
    assert_eq!(stored["type"], "token.issued");
    assert_eq!(stored["client_id"], "web");
    assert_eq!(stored["grant_type"], "authorization_code");
    assert_eq!(stored["outcome"], "success");
    assert!(stored["ts"].is_string() && stored["received_at"].is_string());
}

#[tokio::test]
async fn a_json_array_is_stored_in_order_with_increasing_seqs() {
    let app = spawn_app().await;
    let ids = app
        .ingest_ok(&json!([
            {"type": "a.one"}, {"type": "a.two"}, {"type": "a.three"}
        ]))
        .await;
    assert_eq!(ids.len(), 3);
    let seqs: Vec<u64> = ids.into_iter().map(|id| id.expect("stored")).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    for (seq, t) in seqs.iter().zip(["a.one", "a.two", "a.three"]) {
        assert_eq!(app.event(*seq).await["type"], t);
    }
}

#[tokio::test]
async fn ndjson_lines_are_each_an_event() {
    let app = spawn_app().await;
    let body =
        "{\"type\":\"n.one\"}\n{\"type\":\"n.two\",\"user_id\":\"u\"}\n\n{\"type\":\"n.three\"}\n";
    let reply = app
        .post(
            EVENTS,
            app.ingest(),
            Some("application/x-ndjson"),
            body.as_bytes().to_vec(),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.json);
    assert_eq!(reply.json["accepted"], 3);
    assert_eq!(reply.json["duplicates"], 0);
    let seq = reply.json["ids"][1].as_u64().expect("seq");
    let stored = app.event(seq).await;
    assert_eq!(stored["type"], "n.two");
    assert_eq!(stored["user_id"], "u");
    // CRLF line ends too.
    let reply = app
        .post(
            EVENTS,
            app.ingest(),
            Some("application/x-ndjson"),
            b"{\"type\":\"n.crlf\"}\r\n{\"type\":\"n.crlf\"}\r\n".to_vec(),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.json);
    assert_eq!(reply.json["accepted"], 2);
}

#[tokio::test]
async fn a_json_content_type_with_a_charset_is_accepted() {
    let app = spawn_app().await;
    let reply = app
        .post(
            EVENTS,
            app.ingest(),
            Some("application/json; charset=utf-8"),
            br#"{"type":"a.b"}"#.to_vec(),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.json);
    assert_eq!(reply.json["accepted"], 1);
}

#[tokio::test]
async fn a_text_plain_body_is_415_and_stores_nothing() {
    let app = spawn_app().await;
    let before = store_view(&app).await;
    let reply = app
        .post(
            EVENTS,
            app.ingest(),
            Some("text/plain"),
            br#"{"type":"a.b"}"#.to_vec(),
        )
        .await;
    assert_error_status(&reply, 415);
    assert_eq!(store_view(&app).await, before);
}

#[tokio::test]
async fn malformed_json_is_400_invalid_json() {
    let app = spawn_app().await;
    let before = store_view(&app).await;
    for body in [
        r#"{"type":"a.b""#,
        r#"{"type":}"#,
        r#"[{"type":"a.b"},"#,
        "not json at all",
        r#"{'type':'a.b'}"#,
    ] {
        let reply = app.ingest_json(body).await;
        assert_error(&reply, 400, "invalid_json");
        assert!(
            reply.json["error"]["message"].is_string(),
            "body {body:?}: {}",
            reply.json
        );
    }
    assert_eq!(store_view(&app).await, before);
}

#[tokio::test]
async fn an_empty_body_is_400() {
    let app = spawn_app().await;
    let reply = app.ingest_json("").await;
    assert_error_status(&reply, 400);
    let reply = app
        .post(
            EVENTS,
            app.ingest(),
            Some("application/x-ndjson"),
            Vec::new(),
        )
        .await;
    assert_error_status(&reply, 400);
}

// ---- credentials ----

#[tokio::test]
async fn ingest_without_a_key_is_401_with_www_authenticate() {
    let app = spawn_app().await;
    let reply = app.post_json(EVENTS, None, r#"{"type":"a.b"}"#).await;
    assert_error_status(&reply, 401);
    assert!(
        reply
            .header("www-authenticate")
            .is_some_and(|v| v.starts_with("Bearer")),
        "WWW-Authenticate: Bearer; headers: {:?}",
        reply.headers
    );
}

#[tokio::test]
async fn ingest_with_a_wrong_key_is_401_with_www_authenticate() {
    let app = spawn_app().await;
    let wrong = format!("{}x", app.boot.ingest_key);
    for key in [wrong.as_str(), "gw_ingest_0000", "nonsense"] {
        let reply = app.post_json(EVENTS, Some(key), r#"{"type":"a.b"}"#).await;
        assert_error_status(&reply, 401);
        assert!(
            reply
                .header("www-authenticate")
                .is_some_and(|v| v.starts_with("Bearer")),
            "WWW-Authenticate: Bearer; headers: {:?}",
            reply.headers
        );
    }
    assert_eq!(store_view(&app).await.0, 0);
}

#[tokio::test]
async fn an_admin_token_may_not_send_events() {
    let app = spawn_app().await;
    assert!(app.boot.owner_token.starts_with("gw_admin_"));
    let reply = app
        .post_json(EVENTS, app.owner(), r#"{"type":"a.b"}"#)
        .await;
    assert_error_status(&reply, 403);
    assert_eq!(store_view(&app).await.0, 0);
}

// ---- size limits ----

#[tokio::test]
async fn a_declared_body_over_8_mib_is_413() {
    let app = spawn_app().await;
    let head = format!(
        "POST /api/v1/events HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        app.addr,
        app.boot.ingest_key,
        8 * 1024 * 1024 + 1
    );
    // The body is never sent: the server must refuse on the declared length alone.
    let (status, body) = raw_request(app.addr, head.as_bytes()).await;
    assert_eq!(status, 413, "{body}");
    assert!(body["error"]["code"].is_string(), "an error body: {body}");
}

#[tokio::test]
async fn a_streamed_body_over_8_mib_is_413_and_stores_nothing() {
    let app = spawn_app().await;
    let stream = tokio::net::TcpStream::connect(app.addr)
        .await
        .expect("connects");
    let head = format!(
        "POST /api/v1/events HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/x-ndjson\r\nTransfer-Encoding: chunked\r\n\r\n",
        app.addr, app.boot.ingest_key
    );
    // 8 MiB + 1 byte of NDJSON in chunks of 64 KiB (no declared length).
    let line = format!(
        "{{\"type\":\"big.one\",\"error\":\"{}\"}}\n",
        "x".repeat(200)
    );
    let total = 8 * 1024 * 1024 + 1;
    let mut payload = line.repeat(total / line.len() + 1).into_bytes();
    payload.truncate(total);
    let mut wire = head.into_bytes();
    for chunk in payload.chunks(64 * 1024) {
        wire.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        wire.extend_from_slice(chunk);
        wire.extend_from_slice(b"\r\n");
    }
    wire.extend_from_slice(b"0\r\n\r\n");
    let stream = std::sync::Arc::new(stream);
    let writer = {
        let stream = stream.clone();
        tokio::spawn(async move {
            // The server may stop reading once it has refused; a failed write is fine.
            let _ = write_all(&stream, &wire).await;
        })
    };
    let answer = tokio::time::timeout(Duration::from_secs(30), async {
        let mut received = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            match crate::support::read_some(&stream, &mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => received.extend_from_slice(&chunk[..n]),
            }
            if received.windows(4).any(|w| w == b"\r\n\r\n") {
                break;
            }
        }
        String::from_utf8_lossy(&received).to_string()
    })
    .await
    .expect("an answer within 30 s");
    writer.abort();
    assert!(
        answer.starts_with("HTTP/1.1 413"),
        "a 413 status line; got {:?}",
        answer.lines().next()
    );
    assert_eq!(store_view(&app).await.0, 0);
}

#[tokio::test]
async fn more_than_10000_events_is_413_and_stores_nothing() {
    let app = spawn_app().await;
    let array = format!("[{}]", vec![r#"{"type":"a.b"}"#; 10_001].join(","));
    let reply = app.ingest_json(&array).await;
    assert_error_status(&reply, 413);
    let ndjson = vec![r#"{"type":"a.b"}"#; 10_001].join("\n");
    let reply = app
        .post(
            EVENTS,
            app.ingest(),
            Some("application/x-ndjson"),
            ndjson.into_bytes(),
        )
        .await;
    assert_error_status(&reply, 413);
    assert_eq!(store_view(&app).await.0, 0);
}

#[tokio::test]
async fn exactly_10000_events_are_accepted() {
    let app = spawn_app().await;
    let array = format!("[{}]", vec![r#"{"type":"a.b"}"#; 10_000].join(","));
    let reply = app.ingest_json(&array).await;
    assert_eq!(reply.status, 200, "{}", reply.json);
    assert_eq!(reply.json["accepted"], 10_000);
    assert_eq!(reply.json["ids"].as_array().map(Vec::len), Some(10_000));
    assert_eq!(app.stats("default", "").await["total_events"], 10_000);
}

// ---- batch semantics ----

#[tokio::test]
async fn batch_with_one_bad_event_stores_nothing() {
    let app = spawn_app().await;
    app.ingest_ok(&json!({"type": "before.batch"})).await;
    let before = store_view(&app).await;
    let reply = app
        .ingest_json(
            &json!([
                {"type": "ok.zero"},
                {"type": "ok.one"},
                {"type": "ok.two"},
                {"type": "bad.three", "ip": "300.1.1.1"},
                {"type": "ok.four"}
            ])
            .to_string(),
        )
        .await;
    assert_invalid_field(&reply, "ip");
    let details = reply.json["error"]["details"].as_array().expect("details");
    assert_eq!(details.len(), 1, "{}", reply.json);
    assert_eq!(details[0]["index"], 3);
    assert_eq!(details[0]["field"], "ip");
    assert!(details[0]["message"]
        .as_str()
        .is_some_and(|m| !m.is_empty()));
    assert_eq!(store_view(&app).await, before);
    let stats = app.stats("default", "range=7d").await;
    assert_eq!(stats["total_events"], 1);
    assert!(stats["by_type"].get("ok.zero").is_none(), "{stats}");
}

#[tokio::test]
async fn batch_errors_list_every_problem_with_its_index() {
    let app = spawn_app().await;
    let before = store_view(&app).await;
    let reply = app
        .ingest_json(
            &json!([
                {"type": "Bad Type"},
                {"type": "ok.one"},
                {"type": "ok.two", "status": 42, "outcome": "maybe"},
                {"type": "ok.three", "colour": "red"}
            ])
            .to_string(),
        )
        .await;
    assert_error(&reply, 400, "invalid_field");
    let details = reply.json["error"]["details"].as_array().expect("details");
    let mut found: Vec<(u64, String)> = details
        .iter()
        .map(|d| {
            assert!(d["message"].as_str().is_some_and(|m| !m.is_empty()), "{d}");
            (
                d["index"].as_u64().expect("index"),
                d["field"].as_str().expect("field").to_owned(),
            )
        })
        .collect();
    found.sort();
    assert_eq!(
        found,
        vec![
            (0, "type".to_owned()),
            (2, "outcome".to_owned()),
            (2, "status".to_owned()),
            (3, "colour".to_owned()),
        ],
        "{}",
        reply.json
    );
    assert_eq!(store_view(&app).await, before);
}

#[tokio::test]
async fn ndjson_batch_with_one_bad_line_stores_nothing() {
    let app = spawn_app().await;
    let before = store_view(&app).await;
    let body =
        "{\"type\":\"a.one\"}\n{\"type\":\"a.two\",\"duration_ms\":-5}\n{\"type\":\"a.three\"}\n";
    let reply = app
        .post(
            EVENTS,
            app.ingest(),
            Some("application/x-ndjson"),
            body.as_bytes().to_vec(),
        )
        .await;
    assert_invalid_field(&reply, "duration_ms");
    assert_eq!(reply.json["error"]["details"][0]["index"], 1);
    assert_eq!(store_view(&app).await, before);
}

#[tokio::test]
async fn a_non_object_in_a_batch_fails_the_batch() {
    let app = spawn_app().await;
    let before = store_view(&app).await;
    let reply = app
        .ingest_json(r#"[{"type":"a.b"}, 5, {"type":"c.d"}]"#)
        .await;
    assert_error_status(&reply, 400);
    let details = reply.json["error"]["details"].as_array().expect("details");
    assert!(details.iter().any(|d| d["index"] == 1), "{}", reply.json);
    assert_eq!(store_view(&app).await, before);
}

#[tokio::test]
async fn batch_error_details_are_capped_at_100() {
    let app = spawn_app().await;
    let events: Vec<Value> = (0..150)
        .map(|_| json!({"type": "a.b", "ip": "nope"}))
        .collect();
    let reply = app.ingest_json(&Value::Array(events).to_string()).await;
    assert_invalid_field(&reply, "ip");
    let details = reply.json["error"]["details"].as_array().expect("details");
    assert_eq!(details.len(), 100);
    assert_eq!(store_view(&app).await.0, 0);
}

// ---- idempotency ----

#[tokio::test]
async fn an_id_repeated_in_one_batch_is_stored_once() {
    let app = spawn_app().await;
    let reply = app
        .ingest_json(
            &json!([
                {"type": "a.b", "id": "evt-1"},
                {"type": "a.b", "id": "evt-2"},
                {"type": "a.b", "id": "evt-1"}
            ])
            .to_string(),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.json);
    assert_eq!(reply.json["accepted"], 2);
    assert_eq!(reply.json["duplicates"], 1);
    let ids = reply.json["ids"].as_array().expect("ids");
    assert!(ids[0].is_u64() && ids[1].is_u64(), "{}", reply.json);
    assert!(ids[2].is_null(), "{}", reply.json);
    let events = app.events("default", "limit=1000").await;
    assert_eq!(events.iter().filter(|e| e["id"] == "evt-1").count(), 1);
    assert_eq!(app.stats("default", "").await["total_events"], 2);
}

#[tokio::test]
async fn an_id_repeated_in_a_later_request_is_a_duplicate() {
    let app = spawn_app().await;
    let first = app.ingest_ok(&json!({"type": "a.b", "id": "evt-1"})).await;
    assert!(first[0].is_some());
    let reply = app
        .ingest_json(
            &json!([{"type": "a.b", "id": "evt-1"}, {"type": "a.b", "id": "evt-3"}]).to_string(),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.json);
    assert_eq!(reply.json["accepted"], 1);
    assert_eq!(reply.json["duplicates"], 1);
    assert!(reply.json["ids"][0].is_null(), "{}", reply.json);
    assert!(reply.json["ids"][1].is_u64(), "{}", reply.json);
    let again = app.ingest_json(r#"{"type":"a.b","id":"evt-1"}"#).await;
    assert_eq!(again.status, 200, "{}", again.json);
    assert_eq!(again.json["accepted"], 0);
    assert_eq!(again.json["duplicates"], 1);
    assert_eq!(again.json["ids"], json!([null]));
    let events = app.events("default", "limit=1000").await;
    assert_eq!(events.iter().filter(|e| e["id"] == "evt-1").count(), 1);
    assert_eq!(events.len(), 2);
    assert_eq!(app.stats("default", "").await["total_events"], 2);
}

// ---- the event table, field by field ----

#[tokio::test]
async fn type_is_required_and_follows_the_grammar() {
    let app = spawn_app().await;
    reject(&app, r#"{"user_id":"u"}"#, "type").await;
    for bad in [
        json!(""),
        json!("Token.issued"),
        json!("a..b"),
        json!(".a"),
        json!("a."),
        json!("a-b"),
        json!("a b"),
        json!("a".repeat(65)),
        json!(5),
        json!(null),
        json!(["a"]),
    ] {
        reject(&app, &json!({ "type": bad }).to_string(), "type").await;
    }
    for good in ["a", "token.issued", "a_b.c1.d9", &"a".repeat(64)] {
        let stored = accept_one(&app, json!({ "type": good })).await;
        assert_eq!(stored["type"], good);
    }
}

#[tokio::test]
async fn ts_accepts_rfc3339_and_epoch_milliseconds() {
    let app = spawn_app().await;
    let ms = now_ms() - 2 * HOUR_MS;
    let stored = accept_field(&app, "ts", json!(ms)).await;
    assert_eq!(stored["ts"], rfc3339(ms));
    let ms = now_ms() - 3 * HOUR_MS;
    let stored = accept_field(&app, "ts", json!(rfc3339(ms))).await;
    assert_eq!(stored["ts"], rfc3339(ms));
    // An offset is normalised to UTC: the same instant written two hours ahead.
    let ms = (now_ms() - 5 * HOUR_MS) / 1000 * 1000;
    let utc = rfc3339(ms);
    let shifted = format!("{}+02:00", &rfc3339(ms + 2 * HOUR_MS)[..19]);
    let stored = accept_field(&app, "ts", json!(shifted)).await;
    assert_eq!(stored["ts"], utc);
}

#[tokio::test]
async fn ts_defaults_to_the_receive_time() {
    let app = spawn_app().await;
    let before = now_ms();
    let stored = accept_one(&app, json!({"type": "a.b"})).await;
    let after = now_ms();
    let ts = stored["ts"].as_str().expect("ts");
    assert!(
        ts >= rfc3339(before).as_str() && ts <= rfc3339(after).as_str(),
        "{ts} within [{}, {}]",
        rfc3339(before),
        rfc3339(after)
    );
}

#[tokio::test]
async fn ts_must_lie_within_the_last_7_days_and_5_minutes_ahead() {
    let app = spawn_app().await;
    let now = now_ms();
    let too_old = now - 7 * DAY_MS - 60_000;
    let too_new = now + 10 * 60_000;
    reject_field(&app, "ts", json!(too_old)).await;
    reject_field(&app, "ts", json!(rfc3339(too_old))).await;
    reject_field(&app, "ts", json!(too_new)).await;
    reject_field(&app, "ts", json!(rfc3339(too_new))).await;
    reject_field(&app, "ts", json!("yesterday")).await;
    reject_field(&app, "ts", json!("1969-12-31T23:59:59Z")).await;
    reject_field(&app, "ts", json!(-5)).await;
    reject_field(&app, "ts", json!(true)).await;
    // Just inside both edges.
    let old_ok = now - 7 * DAY_MS + 60_000;
    let new_ok = now + 4 * 60_000;
    assert_eq!(
        accept_field(&app, "ts", json!(old_ok)).await["ts"],
        rfc3339(old_ok)
    );
    assert_eq!(
        accept_field(&app, "ts", json!(rfc3339(new_ok))).await["ts"],
        rfc3339(new_ok)
    );
}

#[tokio::test]
async fn id_is_at_most_128_characters() {
    let app = spawn_app().await;
    reject_field(&app, "id", json!("i".repeat(129))).await;
    reject_field(&app, "id", json!(7)).await;
    let id = "i".repeat(128);
    assert_eq!(accept_field(&app, "id", json!(id)).await["id"], id);
}

#[tokio::test]
async fn outcome_is_one_of_the_five_and_overrides_the_default() {
    let app = spawn_app().await;
    for bad in [json!("ok"), json!("SUCCESS"), json!(""), json!(1)] {
        reject_field(&app, "outcome", bad).await;
    }
    for outcome in ["success", "failure", "rate_limited", "blocked", "info"] {
        let stored = accept_one(&app, json!({"type": "token.issued", "outcome": outcome})).await;
        assert_eq!(stored["outcome"], outcome);
    }
}

#[tokio::test]
async fn identifiers_are_at_most_128_characters() {
    let app = spawn_app().await;
    for field in ["token", "client_id", "user_id", "device_id"] {
        reject_field(&app, field, json!("x".repeat(129))).await;
        reject_field(&app, field, json!(12)).await;
        let value = "x".repeat(128);
        assert_eq!(
            accept_field(&app, field, json!(value)).await[field],
            value,
            "{field}"
        );
    }
}

#[tokio::test]
async fn grant_type_is_at_most_64_characters() {
    let app = spawn_app().await;
    reject_field(&app, "grant_type", json!("g".repeat(65))).await;
    let value = "g".repeat(64);
    assert_eq!(
        accept_field(&app, "grant_type", json!(value)).await["grant_type"],
        value
    );
}

#[tokio::test]
async fn scopes_are_at_most_32_strings_of_64() {
    let app = spawn_app().await;
    let many: Vec<String> = (0..33).map(|i| format!("s{i}")).collect();
    reject_field(&app, "scopes", json!(many)).await;
    reject_field(&app, "scopes", json!(["ok", "s".repeat(65)])).await;
    reject_field(&app, "scopes", json!("openid profile")).await;
    reject_field(&app, "scopes", json!(["openid", 5])).await;
    let most: Vec<String> = (0..32).map(|i| format!("{i:0>64}")).collect();
    assert_eq!(
        accept_field(&app, "scopes", json!(most)).await["scopes"],
        json!(most)
    );
    assert_eq!(
        accept_field(&app, "scopes", json!(["openid", "email"])).await["scopes"],
        json!(["openid", "email"])
    );
}

#[tokio::test]
async fn ip_is_an_ipv4_or_ipv6_address() {
    let app = spawn_app().await;
    for bad in [
        json!("300.1.1.1"),
        json!("1.2.3"),
        json!("example.com"),
        json!("1.2.3.4/24"),
        json!("2001:db8::g"),
        json!(""),
        json!(16_909_060),
    ] {
        reject_field(&app, "ip", bad).await;
    }
    assert_eq!(
        accept_field(&app, "ip", json!("203.0.113.7")).await["ip"],
        "203.0.113.7"
    );
    assert_eq!(
        accept_field(&app, "ip", json!("2001:db8::1")).await["ip"],
        "2001:db8::1"
    );
}

#[tokio::test]
async fn an_ipv4_mapped_ipv6_address_is_stored_as_ipv4() {
    let app = spawn_app().await;
    let stored = accept_field(&app, "ip", json!("::ffff:1.2.3.4")).await;
    assert_eq!(stored["ip"], "1.2.3.4");
    // And it is found by the IPv4 filter.
    let listed = app.events("default", "ip=1.2.3.4").await;
    assert_eq!(listed.len(), 1);
}

#[tokio::test]
async fn user_agent_is_truncated_to_512_bytes() {
    let app = spawn_app().await;
    let stored = accept_field(&app, "user_agent", json!("a".repeat(600))).await;
    assert_eq!(stored["user_agent"], "a".repeat(512));
    // Multi-byte text is cut on a character boundary, never past 512 bytes.
    let stored = accept_field(&app, "user_agent", json!("é".repeat(300))).await;
    assert_eq!(stored["user_agent"], "é".repeat(256));
    let short = "Mozilla/5.0 (X11; Linux x86_64)";
    assert_eq!(
        accept_field(&app, "user_agent", json!(short)).await["user_agent"],
        short
    );
    reject_field(&app, "user_agent", json!(42)).await;
}

#[tokio::test]
async fn method_is_at_most_16_characters() {
    let app = spawn_app().await;
    reject_field(&app, "method", json!("M".repeat(17))).await;
    assert_eq!(
        accept_field(&app, "method", json!("M".repeat(16))).await["method"],
        "M".repeat(16)
    );
    assert_eq!(
        accept_field(&app, "method", json!("POST")).await["method"],
        "POST"
    );
}

#[tokio::test]
async fn route_drops_the_query_string() {
    let app = spawn_app().await;
    let stored = accept_field(&app, "route", json!("/oauth/token?code=SECRET&state=x")).await;
    assert_eq!(stored["route"], "/oauth/token");
    let stored = accept_field(&app, "route", json!("/join/abc")).await;
    assert_eq!(stored["route"], "/join/abc");
    // The secret is nowhere in the stored event.
    let listed = app.events("default", "").await;
    assert!(
        !listed.iter().any(|e| e.to_string().contains("SECRET")),
        "{listed:?}"
    );
}

#[tokio::test]
async fn route_loses_control_characters() {
    let app = spawn_app().await;
    let stored = accept_field(&app, "route", json!("/a\u{7}b\u{1b}[31mc\nd\r\te\u{7f}f")).await;
    assert_eq!(stored["route"], "/ab[31mcdef");
}

#[tokio::test]
async fn route_is_truncated_to_255_bytes() {
    let app = spawn_app().await;
    let long = format!("/{}", "x".repeat(300));
    let stored = accept_field(&app, "route", json!(long)).await;
    assert_eq!(stored["route"], long[..255]);
    let wide = format!("/{}", "é".repeat(200));
    let stored = accept_field(&app, "route", json!(wide)).await;
    assert_eq!(stored["route"], format!("/{}", "é".repeat(127)));
}

#[tokio::test]
async fn status_is_an_integer_from_100_to_599() {
    let app = spawn_app().await;
    for bad in [json!(99), json!(600), json!("200"), json!(200.5), json!(-1)] {
        reject_field(&app, "status", bad).await;
    }
    assert_eq!(
        accept_field(&app, "status", json!(100)).await["status"],
        100
    );
    assert_eq!(
        accept_field(&app, "status", json!(599)).await["status"],
        599
    );
}

#[tokio::test]
async fn error_is_at_most_256_characters() {
    let app = spawn_app().await;
    reject_field(&app, "error", json!("e".repeat(257))).await;
    let value = "e".repeat(256);
    assert_eq!(
        accept_field(&app, "error", json!(value)).await["error"],
        value
    );
}

#[tokio::test]
async fn duration_ms_is_from_0_to_one_hour() {
    let app = spawn_app().await;
    for bad in [json!(-1), json!(3_600_001), json!("5"), json!(1.5)] {
        reject_field(&app, "duration_ms", bad).await;
    }
    assert_eq!(
        accept_field(&app, "duration_ms", json!(0)).await["duration_ms"],
        0
    );
    assert_eq!(
        accept_field(&app, "duration_ms", json!(3_600_000)).await["duration_ms"],
        3_600_000
    );
}

#[tokio::test]
async fn context_is_an_object_of_at_most_4_kib() {
    let app = spawn_app().await;
    reject_field(&app, "context", json!(["a"])).await;
    reject_field(&app, "context", json!("text")).await;
    reject_field(&app, "context", json!(5)).await;
    // {"k":"…"} serialized: 8 bytes of frame plus the value.
    reject_field(&app, "context", json!({ "k": "x".repeat(4089) })).await;
    let largest = json!({ "k": "x".repeat(4088) });
    assert_eq!(largest.to_string().len(), 4096);
    assert_eq!(
        accept_field(&app, "context", largest.clone()).await["context"],
        largest
    );
    let nested = json!({"plan": "pro", "attempt": 3, "flags": {"mfa": true}});
    assert_eq!(
        accept_field(&app, "context", nested.clone()).await["context"],
        nested
    );
}

#[tokio::test]
async fn expires_at_is_a_time() {
    let app = spawn_app().await;
    reject_field(&app, "expires_at", json!("soon")).await;
    let at = now_ms() + HOUR_MS;
    let stored = accept_one(
        &app,
        json!({"type": "token.issued", "token": "t1", "expires_at": at}),
    )
    .await;
    assert_eq!(stored["expires_at"], rfc3339(at));
    let stored = accept_one(
        &app,
        json!({"type": "token.issued", "token": "t2", "expires_at": rfc3339(at)}),
    )
    .await;
    assert_eq!(stored["expires_at"], rfc3339(at));
}

#[tokio::test]
async fn an_unknown_field_is_rejected_by_name() {
    let app = spawn_app().await;
    reject(&app, r#"{"type":"a.b","colour":"red"}"#, "colour").await;
    reject(&app, r#"{"type":"a.b","clientid":"web"}"#, "clientid").await;
}

#[tokio::test]
async fn a_duplicated_key_in_one_object_is_rejected() {
    let app = spawn_app().await;
    reject(
        &app,
        r#"{"type":"a.b","user_id":"alice","user_id":"mallory"}"#,
        "user_id",
    )
    .await;
}

#[tokio::test]
async fn every_field_round_trips() {
    let app = spawn_app().await;
    let ts = now_ms() - HOUR_MS;
    let expires = ts + 2 * HOUR_MS;
    let event = json!({
        "type": "token.issued",
        "ts": ts,
        "id": "idem-1",
        "outcome": "success",
        "token": "tok-1",
        "client_id": "web",
        "user_id": "alice",
        "device_id": "dev-9",
        "grant_type": "authorization_code",
        "scopes": ["openid", "email"],
        "ip": "198.51.100.4",
        "user_agent": "curl/8",
        "method": "POST",
        "route": "/oauth/token",
        "status": 200,
        "error": "none",
        "expires_at": expires,
        "duration_ms": 12,
        "context": {"region": "eu"}
    });
    let stored = accept_one(&app, event.clone()).await;
    for field in [
        "type",
        "id",
        "outcome",
        "token",
        "client_id",
        "user_id",
        "device_id",
        "grant_type",
        "scopes",
        "ip",
        "user_agent",
        "method",
        "route",
        "status",
        "error",
        "duration_ms",
        "context",
    ] {
        assert_eq!(stored[field], event[field], "{field} in {stored}");
    }
    assert_eq!(stored["ts"], rfc3339(ts));
    assert_eq!(stored["expires_at"], rfc3339(expires));
    assert_eq!(stored["tenant"], "default");
}

#[tokio::test]
async fn explicit_nulls_count_as_absent_fields() {
    let app = spawn_app().await;
    let stored = accept_one(&app, json!({"type": "a.b", "user_id": null, "ip": null})).await;
    assert!(stored.get("user_id").is_none_or(Value::is_null), "{stored}");
    assert!(stored.get("ip").is_none_or(Value::is_null), "{stored}");
}

// ---- taxonomy defaults ----

#[tokio::test]
async fn outcomes_default_from_the_taxonomy() {
    let app = spawn_app().await;
    let cases = [
        ("token.issued", "success"),
        ("token.refreshed", "success"),
        ("token.pkce_failed", "failure"),
        ("auth.invalid_client", "failure"),
        ("join.rate_limited", "rate_limited"),
        ("captcha.firewall", "blocked"),
        ("token.revoked", "info"),
        ("my.custom_thing", "info"),
    ];
    let events: Vec<Value> = cases.iter().map(|(t, _)| json!({ "type": t })).collect();
    let ids = app.ingest_ok(&Value::Array(events)).await;
    for (id, (t, outcome)) in ids.iter().zip(cases) {
        let stored = app.event(id.expect("stored")).await;
        assert_eq!(stored["type"], t);
        assert_eq!(stored["outcome"], outcome, "default outcome of {t}");
    }
    let stats = app.stats("default", "").await;
    assert_eq!(stats["total_events"], 8);
    assert_eq!(stats["total_failed"], 2);
    assert_eq!(stats["total_rate_limited"], 1);
    assert_eq!(stats["total_blocked"], 1);
    assert_eq!(stats["by_type"]["my.custom_thing"], 1);
}

// ---- listing events ----

/// Ingests `n` events of type `t.{i % 3}` at `base + (i / 2) * 1000` (pairs share a ts);
/// returns their seqs.
async fn seed(app: &TestApp, base: u64, n: u64) -> Vec<u64> {
    let events: Vec<Value> = (0..n)
        .map(|i| json!({"type": format!("t.{}", i % 3), "ts": base + (i / 2) * 1000, "user_id": format!("u{i}")}))
        .collect();
    app.ingest_ok(&Value::Array(events))
        .await
        .into_iter()
        .map(|id| id.expect("stored"))
        .collect()
}

fn ts_seq(event: &Value) -> (String, u64) {
    (
        event["ts"].as_str().expect("ts").to_owned(),
        event["seq"].as_u64().expect("seq"),
    )
}

#[tokio::test]
async fn events_are_listed_newest_first() {
    let app = spawn_app().await;
    let base = now_ms() - 2 * HOUR_MS;
    // Sent out of order.
    app.ingest_ok(&json!([
        {"type": "o.b", "ts": base + 2000},
        {"type": "o.d", "ts": base + 4000},
        {"type": "o.a", "ts": base + 1000},
        {"type": "o.c", "ts": base + 3000}
    ]))
    .await;
    let listed = app.events("default", "").await;
    let types: Vec<&str> = listed
        .iter()
        .map(|e| e["type"].as_str().expect("type"))
        .collect();
    assert_eq!(types, ["o.d", "o.c", "o.b", "o.a"]);
}

#[tokio::test]
async fn limit_caps_a_page_and_offers_a_cursor() {
    let app = spawn_app().await;
    seed(&app, now_ms() - 2 * HOUR_MS, 10).await;
    let page = app.events_page("default", "limit=3").await;
    assert_eq!(page["events"].as_array().map(Vec::len), Some(3));
    assert!(page["next_cursor"].is_string(), "{page}");
    let all = app.events_page("default", "limit=10").await;
    assert_eq!(all["events"].as_array().map(Vec::len), Some(10));
    assert!(all["next_cursor"].is_null(), "{all}");
    let default = app.events_page("default", "").await;
    assert_eq!(default["events"].as_array().map(Vec::len), Some(10));
}

#[tokio::test]
async fn cursor_pagination_visits_every_event_exactly_once() {
    let app = spawn_app().await;
    let mut seqs = seed(&app, now_ms() - 2 * HOUR_MS, 23).await;
    let mut visited: Vec<(String, u64)> = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let query = match &cursor {
            Some(c) => format!("limit=5&cursor={c}"),
            None => "limit=5".to_owned(),
        };
        let page = app.events_page("default", &query).await;
        let events = page["events"].as_array().expect("events");
        assert!(events.len() <= 5);
        visited.extend(events.iter().map(ts_seq));
        pages += 1;
        assert!(pages <= 10, "pagination does not end");
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(pages, 5);
    // Newest first across pages: (ts, seq) strictly decreasing.
    assert!(
        visited.windows(2).all(|w| w[0] > w[1]),
        "order across pages: {visited:?}"
    );
    let mut got: Vec<u64> = visited.iter().map(|(_, s)| *s).collect();
    got.sort_unstable();
    seqs.sort_unstable();
    assert_eq!(got, seqs, "every event exactly once");
}

#[tokio::test]
async fn from_and_to_select_a_half_open_range() {
    let app = spawn_app().await;
    let base = now_ms() - 3 * HOUR_MS;
    app.ingest_ok(&json!([
        {"type": "r.zero", "ts": base},
        {"type": "r.one", "ts": base + 1000},
        {"type": "r.two", "ts": base + 2000},
        {"type": "r.three", "ts": base + 3000}
    ]))
    .await;
    let types = |events: Vec<Value>| -> Vec<String> {
        events
            .iter()
            .map(|e| e["type"].as_str().expect("type").to_owned())
            .collect()
    };
    let by_ms = app
        .events(
            "default",
            &format!("from={}&to={}", base + 1000, base + 3000),
        )
        .await;
    assert_eq!(types(by_ms), ["r.two", "r.one"]);
    let by_text = app
        .events(
            "default",
            &format!("from={}&to={}", rfc3339(base + 1000), rfc3339(base + 3000)),
        )
        .await;
    assert_eq!(types(by_text), ["r.two", "r.one"]);
    let open_end = app
        .events("default", &format!("from={}", base + 2000))
        .await;
    assert_eq!(types(open_end), ["r.three", "r.two"]);
}

#[tokio::test]
async fn events_older_than_a_day_need_a_wider_range() {
    let app = spawn_app().await;
    let old = now_ms() - 3 * DAY_MS;
    app.ingest_ok(&json!([{"type": "old.one", "ts": old}, {"type": "new.one"}]))
        .await;
    let last_day = app.events("default", "").await;
    assert_eq!(last_day.len(), 1, "the default range is the last 24 h");
    assert_eq!(last_day[0]["type"], "new.one");
    let week = app.events("default", "range=7d").await;
    assert_eq!(week.len(), 2);
}

#[tokio::test]
async fn the_type_filter_selects_one_type() {
    let app = spawn_app().await;
    seed(&app, now_ms() - HOUR_MS, 9).await;
    let listed = app.events("default", "type=t.1").await;
    assert_eq!(listed.len(), 3);
    assert!(listed.iter().all(|e| e["type"] == "t.1"), "{listed:?}");
    assert!(app.events("default", "type=t.none").await.is_empty());
}

#[tokio::test]
async fn one_event_is_read_by_its_seq() {
    let app = spawn_app().await;
    let ids = seed(&app, now_ms() - HOUR_MS, 3).await;
    let stored = app.event(ids[1]).await;
    assert_eq!(stored["seq"], ids[1]);
    assert_eq!(stored["user_id"], "u1");
    let missing = app
        .get(
            &format!("/api/v1/tenants/default/events/{}", ids[2] + 1000),
            app.owner(),
        )
        .await;
    assert_error_status(&missing, 404);
    let garbage = app
        .get("/api/v1/tenants/default/events/abc", app.owner())
        .await;
    assert!(
        [400, 404].contains(&garbage.status),
        "a non-numeric seq is bad input or unknown: {}",
        garbage.status
    );
}

#[tokio::test]
async fn bad_event_query_parameters_are_400() {
    let app = spawn_app().await;
    seed(&app, now_ms() - HOUR_MS, 3).await;
    for query in [
        "range=2w",
        "limit=0",
        "limit=1001",
        "limit=ten",
        "limit=-1",
        "cursor=garbage",
        "cursor=zz.1",
        "from=yesterday",
        "to=tomorrow",
        "outcome=maybe",
        "ip=300.1.1.1",
    ] {
        let reply = app
            .get(
                &format!("/api/v1/tenants/default/events?{query}"),
                app.owner(),
            )
            .await;
        assert_error_status(&reply, 400);
        assert!(
            reply.json["error"]["message"].is_string(),
            "{query}: {}",
            reply.json
        );
    }
    let now = now_ms();
    let inverted = app
        .get(
            &format!(
                "/api/v1/tenants/default/events?from={}&to={}",
                now,
                now - HOUR_MS
            ),
            app.owner(),
        )
        .await;
    assert_error_status(&inverted, 400);
    assert_eq!(
        app.events_page("default", "limit=1000").await["events"]
            .as_array()
            .map(Vec::len),
        Some(3)
    );
}

// ---- stats ----

#[tokio::test]
async fn stats_count_types_outcomes_grants_and_hours() {
    let app = spawn_app().await;
    // Whole hour H, three hours back; every event lies inside it.
    let h = (now_ms() - 3 * HOUR_MS) / HOUR_MS * HOUR_MS;
    let at = |minutes: u64| h + minutes * 60_000;
    app.ingest_ok(&json!([
        {"type": "token.issued", "ts": at(1), "client_id": "web", "grant_type": "authorization_code"},
        {"type": "token.issued", "ts": at(10), "client_id": "web", "grant_type": "authorization_code"},
        {"type": "token.issued", "ts": at(11), "client_id": "svc", "grant_type": "client_credentials"},
        {"type": "token.refreshed", "ts": at(12), "client_id": "web"},
        {"type": "token.pkce_failed", "ts": at(20), "client_id": "web"},
        {"type": "token.pkce_failed", "ts": at(21), "client_id": "web"},
        {"type": "join.rate_limited", "ts": at(30)},
        {"type": "captcha.firewall", "ts": at(40)},
        {"type": "custom.thing", "ts": at(59)},
        // The hour before: outside the first query.
        {"type": "custom.thing", "ts": h - HOUR_MS + 5 * 60_000}
    ]))
    .await;
    // `from`/`to` inside the hour are widened to it.
    let stats = app
        .stats("default", &format!("from={}&to={}", at(5), at(50)))
        .await;
    assert_eq!(stats["from"], rfc3339(h));
    assert_eq!(stats["to"], rfc3339(h + HOUR_MS));
    assert_eq!(stats["total_events"], 9);
    assert_eq!(
        stats["by_type"],
        json!({
            "token.issued": 3, "token.refreshed": 1, "token.pkce_failed": 2,
            "join.rate_limited": 1, "captcha.firewall": 1, "custom.thing": 1
        })
    );
    assert_eq!(stats["total_issued"], 3);
    assert_eq!(
        stats["issued_by_grant_type"],
        json!({"authorization_code": 2, "client_credentials": 1})
    );
    assert_eq!(stats["total_refreshed"], 1);
    assert_eq!(stats["total_failed"], 2);
    assert_eq!(stats["total_rate_limited"], 1);
    assert_eq!(stats["total_blocked"], 1);
    // failed / (failed + success) = 2 / (2 + 4); refreshed / issued = 1 / 3.
    let failure_rate = stats["failure_rate"].as_f64().expect("failure_rate");
    assert!((failure_rate - 2.0 / 6.0).abs() < 1e-9, "{failure_rate}");
    let refresh_rate = stats["refresh_rate"].as_f64().expect("refresh_rate");
    assert!((refresh_rate - 1.0 / 3.0).abs() < 1e-9, "{refresh_rate}");
    let hour = ((h / HOUR_MS) % 24) as usize;
    let mut by_hour = vec![0u64; 24];
    by_hour[hour] = 9;
    assert_eq!(stats["by_hour_of_day"], json!(by_hour));

    // Two hours, in RFC 3339.
    let wider = app
        .stats(
            "default",
            &format!("from={}&to={}", rfc3339(h - 30 * 60_000), rfc3339(at(59))),
        )
        .await;
    assert_eq!(wider["from"], rfc3339(h - HOUR_MS));
    assert_eq!(wider["to"], rfc3339(h + HOUR_MS));
    assert_eq!(wider["total_events"], 10);
    assert_eq!(wider["by_type"]["custom.thing"], 2);
    by_hour[(hour + 23) % 24] = 1;
    assert_eq!(wider["by_hour_of_day"], json!(by_hour));
}

#[tokio::test]
async fn stats_default_to_the_last_24_hours_in_whole_hours() {
    let app = spawn_app().await;
    app.ingest_ok(&json!([
        {"type": "a.recent", "ts": now_ms() - 2 * HOUR_MS},
        {"type": "a.old", "ts": now_ms() - 2 * DAY_MS}
    ]))
    .await;
    let before = now_ms();
    let stats = app.stats("default", "").await;
    let after = now_ms();
    assert_eq!(stats["total_events"], 1);
    assert_eq!(stats["by_type"], json!({"a.recent": 1}));
    let hours = |ms: u64| rfc3339(ms / HOUR_MS * HOUR_MS);
    let from = stats["from"].as_str().expect("from");
    let to = stats["to"].as_str().expect("to");
    assert!(
        from == hours(before - DAY_MS) || from == hours(after - DAY_MS),
        "{from}"
    );
    assert!(
        to == hours(before + HOUR_MS - 1) || to == hours(after + HOUR_MS - 1),
        "{to}"
    );
    assert!(from.ends_with(":00:00.000Z") && to.ends_with(":00:00.000Z"));
    let by_hour = stats["by_hour_of_day"].as_array().expect("by_hour_of_day");
    assert_eq!(by_hour.len(), 24);
    assert_eq!(by_hour.iter().filter_map(Value::as_u64).sum::<u64>(), 1);
    let week = app.stats("default", "range=7d").await;
    assert_eq!(week["total_events"], 2);
}

#[tokio::test]
async fn stats_of_an_empty_tenant_are_zero() {
    let app = spawn_app().await;
    let stats = app.stats("default", "").await;
    assert_eq!(stats["total_events"], 0);
    assert_eq!(stats["total_failed"], 0);
    assert_eq!(stats["failure_rate"], 0.0);
    assert_eq!(stats["refresh_rate"], 0.0);
    assert_eq!(stats["by_hour_of_day"], json!(vec![0; 24]));
}

#[tokio::test]
async fn stats_filter_by_client_id() {
    let app = spawn_app().await;
    let ts = now_ms() - 2 * HOUR_MS;
    app.ingest_ok(&json!([
        {"type": "token.issued", "ts": ts, "client_id": "web", "grant_type": "authorization_code"},
        {"type": "token.issued", "ts": ts, "client_id": "web", "grant_type": "refresh_token"},
        {"type": "token.pkce_failed", "ts": ts, "client_id": "web"},
        {"type": "token.issued", "ts": ts, "client_id": "svc", "grant_type": "client_credentials"},
        {"type": "token.refreshed", "ts": ts, "client_id": "svc"},
        {"type": "join.access", "ts": ts}
    ]))
    .await;
    let web = app.stats("default", "client_id=web").await;
    assert_eq!(web["total_events"], 3);
    assert_eq!(web["total_issued"], 2);
    assert_eq!(
        web["issued_by_grant_type"],
        json!({"authorization_code": 1, "refresh_token": 1})
    );
    assert_eq!(web["total_failed"], 1);
    assert_eq!(web["total_refreshed"], 0);
    let svc = app.stats("default", "client_id=svc").await;
    assert_eq!(svc["total_events"], 2);
    assert_eq!(
        svc["issued_by_grant_type"],
        json!({"client_credentials": 1})
    );
    assert_eq!(svc["total_refreshed"], 1);
    assert_eq!(svc["refresh_rate"], 1.0);
    let nobody = app.stats("default", "client_id=nobody").await;
    assert_eq!(nobody["total_events"], 0);
    let all = app.stats("default", "").await;
    assert_eq!(all["total_events"], 6);
    assert_eq!(all["total_issued"], 3);
}

#[tokio::test]
async fn bad_stats_query_parameters_are_400() {
    let app = spawn_app().await;
    let now = now_ms();
    for query in [
        "range=2w".to_owned(),
        "range=1y".to_owned(),
        "from=yesterday".to_owned(),
        "to=later".to_owned(),
        format!("from={now}&to={}", now - HOUR_MS),
    ] {
        let reply = app
            .get(
                &format!("/api/v1/tenants/default/stats?{query}"),
                app.owner(),
            )
            .await;
        assert_error_status(&reply, 400);
        assert!(
            reply.json["error"]["message"].is_string(),
            "{query}: {}",
            reply.json
        );
    }
    for range in ["1h", "24h", "7d", "30d", "90d"] {
        app.stats("default", &format!("range={range}")).await;
    }
}

#[tokio::test]
async fn odd_bodies_are_refused_without_a_server_error() {
    let app = spawn_app().await;
    let deep_array = format!("{}{}", "[".repeat(5000), "]".repeat(5000));
    let deep_context = format!(
        r#"{{"type":"a.b","context":{}1{}}}"#,
        r#"{"k":"#.repeat(300),
        "}".repeat(300)
    );
    let bodies: Vec<Vec<u8>> = vec![
        b"null".to_vec(),
        b"true".to_vec(),
        b"\"a string\"".to_vec(),
        b"42".to_vec(),
        b"[null]".to_vec(),
        b"[[]]".to_vec(),
        b"[]".to_vec(),
        b"{}".to_vec(),
        deep_array.into_bytes(),
        deep_context.into_bytes(),
        br#"{"type":"a.b","status":1e400}"#.to_vec(),
        br#"{"type":"a.b","ts":18446744073709551616}"#.to_vec(),
        br#"{"type":"a\u0000b"}"#.to_vec(),
        vec![b'{', 0xff, 0xfe, b'}'],
        b"{\"type\":\"a.b\",\"user_id\":\"\xc3\x28\"}".to_vec(),
    ];
    for body in bodies {
        let reply = app
            .post(EVENTS, app.ingest(), Some("application/json"), body.clone())
            .await;
        assert!(
            (400..500).contains(&reply.status) && reply.json["error"]["code"].is_string(),
            "{:?} answered {} {}",
            String::from_utf8_lossy(&body),
            reply.status,
            reply.json
        );
    }
    assert_eq!(store_view(&app).await.0, 0);
    assert_eq!(app.get("/healthz", None).await.status, 200);
}

#[tokio::test]
async fn the_largest_integer_ts_is_refused_not_a_panic() {
    let app = spawn_app().await;
    // u64::MAX: a window check written as `ts + 7 days < now` overflows on it.
    for ts in [u64::MAX, u64::MAX - 1000, u64::MAX / 2] {
        reject_field(&app, "ts", json!(ts)).await;
    }
    assert_eq!(app.get("/healthz", None).await.status, 200);
}

#[tokio::test]
async fn an_absurd_expires_at_is_refused_or_read_back_as_rfc3339() {
    let app = spawn_app().await;
    for at in [json!(u64::MAX), json!(253_402_300_800_000u64)] {
        let event = json!({"type": "token.issued", "token": "t", "expires_at": at});
        let reply = app.ingest_json(&event.to_string()).await;
        if reply.status == 400 {
            assert_invalid_field(&reply, "expires_at");
            continue;
        }
        assert_eq!(reply.status, 200, "{}", reply.json);
        let seq = reply.json["ids"][0].as_u64().expect("seq");
        let stored = app.event(seq).await;
        let text = stored["expires_at"].as_str().unwrap_or_default();
        // Responses carry times as RFC 3339 UTC with milliseconds.
        assert!(
            text.len() == 24 && text.ends_with('Z') && text.as_bytes()[10] == b'T',
            "expires_at {at} was accepted and is read back as {:?}",
            stored["expires_at"]
        );
    }
}

/// Asks stats and events for `query`: each must answer 400, or 200 with nothing in it (no
/// event lies there) and, for stats, `from`/`to` as RFC 3339 times.
async fn assert_empty_or_refused(app: &TestApp, query: &str) {
    for endpoint in ["stats", "events"] {
        let reply = app
            .get(
                &format!("/api/v1/tenants/default/{endpoint}?{query}"),
                app.owner(),
            )
            .await;
        assert!(
            reply.status == 200 || reply.status == 400,
            "{endpoint}?{query} answered {} {}",
            reply.status,
            reply.json
        );
        if reply.status != 200 {
            continue;
        }
        if endpoint == "events" {
            assert_eq!(reply.json["events"], json!([]), "{endpoint}?{query}");
            continue;
        }
        assert_eq!(
            reply.json["total_events"], 0,
            "stats?{query} counted an event that is not in the range: {}",
            reply.json
        );
        for bound in ["from", "to"] {
            let text = reply.json[bound].as_str().unwrap_or_default();
            assert!(
                text.len() == 24 && text.ends_with('Z'),
                "stats?{query}: `{bound}` is not an RFC 3339 time: {}",
                reply.json[bound]
            );
        }
    }
    assert_eq!(app.get("/healthz", None).await.status, 200);
}

#[tokio::test]
async fn query_times_near_the_integer_limit_are_answered_without_a_crash() {
    let app = spawn_app().await;
    app.ingest_ok(&json!({"type": "a.b"})).await;
    let max = u64::MAX;
    assert_empty_or_refused(&app, &format!("from={}&to={max}", max - 1000)).await;
    assert_empty_or_refused(&app, &format!("to={max}")).await;
    assert_empty_or_refused(&app, &format!("from={max}")).await;
}

#[tokio::test]
async fn query_times_beyond_year_9999_are_refused_or_echoed_as_rfc3339() {
    let app = spawn_app().await;
    app.ingest_ok(&json!({"type": "a.b"})).await;
    let far = 300_000_000_000_000u64; // year 11476
    assert_empty_or_refused(&app, &format!("from={far}&to={}", far + HOUR_MS)).await;
    assert_empty_or_refused(&app, "from=9999-12-31T23:00:00Z&to=9999-12-31T23:59:59Z").await;
}

#[tokio::test]
async fn stats_far_in_the_future_do_not_wrap_onto_todays_hours() {
    let app = spawn_app().await;
    app.ingest_ok(&json!({"type": "a.b"})).await;
    // 2^32 hours after the event's hour: a 32-bit hour bucket wraps onto it.
    let alias = (now_ms() / HOUR_MS + (1u64 << 32)) * HOUR_MS;
    assert_empty_or_refused(&app, &format!("from={alias}&to={}", alias + HOUR_MS)).await;
    assert_empty_or_refused(&app, &format!("from=0&to={HOUR_MS}")).await;
}
