//! Routing: method + path → use case call → JSON answer.

use std::net::SocketAddr;
use std::sync::Arc;

use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use serde::Deserialize;
use serde_json::json;

use super::request::{self, Query};
use super::{error, export, full, json_response, wire, Body};
use crate::app::{App, AppError, EventQuery, SeriesQuery, TopQuery};
use crate::model::time::now_ms;
use crate::model::KeyKind;
use crate::query::StatsFilter;

type Answer = Result<Response<Body>, AppError>;

/// Answers one request. Never panics on any input; every failure is an API error body.
pub async fn route(request: Request<Incoming>, app: &Arc<App>, peer: SocketAddr) -> Response<Body> {
    let path = request.uri().path().to_owned();
    let segments: Vec<&str> = path
        .trim_start_matches('/')
        .trim_end_matches('/')
        .split('/')
        .collect();
    if !matches!(segments.first(), Some(&("api" | "healthz" | "readyz"))) {
        return super::dashboard::route(request, app, peer).await;
    }
    let method = request.method().clone();
    let answer = match (segments.as_slice(), &method) {
        (["healthz"], &Method::GET) => Ok(json_response(StatusCode::OK, &json!({"status": "ok"}))),
        (["readyz"], &Method::GET) => Ok(readyz(app)),
        (["api", "openapi.json"], &Method::GET) => Ok(openapi()),
        (["api", "v1", "events"], &Method::POST) => ingest(request, app).await,
        (["api", "v1", "tenants"], &Method::GET) => list_tenants(request, app).await,
        (["api", "v1", "tenants"], &Method::POST) => create_tenant(request, app).await,
        (["api", "v1", "users"], &Method::GET) => list_users(request, app).await,
        (["api", "v1", "users"], &Method::POST) => create_user(request, app).await,
        (["api", "v1", "tenants", t, "members"], &Method::GET) => {
            list_members(request, app, t).await
        }
        (["api", "v1", "tenants", t, "members"], &Method::POST) => {
            set_member(request, app, t).await
        }
        (["api", "v1", "tenants", t, "keys"], &Method::GET) => list_keys(request, app, t).await,
        (["api", "v1", "tenants", t, "keys"], &Method::POST) => create_key(request, app, t).await,
        (["api", "v1", "tenants", t, "keys", id], &Method::DELETE) => {
            revoke_key(request, app, t, id).await
        }
        (["api", "v1", "tenants", t, "events"], &Method::GET) => list_events(request, app, t).await,
        (["api", "v1", "tenants", t, "events", "export"], &Method::GET) => {
            export::events(request, app, t).await
        }
        (["api", "v1", "tenants", t, "events", seq], &Method::GET) => {
            one_event(request, app, t, seq).await
        }
        (["api", "v1", "tenants", t, "stats"], &Method::GET) => stats(request, app, t).await,
        (["api", "v1", "tenants", t, "top"], &Method::GET) => top(request, app, t).await,
        (["api", "v1", "tenants", t, "tokens"], &Method::GET) => {
            inactive_tokens(request, app, t).await
        }
        (["api", "v1", "tenants", t, "tokens", token], &Method::GET) => {
            token_summary(request, app, t, token).await
        }
        (["api", "v1", "tenants", t, "timeseries"], &Method::GET) => {
            timeseries(request, app, t).await
        }
        (segments, _) if known_path(segments) => {
            return error::simple(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this path does not accept that method",
            )
        }
        _ => Err(AppError::NotFound(format!("no such endpoint: {path}"))),
    };
    answer.unwrap_or_else(|e| error::error_response(&e))
}

fn known_path(segments: &[&str]) -> bool {
    matches!(
        segments,
        ["healthz"]
            | ["readyz"]
            | ["api", "openapi.json"]
            | ["api", "v1", "events"]
            | ["api", "v1", "tenants" | "users"]
            | [
                "api",
                "v1",
                "tenants",
                _,
                "keys" | "events" | "stats" | "members" | "timeseries" | "top" | "tokens"
            ]
            | ["api", "v1", "tenants", _, "keys" | "events" | "tokens", _]
    )
}

/// The served OpenAPI document, embedded at build time.
const OPENAPI: &str = include_str!("openapi.json");

fn openapi() -> Response<Body> {
    let mut response = Response::new(full(bytes::Bytes::from_static(OPENAPI.as_bytes())));
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    response
}

fn readyz(app: &App) -> Response<Body> {
    if app.is_ready() {
        json_response(StatusCode::OK, &json!({"status": "ready"}))
    } else {
        error::simple(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_ready",
            "the store is not writable or the server is shutting down",
        )
    }
}

/// Parses a JSON body into `T`, naming unknown or mistyped fields.
fn json_body<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T, AppError> {
    serde_json::from_slice(bytes).map_err(|e| AppError::invalid("invalid_json", e.to_string()))
}

async fn ingest(request: Request<Incoming>, app: &App) -> Answer {
    let principal = request::principal(&request, app).await?;
    let format = request::ingest_format(&request)?;
    let body = request::body(request).await?;
    let receipt = app.ingest(&principal, &body, format, now_ms()).await?;
    Ok(json_response(StatusCode::OK, &wire::receipt(&receipt)))
}

async fn list_tenants(request: Request<Incoming>, app: &App) -> Answer {
    let principal = request::principal(&request, app).await?;
    let tenants = app.list_tenants(&principal).await?;
    let list: Vec<_> = tenants.iter().map(wire::tenant).collect();
    Ok(json_response(StatusCode::OK, &json!({ "tenants": list })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewTenant {
    slug: String,
    name: Option<String>,
}

async fn create_tenant(request: Request<Incoming>, app: &App) -> Answer {
    let principal = request::principal(&request, app).await?;
    let body: NewTenant = json_body(&request::body(request).await?)?;
    let tenant = app
        .create_tenant(&principal, &body.slug, body.name.as_deref(), now_ms())
        .await?;
    Ok(json_response(StatusCode::CREATED, &wire::tenant(&tenant)))
}

async fn list_keys(request: Request<Incoming>, app: &App, tenant: &str) -> Answer {
    let principal = request::principal(&request, app).await?;
    let keys = app.list_keys(&principal, tenant).await?;
    let list: Vec<_> = keys.iter().map(wire::key).collect();
    Ok(json_response(StatusCode::OK, &json!({ "keys": list })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewKey {
    kind: String,
    #[serde(default)]
    name: String,
    /// Owner only: the user an admin key acts as.
    user: Option<String>,
}

async fn create_key(request: Request<Incoming>, app: &App, tenant: &str) -> Answer {
    let principal = request::principal(&request, app).await?;
    // Authorise before reading the body, so a stranger learns nothing from its errors.
    app.tenant_for(&principal, tenant, crate::model::Role::Admin)
        .await?;
    let body: NewKey = json_body(&request::body(request).await?)?;
    let kind = KeyKind::parse(&body.kind)
        .ok_or_else(|| AppError::field("invalid_field", "kind", "must be ingest or admin"))?;
    let created = app
        .create_key(
            &principal,
            tenant,
            kind,
            &body.name,
            body.user.as_deref(),
            now_ms(),
        )
        .await?;
    let mut value = wire::key(&created.info);
    value["key"] = json!(created.secret);
    Ok(json_response(StatusCode::CREATED, &value))
}

async fn revoke_key(request: Request<Incoming>, app: &App, tenant: &str, id: &str) -> Answer {
    let principal = request::principal(&request, app).await?;
    let id: u64 = id
        .parse()
        .map_err(|_| AppError::NotFound(format!("key {id} not found")))?;
    app.revoke_key(&principal, tenant, id).await?;
    Ok(json_response(StatusCode::OK, &json!({ "revoked": id })))
}

/// The filters shared by `/events` and `/events/export`.
pub(super) fn event_query(q: &Query) -> Result<EventQuery, AppError> {
    EventQuery::from_params(|name| q.get(name))
}

async fn list_events(request: Request<Incoming>, app: &App, tenant: &str) -> Answer {
    let principal = request::principal(&request, app).await?;
    let query = event_query(&Query::parse(&request))?;
    let page = app.list_events(&principal, tenant, query, now_ms()).await?;
    let events: Vec<_> = page.events.iter().map(|e| wire::event(e, tenant)).collect();
    let next = page.next.map(crate::app::encode_cursor);
    Ok(json_response(
        StatusCode::OK,
        &json!({ "events": events, "next_cursor": next }),
    ))
}

async fn one_event(request: Request<Incoming>, app: &App, tenant: &str, seq: &str) -> Answer {
    let principal = request::principal(&request, app).await?;
    let seq: u64 = seq
        .parse()
        .map_err(|_| AppError::NotFound(format!("event {seq} not found")))?;
    let event = app.event(&principal, tenant, seq).await?;
    Ok(json_response(StatusCode::OK, &wire::event(&event, tenant)))
}

async fn stats(request: Request<Incoming>, app: &App, tenant: &str) -> Answer {
    let principal = request::principal(&request, app).await?;
    let q = Query::parse(&request);
    let stats = app
        .stats(
            &principal,
            tenant,
            q.time_spec()?,
            StatsFilter {
                client_id: q.string("client_id"),
                user_id: q.string("user_id"),
            },
            now_ms(),
        )
        .await?;
    Ok(json_response(StatusCode::OK, &wire::stats(&stats)))
}

async fn list_users(request: Request<Incoming>, app: &App) -> Answer {
    let principal = request::principal(&request, app).await?;
    let users = app.list_users(&principal).await?;
    let list: Vec<_> = users.iter().map(wire::user).collect();
    Ok(json_response(StatusCode::OK, &json!({ "users": list })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewUser {
    name: String,
    password: String,
}

async fn create_user(request: Request<Incoming>, app: &App) -> Answer {
    let principal = request::principal(&request, app).await?;
    let body: NewUser = json_body(&request::body(request).await?)?;
    let user = app
        .create_user(&principal, &body.name, &body.password, now_ms())
        .await?;
    Ok(json_response(StatusCode::CREATED, &wire::user(&user)))
}

async fn list_members(request: Request<Incoming>, app: &App, tenant: &str) -> Answer {
    let principal = request::principal(&request, app).await?;
    let members = app.list_members(&principal, tenant).await?;
    let list: Vec<_> = members.iter().map(wire::member).collect();
    Ok(json_response(StatusCode::OK, &json!({ "members": list })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewMember {
    user: String,
    role: String,
}

async fn set_member(request: Request<Incoming>, app: &App, tenant: &str) -> Answer {
    let principal = request::principal(&request, app).await?;
    app.tenant_for(&principal, tenant, crate::model::Role::Admin)
        .await?;
    let body: NewMember = json_body(&request::body(request).await?)?;
    let role = crate::model::Role::parse(&body.role).ok_or_else(|| {
        AppError::field("invalid_field", "role", "must be viewer, editor or admin")
    })?;
    let member = app.set_member(&principal, tenant, &body.user, role).await?;
    Ok(json_response(StatusCode::OK, &wire::member(&member)))
}

async fn timeseries(request: Request<Incoming>, app: &App, tenant: &str) -> Answer {
    let principal = request::principal(&request, app).await?;
    let q = Query::parse(&request);
    let query = SeriesQuery {
        time: q.time_spec()?,
        interval: q.string("interval"),
        group_by: q.string("group_by"),
        types: q.string("types"),
        client_id: q.string("client_id"),
        user_id: q.string("user_id"),
    };
    let (asked, series) = app.timeseries(&principal, tenant, query, now_ms()).await?;
    Ok(json_response(
        StatusCode::OK,
        &wire::timeseries(&asked, &series),
    ))
}

async fn top(request: Request<Incoming>, app: &App, tenant: &str) -> Answer {
    let principal = request::principal(&request, app).await?;
    let q = Query::parse(&request);
    let query = TopQuery {
        time: q.time_spec()?,
        dim: q.string("dim"),
        outcome: q.string("outcome"),
        limit: q.number("limit")?,
    };
    let dim = query.dim.clone().unwrap_or_default();
    let (range, items) = app.top(&principal, tenant, query, now_ms()).await?;
    Ok(json_response(
        StatusCode::OK,
        &wire::top(&dim, range, &items),
    ))
}

async fn token_summary(request: Request<Incoming>, app: &App, tenant: &str, token: &str) -> Answer {
    let principal = request::principal(&request, app).await?;
    let token = percent_encoding::percent_decode_str(token)
        .decode_utf8()
        .map_err(|_| AppError::NotFound("token not found".into()))?
        .into_owned();
    let summary = app
        .token_summary(&principal, tenant, token, now_ms())
        .await?;
    Ok(json_response(
        StatusCode::OK,
        &wire::token_summary(&summary),
    ))
}

async fn inactive_tokens(request: Request<Incoming>, app: &App, tenant: &str) -> Answer {
    let principal = request::principal(&request, app).await?;
    let q = Query::parse(&request);
    let (page, next) = app
        .inactive_tokens(
            &principal,
            tenant,
            q.number("inactive_days")?,
            q.number("limit")?,
            q.string("cursor"),
            now_ms(),
        )
        .await?;
    let tokens: Vec<_> = page.iter().map(|(t, s)| wire::token_state(t, s)).collect();
    Ok(json_response(
        StatusCode::OK,
        &json!({ "tokens": tokens, "next_cursor": next }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every path the OpenAPI document names is routed, so the document cannot drift
    /// into describing endpoints that do not exist.
    #[test]
    fn openapi_paths_are_all_routed() {
        let doc: serde_json::Value = serde_json::from_str(OPENAPI).expect("valid JSON");
        let paths = doc["paths"].as_object().expect("paths");
        assert!(paths.len() >= 10);
        for path in paths.keys() {
            let concrete = path
                .replace("{tenant}", "default")
                .replace("{id}", "1")
                .replace("{seq}", "1")
                .replace("{token}", "t");
            let segments: Vec<&str> = concrete.trim_start_matches('/').split('/').collect();
            assert!(known_path(&segments), "{path} is documented but not routed");
        }
    }
}
