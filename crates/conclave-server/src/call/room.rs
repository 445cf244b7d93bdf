//! One meeting's call as a pure state machine: seats, the MLS delivery service, the server's
//! external proposals, who commits, heartbeats and resumption, host controls.
//!
//! Sans-IO like the other cores: [`Room::handle`] takes an [`Input`] and the time, and the
//! driver drains [`Room::poll_output`] (messages to participants, connections to close,
//! audit entries, lock changes). The driver owns the sockets and the clock and calls
//! [`Room::handle`] with [`Input::Tick`] about once a second.
//!
//! # Membership changes, one epoch at a time
//!
//! The server changes the MLS group in rounds. A round starts when the group exists, nothing
//! is in flight and someone waits to be added or removed: the server announces each
//! admitted device to the members (`Admitted`, which members require before they accept an
//! Add), proposes all Adds and Removes for the current epoch, passes them through its own
//! delivery service and sends them to every member, then asks one member (the longest-
//! present connected one) to commit. The round ends when a commit for that epoch is
//! accepted. Whoever the winning commit did not cover goes back into the queue for the next
//! round; a committer that does not answer within `commit_timeout` is replaced by the next
//! member. Proposals are therefore never voided by a concurrent commit, and two people who
//! join at the same moment are added by one commit.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::Utf8Bytes;
use conclave_e2ee::{inspect, DeliveryService, ExternalSender, MessageKind, SessionError, Verdict};
use conclave_protocol::{
    Alert, Bytes, ClientMessage, CloseCode, LobbyEntry, MediaPath, Network, RosterEntry,
    ServerMessage,
};
use conclave_sfu::Offer;
use conclave_types::{DeviceId, DeviceTrust, ParticipantId, Timestamp, UserId};

use crate::media::{MediaNews, MediaRequest};

/// Timings of a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RoomConfig {
    /// Participants ping at least this often.
    pub heartbeat_interval: Duration,
    /// A participant silent for three intervals is disconnected.
    pub missed_heartbeats: u32,
    /// How long a dropped connection may be resumed before the seat is given up.
    pub resume_grace: Duration,
    /// How long the chosen member has to commit before another is asked.
    pub commit_timeout: Duration,
}

impl Default for RoomConfig {
    fn default() -> Self {
        Self {
            heartbeat_interval: Duration::from_secs(5),
            missed_heartbeats: 3,
            resume_grace: Duration::from_secs(20),
            commit_timeout: Duration::from_secs(2),
        }
    }
}

/// Who holds a seat, as the admission decided it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Seat {
    /// The account.
    pub user_id: UserId,
    /// Login name.
    pub user_name: String,
    /// Display name.
    pub display_name: String,
    /// The device (the one in the participant's credential).
    pub device_id: DeviceId,
    /// Its trust level at admission.
    pub trust: DeviceTrust,
    /// The network as the policy judged it, with the client address.
    pub network: Network,
    /// Whether the participant hosts the meeting.
    pub host: bool,
}

/// What the driver feeds the room.
#[derive(Debug)]
pub enum Input {
    /// An admitted participant connected (its ticket checked by the driver) with a fresh
    /// KeyPackage.
    Enter {
        /// The new seat's id.
        participant: ParticipantId,
        /// Its resume token.
        resume_token: String,
        /// Who.
        seat: Seat,
        /// Their MLS KeyPackage.
        key_package: Vec<u8>,
        /// `Some(reasons)` if the policy sent them to the lobby: they wait for a host.
        lobby: Option<Vec<String>>,
    },
    /// Something hosts should hear about at once (e.g. a refused join attempt).
    Alert(Alert),
    /// A message from a seated participant's connection.
    Message(ParticipantId, ClientMessage),
    /// The participant's connection dropped (without `Leave`).
    Dropped(ParticipantId),
    /// A participant's connection came back with its resume token; returns whether the
    /// token matched a held seat (then the driver attaches the new connection).
    Resume {
        /// The token the client presented.
        token: String,
        /// How many messages of this seat the client has received (`hello.received`).
        received: u64,
    },
    /// The participant's connection could not keep up (its queue overflowed): the seat is
    /// given up, since what it missed cannot be replayed.
    TooSlow(ParticipantId),
    /// An administrator revoked a device.
    DeviceRevoked(DeviceId),
    /// News from the SFU about a participant's media.
    Media(MediaNews),
    /// Time passes (heartbeats, commit timeouts, resume grace).
    Tick,
}

/// What the room asks the driver to do.
#[derive(Debug, PartialEq)]
pub enum Output {
    /// Send an encoded message to a participant's connection (dropped silently if it has
    /// none). A message to many shares one encoding: the text is reference-counted.
    Send(ParticipantId, Utf8Bytes),
    /// Close the participant's connection with a code and a sentence; no more messages
    /// follow for it.
    Close(ParticipantId, CloseCode, String),
    /// A resumed connection belongs to this seat.
    Resumed(ParticipantId),
    /// Write to the audit log.
    Audit {
        /// Who did it (`user:<id>` or `server`).
        actor: String,
        /// E.g. `call.remove`.
        action: &'static str,
        /// `ok`, `deny`, `refused`.
        outcome: &'static str,
        /// Details, one per item.
        details: Vec<String>,
    },
    /// A host locked or unlocked the meeting: persist it (the policy engine reads it).
    SetLocked(bool),
    /// Pass to the SFU.
    Media(MediaRequest),
}

/// A seat's progress into the MLS group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// In the lobby, waiting for a host; not in the roster, not proposed.
    Lobby,
    /// Waiting for the next membership round.
    Queued,
    /// Its Add is proposed in the current round.
    Proposed,
    /// In the group (has a leaf).
    Member,
    /// Asked to create the group.
    Creating,
}

#[derive(Debug)]
struct Participant {
    id: ParticipantId,
    seat: Seat,
    resume_token: String,
    key_package: Vec<u8>,
    joined_at: Timestamp,
    phase: Phase,
    /// Why the policy sent them to the lobby.
    lobby_reasons: Vec<String>,
    /// Whether a connection is attached.
    connected: bool,
    /// How its media flows.
    media: MediaPath,
    last_seen: Timestamp,
    /// When the connection dropped (for the resume grace period).
    dropped_at: Option<Timestamp>,
    /// Messages sent to this seat so far (whether or not a connection carried them).
    sent: u64,
    /// The last messages sent, not yet acknowledged (`ping.received`); replayed on
    /// resumption from the count the client says it received, so nothing in flight on a
    /// dying connection is lost. Encoded, and shared with the other recipients of the same
    /// message: a roster sent to everyone is held once, not once per seat.
    unacknowledged: VecDeque<Utf8Bytes>,
    /// Whether it was sent the whole roster (after which it is sent what changes).
    has_roster: bool,
}

/// The round in flight.
#[derive(Debug)]
struct Round {
    removes: Vec<DeviceId>,
    committer: ParticipantId,
    asked: Vec<ParticipantId>,
    deadline: Timestamp,
}

/// Unacknowledged messages kept per seat for resumption; a disconnected seat that falls
/// further behind is given up (it could not catch up with the group anyway).
const MAX_UNACKNOWLEDGED: usize = 1_024;

/// One meeting's call.
#[derive(Debug)]
pub struct Room {
    config: RoomConfig,
    server: Arc<ExternalSender>,
    ds: Option<DeliveryService>,
    participants: Vec<Participant>,
    /// Devices of departed members still to be removed from the group.
    removals: Vec<DeviceId>,
    round: Option<Round>,
    locked: bool,
    outputs: VecDeque<Output>,
    /// The roster as last sent (with the addresses hosts see), and whether it said locked.
    roster: Vec<RosterEntry>,
    roster_locked: bool,
}

fn elapsed_ms(now: Timestamp, then: Timestamp) -> u64 {
    u64::try_from(now.unix_millis().saturating_sub(then.unix_millis())).unwrap_or(0)
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl Room {
    /// An empty call. `locked` is the meeting's current lock state.
    pub fn new(config: RoomConfig, server: Arc<ExternalSender>, locked: bool) -> Self {
        Self {
            config,
            server,
            ds: None,
            participants: Vec::new(),
            removals: Vec::new(),
            round: None,
            locked,
            outputs: VecDeque::new(),
            roster: Vec::new(),
            roster_locked: locked,
        }
    }

    /// Seats held (connected or within the resume grace).
    pub fn seats(&self) -> usize {
        self.participants.len()
    }

    /// Participants in the call: every seat but those waiting in the lobby.
    pub fn in_call(&self) -> u32 {
        let n = self
            .participants
            .iter()
            .filter(|p| p.phase != Phase::Lobby)
            .count();
        u32::try_from(n).unwrap_or(u32::MAX)
    }

    /// Whether nobody is left and the room can be dropped.
    pub fn is_empty(&self) -> bool {
        self.participants.is_empty()
    }

    /// The next thing for the driver to do.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// Feeds one input at `now`.
    pub fn handle(&mut self, input: Input, now: Timestamp) {
        match input {
            Input::Enter {
                participant,
                resume_token,
                seat,
                key_package,
                lobby,
            } => self.enter(participant, resume_token, seat, key_package, lobby, now),
            Input::Alert(alert) => self.send_all(self.host_ids(), &ServerMessage::Alert(alert)),
            Input::Message(from, message) => {
                if let Some(p) = self.find_mut(from) {
                    p.last_seen = now;
                    self.message(from, message, now);
                }
            }
            Input::Dropped(id) => {
                if let Some(p) = self.find_mut(id) {
                    p.connected = false;
                    p.dropped_at = Some(now);
                }
            }
            Input::Resume { token, received } => {
                let found = self
                    .participants
                    .iter_mut()
                    .find(|p| !token.is_empty() && p.resume_token == token);
                if let Some(p) = found {
                    let id = p.id;
                    if p.connected {
                        self.outputs.push_back(Output::Close(
                            id,
                            CloseCode::Replaced,
                            "this seat was resumed on another connection".into(),
                        ));
                    }
                    let p = self.find_mut(id).expect("found above");
                    let held = u64::try_from(p.unacknowledged.len()).unwrap_or(u64::MAX);
                    let first_held = p.sent.saturating_sub(held);
                    if received > p.sent || received < first_held {
                        // the client claims what it cannot have, or lost more than is kept
                        return self.free(id, None, "could not resume: messages lost");
                    }
                    p.connected = true;
                    p.dropped_at = None;
                    p.last_seen = now;
                    let skip = usize::try_from(received - first_held).unwrap_or(usize::MAX);
                    let replay: Vec<_> = p.unacknowledged.iter().skip(skip).cloned().collect();
                    self.outputs.push_back(Output::Resumed(id));
                    for message in replay {
                        self.outputs.push_back(Output::Send(id, message));
                    }
                }
            }
            Input::DeviceRevoked(device) => {
                self.broadcast_members(&ServerMessage::Revoked { device });
                let ids: Vec<_> = self
                    .participants
                    .iter()
                    .filter(|p| p.seat.device_id == device)
                    .map(|p| p.id)
                    .collect();
                for id in ids {
                    self.free(
                        id,
                        Some((
                            CloseCode::DeviceRevoked,
                            "your device was revoked by an administrator",
                        )),
                        "device revoked",
                    );
                }
            }
            Input::TooSlow(id) => self.free(
                id,
                Some((
                    CloseCode::TooSlow,
                    "your connection could not keep up with the call",
                )),
                "connection too slow",
            ),
            Input::Media(news) => self.media_news(news),
            Input::Tick => self.tick(now),
        }
        self.advance(now);
    }

    fn find_mut(&mut self, id: ParticipantId) -> Option<&mut Participant> {
        self.participants.iter_mut().find(|p| p.id == id)
    }

    fn find(&self, id: ParticipantId) -> Option<&Participant> {
        self.participants.iter().find(|p| p.id == id)
    }

    fn send(&mut self, to: ParticipantId, message: &ServerMessage) {
        self.deliver(to, message.encode().into());
    }

    /// Sends one message to many, encoded once.
    fn send_all(&mut self, to: Vec<ParticipantId>, message: &ServerMessage) {
        let text = Utf8Bytes::from(message.encode());
        for id in to {
            self.deliver(id, text.clone());
        }
    }

    fn deliver(&mut self, to: ParticipantId, message: Utf8Bytes) {
        let Some(p) = self.find_mut(to) else { return };
        p.sent += 1;
        p.unacknowledged.push_back(message.clone());
        let overflow = p.unacknowledged.len() > MAX_UNACKNOWLEDGED;
        let connected = p.connected;
        if connected {
            self.outputs.push_back(Output::Send(to, message));
        }
        if overflow {
            if connected {
                // it acknowledges with every heartbeat; this many unacknowledged messages
                // means it stopped reading
                if let Some(p) = self.find_mut(to) {
                    p.unacknowledged.pop_front();
                }
            } else {
                self.free(to, None, "too far behind while disconnected");
            }
        }
    }

    /// The client says it received `received` messages: forget those.
    fn acknowledge(&mut self, from: ParticipantId, received: u64) {
        let Some(p) = self.find_mut(from) else { return };
        let held = u64::try_from(p.unacknowledged.len()).unwrap_or(u64::MAX);
        let first_held = p.sent.saturating_sub(held);
        let done = received.clamp(first_held, p.sent) - first_held;
        p.unacknowledged.drain(
            ..usize::try_from(done)
                .unwrap_or(usize::MAX)
                .min(p.unacknowledged.len()),
        );
    }

    fn member_ids(&self) -> Vec<ParticipantId> {
        self.participants
            .iter()
            .filter(|p| p.phase == Phase::Member)
            .map(|p| p.id)
            .collect()
    }

    fn broadcast_members(&mut self, message: &ServerMessage) {
        self.send_all(self.member_ids(), message);
    }

    fn alert_hosts(&mut self, now: Timestamp, kind: &str, who: Option<String>, text: String) {
        let alert = ServerMessage::Alert(Alert {
            at: now,
            kind: kind.into(),
            who,
            text,
        });
        self.send_all(self.host_ids(), &alert);
    }

    /// Hosts in the call (not those still in the lobby).
    fn host_ids(&self) -> Vec<ParticipantId> {
        self.participants
            .iter()
            .filter(|p| p.seat.host && p.phase != Phase::Lobby)
            .map(|p| p.id)
            .collect()
    }

    fn enter(
        &mut self,
        id: ParticipantId,
        resume_token: String,
        seat: Seat,
        key_package: Vec<u8>,
        lobby: Option<Vec<String>>,
        now: Timestamp,
    ) {
        let host = seat.host;
        // One seat per device: a device that joins again (a restarted client, a new ticket
        // after a lost connection) replaces its old seat, whose leaf is removed, rather than
        // sitting in the group twice.
        let stale: Vec<ParticipantId> = self
            .participants
            .iter()
            .filter(|p| p.seat.device_id == seat.device_id)
            .map(|p| p.id)
            .collect();
        for old in stale {
            self.free(
                old,
                Some((
                    CloseCode::Replaced,
                    "this device joined the call again on another connection",
                )),
                "replaced by a new join of the same device",
            );
        }
        self.outputs.push_back(Output::Audit {
            actor: format!("user:{}", seat.user_id),
            action: "call.enter",
            outcome: "ok",
            details: vec![
                format!("participant {id}"),
                format!("device {} ({})", seat.device_id, seat.trust),
            ],
        });
        self.participants.push(Participant {
            id,
            seat,
            resume_token: resume_token.clone(),
            key_package,
            joined_at: now,
            phase: if lobby.is_some() {
                Phase::Lobby
            } else {
                Phase::Queued
            },
            lobby_reasons: lobby.clone().unwrap_or_default(),
            connected: true,
            last_seen: now,
            dropped_at: None,
            sent: 0,
            unacknowledged: VecDeque::new(),
            has_roster: false,
            media: MediaPath::Signalling,
        });
        self.send(
            id,
            &ServerMessage::Joined {
                participant: id,
                resume_token,
                heartbeat_interval_ms: u32::try_from(ms(self.config.heartbeat_interval))
                    .unwrap_or(u32::MAX),
                resume_grace_ms: u32::try_from(ms(self.config.resume_grace)).unwrap_or(u32::MAX),
                host,
            },
        );
        if let Some(reasons) = lobby {
            self.send(id, &ServerMessage::Waiting { reasons });
            let name = self.find(id).map(|p| p.seat.display_name.clone());
            self.alert_hosts(now, "lobby", name, "is waiting in the lobby".into());
            self.lobby_changed();
        }
        self.roster_changed();
    }

    fn lobby_changed(&mut self) {
        let waiting: Vec<LobbyEntry> = self
            .participants
            .iter()
            .filter(|p| p.phase == Phase::Lobby)
            .map(|p| LobbyEntry {
                participant: p.id,
                user_name: p.seat.user_name.clone(),
                display_name: p.seat.display_name.clone(),
                device_trust: p.seat.trust,
                network: p.seat.network.clone(),
                reasons: p.lobby_reasons.clone(),
                since: p.joined_at,
            })
            .collect();
        self.send_all(self.host_ids(), &ServerMessage::Lobby { waiting });
    }

    /// A host's admit or deny of a lobby entry.
    fn decide_lobby(&mut self, host: ParticipantId, target: ParticipantId, admit: bool) {
        if !self.is_host(host) {
            return self.refuse(host, "only hosts can admit or deny");
        }
        if !self.find(target).is_some_and(|p| p.phase == Phase::Lobby) {
            return self.refuse(host, "that participant is no longer waiting");
        }
        let by = self.find(host).map(|p| p.seat.user_id);
        let name = self
            .find(target)
            .map(|p| p.seat.display_name.clone())
            .unwrap_or_default();
        self.outputs.push_back(Output::Audit {
            actor: by.map_or_else(|| "server".into(), |u| format!("user:{u}")),
            action: if admit { "call.admit" } else { "call.deny" },
            outcome: "ok",
            details: vec![format!("participant {target}"), format!("name {name}")],
        });
        if admit {
            if let Some(p) = self.find_mut(target) {
                p.phase = Phase::Queued;
            }
            self.roster_changed();
        } else {
            self.free(
                target,
                Some((CloseCode::Denied, "a host turned your request away")),
                "denied by a host",
            );
        }
        self.lobby_changed();
    }

    fn message(&mut self, from: ParticipantId, message: ClientMessage, now: Timestamp) {
        match message {
            ClientMessage::Hello { .. } => self.violation(from, "a second hello"),
            ClientMessage::Ping { nonce, received } => {
                self.acknowledge(from, received);
                self.send(from, &ServerMessage::Pong { nonce });
            }
            ClientMessage::GroupCreated { group_info } => self.group_created(from, &group_info.0),
            ClientMessage::Mls { message, welcome } => self.mls(from, &message.0, welcome, now),
            ClientMessage::Leave {} => self.free(from, Some((CloseCode::Left, "you left")), "left"),
            ClientMessage::Remove { participant } => {
                if !self.is_host(from) {
                    return self.refuse(from, "only hosts can remove participants");
                }
                let Some(target) = self.find(participant) else {
                    return self.refuse(from, "that participant is no longer in the call");
                };
                let name = target.seat.display_name.clone();
                let by = self.find(from).map(|p| p.seat.user_id);
                self.outputs.push_back(Output::Audit {
                    actor: by.map_or_else(|| "server".into(), |u| format!("user:{u}")),
                    action: "call.remove",
                    outcome: "ok",
                    details: vec![format!("participant {participant}"), format!("name {name}")],
                });
                self.free(
                    participant,
                    Some((CloseCode::Removed, "a host removed you from the call")),
                    "removed by a host",
                );
            }
            ClientMessage::Lock { locked } => {
                if !self.is_host(from) {
                    return self.refuse(from, "only hosts can lock the call");
                }
                if self.locked != locked {
                    self.locked = locked;
                    self.outputs.push_back(Output::SetLocked(locked));
                    let by = self.find(from).map(|p| p.seat.user_id);
                    self.outputs.push_back(Output::Audit {
                        actor: by.map_or_else(|| "server".into(), |u| format!("user:{u}")),
                        action: if locked { "call.lock" } else { "call.unlock" },
                        outcome: "ok",
                        details: Vec::new(),
                    });
                    self.roster_changed();
                }
            }
            // Media connects while the seat joins the group (ICE and DTLS overlap the MLS
            // round); what flows before its Welcome is sealed under keys it does not hold yet.
            ClientMessage::MediaOffer { .. }
                if self.find(from).is_none_or(|p| p.phase == Phase::Lobby) =>
            {
                self.refuse(from, "media starts once you are admitted");
            }
            ClientMessage::MediaOffer { sdp } => match Offer::parse(&sdp) {
                Ok(offer) => self.outputs.push_back(Output::Media(MediaRequest::Offer {
                    participant: from,
                    offer,
                })),
                Err(e) => {
                    tracing::info!(participant = %from, error = %e, "SDP offer refused");
                    self.refuse(from, "the media description was refused");
                }
            },
            ClientMessage::Admit { participant } => self.decide_lobby(from, participant, true),
            ClientMessage::Deny { participant } => self.decide_lobby(from, participant, false),
            _ => self.refuse(from, "this request is not supported"),
        }
    }

    fn is_host(&self, id: ParticipantId) -> bool {
        self.find(id).is_some_and(|p| p.seat.host)
    }

    fn refuse(&mut self, to: ParticipantId, reason: &str) {
        self.send(
            to,
            &ServerMessage::Refused {
                reason: reason.into(),
            },
        );
    }

    fn violation(&mut self, from: ParticipantId, what: &str) {
        self.free(
            from,
            Some((CloseCode::ProtocolViolation, "protocol violation")),
            what,
        );
    }

    fn group_created(&mut self, from: ParticipantId, group_info: &[u8]) {
        let creating = self.find(from).is_some_and(|p| p.phase == Phase::Creating);
        if !creating || self.ds.is_some() {
            return self.violation(from, "group created unasked");
        }
        match DeliveryService::from_group_info(group_info, &self.server.info()) {
            Ok(ds) => {
                let device = self.find(from).map(|p| p.seat.device_id);
                if device.is_none() || ds.members().iter().map(|(_, d)| Some(*d)).ne([device]) {
                    return self.violation(from, "group does not consist of its creator alone");
                }
                self.ds = Some(ds);
                if let Some(p) = self.find_mut(from) {
                    p.phase = Phase::Member;
                }
                self.roster_changed();
            }
            Err(e) => {
                tracing::info!(participant = %from, error = %e, "group info refused");
                self.violation(from, "group info refused");
            }
        }
    }

    fn mls(&mut self, from: ParticipantId, message: &[u8], welcome: Option<Bytes>, now: Timestamp) {
        let is_member = self.find(from).is_some_and(|p| p.phase == Phase::Member);
        let Some(ds) = self.ds.as_mut().filter(|_| is_member) else {
            return self.violation(from, "MLS message from a non-member");
        };
        let kind = inspect(message).map(|info| info.kind);
        match ds.submit(message) {
            Ok(Verdict::Forward) => match kind {
                Ok(MessageKind::Application) => {
                    let others: Vec<_> = self
                        .member_ids()
                        .into_iter()
                        .filter(|id| *id != from)
                        .collect();
                    self.send_all(
                        others,
                        &ServerMessage::Mls {
                            message: Bytes(message.to_vec()),
                        },
                    );
                }
                Ok(MessageKind::Commit) => self.committed(message, welcome),
                _ => self.violation(from, "unexpected MLS message kind"),
            },
            // `Verdict::Rejected`, and whatever later verdicts mean "not forwarded"
            Ok(_) => {
                let epoch = ds.group().epoch;
                self.send(from, &ServerMessage::CommitRejected { epoch });
            }
            Err(e) => {
                let name = self.find(from).map(|p| p.seat.display_name.clone());
                tracing::warn!(participant = %from, error = %e, "MLS message refused");
                self.outputs.push_back(Output::Audit {
                    actor: "server".into(),
                    action: "call.mls_refused",
                    outcome: "refused",
                    details: vec![format!("participant {from}"), error_text(&e)],
                });
                self.alert_hosts(
                    now,
                    "mls_refused",
                    name,
                    "the server refused an invalid MLS message from this participant".into(),
                );
                if matches!(kind, Ok(MessageKind::Commit)) {
                    let epoch = self.ds.as_ref().map_or(0, |ds| ds.group().epoch);
                    self.send(from, &ServerMessage::CommitRejected { epoch });
                    // somebody else commits the round
                    if let Some(round) = self.round.as_mut() {
                        round.deadline = now;
                    }
                }
            }
        }
    }

    /// A commit was accepted: fan it out, hand out the Welcome, settle the round.
    fn committed(&mut self, commit: &[u8], welcome: Option<Bytes>) {
        let commit = ServerMessage::Mls {
            message: Bytes(commit.to_vec()),
        };
        self.broadcast_members(&commit);
        // receivers can open only frames sealed under the new epoch's keys: ask every
        // sender for a key frame (members switch keys when they process the commit)
        self.outputs
            .push_back(Output::Media(MediaRequest::Keyframes));
        let Some(ds) = self.ds.as_ref() else { return };
        let in_group: Vec<DeviceId> = ds.members().into_iter().map(|(_, d)| d).collect();
        let round = self.round.take();
        let mut joined = Vec::new();
        for p in &mut self.participants {
            if p.phase == Phase::Proposed {
                if in_group.contains(&p.seat.device_id) {
                    p.phase = Phase::Member;
                    joined.push(p.id);
                } else {
                    p.phase = Phase::Queued;
                }
            }
        }
        if let Some(welcome) = welcome.filter(|_| !joined.is_empty()) {
            self.send_all(joined, &ServerMessage::Mls { message: welcome });
        }
        if let Some(round) = round {
            for device in round.removes {
                if in_group.contains(&device) && !self.removals.contains(&device) {
                    self.removals.push(device);
                }
            }
        }
        self.roster_changed();
    }

    fn media_news(&mut self, news: MediaNews) {
        match news {
            MediaNews::Answer { participant, sdp } => {
                self.send(participant, &ServerMessage::MediaAnswer { sdp });
            }
            MediaNews::Connected(participant) => {
                if let Some(p) = self.find_mut(participant) {
                    p.media = MediaPath::Udp;
                }
                self.roster_changed();
            }
            MediaNews::Disconnected(participant) => {
                // The SFU heard nothing for the ICE consent timeout: whoever sits in the seat
                // no longer hears or is heard. Keeping them in the group would keep a member
                // holding keys who is not really there, so the seat goes and the keys rotate.
                self.free(
                    participant,
                    Some((
                        CloseCode::MediaLost,
                        "no media from you for 15 seconds; join again",
                    )),
                    "media connection lost",
                );
            }
            MediaNews::Speaker(participant) => {
                self.broadcast_members(&ServerMessage::Speaker { participant });
            }
            MediaNews::Refused {
                participant,
                reason,
            } => {
                tracing::info!(%participant, reason, "SDP refused by the SFU");
                self.refuse(participant, "the media description was refused");
            }
        }
    }

    /// Gives up a seat: closes its connection (if `close`), and queues the removal of its
    /// leaf if it is in the group.
    fn free(&mut self, id: ParticipantId, close: Option<(CloseCode, &str)>, why: &str) {
        let Some(index) = self.participants.iter().position(|p| p.id == id) else {
            return;
        };
        let p = self.participants.remove(index);
        if let Some((code, text)) = close {
            if p.connected {
                self.outputs.push_back(Output::Close(id, code, text.into()));
            }
        }
        if matches!(p.phase, Phase::Member | Phase::Proposed)
            && !self.removals.contains(&p.seat.device_id)
        {
            self.removals.push(p.seat.device_id);
        }
        if p.phase == Phase::Creating {
            // nobody else was told to create; the next participant will be
            tracing::info!(participant = %id, "group creator left before creating");
        }
        self.outputs.push_back(Output::Audit {
            actor: format!("user:{}", p.seat.user_id),
            action: "call.leave",
            outcome: "ok",
            details: vec![format!("participant {id}"), why.into()],
        });
        self.outputs
            .push_back(Output::Media(MediaRequest::Remove(id)));
        if self.ds.is_some() && !self.participants.iter().any(|p| p.phase == Phase::Member) {
            // the group is gone with its last member; the next participant creates a new one
            self.ds = None;
            self.round = None;
            self.removals.clear();
            for p in &mut self.participants {
                p.phase = Phase::Queued;
            }
        }
        self.roster_changed();
    }

    fn tick(&mut self, now: Timestamp) {
        let silent_after = ms(self.config.heartbeat_interval)
            .saturating_mul(u64::from(self.config.missed_heartbeats));
        let grace = ms(self.config.resume_grace);
        let mut silent = Vec::new();
        let mut expired = Vec::new();
        for p in &self.participants {
            if p.connected && elapsed_ms(now, p.last_seen) >= silent_after {
                silent.push(p.id);
            }
            if let Some(dropped) = p.dropped_at {
                if elapsed_ms(now, dropped) >= grace {
                    expired.push(p.id);
                }
            }
        }
        for id in silent {
            self.outputs.push_back(Output::Close(
                id,
                CloseCode::HeartbeatTimeout,
                "no heartbeat; reconnect to resume".into(),
            ));
            if let Some(p) = self.find_mut(id) {
                p.connected = false;
                p.dropped_at = Some(now);
            }
        }
        for id in expired {
            self.free(id, None, "did not come back within the resume grace period");
        }
        let timed_out = self.round.as_ref().is_some_and(|r| now >= r.deadline);
        if timed_out {
            self.reassign_committer(now);
        }
    }

    fn next_committer(&self, skip: &[ParticipantId]) -> Option<ParticipantId> {
        self.participants
            .iter()
            .filter(|p| p.phase == Phase::Member && p.connected && !skip.contains(&p.id))
            .map(|p| p.id)
            .next()
    }

    fn reassign_committer(&mut self, now: Timestamp) {
        let Some(round) = self.round.as_ref() else {
            return;
        };
        let next = self
            .next_committer(&round.asked)
            .or_else(|| self.next_committer(&[]));
        let deadline = now.saturating_add(self.config.commit_timeout);
        let Some(next) = next else { return };
        if let Some(round) = self.round.as_mut() {
            round.committer = next;
            round.asked.push(next);
            round.deadline = deadline;
        }
        self.send(next, &ServerMessage::CommitPending {});
    }

    /// Starts whatever can start: a group creation or a membership round.
    fn advance(&mut self, now: Timestamp) {
        if self.ds.is_none() {
            let creating = self.participants.iter().any(|p| p.phase == Phase::Creating);
            if !creating {
                let first = self
                    .participants
                    .iter_mut()
                    .find(|p| p.phase == Phase::Queued && p.connected);
                if let Some(p) = first {
                    p.phase = Phase::Creating;
                    let id = p.id;
                    self.send(id, &ServerMessage::CreateGroup {});
                }
            }
            return;
        }
        if self.round.is_some() {
            return;
        }
        let queued: Vec<ParticipantId> = self
            .participants
            .iter()
            .filter(|p| p.phase == Phase::Queued)
            .map(|p| p.id)
            .collect();
        if queued.is_empty() && self.removals.is_empty() {
            return;
        }
        let Some(committer) = self.next_committer(&[]) else {
            return;
        };
        let mut proposals = Vec::new();
        let removes = std::mem::take(&mut self.removals);
        for device in removes.iter().copied() {
            let Some(ds) = self.ds.as_mut() else { return };
            let Some(leaf) = ds.leaf_of(device) else {
                continue;
            };
            match self.server.propose_remove(ds.group(), leaf) {
                Ok(proposal) => match ds.submit(&proposal) {
                    Ok(_) => proposals.push(proposal),
                    Err(e) => tracing::error!(error = %e, "own Remove proposal refused"),
                },
                Err(e) => tracing::error!(error = %e, "cannot propose Remove"),
            }
        }
        for id in queued {
            let Some(p) = self.find(id) else { continue };
            let device = p.seat.device_id;
            let key_package = p.key_package.clone();
            self.broadcast_members(&ServerMessage::Admitted { device });
            let Some(ds) = self.ds.as_mut() else { return };
            let proposal = self
                .server
                .propose_add(ds.group(), &key_package)
                .and_then(|proposal| ds.submit(&proposal).map(|_| proposal));
            match proposal {
                Ok(proposal) => {
                    proposals.push(proposal);
                    if let Some(p) = self.find_mut(id) {
                        p.phase = Phase::Proposed;
                    }
                }
                Err(e) => {
                    tracing::info!(participant = %id, error = %e, "key package refused");
                    self.free(
                        id,
                        Some((
                            CloseCode::ProtocolViolation,
                            "your MLS key package was refused",
                        )),
                        "key package refused",
                    );
                }
            }
        }
        if proposals.is_empty() {
            return;
        }
        for proposal in proposals {
            self.broadcast_members(&ServerMessage::Mls {
                message: Bytes(proposal),
            });
        }
        self.round = Some(Round {
            removes,
            committer,
            asked: vec![committer],
            deadline: now.saturating_add(self.config.commit_timeout),
        });
        self.send(committer, &ServerMessage::CommitPending {});
    }

    /// Brings every roster up to date: the whole roster to those entering the call, what
    /// changed to everyone else. Re-sending all of it on every join and leave would make a
    /// join cost each member the whole call.
    fn roster_changed(&mut self) {
        let entry = |p: &Participant| RosterEntry {
            participant: p.id,
            user_id: p.seat.user_id,
            user_name: p.seat.user_name.clone(),
            display_name: p.seat.display_name.clone(),
            device_id: p.seat.device_id,
            device_trust: p.seat.trust,
            network: p.seat.network.clone(),
            media: p.media,
            joined_at: p.joined_at,
            host: p.seat.host,
        };
        let roster: Vec<RosterEntry> = self
            .participants
            .iter()
            .filter(|p| p.phase != Phase::Lobby)
            .map(entry)
            .collect();
        let changed: Vec<RosterEntry> = roster
            .iter()
            .filter(|e| !self.roster.contains(e))
            .cloned()
            .collect();
        let left: Vec<ParticipantId> = self
            .roster
            .iter()
            .filter(|old| !roster.iter().any(|e| e.participant == old.participant))
            .map(|old| old.participant)
            .collect();
        let locked = self.locked;
        let update = !changed.is_empty() || !left.is_empty() || locked != self.roster_locked;
        self.roster = roster;
        self.roster_locked = locked;

        let mut entering = (Vec::new(), Vec::new());
        let mut following = (Vec::new(), Vec::new());
        for p in self
            .participants
            .iter_mut()
            .filter(|p| p.phase != Phase::Lobby)
        {
            let (hosts, others) = if p.has_roster {
                &mut following
            } else {
                &mut entering
            };
            if p.seat.host {
                hosts.push(p.id);
            } else {
                others.push(p.id);
            }
            p.has_roster = true;
        }
        if !entering.0.is_empty() || !entering.1.is_empty() {
            // a copy only when someone enters, not on every change of a large call
            let whole = self.roster.clone();
            self.send_views(entering, whole, |participants| ServerMessage::Roster {
                participants,
                locked,
            });
        }
        if update {
            self.send_views(following, changed, |changed| ServerMessage::RosterUpdate {
                changed,
                left: left.clone(),
                locked,
            });
        }
    }

    /// Sends roster entries to hosts as they are and to everyone else without addresses.
    fn send_views(
        &mut self,
        (hosts, others): (Vec<ParticipantId>, Vec<ParticipantId>),
        entries: Vec<RosterEntry>,
        message: impl Fn(Vec<RosterEntry>) -> ServerMessage,
    ) {
        if !others.is_empty() {
            let hidden = entries.iter().map(RosterEntry::without_address).collect();
            self.send_all(others, &message(hidden));
        }
        if !hosts.is_empty() {
            self.send_all(hosts, &message(entries));
        }
    }
}

fn error_text(e: &SessionError) -> String {
    let text = e.to_string();
    text.chars().take(200).collect()
}
