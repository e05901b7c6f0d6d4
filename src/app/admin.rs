//! Administration use cases: bootstrap, tenants, API keys.

use super::secrets::{self, new_key};
use super::{App, AppError, Principal};
use crate::model::{KeyKind, Role, TenantSlug};
use crate::store::admin as store_admin;
use crate::store::records::KeyRecord;
use crate::store::{KeyInfo, StoreError, TenantInfo};

/// What `init` (or `serve` on an empty store) sets up.
#[derive(Debug, Clone)]
pub struct BootstrapOptions {
    pub tenant: String,
    /// The first tenant's display name (its slug when absent).
    pub tenant_name: Option<String>,
    pub owner: String,
    /// Generated when absent.
    pub owner_password: Option<String>,
}

impl Default for BootstrapOptions {
    fn default() -> Self {
        BootstrapOptions {
            tenant: "default".into(),
            tenant_name: None,
            owner: "admin".into(),
            owner_password: None,
        }
    }
}

/// The secrets made by a bootstrap, shown once (masked in `Debug`).
#[derive(Clone)]
pub struct Bootstrap {
    pub tenant: String,
    pub owner: String,
    pub owner_password: String,
    pub owner_token: String,
    pub ingest_key: String,
}

/// A key just created: its record and the secret, which is never shown again (masked in
/// `Debug`).
#[derive(Clone)]
pub struct CreatedKey {
    pub info: KeyInfo,
    pub secret: String,
}

impl std::fmt::Debug for Bootstrap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bootstrap")
            .field("tenant", &self.tenant)
            .field("owner", &self.owner)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for CreatedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreatedKey")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

fn key_record(
    new: &secrets::NewKey,
    tenant: u32,
    kind: KeyKind,
    user: Option<u32>,
    name: &str,
    now: u64,
) -> KeyRecord {
    KeyRecord {
        id: 0,
        tenant,
        ingest: kind == KeyKind::Ingest,
        user,
        name: name.to_owned(),
        prefix: new.prefix.clone(),
        hash: new.hash,
        created_at: now,
    }
}

impl App {
    /// Whether the store already has its owner (so bootstrap would be refused).
    pub fn is_bootstrapped(&self) -> Result<bool, AppError> {
        Ok(self.store.snapshot()?.has_owner()?)
    }

    /// Creates the owner, the first tenant, an owner admin token and an ingest key, all in
    /// one transaction. Refused with a conflict when the store already has an owner.
    pub async fn bootstrap(
        &self,
        options: BootstrapOptions,
        now: u64,
    ) -> Result<Bootstrap, AppError> {
        let slug = TenantSlug::parse(&options.tenant).ok_or_else(|| {
            AppError::field(
                "invalid_slug",
                "tenant",
                "tenant slugs are [a-z0-9][a-z0-9-]{0,62}",
            )
        })?;
        if options.owner.is_empty() || options.owner.len() > 64 {
            return Err(AppError::field(
                "invalid_field",
                "owner",
                "1 to 64 characters",
            ));
        }
        let password = match options.owner_password {
            Some(p) if !p.is_empty() => p,
            Some(_) => {
                return Err(AppError::field(
                    "invalid_field",
                    "owner_password",
                    "must not be empty",
                ))
            }
            None => secrets::random_password()?,
        };
        let password_hash = secrets::hash_password(&password)?;
        let admin = new_key(KeyKind::Admin)?;
        let ingest = new_key(KeyKind::Ingest)?;
        let owner = options.owner.clone();
        let (admin_hash, ingest_hash) = (admin.hash, ingest.hash);
        let admin_prefix = admin.prefix.clone();
        let ingest_prefix = ingest.prefix.clone();
        let slug_text = slug.as_str().to_owned();
        let tenant_name = options
            .tenant_name
            .clone()
            .map(|n| n.trim().to_owned())
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| slug_text.clone());
        let keys = self
            .store
            .write(move |txn| {
                if store_admin::has_users(txn)? {
                    return Err(StoreError::Conflict("an owner".into()));
                }
                let tenant = store_admin::create_tenant(txn, &slug_text, &tenant_name, now)?;
                let user = store_admin::create_user(txn, &owner, &password_hash, true, now)?;
                store_admin::set_member(txn, tenant.id, user.id, Role::Admin)?;
                let admin_key = store_admin::insert_key(
                    txn,
                    KeyRecord {
                        id: 0,
                        tenant: tenant.id,
                        ingest: false,
                        user: Some(user.id),
                        name: "owner token".into(),
                        prefix: admin_prefix,
                        hash: admin_hash,
                        created_at: now,
                    },
                )?;
                let ingest_key = store_admin::insert_key(
                    txn,
                    KeyRecord {
                        id: 0,
                        tenant: tenant.id,
                        ingest: true,
                        user: None,
                        name: "first ingest key".into(),
                        prefix: ingest_prefix,
                        hash: ingest_hash,
                        created_at: now,
                    },
                )?;
                Ok([admin_key, ingest_key])
            })
            .await
            .map_err(|e| match e {
                StoreError::Conflict(_) => AppError::Conflict {
                    code: "already_initialised",
                    message: "this store already has an owner; nothing was changed".into(),
                },
                other => other.into(),
            })?;
        for key in keys {
            self.cache_key(key);
        }
        Ok(Bootstrap {
            tenant: slug.as_str().to_owned(),
            owner: options.owner,
            owner_password: password,
            owner_token: admin.secret,
            ingest_key: ingest.secret,
        })
    }

    /// Tenants the caller can see: all for the owner, their memberships otherwise.
    pub async fn list_tenants(&self, principal: &Principal) -> Result<Vec<TenantInfo>, AppError> {
        let principal = *principal;
        let tenants = self
            .store
            .read(move |snap| {
                let all = snap.tenants()?;
                let mut visible = Vec::new();
                for t in all {
                    let sees = match principal {
                        Principal::User { owner: true, .. } => true,
                        Principal::User { user, .. } => snap.member_role(t.id, user)?.is_some(),
                        Principal::Ingest { tenant, .. } => tenant == t.id,
                    };
                    if sees {
                        visible.push(t);
                    }
                }
                Ok(visible)
            })
            .await?;
        Ok(tenants)
    }

    /// Creates a tenant (server owner only).
    pub async fn create_tenant(
        &self,
        principal: &Principal,
        slug: &str,
        name: Option<&str>,
        now: u64,
    ) -> Result<TenantInfo, AppError> {
        let Principal::User {
            owner: true, user, ..
        } = *principal
        else {
            return Err(AppError::Forbidden(
                "only the server owner may create tenants".into(),
            ));
        };
        let slug = TenantSlug::parse(slug).ok_or_else(|| {
            AppError::field(
                "invalid_slug",
                "slug",
                "tenant slugs are [a-z0-9][a-z0-9-]{0,62}",
            )
        })?;
        if slug.as_str() == super::SYSTEM_TENANT {
            return Err(AppError::Conflict {
                code: "tenant_exists",
                message: format!("the tenant {slug} is reserved for gatewatch's own events"),
            });
        }
        let name = name.unwrap_or(slug.as_str()).trim().to_owned();
        if name.is_empty() || name.chars().count() > 128 {
            return Err(AppError::field(
                "invalid_field",
                "name",
                "1 to 128 characters",
            ));
        }
        let slug_text = slug.as_str().to_owned();
        self.store
            .write(move |txn| {
                let tenant = store_admin::create_tenant(txn, &slug_text, &name, now)?;
                store_admin::set_member(txn, tenant.id, user, Role::Admin)?;
                Ok(tenant)
            })
            .await
            .map_err(|e| match e {
                StoreError::Conflict(_) => AppError::Conflict {
                    code: "tenant_exists",
                    message: format!("a tenant named {slug} already exists"),
                },
                other => other.into(),
            })
    }

    /// Creates an API key in `slug` (tenant admin). Admin keys act as their creator, or, when
    /// the server owner names one, as user `for_user`.
    pub async fn create_key(
        &self,
        principal: &Principal,
        slug: &str,
        kind: KeyKind,
        name: &str,
        for_user: Option<&str>,
        now: u64,
    ) -> Result<CreatedKey, AppError> {
        let tenant = self.tenant_for(principal, slug, Role::Admin).await?;
        let Principal::User { user, .. } = *principal else {
            return Err(AppError::Forbidden("ingest keys cannot make keys".into()));
        };
        let user = match for_user {
            Some(_) if kind == KeyKind::Ingest => {
                return Err(AppError::field(
                    "invalid_field",
                    "user",
                    "only admin keys act as a user",
                ))
            }
            Some(name) => self.user_for_key(principal, name).await?,
            None => user,
        };
        let name = name.trim();
        if name.chars().count() > 128 {
            return Err(AppError::field(
                "invalid_field",
                "name",
                "at most 128 characters",
            ));
        }
        let new = new_key(kind)?;
        let user = (kind == KeyKind::Admin).then_some(user);
        let record = key_record(&new, tenant.id, kind, user, name, now);
        let info = self
            .store
            .write(move |txn| store_admin::insert_key(txn, record))
            .await?;
        self.cache_key(info.clone());
        Ok(CreatedKey {
            info,
            secret: new.secret,
        })
    }

    /// The keys of `slug` (tenant admin), without secrets.
    pub async fn list_keys(
        &self,
        principal: &Principal,
        slug: &str,
    ) -> Result<Vec<KeyInfo>, AppError> {
        let tenant = self.tenant_for(principal, slug, Role::Admin).await?;
        let keys = self.keys.read().unwrap_or_else(|p| p.into_inner());
        let mut list: Vec<KeyInfo> = keys
            .values()
            .filter(|k| k.tenant == tenant.id)
            .cloned()
            .collect();
        list.sort_by_key(|k| k.id);
        Ok(list)
    }

    /// Revokes key `id` of `slug` (tenant admin). It stops working at once.
    pub async fn revoke_key(
        &self,
        principal: &Principal,
        slug: &str,
        id: u64,
    ) -> Result<(), AppError> {
        let tenant = self.tenant_for(principal, slug, Role::Admin).await?;
        let removed = self
            .store
            .write(move |txn| store_admin::delete_key(txn, tenant.id, id))
            .await?;
        self.uncache_key(&removed.hash);
        Ok(())
    }
}
