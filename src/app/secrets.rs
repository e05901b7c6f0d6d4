//! Secrets: API keys (random, shown once, stored as SHA-256) and passwords (argon2id).

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use sha2::{Digest, Sha256};

use super::AppError;
use crate::model::KeyKind;

/// Bytes of randomness in a key: 192 bits.
const KEY_BYTES: usize = 24;

/// A freshly made API key.
pub struct NewKey {
    /// The whole secret, e.g. `gw_ingest_3f…`; returned to the caller once.
    pub secret: String,
    /// What lists show: the kind prefix and the first characters.
    pub prefix: String,
    pub hash: [u8; 32],
}

pub fn random_bytes<const N: usize>() -> Result<[u8; N], AppError> {
    let mut buf = [0u8; N];
    getrandom::fill(&mut buf)
        .map_err(|e| AppError::Internal(format!("no randomness available: {e}")))?;
    Ok(buf)
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn new_key(kind: KeyKind) -> Result<NewKey, AppError> {
    let secret = format!(
        "gw_{}_{}",
        kind.as_str(),
        hex(&random_bytes::<KEY_BYTES>()?)
    );
    let prefix = secret[..secret.len() - KEY_BYTES * 2 + 8].to_owned();
    let hash = hash_key(&secret);
    Ok(NewKey {
        secret,
        prefix,
        hash,
    })
}

/// SHA-256 of a presented key: what the store keeps and the cache is keyed by.
pub fn hash_key(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// Whether two secrets are equal, in time that depends only on their lengths (CSRF tokens:
/// their length is public, their content is not).
pub fn constant_time_eq(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |diff, (x, y)| diff | (x ^ y))
            == 0
}

/// A random password for bootstrapping: 20 characters from an unambiguous alphabet.
pub fn random_password() -> Result<String, AppError> {
    const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyzABCDEFGHJKMNPQRSTUVWXYZ23456789";
    let bytes = random_bytes::<20>()?;
    Ok(bytes
        .iter()
        .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char)
        .collect())
}

pub fn hash_password(password: &str) -> Result<String, AppError> {
    let salt_bytes = random_bytes::<16>()?;
    let salt = SaltString::encode_b64(&salt_bytes)
        .map_err(|e| AppError::Internal(format!("salt: {e}")))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| AppError::Internal(format!("hashing a password: {e}")))
}

pub fn verify_password(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc)
        .map(|parsed| {
            Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_random_prefixed_and_hashed() {
        let a = new_key(KeyKind::Ingest).expect("key");
        let b = new_key(KeyKind::Ingest).expect("key");
        assert!(a.secret.starts_with("gw_ingest_"));
        assert_eq!(a.secret.len(), "gw_ingest_".len() + 48);
        assert_ne!(a.secret, b.secret);
        assert!(a.secret.starts_with(&a.prefix));
        assert_eq!(a.prefix.len(), "gw_ingest_".len() + 8);
        assert_eq!(a.hash, hash_key(&a.secret));
    }

    #[test]
    fn passwords_verify() {
        let phc = hash_password("correct horse").expect("hash");
        assert!(phc.starts_with("$argon2id$"));
        assert!(verify_password("correct horse", &phc));
        assert!(!verify_password("wrong", &phc));
        assert!(!verify_password("x", "not a phc string"));
    }
}
