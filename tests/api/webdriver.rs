//! A small W3C WebDriver client for the browser test: it starts `chromedriver` on a free
//! loopback port, opens one headless Chromium session and speaks the WebDriver protocol
//! to it over HTTP/1.1, one connection per command (as `support` does with the server).
//!
//! Every command has a timeout, so a wedged browser fails the test instead of hanging it;
//! waits for navigation are bounded polls. Dropping the [`Browser`] ends the session and
//! kills chromedriver's whole process group (chromedriver and its Chromium), also when
//! the test panics.

use std::net::{SocketAddr, TcpListener as StdListener, TcpStream as StdStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{CONTENT_TYPE, HOST};
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tempfile::TempDir;
use tokio::net::TcpStream;

/// Where Debian's `chromium` and `chromium-driver` packages put the two programs.
pub const CHROMIUM: &str = "/usr/bin/chromium";
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// The longest one WebDriver command may take (starting a session takes a few seconds).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);
/// The longest a wait for a page (load, navigation after a click) may take.
pub const PAGE_TIMEOUT: Duration = Duration::from_secs(10);
/// The key under which W3C WebDriver names an element reference.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A reference to an element of the current page.
#[derive(Debug, Clone)]
pub struct Element(String);

/// One entry of the browser's console log (`level` is e.g. `SEVERE`, `WARNING`, `INFO`).
#[derive(Debug, Clone)]
pub struct LogEntry {
    pub level: String,
    pub message: String,
}

/// A running chromedriver with one headless Chromium session.
pub struct Browser {
    addr: SocketAddr,
    session: String,
    driver: Child,
    _profile: TempDir,
}

/// Whether both programs are installed.
pub fn installed() -> bool {
    Path::new(CHROMIUM).exists() && Path::new(CHROMEDRIVER).exists()
}

impl Browser {
    /// Starts chromedriver on a free port, waits until it is ready and opens a session
    /// with a fresh profile, browser console logging on and no background networking.
    pub async fn start() -> Result<Browser> {
        let port = StdListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .context("finding a free port")?
            .port();
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let profile = tempfile::tempdir().context("a temporary Chromium profile")?;
        let driver = {
            use std::os::unix::process::CommandExt;
            Command::new(CHROMEDRIVER)
                .arg(format!("--port={port}"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                // Its own process group, so Drop can kill chromedriver and Chromium at once.
                .process_group(0)
                .spawn()
                .with_context(|| format!("starting {CHROMEDRIVER}"))?
        };
        // From here on, Drop cleans up whatever happens.
        let mut browser = Browser {
            addr,
            session: String::new(),
            driver,
            _profile: profile,
        };
        let deadline = tokio::time::Instant::now() + PAGE_TIMEOUT;
        loop {
            match browser.raw(Method::GET, "/status", None).await {
                Ok(status) if status["ready"] == true => break,
                _ if tokio::time::Instant::now() >= deadline => {
                    bail!("chromedriver was not ready on {addr} within {PAGE_TIMEOUT:?}")
                }
                _ => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
        let profile_dir = browser._profile.path().display().to_string();
        let capabilities = json!({
            "capabilities": {"alwaysMatch": {
                "browserName": "chrome",
                "pageLoadStrategy": "normal",
                "timeouts": {"pageLoad": PAGE_TIMEOUT.as_millis() as u64,
                             "script": PAGE_TIMEOUT.as_millis() as u64,
                             "implicit": 0},
                "goog:loggingPrefs": {"browser": "ALL"},
                "goog:chromeOptions": {
                    "binary": CHROMIUM,
                    "args": [
                        "--headless=new", "--no-sandbox", "--disable-gpu",
                        "--disable-dev-shm-usage", "--disable-quic", "--no-first-run",
                        "--disable-background-networking", "--disable-component-update",
                        "--disable-sync", format!("--user-data-dir={profile_dir}"),
                    ],
                },
            }}
        });
        let created = browser
            .raw(Method::POST, "/session", Some(capabilities))
            .await
            .context("creating a WebDriver session")?;
        browser.session = created["sessionId"]
            .as_str()
            .ok_or_else(|| anyhow!("a new session without an id: {created}"))?
            .to_owned();
        Ok(browser)
    }

    /// Opens `url` and waits (up to the page-load timeout) until it has loaded.
    pub async fn goto(&self, url: &str) -> Result<()> {
        self.cmd(Method::POST, "/url", json!({ "url": url }))
            .await
            .with_context(|| format!("navigating to {url}"))?;
        Ok(())
    }

    /// The current page's URL.
    pub async fn url(&self) -> Result<String> {
        let url = self.cmd(Method::GET, "/url", Value::Null).await?;
        url.as_str()
            .map(str::to_owned)
            .ok_or_else(|| anyhow!("a URL that is not a string: {url}"))
    }

    /// The first element matching the CSS `selector`.
    pub async fn find(&self, selector: &str) -> Result<Element> {
        let found = self
            .cmd(Method::POST, "/element", by_css(selector))
            .await
            .with_context(|| format!("finding {selector}"))?;
        element(&found)
    }

    /// Every element matching the CSS `selector` (none is not an error).
    pub async fn find_all(&self, selector: &str) -> Result<Vec<Element>> {
        let found = self
            .cmd(Method::POST, "/elements", by_css(selector))
            .await
            .with_context(|| format!("finding all {selector}"))?;
        elements(&found)
    }

    /// Every element matching `selector` inside `parent`.
    pub async fn find_in(&self, parent: &Element, selector: &str) -> Result<Vec<Element>> {
        let found = self
            .cmd(
                Method::POST,
                &format!("/element/{}/elements", parent.0),
                by_css(selector),
            )
            .await
            .with_context(|| format!("finding {selector} in an element"))?;
        elements(&found)
    }

    /// The rendered text of `el`.
    pub async fn text(&self, el: &Element) -> Result<String> {
        let text = self
            .cmd(Method::GET, &format!("/element/{}/text", el.0), Value::Null)
            .await?;
        Ok(text.as_str().unwrap_or_default().to_owned())
    }

    /// The attribute `name` of `el`, `None` when it has none.
    pub async fn attribute(&self, el: &Element, name: &str) -> Result<Option<String>> {
        let value = self
            .cmd(
                Method::GET,
                &format!("/element/{}/attribute/{name}", el.0),
                Value::Null,
            )
            .await?;
        Ok(value.as_str().map(str::to_owned))
    }

    /// Clicks `el` (for an `<option>`, selects it).
    pub async fn click(&self, el: &Element) -> Result<()> {
        self.cmd(Method::POST, &format!("/element/{}/click", el.0), json!({}))
            .await?;
        Ok(())
    }

    /// Clicks `el`, then waits until a NEW document has replaced the current one and has
    /// loaded (even when its URL is the same, as after a POST that redirects back).
    pub async fn click_and_wait(&self, el: &Element) -> Result<()> {
        self.execute("window.__webdriverOldPage = true; return null;", vec![])
            .await?;
        self.click(el).await?;
        self.wait_for_new_page().await
    }

    /// Polls (up to [`PAGE_TIMEOUT`]) until the page marked by `click_and_wait` is gone
    /// and the new one's `document.readyState` is `complete`.
    async fn wait_for_new_page(&self) -> Result<()> {
        let deadline = tokio::time::Instant::now() + PAGE_TIMEOUT;
        loop {
            let state = self
                .execute(
                    "return [window.__webdriverOldPage === true, document.readyState];",
                    vec![],
                )
                .await;
            let last = match state {
                Ok(state) if state[0] == false && state[1] == "complete" => return Ok(()),
                Ok(state) => state.to_string(),
                // A command can fail while one document replaces another.
                Err(e) => format!("{e:#}"),
            };
            if tokio::time::Instant::now() >= deadline {
                bail!("no new page loaded within {PAGE_TIMEOUT:?} (last: {last})");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Empties the form control `el`.
    pub async fn clear(&self, el: &Element) -> Result<()> {
        self.cmd(Method::POST, &format!("/element/{}/clear", el.0), json!({}))
            .await?;
        Ok(())
    }

    /// Types `text` into `el`.
    pub async fn send_keys(&self, el: &Element, text: &str) -> Result<()> {
        self.cmd(
            Method::POST,
            &format!("/element/{}/value", el.0),
            json!({ "text": text }),
        )
        .await?;
        Ok(())
    }

    /// Runs `script` (a function body; `arguments` are `args`) and returns its result.
    pub async fn execute(&self, script: &str, args: Vec<Value>) -> Result<Value> {
        self.cmd(
            Method::POST,
            "/execute/sync",
            json!({ "script": script, "args": args }),
        )
        .await
    }

    /// The text of an open alert, confirm or prompt dialog, if there is one.
    pub async fn alert_text(&self) -> Result<Option<String>> {
        match self.cmd(Method::GET, "/alert/text", Value::Null).await {
            Ok(text) => Ok(Some(text.as_str().unwrap_or_default().to_owned())),
            Err(e) if format!("{e:#}").contains("no such alert") => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The browser console entries logged since the last call (chromedriver's
    /// `POST /session/{id}/se/log`, which drains its buffer).
    pub async fn browser_logs(&self) -> Result<Vec<LogEntry>> {
        let entries = self
            .cmd(Method::POST, "/se/log", json!({ "type": "browser" }))
            .await
            .context("reading the browser log")?;
        let entries = entries
            .as_array()
            .ok_or_else(|| anyhow!("a log that is not a list: {entries}"))?;
        Ok(entries
            .iter()
            .map(|e| LogEntry {
                level: e["level"].as_str().unwrap_or_default().to_owned(),
                message: e["message"].as_str().unwrap_or_default().to_owned(),
            })
            .collect())
    }

    /// Ends the session (Chromium exits); Drop does it too, best effort.
    pub async fn quit(mut self) -> Result<()> {
        let session = std::mem::take(&mut self.session);
        self.raw(Method::DELETE, &format!("/session/{session}"), None)
            .await?;
        Ok(())
    }

    /// A command of the session: `path` is relative to `/session/{id}`; answers `value`.
    async fn cmd(&self, method: Method, path: &str, body: Value) -> Result<Value> {
        let body = (!body.is_null()).then_some(body);
        self.raw(method, &format!("/session/{}{path}", self.session), body)
            .await
    }

    /// One request to chromedriver within [`COMMAND_TIMEOUT`]; answers the `value` of a
    /// success and turns a WebDriver error into an `Err` with its code and message.
    async fn raw(&self, method: Method, path: &str, body: Option<Value>) -> Result<Value> {
        let what = format!("WebDriver {method} {path}");
        tokio::time::timeout(COMMAND_TIMEOUT, self.exchange(method, path, body))
            .await
            .map_err(|_| anyhow!("{what}: no answer within {COMMAND_TIMEOUT:?}"))?
            .with_context(|| what)
    }

    async fn exchange(&self, method: Method, path: &str, body: Option<Value>) -> Result<Value> {
        let stream = TcpStream::connect(self.addr).await?;
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header(HOST, self.addr.to_string());
        let bytes = match body {
            Some(body) => {
                request = request.header(CONTENT_TYPE, "application/json; charset=utf-8");
                Bytes::from(body.to_string())
            }
            None => Bytes::new(),
        };
        let response = sender.send_request(request.body(Full::new(bytes))?).await?;
        let status = response.status();
        let bytes = response.into_body().collect().await?.to_bytes();
        let answer: Value = serde_json::from_slice(&bytes).with_context(|| {
            format!(
                "{status} with a body that is not JSON: {}",
                String::from_utf8_lossy(&bytes)
            )
        })?;
        let value = answer["value"].clone();
        if !status.is_success() || value["error"].is_string() {
            let code = value["error"].as_str().unwrap_or("?");
            let message = value["message"].as_str().unwrap_or_default();
            // chromedriver's messages usually repeat the code; say it once.
            let message = message.strip_prefix(code).unwrap_or(message);
            let message = message.trim_start_matches(':').trim_start();
            bail!(
                "{status} {code}: {}",
                message.lines().next().unwrap_or_default()
            );
        }
        Ok(value)
    }

    /// A blocking `DELETE /session/{id}` for Drop, where nothing can be awaited.
    fn delete_session_blocking(&self) {
        use std::io::{Read, Write};
        let Ok(mut stream) = StdStream::connect_timeout(&self.addr, Duration::from_secs(2)) else {
            return;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
        let _ = stream.set_write_timeout(Some(Duration::from_secs(2)));
        let request = format!(
            "DELETE /session/{} HTTP/1.1\r\nHost: {}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            self.session, self.addr
        );
        // chromedriver answers once Chromium is gone; the answer's first bytes are enough
        // (it may keep the connection open after them).
        if stream.write_all(request.as_bytes()).is_ok() {
            let _ = stream.read(&mut [0u8; 512]);
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            self.delete_session_blocking();
        }
        // chromedriver leads its own process group: kill it and any Chromium left over.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.driver.id())])
            .stderr(Stdio::null())
            .status();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn by_css(selector: &str) -> Value {
    json!({ "using": "css selector", "value": selector })
}

fn element(found: &Value) -> Result<Element> {
    found[ELEMENT_KEY]
        .as_str()
        .map(|id| Element(id.to_owned()))
        .ok_or_else(|| anyhow!("an element reference without an id: {found}"))
}

fn elements(found: &Value) -> Result<Vec<Element>> {
    found
        .as_array()
        .ok_or_else(|| anyhow!("elements that are not a list: {found}"))?
        .iter()
        .map(element)
        .collect()
}
