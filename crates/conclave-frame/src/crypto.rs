//! The per-participant frame encryption state: epochs, keys, counters and replay windows.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;

use sframe::frame::validation::{ReplayAttackProtection, Tolerance};
use sframe::{
    error::SframeError,
    frame::{EncryptedFrameView, MediaFrameView, SingleUseCounter},
    header::SframeHeader,
    mls::{MlsKeyId, MlsKeyIdBitRange},
    CipherSuite,
};

use crate::backend::{ReceiveKey, SendKey};
use crate::codec::{self, Codec};
use crate::FrameError;

/// The SFrame cipher suite: `AES_128_GCM_SHA256_128` (RFC 9605 §4.5, 0x0004), matching the MLS
/// cipher suite `MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519`.
pub const CIPHER_SUITE: CipherSuite = CipherSuite::AesGcm128Sha256;

/// Label of the MLS exporter call producing the per-epoch SFrame base key (RFC 9605 §5.2).
pub const MLS_EXPORTER_LABEL: &str = "SFrame 1.0 Base Key";

/// Length RFC 9605 §5.2 gives the exported base key: `AEAD.Nk`, 16 bytes for
/// `AES_128_GCM_SHA256_128`. [`FrameCrypto::set_epoch`] accepts any secret of at least this
/// length (all members must of course export the same length).
pub const MLS_EXPORTER_LENGTH: usize = 16;

/// Bits of the Key ID holding the sender's MLS leaf index: all of a `u32`, so every leaf index
/// fits and none is ever out of range.
pub const LEAF_INDEX_BITS: u8 = 32;

/// Length of the AES-GCM authentication tag every sealed frame ends with.
const TAG_LEN: usize = 16;

/// Tuning of a [`FrameCrypto`]. [`Default`] gives the values documented on each field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameConfig {
    /// How long (in the caller's milliseconds) the keys of an epoch stay usable for opening
    /// after its successor was installed, so frames in flight across an epoch change still
    /// open. Default 2,000 ms.
    pub grace_ms: u64,
    /// `E` of RFC 9605 §5.2: how many low bits of the epoch number the Key ID carries. At most
    /// `2^E` epochs can be told apart at once; 4 bits (16 epochs) is ample for a 2 s grace
    /// period. Clamped to `1..=31` (the leaf index takes 32 bits, one bit must be left for the
    /// context). The context ID is always 0, so a Key ID is `leaf << E | epoch mod 2^E` and fits
    /// into one or a few header bytes. Default 4.
    pub epoch_bits: u8,
    /// Replay window per sender, in frames: how far behind the newest counter seen from a
    /// sender a frame may arrive and still be accepted (once). One counter covers all of a
    /// sender's audio and video frames, which travel through differently delayed pipelines, so
    /// this is generous. Clamped to `1..=2^20`. Default 1,024.
    pub replay_window: usize,
}

impl Default for FrameConfig {
    fn default() -> Self {
        Self {
            grace_ms: 2_000,
            epoch_bits: 4,
            replay_window: 1_024,
        }
    }
}

/// Which of a member's streams a frame belongs to: the Key ID's context (RFC 9605 §5.2 gives
/// each of a member's senders its own context, so each has its own key and counter). Receivers
/// learn from it, authenticated, that a video is someone's screen and not their camera.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    /// Microphone and camera (context 0).
    Main,
    /// A shared screen (context 1).
    Screen,
}

impl Source {
    const ALL: [Source; 2] = [Source::Main, Source::Screen];

    fn context(self) -> u64 {
        match self {
            Source::Main => 0,
            Source::Screen => 1,
        }
    }

    fn from_context(context: u64) -> Option<Source> {
        Source::ALL.into_iter().find(|s| s.context() == context)
    }
}

/// What [`FrameCrypto::open`] recovered from a sealed frame.
#[derive(Clone, PartialEq, Eq)]
pub struct Opened {
    /// MLS leaf index of the member who sealed the frame (authenticated as "holder of the epoch
    /// secret", see the crate docs on what that does and does not prove).
    pub sender_leaf: u32,
    /// Which of the sender's streams it belongs to (authenticated like the leaf).
    pub source: Source,
    /// The MLS epoch whose keys opened the frame.
    pub epoch: u64,
    /// The plaintext frame, byte for byte what the sender passed to [`FrameCrypto::seal`].
    pub frame: Vec<u8>,
}

impl fmt::Debug for Opened {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Opened")
            .field("sender_leaf", &self.sender_leaf)
            .field("source", &self.source)
            .field("epoch", &self.epoch)
            .field("frame_len", &self.frame.len())
            .finish()
    }
}

/// This member's sending key for one source in the current epoch.
struct Sender {
    key: SendKey,
    /// Next SFrame counter; `None` once all counters of the epoch are used.
    next_counter: Option<u64>,
}

/// What is needed to open one sender's frames in one epoch.
struct Receiver {
    key: ReceiveKey,
    replay: ReplayAttackProtection,
}

/// The keys of one epoch, or the tombstone of one whose keys were dropped.
struct Epoch {
    epoch: u64,
    epoch_lsb: u64,
    /// By sender leaf and source; `None` once the grace period ran out and the keys were
    /// dropped.
    receivers: Option<HashMap<(u32, Source), Receiver>>,
    /// `now_ms` at which the next epoch was installed; `None` for the current epoch.
    retired_at: Option<u64>,
}

impl Epoch {
    fn expired(&self, now_ms: u64, grace_ms: u64) -> bool {
        match self.retired_at {
            None => false,
            Some(retired) => now_ms.saturating_sub(retired) >= grace_ms,
        }
    }
}

/// One participant's frame encryption state for one call.
///
/// Holds this member's sending key and counter for the current epoch and, per epoch still
/// held, one decryption key and replay window per member. All of a participant's tracks must be
/// sealed through the same instance: a second instance with the same epoch and leaf would start
/// its counter at 0 again and reuse AES-GCM nonces.
///
/// Key material lives only inside `sframe` keys, which zeroize on drop; this type's
/// [`Debug`] prints no key material.
pub struct FrameCrypto {
    config: FrameConfig,
    bit_range: MlsKeyIdBitRange,
    /// By source, for the current epoch.
    senders: HashMap<Source, Sender>,
    /// Held epochs, oldest first; the last one is the current epoch.
    epochs: Vec<Epoch>,
}

impl fmt::Debug for FrameCrypto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FrameCrypto")
            .field("config", &self.config)
            .field("current_epoch", &self.current_epoch())
            .field("epochs_held", &self.epochs.len())
            .finish_non_exhaustive()
    }
}

fn mls_bit_range(epoch_bits: u8) -> MlsKeyIdBitRange {
    match MlsKeyIdBitRange::try_new(epoch_bits, LEAF_INDEX_BITS) {
        Ok(range) => range,
        // unreachable with the clamp in `FrameCrypto::new`, kept total without a panic
        Err(_) => MlsKeyIdBitRange::try_new(1, LEAF_INDEX_BITS)
            .expect("1 epoch bit + 32 index bits leave 31 context bits"),
    }
}

impl FrameCrypto {
    /// Creates the state with no epoch installed; [`Self::seal`] and [`Self::open`] return
    /// [`FrameError::NoKey`] until [`Self::set_epoch`] is called. Out-of-range configuration
    /// values are clamped as documented on [`FrameConfig`].
    pub fn new(config: FrameConfig) -> Self {
        let config = FrameConfig {
            grace_ms: config.grace_ms,
            epoch_bits: config.epoch_bits.clamp(1, 31),
            replay_window: config.replay_window.clamp(1, 1 << 20),
        };
        Self {
            bit_range: mls_bit_range(config.epoch_bits),
            config,
            senders: HashMap::new(),
            epochs: Vec::new(),
        }
    }

    /// The configuration in use, after clamping.
    pub fn config(&self) -> FrameConfig {
        self.config
    }

    /// The current epoch, if one is installed.
    pub fn current_epoch(&self) -> Option<u64> {
        self.epochs.last().map(|e| e.epoch)
    }

    /// The SFrame Key ID (RFC 9605 §5.2) that `leaf` uses in `epoch` under this configuration
    /// for its [`Source::Main`]: `leaf << E | (epoch mod 2^E)`, context 0.
    pub fn key_id(&self, epoch: u64, leaf: u32) -> u64 {
        self.source_key_id(epoch, leaf, Source::Main)
    }

    /// The Key ID of `leaf`'s `source` in `epoch`: [`Self::key_id`] with the source's context
    /// in the bits above the leaf.
    pub fn source_key_id(&self, epoch: u64, leaf: u32, source: Source) -> u64 {
        match MlsKeyId::try_new(source.context(), epoch, leaf, self.bit_range) {
            Ok(kid) => kid.into(),
            // a u32 leaf always fits the 32 index bits, context 0 always fits
            Err(_) => 0,
        }
    }

    /// Installs a new epoch.
    ///
    /// `epoch_secret` is `MLS-Exporter("SFrame 1.0 Base Key", "", Nk)` of the new epoch
    /// ([`MLS_EXPORTER_LABEL`], [`MLS_EXPORTER_LENGTH`]), `own_leaf` this member's MLS leaf
    /// index and `members` the leaf indices of every member of the epoch (including
    /// `own_leaf`); frames from other leaves are refused with [`FrameError::UnknownSender`].
    /// Per RFC 9605 §5.2 every sender's key is derived from the secret and its Key ID.
    ///
    /// From now on [`Self::seal`] uses the new epoch, with its counter starting at 0. The
    /// previous epoch stays usable for opening until `now_ms` reaches this call's `now_ms` +
    /// [`FrameConfig::grace_ms`]. An older epoch whose low `E` bits equal the new one's is
    /// dropped at once, as RFC 9605 §5.2 requires.
    ///
    /// # Errors
    /// [`FrameError::EpochNotNewer`] if `epoch` is not greater than the current epoch (that
    /// would restart a counter under the same key), [`FrameError::InvalidEpoch`] if the secret
    /// is shorter than [`MLS_EXPORTER_LENGTH`] or `own_leaf` is not in `members`,
    /// [`FrameError::Crypto`] if key derivation fails. On error nothing changes.
    pub fn set_epoch(
        &mut self,
        epoch: u64,
        epoch_secret: &[u8],
        own_leaf: u32,
        members: &[u32],
        now_ms: u64,
    ) -> Result<(), FrameError> {
        if let Some(current) = self.current_epoch() {
            if epoch <= current {
                return Err(FrameError::EpochNotNewer {
                    current,
                    offered: epoch,
                });
            }
        }
        if epoch_secret.len() < MLS_EXPORTER_LENGTH {
            return Err(FrameError::InvalidEpoch(
                "epoch secret shorter than AEAD.Nk",
            ));
        }
        if !members.contains(&own_leaf) {
            return Err(FrameError::InvalidEpoch(
                "own leaf is not among the members",
            ));
        }
        let tolerance = Tolerance::try_new(self.config.replay_window)
            .map_err(|_| FrameError::InvalidEpoch("replay window out of range"))?;

        let mut senders = HashMap::with_capacity(Source::ALL.len());
        let mut receivers = HashMap::with_capacity(members.len() * Source::ALL.len());
        for source in Source::ALL {
            let kid = self.source_key_id(epoch, own_leaf, source);
            let key = SendKey::derive_from(CIPHER_SUITE, kid, epoch_secret)
                .map_err(|_| FrameError::Crypto)?;
            senders.insert(
                source,
                Sender {
                    key,
                    next_counter: Some(0),
                },
            );
            for &leaf in members {
                if receivers.contains_key(&(leaf, source)) {
                    continue;
                }
                let kid = self.source_key_id(epoch, leaf, source);
                let key = ReceiveKey::derive_from(CIPHER_SUITE, kid, epoch_secret)
                    .map_err(|_| FrameError::Crypto)?;
                let replay = ReplayAttackProtection::new(kid, tolerance);
                receivers.insert((leaf, source), Receiver { key, replay });
            }
        }

        let epoch_lsb = self.epoch_lsb(epoch);
        for held in &mut self.epochs {
            if held.retired_at.is_none() {
                held.retired_at = Some(now_ms);
            }
        }
        self.epochs.retain(|held| held.epoch_lsb != epoch_lsb);
        self.epochs.push(Epoch {
            epoch,
            epoch_lsb,
            receivers: Some(receivers),
            retired_at: None,
        });
        self.senders = senders;
        self.drop_expired(now_ms);
        Ok(())
    }

    /// Drops the keys of every epoch whose grace period is over at `now_ms`, keeping a
    /// key-less tombstone so its late frames report [`FrameError::StaleEpoch`]. [`Self::open`]
    /// and [`Self::set_epoch`] call this themselves; call it from a timer to drop old keys
    /// promptly even when no frames arrive.
    pub fn drop_expired(&mut self, now_ms: u64) {
        let grace_ms = self.config.grace_ms;
        for held in &mut self.epochs {
            if held.receivers.is_some() && held.expired(now_ms, grace_ms) {
                held.receivers = None;
            }
        }
        // tombstones older than the epoch-bit window can never be named unambiguously
        let window = 1usize << self.config.epoch_bits.min(16);
        if self.epochs.len() > window {
            let excess = self.epochs.len() - window;
            self.epochs.drain(..excess);
        }
    }

    fn epoch_lsb(&self, epoch: u64) -> u64 {
        let bits = u32::from(self.config.epoch_bits);
        epoch & ((1u64 << bits) - 1)
    }

    /// Seals one encoded frame of `codec` with this member's key for the current epoch.
    ///
    /// Output: clear prefix (see [`Codec`]) followed by the SFrame ciphertext (header,
    /// encrypted rest of the frame, tag); the prefix is authenticated as SFrame metadata. For
    /// [`Codec::H264`] the part after the prefix is start-code escaped.
    ///
    /// # Errors
    /// [`FrameError::NoKey`] before the first [`Self::set_epoch`], [`FrameError::Malformed`] if
    /// the frame is too short for its codec's clear prefix, [`FrameError::CounterExhausted`]
    /// after 2^64 frames in one epoch.
    pub fn seal(&mut self, codec: Codec, frame: &[u8]) -> Result<Vec<u8>, FrameError> {
        self.seal_from(Source::Main, codec, frame)
    }

    /// [`Self::seal`] for one of this member's sources: its own key and counter.
    ///
    /// # Errors
    /// As [`Self::seal`].
    pub fn seal_from(
        &mut self,
        source: Source,
        codec: Codec,
        frame: &[u8],
    ) -> Result<Vec<u8>, FrameError> {
        let sender = self.senders.get_mut(&source).ok_or(FrameError::NoKey)?;
        let prefix_len = codec::clear_prefix_len(codec, frame)?;
        let counter = sender.next_counter.ok_or(FrameError::CounterExhausted)?;
        let (prefix, payload) = frame.split_at(prefix_len);

        let media = MediaFrameView::try_with_meta_data(
            &mut SingleUseCounter::new(counter),
            payload,
            prefix,
        )
        .map_err(|_| FrameError::Crypto)?;
        let mut sealed = Vec::with_capacity(frame.len() + 32);
        media
            .encrypt_into(&sender.key, &mut sealed)
            .map_err(|_| FrameError::Crypto)?;
        sender.next_counter = counter.checked_add(1);

        if codec == Codec::H264 {
            let mut escaped = Vec::with_capacity(sealed.len() + 8);
            escaped.extend_from_slice(prefix);
            let sframe_part = sealed.get(prefix_len..).unwrap_or_default();
            codec::escape_into(codec::trailing_zeros(prefix), sframe_part, &mut escaped);
            return Ok(escaped);
        }
        Ok(sealed)
    }

    /// Opens one sealed frame of `codec` received at `now_ms` (the caller's monotonic clock, the
    /// same one given to [`Self::set_epoch`]).
    ///
    /// # Errors
    /// [`FrameError::NoKey`] before any epoch, [`FrameError::Malformed`] for input that is not
    /// a sealed frame of this codec, [`FrameError::UnknownEpoch`] / [`FrameError::StaleEpoch`]
    /// if the named epoch is not held / past its grace period, [`FrameError::UnknownSender`] if
    /// the named leaf is not a member of that epoch, [`FrameError::Replayed`] for a counter
    /// already accepted from that sender (or too far behind), [`FrameError::Authentication`]
    /// if the tag does not verify. A frame that fails leaves no trace in the replay window.
    pub fn open(&mut self, codec: Codec, frame: &[u8], now_ms: u64) -> Result<Opened, FrameError> {
        if self.epochs.is_empty() {
            return Err(FrameError::NoKey);
        }
        self.drop_expired(now_ms);

        let Parsed {
            prefix,
            body,
            leaf,
            source,
            epoch_lsb,
        } = self.parse(codec, frame)?;
        let held = self
            .epochs
            .iter_mut()
            .find(|held| held.epoch_lsb == epoch_lsb)
            .ok_or(FrameError::UnknownEpoch)?;
        let epoch = held.epoch;
        let receivers = held.receivers.as_mut().ok_or(FrameError::StaleEpoch)?;
        let Receiver { key, replay } = receivers
            .get_mut(&(leaf, source))
            .ok_or(FrameError::UnknownSender { leaf })?;

        let encrypted = EncryptedFrameView::try_with_meta_data(&body, prefix)
            .map_err(|_| FrameError::Malformed("truncated SFrame header"))?;
        let mut plain = Vec::with_capacity(frame.len());
        encrypted
            .validated_decrypt_into(&*key, &mut plain, replay)
            .map_err(|err| match err {
                SframeError::FrameValidationFailed(_) => FrameError::Replayed,
                SframeError::DecryptionFailure | SframeError::MissingDecryptionKey { .. } => {
                    FrameError::Authentication
                }
                SframeError::InvalidBuffer(_) => FrameError::Malformed("SFrame buffer too short"),
                _ => FrameError::Crypto,
            })?;

        Ok(Opened {
            sender_leaf: leaf,
            source,
            epoch,
            frame: plain,
        })
    }

    /// The leaf a sealed frame of `codec` claims to come from (its Key ID), without opening
    /// it: to say whose frames fail to open ("cannot decrypt video from Dana"). Unauthenticated
    /// by nature; `None` if the frame is not even well formed.
    pub fn claimed_sender(&self, codec: Codec, frame: &[u8]) -> Option<u32> {
        self.parse(codec, frame).ok().map(|parsed| parsed.leaf)
    }

    /// Splits a sealed frame into clear prefix and (unescaped) SFrame part, checks its header
    /// is canonical and reads the Key ID.
    fn parse<'a>(&self, codec: Codec, frame: &'a [u8]) -> Result<Parsed<'a>, FrameError> {
        let prefix_len = codec::clear_prefix_len(codec, frame)?;
        let (prefix, rest) = frame.split_at(prefix_len);
        let body = if codec == Codec::H264 {
            Cow::Owned(codec::unescape(codec::trailing_zeros(prefix), rest)?)
        } else {
            Cow::Borrowed(rest)
        };

        let header = SframeHeader::deserialize(&body)
            .map_err(|_| FrameError::Malformed("truncated SFrame header"))?;
        // the longest header: config byte, 8-byte KID, 8-byte counter
        let mut canonical = [0u8; 17];
        let canonical = canonical
            .get_mut(..header.len())
            .ok_or(FrameError::Malformed("SFrame header too long"))?;
        header
            .serialize(&mut *canonical)
            .map_err(|_| FrameError::Malformed("SFrame header too long"))?;
        if body.get(..canonical.len()) != Some(&*canonical) {
            return Err(FrameError::Malformed("non-canonical SFrame header"));
        }
        if body.len() < canonical.len() + TAG_LEN {
            return Err(FrameError::Malformed(
                "SFrame ciphertext shorter than its tag",
            ));
        }

        let kid = MlsKeyId::from_key_id(header.key_id(), self.bit_range);
        let source = Source::from_context(kid.context_id())
            .ok_or(FrameError::Malformed("unknown Key ID context"))?;
        let leaf = u32::try_from(kid.member_index())
            .map_err(|_| FrameError::Malformed("leaf index out of range"))?;
        Ok(Parsed {
            prefix,
            body,
            leaf,
            source,
            epoch_lsb: kid.epoch_lsb(),
        })
    }
}

/// A sealed frame taken apart by [`FrameCrypto::parse`].
struct Parsed<'a> {
    prefix: &'a [u8],
    /// The SFrame header, ciphertext and tag (unescaped for H.264).
    body: Cow<'a, [u8]>,
    leaf: u32,
    source: Source,
    epoch_lsb: u64,
}
