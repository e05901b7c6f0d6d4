//! Tenants, keys, users and members, and the walls between tenants.

use serde_json::{json, Value};

use crate::support::{assert_error_status, assert_invalid_field, spawn_app, TestApp};

/// `GET /api/v1/tenants` as `token`: the slugs listed.
async fn tenant_slugs(app: &TestApp, token: Option<&str>) -> Vec<String> {
    let reply = app.get("/api/v1/tenants", token).await;
    assert_eq!(reply.status, 200, "list tenants: {}", reply.json);
    let mut slugs: Vec<String> = reply.json["tenants"]
        .as_array()
        .unwrap_or_else(|| panic!("a tenants array: {}", reply.json))
        .iter()
        .map(|t| t["slug"].as_str().expect("slug").to_owned())
        .collect();
    slugs.sort();
    slugs
}

fn is_timestamp(value: &Value) -> bool {
    value.as_str().is_some_and(|s| {
        s.len() == 24 && s.ends_with('Z') && s.as_bytes()[10] == b'T' && s.as_bytes()[19] == b'.'
    })
}

/// Total events of `tenant` as the owner sees them.
async fn total(app: &TestApp, tenant: &str) -> u64 {
    app.stats(tenant, "").await["total_events"]
        .as_u64()
        .expect("total_events")
}

// ---- tenants ----

#[tokio::test]
async fn the_owner_creates_a_tenant() {
    let app = spawn_app().await;
    let reply = app
        .post_json(
            "/api/v1/tenants",
            app.owner(),
            r#"{"slug":"acme","name":"Acme Corp"}"#,
        )
        .await;
    assert_eq!(reply.status, 201, "{}", reply.json);
    assert_eq!(reply.json["slug"], "acme");
    assert_eq!(reply.json["name"], "Acme Corp");
    assert!(is_timestamp(&reply.json["created_at"]), "{}", reply.json);
    assert_eq!(tenant_slugs(&app, app.owner()).await, ["acme", "default"]);
    let listed = app.get("/api/v1/tenants", app.owner()).await;
    let acme = listed.json["tenants"]
        .as_array()
        .expect("tenants")
        .iter()
        .find(|t| t["slug"] == "acme")
        .cloned()
        .expect("acme listed");
    assert_eq!(acme["name"], "Acme Corp");
    assert!(is_timestamp(&acme["created_at"]));
    // The new tenant is empty and readable.
    assert_eq!(total(&app, "acme").await, 0);
}

#[tokio::test]
async fn an_existing_slug_is_409() {
    let app = spawn_app().await;
    app.create_tenant("acme").await;
    for slug in ["acme", "default"] {
        let reply = app
            .post_json(
                "/api/v1/tenants",
                app.owner(),
                &json!({"slug": slug, "name": "again"}).to_string(),
            )
            .await;
        assert_error_status(&reply, 409);
    }
    assert_eq!(tenant_slugs(&app, app.owner()).await, ["acme", "default"]);
}

#[tokio::test]
async fn an_invalid_slug_is_400() {
    let app = spawn_app().await;
    for slug in [
        json!(""),
        json!("Acme"),
        json!("-acme"),
        json!("ac_me"),
        json!("ac me"),
        json!("acme!"),
        json!("a".repeat(64)),
        json!(5),
    ] {
        let reply = app
            .post_json(
                "/api/v1/tenants",
                app.owner(),
                &json!({"slug": slug, "name": "x"}).to_string(),
            )
            .await;
        assert_error_status(&reply, 400);
        if slug.is_string() {
            assert_eq!(
                reply.json["error"]["field"], "slug",
                "{slug}: {}",
                reply.json
            );
        }
    }
    // The longest valid slug is fine.
    app.create_tenant(&"a".repeat(63)).await;
    assert_eq!(tenant_slugs(&app, app.owner()).await.len(), 2);
}

#[tokio::test]
async fn only_the_owner_creates_tenants() {
    let app = spawn_app().await;
    let body = r#"{"slug":"acme","name":"Acme"}"#;
    let anonymous = app.post_json("/api/v1/tenants", None, body).await;
    assert_error_status(&anonymous, 401);
    let ingest = app.post_json("/api/v1/tenants", app.ingest(), body).await;
    assert_error_status(&ingest, 403);
    assert_eq!(tenant_slugs(&app, app.owner()).await, ["default"]);
}

// ---- keys ----

#[tokio::test]
async fn a_new_ingest_key_is_shown_once_and_works() {
    let app = spawn_app().await;
    let reply = app
        .post_json(
            "/api/v1/tenants/default/keys",
            app.owner(),
            r#"{"kind":"ingest","name":"x"}"#,
        )
        .await;
    assert_eq!(reply.status, 201, "{}", reply.json);
    let created = reply.json;
    let key = created["key"].as_str().expect("the secret");
    assert!(key.starts_with("gw_ingest_"), "{key}");
    assert_eq!(created["kind"], "ingest");
    assert_eq!(created["name"], "x");
    assert!(created["id"].is_u64(), "{created}");
    assert!(is_timestamp(&created["created_at"]), "{created}");
    let prefix = created["prefix"].as_str().expect("prefix");
    assert!(
        key.starts_with(prefix) && prefix.len() < key.len(),
        "{prefix}"
    );
    let sent = app
        .post_json("/api/v1/events", Some(key), r#"{"type":"a.b"}"#)
        .await;
    assert_eq!(sent.status, 200, "{}", sent.json);
    assert_eq!(total(&app, "default").await, 1);
}

#[tokio::test]
async fn listed_keys_never_show_the_secret() {
    let app = spawn_app().await;
    let created = app.create_key("default", "ingest", "x").await;
    let reply = app.get("/api/v1/tenants/default/keys", app.owner()).await;
    assert_eq!(reply.status, 200, "{}", reply.json);
    let keys = reply.json["keys"].as_array().expect("keys");
    assert!(keys.len() >= 3, "bootstrap keys plus the new one: {keys:?}");
    let listed = keys
        .iter()
        .find(|k| k["id"] == created["id"])
        .expect("the new key is listed");
    assert_eq!(listed["name"], "x");
    assert_eq!(listed["kind"], "ingest");
    assert_eq!(listed["prefix"], created["prefix"]);
    let secret = created["key"].as_str().expect("secret");
    for key in keys {
        assert!(key.get("key").is_none(), "no secret in {key}");
        assert!(!key.to_string().contains(secret), "no secret in {key}");
    }
    assert!(
        !String::from_utf8_lossy(&reply.body).contains(secret),
        "the secret is never listed"
    );
    let kinds: Vec<&str> = keys.iter().filter_map(|k| k["kind"].as_str()).collect();
    assert!(
        kinds.contains(&"admin") && kinds.contains(&"ingest"),
        "{kinds:?}"
    );
}

#[tokio::test]
async fn an_admin_key_is_made_for_its_creator() {
    let app = spawn_app().await;
    let created = app.create_key("default", "admin", "ci").await;
    let key = created["key"].as_str().expect("secret");
    assert!(key.starts_with("gw_admin_"), "{key}");
    assert_eq!(created["kind"], "admin");
    // It acts as the owner.
    let reply = app.get("/api/v1/tenants", Some(key)).await;
    assert_eq!(reply.status, 200, "{}", reply.json);
    let made = app
        .post_json(
            "/api/v1/tenants",
            Some(key),
            r#"{"slug":"acme","name":"Acme"}"#,
        )
        .await;
    assert_eq!(made.status, 201, "{}", made.json);
}

#[tokio::test]
async fn an_unknown_key_kind_is_400() {
    let app = spawn_app().await;
    let reply = app
        .post_json(
            "/api/v1/tenants/default/keys",
            app.owner(),
            r#"{"kind":"superuser","name":"x"}"#,
        )
        .await;
    assert_invalid_field(&reply, "kind");
}

#[tokio::test]
async fn a_revoked_key_fails_at_once() {
    let app = spawn_app().await;
    let created = app.create_key("default", "ingest", "short-lived").await;
    let key = created["key"].as_str().expect("secret").to_owned();
    let id = created["id"].as_u64().expect("id");
    let before = app
        .post_json("/api/v1/events", Some(&key), r#"{"type":"a.b"}"#)
        .await;
    assert_eq!(before.status, 200);
    let revoked = app
        .delete(&format!("/api/v1/tenants/default/keys/{id}"), app.owner())
        .await;
    assert!(
        (200..300).contains(&revoked.status),
        "revoking answers 2xx: {} {}",
        revoked.status,
        revoked.json
    );
    let after = app
        .post_json("/api/v1/events", Some(&key), r#"{"type":"a.b"}"#)
        .await;
    assert_error_status(&after, 401);
    assert!(after.header("www-authenticate").is_some());
    let keys = app.get("/api/v1/tenants/default/keys", app.owner()).await;
    assert!(
        !keys.json["keys"]
            .as_array()
            .expect("keys")
            .iter()
            .any(|k| k["id"] == id),
        "a revoked key is no longer listed: {}",
        keys.json
    );
    let again = app
        .delete(&format!("/api/v1/tenants/default/keys/{id}"), app.owner())
        .await;
    assert_error_status(&again, 404);
    assert_eq!(total(&app, "default").await, 1);
}

#[tokio::test]
async fn an_admin_token_revoked_stops_at_once() {
    let app = spawn_app().await;
    let created = app.create_key("default", "admin", "temp").await;
    let key = created["key"].as_str().expect("secret").to_owned();
    let id = created["id"].as_u64().expect("id");
    assert_eq!(app.get("/api/v1/tenants", Some(&key)).await.status, 200);
    let revoked = app
        .delete(&format!("/api/v1/tenants/default/keys/{id}"), app.owner())
        .await;
    assert!((200..300).contains(&revoked.status), "{}", revoked.json);
    assert_error_status(&app.get("/api/v1/tenants", Some(&key)).await, 401);
}

#[tokio::test]
async fn keys_of_an_unknown_tenant_are_404() {
    let app = spawn_app().await;
    let list = app.get("/api/v1/tenants/nope/keys", app.owner()).await;
    assert_error_status(&list, 404);
    let create = app
        .post_json(
            "/api/v1/tenants/nope/keys",
            app.owner(),
            r#"{"kind":"ingest","name":"x"}"#,
        )
        .await;
    assert_error_status(&create, 404);
    let delete = app.delete("/api/v1/tenants/nope/keys/1", app.owner()).await;
    assert_error_status(&delete, 404);
    let stats = app.get("/api/v1/tenants/nope/stats", app.owner()).await;
    assert_error_status(&stats, 404);
    let events = app.get("/api/v1/tenants/nope/events", app.owner()).await;
    assert_error_status(&events, 404);
}

#[tokio::test]
async fn key_endpoints_need_credentials() {
    let app = spawn_app().await;
    assert_error_status(&app.get("/api/v1/tenants/default/keys", None).await, 401);
    assert_error_status(&app.get("/api/v1/tenants", None).await, 401);
    assert_error_status(&app.get("/api/v1/tenants/default/stats", None).await, 401);
    assert_error_status(&app.get("/api/v1/tenants/default/events", None).await, 401);
    let bogus = Some("gw_admin_0000");
    assert_error_status(&app.get("/api/v1/tenants/default/keys", bogus).await, 401);
}

// ---- tenant walls ----

#[tokio::test]
async fn an_ingest_key_writes_only_into_its_own_tenant() {
    let app = spawn_app().await;
    app.create_tenant("beta").await;
    let beta_key = app.create_key("beta", "ingest", "beta-ingest").await;
    let key = beta_key["key"].as_str().expect("secret");
    app.ingest_ok(&json!({"type": "a.default"})).await;
    let before_default = app.events("default", "").await;
    let reply = app
        .post_json(
            "/api/v1/events",
            Some(key),
            &json!([{"type": "b.one", "user_id": "bu"}, {"type": "b.two"}]).to_string(),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.json);
    assert_eq!(total(&app, "beta").await, 2);
    assert_eq!(total(&app, "default").await, 1);
    assert_eq!(app.events("default", "").await, before_default);
    let beta_events = app.events("beta", "").await;
    assert_eq!(beta_events.len(), 2);
    assert!(beta_events.iter().all(|e| e["tenant"] == "beta"));
    // A beta event is not visible through default's path.
    let seq = reply.json["ids"][0].as_u64().expect("seq");
    let through_default = app
        .get(
            &format!("/api/v1/tenants/default/events/{seq}"),
            app.owner(),
        )
        .await;
    assert_error_status(&through_default, 404);
    let through_beta = app
        .get(&format!("/api/v1/tenants/beta/events/{seq}"), app.owner())
        .await;
    assert_eq!(through_beta.status, 200);
    assert_eq!(through_beta.json["user_id"], "bu");
}

#[tokio::test]
async fn an_ingest_key_reading_its_tenant_is_403_and_another_is_404() {
    let app = spawn_app().await;
    app.create_tenant("beta").await;
    let seq = app.ingest_ok(&json!({"type": "a.b"})).await[0].expect("seq");
    for path in [
        "/api/v1/tenants/default/stats".to_owned(),
        "/api/v1/tenants/default/events".to_owned(),
        format!("/api/v1/tenants/default/events/{seq}"),
        "/api/v1/tenants/default/keys".to_owned(),
    ] {
        assert_error_status(&app.get(&path, app.ingest()).await, 403);
    }
    for path in [
        "/api/v1/tenants/beta/stats",
        "/api/v1/tenants/beta/events",
        "/api/v1/tenants/beta/keys",
        "/api/v1/tenants/nope/stats",
    ] {
        assert_error_status(&app.get(path, app.ingest()).await, 404);
    }
    let make_key = app
        .post_json(
            "/api/v1/tenants/default/keys",
            app.ingest(),
            r#"{"kind":"ingest","name":"x"}"#,
        )
        .await;
    assert_error_status(&make_key, 403);
    let make_key = app
        .post_json(
            "/api/v1/tenants/beta/keys",
            app.ingest(),
            r#"{"kind":"ingest","name":"x"}"#,
        )
        .await;
    assert_error_status(&make_key, 404);
}

#[tokio::test]
async fn deleting_a_key_through_another_tenants_path_is_404() {
    let app = spawn_app().await;
    app.create_tenant("beta").await;
    let beta_key = app.create_key("beta", "ingest", "beta-ingest").await;
    let id = beta_key["id"].as_u64().expect("id");
    let secret = beta_key["key"].as_str().expect("secret");
    let reply = app
        .delete(&format!("/api/v1/tenants/default/keys/{id}"), app.owner())
        .await;
    assert_error_status(&reply, 404);
    // Still alive and still listed under beta.
    let sent = app
        .post_json("/api/v1/events", Some(secret), r#"{"type":"a.b"}"#)
        .await;
    assert_eq!(sent.status, 200, "{}", sent.json);
    let keys = app.get("/api/v1/tenants/beta/keys", app.owner()).await;
    assert!(keys.json["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .any(|k| k["id"] == id));
    let default_keys = app.get("/api/v1/tenants/default/keys", app.owner()).await;
    assert!(!default_keys.json["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .any(|k| k["id"] == id));
}

// ---- users and members ----

/// Creates user `name` as the owner; insists on a 201.
async fn create_user(app: &TestApp, name: &str) -> Value {
    let reply = app
        .post_json(
            "/api/v1/users",
            app.owner(),
            &json!({"name": name, "password": "correct horse battery"}).to_string(),
        )
        .await;
    assert_eq!(reply.status, 201, "create user {name}: {}", reply.json);
    reply.json
}

/// Sets `user`'s role in `tenant` as the owner; insists on a 200.
async fn set_member(app: &TestApp, tenant: &str, user: &str, role: &str) -> Value {
    let reply = app
        .post_json(
            &format!("/api/v1/tenants/{tenant}/members"),
            app.owner(),
            &json!({"user": user, "role": role}).to_string(),
        )
        .await;
    assert_eq!(
        reply.status, 200,
        "member {user} as {role} of {tenant}: {}",
        reply.json
    );
    reply.json
}

/// Creates an admin key acting as `user`, in `tenant`, as the owner; returns the secret.
async fn key_for(app: &TestApp, tenant: &str, user: &str) -> String {
    let reply = app
        .post_json(
            &format!("/api/v1/tenants/{tenant}/keys"),
            app.owner(),
            &json!({"kind": "admin", "name": format!("{user}'s"), "user": user}).to_string(),
        )
        .await;
    assert_eq!(reply.status, 201, "admin key for {user}: {}", reply.json);
    let key = reply.json["key"].as_str().expect("secret").to_owned();
    assert!(key.starts_with("gw_admin_"), "{key}");
    key
}

/// Tenant `default` (A) with one event, tenant `beta` (B) with one event, and bob, a
/// viewer of A only, with an admin key of his own. Returns bob's key and B's event seq.
async fn bob_views_default(app: &TestApp) -> (String, u64) {
    app.ingest_ok(&json!({"type": "a.event"})).await;
    app.create_tenant("beta").await;
    let beta_ingest = app.create_key("beta", "ingest", "b").await;
    let sent = app
        .post_json(
            "/api/v1/events",
            beta_ingest["key"].as_str(),
            r#"{"type":"b.event"}"#,
        )
        .await;
    assert_eq!(sent.status, 200, "{}", sent.json);
    let beta_seq = sent.json["ids"][0].as_u64().expect("seq");
    create_user(app, "bob").await;
    set_member(app, "default", "bob", "viewer").await;
    (key_for(app, "default", "bob").await, beta_seq)
}

#[tokio::test]
async fn the_owner_creates_a_user() {
    let app = spawn_app().await;
    let bob = create_user(&app, "bob").await;
    assert!(bob["id"].is_u64(), "{bob}");
    assert_eq!(bob["name"], "bob");
    assert_eq!(bob["owner"], false);
    assert!(is_timestamp(&bob["created_at"]), "{bob}");
    let text = bob.to_string();
    assert!(
        !text.contains("correct horse") && !text.contains("argon2"),
        "no password material: {text}"
    );
}

#[tokio::test]
async fn a_duplicate_user_name_is_409() {
    let app = spawn_app().await;
    create_user(&app, "bob").await;
    let again = app
        .post_json(
            "/api/v1/users",
            app.owner(),
            r#"{"name":"bob","password":"another one"}"#,
        )
        .await;
    assert_error_status(&again, 409);
    // The bootstrap owner's name is taken too.
    let owner = app
        .post_json(
            "/api/v1/users",
            app.owner(),
            &json!({"name": app.boot.owner, "password": "x-password"}).to_string(),
        )
        .await;
    assert_error_status(&owner, 409);
}

#[tokio::test]
async fn only_the_owner_creates_users() {
    let app = spawn_app().await;
    let body = r#"{"name":"eve","password":"secret secret"}"#;
    assert_error_status(&app.post_json("/api/v1/users", None, body).await, 401);
    assert_error_status(
        &app.post_json("/api/v1/users", app.ingest(), body).await,
        403,
    );
    let (bob, _) = bob_views_default(&app).await;
    assert_error_status(&app.post_json("/api/v1/users", Some(&bob), body).await, 403);
}

#[tokio::test]
async fn membership_is_an_upsert() {
    let app = spawn_app().await;
    create_user(&app, "bob").await;
    let first = set_member(&app, "default", "bob", "viewer").await;
    assert_eq!(first, json!({"user": "bob", "role": "viewer"}));
    let second = set_member(&app, "default", "bob", "editor").await;
    assert_eq!(second, json!({"user": "bob", "role": "editor"}));
    let bad_role = app
        .post_json(
            "/api/v1/tenants/default/members",
            app.owner(),
            r#"{"user":"bob","role":"emperor"}"#,
        )
        .await;
    assert_invalid_field(&bad_role, "role");
    let unknown_tenant = app
        .post_json(
            "/api/v1/tenants/nope/members",
            app.owner(),
            r#"{"user":"bob","role":"viewer"}"#,
        )
        .await;
    assert_error_status(&unknown_tenant, 404);
}

#[tokio::test]
async fn a_viewer_reads_stats_and_events_of_their_tenant() {
    let app = spawn_app().await;
    let (bob, _) = bob_views_default(&app).await;
    let bob = Some(bob.as_str());
    let stats = app.get("/api/v1/tenants/default/stats", bob).await;
    assert_eq!(stats.status, 200, "{}", stats.json);
    assert_eq!(stats.json["total_events"], 1);
    let events = app.get("/api/v1/tenants/default/events", bob).await;
    assert_eq!(events.status, 200, "{}", events.json);
    let listed = events.json["events"].as_array().expect("events");
    assert_eq!(listed.len(), 1);
    let seq = listed[0]["seq"].as_u64().expect("seq");
    let one = app
        .get(&format!("/api/v1/tenants/default/events/{seq}"), bob)
        .await;
    assert_eq!(one.status, 200, "{}", one.json);
    assert_eq!(one.json["type"], "a.event");
}

#[tokio::test]
async fn a_viewer_may_not_touch_keys() {
    let app = spawn_app().await;
    let (bob, _) = bob_views_default(&app).await;
    let bob = Some(bob.as_str());
    assert_error_status(&app.get("/api/v1/tenants/default/keys", bob).await, 403);
    let create = app
        .post_json(
            "/api/v1/tenants/default/keys",
            bob,
            r#"{"kind":"ingest","name":"x"}"#,
        )
        .await;
    assert_error_status(&create, 403);
    let first_ingest = app
        .get("/api/v1/tenants/default/keys", app.owner())
        .await
        .json["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .find(|k| k["kind"] == "ingest")
        .and_then(|k| k["id"].as_u64())
        .expect("an ingest key");
    let delete = app
        .delete(&format!("/api/v1/tenants/default/keys/{first_ingest}"), bob)
        .await;
    assert_error_status(&delete, 403);
    // The key still works.
    app.ingest_ok(&json!({"type": "a.b"})).await;
    // Nor members, nor sending events.
    let member = app
        .post_json(
            "/api/v1/tenants/default/members",
            bob,
            r#"{"user":"bob","role":"admin"}"#,
        )
        .await;
    assert_error_status(&member, 403);
    let ingest = app
        .post_json("/api/v1/events", bob, r#"{"type":"a.b"}"#)
        .await;
    assert_error_status(&ingest, 403);
}

#[tokio::test]
async fn a_tenant_the_user_is_not_a_member_of_is_404_everywhere() {
    let app = spawn_app().await;
    let (bob, beta_seq) = bob_views_default(&app).await;
    let bob = Some(bob.as_str());
    for path in [
        "/api/v1/tenants/beta/stats".to_owned(),
        "/api/v1/tenants/beta/events".to_owned(),
        format!("/api/v1/tenants/beta/events/{beta_seq}"),
        "/api/v1/tenants/beta/keys".to_owned(),
    ] {
        assert_error_status(&app.get(&path, bob).await, 404);
    }
    let create = app
        .post_json(
            "/api/v1/tenants/beta/keys",
            bob,
            r#"{"kind":"ingest","name":"x"}"#,
        )
        .await;
    assert_error_status(&create, 404);
    assert_error_status(&app.delete("/api/v1/tenants/beta/keys/1", bob).await, 404);
    let member = app
        .post_json(
            "/api/v1/tenants/beta/members",
            bob,
            r#"{"user":"bob","role":"admin"}"#,
        )
        .await;
    assert_error_status(&member, 404);
    // Indistinguishable from a tenant that does not exist.
    assert_error_status(&app.get("/api/v1/tenants/nope/stats", bob).await, 404);
    // A's event seq space does not leak B's events either.
    let via_default = app
        .get(&format!("/api/v1/tenants/default/events/{beta_seq}"), bob)
        .await;
    assert_error_status(&via_default, 404);
}

#[tokio::test]
async fn a_user_lists_only_their_tenants() {
    let app = spawn_app().await;
    let (bob, _) = bob_views_default(&app).await;
    assert_eq!(tenant_slugs(&app, Some(&bob)).await, ["default"]);
    assert_eq!(tenant_slugs(&app, app.owner()).await, ["beta", "default"]);
    assert_error_status(
        &app.post_json(
            "/api/v1/tenants",
            Some(&bob),
            r#"{"slug":"mine","name":"m"}"#,
        )
        .await,
        403,
    );
}

#[tokio::test]
async fn a_tenant_admin_manages_keys_of_that_tenant_only() {
    let app = spawn_app().await;
    let (bob, _) = bob_views_default(&app).await;
    set_member(&app, "default", "bob", "admin").await;
    let bob = Some(bob.as_str());
    let keys = app.get("/api/v1/tenants/default/keys", bob).await;
    assert_eq!(keys.status, 200, "{}", keys.json);
    let made = app
        .post_json(
            "/api/v1/tenants/default/keys",
            bob,
            r#"{"kind":"ingest","name":"bob-ingest"}"#,
        )
        .await;
    assert_eq!(made.status, 201, "{}", made.json);
    assert_error_status(&app.get("/api/v1/tenants/beta/keys", bob).await, 404);
    // Only the owner may make a key that acts as someone else: no escalation to the owner.
    let before = app.get("/api/v1/tenants/default/keys", app.owner()).await;
    let as_owner = app
        .post_json(
            "/api/v1/tenants/default/keys",
            bob,
            &json!({"kind": "admin", "name": "sneaky", "user": app.boot.owner}).to_string(),
        )
        .await;
    assert_error_status(&as_owner, 403);
    let after = app.get("/api/v1/tenants/default/keys", app.owner()).await;
    assert_eq!(
        before.json["keys"], after.json["keys"],
        "the refused request made no key"
    );
    let sent = app
        .post_json(
            "/api/v1/events",
            made.json["key"].as_str(),
            r#"{"type":"a.b"}"#,
        )
        .await;
    assert_eq!(sent.status, 200);
    assert_eq!(app.stats("default", "").await["total_events"], 2);
}

#[tokio::test]
async fn users_and_members_are_listed_without_secrets() {
    let app = spawn_app().await;
    let (bob, _) = bob_views_default(&app).await;
    let users = app.get("/api/v1/users", app.owner()).await;
    assert_eq!(users.status, 200, "{}", users.json);
    let list = users.json["users"].as_array().expect("users");
    let mut names: Vec<&str> = list.iter().filter_map(|u| u["name"].as_str()).collect();
    names.sort_unstable();
    assert_eq!(names, [app.boot.owner.as_str(), "bob"]);
    let owner = list
        .iter()
        .find(|u| u["name"] == app.boot.owner)
        .expect("the owner");
    assert_eq!(owner["owner"], true);
    let text = users.json.to_string();
    assert!(
        !text.contains("argon2") && !text.contains("password"),
        "no password material: {text}"
    );
    let members = app
        .get("/api/v1/tenants/default/members", app.owner())
        .await;
    assert_eq!(members.status, 200, "{}", members.json);
    assert!(
        members.json["members"]
            .as_array()
            .expect("members")
            .contains(&json!({"user": "bob", "role": "viewer"})),
        "{}",
        members.json
    );
    // A viewer may not list members; a stranger to beta does not see it at all.
    let bob = Some(bob.as_str());
    assert_error_status(&app.get("/api/v1/tenants/default/members", bob).await, 403);
    assert_error_status(&app.get("/api/v1/tenants/beta/members", bob).await, 404);
}

#[tokio::test]
async fn idempotency_keys_are_per_tenant() {
    let app = spawn_app().await;
    app.create_tenant("beta").await;
    let beta_key = app.create_key("beta", "ingest", "b").await;
    let first = app
        .ingest_ok(&json!({"type": "a.b", "id": "shared-id"}))
        .await;
    assert!(first[0].is_some());
    // The same key in another tenant is that tenant's own first event, not a duplicate
    // (else a tenant could probe another's ids, and lose its own events).
    let reply = app
        .post_json(
            "/api/v1/events",
            beta_key["key"].as_str(),
            r#"{"type":"a.b","id":"shared-id"}"#,
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.json);
    assert_eq!(reply.json["accepted"], 1, "{}", reply.json);
    assert_eq!(reply.json["duplicates"], 0, "{}", reply.json);
    assert_eq!(total(&app, "beta").await, 1);
    assert_eq!(total(&app, "default").await, 1);
}
