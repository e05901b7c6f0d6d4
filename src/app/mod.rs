//! `App`: every use case, written once. `http`, `cli` and `jobs` call these methods; none of
//! them decides anything on its own.
//!
//! Methods take `now` (epoch ms) from the caller so that they are testable without a clock.

mod admin;
mod error;
mod reads;
pub mod secrets;
mod sessions;
mod throttle;
mod users;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock, RwLock};

pub use admin::{Bootstrap, BootstrapOptions, CreatedKey};
pub use error::AppError;
pub use reads::{
    encode_cursor, parse_ip_filter, parse_time_param, EventExport, EventQuery, SeriesQuery,
    TimeSpec, TopQuery,
};
pub use sessions::{LoginAttempt, NewSession, Session, WebSettings, SYSTEM_TENANT};
pub use throttle::ThrottlePolicy;

use crate::ingest::{self, BodyFormat};
use crate::model::{Role, TenantSlug};
use crate::store::records::SessionRecord;
use crate::store::{IngestIds, KeyInfo, Store, TenantInfo};

/// Who is calling, once their bearer key is verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Principal {
    /// An ingest key: may ingest into (and check against) its one tenant, nothing else.
    Ingest { tenant: u32, key_id: u64 },
    /// A user, through an admin token.
    User { user: u32, owner: bool, key_id: u64 },
}

/// The application: the store plus in-memory state mirrored from it.
pub struct App {
    store: Store,
    /// SHA-256 of each live key → its record. Mirrors the `api_keys` table.
    keys: RwLock<HashMap<[u8; 32], KeyInfo>>,
    /// SHA-256 of each dashboard session's secret → its record. Mirrors `sessions`.
    sessions: RwLock<HashMap<[u8; 32], SessionRecord>>,
    throttle: Mutex<throttle::LoginThrottle>,
    web: WebSettings,
    /// The id of the tenant of gatewatch's own events, once known.
    system_tenant: OnceLock<u32>,
    shutting_down: AtomicBool,
}

/// What an ingest request got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngestReceipt {
    pub accepted: usize,
    pub duplicates: usize,
    pub ids: IngestIds,
}

impl App {
    /// Builds the application over an open store with the default dashboard settings.
    pub fn new(store: Store) -> Result<App, AppError> {
        App::with_settings(store, WebSettings::default())
    }

    /// Builds the application over an open store, loading the key and session caches.
    pub fn with_settings(store: Store, web: WebSettings) -> Result<App, AppError> {
        let snapshot = store.snapshot()?;
        let keys = snapshot.keys()?.into_iter().map(|k| (k.hash, k)).collect();
        let sessions = snapshot
            .sessions()?
            .into_iter()
            .map(|s| (s.hash, s))
            .collect();
        drop(snapshot);
        Ok(App {
            store,
            keys: RwLock::new(keys),
            sessions: RwLock::new(sessions),
            throttle: Mutex::new(throttle::LoginThrottle::new(web.throttle)),
            web,
            system_tenant: OnceLock::new(),
            shutting_down: AtomicBool::new(false),
        })
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Ready to serve: the store is open, its writer runs, and we are not shutting down.
    pub fn is_ready(&self) -> bool {
        !self.shutting_down.load(Ordering::Acquire) && self.store.is_writable()
    }

    /// Marks the start of shutdown: readiness turns false at once.
    pub fn begin_shutdown(&self) {
        self.shutting_down.store(true, Ordering::Release);
    }

    /// Verifies a bearer key.
    pub async fn authenticate(&self, bearer: &str) -> Result<Principal, AppError> {
        let hash = secrets::hash_key(bearer);
        // The map is keyed by the SHA-256 of the secret, so the lookup compares hashes of a
        // presented key, never the secret itself: timing reveals nothing usable.
        let (key_id, tenant, ingest, user) = {
            let keys = self.keys.read().unwrap_or_else(|p| p.into_inner());
            let key = keys
                .get(&hash)
                .ok_or_else(|| AppError::Unauthorized("unknown or revoked API key".into()))?;
            (key.id, key.tenant, key.ingest, key.user)
        };
        match (ingest, user) {
            (true, _) => Ok(Principal::Ingest { tenant, key_id }),
            (false, Some(user)) => {
                let info = self.store.read(move |snap| snap.user(user)).await?;
                let info = info.ok_or_else(|| {
                    AppError::Unauthorized("the key's user no longer exists".into())
                })?;
                Ok(Principal::User {
                    user,
                    owner: info.owner,
                    key_id,
                })
            }
            (false, None) => Err(AppError::Internal(format!(
                "admin key {key_id} has no user"
            ))),
        }
    }

    /// The tenant `slug` if `principal` may act in it with at least `role`.
    ///
    /// A tenant the caller cannot see is "not found" (no existence leak); one they can see
    /// with too low a role is "forbidden". Ingest keys see only their tenant, and only for
    /// ingest and check.
    pub async fn tenant_for(
        &self,
        principal: &Principal,
        slug: &str,
        role: Role,
    ) -> Result<TenantInfo, AppError> {
        let (tenant, have) = self.tenant_access(principal, slug).await?;
        if have >= role {
            Ok(tenant)
        } else {
            Err(AppError::Forbidden(format!(
                "this needs the {} role in tenant {}",
                role.as_str(),
                tenant.slug
            )))
        }
    }

    /// The tenant `slug` and the role `principal` has in it (the owner is an admin
    /// everywhere). A tenant the caller cannot see is "not found"; for an ingest key its
    /// own tenant is "forbidden": it may only ingest and check.
    pub async fn tenant_access(
        &self,
        principal: &Principal,
        slug: &str,
    ) -> Result<(TenantInfo, Role), AppError> {
        let not_found = || AppError::NotFound(format!("tenant {slug} not found"));
        let slug = TenantSlug::parse(slug).ok_or_else(not_found)?;
        let member = match *principal {
            Principal::User { user, .. } => Some(user),
            Principal::Ingest { .. } => None,
        };
        let name = slug.as_str().to_owned();
        let (tenant, member_role) = self
            .store
            .read(move |snap| {
                let Some(tenant) = snap.tenant_by_slug(&name)? else {
                    return Ok((None, None));
                };
                let role = match member {
                    Some(user) => snap.member_role(tenant.id, user)?,
                    None => None,
                };
                Ok((Some(tenant), role))
            })
            .await?;
        let tenant = tenant.ok_or_else(not_found)?;
        match *principal {
            Principal::User { owner: true, .. } => Ok((tenant, Role::Admin)),
            Principal::User { .. } => match member_role {
                Some(have) => Ok((tenant, have)),
                None => Err(not_found()),
            },
            Principal::Ingest { tenant: own, .. } if own == tenant.id => Err(AppError::Forbidden(
                "ingest keys may only send events and ask for decisions".into(),
            )),
            Principal::Ingest { .. } => Err(not_found()),
        }
    }

    /// Validates and durably stores a request body of events for the key's tenant.
    pub async fn ingest(
        &self,
        principal: &Principal,
        body: &[u8],
        format: BodyFormat,
        now: u64,
    ) -> Result<IngestReceipt, AppError> {
        let Principal::Ingest { tenant, .. } = *principal else {
            return Err(AppError::Forbidden(
                "sending events needs an ingest key (gw_ingest_…)".into(),
            ));
        };
        if self.shutting_down.load(Ordering::Acquire) {
            return Err(AppError::Unavailable {
                message: "shutting down".into(),
                retry_after_s: 5,
            });
        }
        let events = ingest::parse_body(body, format, now)?;
        let ids = self.store.ingest(tenant, now, events).await?;
        let accepted = ids.iter().filter(|id| id.is_some()).count();
        Ok(IngestReceipt {
            accepted,
            duplicates: ids.len() - accepted,
            ids,
        })
    }

    /// Forgets idempotency keys past their 7-day window (a job calls this hourly).
    pub async fn prune_dedup_keys(&self, now: u64) -> Result<u64, AppError> {
        Ok(self.store.prune_dedup_keys(now).await?)
    }

    fn cache_key(&self, key: KeyInfo) {
        let mut keys = self.keys.write().unwrap_or_else(|p| p.into_inner());
        keys.insert(key.hash, key);
    }

    fn uncache_key(&self, hash: &[u8; 32]) {
        let mut keys = self.keys.write().unwrap_or_else(|p| p.into_inner());
        keys.remove(hash);
    }
}

#[cfg(test)]
mod tests;
