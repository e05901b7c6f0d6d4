//! `/t/{tenant}/settings` (tenant admins): API keys — create (the secret shown once), list
//! by prefix, revoke — and members with their roles. Viewers and editors get no page: the
//! use cases refuse them, whatever a form says.

use std::sync::Arc;

use askama::Template;

use super::format;
use super::layout::{render, Chrome};
use super::{WebRequest, WebResponse};
use crate::app::{App, AppError, Session};
use crate::model::{KeyKind, Role};

pub struct KeyRow {
    pub id: u64,
    pub kind: &'static str,
    pub name: String,
    pub prefix: String,
    pub created_at: String,
}

pub struct MemberRow {
    pub name: String,
    pub role: &'static str,
}

/// A key just made: shown on the answer page, never again.
pub struct NewKey {
    pub kind: &'static str,
    pub name: String,
    pub secret: String,
}

#[derive(Template)]
#[template(path = "settings.html")]
struct SettingsPage {
    chrome: Chrome,
    keys: Vec<KeyRow>,
    members: Vec<MemberRow>,
    created: Option<NewKey>,
    curl: String,
    roles: [&'static str; 3],
}

/// How to send a first event, for empty states: the endpoint as the browser reached it.
pub fn curl_example(host: &str) -> String {
    format!(
        "curl -X POST http://{host}/api/v1/events \\\n  -H 'Authorization: Bearer gw_ingest_…' \\\n  -H 'Content-Type: application/json' \\\n  -d '{{\"type\":\"token.issued\",\"grant_type\":\"authorization_code\",\"client_id\":\"web\",\"user_id\":\"u1\"}}'"
    )
}

pub async fn page(
    app: &Arc<App>,
    session: &Session,
    request: &WebRequest,
    slug: &str,
    created: Option<NewKey>,
) -> Result<WebResponse, AppError> {
    let chrome = Chrome::for_tenant(app, session, slug, "settings").await?;
    let principal = session.principal();
    let keys = app
        .list_keys(&principal, slug)
        .await?
        .into_iter()
        .map(|k| KeyRow {
            id: k.id,
            kind: if k.ingest { "ingest" } else { "admin" },
            name: k.name,
            prefix: k.prefix,
            created_at: format::time(k.created_at),
        })
        .collect();
    let members = app
        .list_members(&principal, slug)
        .await?
        .into_iter()
        .map(|m| MemberRow {
            name: m.name,
            role: m.role.as_str(),
        })
        .collect();
    let status = if created.is_some() { 201 } else { 200 };
    render(
        status,
        &SettingsPage {
            chrome,
            keys,
            members,
            created,
            curl: curl_example(request.host.as_deref().unwrap_or("127.0.0.1:8080")),
            roles: ["viewer", "editor", "admin"],
        },
    )
}

/// `POST …/settings/keys`: makes a key and answers with the page showing its secret (not a
/// redirect: the secret must not travel in a URL or survive a reload).
pub async fn create_key(
    app: &Arc<App>,
    session: &Session,
    request: &WebRequest,
    slug: &str,
) -> Result<WebResponse, AppError> {
    // Authorise before reading the form, so a stranger learns nothing from its errors.
    app.tenant_for(&session.principal(), slug, Role::Admin)
        .await?;
    let kind = request
        .field("kind")
        .and_then(KeyKind::parse)
        .ok_or_else(|| AppError::field("invalid_field", "kind", "must be ingest or admin"))?;
    let name = request.field("name").unwrap_or_default().trim().to_owned();
    let made = app
        .create_key(&session.principal(), slug, kind, &name, None, request.now)
        .await?;
    let created = NewKey {
        kind: kind.as_str(),
        name: made.info.name.clone(),
        secret: made.secret,
    };
    page(app, session, request, slug, Some(created)).await
}

/// `POST …/settings/keys/{id}/revoke`.
pub async fn revoke_key(
    app: &Arc<App>,
    session: &Session,
    _request: &WebRequest,
    slug: &str,
    id: &str,
) -> Result<WebResponse, AppError> {
    let id: u64 = id
        .parse()
        .map_err(|_| AppError::NotFound(format!("key {id} not found")))?;
    app.revoke_key(&session.principal(), slug, id).await?;
    Ok(WebResponse::redirect(format!("/t/{slug}/settings")))
}

/// `POST …/settings/members`: gives a user a role here (replacing any they had).
pub async fn set_member(
    app: &Arc<App>,
    session: &Session,
    request: &WebRequest,
    slug: &str,
) -> Result<WebResponse, AppError> {
    app.tenant_for(&session.principal(), slug, Role::Admin)
        .await?;
    let role = request.field("role").and_then(Role::parse).ok_or_else(|| {
        AppError::field("invalid_field", "role", "must be viewer, editor or admin")
    })?;
    let user = request
        .field("user")
        .ok_or_else(|| AppError::field("invalid_field", "user", "name the user"))?;
    app.set_member(&session.principal(), slug, user, role)
        .await?;
    Ok(WebResponse::redirect(format!("/t/{slug}/settings")))
}
