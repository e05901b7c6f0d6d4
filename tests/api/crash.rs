//! Crash safety: SIGKILL the real server binary repeatedly while clients ingest; after each
//! restart every event that got a 200 is stored, and counters equal a recount of the log.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

const BIN: &str = env!("CARGO_BIN_EXE_gatewatch");

/// One request that may fail (the server may be dead): `Err` instead of a panic.
async fn try_call(
    addr: SocketAddr,
    method: Method,
    path: &str,
    token: &str,
    body: Option<String>,
) -> Result<(u16, Value), String> {
    let stream = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(connection);
    let request = Request::builder()
        .method(method)
        .uri(path)
        .header(HOST, addr.to_string())
        .header(AUTHORIZATION, format!("Bearer {token}"))
        .header(CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body.unwrap_or_default())))
        .map_err(|e| e.to_string())?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok((status, serde_json::from_slice(&body).unwrap_or(Value::Null)))
}

/// Starts `gatewatch serve` on an ephemeral port and waits for its "listening" line.
async fn start_server(data: &Path) -> (Child, SocketAddr) {
    let mut child = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(data)
        .env("GATEWATCH_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("the server starts");
    let stdout = child.stdout.take().expect("piped stdout");
    let mut lines = BufReader::new(stdout).lines();
    let addr = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.expect("reads stdout") {
            if let Some(url) = line.strip_prefix("gatewatch listening on http://") {
                return url.parse::<SocketAddr>().expect("an address");
            }
        }
        panic!("the server exited before listening");
    })
    .await
    .expect("the server listens within 30 s");
    // Keep draining stdout so the server never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, addr)
}

/// Every `id` stored in the default tenant, paging through the whole log.
async fn stored_ids(addr: SocketAddr, owner: &str) -> HashSet<String> {
    let mut ids = HashSet::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = "/api/v1/tenants/default/events?range=24h&limit=1000".to_owned();
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let (status, page) = try_call(addr, Method::GET, &path, owner, None)
            .await
            .expect("lists events");
        assert_eq!(status, 200, "{page}");
        for event in page["events"].as_array().expect("events") {
            if let Some(id) = event["id"].as_str() {
                ids.insert(id.to_owned());
            }
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return ids,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_ingest_loses_no_acknowledged_event() {
    let dir = tempfile::tempdir().expect("temp dir");
    let init = std::process::Command::new(BIN)
        .args(["init", "--json", "--data"])
        .arg(dir.path())
        .output()
        .expect("init runs");
    assert!(init.status.success(), "init failed: {init:?}");
    let secrets: Value = serde_json::from_slice(&init.stdout).expect("init prints JSON");
    let ingest = secrets["ingest_key"]
        .as_str()
        .expect("ingest key")
        .to_owned();
    let owner = secrets["owner_token"]
        .as_str()
        .expect("owner token")
        .to_owned();

    let acknowledged = Arc::new(Mutex::new(Vec::<String>::new()));
    for round in 0..4u64 {
        let (mut child, addr) = start_server(dir.path()).await;
        let stop = Arc::new(AtomicBool::new(false));
        let mut clients = Vec::new();
        for client in 0..4u64 {
            let (stop, acked, key) = (stop.clone(), acknowledged.clone(), ingest.clone());
            clients.push(tokio::spawn(async move {
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let size = 1 + (n % 7) as usize;
                    let ids: Vec<String> = (0..size)
                        .map(|i| format!("r{round}-c{client}-n{n}-{i}"))
                        .collect();
                    let batch: Vec<Value> = ids
                        .iter()
                        .map(|id| json!({"type": "token.issued", "id": id, "token": format!("t{}", n % 13), "client_id": "web", "grant_type": "authorization_code"}))
                        .collect();
                    n += 1;
                    let body = Value::Array(batch).to_string();
                    match try_call(addr, Method::POST, "/api/v1/events", &key, Some(body)).await {
                        Ok((200, _)) => acked.lock().expect("lock").extend(ids),
                        Ok((status, body)) => panic!("unexpected {status}: {body}"),
                        Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
                    }
                }
            }));
        }
        tokio::time::sleep(Duration::from_millis(300 + 150 * round)).await;
        child.start_kill().expect("SIGKILL");
        child.wait().await.expect("the server dies");
        stop.store(true, Ordering::Relaxed);
        for c in clients {
            c.await.expect("client task");
        }
    }

    let (mut child, addr) = start_server(dir.path()).await;
    let acked: Vec<String> = acknowledged.lock().expect("lock").clone();
    assert!(
        acked.len() > 100,
        "the clients got too few acknowledgements: {}",
        acked.len()
    );
    let stored = stored_ids(addr, &owner).await;
    let lost: Vec<&String> = acked.iter().filter(|id| !stored.contains(*id)).collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged events lost, e.g. {:?}",
        lost.len(),
        &lost[..lost.len().min(5)]
    );

    // SIGTERM: a clean exit 0.
    let pid = child.id().expect("running").to_string();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill runs");
    assert!(status.success());
    let exit = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("exits after SIGTERM")
        .expect("waits");
    assert!(exit.success(), "SIGTERM must exit 0, got {exit:?}");

    let verify = std::process::Command::new(BIN)
        .args(["verify", "--data"])
        .arg(dir.path())
        .output()
        .expect("verify runs");
    assert!(
        verify.status.success(),
        "counters differ from a recount: {}",
        String::from_utf8_lossy(&verify.stdout)
    );
}
