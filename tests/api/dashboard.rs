//! The dashboard over real HTTP, without a browser: the login form and its CSRF cookie,
//! sessions (cookie attributes, expiry, logout, `Secure`), login throttling and its record
//! in the `system` tenant, the CSRF token of every form, roles (a viewer reads and never
//! writes), the wall between tenants, HTML escaping, the explorer's export, filters and
//! paging, assets and error pages. `browser.rs` drives the same pages in a real browser;
//! this file checks what a browser would not show: statuses, headers, cookies and what a
//! refused form did NOT change.

use std::time::Duration;

use gatewatch::app::{ThrottlePolicy, WebSettings};
use hyper::Method;
use serde_json::{json, Value};

use crate::support::{now_ms, spawn_app, spawn_app_with_web, Reply, TestApp};

/// The session cookie and the login form's double-submit cookie.
const SESSION: &str = "gw_session";
const LOGIN_CSRF: &str = "gw_login_csrf";
const FORM: &str = "application/x-www-form-urlencoded";

/// The viewer of these tests.
const VERA: &str = "vera";
const VERA_PASSWORD: &str = "vera's long password";

// ---- helpers ----

/// A urlencoded form body.
fn form(fields: &[(&str, &str)]) -> Vec<u8> {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(fields)
        .finish()
        .into_bytes()
}

/// The value of the first hidden `csrf` input of a page.
#[track_caller]
fn hidden_csrf(html: &str) -> String {
    let marker = r#"name="csrf" value=""#;
    let start = html
        .find(marker)
        .unwrap_or_else(|| panic!("a hidden csrf input in the page:\n{html}"))
        + marker.len();
    let end = html[start..].find('"').expect("the csrf value ends") + start;
    let csrf = html[start..end].to_owned();
    assert!(!csrf.is_empty(), "the csrf input has a value");
    csrf
}

/// The attributes of a `Set-Cookie` line after `name=value`, lower-cased and trimmed.
fn cookie_attributes(line: &str) -> Vec<String> {
    line.split(';')
        .skip(1)
        .map(|a| a.trim().to_ascii_lowercase())
        .collect()
}

/// Decodes HTML character references (named `&amp; &lt; &gt; &quot; &apos;` and numeric
/// ones, which is how askama escapes): the text a browser would show.
fn unescape(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut rest = html;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        let decoded = rest.find(';').filter(|end| *end <= 10).and_then(|end| {
            let name = &rest[1..end];
            let c = match name {
                "amp" => Some('&'),
                "lt" => Some('<'),
                "gt" => Some('>'),
                "quot" => Some('"'),
                "apos" => Some('\''),
                _ => name
                    .strip_prefix("#x")
                    .or_else(|| name.strip_prefix("#X"))
                    .map(|hex| u32::from_str_radix(hex, 16))
                    .or_else(|| name.strip_prefix('#').map(str::parse::<u32>))
                    .and_then(Result::ok)
                    .and_then(char::from_u32),
            }?;
            Some((c, end + 1))
        });
        match decoded {
            Some((c, len)) => {
                out.push(c);
                rest = &rest[len..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Checks that `raw` (text with markup characters) is shown as text: absent from the
/// page's source, present in the text the page's character references decode to.
#[track_caller]
fn assert_escaped(html: &str, raw: &str, what: &str) {
    assert!(
        !html.contains(raw),
        "{what}: {raw:?} appears unescaped:\n{html}"
    );
    assert!(
        unescape(html).contains(raw),
        "{what}: {raw:?} is shown (escaped):\n{html}"
    );
}

/// The `data-seq` of every event row of a page, in order.
fn row_seqs(html: &str) -> Vec<u64> {
    html.split(r#"<tr data-seq=""#)
        .skip(1)
        .map(|rest| {
            rest.split('"')
                .next()
                .and_then(|seq| seq.parse().ok())
                .unwrap_or_else(|| panic!("a numeric data-seq: {rest:.40}"))
        })
        .collect()
}

/// The `href` of the element with `id`, unescaped, if the page has it.
fn href_of(html: &str, id: &str) -> Option<String> {
    let marker = format!(r#"id="{id}" href=""#);
    let start = html.find(&marker)? + marker.len();
    let end = html[start..].find('"')? + start;
    Some(unescape(&html[start..end]))
}

/// What every dashboard response must carry: a CSP without inline code or other origins
/// that forbids framing, `nosniff` and a referrer policy.
#[track_caller]
fn assert_page_headers(reply: &Reply) {
    let csp = reply
        .header("content-security-policy")
        .unwrap_or_else(|| panic!("a Content-Security-Policy; headers: {:?}", reply.headers));
    assert!(!csp.contains("'unsafe-inline'"), "no inline code: {csp}");
    assert!(!csp.contains("'unsafe-eval'"), "no eval: {csp}");
    assert!(
        !csp.contains("http:") && !csp.contains("https:") && !csp.contains('*'),
        "no other origin: {csp}"
    );
    assert!(csp.contains("frame-ancestors 'none'"), "no framing: {csp}");
    assert_eq!(reply.header("x-content-type-options"), Some("nosniff"));
    assert!(
        reply
            .header("referrer-policy")
            .is_some_and(|p| !p.is_empty()),
        "a Referrer-Policy; headers: {:?}",
        reply.headers
    );
}

/// A page: `status`, HTML, and the pages' headers.
#[track_caller]
fn assert_html(reply: &Reply, status: u16) {
    assert_eq!(
        reply.status,
        status,
        "expected a {status} page; body: {}",
        reply.text()
    );
    assert!(
        reply
            .header("content-type")
            .is_some_and(|t| t.starts_with("text/html")),
        "an HTML page; content-type: {:?}",
        reply.header("content-type")
    );
    assert_page_headers(reply);
}

/// A 303 to `location`, with the pages' headers.
#[track_caller]
fn assert_redirect(reply: &Reply, location: &str) {
    assert_eq!(
        reply.status,
        303,
        "expected a 303 to {location}; body: {}",
        reply.text()
    );
    assert_eq!(
        reply.header("location"),
        Some(location),
        "the redirect's target"
    );
    assert_page_headers(reply);
}

/// An answer that opens no session.
#[track_caller]
fn assert_no_session(reply: &Reply) {
    assert!(
        reply.cookie_value(SESSION).is_none_or(str::is_empty),
        "no session cookie; Set-Cookie: {:?}",
        reply.set_cookie(SESSION)
    );
}

/// The login form's CSRF cookie value and its hidden field, from `GET /login`.
async fn login_form(app: &TestApp) -> (String, String) {
    let page = app.get("/login", None).await;
    assert_html(&page, 200);
    let cookie = page
        .cookie_value(LOGIN_CSRF)
        .unwrap_or_else(|| panic!("GET /login sets {LOGIN_CSRF}; headers: {:?}", page.headers))
        .to_owned();
    (cookie, hidden_csrf(&page.text()))
}

/// `POST /login` with the given CSRF cookie and field (either may be left out).
async fn post_login(
    app: &TestApp,
    cookie: Option<&str>,
    csrf: Option<&str>,
    user: &str,
    password: &str,
) -> Reply {
    let mut fields = vec![("username", user), ("password", password)];
    if let Some(csrf) = csrf {
        fields.push(("csrf", csrf));
    }
    let cookie = cookie.map(|c| format!("{LOGIN_CSRF}={c}"));
    let mut headers = vec![("content-type", FORM)];
    if let Some(cookie) = &cookie {
        headers.push(("cookie", cookie.as_str()));
    }
    app.request_with(Method::POST, "/login", &headers, form(&fields))
        .await
}

/// Fills the login form as a browser would (`GET /login`, then `POST /login`).
async fn try_login(app: &TestApp, user: &str, password: &str) -> Reply {
    let (cookie, csrf) = login_form(app).await;
    post_login(app, Some(&cookie), Some(&csrf), user, password).await
}

/// A logged-in browser: its session cookie and the session's CSRF token.
struct Visitor<'a> {
    app: &'a TestApp,
    secret: String,
    csrf: String,
}

impl<'a> Visitor<'a> {
    /// Logs `user` in through the form; insists that it works.
    async fn login(app: &'a TestApp, user: &str, password: &str) -> Visitor<'a> {
        let reply = try_login(app, user, password).await;
        Visitor::opened(app, &reply).await
    }

    /// The session a successful `POST /login` opened. Its CSRF token is read from the
    /// header of the first page (every logged-in page's logout form carries it).
    async fn opened(app: &'a TestApp, login: &Reply) -> Visitor<'a> {
        assert_redirect(login, "/");
        let secret = login
            .cookie_value(SESSION)
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| panic!("a session cookie; headers: {:?}", login.headers))
            .to_owned();
        let mut visitor = Visitor {
            app,
            secret,
            csrf: String::new(),
        };
        let home = visitor.get("/").await;
        assert_eq!(
            home.status,
            303,
            "/ sends a user to a page: {}",
            home.text()
        );
        let first = home.header("location").expect("a Location").to_owned();
        let page = visitor.get(&first).await;
        assert_html(&page, 200);
        visitor.csrf = hidden_csrf(&page.text());
        visitor
    }

    fn cookie(&self) -> String {
        format!("{SESSION}={}", self.secret)
    }

    async fn get(&self, path: &str) -> Reply {
        let cookie = self.cookie();
        self.app
            .request_with(Method::GET, path, &[("cookie", &cookie)], Vec::new())
            .await
    }

    /// POSTs exactly `fields` (no CSRF token added).
    async fn post_raw(&self, path: &str, fields: &[(&str, &str)]) -> Reply {
        let cookie = self.cookie();
        self.app
            .request_with(
                Method::POST,
                path,
                &[("cookie", &cookie), ("content-type", FORM)],
                form(fields),
            )
            .await
    }

    /// POSTs `fields` with the session's CSRF token, as the dashboard's forms do.
    async fn post(&self, path: &str, fields: &[(&str, &str)]) -> Reply {
        let mut all = vec![("csrf", self.csrf.as_str())];
        all.extend_from_slice(fields);
        self.post_raw(path, &all).await
    }
}

/// Logs the bootstrap owner (`admin`) in.
async fn owner(app: &TestApp) -> Visitor<'_> {
    Visitor::login(app, &app.boot.owner, &app.boot.owner_password).await
}

/// `GET` of an owner-only API list; returns the array under `field`.
async fn api_list(app: &TestApp, path: &str, field: &str) -> Vec<Value> {
    let reply = app.get(path, app.owner()).await;
    assert_eq!(reply.status, 200, "GET {path}: {}", reply.json);
    reply.json[field]
        .as_array()
        .unwrap_or_else(|| panic!("GET {path}: a {field} array: {}", reply.json))
        .clone()
}

/// The API keys of `tenant`, as the owner sees them through the API.
async fn keys(app: &TestApp, tenant: &str) -> Vec<Value> {
    api_list(app, &format!("/api/v1/tenants/{tenant}/keys"), "keys").await
}

/// The events of type `kind` in the `system` tenant (dashboard logins).
async fn system_events(app: &TestApp, kind: &str) -> Vec<Value> {
    app.events("system", &format!("type={kind}&limit=1000"))
        .await
}

/// Creates the user `vera` and makes her a viewer of `default` (through the API).
async fn add_viewer(app: &TestApp) {
    let reply = app
        .post_json(
            "/api/v1/users",
            app.owner(),
            &json!({"name": VERA, "password": VERA_PASSWORD}).to_string(),
        )
        .await;
    assert_eq!(reply.status, 201, "create vera: {}", reply.json);
    let reply = app
        .post_json(
            "/api/v1/tenants/default/members",
            app.owner(),
            &json!({"user": VERA, "role": "viewer"}).to_string(),
        )
        .await;
    assert_eq!(reply.status, 200, "vera views default: {}", reply.json);
}

// ---- login ----

#[tokio::test]
async fn logging_in_through_the_form_sets_a_strict_http_only_session_cookie_and_opens_the_tenant() {
    let app = spawn_app().await;

    let page = app.get("/login", None).await;
    assert_html(&page, 200);
    let csrf_line = page
        .set_cookie(LOGIN_CSRF)
        .expect("GET /login sets the CSRF cookie");
    let attributes = cookie_attributes(csrf_line);
    assert!(attributes.iter().any(|a| a == "httponly"), "{csrf_line}");
    assert!(
        attributes.iter().any(|a| a == "samesite=strict"),
        "{csrf_line}"
    );
    let cookie = page.cookie_value(LOGIN_CSRF).expect("a value").to_owned();
    let field = hidden_csrf(&page.text());
    assert!(page
        .text()
        .contains(r#"<form id="login" method="post" action="/login">"#));
    assert_eq!(
        field, cookie,
        "double submit: the form's token is the cookie's"
    );

    let login = post_login(
        &app,
        Some(&cookie),
        Some(&field),
        &app.boot.owner,
        &app.boot.owner_password,
    )
    .await;
    assert_redirect(&login, "/");
    let line = login.set_cookie(SESSION).expect("a session cookie");
    let attributes = cookie_attributes(line);
    for wanted in ["httponly", "samesite=strict", "path=/"] {
        assert!(attributes.iter().any(|a| a == wanted), "{wanted} in {line}");
    }
    assert!(
        !attributes.iter().any(|a| a == "secure"),
        "no Secure by default (plain HTTP on a LAN): {line}"
    );
    assert!(
        attributes.iter().any(|a| a
            .strip_prefix("max-age=")
            .and_then(|s| s.parse::<u64>().ok())
            > Some(0)),
        "a positive Max-Age: {line}"
    );
    let secret = login.cookie_value(SESSION).expect("a value");
    assert!(secret.len() >= 32, "an unguessable secret: {secret}");

    let session = format!("{SESSION}={secret}");
    let home = app
        .request_with(Method::GET, "/", &[("cookie", &session)], Vec::new())
        .await;
    assert_redirect(&home, "/t/default");
    let overview = app
        .request_with(
            Method::GET,
            "/t/default",
            &[("cookie", &session)],
            Vec::new(),
        )
        .await;
    assert_html(&overview, 200);
    assert_eq!(overview.header("cache-control"), Some("no-store"));
    let html = overview.text();
    assert!(html.contains(r#"<form id="logout" method="post" action="/logout">"#));
    assert!(html.contains(&app.boot.owner), "the header names the user");

    // Logged in, the login page sends the user home.
    let again = app
        .request_with(Method::GET, "/login", &[("cookie", &session)], Vec::new())
        .await;
    assert_redirect(&again, "/");
}

#[tokio::test]
async fn a_wrong_password_or_a_login_without_its_csrf_token_opens_no_session() {
    let app = spawn_app().await;
    let owner = app.boot.owner.clone();
    let password = app.boot.owner_password.clone();

    let wrong = try_login(&app, &owner, "not the password").await;
    assert_html(&wrong, 401);
    assert_no_session(&wrong);
    let html = wrong.text();
    assert!(
        html.contains(r#"<form id="login""#),
        "the form again: {html}"
    );
    assert!(
        html.contains(r#"<p class="error" role="alert">wrong user name or password</p>"#),
        "an error message: {html}"
    );
    assert!(
        html.contains(&format!(r#"value="{owner}""#)),
        "the name is kept"
    );

    // Even the right password is refused without the double-submit pair.
    let (cookie, field) = login_form(&app).await;
    let cases = [
        ("neither cookie nor field", None, None),
        ("no cookie", None, Some(field.as_str())),
        ("no field", Some(cookie.as_str()), None),
        (
            "a field that is not the cookie's",
            Some(cookie.as_str()),
            Some("0123abcd"),
        ),
    ];
    for (what, cookie, field) in cases {
        let reply = post_login(&app, cookie, field, &owner, &password).await;
        assert_eq!(reply.status, 403, "{what}: {}", reply.text());
        assert_html(&reply, 403);
        assert_no_session(&reply);
        assert!(
            reply.text().contains(r#"<form id="login""#),
            "{what}: the form again"
        );
    }
    // Those were refused before any password check: nothing was recorded as a failure.
    assert_eq!(system_events(&app, "dashboard.login_failed").await.len(), 1);
    assert!(system_events(&app, "dashboard.login").await.is_empty());
}

// ---- CSRF on forms ----

#[tokio::test]
async fn a_form_without_its_sessions_csrf_token_is_refused_and_changes_nothing() {
    let app = spawn_app().await;
    let owner = owner(&app).await;
    let other_session = Visitor::login(&app, &app.boot.owner, &app.boot.owner_password).await;
    assert_ne!(
        owner.csrf, other_session.csrf,
        "each session has its own token"
    );
    let before = keys(&app, "default").await.len();

    let fields = [("kind", "ingest"), ("name", "x")];
    let missing = owner.post_raw("/t/default/settings/keys", &fields).await;
    assert_html(&missing, 403);
    let empty = owner
        .post_raw(
            "/t/default/settings/keys",
            &[("csrf", ""), fields[0], fields[1]],
        )
        .await;
    assert_html(&empty, 403);
    let wrong = owner
        .post_raw(
            "/t/default/settings/keys",
            &[("csrf", &"0".repeat(48)), fields[0], fields[1]],
        )
        .await;
    assert_html(&wrong, 403);
    let foreign = owner
        .post_raw(
            "/t/default/settings/keys",
            &[("csrf", &other_session.csrf), fields[0], fields[1]],
        )
        .await;
    assert_html(&foreign, 403);
    assert_eq!(
        keys(&app, "default").await.len(),
        before,
        "no refused form made a key"
    );

    let settings = owner.get("/t/default/settings").await;
    assert_html(&settings, 200);
    let csrf = hidden_csrf(&settings.text());
    assert_eq!(
        csrf, owner.csrf,
        "the settings forms carry the session's token"
    );
    let made = owner
        .post_raw(
            "/t/default/settings/keys",
            &[("csrf", &csrf), fields[0], fields[1]],
        )
        .await;
    assert_html(&made, 201);
    let html = made.text();
    let start = html
        .find(r#"<code id="new-key-secret">"#)
        .map(|at| at + r#"<code id="new-key-secret">"#.len())
        .unwrap_or_else(|| panic!("the new secret is shown: {html}"));
    let secret = &html[start..start + html[start..].find('<').expect("</code>")];
    assert!(secret.starts_with("gw_ingest_"), "an ingest key: {secret}");
    assert_eq!(html.matches(secret).count(), 1, "the secret is shown once");
    let after = keys(&app, "default").await;
    assert_eq!(after.len(), before + 1, "the key list grew: {after:?}");
    assert!(after.iter().any(|k| k["name"] == "x"), "{after:?}");

    // The key shown is a working key of the tenant.
    let reply = app
        .post_json(
            "/api/v1/events",
            Some(secret),
            r#"{"type":"token.issued","client_id":"web"}"#,
        )
        .await;
    assert_eq!(reply.status, 200, "the new key ingests: {}", reply.json);
}

// ---- sessions ----

#[tokio::test]
async fn a_session_ends_at_its_ttl_and_its_forms_are_then_refused() {
    // Long enough for a login (one argon2 check: over a second in a debug build while
    // other tests hash too) and the first page; then the test waits it out.
    const TTL_MS: u64 = 5_000;
    let app = spawn_app_with_web(WebSettings {
        session_ttl_ms: TTL_MS,
        ..WebSettings::default()
    })
    .await;
    // The session expires TTL after its login request arrived, so at most TTL after now.
    let started = now_ms();
    let login = try_login(&app, &app.boot.owner, &app.boot.owner_password).await;
    let line = login
        .set_cookie(SESSION)
        .expect("a session cookie")
        .to_owned();
    assert!(
        cookie_attributes(&line).contains(&format!("max-age={}", TTL_MS / 1000)),
        "the cookie lives as long as the session: {line}"
    );
    let owner = Visitor::opened(&app, &login).await;
    assert_html(&owner.get("/t/default").await, 200);
    let before = keys(&app, "default").await.len();

    let expired_at = started + TTL_MS + 200;
    tokio::time::sleep(Duration::from_millis(expired_at.saturating_sub(now_ms()))).await;

    assert_redirect(&owner.get("/t/default").await, "/login");
    let late = owner
        .post(
            "/t/default/settings/keys",
            &[("kind", "ingest"), ("name", "late")],
        )
        .await;
    assert_html(&late, 401);
    assert_no_session(&late);
    assert_eq!(keys(&app, "default").await.len(), before, "nothing changed");
    // With an expired cookie the login page is the form again.
    assert_html(&owner.get("/login").await, 200);
}

#[tokio::test]
async fn logging_out_clears_the_cookie_and_ends_the_session() {
    let app = spawn_app().await;
    let owner = owner(&app).await;

    // Logging out is a form too: without the token the session survives.
    let forged = owner.post_raw("/logout", &[]).await;
    assert_html(&forged, 403);
    assert!(forged.set_cookie(SESSION).is_none(), "the cookie is kept");
    assert_html(&owner.get("/t/default").await, 200);

    let out = owner.post("/logout", &[]).await;
    assert_redirect(&out, "/login");
    let line = out.set_cookie(SESSION).expect("the cookie is cleared");
    assert_eq!(out.cookie_value(SESSION), Some(""), "emptied: {line}");
    let attributes = cookie_attributes(line);
    assert!(attributes.iter().any(|a| a == "max-age=0"), "{line}");
    assert!(attributes.iter().any(|a| a == "path=/"), "{line}");

    // The old cookie, sent anyway, opens nothing.
    assert_redirect(&owner.get("/t/default").await, "/login");
    assert_redirect(&owner.get("/").await, "/login");
    let after = owner
        .post(
            "/t/default/settings/keys",
            &[("kind", "ingest"), ("name", "y")],
        )
        .await;
    assert_html(&after, 401);
}

#[tokio::test]
async fn secure_cookies_are_marked_secure() {
    let app = spawn_app_with_web(WebSettings {
        secure_cookies: true,
        ..WebSettings::default()
    })
    .await;
    let page = app.get("/login", None).await;
    let csrf_line = page.set_cookie(LOGIN_CSRF).expect("the CSRF cookie");
    assert!(
        cookie_attributes(csrf_line).iter().any(|a| a == "secure"),
        "{csrf_line}"
    );

    let login = try_login(&app, &app.boot.owner, &app.boot.owner_password).await;
    let line = login.set_cookie(SESSION).expect("a session cookie");
    let attributes = cookie_attributes(line);
    for wanted in ["secure", "httponly", "samesite=strict", "path=/"] {
        assert!(attributes.iter().any(|a| a == wanted), "{wanted} in {line}");
    }

    let owner = Visitor::opened(&app, &login).await;
    let out = owner.post("/logout", &[]).await;
    let cleared = out.set_cookie(SESSION).expect("the cookie is cleared");
    assert!(
        cookie_attributes(cleared).iter().any(|a| a == "secure"),
        "{cleared}"
    );
}

// ---- login throttling ----

#[tokio::test]
async fn repeated_failed_logins_are_throttled_by_user_and_ip_and_every_attempt_is_recorded() {
    // The default policy (3 free failures, then a delay doubling from 1 s) with a longer
    // first delay: one argon2 check in a debug build on a busy machine can take longer
    // than 1 s, and the test must not depend on how fast the 4th attempt follows the 3rd.
    let policy = ThrottlePolicy {
        base_delay_ms: 60_000,
        ..ThrottlePolicy::default()
    };
    assert_eq!(policy.free_failures, 3, "the policy this test is about");
    let app = spawn_app_with_web(WebSettings {
        throttle: policy,
        ..WebSettings::default()
    })
    .await;
    let owner = app.boot.owner.clone();
    let password = app.boot.owner_password.clone();

    for attempt in 1..=3 {
        let reply = try_login(&app, &owner, "guess").await;
        assert_eq!(
            reply.status,
            401,
            "free failure {attempt}: {}",
            reply.text()
        );
        assert_no_session(&reply);
        assert!(reply.header("retry-after").is_none(), "failure {attempt}");
    }

    // The 4th attempt, even with the right password, is refused before it is checked.
    let throttled = try_login(&app, &owner, &password).await;
    assert_html(&throttled, 429);
    assert_no_session(&throttled);
    let retry: u64 = throttled
        .header("retry-after")
        .and_then(|s| s.parse().ok())
        .expect("a numeric Retry-After");
    assert!((1..=60).contains(&retry), "Retry-After {retry}");
    let html = throttled.text();
    assert!(
        html.contains(r#"<form id="login""#),
        "the form again: {html}"
    );
    assert!(
        html.contains("too many failed logins"),
        "the reason: {html}"
    );

    // The IP key (the test client is always 127.0.0.1) throttles any other name too.
    let sprayed = try_login(&app, "nobody", "guess").await;
    assert_html(&sprayed, 429);
    assert_no_session(&sprayed);

    let failed = system_events(&app, "dashboard.login_failed").await;
    assert_eq!(failed.len(), 3, "three failures recorded: {failed:?}");
    for event in &failed {
        assert_eq!(event["user_id"], owner.as_str(), "{event}");
        assert_eq!(event["ip"], "127.0.0.1", "{event}");
        assert_eq!(event["outcome"], "failure", "{event}");
        assert_eq!(event["route"], "/login", "{event}");
    }
    let refused = system_events(&app, "dashboard.login_throttled").await;
    assert!(!refused.is_empty(), "the throttled attempts are recorded");
    for user in [owner.as_str(), "nobody"] {
        assert!(
            refused.iter().any(|e| e["user_id"] == user),
            "a throttled attempt for {user}: {refused:?}"
        );
    }
    assert!(
        refused.iter().all(|e| e["outcome"] == "rate_limited"),
        "{refused:?}"
    );
    assert!(
        system_events(&app, "dashboard.login").await.is_empty(),
        "the right password was never accepted"
    );
}

#[tokio::test]
async fn a_successful_login_is_recorded_in_the_system_tenant() {
    let app = spawn_app().await;
    let (cookie, csrf) = login_form(&app).await;
    let fields = [
        ("csrf", csrf.as_str()),
        ("username", app.boot.owner.as_str()),
        ("password", app.boot.owner_password.as_str()),
    ];
    let cookie = format!("{LOGIN_CSRF}={cookie}");
    let login = app
        .request_with(
            Method::POST,
            "/login",
            &[
                ("cookie", &cookie),
                ("content-type", FORM),
                ("user-agent", "dashboard-test/1.0"),
            ],
            form(&fields),
        )
        .await;
    assert_redirect(&login, "/");

    let logins = system_events(&app, "dashboard.login").await;
    assert_eq!(logins.len(), 1, "{logins:?}");
    let event = &logins[0];
    assert_eq!(event["user_id"], app.boot.owner.as_str(), "{event}");
    assert_eq!(event["outcome"], "success", "{event}");
    assert_eq!(event["ip"], "127.0.0.1", "{event}");
    assert_eq!(event["user_agent"], "dashboard-test/1.0", "{event}");
    assert!(system_events(&app, "dashboard.login_failed")
        .await
        .is_empty());
}

// ---- roles and tenants ----

#[tokio::test]
async fn a_viewer_reads_the_tenant_but_no_form_of_hers_changes_anything() {
    let app = spawn_app().await;
    add_viewer(&app).await;
    let vera = Visitor::login(&app, VERA, VERA_PASSWORD).await;

    for path in ["/t/default", "/t/default/events", "/t/default/tokens"] {
        assert_html(&vera.get(path).await, 200);
    }
    let overview = vera.get("/t/default").await.text();
    assert!(
        !overview.contains(r#"/t/default/settings""#),
        "no Settings link for a viewer"
    );
    assert!(
        !overview.contains(r#"action="/t/default/settings"#),
        "no settings form for a viewer"
    );

    assert_html(&vera.get("/t/default/settings").await, 403);

    let keys_before = keys(&app, "default").await;
    let made = vera
        .post(
            "/t/default/settings/keys",
            &[("kind", "admin"), ("name", "mine")],
        )
        .await;
    assert_html(&made, 403);
    let key_id = keys_before[0]["id"].to_string();
    let revoke = vera
        .post(&format!("/t/default/settings/keys/{key_id}/revoke"), &[])
        .await;
    assert_html(&revoke, 403);
    assert_eq!(
        keys(&app, "default").await,
        keys_before,
        "no key made or revoked"
    );
    assert_eq!(
        app.ingest_json(r#"{"type":"token.issued"}"#).await.status,
        200,
        "the ingest key still works"
    );

    let promote = vera
        .post(
            "/t/default/settings/members",
            &[("user", VERA), ("role", "admin")],
        )
        .await;
    assert_html(&promote, 403);
    let members = api_list(&app, "/api/v1/tenants/default/members", "members").await;
    assert!(
        members
            .iter()
            .any(|m| m["user"] == VERA && m["role"] == "viewer"),
        "vera is still a viewer: {members:?}"
    );

    assert_html(&vera.get("/admin").await, 403);
    let tenants_before = api_list(&app, "/api/v1/tenants", "tenants").await.len();
    let tenant = vera
        .post("/admin/tenants", &[("slug", "vera-co"), ("name", "Vera")])
        .await;
    assert_html(&tenant, 403);
    assert_eq!(
        api_list(&app, "/api/v1/tenants", "tenants").await.len(),
        tenants_before,
        "no tenant made"
    );
    let users_before = api_list(&app, "/api/v1/users", "users").await.len();
    let user = vera
        .post(
            "/admin/users",
            &[("name", "mallory"), ("password", "mallory's password")],
        )
        .await;
    assert_html(&user, 403);
    assert_eq!(
        api_list(&app, "/api/v1/users", "users").await.len(),
        users_before,
        "no user made"
    );
}

#[tokio::test]
async fn another_tenants_pages_are_not_found_exactly_like_a_tenant_that_does_not_exist() {
    let app = spawn_app().await;
    add_viewer(&app).await;
    app.create_tenant("other").await;
    let seq = app
        .ingest_ok(&json!({"type": "token.issued", "client_id": "web"}))
        .await[0]
        .expect("a new event");
    let other_keys = keys(&app, "other").await;
    let vera = Visitor::login(&app, VERA, VERA_PASSWORD).await;

    for tenant in ["other", "no-such-tenant"] {
        let pages = [
            String::new(),
            "/events".into(),
            "/events/1".into(),
            format!("/events/{seq}"),
            "/tokens".into(),
            "/settings".into(),
            "/events/export?format=csv".into(),
        ];
        for page in pages {
            let path = format!("/t/{tenant}{page}");
            let reply = vera.get(&path).await;
            assert_eq!(reply.status, 404, "GET {path} as vera: {}", reply.text());
            assert_html(&reply, 404);
        }
        for (form, fields) in [
            ("settings/keys", vec![("kind", "ingest"), ("name", "x")]),
            ("settings/members", vec![("user", VERA), ("role", "admin")]),
        ] {
            let path = format!("/t/{tenant}/{form}");
            let reply = vera.post(&path, &fields).await;
            assert_eq!(reply.status, 404, "POST {path} as vera: {}", reply.text());
        }
    }
    assert_eq!(
        keys(&app, "other").await,
        other_keys,
        "no key made in other"
    );
    let members = api_list(&app, "/api/v1/tenants/other/members", "members").await;
    assert!(
        !members.iter().any(|m| m["user"] == VERA),
        "vera did not join other: {members:?}"
    );

    // An event is found only under its own tenant's path, even by the owner.
    let owner = owner(&app).await;
    assert_html(&owner.get(&format!("/t/default/events/{seq}")).await, 200);
    assert_html(&owner.get(&format!("/t/other/events/{seq}")).await, 404);
}

// ---- escaping ----

#[tokio::test]
async fn event_fields_and_tenant_names_are_escaped_in_pages() {
    let app = spawn_app().await;
    let seq = app
        .ingest_ok(&json!({
            "type": "token.issued",
            "user_agent": "<script>alert(1)</script>",
            "route": "/x\"><img src=x onerror=alert(1)>",
            "client_id": "<b>c</b>",
            "user_id": "u&1",
        }))
        .await[0]
        .expect("a new event");
    let reply = app
        .post_json(
            "/api/v1/tenants",
            app.owner(),
            &json!({"slug": "evil", "name": "<i>Evil</i>"}).to_string(),
        )
        .await;
    assert_eq!(reply.status, 201, "create evil: {}", reply.json);
    let owner = owner(&app).await;

    for path in [
        "/t/default/events".to_owned(),
        format!("/t/default/events/{seq}"),
    ] {
        let reply = owner.get(&path).await;
        assert_html(&reply, 200);
        let html = reply.text();
        assert_escaped(&html, "<script>alert(1)</script>", &path);
        assert!(
            !html.contains("<script"),
            "{path}: no script element at all"
        );
        assert_escaped(&html, "/x\"><img src=x onerror=alert(1)>", &path);
        assert!(!html.contains("<img src=x"), "{path}: the route is text");
        assert_escaped(&html, "<b>c</b>", &path);
        assert_escaped(&html, "u&1", &path);
    }

    for path in ["/t/evil", "/t/default"] {
        let html = owner.get(path).await.text();
        assert_escaped(&html, "<i>Evil</i>", path);
    }
}

// ---- the events explorer ----

#[tokio::test]
async fn the_explorer_exports_csv_for_a_session_and_sends_anyone_else_to_login() {
    let app = spawn_app().await;
    let now = now_ms();
    let events: Vec<Value> = (0..3u64)
        .map(|i| json!({"type": "token.issued", "ts": now - i * 1000, "user_id": format!("u{i}")}))
        .collect();
    app.ingest_ok(&Value::Array(events)).await;
    let owner = owner(&app).await;

    let export = owner.get("/t/default/events/export?format=csv").await;
    assert_eq!(export.status, 200, "{}", export.text());
    assert!(
        export
            .header("content-type")
            .is_some_and(|t| t.starts_with("text/csv")),
        "CSV: {:?}",
        export.header("content-type")
    );
    let text = export.text();
    let lines: Vec<&str> = text.lines().filter(|l| !l.is_empty()).collect();
    assert_eq!(lines.len(), 1 + 3, "a header and one row per event: {text}");
    assert!(
        lines[0].contains("type") && lines[0].contains("user_id"),
        "{text}"
    );
    for i in 0..3 {
        assert!(
            lines[1..]
                .iter()
                .any(|l| l.contains("token.issued") && l.contains(&format!("u{i}"))),
            "the row of u{i}: {text}"
        );
    }

    let anonymous = app.get("/t/default/events/export?format=csv", None).await;
    assert_redirect(&anonymous, "/login");
    let stale = app
        .request_with(
            Method::GET,
            "/t/default/events/export?format=csv",
            &[("cookie", "gw_session=not-a-session")],
            Vec::new(),
        )
        .await;
    assert_redirect(&stale, "/login");
}

#[tokio::test]
async fn the_explorer_pages_by_50_and_filters_by_type() {
    let app = spawn_app().await;
    let now = now_ms();
    let events: Vec<Value> = (0..60u64)
        .map(|i| {
            let kind = if i % 4 == 0 {
                "auth.invalid_client"
            } else {
                "token.issued"
            };
            json!({"type": kind, "ts": now - 1000 - i * 1000, "client_id": "web"})
        })
        .collect();
    let ids: Vec<u64> = app
        .ingest_ok(&Value::Array(events))
        .await
        .into_iter()
        .map(|id| id.expect("new events"))
        .collect();
    let owner = owner(&app).await;

    let first = owner.get("/t/default/events").await;
    assert_html(&first, 200);
    let html = first.text();
    let page1 = row_seqs(&html);
    assert_eq!(page1.len(), 50, "a page of 50");
    let next = href_of(&html, "next-page").expect("a link to the next page");
    assert!(next.starts_with("/t/default/events?"), "{next}");
    let second = owner.get(&next).await;
    assert_html(&second, 200);
    let html = second.text();
    let page2 = row_seqs(&html);
    assert_eq!(page2.len(), 10, "the other 10");
    assert!(
        href_of(&html, "next-page").is_none(),
        "no page after the last"
    );
    let mut seen: Vec<u64> = page1.iter().chain(&page2).copied().collect();
    seen.sort_unstable();
    let mut all = ids.clone();
    all.sort_unstable();
    assert_eq!(seen, all, "every event once, over both pages");
    assert!(page1.iter().all(|s| !page2.contains(s)), "no overlap");

    let filtered = owner
        .get("/t/default/events?type=auth.invalid_client")
        .await;
    assert_html(&filtered, 200);
    let html = filtered.text();
    let rows = row_seqs(&html);
    assert_eq!(rows.len(), 15, "only the 15 matching events");
    let table = &html[html.find("<tbody>").expect("a table")..];
    assert_eq!(table.matches("<td>auth.invalid_client</td>").count(), 15);
    assert!(!table.contains("<td>token.issued</td>"), "no other type");
    assert!(href_of(&html, "next-page").is_none());

    let invalid = owner.get("/t/default/events?ip=nope").await;
    assert_html(&invalid, 400);
    let html = invalid.text();
    assert!(
        html.contains(r#"<p class="error" data-status="400">"#),
        "{html}"
    );
    assert!(
        html.contains(r#"data-status="400">not an IP address or CIDR range</p>"#),
        "the message says what is wrong: {html}"
    );
}

// ---- everything else ----

#[tokio::test]
async fn unknown_pages_assets_and_anonymous_visits_answer_as_they_should() {
    let app = spawn_app().await;

    assert_redirect(&app.get("/t/default", None).await, "/login");
    assert_redirect(&app.get("/", None).await, "/login");
    let anonymous_post = app
        .request_with(
            Method::POST,
            "/t/default/settings/keys",
            &[("content-type", FORM)],
            form(&[("kind", "ingest"), ("name", "x")]),
        )
        .await;
    assert_html(&anonymous_post, 401);

    let css = app.get("/static/app.css", None).await;
    assert_eq!(css.status, 200);
    assert!(
        css.header("content-type")
            .is_some_and(|t| t.starts_with("text/css")),
        "{:?}",
        css.header("content-type")
    );
    let caching = css.header("cache-control").expect("a Cache-Control");
    assert!(
        caching.contains("max-age=") && !caching.contains("no-store"),
        "assets are cacheable: {caching}"
    );
    assert!(!css.body.is_empty());
    assert_html(&app.get("/static/nope", None).await, 404);
    let icon = app.get("/favicon.ico", None).await;
    assert_eq!(icon.status, 200);
    assert!(!icon.body.is_empty());

    let owner = owner(&app).await;
    for path in ["/nope", "/t/default/nope", "/t/default/events/not-a-number"] {
        let reply = owner.get(path).await;
        assert_html(&reply, 404);
        assert!(
            reply.text().contains(r#"<form id="logout""#),
            "{path}: the header"
        );
    }
    let deleted = app
        .request_with(
            Method::DELETE,
            "/t/default",
            &[("cookie", &owner.cookie())],
            Vec::new(),
        )
        .await;
    assert_html(&deleted, 405);
}
