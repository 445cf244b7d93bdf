//! The server's writer of the audit log: chains entries with `conclave-audit`, stores
//! them, signs the head with the organisation key, and folds refused meeting lookups
//! (and sign-ins during backoff) into one entry per client per period so that a
//! scanner cannot flood the log.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use conclave_audit::{Chain, Entry, Record, SignedHead, Verifier, VerifyError, VerifyReport};
use conclave_identity::{OrganisationKey, OrganisationPublicKey};
use conclave_types::Timestamp;

use crate::store::{Store, StoreError};

/// Appends to and signs the audit log.
///
/// The chain head is read from the database for every append rather than cached, so
/// that the CLI (or, later, another node) can append to the same log while the server
/// runs; the sequence number's uniqueness makes a lost race a retry, not a fork.
#[derive(Debug)]
pub struct AuditLog {
    store: Store,
    key: Arc<OrganisationKey>,
    /// Serialises this process's appends so they rarely race at all.
    writer: tokio::sync::Mutex<()>,
    refusals: Mutex<BTreeMap<(Refusal, String), u64>>,
}

/// Why verification could not say yes.
#[derive(Debug, thiserror::Error)]
pub enum VerifyFailure {
    /// Reading the log failed (including a row that does not even parse).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The log was tampered with.
    #[error(transparent)]
    Tampered(#[from] VerifyError),
}

impl AuditLog {
    /// A writer for the log in `store`, signing with `key`.
    pub fn new(store: Store, key: Arc<OrganisationKey>) -> Self {
        Self {
            store,
            key,
            writer: tokio::sync::Mutex::new(()),
            refusals: Mutex::new(BTreeMap::new()),
        }
    }

    /// Appends one entry after the newest stored one.
    pub async fn record(&self, record: Record, now: Timestamp) -> Result<Entry, StoreError> {
        let _writer = self.writer.lock().await;
        let mut attempts = 0;
        loop {
            let last = self.store.last_audit_entry().await?;
            let entry = Chain::resume(last.as_ref()).append(record.clone(), now);
            match self.store.append_audit(&entry).await {
                Err(StoreError::Conflict) if attempts < 10 => attempts += 1,
                result => return result.map(|()| entry),
            }
        }
    }

    /// Convenience for the common shape of a record.
    pub async fn note(
        &self,
        now: Timestamp,
        actor: impl Into<String>,
        action: &str,
        target: impl Into<String>,
        decision: &str,
        reasons: Vec<String>,
    ) -> Result<Entry, StoreError> {
        self.record(
            Record {
                actor: actor.into(),
                action: action.to_string(),
                target: target.into(),
                decision: decision.to_string(),
                reasons,
            },
            now,
        )
        .await
    }

    /// Signs the newest entry unless it is already signed.
    pub async fn sign_head(&self, now: Timestamp) -> Result<Option<SignedHead>, StoreError> {
        let _writer = self.writer.lock().await;
        let Some(last) = self.store.last_audit_entry().await? else {
            return Ok(None);
        };
        if self.store.last_audit_head().await?.map(|h| h.seq) == Some(last.seq) {
            return Ok(None);
        }
        let head = SignedHead::sign(last.seq, last.hash, now, self.key.signing_key());
        self.store.insert_audit_head(&head).await?;
        Ok(Some(head))
    }

    /// Counts a refused request of a repeatable kind (a meeting lookup that found
    /// nothing the caller may see, a sign-in during backoff) by `actor` (a user or a
    /// client address). [`AuditLog::flush_refusals`] writes one entry per kind and actor.
    pub fn note_refusal(&self, kind: Refusal, actor: String) {
        let mut refusals = self.refusals.lock().unwrap_or_else(|p| p.into_inner());
        *refusals.entry((kind, actor)).or_insert(0) += 1;
    }

    /// Writes one entry per kind and actor for the refusals counted since the last flush.
    pub async fn flush_refusals(&self, now: Timestamp) -> Result<(), StoreError> {
        let refusals =
            std::mem::take(&mut *self.refusals.lock().unwrap_or_else(|p| p.into_inner()));
        for ((kind, actor), count) in refusals {
            let (action, target, what) = match kind {
                Refusal::MeetingLookup => (
                    "meeting.lookup_refused",
                    "meeting:*",
                    "requests for meetings that do not exist or are not theirs",
                ),
                Refusal::LoginThrottled => (
                    "auth.login",
                    "account:*",
                    "sign-in attempts refused during backoff",
                ),
            };
            let decision = match kind {
                Refusal::MeetingLookup => "refused",
                Refusal::LoginThrottled => "throttled",
            };
            self.note(
                now,
                actor,
                action,
                target,
                decision,
                vec![format!("{what}: {count}")],
            )
            .await?;
        }
        Ok(())
    }
}

/// Requests that are refused often and cheaply, and so are audited as counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Refusal {
    /// A meeting lookup answered "no such meeting".
    MeetingLookup,
    /// A sign-in refused because of backoff.
    LoginThrottled,
}

/// Checks the whole stored log against the signed heads and the organisation key,
/// reading it in pages so that memory stays flat however long the log is.
pub async fn verify_stored(
    store: &Store,
    org: &OrganisationPublicKey,
) -> Result<VerifyReport, VerifyFailure> {
    const PAGE: u32 = 10_000;
    let mut verifier = Verifier::new(*org.verifying_key(), store.audit_heads().await?);
    let mut after = 0;
    loop {
        let page = store.audit_entries(after, PAGE).await?;
        for entry in &page {
            verifier.push(entry)?;
        }
        match page.last() {
            Some(last) if page.len() == PAGE as usize => after = last.seq,
            _ => break,
        }
    }
    Ok(verifier.finish()?)
}
