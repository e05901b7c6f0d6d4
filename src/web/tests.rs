//! Rendering tests of every dashboard page over a real store holding hostile strings: each
//! page renders, shows those strings as text (escaped), and carries no inline script.

use std::sync::Arc;

use super::*;
use crate::app::{App, BootstrapOptions, LoginAttempt};
use crate::model::{Event, EventType, Outcome};
use crate::store::{Store, WriterConfig};

const HOSTILE_UA: &str = "<script>alert(1)</script>";
const HOSTILE_ROUTE: &str = "/x\"><img src=x onerror=alert(1)>";
const HOSTILE_CLIENT: &str = "<b>c</b>";
const HOSTILE_TOKEN: &str = "t<&>\"'";

struct Fixture {
    app: Arc<App>,
    session: Session,
    now: u64,
    seq: u64,
    _dir: tempfile::TempDir,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = Store::open(dir.path(), WriterConfig::default()).expect("the store opens");
    let app = Arc::new(App::new(store).expect("the app starts"));
    let now = crate::model::time::now_ms();
    let boot = app
        .bootstrap(
            BootstrapOptions {
                owner_password: Some("correct horse".into()),
                ..BootstrapOptions::default()
            },
            now,
        )
        .await
        .expect("bootstraps");
    let tenant = app
        .store()
        .snapshot()
        .expect("a snapshot")
        .tenant_by_slug(&boot.tenant)
        .expect("reads")
        .expect("the tenant exists");
    let mut issued = Event::new(
        EventType::parse("token.issued").expect("a type"),
        now - 1000,
    );
    issued.user_agent = Some(HOSTILE_UA.into());
    issued.route = Some(HOSTILE_ROUTE.into());
    issued.client_id = Some(HOSTILE_CLIENT.into());
    issued.user_id = Some("u&1".into());
    issued.token = Some(HOSTILE_TOKEN.into());
    issued.grant_type = Some("<grant>".into());
    issued.context = Some(r#"{"note":"</pre><script>x()</script>"}"#.into());
    let mut failed = Event::new(
        EventType::parse("token.validation_failed").expect("a type"),
        now - 500,
    );
    failed.outcome = Outcome::Failure;
    failed.client_id = Some(HOSTILE_CLIENT.into());
    let ids = app
        .store()
        .ingest(tenant.id, now, vec![issued, failed])
        .await
        .expect("ingests");
    let seq = ids[0].expect("stored");
    let session = app
        .login(
            LoginAttempt {
                user: "admin",
                password: "correct horse",
                ip: None,
                user_agent: Some(HOSTILE_UA),
            },
            now,
        )
        .await
        .expect("logs in")
        .session;
    Fixture {
        app,
        session,
        now,
        seq,
        _dir: dir,
    }
}

impl Fixture {
    async fn get(&self, path_and_query: &str) -> (u16, String) {
        let (path, query) = path_and_query
            .split_once('?')
            .unwrap_or((path_and_query, ""));
        let request = WebRequest {
            method: WebMethod::Get,
            path: path.to_owned(),
            query: form_urlencoded::parse(query.as_bytes())
                .into_owned()
                .collect(),
            form: Vec::new(),
            session: Some(self.session.clone()),
            session_secret: None,
            login_csrf: None,
            ip: None,
            user_agent: None,
            host: Some("gatewatch.test".into()),
            // A moment after the fixture's events, which `[from, to)` ranges ending now hold.
            now: self.now + 1000,
        };
        let response = handle(&self.app, request).await;
        (
            response.status,
            String::from_utf8(response.body).expect("pages are UTF-8"),
        )
    }
}

/// No hostile string appears raw, and the page has no inline script.
fn assert_safe(page: &str, what: &str) {
    for raw in [
        HOSTILE_UA,
        "<img src=x",
        "<b>c</b>",
        "<grant>",
        "t<&>",
        "<script>x()",
    ] {
        assert!(!page.contains(raw), "{what} shows {raw:?} unescaped");
    }
    assert!(!page.contains("<script"), "{what} has a script element");
    assert!(!page.contains(" style=\""), "{what} has an inline style");
}

#[tokio::test]
async fn every_page_renders_hostile_strings_as_text() {
    let f = fixture().await;
    let token_query = format!(
        "/t/default/tokens?token={}",
        format::query_value(HOSTILE_TOKEN)
    );
    let pages = [
        "/t/default".to_owned(),
        "/t/default?range=7d&client_id=%3Cb%3Ec%3C%2Fb%3E".to_owned(),
        "/t/default/events".to_owned(),
        format!("/t/default/events/{}", f.seq),
        token_query,
        "/t/default/settings".to_owned(),
        "/admin".to_owned(),
        "/t/system/events".to_owned(),
    ];
    for path in &pages {
        let (status, page) = f.get(path).await;
        assert_eq!(status, 200, "{path}: {page}");
        assert_safe(&page, path);
    }
    let (_, events) = f.get("/t/default/events").await;
    assert!(
        events.contains("&#60;script&#62;alert(1)&#60;/script&#62;")
            || events.contains("&lt;script&gt;")
    );
    let (_, detail) = f.get(&format!("/t/default/events/{}", f.seq)).await;
    assert!(detail.contains("data-field=\"user_agent\""));
    assert!(detail.contains("u&#38;1") || detail.contains("u&amp;1"));
    // The login attempt itself was recorded, with its (hostile) user agent, as text.
    let (_, system) = f.get("/t/system/events").await;
    assert!(system.contains("dashboard.login"));
}

#[tokio::test]
async fn overview_cards_count_the_events_and_link_to_them() {
    let f = fixture().await;
    let (status, page) = f.get("/t/default?range=24h").await;
    assert_eq!(status, 200);
    let card = |metric: &str| {
        let start = page
            .find(&format!("data-metric=\"{metric}\""))
            .unwrap_or_else(|| panic!("card {metric}"));
        let rest = &page[start..];
        let value = rest
            .split("<span class=\"value\">")
            .nth(1)
            .and_then(|v| v.split('<').next())
            .expect("a value");
        value.to_owned()
    };
    assert_eq!(card("issued"), "1");
    assert_eq!(card("failed"), "1");
    assert_eq!(card("rate_limited"), "0");
    assert_eq!(card("failure_rate"), "50.0%");
    assert!(
        page.contains("type=token.issued"),
        "the card links to its events"
    );
    // Charts are inline SVG whose bars link to the events of their bucket.
    assert!(page.contains("<svg class=\"chart\""));
    assert!(page.contains("outcome=failure"));
}

#[tokio::test]
async fn empty_tenants_say_how_to_send_the_first_event() {
    let f = fixture().await;
    let owner = f.session.principal();
    f.app
        .create_tenant(&owner, "fresh", Some("Fresh"), f.now)
        .await
        .expect("creates");
    let (status, page) = f.get("/t/fresh").await;
    assert_eq!(status, 200);
    assert!(page.contains("id=\"empty-state\""));
    assert!(page.contains("http://gatewatch.test/api/v1/events"));
}

#[tokio::test]
async fn unknown_pages_and_tenants_are_not_found() {
    let f = fixture().await;
    for path in [
        "/t/nope",
        "/t/nope/events",
        "/nowhere",
        "/t/default/events/999999",
    ] {
        let (status, _) = f.get(path).await;
        assert_eq!(status, 404, "{path}");
    }
    let (status, _) = f.get("/t/default/events/not-a-number").await;
    assert_eq!(status, 404);
}
