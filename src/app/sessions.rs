//! Dashboard logins and sessions: password check (argon2id, off the async runtime), login
//! throttling, sessions stored hashed and mirrored in memory, and the record of every login
//! attempt as an event of the `system` tenant (so the owner can watch attacks on the
//! dashboard with the dashboard).

use std::net::IpAddr;
use std::sync::OnceLock;

use super::secrets;
use super::throttle::ThrottlePolicy;
use super::{App, AppError, Principal};
use crate::ingest::{strip_controls, truncate_bytes};
use crate::model::{Event, EventType, Outcome};
use crate::store::admin as store_admin;
use crate::store::records::SessionRecord;

/// The tenant that holds gatewatch's own security events (dashboard logins). Reserved:
/// nobody else may create a tenant of that slug.
pub const SYSTEM_TENANT: &str = "system";

/// How the dashboard's logins behave (from `Config`).
#[derive(Debug, Clone)]
pub struct WebSettings {
    /// A session ends this long after its login.
    pub session_ttl_ms: u64,
    /// Mark the session cookie `Secure` (served over TLS, directly or behind a proxy).
    pub secure_cookies: bool,
    pub throttle: ThrottlePolicy,
}

impl Default for WebSettings {
    fn default() -> Self {
        WebSettings {
            session_ttl_ms: 12 * 3600 * 1000,
            secure_cookies: false,
            throttle: ThrottlePolicy::default(),
        }
    }
}

/// A logged-in dashboard user.
#[derive(Clone)]
pub struct Session {
    pub user: u32,
    pub name: String,
    pub owner: bool,
    /// The token every state-changing form must carry.
    pub csrf: String,
    pub expires_at: u64,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("user", &self.user)
            .field("name", &self.name)
            .field("owner", &self.owner)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

impl Session {
    /// The session acting as its user, as an admin token would.
    pub fn principal(&self) -> Principal {
        Principal::User {
            user: self.user,
            owner: self.owner,
            key_id: 0,
        }
    }
}

/// A login attempt, as the dashboard received it.
#[derive(Debug, Clone, Copy)]
pub struct LoginAttempt<'a> {
    pub user: &'a str,
    pub password: &'a str,
    pub ip: Option<IpAddr>,
    pub user_agent: Option<&'a str>,
}

/// A session just opened: the secret for the cookie (never stored) and the session.
pub struct NewSession {
    pub secret: String,
    pub session: Session,
}

/// Longest user name or password looked at: longer ones cannot be right, and hashing a
/// megabyte-long password is a cheap way to burn our CPU.
const MAX_CREDENTIAL_BYTES: usize = 1024;

impl App {
    /// The dashboard's login settings.
    pub fn web_settings(&self) -> &WebSettings {
        &self.web
    }

    /// Checks a user name and password and opens a session. Throttled attempts are refused
    /// before the password is looked at. Every attempt is recorded in the system tenant.
    pub async fn login(&self, attempt: LoginAttempt<'_>, now: u64) -> Result<NewSession, AppError> {
        let throttled = self
            .throttle
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .check(attempt.ip, attempt.user, now);
        if let Some(wait) = throttled {
            self.record_login(&attempt, Outcome::RateLimited, now).await;
            let seconds = wait.retry_after_ms.div_ceil(1000).max(1);
            let message = if wait.blocked {
                format!("too many failed logins; blocked for {seconds} s")
            } else {
                format!("too many failed logins; wait {seconds} s before trying again")
            };
            return Err(AppError::Throttled {
                message,
                retry_after_s: u32::try_from(seconds).unwrap_or(u32::MAX),
            });
        }
        let user = match self.check_password(&attempt).await? {
            Some(user) => user,
            None => {
                self.throttle
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .record_failure(attempt.ip, attempt.user, now);
                self.record_login(&attempt, Outcome::Failure, now).await;
                return Err(AppError::Unauthorized("wrong user name or password".into()));
            }
        };
        self.throttle
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .record_success(attempt.user);
        let secret = secrets::hex(&secrets::random_bytes::<32>()?);
        let record = SessionRecord {
            hash: secrets::hash_key(&secret),
            user: user.id,
            csrf: secrets::hex(&secrets::random_bytes::<24>()?),
            created_at: now,
            expires_at: now.saturating_add(self.web.session_ttl_ms),
        };
        let stored = record.clone();
        self.store
            .write(move |txn| store_admin::insert_session(txn, &stored))
            .await?;
        self.sessions
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(record.hash, record.clone());
        self.record_login(&attempt, Outcome::Success, now).await;
        Ok(NewSession {
            secret,
            session: Session {
                user: user.id,
                name: user.name,
                owner: user.owner,
                csrf: record.csrf,
                expires_at: record.expires_at,
            },
        })
    }

    /// The live session of a cookie's secret, if any. An expired session is not one.
    pub async fn session(&self, secret: &str, now: u64) -> Result<Option<Session>, AppError> {
        let hash = secrets::hash_key(secret);
        let record = {
            let sessions = self.sessions.read().unwrap_or_else(|p| p.into_inner());
            match sessions.get(&hash) {
                Some(r) if r.expires_at > now => r.clone(),
                _ => return Ok(None),
            }
        };
        let user = record.user;
        let Some(info) = self.store.read(move |snap| snap.user(user)).await? else {
            return Ok(None);
        };
        Ok(Some(Session {
            user: info.id,
            name: info.name,
            owner: info.owner,
            csrf: record.csrf,
            expires_at: record.expires_at,
        }))
    }

    /// Ends the session of a cookie's secret (a no-op for an unknown one).
    pub async fn logout(&self, secret: &str) -> Result<(), AppError> {
        let hash = secrets::hash_key(secret);
        let known = self
            .sessions
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&hash)
            .is_some();
        if known {
            self.store
                .write(move |txn| store_admin::delete_sessions(txn, &[hash]))
                .await?;
        }
        Ok(())
    }

    /// Forgets sessions past their expiry (a job calls this hourly); returns how many.
    pub async fn prune_sessions(&self, now: u64) -> Result<usize, AppError> {
        let expired: Vec<[u8; 32]> = {
            let mut sessions = self.sessions.write().unwrap_or_else(|p| p.into_inner());
            let expired: Vec<_> = sessions
                .values()
                .filter(|r| r.expires_at <= now)
                .map(|r| r.hash)
                .collect();
            for hash in &expired {
                sessions.remove(hash);
            }
            expired
        };
        let count = expired.len();
        if count > 0 {
            self.store
                .write(move |txn| store_admin::delete_sessions(txn, &expired))
                .await?;
        }
        Ok(count)
    }

    /// The user whose name and password these are. Unknown names are checked against a
    /// dummy hash, so that timing does not tell which names exist.
    async fn check_password(
        &self,
        attempt: &LoginAttempt<'_>,
    ) -> Result<Option<crate::store::UserInfo>, AppError> {
        if attempt.user.len() > MAX_CREDENTIAL_BYTES
            || attempt.password.len() > MAX_CREDENTIAL_BYTES
        {
            return Ok(None);
        }
        let name = attempt.user.to_owned();
        let user = self
            .store
            .read(move |snap| snap.user_by_name(&name))
            .await?;
        let password = attempt.password.to_owned();
        let phc = user.as_ref().map(|u| u.password_hash.clone());
        let matches = tokio::task::spawn_blocking(move || match phc {
            Some(phc) => secrets::verify_password(&password, &phc),
            None => {
                let _ = secrets::verify_password(&password, dummy_hash());
                false
            }
        })
        .await
        .map_err(|e| AppError::Internal(format!("password check failed: {e}")))?;
        Ok(user.filter(|_| matches))
    }

    /// Records a login attempt in the system tenant. A failure to record is logged, never
    /// turned into a failed login: the dashboard must stay usable while the store is busy.
    async fn record_login(&self, attempt: &LoginAttempt<'_>, outcome: Outcome, now: u64) {
        let kind = match outcome {
            Outcome::Success => "dashboard.login",
            Outcome::RateLimited => "dashboard.login_throttled",
            _ => "dashboard.login_failed",
        };
        let result = async {
            let tenant = self.system_tenant(now).await?;
            let event_type = EventType::parse(kind)
                .ok_or_else(|| AppError::Internal(format!("{kind} is not an event type")))?;
            let mut event = Event::new(event_type, now);
            event.outcome = outcome;
            event.user_id =
                Some(truncate_bytes(strip_controls(attempt.user), 128)).filter(|u| !u.is_empty());
            event.ip = attempt.ip.map(crate::ingest::canonical_ip);
            event.user_agent = attempt
                .user_agent
                .map(|ua| truncate_bytes(strip_controls(ua), 512));
            event.method = Some("POST".into());
            event.route = Some("/login".into());
            self.store.ingest(tenant, now, vec![event]).await?;
            Ok::<(), AppError>(())
        };
        if let Err(error) = result.await {
            tracing::warn!(%error, "could not record a login attempt");
        }
    }

    /// The id of the system tenant, created on first use.
    async fn system_tenant(&self, now: u64) -> Result<u32, AppError> {
        if let Some(id) = self.system_tenant.get() {
            return Ok(*id);
        }
        let tenant = self
            .store
            .write(move |txn| {
                store_admin::tenant_or_create(txn, SYSTEM_TENANT, "gatewatch dashboard logins", now)
            })
            .await?;
        Ok(*self.system_tenant.get_or_init(|| tenant.id))
    }
}

/// A valid argon2id hash of a random password, computed once: what unknown user names are
/// checked against.
fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| {
        secrets::hash_password("not a real password: unknown user names are checked against me")
            .unwrap_or_default()
    })
}
