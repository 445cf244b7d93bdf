//! The organisation as identity authority: its signing key, device credentials,
//! proof of possession of device keys, and join tickets.
//!
//! # The organisation is the identity authority
//!
//! A Conclave deployment belongs to one organisation, which holds one Ed25519 key
//! ([`OrganisationKey`], created by `conclave init` and kept in a 0600 file). Every
//! statement about who somebody is, and which devices are theirs, is a signature by
//! that key. Anybody holding the public half ([`OrganisationPublicKey`]) can check
//! such a statement offline, without asking the server, and a server that is
//! compromised later cannot rewrite what was already signed without the key.
//!
//! # Device credentials
//!
//! Each device (a browser profile or a native client) generates its own Ed25519 key
//! pair and registers the public half ([`DevicePublicKey`]). The organisation then
//! issues a [`DeviceCredential`], which binds together:
//!
//! - the **organisation name**, so a credential of one organisation is not mistaken
//!   for another's;
//! - the **user** (id, login name and display name), so other participants see
//!   whom they are talking to, as attested by the organisation and not as claimed
//!   by the participant;
//! - the **device** (id and public key), so the credential is useless without the
//!   device's private key: it identifies a key, not a bearer;
//! - the **trust level** ([`DeviceTrust`]: personal or managed), which meeting
//!   policies use to admit or refuse devices;
//! - a **validity window** (`issued_at <= now < expires_at`), so a credential of a
//!   removed device or user stops working on its own.
//!
//! The credential will be carried in the leaf nodes of the meeting's MLS group, and
//! browser clients (this crate compiled to WebAssembly) verify every member's
//! credential against the organisation key before encrypting media to it. That is
//! why this crate is pure: no I/O, no clock (time is always an argument), and
//! randomness only from an RNG the caller passes in.
//!
//! ## Binary encoding
//!
//! All integers are big-endian; names are UTF-8 of 1..=128 bytes, each preceded by
//! its length as a `u16`. Every field has exactly one encoding, decoding is strict
//! (no trailing bytes, no unknown trust values, no non-canonical or weak keys, at
//! most 1 KiB) and re-encoding a decoded credential gives back the same bytes.
//!
//! | bytes     | field                                                    |
//! |-----------|----------------------------------------------------------|
//! | 22        | magic `b"conclave-credential-v1"`                        |
//! | 2 + n     | organisation name                                        |
//! | 16        | user id                                                  |
//! | 2 + n     | user (login) name                                        |
//! | 2 + n     | display name                                             |
//! | 16        | device id                                                |
//! | 32        | device public key (Ed25519, compressed point)            |
//! | 1         | trust: `0` personal, `1` managed                         |
//! | 8         | issued at, `i64` milliseconds since the Unix epoch       |
//! | 8         | expires at, `i64` milliseconds since the Unix epoch      |
//! | 64        | Ed25519 signature by the organisation key over all of the above |
//!
//! A credential is therefore 176 to 557 bytes. Its text form
//! ([`DeviceCredential::to_base64`]) is unpadded URL-safe base64 of these bytes.
//! The magic doubles as the signature's domain separator: nothing else the
//! organisation signs begins with it. Signatures are checked with strict Ed25519
//! verification (no malleable signatures, no small-order keys).
//!
//! # Proof of possession
//!
//! A credential names a key; it does not prove that whoever presents it holds that
//! key. Before admitting a device to a meeting the server sends a fresh random
//! 32-byte challenge, and the device signs [`join_challenge_message`]:
//! `b"conclave-join-challenge-v1"` ‖ meeting id (16 bytes) ‖ challenge (32 bytes).
//! Binding the meeting id means a signature collected for one meeting cannot be
//! replayed into another. See [`DeviceKey::sign_join_challenge`] and
//! [`DevicePublicKey::verify_join_challenge`].
//!
//! # Join tickets
//!
//! Once the server has checked the credential, the proof of possession and the
//! meeting's policy, it issues a [`JoinTicket`]: a short-lived permission for one
//! user, on one device, to enter one meeting's signalling, signed by the
//! organisation key so that any node can check it without shared state. Its text
//! form is unpadded URL-safe base64 (216 characters) of `b"conclave-ticket-v1"` ‖
//! user id 16 ‖ device id 16 ‖ meeting id 16 ‖ issued at `i64` ‖ expires at `i64` ‖
//! nonce 16 ‖ signature 64.
//!
//! # Example
//!
//! ```
//! use conclave_identity::{CredentialClaims, DeviceCredential, DeviceKey, OrganisationKey};
//! use conclave_types::{DeviceId, DeviceTrust, Timestamp, UserId};
//!
//! let org = OrganisationKey::from_seed(&[7; 32]);
//! let device = DeviceKey::from_seed(&[9; 32]);
//! let credential = org.issue_credential(CredentialClaims {
//!     organisation: "Example Ltd".into(),
//!     user_id: UserId::from_bytes([1; 16]),
//!     user_name: "alice".into(),
//!     display_name: "Alice Liddell".into(),
//!     device_id: DeviceId::from_bytes([2; 16]),
//!     device_key: device.public(),
//!     trust: DeviceTrust::Managed,
//!     issued_at: Timestamp::from_unix_millis(1_000),
//!     expires_at: Timestamp::from_unix_millis(2_000),
//! });
//!
//! let text = credential.to_base64();
//! let received = DeviceCredential::from_base64(&text)?;
//! let claims = received.verify(&org.public(), Timestamp::from_unix_millis(1_500))?;
//! assert_eq!(claims.user_name, "alice");
//! assert_eq!(claims.device_key, device.public());
//! # Ok::<(), conclave_identity::CredentialError>(())
//! ```

mod credential;
mod error;
mod keys;
mod ticket;
mod wire;

pub use conclave_types::DeviceTrust;
pub use credential::{CredentialClaims, DeviceCredential, MAX_CREDENTIAL_LEN, MAX_NAME_LEN};
pub use error::{CredentialError, KeyError, KeyFileError, PossessionError, TicketError};
pub use keys::{
    join_challenge_message, DeviceKey, DevicePublicKey, OrganisationKey, OrganisationPublicKey,
};
pub use ticket::{JoinTicket, TicketClaims};

/// Entry points for fuzz targets. Not part of the stable API.
#[doc(hidden)]
pub mod fuzzing {
    use conclave_types::Timestamp;

    use crate::{DeviceCredential, JoinTicket, OrganisationKey};

    /// Parses `data` as a binary credential and, if it is valid UTF-8, as a base64
    /// credential; whatever parses must re-encode to exactly the same input.
    ///
    /// # Panics
    ///
    /// When a round trip is not byte-identical: that is a bug in the codec.
    pub fn fuzz_credential(data: &[u8]) {
        let org = OrganisationKey::from_seed(&[0; 32]).public();
        if let Ok(credential) = DeviceCredential::from_bytes(data) {
            assert_eq!(credential.to_bytes(), data, "credential bytes round trip");
            let _ = credential.verify(&org, credential.claims().issued_at);
        }
        if let Ok(text) = std::str::from_utf8(data) {
            if let Ok(credential) = DeviceCredential::from_base64(text) {
                assert_eq!(credential.to_base64(), text, "credential base64 round trip");
            }
        }
    }

    /// Parses `data` (as UTF-8) as a join ticket; whatever parses must re-encode to
    /// exactly the same text.
    ///
    /// # Panics
    ///
    /// When a round trip is not identical: that is a bug in the codec.
    pub fn fuzz_ticket(data: &[u8]) {
        let Ok(text) = std::str::from_utf8(data) else {
            return;
        };
        if let Ok(ticket) = JoinTicket::decode(text) {
            assert_eq!(ticket.encode(), text, "ticket round trip");
            let org = OrganisationKey::from_seed(&[0; 32]).public();
            let _ = ticket.verify(&org, Timestamp::from_unix_millis(0));
        }
    }
}
