//! Background jobs: loops that call `app` on a schedule and stop when shutdown is signalled.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::app::App;
use crate::model::time::now_ms;

/// How often expired idempotency keys are pruned.
pub const DEDUP_PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// Starts every background job; each ends when `shutdown` turns `true`.
pub fn spawn_all(
    app: Arc<App>,
    shutdown: watch::Receiver<bool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    vec![tokio::spawn(prune_dedup_keys(app, shutdown))]
}

/// Deletes idempotency keys older than the 7-day window and expired dashboard sessions, once
/// an hour (and once at start).
async fn prune_dedup_keys(app: Arc<App>, mut shutdown: watch::Receiver<bool>) {
    loop {
        match app.prune_dedup_keys(now_ms()).await {
            Ok(0) => {}
            Ok(removed) => tracing::info!(removed, "pruned expired idempotency keys"),
            Err(error) => tracing::warn!(%error, "pruning idempotency keys failed"),
        }
        match app.prune_sessions(now_ms()).await {
            Ok(0) => {}
            Ok(removed) => tracing::info!(removed, "pruned expired dashboard sessions"),
            Err(error) => tracing::warn!(%error, "pruning dashboard sessions failed"),
        }
        tokio::select! {
            _ = tokio::time::sleep(DEDUP_PRUNE_EVERY) => {}
            _ = shutdown.changed() => return,
        }
    }
}
