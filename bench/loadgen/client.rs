//! One keep-alive HTTP/1.1 connection, driven directly with hyper's client `conn`
//! API over a tokio `TcpStream` (no pool: the benchmark owns its connections).

use std::time::Duration;

use anyhow::{bail, Context};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper::{Method, Request, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// Where requests go: parsed once from `--url`.
#[derive(Debug, Clone)]
pub struct Target {
    /// `host:port` to connect to.
    connect: String,
    /// The `Host` header value.
    host: HeaderValue,
    /// Path prefix of the server (empty, or `/something` without a trailing slash).
    base: String,
    /// `Bearer …`.
    auth: HeaderValue,
}

impl Target {
    /// Parses `http://host[:port][/base]` and the bearer credential.
    pub fn new(url: &str, bearer: &str) -> anyhow::Result<Self> {
        let uri: Uri = url
            .parse()
            .with_context(|| format!("--url {url:?} is not a valid URL"))?;
        match uri.scheme_str() {
            Some("http") => {}
            Some(other) => bail!("--url: scheme {other:?} is not supported (use http://)"),
            None => bail!("--url {url:?} needs a scheme, e.g. http://127.0.0.1:8080"),
        }
        let host = uri
            .host()
            .with_context(|| format!("--url {url:?} has no host"))?;
        let port = uri.port_u16().unwrap_or(80);
        let connect = format!("{host}:{port}");
        let base = uri.path().trim_end_matches('/').to_string();
        let auth = HeaderValue::from_str(&format!("Bearer {bearer}"))
            .context("the key contains characters that cannot go in a header")?;
        Ok(Self {
            host: HeaderValue::from_str(&connect)?,
            connect,
            base,
            auth,
        })
    }

    /// The URL shown in reports.
    pub fn display(&self) -> String {
        format!("http://{}{}", self.connect, self.base)
    }

    /// A request for `path` (which starts with `/`) carrying host and credentials.
    pub fn request(
        &self,
        method: Method,
        path: &str,
        content_type: Option<&HeaderValue>,
        body: Bytes,
    ) -> anyhow::Result<Request<Full<Bytes>>> {
        let mut builder = Request::builder()
            .method(method)
            .uri(format!("{}{}", self.base, path))
            .header(HOST, self.host.clone())
            .header(AUTHORIZATION, self.auth.clone());
        if let Some(ct) = content_type {
            builder = builder.header(CONTENT_TYPE, ct.clone());
        }
        Ok(builder.body(Full::new(body))?)
    }
}

/// How long a request may take, from send to the last byte of the answer, before
/// it counts as failed and its connection is dropped (keeps every run bounded).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// The error of a request that got no complete answer within [`REQUEST_TIMEOUT`].
#[derive(Debug)]
pub struct TimedOut;

impl std::fmt::Display for TimedOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "no answer within {} s", REQUEST_TIMEOUT.as_secs())
    }
}

impl std::error::Error for TimedOut {}

/// An answer, read to its end (so the connection can carry the next request).
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    /// `Retry-After` in seconds, when the server sent one.
    pub retry_after_s: Option<u64>,
    pub body: Bytes,
}

/// A single HTTP/1.1 connection; requests on it are sequential.
pub struct Conn {
    sender: SendRequest<Full<Bytes>>,
}

impl Conn {
    /// Opens a TCP connection (no Nagle delay) and performs the HTTP/1 handshake.
    pub async fn open(target: &Target) -> anyhow::Result<Self> {
        let stream =
            tokio::time::timeout(Duration::from_secs(10), TcpStream::connect(&target.connect))
                .await
                .with_context(|| format!("connecting to {} timed out", target.connect))?
                .with_context(|| format!("cannot connect to {}", target.connect))?;
        stream.set_nodelay(true)?;
        let (sender, connection) = http1::handshake(TokioIo::new(stream)).await?;
        // The connection future does the I/O; its errors surface on `send`.
        tokio::spawn(async move {
            let _ignored = connection.await;
        });
        Ok(Self { sender })
    }

    /// Waits until the connection can take a request; false once it is closed (for
    /// example after an answer with `Connection: close`).
    pub async fn ready(&mut self) -> bool {
        self.sender.ready().await.is_ok()
    }

    /// Sends `req` and reads the whole answer, failing with [`TimedOut`] after
    /// [`REQUEST_TIMEOUT`] (the connection must then be dropped).
    pub async fn send(&mut self, req: Request<Full<Bytes>>) -> anyhow::Result<Answer> {
        match tokio::time::timeout(REQUEST_TIMEOUT, self.exchange(req)).await {
            Ok(answer) => answer,
            Err(_) => Err(TimedOut.into()),
        }
    }

    async fn exchange(&mut self, req: Request<Full<Bytes>>) -> anyhow::Result<Answer> {
        self.sender.ready().await?;
        let resp = self.sender.send_request(req).await?;
        let status = resp.status();
        let retry_after_s = resp
            .headers()
            .get(hyper::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok());
        let body = resp.into_body().collect().await?.to_bytes();
        Ok(Answer {
            status,
            retry_after_s,
            body,
        })
    }
}

/// The first `max` characters of a body, for error reports.
pub fn snippet(body: &[u8], max: usize) -> String {
    let text = String::from_utf8_lossy(body);
    let mut s: String = text.chars().take(max).collect();
    if text.chars().count() > max {
        s.push('…');
    }
    s.replace('\n', " ")
}
