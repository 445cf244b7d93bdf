//! The SFU's driver: one UDP socket, one [`conclave_sfu::Sfu`] for every call, one task on a
//! thread of its own.
//!
//! Calls talk to it with [`MediaRequest`]s (a participant's SDP offer, a departure, a
//! key-frame request after an MLS epoch change) and hear back through their call task
//! ([`crate::call::Command::Media`]): SDP answers to relay to the participant (the SFU never
//! offers: participants offer their slots once), who speaks, and when a participant's media
//! connected or went silent. The SFU core is pure; this task owns the socket and the clock.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Instant;

use conclave_sfu::{CallId, Offer, Output, Sfu, SfuEvent};
use conclave_types::{MeetingId, ParticipantId};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use crate::api::AppState;

/// What a call asks of the SFU.
#[derive(Debug, PartialEq, Eq)]
pub enum MediaRequest {
    /// The participant's SDP offer (first or renegotiation), parsed by the call (parsing is
    /// most of what a join costs, and the SFU's thread forwards every call's media).
    Offer {
        /// Who.
        participant: ParticipantId,
        /// The offer.
        offer: Offer,
    },
    /// The participant left the call.
    Remove(ParticipantId),
    /// Ask every video sender of the call for a key frame (new MLS epoch: receivers need a
    /// key frame sealed under the new keys).
    Keyframes,
}

/// What the SFU tells a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaNews {
    /// The SFU's answer to the participant's offer.
    Answer {
        /// Who.
        participant: ParticipantId,
        /// The answer.
        sdp: String,
    },
    /// Media flows between the participant and the SFU.
    Connected(ParticipantId),
    /// The participant's media connection is gone.
    Disconnected(ParticipantId),
    /// The participant became the call's active speaker.
    Speaker(ParticipantId),
    /// The SFU refused the participant's SDP.
    Refused {
        /// Who.
        participant: ParticipantId,
        /// Why.
        reason: String,
    },
}

/// The sending half of the SFU task.
#[derive(Debug, Clone)]
pub struct Media {
    tx: mpsc::Sender<(MeetingId, MediaRequest)>,
    local: SocketAddr,
}

impl Media {
    /// Binds the SFU's UDP socket. The bound address (with the port chosen for port 0) is
    /// what participants are told to send media to, so it must not be unspecified.
    ///
    /// # Errors
    /// If the socket cannot be bound.
    pub async fn bind(listen: SocketAddr) -> std::io::Result<(Self, MediaTask)> {
        let socket = UdpSocket::bind(listen).await?;
        widen_buffers(&socket);
        let local = socket.local_addr()?;
        let (tx, rx) = mpsc::channel(4096);
        Ok((Self { tx, local }, MediaTask { socket, local, rx }))
    }

    /// The SFU's UDP address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Queues a request; dropped (and logged) if the SFU is overloaded.
    pub fn request(&self, meeting: MeetingId, request: MediaRequest) {
        if self.tx.try_send((meeting, request)).is_err() {
            tracing::warn!("SFU request queue full; request dropped");
        }
    }
}

/// The most datagrams taken from the socket before the SFU's outputs are sent.
const RECEIVE_BATCH: usize = 32;

/// The SFU task, to be run with [`MediaTask::run`].
#[derive(Debug)]
pub struct MediaTask {
    socket: UdpSocket,
    local: SocketAddr,
    rx: mpsc::Receiver<(MeetingId, MediaRequest)>,
}

/// Our ids and the SFU's small ones, both ways.
#[derive(Debug, Default)]
struct Ids {
    next: u64,
    calls: HashMap<MeetingId, CallId>,
    meetings: HashMap<CallId, MeetingId>,
    participants: HashMap<ParticipantId, conclave_sfu::ParticipantId>,
    ours: HashMap<conclave_sfu::ParticipantId, ParticipantId>,
}

impl Ids {
    fn call(&mut self, meeting: MeetingId) -> CallId {
        if let Some(call) = self.calls.get(&meeting) {
            return *call;
        }
        self.next += 1;
        let call = CallId(self.next);
        self.calls.insert(meeting, call);
        self.meetings.insert(call, meeting);
        call
    }

    fn participant(&mut self, participant: ParticipantId) -> conclave_sfu::ParticipantId {
        if let Some(p) = self.participants.get(&participant) {
            return *p;
        }
        self.next += 1;
        let p = conclave_sfu::ParticipantId(self.next);
        self.participants.insert(participant, p);
        self.ours.insert(p, participant);
        p
    }

    fn forget(&mut self, participant: &ParticipantId) {
        if let Some(p) = self.participants.remove(participant) {
            self.ours.remove(&p);
        }
    }
}

impl MediaTask {
    /// Runs the SFU on a thread of its own, with a single-threaded runtime, until the process
    /// ends. Its one task wakes for every datagram burst; on the server's shared runtime each
    /// wake could also wake a second worker thread to look for work to steal.
    ///
    /// # Errors
    /// If the socket cannot be moved or the thread not started.
    pub fn spawn(self, state: AppState) -> std::io::Result<std::thread::JoinHandle<()>> {
        let MediaTask { socket, local, rx } = self;
        let socket = socket.into_std()?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        std::thread::Builder::new()
            .name("conclave-sfu".into())
            .spawn(move || {
                runtime.block_on(async move {
                    match UdpSocket::from_std(socket) {
                        Ok(socket) => MediaTask { socket, local, rx }.run(state).await,
                        Err(e) => tracing::error!(error = %e, "the media socket cannot be used"),
                    }
                });
            })
    }

    /// Runs the SFU until the process ends.
    async fn run(self, state: AppState) {
        let MediaTask {
            socket,
            local,
            mut rx,
        } = self;
        let mut sfu = Sfu::new(local, Instant::now());
        let mut ids = Ids::default();
        let mut tap = match &state.config.media.tap {
            Some(path) => match std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
            {
                Ok(file) => {
                    sfu.set_tap(true);
                    Some(file)
                }
                Err(e) => {
                    tracing::error!(error = %e, path = %path.display(), "media tap not opened");
                    None
                }
            },
            None => None,
        };
        let mut buf = vec![0u8; 2048];
        let sleep = tokio::time::sleep_until(Instant::now().into());
        tokio::pin!(sleep);
        loop {
            let deadline = loop {
                match sfu.poll_output() {
                    Output::Transmit(t) => {
                        if let Err(e) = socket.send_to(&t.contents, t.destination).await {
                            tracing::debug!(error = %e, "media datagram not sent");
                        }
                    }
                    Output::Event(SfuEvent::Tapped {
                        call,
                        participant,
                        audio,
                        payload,
                    }) => {
                        record(tap.as_mut(), &ids, call, participant, audio, &payload);
                    }
                    Output::Event(event) => news(&state, &ids, event),
                    Output::Timeout(at) => break at,
                }
            };
            if sleep.deadline() != deadline.into() {
                sleep.as_mut().reset(deadline.into());
            }
            tokio::select! {
                received = socket.recv_from(&mut buf) => match received {
                    Ok((n, source)) => {
                        let now = Instant::now();
                        let bytes = buf.get(..n).unwrap_or_default();
                        // hostile or stray datagrams are counted by the SFU and dropped
                        let _ = sfu.handle_receive(now, source, local, bytes);
                        // Take what else is waiting before draining outputs: the receivers
                        // these datagrams are forwarded to are then polled once per batch.
                        for _ in 1..RECEIVE_BATCH {
                            let Ok((n, source)) = socket.try_recv_from(&mut buf) else {
                                break;
                            };
                            let bytes = buf.get(..n).unwrap_or_default();
                            let _ = sfu.handle_receive(now, source, local, bytes);
                        }
                    }
                    Err(e) => tracing::debug!(error = %e, "media socket receive failed"),
                },
                () = &mut sleep => sfu.handle_timeout(Instant::now()),
                request = rx.recv() => match request {
                    Some((meeting, request)) => apply(&state, &mut sfu, &mut ids, meeting, request),
                    None => break,
                },
            }
        }
    }
}

/// The receive and send buffers asked for on the SFU's socket.
const SOCKET_BUFFER: usize = 4 << 20;

/// Widens the SFU socket's buffers. With the kernel's defaults (208 KiB on Linux) a burst
/// (key frames fanned out to every receiver, receiver reports arriving while the SFU sends)
/// overflowed them in load tests at 50 participants, and datagrams were dropped. The kernel
/// caps what it grants at net.core.rmem_max / wmem_max: if that is less, say so, because the
/// administrator can raise it.
fn widen_buffers(socket: &UdpSocket) {
    let socket = socket2::SockRef::from(socket);
    let asked = socket
        .set_recv_buffer_size(SOCKET_BUFFER)
        .and_then(|()| socket.set_send_buffer_size(SOCKET_BUFFER));
    // Linux reports twice what it granted (the other half is its bookkeeping).
    match asked.and_then(|()| socket.recv_buffer_size()) {
        Ok(reported) if reported / 2 < SOCKET_BUFFER => tracing::warn!(
            granted = reported / 2,
            "the media socket's receive buffer is smaller than asked ({SOCKET_BUFFER} bytes): \
             media may be dropped under load; raise net.core.rmem_max and net.core.wmem_max"
        ),
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "the media socket's buffers could not be widened"),
    }
}

fn tell(state: &AppState, meeting: MeetingId, news: MediaNews) {
    state.calls.media_news(&meeting, news);
}

fn apply(
    state: &AppState,
    sfu: &mut Sfu,
    ids: &mut Ids,
    meeting: MeetingId,
    request: MediaRequest,
) {
    let now = Instant::now();
    match request {
        MediaRequest::Offer { participant, offer } => {
            let known = ids.participants.contains_key(&participant);
            let call = ids.call(meeting);
            let p = ids.participant(participant);
            let answer = if known {
                sfu.handle_offer(now, p, offer)
            } else {
                sfu.add_participant(now, call, p, offer)
            };
            match answer {
                Ok(sdp) => tell(state, meeting, MediaNews::Answer { participant, sdp }),
                Err(e) => {
                    if !known {
                        ids.forget(&participant);
                    }
                    tell(
                        state,
                        meeting,
                        MediaNews::Refused {
                            participant,
                            reason: e.to_string(),
                        },
                    );
                }
            }
        }
        MediaRequest::Remove(participant) => {
            if let Some(p) = ids.participants.get(&participant).copied() {
                let _ = sfu.remove_participant(p);
                ids.forget(&participant);
            }
        }
        MediaRequest::Keyframes => {
            if let Some(call) = ids.calls.get(&meeting).copied() {
                sfu.request_keyframes(call);
            }
        }
    }
}

/// Appends one tapped frame to the tap file (a line per frame: one `write`, so lines stay
/// whole). Blocking, but the tap is an audit tool, not a production path.
fn record(
    tap: Option<&mut std::fs::File>,
    ids: &Ids,
    call: CallId,
    participant: conclave_sfu::ParticipantId,
    audio: bool,
    payload: &[u8],
) {
    use base64::Engine as _;
    use std::io::Write as _;
    let Some(file) = tap else { return };
    let line = serde_json::json!({
        "meeting": ids.meetings.get(&call).map(ToString::to_string),
        "participant": ids.ours.get(&participant).map(ToString::to_string),
        "kind": if audio { "audio" } else { "video" },
        "payload": base64::engine::general_purpose::STANDARD.encode(payload),
    });
    if let Err(e) = file.write_all(format!("{line}\n").as_bytes()) {
        tracing::warn!(error = %e, "media tap write failed");
    }
}

fn news(state: &AppState, ids: &Ids, event: SfuEvent) {
    let find = |call: CallId, p: conclave_sfu::ParticipantId| {
        Some((*ids.meetings.get(&call)?, *ids.ours.get(&p)?))
    };
    match event {
        SfuEvent::Connected { call, participant } => {
            if let Some((meeting, participant)) = find(call, participant) {
                tell(state, meeting, MediaNews::Connected(participant));
            }
        }
        SfuEvent::Disconnected { call, participant } => {
            if let Some((meeting, participant)) = find(call, participant) {
                tell(state, meeting, MediaNews::Disconnected(participant));
            }
        }
        SfuEvent::ActiveSpeaker { call, participant } => {
            if let Some((meeting, participant)) = find(call, participant) {
                tell(state, meeting, MediaNews::Speaker(participant));
            }
        }
        _ => {}
    }
}
