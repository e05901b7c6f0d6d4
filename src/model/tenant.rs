//! Tenants, roles and key kinds.

use std::fmt;

/// A tenant's slug: `[a-z0-9][a-z0-9-]{0,62}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TenantSlug(String);

impl TenantSlug {
    pub fn parse(text: &str) -> Option<TenantSlug> {
        let bytes = text.as_bytes();
        let first_ok = bytes
            .first()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        let rest_ok = bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-');
        (first_ok && rest_ok && bytes.len() <= 63).then(|| TenantSlug(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TenantSlug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A member's role within one tenant. Ordered: a higher role can do all a lower one can.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    Viewer,
    Editor,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Editor => "editor",
            Role::Admin => "admin",
        }
    }

    pub fn parse(text: &str) -> Option<Role> {
        [Role::Viewer, Role::Editor, Role::Admin]
            .into_iter()
            .find(|r| r.as_str() == text)
    }

    pub fn code(self) -> u8 {
        match self {
            Role::Viewer => 0,
            Role::Editor => 1,
            Role::Admin => 2,
        }
    }

    pub fn from_code(code: u8) -> Option<Role> {
        match code {
            0 => Some(Role::Viewer),
            1 => Some(Role::Editor),
            2 => Some(Role::Admin),
            _ => None,
        }
    }
}

/// What an API key may do: ingest keys are bound to one tenant and only ingest and check;
/// admin keys act as the user who owns them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    Ingest,
    Admin,
}

impl KeyKind {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyKind::Ingest => "ingest",
            KeyKind::Admin => "admin",
        }
    }

    pub fn parse(text: &str) -> Option<KeyKind> {
        match text {
            "ingest" => Some(KeyKind::Ingest),
            "admin" => Some(KeyKind::Admin),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slug_grammar() {
        for ok in ["default", "a", "0-x", &"a".repeat(63)] {
            assert!(TenantSlug::parse(ok).is_some(), "{ok}");
        }
        for bad in ["", "-a", "A", "a_b", "a b", &"a".repeat(64)] {
            assert!(TenantSlug::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn roles_are_ordered() {
        assert!(Role::Admin > Role::Editor && Role::Editor > Role::Viewer);
        for r in [Role::Viewer, Role::Editor, Role::Admin] {
            assert_eq!(Role::from_code(r.code()), Some(r));
            assert_eq!(Role::parse(r.as_str()), Some(r));
        }
    }
}
