//! The routing core of Conclave's SFU: who gets which media, and when a sender is asked for a
//! key frame. Built on [`str0m`], a sans-IO WebRTC implementation.
//!
//! # What it is
//!
//! One [`Sfu`] value holds every participant of every call on this server, each as its own
//! [`str0m::Rtc`] (ICE-lite, DTLS-SRTP, one per participant). All of them share one
//! UDP port: incoming datagrams are demultiplexed to the participant whose `Rtc` accepts them
//! (`Rtc::accepts`: STUN by ICE username, everything else by the remote address ICE
//! nominated), with a small address cache in front.
//!
//! Every participant offers what it sends (`sendonly` audio and video m-lines) and what it
//! receives: `recvonly` m-lines, its *slots*, as many of each kind as it wants to play and show
//! at a time (up to [`MAX_SLOTS_PER_KIND`]). The SFU fills each receiver's slots with the other
//! participants' tracks, best ranked first (who spoke most recently, then who joined first),
//! and keeps a track on its slot while it is wanted; see `slots.rs`. Small calls, with fewer
//! others than slots, forward everything; large ones forward the last speakers, like every
//! large-meeting product does, and the SDP stays the same size whatever the call's size.
//!
//! The SFU never interprets media payloads: every frame is SFrame-encrypted end to end by the
//! participants (`conclave-frame`). It forwards RTP packets as they arrive (`str0m`'s RTP
//! mode), the payload shared between receivers and never copied or reassembled; it reads the
//! RTP header, header extensions and the codec's payload descriptor, which the sender's
//! packetizer writes in the clear (`codec.rs`: where a frame starts, whether it is a key
//! frame; for VP8 the key frame bit is in the clear frame-header prefix SFrame leaves for
//! exactly this purpose). Each slot renumbers what it forwards (sequence numbers, RTP time,
//! VP8 picture ids), so a receiver sees one stream whoever is on the slot. Which sender a slot carries at a moment is in the frame itself
//! (the SFrame key id names the sender's leaf), so receivers learn it from what they decrypt,
//! not from the server.
//!
//! # Loss
//!
//! What a sender's packets lose on the way to the SFU, the SFU asks again for (NACK) and
//! forwards when the retransmission (RTX) comes; what is lost on the way to a receiver, the
//! receiver asks the SFU for, and each video slot answers from what it sent in the last
//! second. Neither waits for the other: the SFU holds nothing back.
//!
//! # Signalling
//!
//! The participant offers, the SFU answers: [`Sfu::add_participant`] takes the first offer,
//! [`Sfu::handle_offer`] any later one (a screen share added, slots added or removed), each
//! parsed beforehand as an [`Offer`]. The SFU never offers, so nobody renegotiates when others
//! join or leave.
//!
//! # Key frames
//!
//! A receiver can only decode from a key frame, and after an MLS key rotation only frames under
//! the new key can be opened. So the SFU asks the sender (RTCP PLI) whenever a new receiver
//! starts receiving one of its video tracks, forwards a receiver's own PLI/FIR to the sender
//! (throttled), asks when the incoming stream has a gap, and [`Sfu::request_keyframes`] lets the
//! server ask every sender of a call after each MLS epoch change.
//!
//! # Active speaker
//!
//! Senders state each audio packet's level in the RFC 6464 header extension, outside the
//! encrypted payload. The SFU smooths it per participant and reports a new speaker of a call
//! ([`SfuEvent::ActiveSpeaker`]) when someone above a speech threshold is clearly louder than
//! the current speaker or the current speaker fell silent.
//!
//! # Run loop
//!
//! Sans-IO like `str0m` itself: no sockets, no tasks, no clock reads. The driver feeds input
//! ([`Sfu::handle_receive`], [`Sfu::handle_timeout`], signalling calls) and then drains
//! [`Sfu::poll_output`] until it returns [`Output::Timeout`], the instant at which it wants
//! [`Sfu::handle_timeout`] called next.
//!
//! ```no_run
//! # use std::net::SocketAddr;
//! # use std::time::Instant;
//! # use conclave_sfu::{Output, Sfu};
//! # fn recv() -> (SocketAddr, Vec<u8>) { unimplemented!() }
//! # fn send(_: SocketAddr, _: &[u8]) {}
//! let local: SocketAddr = "127.0.0.1:3478".parse()?;
//! let mut sfu = Sfu::new(local, Instant::now());
//! loop {
//!     let deadline = loop {
//!         match sfu.poll_output() {
//!             Output::Transmit(t) => send(t.destination, &t.contents),
//!             Output::Event(event) => { /* note connections, speakers */ let _ = event; }
//!             Output::Timeout(at) => break at,
//!         }
//!     };
//!     // wait for a datagram or `deadline`, whichever comes first (tokio::select! in the server)
//!     let (source, bytes) = recv();
//!     let _ = sfu.handle_receive(Instant::now(), source, local, &bytes); // errors are counted
//!     sfu.handle_timeout(Instant::now());
//! #   let _ = deadline;
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Limits
//!
//! - The tap reassembles frames of Opus and VP8 (what Conclave's clients send), from packets
//!   that arrive in order.
//!
//! # Errors
//!
//! Bytes from the network never panic and never fail a call: they are dropped and counted
//! ([`ReceiveError`], [`SfuStats`]). Signalling mistakes are [`SfuError`]s, which separate a bad
//! SDP from the peer ([`SfuError::BadSdp`]) from misuse by the caller (an unknown participant,
//! an answer nobody asked for).

mod codec;
mod layers;
mod slots;
mod speaker;

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::fmt;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use str0m::bwe::BweKind;
use str0m::change::{SdpAnswer, SdpOffer};
use str0m::config::{CryptoProvider, DtlsCert};
use str0m::media::{Direction, KeyframeRequestKind, MediaAdded, MediaChanged, MediaKind, Mid, Rid};
use str0m::net::{Protocol, Receive};
use str0m::rtp::{ExtensionValues, RtpPacket, RtpWrite, Ssrc, Vp8Descriptor};
use str0m::{Candidate, Event, IceConnectionState, Input, Rtc};

use slots::{Slot, Source};

/// How long the SFU waits between two key frame requests it forwards to one sender's track on
/// behalf of receivers or loss. Requests the SFU makes for its own reasons (a new receiver, a
/// key rotation) are never held back.
pub const KEYFRAME_REQUEST_INTERVAL: Duration = Duration::from_millis(500);

/// The most slots of one kind (audio or video) a participant gets; further `recvonly` m-lines
/// of that kind carry nothing. Bounds what one receiver costs the SFU.
pub const MAX_SLOTS_PER_KIND: usize = 25;

/// What each video slot keeps of what it sent, to answer the receiver's NACKs: at most this
/// many packets, for at most this long.
const RTX_CACHE: (usize, Duration) = (512, Duration::from_secs(1));

/// The timeout [`Sfu::poll_output`] gives when no participant waits on time.
const IDLE_TIMEOUT: Duration = Duration::from_secs(1);

/// A call (one meeting's media session). The server picks the value; the SFU only compares it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CallId(pub u64);

/// One participant's media connection, unique across the whole server. The server picks the
/// value (a seat number, say); the SFU only compares it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ParticipantId(pub u64);

impl fmt::Display for CallId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "call-{}", self.0)
    }
}

impl fmt::Display for ParticipantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "participant-{}", self.0)
    }
}

/// What [`Sfu::poll_output`] returns.
#[derive(Debug)]
pub enum Output {
    /// A datagram to send from the SFU's socket.
    Transmit(Transmit),
    /// Nothing more to do until this instant (or until new input): call
    /// [`Sfu::handle_timeout`] then.
    Timeout(Instant),
    /// Something the server should know or relay.
    Event(SfuEvent),
}

/// One UDP datagram to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// The SFU's own address (the socket to send from).
    pub source: SocketAddr,
    /// The participant's address.
    pub destination: SocketAddr,
    /// The datagram.
    pub contents: Vec<u8>,
}

/// Events for the server.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SfuEvent {
    /// ICE and DTLS are up: media flows between this participant and the SFU.
    Connected {
        /// The participant's call.
        call: CallId,
        /// The participant.
        participant: ParticipantId,
    },
    /// The participant's connection is gone (ICE timed out, DTLS failed or closed). The SFU
    /// stops serving it; the server decides about the seat and calls
    /// [`Sfu::remove_participant`].
    Disconnected {
        /// The participant's call.
        call: CallId,
        /// The participant.
        participant: ParticipantId,
    },
    /// A frame the SFU forwards, exactly as it sees it (only with [`Sfu::set_tap`]): the
    /// frame reassembled from the RTP payloads after SRTP (Opus and VP8), which for Conclave
    /// is an SFrame ciphertext. For audits that the server cannot read media, and for tests.
    Tapped {
        /// The sender's call.
        call: CallId,
        /// The sender.
        participant: ParticipantId,
        /// Audio (else video).
        audio: bool,
        /// The frame.
        payload: Vec<u8>,
    },
    /// Another participant became the call's active speaker, judged from the audio level
    /// header extension (RFC 6464) of what they send.
    ActiveSpeaker {
        /// The call.
        call: CallId,
        /// Who speaks now.
        participant: ParticipantId,
    },
    /// The SFU asked a sender for a key frame (RTCP PLI or FIR); for metrics and tests.
    KeyframeRequested {
        /// The sender's call.
        call: CallId,
        /// The sender.
        participant: ParticipantId,
        /// Why.
        reason: KeyframeReason,
    },
}

/// Why the SFU asked a sender for a key frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyframeReason {
    /// A new receiver started receiving the track.
    NewReceiver,
    /// The server asked ([`Sfu::request_keyframes`]), e.g. after an MLS key rotation.
    Requested,
    /// A receiver asked (its PLI or FIR, forwarded).
    Receiver,
    /// A receiver is to switch to another simulcast layer, which it can only start decoding
    /// at a key frame.
    LayerSwitch,
}

/// A participant's SDP offer, parsed ([`Offer::parse`], or `str::parse`).
///
/// Parsing is most of what a join costs the SFU: `str0m`'s parser reads some 7 µs a line,
/// and an offer for the default slots has hundreds. A driver parses where it likes (the
/// server: on the call's task), so that the thread forwarding everyone's media does not.
#[derive(Debug, PartialEq, Eq)]
pub struct Offer(SdpOffer);

impl Offer {
    /// Parses an SDP offer.
    ///
    /// # Errors
    /// [`SfuError::BadSdp`] if it is not one.
    pub fn parse(sdp: &str) -> Result<Offer, SfuError> {
        SdpOffer::from_sdp_string(sdp)
            .map(Offer)
            .map_err(|e| SfuError::BadSdp(e.to_string()))
    }
}

impl std::str::FromStr for Offer {
    type Err = SfuError;

    fn from_str(sdp: &str) -> Result<Offer, SfuError> {
        Offer::parse(sdp)
    }
}

/// Why [`negotiate`] gave no answer.
enum Negotiation {
    /// `str0m` refused the offer; the `Rtc` is as it was.
    Refused(SfuError),
    /// `str0m` panicked on the offer: the `Rtc` may be half changed.
    Broken(SfuError),
}

impl From<Negotiation> for SfuError {
    fn from(n: Negotiation) -> SfuError {
        match n {
            Negotiation::Refused(e) | Negotiation::Broken(e) => e,
        }
    }
}

/// `str0m`'s `accept_offer`, its panics contained. Some offers no browser makes trip
/// assertions inside it (an H.264 payload type without its `fmtp` line matches two of our
/// H.264 profiles at once: "Pt locked multiple times"). A panic would end the thread that
/// forwards every call's media, so it is caught and the offer refused like any bad SDP.
fn negotiate(rtc: &mut Rtc, offer: SdpOffer) -> Result<SdpAnswer, Negotiation> {
    let accepted = std::panic::catch_unwind(AssertUnwindSafe(|| rtc.sdp_api().accept_offer(offer)));
    match accepted {
        Ok(Ok(answer)) => Ok(answer),
        Ok(Err(e)) => Err(Negotiation::Refused(SfuError::BadSdp(e.to_string()))),
        Err(_) => {
            tracing::warn!("an SDP offer made str0m panic; refused");
            Err(Negotiation::Broken(SfuError::BadSdp(
                "the offer could not be negotiated".into(),
            )))
        }
    }
}

/// Mistakes in signalling calls: a bad SDP from the peer, or misuse by the caller.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SfuError {
    /// The SDP from the participant cannot be parsed or negotiated (hostile or broken peer).
    #[error("bad SDP from the participant: {0}")]
    BadSdp(String),
    /// No participant with this id (caller misuse, or it was removed).
    #[error("unknown participant {0}")]
    UnknownParticipant(ParticipantId),
    /// A participant with this id exists already (caller misuse).
    #[error("participant {0} exists already")]
    DuplicateParticipant(ParticipantId),
    /// The local address cannot be used as an ICE host candidate (caller misuse).
    #[error("the SFU's local address cannot be used as an ICE candidate: {0}")]
    BadLocalAddress(String),
}

/// Why a datagram was dropped. Each is also counted in [`SfuStats`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReceiveError {
    /// Not STUN, DTLS, RTP or RTCP.
    #[error("malformed datagram")]
    Malformed,
    /// Well formed, but no participant accepts it (unknown ICE username or address).
    #[error("no participant accepts the datagram")]
    Unroutable,
    /// The participant's WebRTC stack refused it.
    #[error("the participant's connection refused the datagram")]
    Refused,
}

/// Counters, for metrics and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SfuStats {
    /// Datagrams that were not STUN, DTLS, RTP or RTCP.
    pub malformed: u64,
    /// Datagrams no participant accepted.
    pub unroutable: u64,
    /// Datagrams a participant's WebRTC stack refused, and its other errors.
    pub rtc_errors: u64,
    /// RTP packets written to a receiver.
    pub packets_forwarded: u64,
    /// RTP packets a receiver could not take (no matching codec or stream), or from before
    /// its slot switched to their sender.
    pub packets_dropped: u64,
    /// Key frame requests sent to senders.
    pub keyframe_requests: u64,
}

/// An incoming track of a participant.
#[derive(Debug)]
struct TrackIn {
    mid: Mid,
    kind: MediaKind,
    /// When the SFU last asked for a key frame on behalf of receivers or loss.
    last_keyframe_request: Option<Instant>,
    /// Simulcast layers seen on the track (empty: not simulcast).
    layers: Vec<layers::Layer>,
    /// The bitrate of an unlayered track.
    meter: layers::Meter,
    /// When its last packet arrived. Only tracks that send fill slots: an m-line whose camera
    /// is off, or a muted microphone, must not take the slot of someone who sends.
    last_frame: Option<Instant>,
}

/// What the SFU knows of one incoming RTP stream (SSRC), found once from `str0m`'s stream and
/// codec tables.
#[derive(Debug, Clone, Copy)]
struct StreamIn {
    mid: Mid,
    rid: Option<Rid>,
}

impl TrackIn {
    /// Whether it sent a frame lately.
    fn sends(&self, now: Instant) -> bool {
        self.last_frame
            .is_some_and(|t| now.saturating_duration_since(t) < slots::QUIET_AFTER)
    }
}

/// One participant: its `Rtc`, what it sends and its slots for what it receives.
struct Participant {
    call: CallId,
    rtc: Rtc,
    tracks_in: Vec<TrackIn>,
    slots: Vec<Slot>,
    /// Some slot waits for a key frame request to its new origin. Checked on every poll, so
    /// it is a flag rather than a scan: polls happen once per forwarded frame per receiver.
    keyframes_wanted: bool,
    /// When it last spoke (audio level above the speech threshold): the slot ranking.
    spoke_at: Option<Instant>,
    /// Order of arrival, the ranking's tie-break: earlier ranks higher.
    joined: u64,
    connected: bool,
    /// Gone for good: not polled, fed nor forwarded to any more.
    dead: bool,
    /// When its `Rtc` next wants a timeout.
    deadline: Option<Instant>,
    /// The bandwidth the SFU estimates towards it, from its receiver reports.
    estimate: layers::Estimate,
    /// Its incoming streams by SSRC.
    streams_in: HashMap<Ssrc, StreamIn>,
}

/// The SFU's routing core for every call on this server. See the crate documentation.
pub struct Sfu {
    local_addr: SocketAddr,
    crypto: Arc<CryptoProvider>,
    /// The SFU's one DTLS certificate, made once: making one per participant (an ECDSA key)
    /// cost every join a millisecond and more on the thread that forwards everyone's media.
    /// Participants pin its fingerprint from the answer, which signalling carries.
    dtls_cert: Option<DtlsCert>,
    participants: BTreeMap<ParticipantId, Participant>,
    /// Participants whose `Rtc` may have output.
    dirty: BTreeSet<ParticipantId>,
    /// The participant each remote address last belonged to.
    by_address: HashMap<SocketAddr, ParticipantId>,
    outputs: VecDeque<Output>,
    /// The latest `now` the driver gave.
    now: Instant,
    stats: SfuStats,
    /// Report every forwarded frame ([`SfuEvent::Tapped`]).
    tap: bool,
    /// Who speaks, per call.
    speakers: HashMap<CallId, speaker::SpeakerDetector>,
    /// Participants added so far (their `joined`).
    arrivals: u64,
    /// Frames being reassembled for the tap, by sender and stream.
    tapped: HashMap<(ParticipantId, Ssrc), Vec<u8>>,
    /// When quiet tracks were last looked for.
    swept_at: Instant,
}

impl Participant {
    /// Marks its connection ended: no more input or timeouts. Returns the event that tells
    /// the driver.
    fn end(&mut self, id: ParticipantId) -> Output {
        self.dead = true;
        self.deadline = None;
        Output::Event(SfuEvent::Disconnected {
            call: self.call,
            participant: id,
        })
    }
}

impl fmt::Debug for Sfu {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sfu")
            .field("local_addr", &self.local_addr)
            .field("participants", &self.participants.len())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl Sfu {
    /// An SFU whose UDP socket is bound to `local_addr`; that address is the single ICE host
    /// candidate in every answer and offer, so it must be reachable by participants. `now` is
    /// the driver's clock at start: the core never reads a clock itself.
    pub fn new(local_addr: SocketAddr, now: Instant) -> Sfu {
        let crypto = Arc::new(str0m::crypto::from_feature_flags());
        Sfu {
            local_addr,
            dtls_cert: crypto.dtls_provider.generate_certificate(),
            crypto,
            participants: BTreeMap::new(),
            dirty: BTreeSet::new(),
            by_address: HashMap::new(),
            outputs: VecDeque::new(),
            now,
            stats: SfuStats::default(),
            tap: false,
            speakers: HashMap::new(),
            arrivals: 0,
            tapped: HashMap::new(),
            swept_at: now,
        }
    }

    /// Reports every frame forwarded from now on as [`SfuEvent::Tapped`] (or stops).
    pub fn set_tap(&mut self, on: bool) {
        self.tap = on;
    }

    /// The address given to [`Sfu::new`].
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The counters.
    pub fn stats(&self) -> SfuStats {
        self.stats
    }

    /// How many participants (of all calls) the SFU holds.
    pub fn participant_count(&self) -> usize {
        self.participants.len()
    }

    /// Adds `participant` to `call` with its SDP `offer` and returns the SDP answer. The
    /// participant's tracks are forwarded to the call's other participants' slots, and theirs
    /// to its slots (the offer's `recvonly` m-lines).
    pub fn add_participant(
        &mut self,
        now: Instant,
        call: CallId,
        participant: ParticipantId,
        Offer(offer): Offer,
    ) -> Result<String, SfuError> {
        self.advance(now);
        if self.participants.contains_key(&participant) {
            return Err(SfuError::DuplicateParticipant(participant));
        }

        let mut config = Rtc::builder().set_crypto_provider(Arc::clone(&self.crypto));
        if let Some(cert) = &self.dtls_cert {
            config = config.set_dtls_cert(cert.clone());
        }
        let mut rtc = config
            .set_ice_lite(true)
            // Packets are forwarded as they come, renumbered per slot; see `forward`.
            .set_rtp_mode(true)
            .clear_codecs()
            .enable_opus(true, false)
            .enable_vp8(true)
            .enable_vp9(true)
            .enable_h264(true)
            .enable_av1(true)
            // Receiver reports' loss, once a second, for the estimate towards the
            // participant (simulcast layers); see layers.rs for why not str0m's estimator.
            .set_stats_interval(Some(Duration::from_secs(1)))
            .build(now);
        let candidate = Candidate::host(self.local_addr, Protocol::Udp)
            .map_err(|e| SfuError::BadLocalAddress(e.to_string()))?;
        rtc.add_local_candidate(candidate);
        let answer = negotiate(&mut rtc, offer)?;

        self.arrivals += 1;
        self.participants.insert(
            participant,
            Participant {
                call,
                rtc,
                tracks_in: Vec::new(),
                slots: Vec::new(),
                keyframes_wanted: false,
                spoke_at: None,
                joined: self.arrivals,
                connected: false,
                dead: false,
                deadline: None,
                estimate: layers::Estimate::default(),
                streams_in: HashMap::new(),
            },
        );
        self.dirty.insert(participant);
        Ok(answer.to_sdp_string())
    }

    /// Removes a participant: its tracks stop being forwarded (the others' slots that carried
    /// them take someone else's, or fall quiet) and its datagrams are no longer accepted.
    pub fn remove_participant(&mut self, participant: ParticipantId) -> Result<(), SfuError> {
        let Some(mut gone) = self.participants.remove(&participant) else {
            return Err(SfuError::UnknownParticipant(participant));
        };
        gone.rtc.disconnect();
        self.dirty.remove(&participant);
        if let Some(speakers) = self.speakers.get_mut(&gone.call) {
            speakers.remove(participant);
        }
        if !self.participants.values().any(|p| p.call == gone.call) {
            self.speakers.remove(&gone.call);
        }
        self.by_address.retain(|_, p| *p != participant);
        self.tapped.retain(|(p, _), _| *p != participant);
        self.assign(gone.call);
        Ok(())
    }

    /// A new SDP offer from the participant (it added or removed tracks to send, or slots to
    /// receive on). Returns the answer. An offer that `str0m` cannot negotiate without
    /// breaking the connection's state also ends the connection
    /// ([`SfuEvent::Disconnected`]).
    pub fn handle_offer(
        &mut self,
        now: Instant,
        participant: ParticipantId,
        Offer(offer): Offer,
    ) -> Result<String, SfuError> {
        self.advance(now);
        // a connection that ended takes no offers: the participant comes back on a new seat
        let p = self
            .participants
            .get_mut(&participant)
            .filter(|p| !p.dead)
            .ok_or(SfuError::UnknownParticipant(participant))?;
        let answer = match negotiate(&mut p.rtc, offer) {
            Ok(answer) => answer,
            Err(Negotiation::Refused(e)) => return Err(e),
            Err(Negotiation::Broken(e)) => {
                // its `Rtc` is not to be trusted any more: the participant is gone, as if
                // its connection had failed, and may offer again on a new seat
                let call = p.call;
                self.outputs.push_back(p.end(participant));
                self.assign(call);
                return Err(e);
            }
        };
        self.dirty.insert(participant);
        Ok(answer.to_sdp_string())
    }

    /// Asks every video sender of `call` for a key frame (RTCP PLI), at once. Call it after
    /// every MLS epoch change, so receivers get a frame under the new keys without waiting for
    /// the next periodic key frame.
    pub fn request_keyframes(&mut self, call: CallId) {
        let senders: Vec<(ParticipantId, Mid)> = self
            .participants
            .iter()
            .filter(|(_, p)| p.call == call && !p.dead)
            .flat_map(|(id, p)| {
                p.tracks_in
                    .iter()
                    .filter(|t| t.kind == MediaKind::Video)
                    .map(move |t| (*id, t.mid))
            })
            .collect();
        for (id, mid) in senders {
            self.request_keyframe(
                id,
                mid,
                None,
                KeyframeRequestKind::Pli,
                KeyframeReason::Requested,
            );
        }
    }

    /// A datagram arrived on the SFU's socket from `source` (to `destination`, the socket's
    /// address). Never panics; a dropped datagram is counted and its reason returned.
    pub fn handle_receive(
        &mut self,
        now: Instant,
        source: SocketAddr,
        destination: SocketAddr,
        contents: &[u8],
    ) -> Result<(), ReceiveError> {
        self.advance(now);
        let Ok(contents) = contents.try_into() else {
            self.stats.malformed += 1;
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

        let cached = self.by_address.get(&source).copied().filter(|id| {
            self.participants
                .get(id)
                .is_some_and(|p| !p.dead && p.rtc.accepts(&input))
        });
        let owner = cached.or_else(|| {
            self.participants
                .iter()
                .find(|(_, p)| !p.dead && p.rtc.accepts(&input))
                .map(|(id, _)| *id)
        });
        let Some(id) = owner else {
            self.stats.unroutable += 1;
            return Err(ReceiveError::Unroutable);
        };
        if cached.is_none() {
            self.by_address.insert(source, id);
        }
        let Some(p) = self.participants.get_mut(&id) else {
            return Err(ReceiveError::Unroutable);
        };
        let handled = p.rtc.handle_input(input);
        // str0m holds one received RTP packet until it is polled: take it before the next.
        self.poll_participant(id);
        match handled {
            Ok(()) => Ok(()),
            Err(e) => {
                tracing::debug!(participant = %id, error = %e, "datagram refused");
                self.stats.rtc_errors += 1;
                Err(ReceiveError::Refused)
            }
        }
    }

    /// Time passed: call it at (or after) the instant of the last [`Output::Timeout`].
    pub fn handle_timeout(&mut self, now: Instant) {
        self.advance(now);
        self.update_estimates();
        self.sweep_quiet_tracks();
        let mut errors = 0;
        for (id, p) in &mut self.participants {
            if p.dead || p.deadline.is_some_and(|d| d > now) {
                continue;
            }
            if let Err(e) = p.rtc.handle_input(Input::Timeout(now)) {
                tracing::debug!(participant = %id, error = %e, "timeout refused");
                errors += 1;
            }
            self.dirty.insert(*id);
        }
        self.stats.rtc_errors += errors;
    }

    /// The next output. Drain it until [`Output::Timeout`] after every input.
    pub fn poll_output(&mut self) -> Output {
        loop {
            if let Some(output) = self.outputs.pop_front() {
                return output;
            }
            // One participant at a time: what is queued for every receiver of a burst is
            // encrypted as the driver sends it, not all at once (a burst of 32 datagrams to
            // 100 receivers held 3,200 encrypted datagrams here).
            let Some(id) = self.dirty.pop_first() else {
                return Output::Timeout(self.next_deadline());
            };
            self.poll_participant(id);
        }
    }

    /// Once a second, updates each participant's estimate from what it reported, up to what
    /// it should carry at best: the best layer (or the stream) of every track aimed at its
    /// slots.
    fn update_estimates(&mut self) {
        let now = self.now;
        let due = |p: &Participant| !p.dead && p.estimate.due(now);
        if !self.participants.values().any(due) {
            return;
        }
        let rates: HashMap<(ParticipantId, Mid), f64> = self
            .participants
            .iter()
            .flat_map(|(id, p)| {
                p.tracks_in.iter().map(move |t| {
                    let rate = if t.layers.is_empty() {
                        t.meter.bitrate()
                    } else {
                        layers::best_bitrate(&t.layers)
                    };
                    ((*id, t.mid), rate)
                })
            })
            .collect();
        for p in self.participants.values_mut().filter(|p| due(p)) {
            let wanted: f64 = p
                .slots
                .iter()
                .filter_map(|s| s.aimed())
                .filter_map(|t| rates.get(&t))
                .sum();
            p.estimate.update(wanted, now);
        }
    }

    /// Once a second, frees the slots of tracks that stopped sending (camera off, muted,
    /// connection lost) for the next best.
    fn sweep_quiet_tracks(&mut self) {
        let now = self.now;
        if now.saturating_duration_since(self.swept_at) < Duration::from_secs(1) {
            return;
        }
        self.swept_at = now;
        let quiet: BTreeSet<CallId> = self
            .participants
            .values()
            .filter(|p| {
                p.tracks_in
                    .iter()
                    .any(|t| !t.sends(now) && t.last_frame.is_some())
            })
            .map(|p| p.call)
            .collect();
        for call in quiet {
            let aimed_at_quiet = self.participants.values().any(|p| {
                p.call == call
                    && p.slots.iter().filter_map(|s| s.aimed()).any(|(o, m)| {
                        self.participants.get(&o).is_some_and(|origin| {
                            origin.tracks_in.iter().any(|t| t.mid == m && !t.sends(now))
                        })
                    })
            });
            if aimed_at_quiet {
                self.assign(call);
            }
        }
    }

    /// Records the driver's latest `now`.
    fn advance(&mut self, now: Instant) {
        if now > self.now {
            self.now = now;
        }
    }

    /// The earliest instant any participant's `Rtc` wants a timeout.
    fn next_deadline(&self) -> Instant {
        self.participants
            .values()
            .filter(|p| !p.dead)
            .filter_map(|p| p.deadline)
            .min()
            .unwrap_or(self.now + IDLE_TIMEOUT)
    }

    /// Polls one participant's `Rtc` until it has nothing more, then acts on what it said
    /// (which may dirty others).
    fn poll_participant(&mut self, id: ParticipantId) {
        self.dirty.remove(&id);
        if self.participants.get(&id).is_none_or(|p| p.dead) {
            return;
        }
        self.request_wanted_keyframes(id);
        let Some(p) = self.participants.get_mut(&id) else {
            return;
        };
        let mut events = Vec::new();
        // Without a pacer, str0m releases one queued packet per timeout: after each packet
        // it wants `handle_timeout` at once. Giving it here, rather than through the
        // driver's timer, sends a whole burst in one poll.
        let now = self.now;
        let mut sent = false;
        loop {
            match p.rtc.poll_output() {
                Ok(str0m::Output::Timeout(at)) if sent && at <= now => {
                    sent = false;
                    if let Err(e) = p.rtc.handle_input(Input::Timeout(now)) {
                        tracing::debug!(participant = %id, error = %e, "connection failed");
                        self.stats.rtc_errors += 1;
                        p.rtc.disconnect();
                        break;
                    }
                }
                Ok(str0m::Output::Timeout(at)) => {
                    p.deadline = Some(at);
                    break;
                }
                Ok(str0m::Output::Transmit(t)) => {
                    sent = true;
                    self.outputs.push_back(Output::Transmit(Transmit {
                        source: t.source,
                        destination: t.destination,
                        contents: t.contents.into(),
                    }));
                }
                Ok(str0m::Output::Event(event)) => events.push(event),
                Err(e) => {
                    tracing::debug!(participant = %id, error = %e, "connection failed");
                    self.stats.rtc_errors += 1;
                    p.rtc.disconnect();
                    break;
                }
            }
        }
        let mut died = None;
        if !p.rtc.is_alive() && !p.dead {
            died = Some(p.call);
            self.outputs.push_back(p.end(id));
        }
        for event in events {
            self.handle_event(id, event);
        }
        if let Some(call) = died {
            self.assign(call);
        }
    }

    fn handle_event(&mut self, id: ParticipantId, event: Event) {
        let Some(p) = self.participants.get_mut(&id) else {
            return;
        };
        let call = p.call;
        match event {
            Event::Connected => {
                p.connected = true;
                p.keyframes_wanted = true;
                self.dirty.insert(id);
                self.outputs.push_back(Output::Event(SfuEvent::Connected {
                    call,
                    participant: id,
                }));
            }
            Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                // ICE-lite cannot restart on its own; the participant reconnects through
                // signalling with a new offer.
                p.rtc.disconnect();
                self.dirty.insert(id);
            }
            Event::MediaAdded(MediaAdded { mid, direction, .. })
            | Event::MediaChanged(MediaChanged { mid, direction }) => {
                let Some(kind) = p.rtc.media(mid).map(|m| m.kind()) else {
                    return;
                };
                // What the SFU receives on the m-line is a track; what it sends, a slot.
                let receives = matches!(direction, Direction::RecvOnly | Direction::SendRecv);
                let sends = matches!(direction, Direction::SendOnly | Direction::SendRecv);
                p.tracks_in.retain(|t| t.mid != mid || receives);
                if receives && !p.tracks_in.iter().any(|t| t.mid == mid) {
                    p.tracks_in.push(TrackIn {
                        mid,
                        kind,
                        last_keyframe_request: None,
                        layers: Vec::new(),
                        meter: layers::Meter::default(),
                        last_frame: None,
                    });
                }
                p.slots.retain(|s| s.mid != mid || sends);
                let room = p.slots.iter().filter(|s| s.kind == kind).count() < MAX_SLOTS_PER_KIND;
                if sends && room && !p.slots.iter().any(|s| s.mid == mid) {
                    p.slots.push(Slot::new(mid, kind));
                    if let Some(tx) = p.rtc.direct_api().stream_tx_by_mid(mid, None) {
                        // Receivers' NACKs for video are answered from here: a second is
                        // plenty for a round trip, and keeps each slot's cache small.
                        let (packets, age) = match kind {
                            MediaKind::Video => RTX_CACHE,
                            MediaKind::Audio => (0, Duration::ZERO),
                        };
                        tx.set_rtx_cache(packets, age, None);
                    }
                }
                self.assign(call);
            }
            Event::RtpPacket(packet) => self.forward(id, packet),
            Event::EgressBitrateEstimate(BweKind::Remb { estimate, .. }) => {
                p.estimate.report_remb(estimate.as_f64());
            }
            Event::MediaEgressStats(stats) => {
                if let Some(loss) = stats.loss {
                    p.estimate.report_loss(loss);
                }
            }
            Event::KeyframeRequest(request) => {
                let Some(source) = p
                    .slots
                    .iter()
                    .find(|s| s.mid == request.mid)
                    .and_then(|s| s.current)
                else {
                    return;
                };
                if self.throttled(source.origin, source.mid) {
                    return;
                }
                self.request_keyframe(
                    source.origin,
                    source.mid,
                    source.rid,
                    request.kind,
                    KeyframeReason::Receiver,
                );
            }
            _ => {}
        }
    }

    /// Forwards one incoming RTP packet of `origin` to every other participant of its call whose
    /// slot carries its stream, renumbered for that slot (switching slots to the stream at its
    /// key frames). The payload is shared, never copied or read beyond the codec's descriptor.
    fn forward(&mut self, origin: ParticipantId, packet: RtpPacket) {
        let now = self.now;
        let Some(sender) = self.participants.get_mut(&origin) else {
            return;
        };
        let call = sender.call;
        let ssrc = packet.header.ssrc;
        let stream = match sender.streams_in.get(&ssrc) {
            Some(s) => *s,
            None => {
                let mut api = sender.rtc.direct_api();
                let Some(s) = api.stream_rx(&ssrc).map(|rx| StreamIn {
                    mid: rx.mid(),
                    rid: rx.rid(),
                }) else {
                    return;
                };
                sender.streams_in.insert(ssrc, s);
                s
            }
        };
        let Some(params) = sender
            .rtc
            .codec_config()
            .find(|p| p.pt() == packet.header.payload_type)
            .copied()
        else {
            return;
        };
        let codec = params.spec().codec;
        let audio = codec.is_audio();
        let inspected = codec::inspect(codec, &packet.payload);
        let vp8 = inspected
            .vp8
            .and_then(|h| h.picture_id_mask)
            .and_then(|mask| Some((Vp8Descriptor::parse(&packet.payload).ok()?, mask)));
        if self.tap {
            self.tap_packet(call, origin, ssrc, audio, inspected, &packet);
        }
        let ext = &packet.header.ext_vals;
        if let Some(level) = ext.audio_level {
            self.observe_level(call, origin, level);
        }
        let forwarded_ext = ExtensionValues {
            audio_level: ext.audio_level,
            voice_activity: ext.voice_activity,
            ..ExtensionValues::default()
        };

        let mid = stream.mid;
        let Some(track) = self
            .participants
            .get_mut(&origin)
            .and_then(|p| p.tracks_in.iter_mut().find(|t| t.mid == mid))
        else {
            return;
        };
        let started = !track.sends(now);
        track.last_frame = Some(now);
        if started {
            self.assign(call);
        }
        let Some(track) = self
            .participants
            .get_mut(&origin)
            .and_then(|p| p.tracks_in.iter_mut().find(|t| t.mid == mid))
        else {
            return;
        };
        let layers = match stream.rid {
            Some(rid) => {
                layers::observe(&mut track.layers, rid, packet.payload.len(), now);
                track.layers.clone()
            }
            None => {
                track.meter.observe(packet.payload.len(), now);
                Vec::new()
            }
        };
        let this = Source {
            origin,
            mid,
            rid: stream.rid,
        };
        let rate = params.spec().clock_rate.get();
        let mut switches = Vec::new();
        let mut waiting = false;
        for (id, p) in &mut self.participants {
            if *id == origin || p.call != call || p.dead || !p.connected {
                continue;
            }
            let open_video = p
                .slots
                .iter()
                .filter(|s| s.kind == MediaKind::Video && s.aimed().is_some())
                .count()
                .max(1);
            let Some(slot) = p.slots.iter_mut().find(|s| s.serves(origin, mid)) else {
                continue;
            };
            if stream.rid.is_some() && inspected.starts_frame && slot.aimed() == Some(this.track())
            {
                // the receiver's share of the bandwidth towards it picks the layer
                let estimate = p.estimate.bps();
                let aimed = slot.next.or(slot.current).and_then(|s| s.rid);
                let target = layers::choose(&layers, aimed, estimate / open_video as f64);
                let wanted = Source {
                    rid: target,
                    ..this
                };
                if slot.current == Some(wanted) {
                    slot.next = None;
                } else if slot.next != Some(wanted) {
                    slot.next = Some(wanted);
                    if let Some(rid) = target {
                        switches.push(rid);
                    }
                }
            }
            let keyframe = inspected.starts_keyframe;
            waiting |= slot.next == Some(this) && inspected.starts_frame && !keyframe;
            if slot.next == Some(this) && keyframe {
                tracing::debug!(receiver = %id, slot = %slot.mid, origin = %origin, rid = ?stream.rid, "slot switches");
                slot.current = slot.next.take();
            }
            if slot.current != Some(this) {
                continue;
            }
            let Some(out) = slot.renumber(this, packet.seq_no, packet.header.timestamp, rate, now)
            else {
                self.stats.packets_dropped += 1;
                continue;
            };
            let patch = vp8.and_then(|(descriptor, mask)| {
                let (id, tl0) =
                    slot.renumber_vp8(descriptor.picture_id()?, descriptor.tl0_pic_idx(), mask);
                let patch = descriptor.patch().picture_id(id);
                match tl0 {
                    Some(tl0) => patch.tl0_pic_idx(tl0),
                    None => patch,
                }
                .build()
                .ok()
            });
            let slot_mid = slot.mid;
            let Some(pt) = p.rtc.codec_config().match_params(params).map(|p| p.pt()) else {
                self.stats.packets_dropped += 1;
                continue;
            };
            let mut api = p.rtc.direct_api();
            let Some(tx) = api.stream_tx_by_mid(slot_mid, None) else {
                self.stats.packets_dropped += 1;
                continue;
            };
            let write = RtpWrite::new(
                pt,
                out.seq,
                out.time,
                packet.timestamp,
                Arc::clone(&packet.payload),
            )
            .marker(packet.header.marker)
            .ext_vals(forwarded_ext.clone())
            // receivers' NACKs for video are answered from the slot's cache
            .nackable(!audio);
            tx.write_rtp(match patch {
                Some(patch) => write.vp8_patch(patch),
                None => write,
            });
            self.stats.packets_forwarded += 1;
            self.dirty.insert(*id);
        }
        // A slot waits for this stream's key frame: the request may have been lost.
        if waiting && switches.is_empty() && !self.throttled(origin, mid) {
            self.request_keyframe(
                origin,
                mid,
                stream.rid,
                KeyframeRequestKind::Pli,
                KeyframeReason::NewReceiver,
            );
        }
        let mut asked: Vec<Rid> = Vec::new();
        for rid in switches {
            if asked.contains(&rid) {
                continue;
            }
            asked.push(rid);
            self.request_keyframe(
                origin,
                mid,
                Some(rid),
                KeyframeRequestKind::Pli,
                KeyframeReason::LayerSwitch,
            );
        }
    }

    /// Reassembles the frames of `origin`'s stream `ssrc` from its packets for the tap
    /// ([`SfuEvent::Tapped`]): an audio packet is a frame; a VP8 frame runs from the packet
    /// that starts it to the one with the marker bit, each packet's payload descriptor
    /// removed. Only Opus and VP8, what Conclave's clients send, are reassembled, and only
    /// when the packets arrive in order (the tap serves audits and tests on loopback).
    fn tap_packet(
        &mut self,
        call: CallId,
        origin: ParticipantId,
        ssrc: Ssrc,
        audio: bool,
        inspected: codec::Packet,
        packet: &RtpPacket,
    ) {
        let payload = &packet.payload[..];
        let frame = if audio {
            Some(payload.to_vec())
        } else if let Some(vp8) = inspected.vp8 {
            let buffer = self.tapped.entry((origin, ssrc)).or_default();
            if inspected.starts_frame {
                buffer.clear();
            }
            buffer.extend_from_slice(payload.get(vp8.len..).unwrap_or_default());
            packet
                .header
                .marker
                .then(|| std::mem::take(buffer))
                .filter(|f| !f.is_empty())
        } else {
            None
        };
        if let Some(payload) = frame {
            self.outputs.push_back(Output::Event(SfuEvent::Tapped {
                call,
                participant: origin,
                audio,
                payload,
            }));
        }
    }

    /// One audio packet's level (RFC 6464) from `origin`: feeds the call's speaker detection,
    /// and re-ranks the call's slots when `origin` starts to speak after a pause.
    fn observe_level(&mut self, call: CallId, origin: ParticipantId, level: i8) {
        let now = self.now;
        let speakers = self.speakers.entry(call).or_default();
        if let Some(participant) = speakers.observe(origin, level, now) {
            self.outputs
                .push_back(Output::Event(SfuEvent::ActiveSpeaker { call, participant }));
        }
        if !speakers.speaking(origin, now) {
            return;
        }
        let Some(p) = self.participants.get_mut(&origin) else {
            return;
        };
        let resumed = p
            .spoke_at
            .is_none_or(|t| now.saturating_duration_since(t) >= slots::TALK_SPURT_GAP);
        p.spoke_at = Some(now);
        if resumed {
            self.assign(call);
        }
    }

    /// Fills every slot of every participant of `call` from the call's live tracks, ranked:
    /// who spoke most recently first, then who joined first. Run when tracks, slots or the
    /// ranking change, not per frame.
    fn assign(&mut self, call: CallId) {
        let now = self.now;
        let mut ranked: Vec<(Option<Instant>, u64, ParticipantId)> = self
            .participants
            .iter()
            .filter(|(_, p)| p.call == call && !p.dead)
            .map(|(id, p)| (p.spoke_at, p.joined, *id))
            .collect();
        // latest speaker first (`None`, never spoke, last), then earliest arrival
        ranked.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        let tracks: Vec<(ParticipantId, Mid, MediaKind)> = ranked
            .iter()
            .filter_map(|(_, _, id)| self.participants.get(id).map(|p| (*id, p)))
            .flat_map(|(id, p)| {
                p.tracks_in
                    .iter()
                    .filter(|t| t.sends(now))
                    .map(move |t| (id, t.mid, t.kind))
            })
            .collect();
        let members: Vec<ParticipantId> = ranked.iter().map(|r| r.2).collect();
        for id in members {
            let Some(p) = self.participants.get_mut(&id) else {
                continue;
            };
            let mut changed = 0;
            for kind in [MediaKind::Audio, MediaKind::Video] {
                let wanted: Vec<(ParticipantId, Mid)> = tracks
                    .iter()
                    .filter(|(origin, _, k)| *origin != id && *k == kind)
                    .map(|(origin, mid, _)| (*origin, *mid))
                    .collect();
                changed += slots::assign(&mut p.slots, kind, &wanted);
            }
            if changed > 0 {
                tracing::debug!(receiver = %id, changed, slots = ?p.slots.iter().map(|s| (s.mid.to_string(), s.current.map(|c| c.origin.0), s.next.map(|c| c.origin.0))).collect::<Vec<_>>(), "slots assigned");
                p.keyframes_wanted = true;
                self.dirty.insert(id);
            }
        }
    }

    /// Whether a receiver- or loss-driven key frame request for this track must wait; if not,
    /// the request is noted as made now.
    fn throttled(&mut self, origin: ParticipantId, mid: Mid) -> bool {
        let now = self.now;
        let Some(track) = self
            .participants
            .get_mut(&origin)
            .and_then(|p| p.tracks_in.iter_mut().find(|t| t.mid == mid))
        else {
            return true;
        };
        if track
            .last_keyframe_request
            .is_some_and(|t| now.saturating_duration_since(t) < KEYFRAME_REQUEST_INTERVAL)
        {
            return true;
        }
        track.last_keyframe_request = Some(now);
        false
    }

    /// Asks `origin` for a key frame on its incoming track `mid`.
    /// Asks `origin` for a key frame on its track `mid`: on simulcast layer `rid`, or on every
    /// layer (an unlayered track has just the one stream).
    fn request_keyframe(
        &mut self,
        origin: ParticipantId,
        mid: Mid,
        rid: Option<Rid>,
        kind: KeyframeRequestKind,
        reason: KeyframeReason,
    ) {
        let Some(p) = self.participants.get_mut(&origin) else {
            return;
        };
        if p.dead {
            return;
        }
        let rids: Vec<Option<Rid>> = match rid {
            Some(rid) => vec![Some(rid)],
            None => {
                let layers = p
                    .tracks_in
                    .iter()
                    .find(|t| t.mid == mid)
                    .map(|t| t.layers.iter().map(|l| Some(l.rid)).collect::<Vec<_>>())
                    .unwrap_or_default();
                if layers.is_empty() {
                    vec![None]
                } else {
                    layers
                }
            }
        };
        // No stream while nothing has arrived on it yet; its first frame is a key frame.
        let mut api = p.rtc.direct_api();
        let mut asked = 0;
        for rid in rids {
            if let Some(rx) = api.stream_rx_by_mid(mid, rid) {
                rx.request_keyframe(kind);
                asked += 1;
            }
        }
        tracing::debug!(origin = %origin, asked, ?reason, "keyframe request");
        if asked == 0 {
            return;
        }
        self.stats.keyframe_requests += 1;
        self.dirty.insert(origin);
        self.outputs
            .push_back(Output::Event(SfuEvent::KeyframeRequested {
                call: p.call,
                participant: origin,
                reason,
            }));
    }

    /// For a connected receiver, asks the origins of the tracks its video slots switch to for
    /// key frames.
    fn request_wanted_keyframes(&mut self, id: ParticipantId) {
        let Some(p) = self.participants.get_mut(&id) else {
            return;
        };
        if !p.connected || !p.keyframes_wanted {
            return;
        }
        p.keyframes_wanted = false;
        let wanted: Vec<Source> = p
            .slots
            .iter_mut()
            .filter(|s| s.keyframe_wanted)
            .filter_map(|s| {
                s.keyframe_wanted = false;
                s.next
            })
            .collect();
        for source in wanted {
            self.request_keyframe(
                source.origin,
                source.mid,
                None,
                KeyframeRequestKind::Pli,
                KeyframeReason::NewReceiver,
            );
        }
    }
}
