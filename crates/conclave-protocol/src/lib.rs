//! The signalling protocol of a Conclave call: the messages that travel over the meeting's
//! WebSocket between a participant (browser or native) and the server, in both directions.
//!
//! One crate of types, used by the server, the native participant and (through the wasm
//! facade) the browser, so that the three cannot drift apart. `docs/protocol.md` is the prose
//! description; this crate is the definition.
//!
//! # Framing
//!
//! Every message is one WebSocket **text** frame holding one JSON object whose `"type"` field
//! names the message (`snake_case`). Binary payloads (MLS messages, KeyPackages, Welcomes)
//! are standard base64 with padding ([`Bytes`]). A frame longer than [`MAX_MESSAGE_LEN`] is a
//! protocol violation; so is a binary frame, unknown `type`, a missing or unknown field.
//!
//! # Session
//!
//! 1. The participant asks the HTTP API to join (`POST /api/meetings/{id}/join`) and receives
//!    a short-lived join ticket.
//! 2. It opens the WebSocket and sends [`ClientMessage::Hello`] with the ticket and a fresh
//!    MLS KeyPackage (or, to resume a dropped connection, the resume token it was given).
//! 3. The server answers [`ServerMessage::Joined`] (or closes with a [`CloseCode`]). Then,
//!    in any order the call dictates: the roster, MLS traffic, admission announcements,
//!    lobby and alerts for hosts. The first participant is asked to create the MLS group
//!    ([`ServerMessage::CreateGroup`]); everyone else receives a Welcome.
//! 4. The participant sends [`ClientMessage::Ping`] at least every
//!    `heartbeat_interval_ms`; after three missed intervals the server drops the connection
//!    and, after the resume grace period, the seat.
//!
//! The server never sees plaintext: [`ClientMessage::Mls`] carries MLS handshake messages
//! (public) and application messages (encrypted; in-call chat); media keys never leave the
//! participants.

use std::fmt;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use conclave_types::{DeviceId, DeviceTrust, ParticipantId, Timestamp, UserId};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The protocol version this crate speaks. [`ClientMessage::Hello`] carries it; the server
/// refuses other versions with [`CloseCode::UnsupportedVersion`].
pub const PROTOCOL_VERSION: u32 = 3;

/// The largest message, in bytes of JSON text, either side accepts (1 MiB). The largest
/// legitimate message is a Welcome for a big call: it carries the ratchet tree, about 0.5 KB
/// per member before base64.
pub const MAX_MESSAGE_LEN: usize = 1024 * 1024;

/// Binary data, as standard base64 (with padding) in JSON.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Bytes(pub Vec<u8>);

impl fmt::Debug for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Bytes({} bytes)", self.0.len())
    }
}

impl From<Vec<u8>> for Bytes {
    fn from(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }
}

impl Serialize for Bytes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(&self.0))
    }
}

impl<'de> Deserialize<'de> for Bytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        STANDARD
            .decode(text.as_bytes())
            .map(Bytes)
            .map_err(|_| serde::de::Error::custom("not standard base64"))
    }
}

/// A message from a participant to the server.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
#[non_exhaustive]
pub enum ClientMessage {
    /// The first message on every connection.
    Hello {
        /// [`PROTOCOL_VERSION`].
        version: u32,
        /// The join ticket from `POST /api/meetings/{id}/join` (text form).
        ticket: String,
        /// A fresh MLS KeyPackage (RFC 9420) for this device, which the server proposes to
        /// the group. Empty when resuming.
        #[serde(default)]
        key_package: Bytes,
        /// To resume a dropped connection within the grace period: the token from
        /// [`ServerMessage::Joined`]. The seat, MLS leaf and roster entry are kept.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        resume: Option<String>,
        /// When resuming: how many server messages of this seat the client received
        /// (counting from `joined`, over all its connections); the server replays the rest.
        #[serde(default)]
        received: u64,
    },
    /// An MLS message for the group's delivery service: a commit (optionally with the
    /// Welcome it produced for joiners) or an application message (chat).
    Mls {
        /// The MLS message (`MLSMessage` encoding).
        message: Bytes,
        /// The Welcome produced together with `message` if it is a commit adding members.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        welcome: Option<Bytes>,
    },
    /// The group this participant created on [`ServerMessage::CreateGroup`]: its public
    /// state, from which the server's delivery service starts.
    GroupCreated {
        /// A GroupInfo with the ratchet tree (`MLSMessage` encoding).
        group_info: Bytes,
    },
    /// Heartbeat; answered with [`ServerMessage::Pong`]. Also acknowledges messages, so
    /// the server can forget what it keeps for resumption.
    Ping {
        /// Echoed back.
        nonce: u32,
        /// How many server messages of this seat the client has received so far.
        #[serde(default)]
        received: u64,
    },
    /// The participant's WebRTC offer (SDP) for its media with the server's SFU: its own
    /// audio and video to send (`sendonly`) and its slots, the `recvonly` audio and video
    /// m-lines the SFU fills with the others' media; again whenever it changes them. The SFU
    /// never offers. Answered with [`ServerMessage::MediaAnswer`]. Only after the participant
    /// is in the MLS group.
    MediaOffer {
        /// The SDP offer.
        sdp: String,
    },
    /// Host: let a participant waiting in the lobby in.
    Admit {
        /// The lobby entry.
        participant: ParticipantId,
    },
    /// Host: turn a participant waiting in the lobby away.
    Deny {
        /// The lobby entry.
        participant: ParticipantId,
    },
    /// Host: remove a participant from the call.
    Remove {
        /// Who.
        participant: ParticipantId,
    },
    /// Host: lock or unlock the call. While it is locked, everyone who asks to join waits in
    /// the lobby for a host (the policy engine reads the lock).
    Lock {
        /// The new state.
        locked: bool,
    },
    /// Leaving the call for good (the seat is freed at once, no resumption). `{"type":"leave"}`.
    Leave {},
}

/// The network a participant connects from, as the meeting's policy judged it.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Network {
    /// Whether the address is in one of the policy's trusted networks.
    pub trusted: bool,
    /// The trusted network's name from the configuration (absent if untrusted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The client address the server sees. Sent to hosts only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
}

/// How a participant's media reaches the server.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MediaPath {
    /// Signalling is up, media not (yet) connected.
    Signalling,
    /// Media flows over UDP (ICE, DTLS-SRTP) to the server's SFU.
    Udp,
}

/// One participant in the call, as every participant sees them.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct RosterEntry {
    /// The seat.
    pub participant: ParticipantId,
    /// The organisation account.
    pub user_id: UserId,
    /// Login name of the account.
    pub user_name: String,
    /// Display name of the account.
    pub display_name: String,
    /// The device; its credential (organisation-signed, in the participant's MLS leaf)
    /// names the same device, which is how clients match roster and MLS membership.
    pub device_id: DeviceId,
    /// Managed or personal.
    pub device_trust: DeviceTrust,
    /// Where they connect from.
    pub network: Network,
    /// How their media flows.
    pub media: MediaPath,
    /// When they were admitted to the call.
    pub joined_at: Timestamp,
    /// Whether they are a host of the meeting.
    pub host: bool,
}

impl RosterEntry {
    /// The entry as participants who are not hosts see it: without the address.
    #[must_use]
    pub fn without_address(&self) -> Self {
        Self {
            network: Network {
                address: None,
                ..self.network.clone()
            },
            ..self.clone()
        }
    }
}

/// Applies a [`ServerMessage::RosterUpdate`] to the roster it follows.
pub fn update_roster(
    roster: &mut Vec<RosterEntry>,
    changed: Vec<RosterEntry>,
    left: &[ParticipantId],
) {
    roster.retain(|e| !left.contains(&e.participant));
    for entry in changed {
        match roster
            .iter_mut()
            .find(|e| e.participant == entry.participant)
        {
            Some(e) => *e = entry,
            None => roster.push(entry),
        }
    }
}

/// Someone waiting in the lobby (sent to hosts).
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct LobbyEntry {
    /// The waiting seat, named in [`ClientMessage::Admit`] / [`ClientMessage::Deny`].
    pub participant: ParticipantId,
    /// Login name.
    pub user_name: String,
    /// Display name.
    pub display_name: String,
    /// Managed or personal.
    pub device_trust: DeviceTrust,
    /// Where they connect from (with the address: hosts only see this).
    pub network: Network,
    /// Why the policy sent them to the lobby, as sentences for the host.
    pub reasons: Vec<String>,
    /// Since when they wait.
    pub since: Timestamp,
}

/// Something hosts should know about now (sent to hosts).
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Alert {
    /// When it happened.
    pub at: Timestamp,
    /// Machine-readable kind, e.g. `join_refused`, `mls_refused`, `media_dropped`.
    pub kind: String,
    /// Who it concerns, as a display name, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub who: Option<String>,
    /// The sentence to show.
    pub text: String,
}

/// A message from the server to a participant.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
#[non_exhaustive]
pub enum ServerMessage {
    /// The answer to [`ClientMessage::Hello`]: the participant holds a seat.
    Joined {
        /// The seat.
        participant: ParticipantId,
        /// Resumes this seat after a dropped connection (see [`ClientMessage::Hello`]).
        resume_token: String,
        /// Send [`ClientMessage::Ping`] at least this often.
        heartbeat_interval_ms: u32,
        /// How long a dropped connection may be resumed.
        resume_grace_ms: u32,
        /// Whether this participant is a host (receives lobby and alerts, may admit, deny,
        /// remove, lock).
        host: bool,
    },
    /// Nobody is in the MLS group yet: create it (with the server as the only external
    /// sender) and answer [`ClientMessage::GroupCreated`]. Everyone else waits for a Welcome,
    /// delivered as [`ServerMessage::Mls`].
    CreateGroup {},
    /// Everyone in the call: sent once, when this participant enters the call (from the
    /// lobby, if it waited). [`ServerMessage::RosterUpdate`]s follow. Clients compare the
    /// roster with the MLS membership and flag any difference.
    Roster {
        /// The participants, in the order they took their seats.
        participants: Vec<RosterEntry>,
        /// Whether the call is locked.
        locked: bool,
    },
    /// What changed in the roster since the last [`ServerMessage::Roster`] or update:
    /// remove the `left`, then replace each entry of `changed` with the same `participant`
    /// where it is, or append it.
    RosterUpdate {
        /// Entries that are new or differ from the last sent.
        changed: Vec<RosterEntry>,
        /// Seats no longer in the call.
        left: Vec<ParticipantId>,
        /// Whether the call is locked.
        locked: bool,
    },
    /// This device was admitted to the call: accept the server's Add proposal for it
    /// (announced before the proposal is sent).
    Admitted {
        /// The device.
        device: DeviceId,
    },
    /// This device was revoked: refuse any Add for it.
    Revoked {
        /// The device.
        device: DeviceId,
    },
    /// An MLS message from the delivery service: a proposal, a commit, an application
    /// message, or (to a joiner) a Welcome. Delivered to every member in one order.
    Mls {
        /// The MLS message.
        message: Bytes,
    },
    /// Commit the pending proposals now (this participant was chosen to commit).
    CommitPending {},
    /// The commit this participant sent lost (another commit of the epoch came first):
    /// discard it and follow the group.
    CommitRejected {
        /// The group's epoch now.
        epoch: u64,
    },
    /// The SFU's answer to [`ClientMessage::MediaOffer`].
    MediaAnswer {
        /// The SDP answer.
        sdp: String,
    },
    /// The lobby (hosts only), sent on every change.
    Lobby {
        /// Who waits, oldest first.
        waiting: Vec<LobbyEntry>,
    },
    /// Waiting in the lobby (to the waiting participant).
    Waiting {
        /// Why, as sentences.
        reasons: Vec<String>,
    },
    /// Something hosts should know (hosts only).
    Alert(Alert),
    /// The call's active speaker changed (judged by the SFU from the audio level header
    /// extension, which senders leave outside the encrypted payload).
    Speaker {
        /// Who speaks now.
        participant: ParticipantId,
    },
    /// Answer to [`ClientMessage::Ping`].
    Pong {
        /// The ping's nonce.
        nonce: u32,
    },
    /// A request of this participant was refused; the connection stays open.
    Refused {
        /// Why, as a sentence.
        reason: String,
    },
}

/// WebSocket close codes (4000–4999 is the range RFC 6455 leaves to applications). The close
/// frame's reason is a sentence for the user.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[non_exhaustive]
pub enum CloseCode {
    /// The server is shutting down; reconnect and resume.
    GoingAway,
    /// The first message was not a valid [`ClientMessage::Hello`].
    HelloExpected,
    /// [`ClientMessage::Hello`] named another protocol version.
    UnsupportedVersion,
    /// The ticket is malformed, not signed by this organisation, expired, already used or
    /// for another meeting; or the resume token is unknown or expired.
    BadTicket,
    /// A message was not valid JSON of this protocol, or too large, or binary.
    ProtocolViolation,
    /// Too many messages too fast.
    RateLimited,
    /// No heartbeat for three intervals.
    HeartbeatTimeout,
    /// The same seat was resumed on another connection.
    Replaced,
    /// The connection could not keep up with the call's messages; join again.
    TooSlow,
    /// No media datagram from the participant for the ICE consent timeout (15 s): its
    /// network drops UDP, or it hung. The seat is given up and the keys rotate; join again.
    MediaLost,
    /// A host removed the participant.
    Removed,
    /// A host denied the lobby request.
    Denied,
    /// The device was revoked by an administrator.
    DeviceRevoked,
    /// The policy no longer allows this participant (e.g. the call was locked while they
    /// waited, or the meeting was cancelled).
    PolicyChanged,
    /// The participant left ([`ClientMessage::Leave`]).
    Left,
    /// The connection comes from another network than the join request did.
    NetworkChanged,
}

impl CloseCode {
    /// The numeric code.
    pub const fn code(self) -> u16 {
        match self {
            Self::GoingAway => 1001,
            Self::HelloExpected => 4000,
            Self::UnsupportedVersion => 4001,
            Self::BadTicket => 4002,
            Self::ProtocolViolation => 4003,
            Self::RateLimited => 4004,
            Self::HeartbeatTimeout => 4005,
            Self::Replaced => 4006,
            Self::TooSlow => 4007,
            Self::MediaLost => 4008,
            Self::Removed => 4010,
            Self::Denied => 4011,
            Self::DeviceRevoked => 4012,
            Self::PolicyChanged => 4013,
            Self::Left => 4014,
            Self::NetworkChanged => 4015,
        }
    }

    /// The code for a number, if it is one of ours.
    pub const fn from_code(code: u16) -> Option<Self> {
        Some(match code {
            1001 => Self::GoingAway,
            4000 => Self::HelloExpected,
            4001 => Self::UnsupportedVersion,
            4002 => Self::BadTicket,
            4003 => Self::ProtocolViolation,
            4004 => Self::RateLimited,
            4005 => Self::HeartbeatTimeout,
            4006 => Self::Replaced,
            4007 => Self::TooSlow,
            4008 => Self::MediaLost,
            4010 => Self::Removed,
            4011 => Self::Denied,
            4012 => Self::DeviceRevoked,
            4013 => Self::PolicyChanged,
            4014 => Self::Left,
            4015 => Self::NetworkChanged,
            _ => return None,
        })
    }

    /// Whether a client should try to resume after this close.
    pub const fn resumable(self) -> bool {
        matches!(self, Self::GoingAway | Self::HeartbeatTimeout)
    }

    /// Whether a client may ask to join again on its own after this close (when resuming
    /// is not possible or failed): the connection or the server failed, not a decision
    /// about the participant.
    pub const fn rejoinable(self) -> bool {
        matches!(
            self,
            Self::GoingAway
                | Self::HeartbeatTimeout
                | Self::TooSlow
                | Self::MediaLost
                | Self::BadTicket
                | Self::NetworkChanged
        )
    }
}

/// Why a frame could not be decoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecodeError {
    /// Longer than [`MAX_MESSAGE_LEN`].
    #[error("message of {0} bytes exceeds the limit of {MAX_MESSAGE_LEN}")]
    TooLarge(usize),
    /// Not a message of this protocol; the text says what is wrong (from the JSON parser:
    /// position and expectation, never the offending content).
    #[error("not a valid message: {0}")]
    Invalid(String),
}

fn decode<T: for<'de> Deserialize<'de>>(text: &str) -> Result<T, DecodeError> {
    if text.len() > MAX_MESSAGE_LEN {
        return Err(DecodeError::TooLarge(text.len()));
    }
    serde_json::from_str(text).map_err(|e| {
        // serde_json's messages name the field or variant and the position; the input text
        // itself is not echoed
        DecodeError::Invalid(e.to_string())
    })
}

impl ClientMessage {
    /// Decodes one text frame from a participant.
    ///
    /// # Errors
    /// [`DecodeError`] for anything but one valid message within [`MAX_MESSAGE_LEN`].
    pub fn decode(text: &str) -> Result<Self, DecodeError> {
        decode(text)
    }

    /// Encodes as one text frame.
    pub fn encode(&self) -> String {
        serde_json::to_string(self)
            .expect("message types serialise infallibly (no maps with non-string keys)")
    }
}

impl ServerMessage {
    /// Decodes one text frame from the server.
    ///
    /// # Errors
    /// [`DecodeError`] for anything but one valid message within [`MAX_MESSAGE_LEN`].
    pub fn decode(text: &str) -> Result<Self, DecodeError> {
        decode(text)
    }

    /// Encodes as one text frame.
    pub fn encode(&self) -> String {
        serde_json::to_string(self)
            .expect("message types serialise infallibly (no maps with non-string keys)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hello_has_the_documented_shape() {
        let hello = ClientMessage::Hello {
            version: PROTOCOL_VERSION,
            ticket: "t".into(),
            key_package: Bytes(vec![1, 2, 3]),
            resume: None,
            received: 0,
        };
        assert_eq!(
            hello.encode(),
            r#"{"type":"hello","version":3,"ticket":"t","key_package":"AQID","received":0}"#
        );
        assert_eq!(ClientMessage::decode(&hello.encode()), Ok(hello));
    }

    #[test]
    fn every_close_code_round_trips() {
        for code in 1000..5000 {
            if let Some(close) = CloseCode::from_code(code) {
                assert_eq!(close.code(), code);
            }
        }
        assert_eq!(CloseCode::from_code(4010), Some(CloseCode::Removed));
    }

    #[test]
    fn bad_frames_are_errors() {
        let cases = [
            "",
            "{}",
            "[]",
            r#"{"type":"hello"}"#,
            r#"{"type":"nope"}"#,
            r#"{"type":"leave","extra":1}"#,
            r#"{"type":"mls","message":"***"}"#,
            r#"{"type":"ping","nonce":-1}"#,
        ];
        for case in cases {
            assert!(
                matches!(ClientMessage::decode(case), Err(DecodeError::Invalid(_))),
                "{case}"
            );
        }
        let big = format!(
            r#"{{"type":"mls","message":"{}"}}"#,
            "A".repeat(MAX_MESSAGE_LEN)
        );
        assert_eq!(
            ClientMessage::decode(&big),
            Err(DecodeError::TooLarge(big.len()))
        );
    }

    fn entry(seat: u8, media: MediaPath) -> RosterEntry {
        RosterEntry {
            participant: ParticipantId::from_bytes([seat; 16]),
            user_id: UserId::from_bytes([seat; 16]),
            user_name: format!("user{seat}"),
            display_name: format!("User {seat}"),
            device_id: DeviceId::from_bytes([seat; 16]),
            device_trust: DeviceTrust::Managed,
            network: Network {
                trusted: true,
                name: None,
                address: None,
            },
            media,
            joined_at: Timestamp::from_unix_millis(i64::from(seat)),
            host: false,
        }
    }

    #[test]
    fn roster_updates_remove_replace_in_place_and_append() {
        let mut roster = vec![
            entry(1, MediaPath::Udp),
            entry(2, MediaPath::Signalling),
            entry(3, MediaPath::Udp),
        ];
        let update = ServerMessage::RosterUpdate {
            changed: vec![entry(4, MediaPath::Signalling), entry(2, MediaPath::Udp)],
            left: vec![entry(1, MediaPath::Udp).participant],
            locked: true,
        };
        let Ok(ServerMessage::RosterUpdate { changed, left, .. }) =
            ServerMessage::decode(&update.encode())
        else {
            panic!("the update round-trips");
        };
        update_roster(&mut roster, changed, &left);
        assert_eq!(
            roster,
            [
                entry(2, MediaPath::Udp),
                entry(3, MediaPath::Udp),
                entry(4, MediaPath::Signalling)
            ]
        );
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_text_never_panics(text in "\\PC*") {
            let _ = ClientMessage::decode(&text);
            let _ = ServerMessage::decode(&text);
        }

        #[test]
        fn mls_messages_round_trip(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..512), with_welcome: bool) {
            let message = ClientMessage::Mls {
                message: Bytes(bytes.clone()),
                welcome: with_welcome.then(|| Bytes(bytes.iter().rev().copied().collect())),
            };
            proptest::prop_assert_eq!(ClientMessage::decode(&message.encode()), Ok(message));
        }
    }
}
