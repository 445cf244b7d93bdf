//! Join tickets: short-lived, organisation-signed permissions to enter one meeting.

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use conclave_types::{DeviceId, MeetingId, Timestamp, UserId};
use ed25519_dalek::Signature;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::TicketError;
use crate::keys::OrganisationPublicKey;
use crate::wire::Reader;

/// Magic prefix of an encoded ticket; also the signature's domain separator.
const MAGIC: &[u8] = b"conclave-ticket-v1";

/// Length of the signed part: magic, three ids, two timestamps, nonce.
const SIGNED_LEN: usize = MAGIC.len() + 16 * 3 + 8 * 2 + 16;

/// Length of the binary form (162 bytes).
const TICKET_LEN: usize = SIGNED_LEN + 64;

/// Length of the text form (216 characters; 162 is a multiple of 3, so no
/// partial group).
const TICKET_TEXT_LEN: usize = TICKET_LEN / 3 * 4;

/// What a join ticket permits: this user, on this device, may enter this meeting's
/// signalling between `issued_at` (inclusive) and `expires_at` (exclusive).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TicketClaims {
    /// The user.
    pub user_id: UserId,
    /// The device the user proved possession of.
    pub device_id: DeviceId,
    /// The one meeting the ticket opens.
    pub meeting_id: MeetingId,
    /// Start of validity (inclusive).
    pub issued_at: Timestamp,
    /// End of validity (exclusive).
    pub expires_at: Timestamp,
    /// Random bytes that make each ticket unique (for replay bookkeeping).
    pub nonce: [u8; 16],
}

impl TicketClaims {
    /// The signed part of the encoding (everything before the signature).
    pub(crate) fn signed_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(TICKET_LEN);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(self.user_id.as_bytes());
        out.extend_from_slice(self.device_id.as_bytes());
        out.extend_from_slice(self.meeting_id.as_bytes());
        out.extend_from_slice(&self.issued_at.unix_millis().to_be_bytes());
        out.extend_from_slice(&self.expires_at.unix_millis().to_be_bytes());
        out.extend_from_slice(&self.nonce);
        out
    }
}

/// A short-lived permission to enter one meeting's signalling, bound to user,
/// device and meeting. Signed by the organisation key so that any node can check it.
///
/// Decoding does not verify; call [`JoinTicket::verify`]. serde uses the text form.
#[derive(Clone, PartialEq, Eq)]
pub struct JoinTicket {
    claims: TicketClaims,
    signature: [u8; 64],
}

impl fmt::Debug for JoinTicket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinTicket")
            .field("claims", &self.claims)
            .field("signature", &URL_SAFE_NO_PAD.encode(self.signature))
            .finish()
    }
}

impl JoinTicket {
    pub(crate) fn from_parts(claims: TicketClaims, signature: [u8; 64]) -> Self {
        Self { claims, signature }
    }

    /// The claims, NOT verified: use [`JoinTicket::verify`] to trust them.
    pub fn claims(&self) -> &TicketClaims {
        &self.claims
    }

    /// The text form: unpadded URL-safe base64 (216 characters) of
    /// `b"conclave-ticket-v1"` ‖ user 16 ‖ device 16 ‖ meeting 16 ‖ issued_at i64 BE ‖
    /// expires_at i64 BE ‖ nonce 16 ‖ signature 64.
    pub fn encode(&self) -> String {
        let mut bytes = self.claims.signed_bytes();
        bytes.extend_from_slice(&self.signature);
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// Parses the text form strictly (exact length, canonical base64, magic). Does
    /// not verify the signature.
    pub fn decode(text: &str) -> Result<Self, TicketError> {
        use TicketError::Malformed;

        if text.len() != TICKET_TEXT_LEN {
            return Err(Malformed("length"));
        }
        let bytes = URL_SAFE_NO_PAD
            .decode(text)
            .map_err(|_| Malformed("base64"))?;
        let mut r = Reader::new(&bytes);
        if r.take(MAGIC.len()) != Some(MAGIC) {
            return Err(Malformed("magic"));
        }
        let user_id = UserId::from_bytes(r.array().ok_or(Malformed("user_id"))?);
        let device_id = DeviceId::from_bytes(r.array().ok_or(Malformed("device_id"))?);
        let meeting_id = MeetingId::from_bytes(r.array().ok_or(Malformed("meeting_id"))?);
        let issued_at = Timestamp::from_unix_millis(r.i64_be().ok_or(Malformed("issued_at"))?);
        let expires_at = Timestamp::from_unix_millis(r.i64_be().ok_or(Malformed("expires_at"))?);
        let nonce = r.array().ok_or(Malformed("nonce"))?;
        let signature = r.array().ok_or(Malformed("signature"))?;
        if !r.is_empty() {
            return Err(Malformed("length"));
        }
        Ok(Self {
            claims: TicketClaims {
                user_id,
                device_id,
                meeting_id,
                issued_at,
                expires_at,
                nonce,
            },
            signature,
        })
    }

    /// Checks the organisation's signature (strict Ed25519), then that
    /// `issued_at <= now < expires_at`; returns the claims, now trustworthy.
    ///
    /// Whether the ticket was already used (its nonce) is the caller's bookkeeping.
    pub fn verify(
        &self,
        org: &OrganisationPublicKey,
        now: Timestamp,
    ) -> Result<&TicketClaims, TicketError> {
        let signature = Signature::from_bytes(&self.signature);
        org.verifying_key()
            .verify_strict(&self.claims.signed_bytes(), &signature)
            .map_err(|_| TicketError::BadSignature)?;
        if now < self.claims.issued_at {
            return Err(TicketError::NotYetValid);
        }
        if now >= self.claims.expires_at {
            return Err(TicketError::Expired);
        }
        Ok(&self.claims)
    }
}

impl Serialize for JoinTicket {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.encode())
    }
}

impl<'de> Deserialize<'de> for JoinTicket {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Self::decode(&s).map_err(serde::de::Error::custom)
    }
}
