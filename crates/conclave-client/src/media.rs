//! The media half of the native participant: one WebRTC connection to the SFU, and SFrame on
//! every frame that goes through it.
//!
//! # What it is
//!
//! [`Media`] owns one [`str0m::Rtc`] (a full-ICE client, the controlling side, with one host
//! candidate: the local UDP address the driver's socket is bound to) and one
//! [`FrameCrypto`]. It sends this participant's audio (Opus) and video (VP8), each frame
//! sealed under the current MLS epoch's SFrame key before `str0m` packetizes it, and opens
//! every frame the SFU forwards from the other participants. Frames that fail to open are
//! dropped and counted by reason ([`DropStats`]); they never come out as media. Frames that
//! open are counted per sender leaf (the leaf the SFrame Key ID names, whose key opened the
//! frame) and surfaced with their plaintext ([`MediaEvent::Frame`]).
//!
//! # Signalling
//!
//! As the SFU expects (`conclave_sfu::Sfu::add_participant`), the participant offers and the
//! SFU answers, once: [`Media::offer`] makes an offer with one `sendonly` Opus audio and one
//! `sendonly` VP8 video m-line, and the [`Slots`] to receive the others on (`recvonly` m-lines
//! with every codec `str0m` knows, so they also take what browsers send);
//! [`Media::accept_answer`] takes the SFU's answer. The SFU puts the others' tracks on the
//! slots and never renegotiates; which sender a frame came from is read from its SFrame key
//! id. The SDP travels over the signalling WebSocket; this module never sees it travel.
//!
//! # Key frames
//!
//! When the SFU asks for a key frame (RTCP PLI or FIR on our video), and when a new epoch's
//! keys are installed (receivers can only decode from a key frame sealed under keys they
//! hold), [`MediaEvent::KeyframeRequested`] tells the caller to make its next video frame a
//! key frame; [`Media::keyframe_wanted`] stays true until [`Media::send_video`] sends one.
//!
//! # Run loop
//!
//! Sans-IO like `str0m` and the SFU core: no sockets, no tasks, no clock reads. The driver
//! feeds datagrams ([`Media::handle_receive`]), time ([`Media::handle_timeout`]), signalling
//! and frames to send, and after each input drains [`Media::poll_output`] until it returns
//! [`Output::Timeout`].
//!
//! ```no_run
//! # use std::net::SocketAddr;
//! # use std::time::Instant;
//! # use conclave_client::media::{Media, MediaEvent, Output};
//! # fn signal(_: &str) -> String { unimplemented!() }
//! # fn recv() -> (SocketAddr, Vec<u8>) { unimplemented!() }
//! # fn send(_: SocketAddr, _: &[u8]) {}
//! let mut media = Media::new(Instant::now());
//! let answer = signal(&media.offer()?); // over the WebSocket, to the SFU and back
//! let sfu = media.accept_answer(&answer)?;
//! // bind the UDP socket on the address that routes to `sfu[0]`, then:
//! let local: SocketAddr = "127.0.0.1:40000".parse()?;
//! media.add_local_address(local, Instant::now())?;
//! loop {
//!     let deadline = loop {
//!         match media.poll_output() {
//!             Output::Transmit(t) => send(t.destination, &t.contents),
//!             Output::Event(MediaEvent::Frame(frame)) => { /* decode, count */ let _ = frame; }
//!             Output::Event(_) => {}
//!             Output::Timeout(at) => break at,
//!         }
//!     };
//!     // wait for a datagram, a frame to send or `deadline` (tokio::select! in the driver)
//!     let (source, bytes) = recv();
//!     let _ = media.handle_receive(Instant::now(), source, local, &bytes); // errors are counted
//!     media.handle_timeout(Instant::now());
//! #   let _ = deadline;
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Errors
//!
//! Bytes from the network never panic: a datagram `str0m` refuses is counted
//! ([`MediaStats::datagrams_refused`]) and a frame that does not open is counted by reason.
//! Calls from the driver return [`MediaError`], which separates a bad SDP from the SFU from
//! misuse (sending before the connection is up, answering when nothing was offered).

pub mod files;

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use conclave_frame::{Codec, FrameConfig, FrameCrypto, FrameError};
use str0m::change::{SdpAnswer, SdpPendingOffer};
use str0m::format::Codec as RtpCodec;
use str0m::media::{Direction, KeyframeRequestKind, MediaData, MediaKind, MediaTime, Mid};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Rtc};

use crate::KeyMaterial;

/// The timeout [`Media::poll_output`] gives once the connection is gone.
const IDLE_TIMEOUT: Duration = Duration::from_secs(1);

/// Audio above this level (dBov) is flagged as voice in the audio level extension.
const VOICE_DBOV: i8 = -60;

/// The level stated on audio packets until [`Media::set_audio_level`]: ordinary speech.
pub const DEFAULT_AUDIO_LEVEL_DBOV: i8 = -30;

/// What [`Media::poll_output`] returns.
#[derive(Debug)]
pub enum Output {
    /// A datagram to send from the participant's socket.
    Transmit(Transmit),
    /// Nothing more to do until this instant (or until new input): call
    /// [`Media::handle_timeout`] then.
    Timeout(Instant),
    /// Something for the caller.
    Event(MediaEvent),
}

/// One UDP datagram to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// The local address (the socket to send from).
    pub source: SocketAddr,
    /// The SFU's address.
    pub destination: SocketAddr,
    /// The datagram.
    pub contents: Vec<u8>,
}

/// Events for the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum MediaEvent {
    /// ICE and DTLS are up: frames can be sent.
    Connected,
    /// The connection is gone (ICE timed out, DTLS failed or closed). Reconnecting means a new
    /// [`Media`] and a new offer.
    Disconnected,
    /// The next video frame should be a key frame.
    KeyframeRequested(KeyframeCause),
    /// A frame from another participant, opened intact.
    Frame(ReceivedFrame),
}

/// Why a key frame is wanted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyframeCause {
    /// The SFU sent a Picture Loss Indication (a new receiver, loss, or a key rotation).
    Pli,
    /// The SFU sent a Full Intra Request.
    Fir,
    /// A new epoch's keys were installed: receivers need a key frame under them.
    NewEpoch,
}

/// Audio or video.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// An audio track.
    Audio,
    /// A video track.
    Video,
}

/// A frame from another participant that opened intact.
#[derive(Clone, PartialEq, Eq)]
pub struct ReceivedFrame {
    /// The MLS leaf whose key opened the frame (from the SFrame Key ID). This proves the frame
    /// came from a holder of the epoch secret, not from that leaf in particular (RFC 9605
    /// §9.5): every member can derive every member's key.
    pub sender_leaf: u32,
    /// The MLS epoch whose keys opened it.
    pub epoch: u64,
    /// Audio or video.
    pub kind: Kind,
    /// The codec the RTP payload type named.
    pub codec: Codec,
    /// The slot (m-line) it arrived on; which sender a slot carries changes as others speak.
    pub mid: Mid,
    /// The RTP timestamp.
    pub time: MediaTime,
    /// The plaintext frame, byte for byte what the sender encoded.
    pub frame: Vec<u8>,
}

impl fmt::Debug for ReceivedFrame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReceivedFrame")
            .field("sender_leaf", &self.sender_leaf)
            .field("epoch", &self.epoch)
            .field("kind", &self.kind)
            .field("codec", &self.codec)
            .field("mid", &self.mid)
            .field("len", &self.frame.len())
            .finish()
    }
}

/// Mistakes in the driver's calls: bad SDP from the SFU, misuse by the caller, or a frame that
/// could not be sent.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MediaError {
    /// The SDP from the SFU cannot be parsed or negotiated (hostile or broken server).
    #[error("bad SDP from the SFU: {0}")]
    BadSdp(String),
    /// [`Media::offer`] was called a second time.
    #[error("the offer was made already")]
    AlreadyOffered,
    /// An answer arrived but no offer of ours is outstanding.
    #[error("no offer is outstanding")]
    NoOfferOutstanding,
    /// The local address cannot be used as an ICE host candidate.
    #[error("the local address cannot be used as an ICE candidate: {0}")]
    BadLocalAddress(String),
    /// Frames can only be sent once ICE and DTLS are up ([`MediaEvent::Connected`]).
    #[error("not connected yet")]
    NotConnected,
    /// The SFU did not accept our track of this kind, or not its codec.
    #[error("no negotiated {0:?} track with the needed codec")]
    NoTrack(Kind),
    /// The frame could not be sealed (no key yet, malformed for its codec, counter exhausted).
    #[error("frame not sealed: {0}")]
    Seal(#[from] FrameError),
    /// `str0m` refused the frame.
    #[error("frame not written: {0}")]
    Write(String),
}

/// Why a datagram was dropped. Each is also counted in [`MediaStats`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReceiveError {
    /// Not STUN, DTLS, RTP or RTCP.
    #[error("malformed datagram")]
    Malformed,
    /// The WebRTC stack refused it.
    #[error("the connection refused the datagram")]
    Refused,
}

/// What was received from one sender leaf and opened intact.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SenderStats {
    /// Audio frames opened.
    pub audio_frames: u64,
    /// Plaintext bytes of those audio frames.
    pub audio_bytes: u64,
    /// Video frames opened.
    pub video_frames: u64,
    /// Plaintext bytes of those video frames.
    pub video_bytes: u64,
}

/// Frames that did not open, by [`FrameError`] kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DropStats {
    /// No key installed yet ([`FrameError::NoKey`]).
    pub no_key: u64,
    /// The Key ID names an epoch we hold no keys for ([`FrameError::UnknownEpoch`]): typically
    /// a removed member, or a commit not processed yet.
    pub unknown_epoch: u64,
    /// An old epoch whose grace period is over ([`FrameError::StaleEpoch`]).
    pub stale_epoch: u64,
    /// The Key ID names a leaf that is not a member of its epoch ([`FrameError::UnknownSender`]).
    pub unknown_sender: u64,
    /// The AEAD tag did not verify: forged or corrupted ([`FrameError::Authentication`]).
    pub authentication: u64,
    /// A replayed or too old frame ([`FrameError::Replayed`]).
    pub replayed: u64,
    /// Not a well-formed SFrame ciphertext for its codec ([`FrameError::Malformed`]).
    pub malformed: u64,
    /// Our own frame, reflected back to us (a replay by the server): it opens, but nobody
    /// else sends under our leaf.
    pub reflected: u64,
    /// Any other failure.
    pub other: u64,
}

impl DropStats {
    /// Every dropped frame.
    pub fn total(&self) -> u64 {
        self.no_key
            + self.unknown_epoch
            + self.stale_epoch
            + self.unknown_sender
            + self.authentication
            + self.replayed
            + self.malformed
            + self.reflected
            + self.other
    }

    fn count(&mut self, error: &FrameError) {
        let counter = match error {
            FrameError::NoKey => &mut self.no_key,
            FrameError::UnknownEpoch => &mut self.unknown_epoch,
            FrameError::StaleEpoch => &mut self.stale_epoch,
            FrameError::UnknownSender { .. } => &mut self.unknown_sender,
            FrameError::Authentication => &mut self.authentication,
            FrameError::Replayed => &mut self.replayed,
            FrameError::Malformed(_) => &mut self.malformed,
            _ => &mut self.other,
        };
        *counter += 1;
    }
}

/// Counters, for the participant's report, metrics and tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct MediaStats {
    /// Frames opened intact, by sender leaf.
    pub opened: BTreeMap<u32, SenderStats>,
    /// Frames that did not open.
    pub dropped: DropStats,
    /// Audio frames sealed and written.
    pub audio_sent: u64,
    /// Video frames sealed and written.
    pub video_sent: u64,
    /// Key frames among them.
    pub keyframes_sent: u64,
    /// Key frame requests (PLI/FIR) from the SFU.
    pub keyframe_requests: u64,
    /// Datagrams that were not STUN, DTLS, RTP or RTCP.
    pub datagrams_malformed: u64,
    /// Datagrams the WebRTC stack refused, and its other errors.
    pub datagrams_refused: u64,
}

impl MediaStats {
    /// What was opened from `leaf` (zero if nothing).
    pub fn from_leaf(&self, leaf: u32) -> SenderStats {
        self.opened.get(&leaf).copied().unwrap_or_default()
    }
}

/// How many of the others' tracks a participant receives at once: the `recvonly` audio and
/// video m-lines of its offer, which the SFU fills with the last speakers (every track, while
/// the call has fewer others than slots).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slots {
    /// Audio tracks played at once.
    pub audio: usize,
    /// Videos shown at once.
    pub video: usize,
}

impl Default for Slots {
    /// 5 voices (more rarely talk at once) and a 3x3 grid of videos.
    fn default() -> Self {
        Slots { audio: 5, video: 9 }
    }
}

/// The media connection of one participant. See the module documentation.
pub struct Media {
    rtc: Rtc,
    local_addr: Option<SocketAddr>,
    crypto: FrameCrypto,
    /// Our own sending m-lines, once offered.
    audio: Option<Mid>,
    video: Option<Mid>,
    pending: Option<SdpPendingOffer>,
    connected: bool,
    disconnected: bool,
    keyframe_wanted: bool,
    /// Our leaf in the current epoch.
    own_leaf: Option<u32>,
    /// The instant of [`Media::new`]: RTP media time and FrameCrypto's millisecond clock start
    /// here.
    start: Instant,
    /// The latest `now` the driver gave.
    now: Instant,
    events: VecDeque<MediaEvent>,
    stats: MediaStats,
    /// Stated on every audio packet (RFC 6464 dBov).
    audio_level: i8,
}

impl fmt::Debug for Media {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Media")
            .field("local_addr", &self.local_addr)
            .field("connected", &self.connected)
            .field("epoch", &self.crypto.current_epoch())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl Media {
    /// A media connection with no address yet (see [`Media::add_local_address`]). `now` is
    /// the driver's clock at start.
    pub fn new(now: Instant) -> Media {
        let rtc = Rtc::builder()
            .set_crypto_provider(Arc::new(str0m::crypto::from_feature_flags()))
            .set_ice_lite(false)
            // What every Conclave participant sends (browsers prefer them too). Every codec
            // more is a dozen SDP lines per m-line: with all of str0m's defaults an offer
            // with the default slots was 46 KB, and parsing it took the SFU 15 ms.
            .clear_codecs()
            .enable_opus(true, false)
            .enable_vp8(true)
            .build(now);
        Media {
            rtc,
            local_addr: None,
            crypto: FrameCrypto::new(FrameConfig::default()),
            audio: None,
            video: None,
            pending: None,
            connected: false,
            disconnected: false,
            keyframe_wanted: true,
            own_leaf: None,
            start: now,
            now,
            events: VecDeque::new(),
            stats: MediaStats::default(),
            audio_level: DEFAULT_AUDIO_LEVEL_DBOV,
        }
    }

    /// The address our UDP socket is bound to: our one ICE host candidate. Given before the
    /// offer, it is in the offer; given after the answer (bound on the address that routes to
    /// the SFU, which the answer names), ICE starts with it. The SFU is ICE-lite and learns
    /// our address from our connectivity checks either way. `now` is when the first check
    /// may go.
    ///
    /// # Errors
    /// [`MediaError::BadLocalAddress`] if `addr` cannot be an ICE candidate or an address
    /// was given already.
    pub fn add_local_address(&mut self, addr: SocketAddr, now: Instant) -> Result<(), MediaError> {
        if self.local_addr.is_some() {
            return Err(MediaError::BadLocalAddress(format!(
                "{addr}: the media connection has its address already"
            )));
        }
        let candidate =
            Candidate::host(addr, "udp").map_err(|e| MediaError::BadLocalAddress(e.to_string()))?;
        if self.rtc.add_local_candidate(candidate).is_none() {
            return Err(MediaError::BadLocalAddress(format!(
                "{addr} is not usable as an ICE candidate"
            )));
        }
        self.local_addr = Some(addr);
        // the first check goes now rather than a Ta after the last timeout
        self.handle_timeout(now);
        Ok(())
    }

    /// The address given to [`Media::add_local_address`].
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.local_addr
    }

    /// Whether ICE and DTLS are up.
    pub fn is_connected(&self) -> bool {
        self.connected && !self.disconnected
    }

    /// The counters.
    pub fn stats(&self) -> &MediaStats {
        &self.stats
    }

    /// The epoch frames are sealed under, once keys are installed.
    pub fn epoch(&self) -> Option<u64> {
        self.crypto.current_epoch()
    }

    /// Whether the next video frame should be a key frame (asked for and not sent yet).
    pub fn keyframe_wanted(&self) -> bool {
        self.keyframe_wanted
    }

    /// The SDP offer for the SFU: one `sendonly` audio and one `sendonly` video m-line, and the
    /// default [`Slots`] to receive on. Made once; its answer goes to [`Media::accept_answer`].
    ///
    /// # Errors
    /// [`MediaError::AlreadyOffered`] on a second call.
    pub fn offer(&mut self) -> Result<String, MediaError> {
        self.offer_simulcast(&[], Slots::default())
    }

    /// [`Media::offer`] with the video sent as simulcast layers named by these RTP stream ids
    /// (RFC 8851 `rid`s, highest quality first), each then written with
    /// [`Media::send_video_layer`] (no ids: a single video stream), and these slots.
    ///
    /// # Errors
    /// As [`Media::offer`].
    pub fn offer_simulcast(&mut self, rids: &[&str], slots: Slots) -> Result<String, MediaError> {
        if self.audio.is_some() || self.pending.is_some() {
            return Err(MediaError::AlreadyOffered);
        }
        let simulcast = (!rids.is_empty()).then(|| {
            let mut s = str0m::media::Simulcast::new();
            for rid in rids {
                s.add_send_layer(str0m::media::SimulcastLayer::new(rid));
            }
            s
        });
        let mut change = self.rtc.sdp_api();
        let audio = change.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None);
        let video = change.add_media(MediaKind::Video, Direction::SendOnly, None, None, simulcast);
        for kind in [MediaKind::Audio, MediaKind::Video] {
            let count = if kind == MediaKind::Audio {
                slots.audio
            } else {
                slots.video
            };
            for _ in 0..count {
                change.add_media(kind, Direction::RecvOnly, None, None, None);
            }
        }
        let Some((offer, pending)) = change.apply() else {
            return Err(MediaError::AlreadyOffered);
        };
        self.audio = Some(audio);
        self.video = Some(video);
        self.pending = Some(pending);
        Ok(offer.to_sdp_string())
    }

    /// The SFU's answer to [`Media::offer`]. Returns the SFU's addresses (its ICE
    /// candidates, in the answer's order), so the driver can bind its socket on an address
    /// that reaches them.
    ///
    /// # Errors
    /// [`MediaError::NoOfferOutstanding`] if nothing was offered (or it was answered already),
    /// [`MediaError::BadSdp`] if the answer cannot be parsed or applied, or names no address
    /// (the offer then stays outstanding).
    pub fn accept_answer(&mut self, sdp: &str) -> Result<Vec<SocketAddr>, MediaError> {
        if self.pending.is_none() {
            return Err(MediaError::NoOfferOutstanding);
        }
        let answer =
            SdpAnswer::from_sdp_string(sdp).map_err(|e| MediaError::BadSdp(e.to_string()))?;
        let mut sfu: Vec<SocketAddr> = Vec::new();
        let candidates = answer
            .session
            .ice_candidates()
            .chain(answer.media_lines.iter().flat_map(|m| m.ice_candidates()));
        for addr in candidates.map(Candidate::addr) {
            if !sfu.contains(&addr) {
                sfu.push(addr);
            }
        }
        if sfu.is_empty() {
            return Err(MediaError::BadSdp("the answer names no address".into()));
        }
        let Some(pending) = self.pending.take() else {
            return Err(MediaError::NoOfferOutstanding);
        };
        self.rtc
            .sdp_api()
            .accept_answer(pending, answer)
            .map_err(|e| MediaError::BadSdp(e.to_string()))?;
        Ok(sfu)
    }

    /// Installs a new MLS epoch's SFrame keys (from
    /// [`crate::Participant::key_material`]). Frames are sealed under it from now on; the
    /// previous epoch still opens for the grace period. Asks for a key frame
    /// ([`KeyframeCause::NewEpoch`]).
    ///
    /// # Errors
    /// As [`FrameCrypto::set_epoch`]: an epoch that is not newer, an unusable secret or
    /// member list. On error nothing changes.
    pub fn set_keys(&mut self, keys: &KeyMaterial, now: Instant) -> Result<(), FrameError> {
        self.set_epoch(
            keys.epoch,
            keys.secret.expose(),
            keys.own_leaf,
            &keys.members,
            now,
        )
    }

    /// [`Media::set_keys`] with the parts given one by one.
    ///
    /// # Errors
    /// As [`Media::set_keys`].
    pub fn set_epoch(
        &mut self,
        epoch: u64,
        secret: &[u8],
        own_leaf: u32,
        members: &[u32],
        now: Instant,
    ) -> Result<(), FrameError> {
        self.advance(now);
        let now_ms = self.now_ms();
        self.crypto
            .set_epoch(epoch, secret, own_leaf, members, now_ms)?;
        self.own_leaf = Some(own_leaf);
        self.want_keyframe(KeyframeCause::NewEpoch);
        Ok(())
    }

    /// Seals one Opus packet (20 ms of 48 kHz audio, say) and writes it on our audio track.
    /// Its RTP timestamp is `now` on the 48 kHz clock, so call it at the packets' real pace.
    ///
    /// # Errors
    /// [`MediaError::NotConnected`] before [`MediaEvent::Connected`] (nothing is sealed, so no
    /// counter is spent), [`MediaError::NoTrack`] if the SFU refused our audio or Opus,
    /// [`MediaError::Seal`] without keys, [`MediaError::Write`] if `str0m` refuses it.
    pub fn send_audio(&mut self, now: Instant, opus_packet: &[u8]) -> Result<(), MediaError> {
        self.send(now, Kind::Audio, None, opus_packet)?;
        self.stats.audio_sent += 1;
        Ok(())
    }

    /// The level (RFC 6464 dBov: 0 loudest, -127 silence) stated on the audio packets sent
    /// from now on. A native participant sends recorded Opus it does not decode, so it states
    /// a level rather than measuring one; browsers measure theirs.
    pub fn set_audio_level(&mut self, dbov: i8) {
        self.audio_level = dbov.clamp(-127, 0);
    }

    /// Seals one VP8 frame and writes it on our video track; `keyframe` says whether it is a
    /// key frame (which satisfies [`Media::keyframe_wanted`]). Its RTP timestamp is `now` on
    /// the 90 kHz clock.
    ///
    /// # Errors
    /// As [`Media::send_audio`]; [`MediaError::Seal`] also if the frame is too short for VP8.
    pub fn send_video(
        &mut self,
        now: Instant,
        vp8_frame: &[u8],
        keyframe: bool,
    ) -> Result<(), MediaError> {
        self.send_video_layer(now, None, vp8_frame, keyframe)
    }

    /// [`Media::send_video`] for one simulcast layer (`rid` as offered with
    /// [`Media::offer_simulcast`]); `None` for unlayered video. Every layer's frames are sealed
    /// with the same sender key, each under its own frame counter.
    ///
    /// # Errors
    /// As [`Media::send_video`].
    pub fn send_video_layer(
        &mut self,
        now: Instant,
        rid: Option<&str>,
        vp8_frame: &[u8],
        keyframe: bool,
    ) -> Result<(), MediaError> {
        self.send(now, Kind::Video, rid, vp8_frame)?;
        self.stats.video_sent += 1;
        if keyframe {
            self.stats.keyframes_sent += 1;
            self.keyframe_wanted = false;
        }
        Ok(())
    }

    /// A datagram arrived on the participant's socket from `source` (to `destination`, the
    /// socket's address). Never panics; a dropped datagram is counted and its reason returned.
    ///
    /// # Errors
    /// Why the datagram was dropped.
    pub fn handle_receive(
        &mut self,
        now: Instant,
        source: SocketAddr,
        destination: SocketAddr,
        contents: &[u8],
    ) -> Result<(), ReceiveError> {
        self.advance(now);
        let Ok(contents) = contents.try_into() else {
            self.stats.datagrams_malformed += 1;
            return Err(ReceiveError::Malformed);
        };
        let input = Input::Receive(
            now,
            Receive {
                proto: Protocol::Udp,
                source,
                destination,
                contents,
            },
        );
        if self.disconnected {
            self.stats.datagrams_refused += 1;
            return Err(ReceiveError::Refused);
        }
        if let Err(e) = self.rtc.handle_input(input) {
            tracing::debug!(error = %e, "datagram refused");
            self.stats.datagrams_refused += 1;
            return Err(ReceiveError::Refused);
        }
        if !self.connected {
            // str0m's ICE agent acts only on timeouts, at least Ta = 50 ms apart (RFC 8445's
            // pacing of checks over many candidate pairs). We have one pair, towards the SFU:
            // acting on each answer at once saves two Ta (the nominating check, then DTLS).
            self.handle_timeout(now);
        }
        Ok(())
    }

    /// Time passed: call it at (or after) the instant of the last [`Output::Timeout`].
    pub fn handle_timeout(&mut self, now: Instant) {
        self.advance(now);
        if self.disconnected {
            return;
        }
        if let Err(e) = self.rtc.handle_input(Input::Timeout(now)) {
            tracing::debug!(error = %e, "timeout refused");
            self.stats.datagrams_refused += 1;
        }
    }

    /// The next output. Drain it until [`Output::Timeout`] after every input.
    pub fn poll_output(&mut self) -> Output {
        loop {
            if let Some(event) = self.events.pop_front() {
                return Output::Event(event);
            }
            if self.disconnected {
                return Output::Timeout(self.now + IDLE_TIMEOUT);
            }
            match self.rtc.poll_output() {
                Ok(str0m::Output::Timeout(at)) => {
                    if !self.rtc.is_alive() {
                        self.set_disconnected();
                        continue;
                    }
                    return Output::Timeout(at);
                }
                Ok(str0m::Output::Transmit(t)) => {
                    return Output::Transmit(Transmit {
                        source: t.source,
                        destination: t.destination,
                        contents: t.contents.into(),
                    })
                }
                Ok(str0m::Output::Event(event)) => self.handle_event(event),
                Err(e) => {
                    tracing::debug!(error = %e, "connection failed");
                    self.stats.datagrams_refused += 1;
                    self.rtc.disconnect();
                    self.set_disconnected();
                }
            }
        }
    }

    fn handle_event(&mut self, event: Event) {
        match event {
            Event::Connected => {
                self.connected = true;
                self.events.push_back(MediaEvent::Connected);
            }
            // A full-ICE agent may recover from `Disconnected` by itself; the connection is
            // only gone once the `Rtc` says it is no longer alive (checked in `poll_output`).
            Event::IceConnectionStateChange(state) => {
                tracing::debug!(?state, "ICE state");
            }
            Event::KeyframeRequest(request) if Some(request.mid) == self.video => {
                self.stats.keyframe_requests += 1;
                self.want_keyframe(match request.kind {
                    KeyframeRequestKind::Pli => KeyframeCause::Pli,
                    KeyframeRequestKind::Fir => KeyframeCause::Fir,
                });
            }
            Event::MediaData(data) => self.receive(data),
            _ => {}
        }
    }

    /// Opens one frame the SFU forwarded; surfaces it only if it opens.
    fn receive(&mut self, data: MediaData) {
        let codec = frame_codec(data.params.spec().codec);
        let kind = if data.params.spec().codec.is_audio() {
            Kind::Audio
        } else {
            Kind::Video
        };
        let now_ms = self.now_ms();
        let opened = match self.crypto.open(codec, &data.data, now_ms) {
            Ok(opened) => opened,
            Err(e) => {
                self.stats.dropped.count(&e);
                return;
            }
        };
        if Some(opened.sender_leaf) == self.own_leaf {
            self.stats.dropped.reflected += 1;
            return;
        }
        let sender = self.stats.opened.entry(opened.sender_leaf).or_default();
        let len = u64::try_from(opened.frame.len()).unwrap_or(u64::MAX);
        match kind {
            Kind::Audio => {
                sender.audio_frames += 1;
                sender.audio_bytes += len;
            }
            Kind::Video => {
                sender.video_frames += 1;
                sender.video_bytes += len;
            }
        }
        self.events.push_back(MediaEvent::Frame(ReceivedFrame {
            sender_leaf: opened.sender_leaf,
            epoch: opened.epoch,
            kind,
            codec,
            mid: data.mid,
            time: data.time,
            frame: opened.frame,
        }));
    }

    fn send(
        &mut self,
        now: Instant,
        kind: Kind,
        rid: Option<&str>,
        frame: &[u8],
    ) -> Result<(), MediaError> {
        self.advance(now);
        if !self.is_connected() {
            return Err(MediaError::NotConnected);
        }
        let (mid, rtp_codec, codec, frequency) = match kind {
            Kind::Audio => (
                self.audio,
                RtpCodec::Opus,
                Codec::Opus,
                str0m::media::Frequency::FORTY_EIGHT_KHZ,
            ),
            Kind::Video => (
                self.video,
                RtpCodec::Vp8,
                Codec::Vp8,
                str0m::media::Frequency::NINETY_KHZ,
            ),
        };
        let mid = mid.ok_or(MediaError::NoTrack(kind))?;
        let pt = self
            .rtc
            .writer(mid)
            .and_then(|w| {
                w.payload_params()
                    .find(|p| p.spec().codec == rtp_codec)
                    .map(|p| p.pt())
            })
            .ok_or(MediaError::NoTrack(kind))?;
        let sealed = self.crypto.seal(codec, frame)?;
        let elapsed = now.saturating_duration_since(self.start);
        let time = MediaTime::from_micros(u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX))
            .rebase(frequency);
        let mut writer = self.rtc.writer(mid).ok_or(MediaError::NoTrack(kind))?;
        if kind == Kind::Audio {
            // outside the encrypted payload, for the SFU's active speaker detection
            writer = writer.audio_level(self.audio_level, self.audio_level > VOICE_DBOV);
        }
        if let Some(rid) = rid {
            writer = writer.rid(str0m::media::Rid::from(rid));
        }
        writer
            .write(pt, now, time, sealed)
            .map_err(|e| MediaError::Write(e.to_string()))
    }

    fn want_keyframe(&mut self, cause: KeyframeCause) {
        self.keyframe_wanted = true;
        self.events.push_back(MediaEvent::KeyframeRequested(cause));
    }

    fn set_disconnected(&mut self) {
        if !self.disconnected {
            self.disconnected = true;
            self.events.push_back(MediaEvent::Disconnected);
        }
    }

    /// Records the driver's latest `now`.
    fn advance(&mut self, now: Instant) {
        if now > self.now {
            self.now = now;
        }
    }

    /// Milliseconds since [`Media::new`], FrameCrypto's clock.
    fn now_ms(&self) -> u64 {
        u64::try_from(self.now.saturating_duration_since(self.start).as_millis())
            .unwrap_or(u64::MAX)
    }
}

/// The SFrame codec rules for an RTP codec.
fn frame_codec(codec: RtpCodec) -> Codec {
    match codec {
        RtpCodec::Opus => Codec::Opus,
        RtpCodec::Vp8 => Codec::Vp8,
        RtpCodec::Vp9 => Codec::Vp9,
        RtpCodec::H264 => Codec::H264,
        RtpCodec::Av1 => Codec::Av1,
        _ => Codec::Unknown,
    }
}
