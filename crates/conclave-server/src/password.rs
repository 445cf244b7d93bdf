//! Password hashing: Argon2id with the `argon2` crate's defaults (19 MiB, 2 passes,
//! one lane), stored as PHC strings so parameters can be raised later without
//! invalidating existing hashes.

use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString};
use argon2::Argon2;

/// Shortest password accepted.
pub const MIN_LENGTH: usize = 12;
/// Longest password accepted (hashing cost is bounded, not the attacker's choice).
pub const MAX_LENGTH: usize = 256;

/// Why a password cannot be set.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PasswordError {
    /// Outside the allowed length.
    #[error("a password must be {MIN_LENGTH} to {MAX_LENGTH} characters long")]
    Length,
    /// The hasher failed.
    #[error("password hashing failed: {0}")]
    Hash(String),
}

/// Hashes a new password.
pub fn hash(password: &str) -> Result<String, PasswordError> {
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| PasswordError::Hash(e.to_string()))
}

/// Checks a new password's length, then hashes it.
pub fn hash_new(password: &str) -> Result<String, PasswordError> {
    let n = password.chars().count();
    if !(MIN_LENGTH..=MAX_LENGTH).contains(&n) {
        return Err(PasswordError::Length);
    }
    hash(password)
}

/// Whether `password` matches the stored PHC string. Over-long input never matches
/// and costs nothing to reject.
pub fn verify(password: &str, stored: &str) -> bool {
    if password.len() > 4 * MAX_LENGTH {
        return false;
    }
    PasswordHash::new(stored)
        .map(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
}

/// A random password for generated accounts: 20 characters from an unambiguous
/// alphabet (about 110 bits).
pub fn generate() -> String {
    const ALPHABET: &[u8] = b"abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    use rand::Rng as _;
    (0..20)
        .map(|_| char::from(ALPHABET[rand::rngs::OsRng.gen_range(0..ALPHABET.len())]))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_and_reject() {
        let h = hash_new("correct horse battery").expect("hash");
        assert!(h.starts_with("$argon2id$"));
        assert!(verify("correct horse battery", &h));
        assert!(!verify("correct horse battery!", &h));
        assert!(!verify("anything", "not a phc string"));
        assert!(matches!(hash_new("short"), Err(PasswordError::Length)));
    }

    #[test]
    fn generated_passwords_are_long_enough() {
        let p = generate();
        assert_eq!(p.chars().count(), 20);
        assert!(hash_new(&p).is_ok());
    }
}
