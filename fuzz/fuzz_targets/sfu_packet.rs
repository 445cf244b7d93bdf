//! Datagrams on the SFU's UDP port (`Sfu::handle_receive`), as a live call sees them.
//!
//! Bytes from a stranger only exercise the demultiplexer (STUN parsing, the ICE username
//! check). To reach what sits behind it (DTLS, SRTP and SRTCP unprotect, RTP header and
//! extension parsing, the forwarding loop), the SFU here holds a call with two participants
//! that completed ICE and DTLS-SRTP with str0m client `Rtc`s and send audio and video; every
//! input is delivered once from a participant's own address (which the SFU routes to its
//! `Rtc`) and once from an unknown address, then the call runs on for a moment.
//!
//! Setting up the call costs far more than one input, so it is built once per process and
//! kept; it is built again only when an input managed to take a participant's connection
//! down (a finding worth looking at in itself, but not a crash), or after many inputs, so
//! that state piling up in it never dominates the run.
#![no_main]

use std::cell::RefCell;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use conclave_sfu::{CallId, Output, ParticipantId, Sfu, SfuEvent};
use str0m::change::SdpAnswer;
use str0m::format::Codec;
use str0m::media::{Direction, Frequency, MediaKind, MediaTime, Mid};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Rtc};

const SFU_ADDR: &str = "10.0.0.1:3478";
const STRANGER_ADDR: &str = "203.0.113.7:40000";
/// How far virtual time moves per input: enough for timers to fire now and then.
const STEP: Duration = Duration::from_millis(5);
/// Inputs before the call is built afresh.
const REBUILD_AFTER: u32 = 20_000;
/// Rounds of carrying datagrams back and forth after each input; every round is short, and
/// a bound keeps a pathological exchange from stalling the run.
const MAX_ROUNDS: usize = 16;

/// A participant: a str0m client that offers one audio and one video track.
struct Client {
    addr: SocketAddr,
    rtc: Rtc,
    audio: Mid,
    video: Mid,
    connected: bool,
    seq: u32,
}

impl Client {
    fn join(sfu: &mut Sfu, now: Instant, n: u8) -> Client {
        let addr: SocketAddr = format!("10.0.1.{n}:5000").parse().expect("address literal");
        let mut rtc = Rtc::builder()
            .set_crypto_provider(Arc::new(str0m::crypto::from_feature_flags()))
            .build(now);
        rtc.add_local_candidate(Candidate::host(addr, "udp").expect("host candidate"));
        let mut change = rtc.sdp_api();
        let audio = change.add_media(MediaKind::Audio, Direction::SendRecv, None, None, None);
        let video = change.add_media(MediaKind::Video, Direction::SendRecv, None, None, None);
        let (offer, pending) = change.apply().expect("two new m-lines are a change");
        let id = ParticipantId(u64::from(n));
        let answer = sfu
            .add_participant(now, CallId(1), id, offer.to_sdp_string().parse().unwrap())
            .expect("the SFU answers a str0m offer");
        rtc.sdp_api()
            .accept_answer(
                pending,
                SdpAnswer::from_sdp_string(&answer).expect("the SFU's answer parses"),
            )
            .expect("the SFU's answer fits the offer");
        Client {
            addr,
            rtc,
            audio,
            video,
            connected: false,
            seq: 0,
        }
    }

    /// Writes one audio frame and, every third call, one video frame (a VP8 key frame tag
    /// first, then filler), so the SFU always has something to forward.
    fn send_media(&mut self, now: Instant) {
        if !self.connected {
            return;
        }
        let seq = self.seq;
        self.seq = self.seq.wrapping_add(1);
        if let Some(writer) = self.rtc.writer(self.audio) {
            let pt = writer
                .payload_params()
                .find(|p| p.spec().codec == Codec::Opus)
                .map(|p| p.pt());
            if let Some(pt) = pt {
                let time = MediaTime::new(u64::from(seq) * 960, Frequency::FORTY_EIGHT_KHZ);
                let _ = writer.write(pt, now, time, vec![0x10; 80]);
            }
        }
        if seq % 3 == 0 {
            if let Some(writer) = self.rtc.writer(self.video) {
                let pt = writer
                    .payload_params()
                    .find(|p| p.spec().codec == Codec::Vp8)
                    .map(|p| p.pt());
                if let Some(pt) = pt {
                    let time = MediaTime::from_90khz(u64::from(seq) * 3000);
                    let _ = writer.write(pt, now, time, vec![0x10; 1500]);
                }
            }
        }
    }
}

/// The SFU, its participants and a virtual clock.
struct World {
    sfu: Sfu,
    sfu_addr: SocketAddr,
    stranger: SocketAddr,
    clients: Vec<Client>,
    now: Instant,
    inputs: u32,
    /// A participant's connection went down: build the call again before the next input.
    broken: bool,
    /// The latest input, to name it if it broke the call.
    last: Vec<u8>,
}

impl World {
    fn new() -> World {
        let sfu_addr: SocketAddr = SFU_ADDR.parse().expect("address literal");
        let now = Instant::now();
        let mut sfu = Sfu::new(sfu_addr, now);
        let clients = (1..=2).map(|n| Client::join(&mut sfu, now, n)).collect();
        let mut world = World {
            sfu,
            sfu_addr,
            stranger: STRANGER_ADDR.parse().expect("address literal"),
            clients,
            now,
            inputs: 0,
            broken: false,
            last: Vec::new(),
        };
        // Connect, negotiate the forwarded tracks and get media flowing both ways.
        for _ in 0..500 {
            world.tick(Duration::from_millis(5));
        }
        assert!(
            world.clients.iter().all(|c| c.connected) && !world.broken,
            "the call connects in virtual time"
        );
        world
    }

    /// Moves time on, lets everyone act on it and carries what they say.
    fn tick(&mut self, step: Duration) {
        self.now += step;
        let now = self.now;
        self.sfu.handle_timeout(now);
        for c in &mut self.clients {
            let _ = c.rtc.handle_input(Input::Timeout(now));
            c.send_media(now);
        }
        self.carry();
    }

    /// Carries datagrams and signalling between the SFU and the clients until nobody has
    /// anything more to say (or the round limit).
    fn carry(&mut self) {
        let now = self.now;
        for _ in 0..MAX_ROUNDS {
            let mut moved = false;
            loop {
                match self.sfu.poll_output() {
                    Output::Timeout(_) => break,
                    Output::Transmit(t) => {
                        moved = true;
                        let Some(c) = self.clients.iter_mut().find(|c| c.addr == t.destination)
                        else {
                            continue;
                        };
                        let Ok(contents) = t.contents.as_slice().try_into() else {
                            continue;
                        };
                        let _ = c.rtc.handle_input(Input::Receive(
                            now,
                            Receive {
                                proto: Protocol::Udp,
                                source: t.source,
                                destination: t.destination,
                                contents,
                            },
                        ));
                    }
                    Output::Event(SfuEvent::Disconnected { .. }) => self.broken = true,
                    Output::Event(_) => {}
                }
            }
            let mut to_sfu = Vec::new();
            for c in &mut self.clients {
                loop {
                    match c.rtc.poll_output() {
                        Ok(str0m::Output::Timeout(_)) => break,
                        Ok(str0m::Output::Transmit(t)) => {
                            to_sfu.push((t.source, t.destination, t.contents.to_vec()));
                        }
                        Ok(str0m::Output::Event(Event::Connected)) => c.connected = true,
                        Ok(str0m::Output::Event(_)) => {}
                        Err(_) => {
                            self.broken = true;
                            break;
                        }
                    }
                }
            }
            for (source, destination, contents) in to_sfu {
                moved = true;
                let _ = self.sfu.handle_receive(now, source, destination, &contents);
            }
            if !moved {
                return;
            }
        }
    }

    /// One fuzz input: from participant 1's address, from a stranger, then the call goes on.
    fn feed(&mut self, data: &[u8]) {
        self.inputs += 1;
        self.last = data.to_vec();
        self.now += STEP;
        let (now, to) = (self.now, self.sfu_addr);
        let member = self.clients[0].addr;
        let _ = self.sfu.handle_receive(now, member, to, data);
        let _ = self.sfu.handle_receive(now, self.stranger, to, data);
        self.carry();
        self.tick(Duration::ZERO);
    }
}

thread_local! {
    static WORLD: RefCell<Option<World>> = const { RefCell::new(None) };
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    WORLD.with(|cell| {
        let mut slot = cell.borrow_mut();
        if let Some(w) = slot.as_ref().filter(|w| w.broken) {
            // Not a crash, but worth a look.
            eprintln!(
                "sfu_packet: a connection went down after the input {:02x?}; new call",
                &w.last[..w.last.len().min(64)]
            );
        }
        if slot
            .as_ref()
            .is_none_or(|w| w.broken || w.inputs >= REBUILD_AFTER)
        {
            *slot = Some(World::new());
        }
        if let Some(world) = slot.as_mut() {
            world.feed(data);
        }
    });
});
