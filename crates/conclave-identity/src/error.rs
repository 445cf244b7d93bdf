//! Error types. Every message is safe to show to a user or write to a log: none of
//! them repeats the input that was rejected.

/// Why bytes or text are not an acceptable Ed25519 public key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// Not exactly 32 bytes.
    #[error("an Ed25519 public key is exactly 32 bytes")]
    WrongLength,
    /// The 32 bytes are not the canonical encoding of a point on the curve.
    #[error("the public key is not a valid Ed25519 point")]
    InvalidPoint,
    /// The point has small order: signatures under it would prove nothing.
    #[error("the public key is a weak (small-order) Ed25519 point")]
    WeakKey,
    /// The text is not unpadded URL-safe base64.
    #[error("a public key is written as unpadded URL-safe base64")]
    BadEncoding,
}

/// Why the text of an organisation key file could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyFileError {
    /// The first line is not `conclave-organisation-key-v1`.
    #[error("not a Conclave organisation key file (the first line must be \"conclave-organisation-key-v1\")")]
    MissingHeader,
    /// The second line is not standard, padded base64.
    #[error("the organisation key file's key line is not valid base64")]
    BadEncoding,
    /// The key line does not decode to exactly 32 bytes.
    #[error("the organisation key file's key is not 32 bytes long")]
    WrongLength,
}

/// Why a proof of possession (a signed join challenge) was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PossessionError {
    /// The signature is not 64 bytes.
    #[error("a device signature is exactly 64 bytes")]
    MalformedSignature,
    /// The signature does not verify under the device key for this meeting and challenge.
    #[error("the device signature over the join challenge does not verify")]
    BadSignature,
}

/// Why a device credential was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CredentialError {
    /// The encoding is wrong; the payload names the field (or `"magic"`, `"base64"`,
    /// `"trailing bytes"`) where parsing stopped.
    #[error("malformed device credential: bad {0}")]
    Malformed(&'static str),
    /// Longer than any valid credential can be (1 KiB).
    #[error("device credential is too large")]
    TooLarge,
    /// Not signed by this organisation, or altered after signing.
    #[error("device credential is not signed by this organisation")]
    BadSignature,
    /// `now` is before the credential's `issued_at`.
    #[error("device credential is not valid yet")]
    NotYetValid,
    /// `now` is at or after the credential's `expires_at`.
    #[error("device credential has expired")]
    Expired,
}

/// Why a join ticket was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TicketError {
    /// The encoding is wrong; the payload names what was wrong (`"length"`,
    /// `"base64"`, `"magic"`).
    #[error("malformed join ticket: bad {0}")]
    Malformed(&'static str),
    /// Not signed by this organisation, or altered after signing.
    #[error("join ticket is not signed by this organisation")]
    BadSignature,
    /// `now` is before the ticket's `issued_at`.
    #[error("join ticket is not valid yet")]
    NotYetValid,
    /// `now` is at or after the ticket's `expires_at`.
    #[error("join ticket has expired")]
    Expired,
}
