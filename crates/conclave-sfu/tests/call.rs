//! Whole calls through the SFU in virtual time: str0m client `Rtc`s act as participants, and
//! every datagram is carried between them and the `Sfu` in memory. No sockets, no sleeps.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use conclave_sfu::{
    CallId, KeyframeReason, Offer, Output, ParticipantId, ReceiveError, Sfu, SfuEvent, Transmit,
};
use str0m::change::SdpAnswer;
use str0m::format::Codec;
use str0m::media::{Direction, Frequency, KeyframeRequestKind, MediaKind, MediaTime, Mid};
use str0m::net::Receive;
use str0m::{Candidate, Event, Input, Rtc};

const SFU_ADDR: &str = "10.0.0.1:3478";
const TICK: Duration = Duration::from_millis(2);

/// A frame's bytes, derived from who sent it, its kind and its number, so that a receiver
/// can check it arrived byte for byte. Its first byte is even: a VP8 key frame tag.
fn frame(sender: u8, video: bool, seq: u16) -> Vec<u8> {
    let len = if video {
        2500 + usize::from(seq % 7) * 100
    } else {
        120
    };
    let mut out = vec![0x10, sender, u8::from(video)];
    out.extend_from_slice(&seq.to_be_bytes());
    let mut x = u32::from(sender) << 24 ^ u32::from(seq) << 8 ^ u32::from(video);
    while out.len() < len {
        x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        out.push((x >> 24) as u8);
    }
    out
}

/// A simulcast layer's frame: kind byte 2 for the high layer (5,000 bytes: ~1.2 Mbit/s at
/// 30 frames a second), 3 for the low one (500 bytes: ~120 kbit/s).
fn layer_frame(sender: u8, high: bool, seq: u16) -> Vec<u8> {
    let len = if high { 5_000 } else { 500 };
    let mut out = vec![0x10, sender, if high { 2 } else { 3 }];
    out.extend_from_slice(&seq.to_be_bytes());
    out.resize(len, sender ^ 0x5a);
    out
}

struct Client {
    id: ParticipantId,
    addr: SocketAddr,
    rtc: Rtc,
    audio: Mid,
    video: Mid,
    connected: bool,
    next_audio: Instant,
    next_video: Instant,
    audio_seq: u16,
    video_seq: u16,
    /// (sender, video?) -> frames received intact
    received: BTreeMap<(u8, bool), u64>,
    corrupt: u64,
    keyframe_requests: Vec<KeyframeRequestKind>,
    nacks_sent: BTreeMap<Mid, u64>,
    inbox: VecDeque<Transmit>,
    /// The audio level stated on every audio frame (RFC 6464 dBov), if any.
    level: Option<i8>,
    /// The camera is on.
    video_on: bool,
    /// Sends its video as two simulcast layers, `h` and `l`, instead of one stream.
    simulcast: bool,
    /// (sender, high layer?) -> simulcast frames received intact
    layers_received: BTreeMap<(u8, bool), u64>,
}

impl Client {
    /// Joins with `slots` audio and as many video slots to receive on.
    fn join(
        sfu: &mut Sfu,
        now: Instant,
        call: CallId,
        n: u8,
        slots: usize,
        simulcast: bool,
    ) -> Client {
        let addr: SocketAddr = format!("10.0.1.{n}:5000").parse().unwrap();
        let crypto = std::sync::Arc::new(str0m::crypto::from_feature_flags());
        let mut rtc = Rtc::builder()
            .set_crypto_provider(crypto)
            .set_stats_interval(Some(Duration::from_secs(1)))
            .build(now);
        rtc.add_local_candidate(Candidate::host(addr, "udp").unwrap());
        let mut change = rtc.sdp_api();
        let audio = change.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None);
        let layers = simulcast.then(|| {
            let mut s = str0m::media::Simulcast::new();
            s.add_send_layer(str0m::media::SimulcastLayer::new("h"));
            s.add_send_layer(str0m::media::SimulcastLayer::new("l"));
            s
        });
        let video = change.add_media(MediaKind::Video, Direction::SendOnly, None, None, layers);
        for _ in 0..slots {
            change.add_media(MediaKind::Audio, Direction::RecvOnly, None, None, None);
            change.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
        }
        let (offer, pending) = change.apply().unwrap();
        let id = ParticipantId(u64::from(n));
        let answer = sfu
            .add_participant(now, call, id, offer.to_sdp_string().parse().unwrap())
            .unwrap();
        rtc.sdp_api()
            .accept_answer(pending, SdpAnswer::from_sdp_string(&answer).unwrap())
            .unwrap();
        // Answer every NACK, as a browser does: str0m's default stops retransmitting while
        // resends pass 15 % of what a stream sends, which one packet in ten lost on each hop
        // reaches in bursts.
        for rid in [None, Some("h"), Some("l")] {
            let rid = rid.map(str0m::media::Rid::from);
            if let Some(tx) = rtc.direct_api().stream_tx_by_mid(video, rid) {
                tx.set_rtx_cache(1024, Duration::from_secs(3), None);
            }
        }
        Client {
            id,
            addr,
            rtc,
            audio,
            video,
            connected: false,
            next_audio: now,
            next_video: now,
            audio_seq: 0,
            video_seq: 0,
            received: BTreeMap::new(),
            corrupt: 0,
            keyframe_requests: Vec::new(),
            nacks_sent: BTreeMap::new(),
            inbox: VecDeque::new(),
            level: None,
            video_on: true,
            simulcast,
            layers_received: BTreeMap::new(),
        }
    }

    fn number(&self) -> u8 {
        u8::try_from(self.id.0).unwrap()
    }

    fn count(&self, sender: &Client, video: bool) -> u64 {
        self.received
            .get(&(sender.number(), video))
            .copied()
            .unwrap_or(0)
    }

    /// Sends what is due: 50 audio frames and 30 video frames a second.
    fn send_media(&mut self, now: Instant) {
        if !self.connected {
            return;
        }
        let me = self.number();
        if now >= self.next_audio {
            let seq = self.audio_seq;
            let writer = self.rtc.writer(self.audio).unwrap();
            let pt = writer
                .payload_params()
                .find(|p| p.spec().codec == Codec::Opus)
                .unwrap()
                .pt();
            let time = MediaTime::new(u64::from(seq) * 960, Frequency::FORTY_EIGHT_KHZ);
            let writer = match self.level {
                Some(level) => writer.audio_level(level, true),
                None => writer,
            };
            writer.write(pt, now, time, frame(me, false, seq)).unwrap();
            self.audio_seq += 1;
            self.next_audio += Duration::from_millis(20);
        }
        if now >= self.next_video && self.video_on {
            let seq = self.video_seq;
            let writer = self.rtc.writer(self.video).unwrap();
            let pt = writer
                .payload_params()
                .find(|p| p.spec().codec == Codec::Vp8)
                .unwrap()
                .pt();
            let time = MediaTime::from_90khz(u64::from(seq) * 3000);
            if self.simulcast {
                for (rid, high) in [("h", true), ("l", false)] {
                    let writer = self.rtc.writer(self.video).unwrap();
                    let writer = writer.rid(str0m::media::Rid::from(rid));
                    writer
                        .write(pt, now, time, layer_frame(me, high, seq))
                        .unwrap();
                }
            } else {
                writer.write(pt, now, time, frame(me, true, seq)).unwrap();
            }
            self.video_seq += 1;
            self.next_video += Duration::from_millis(33);
        }
    }

    /// Drains the client's `Rtc`, returning what it sends to the SFU.
    fn poll(&mut self, sfu_out: &mut Vec<Transmit>) {
        loop {
            match self.rtc.poll_output().unwrap() {
                str0m::Output::Timeout(_) => return,
                str0m::Output::Transmit(t) => sfu_out.push(Transmit {
                    source: t.source,
                    destination: t.destination,
                    contents: t.contents.into(),
                }),
                str0m::Output::Event(event) => self.on_event(event),
            }
        }
    }

    fn on_event(&mut self, event: Event) {
        match event {
            Event::Connected => self.connected = true,
            // NACKs this participant sent as a receiver, per stream (cumulative counters).
            Event::MediaIngressStats(stats) => {
                self.nacks_sent.insert(stats.mid, stats.nacks);
            }
            Event::MediaData(data) => {
                let bytes = &data.data[..];
                if bytes.len() < 5 {
                    self.corrupt += 1;
                    return;
                }
                let (sender, video) = (bytes[1], bytes[2] == 1);
                let seq = u16::from_be_bytes([bytes[3], bytes[4]]);
                if let 2 | 3 = bytes[2] {
                    let high = bytes[2] == 2;
                    if bytes == layer_frame(sender, high, seq).as_slice() {
                        *self.layers_received.entry((sender, high)).or_default() += 1;
                    } else {
                        self.corrupt += 1;
                    }
                    return;
                }
                if bytes == frame(sender, video, seq).as_slice() && sender != self.number() {
                    *self.received.entry((sender, video)).or_default() += 1;
                } else {
                    self.corrupt += 1;
                }
            }
            Event::KeyframeRequest(req) => {
                assert_eq!(
                    req.mid, self.video,
                    "key frames are requested for video only"
                );
                self.keyframe_requests.push(req.kind);
            }
            _ => {}
        }
    }
}

/// A token bucket: a link's rate, with a burst of 50 ms.
struct Bucket {
    bits_per_second: f64,
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn new(bits_per_second: f64, now: Instant) -> Bucket {
        Bucket {
            bits_per_second,
            tokens: 0.0,
            at: now,
        }
    }

    /// Whether a datagram of `bytes` fits now (and takes its tokens if it does).
    fn take(&mut self, now: Instant, bytes: usize) -> bool {
        let burst = self.bits_per_second * 0.05;
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.bits_per_second).min(burst);
        self.at = now;
        let bits = (bytes * 8) as f64;
        if self.tokens >= bits {
            self.tokens -= bits;
            true
        } else {
            false
        }
    }
}

/// The SFU, its participants, a virtual clock and what the SFU told the server.
struct Net {
    sfu: Sfu,
    sfu_addr: SocketAddr,
    clients: Vec<Client>,
    now: Instant,
    events: Vec<SfuEvent>,
    call: CallId,
    /// Drop one in n media-sized datagrams, both ways, at random.
    lose_every: Option<u64>,
    /// A link towards one participant that carries this many bits per second; what comes
    /// faster is dropped.
    narrow: Option<(SocketAddr, Bucket)>,
    /// The loss's random state.
    sent: u64,
    lost: u64,
}

impl Net {
    fn new() -> Net {
        let sfu_addr: SocketAddr = SFU_ADDR.parse().unwrap();
        let now = Instant::now();
        Net {
            sfu: Sfu::new(sfu_addr, now),
            sfu_addr,
            clients: Vec::new(),
            now,
            lose_every: None,
            narrow: None,
            sent: 0x2545_f491_4f6c_dd1d,
            lost: 0,
            events: Vec::new(),
            call: CallId(7),
        }
    }

    /// Joins participant `n` with four slots of each kind: a full mesh up to five.
    fn join(&mut self, n: u8) {
        self.join_with_slots(n, 4);
    }

    fn join_with_slots(&mut self, n: u8, slots: usize) {
        let client = Client::join(&mut self.sfu, self.now, self.call, n, slots, false);
        self.clients.push(client);
    }

    /// Joins participant `n` sending simulcast video (layers `h` and `l`).
    fn join_simulcast(&mut self, n: u8) {
        let client = Client::join(&mut self.sfu, self.now, self.call, n, 4, true);
        self.clients.push(client);
    }

    fn client_mut(&mut self, n: u8) -> &mut Client {
        self.clients.iter_mut().find(|c| c.number() == n).unwrap()
    }

    fn client(&self, n: u8) -> &Client {
        self.clients.iter().find(|c| c.number() == n).unwrap()
    }

    /// Moves every datagram and signalling message until nobody has anything more to say.
    fn settle(&mut self) {
        loop {
            let mut moved = false;
            loop {
                match self.sfu.poll_output() {
                    Output::Timeout(_) => break,
                    Output::Transmit(t) => {
                        assert_eq!(t.source, self.sfu_addr);
                        if self.lose(&t) || self.narrowed(&t) {
                            continue;
                        }
                        if let Some(c) = self.clients.iter_mut().find(|c| c.addr == t.destination) {
                            c.inbox.push_back(t);
                        }
                        moved = true;
                    }
                    Output::Event(e) => self.events.push(e),
                }
            }
            let mut to_sfu = Vec::new();
            for c in &mut self.clients {
                while let Some(t) = c.inbox.pop_front() {
                    let input = Input::Receive(
                        self.now,
                        Receive {
                            proto: str0m::net::Protocol::Udp,
                            source: t.source,
                            destination: t.destination,
                            contents: t.contents.as_slice().try_into().unwrap(),
                        },
                    );
                    c.rtc.handle_input(input).unwrap();
                    moved = true;
                }
                c.poll(&mut to_sfu);
            }
            for t in to_sfu {
                assert_eq!(t.destination, self.sfu_addr);
                if self.lose(&t) {
                    continue;
                }
                self.sfu
                    .handle_receive(self.now, t.source, t.destination, &t.contents)
                    .unwrap();
                moved = true;
            }
            if !moved {
                return;
            }
        }
    }

    /// Whether the narrow link drops this datagram from the SFU.
    fn narrowed(&mut self, t: &Transmit) -> bool {
        let now = self.now;
        match &mut self.narrow {
            Some((to, bucket)) if *to == t.destination => !bucket.take(now, t.contents.len()),
            _ => false,
        }
    }

    /// Whether the network loses this datagram.
    fn lose(&mut self, t: &Transmit) -> bool {
        let Some(n) = self.lose_every else {
            return false;
        };
        if t.contents.len() < 200 {
            return false; // STUN, DTLS, RTCP and audio get through
        }
        // A fixed pseudo-random sequence (xorshift), not every n-th datagram: losses at a fixed
        // period line up with the fixed period at which retransmissions are asked for, and
        // then the same packet is lost every time it is resent, which no network does.
        self.sent ^= self.sent << 13;
        self.sent ^= self.sent >> 7;
        self.sent ^= self.sent << 17;
        if self.sent % n == 0 {
            self.lost += 1;
            return true;
        }
        false
    }

    /// Runs the call for `duration` of virtual time, clients sending media all along.
    fn run(&mut self, duration: Duration) {
        let end = self.now + duration;
        while self.now < end {
            self.now += TICK;
            let now = self.now;
            self.sfu.handle_timeout(now);
            for c in &mut self.clients {
                c.rtc.handle_input(Input::Timeout(now)).unwrap();
                c.send_media(now);
            }
            self.settle();
        }
    }

    fn keyframe_events(&self, reason: KeyframeReason) -> Vec<ParticipantId> {
        self.events
            .iter()
            .filter_map(|e| match e {
                SfuEvent::KeyframeRequested {
                    participant,
                    reason: r,
                    ..
                } if *r == reason => Some(*participant),
                _ => None,
            })
            .collect()
    }
}

/// Every participant receives every other participant's audio and video, byte for byte.
fn assert_full_mesh(net: &Net, min_audio: u64, min_video: u64) {
    for rx in &net.clients {
        assert_eq!(rx.corrupt, 0, "{} got corrupt or own frames", rx.id);
        for tx in &net.clients {
            if tx.id == rx.id {
                continue;
            }
            let (audio, video) = (rx.count(tx, false), rx.count(tx, true));
            assert!(
                audio >= min_audio && video >= min_video,
                "{} got {audio} audio and {video} video frames from {}",
                rx.id,
                tx.id
            );
        }
    }
}

#[test]
fn three_participants_receive_each_other_intact() {
    let mut net = Net::new();
    for n in 1..=3 {
        net.join(n);
    }
    net.run(Duration::from_secs(3));

    let connected = net
        .events
        .iter()
        .filter(|e| matches!(e, SfuEvent::Connected { .. }))
        .count();
    assert_eq!(connected, 3);
    // 3 s at 50 and 30 frames a second, minus the time to connect and negotiate.
    assert_full_mesh(&net, 100, 60);
    for rx in &net.clients {
        println!("{} received {:?}", rx.id, rx.received);
    }
    let stats = net.sfu.stats();
    assert_eq!(stats.malformed + stats.unroutable + stats.rtc_errors, 0);
    assert!(stats.packets_forwarded > 0);
}

#[test]
fn a_late_joiner_makes_senders_produce_key_frames() {
    let mut net = Net::new();
    net.join(1);
    net.join(2);
    net.run(Duration::from_secs(2));
    assert_full_mesh(&net, 50, 30);

    for c in &mut net.clients {
        c.keyframe_requests.clear();
    }
    net.events.clear();
    net.join(3);
    net.run(Duration::from_secs(2));

    // The SFU asked both earlier senders for a key frame for the newcomer, and the PLI
    // arrived at their `Rtc`s.
    let mut asked = net.keyframe_events(KeyframeReason::NewReceiver);
    asked.sort();
    asked.dedup();
    assert!(asked.contains(&ParticipantId(1)) && asked.contains(&ParticipantId(2)));
    for n in [1, 2] {
        assert!(
            net.client(n)
                .keyframe_requests
                .contains(&KeyframeRequestKind::Pli),
            "participant {n} got no PLI"
        );
    }
    let newcomer = net.client(3);
    for n in [1, 2] {
        assert!(newcomer.count(net.client(n), true) >= 30);
        assert!(newcomer.count(net.client(n), false) >= 50);
    }
}

#[test]
fn request_keyframes_reaches_every_video_sender_of_the_call() {
    let mut net = Net::new();
    for n in 1..=3 {
        net.join(n);
    }
    net.run(Duration::from_secs(2));
    for c in &mut net.clients {
        c.keyframe_requests.clear();
    }
    net.events.clear();

    net.sfu.request_keyframes(net.call);
    net.run(Duration::from_millis(200));
    for c in &net.clients {
        assert!(
            c.keyframe_requests.contains(&KeyframeRequestKind::Pli),
            "{} got no PLI after the key rotation",
            c.id
        );
    }
    assert_eq!(net.keyframe_events(KeyframeReason::Requested).len(), 3);
    // Another call's key rotation asks nobody here.
    let requests = net.sfu.stats().keyframe_requests;
    net.sfu.request_keyframes(CallId(99));
    assert_eq!(net.sfu.stats().keyframe_requests, requests);
}

#[test]
fn a_participant_who_leaves_stops_being_forwarded() {
    let mut net = Net::new();
    for n in 1..=3 {
        net.join(n);
    }
    net.run(Duration::from_secs(2));
    net.sfu.remove_participant(ParticipantId(3)).unwrap();
    let gone = net.clients.pop().unwrap();
    let before: Vec<u64> = net.clients.iter().map(|c| c.count(&gone, true)).collect();
    net.run(Duration::from_secs(1));
    let after: Vec<u64> = net.clients.iter().map(|c| c.count(&gone, true)).collect();
    assert_eq!(before, after);
    assert_eq!(net.sfu.participant_count(), 2);
    // The two that stay still hear each other.
    let a = net.client(1).count(net.client(2), false);
    net.run(Duration::from_millis(500));
    assert!(net.client(1).count(net.client(2), false) > a);
    assert!(matches!(
        net.sfu.remove_participant(ParticipantId(3)),
        Err(conclave_sfu::SfuError::UnknownParticipant(_))
    ));
}

#[test]
fn a_call_larger_than_the_slots_forwards_the_last_speakers() {
    let mut net = Net::new();
    for n in 1..=5 {
        net.join_with_slots(n, 2);
    }
    net.run(Duration::from_secs(3));
    let counts = |net: &Net, rx: u8| -> Vec<(u64, u64)> {
        (1..=4)
            .map(|tx| {
                let (rx, tx) = (net.client(rx), net.client(tx));
                (rx.count(tx, false), rx.count(tx, true))
            })
            .collect()
    };
    // whether `tx`'s audio and video reached the receiver between the two counts
    let grew = |before: &[(u64, u64)], after: &[(u64, u64)], tx: usize| {
        let (b, a) = (before[tx - 1], after[tx - 1]);
        (a.0 > b.0 + 40, a.1 > b.1 + 20)
    };
    // nobody spoke: the first to join fill the slots
    let (five_before, one_before) = (counts(&net, 5), counts(&net, 1));
    net.run(Duration::from_secs(1));
    let (five_after, one_after) = (counts(&net, 5), counts(&net, 1));
    for (tx, expected) in [(1, true), (2, true), (3, false), (4, false)] {
        assert_eq!(
            grew(&five_before, &five_after, tx),
            (expected, expected),
            "5 from {tx}"
        );
    }
    assert_eq!(grew(&one_before, &one_after, 4), (false, false));
    // 4 speaks: it takes the slot of the lowest ranked sender everywhere
    net.client_mut(4).level = Some(-20);
    net.run(Duration::from_secs(1));
    let (five_before, one_before) = (counts(&net, 5), counts(&net, 1));
    net.run(Duration::from_secs(1));
    let (five_after, one_after) = (counts(&net, 5), counts(&net, 1));
    // 5 keeps 1 (ranked above 2 by arrival) and swapped 2 for 4; 1 swapped 3 for 4
    assert_eq!(grew(&five_before, &five_after, 1), (true, true));
    assert_eq!(grew(&five_before, &five_after, 2), (false, false));
    assert_eq!(grew(&five_before, &five_after, 4), (true, true));
    assert_eq!(grew(&one_before, &one_after, 2), (true, true));
    assert_eq!(grew(&one_before, &one_after, 3), (false, false));
    assert_eq!(grew(&one_before, &one_after, 4), (true, true));
    // 1 turns its camera off: once it is quiet, 5's video slot goes to the next best, 2
    net.client_mut(1).video_on = false;
    net.run(Duration::from_secs(5));
    let five_before = counts(&net, 5);
    net.run(Duration::from_secs(1));
    let five_after = counts(&net, 5);
    assert_eq!(grew(&five_before, &five_after, 1), (true, false));
    assert_eq!(grew(&five_before, &five_after, 2), (false, true));
    assert_eq!(grew(&five_before, &five_after, 4), (true, true));
    for c in &net.clients {
        assert_eq!(c.corrupt, 0, "{} got corrupt frames", c.id);
    }
}

#[test]
fn hostile_datagrams_are_dropped_and_counted() {
    let mut net = Net::new();
    net.join(1);
    net.join(2);

    // Capture real datagrams (STUN, DTLS, SRTP) from participant 1 while the call starts.
    let mut captured: Vec<Transmit> = Vec::new();
    let end = net.now + Duration::from_secs(1);
    while net.now < end {
        net.now += TICK;
        let now = net.now;
        net.sfu.handle_timeout(now);
        for c in &mut net.clients {
            c.rtc.handle_input(Input::Timeout(now)).unwrap();
            c.send_media(now);
        }
        // Peek at what participant 1 sends before the normal path carries it.
        let c = &mut net.clients[0];
        let mut out = Vec::new();
        c.poll(&mut out);
        for t in out {
            captured.push(t.clone());
            net.sfu
                .handle_receive(now, t.source, t.destination, &t.contents)
                .unwrap();
        }
        net.settle();
    }
    assert!(captured.len() > 20);

    let sfu_addr = net.sfu_addr;
    let stranger: SocketAddr = "203.0.113.9:4000".parse().unwrap();
    let member = net.client(1).addr;
    let now = net.now;
    let mut dropped = 0u64;
    let mut feed = |sfu: &mut Sfu, from: SocketAddr, bytes: &[u8]| {
        if sfu.handle_receive(now, from, sfu_addr, bytes).is_err() {
            dropped += 1;
        }
    };

    // Empty, random, and every prefix of every captured datagram, from a stranger and from a
    // member's own address (which reaches its `Rtc`).
    feed(&mut net.sfu, stranger, &[]);
    let mut x = 0x1234_5678u32;
    for len in [1usize, 2, 4, 12, 20, 28, 100, 1200, 1500, 9000] {
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                (x >> 16) as u8
            })
            .collect();
        feed(&mut net.sfu, stranger, &bytes);
        feed(&mut net.sfu, member, &bytes);
    }
    for t in &captured {
        for cut in 0..t.contents.len() {
            feed(&mut net.sfu, stranger, &t.contents[..cut]);
            feed(&mut net.sfu, member, &t.contents[..cut]);
        }
        // Flipped bits in the middle (SRTP authentication must refuse them).
        let mut flipped = t.contents.clone();
        let mid = flipped.len() / 2;
        flipped[mid] ^= 0x5a;
        feed(&mut net.sfu, member, &flipped);
    }
    // Old datagrams replayed from the member's address.
    for t in &captured {
        feed(&mut net.sfu, member, &t.contents);
    }
    assert!(dropped > 0);
    let stats = net.sfu.stats();
    assert!(stats.malformed > 0 && stats.unroutable > 0, "{stats:?}");
    assert!(matches!(
        net.sfu.handle_receive(now, stranger, sfu_addr, &[0xff; 3]),
        Err(ReceiveError::Malformed) | Err(ReceiveError::Unroutable)
    ));

    // The call goes on.
    let before = net.client(2).count(net.client(1), true);
    net.run(Duration::from_secs(1));
    assert!(net.client(2).count(net.client(1), true) > before + 20);
    assert_eq!(net.client(2).corrupt, 0);
}

#[test]
fn signalling_misuse_is_an_error() {
    let mut net = Net::new();
    let now = net.now;
    for sdp in ["not sdp", "v=0", ""] {
        assert!(matches!(
            Offer::parse(sdp),
            Err(conclave_sfu::SfuError::BadSdp(_))
        ));
    }
    net.join(1);
    let offer = || {
        let mut rtc = Rtc::builder().build(now);
        let mut change = rtc.sdp_api();
        change.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None);
        let (offer, _) = change.apply().unwrap();
        Offer::parse(&offer.to_sdp_string()).unwrap()
    };
    assert!(matches!(
        net.sfu.handle_offer(now, ParticipantId(5), offer()),
        Err(conclave_sfu::SfuError::UnknownParticipant(_))
    ));
    assert!(matches!(
        net.sfu
            .add_participant(now, CallId(7), ParticipantId(1), offer()),
        Err(conclave_sfu::SfuError::DuplicateParticipant(_))
    ));
}

#[test]
fn video_survives_packet_loss_intact_and_receivers_send_nacks() {
    let mut net = Net::new();
    for n in 1..=3 {
        net.join(n);
    }
    net.run(Duration::from_millis(500));
    net.lose_every = Some(10);
    net.run(Duration::from_secs(2));
    net.lose_every = None;
    assert!(net.lost > 50, "lost {}", net.lost);
    // A gap that retransmission did not fill holds a receiver's frames back for up to str0m's
    // video reordering timeout (2 s) before it moves on.
    net.run(Duration::from_secs(4));
    let before: Vec<u64> = net
        .clients
        .iter()
        .flat_map(|rx| net.clients.iter().map(move |tx| rx.count(tx, true)))
        .collect();
    net.run(Duration::from_secs(2));

    for (i, rx) in net.clients.iter().enumerate() {
        assert_eq!(rx.corrupt, 0, "{} got a damaged frame", rx.id);
        let nacks: u64 = rx.nacks_sent.values().sum();
        assert!(nacks > 0, "{} sent no NACK", rx.id);
        for (j, tx) in net.clients.iter().enumerate() {
            if i != j {
                // Once the loss stops, every stream is whole again (about 30 frames a second).
                let got = rx.count(tx, true) - before[i * net.clients.len() + j];
                assert!(
                    got >= 50,
                    "{} got {got} frames from {} after loss",
                    rx.id,
                    tx.id
                );
            }
        }
    }
    let stats = net.sfu.stats();
    assert_eq!(stats.rtc_errors + stats.malformed + stats.unroutable, 0);
}

/// Simulcast: a receiver behind a link too narrow for the high layer ends up on the low one,
/// from the loss it reports, while a receiver with room gets the high layer.
#[test]
fn a_receiver_on_a_narrow_link_gets_the_low_simulcast_layer() {
    let mut net = Net::new();
    net.join_simulcast(1);
    net.join(2);
    net.join(3);
    // only 1 sends video
    net.client_mut(2).video_on = false;
    net.client_mut(3).video_on = false;
    // 500 kbit/s towards participant 3: the low layer (~120 kbit/s) and two voices fit, the
    // high layer (~1.2 Mbit/s) does not.
    let narrow = net.client(3).addr;
    net.narrow = Some((narrow, Bucket::new(500_000.0, net.now)));
    net.run(Duration::from_secs(15));
    let (wide, narrow) = (net.client(2), net.client(3));
    let before = |c: &Client, high| c.layers_received.get(&(1, high)).copied().unwrap_or(0);
    let (wide_high, wide_low) = (before(wide, true), before(wide, false));
    let (narrow_high, narrow_low) = (before(narrow, true), before(narrow, false));
    net.run(Duration::from_secs(10));
    let (wide, narrow) = (net.client(2), net.client(3));
    let got = |c: &Client, high, before: u64| {
        c.layers_received.get(&(1, high)).copied().unwrap_or(0) - before
    };
    let (wide_high, wide_low) = (got(wide, true, wide_high), got(wide, false, wide_low));
    let (narrow_high, narrow_low) = (
        got(narrow, true, narrow_high),
        got(narrow, false, narrow_low),
    );
    // 10 s at 30 frames a second: 300 frames of one layer or the other
    assert!(
        wide_high > 250 && wide_low < 30,
        "the wide receiver got {wide_high} high and {wide_low} low frames"
    );
    assert!(
        narrow_low > 200 && narrow_high < narrow_low / 4,
        "the narrow receiver got {narrow_high} high and {narrow_low} low frames"
    );
    for c in &net.clients {
        assert_eq!(c.corrupt, 0, "{} got corrupt frames", c.id);
    }
}

/// With one video packet in ten lost on each hop, every frame still arrives: the SFU asks the
/// sender again for what it missed and forwards the retransmission when it comes, and answers
/// a receiver's NACKs for what was lost on the way to it from its own cache.
#[test]
fn lost_video_packets_are_repaired_by_nack_and_rtx() {
    let mut net = Net::new();
    for n in 1..=3 {
        net.join(n);
    }
    net.run(Duration::from_millis(500));
    let before: Vec<u64> = net
        .clients
        .iter()
        .flat_map(|rx| net.clients.iter().map(move |tx| rx.count(tx, true)))
        .collect();
    let sent_before: Vec<u16> = net.clients.iter().map(|c| c.video_seq).collect();

    // One video packet in ten is lost, on the way to the SFU and on the way from it.
    net.lose_every = Some(10);
    net.run(Duration::from_secs(3));
    net.lose_every = None;
    net.run(Duration::from_millis(500));
    assert!(net.lost > 100, "lost {}", net.lost);

    let after: Vec<u64> = net
        .clients
        .iter()
        .flat_map(|rx| net.clients.iter().map(move |tx| rx.count(tx, true)))
        .collect();
    let sent: Vec<u16> = net
        .clients
        .iter()
        .zip(&sent_before)
        .map(|(c, b)| c.video_seq - b)
        .collect();
    for (i, rx) in net.clients.iter().enumerate() {
        assert_eq!(rx.corrupt, 0);
        for (j, tx) in net.clients.iter().enumerate() {
            if i == j {
                continue;
            }
            let k = i * net.clients.len() + j;
            let got = after[k] - before[k];
            // Each frame is 2-3 packets, so without retransmission about a quarter of the
            // frames would be lost on each of the two hops.
            assert!(
                got + 3 >= u64::from(sent[j]),
                "{} got {got} of {} video frames from {}",
                rx.id,
                sent[j],
                tx.id
            );
        }
    }
}
