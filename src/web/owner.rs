//! `/admin` (the server owner): every tenant and user, and forms to create them.

use std::sync::Arc;

use askama::Template;

use super::format;
use super::layout::{render, Chrome};
use super::{WebRequest, WebResponse};
use crate::app::{App, AppError, Session};

pub struct TenantRow {
    pub slug: String,
    pub name: String,
    pub created_at: String,
}

pub struct UserRow {
    pub name: String,
    pub owner: bool,
    pub created_at: String,
}

#[derive(Template)]
#[template(path = "owner.html")]
struct OwnerPage {
    chrome: Chrome,
    tenants: Vec<TenantRow>,
    users: Vec<UserRow>,
    notice: Option<String>,
}

fn require_owner(session: &Session) -> Result<(), AppError> {
    if session.owner {
        Ok(())
    } else {
        Err(AppError::Forbidden(
            "only the server owner may open this page".into(),
        ))
    }
}

pub async fn page(
    app: &Arc<App>,
    session: &Session,
    request: &WebRequest,
    notice: Option<String>,
) -> Result<WebResponse, AppError> {
    require_owner(session)?;
    let chrome = Chrome::bare(app, session, "admin").await?;
    let principal = session.principal();
    let tenants = app
        .list_tenants(&principal)
        .await?
        .into_iter()
        .map(|t| TenantRow {
            slug: t.slug,
            name: t.name,
            created_at: format::time(t.created_at),
        })
        .collect();
    let users = app
        .list_users(&principal)
        .await?
        .into_iter()
        .map(|u| UserRow {
            name: u.name,
            owner: u.owner,
            created_at: format::time(u.created_at),
        })
        .collect();
    let notice = notice.or_else(|| request.param("created").map(|c| format!("Created {c}.")));
    render(
        200,
        &OwnerPage {
            chrome,
            tenants,
            users,
            notice,
        },
    )
}

/// `POST /admin/tenants`.
pub async fn create_tenant(
    app: &Arc<App>,
    session: &Session,
    request: &WebRequest,
) -> Result<WebResponse, AppError> {
    require_owner(session)?;
    let slug = request.field("slug").unwrap_or_default();
    let tenant = app
        .create_tenant(
            &session.principal(),
            slug,
            request.field("name"),
            request.now,
        )
        .await?;
    Ok(WebResponse::redirect(format!("/t/{}", tenant.slug)))
}

/// `POST /admin/users`.
pub async fn create_user(
    app: &Arc<App>,
    session: &Session,
    request: &WebRequest,
) -> Result<WebResponse, AppError> {
    require_owner(session)?;
    let user = app
        .create_user(
            &session.principal(),
            request.field("name").unwrap_or_default(),
            request.field("password").unwrap_or_default(),
            request.now,
        )
        .await?;
    Ok(WebResponse::redirect(format!(
        "/admin?{}",
        format::query_string(&[("created", Some(&format!("user {}", user.name)))])
    )))
}
