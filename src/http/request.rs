//! Reading requests: bearer keys, bounded bodies, query parameters.

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::header::{AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE};
use hyper::Request;

use crate::app::{App, AppError, Principal, TimeSpec};
use crate::ingest::BodyFormat;

/// Largest request body: 8 MiB.
pub const MAX_BODY_BYTES: usize = 8 * 1024 * 1024;

/// The verified caller of a request.
pub async fn principal(request: &Request<Incoming>, app: &App) -> Result<Principal, AppError> {
    let header = request
        .headers()
        .get(AUTHORIZATION)
        .ok_or_else(|| AppError::Unauthorized("send `Authorization: Bearer <key>`".into()))?;
    let key = header
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .ok_or_else(|| {
            AppError::Unauthorized("the Authorization header must be `Bearer <key>`".into())
        })?;
    app.authenticate(key).await
}

/// Reads the whole body, refusing more than [`MAX_BODY_BYTES`] before reading it when the
/// length is declared, and while reading otherwise.
pub async fn body(request: Request<Incoming>) -> Result<Bytes, AppError> {
    let too_large = || AppError::TooLarge(format!("the body exceeds {MAX_BODY_BYTES} bytes"));
    let declared = request
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > MAX_BODY_BYTES as u64) {
        return Err(too_large());
    }
    match Limited::new(request.into_body(), MAX_BODY_BYTES)
        .collect()
        .await
    {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error) if error.is::<http_body_util::LengthLimitError>() => Err(too_large()),
        Err(error) => Err(AppError::invalid(
            "invalid_body",
            format!("the body could not be read: {error}"),
        )),
    }
}

/// How an ingest body is framed, from its content type.
pub fn ingest_format(request: &Request<Incoming>) -> Result<BodyFormat, AppError> {
    let Some(value) = request.headers().get(CONTENT_TYPE) else {
        return Ok(BodyFormat::Json);
    };
    let media = value
        .to_str()
        .unwrap_or_default()
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    match media.as_str() {
        "application/json" => Ok(BodyFormat::Json),
        "application/x-ndjson" | "application/ndjson" => Ok(BodyFormat::Ndjson),
        _ => Err(AppError::UnsupportedMediaType(
            "send application/json or application/x-ndjson".into(),
        )),
    }
}

/// Decoded query parameters, in order. The first of a repeated name wins.
pub struct Query(Vec<(String, String)>);

impl Query {
    pub fn parse(request: &Request<Incoming>) -> Query {
        let raw = request.uri().query().unwrap_or_default();
        Query(
            form_urlencoded::parse(raw.as_bytes())
                .into_owned()
                .collect(),
        )
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    }

    pub fn string(&self, name: &str) -> Option<String> {
        self.get(name).map(str::to_owned)
    }

    /// A non-negative integer parameter.
    pub fn number(&self, name: &str) -> Result<Option<u64>, AppError> {
        self.get(name)
            .map(|v| {
                v.parse::<u64>().map_err(|_| {
                    AppError::field(
                        "invalid_field",
                        name,
                        format!("`{name}` must be an integer"),
                    )
                })
            })
            .transpose()
    }

    /// A time parameter: RFC 3339 or epoch milliseconds.
    pub fn time(&self, name: &str) -> Result<Option<u64>, AppError> {
        self.get(name)
            .map(|v| crate::app::parse_time_param(name, v))
            .transpose()
    }

    /// `from`, `to` and `range`.
    pub fn time_spec(&self) -> Result<TimeSpec, AppError> {
        Ok(TimeSpec {
            from: self.time("from")?,
            to: self.time("to")?,
            range: self.string("range"),
        })
    }
}
