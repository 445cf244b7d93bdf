//! The browser's only cryptography: Conclave's pure MLS session
//! ([`conclave_e2ee`]) and SFrame media encryption ([`conclave_frame`]),
//! compiled to WebAssembly and exposed to JavaScript with `wasm-bindgen`.
//!
//! # Why a thin facade
//!
//! A browser participant must do exactly what a native one does: verify every
//! member's organisation-signed credential, refuse ghosts, derive the same
//! security code and the same SFrame keys. Re-implementing any of that in
//! JavaScript would give two implementations to keep in step and to audit, and
//! JavaScript cryptography is hard to get constant-time and allocation-clean.
//! So the browser runs the very same Rust crates the server's tests run, and
//! this crate only translates types: bytes in and out as `Uint8Array`, enums as
//! plain objects with a `kind` or `type` string, Rust errors as `JsError`s
//! carrying the error's message, and JavaScript clocks (milliseconds as
//! `number`) into the `now` arguments of the pure crates. It holds no protocol
//! logic; anything that looks like a decision belongs in the pure crates.
//!
//! # Numbers
//!
//! MLS epochs are `u64` and cross the boundary as JavaScript `BigInt`s (pass
//! `1n`, not `1`), so no epoch is ever rounded. Leaf indices are `u32` and
//! travel as `number`. Clocks are `number`s of milliseconds: [`FrameCipher`]
//! takes a monotonic clock (`performance.now()`), [`Member`] wall-clock time
//! (`Date.now()`), which decides whether credentials are valid. Negative,
//! infinite or NaN times are refused.
//!
//! # Names
//!
//! The JavaScript names are the Rust names (`set_epoch`, `poll_output`, ...).
//!
//! # Building and testing
//!
//! `scripts/build-wasm` builds the release WebAssembly and generates the
//! bindings into `target/wasm/node` (Node.js) and `target/wasm/web` (ES module
//! for the web app). `tests/node_interop.rs` drives the Node.js build from
//! `cargo test`: known-answer vectors, frames crossing between native and
//! WebAssembly in both directions, one MLS group with a native and a
//! WebAssembly member, and a seal+open timing loop.
//!
//! On other targets the crate compiles (as an `rlib`) so the workspace builds
//! and lints it everywhere, but its functions are meant to be called from
//! WebAssembly only: `wasm-bindgen` values do nothing useful natively.

use conclave_e2ee::{
    Event, ExternalSenderInfo, Input, MemberIdentity, MemberInfo, Output, Session,
};
use conclave_frame::{Codec, FrameConfig, FrameCrypto, Source};
use conclave_identity::{DeviceCredential, DeviceKey, OrganisationPublicKey};
use conclave_types::{DeviceId, MeetingId, Timestamp};
use js_sys::{Object, Reflect, Uint8Array};
use wasm_bindgen::prelude::*;

/// The largest integer a JavaScript `number` holds exactly (2^53 - 1).
const MAX_SAFE_INTEGER: f64 = 9_007_199_254_740_991.0;

/// A JavaScript millisecond count as whole milliseconds, refusing what is not a
/// non-negative finite number in the exactly representable range.
fn millis(ms: f64) -> Result<u64, JsError> {
    if ms.is_finite() && (0.0..=MAX_SAFE_INTEGER).contains(&ms) {
        // in range and finite, so the truncating cast is exact on the integer part
        Ok(ms as u64)
    } else {
        Err(JsError::new(
            "time must be a finite, non-negative number of milliseconds",
        ))
    }
}

/// A wall-clock JavaScript time (`Date.now()`) as a [`Timestamp`].
fn timestamp(ms: f64) -> Result<Timestamp, JsError> {
    let ms = i64::try_from(millis(ms)?).map_err(|_| JsError::new("time out of range"))?;
    Ok(Timestamp::from_unix_millis(ms))
}

/// Any Rust error as a `JsError` with its message.
fn js_error(error: impl std::fmt::Display) -> JsError {
    JsError::new(&error.to_string())
}

/// Sets `key` on a fresh plain object.
fn set(object: &Object, key: &str, value: impl Into<JsValue>) {
    // Defining a data property on a fresh, ordinary, extensible object cannot
    // fail, so the result carries no information.
    let _ = Reflect::set(object, &JsValue::from_str(key), &value.into());
}

/// Bytes as a new `Uint8Array`.
fn bytes(data: &[u8]) -> JsValue {
    Uint8Array::from(data).into()
}

/// SFrame (RFC 9605) encryption of one participant's media frames with keys from
/// the call's MLS epochs: [`conclave_frame::FrameCrypto`] for JavaScript.
#[wasm_bindgen]
pub struct FrameCipher {
    inner: FrameCrypto,
}

#[wasm_bindgen]
impl FrameCipher {
    /// A cipher with no epoch yet. `grace_ms` is how long the previous epoch's
    /// keys still open frames after a new epoch is installed (2000 is the
    /// recommended value); other settings are the defaults of
    /// [`FrameConfig`]. A `grace_ms` that is not a non-negative number throws.
    #[wasm_bindgen(constructor)]
    pub fn new(grace_ms: f64) -> Result<FrameCipher, JsError> {
        let config = FrameConfig {
            grace_ms: millis(grace_ms)?,
            ..FrameConfig::default()
        };
        Ok(Self {
            inner: FrameCrypto::new(config),
        })
    }

    /// Installs an epoch's keys: the epoch number (a `BigInt`), its SFrame
    /// secret (the `key_material` event's `sframe_epoch_secret`), this member's
    /// leaf, every member's leaf (`Uint32Array` or array of numbers) and the
    /// monotonic clock in milliseconds (`performance.now()`).
    pub fn set_epoch(
        &mut self,
        epoch: u64,
        secret: &[u8],
        own_leaf: u32,
        members: &[u32],
        now_ms: f64,
    ) -> Result<(), JsError> {
        let now = millis(now_ms)?;
        self.inner
            .set_epoch(epoch, secret, own_leaf, members, now)
            .map_err(js_error)
    }

    /// Seals one encoded frame of `codec` (`"vp8"`, `"vp9"`, `"h264"`,
    /// `"av1"`, `"opus"`; anything else is fully encrypted) with this member's
    /// current key. Returns the sealed frame.
    pub fn seal(&mut self, codec_name: &str, frame: &[u8]) -> Result<Vec<u8>, JsError> {
        self.inner
            .seal(Codec::from_name(codec_name), frame)
            .map_err(js_error)
    }

    /// [`FrameCipher::seal`] for frames of a shared screen: this member's
    /// second stream, with its own key and counter, which receivers learn is a
    /// screen (its Key ID context; [`OpenedFrame::screen`]).
    pub fn seal_screen(&mut self, codec_name: &str, frame: &[u8]) -> Result<Vec<u8>, JsError> {
        self.inner
            .seal_from(Source::Screen, Codec::from_name(codec_name), frame)
            .map_err(js_error)
    }

    /// Opens a sealed frame of `codec` received at monotonic time `now_ms`.
    /// Throws if it does not authenticate, is a replay or belongs to an unknown
    /// or expired epoch; the caller drops such frames.
    pub fn open(
        &mut self,
        codec_name: &str,
        frame: &[u8],
        now_ms: f64,
    ) -> Result<OpenedFrame, JsError> {
        let now = millis(now_ms)?;
        let opened = self
            .inner
            .open(Codec::from_name(codec_name), frame, now)
            .map_err(js_error)?;
        Ok(OpenedFrame {
            sender_leaf: opened.sender_leaf,
            screen: opened.source == Source::Screen,
            epoch: opened.epoch,
            frame: opened.frame,
        })
    }

    /// The leaf a sealed frame of `codec` claims to come from (its Key ID),
    /// without opening it, or `undefined` if it is not a sealed frame: whose
    /// frames fail to open, for the page to say so. Not authenticated.
    pub fn claimed_sender(&self, codec_name: &str, frame: &[u8]) -> Option<u32> {
        self.inner
            .claimed_sender(Codec::from_name(codec_name), frame)
    }
}

/// A frame [`FrameCipher::open`] recovered, with the leaf and epoch its key
/// belongs to.
#[wasm_bindgen]
pub struct OpenedFrame {
    sender_leaf: u32,
    screen: bool,
    epoch: u64,
    frame: Vec<u8>,
}

#[wasm_bindgen]
impl OpenedFrame {
    /// The sender's leaf index (as named by the frame's Key ID).
    #[wasm_bindgen(getter)]
    pub fn sender_leaf(&self) -> u32 {
        self.sender_leaf
    }

    /// Whether the frame is from the sender's shared screen (sealed with
    /// [`FrameCipher::seal_screen`]) rather than their camera or microphone.
    #[wasm_bindgen(getter)]
    pub fn screen(&self) -> bool {
        self.screen
    }

    /// The epoch of the key that opened the frame (a `BigInt`).
    #[wasm_bindgen(getter)]
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The decrypted frame (a new `Uint8Array` on every access).
    #[wasm_bindgen(getter)]
    pub fn frame(&self) -> Vec<u8> {
        self.frame.clone()
    }
}

/// The public half of the device key whose 32-byte Ed25519 seed is `seed`, as
/// the API takes it when the device registers (`POST /api/devices`).
///
/// The browser draws the seed with `crypto.getRandomValues`. The same key signs
/// MLS messages inside [`Member`], so WebCrypto cannot hold it as a
/// non-extractable key; the app keeps the seed encrypted under a
/// non-extractable WebCrypto key instead.
#[wasm_bindgen]
pub fn device_public_key(seed: &[u8]) -> Result<String, JsError> {
    Ok(DeviceKey::from_seed(&device_seed(seed)?)
        .public()
        .to_string())
}

/// Proof of possession for a join request: the device key's signature over
/// the server's 32-byte `challenge` for the meeting `meeting_id` (its
/// URL-safe base64 id), as `POST /api/meetings/{id}/join` takes it.
#[wasm_bindgen]
pub fn sign_join_challenge(
    seed: &[u8],
    meeting_id: &str,
    challenge: &[u8],
) -> Result<Vec<u8>, JsError> {
    let meeting: MeetingId = meeting_id.parse().map_err(js_error)?;
    let challenge: [u8; 32] = challenge
        .try_into()
        .map_err(|_| JsError::new("the join challenge must be 32 bytes"))?;
    Ok(DeviceKey::from_seed(&device_seed(seed)?)
        .sign_join_challenge(&meeting, &challenge)
        .to_vec())
}

fn device_seed(seed: &[u8]) -> Result<[u8; 32], JsError> {
    seed.try_into()
        .map_err(|_| JsError::new("the device key seed must be 32 bytes"))
}

/// The security code members compare out of band for an epoch authenticator
/// ([`conclave_e2ee::security_code`]), e.g. `"04217 88310 00923 51177"`.
#[wasm_bindgen]
pub fn security_code(epoch_authenticator: &[u8]) -> String {
    conclave_e2ee::security_code(epoch_authenticator)
}

/// This participant's state in one meeting's MLS group:
/// [`conclave_e2ee::Session`] for JavaScript.
///
/// Feed every input in order with the methods named after
/// [`conclave_e2ee::Input`], then drain [`Member::poll_output`] until it
/// returns `undefined`. A method that throws left the session unchanged.
#[wasm_bindgen]
pub struct Member {
    inner: Session,
}

#[wasm_bindgen]
impl Member {
    /// A member with this device's organisation-signed credential (its binary
    /// encoding), the 32-byte seed of the device's Ed25519 key, the
    /// organisation's public key (43 characters of URL-safe base64), the
    /// server's external-sender signature key (32 bytes) and credential
    /// identity (bytes), at wall-clock time `now_ms` (`Date.now()`).
    #[wasm_bindgen(constructor)]
    pub fn new(
        credential: &[u8],
        device_key_seed: &[u8],
        organisation_key: &str,
        server_signature_key: &[u8],
        server_identity: &[u8],
        now_ms: f64,
    ) -> Result<Member, JsError> {
        let now = timestamp(now_ms)?;
        let credential = DeviceCredential::from_bytes(credential).map_err(js_error)?;
        let seed = device_seed(device_key_seed)?;
        let organisation: OrganisationPublicKey = organisation_key.parse().map_err(js_error)?;
        let signature_key: [u8; 32] = server_signature_key
            .try_into()
            .map_err(|_| JsError::new("the server's signature key must be 32 bytes"))?;
        let server = ExternalSenderInfo {
            signature_key,
            identity: server_identity.to_vec(),
        };
        let inner = Session::new(
            MemberIdentity::new(credential, seed),
            organisation,
            server,
            now,
        )
        .map_err(js_error)?;
        Ok(Self { inner })
    }

    /// This member's KeyPackage, for the server to put in an Add proposal.
    pub fn key_package(&self) -> Vec<u8> {
        self.inner.key_package()
    }

    /// Creates the group (this participant was admitted first).
    pub fn create_group(&mut self, now_ms: f64) -> Result<(), JsError> {
        self.handle(Input::CreateGroup, now_ms)
    }

    /// The group's public state (a GroupInfo with the ratchet tree, `MLSMessage`
    /// encoding) that the creator sends in `group_created` right after
    /// [`Member::create_group`]. Holds no secrets.
    pub fn group_info(&self) -> Result<Vec<u8>, JsError> {
        self.inner.group_info().map_err(js_error)
    }

    /// Bytes the delivery service delivered (an MLS message or a Welcome).
    pub fn delivered(&mut self, message: &[u8], now_ms: f64) -> Result<(), JsError> {
        self.handle(Input::Delivered(message.to_vec()), now_ms)
    }

    /// Signalling announced this device (22-character id) as admitted.
    pub fn admitted(&mut self, device_id: &str) -> Result<(), JsError> {
        let device: DeviceId = device_id.parse().map_err(js_error)?;
        // announcements do not depend on the time
        self.handle_at(Input::Admitted { device }, Timestamp::from_unix_millis(0))
    }

    /// Signalling announced this device (22-character id) as revoked.
    pub fn revoked(&mut self, device_id: &str) -> Result<(), JsError> {
        let device: DeviceId = device_id.parse().map_err(js_error)?;
        // announcements do not depend on the time
        self.handle_at(Input::Revoked { device }, Timestamp::from_unix_millis(0))
    }

    /// The delivery service chose this member to commit the pending proposals.
    pub fn commit_pending(&mut self, now_ms: f64) -> Result<(), JsError> {
        self.handle(Input::CommitPending, now_ms)
    }

    /// The delivery service rejected this member's commit.
    pub fn commit_rejected(&mut self, now_ms: f64) -> Result<(), JsError> {
        self.handle(Input::CommitRejected, now_ms)
    }

    /// Encrypts an application message to the group (queued until the group
    /// can encrypt).
    pub fn send_application(&mut self, data: &[u8], now_ms: f64) -> Result<(), JsError> {
        self.handle(Input::SendApplication(data.to_vec()), now_ms)
    }

    /// The next output, or `undefined`. One of
    /// - `{kind: "send", bytes}`: send to the delivery service;
    /// - `{kind: "welcome", bytes}`: send to the delivery service for the joiners;
    /// - `{kind: "event", event}`, where `event.type` is `"joined"` (`epoch`),
    ///   `"epoch_changed"` (`epoch`, `security_code`), `"member_added"`
    ///   (`leaf`, `device_id`, `device_key` (unpadded URL-safe base64),
    ///   `user_id`, `user_name`, `display_name`, `organisation`, `trust`),
    ///   `"member_removed"` (`leaf`),
    ///   `"key_material"` (`epoch`, `sframe_epoch_secret`, `own_leaf`),
    ///   `"application"` (`sender_leaf`, `data`), `"refused"` (`reason`, a
    ///   message) or `"other"` (a kind this facade does not know yet).
    ///
    /// Epochs are `BigInt`s, byte strings `Uint8Array`s.
    pub fn poll_output(&mut self) -> JsValue {
        let Some(output) = self.inner.poll_output() else {
            return JsValue::UNDEFINED;
        };
        let object = Object::new();
        match output {
            Output::Send(message) => {
                set(&object, "kind", "send");
                set(&object, "bytes", bytes(&message));
            }
            Output::Welcome(message) => {
                set(&object, "kind", "welcome");
                set(&object, "bytes", bytes(&message));
            }
            Output::Event(event) => {
                set(&object, "kind", "event");
                set(&object, "event", event_object(event));
            }
            _ => set(&object, "kind", "other"),
        }
        object.into()
    }

    /// The current epoch's security code, or `undefined` outside a group.
    pub fn security_code(&self) -> Option<String> {
        self.inner.security_code()
    }

    /// The current epoch (a `BigInt`), or `undefined` outside a group.
    pub fn epoch(&self) -> Option<u64> {
        self.inner.epoch()
    }

    /// This member's leaf index, or `undefined` outside a group.
    pub fn own_leaf(&self) -> Option<u32> {
        self.inner.own_leaf()
    }

    /// The current epoch's SFrame base secret, or `undefined` outside a group.
    pub fn sframe_epoch_secret(&self) -> Option<Vec<u8>> {
        self.inner
            .sframe_epoch_secret()
            .map(|secret| secret.expose().to_vec())
    }

    /// The leaf indices of the current members (for [`FrameCipher::set_epoch`]).
    pub fn member_leaves(&self) -> Vec<u32> {
        self.inner.members().iter().map(|m| m.leaf).collect()
    }
}

impl Member {
    fn handle(&mut self, input: Input, now_ms: f64) -> Result<(), JsError> {
        let now = timestamp(now_ms)?;
        self.handle_at(input, now)
    }

    fn handle_at(&mut self, input: Input, now: Timestamp) -> Result<(), JsError> {
        self.inner.handle(input, now).map_err(js_error)
    }
}

/// An [`Event`] as a plain object with a `type` string.
fn event_object(event: Event) -> Object {
    let object = Object::new();
    match event {
        Event::Joined { epoch } => {
            set(&object, "type", "joined");
            set(&object, "epoch", epoch);
        }
        Event::EpochChanged {
            epoch,
            security_code,
        } => {
            set(&object, "type", "epoch_changed");
            set(&object, "epoch", epoch);
            set(&object, "security_code", security_code);
        }
        Event::MemberAdded(member) => {
            set(&object, "type", "member_added");
            member_fields(&object, &member);
        }
        Event::MemberRemoved { leaf } => {
            set(&object, "type", "member_removed");
            set(&object, "leaf", leaf);
        }
        Event::KeyMaterial {
            epoch,
            sframe_epoch_secret,
            own_leaf,
        } => {
            set(&object, "type", "key_material");
            set(&object, "epoch", epoch);
            set(
                &object,
                "sframe_epoch_secret",
                bytes(sframe_epoch_secret.expose()),
            );
            set(&object, "own_leaf", own_leaf);
        }
        Event::Application { sender_leaf, data } => {
            set(&object, "type", "application");
            set(&object, "sender_leaf", sender_leaf);
            set(&object, "data", bytes(&data));
        }
        Event::Refused { reason } => {
            set(&object, "type", "refused");
            set(&object, "reason", reason.to_string());
        }
        _ => set(&object, "type", "other"),
    }
    object
}

/// The verified claims of a member, as properties of `object`.
fn member_fields(object: &Object, member: &MemberInfo) {
    let claims = &member.claims;
    set(object, "leaf", member.leaf);
    set(object, "device_id", claims.device_id.to_string());
    set(object, "device_key", claims.device_key.to_string());
    set(object, "user_id", claims.user_id.to_string());
    set(object, "user_name", claims.user_name.clone());
    set(object, "display_name", claims.display_name.clone());
    set(object, "organisation", claims.organisation.clone());
    set(object, "trust", claims.trust.to_string());
}
