//! Tenants, users, memberships and API keys: the write side (functions over a write
//! transaction, run through [`super::Store::write`]) and the read side ([`Snapshot`] methods).

use redb::{ReadableTable, WriteTransaction};

use super::codec::{decode, encode};
use super::read::Snapshot;
use super::records::{KeyRecord, SessionRecord, TenantRecord, UserRecord};
use super::tables::*;
use super::StoreError;
use crate::model::Role;

/// A tenant as the rest of the program sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantInfo {
    pub id: u32,
    pub slug: String,
    pub name: String,
    pub created_at: u64,
}

/// A user, with the password hash for login checks (masked in `Debug`).
#[derive(Clone)]
pub struct UserInfo {
    pub id: u32,
    pub name: String,
    pub password_hash: String,
    pub owner: bool,
    pub created_at: u64,
}

impl std::fmt::Debug for UserInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserInfo")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("password_hash", &"<masked>")
            .field("owner", &self.owner)
            .field("created_at", &self.created_at)
            .finish()
    }
}

/// A member of a tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberInfo {
    pub user_id: u32,
    pub name: String,
    pub role: Role,
}

/// An API key record (the secret's hash, never the secret).
pub type KeyInfo = KeyRecord;

fn next_id(txn: &WriteTransaction, counter: &str) -> Result<u64, StoreError> {
    let mut meta = txn.open_table(META)?;
    let id = meta.get(counter)?.map_or(1, |v| v.value());
    meta.insert(counter, id + 1)?;
    Ok(id)
}

pub fn create_tenant(
    txn: &WriteTransaction,
    slug: &str,
    name: &str,
    now: u64,
) -> Result<TenantInfo, StoreError> {
    let mut slugs = txn.open_table(TENANT_SLUGS)?;
    if slugs.get(slug)?.is_some() {
        return Err(StoreError::Conflict(format!("tenant {slug}")));
    }
    let id = u32::try_from(next_id(txn, META_NEXT_TENANT)?)
        .map_err(|_| StoreError::Storage("tenant ids exhausted".into()))?;
    let record = TenantRecord {
        slug: slug.to_owned(),
        name: name.to_owned(),
        created_at: now,
    };
    txn.open_table(TENANTS)?
        .insert(id, encode(&record)?.as_slice())?;
    slugs.insert(slug, id)?;
    Ok(TenantInfo {
        id,
        slug: record.slug,
        name: record.name,
        created_at: now,
    })
}

pub fn create_user(
    txn: &WriteTransaction,
    name: &str,
    password_hash: &str,
    owner: bool,
    now: u64,
) -> Result<UserInfo, StoreError> {
    let mut names = txn.open_table(USER_NAMES)?;
    if names.get(name)?.is_some() {
        return Err(StoreError::Conflict(format!("user {name}")));
    }
    let id = u32::try_from(next_id(txn, META_NEXT_USER)?)
        .map_err(|_| StoreError::Storage("user ids exhausted".into()))?;
    let record = UserRecord {
        name: name.to_owned(),
        password_hash: password_hash.to_owned(),
        owner,
        created_at: now,
    };
    txn.open_table(USERS)?
        .insert(id, encode(&record)?.as_slice())?;
    names.insert(name, id)?;
    Ok(UserInfo {
        id,
        name: record.name,
        password_hash: record.password_hash,
        owner,
        created_at: now,
    })
}

/// Whether any user exists (bootstrap runs only on a store without one).
pub fn has_users(txn: &WriteTransaction) -> Result<bool, StoreError> {
    Ok(txn.open_table(USERS)?.iter()?.next().is_some())
}

pub fn set_member(
    txn: &WriteTransaction,
    tenant: u32,
    user: u32,
    role: Role,
) -> Result<(), StoreError> {
    txn.open_table(MEMBERS)?
        .insert((tenant, user), role.code())?;
    Ok(())
}

/// Stores a new key; its `id` is assigned here.
pub fn insert_key(txn: &WriteTransaction, mut record: KeyRecord) -> Result<KeyRecord, StoreError> {
    record.id = next_id(txn, META_NEXT_KEY)?;
    txn.open_table(API_KEYS)?
        .insert(record.id, encode(&record)?.as_slice())?;
    Ok(record)
}

/// Deletes key `id` of `tenant`; a key of another tenant is not found.
pub fn delete_key(txn: &WriteTransaction, tenant: u32, id: u64) -> Result<KeyRecord, StoreError> {
    let mut keys = txn.open_table(API_KEYS)?;
    let record: KeyRecord = match keys.get(id)? {
        Some(bytes) => decode(bytes.value(), "key")?,
        None => return Err(StoreError::NotFound(format!("key {id}"))),
    };
    if record.tenant != tenant {
        return Err(StoreError::NotFound(format!("key {id}")));
    }
    keys.remove(id)?;
    Ok(record)
}

/// The tenant of `slug`, created (without members) when there is none.
pub fn tenant_or_create(
    txn: &WriteTransaction,
    slug: &str,
    name: &str,
    now: u64,
) -> Result<TenantInfo, StoreError> {
    let found = txn.open_table(TENANT_SLUGS)?.get(slug)?.map(|v| v.value());
    match found {
        Some(id) => {
            let bytes = txn
                .open_table(TENANTS)?
                .get(id)?
                .map(|v| v.value().to_vec());
            let bytes = bytes.ok_or_else(|| {
                StoreError::Corrupt(format!("tenant {id} has a slug but no record"))
            })?;
            let record: TenantRecord = decode(&bytes, "tenant")?;
            Ok(TenantInfo {
                id,
                slug: record.slug,
                name: record.name,
                created_at: record.created_at,
            })
        }
        None => create_tenant(txn, slug, name, now),
    }
}

/// Stores a new dashboard session.
pub fn insert_session(txn: &WriteTransaction, record: &SessionRecord) -> Result<(), StoreError> {
    txn.open_table(SESSIONS)?
        .insert(&record.hash, encode(record)?.as_slice())?;
    Ok(())
}

/// Deletes the sessions whose hash is in `hashes` (logout, expiry); absent ones are ignored.
pub fn delete_sessions(txn: &WriteTransaction, hashes: &[[u8; 32]]) -> Result<(), StoreError> {
    let mut table = txn.open_table(SESSIONS)?;
    for hash in hashes {
        table.remove(hash)?;
    }
    Ok(())
}

impl Snapshot {
    pub fn tenant_by_slug(&self, slug: &str) -> Result<Option<TenantInfo>, StoreError> {
        let id = match self.txn().open_table(TENANT_SLUGS)?.get(slug)? {
            Some(id) => id.value(),
            None => return Ok(None),
        };
        self.tenant(id)
    }

    pub fn tenant(&self, id: u32) -> Result<Option<TenantInfo>, StoreError> {
        let table = self.txn().open_table(TENANTS)?;
        let Some(bytes) = table.get(id)? else {
            return Ok(None);
        };
        let record: TenantRecord = decode(bytes.value(), "tenant")?;
        Ok(Some(TenantInfo {
            id,
            slug: record.slug,
            name: record.name,
            created_at: record.created_at,
        }))
    }

    pub fn tenants(&self) -> Result<Vec<TenantInfo>, StoreError> {
        let table = self.txn().open_table(TENANTS)?;
        let mut out = Vec::new();
        for entry in table.iter()? {
            let (id, bytes) = entry?;
            let record: TenantRecord = decode(bytes.value(), "tenant")?;
            out.push(TenantInfo {
                id: id.value(),
                slug: record.slug,
                name: record.name,
                created_at: record.created_at,
            });
        }
        Ok(out)
    }

    pub fn user(&self, id: u32) -> Result<Option<UserInfo>, StoreError> {
        let table = self.txn().open_table(USERS)?;
        let Some(bytes) = table.get(id)? else {
            return Ok(None);
        };
        let record: UserRecord = decode(bytes.value(), "user")?;
        Ok(Some(UserInfo {
            id,
            name: record.name,
            password_hash: record.password_hash,
            owner: record.owner,
            created_at: record.created_at,
        }))
    }

    pub fn user_by_name(&self, name: &str) -> Result<Option<UserInfo>, StoreError> {
        match self.txn().open_table(USER_NAMES)?.get(name)? {
            Some(id) => self.user(id.value()),
            None => Ok(None),
        }
    }

    pub fn users(&self) -> Result<Vec<UserInfo>, StoreError> {
        let table = self.txn().open_table(USERS)?;
        let mut out = Vec::new();
        for entry in table.iter()? {
            let (id, bytes) = entry?;
            let record: UserRecord = decode(bytes.value(), "user")?;
            out.push(UserInfo {
                id: id.value(),
                name: record.name,
                password_hash: record.password_hash,
                owner: record.owner,
                created_at: record.created_at,
            });
        }
        Ok(out)
    }

    pub fn has_owner(&self) -> Result<bool, StoreError> {
        let table = self.txn().open_table(USERS)?;
        for entry in table.iter()? {
            let (_, bytes) = entry?;
            let record: UserRecord = decode(bytes.value(), "user")?;
            if record.owner {
                return Ok(true);
            }
        }
        Ok(false)
    }

    pub fn member_role(&self, tenant: u32, user: u32) -> Result<Option<Role>, StoreError> {
        let table = self.txn().open_table(MEMBERS)?;
        let role = table.get((tenant, user))?.map(|v| v.value());
        Ok(role.and_then(Role::from_code))
    }

    pub fn members(&self, tenant: u32) -> Result<Vec<MemberInfo>, StoreError> {
        let table = self.txn().open_table(MEMBERS)?;
        let mut out = Vec::new();
        for entry in table.range((tenant, 0)..=(tenant, u32::MAX))? {
            let (key, role) = entry?;
            let user_id = key.value().1;
            let role = Role::from_code(role.value())
                .ok_or_else(|| StoreError::Corrupt("member role code".into()))?;
            let name = self.user(user_id)?.map(|u| u.name).unwrap_or_default();
            out.push(MemberInfo {
                user_id,
                name,
                role,
            });
        }
        Ok(out)
    }

    /// Every API key of every tenant (loaded once into the in-memory key cache).
    pub fn keys(&self) -> Result<Vec<KeyRecord>, StoreError> {
        let table = self.txn().open_table(API_KEYS)?;
        let mut out = Vec::new();
        for entry in table.iter()? {
            let (_, bytes) = entry?;
            out.push(decode(bytes.value(), "key")?);
        }
        Ok(out)
    }

    /// Every stored dashboard session (loaded once into the in-memory session cache).
    pub fn sessions(&self) -> Result<Vec<SessionRecord>, StoreError> {
        let table = self.txn().open_table(SESSIONS)?;
        let mut out = Vec::new();
        for entry in table.iter()? {
            let (_, bytes) = entry?;
            out.push(decode(bytes.value(), "session")?);
        }
        Ok(out)
    }
}
