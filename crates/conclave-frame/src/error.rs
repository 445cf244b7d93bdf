//! Typed errors of frame sealing and opening.

/// Why a frame could not be sealed or opened, or an epoch not installed.
///
/// None of these is fatal to the call: a frame that fails to open is dropped and the next one is
/// tried. Messages never contain key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// No epoch has been installed yet, so there is no key to seal or open with.
    #[error("no SFrame key installed yet")]
    NoKey,
    /// The frame is not well formed for its codec or as an SFrame ciphertext (too short,
    /// truncated header, non-canonical header or escaping, ...). The text names the check.
    #[error("malformed frame: {0}")]
    Malformed(&'static str),
    /// The Key ID names a leaf that is not a member of the epoch it names.
    #[error("frame from leaf {leaf}, which is not a member of that epoch")]
    UnknownSender {
        /// The MLS leaf index taken from the (unauthenticated) Key ID.
        leaf: u32,
    },
    /// The frame belongs to a previous epoch whose grace period has run out.
    #[error("frame of an epoch whose grace period is over")]
    StaleEpoch,
    /// The Key ID names an epoch this member does not hold keys for (typically a newer epoch
    /// whose commit has not been processed here yet, or one dropped long ago).
    #[error("frame of an epoch this member holds no keys for")]
    UnknownEpoch,
    /// The frame counter was already seen from this sender, or lies too far behind the newest
    /// one to be checked.
    #[error("replayed or too old frame")]
    Replayed,
    /// The AEAD tag did not verify: forged, corrupted, or sealed with another key.
    #[error("frame failed authentication")]
    Authentication,
    /// [`crate::FrameCrypto::set_epoch`] was given an epoch that is not newer than the current one;
    /// reinstalling an epoch would restart its frame counter and reuse nonces.
    #[error("epoch {offered} is not newer than the current epoch {current}")]
    EpochNotNewer {
        /// The epoch currently installed.
        current: u64,
        /// The epoch that was offered.
        offered: u64,
    },
    /// The epoch secret, member list or leaf index given to
    /// [`crate::FrameCrypto::set_epoch`] is unusable. The text names the check.
    #[error("invalid epoch parameters: {0}")]
    InvalidEpoch(&'static str),
    /// This member has sealed so many frames in this epoch that the SFrame counter is used up.
    /// Wait for the next epoch.
    #[error("frame counter exhausted for this epoch")]
    CounterExhausted,
    /// The underlying SFrame library failed in a way not covered above (e.g. key derivation).
    #[error("SFrame primitive failure")]
    Crypto,
}
