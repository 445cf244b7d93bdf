//! `GET /api/meetings/{id}/signal`: the call's WebSocket (protocol: `conclave-protocol`,
//! prose in docs/protocol.md).
//!
//! The socket opens for anyone, but the first message must be a `hello` with a join ticket
//! for this meeting that the policy issued moments ago (or the resume token of a held seat),
//! from the same client address as the join request; anything else closes it with a code and
//! a sentence. After that every text frame is decoded here and handed to the call's task;
//! this handler keeps no call state of its own.

use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::response::Response;
use conclave_identity::JoinTicket;
use conclave_protocol::{ClientMessage, CloseCode, DecodeError, MAX_MESSAGE_LEN, PROTOCOL_VERSION};
use conclave_types::{MeetingId, ParticipantId};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::{mpsc, oneshot};

use super::{now, random_id_bytes, random_token, AppState, ClientAddr};
use crate::call::{Command, Connection, Outgoing, CONNECTION_QUEUE};

/// How long a new socket may take to say `hello`.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

/// Messages a participant may send per second on average, and in a burst. Generous for
/// chat and heartbeats; MLS handshakes are a few per membership change.
const RATE_PER_SECOND: f64 = 50.0;
const RATE_BURST: f64 = 200.0;

/// The largest frame the WebSocket layer reads: a little over the protocol's limit, so that a
/// message just over the limit is read whole and refused by the decoder with a close frame the
/// peer gets to read. A frame refused unread leaves its bytes in the socket, and closing a
/// socket with unread bytes resets the connection; a peer that finishes writing before it reads
/// (tungstenite) then loses the close frame with its reason. Larger frames still take that path.
const READ_LIMIT: usize = MAX_MESSAGE_LEN + 64 * 1024;

/// How much the WebSocket layer reads from the connection at a time. tungstenite's default
/// allocates 128 KiB for every connection up front, for messages that are mostly a few hundred
/// bytes; a larger message grows the buffer while it is read. With 100 participants in a call
/// this took the server's memory per participant from 0.93 to 0.73 MiB before any media.
const READ_CHUNK: usize = 8 * 1024;

/// Upgrades to the call's WebSocket.
pub(super) async fn signal(
    State(state): State<AppState>,
    client: ClientAddr,
    Path(id): Path<String>,
    upgrade: WebSocketUpgrade,
) -> Response {
    upgrade
        .max_message_size(READ_LIMIT)
        .max_frame_size(READ_LIMIT)
        .read_buffer_size(READ_CHUNK)
        // each message is written out as it is sent, not gathered up to 128 KiB first
        .write_buffer_size(0)
        .on_upgrade(move |socket| connection(state, client, id, socket))
}

async fn close(mut socket: WebSocket, code: CloseCode, reason: &str) {
    let frame = CloseFrame {
        code: code.code(),
        reason: Utf8Bytes::from(reason),
    };
    let _ = socket.send(Message::Close(Some(frame))).await;
}

async fn connection(state: AppState, client: ClientAddr, id: String, mut socket: WebSocket) {
    let hello = match tokio::time::timeout(HELLO_TIMEOUT, socket.recv()).await {
        Ok(Some(Ok(Message::Text(text)))) => ClientMessage::decode(&text).ok(),
        _ => None,
    };
    let Some(ClientMessage::Hello {
        version,
        ticket,
        key_package,
        resume,
        received,
    }) = hello
    else {
        return close(
            socket,
            CloseCode::HelloExpected,
            "the first message must be a hello",
        )
        .await;
    };
    if version != PROTOCOL_VERSION {
        return close(
            socket,
            CloseCode::UnsupportedVersion,
            &format!("this server speaks protocol version {PROTOCOL_VERSION}"),
        )
        .await;
    }
    let Ok(meeting) = id.parse::<MeetingId>() else {
        return close(
            socket,
            CloseCode::BadTicket,
            "the ticket is not valid for this meeting",
        )
        .await;
    };
    let serial = state.calls.next_serial();
    let (tx, rx) = mpsc::channel(CONNECTION_QUEUE);
    let own = tx.clone();
    let connection = Connection { serial, tx };

    let (room, participant) = if let Some(token) = resume {
        let Some(room) = state.calls.existing(&meeting) else {
            return close(
                socket,
                CloseCode::BadTicket,
                "this seat is gone; join again",
            )
            .await;
        };
        let (reply, answer) = oneshot::channel();
        let asked = room
            .send(Command::Resume {
                token,
                received,
                connection,
                reply,
            })
            .await;
        let Some(participant) = asked.ok().and(answer.await.ok().flatten()) else {
            return close(
                socket,
                CloseCode::BadTicket,
                "this seat is gone; join again",
            )
            .await;
        };
        (room, participant)
    } else {
        let t = now();
        let claims = JoinTicket::decode(&ticket)
            .ok()
            .filter(|ticket| ticket.verify(&state.org.public(), t).is_ok())
            .map(|ticket| ticket.claims().clone())
            .filter(|claims| claims.meeting_id == meeting);
        let Some(claims) = claims else {
            return close(
                socket,
                CloseCode::BadTicket,
                "the ticket is not valid for this meeting",
            )
            .await;
        };
        let Some(admission) = state.calls.redeem(&claims.nonce, t) else {
            return close(
                socket,
                CloseCode::BadTicket,
                "the ticket was already used or expired",
            )
            .await;
        };
        if admission.client != client.0 {
            return close(
                socket,
                CloseCode::NetworkChanged,
                "you asked to join from another network; ask again from this one",
            )
            .await;
        }
        let locked = state
            .store
            .meeting_for(&meeting.to_string(), None)
            .await
            .ok()
            .flatten()
            .is_some_and(|(m, _)| m.locked);
        let room = state.calls.room(&state, meeting, locked);
        let participant = ParticipantId::from_bytes(random_id_bytes());
        let entered = room
            .send(Command::Enter {
                participant,
                resume_token: random_token::<32>(),
                seat: admission.seat,
                key_package: key_package.0,
                lobby: admission.lobby,
                connection,
            })
            .await;
        if entered.is_err() {
            return close(
                socket,
                CloseCode::GoingAway,
                "the call is restarting; join again",
            )
            .await;
        }
        (room, participant)
    };
    pump(socket, room, participant, serial, own, rx).await;
}

/// Moves frames between the socket and the call until either side ends.
async fn pump(
    socket: WebSocket,
    room: mpsc::Sender<Command>,
    participant: ParticipantId,
    serial: u64,
    own: mpsc::Sender<Outgoing>,
    mut outgoing: mpsc::Receiver<Outgoing>,
) {
    let (mut sink, mut stream) = socket.split();
    let mut writer = tokio::spawn(async move {
        while let Some(out) = outgoing.recv().await {
            match out {
                Outgoing::Text(text) => {
                    if sink.send(Message::Text(text)).await.is_err() {
                        break;
                    }
                }
                Outgoing::Close(code, reason) => {
                    let frame = CloseFrame {
                        code: code.code(),
                        reason: Utf8Bytes::from(reason),
                    };
                    let _ = sink.send(Message::Close(Some(frame))).await;
                    break;
                }
            }
        }
        let _ = sink.close().await;
    });

    let mut writer_done = false;
    let mut allowance = RATE_BURST;
    let mut last = tokio::time::Instant::now();
    let refusal = loop {
        let frame = tokio::select! {
            frame = stream.next() => frame,
            // the call closed this connection (or the writer failed)
            _ = &mut writer => {
                writer_done = true;
                break None;
            }
        };
        let text = match frame {
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            Some(Ok(Message::Binary(_))) => {
                break Some((
                    CloseCode::ProtocolViolation,
                    "binary frames are not part of the protocol",
                ))
            }
            Some(Ok(Message::Close(_))) | None => break None,
            // a frame over the limit, or one the WebSocket layer cannot parse; if the
            // connection itself failed, the close frame just goes nowhere
            Some(Err(e)) => {
                tracing::info!(%participant, error = %e, "unreadable WebSocket frame");
                break Some((
                    CloseCode::ProtocolViolation,
                    "unreadable frame, or a message over 1 MiB",
                ));
            }
        };
        let elapsed = last.elapsed().as_secs_f64();
        last = tokio::time::Instant::now();
        allowance = (allowance + elapsed * RATE_PER_SECOND).min(RATE_BURST) - 1.0;
        if allowance < 0.0 {
            break Some((CloseCode::RateLimited, "too many messages"));
        }
        match ClientMessage::decode(&text) {
            Ok(message) => {
                if room
                    .send(Command::Message(participant, message))
                    .await
                    .is_err()
                {
                    break None;
                }
            }
            Err(DecodeError::TooLarge(_)) => {
                break Some((CloseCode::ProtocolViolation, "a message over 1 MiB"));
            }
            Err(e) => {
                tracing::info!(%participant, error = %e, "malformed signalling message");
                break Some((CloseCode::ProtocolViolation, "malformed message"));
            }
        }
    };
    let _ = room.send(Command::Dropped(participant, serial)).await;
    if !writer_done {
        if let Some((code, reason)) = refusal {
            tracing::info!(%participant, code = code.code(), reason, "connection closed by the server");
            let _ = own.try_send(Outgoing::Close(code, reason.into()));
        }
        drop(own);
        // let the writer flush the close frame, then give up on a peer that does not read
        if tokio::time::timeout(Duration::from_secs(2), &mut writer)
            .await
            .is_err()
        {
            writer.abort();
        }
    }
    // Closing a TCP socket with unread bytes in it (a peer still sending, the rest of an
    // oversized frame) resets the connection, and a reset can destroy our close frame before
    // the peer reads it. So the socket stays open until the peer answers the close, or a
    // second has passed.
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        loop {
            match stream.next().await {
                Some(Ok(Message::Close(_))) | None => return,
                Some(Ok(_)) => {}
                // the stream is unusable; only time helps
                Some(Err(_)) => std::future::pending::<()>().await,
            }
        }
    })
    .await;
}
