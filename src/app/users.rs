//! Users and tenant memberships.

use super::secrets;
use super::{App, AppError, Principal};
use crate::model::Role;
use crate::store::admin as store_admin;
use crate::store::{MemberInfo, StoreError, UserInfo};

/// Shortest password accepted for a new user.
pub const MIN_PASSWORD_CHARS: usize = 8;

fn require_owner(principal: &Principal, what: &str) -> Result<u32, AppError> {
    match *principal {
        Principal::User {
            owner: true, user, ..
        } => Ok(user),
        _ => Err(AppError::Forbidden(format!(
            "only the server owner may {what}"
        ))),
    }
}

/// A user name: 1 to 64 characters, no control characters or surrounding spaces.
fn valid_user_name(name: &str) -> Result<(), AppError> {
    let ok = !name.is_empty()
        && name.chars().count() <= 64
        && name.trim() == name
        && !name.chars().any(char::is_control);
    if ok {
        Ok(())
    } else {
        Err(AppError::field(
            "invalid_field",
            "name",
            "1 to 64 characters, without control characters or surrounding spaces",
        ))
    }
}

impl App {
    /// Creates a (non-owner) user (server owner only).
    pub async fn create_user(
        &self,
        principal: &Principal,
        name: &str,
        password: &str,
        now: u64,
    ) -> Result<UserInfo, AppError> {
        require_owner(principal, "create users")?;
        valid_user_name(name)?;
        if password.chars().count() < MIN_PASSWORD_CHARS {
            return Err(AppError::field(
                "invalid_field",
                "password",
                format!("at least {MIN_PASSWORD_CHARS} characters"),
            ));
        }
        let hash = secrets::hash_password(password)?;
        let name = name.to_owned();
        self.store
            .write(move |txn| store_admin::create_user(txn, &name, &hash, false, now))
            .await
            .map_err(|e| match e {
                StoreError::Conflict(what) => AppError::Conflict {
                    code: "user_exists",
                    message: format!("{what} already exists"),
                },
                other => other.into(),
            })
    }

    /// Every user (server owner only).
    pub async fn list_users(&self, principal: &Principal) -> Result<Vec<UserInfo>, AppError> {
        require_owner(principal, "list users")?;
        Ok(self.store.read(|snap| snap.users()).await?)
    }

    /// Gives `user` `role` in tenant `slug`, replacing any role they had (tenant admin).
    pub async fn set_member(
        &self,
        principal: &Principal,
        slug: &str,
        user: &str,
        role: Role,
    ) -> Result<MemberInfo, AppError> {
        let tenant = self.tenant_for(principal, slug, Role::Admin).await?;
        let wanted = user.to_owned();
        let found = self
            .store
            .read(move |snap| snap.user_by_name(&wanted))
            .await?;
        let user = found.ok_or_else(|| {
            AppError::field("unknown_user", "user", format!("no user named {user}"))
        })?;
        let user_id = user.id;
        self.store
            .write(move |txn| store_admin::set_member(txn, tenant.id, user_id, role))
            .await?;
        Ok(MemberInfo {
            user_id,
            name: user.name,
            role,
        })
    }

    /// The members of tenant `slug` (tenant admin).
    pub async fn list_members(
        &self,
        principal: &Principal,
        slug: &str,
    ) -> Result<Vec<MemberInfo>, AppError> {
        let tenant = self.tenant_for(principal, slug, Role::Admin).await?;
        Ok(self.store.read(move |snap| snap.members(tenant.id)).await?)
    }

    /// The id of user `name`, for an owner making a key that acts as that user.
    pub(super) async fn user_for_key(
        &self,
        principal: &Principal,
        name: &str,
    ) -> Result<u32, AppError> {
        require_owner(principal, "create keys that act as another user")?;
        let wanted = name.to_owned();
        self.store
            .read(move |snap| snap.user_by_name(&wanted))
            .await?
            .map(|u| u.id)
            .ok_or_else(|| AppError::field("unknown_user", "user", format!("no user named {name}")))
    }
}
