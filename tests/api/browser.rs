//! The admin dashboard in a real headless Chromium, driven over WebDriver (`webdriver`):
//! log in, read the overview cards, switch the range, list the events (a hostile user
//! agent shows as text and runs nothing), open one event, create and revoke a key. On
//! every page visited it collects the browser console and the URLs the page loaded: at
//! the end no console entry may be SEVERE and no request may have left the server's
//! origin.
//!
//! Needs `/usr/bin/chromium` and `/usr/bin/chromedriver` (Debian's `chromium` and
//! `chromium-driver`; `.ci/run` installs them). Without them the test is skipped, except
//! under `CI=true`, where it fails.

use serde_json::{json, Value};

use crate::support::{now_ms, spawn_app, TestApp};
use crate::webdriver::{self, Browser, Element, LogEntry};

/// One event to ingest: (type, grant_type, user_id, user_agent).
type Sent = (
    &'static str,
    Option<&'static str>,
    Option<&'static str>,
    Option<&'static str>,
);

/// The event set, oldest first, one a minute over the last quarter hour.
const EVENTS: &[Sent] = &[
    ("token.issued", Some("authorization_code"), Some("u1"), None),
    ("token.issued", Some("authorization_code"), Some("u2"), None),
    ("token.issued", Some("authorization_code"), Some("u3"), None),
    ("token.issued", Some("authorization_code"), Some("u4"), None),
    ("token.issued", Some("authorization_code"), Some("u5"), None),
    ("token.issued", Some("client_credentials"), Some("u1"), None),
    ("token.issued", Some("client_credentials"), Some("u2"), None),
    ("token.refreshed", Some("refresh_token"), Some("u1"), None),
    ("token.refreshed", Some("refresh_token"), Some("u2"), None),
    ("token.refreshed", Some("refresh_token"), Some("u3"), None),
    ("token.validation_failed", None, Some("u4"), None),
    ("token.validation_failed", None, Some("u5"), None),
    ("token.revoked", None, Some("u1"), Some(HOSTILE)),
    ("auth.rate_limited", None, None, None),
];

/// A user agent that would run if the page put it into the DOM as HTML.
const HOSTILE: &str = "<script>alert(1)</script>";

/// The cards the overview must show for `EVENTS`: token.issued and token.refreshed are
/// successes by default, token.validation_failed failures, token.revoked informational.
const CARDS: &[(&str, u64)] = &[
    ("issued", 7),
    ("refreshed", 3),
    ("failed", 2),
    ("rate_limited", 1),
    ("unique_users", 5),
];
/// failed / (failed + success) in percent: 2 / (2 + 10).
const FAILURE_RATE_PERCENT: f64 = 100.0 * 2.0 / 12.0;

#[tokio::test(flavor = "multi_thread")]
async fn the_dashboard_works_in_a_real_browser() {
    if !webdriver::installed() {
        let missing = format!(
            "{} or {} is missing (apt-get install chromium chromium-driver)",
            webdriver::CHROMIUM,
            webdriver::CHROMEDRIVER
        );
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "the browser test cannot run under CI=true: {missing}"
        );
        println!("skipped the browser test: {missing}");
        return;
    }
    let app = spawn_app().await;
    let seqs = ingest(&app).await;
    let browser = Browser::start()
        .await
        .expect("chromedriver and Chromium start");
    let mut flow = Flow {
        base: format!("http://{}", app.addr),
        browser,
        step: "start",
        pages: Vec::new(),
        on_page: false,
    };

    // 2. Log in.
    flow.step = "2 login";
    flow.open("/login").await;
    let username = flow.find("form#login input[name=username]").await;
    flow.type_into(&username, &app.boot.owner).await;
    let password = flow.find("form#login input[name=password]").await;
    flow.type_into(&password, &app.boot.owner_password).await;
    let submit = flow.find("form#login button[type=submit]").await;
    flow.click_and_wait(&submit).await;
    let path = flow.path().await;
    flow.ensure(
        path.starts_with("/t/default"),
        format!("logging in should land on /t/default…, not {path}"),
    )
    .await;

    // 3. The overview's cards.
    flow.step = "3 overview";
    flow.check_cards().await;

    // 4. The range selector.
    flow.step = "4 range 7d";
    let seven_days = flow.find("nav#ranges a[data-range=\"7d\"]").await;
    flow.click_and_wait(&seven_days).await;
    let url = flow.url().await;
    flow.ensure(
        query_pairs(&url).contains(&("range".to_owned(), "7d".to_owned())),
        "the URL's query should hold range=7d",
    )
    .await;
    let seven_days = flow.find("nav#ranges a[data-range=\"7d\"]").await;
    let current = flow.attribute(&seven_days, "aria-current").await;
    flow.ensure(
        current.as_deref() == Some("page"),
        format!("the 7d link should have aria-current=\"page\", has {current:?}"),
    )
    .await;
    flow.check_cards().await;

    // 5. The events list and one event.
    flow.step = "5 events";
    flow.open("/t/default/events").await;
    flow.ensure_no_alert().await;
    let rows = flow.find_all("table#events tbody tr[data-seq]").await;
    flow.ensure(
        rows.len() == EVENTS.len(),
        format!("{} event rows, expected {}", rows.len(), EVENTS.len()),
    )
    .await;
    let mut hostile_rows = 0;
    for row in &rows {
        if flow.text(row).await.contains(HOSTILE) {
            hostile_rows += 1;
        }
    }
    flow.ensure(
        hostile_rows == 1,
        format!("one row should show the user agent {HOSTILE} as text; {hostile_rows} do"),
    )
    .await;
    let inline = flow
        .execute("return document.querySelectorAll('script:not([src])').length;")
        .await;
    flow.ensure(
        inline == json!(0),
        format!("the page should hold no inline <script>; it holds {inline}"),
    )
    .await;
    let first_seq = flow
        .attribute(&rows[0], "data-seq")
        .await
        .unwrap_or_default();
    let newest = *seqs.last().expect("events were ingested");
    flow.ensure(
        first_seq == newest.to_string(),
        format!("the first row should be the newest event (seq {newest}), is {first_seq:?}"),
    )
    .await;
    let link = flow.find_in(&rows[0], "a.event-link").await;
    flow.click_and_wait(&link).await;
    let path = flow.path().await;
    flow.ensure(
        path == format!("/t/default/events/{newest}"),
        format!("the row's link should open /t/default/events/{newest}, opened {path}"),
    )
    .await;
    let event_type = flow.find("dl#event-detail dd[data-field=type]").await;
    let shown = flow.text(&event_type).await;
    let newest_type = EVENTS.last().expect("a newest event").0;
    flow.ensure(
        shown.trim() == newest_type,
        format!("the detail's type should be {newest_type}, is {shown:?}"),
    )
    .await;

    // 6. Create a key, then revoke it.
    flow.step = "6 settings";
    flow.open("/t/default/settings").await;
    let name = flow.find("form#create-key input[name=name]").await;
    flow.type_into(&name, "browser-test").await;
    let kind = flow
        .find("form#create-key select[name=kind] option[value=ingest]")
        .await;
    flow.click(&kind).await;
    let create = flow.find("form#create-key button[type=submit]").await;
    flow.click_and_wait(&create).await;
    let secret = flow.find("code#new-key-secret").await;
    let secret = flow.text(&secret).await;
    flow.ensure(
        secret.trim().starts_with("gw_ingest_"),
        format!("the new key's secret should start with gw_ingest_, is {secret:?}"),
    )
    .await;
    // The answer page may list the keys itself; otherwise the settings page does.
    if flow.find_all("table#keys").await.is_empty() {
        flow.open("/t/default/settings").await;
    }
    let Some(row) = flow.key_row("browser-test").await else {
        return flow.fail("no row of table#keys holds browser-test").await;
    };
    let revoke = flow
        .find_in(&row, "form.revoke-key button[type=submit]")
        .await;
    flow.click_and_wait(&revoke).await;
    if flow.find_all("table#keys").await.is_empty() {
        flow.open("/t/default/settings").await;
    }
    let left = flow.key_row("browser-test").await;
    flow.ensure(
        left.is_none(),
        "after the revocation a row of table#keys still holds browser-test",
    )
    .await;

    // 7. Console and origins of every page visited.
    flow.step = "7 console and origins";
    flow.leave().await;
    let prefix = format!("{}/", flow.base);
    let mut problems = Vec::new();
    for page in &flow.pages {
        for entry in &page.logs {
            if entry.level == "SEVERE" {
                problems.push(format!("{}: console SEVERE: {}", page.url, entry.message));
            }
        }
        for loaded in &page.loaded {
            if !loaded.starts_with(&prefix) {
                problems.push(format!(
                    "{}: loaded from another origin: {loaded}",
                    page.url
                ));
            }
        }
    }
    flow.ensure(problems.is_empty(), problems.join("\n")).await;
    flow.browser.quit().await.expect("the session ends");
}

/// Ingests `EVENTS` (one a minute, the last a minute ago) and returns their seqs in order.
async fn ingest(app: &TestApp) -> Vec<u64> {
    let now = now_ms();
    let count = EVENTS.len() as u64;
    let body: Vec<Value> = EVENTS
        .iter()
        .enumerate()
        .map(|(i, (kind, grant, user, agent))| {
            let mut event = json!({
                "type": kind,
                "ts": now - (count - i as u64) * 60_000,
                "client_id": "web",
            });
            if let Some(grant) = grant {
                event["grant_type"] = json!(grant);
            }
            if let Some(user) = user {
                event["user_id"] = json!(user);
            }
            if let Some(agent) = agent {
                event["user_agent"] = json!(agent);
            }
            event
        })
        .collect();
    app.ingest_ok(&Value::Array(body))
        .await
        .into_iter()
        .map(|id| id.expect("every event is new"))
        .collect()
}

/// One page as the test saw it: its console entries and every URL it loaded.
struct Page {
    url: String,
    logs: Vec<LogEntry>,
    loaded: Vec<String>,
}

/// The browser, the step being run (for failure messages) and the pages seen so far.
struct Flow {
    base: String,
    browser: Browser,
    step: &'static str,
    pages: Vec<Page>,
    /// Whether the browser shows a page of the server (not its initial blank one).
    on_page: bool,
}

impl Flow {
    /// Fails the test naming the step, the page's URL and the start of its text.
    async fn fail<T>(&self, message: impl std::fmt::Display) -> T {
        let url = match self.browser.url().await {
            Ok(url) => url,
            Err(e) => format!("(no URL: {e:#})"),
        };
        let text = match self
            .browser
            .execute(
                "return document.body ? document.body.innerText : '(no body)';",
                vec![],
            )
            .await
        {
            Ok(text) => text.as_str().unwrap_or_default().to_owned(),
            Err(e) => format!("(no text: {e:#})"),
        };
        let text: String = text.chars().take(600).collect();
        panic!(
            "browser step {}: {message}\n  page: {url}\n  text: {}",
            self.step,
            text.replace('\n', "\n        ")
        );
    }

    async fn ensure(&self, ok: bool, message: impl std::fmt::Display) {
        if !ok {
            self.fail(message).await
        }
    }

    async fn ok<T>(&self, result: anyhow::Result<T>) -> T {
        match result {
            Ok(value) => value,
            Err(e) => self.fail(format!("{e:#}")).await,
        }
    }

    /// Records what the current page logged and loaded.
    async fn record_page(&mut self) {
        let url = self.url().await;
        let logs = self.ok(self.browser.browser_logs().await).await;
        let loaded = self
            .execute(
                "return performance.getEntriesByType('resource').map(e => e.name)\
                 .concat([location.href]);",
            )
            .await;
        let loaded = loaded
            .as_array()
            .map(|urls| {
                urls.iter()
                    .map(|u| u.as_str().unwrap_or_default().to_owned())
                    .collect()
            })
            .unwrap_or_default();
        self.pages.push(Page { url, logs, loaded });
    }

    /// Records the page being left, then opens `path` on the server.
    async fn open(&mut self, path: &str) {
        self.leave().await;
        let url = format!("{}{path}", self.base);
        self.ok(self.browser.goto(&url).await).await;
        self.on_page = true;
    }

    /// Records the current page, if the test has opened one.
    async fn leave(&mut self) {
        if self.on_page {
            self.record_page().await;
        }
    }

    /// Records the page being left, clicks `el` and waits for the next page.
    async fn click_and_wait(&mut self, el: &Element) {
        self.leave().await;
        self.ok(self.browser.click_and_wait(el).await).await;
    }

    async fn url(&self) -> String {
        self.ok(self.browser.url().await).await
    }

    /// The current URL's path.
    async fn path(&self) -> String {
        let url = self.url().await;
        let rest = url.strip_prefix(&self.base).unwrap_or(&url);
        rest.split(['?', '#']).next().unwrap_or_default().to_owned()
    }

    async fn find(&self, selector: &str) -> Element {
        self.ok(self.browser.find(selector).await).await
    }

    async fn find_all(&self, selector: &str) -> Vec<Element> {
        self.ok(self.browser.find_all(selector).await).await
    }

    /// The first element matching `selector` inside `parent`.
    async fn find_in(&self, parent: &Element, selector: &str) -> Element {
        let found = self.ok(self.browser.find_in(parent, selector).await).await;
        match found.into_iter().next() {
            Some(el) => el,
            None => self.fail(format!("no {selector} in the element")).await,
        }
    }

    async fn text(&self, el: &Element) -> String {
        self.ok(self.browser.text(el).await).await
    }

    async fn attribute(&self, el: &Element, name: &str) -> Option<String> {
        self.ok(self.browser.attribute(el, name).await).await
    }

    async fn click(&self, el: &Element) {
        self.ok(self.browser.click(el).await).await
    }

    async fn type_into(&self, el: &Element, text: &str) {
        self.ok(self.browser.clear(el).await).await;
        self.ok(self.browser.send_keys(el, text).await).await;
    }

    async fn execute(&self, script: &str) -> Value {
        self.ok(self.browser.execute(script, vec![]).await).await
    }

    async fn ensure_no_alert(&self) {
        let alert = self.ok(self.browser.alert_text().await).await;
        self.ensure(
            alert.is_none(),
            format!("a dialog opened (text {alert:?}): the page ran injected script"),
        )
        .await;
    }

    /// Checks the overview's cards against `EVENTS`.
    async fn check_cards(&self) {
        for (metric, expected) in CARDS {
            let shown = self.card(metric).await;
            self.ensure(
                shown.replace(',', "").trim() == expected.to_string(),
                format!("the {metric} card should show {expected}, shows {shown:?}"),
            )
            .await;
        }
        let shown = self.card("failure_rate").await;
        let digits = shown.replace(',', "");
        let digits = digits.trim().trim_end_matches('%').trim();
        // As precise as the page shows it: "16.7%" is within 0.05 of 16.666….
        let decimals = digits.split_once('.').map_or(0, |(_, d)| d.len()) as i32;
        let close = digits.parse::<f64>().is_ok_and(|value| {
            shown.trim().ends_with('%')
                && (value - FAILURE_RATE_PERCENT).abs() <= 0.5 * 10f64.powi(-decimals) + 1e-9
        });
        self.ensure(
            close,
            format!(
                "the failure_rate card should show {FAILURE_RATE_PERCENT:.1}%, shows {shown:?}"
            ),
        )
        .await;
    }

    /// The text of the overview card `metric`'s value.
    async fn card(&self, metric: &str) -> String {
        let value = self
            .find(&format!("#cards a.card[data-metric={metric}] .value"))
            .await;
        self.text(&value).await
    }

    /// The row of `table#keys` whose text holds `name`.
    async fn key_row(&self, name: &str) -> Option<Element> {
        for row in self.find_all("table#keys tbody tr[data-key-id]").await {
            if self.text(&row).await.contains(name) {
                return Some(row);
            }
        }
        None
    }
}

/// The decoded query pairs of `url`.
fn query_pairs(url: &str) -> Vec<(String, String)> {
    let query = url.split_once('?').map_or("", |(_, q)| q);
    let query = query.split('#').next().unwrap_or_default();
    form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect()
}
