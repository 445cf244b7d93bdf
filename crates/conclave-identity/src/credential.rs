//! Device credentials: the organisation's signed statement binding a device key to a
//! user, a device and a trust level.

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use conclave_types::{DeviceId, DeviceTrust, Timestamp, UserId};
use ed25519_dalek::Signature;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::CredentialError;
use crate::keys::{DevicePublicKey, OrganisationPublicKey};
use crate::wire::Reader;

/// Magic prefix of an encoded credential; also the signature's domain separator.
const MAGIC: &[u8] = b"conclave-credential-v1";

/// Longest organisation, user or display name, in bytes of UTF-8.
pub const MAX_NAME_LEN: usize = 128;

/// Longest accepted encoding, in bytes. (The longest valid credential is 557 bytes.)
pub const MAX_CREDENTIAL_LEN: usize = 1024;

/// Longest accepted base64 form: `MAX_CREDENTIAL_LEN` bytes, unpadded.
const MAX_CREDENTIAL_TEXT_LEN: usize = MAX_CREDENTIAL_LEN.div_ceil(3) * 4;

/// What the organisation vouches for when it issues a device credential.
///
/// `Debug` redacts the user and display names (they are personal data).
#[derive(Clone, PartialEq, Eq)]
pub struct CredentialClaims {
    /// The organisation's name, 1..=128 bytes.
    pub organisation: String,
    /// The user the device belongs to.
    pub user_id: UserId,
    /// The user's login name, 1..=128 bytes.
    pub user_name: String,
    /// The user's display name, 1..=128 bytes.
    pub display_name: String,
    /// The device.
    pub device_id: DeviceId,
    /// The device's public key; only the holder of its private half can use this
    /// credential (see [`DevicePublicKey::verify_join_challenge`]).
    pub device_key: DevicePublicKey,
    /// How far the organisation trusts the device.
    pub trust: DeviceTrust,
    /// Start of validity (inclusive).
    pub issued_at: Timestamp,
    /// End of validity (exclusive).
    pub expires_at: Timestamp,
}

impl fmt::Debug for CredentialClaims {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CredentialClaims")
            .field("organisation", &self.organisation)
            .field("user_id", &self.user_id)
            .field("user_name", &"[redacted]")
            .field("display_name", &"[redacted]")
            .field("device_id", &self.device_id)
            .field("device_key", &self.device_key)
            .field("trust", &self.trust)
            .field("issued_at", &self.issued_at)
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

fn check_name(name: &str, field: &'static str) -> Result<(), CredentialError> {
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        Err(CredentialError::Malformed(field))
    } else {
        Ok(())
    }
}

fn put_name(out: &mut Vec<u8>, name: &str) {
    // check() has bounded the length to MAX_NAME_LEN, far below u16::MAX.
    let len = u16::try_from(name.len()).unwrap_or(u16::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(name.as_bytes());
}

fn read_name(r: &mut Reader<'_>, field: &'static str) -> Result<String, CredentialError> {
    let malformed = CredentialError::Malformed(field);
    let len = usize::from(r.u16_be().ok_or(malformed)?);
    if len == 0 || len > MAX_NAME_LEN {
        return Err(malformed);
    }
    let bytes = r.take(len).ok_or(malformed)?;
    let name = std::str::from_utf8(bytes).map_err(|_| malformed)?;
    Ok(name.to_owned())
}

const fn trust_byte(trust: DeviceTrust) -> u8 {
    match trust {
        DeviceTrust::Personal => 0,
        DeviceTrust::Managed => 1,
    }
}

impl CredentialClaims {
    /// Checks the limits of the encoding: each of `organisation`, `user_name` and
    /// `display_name` is 1..=128 bytes. Errors name the offending field.
    pub fn check(&self) -> Result<(), CredentialError> {
        check_name(&self.organisation, "organisation")?;
        check_name(&self.user_name, "user_name")?;
        check_name(&self.display_name, "display_name")
    }

    /// The signed part of the encoding (everything before the signature).
    pub(crate) fn signed_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(
            MAGIC.len()
                + 6
                + self.organisation.len()
                + self.user_name.len()
                + self.display_name.len()
                + 16
                + 16
                + 32
                + 1
                + 16
                + 64,
        );
        out.extend_from_slice(MAGIC);
        put_name(&mut out, &self.organisation);
        out.extend_from_slice(self.user_id.as_bytes());
        put_name(&mut out, &self.user_name);
        put_name(&mut out, &self.display_name);
        out.extend_from_slice(self.device_id.as_bytes());
        out.extend_from_slice(&self.device_key.to_bytes());
        out.push(trust_byte(self.trust));
        out.extend_from_slice(&self.issued_at.unix_millis().to_be_bytes());
        out.extend_from_slice(&self.expires_at.unix_millis().to_be_bytes());
        out
    }
}

/// A device credential: [`CredentialClaims`] signed by the organisation key.
///
/// Decoding does not verify; call [`DeviceCredential::verify`] before trusting the
/// claims. serde uses the base64 form.
#[derive(Clone, PartialEq, Eq)]
pub struct DeviceCredential {
    claims: CredentialClaims,
    signature: [u8; 64],
}

impl fmt::Debug for DeviceCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeviceCredential")
            .field("claims", &self.claims)
            .field("signature", &URL_SAFE_NO_PAD.encode(self.signature))
            .finish()
    }
}

impl DeviceCredential {
    pub(crate) fn from_parts(claims: CredentialClaims, signature: [u8; 64]) -> Self {
        Self { claims, signature }
    }

    /// The claims, NOT verified: use [`DeviceCredential::verify`] to trust them.
    pub fn claims(&self) -> &CredentialClaims {
        &self.claims
    }

    /// The binary encoding (see the crate documentation).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = self.claims.signed_bytes();
        out.extend_from_slice(&self.signature);
        out
    }

    /// Parses the binary encoding, strictly: exact lengths, no trailing bytes, valid
    /// UTF-8 names of 1..=128 bytes, a canonical non-weak device key, a known trust
    /// byte, and at most 1 KiB in all. Does not verify the signature.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CredentialError> {
        use CredentialError::Malformed;

        if bytes.len() > MAX_CREDENTIAL_LEN {
            return Err(CredentialError::TooLarge);
        }
        let mut r = Reader::new(bytes);
        if r.take(MAGIC.len()) != Some(MAGIC) {
            return Err(Malformed("magic"));
        }
        let organisation = read_name(&mut r, "organisation")?;
        let user_id = UserId::from_bytes(r.array().ok_or(Malformed("user_id"))?);
        let user_name = read_name(&mut r, "user_name")?;
        let display_name = read_name(&mut r, "display_name")?;
        let device_id = DeviceId::from_bytes(r.array().ok_or(Malformed("device_id"))?);
        let device_key = r.take(32).ok_or(Malformed("device_key"))?;
        let device_key =
            DevicePublicKey::from_bytes(device_key).map_err(|_| Malformed("device_key"))?;
        let trust = match r.u8() {
            Some(0) => DeviceTrust::Personal,
            Some(1) => DeviceTrust::Managed,
            _ => return Err(Malformed("trust")),
        };
        let issued_at = Timestamp::from_unix_millis(r.i64_be().ok_or(Malformed("issued_at"))?);
        let expires_at = Timestamp::from_unix_millis(r.i64_be().ok_or(Malformed("expires_at"))?);
        let signature = r.array().ok_or(Malformed("signature"))?;
        if !r.is_empty() {
            return Err(Malformed("trailing bytes"));
        }
        Ok(Self {
            claims: CredentialClaims {
                organisation,
                user_id,
                user_name,
                display_name,
                device_id,
                device_key,
                trust,
                issued_at,
                expires_at,
            },
            signature,
        })
    }

    /// Unpadded URL-safe base64 of [`DeviceCredential::to_bytes`].
    pub fn to_base64(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.to_bytes())
    }

    /// Parses the base64 form (unpadded URL-safe, canonical) strictly, as
    /// [`DeviceCredential::from_bytes`] does.
    pub fn from_base64(text: &str) -> Result<Self, CredentialError> {
        if text.len() > MAX_CREDENTIAL_TEXT_LEN {
            return Err(CredentialError::TooLarge);
        }
        let bytes = URL_SAFE_NO_PAD
            .decode(text)
            .map_err(|_| CredentialError::Malformed("base64"))?;
        Self::from_bytes(&bytes)
    }

    /// Checks the organisation's signature (strict Ed25519), then that
    /// `issued_at <= now < expires_at`; returns the claims, now trustworthy.
    pub fn verify(
        &self,
        org: &OrganisationPublicKey,
        now: Timestamp,
    ) -> Result<&CredentialClaims, CredentialError> {
        let signature = Signature::from_bytes(&self.signature);
        org.verifying_key()
            .verify_strict(&self.claims.signed_bytes(), &signature)
            .map_err(|_| CredentialError::BadSignature)?;
        if now < self.claims.issued_at {
            return Err(CredentialError::NotYetValid);
        }
        if now >= self.claims.expires_at {
            return Err(CredentialError::Expired);
        }
        Ok(&self.claims)
    }
}

impl Serialize for DeviceCredential {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_base64())
    }
}

impl<'de> Deserialize<'de> for DeviceCredential {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Self::from_base64(&s).map_err(serde::de::Error::custom)
    }
}
