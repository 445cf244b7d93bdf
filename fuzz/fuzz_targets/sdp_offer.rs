//! SDP offers as participants send them in `media_offer`: the call parses each
//! (`conclave_sfu::Offer::parse`, str0m's SDP parser) and the SFU answers what parses. Here
//! every offer that parses is answered by one SFU kept for the process, twice: as a
//! participant's first offer, and as a renegotiation by a participant that joined with a
//! browser-like offer (the second path changes an `Rtc` that already has media). Each
//! participant is removed again, so that a run exercises negotiation as well as parsing.
//!
//! str0m's negotiation panics on some offers (an H.264 payload type without its `fmtp` line);
//! the SFU catches that and refuses the offer, or, on a renegotiation, ends the participant's
//! connection. libFuzzer's panic hook would abort on the caught panic too, so the target puts
//! Rust's default hook back: a contained panic is printed and the run goes on, one that
//! escapes the SFU still ends it (libfuzzer-sys aborts on any panic out of the target).
#![no_main]

use std::cell::RefCell;
use std::sync::{Arc, Once};
use std::time::Instant;

use conclave_sfu::{CallId, Offer, Output, ParticipantId, Sfu};
use str0m::media::{Direction, MediaKind, Simulcast, SimulcastLayer};
use str0m::{Candidate, Rtc};

struct Target {
    sfu: Sfu,
    next: u64,
    /// What a browser offers first: audio and simulcast video to send, a slot of each kind.
    first: String,
}

thread_local! {
    static TARGET: RefCell<Target> = RefCell::new(Target {
        sfu: Sfu::new("10.0.0.1:3478".parse().expect("an address"), Instant::now()),
        next: 0,
        first: browser_like_offer(),
    });
}

static DEFAULT_PANIC_HOOK: Once = Once::new();

fn browser_like_offer() -> String {
    let mut rtc = Rtc::builder()
        .set_crypto_provider(Arc::new(str0m::crypto::from_feature_flags()))
        .clear_codecs()
        .enable_opus(true, false)
        .enable_vp8(true)
        .enable_h264(true)
        .build(Instant::now());
    let address = "10.0.1.9:5000".parse().expect("an address");
    rtc.add_local_candidate(Candidate::host(address, "udp").expect("a candidate"));
    let mut change = rtc.sdp_api();
    change.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None);
    let mut simulcast = Simulcast::new();
    simulcast.add_send_layer(SimulcastLayer::new("h"));
    simulcast.add_send_layer(SimulcastLayer::new("l"));
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
    let (offer, _) = change.apply().expect("an offer");
    offer.to_sdp_string()
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    DEFAULT_PANIC_HOOK.call_once(|| drop(std::panic::take_hook()));
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(offer) = Offer::parse(text) else {
        return;
    };
    TARGET.with(|cell| {
        let target = &mut *cell.borrow_mut();
        let now = Instant::now();
        target.next += 2;
        let (joining, renegotiating) = (ParticipantId(target.next - 1), ParticipantId(target.next));
        // an `Offer` is used up by negotiation; each path parses its own
        let first = Offer::parse(&target.first).expect("str0m parses its own offer");
        let sfu = &mut target.sfu;
        if sfu.add_participant(now, CallId(1), joining, offer).is_ok() {
            let _ = sfu.remove_participant(joining);
        }
        if sfu
            .add_participant(now, CallId(2), renegotiating, first)
            .is_ok()
        {
            let again = Offer::parse(text).expect("parsed above");
            let _ = sfu.handle_offer(now, renegotiating, again);
            let _ = sfu.remove_participant(renegotiating);
        }
        while !matches!(sfu.poll_output(), Output::Timeout(_)) {}
    });
});
