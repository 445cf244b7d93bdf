//! Malformed and hostile datagrams thrown at a live call, in virtual time: two str0m client
//! `Rtc`s send audio and video to each other through the `Sfu` while the test feeds it
//! truncated and garbled RTP, RTCP, STUN and DTLS, from the participants' own addresses (where
//! the SFU routes them to a participant's `Rtc`) and from addresses nobody uses. Each datagram
//! must be refused with the documented reason and counted, or taken and silently dropped by
//! the participant's WebRTC stack; none may panic, and the call must go on forwarding.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use conclave_sfu::{CallId, Offer, Output, ParticipantId, ReceiveError, Sfu, SfuEvent};
use str0m::change::SdpAnswer;
use str0m::format::Codec;
use str0m::media::{Direction, Frequency, MediaKind, MediaTime, Mid};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Rtc};

const SFU_ADDR: &str = "10.0.0.1:3478";
const STEP: Duration = Duration::from_millis(2);

/// What a participant last sent to the SFU, by kind, to build malformed variants from.
#[derive(Default)]
struct Captured {
    stun: Option<Vec<u8>>,
    rtp_video: Option<Vec<u8>>,
    rtcp: Option<Vec<u8>>,
}

/// A participant: a str0m client sending one audio and one video track.
struct Client {
    id: ParticipantId,
    addr: SocketAddr,
    rtc: Rtc,
    audio: Mid,
    video: Mid,
    connected: bool,
    seq: u16,
    next_video: Instant,
    /// Frames received per sender (the first payload byte names it), and damaged ones.
    received: BTreeMap<u8, u64>,
    damaged: u64,
    captured: Captured,
}

/// A frame that says who sent it and is otherwise a fixed pattern; it starts with an even
/// byte, which VP8 reads as a key frame.
fn payload(sender: u8, len: usize) -> Vec<u8> {
    let mut out = vec![0x10, sender];
    out.extend((0..len - 2).map(|i| (i % 251) as u8));
    out
}

fn is_payload(bytes: &[u8]) -> bool {
    bytes.len() > 2
        && bytes[0] == 0x10
        && bytes[2..]
            .iter()
            .enumerate()
            .all(|(i, b)| *b == (i % 251) as u8)
}

impl Client {
    fn join(sfu: &mut Sfu, now: Instant, n: u8) -> Client {
        let addr: SocketAddr = format!("10.0.1.{n}:5000").parse().unwrap();
        let mut rtc = Rtc::builder()
            .set_crypto_provider(Arc::new(str0m::crypto::from_feature_flags()))
            .build(now);
        rtc.add_local_candidate(Candidate::host(addr, "udp").unwrap());
        let mut change = rtc.sdp_api();
        let audio = change.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None);
        let video = change.add_media(MediaKind::Video, Direction::SendOnly, None, None, None);
        // one slot of each kind: the call has two participants
        change.add_media(MediaKind::Audio, Direction::RecvOnly, None, None, None);
        change.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
        let (offer, pending) = change.apply().unwrap();
        let id = ParticipantId(u64::from(n));
        let answer = sfu
            .add_participant(now, CallId(1), id, offer.to_sdp_string().parse().unwrap())
            .unwrap();
        rtc.sdp_api()
            .accept_answer(pending, SdpAnswer::from_sdp_string(&answer).unwrap())
            .unwrap();
        Client {
            id,
            addr,
            rtc,
            audio,
            video,
            connected: false,
            seq: 0,
            next_video: now,
            received: BTreeMap::new(),
            damaged: 0,
            captured: Captured::default(),
        }
    }

    fn number(&self) -> u8 {
        u8::try_from(self.id.0).unwrap()
    }

    /// One audio frame every step (the pace does not matter here), one video frame every
    /// 30 ms.
    fn send_media(&mut self, now: Instant) {
        if !self.connected {
            return;
        }
        let me = self.number();
        let seq = self.seq;
        self.seq = self.seq.wrapping_add(1);
        let writer = self.rtc.writer(self.audio).unwrap();
        let pt = writer
            .payload_params()
            .find(|p| p.spec().codec == Codec::Opus)
            .unwrap()
            .pt();
        let time = MediaTime::new(u64::from(seq) * 960, Frequency::FORTY_EIGHT_KHZ);
        writer.write(pt, now, time, payload(me, 100)).unwrap();
        if now >= self.next_video {
            self.next_video = now + Duration::from_millis(30);
            let writer = self.rtc.writer(self.video).unwrap();
            let pt = writer
                .payload_params()
                .find(|p| p.spec().codec == Codec::Vp8)
                .unwrap()
                .pt();
            let time = MediaTime::from_90khz(u64::from(seq) * 3000);
            writer.write(pt, now, time, payload(me, 1800)).unwrap();
        }
    }

    /// Drains the client, returning what it sends and noting a sample of each kind.
    fn poll(&mut self) -> Vec<(SocketAddr, SocketAddr, Vec<u8>)> {
        let mut out = Vec::new();
        loop {
            match self.rtc.poll_output().unwrap() {
                str0m::Output::Timeout(_) => return out,
                str0m::Output::Transmit(t) => {
                    let bytes = t.contents.to_vec();
                    let c = &mut self.captured;
                    match bytes.first() {
                        Some(0..=1) => c.stun = Some(bytes.clone()),
                        Some(128..=191) if (64..96).contains(&(bytes[1] & 0x7f)) => {
                            c.rtcp = Some(bytes.clone());
                        }
                        Some(128..=191) if bytes.len() > 500 => c.rtp_video = Some(bytes.clone()),
                        _ => {}
                    }
                    out.push((t.source, t.destination, bytes));
                }
                str0m::Output::Event(Event::Connected) => self.connected = true,
                str0m::Output::Event(Event::MediaData(data)) => {
                    if is_payload(&data.data) {
                        *self.received.entry(data.data[1]).or_default() += 1;
                    } else {
                        self.damaged += 1;
                    }
                }
                str0m::Output::Event(_) => {}
            }
        }
    }
}

/// The SFU, two participants and a virtual clock.
struct Net {
    sfu: Sfu,
    sfu_addr: SocketAddr,
    clients: Vec<Client>,
    now: Instant,
    events: Vec<SfuEvent>,
    /// Where the SFU sent datagrams that are no participant's address.
    strays: Vec<SocketAddr>,
}

impl Net {
    /// A call of two participants, running for a second so media flows both ways.
    fn call() -> Net {
        let sfu_addr: SocketAddr = SFU_ADDR.parse().unwrap();
        let now = Instant::now();
        let mut sfu = Sfu::new(sfu_addr, now);
        let clients = (1..=2).map(|n| Client::join(&mut sfu, now, n)).collect();
        let mut net = Net {
            sfu,
            sfu_addr,
            clients,
            now,
            events: Vec::new(),
            strays: Vec::new(),
        };
        net.run(Duration::from_secs(1));
        assert!(net.clients.iter().all(|c| c.connected));
        assert!(net.frames(1, 2) > 20 && net.frames(2, 1) > 20);
        let c = &net.clients[0].captured;
        assert!(c.stun.is_some() && c.rtp_video.is_some() && c.rtcp.is_some());
        net
    }

    /// Frames `to` received intact from `from`.
    fn frames(&self, from: u8, to: u8) -> u64 {
        let rx = &self.clients[usize::from(to - 1)];
        rx.received.get(&from).copied().unwrap_or(0)
    }

    fn member(&self, n: u8) -> SocketAddr {
        self.clients[usize::from(n - 1)].addr
    }

    /// Carries every datagram and offer until nobody has anything more to say. Legitimate
    /// traffic is never refused.
    fn settle(&mut self) {
        loop {
            let mut moved = false;
            loop {
                match self.sfu.poll_output() {
                    Output::Timeout(_) => break,
                    Output::Transmit(t) => {
                        moved = true;
                        let Some(c) = self.clients.iter_mut().find(|c| c.addr == t.destination)
                        else {
                            self.strays.push(t.destination);
                            continue;
                        };
                        let input = Input::Receive(
                            self.now,
                            Receive {
                                proto: Protocol::Udp,
                                source: t.source,
                                destination: t.destination,
                                contents: t.contents.as_slice().try_into().unwrap(),
                            },
                        );
                        c.rtc.handle_input(input).unwrap();
                    }
                    Output::Event(e) => self.events.push(e),
                }
            }
            let sent: Vec<_> = self.clients.iter_mut().flat_map(Client::poll).collect();
            for (source, destination, bytes) in sent {
                moved = true;
                self.sfu
                    .handle_receive(self.now, source, destination, &bytes)
                    .expect("the SFU takes its participants' datagrams");
            }
            if !moved {
                return;
            }
        }
    }

    fn run(&mut self, duration: Duration) {
        let end = self.now + duration;
        while self.now < end {
            self.now += STEP;
            let now = self.now;
            self.sfu.handle_timeout(now);
            for c in &mut self.clients {
                c.rtc.handle_input(Input::Timeout(now)).unwrap();
                c.send_media(now);
            }
            self.settle();
        }
    }

    /// Feeds one datagram, checks the verdict and that exactly the matching counter moved,
    /// and lets the SFU answer whatever it answers.
    fn expect(
        &mut self,
        what: &str,
        from: SocketAddr,
        bytes: &[u8],
        verdict: Result<(), ReceiveError>,
    ) {
        let before = self.sfu.stats();
        let got = self
            .sfu
            .handle_receive(self.now, from, self.sfu_addr, bytes);
        assert_eq!(got, verdict, "{what} from {from}");
        let after = self.sfu.stats();
        let mut expected = before;
        match verdict {
            Ok(()) => {}
            Err(ReceiveError::Malformed) => expected.malformed += 1,
            Err(ReceiveError::Unroutable) => expected.unroutable += 1,
            Err(ReceiveError::Refused) => expected.rtc_errors += 1,
            Err(e) => panic!("a verdict this test does not know: {e:?}"),
        }
        assert_eq!(
            (after.malformed, after.unroutable, after.rtc_errors),
            (expected.malformed, expected.unroutable, expected.rtc_errors),
            "{what} from {from} is counted as {verdict:?}"
        );
        self.settle();
    }

    /// The call goes on: both directions keep forwarding intact frames, and nobody was
    /// disconnected.
    fn assert_still_forwarding(&mut self) {
        let before = (self.frames(1, 2), self.frames(2, 1));
        self.run(Duration::from_millis(500));
        let after = (self.frames(1, 2), self.frames(2, 1));
        assert!(
            after.0 > before.0 + 20 && after.1 > before.1 + 20,
            "frames 1->2 {before:?} -> {after:?}"
        );
        for c in &self.clients {
            assert_eq!(c.damaged, 0, "{} received a damaged frame", c.id);
        }
        assert!(
            !self
                .events
                .iter()
                .any(|e| matches!(e, SfuEvent::Disconnected { .. })),
            "{:?}",
            self.events
        );
    }
}

fn stranger() -> SocketAddr {
    "203.0.113.9:4000".parse().unwrap()
}

/// A STUN header: type, body length, magic cookie, transaction id.
fn stun_header(kind: u16, body_len: u16) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&kind.to_be_bytes());
    out.extend_from_slice(&body_len.to_be_bytes());
    out.extend_from_slice(&0x2112_a442u32.to_be_bytes());
    out.extend_from_slice(&[7; 12]);
    out
}

/// A binding request that parses (USERNAME, PRIORITY and a MESSAGE-INTEGRITY, which nobody
/// checks before routing) but names an ICE username no participant has.
fn stun_unknown_user() -> Vec<u8> {
    let mut attributes = Vec::new();
    for (kind, value) in [
        (0x0006u16, &b"nobody:nothing!!"[..]),   // USERNAME
        (0x0024, &[0x6e, 0x00, 0x01, 0xff][..]), // PRIORITY
        (0x0008, &[0x42; 20][..]),               // MESSAGE-INTEGRITY
    ] {
        attributes.extend_from_slice(&kind.to_be_bytes());
        attributes.extend_from_slice(&u16::try_from(value.len()).unwrap().to_be_bytes());
        attributes.extend_from_slice(value);
    }
    let mut out = stun_header(0x0001, u16::try_from(attributes.len()).unwrap());
    out.extend_from_slice(&attributes);
    out
}

#[test]
fn nothing_that_is_not_stun_dtls_rtp_or_rtcp_gets_in() {
    let mut net = Net::call();
    let member = net.member(1);
    for from in [member, stranger()] {
        net.expect("an empty datagram", from, &[], Err(ReceiveError::Malformed));
        net.expect(
            "0xff * 1500",
            from,
            &[0xff; 1500],
            Err(ReceiveError::Malformed),
        );
        net.expect("0x00 * 19", from, &[0; 19], Err(ReceiveError::Malformed));
        // Version 2 RTP needs at least three bytes to be told from RTCP.
        net.expect(
            "two RTP bytes",
            from,
            &[0x80, 0x60],
            Err(ReceiveError::Malformed),
        );
        // First bytes between the DTLS range (20..64) and RTP (128..192).
        net.expect("byte 0x50", from, &[0x50; 40], Err(ReceiveError::Malformed));
        net.expect("byte 0xc0", from, &[0xc0; 40], Err(ReceiveError::Malformed));
    }
    let stats = net.sfu.stats();
    assert_eq!(
        (stats.malformed, stats.unroutable, stats.rtc_errors),
        (12, 0, 0)
    );
    net.assert_still_forwarding();
}

#[test]
fn malformed_stun_is_refused_and_unknown_usernames_are_unroutable() {
    let mut net = Net::call();
    let member = net.member(1);
    let real = net.clients[0].captured.stun.clone().unwrap();
    for from in [member, stranger()] {
        // The length field promises a body that is not there.
        net.expect(
            "STUN with a bad length",
            from,
            &stun_header(0x0001, 100),
            Err(ReceiveError::Malformed),
        );
        // A length that is not a multiple of four.
        let mut odd = stun_header(0x0001, 3);
        odd.extend_from_slice(&[0; 3]);
        net.expect(
            "STUN with an odd length",
            from,
            &odd,
            Err(ReceiveError::Malformed),
        );
        // An attribute longer than the message.
        let mut attribute = stun_header(0x0001, 8);
        attribute.extend_from_slice(&[0x00, 0x06, 0x01, 0x00, b'a', b'b', b'c', b'd']);
        net.expect(
            "STUN with an attribute overrunning the message",
            from,
            &attribute,
            Err(ReceiveError::Malformed),
        );
        // A real binding request cut short.
        net.expect(
            "a truncated binding request",
            from,
            &real[..real.len() - 6],
            Err(ReceiveError::Malformed),
        );
    }
    // Well-formed, but nobody's username: a stranger's is routed nowhere. From a member's
    // nominated address the SFU hands everything to that member's `Rtc`, whose ICE agent
    // ignores a request for another username.
    net.expect(
        "STUN for an unknown username",
        stranger(),
        &stun_unknown_user(),
        Err(ReceiveError::Unroutable),
    );
    net.expect(
        "STUN for an unknown username",
        member,
        &stun_unknown_user(),
        Ok(()),
    );
    // A real request replayed from elsewhere names a real username: it reaches the member's
    // `Rtc` (ICE checks the integrity and the pair itself), and is dropped there.
    net.expect("a replayed binding request", stranger(), &real, Ok(()));
    // ICE answers a request whose integrity checks out wherever it comes from (that is how
    // peer-reflexive candidates are found): one response, no bigger than the request, and
    // media stays on the nominated pair.
    assert_eq!(net.strays, [stranger()]);
    net.assert_still_forwarding();
    assert_eq!(net.strays, [stranger()]);
}

#[test]
fn garbage_rtp_and_rtcp_from_a_member_are_dropped_by_its_stack() {
    let mut net = Net::call();
    let member = net.member(1);
    let rtp = net.clients[0].captured.rtp_video.clone().unwrap();
    let rtcp = net.clients[0].captured.rtcp.clone().unwrap();

    // RTP (version 2): a header cut short.
    let short = [0x80, 0x60, 0x00, 0x01, 0x00, 0x00];
    // Fifteen CSRCs announced in a packet that has room for none.
    let mut csrc = rtp[..12].to_vec();
    csrc[0] = 0x8f;
    // An extension header whose length runs past the packet.
    let mut extension = rtp[..16].to_vec();
    extension[0] = 0x90;
    extension[12..16].copy_from_slice(&[0xbe, 0xde, 0xff, 0xff]);
    // The member's real packet, its SRTP payload altered (authentication fails).
    let mut flipped = rtp.clone();
    let middle = flipped.len() / 2;
    flipped[middle] ^= 0x5a;
    // Padding bit set, and a padding length larger than the payload.
    let mut padding = rtp.clone();
    padding[0] |= 0x20;
    *padding.last_mut().unwrap() = 0xff;
    // RTCP: a sender report header with nothing behind it, a length field past the end,
    // and the member's real compound packet cut and altered.
    let rtcp_short = [0x80, 0xc8, 0x00, 0x06];
    let rtcp_long = [0x81, 0xc9, 0xff, 0xff, 0, 0, 0, 1, 2, 3, 4, 5];
    let mut rtcp_flipped = rtcp.clone();
    let last = rtcp_flipped.len() - 1;
    rtcp_flipped[last] ^= 0x01;

    let cases: [(&str, &[u8]); 10] = [
        ("a short RTP header", &short),
        ("RTP with a bad CSRC count", &csrc),
        ("RTP with a bad extension length", &extension),
        ("RTP with an altered payload", &flipped),
        ("RTP with bad padding", &padding),
        ("RTP replayed", &rtp),
        ("a short RTCP header", &rtcp_short),
        ("RTCP with a bad length", &rtcp_long),
        ("RTCP cut short", &rtcp[..rtcp.len() / 2]),
        ("RTCP with an altered tag", &rtcp_flipped),
    ];
    // From the member's address they reach its `Rtc`, whose SRTP layer drops them without an
    // error; from anyone else they are routed nowhere.
    for (what, bytes) in cases {
        net.expect(what, member, bytes, Ok(()));
        net.expect(what, stranger(), bytes, Err(ReceiveError::Unroutable));
    }
    // The other member's address is routed to the other member, whose keys differ.
    let other = net.member(2);
    net.expect("participant 1's RTP from 2", other, &rtp, Ok(()));
    let stats = net.sfu.stats();
    assert_eq!(
        (stats.malformed, stats.unroutable, stats.rtc_errors),
        (0, 10, 0)
    );
    net.assert_still_forwarding();
}

#[test]
fn dtls_garbage_from_a_member_is_dropped_and_the_connection_survives() {
    let mut net = Net::call();
    let member = net.member(1);
    // A DTLS 1.2 handshake record header with a length past the end, an application data
    // record of random bytes, a plaintext fatal alert, and a lone content type byte.
    let handshake = [22, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 9, 0xff, 0xff, 1, 2, 3];
    let mut application = vec![23, 0xfe, 0xfd, 0, 1, 0, 0, 0, 0, 0, 5, 0, 32];
    application.extend((0..32u8).map(|i| i.wrapping_mul(37)));
    let alert = [21, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 99, 0, 2, 2, 40];

    for (what, bytes) in [
        ("a DTLS record with a bad length", &handshake[..]),
        ("a forged DTLS application record", &application[..]),
        ("a forged DTLS alert", &alert[..]),
        ("a lone DTLS content type", &[22][..]),
    ] {
        net.expect(what, stranger(), bytes, Err(ReceiveError::Unroutable));
        // The member's DTLS stack (past its handshake, every record after it encrypted)
        // discards records it cannot authenticate without an error: a spoofed record must
        // not end the connection.
        net.expect(what, member, bytes, Ok(()));
    }
    net.assert_still_forwarding();
}

#[test]
fn every_prefix_of_every_kind_from_anywhere_is_harmless() {
    let mut net = Net::call();
    let samples: Vec<Vec<u8>> = {
        let c = &net.clients[0].captured;
        [&c.stun, &c.rtp_video, &c.rtcp]
            .into_iter()
            .map(|s| s.clone().unwrap())
            .collect()
    };
    let member = net.member(1);
    let other = net.member(2);
    let mut errors = 0u64;
    for sample in &samples {
        for cut in 0..=sample.len().min(64) {
            for from in [member, other, stranger()] {
                if net
                    .sfu
                    .handle_receive(net.now, from, net.sfu_addr, &sample[..cut])
                    .is_err()
                {
                    errors += 1;
                }
            }
        }
        net.settle();
    }
    let stats = net.sfu.stats();
    assert_eq!(
        stats.malformed + stats.unroutable + stats.rtc_errors,
        errors,
        "every refusal is counted once: {stats:?}"
    );
    net.assert_still_forwarding();
}

/// An offer as a browser makes it: audio and simulcast video to send, slots to receive on,
/// Opus, VP8 and H.264 (whose several profiles are the hardest to negotiate).
fn sample_offer(now: Instant) -> String {
    let mut rtc = Rtc::builder()
        .set_crypto_provider(Arc::new(str0m::crypto::from_feature_flags()))
        .clear_codecs()
        .enable_opus(true, false)
        .enable_vp8(true)
        .enable_h264(true)
        .build(now);
    rtc.add_local_candidate(Candidate::host("10.0.1.9:5000".parse().unwrap(), "udp").unwrap());
    let mut change = rtc.sdp_api();
    change.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None);
    let mut simulcast = str0m::media::Simulcast::new();
    simulcast.add_send_layer(str0m::media::SimulcastLayer::new("h"));
    simulcast.add_send_layer(str0m::media::SimulcastLayer::new("l"));
    change.add_media(
        MediaKind::Video,
        Direction::SendOnly,
        None,
        None,
        Some(simulcast),
    );
    for kind in [MediaKind::Audio, MediaKind::Video] {
        change.add_media(kind, Direction::RecvOnly, None, None, None);
    }
    let (offer, _) = change.apply().unwrap();
    offer.to_sdp_string()
}

/// Damaged offers: every line left out, every line's value emptied or made huge, the text
/// cut short at many places. Each either fails to parse or is answered or refused by the
/// SFU; none may panic, and the SFU still answers a good offer afterwards. (Leaving out an
/// H.264 payload type's `fmtp` line made `str0m`'s negotiation panic.)
#[test]
fn damaged_sdp_offers_are_refused_or_answered_never_a_panic() {
    let now = Instant::now();
    let mut sfu = Sfu::new(SFU_ADDR.parse().unwrap(), now);
    let good = sample_offer(now);
    let lines: Vec<&str> = good.split("\r\n").collect();
    let mut damaged: Vec<String> = Vec::new();
    for i in 0..lines.len() {
        let with = |line: &str| {
            let mut v = lines.clone();
            v[i] = line;
            v.join("\r\n")
        };
        let mut without = lines.clone();
        without.remove(i);
        damaged.push(without.join("\r\n"));
        let line = lines[i];
        let (key, _) = line.split_once(':').unwrap_or((line, ""));
        for value in ["", "4294967296"] {
            damaged.push(with(&format!("{key}:{value}")));
        }
        damaged.push(with(&format!("{line} {line}")));
    }
    for cut in (0..good.len()).step_by(29) {
        damaged.push(good.get(..cut).unwrap_or_default().to_owned());
    }

    let (mut parsed, mut answered) = (0u64, 0u64);
    for (n, sdp) in damaged.iter().enumerate() {
        let Ok(offer) = Offer::parse(sdp) else {
            continue;
        };
        parsed += 1;
        let id = ParticipantId(n as u64 + 1);
        if sfu.add_participant(now, CallId(1), id, offer).is_ok() {
            answered += 1;
            sfu.remove_participant(id).unwrap();
        }
        while !matches!(sfu.poll_output(), Output::Timeout(_)) {}
    }
    assert!(
        parsed > 0 && answered > 0,
        "{parsed} parsed, {answered} answered"
    );

    // damaged offers as renegotiations, from a participant with a connection
    let stride = damaged.len() / lines.len().max(1);
    for (n, sdp) in damaged
        .iter()
        .take(lines.len() * stride)
        .step_by(stride)
        .enumerate()
    {
        let Ok(offer) = Offer::parse(sdp) else {
            continue;
        };
        let id = ParticipantId(10_000 + n as u64);
        sfu.add_participant(now, CallId(2), id, good.parse().unwrap())
            .unwrap();
        let _ = sfu.handle_offer(now, id, offer);
        sfu.remove_participant(id).unwrap();
        while !matches!(sfu.poll_output(), Output::Timeout(_)) {}
    }
    assert!(
        sfu.add_participant(now, CallId(1), ParticipantId(0), good.parse().unwrap())
            .is_ok(),
        "a good offer is still answered"
    );
}
