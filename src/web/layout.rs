//! What every logged-in page shares: the header (user, tenant switcher, sections, logout)
//! and turning a template into a response.

use askama::Template;

use super::WebResponse;
use crate::app::{App, AppError, Session, SYSTEM_TENANT};
use crate::model::Role;
use crate::store::TenantInfo;

/// A tenant in the switcher.
#[derive(Debug, Clone)]
pub struct TenantLink {
    pub slug: String,
    pub name: String,
    pub current: bool,
}

/// The page header's data.
#[derive(Debug, Clone)]
pub struct Chrome {
    pub user: String,
    pub owner: bool,
    pub csrf: String,
    pub tenants: Vec<TenantLink>,
    /// The tenant the page is about, if any.
    pub tenant: Option<TenantInfo>,
    /// The caller's role in that tenant (admin for the owner).
    pub role: Role,
    /// Which section is open: `overview`, `events`, `tokens`, `settings` or `admin`.
    pub section: &'static str,
}

impl Chrome {
    /// The header of a page about tenant `slug`; a tenant the caller may not see is not
    /// found (404), as in the API.
    pub async fn for_tenant(
        app: &App,
        session: &Session,
        slug: &str,
        section: &'static str,
    ) -> Result<Chrome, AppError> {
        let principal = session.principal();
        let (tenant, role) = app.tenant_access(&principal, slug).await?;
        let mut chrome = Chrome::bare(app, session, section).await?;
        for link in &mut chrome.tenants {
            link.current = link.slug == tenant.slug;
        }
        chrome.tenant = Some(tenant);
        chrome.role = role;
        Ok(chrome)
    }

    /// The header of a page about no tenant (the owner's page, errors).
    pub async fn bare(
        app: &App,
        session: &Session,
        section: &'static str,
    ) -> Result<Chrome, AppError> {
        let mut tenants: Vec<TenantLink> = app
            .list_tenants(&session.principal())
            .await?
            .into_iter()
            .map(|t| TenantLink {
                slug: t.slug,
                name: t.name,
                current: false,
            })
            .collect();
        // gatewatch's own tenant goes last: it is about the dashboard, not an app.
        tenants.sort_by_key(|t| t.slug == SYSTEM_TENANT);
        Ok(Chrome {
            user: session.name.clone(),
            owner: session.owner,
            csrf: session.csrf.clone(),
            tenants,
            tenant: None,
            role: Role::Viewer,
            section,
        })
    }

    /// A header for error pages, built without asking the store (which may be the problem).
    fn minimal(session: &Session) -> Chrome {
        Chrome {
            user: session.name.clone(),
            owner: session.owner,
            csrf: session.csrf.clone(),
            tenants: Vec::new(),
            tenant: None,
            role: Role::Viewer,
            section: "",
        }
    }

    /// The tenant's slug (empty on pages about no tenant).
    pub fn slug(&self) -> &str {
        self.tenant.as_ref().map_or("", |t| t.slug.as_str())
    }

    pub fn tenant_name(&self) -> &str {
        self.tenant.as_ref().map_or("", |t| t.name.as_str())
    }

    /// Admins (and the owner) see the settings' write controls.
    pub fn is_admin(&self) -> bool {
        self.role >= Role::Admin
    }

    pub fn role_name(&self) -> &'static str {
        self.role.as_str()
    }
}

/// Renders `template` as a page with `status`.
pub fn render(status: u16, template: &impl Template) -> Result<WebResponse, AppError> {
    let html = template
        .render()
        .map_err(|e| AppError::Internal(format!("rendering a page: {e}")))?;
    Ok(WebResponse::html(status, html))
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    chrome: Option<Chrome>,
    status: u16,
    title: &'a str,
    message: &'a str,
}

/// An error page. Rendering it cannot depend on the store, so it takes no `App`.
pub fn render_error(
    session: Option<&Session>,
    status: u16,
    title: &str,
    message: &str,
) -> WebResponse {
    let page = ErrorPage {
        chrome: session.map(Chrome::minimal),
        status,
        title,
        message,
    };
    render(status, &page).unwrap_or_else(|_| {
        // Only reachable if the error template itself fails; say it in plain text.
        WebResponse {
            content_type: "text/plain; charset=utf-8",
            ..WebResponse::html(status, format!("{status} {title}: {message}"))
        }
    })
}
