//! The organisation's signing key, device keys, and proof of possession.

use std::fmt;
use std::str::FromStr;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use conclave_types::MeetingId;
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use zeroize::Zeroizing;

use crate::credential::{CredentialClaims, DeviceCredential};
use crate::error::{KeyError, KeyFileError, PossessionError};
use crate::ticket::{JoinTicket, TicketClaims};

/// First line of an organisation key file.
const KEY_FILE_HEADER: &str = "conclave-organisation-key-v1";

/// Domain-separation prefix of the message a device signs to prove possession.
const JOIN_CHALLENGE_MAGIC: &[u8] = b"conclave-join-challenge-v1";

/// Parses 32 bytes as an Ed25519 public key that is canonical and not of small order.
fn strict_verifying_key(bytes: &[u8]) -> Result<VerifyingKey, KeyError> {
    let bytes: &[u8; 32] = bytes.try_into().map_err(|_| KeyError::WrongLength)?;
    let key = VerifyingKey::from_bytes(bytes).map_err(|_| KeyError::InvalidPoint)?;
    // Decompression accepts a few non-canonical encodings (y >= p); refuse them so
    // that each key has exactly one encoding.
    if key.to_edwards().compress().to_bytes() != *bytes {
        return Err(KeyError::InvalidPoint);
    }
    if key.is_weak() {
        return Err(KeyError::WeakKey);
    }
    Ok(key)
}

fn key_from_text(text: &str) -> Result<VerifyingKey, KeyError> {
    // 32 bytes are 43 characters; do not decode long junk just to say so.
    if text.len() > 64 {
        return Err(KeyError::WrongLength);
    }
    let bytes = URL_SAFE_NO_PAD
        .decode(text)
        .map_err(|_| KeyError::BadEncoding)?;
    strict_verifying_key(&bytes)
}

/// The organisation's Ed25519 identity key (created by `conclave init`, stored in a
/// 0600 file).
///
/// It signs device credentials, join tickets and the audit log's head. The secret is
/// zeroized on drop and `Debug` prints only the public key.
pub struct OrganisationKey {
    key: SigningKey,
}

impl OrganisationKey {
    /// Draws a fresh key from a cryptographic RNG.
    pub fn generate(rng: &mut (impl rand::CryptoRng + rand::RngCore)) -> Self {
        Self {
            key: SigningKey::generate(rng),
        }
    }

    /// The key whose 32-byte Ed25519 seed is `seed`.
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        Self {
            key: SigningKey::from_bytes(seed),
        }
    }

    /// The key file text: `conclave-organisation-key-v1\n`, then standard padded
    /// base64 of the 32-byte seed, then `\n`. The string is zeroized on drop.
    pub fn to_file_text(&self) -> Zeroizing<String> {
        let seed = Zeroizing::new(self.key.to_bytes());
        // Reserve the full length up front so the secret is never reallocated
        // (which would leave an unzeroized copy behind).
        let mut text = Zeroizing::new(String::with_capacity(KEY_FILE_HEADER.len() + 1 + 44 + 1));
        text.push_str(KEY_FILE_HEADER);
        text.push('\n');
        // A slice, not `*seed`: copying the array out would leave an unzeroized copy.
        STANDARD.encode_string(seed.as_slice(), &mut text);
        text.push('\n');
        text
    }

    /// Reads key file text written by [`OrganisationKey::to_file_text`].
    ///
    /// Trailing whitespace (including a final newline, or `\r\n` line ends) is
    /// tolerated; anything else is an error.
    pub fn from_file_text(text: &str) -> Result<Self, KeyFileError> {
        let (header, rest) = text.split_once('\n').ok_or(KeyFileError::MissingHeader)?;
        if header.trim_end() != KEY_FILE_HEADER {
            return Err(KeyFileError::MissingHeader);
        }
        let encoded = rest.trim_end();
        if encoded.len() > 1024 {
            return Err(KeyFileError::WrongLength);
        }
        let seed = Zeroizing::new(
            STANDARD
                .decode(encoded)
                .map_err(|_| KeyFileError::BadEncoding)?,
        );
        let seed: &[u8; 32] = seed
            .as_slice()
            .try_into()
            .map_err(|_| KeyFileError::WrongLength)?;
        Ok(Self::from_seed(seed))
    }

    /// The public half, which every node and client uses to verify what this key signs.
    pub fn public(&self) -> OrganisationPublicKey {
        OrganisationPublicKey(self.key.verifying_key())
    }

    /// The underlying Ed25519 key, for the audit log to sign its head with.
    ///
    /// Whatever else is signed with it must begin with its own domain-separation
    /// prefix, distinct from `conclave-credential-v1` and `conclave-ticket-v1`.
    pub fn signing_key(&self) -> &SigningKey {
        &self.key
    }

    /// Signs `claims`, producing a device credential.
    ///
    /// # Panics
    ///
    /// If a string in `claims` is empty or longer than 128 bytes: such a credential
    /// could not be decoded. Use [`OrganisationKey::try_issue_credential`] (or
    /// [`CredentialClaims::check`]) where the strings come from user input.
    pub fn issue_credential(&self, claims: CredentialClaims) -> DeviceCredential {
        self.try_issue_credential(claims).expect(
            "credential claims must have 1..=128-byte strings (see CredentialClaims::check)",
        )
    }

    /// Signs `claims`, or says which field breaks the encoding's limits.
    pub fn try_issue_credential(
        &self,
        claims: CredentialClaims,
    ) -> Result<DeviceCredential, crate::CredentialError> {
        claims.check()?;
        let signature = self.key.sign(&claims.signed_bytes()).to_bytes();
        Ok(DeviceCredential::from_parts(claims, signature))
    }

    /// Signs `claims`, producing a join ticket.
    pub fn issue_ticket(&self, claims: TicketClaims) -> JoinTicket {
        let signature = self.key.sign(&claims.signed_bytes()).to_bytes();
        JoinTicket::from_parts(claims, signature)
    }
}

impl fmt::Debug for OrganisationKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OrganisationKey")
            .field("public", &self.public())
            .finish_non_exhaustive()
    }
}

/// The organisation's public key.
///
/// `Display`/`FromStr` use unpadded URL-safe base64 of the 32 bytes (43
/// characters); serde uses that string.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct OrganisationPublicKey(VerifyingKey);

impl OrganisationPublicKey {
    /// The underlying Ed25519 key.
    pub fn verifying_key(&self) -> &VerifyingKey {
        &self.0
    }

    /// Parses 32 bytes; invalid, non-canonical and small-order points are refused.
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<Self, KeyError> {
        strict_verifying_key(bytes).map(Self)
    }

    /// The 32-byte encoding.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0.to_bytes()
    }
}

/// A device's Ed25519 public key, as sent by a client at registration.
///
/// `Display`/`FromStr` use unpadded URL-safe base64 of the 32 bytes (43
/// characters); serde uses that string.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct DevicePublicKey(VerifyingKey);

impl DevicePublicKey {
    /// Parses a public key: anything but 32 bytes, an invalid or non-canonical
    /// point, or a weak (small-order) point is refused.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, KeyError> {
        strict_verifying_key(bytes).map(Self)
    }

    /// The 32-byte encoding.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    /// Checks a proof of possession: `signature` (64 bytes) by this key over
    /// [`join_challenge_message`]`(meeting, challenge)`. Uses strict verification
    /// (no malleable or small-order signatures).
    pub fn verify_join_challenge(
        &self,
        meeting: &MeetingId,
        challenge: &[u8; 32],
        signature: &[u8],
    ) -> Result<(), PossessionError> {
        let signature =
            Signature::from_slice(signature).map_err(|_| PossessionError::MalformedSignature)?;
        self.0
            .verify_strict(&join_challenge_message(meeting, challenge), &signature)
            .map_err(|_| PossessionError::BadSignature)
    }
}

macro_rules! public_key_text {
    ($name:ident) => {
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&URL_SAFE_NO_PAD.encode(self.0.as_bytes()))
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self)
            }
        }

        impl FromStr for $name {
            type Err = KeyError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                key_from_text(s).map(Self)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

public_key_text!(OrganisationPublicKey);
public_key_text!(DevicePublicKey);

/// A device's private key, held by the client (the native participant and tests;
/// the browser keeps its own in WebCrypto). Zeroized on drop; `Debug` prints only
/// the public key.
pub struct DeviceKey {
    key: SigningKey,
}

impl DeviceKey {
    /// Draws a fresh key from a cryptographic RNG.
    pub fn generate(rng: &mut (impl rand::CryptoRng + rand::RngCore)) -> Self {
        Self {
            key: SigningKey::generate(rng),
        }
    }

    /// The key whose 32-byte Ed25519 seed is `seed`.
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        Self {
            key: SigningKey::from_bytes(seed),
        }
    }

    /// The public half, which the organisation binds into the device's credential.
    pub fn public(&self) -> DevicePublicKey {
        DevicePublicKey(self.key.verifying_key())
    }

    /// Proves possession: signs [`join_challenge_message`]`(meeting, challenge)`.
    pub fn sign_join_challenge(&self, meeting: &MeetingId, challenge: &[u8; 32]) -> [u8; 64] {
        self.key
            .sign(&join_challenge_message(meeting, challenge))
            .to_bytes()
    }
}

impl fmt::Debug for DeviceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeviceKey")
            .field("public", &self.public())
            .finish_non_exhaustive()
    }
}

/// The exact bytes a device signs to prove possession of its key:
/// `b"conclave-join-challenge-v1"` ‖ meeting id (16 bytes) ‖ challenge (32 bytes),
/// 74 bytes in all.
pub fn join_challenge_message(meeting: &MeetingId, challenge: &[u8; 32]) -> Vec<u8> {
    let mut message = Vec::with_capacity(JOIN_CHALLENGE_MAGIC.len() + 16 + 32);
    message.extend_from_slice(JOIN_CHALLENGE_MAGIC);
    message.extend_from_slice(meeting.as_bytes());
    message.extend_from_slice(challenge);
    message
}
