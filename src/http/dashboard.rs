//! The dashboard over HTTP: reads cookies and forms into a [`WebRequest`], asks `web` for
//! the page, and writes the [`WebResponse`] back with cookies and the pages' security
//! headers. The export of the events explorer streams through `export`, like the API's.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::header::{
    HeaderValue, CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, COOKIE, HOST, LOCATION,
    RETRY_AFTER, SET_COOKIE, USER_AGENT,
};
use hyper::{Method, Request, Response, StatusCode};

use super::request::Query;
use super::{export, full, Body};
use crate::app::App;
use crate::model::time::now_ms;
use crate::web::{self, SessionCookie, WebMethod, WebRequest, WebResponse};

/// The session cookie: an opaque secret whose SHA-256 names the stored session.
const SESSION_COOKIE: &str = "gw_session";
/// The login form's double-submit CSRF cookie.
const LOGIN_CSRF_COOKIE: &str = "gw_login_csrf";
/// Largest form body a dashboard page accepts.
const MAX_FORM_BYTES: usize = 64 * 1024;

/// Pages load only their own stylesheet and images; no script at all, no other origin,
/// forms post only here, and no one may frame them.
const PAGE_CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self'; \
    form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Answers a request for a dashboard page or asset.
pub async fn route(request: Request<Incoming>, app: &Arc<App>, peer: SocketAddr) -> Response<Body> {
    let method = match *request.method() {
        Method::GET | Method::HEAD => WebMethod::Get,
        Method::POST => WebMethod::Post,
        _ => return write(web::method_not_allowed(), app.web_settings().secure_cookies),
    };
    let now = now_ms();
    let cookies = cookies(&request);
    let session_secret = cookie(&cookies, SESSION_COOKIE);
    let session = match &session_secret {
        Some(secret) => app.session(secret, now).await.unwrap_or_else(|error| {
            tracing::warn!(%error, "could not look up a dashboard session");
            None
        }),
        None => None,
    };
    let path = request.uri().path().to_owned();
    // The explorer's export streams; it is the one page that is not a rendered answer.
    if method == WebMethod::Get {
        let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
        if let (["t", tenant, "events", "export"], Some(session)) = (segments.as_slice(), &session)
        {
            let query = Query::parse(&request);
            return match export::stream(app, &session.principal(), tenant, &query).await {
                Ok(response) => response,
                Err(error) => write(
                    web::error_page(Some(session), &error),
                    app.web_settings().secure_cookies,
                ),
            };
        }
    }
    let header = |name| {
        request
            .headers()
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
            .map(str::to_owned)
    };
    let query = form_urlencoded::parse(request.uri().query().unwrap_or_default().as_bytes())
        .into_owned()
        .collect();
    let user_agent = header(USER_AGENT);
    let host = header(HOST);
    let login_csrf = cookie(&cookies, LOGIN_CSRF_COOKIE);
    let form = if method == WebMethod::Post {
        match form(request).await {
            Ok(fields) => fields,
            Err(response) => return write(response, app.web_settings().secure_cookies),
        }
    } else {
        Vec::new()
    };
    let web_request = WebRequest {
        method,
        path,
        query,
        form,
        session,
        session_secret,
        login_csrf,
        ip: Some(crate::ingest::canonical_ip(peer.ip())),
        user_agent,
        host,
        now,
    };
    let answer = web::handle(app, web_request).await;
    write(answer, app.web_settings().secure_cookies)
}

/// The `name=value` pairs of the request's `Cookie` headers.
fn cookies(request: &Request<Incoming>) -> Vec<(String, String)> {
    request
        .headers()
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect()
}

fn cookie(cookies: &[(String, String)], name: &str) -> Option<String> {
    cookies
        .iter()
        .find(|(k, v)| k == name && !v.is_empty())
        .map(|(_, v)| v.clone())
}

/// Reads a urlencoded form body (at most [`MAX_FORM_BYTES`]).
async fn form(request: Request<Incoming>) -> Result<Vec<(String, String)>, WebResponse> {
    let media = request
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase());
    if media.as_deref() != Some("application/x-www-form-urlencoded") {
        return Err(web::plain_error(
            415,
            "Unsupported form",
            "dashboard forms are sent as application/x-www-form-urlencoded",
        ));
    }
    let body: Bytes = match Limited::new(request.into_body(), MAX_FORM_BYTES)
        .collect()
        .await
    {
        Ok(collected) => collected.to_bytes(),
        Err(_) => {
            return Err(web::plain_error(
                413,
                "Form too large",
                "the form could not be read or is larger than 64 KiB",
            ))
        }
    };
    Ok(form_urlencoded::parse(&body).into_owned().collect())
}

/// The HTTP response of a dashboard answer.
fn write(answer: WebResponse, secure_cookies: bool) -> Response<Body> {
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = Response::new(full(Bytes::from(answer.body)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(answer.content_type));
    headers.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(PAGE_CSP));
    headers.insert(
        CACHE_CONTROL,
        HeaderValue::from_static(if answer.cacheable {
            "public, max-age=3600"
        } else {
            "no-store"
        }),
    );
    if let Some(location) = answer.location.and_then(|l| HeaderValue::from_str(&l).ok()) {
        headers.insert(LOCATION, location);
    }
    if let Some(seconds) = answer.retry_after_s {
        headers.insert(RETRY_AFTER, HeaderValue::from(seconds));
    }
    let secure = if secure_cookies { "; Secure" } else { "" };
    let session_cookie = match answer.session {
        SessionCookie::Keep => None,
        SessionCookie::Set { secret, max_age_s } => Some(format!(
            "{SESSION_COOKIE}={secret}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age_s}{secure}"
        )),
        SessionCookie::Clear => Some(format!(
            "{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{secure}"
        )),
    };
    let csrf_cookie = answer.login_csrf.map(|token| {
        format!("{LOGIN_CSRF_COOKIE}={token}; Path=/login; HttpOnly; SameSite=Strict; Max-Age=3600{secure}")
    });
    for value in [session_cookie, csrf_cookie].into_iter().flatten() {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.append(SET_COOKIE, value);
        }
    }
    response
}
