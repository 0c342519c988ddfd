//! API keys: `pg_` and 64 hex digits (32 random bytes). Only a SHA-256 of the key is
//! stored, with its first characters as a visible prefix.

use portgate_model::Scope;
use portgate_store::{ApiKey, Store, StoreError};
use rand::RngCore;
use sha2::{Digest, Sha256};

/// What every key starts with.
pub const KEY_PREFIX: &str = "pg_";
/// Characters of a key shown in listings.
const SHOWN: usize = KEY_PREFIX.len() + 8;

/// The stored hash of a key.
pub fn hash(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// A new key: the key itself (shown once) and its record.
pub async fn create(
    store: &Store,
    name: &str,
    scope: Option<&Scope>,
) -> Result<(String, ApiKey), StoreError> {
    let mut secret = [0u8; 32];
    rand::rng().fill_bytes(&mut secret);
    let key = format!("{KEY_PREFIX}{}", hex::encode(secret));
    let scope: Vec<String> = scope
        .map(|s| s.nets().iter().map(ToString::to_string).collect())
        .unwrap_or_default();
    let record = store
        .create_key(name, &key[..SHOWN], &hash(&key), &scope)
        .await?;
    Ok((key, record))
}
