//! Calls: the driver of each meeting's [`room::Room`] and the registry of running calls.
//!
//! One tokio task per running call owns its `Room` (the pure core) and the sending half of
//! every participant's connection; WebSocket handlers ([`crate::api::signal`]) feed it
//! [`Command`]s and it ticks the room once a second. Nothing else touches a room, so the core
//! needs no locks. A call's task ends when its last seat is freed.
//!
//! Admissions link the HTTP join decision to the WebSocket: when the policy admits someone,
//! `POST /api/meetings/{id}/join` records who they are and where they connect from under
//! the ticket's nonce ([`Calls::admit`]); the WebSocket's `hello` redeems it once
//! ([`Calls::redeem`]).

pub mod room;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::ws::Utf8Bytes;
use conclave_e2ee::{ExternalSender, ExternalSenderInfo};
use conclave_identity::OrganisationKey;
use conclave_protocol::{Alert, ClientMessage, CloseCode};
use conclave_types::{DeviceId, MeetingId, ParticipantId, Timestamp};
use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, oneshot};

use crate::api::{now, AppState};
use room::{Input, Output, Room, RoomConfig, Seat};

/// Messages queued for one connection before the participant counts as too slow and is
/// disconnected (it may resume).
pub const CONNECTION_QUEUE: usize = 512;

/// What the room task sends to a connection's writer.
#[derive(Debug)]
pub enum Outgoing {
    /// A message (already encoded JSON, possibly shared with other connections).
    Text(Utf8Bytes),
    /// Close with this code and sentence; nothing follows.
    Close(CloseCode, String),
}

/// A connection as the room task holds it.
#[derive(Debug)]
pub struct Connection {
    /// Distinguishes this connection from earlier ones of the same seat.
    pub serial: u64,
    /// Its writer.
    pub tx: mpsc::Sender<Outgoing>,
}

/// What handlers ask of a call's task.
#[derive(Debug)]
pub enum Command {
    /// A new seat.
    Enter {
        /// The seat id.
        participant: ParticipantId,
        /// Its resume token.
        resume_token: String,
        /// Who.
        seat: Seat,
        /// Their KeyPackage.
        key_package: Vec<u8>,
        /// `Some(reasons)`: they wait in the lobby.
        lobby: Option<Vec<String>>,
        /// Their connection.
        connection: Connection,
    },
    /// A seat's connection came back; answers the seat, or `None` for an unknown token.
    Resume {
        /// The token presented.
        token: String,
        /// How many messages the client received on this seat.
        received: u64,
        /// The new connection.
        connection: Connection,
        /// The answer.
        reply: oneshot::Sender<Option<ParticipantId>>,
    },
    /// A message on a connection.
    Message(ParticipantId, ClientMessage),
    /// A connection ended.
    Dropped(ParticipantId, u64),
    /// A device was revoked.
    DeviceRevoked(DeviceId),
    /// Tell the hosts.
    Alert(Alert),
    /// News from the SFU.
    Media(crate::media::MediaNews),
    /// The server is stopping: close every connection with 1001 and end the call; answers
    /// once every writer has sent its close frame (or given up).
    Shutdown(oneshot::Sender<()>),
}

/// A policy admission waiting for its WebSocket.
#[derive(Clone, Debug)]
pub struct Admission {
    /// Who, as decided.
    pub seat: Seat,
    /// The address the join request came from; the WebSocket must come from the same one.
    pub client: IpAddr,
    /// When the ticket expires (after which the admission is dropped).
    pub expires_at: Timestamp,
    /// `Some(reasons)` if the policy sent them to the lobby.
    pub lobby: Option<Vec<String>>,
}

/// Every running call of this server.
#[derive(Debug)]
pub struct Calls {
    server: Arc<ExternalSender>,
    config: RoomConfig,
    rooms: Mutex<HashMap<MeetingId, mpsc::Sender<Command>>>,
    admissions: Mutex<HashMap<[u8; 16], Admission>>,
    serial: std::sync::atomic::AtomicU64,
}

/// The identity the server's MLS external-sender credential carries.
pub const EXTERNAL_SENDER_IDENTITY: &[u8] = b"conclave-server";

impl Calls {
    /// The registry; the server's MLS external-sender key is derived from the organisation
    /// key (domain-separated), so every node of the organisation has the same one.
    pub fn new(org: &OrganisationKey, config: RoomConfig) -> Self {
        let mut hash = Sha256::new();
        hash.update(b"conclave-mls-external-sender-v1");
        hash.update(org.signing_key().to_bytes());
        let seed: [u8; 32] = hash.finalize().into();
        Self {
            server: Arc::new(ExternalSender::from_seed(
                &seed,
                EXTERNAL_SENDER_IDENTITY.to_vec(),
            )),
            config,
            rooms: Mutex::new(HashMap::new()),
            admissions: Mutex::new(HashMap::new()),
            serial: std::sync::atomic::AtomicU64::new(1),
        }
    }

    /// The server's external-sender key and identity, which clients put into the groups
    /// they create (`GET /api/organisation` publishes it).
    pub fn external_sender(&self) -> ExternalSenderInfo {
        self.server.info()
    }

    /// A fresh connection serial.
    pub fn next_serial(&self) -> u64 {
        self.serial
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    }

    /// Records an admission under its ticket's nonce.
    pub fn admit(&self, nonce: [u8; 16], admission: Admission) {
        let mut admissions = self.admissions.lock().unwrap_or_else(|p| p.into_inner());
        let t = now();
        admissions.retain(|_, a| a.expires_at > t);
        admissions.insert(nonce, admission);
    }

    /// Takes the admission of a ticket (once).
    pub fn redeem(&self, nonce: &[u8; 16], now: Timestamp) -> Option<Admission> {
        let mut admissions = self.admissions.lock().unwrap_or_else(|p| p.into_inner());
        admissions.remove(nonce).filter(|a| a.expires_at > now)
    }

    /// The running call of `meeting`, started if needed.
    pub fn room(
        &self,
        state: &AppState,
        meeting: MeetingId,
        locked: bool,
    ) -> mpsc::Sender<Command> {
        let mut rooms = self.rooms.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(tx) = rooms.get(&meeting).filter(|tx| !tx.is_closed()) {
            return tx.clone();
        }
        let (tx, rx) = mpsc::channel(1024);
        rooms.insert(meeting, tx.clone());
        let room = Room::new(self.config, Arc::clone(&self.server), locked);
        tokio::spawn(run(state.clone(), meeting, room, rx));
        tx
    }

    /// The running call of `meeting`, if any.
    pub fn existing(&self, meeting: &MeetingId) -> Option<mpsc::Sender<Command>> {
        let rooms = self.rooms.lock().unwrap_or_else(|p| p.into_inner());
        rooms.get(meeting).filter(|tx| !tx.is_closed()).cloned()
    }

    /// Tells every running call that a device was revoked.
    pub fn device_revoked(&self, device: DeviceId) {
        let rooms: Vec<_> = {
            let rooms = self.rooms.lock().unwrap_or_else(|p| p.into_inner());
            rooms.values().cloned().collect()
        };
        for tx in rooms {
            let _ = tx.try_send(Command::DeviceRevoked(device));
        }
    }

    /// Passes SFU news to `meeting`'s call, if one is running.
    pub fn media_news(&self, meeting: &MeetingId, news: crate::media::MediaNews) {
        if let Some(tx) = self.existing(meeting) {
            let _ = tx.try_send(Command::Media(news));
        }
    }

    /// Alerts the hosts of `meeting`'s call, if one is running.
    pub fn alert(&self, meeting: &MeetingId, alert: Alert) {
        if let Some(tx) = self.existing(meeting) {
            let _ = tx.try_send(Command::Alert(alert));
        }
    }

    /// Closes every connection of every call with 1001 ("going away") so that clients
    /// reconnect, and waits (at most `limit`) until the close frames are out.
    pub async fn shutdown(&self, limit: Duration) {
        let rooms: Vec<_> = {
            let rooms = self.rooms.lock().unwrap_or_else(|p| p.into_inner());
            rooms.values().cloned().collect()
        };
        let mut done = Vec::new();
        for tx in rooms {
            let (reply, answer) = oneshot::channel();
            if tx.send(Command::Shutdown(reply)).await.is_ok() {
                done.push(answer);
            }
        }
        let _ = tokio::time::timeout(limit, futures_util::future::join_all(done)).await;
    }

    fn finished(&self, meeting: &MeetingId) {
        let mut rooms = self.rooms.lock().unwrap_or_else(|p| p.into_inner());
        rooms.remove(meeting);
    }
}

/// The task of one call.
async fn run(state: AppState, meeting: MeetingId, mut room: Room, mut rx: mpsc::Receiver<Command>) {
    let mut connections: HashMap<ParticipantId, Connection> = HashMap::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let command = tokio::select! {
            command = rx.recv() => command,
            _ = tick.tick() => {
                room.handle(Input::Tick, now());
                drain(&state, meeting, &mut room, &mut connections, None).await;
                if room.is_empty() { break }
                continue;
            }
        };
        let Some(command) = command else { break };
        let mut resume_reply = None;
        match command {
            Command::Enter {
                participant,
                resume_token,
                seat,
                key_package,
                lobby,
                connection,
            } => {
                connections.insert(participant, connection);
                room.handle(
                    Input::Enter {
                        participant,
                        resume_token,
                        seat,
                        key_package,
                        lobby,
                    },
                    now(),
                );
            }
            Command::Resume {
                token,
                received,
                connection,
                reply,
            } => {
                resume_reply = Some((connection, reply));
                room.handle(Input::Resume { token, received }, now());
            }
            Command::Message(from, message) => room.handle(Input::Message(from, message), now()),
            Command::Dropped(id, serial) => {
                if connections.get(&id).is_some_and(|c| c.serial == serial) {
                    connections.remove(&id);
                    room.handle(Input::Dropped(id), now());
                }
            }
            Command::DeviceRevoked(device) => room.handle(Input::DeviceRevoked(device), now()),
            Command::Alert(alert) => room.handle(Input::Alert(alert), now()),
            Command::Media(news) => room.handle(Input::Media(news), now()),
            Command::Shutdown(reply) => {
                let closing: Vec<_> = connections
                    .drain()
                    .map(|(_, c)| {
                        let _ = c.tx.try_send(Outgoing::Close(
                            CloseCode::GoingAway,
                            "the server is restarting; reconnect".into(),
                        ));
                        c.tx
                    })
                    .collect();
                // each writer drops its receiver once its close frame is sent
                tokio::spawn(async move {
                    for tx in closing {
                        tx.closed().await;
                    }
                    let _ = reply.send(());
                });
                break;
            }
        }
        drain(&state, meeting, &mut room, &mut connections, resume_reply).await;
        if room.is_empty() {
            break;
        }
    }
    state.calls.finished(&meeting);
    tracing::info!(%meeting, "call ended");
}

/// Carries out the room's outputs.
async fn drain(
    state: &AppState,
    meeting: MeetingId,
    room: &mut Room,
    connections: &mut HashMap<ParticipantId, Connection>,
    mut resume: Option<(Connection, oneshot::Sender<Option<ParticipantId>>)>,
) {
    loop {
        let mut slow = Vec::new();
        while let Some(output) = room.poll_output() {
            match output {
                Output::Send(to, text) => {
                    if let Some(connection) = connections.get(&to) {
                        if connection.tx.try_send(Outgoing::Text(text)).is_err() {
                            slow.push((to, connection.serial));
                        }
                    }
                }
                Output::Close(to, code, reason) => {
                    if let Some(connection) = connections.remove(&to) {
                        let _ = connection.tx.try_send(Outgoing::Close(code, reason));
                    }
                }
                Output::Resumed(id) => {
                    if let Some((connection, reply)) = resume.take() {
                        connections.insert(id, connection);
                        let _ = reply.send(Some(id));
                    }
                }
                Output::Audit {
                    actor,
                    action,
                    outcome,
                    details,
                } => {
                    let written = state
                        .audit
                        .note(
                            now(),
                            actor,
                            action,
                            format!("meeting:{meeting}"),
                            outcome,
                            details,
                        )
                        .await;
                    if let Err(e) = written {
                        tracing::error!(error = %e, "audit entry of a call not written");
                    }
                }
                Output::Media(request) => {
                    if let Some(media) = state.media.get() {
                        media.request(meeting, request);
                    }
                }
                Output::SetLocked(locked) => {
                    if let Err(e) = state.store.set_locked(&meeting, locked, now()).await {
                        tracing::error!(error = %e, "lock state not saved");
                    }
                }
            }
        }
        if slow.is_empty() {
            break;
        }
        // A participant whose queue is full is too slow to follow the call: it loses its seat
        // (what it missed cannot be replayed) and may join again.
        for (id, serial) in slow {
            if connections.get(&id).is_some_and(|c| c.serial == serial) {
                tracing::info!(participant = %id, "connection too slow, seat freed");
                room.handle(Input::TooSlow(id), now());
            }
        }
    }
    state.presence.set(meeting, room.in_call());
    if let Some((_, reply)) = resume {
        let _ = reply.send(None);
    }
}
