//! A tamper-evident, append-only audit log: canonical entries, a hash chain, signed
//! heads and a streaming verifier.
//!
//! This crate is a pure core: it never reads a clock (time is an argument) and does no
//! I/O. The server stores [`Entry`] rows (in SQLite) and keeps a [`Chain`] to append
//! new ones; every so often it signs the current head with the organisation's Ed25519
//! key ([`SignedHead::sign`]) and stores that too. `conclave audit verify` streams the
//! stored entries and signed heads through a [`Verifier`], which names the first bad
//! entry.
//!
//! # The log
//!
//! Every entry records who (`actor`) did what (`action`) to what (`target`), what was
//! decided (`decision`) and why (`reasons`), at what `time`. Entries are numbered
//! `seq` = 1, 2, 3, … without gaps. Each entry carries `prev_hash`, the hash of the
//! entry before it ([`Hash::ZERO`] for entry 1), and `hash`, the SHA-256 of its own
//! canonical encoding, which covers `prev_hash`. Changing any entry therefore changes
//! every hash after it: the head hash (the hash of the last entry) commits to the whole
//! log. A [`SignedHead`] is the organisation key's signature over a head
//! (`seq`, `hash`, `signed_at`).
//!
//! ```
//! use conclave_audit::{verify, Chain, Record, SignedHead};
//! use conclave_types::Timestamp;
//! use ed25519_dalek::SigningKey;
//!
//! let key = SigningKey::from_bytes(&[7; 32]);
//! let mut chain = Chain::new();
//! let mut entries = Vec::new();
//! for i in 0..3 {
//!     let record = Record {
//!         actor: "system".into(),
//!         action: "meeting.join".into(),
//!         target: format!("meeting:{i}"),
//!         decision: "admit".into(),
//!         reasons: vec![],
//!     };
//!     entries.push(chain.append(record, Timestamp::from_unix_millis(1_700_000_000_000 + i)));
//! }
//! let (seq, hash) = chain.head().expect("three entries were appended");
//! let head = SignedHead::sign(seq, hash, Timestamp::from_unix_millis(1_700_000_001_000), &key);
//!
//! let report = verify(&entries, vec![head.clone()], key.verifying_key()).expect("untouched");
//! assert_eq!(report.entries, 3);
//! assert_eq!(report.last_signed_seq, Some(3));
//!
//! // An edit without fixing the hash is caught at the edited entry.
//! entries[1].decision = "deny".into();
//! let err = verify(&entries, vec![head], key.verifying_key()).unwrap_err();
//! assert_eq!(err.seq, 2);
//! assert_eq!(err.problem, conclave_audit::Problem::ContentsAltered);
//! ```
//!
//! # Canonical encoding
//!
//! [`Entry::canonical_bytes`] is the exact byte string that is hashed; `hash` itself is
//! not part of it. All integers are big-endian. In order:
//!
//! | bytes | content |
//! |---|---|
//! | 23 | the ASCII domain separator `conclave-audit-entry-v1` |
//! | 8 | `seq`, u64 |
//! | 8 | `time`, i64 milliseconds since the Unix epoch |
//! | 4 + n | `actor`: u32 byte length n, then its UTF-8 bytes |
//! | 4 + n | `action`, likewise |
//! | 4 + n | `target`, likewise |
//! | 4 + n | `decision`, likewise |
//! | 4 | number of `reasons`, u32 |
//! | (4 + n) × count | each reason: u32 byte length n, then its UTF-8 bytes |
//! | 32 | `prev_hash` |
//!
//! `hash` = SHA-256 of those bytes. Because every variable-length field is
//! length-prefixed, two different entries never encode to the same bytes (no
//! "`ab`+`c`" = "`a`+`bc`" ambiguity), and the domain separator keeps an entry
//! encoding from ever being mistaken for a signed-head message or anything else
//! hashed or signed with the same key. A field (or reason count) of 4 GiB or more
//! cannot be encoded faithfully; its length prefix saturates at `u32::MAX`. Such a field
//! cannot be stored in SQLite anyway (at most 2³¹ − 1 bytes per value).
//!
//! The signed-head message is the ASCII `conclave-audit-head-v1`, then `seq` (u64),
//! the 32-byte `hash`, then `signed_at` (i64 milliseconds since the epoch), all
//! big-endian; it is signed with Ed25519 and verified with strict verification.
//!
//! # What verification reports
//!
//! The [`Verifier`] first checks the signature on every signed head; an invalid one is
//! [`Problem::BadHeadSignature`] naming that head's `seq` (reported before any entry is
//! looked at, because nothing a forged head says can be trusted). Then, for each entry
//! in storage order, it checks, in this order:
//!
//! 1. **Sequence** — the entry's `seq` is the next number (1, 2, …), else
//!    [`Problem::OutOfSequence`]: a row was deleted, inserted or moved. Checked first
//!    because an entry in the wrong place would also fail the link check, and "entry 7
//!    where entry 6 was expected" says more than "entry 7 does not follow".
//! 2. **Contents** — SHA-256 of its canonical encoding equals its `hash`, else
//!    [`Problem::ContentsAltered`]: a field (including `seq`, `time` or `prev_hash`) was
//!    edited without recomputing the hash. Checked before the link because an edited
//!    `prev_hash` is an edit of this entry, not evidence about its neighbour.
//! 3. **Link** — its `prev_hash` equals the previous entry's `hash` ([`Hash::ZERO`] for
//!    entry 1), else [`Problem::BrokenLink`]: the entry before was edited *and* re-hashed
//!    (so the first visible break is here, one entry after the edit), or entries were
//!    deleted or inserted and the rest renumbered and re-hashed.
//! 4. **Signed head** — if a signed head names this `seq`, its hash equals this entry's
//!    `hash`, else [`Problem::HeadMismatch`]: the log up to here was rewritten
//!    consistently (every hash and link recomputed), which only a signed head can reveal.
//!    Checked last because it is the only evidence left once every local check passes.
//!
//! When all entries have been pushed, [`Verifier::finish`] checks that the log reaches
//! the highest signed `seq`; if the last entry is `last` and a head signed `signed` >
//! `last`, the error is [`Problem::Truncated`] reported at seq `last + 1`, the first
//! missing entry (so the reported seq is always the first bad or missing entry).
//!
//! A signed head for seq 0 (an empty log) must carry [`Hash::ZERO`], else
//! [`Problem::HeadMismatch`] at seq 0. An empty log with no heads verifies.
//!
//! # Limits
//!
//! - Entries after the last signed head are protected only by the chain: someone with
//!   write access to the database can delete them from the end, rewrite them, or append
//!   forged entries, and the log still verifies. Sign heads often.
//! - Anyone holding the organisation's signing key can rewrite the whole log, recompute
//!   the chain and re-sign new heads; verification cannot tell. What defeats that is
//!   signed heads kept *elsewhere* (exported to another system, an auditor's mailbox,
//!   a printout): pass those to the verifier and a rewritten log no longer matches them.
//! - Verification proves integrity relative to the heads it is given. A head deleted
//!   from the database does not protect anything.
//! - Within one verifier run, the first problem found is reported and the verifier stays
//!   failed: later entries are not examined.

use std::collections::VecDeque;
use std::fmt;
use std::str::FromStr;

use conclave_types::Timestamp;
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};

const ENTRY_DOMAIN: &[u8] = b"conclave-audit-entry-v1";
const HEAD_DOMAIN: &[u8] = b"conclave-audit-head-v1";

// ---------------------------------------------------------------------------------
// Hex

const HEX_DIGITS: &[u8; 16] = b"0123456789abcdef";

fn write_hex(f: &mut fmt::Formatter<'_>, bytes: &[u8]) -> fmt::Result {
    for &b in bytes {
        let pair = [
            HEX_DIGITS[usize::from(b >> 4)],
            HEX_DIGITS[usize::from(b & 0x0f)],
        ];
        // Both bytes come from HEX_DIGITS, so they are ASCII.
        f.write_str(std::str::from_utf8(&pair).map_err(|_| fmt::Error)?)?;
    }
    Ok(())
}

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

fn decode_hex<const N: usize>(s: &str) -> Result<[u8; N], HashParseError> {
    let bytes = s.as_bytes();
    if bytes.len() != 2 * N {
        return Err(HashParseError::WrongLength {
            expected: 2 * N,
            found: bytes.len(),
        });
    }
    let mut out = [0u8; N];
    for (i, (slot, pair)) in out.iter_mut().zip(bytes.chunks_exact(2)).enumerate() {
        let hi = hex_value(pair[0]).ok_or(HashParseError::InvalidCharacter { index: 2 * i })?;
        let lo = hex_value(pair[1]).ok_or(HashParseError::InvalidCharacter { index: 2 * i + 1 })?;
        *slot = (hi << 4) | lo;
    }
    Ok(out)
}

struct HexVisitor<const N: usize>;

impl<const N: usize> serde::de::Visitor<'_> for HexVisitor<N> {
    type Value = [u8; N];

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a string of {} hexadecimal characters", 2 * N)
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
        decode_hex::<N>(v).map_err(E::custom)
    }
}

// ---------------------------------------------------------------------------------
// Hash

/// A SHA-256 digest.
///
/// `Display`, `Debug`, `FromStr` and serde all use 64 hexadecimal characters
/// (written lower-case; parsing also accepts upper-case).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Hash(pub [u8; 32]);

impl Hash {
    /// All zeros: the `prev_hash` of the first entry.
    pub const ZERO: Hash = Hash([0; 32]);
}

impl fmt::Display for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_hex(f, &self.0)
    }
}

impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Hash(")?;
        write_hex(f, &self.0)?;
        f.write_str(")")
    }
}

impl FromStr for Hash {
    type Err = HashParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        decode_hex::<32>(s).map(Hash)
    }
}

impl Serialize for Hash {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Hash {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(HexVisitor::<32>).map(Hash)
    }
}

/// Why a string is not a valid hex digest (or hex signature).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HashParseError {
    /// The string is not exactly `expected` bytes long.
    #[error("expected {expected} hexadecimal characters, found {found} bytes")]
    WrongLength {
        /// The required number of hex characters.
        expected: usize,
        /// The length of the input in bytes.
        found: usize,
    },
    /// The byte at `index` is not a hexadecimal digit.
    #[error("the character at byte {index} is not a hexadecimal digit")]
    InvalidCharacter {
        /// Byte offset of the first offending character.
        index: usize,
    },
}

// ---------------------------------------------------------------------------------
// Record and Entry

/// What the caller wants recorded.
///
/// For example actor `user:Xyz…`, `system` or `client:127.0.0.1`; action
/// `meeting.join`; target `meeting:…`; decision `admit`, `deny`, `ok` or `failed`;
/// reasons `["untrusted_network_denied"]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// Who acted.
    pub actor: String,
    /// What they did.
    pub action: String,
    /// What they did it to.
    pub target: String,
    /// The outcome.
    pub decision: String,
    /// Why (machine-readable reason codes), possibly empty.
    pub reasons: Vec<String>,
}

/// One stored entry of the log.
///
/// Serialised (e.g. to JSON lines for export) with `time` as RFC 3339 text and
/// hashes as lower-case hex.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Position in the log: 1 for the first entry, then consecutive.
    pub seq: u64,
    /// When it happened (as told by the caller).
    pub time: Timestamp,
    /// Who acted.
    pub actor: String,
    /// What they did.
    pub action: String,
    /// What they did it to.
    pub target: String,
    /// The outcome.
    pub decision: String,
    /// Why.
    pub reasons: Vec<String>,
    /// The `hash` of the previous entry; [`Hash::ZERO`] for the first.
    pub prev_hash: Hash,
    /// SHA-256 of [`Entry::canonical_bytes`].
    pub hash: Hash,
}

/// Something the canonical encoding can be written into.
trait Sink {
    fn put(&mut self, bytes: &[u8]);
}

impl Sink for Vec<u8> {
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}

impl Sink for Sha256 {
    fn put(&mut self, bytes: &[u8]) {
        self.update(bytes);
    }
}

fn length_prefix(len: usize) -> [u8; 4] {
    // Saturates for 4 GiB and more; see the crate documentation.
    u32::try_from(len).unwrap_or(u32::MAX).to_be_bytes()
}

fn put_str(sink: &mut impl Sink, s: &str) {
    sink.put(&length_prefix(s.len()));
    sink.put(s.as_bytes());
}

impl Entry {
    fn encode(&self, sink: &mut impl Sink) {
        sink.put(ENTRY_DOMAIN);
        sink.put(&self.seq.to_be_bytes());
        sink.put(&self.time.unix_millis().to_be_bytes());
        put_str(sink, &self.actor);
        put_str(sink, &self.action);
        put_str(sink, &self.target);
        put_str(sink, &self.decision);
        sink.put(&length_prefix(self.reasons.len()));
        for reason in &self.reasons {
            put_str(sink, reason);
        }
        sink.put(&self.prev_hash.0);
    }

    /// The canonical encoding of every field except `hash`: domain-separated and
    /// length-prefixed, as laid out byte by byte in the crate documentation.
    pub fn canonical_bytes(&self) -> Vec<u8> {
        let strings = self.actor.len()
            + self.action.len()
            + self.target.len()
            + self.decision.len()
            + self.reasons.iter().map(|r| 4 + r.len()).sum::<usize>();
        let mut out = Vec::with_capacity(ENTRY_DOMAIN.len() + 8 + 8 + 4 * 5 + strings + 32);
        self.encode(&mut out);
        out
    }

    /// SHA-256 over [`Entry::canonical_bytes`] (computed without building that buffer).
    pub fn compute_hash(&self) -> Hash {
        let mut hasher = Sha256::new();
        self.encode(&mut hasher);
        Hash(hasher.finalize().into())
    }
}

// ---------------------------------------------------------------------------------
// Chain

/// The writer's state: the next sequence number (the first entry is seq 1) and the
/// head hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chain {
    /// The seq and hash of the last entry; `None` for an empty log.
    last: Option<(u64, Hash)>,
}

impl Default for Chain {
    fn default() -> Self {
        Self::new()
    }
}

impl Chain {
    /// An empty log.
    pub fn new() -> Chain {
        Chain { last: None }
    }

    /// Continues after the last stored entry, or starts an empty log for `None`.
    ///
    /// The entry is trusted as it is (its `seq` and `hash` are taken, not checked);
    /// checking the stored log is the [`Verifier`]'s job.
    pub fn resume(last: Option<&Entry>) -> Chain {
        Chain {
            last: last.map(|entry| (entry.seq, entry.hash)),
        }
    }

    /// Builds the next entry (seq = [`Chain::next_seq`], `prev_hash` = the head hash,
    /// `hash` computed) and advances the state to it. The caller stores it.
    pub fn append(&mut self, record: Record, time: Timestamp) -> Entry {
        let Record {
            actor,
            action,
            target,
            decision,
            reasons,
        } = record;
        let mut entry = Entry {
            seq: self.next_seq(),
            time,
            actor,
            action,
            target,
            decision,
            reasons,
            prev_hash: self.last.map_or(Hash::ZERO, |(_, hash)| hash),
            hash: Hash::ZERO,
        };
        entry.hash = entry.compute_hash();
        self.last = Some((entry.seq, entry.hash));
        entry
    }

    /// The seq and hash of the last appended (or resumed) entry; `None` for an empty log.
    pub fn head(&self) -> Option<(u64, Hash)> {
        self.last
    }

    /// The seq the next appended entry will get.
    ///
    /// Saturates at `u64::MAX` (a log of 2⁶⁴ − 1 entries is not a practical concern;
    /// this only keeps a forged last entry from causing a panic).
    pub fn next_seq(&self) -> u64 {
        self.last.map_or(1, |(seq, _)| seq.saturating_add(1))
    }
}

// ---------------------------------------------------------------------------------
// Signed heads

/// An Ed25519 signature (64 bytes). Serialised as 128 hex characters; `Debug`
/// prints hex.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct HeadSignature(pub [u8; 64]);

impl fmt::Debug for HeadSignature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HeadSignature(")?;
        write_hex(f, &self.0)?;
        f.write_str(")")
    }
}

struct HexBytes<'a>(&'a [u8]);

impl fmt::Display for HexBytes<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_hex(f, self.0)
    }
}

impl Serialize for HeadSignature {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&HexBytes(&self.0))
    }
}

impl<'de> Deserialize<'de> for HeadSignature {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(HexVisitor::<64>).map(HeadSignature)
    }
}

/// A signature by the organisation key over (`seq`, `hash`, `signed_at`): a
/// commitment that the log's entry `seq` had hash `hash` (and so, through the chain,
/// that every entry up to `seq` was as it is now).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedHead {
    /// The seq of the signed entry.
    pub seq: u64,
    /// The hash of the signed entry.
    pub hash: Hash,
    /// When the head was signed (as told by the caller).
    pub signed_at: Timestamp,
    /// Ed25519 signature over the message described in the crate documentation.
    pub signature: HeadSignature,
}

fn head_message(seq: u64, hash: &Hash, signed_at: Timestamp) -> [u8; 22 + 8 + 32 + 8] {
    let mut msg = [0u8; 22 + 8 + 32 + 8];
    msg[..22].copy_from_slice(HEAD_DOMAIN);
    msg[22..30].copy_from_slice(&seq.to_be_bytes());
    msg[30..62].copy_from_slice(&hash.0);
    msg[62..].copy_from_slice(&signed_at.unix_millis().to_be_bytes());
    msg
}

impl SignedHead {
    /// Signs `b"conclave-audit-head-v1" || seq (u64 BE) || hash || signed_at (i64 BE
    /// unix millis)` with the organisation key.
    pub fn sign(seq: u64, hash: Hash, signed_at: Timestamp, key: &SigningKey) -> SignedHead {
        let signature = key.sign(&head_message(seq, &hash, signed_at));
        SignedHead {
            seq,
            hash,
            signed_at,
            signature: HeadSignature(signature.to_bytes()),
        }
    }

    /// Whether the signature is valid for `key` (strict Ed25519 verification).
    pub fn verify(&self, key: &VerifyingKey) -> bool {
        let signature = Signature::from_bytes(&self.signature.0);
        key.verify_strict(
            &head_message(self.seq, &self.hash, self.signed_at),
            &signature,
        )
        .is_ok()
    }
}

// ---------------------------------------------------------------------------------
// Verification

/// The outcome of a successful verification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    /// How many entries were checked.
    pub entries: u64,
    /// The seq and hash of the last entry; `None` for an empty log.
    pub head: Option<(u64, Hash)>,
    /// How many signed heads were checked (all of them valid and matching).
    pub signed_heads: usize,
    /// The highest seq covered by a signed head, if any: entries after it are
    /// protected by the chain only.
    pub last_signed_seq: Option<u64>,
}

/// The first bad entry found, and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("audit entry {seq}: {problem}")]
pub struct VerifyError {
    /// The seq of the bad entry as stored (for [`Problem::BadHeadSignature`], the seq
    /// the head names; for [`Problem::Truncated`], the first missing seq).
    pub seq: u64,
    /// What is wrong.
    pub problem: Problem,
}

/// What is wrong with an entry. See the crate documentation for the order of checks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Problem {
    /// The entry's hash does not match its contents.
    #[error("its contents do not match its hash (the entry was edited)")]
    ContentsAltered,
    /// The entry's `prev_hash` is not the previous entry's hash.
    #[error(
        "it does not follow the entry before it (entries were deleted, inserted or reordered)"
    )]
    BrokenLink,
    /// The entry's `seq` is not the next number.
    #[error("expected entry {expected} here (entries were deleted, inserted or reordered)")]
    OutOfSequence {
        /// The seq that should have come next.
        expected: u64,
    },
    /// A signed head naming this seq does not carry a valid signature by the key.
    #[error("the signature on the signed head for this entry is invalid")]
    BadHeadSignature,
    /// A validly signed head names this seq with a different hash.
    #[error("it differs from the entry the organisation key signed (the log was rewritten)")]
    HeadMismatch,
    /// The log ends before the highest signed seq.
    #[error(
        "the log ends at entry {last} but entry {signed} was signed (entries were removed from the end)"
    )]
    Truncated {
        /// The seq of the last entry present (0 for an empty log).
        last: u64,
        /// The highest signed seq.
        signed: u64,
    },
}

/// Streaming verifier: feed entries in the order they are stored (ascending seq as
/// read from the database) with [`Verifier::push`], then call [`Verifier::finish`].
///
/// After the first error the verifier stays failed: every later `push` and `finish`
/// returns that same error.
pub struct Verifier {
    key: VerifyingKey,
    /// Heads sorted by seq; those at or below the last pushed entry are consumed.
    heads: VecDeque<SignedHead>,
    signed_heads: usize,
    last_signed_seq: Option<u64>,
    signatures_checked: bool,
    /// The seq and hash of the last accepted entry (0 and ZERO before the first).
    last_seq: u64,
    last_hash: Hash,
    failed: Option<VerifyError>,
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verifier")
            .field("entries", &self.last_seq)
            .field("signed_heads", &self.signed_heads)
            .field("failed", &self.failed)
            .finish_non_exhaustive()
    }
}

impl Verifier {
    /// A verifier for a log whose heads were signed by `key`. `heads` may come in any
    /// order and may be empty; their signatures are checked by the first
    /// [`Verifier::push`] or [`Verifier::finish`].
    pub fn new(key: VerifyingKey, mut heads: Vec<SignedHead>) -> Verifier {
        heads.sort_by_key(|h| h.seq);
        Verifier {
            key,
            signed_heads: heads.len(),
            last_signed_seq: heads.last().map(|h| h.seq),
            heads: heads.into(),
            signatures_checked: false,
            last_seq: 0,
            last_hash: Hash::ZERO,
            failed: None,
        }
    }

    fn fail(&mut self, seq: u64, problem: Problem) -> VerifyError {
        let err = VerifyError { seq, problem };
        self.failed = Some(err.clone());
        err
    }

    /// Checks every head signature (lowest seq first) and the seq-0 heads.
    fn check_signatures(&mut self) -> Result<(), VerifyError> {
        if self.signatures_checked {
            return Ok(());
        }
        self.signatures_checked = true;
        let bad = self
            .heads
            .iter()
            .find(|h| !h.verify(&self.key))
            .map(|h| h.seq);
        if let Some(seq) = bad {
            return Err(self.fail(seq, Problem::BadHeadSignature));
        }
        while let Some(head) = self.heads.front() {
            if head.seq != 0 {
                break;
            }
            if head.hash != Hash::ZERO {
                return Err(self.fail(0, Problem::HeadMismatch));
            }
            self.heads.pop_front();
        }
        Ok(())
    }

    /// Checks the next stored entry. Returns the first problem found (and keeps
    /// returning it).
    pub fn push(&mut self, entry: &Entry) -> Result<(), VerifyError> {
        if let Some(err) = &self.failed {
            return Err(err.clone());
        }
        self.check_signatures()?;

        let expected = self.last_seq.saturating_add(1);
        if entry.seq != expected {
            return Err(self.fail(entry.seq, Problem::OutOfSequence { expected }));
        }
        if entry.compute_hash() != entry.hash {
            return Err(self.fail(entry.seq, Problem::ContentsAltered));
        }
        if entry.prev_hash != self.last_hash {
            return Err(self.fail(entry.seq, Problem::BrokenLink));
        }
        while let Some(head) = self.heads.front() {
            if head.seq != entry.seq {
                break;
            }
            if head.hash != entry.hash {
                return Err(self.fail(entry.seq, Problem::HeadMismatch));
            }
            self.heads.pop_front();
        }
        self.last_seq = entry.seq;
        self.last_hash = entry.hash;
        Ok(())
    }

    /// Ends the stream: checks that no signed head lies beyond the last entry and
    /// reports what was verified.
    pub fn finish(mut self) -> Result<VerifyReport, VerifyError> {
        if let Some(err) = self.failed {
            return Err(err);
        }
        self.check_signatures()?;
        if let Some(signed) = self.last_signed_seq {
            if signed > self.last_seq {
                return Err(VerifyError {
                    seq: self.last_seq.saturating_add(1),
                    problem: Problem::Truncated {
                        last: self.last_seq,
                        signed,
                    },
                });
            }
        }
        Ok(VerifyReport {
            entries: self.last_seq,
            head: (self.last_seq > 0).then_some((self.last_seq, self.last_hash)),
            signed_heads: self.signed_heads,
            last_signed_seq: self.last_signed_seq,
        })
    }
}

/// Verifies a whole log at once: [`Verifier::new`], [`Verifier::push`] for each entry
/// in order, then [`Verifier::finish`].
pub fn verify<'a>(
    entries: impl IntoIterator<Item = &'a Entry>,
    heads: Vec<SignedHead>,
    key: VerifyingKey,
) -> Result<VerifyReport, VerifyError> {
    let mut verifier = Verifier::new(key, heads);
    for entry in entries {
        verifier.push(entry)?;
    }
    verifier.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixed_entry() -> Entry {
        Entry {
            seq: 42,
            time: Timestamp::from_unix_millis(1_795_426_200_123),
            actor: "user:AAAAAAAAAAAAAAAAAAAAAA".into(),
            action: "meeting.join".into(),
            target: "meeting:BBBBBBBBBBBBBBBBBBBBBB".into(),
            decision: "deny".into(),
            reasons: vec!["untrusted_network_denied".into(), "é".into()],
            prev_hash: Hash([0xab; 32]),
            hash: Hash::ZERO,
        }
    }

    #[test]
    fn canonical_bytes_layout() {
        let e = Entry {
            seq: 1,
            time: Timestamp::from_unix_millis(-1),
            actor: "a".into(),
            action: String::new(),
            target: "tt".into(),
            decision: "ok".into(),
            reasons: vec!["r".into()],
            prev_hash: Hash([9; 32]),
            hash: Hash([7; 32]),
        };
        let mut want = b"conclave-audit-entry-v1".to_vec();
        want.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 1]);
        want.extend_from_slice(&[0xff; 8]);
        want.extend_from_slice(&[0, 0, 0, 1, b'a']);
        want.extend_from_slice(&[0, 0, 0, 0]);
        want.extend_from_slice(&[0, 0, 0, 2, b't', b't']);
        want.extend_from_slice(&[0, 0, 0, 2, b'o', b'k']);
        want.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 1, b'r']);
        want.extend_from_slice(&[9; 32]);
        assert_eq!(e.canonical_bytes(), want);
        let digest: [u8; 32] = Sha256::digest(&want).into();
        assert_eq!(e.compute_hash(), Hash(digest));
    }

    #[test]
    fn known_answer_hash_never_drifts() {
        let e = fixed_entry();
        assert_eq!(
            e.compute_hash().to_string(),
            // Cross-checked with an independent implementation (Python hashlib).
            "f38f60b1dff68057228e66c6af5c2aa3ead8779fc610b1ecf1168500780880bf"
        );
    }

    #[test]
    fn known_answer_head_signature_never_drifts() {
        let key = SigningKey::from_bytes(&[1; 32]);
        let head = SignedHead::sign(
            7,
            Hash([3; 32]),
            Timestamp::from_unix_millis(1_795_426_200_000),
            &key,
        );
        assert!(head.verify(&key.verifying_key()));
        assert_eq!(
            format!("{:?}", head.signature),
            concat!(
                "HeadSignature(4f7845b150abc85d2c97f7659b1f4741b46588214634c806768d33e30c1073ee",
                "0261a1554934a55a425aea89bde364876d32e68204645e7bf2427275bef6700c)"
            )
        );
    }

    #[test]
    fn length_prefixes_make_fields_unambiguous() {
        let mut a = fixed_entry();
        let mut b = fixed_entry();
        a.actor = "ab".into();
        a.action = "c".into();
        b.actor = "a".into();
        b.action = "bc".into();
        assert_ne!(a.compute_hash(), b.compute_hash());
        a.reasons = vec!["xy".into()];
        b.reasons = vec!["x".into(), "y".into()];
        assert_ne!(a.canonical_bytes(), b.canonical_bytes());
    }

    #[test]
    fn hash_hex_round_trips_and_rejects_garbage() {
        let h = Hash([0x0f; 32]);
        let text = h.to_string();
        assert_eq!(text, "0f".repeat(32));
        assert_eq!(text.parse::<Hash>(), Ok(h));
        assert_eq!(text.to_uppercase().parse::<Hash>(), Ok(h));
        assert_eq!(format!("{h:?}"), format!("Hash({text})"));
        assert_eq!(
            "abc".parse::<Hash>(),
            Err(HashParseError::WrongLength {
                expected: 64,
                found: 3
            })
        );
        let mut bad = text.clone();
        bad.replace_range(5..6, "g");
        assert_eq!(
            bad.parse::<Hash>(),
            Err(HashParseError::InvalidCharacter { index: 5 })
        );
        // 64 bytes but multi-byte characters: no panic, an error.
        let unicode = "é".repeat(32);
        assert!(unicode.parse::<Hash>().is_err());
    }

    #[test]
    fn chain_state() {
        let mut chain = Chain::default();
        assert_eq!(chain, Chain::new());
        assert_eq!(chain.head(), None);
        assert_eq!(chain.next_seq(), 1);
        let rec = Record {
            actor: "system".into(),
            action: "server.start".into(),
            target: String::new(),
            decision: "ok".into(),
            reasons: vec![],
        };
        let first = chain.append(rec.clone(), Timestamp::from_unix_millis(0));
        assert_eq!(first.seq, 1);
        assert_eq!(first.prev_hash, Hash::ZERO);
        assert_eq!(first.hash, first.compute_hash());
        assert_eq!(chain.head(), Some((1, first.hash)));
        let second = chain.append(rec.clone(), Timestamp::from_unix_millis(1));
        assert_eq!(second.prev_hash, first.hash);
        assert_eq!(chain.next_seq(), 3);

        let mut resumed = Chain::resume(Some(&second));
        assert_eq!(resumed, chain);
        assert_eq!(Chain::resume(None), Chain::new());
        let third_a = chain.append(rec.clone(), Timestamp::from_unix_millis(2));
        let third_b = resumed.append(rec.clone(), Timestamp::from_unix_millis(2));
        assert_eq!(third_a, third_b);

        // A forged last entry at the end of the number range does not panic.
        let mut end = second.clone();
        end.seq = u64::MAX;
        let mut chain = Chain::resume(Some(&end));
        assert_eq!(chain.head(), Some((u64::MAX, end.hash)));
        let e = chain.append(rec, Timestamp::from_unix_millis(3));
        assert_eq!(e.seq, u64::MAX);
    }
}
