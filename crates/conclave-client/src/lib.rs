//! The native Conclave participant.
//!
//! [`Participant`] is the pure core of one participant in one call: it consumes the server's
//! signalling messages ([`ServerMessage`]), drives its MLS [`Session`] with them, and emits the
//! messages to send back ([`ClientMessage`]) plus what the user would see: the roster, the
//! security code, chat, refusals, and whether roster and MLS membership agree. No sockets and
//! no clock reads (`now` is an argument), so the server's tests run whole calls in memory
//! with it, and the network driver only moves its messages.
//!
//! ```no_run
//! # fn run(mut p: conclave_client::Participant, incoming: Vec<conclave_protocol::ServerMessage>,
//! #        now: conclave_types::Timestamp) {
//! for message in incoming {
//!     p.handle(message, now);
//!     while let Some(reply) = p.poll_transmit() {
//!         // send `reply.encode()` on the WebSocket
//!         let _ = reply;
//!     }
//! }
//! println!("security code {:?}", p.security_code());
//! # }
//! ```

pub mod media;
pub mod net;

use std::collections::{BTreeMap, VecDeque};

use conclave_e2ee::{
    inspect, Event, ExternalSenderInfo, Input, MemberIdentity, MessageKind, Output, RefusalReason,
    Session, SessionError,
};
use conclave_identity::{DeviceCredential, OrganisationPublicKey};
use conclave_protocol::{
    update_roster, Alert, Bytes, ClientMessage, LobbyEntry, RosterEntry, ServerMessage,
    PROTOCOL_VERSION,
};
use conclave_types::{DeviceId, ParticipantId, Timestamp};

/// A chat message received in the call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chat {
    /// The sender's device (from their MLS credential, not from the server).
    pub from: DeviceId,
    /// The text.
    pub text: String,
}

/// Someone in one list but not the other: the roster (what the server says) and the MLS
/// group (what the cryptography says) must name the same devices.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mismatch {
    /// In the MLS group, not on the roster: a member the server does not show.
    HiddenMember(DeviceId),
    /// On the roster as a member of the group, but not in it.
    NotInGroup(DeviceId),
}

/// The epoch's key material for media encryption.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyMaterial {
    /// MLS epoch.
    pub epoch: u64,
    /// `MLS-Exporter("SFrame 1.0 Base Key", "", 16)`.
    pub secret: conclave_e2ee::Secret,
    /// This participant's leaf.
    pub own_leaf: u32,
    /// The leaves of every member of the epoch.
    pub members: Vec<u32>,
}

/// One participant in one call.
pub struct Participant {
    session: Session,
    outgoing: VecDeque<ClientMessage>,
    me: Option<ParticipantId>,
    resume_token: Option<String>,
    host: bool,
    roster: Vec<RosterEntry>,
    locked: bool,
    lobby: Vec<LobbyEntry>,
    alerts: Vec<Alert>,
    /// Every security code seen, in order.
    codes: Vec<(u64, String)>,
    /// MLS members by leaf.
    members: BTreeMap<u32, DeviceId>,
    chat: Vec<Chat>,
    refusals: Vec<RefusalReason>,
    errors: Vec<String>,
    keys: Option<KeyMaterial>,
    waiting: Option<Vec<String>>,
    /// The active speaker, as the server last said.
    speaker: Option<ParticipantId>,
    /// Server messages received on this seat (for resumption and acknowledgements).
    received: u64,
}

impl std::fmt::Debug for Participant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Participant")
            .field("me", &self.me)
            .field("epoch", &self.session.epoch())
            .field("roster", &self.roster.len())
            .finish_non_exhaustive()
    }
}

impl Participant {
    /// A participant with this device identity, checking credentials against `org` and
    /// accepting proposals only from the server `external_sender`.
    ///
    /// # Errors
    /// If the identity is unusable (its key does not match the credential).
    pub fn new(
        credential: DeviceCredential,
        device_seed: [u8; 32],
        org: OrganisationPublicKey,
        external_sender: ExternalSenderInfo,
        now: Timestamp,
    ) -> Result<Self, SessionError> {
        let session = Session::new(
            MemberIdentity::new(credential, device_seed),
            org,
            external_sender,
            now,
        )?;
        Ok(Self {
            session,
            outgoing: VecDeque::new(),
            me: None,
            resume_token: None,
            host: false,
            roster: Vec::new(),
            locked: false,
            lobby: Vec::new(),
            alerts: Vec::new(),
            codes: Vec::new(),
            members: BTreeMap::new(),
            chat: Vec::new(),
            refusals: Vec::new(),
            errors: Vec::new(),
            keys: None,
            waiting: None,
            speaker: None,
            received: 0,
        })
    }

    /// The first message of a new connection: `hello` with the join ticket and a KeyPackage.
    pub fn hello(&self, ticket: String) -> ClientMessage {
        ClientMessage::Hello {
            version: PROTOCOL_VERSION,
            ticket,
            key_package: Bytes(self.session.key_package()),
            resume: None,
            received: 0,
        }
    }

    /// The first message of a resumed connection (after a drop), if there is a seat.
    pub fn resume_hello(&self) -> Option<ClientMessage> {
        self.resume_token.clone().map(|token| ClientMessage::Hello {
            version: PROTOCOL_VERSION,
            ticket: String::new(),
            key_package: Bytes::default(),
            resume: Some(token),
            received: self.received,
        })
    }

    /// Queues a chat message (sent as an MLS application message).
    pub fn send_chat(&mut self, text: &str, now: Timestamp) {
        if let Err(e) = self
            .session
            .handle(Input::SendApplication(text.as_bytes().to_vec()), now)
        {
            self.errors.push(format!("chat not sent: {e}"));
        }
        self.collect();
    }

    /// Queues a client message as is (host controls, leave, ping).
    pub fn send(&mut self, message: ClientMessage) {
        self.outgoing.push_back(message);
    }

    /// The next message to send to the server.
    pub fn poll_transmit(&mut self) -> Option<ClientMessage> {
        self.outgoing.pop_front()
    }

    /// A heartbeat, acknowledging what was received.
    pub fn ping(&self, nonce: u32) -> ClientMessage {
        ClientMessage::Ping {
            nonce,
            received: self.received,
        }
    }

    /// Feeds one message from the server.
    pub fn handle(&mut self, message: ServerMessage, now: Timestamp) {
        if matches!(message, ServerMessage::Joined { .. }) && self.me.is_none() {
            self.received = 0;
        }
        self.received += 1;
        let result = match message {
            ServerMessage::Joined {
                participant,
                resume_token,
                host,
                ..
            } => {
                self.me = Some(participant);
                self.resume_token = Some(resume_token);
                self.host = host;
                self.waiting = None;
                Ok(())
            }
            ServerMessage::CreateGroup {} => self
                .session
                .handle(Input::CreateGroup, now)
                .and_then(|()| self.session.group_info())
                .map(|info| {
                    self.outgoing.push_back(ClientMessage::GroupCreated {
                        group_info: Bytes(info),
                    });
                }),
            ServerMessage::Roster {
                participants,
                locked,
            } => {
                self.roster = participants;
                self.locked = locked;
                Ok(())
            }
            ServerMessage::RosterUpdate {
                changed,
                left,
                locked,
            } => {
                update_roster(&mut self.roster, changed, &left);
                self.locked = locked;
                Ok(())
            }
            ServerMessage::Admitted { device } => {
                self.session.handle(Input::Admitted { device }, now)
            }
            ServerMessage::Revoked { device } => {
                self.session.handle(Input::Revoked { device }, now)
            }
            ServerMessage::Mls { message } => self.session.handle(Input::Delivered(message.0), now),
            ServerMessage::CommitPending {} => self.session.handle(Input::CommitPending, now),
            ServerMessage::CommitRejected { .. } => self.session.handle(Input::CommitRejected, now),
            ServerMessage::Lobby { waiting } => {
                self.lobby = waiting;
                Ok(())
            }
            ServerMessage::Waiting { reasons } => {
                self.waiting = Some(reasons);
                Ok(())
            }
            ServerMessage::Alert(alert) => {
                self.alerts.push(alert);
                Ok(())
            }
            ServerMessage::Refused { reason } => {
                self.errors.push(reason);
                Ok(())
            }
            ServerMessage::Speaker { participant } => {
                self.speaker = Some(participant);
                Ok(())
            }
            _ => Ok(()),
        };
        if let Err(e) = result {
            tracing::debug!(error = %e, "server message not applied");
            self.errors.push(e.to_string());
        }
        self.collect();
    }

    /// Drains the session: MLS messages to send (a commit together with its Welcome),
    /// events into the participant's state.
    fn collect(&mut self) {
        let mut sends = Vec::new();
        let mut welcome = None;
        while let Some(output) = self.session.poll_output() {
            match output {
                Output::Send(bytes) => sends.push(bytes),
                Output::Welcome(bytes) => welcome = Some(bytes),
                Output::Event(event) => self.event(event),
                _ => {}
            }
        }
        for bytes in sends {
            let is_commit = matches!(inspect(&bytes), Ok(info) if info.kind == MessageKind::Commit);
            let welcome = if is_commit { welcome.take() } else { None };
            self.outgoing.push_back(ClientMessage::Mls {
                message: Bytes(bytes),
                welcome: welcome.map(Bytes),
            });
        }
    }

    fn event(&mut self, event: Event) {
        match event {
            Event::EpochChanged {
                epoch,
                security_code,
            } => self.codes.push((epoch, security_code)),
            Event::MemberAdded(member) => {
                self.members.insert(member.leaf, member.claims.device_id);
            }
            Event::MemberRemoved { leaf } => {
                self.members.remove(&leaf);
            }
            Event::KeyMaterial {
                epoch,
                sframe_epoch_secret,
                own_leaf,
            } => {
                self.keys = Some(KeyMaterial {
                    epoch,
                    secret: sframe_epoch_secret,
                    own_leaf,
                    members: self.members.keys().copied().collect(),
                });
            }
            Event::Application { sender_leaf, data } => {
                let from = self
                    .members
                    .get(&sender_leaf)
                    .copied()
                    .unwrap_or(DeviceId::from_bytes([0; 16]));
                self.chat.push(Chat {
                    from,
                    text: String::from_utf8_lossy(&data).into_owned(),
                });
            }
            Event::Refused { reason } => self.refusals.push(reason),
            _ => {}
        }
    }

    /// This participant's seat, once joined.
    pub fn id(&self) -> Option<ParticipantId> {
        self.me
    }

    /// Whether this participant is in the call: on the roster, so admitted (by the policy or
    /// a host), whether or not its Add has been committed yet. Media may connect from then on.
    pub fn in_call(&self) -> bool {
        self.me
            .is_some_and(|me| self.roster.iter().any(|e| e.participant == me))
    }

    /// Whether the server made this participant a host.
    pub fn is_host(&self) -> bool {
        self.host
    }

    /// The MLS epoch, once in the group.
    pub fn epoch(&self) -> Option<u64> {
        self.session.epoch()
    }

    /// The MLS group id, once in the group.
    pub fn group_id(&self) -> Option<Vec<u8>> {
        self.session.group_id()
    }

    /// The current security code, once in the group.
    pub fn security_code(&self) -> Option<String> {
        self.session.security_code()
    }

    /// Every (epoch, security code) this participant went through, in order.
    pub fn codes(&self) -> &[(u64, String)] {
        &self.codes
    }

    /// The roster as the server last sent it.
    pub fn roster(&self) -> &[RosterEntry] {
        &self.roster
    }

    /// Whether the call is locked.
    pub fn locked(&self) -> bool {
        self.locked
    }

    /// The lobby (hosts).
    pub fn lobby(&self) -> &[LobbyEntry] {
        &self.lobby
    }

    /// Alerts received (hosts).
    pub fn alerts(&self) -> &[Alert] {
        &self.alerts
    }

    /// Why this participant waits in the lobby, while it does (until it is in the group).
    pub fn waiting(&self) -> Option<&[String]> {
        self.waiting
            .as_deref()
            .filter(|_| self.session.epoch().is_none())
    }

    /// The MLS members by leaf, from their verified credentials.
    pub fn members(&self) -> &BTreeMap<u32, DeviceId> {
        &self.members
    }

    /// Chat received.
    pub fn chat(&self) -> &[Chat] {
        &self.chat
    }

    /// Adds this participant's MLS session refused (ghosts, bad credentials).
    pub fn refusals(&self) -> &[RefusalReason] {
        &self.refusals
    }

    /// Server refusals and messages that could not be applied.
    pub fn errors(&self) -> &[String] {
        &self.errors
    }

    /// The call's active speaker, once the server named one.
    pub fn active_speaker(&self) -> Option<ParticipantId> {
        self.speaker
    }

    /// The current epoch's media key material.
    pub fn key_material(&self) -> Option<&KeyMaterial> {
        self.keys.as_ref()
    }

    /// Differences between the roster and the MLS group. Participants still joining (on
    /// the roster, Welcome not yet processed by the group) are listed as `NotInGroup`
    /// until their Add is committed, so callers check this once the call is settled.
    pub fn mismatches(&self) -> Vec<Mismatch> {
        if self.session.epoch().is_none() {
            return Vec::new();
        }
        let on_roster: Vec<DeviceId> = self.roster.iter().map(|e| e.device_id).collect();
        let mut out: Vec<Mismatch> = self
            .members
            .values()
            .filter(|d| !on_roster.contains(d))
            .map(|d| Mismatch::HiddenMember(*d))
            .collect();
        out.extend(
            on_roster
                .iter()
                .filter(|d| !self.members.values().any(|m| m == *d))
                .map(|d| Mismatch::NotInGroup(*d)),
        );
        out
    }
}
