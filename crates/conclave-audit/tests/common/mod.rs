//! Helpers shared by the integration tests.

#![allow(dead_code, unreachable_pub)]

use conclave_audit::{Chain, Entry, Hash, Record, SignedHead};
use conclave_types::Timestamp;
use ed25519_dalek::{SigningKey, VerifyingKey};

pub const T0: i64 = 1_795_426_200_000;

pub fn org_key() -> SigningKey {
    SigningKey::from_bytes(&[0x42; 32])
}

pub fn other_key() -> SigningKey {
    SigningKey::from_bytes(&[0x43; 32])
}

pub fn public() -> VerifyingKey {
    org_key().verifying_key()
}

pub fn record(i: u64) -> Record {
    Record {
        actor: format!("user:{i:022}"),
        action: if i % 3 == 0 {
            "meeting.join"
        } else {
            "meeting.create"
        }
        .into(),
        target: format!("meeting:{:022}", i * 7),
        decision: if i % 5 == 0 { "deny" } else { "admit" }.into(),
        reasons: if i % 5 == 0 {
            vec!["untrusted_network_denied".into()]
        } else {
            vec![]
        },
    }
}

/// A log of `n` entries built by the writer.
pub fn build_log(n: u64) -> Vec<Entry> {
    let mut chain = Chain::new();
    (1..=n)
        .map(|i| chain.append(record(i), Timestamp::from_unix_millis(T0 + i as i64 * 1000)))
        .collect()
}

/// Signs the entry at `seq` (1-based) of `log`.
pub fn head_at(log: &[Entry], seq: u64) -> SignedHead {
    let e = &log[(seq - 1) as usize];
    assert_eq!(e.seq, seq);
    SignedHead::sign(
        e.seq,
        e.hash,
        Timestamp::from_unix_millis(T0 + seq as i64 * 1000 + 1),
        &org_key(),
    )
}

/// Signed heads every `every` entries (plus none at the end unless it falls on one).
pub fn heads_every(log: &[Entry], every: u64) -> Vec<SignedHead> {
    (1..=log.len() as u64)
        .filter(|s| s % every == 0)
        .map(|s| head_at(log, s))
        .collect()
}

/// What an attacker with DB access does after editing entries from `from` (0-based
/// index): recompute every hash and link from there on.
pub fn rechain_from(log: &mut [Entry], from: usize) {
    for i in from..log.len() {
        let prev = if i == 0 { Hash::ZERO } else { log[i - 1].hash };
        log[i].prev_hash = prev;
        log[i].hash = log[i].compute_hash();
    }
}

/// Renumbers seq from index `from` onwards to be consecutive.
pub fn renumber_from(log: &mut [Entry], from: usize) {
    for (i, e) in log.iter_mut().enumerate().skip(from) {
        e.seq = i as u64 + 1;
    }
}
