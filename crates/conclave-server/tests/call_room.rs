//! Whole calls in memory: the server's call core (`Room`) with real MLS participants
//! (`conclave_client::Participant`), no sockets. Every participant must end on the same
//! epoch and security code, the code must change on every join and leave, and the roster
//! must match the MLS group.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use conclave_client::Participant as Member;
use conclave_client::{Mismatch, Participant};
use conclave_e2ee::{ExternalSender, GroupRef};
use conclave_identity::{CredentialClaims, DeviceKey, OrganisationKey};
use conclave_protocol::{Bytes, ClientMessage, CloseCode, Network, RosterEntry, ServerMessage};
use conclave_server::call::room::{Input, Output, Room, RoomConfig, Seat};
use conclave_server::media::{MediaNews, MediaRequest};
use conclave_types::{DeviceId, DeviceTrust, ParticipantId, Timestamp, UserId};

const NOW: Timestamp = Timestamp::from_unix_millis(1_800_000_000_000);

fn org() -> OrganisationKey {
    OrganisationKey::from_seed(&[3; 32])
}

fn server() -> ExternalSender {
    ExternalSender::from_seed(&[4; 32], b"conclave-server".to_vec())
}

struct Seated {
    id: ParticipantId,
    participant: Participant,
    closed: Option<CloseCode>,
}

struct Call {
    room: Room,
    people: Vec<Seated>,
    now: Timestamp,
    /// Whose media offers the room passed to the SFU.
    offers: Vec<ParticipantId>,
}

fn seat(n: u8, host: bool) -> Seat {
    Seat {
        user_id: UserId::from_bytes([n; 16]),
        user_name: format!("user{n}"),
        display_name: format!("User {n}"),
        device_id: DeviceId::from_bytes([n; 16]),
        trust: DeviceTrust::Managed,
        network: Network {
            trusted: true,
            name: Some("office".into()),
            address: Some("127.0.0.1".into()),
        },
        host,
    }
}

impl Call {
    fn new() -> Self {
        Self {
            room: Room::new(RoomConfig::default(), Arc::new(server()), false),
            people: Vec::new(),
            now: NOW,
            offers: Vec::new(),
        }
    }

    /// Seats participant `n` and runs the call until it is quiet.
    fn enter(&mut self, n: u8, host: bool) -> ParticipantId {
        self.enter_as(n, host, None)
    }

    /// Seats participant `n`, in the lobby if `lobby` gives reasons, and runs the call until
    /// it is quiet.
    fn enter_as(&mut self, n: u8, host: bool, lobby: Option<Vec<String>>) -> ParticipantId {
        let id = self.seat_only(n, host, lobby);
        self.settle();
        id
    }

    /// Seats participant `n` and stops there: nothing moves yet.
    fn seat_only(&mut self, n: u8, host: bool, lobby: Option<Vec<String>>) -> ParticipantId {
        let device_seed = [n.wrapping_add(100); 32];
        let credential = org().issue_credential(CredentialClaims {
            organisation: "Example".into(),
            user_id: UserId::from_bytes([n; 16]),
            user_name: format!("user{n}"),
            display_name: format!("User {n}"),
            device_id: DeviceId::from_bytes([n; 16]),
            device_key: DeviceKey::from_seed(&device_seed).public(),
            trust: DeviceTrust::Managed,
            issued_at: Timestamp::from_unix_millis(0),
            expires_at: Timestamp::from_unix_millis(4_000_000_000_000),
        });
        let participant = Participant::new(
            credential,
            device_seed,
            org().public(),
            server().info(),
            self.now,
        )
        .unwrap();
        let ClientMessage::Hello { key_package, .. } = participant.hello("ticket".into()) else {
            unreachable!()
        };
        let id = ParticipantId::from_bytes([n; 16]);
        self.people.push(Seated {
            id,
            participant,
            closed: None,
        });
        self.room.handle(
            Input::Enter {
                participant: id,
                resume_token: format!("resume-{n}"),
                seat: seat(n, host),
                key_package: key_package.0,
                lobby,
            },
            self.now,
        );
        id
    }

    /// Hands the room a message from `from`; nothing moves until the next `settle`.
    fn say(&mut self, from: ParticipantId, message: ClientMessage) {
        self.room.handle(Input::Message(from, message), self.now);
    }

    fn person(&mut self, id: ParticipantId) -> &mut Seated {
        self.people.iter_mut().find(|p| p.id == id).unwrap()
    }

    /// Moves messages both ways until nothing moves.
    fn settle(&mut self) {
        for _ in 0..10_000 {
            let mut moved = false;
            while let Some(output) = self.room.poll_output() {
                moved = true;
                match output {
                    Output::Send(to, message) => {
                        let now = self.now;
                        let person = self.person(to);
                        assert!(person.closed.is_none(), "message after close");
                        let message = ServerMessage::decode(&message)
                            .expect("the room encodes valid messages");
                        person.participant.handle(message, now);
                    }
                    Output::Close(to, code, _) => self.person(to).closed = Some(code),
                    Output::Media(MediaRequest::Offer { participant, .. }) => {
                        self.offers.push(participant);
                    }
                    _ => {}
                }
            }
            let mut sent = Vec::new();
            for person in &mut self.people {
                if person.closed.is_some() {
                    continue;
                }
                while let Some(message) = person.participant.poll_transmit() {
                    sent.push((person.id, message));
                }
            }
            for (from, message) in sent {
                moved = true;
                self.room.handle(Input::Message(from, message), self.now);
            }
            if !moved {
                return;
            }
        }
        panic!("the call does not settle");
    }

    fn present(&self) -> impl Iterator<Item = &Seated> {
        self.people.iter().filter(|p| p.closed.is_none())
    }

    /// Everyone present and in the group agrees on epoch and code, and their roster lists
    /// exactly the group (people in the lobby are on neither); returns the code.
    fn agreed_code(&self) -> String {
        let in_group: Vec<&Seated> = self
            .present()
            .filter(|p| p.participant.epoch().is_some())
            .collect();
        let first = in_group.first().expect("someone is in the group");
        let code = first.participant.security_code().expect("in the group");
        for p in &in_group {
            assert_eq!(p.participant.epoch(), first.participant.epoch());
            assert_eq!(
                p.participant.security_code().as_deref(),
                Some(code.as_str())
            );
            assert_eq!(p.participant.mismatches(), Vec::<Mismatch>::new());
            assert_eq!(p.participant.roster().len(), in_group.len());
            // those who followed updates see what the last to enter was sent whole
            assert_eq!(
                comparable(p.participant.roster()),
                comparable(first.participant.roster())
            );
            assert!(
                p.participant.refusals().is_empty(),
                "{:?}",
                p.participant.refusals()
            );
        }
        code
    }
}

/// A roster sorted by seat, without the addresses only hosts see.
fn comparable(roster: &[RosterEntry]) -> Vec<RosterEntry> {
    let mut entries: Vec<RosterEntry> = roster.iter().map(RosterEntry::without_address).collect();
    entries.sort_by_key(|e| e.participant);
    entries
}

#[test]
fn five_participants_join_and_leave_with_one_code() {
    let mut call = Call::new();
    call.enter(1, true);
    let mut codes = vec![call.agreed_code()];
    for n in 2..=5 {
        call.enter(n, false);
        let code = call.agreed_code();
        assert!(!codes.contains(&code), "the code changes on every join");
        codes.push(code);
    }
    assert_eq!(call.present().count(), 5);
    assert_eq!(
        call.present().next().unwrap().participant.members().len(),
        5
    );

    let third = ParticipantId::from_bytes([3; 16]);
    call.room
        .handle(Input::Message(third, ClientMessage::Leave {}), call.now);
    call.settle();
    assert_eq!(call.person(third).closed, Some(CloseCode::Left));
    let code = call.agreed_code();
    assert!(!codes.contains(&code), "the code changes on leave");
    assert_eq!(
        call.present().next().unwrap().participant.members().len(),
        4
    );
}

#[test]
fn chat_reaches_every_other_member() {
    let mut call = Call::new();
    let alice = call.enter(1, true);
    call.enter(2, false);
    call.enter(3, false);
    let now = call.now;
    call.person(alice)
        .participant
        .send_chat("hello from 1", now);
    call.settle();
    for p in call.present().filter(|p| p.id != alice) {
        let chat = p.participant.chat();
        assert_eq!(chat.len(), 1);
        assert_eq!(chat[0].text, "hello from 1");
        assert_eq!(chat[0].from, DeviceId::from_bytes([1; 16]));
    }
}

#[test]
fn host_removes_a_participant_and_keys_rotate() {
    let mut call = Call::new();
    let host = call.enter(1, true);
    call.enter(2, false);
    let bob = call.enter(3, false);
    let before = call.agreed_code();
    call.room.handle(
        Input::Message(host, ClientMessage::Remove { participant: bob }),
        call.now,
    );
    call.settle();
    assert_eq!(call.person(bob).closed, Some(CloseCode::Removed));
    assert_ne!(call.agreed_code(), before);

    // a non-host may not
    let carol = ParticipantId::from_bytes([2; 16]);
    call.room.handle(
        Input::Message(carol, ClientMessage::Remove { participant: host }),
        call.now,
    );
    call.settle();
    assert!(call.person(host).closed.is_none());
    assert!(call
        .person(carol)
        .participant
        .errors()
        .iter()
        .any(|e| e.contains("only hosts")));
}

#[test]
fn a_participant_whose_media_went_silent_is_removed() {
    let mut call = Call::new();
    call.enter(1, true);
    call.enter(2, false);
    let mute = call.enter(3, false);
    for p in [1, 2, 3] {
        let id = ParticipantId::from_bytes([p; 16]);
        call.room
            .handle(Input::Media(MediaNews::Connected(id)), call.now);
    }
    call.settle();
    let before = call.agreed_code();
    // heartbeats still flow on the WebSocket; only the SFU noticed the silence
    call.room
        .handle(Input::Media(MediaNews::Disconnected(mute)), call.now);
    call.settle();
    assert_eq!(call.person(mute).closed, Some(CloseCode::MediaLost));
    assert_ne!(call.agreed_code(), before, "the keys rotate");
    assert_eq!(
        call.present().next().unwrap().participant.members().len(),
        2
    );
}

#[test]
fn revoked_device_is_removed() {
    let mut call = Call::new();
    call.enter(1, true);
    call.enter(2, false);
    let bob = call.enter(3, false);
    let before = call.agreed_code();
    call.room.handle(
        Input::DeviceRevoked(DeviceId::from_bytes([3; 16])),
        call.now,
    );
    call.settle();
    assert_eq!(call.person(bob).closed, Some(CloseCode::DeviceRevoked));
    assert_ne!(call.agreed_code(), before);
}

#[test]
fn silent_participant_times_out_and_is_removed() {
    let mut call = Call::new();
    call.enter(1, true);
    let quiet = call.enter(2, false);
    call.enter(3, false);
    let before = call.agreed_code();
    // everyone but `quiet` pings every five seconds for a minute
    for _ in 0..12 {
        call.now = call.now.saturating_add(std::time::Duration::from_secs(5));
        let pings: Vec<_> = call
            .present()
            .filter(|p| p.id != quiet)
            .map(|p| (p.id, p.participant.ping(1)))
            .collect();
        for (id, ping) in pings {
            call.room.handle(Input::Message(id, ping), call.now);
        }
        call.room.handle(Input::Tick, call.now);
        call.settle();
    }
    assert_eq!(call.person(quiet).closed, Some(CloseCode::HeartbeatTimeout));
    assert_ne!(call.agreed_code(), before);
    assert_eq!(
        call.present().next().unwrap().participant.members().len(),
        2
    );
}

#[test]
fn two_joining_at_once_are_added_by_one_commit() {
    let mut call = Call::new();
    call.enter(1, true);
    call.enter(2, false);
    let epoch_before = call.present().next().unwrap().participant.epoch().unwrap();
    // seat two without settling in between
    for n in [3u8, 4] {
        let device_seed = [n.wrapping_add(100); 32];
        let credential = org().issue_credential(CredentialClaims {
            organisation: "Example".into(),
            user_id: UserId::from_bytes([n; 16]),
            user_name: format!("user{n}"),
            display_name: format!("User {n}"),
            device_id: DeviceId::from_bytes([n; 16]),
            device_key: DeviceKey::from_seed(&device_seed).public(),
            trust: DeviceTrust::Managed,
            issued_at: Timestamp::from_unix_millis(0),
            expires_at: Timestamp::from_unix_millis(4_000_000_000_000),
        });
        let participant = Participant::new(
            credential,
            device_seed,
            org().public(),
            server().info(),
            call.now,
        )
        .unwrap();
        let ClientMessage::Hello { key_package, .. } = participant.hello(String::new()) else {
            unreachable!()
        };
        let id = ParticipantId::from_bytes([n; 16]);
        call.people.push(Seated {
            id,
            participant,
            closed: None,
        });
        call.room.handle(
            Input::Enter {
                participant: id,
                resume_token: format!("r{n}"),
                seat: seat(n, false),
                key_package: key_package.0,
                lobby: None,
            },
            call.now,
        );
    }
    call.settle();
    call.agreed_code();
    let epoch_after = call.present().next().unwrap().participant.epoch().unwrap();
    assert!(
        epoch_after - epoch_before <= 2,
        "joins are batched into few commits"
    );
    assert_eq!(
        call.present().next().unwrap().participant.members().len(),
        4
    );
}

#[test]
fn lobby_waits_for_a_host_who_admits_or_denies() {
    let mut call = Call::new();
    let host = call.enter(1, true);
    call.enter(2, false);
    let before = call.agreed_code();
    let reason = vec!["you are connecting from an untrusted network".to_string()];
    let guest = call.enter_as(3, false, Some(reason.clone()));
    let denied = call.enter_as(4, false, Some(reason.clone()));

    // waiting: not in the group, not on the roster, not counted as in the call (the
    // policy's capacity); the host sees the queue with reasons
    assert_eq!(call.room.in_call(), 2);
    assert_eq!(
        call.person(guest).participant.waiting(),
        Some(reason.as_slice())
    );
    assert_eq!(call.person(guest).participant.epoch(), None);
    assert_eq!(call.agreed_code(), before);
    let lobby = call.person(host).participant.lobby().to_vec();
    assert_eq!(lobby.len(), 2);
    assert_eq!(lobby[0].participant, guest);
    assert_eq!(lobby[0].reasons, reason);
    assert!(call
        .person(host)
        .participant
        .alerts()
        .iter()
        .any(|a| a.kind == "lobby"));

    // only hosts decide
    let other = ParticipantId::from_bytes([2; 16]);
    call.room.handle(
        Input::Message(other, ClientMessage::Admit { participant: guest }),
        call.now,
    );
    call.settle();
    assert_eq!(call.person(guest).participant.epoch(), None);

    call.room.handle(
        Input::Message(host, ClientMessage::Admit { participant: guest }),
        call.now,
    );
    call.room.handle(
        Input::Message(
            host,
            ClientMessage::Deny {
                participant: denied,
            },
        ),
        call.now,
    );
    call.settle();
    assert_eq!(
        call.room.in_call(),
        3,
        "the admitted guest counts, the denied one never did"
    );
    assert_eq!(call.person(denied).closed, Some(CloseCode::Denied));
    assert_eq!(call.person(guest).participant.waiting(), None);
    assert!(call.person(host).participant.lobby().is_empty());
    let after = call.agreed_code();
    assert_ne!(after, before);
    assert_eq!(
        call.present().next().unwrap().participant.members().len(),
        3
    );
}

#[test]
fn media_connects_while_an_admitted_seat_joins_the_group_but_never_from_the_lobby() {
    let mut call = Call::new();
    let host = call.enter(1, true);
    let sdp = conclave_client::media::Media::new(std::time::Instant::now())
        .offer()
        .unwrap();
    let offer = || ClientMessage::MediaOffer { sdp: sdp.clone() };

    // admitted by the policy, its Add not yet committed: the offer goes to the SFU at once
    let joining = call.seat_only(2, false, None);
    call.say(joining, offer());
    call.settle();
    assert_eq!(call.offers, [joining]);
    assert!(call.person(joining).participant.errors().is_empty());
    assert!(call.person(joining).participant.epoch().is_some());

    // waiting in the lobby: refused, nothing reaches the SFU
    let waiting = call.enter_as(3, false, Some(vec!["untrusted network".into()]));
    call.say(waiting, offer());
    call.settle();
    assert_eq!(call.offers, [joining]);
    assert_eq!(
        call.person(waiting).participant.errors(),
        ["media starts once you are admitted"]
    );

    // once a host admits them, before the round that adds them has run, it may
    call.say(
        host,
        ClientMessage::Admit {
            participant: waiting,
        },
    );
    call.say(waiting, offer());
    call.settle();
    assert_eq!(call.offers, [joining, waiting]);
    call.agreed_code();

    // what is not SDP is refused by the call, and never reaches the SFU
    call.say(joining, ClientMessage::MediaOffer { sdp: "v=0".into() });
    call.settle();
    assert_eq!(call.offers, [joining, waiting]);
    assert_eq!(
        call.person(joining).participant.errors(),
        ["the media description was refused"]
    );
}

#[test]
fn hosts_admit_from_the_lobby_of_a_locked_call() {
    let mut call = Call::new();
    let host = call.enter(1, true);
    call.room.handle(
        Input::Message(host, ClientMessage::Lock { locked: true }),
        call.now,
    );
    call.settle();
    assert!(call.person(host).participant.locked());
    let waiting = call.enter_as(
        2,
        false,
        Some(vec!["a host has locked this meeting".into()]),
    );
    assert_eq!(call.person(host).participant.lobby().len(), 1);
    call.say(
        host,
        ClientMessage::Admit {
            participant: waiting,
        },
    );
    call.settle();
    assert_eq!(call.person(waiting).participant.waiting(), None);
    call.agreed_code();
    assert_eq!(
        call.present().next().unwrap().participant.members().len(),
        2
    );
}

/// A participant the (compromised) server has an organisation credential for but never
/// admitted through the policy.
fn ghost() -> Member {
    let n = 9u8;
    let device_seed = [n.wrapping_add(100); 32];
    let credential = org().issue_credential(CredentialClaims {
        organisation: "Example".into(),
        user_id: UserId::from_bytes([n; 16]),
        user_name: "ghost".into(),
        display_name: "Ghost".into(),
        device_id: DeviceId::from_bytes([n; 16]),
        device_key: DeviceKey::from_seed(&device_seed).public(),
        trust: DeviceTrust::Managed,
        issued_at: Timestamp::from_unix_millis(0),
        expires_at: Timestamp::from_unix_millis(4_000_000_000_000),
    });
    Member::new(
        credential,
        device_seed,
        org().public(),
        server().info(),
        NOW,
    )
    .unwrap()
}

fn key_package(member: &Member) -> Vec<u8> {
    let ClientMessage::Hello { key_package, .. } = member.hello(String::new()) else {
        unreachable!()
    };
    key_package.0
}

fn group_of(call: &Call) -> GroupRef {
    let p = &call.present().next().unwrap().participant;
    GroupRef {
        group_id: p.group_id().unwrap(),
        epoch: p.epoch().unwrap(),
    }
}

/// The compromised server sends `message` straight to every present participant, outside
/// the room (and its delivery service).
fn inject(call: &mut Call, message: &ServerMessage) {
    let now = call.now;
    for p in call.people.iter_mut().filter(|p| p.closed.is_none()) {
        p.participant.handle(message.clone(), now);
    }
}

#[test]
fn a_ghost_add_never_announced_is_refused_by_every_member() {
    let mut call = Call::new();
    call.enter(1, true);
    call.enter(2, false);
    call.enter(3, false);
    let before = call.agreed_code();
    let proposal = server()
        .propose_add(&group_of(&call), &key_package(&ghost()))
        .unwrap();
    inject(
        &mut call,
        &ServerMessage::Mls {
            message: Bytes(proposal),
        },
    );
    inject(&mut call, &ServerMessage::CommitPending {});
    for p in call.present() {
        assert!(
            !p.participant.refusals().is_empty(),
            "every member refuses the ghost"
        );
    }
    let members = call.present().next().unwrap().participant.members().len();
    assert_eq!(members, 3);
    let code = call
        .present()
        .next()
        .unwrap()
        .participant
        .security_code()
        .unwrap();
    assert_eq!(code, before, "no epoch change for a refused Add");
}

#[test]
fn an_announced_ghost_hidden_from_the_roster_is_flagged_and_changes_the_code() {
    let mut call = Call::new();
    call.enter(1, true);
    call.enter(2, false);
    call.enter(3, false);
    let before = call.agreed_code();
    let mut ghost = ghost();
    let ghost_device = DeviceId::from_bytes([9; 16]);
    let proposal = server()
        .propose_add(&group_of(&call), &key_package(&ghost))
        .unwrap();
    inject(
        &mut call,
        &ServerMessage::Admitted {
            device: ghost_device,
        },
    );
    inject(
        &mut call,
        &ServerMessage::Mls {
            message: Bytes(proposal),
        },
    );
    // the server asks one member to commit and fans the commit out itself
    let committer = call.people.iter_mut().find(|p| p.closed.is_none()).unwrap();
    committer
        .participant
        .handle(ServerMessage::CommitPending {}, NOW);
    let Some(ClientMessage::Mls { message, welcome }) = committer.participant.poll_transmit()
    else {
        panic!("the member commits the announced Add");
    };
    inject(&mut call, &ServerMessage::Mls { message });
    ghost.handle(
        ServerMessage::Mls {
            message: welcome.expect("Welcome"),
        },
        NOW,
    );

    let code = call
        .present()
        .next()
        .unwrap()
        .participant
        .security_code()
        .unwrap();
    assert_ne!(code, before, "the ghost changed the security code");
    assert_eq!(ghost.security_code().as_deref(), Some(code.as_str()));
    for p in call.present() {
        assert_eq!(
            p.participant.security_code().as_deref(),
            Some(code.as_str())
        );
        assert_eq!(
            p.participant.mismatches(),
            vec![Mismatch::HiddenMember(ghost_device)],
            "every member flags the member the roster does not show"
        );
    }
}
