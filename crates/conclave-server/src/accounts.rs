//! Making accounts and enrolment tokens: one path for the API, the CLI and `init`, so
//! that whatever made them, the same rules apply and the audit log says the same.

use std::time::Duration;

use conclave_types::{Pii, Role, Timestamp, UserId};

use crate::api::{now, random_id_bytes, random_token, sha256_hex};
use crate::audit_log::AuditLog;
use crate::password::PasswordError;
use crate::store::{Store, StoreError, User};

/// Why an account cannot be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AccountError {
    /// The account name breaks the rules.
    #[error("an account name is 1-64 characters of a-z, 0-9, '.', '-', '_' and '@'")]
    BadName,
    /// The display name breaks the rules.
    #[error(
        "a display name is 1-128 bytes of text without control characters or surrounding spaces"
    )]
    BadDisplayName,
    /// The password breaks the policy.
    #[error(transparent)]
    Password(#[from] PasswordError),
    /// The name is taken.
    #[error("the account name `{0}` is taken")]
    Taken(String),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn check_name(name: &str) -> Result<(), AccountError> {
    let ok = (1..=64).contains(&name.len())
        && name.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'_' | b'@')
        });
    ok.then_some(()).ok_or(AccountError::BadName)
}

fn check_display_name(name: &str) -> Result<(), AccountError> {
    let ok = (1..=128).contains(&name.len())
        && !name.chars().any(char::is_control)
        && name.trim() == name;
    ok.then_some(()).ok_or(AccountError::BadDisplayName)
}

/// Validates, hashes the password (or generates one, returned once), stores the
/// account and audits it as done by `actor`.
pub async fn create(
    store: &Store,
    audit: &AuditLog,
    actor: &str,
    name: &str,
    display_name: &str,
    role: Role,
    password: Option<String>,
) -> Result<(User, Option<String>), AccountError> {
    check_name(name)?;
    check_display_name(display_name)?;
    let generated = password.is_none().then(crate::password::generate);
    let password = password.or_else(|| generated.clone()).unwrap_or_default();
    // Argon2 takes tens of milliseconds of CPU: off the async workers.
    let hash = tokio::task::spawn_blocking(move || crate::password::hash_new(&password))
        .await
        .map_err(|e| PasswordError::Hash(e.to_string()))??;
    let user = User {
        id: UserId::from_bytes(random_id_bytes()),
        name: Pii(name.to_string()),
        display_name: Pii(display_name.to_string()),
        role,
        disabled: false,
        created_at: now(),
    };
    match store.insert_user(&user, &hash).await {
        Err(StoreError::Conflict) => return Err(AccountError::Taken(name.to_string())),
        other => other?,
    }
    audit
        .note(
            user.created_at,
            actor,
            "user.create",
            format!("user:{}", user.id),
            "ok",
            vec![format!("role {role}")],
        )
        .await?;
    Ok((user, generated))
}

/// Issues a one-time token with which a device registers as `managed`, in the name of
/// the admin `created_by`, optionally only for `for_user`'s devices. Only its hash is
/// stored; the token itself is returned once.
pub async fn issue_enrolment_token(
    store: &Store,
    audit: &AuditLog,
    actor: &str,
    created_by: &UserId,
    for_user: Option<&UserId>,
    lifetime: Duration,
) -> Result<(String, Timestamp), StoreError> {
    let token = random_token::<32>();
    let issued = now();
    let expires_at = issued.saturating_add(lifetime);
    store
        .insert_enrolment_token(
            &sha256_hex(token.as_bytes()),
            created_by,
            for_user,
            issued,
            expires_at,
        )
        .await?;
    let target = for_user.map_or("user:*".into(), |u| format!("user:{u}"));
    audit
        .note(
            issued,
            actor,
            "device.enrolment_token",
            target,
            "ok",
            vec![],
        )
        .await?;
    Ok((token, expires_at))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_rules() {
        for good in ["dana", "dana.scully@fbi", "x", &"a".repeat(64)] {
            assert!(check_name(good).is_ok(), "{good:?}");
        }
        for bad in ["", "Dana", "dana scully", "ä", &"a".repeat(65)] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        assert!(check_display_name("Dana Scully").is_ok());
        for bad in ["", " Dana", "Dana\n", &"é".repeat(65)] {
            assert!(check_display_name(bad).is_err(), "{bad:?}");
        }
    }
}
