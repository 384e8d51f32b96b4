//! Passwords: argon2 (the `argon2` crate's defaults, argon2id), hashed
//! and checked off the I/O threads, at most one run per core at a time
//! (each takes ~19 MiB: a flood of logins queues here instead of filling
//! the blocking pool and the memory). Checking for an unknown name costs
//! the same run as for a known one, so timing does not tell which exist.

use argon2::password_hash::{rand_core::OsRng, PasswordHash, SaltString};
use argon2::{Argon2, PasswordHasher, PasswordVerifier};
use rackwave_core::random_hex;

use crate::AccountsError;

/// Runs of argon2 at once, in the whole process (SMTP AUTH and the
/// portal's logins and sign-ups together).
fn runs() -> &'static tokio::sync::Semaphore {
    static RUNS: std::sync::OnceLock<tokio::sync::Semaphore> = std::sync::OnceLock::new();
    RUNS.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        tokio::sync::Semaphore::new(cores)
    })
}

/// The PHC string of a new hash of `password`.
pub async fn hash_password(password: &str) -> Result<String, AccountsError> {
    let _run = runs().acquire().await.expect("never closed");
    let password = password.to_string();
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| AccountsError::Hash(e.to_string()))
    })
    .await
    .map_err(|e| AccountsError::Hash(e.to_string()))?
}

/// Whether `password` matches `hash`; `None` (no such user) checks against
/// a hash nothing matches, taking as long.
pub async fn verify_password(hash: Option<String>, password: &str) -> Result<bool, AccountsError> {
    let known = hash.is_some();
    let hash = hash.unwrap_or_else(|| dummy_hash().to_string());
    let _run = runs().acquire().await.expect("never closed");
    let password = password.to_string();
    let ok = tokio::task::spawn_blocking(move || {
        PasswordHash::new(&hash)
            .map(|parsed| {
                Argon2::default()
                    .verify_password(password.as_bytes(), &parsed)
                    .is_ok()
            })
            .unwrap_or(false)
    })
    .await
    .map_err(|e| AccountsError::Hash(e.to_string()))?;
    Ok(ok && known)
}

/// An argon2 hash of a random password, verified against when the name is
/// unknown so both paths take as long.
fn dummy_hash() -> &'static str {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HASH.get_or_init(|| {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(random_hex(16).as_bytes(), &salt)
            .expect("hashing a random password")
            .to_string()
    })
}
