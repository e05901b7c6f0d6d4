//! Operations: health and readiness, routing errors, security headers, restarts and the
//! slow-client defence.

use std::time::Duration;

use gatewatch::http::Limits;
use hyper::Method;
use serde_json::json;

use crate::support::{
    assert_error_status, now_ms, read_some, spawn_app, spawn_app_with, spawn_fresh_app, write_all,
    HOUR_MS,
};

#[tokio::test]
async fn healthz_is_200() {
    let app = spawn_app().await;
    let reply = app.get("/healthz", None).await;
    assert_eq!(reply.status, 200, "{}", reply.json);
}

#[tokio::test]
async fn readyz_is_200_once_the_store_is_open() {
    let app = spawn_app().await;
    let reply = app.get("/readyz", None).await;
    assert_eq!(reply.status, 200, "{}", reply.json);
}

#[tokio::test]
async fn an_unknown_path_is_a_404_json_error() {
    let app = spawn_app().await;
    for path in [
        "/api/v1/nope",
        "/api/v2/events",
        "/api/v1/tenants/default/nope",
        "/api/v1/tenants/default/events/1/2/3",
    ] {
        let reply = app.get(path, app.owner()).await;
        assert_error_status(&reply, 404);
        assert!(
            reply
                .header("content-type")
                .is_some_and(|t| t.starts_with("application/json")),
            "{path}: {:?}",
            reply.header("content-type")
        );
    }
    // Outside /api the dashboard answers: an unknown page is a 404 page, even anonymously.
    let reply = app.get("/nope", None).await;
    assert_eq!(reply.status, 404);
    assert!(reply
        .header("content-type")
        .is_some_and(|t| t.starts_with("text/html")));
}

#[tokio::test]
async fn a_wrong_method_on_a_known_path_is_405() {
    let app = spawn_app().await;
    for (method, path) in [
        (Method::DELETE, "/healthz"),
        (Method::POST, "/readyz"),
        (Method::GET, "/api/v1/events"),
        (Method::PUT, "/api/v1/events"),
        (Method::DELETE, "/api/v1/tenants"),
        (Method::POST, "/api/v1/tenants/default/stats"),
        (Method::DELETE, "/api/v1/tenants/default/events"),
        (Method::PUT, "/api/v1/tenants/default/keys"),
    ] {
        let reply = app
            .request(method.clone(), path, app.owner(), None, Vec::new())
            .await;
        assert_eq!(reply.status, 405, "{method} {path}: {}", reply.json);
        assert!(
            reply.json["error"]["code"].is_string(),
            "{method} {path}: an error body: {}",
            reply.json
        );
    }
}

#[tokio::test]
async fn answers_carry_security_headers() {
    let app = spawn_app().await;
    let answers = [
        app.get("/healthz", None).await,
        app.get("/nope", None).await,
        app.get("/api/v1/tenants", None).await,
        app.get("/api/v1/tenants", app.owner()).await,
        app.ingest_json(r#"{"type":"a.b"}"#).await,
        app.ingest_json("{").await,
    ];
    for reply in answers {
        assert_eq!(
            reply.header("x-content-type-options"),
            Some("nosniff"),
            "status {}: {:?}",
            reply.status,
            reply.headers
        );
        let csp = reply
            .header("content-security-policy")
            .unwrap_or_else(|| panic!("a CSP on status {}: {:?}", reply.status, reply.headers));
        assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    }
}

#[tokio::test]
async fn restart_keeps_every_event_and_the_stats() {
    let app = spawn_app().await;
    let ts = now_ms() - 2 * HOUR_MS;
    app.ingest_ok(&json!([
        {"type": "token.issued", "ts": ts, "client_id": "web", "grant_type": "authorization_code", "token": "t1"},
        {"type": "token.refreshed", "ts": ts + 1, "client_id": "web", "token": "t1"},
        {"type": "token.pkce_failed", "ts": ts + 2, "ip": "::ffff:10.0.0.1"},
        {"type": "captcha.firewall", "ts": ts + 3, "context": {"k": "v"}}
    ]))
    .await;
    let mut ids = app
        .ingest_ok(&json!({"type": "join.access", "id": "once"}))
        .await;
    let created = app.create_tenant("beta").await;
    let stats = app.stats("default", "range=7d").await;
    let events = app.events("default", "range=7d&limit=1000").await;
    assert_eq!(events.len(), 5);

    let app = app.restart().await;

    assert_eq!(app.stats("default", "range=7d").await, stats);
    assert_eq!(app.events("default", "range=7d&limit=1000").await, events);
    for event in &events {
        assert_eq!(&app.event(event["seq"].as_u64().expect("seq")).await, event);
    }
    // Tenants, keys and idempotency keys survive too.
    let tenants = app.get("/api/v1/tenants", app.owner()).await;
    assert!(tenants.json["tenants"]
        .as_array()
        .expect("tenants")
        .contains(&created));
    let again = app
        .ingest_json(r#"{"type":"join.access","id":"once"}"#)
        .await;
    assert_eq!(again.status, 200, "{}", again.json);
    assert_eq!(again.json["duplicates"], 1);
    // New events get seqs after every old one.
    let newest = ids.pop().flatten().expect("seq");
    let next = app.ingest_ok(&json!({"type": "after.restart"})).await;
    assert!(next[0].expect("seq") > newest);
    assert_eq!(app.stats("default", "range=7d").await["total_events"], 6);
}

#[tokio::test]
async fn a_freshly_bootstrapped_server_accepts_its_keys() {
    let app = spawn_fresh_app().await;
    assert!(app.boot.ingest_key.starts_with("gw_ingest_"));
    assert!(app.boot.owner_token.starts_with("gw_admin_"));
    assert!(!app.boot.owner_password.is_empty());
    assert_eq!(app.boot.tenant, "default");
    app.ingest_ok(&json!({"type": "a.b"})).await;
    assert_eq!(app.stats("default", "").await["total_events"], 1);
    let app = app.restart().await;
    assert_eq!(app.stats("default", "").await["total_events"], 1);
}

#[tokio::test]
async fn a_slow_client_is_cut_off_by_the_header_read_timeout() {
    let app = spawn_app_with(Limits {
        header_read_timeout: Duration::from_secs(1),
        ..Limits::default()
    })
    .await;
    let stream = tokio::net::TcpStream::connect(app.addr)
        .await
        .expect("connects");
    // Half a request head, then nothing.
    write_all(
        &stream,
        b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ",
    )
    .await
    .expect("writes");
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        let mut buffer = [0u8; 1024];
        loop {
            match read_some(&stream, &mut buffer).await {
                Ok(0) | Err(_) => return,
                // An error answer (such as 408) before the close is fine.
                Ok(_) => continue,
            }
        }
    })
    .await;
    assert!(
        closed.is_ok(),
        "the connection is still open 5 s after a stalled head (timeout 1 s)"
    );
    // The server still serves everyone else.
    assert_eq!(app.get("/healthz", None).await.status, 200);
}

#[tokio::test]
async fn the_openapi_document_is_served() {
    let app = spawn_app().await;
    let reply = app.get("/api/openapi.json", None).await;
    assert_eq!(reply.status, 200, "{}", reply.json);
    assert!(
        reply.json["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.1")),
        "OpenAPI 3.1: {}",
        reply.json["openapi"]
    );
    let paths = reply.json["paths"].as_object().expect("paths");
    for path in [
        "/api/v1/events",
        "/api/v1/tenants",
        "/api/v1/tenants/{tenant}/keys",
        "/api/v1/tenants/{tenant}/events",
        "/api/v1/tenants/{tenant}/stats",
    ] {
        assert!(paths.contains_key(path), "{path} is documented");
    }
}

#[tokio::test]
async fn a_full_write_queue_answers_503_with_retry_after_and_stores_nothing() {
    let writer = gatewatch::store::WriterConfig {
        queue_capacity: 1,
        enqueue_wait: Duration::from_millis(50),
        ..gatewatch::store::WriterConfig::default()
    };
    let app = crate::support::spawn_app_with_writer(Limits::default(), writer).await;
    // Hold the writer thread inside a write command until released.
    let (started_tx, started_rx) = tokio::sync::oneshot::channel();
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    let store_app = app.app.clone();
    let blocker = tokio::spawn(async move {
        store_app
            .store()
            .write(move |_| {
                let _ = started_tx.send(());
                let _ = release_rx.recv();
                Ok(())
            })
            .await
    });
    started_rx.await.expect("the writer is held");
    // One request fills the single queue slot and waits there.
    let queued_app = app.app.clone();
    let queued = tokio::spawn(async move {
        let event = gatewatch::model::Event::new(
            gatewatch::model::EventType::parse("queued.event").expect("valid"),
            now_ms(),
        );
        queued_app.store().ingest(1, now_ms(), vec![event]).await
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while app.app.store().queue_depth() < 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "the request never queued"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let reply = app.ingest_json(r#"{"type":"refused.event"}"#).await;
    assert_error_status(&reply, 503);
    assert!(reply.header("retry-after").is_some(), "{:?}", reply.headers);

    release_tx.send(()).expect("releases the writer");
    blocker
        .await
        .expect("joins")
        .expect("the held write commits");
    let ids = queued
        .await
        .expect("joins")
        .expect("the queued event is stored");
    assert_eq!(ids.len(), 1);
    let events = app.events("default", "limit=10").await;
    let types: Vec<&str> = events.iter().filter_map(|e| e["type"].as_str()).collect();
    assert_eq!(
        types,
        vec!["queued.event"],
        "the refused event must not be stored"
    );
}
