//! The demo's edge: sets the demo up through `App` use cases, loads the generated history
//! into the store in group-committed batches, and feeds live traffic until shutdown. Like
//! `jobs`, the live loop reads the clock; everything it ingests comes from the pure
//! [`super::Generator`].

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::{
    Generator, Traffic, JOIN_TENANT, JOIN_TENANT_NAME, OAUTH_TENANT, OWNER, OWNER_PASSWORD, VIEWER,
    VIEWER_PASSWORD,
};
use crate::app::{App, AppError, BootstrapOptions};
use crate::model::time::now_ms;
use crate::model::{Event, KeyKind, Role};
use crate::store::{Store, StoreError};

/// Events per `Store::ingest` call while filling.
pub const FILL_BATCH: usize = 5_000;
/// How often live traffic is sent.
pub const LIVE_EVERY: Duration = Duration::from_secs(1);

/// What the demo set up, secrets included (shown by the demo, which is throwaway).
#[derive(Clone)]
pub struct DemoSetup {
    pub owner_token: String,
    /// An ingest key of each tenant.
    pub oauth_key: String,
    pub join_key: String,
    /// Store ids of the two tenants.
    pub oauth_tenant: u32,
    pub join_tenant: u32,
}

impl std::fmt::Debug for DemoSetup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DemoSetup")
            .field("oauth_tenant", &self.oauth_tenant)
            .field("join_tenant", &self.join_tenant)
            .finish_non_exhaustive()
    }
}

/// Bootstraps an empty store for the demo: owner [`OWNER`] with [`OWNER_PASSWORD`], the
/// OAuth tenant (as the bootstrap tenant, so there is no empty `default`), the join-link
/// tenant, user [`VIEWER`] as a viewer of both, and an ingest key in each.
pub async fn setup(app: &App, now: u64) -> Result<DemoSetup, AppError> {
    let boot = app
        .bootstrap(
            BootstrapOptions {
                tenant: OAUTH_TENANT.into(),
                tenant_name: Some(super::OAUTH_TENANT_NAME.into()),
                owner: OWNER.into(),
                owner_password: Some(OWNER_PASSWORD.into()),
            },
            now,
        )
        .await?;
    let owner = app.authenticate(&boot.owner_token).await?;
    let join = app
        .create_tenant(&owner, JOIN_TENANT, Some(JOIN_TENANT_NAME), now)
        .await?;
    let oauth = app.tenant_for(&owner, OAUTH_TENANT, Role::Admin).await?;
    app.create_user(&owner, VIEWER, VIEWER_PASSWORD, now)
        .await?;
    for tenant in [OAUTH_TENANT, JOIN_TENANT] {
        app.set_member(&owner, tenant, VIEWER, Role::Viewer).await?;
    }
    let join_key = app
        .create_key(
            &owner,
            JOIN_TENANT,
            KeyKind::Ingest,
            "demo ingest key",
            None,
            now,
        )
        .await?;
    Ok(DemoSetup {
        owner_token: boot.owner_token,
        oauth_key: boot.ingest_key,
        join_key: join_key.secret,
        oauth_tenant: oauth.id,
        join_tenant: join.id,
    })
}

/// Appends `events` (in time order) of `tenant` in batches of [`FILL_BATCH`], each
/// received at its last event's time. Returns how many were stored.
async fn ingest_all(store: &Store, tenant: u32, events: Vec<Event>) -> Result<usize, StoreError> {
    let mut stored = 0;
    let mut events = events.into_iter().peekable();
    while events.peek().is_some() {
        let batch: Vec<Event> = events.by_ref().take(FILL_BATCH).collect();
        let received_at = batch.iter().map(|e| e.ts).max().unwrap_or_default();
        let ids = store.ingest(tenant, received_at, batch).await?;
        stored += ids.iter().filter(|id| id.is_some()).count();
    }
    Ok(stored)
}

/// Loads `traffic` into the two demo tenants. Returns how many events were stored.
pub async fn fill(store: &Store, setup: &DemoSetup, traffic: Traffic) -> Result<usize, StoreError> {
    // Both tenants at once: one batch is prepared while the writer commits the other.
    let (oauth, join) = tokio::join!(
        ingest_all(store, setup.oauth_tenant, traffic.oauth),
        ingest_all(store, setup.join_tenant, traffic.join)
    );
    Ok(oauth? + join?)
}

/// Ingests `generator`'s live traffic every [`LIVE_EVERY`] until `shutdown` turns `true`
/// (or its sender goes away).
pub async fn live(
    app: Arc<App>,
    setup: DemoSetup,
    mut generator: Generator,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut every = tokio::time::interval(LIVE_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = every.tick() => {}
            _ = shutdown.changed() => return,
        }
        if *shutdown.borrow() {
            return;
        }
        let now = now_ms();
        let traffic = generator.tick(now);
        for (tenant, events) in [
            (setup.oauth_tenant, traffic.oauth),
            (setup.join_tenant, traffic.join),
        ] {
            if events.is_empty() {
                continue;
            }
            if let Err(error) = app.store().ingest(tenant, now, events).await {
                tracing::warn!(%error, "demo live traffic could not be stored");
            }
        }
    }
}
