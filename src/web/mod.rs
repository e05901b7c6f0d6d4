//! The admin dashboard: server-rendered pages (askama templates in `web/templates/`,
//! assets in `web/static/`, all embedded in the binary).
//!
//! `http` turns a browser request into a [`WebRequest`] (path, query, form fields, the
//! session found from its cookie) and a [`WebResponse`] back into HTTP; this module knows
//! neither hyper nor cookies' wire format. Every use case is `app`'s: pages only gather
//! what `app` answers and lay it out. Every state-changing form carries the session's CSRF
//! token and is refused without it.

mod assets;
mod chart;
mod events;
mod format;
mod layout;
mod login;
mod overview;
mod owner;
mod settings;
mod tokens;

use std::net::IpAddr;
use std::sync::Arc;

use crate::app::{App, AppError, Session};

/// GET or POST: the only methods the dashboard answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebMethod {
    Get,
    Post,
}

/// A browser request, as `http` read it.
#[derive(Debug, Clone)]
pub struct WebRequest {
    pub method: WebMethod,
    pub path: String,
    pub query: Vec<(String, String)>,
    /// Decoded `application/x-www-form-urlencoded` fields of a POST.
    pub form: Vec<(String, String)>,
    /// The live session of the request's session cookie, if any.
    pub session: Option<Session>,
    /// The session cookie's secret (to end it on logout).
    pub session_secret: Option<String>,
    /// The login form's CSRF cookie (there is no session yet to hold one).
    pub login_csrf: Option<String>,
    pub ip: Option<IpAddr>,
    pub user_agent: Option<String>,
    /// The `Host` the browser used, for the copy-paste examples of empty pages.
    pub host: Option<String>,
    pub now: u64,
}

impl WebRequest {
    /// A query parameter (the first of a repeated name); empty values count as absent.
    pub fn param(&self, name: &str) -> Option<&str> {
        find(&self.query, name)
    }

    /// A form field; empty values count as absent.
    pub fn field(&self, name: &str) -> Option<&str> {
        find(&self.form, name)
    }
}

fn find<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.is_empty())
}

/// What to do with the session cookie.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionCookie {
    Keep,
    /// Set it to this secret, for this many seconds.
    Set {
        secret: String,
        max_age_s: u64,
    },
    Clear,
}

/// A page, a redirect or an asset, for `http` to send.
#[derive(Debug, Clone)]
pub struct WebResponse {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
    /// `Location` of a redirect (303).
    pub location: Option<String>,
    pub session: SessionCookie,
    /// Sets the login form's CSRF cookie.
    pub login_csrf: Option<String>,
    pub retry_after_s: Option<u32>,
    /// Immutable embedded assets may be cached; pages never are.
    pub cacheable: bool,
}

impl WebResponse {
    fn html(status: u16, body: String) -> WebResponse {
        WebResponse {
            status,
            content_type: "text/html; charset=utf-8",
            body: body.into_bytes(),
            location: None,
            session: SessionCookie::Keep,
            login_csrf: None,
            retry_after_s: None,
            cacheable: false,
        }
    }

    /// A 303 to `location` (after a form, so that reloading does not post it again).
    fn redirect(location: impl Into<String>) -> WebResponse {
        WebResponse {
            location: Some(location.into()),
            ..WebResponse::html(303, String::new())
        }
    }
}

/// Answers one dashboard request. Never panics; failures become error pages.
pub async fn handle(app: &Arc<App>, request: WebRequest) -> WebResponse {
    let path = request.path.clone();
    let segments: Vec<&str> = path
        .trim_start_matches('/')
        .trim_end_matches('/')
        .split('/')
        .collect();
    match (segments.as_slice(), request.method) {
        (["static", name], WebMethod::Get) => return assets::serve(name),
        (["favicon.ico"], WebMethod::Get) => return assets::serve("favicon.svg"),
        (["login"], WebMethod::Get) => return login::page(&request),
        (["login"], WebMethod::Post) => return login::submit(app, &request).await,
        _ => {}
    }
    // Unknown paths are 404 whoever asks: no redirect to a login for a page that is not.
    let Some(page) = Page::of(&segments, request.method) else {
        return error_page(
            request.session.as_ref(),
            &AppError::NotFound(format!("no page at {path}")),
        );
    };
    let Some(session) = request.session.clone() else {
        return match request.method {
            WebMethod::Get => WebResponse::redirect("/login"),
            // A form posted after the session ended: nothing is done.
            WebMethod::Post => error_page(
                None,
                &AppError::Unauthorized("your session has ended; log in again".into()),
            ),
        };
    };
    if request.method == WebMethod::Post && !csrf_ok(&session, &request) {
        return error_page(
            Some(&session),
            &AppError::Forbidden(
                "this form has expired or did not come from this dashboard; reload the page and try again"
                    .into(),
            ),
        );
    }
    let (app, s, r) = (app, &session, &request);
    let answer = match page {
        Page::Home => home(app, s).await,
        Page::Logout => Ok(login::logout(app, r).await),
        Page::Owner => owner::page(app, s, r, None).await,
        Page::CreateTenant => owner::create_tenant(app, s, r).await,
        Page::CreateUser => owner::create_user(app, s, r).await,
        Page::Overview(t) => overview::page(app, s, r, t).await,
        Page::Events(t) => events::list(app, s, r, t).await,
        Page::Event(t, seq) => events::detail(app, s, r, t, seq).await,
        Page::Tokens(t) => tokens::page(app, s, r, t).await,
        Page::Settings(t) => settings::page(app, s, r, t, None).await,
        Page::CreateKey(t) => settings::create_key(app, s, r, t).await,
        Page::RevokeKey(t, id) => settings::revoke_key(app, s, r, t, id).await,
        Page::SetMember(t) => settings::set_member(app, s, r, t).await,
    };
    answer.unwrap_or_else(|error| error_page(Some(&session), &error))
}

/// The pages that need a session, by path and method.
enum Page<'a> {
    Home,
    Logout,
    Owner,
    CreateTenant,
    CreateUser,
    Overview(&'a str),
    Events(&'a str),
    Event(&'a str, &'a str),
    Tokens(&'a str),
    Settings(&'a str),
    CreateKey(&'a str),
    RevokeKey(&'a str, &'a str),
    SetMember(&'a str),
}

impl<'a> Page<'a> {
    fn of(segments: &[&'a str], method: WebMethod) -> Option<Page<'a>> {
        use WebMethod::{Get, Post};
        Some(match (segments, method) {
            ([""], Get) => Page::Home,
            (["logout"], Post) => Page::Logout,
            (["admin"], Get) => Page::Owner,
            (["admin", "tenants"], Post) => Page::CreateTenant,
            (["admin", "users"], Post) => Page::CreateUser,
            (["t", t], Get) => Page::Overview(t),
            (["t", t, "events"], Get) => Page::Events(t),
            (["t", t, "events", seq], Get) => Page::Event(t, seq),
            (["t", t, "tokens"], Get) => Page::Tokens(t),
            (["t", t, "settings"], Get) => Page::Settings(t),
            (["t", t, "settings", "keys"], Post) => Page::CreateKey(t),
            (["t", t, "settings", "keys", id, "revoke"], Post) => Page::RevokeKey(t, id),
            (["t", t, "settings", "members"], Post) => Page::SetMember(t),
            _ => return None,
        })
    }
}

/// Where a logged-in user starts: their first tenant, else the owner's page.
async fn home(app: &App, session: &Session) -> Result<WebResponse, AppError> {
    let tenants = app.list_tenants(&session.principal()).await?;
    let first = tenants
        .iter()
        .find(|t| t.slug != crate::app::SYSTEM_TENANT)
        .or(tenants.first());
    match first {
        Some(t) => Ok(WebResponse::redirect(format!("/t/{}", t.slug))),
        None if session.owner => Ok(WebResponse::redirect("/admin")),
        None => Err(AppError::NotFound(
            "you are not a member of any tenant yet; ask an admin to add you".into(),
        )),
    }
}

/// Whether a POST carries its session's CSRF token (compared in constant time).
fn csrf_ok(session: &Session, request: &WebRequest) -> bool {
    request
        .field("csrf")
        .is_some_and(|sent| crate::app::secrets::constant_time_eq(sent, &session.csrf))
}

/// A 405 page: the dashboard answers GET and POST only.
pub fn method_not_allowed() -> WebResponse {
    plain_error(405, "Not allowed", "this page answers GET and POST only")
}

/// An error page about the request itself, before any session is looked at.
pub fn plain_error(status: u16, title: &str, message: &str) -> WebResponse {
    layout::render_error(None, status, title, message)
}

/// An error as a page with the status it deserves (also `http`'s, for the export).
pub fn error_page(session: Option<&Session>, error: &AppError) -> WebResponse {
    let (status, title) = match error {
        AppError::Invalid { .. } => (400, "That did not work"),
        AppError::Unauthorized(_) => (401, "Please log in"),
        AppError::Forbidden(_) => (403, "Not allowed"),
        AppError::NotFound(_) => (404, "Not found"),
        AppError::Conflict { .. } => (409, "Already exists"),
        AppError::Throttled { .. } => (429, "Slow down"),
        AppError::Unavailable { .. } => (503, "Busy"),
        _ => (500, "Something went wrong"),
    };
    let message = match error {
        AppError::Internal(detail) => {
            tracing::error!(%detail, "internal error on a dashboard page");
            "an internal error occurred; it has been logged".to_owned()
        }
        other => other.to_string(),
    };
    let mut response = layout::render_error(session, status, title, &message);
    if let AppError::Throttled { retry_after_s, .. } | AppError::Unavailable { retry_after_s, .. } =
        error
    {
        response.retry_after_s = Some(*retry_after_s);
    }
    response
}

#[cfg(test)]
mod tests;
