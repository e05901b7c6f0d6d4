//! Logging in and out. The login form has no session to hold its CSRF token yet, so it
//! uses a double-submit cookie: the form's hidden token must equal the cookie's.

use std::sync::Arc;

use askama::Template;

use super::layout::render;
use super::{SessionCookie, WebRequest, WebResponse};
use crate::app::{secrets, App, AppError, LoginAttempt};

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage<'a> {
    csrf: &'a str,
    username: &'a str,
    error: Option<String>,
}

fn form(status: u16, username: &str, error: Option<String>) -> WebResponse {
    let csrf = match secrets::random_bytes::<24>() {
        Ok(bytes) => secrets::hex(&bytes),
        Err(e) => return super::error_page(None, &e),
    };
    let page = LoginPage {
        csrf: &csrf,
        username,
        error,
    };
    match render(status, &page) {
        Ok(mut response) => {
            response.login_csrf = Some(csrf);
            response
        }
        Err(e) => super::error_page(None, &e),
    }
}

/// `GET /login`: the form (or home, when already logged in).
pub fn page(request: &WebRequest) -> WebResponse {
    if request.session.is_some() {
        return WebResponse::redirect("/");
    }
    form(200, "", None)
}

/// `POST /login`: checks the credentials (throttled) and opens a session.
pub async fn submit(app: &Arc<App>, request: &WebRequest) -> WebResponse {
    let username = request.field("username").unwrap_or_default();
    let csrf_matches = match (request.field("csrf"), request.login_csrf.as_deref()) {
        (Some(sent), Some(cookie)) => secrets::constant_time_eq(sent, cookie),
        _ => false,
    };
    if !csrf_matches {
        return form(
            403,
            username,
            Some("The login form expired; please try again.".into()),
        );
    }
    let attempt = LoginAttempt {
        user: username,
        password: request.field("password").unwrap_or_default(),
        ip: request.ip,
        user_agent: request.user_agent.as_deref(),
    };
    match app.login(attempt, request.now).await {
        Ok(opened) => {
            let ttl_ms = opened.session.expires_at.saturating_sub(request.now);
            WebResponse {
                session: SessionCookie::Set {
                    secret: opened.secret,
                    max_age_s: ttl_ms / 1000,
                },
                ..WebResponse::redirect("/")
            }
        }
        Err(AppError::Unauthorized(message)) => form(401, username, Some(message)),
        Err(AppError::Throttled {
            message,
            retry_after_s,
        }) => {
            let mut response = form(429, username, Some(message));
            response.retry_after_s = Some(retry_after_s);
            response
        }
        Err(other) => super::error_page(None, &other),
    }
}

/// `POST /logout`: ends the session and forgets the cookie.
pub async fn logout(app: &App, request: &WebRequest) -> WebResponse {
    if let Some(secret) = &request.session_secret {
        if let Err(error) = app.logout(secret).await {
            return super::error_page(request.session.as_ref(), &error);
        }
    }
    WebResponse {
        session: SessionCookie::Clear,
        ..WebResponse::redirect("/login")
    }
}
