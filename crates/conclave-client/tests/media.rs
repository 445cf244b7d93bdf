//! Whole calls of native participants' media through the real SFU core in virtual time:
//! `Media` state machines send the bundled VP8 and Opus samples, SFrame-sealed, through a
//! `conclave_sfu::Sfu`, and every datagram moves in memory. No sockets, no sleeps.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use conclave_client::media::files::{sample_audio, sample_video, Ivf, OggOpus};
use conclave_client::media::{
    KeyframeCause, Kind, Media, MediaEvent, Output, ReceivedFrame, Slots,
};
use conclave_frame::{Codec, FrameConfig, FrameCrypto};
use conclave_sfu::{CallId, Output as SfuOutput, ParticipantId, Sfu, Transmit};
use str0m::change::SdpAnswer;
use str0m::format::Codec as RtpCodec;
use str0m::media::{Direction, MediaKind, MediaTime, Mid};
use str0m::net::Receive;
use str0m::{Candidate, Event, Input, Rtc};

const SFU_ADDR: &str = "10.0.0.1:3478";
const TICK: Duration = Duration::from_millis(2);
const CALL: CallId = CallId(1);
const SECRET_1: [u8; 16] = [0x11; 16];
const SECRET_2: [u8; 16] = [0x22; 16];

/// A native participant: its `Media` and what it sent and received.
struct Peer {
    leaf: u32,
    addr: SocketAddr,
    media: Media,
    inbox: VecDeque<Transmit>,
    sending: bool,
    next_audio: Instant,
    next_video: Instant,
    audio_i: usize,
    video_i: usize,
    /// The plaintext of every frame sent, in order.
    sent_audio: Vec<Vec<u8>>,
    sent_video: Vec<Vec<u8>>,
    /// Every frame surfaced, with the instant it was.
    received: Vec<(Instant, ReceivedFrame)>,
    keyframe_causes: Vec<KeyframeCause>,
    connected: bool,
}

impl Peer {
    /// Frames from `leaf` of `kind`, in arrival order.
    fn from(&self, leaf: u32, kind: Kind) -> Vec<&ReceivedFrame> {
        self.received
            .iter()
            .map(|(_, f)| f)
            .filter(|f| f.sender_leaf == leaf && f.kind == kind)
            .collect()
    }

    fn count_since(&self, since: Instant, leaf: u32, kind: Kind) -> usize {
        self.received
            .iter()
            .filter(|(at, f)| *at >= since && f.sender_leaf == leaf && f.kind == kind)
            .count()
    }

    /// Sends what is due at the files' real rate: an Opus packet every 20 ms and a VP8 frame
    /// every 1/15 s, looping over the files; a key frame when one is wanted.
    fn send_media(&mut self, now: Instant, audio: &OggOpus, video: &Ivf) {
        if !self.sending || !self.media.is_connected() {
            return;
        }
        if now >= self.next_audio {
            let packet = &audio.packets[self.audio_i % audio.packets.len()];
            self.media.send_audio(now, &packet.data).unwrap();
            self.sent_audio.push(packet.data.clone());
            self.audio_i += 1;
            self.next_audio += packet.duration();
        }
        if now >= self.next_video {
            if self.media.keyframe_wanted() {
                while !video.frames[self.video_i % video.frames.len()].keyframe {
                    self.video_i += 1;
                }
            }
            let frame = &video.frames[self.video_i % video.frames.len()];
            self.media
                .send_video(now, &frame.data, frame.keyframe)
                .unwrap();
            self.sent_video.push(frame.data.clone());
            self.video_i += 1;
            self.next_video += video.frame_interval().unwrap();
        }
    }

    fn poll(&mut self, now: Instant, to_sfu: &mut Vec<Transmit>) {
        loop {
            match self.media.poll_output() {
                Output::Timeout(_) => return,
                Output::Transmit(t) => to_sfu.push(Transmit {
                    source: t.source,
                    destination: t.destination,
                    contents: t.contents,
                }),
                Output::Event(MediaEvent::Connected) => {
                    self.connected = true;
                    self.next_audio = now;
                    self.next_video = now;
                }
                Output::Event(MediaEvent::Frame(frame)) => self.received.push((now, frame)),
                Output::Event(MediaEvent::KeyframeRequested(cause)) => {
                    self.keyframe_causes.push(cause)
                }
                Output::Event(other) => panic!("unexpected {other:?}"),
            }
        }
    }
}

/// A participant that is no member: a bare `str0m` client writing whatever it likes as media.
struct Hostile {
    addr: SocketAddr,
    rtc: Rtc,
    audio: Mid,
    video: Mid,
    inbox: VecDeque<Transmit>,
    connected: bool,
    /// Sealed frames forwarded to it by the SFU, to replay.
    captured: Vec<(bool, Vec<u8>)>,
}

impl Hostile {
    fn write(&mut self, now: Instant, video: bool, bytes: Vec<u8>, n: u64) {
        let (mid, codec) = if video {
            (self.video, RtpCodec::Vp8)
        } else {
            (self.audio, RtpCodec::Opus)
        };
        let writer = self.rtc.writer(mid).unwrap();
        let pt = writer
            .payload_params()
            .find(|p| p.spec().codec == codec)
            .unwrap()
            .pt();
        let time = if video {
            MediaTime::from_90khz(n * 6000)
        } else {
            MediaTime::from_millis(n * 20).rebase(str0m::media::Frequency::FORTY_EIGHT_KHZ)
        };
        writer.write(pt, now, time, bytes).unwrap();
    }

    fn poll(&mut self, to_sfu: &mut Vec<Transmit>) {
        loop {
            match self.rtc.poll_output().unwrap() {
                str0m::Output::Timeout(_) => return,
                str0m::Output::Transmit(t) => to_sfu.push(Transmit {
                    source: t.source,
                    destination: t.destination,
                    contents: t.contents.into(),
                }),
                str0m::Output::Event(Event::Connected) => self.connected = true,
                str0m::Output::Event(Event::MediaData(data)) => self
                    .captured
                    .push((data.params.spec().codec.is_video(), data.data.to_vec())),
                str0m::Output::Event(_) => {}
            }
        }
    }
}

struct Net {
    sfu: Sfu,
    sfu_addr: SocketAddr,
    peers: Vec<Peer>,
    hostile: Option<Hostile>,
    now: Instant,
    audio: OggOpus,
    video: Ivf,
    offers: Vec<String>,
}

impl Net {
    fn new() -> Net {
        let sfu_addr: SocketAddr = SFU_ADDR.parse().unwrap();
        let now = Instant::now();
        Net {
            sfu: Sfu::new(sfu_addr, now),
            sfu_addr,
            peers: Vec::new(),
            hostile: None,
            now,
            audio: sample_audio(),
            video: sample_video(),
            offers: Vec::new(),
        }
    }

    /// A participant with leaf `leaf` holding epoch 1 of a call of `members` joins.
    fn join(&mut self, leaf: u32, members: &[u32]) {
        let addr: SocketAddr = format!("10.0.1.{}:5000", leaf + 1).parse().unwrap();
        let now = self.now;
        let mut media = Media::new(now);
        media.add_local_address(addr, now).unwrap();
        media.set_epoch(1, &SECRET_1, leaf, members, now).unwrap();
        let offer = media.offer().unwrap();
        self.offers.push(offer.clone());
        let id = ParticipantId(u64::from(leaf) + 1);
        let answer = self
            .sfu
            .add_participant(now, CALL, id, offer.parse().unwrap())
            .unwrap();
        media.accept_answer(&answer).unwrap();
        self.peers.push(Peer {
            leaf,
            addr,
            media,
            inbox: VecDeque::new(),
            sending: true,
            next_audio: now,
            next_video: now,
            audio_i: 0,
            video_i: 0,
            sent_audio: Vec::new(),
            sent_video: Vec::new(),
            received: Vec::new(),
            keyframe_causes: Vec::new(),
            connected: false,
        });
    }

    fn join_hostile(&mut self) {
        let addr: SocketAddr = "10.0.9.9:5000".parse().unwrap();
        let now = self.now;
        let mut rtc = Rtc::builder()
            .set_crypto_provider(std::sync::Arc::new(str0m::crypto::from_feature_flags()))
            .build(now);
        rtc.add_local_candidate(Candidate::host(addr, "udp").unwrap());
        let mut change = rtc.sdp_api();
        let audio = change.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None);
        let video = change.add_media(MediaKind::Video, Direction::SendOnly, None, None, None);
        for kind in [MediaKind::Audio, MediaKind::Video] {
            for _ in 0..4 {
                change.add_media(kind, Direction::RecvOnly, None, None, None);
            }
        }
        let (offer, pending) = change.apply().unwrap();
        let answer = self
            .sfu
            .add_participant(
                now,
                CALL,
                ParticipantId(99),
                offer.to_sdp_string().parse().unwrap(),
            )
            .unwrap();
        rtc.sdp_api()
            .accept_answer(pending, SdpAnswer::from_sdp_string(&answer).unwrap())
            .unwrap();
        self.hostile = Some(Hostile {
            addr,
            rtc,
            audio,
            video,
            inbox: VecDeque::new(),
            connected: false,
            captured: Vec::new(),
        });
    }

    fn peer(&self, leaf: u32) -> &Peer {
        self.peers.iter().find(|p| p.leaf == leaf).unwrap()
    }

    fn peer_mut(&mut self, leaf: u32) -> &mut Peer {
        self.peers.iter_mut().find(|p| p.leaf == leaf).unwrap()
    }

    /// Moves every datagram and SDP until nobody has anything more to say.
    fn settle(&mut self) {
        loop {
            let mut moved = false;
            loop {
                match self.sfu.poll_output() {
                    SfuOutput::Timeout(_) => break,
                    SfuOutput::Transmit(t) => {
                        if let Some(p) = self.peers.iter_mut().find(|p| p.addr == t.destination) {
                            p.inbox.push_back(t);
                        } else if let Some(h) =
                            self.hostile.as_mut().filter(|h| h.addr == t.destination)
                        {
                            h.inbox.push_back(t);
                        }
                        moved = true;
                    }
                    SfuOutput::Event(_) => {}
                }
            }
            let now = self.now;
            let mut to_sfu = Vec::new();
            for p in &mut self.peers {
                while let Some(t) = p.inbox.pop_front() {
                    p.media
                        .handle_receive(now, t.source, t.destination, &t.contents)
                        .unwrap();
                    moved = true;
                }
                p.poll(now, &mut to_sfu);
            }
            if let Some(h) = &mut self.hostile {
                while let Some(t) = h.inbox.pop_front() {
                    let input = Input::Receive(
                        now,
                        Receive {
                            proto: str0m::net::Protocol::Udp,
                            source: t.source,
                            destination: t.destination,
                            contents: t.contents.as_slice().try_into().unwrap(),
                        },
                    );
                    h.rtc.handle_input(input).unwrap();
                    moved = true;
                }
                h.poll(&mut to_sfu);
            }
            for t in to_sfu {
                assert_eq!(t.destination, self.sfu_addr);
                self.sfu
                    .handle_receive(now, t.source, t.destination, &t.contents)
                    .unwrap();
                moved = true;
            }
            if !moved {
                return;
            }
        }
    }

    /// Runs the call for `duration` of virtual time, participants sending media all along.
    fn run(&mut self, duration: Duration) {
        let end = self.now + duration;
        while self.now < end {
            self.now += TICK;
            let now = self.now;
            self.sfu.handle_timeout(now);
            for p in &mut self.peers {
                p.media.handle_timeout(now);
                p.send_media(now, &self.audio, &self.video);
            }
            if let Some(h) = &mut self.hostile {
                h.rtc.handle_input(Input::Timeout(now)).unwrap();
            }
            self.settle();
        }
    }
}

/// Whether `got` appears in `sent` in order (frames may be missing, never reordered, altered
/// or invented).
fn in_order(got: &[&ReceivedFrame], sent: &[Vec<u8>]) -> bool {
    let mut sent = sent.iter();
    got.iter()
        .all(|f| sent.by_ref().any(|s| s.as_slice() == f.frame.as_slice()))
}

/// Every participant opened every other's audio and video intact, in order, attributed to the
/// right leaf (the SFU names the origin in the m-line's stream id).
fn assert_full_mesh(net: &Net, min_audio: usize, min_video: usize) {
    for rx in &net.peers {
        for tx in &net.peers {
            if rx.leaf == tx.leaf {
                assert!(rx.from(rx.leaf, Kind::Audio).is_empty());
                continue;
            }
            let audio = rx.from(tx.leaf, Kind::Audio);
            let video = rx.from(tx.leaf, Kind::Video);
            println!(
                "leaf {} got {} audio and {} video frames from leaf {} (sent {} and {})",
                rx.leaf,
                audio.len(),
                video.len(),
                tx.leaf,
                tx.sent_audio.len(),
                tx.sent_video.len()
            );
            assert!(
                audio.len() >= min_audio && video.len() >= min_video,
                "leaf {} got {} audio and {} video frames from leaf {}",
                rx.leaf,
                audio.len(),
                video.len(),
                tx.leaf
            );
            assert!(
                in_order(&audio, &tx.sent_audio),
                "audio altered or reordered"
            );
            assert!(
                in_order(&video, &tx.sent_video),
                "video altered or reordered"
            );
            assert!(audio.iter().all(|f| f.codec == Codec::Opus));
            assert!(video.iter().all(|f| f.codec == Codec::Vp8));
            let stats = rx.media.stats().from_leaf(tx.leaf);
            assert_eq!(stats.audio_frames, audio.len() as u64);
            assert_eq!(stats.video_frames, video.len() as u64);
            let bytes: usize = video.iter().map(|f| f.frame.len()).sum();
            assert_eq!(stats.video_bytes, bytes as u64);
        }
    }
}

#[test]
fn three_participants_open_each_others_real_audio_and_video() {
    let mut net = Net::new();
    for leaf in 0..3 {
        net.join(leaf, &[0, 1, 2]);
    }
    net.run(Duration::from_secs(3));

    assert!(net.peers.iter().all(|p| p.connected));
    // 3 s at 50 audio and 15 video frames a second, minus connecting and negotiating.
    assert_full_mesh(&net, 120, 35);
    // In fact every frame sent once connected arrived (the m-lines were negotiated first).
    for rx in &net.peers {
        for tx in net.peers.iter().filter(|tx| tx.leaf != rx.leaf) {
            assert_eq!(rx.from(tx.leaf, Kind::Audio).len(), tx.sent_audio.len());
            assert_eq!(rx.from(tx.leaf, Kind::Video).len(), tx.sent_video.len());
        }
    }
    if std::env::var_os("SHOW_SDP").is_some() {
        println!("a participant's offer:\n{}", net.offers[0]);
    }
    for p in &net.peers {
        let s = p.media.stats();
        assert_eq!(s.dropped.total(), 0, "leaf {}: {:?}", p.leaf, s.dropped);
        assert_eq!(s.datagrams_malformed + s.datagrams_refused, 0);
        assert!(s.keyframes_sent >= 1);
        println!("leaf {} stats {s:?}", p.leaf);
    }
    // Each offered its own two tracks and the default slots; nobody renegotiated.
    let slots = Slots::default();
    for offer in &net.offers {
        assert_eq!(offer.matches("a=sendonly").count(), 2);
        assert_eq!(
            offer.matches("a=recvonly").count(),
            slots.audio + slots.video
        );
    }
    let sfu = net.sfu.stats();
    assert_eq!(sfu.malformed + sfu.unroutable + sfu.rtc_errors, 0);
}

#[test]
fn media_keeps_flowing_across_an_epoch_change() {
    let mut net = Net::new();
    for leaf in 0..3 {
        net.join(leaf, &[0, 1, 2]);
    }
    net.run(Duration::from_secs(2));
    let change = net.now;
    for p in &mut net.peers {
        p.keyframe_causes.clear();
        p.media
            .set_epoch(2, &SECRET_2, p.leaf, &[0, 1, 2], change)
            .unwrap();
    }
    // The server asks every sender for a key frame after the commit.
    net.sfu.request_keyframes(CALL);
    net.run(Duration::from_secs(3));

    for rx in &net.peers {
        assert!(rx.keyframe_causes.contains(&KeyframeCause::NewEpoch));
        assert!(
            rx.keyframe_causes.contains(&KeyframeCause::Pli),
            "leaf {} got no PLI: {:?}",
            rx.leaf,
            rx.keyframe_causes
        );
        for tx in &net.peers {
            if tx.leaf == rx.leaf {
                continue;
            }
            let after: Vec<&ReceivedFrame> = rx
                .received
                .iter()
                .filter(|(at, f)| *at > change && f.sender_leaf == tx.leaf)
                .map(|(_, f)| f)
                .collect();
            let epoch_2 = after.iter().filter(|f| f.epoch == 2).count();
            assert!(
                epoch_2 >= 140,
                "leaf {} got {epoch_2} epoch-2 frames",
                rx.leaf
            );
            // Only frames already in flight open under epoch 1 after the change.
            assert!(after.iter().filter(|f| f.epoch == 1).count() <= 6);
        }
        let s = rx.media.stats();
        assert_eq!(s.dropped.total(), 0, "leaf {}: {:?}", rx.leaf, s.dropped);
        assert!(s.keyframes_sent >= 3);
    }
    assert_full_mesh(&net, 200, 60);
}

#[test]
fn a_removed_member_opens_nothing_sent_after_the_change() {
    let mut net = Net::new();
    for leaf in 0..3 {
        net.join(leaf, &[0, 1, 2]);
    }
    net.run(Duration::from_secs(2));
    let before = net.peer(2).from(0, Kind::Video).len();
    assert!(before >= 20);

    // Leaf 2 is removed: the others move to epoch 2 without it; it never learns epoch 2 and
    // (a compromised SFU) keeps forwarding to it.
    let change = net.now;
    for leaf in [0, 1] {
        net.peer_mut(leaf)
            .media
            .set_epoch(2, &SECRET_2, leaf, &[0, 1], change)
            .unwrap();
    }
    let dropped_before = net.peer(2).media.stats().dropped;
    let sent_before: usize = [0, 1]
        .iter()
        .map(|&l| net.peer(l).sent_audio.len() + net.peer(l).sent_video.len())
        .sum();
    net.run(Duration::from_secs(3));

    let removed = net.peer(2);
    assert!(removed.received.iter().all(|(_, f)| f.epoch == 1));
    for leaf in [0, 1] {
        let late = removed.count_since(change + Duration::from_millis(200), leaf, Kind::Audio)
            + removed.count_since(change + Duration::from_millis(200), leaf, Kind::Video);
        assert_eq!(late, 0, "the removed member opened frames of leaf {leaf}");
    }
    let dropped = removed.media.stats().dropped;
    let unknown = dropped.unknown_epoch - dropped_before.unknown_epoch;
    // Every frame the two sent after the change (3 s of 50 + 15 frames a second each).
    let sent_after: usize = [0, 1]
        .iter()
        .map(|&l| net.peer(l).sent_audio.len() + net.peer(l).sent_video.len())
        .sum::<usize>()
        - sent_before;
    assert_eq!(unknown, sent_after as u64, "{dropped:?}");
    assert!(unknown >= 350);
    assert_eq!(dropped.authentication, 0);

    // The remaining two still hear each other under epoch 2.
    for (rx, tx) in [(0, 1), (1, 0)] {
        let got = net
            .peer(rx)
            .received
            .iter()
            .filter(|(at, f)| *at > change && f.sender_leaf == tx && f.epoch == 2)
            .count();
        assert!(got >= 180, "leaf {rx} got {got} from leaf {tx}");
    }
    // What the removed member still sends under epoch 1 opens only during the grace period
    // (2 s), and is then dropped as stale.
    for leaf in [0, 1] {
        let p = net.peer(leaf);
        let late = p.count_since(change + Duration::from_millis(2100), 2, Kind::Audio)
            + p.count_since(change + Duration::from_millis(2100), 2, Kind::Video);
        assert_eq!(late, 0);
        assert!(p.media.stats().dropped.stale_epoch > 0);
        println!("leaf {leaf} dropped {:?}", p.media.stats().dropped);
    }
    println!("removed leaf dropped {dropped:?}");
}

#[test]
fn forged_injected_and_replayed_frames_are_dropped_and_counted() {
    let mut net = Net::new();
    for leaf in 0..3 {
        net.join(leaf, &[0, 1, 2]);
    }
    net.join_hostile();
    net.run(Duration::from_secs(2));
    assert!(net.hostile.as_ref().unwrap().connected);

    // A member's keys for epoch 1, to forge "almost right" frames; and a wrong key.
    let mut insider = FrameCrypto::new(FrameConfig::default());
    insider.set_epoch(1, &SECRET_1, 1, &[0, 1, 2], 0).unwrap();
    let mut outsider = FrameCrypto::new(FrameConfig::default());
    outsider
        .set_epoch(1, &[0x99; 16], 1, &[0, 1, 2], 0)
        .unwrap();
    // Counters ahead of leaf 1's own, so that the forgeries are not mere replays: they must
    // fail authentication.
    for _ in 0..2000 {
        insider.seal(Codec::Opus, &[0]).unwrap();
        outsider.seal(Codec::Opus, &[0]).unwrap();
    }

    let video = net.video.clone();
    let audio = net.audio.clone();
    // The SFU starts a slot on a new video at a key frame: the hostile sends one first (in
    // clear, so it is dropped as well) and the counting starts after it.
    let keyframe = video.frames[0].data.clone();
    net.hostile
        .as_mut()
        .unwrap()
        .write(net.now, true, keyframe, 0);
    net.run(Duration::from_millis(100));
    let dropped_before: Vec<u64> = net
        .peers
        .iter()
        .map(|p| p.media.stats().dropped.total())
        .collect();
    let opened_before: Vec<usize> = net.peers.iter().map(|p| p.received.len()).collect();
    let mut written = 0u64;
    let mut x = 0x2545_f491u32;
    for n in 0..60u64 {
        let h = net.hostile.as_mut().unwrap();
        let now = net.now;
        let i = n as usize;
        let frame = match n % 5 {
            // Random bytes.
            0 => (0..200 + i * 7)
                .map(|_| {
                    x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                    (x >> 16) as u8
                })
                .collect(),
            // An unencrypted real frame.
            1 => video.frames[i % video.frames.len()].data.clone(),
            // Sealed under a wrong key, claiming leaf 1.
            2 => outsider
                .seal(Codec::Vp8, &video.frames[i % video.frames.len()].data)
                .unwrap(),
            // Sealed properly, then one byte of the ciphertext flipped.
            3 => {
                let mut f = insider
                    .seal(Codec::Vp8, &video.frames[i % video.frames.len()].data)
                    .unwrap();
                let last = f.len() - 5;
                f[last] ^= 0x01;
                f
            }
            // A real sealed frame of a member, captured and replayed.
            _ => {
                let (_, f) = h.captured.iter().rev().find(|(v, _)| *v).unwrap().clone();
                f
            }
        };
        h.write(now, true, frame, n + 1);
        // And forged audio: random bytes and unencrypted Opus.
        let opus = if n % 2 == 0 {
            audio.packets[i % audio.packets.len()].data.clone()
        } else {
            outsider
                .seal(Codec::Opus, &audio.packets[i % audio.packets.len()].data)
                .unwrap()
        };
        h.write(now, false, opus, n + 1);
        written += 2;
        net.run(Duration::from_millis(66));
    }

    for (k, rx) in net.peers.iter().enumerate() {
        let s = rx.media.stats();
        let dropped = s.dropped.total() - dropped_before[k];
        println!(
            "leaf {} dropped {dropped} of {written}: {:?}",
            rx.leaf, s.dropped
        );
        assert_eq!(
            dropped, written,
            "leaf {} dropped {dropped} of {written} forged frames",
            rx.leaf
        );
        assert!(s.dropped.authentication >= 30, "{:?}", s.dropped);
        // Replays of others' frames, and of its own (reflected).
        assert!(
            s.dropped.replayed + s.dropped.reflected >= 10,
            "{:?}",
            s.dropped
        );
        // Nothing forged was surfaced: every frame after the attack began came from a real
        // member's stream, intact.
        for (_, f) in &rx.received[opened_before[k]..] {
            let tx = net.peer(f.sender_leaf);
            let sent = match f.kind {
                Kind::Audio => &tx.sent_audio,
                Kind::Video => &tx.sent_video,
            };
            assert!(sent.contains(&f.frame));
        }
    }
    // The call went on for the members.
    assert_full_mesh(&net, 150, 40);
}

#[test]
fn misuse_and_bad_input_are_errors_not_panics() {
    let now = Instant::now();
    let addr: SocketAddr = "10.0.1.1:5000".parse().unwrap();
    let mut media = Media::new(now);
    media.add_local_address(addr, now).unwrap();
    assert!(
        media.add_local_address(addr, now).is_err(),
        "one address per connection"
    );
    assert!(media.accept_answer("v=0").is_err());
    assert!(media.send_audio(now, &[1, 2, 3]).is_err());
    assert!(media.send_video(now, &[0; 20], true).is_err());
    let _offer = media.offer().unwrap();
    assert!(media.offer().is_err());
    assert!(media.accept_answer("garbage").is_err());
    // Garbage datagrams are counted, never a panic.
    let from: SocketAddr = "10.0.0.1:3478".parse().unwrap();
    let mut x = 7u32;
    for len in [0usize, 1, 2, 12, 20, 100, 1500, 9000] {
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                (x >> 16) as u8
            })
            .collect();
        let _ = media.handle_receive(now, from, addr, &bytes);
    }
    let s = media.stats();
    assert!(s.datagrams_malformed + s.datagrams_refused > 0);
    media.handle_timeout(now + Duration::from_millis(10));
    while !matches!(media.poll_output(), Output::Timeout(_)) {}
    // Epochs must move forward.
    media.set_epoch(3, &SECRET_1, 0, &[0], now).unwrap();
    assert!(media.set_epoch(3, &SECRET_2, 0, &[0], now).is_err());
    assert!(media.set_epoch(4, &[1; 3], 0, &[0], now).is_err());
    assert_eq!(media.epoch(), Some(3));
}
