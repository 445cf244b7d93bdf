//! Hostile input through the real `conclave` binary: malformed frames on the call's
//! WebSocket (opened here by hand, so nothing in the native client smooths them over) must
//! close the connection with the close code and sentence docs/protocol.md gives, and garbage
//! datagrams on the SFU's UDP port must be dropped without an answer. Neither may disturb a
//! call in progress: afterwards participants still join it and media still flows.

mod common;

use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use common::Server;
use conclave_client::net::{Call, CallState, Client, Device, JoinAnswer, Organisation};
use conclave_client::Participant;
use conclave_protocol::{Bytes, ClientMessage, CloseCode, MAX_MESSAGE_LEN, PROTOCOL_VERSION};
use conclave_types::{MeetingId, Timestamp};
use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::json;
use tokio::net::{TcpStream, UdpSocket};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

const SETTLE: Duration = Duration::from_secs(30);

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

fn minutes_from_now(m: i64) -> String {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_millis();
    Timestamp::from_unix_millis(i64::try_from(ms).expect("fits") + m * 60_000).to_rfc3339()
}

struct Person {
    client: Client,
    device: Device,
    /// The device's private key seed, to build hellos by hand.
    seed: [u8; 32],
}

/// Creates `names` (the first an organiser), a meeting inviting everyone, signs everyone in
/// and registers a device each.
async fn setup(server: &Server, names: &[&str]) -> (MeetingId, Organisation, Vec<Person>) {
    let v4 = server.v4.clone();
    let mut admin = server.client();
    admin.login(&v4, "admin", &server.admin_password).await;
    let pem = std::fs::read(server.data_dir().join("tls/cert.pem")).expect("certificate");
    let mut people = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let role = if i == 0 { "organiser" } else { "member" };
        let a = admin
            .post(
                &format!("{v4}/api/users"),
                json!({"name": name, "display_name": name.to_uppercase(), "role": role}),
            )
            .await;
        assert_eq!(a.status, 201, "{:?}", a.json());
        let password = a.json()["generated_password"]
            .as_str()
            .expect("password")
            .to_string();
        let mut client = Client::new(&v4, Some(&pem)).expect("client");
        client.sign_in(name, &password).await.expect("sign in");
        let device = client.register_device("laptop").await.expect("device");
        // The device keeps its key to itself; its saved form is where a tool finds it.
        let file = server.dir.path().join(format!("{name}.device"));
        device.save(&file).expect("save device");
        let saved: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&file).expect("read device")).expect("JSON");
        let seed = STANDARD
            .decode(saved["seed"].as_str().expect("seed"))
            .expect("base64")
            .try_into()
            .expect("32 bytes");
        people.push(Person {
            client,
            device,
            seed,
        });
    }
    let (status, created) = people[0]
        .client
        .request(
            "POST",
            "/api/meetings",
            Some(json!({
                "title": "Hostile input",
                "agenda": "",
                "classification": "internal",
                "starts_at": minutes_from_now(-1),
                "ends_at": minutes_from_now(60),
                "invitees": names[1..],
            })),
        )
        .await
        .expect("create meeting");
    assert_eq!(status, 201, "{created:?}");
    let meeting: MeetingId = created["id"].as_str().expect("id").parse().expect("id");
    let organisation = people[0].client.organisation().await.expect("organisation");
    (meeting, organisation, people)
}

async fn ticket(person: &Person, meeting: &MeetingId) -> String {
    match person
        .client
        .join(meeting, &person.device)
        .await
        .expect("join")
    {
        JoinAnswer::Admitted { ticket } => ticket,
        other => panic!("not admitted: {other:?}"),
    }
}

async fn enter(person: &Person, meeting: &MeetingId, organisation: &Organisation) -> Call {
    let ticket = ticket(person, meeting).await;
    person
        .client
        .connect(meeting, &person.device, organisation, ticket)
        .await
        .expect("connect")
}

/// A `hello` as the native participant makes it: this ticket and a fresh, valid KeyPackage.
fn valid_hello(person: &Person, organisation: &Organisation, ticket: String) -> String {
    let participant = Participant::new(
        person.device.credential.clone(),
        person.seed,
        organisation.public_key,
        organisation.external_sender.clone(),
        conclave_client::net::now(),
    )
    .expect("participant");
    participant.hello(ticket).encode()
}

/// Opens the call's WebSocket, trusting only the server's certificate.
async fn open(server: &Server, meeting: &MeetingId) -> Socket {
    use rustls::pki_types::pem::PemObject as _;
    let pem = std::fs::read(server.data_dir().join("tls/cert.pem")).expect("certificate");
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(&pem) {
        roots.add(cert.expect("certificate")).expect("root");
    }
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("TLS versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    let url = format!(
        "{}/api/meetings/{meeting}/signal",
        server.v4.replacen("https://", "wss://", 1)
    );
    let (socket, _) = tokio_tungstenite::connect_async_tls_with_config(
        url,
        None,
        false,
        Some(tokio_tungstenite::Connector::Rustls(Arc::new(tls))),
    )
    .await
    .expect("the WebSocket opens");
    socket
}

/// Sends `messages` (a failed send is fine: the server may have closed already) and
/// returns the close code and reason the server ends with, skipping what it says before.
async fn sent_then_closed(mut socket: Socket, messages: Vec<Message>) -> (u16, String) {
    for message in messages {
        if socket.send(message).await.is_err() {
            break;
        }
    }
    let read = async {
        while let Some(frame) = socket.next().await {
            match frame {
                Ok(Message::Close(Some(frame))) => {
                    return (u16::from(frame.code), frame.reason.to_string())
                }
                Ok(Message::Close(None)) => return (1005, String::new()),
                Ok(_) => continue,
                Err(e) => return (1006, e.to_string()),
            }
        }
        (1006, "the stream ended without a close frame".to_string())
    };
    tokio::time::timeout(Duration::from_secs(15), read)
        .await
        .expect("the server closes the socket in time")
}

fn text(s: impl Into<String>) -> Message {
    Message::Text(s.into().into())
}

/// A hello whose ticket, KeyPackage and version the test picks.
fn hello(version: u32, ticket: &str, key_package: Vec<u8>) -> Message {
    text(
        ClientMessage::Hello {
            version,
            ticket: ticket.to_string(),
            key_package: Bytes(key_package),
            resume: None,
            received: 0,
        }
        .encode(),
    )
}

/// One message over the protocol's limit, whatever it is.
fn oversized() -> Message {
    let padding = "x".repeat(MAX_MESSAGE_LEN);
    text(format!(
        r#"{{"type":"ping","nonce":1,"received":0,"pad":"{padding}"}}"#
    ))
}

/// Whether `state` has opened at least `n` intact audio and video frames from every other
/// member of its group.
fn hears_everyone(state: &CallState, n: u64) -> bool {
    let own = state.participant.key_material().map(|k| k.own_leaf);
    let others: Vec<u32> = state
        .participant
        .members()
        .keys()
        .copied()
        .filter(|leaf| Some(*leaf) != own)
        .collect();
    !others.is_empty()
        && others.iter().all(|leaf| {
            state.received.audio_intact.get(leaf).copied().unwrap_or(0) >= n
                && state.received.video_intact.get(leaf).copied().unwrap_or(0) >= n
        })
}

fn video_intact(state: &CallState) -> u64 {
    state.received.video_intact.values().sum()
}

/// Garbage for the SFU's port: random bytes of many lengths, an empty datagram, 0xff * 1500,
/// well-formed STUN for nobody's username, STUN with a lying length, RTP and RTCP headers
/// with nothing valid behind them, and DTLS-looking records.
fn garbage_datagrams() -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = vec![Vec::new(), vec![0xff; 1500], vec![0; 1]];
    let mut x = 0x9e37_79b9u32;
    for len in [1usize, 2, 3, 12, 20, 21, 28, 64, 200, 1200, 1500] {
        out.push(
            (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    x.to_be_bytes()[0]
                })
                .collect(),
        );
    }
    let user = b"nobody:nothing!!";
    let mut stun = vec![0x00, 0x01, 0x00, 0x14, 0x21, 0x12, 0xa4, 0x42];
    stun.extend_from_slice(&[3; 12]);
    stun.extend_from_slice(&[0x00, 0x06, 0x00, 0x10]);
    stun.extend_from_slice(user);
    out.push(stun.clone());
    stun[3] = 0xf0; // body length past the end
    out.push(stun);
    let mut rtp = vec![
        0x80, 0x60, 0x12, 0x34, 0, 0, 0x10, 0, 0xde, 0xad, 0xbe, 0xef,
    ];
    rtp.extend(std::iter::repeat_n(0x55, 1000));
    out.push(rtp.clone());
    rtp[0] = 0x9f; // extension and fifteen CSRCs
    out.push(rtp);
    out.push(vec![0x80, 0xc8, 0x00, 0x06, 0xde, 0xad, 0xbe, 0xef]);
    out.push(vec![
        22, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 1, 1, 0, 0,
    ]);
    out.push(vec![23, 0xfe, 0xfd, 0, 1, 0, 0, 0, 0, 0, 4, 1, 2, 3, 4]);
    out
}

/// Sends every garbage datagram to the SFU from a fresh socket and checks nothing comes
/// back: the SFU answers nobody it has no participant for.
async fn throw_garbage_at(media: &str) {
    let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    for datagram in garbage_datagrams() {
        socket.send_to(&datagram, media).await.expect("send");
    }
    let mut buf = [0u8; 2048];
    let answer = tokio::time::timeout(Duration::from_millis(300), socket.recv_from(&mut buf)).await;
    assert!(answer.is_err(), "the SFU answered garbage: {answer:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_signalling_closes_with_the_documented_codes() {
    let server = Server::start();
    let (meeting, org, people) = setup(&server, &["olga", "ivan", "max"]).await;
    // Olga holds the call (the MLS group exists), so hellos start real membership rounds.
    let olga = enter(&people[0], &meeting, &org).await;
    assert!(
        olga.wait_for(SETTLE, |s| s.participant.epoch().is_some())
            .await
    );
    let ivan = &people[1];
    let hello_expected = (
        CloseCode::HelloExpected.code(),
        "the first message must be a hello".to_string(),
    );

    // Before the hello: anything else is refused with 4000.
    let first_messages = [
        (
            "a binary frame",
            Message::Binary(b"{\"type\":\"hello\"}".to_vec().into()),
        ),
        ("invalid JSON", text("{\"type\":\"hello\",")),
        ("an unknown type", text(r#"{"type":"dance","version":1}"#)),
        ("a hello missing its fields", text(r#"{"type":"hello"}"#)),
        ("a message over 1 MiB", oversized()),
    ];
    for (what, message) in first_messages {
        let socket = open(&server, &meeting).await;
        let closed = sent_then_closed(socket, vec![message]).await;
        assert_eq!(closed, hello_expected, "{what} first");
    }

    // A hello for another protocol version, then garbage tickets.
    let socket = open(&server, &meeting).await;
    let version = PROTOCOL_VERSION + 1;
    let closed = sent_then_closed(socket, vec![hello(version, "whatever", Vec::new())]).await;
    assert_eq!(
        closed,
        (
            CloseCode::UnsupportedVersion.code(),
            format!("this server speaks protocol version {PROTOCOL_VERSION}")
        )
    );
    let real = ticket(ivan, &meeting).await;
    // One character changed in the middle (the last one may carry only padding bits).
    let middle = real.len() / 2;
    let swapped = if &real[middle..=middle] == "A" {
        "B"
    } else {
        "A"
    };
    let forged = format!("{}{swapped}{}", &real[..middle], &real[middle + 1..]);
    for garbage in [
        "",
        "not a ticket",
        "AAAA",
        forged.as_str(),
        &"A".repeat(5000),
    ] {
        let socket = open(&server, &meeting).await;
        let closed =
            sent_then_closed(socket, vec![hello(PROTOCOL_VERSION, garbage, vec![1])]).await;
        assert_eq!(
            closed,
            (
                CloseCode::BadTicket.code(),
                "the ticket is not valid for this meeting".to_string()
            ),
            "ticket {:?}",
            &garbage[..garbage.len().min(20)]
        );
    }
    // The real ticket was not spent by its forgeries, but a garbage KeyPackage is refused
    // when the server proposes the Add.
    let socket = open(&server, &meeting).await;
    let closed = sent_then_closed(socket, vec![hello(PROTOCOL_VERSION, &real, vec![0; 64])]).await;
    assert_eq!(
        closed,
        (
            CloseCode::ProtocolViolation.code(),
            "your MLS key package was refused".to_string()
        )
    );

    // After a valid hello: every protocol violation closes with 4003.
    let malformed = "malformed message".to_string();
    let after_hello = [
        (
            "a binary frame",
            Message::Binary(vec![1, 2, 3].into()),
            "binary frames are not part of the protocol".to_string(),
        ),
        ("invalid JSON", text("{\"type\":"), malformed.clone()),
        (
            "an unknown type",
            text(r#"{"type":"dance"}"#),
            malformed.clone(),
        ),
        (
            "an unknown field",
            text(r#"{"type":"ping","nonce":1,"received":0,"extra":1}"#),
            malformed.clone(),
        ),
        (
            "an mls message in garbage base64",
            text(r#"{"type":"mls","message":"%%% not base64 %%%"}"#),
            malformed.clone(),
        ),
        (
            // Valid base64, but not MLS; and the sender is not in the group yet anyway.
            "an mls message of garbage bytes",
            text(
                ClientMessage::Mls {
                    message: Bytes(vec![0xde, 0xad, 0xbe, 0xef, 0, 1, 0, 1]),
                    welcome: None,
                }
                .encode(),
            ),
            "protocol violation".to_string(),
        ),
    ];
    for (what, message, reason) in after_hello {
        let ticket = ticket(ivan, &meeting).await;
        let socket = open(&server, &meeting).await;
        let closed =
            sent_then_closed(socket, vec![text(valid_hello(ivan, &org, ticket)), message]).await;
        assert_eq!(
            closed,
            (CloseCode::ProtocolViolation.code(), reason),
            "{what} after the hello"
        );
    }

    // The server took none of it amiss: Olga's connection is untouched, and the server
    // shuts down in order.
    assert!(olga.with(|s| s.closed.is_none()));
    let mut server = server;
    server.stop();
}

/// Waits until every call is in the group with `n` members, on the same epoch and code,
/// with a roster that matches the group.
async fn settled(calls: &[&Call], n: usize) {
    let deadline = tokio::time::Instant::now() + SETTLE;
    loop {
        let views: Vec<_> = calls
            .iter()
            .map(|c| {
                c.with(|s| {
                    (
                        s.participant.epoch(),
                        s.participant.security_code(),
                        s.participant.members().len(),
                        s.participant.roster().len(),
                        s.participant.mismatches().is_empty(),
                    )
                })
            })
            .collect();
        let agreed = views.iter().all(|v| {
            v.0.is_some() && v.2 == n && v.3 == n && v.4 && (v.0, &v.1) == (views[0].0, &views[0].1)
        });
        if agreed {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the call did not settle with {n} members: {views:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The same device joining again and again, each time losing its connection (here for a
/// protocol violation) while the server adds it to the MLS group: each new seat replaces the
/// old one (whose leaf is removed), so the group never holds the device twice and later
/// joiners still get in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seat_lost_during_its_add_does_not_stall_the_call() {
    let server = Server::start();
    let (meeting, org, people) = setup(&server, &["olga", "ivan", "max"]).await;
    let olga = enter(&people[0], &meeting, &org).await;
    settled(&[&olga], 1).await;

    let ivan = &people[1];
    for _ in 0..3 {
        let ticket = ticket(ivan, &meeting).await;
        let socket = open(&server, &meeting).await;
        let binary = Message::Binary(vec![1, 2, 3].into());
        let closed =
            sent_then_closed(socket, vec![text(valid_hello(ivan, &org, ticket)), binary]).await;
        assert_eq!(closed.0, CloseCode::ProtocolViolation.code());
    }

    let max = enter(&people[2], &meeting, &org).await;
    settled(&[&olga, &max], 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_datagrams_do_not_disturb_media() {
    let server = Server::start();
    assert!(
        !server.media.is_empty(),
        "the server printed its media address"
    );
    // Before any call exists.
    throw_garbage_at(&server.media).await;

    let (meeting, org, people) = setup(&server, &["olga", "ivan"]).await;
    let olga = enter(&people[0], &meeting, &org).await;
    let ivan = enter(&people[1], &meeting, &org).await;
    for call in [&olga, &ivan] {
        assert!(call.wait_for(SETTLE, |s| hears_everyone(s, 10)).await);
    }

    // In the middle of a call with media flowing, several rounds.
    let before = (olga.with(video_intact), ivan.with(video_intact));
    for _ in 0..5 {
        throw_garbage_at(&server.media).await;
    }
    for (call, before) in [(&olga, before.0), (&ivan, before.1)] {
        assert!(
            call.wait_for(SETTLE, |s| video_intact(s) > before + 30)
                .await,
            "video goes on"
        );
        call.with(|s| {
            assert_eq!(s.received.altered, 0);
            assert!(s.closed.is_none(), "{:?}", s.closed);
        });
    }
    olga.with(|s| {
        assert!(s
            .participant
            .roster()
            .iter()
            .all(|e| e.media == conclave_protocol::MediaPath::Udp));
    });
    let mut server = server;
    server.stop();
}

/// A frame over 1 MiB after the `hello` closes with 4003, as documented (before the `hello`
/// it closes with 4000).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_message_after_the_hello_closes_with_4003() {
    let server = Server::start();
    let (meeting, org, people) = setup(&server, &["olga", "ivan"]).await;
    let olga = enter(&people[0], &meeting, &org).await;
    assert!(
        olga.wait_for(SETTLE, |s| s.participant.epoch().is_some())
            .await
    );
    let ivan = &people[1];
    let ticket = ticket(ivan, &meeting).await;
    let socket = open(&server, &meeting).await;
    let closed = sent_then_closed(
        socket,
        vec![text(valid_hello(ivan, &org, ticket)), oversized()],
    )
    .await;
    assert_eq!(closed.0, CloseCode::ProtocolViolation.code(), "{closed:?}");
    assert!(closed.1.contains("over 1 MiB"), "{closed:?}");
}
