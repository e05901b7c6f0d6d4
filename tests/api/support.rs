//! The test harness: a real gatewatch server on a loopback port over a temporary store,
//! and a small HTTP/1.1 client that speaks to it one connection per request.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use gatewatch::app::{App, Bootstrap, BootstrapOptions, WebSettings};
use gatewatch::http::Limits;
use gatewatch::store::{Store, WriterConfig};
use http_body_util::{BodyExt, Full};
use hyper::header::{HeaderMap, AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tempfile::TempDir;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Milliseconds in an hour and a day.
pub const HOUR_MS: u64 = 3_600_000;
pub const DAY_MS: u64 = 24 * HOUR_MS;

/// The longest any single request of the suite may take before the test fails loudly.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// A running server over its own temporary data directory.
pub struct TestApp {
    pub addr: SocketAddr,
    pub app: Arc<App>,
    /// The secrets of the bootstrap: owner token, first ingest key, owner password, tenant.
    pub boot: Bootstrap,
    pub limits: Limits,
    dir: TempDir,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<()>>,
}

/// One HTTP answer: status, headers and the body parsed as JSON (`Null` when the body is
/// empty or not JSON; the raw bytes are kept in `body`).
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub json: Value,
    pub body: Bytes,
}

impl Reply {
    /// A header as text, if present and ASCII.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The body as text (lossy UTF-8).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The whole `Set-Cookie` header that sets cookie `name` (`name=value; Path=…`), if any.
    pub fn set_cookie(&self, name: &str) -> Option<&str> {
        self.headers
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|v| {
                v.split_once('=')
                    .is_some_and(|(cookie, _)| cookie.trim() == name)
            })
    }

    /// The value `Set-Cookie` gives cookie `name` (possibly empty, when it clears it).
    pub fn cookie_value(&self, name: &str) -> Option<&str> {
        let line = self.set_cookie(name)?;
        let (_, rest) = line.split_once('=')?;
        Some(rest.split(';').next().unwrap_or_default().trim())
    }
}

/// Epoch milliseconds now, by the test's clock.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_millis() as u64
}

/// Formats epoch ms as the API does: `2026-11-23T10:00:00.123Z` (UTC, milliseconds).
/// Written independently of the server's formatter (Hinnant's civil-from-days).
pub fn rfc3339(ms: u64) -> String {
    let secs = ms / 1000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (h, m, s) = (rem / 3600, rem % 3600 / 60, rem % 60);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}.{:03}Z",
        ms % 1000
    )
}

/// Starts a server with the default limits over a freshly bootstrapped store.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(Limits::default()).await
}

/// Starts a server with `limits` over a freshly bootstrapped store of its own.
///
/// Bootstrapping hashes the owner's password with argon2, which takes about half a second
/// in a debug build. So the suite bootstraps ONE store per process, through the real
/// `App::bootstrap`, keeps a copy of its database file, and gives every test its own copy
/// in its own directory: each test still has its own store, writer and server, and the
/// bootstrap secrets (the same in every copy) are valid in each.
pub async fn spawn_app_with(limits: Limits) -> TestApp {
    spawn_app_with_writer(limits, WriterConfig::default()).await
}

/// Like [`spawn_app_with`], with the writer configured by `writer`.
pub async fn spawn_app_with_writer(limits: Limits, writer: WriterConfig) -> TestApp {
    let (image, boot) = bootstrapped_image();
    let dir = tempfile::tempdir().expect("a temporary directory");
    std::fs::write(dir.path().join(gatewatch::store::DB_FILE), image)
        .expect("copies the bootstrapped store");
    let store = Store::open(dir.path(), writer).expect("the store opens");
    let app = App::new(store).expect("the app starts");
    serve(dir, Arc::new(app), boot.clone(), limits).await
}

/// Like [`spawn_app`], with the dashboard's login settings (session TTL, `Secure` cookies,
/// throttling policy) given by `web`. ([`TestApp::restart`] comes back with the defaults.)
pub async fn spawn_app_with_web(web: WebSettings) -> TestApp {
    let (image, boot) = bootstrapped_image();
    let dir = tempfile::tempdir().expect("a temporary directory");
    std::fs::write(dir.path().join(gatewatch::store::DB_FILE), image)
        .expect("copies the bootstrapped store");
    let store = Store::open(dir.path(), WriterConfig::default()).expect("the store opens");
    let app = App::with_settings(store, web).expect("the app starts");
    serve(dir, Arc::new(app), boot.clone(), Limits::default()).await
}

/// Starts a server over a store bootstrapped right here, exactly as `gatewatch serve`
/// does on an empty data directory (slow: one argon2 hash).
pub async fn spawn_fresh_app() -> TestApp {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = Store::open(dir.path(), WriterConfig::default()).expect("the store opens");
    let app = App::new(store).expect("the app starts");
    let boot = app
        .bootstrap(BootstrapOptions::default(), now_ms())
        .await
        .expect("a fresh store bootstraps");
    serve(dir, Arc::new(app), boot, Limits::default()).await
}

/// The database file of a store bootstrapped once per test process, and its secrets.
fn bootstrapped_image() -> &'static (Vec<u8>, Bootstrap) {
    static IMAGE: OnceLock<(Vec<u8>, Bootstrap)> = OnceLock::new();
    IMAGE.get_or_init(|| {
        // The caller is inside a test's runtime; bootstrap on a runtime of its own.
        std::thread::spawn(|| {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime");
            runtime.block_on(async {
                let dir = tempfile::tempdir().expect("a temporary directory");
                let store =
                    Store::open(dir.path(), WriterConfig::default()).expect("the store opens");
                let app = App::new(store).expect("the app starts");
                let boot = app
                    .bootstrap(BootstrapOptions::default(), now_ms())
                    .await
                    .expect("a fresh store bootstraps");
                app.store().close();
                drop(app);
                let image = std::fs::read(dir.path().join(gatewatch::store::DB_FILE))
                    .expect("reads the bootstrapped store");
                (image, boot)
            })
        })
        .join()
        .expect("bootstrapping the template store succeeds")
    })
}

async fn serve(dir: TempDir, app: Arc<App>, boot: Bootstrap, limits: Limits) -> TestApp {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a loopback port");
    let addr = listener.local_addr().expect("a bound address");
    let (shutdown, stop) = oneshot::channel::<()>();
    let server = tokio::spawn(gatewatch::http::serve(
        listener,
        app.clone(),
        limits.clone(),
        async move {
            let _ = stop.await;
        },
    ));
    TestApp {
        addr,
        app,
        boot,
        limits,
        dir,
        shutdown: Some(shutdown),
        server: Some(server),
    }
}

impl TestApp {
    /// The owner's admin token, as a request credential.
    pub fn owner(&self) -> Option<&str> {
        Some(&self.boot.owner_token)
    }

    /// The first tenant's ingest key, as a request credential.
    pub fn ingest(&self) -> Option<&str> {
        Some(&self.boot.ingest_key)
    }

    /// Shuts the server down as `serve` does (stop accepting, drain, close the store),
    /// reopens the same data directory and serves it again on a new port.
    pub async fn restart(mut self) -> TestApp {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(server) = self.server.take() {
            tokio::time::timeout(Duration::from_secs(30), server)
                .await
                .expect("the server stops within 30 s")
                .expect("the server task ends without panicking");
        }
        self.app.store().close();
        // Connection tasks may still hold a clone for a moment after the drain; the store
        // file can only be reopened once the last one is gone.
        let mut app = self.app;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            match Arc::try_unwrap(app) {
                Ok(unique) => {
                    drop(unique);
                    break;
                }
                Err(shared) => {
                    assert!(
                        tokio::time::Instant::now() < deadline,
                        "the server still holds the App 10 s after shutdown"
                    );
                    app = shared;
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        }
        let store =
            Store::open(self.dir.path(), WriterConfig::default()).expect("the store reopens");
        let app = App::new(store).expect("the app restarts");
        serve(self.dir, Arc::new(app), self.boot, self.limits).await
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Reply {
        self.request(Method::GET, path, token, None, Vec::new())
            .await
    }

    pub async fn delete(&self, path: &str, token: Option<&str>) -> Reply {
        self.request(Method::DELETE, path, token, None, Vec::new())
            .await
    }

    pub async fn post_json(&self, path: &str, token: Option<&str>, body: &str) -> Reply {
        self.post(
            path,
            token,
            Some("application/json"),
            body.as_bytes().to_vec(),
        )
        .await
    }

    pub async fn post(
        &self,
        path: &str,
        token: Option<&str>,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> Reply {
        self.request(Method::POST, path, token, content_type, body)
            .await
    }

    /// Sends one request on a fresh connection and reads the whole answer.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> Reply {
        let mut headers = Vec::new();
        let bearer = token.map(|token| format!("Bearer {token}"));
        if let Some(bearer) = &bearer {
            headers.push((AUTHORIZATION.as_str(), bearer.as_str()));
        }
        if let Some(content_type) = content_type {
            headers.push((CONTENT_TYPE.as_str(), content_type));
        }
        self.request_with(method, path, &headers, body).await
    }

    /// Sends one request with exactly these extra `headers` (besides `Host`), such as
    /// `Cookie` and `Content-Type` for a dashboard form, on a fresh connection.
    pub async fn request_with(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Reply {
        let what = format!("{method} {path}");
        tokio::time::timeout(REQUEST_TIMEOUT, self.exchange(method, path, headers, body))
            .await
            .unwrap_or_else(|_| panic!("{what}: no answer within {REQUEST_TIMEOUT:?}"))
    }

    async fn exchange(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Reply {
        let stream = TcpStream::connect(self.addr)
            .await
            .expect("connects to the server");
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .expect("HTTP/1.1 handshake");
        tokio::spawn(async move {
            let _ = connection.await;
        });
        let mut request = Request::builder()
            .method(method.clone())
            .uri(path)
            .header(HOST, self.addr.to_string());
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request
            .body(Full::new(Bytes::from(body)))
            .expect("a well-formed request");
        let response = sender
            .send_request(request)
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: the request failed: {e}"));
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response
            .into_body()
            .collect()
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: reading the answer failed: {e}"))
            .to_bytes();
        let json = serde_json::from_slice(&body).unwrap_or(Value::Null);
        Reply {
            status,
            headers,
            json,
            body,
        }
    }

    // ---- conveniences over the API ----

    /// POSTs `body` (JSON text) to the ingest endpoint with the first ingest key.
    pub async fn ingest_json(&self, body: &str) -> Reply {
        self.post_json("/api/v1/events", self.ingest(), body).await
    }

    /// Ingests `events` (a JSON value: object or array) and insists on a 200;
    /// returns the receipt's `ids`.
    pub async fn ingest_ok(&self, events: &Value) -> Vec<Option<u64>> {
        let reply = self.ingest_json(&events.to_string()).await;
        assert_eq!(
            reply.status, 200,
            "ingest should succeed; body: {}",
            reply.json
        );
        reply.json["ids"]
            .as_array()
            .unwrap_or_else(|| panic!("a receipt with ids: {}", reply.json))
            .iter()
            .map(Value::as_u64)
            .collect()
    }

    /// Ingests an NDJSON body with the ingest key; insists on a 200.
    pub async fn ingest_ndjson_ok(&self, body: String) {
        let reply = self
            .post(
                "/api/v1/events",
                self.ingest(),
                Some("application/x-ndjson"),
                body.into_bytes(),
            )
            .await;
        assert_eq!(reply.status, 200, "{}", reply.json);
    }

    /// `GET /api/v1/tenants/{tenant}/stats?{query}` as the owner; insists on a 200.
    pub async fn stats(&self, tenant: &str, query: &str) -> Value {
        let reply = self
            .get(
                &format!("/api/v1/tenants/{tenant}/stats?{query}"),
                self.owner(),
            )
            .await;
        assert_eq!(reply.status, 200, "stats: {}", reply.json);
        reply.json
    }

    /// `GET /api/v1/tenants/{tenant}/events?{query}` as the owner; insists on a 200 and
    /// returns the whole answer (`events`, `next_cursor`).
    pub async fn events_page(&self, tenant: &str, query: &str) -> Value {
        let reply = self
            .get(
                &format!("/api/v1/tenants/{tenant}/events?{query}"),
                self.owner(),
            )
            .await;
        assert_eq!(reply.status, 200, "events: {}", reply.json);
        reply.json
    }

    /// The events of one page, as a list.
    pub async fn events(&self, tenant: &str, query: &str) -> Vec<Value> {
        self.events_page(tenant, query).await["events"]
            .as_array()
            .expect("an events array")
            .clone()
    }

    /// `GET /api/v1/tenants/default/events/{seq}` as the owner; insists on a 200.
    pub async fn event(&self, seq: u64) -> Value {
        let reply = self
            .get(
                &format!("/api/v1/tenants/default/events/{seq}"),
                self.owner(),
            )
            .await;
        assert_eq!(reply.status, 200, "event {seq}: {}", reply.json);
        reply.json
    }

    /// Creates a tenant as the owner; insists on a 201.
    pub async fn create_tenant(&self, slug: &str) -> Value {
        let body = json!({ "slug": slug, "name": format!("Tenant {slug}") }).to_string();
        let reply = self.post_json("/api/v1/tenants", self.owner(), &body).await;
        assert_eq!(reply.status, 201, "create tenant {slug}: {}", reply.json);
        reply.json
    }

    /// Creates a key of `kind` in `tenant` as the owner; insists on a 201; returns the
    /// whole answer (`id`, `key`, …).
    pub async fn create_key(&self, tenant: &str, kind: &str, name: &str) -> Value {
        let body = json!({ "kind": kind, "name": name }).to_string();
        let reply = self
            .post_json(
                &format!("/api/v1/tenants/{tenant}/keys"),
                self.owner(),
                &body,
            )
            .await;
        assert_eq!(reply.status, 201, "create key in {tenant}: {}", reply.json);
        reply.json
    }
}

/// Checks that `reply` is the API's error body with `status` and `code`.
#[track_caller]
pub fn assert_error(reply: &Reply, status: u16, code: &str) {
    assert_eq!(
        reply.status, status,
        "expected {status} {code}; got {} with {}",
        reply.status, reply.json
    );
    let error = &reply.json["error"];
    assert!(
        error.is_object(),
        "an error body {{\"error\": {{…}}}}; got {}",
        String::from_utf8_lossy(&reply.body)
    );
    assert_eq!(error["code"], code, "error code; body: {}", reply.json);
    assert!(
        error["message"].as_str().is_some_and(|m| !m.is_empty()),
        "a human message; body: {}",
        reply.json
    );
    assert!(
        reply
            .header("content-type")
            .is_some_and(|t| t.starts_with("application/json")),
        "errors are JSON; content-type: {:?}",
        reply.header("content-type")
    );
}

/// Checks a status with the API's error body, whatever its code.
#[track_caller]
pub fn assert_error_status(reply: &Reply, status: u16) {
    assert_eq!(
        reply.status, status,
        "expected {status}; got {} with {}",
        reply.status, reply.json
    );
    assert!(
        reply.json["error"]["code"].as_str().is_some(),
        "an error body with a code; got {}",
        String::from_utf8_lossy(&reply.body)
    );
}

/// Checks a 400 `invalid_field` naming `field`.
#[track_caller]
pub fn assert_invalid_field(reply: &Reply, field: &str) {
    assert_error(reply, 400, "invalid_field");
    assert_eq!(
        reply.json["error"]["field"], field,
        "the field at fault; body: {}",
        reply.json
    );
}

/// Writes `bytes` on a raw connection and reads the answer's status and body (up to the
/// declared length), without sending anything more. For requests a normal client would
/// not send, such as a declared body it never transmits.
pub async fn raw_request(addr: SocketAddr, bytes: &[u8]) -> (u16, Value) {
    tokio::time::timeout(REQUEST_TIMEOUT, async {
        let stream = TcpStream::connect(addr).await.expect("connects");
        write_all(&stream, bytes).await.expect("writes the head");
        let mut buffer = Vec::new();
        let mut chunk = [0u8; 4096];
        let head_end = loop {
            let n = read_some(&stream, &mut chunk)
                .await
                .expect("reads the answer");
            assert!(n > 0, "the server closed without answering");
            buffer.extend_from_slice(&chunk[..n]);
            if let Some(pos) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                break pos + 4;
            }
        };
        let head = String::from_utf8_lossy(&buffer[..head_end]).to_string();
        let status: u16 = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("a status line: {head}"));
        let length: usize = head
            .lines()
            .find_map(|line| {
                let (name, value) = line.split_once(':')?;
                name.eq_ignore_ascii_case("content-length")
                    .then(|| value.trim().parse().ok())?
            })
            .unwrap_or(0);
        while buffer.len() < head_end + length {
            let n = read_some(&stream, &mut chunk)
                .await
                .expect("reads the body");
            if n == 0 {
                break;
            }
            buffer.extend_from_slice(&chunk[..n]);
        }
        let body = &buffer[head_end..buffer.len().min(head_end + length)];
        (status, serde_json::from_slice(body).unwrap_or(Value::Null))
    })
    .await
    .expect("a raw answer within the request timeout")
}

/// Writes all of `bytes` (tokio's `io-util` extension traits are not enabled here).
pub async fn write_all(stream: &TcpStream, mut bytes: &[u8]) -> std::io::Result<()> {
    while !bytes.is_empty() {
        stream.writable().await?;
        match stream.try_write(bytes) {
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Reads what is available (at least one byte), or 0 at end of stream.
pub async fn read_some(stream: &TcpStream, buffer: &mut [u8]) -> std::io::Result<usize> {
    loop {
        stream.readable().await?;
        match stream.try_read(buffer) {
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        }
    }
}
