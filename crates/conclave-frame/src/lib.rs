//! End-to-end encryption of media frames for Conclave calls: SFrame (RFC 9605) with keys derived
//! from the call's MLS group (RFC 9420) exactly as RFC 9605 §5.2 describes.
//!
//! # What it does
//!
//! Every encoded audio or video frame a participant sends is sealed with [`FrameCrypto::seal`]
//! before it reaches the RTP packetizer, and opened with [`FrameCrypto::open`] after the
//! receiver's depacketizer. The SFU in the middle only ever sees ciphertext.
//!
//! Keys: for every MLS epoch the MLS session exports
//! `sframe_epoch_secret = MLS-Exporter("SFrame 1.0 Base Key", "", AEAD.Nk)` and hands it, the
//! epoch number, this member's leaf index and the epoch's member leaves to
//! [`FrameCrypto::set_epoch`]. Each sender's key is derived from that secret and its Key ID
//! (`KID = context << (S + E) | leaf << E | epoch mod 2^E`, `S = 32`, `E = 4` by default) by
//! the `sframe` crate's RFC 9605 §4.4.2 key schedule, using its `mls` Key ID layout. The
//! context names the member's [`Source`]: 0 for microphone and camera, 1 for a shared screen,
//! each with its own key and counter. Cipher suite `AES_128_GCM_SHA256_128`.
//!
//! Epoch changes: the previous epoch's keys stay usable for opening for a grace period
//! ([`FrameConfig::grace_ms`], 2 s by default) after the new one is installed, for frames in
//! flight, and are then dropped. Each sender has a replay window over its SFrame counter.
//!
//! Codec awareness: browsers' packetizers and depacketizers read the first bytes of some codecs'
//! frames, so those stay in the clear and are authenticated as SFrame metadata (AAD):
//! `sealed = clear prefix || SFrame header || ciphertext || tag`. The rules, with reasons, are on
//! [`Codec`].
//!
//! # Run model
//!
//! Pure and synchronous: no I/O, no threads, no clock. Time enters only as `now_ms`, a
//! monotonic millisecond counter the caller supplies (`performance.now()` in the browser,
//! `Instant` on native), because `std::time::Instant` panics on `wasm32-unknown-unknown` and a
//! caller-supplied clock makes the grace-period logic testable. The same code runs in the
//! server's tests and in the browser compiled to WebAssembly. No input bytes can make it
//! panic; every failure is a typed [`FrameError`], and a frame that fails is simply dropped by
//! the caller.
//!
//! # What authentication means here
//!
//! Every member of an epoch holds the same epoch secret and can therefore derive every other
//! member's key: a successful open proves the frame came from a holder of the epoch secret,
//! not from the leaf its Key ID names (RFC 9605 §9.5). Non-members and removed members cannot
//! forge or read frames of epochs they were not given.
//!
//! # Example
//!
//! ```
//! use conclave_frame::{Codec, FrameConfig, FrameCrypto};
//!
//! let secret = [7u8; 16]; // from the MLS exporter in real use
//! let members = [0, 1];
//! let mut alice = FrameCrypto::new(FrameConfig::default());
//! let mut bob = FrameCrypto::new(FrameConfig::default());
//! alice.set_epoch(1, &secret, 0, &members, 0)?;
//! bob.set_epoch(1, &secret, 1, &members, 0)?;
//!
//! // a VP8 delta frame: its 3-byte frame tag stays clear
//! let frame = [0x31, 0x02, 0x00, 10, 20, 30, 40];
//! let sealed = alice.seal(Codec::Vp8, &frame)?;
//! assert_eq!(&sealed[..3], &frame[..3]);
//!
//! let opened = bob.open(Codec::Vp8, &sealed, 5)?;
//! assert_eq!((opened.sender_leaf, opened.epoch), (0, 1));
//! assert_eq!(opened.frame, frame);
//! // the same frame again is a replay
//! assert!(bob.open(Codec::Vp8, &sealed, 6).is_err());
//! # Ok::<(), conclave_frame::FrameError>(())
//! ```

mod backend;
mod codec;
mod crypto;
mod error;

pub use codec::Codec;
pub use crypto::{
    FrameConfig, FrameCrypto, Opened, Source, CIPHER_SUITE, LEAF_INDEX_BITS, MLS_EXPORTER_LABEL,
    MLS_EXPORTER_LENGTH,
};
pub use error::FrameError;

/// Entry points for fuzz targets; not part of the supported API.
#[doc(hidden)]
pub mod fuzzing {
    use crate::{Codec, FrameConfig, FrameCrypto};

    /// Every codec, for feeding one input to all of them.
    pub const ALL_CODECS: [Codec; 6] = [
        Codec::Vp8,
        Codec::Vp9,
        Codec::H264,
        Codec::Av1,
        Codec::Opus,
        Codec::Unknown,
    ];

    /// Sets up a [`FrameCrypto`] holding two epochs of a fixed secret (members 0..4) and feeds
    /// `data` to [`FrameCrypto::open`] for every codec. Must never panic.
    pub fn open_frame(data: &[u8]) {
        let mut crypto = FrameCrypto::new(FrameConfig::default());
        let members = [0, 1, 2, 3];
        if crypto.set_epoch(1, &[0x42; 16], 0, &members, 0).is_err()
            || crypto.set_epoch(2, &[0x43; 16], 0, &members, 10).is_err()
        {
            return;
        }
        for codec in ALL_CODECS {
            let _ = crypto.open(codec, data, 20);
        }
    }
}
