use super::*;
use crate::store::WriterConfig;

const NOW: u64 = 1_795_000_000_000;

async fn app() -> (tempfile::TempDir, App, Bootstrap) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(dir.path(), WriterConfig::default()).expect("opens");
    let app = App::new(store).expect("app");
    let boot = app
        .bootstrap(BootstrapOptions::default(), NOW)
        .await
        .expect("bootstraps");
    (dir, app, boot)
}

#[tokio::test]
async fn bootstrap_once_and_keys_authenticate() {
    let (_dir, app, boot) = app().await;
    assert!(matches!(
        app.authenticate(&boot.ingest_key).await,
        Ok(Principal::Ingest { .. })
    ));
    assert!(matches!(
        app.authenticate(&boot.owner_token).await,
        Ok(Principal::User { owner: true, .. })
    ));
    assert!(matches!(
        app.authenticate("gw_ingest_nope").await,
        Err(AppError::Unauthorized(_))
    ));
    let again = app.bootstrap(BootstrapOptions::default(), NOW).await;
    assert!(matches!(again, Err(AppError::Conflict { .. })));
}

#[tokio::test]
async fn tenant_walls() {
    let (_dir, app, boot) = app().await;
    let owner = app.authenticate(&boot.owner_token).await.expect("auth");
    let ingest = app.authenticate(&boot.ingest_key).await.expect("auth");
    app.create_tenant(&owner, "other", None, NOW)
        .await
        .expect("creates");
    let other_key = app
        .create_key(
            &owner,
            "other",
            crate::model::KeyKind::Ingest,
            "k",
            None,
            NOW,
        )
        .await
        .expect("key");
    let other = app.authenticate(&other_key.secret).await.expect("auth");
    // An ingest key reading its own tenant is forbidden; another tenant is not found.
    assert!(matches!(
        app.tenant_for(&ingest, "default", Role::Viewer).await,
        Err(AppError::Forbidden(_))
    ));
    assert!(matches!(
        app.tenant_for(&other, "default", Role::Viewer).await,
        Err(AppError::NotFound(_))
    ));
    app.revoke_key(&owner, "other", other_key.info.id)
        .await
        .expect("revokes");
    assert!(app.authenticate(&other_key.secret).await.is_err());
    // Revoking through the wrong tenant is not found.
    let k = app
        .create_key(
            &owner,
            "other",
            crate::model::KeyKind::Ingest,
            "k2",
            None,
            NOW,
        )
        .await
        .expect("key");
    assert!(matches!(
        app.revoke_key(&owner, "default", k.info.id).await,
        Err(AppError::NotFound(_))
    ));
}

#[tokio::test]
async fn ingest_then_read_stats_and_events() {
    let (_dir, app, boot) = app().await;
    let ingest = app.authenticate(&boot.ingest_key).await.expect("auth");
    let owner = app.authenticate(&boot.owner_token).await.expect("auth");
    let body = br#"[{"type":"token.issued","grant_type":"authorization_code","client_id":"web"},
        {"type":"token.refreshed","client_id":"web"},{"type":"auth.invalid_client"}]"#;
    let receipt = app
        .ingest(&ingest, body, crate::ingest::BodyFormat::Json, NOW)
        .await
        .expect("ingests");
    assert_eq!(receipt.accepted, 3);
    let stats = app
        .stats(
            &owner,
            "default",
            TimeSpec::default(),
            Default::default(),
            NOW + 1,
        )
        .await
        .expect("stats");
    assert_eq!(stats.total_events, 3);
    assert_eq!(stats.total_failed, 1);
    assert_eq!(
        stats.issued_by_grant_type.get("authorization_code"),
        Some(&1)
    );
    assert!((stats.refresh_rate() - 1.0).abs() < 1e-9);
    let web = app
        .stats(
            &owner,
            "default",
            TimeSpec::default(),
            crate::query::StatsFilter {
                client_id: Some("web".into()),
                user_id: None,
            },
            NOW + 1,
        )
        .await
        .expect("stats");
    assert_eq!(web.total_events, 2);
    assert_eq!(web.issued_by_grant_type.get("authorization_code"), Some(&1));
    let page = app
        .list_events(&owner, "default", EventQuery::default(), NOW + 1)
        .await
        .expect("lists");
    assert_eq!(page.events.len(), 3);
    assert_eq!(page.events[0].seq, 3);
}
