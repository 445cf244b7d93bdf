//! SDP offers as participants send them in `media_offer`: the call parses each
//! (`conclave_sfu::Offer::parse`, str0m's SDP parser) and the SFU answers what parses. Here
//! every offer that parses is answered by one SFU kept for the process, and the participant
//! removed again, so that a run exercises negotiation as well as parsing.
//!
//! str0m's negotiation panics on some offers (an H.264 payload type without its `fmtp` line);
//! the SFU catches that and refuses the offer. libFuzzer's panic hook would abort on the
//! caught panic too, so the target puts Rust's default hook back: a contained panic is
//! printed and the run goes on, one that escapes the SFU still ends it (libfuzzer-sys aborts
//! on any panic out of the target).
#![no_main]

use std::cell::RefCell;
use std::sync::Once;
use std::time::Instant;

use conclave_sfu::{CallId, Offer, Output, ParticipantId, Sfu};

thread_local! {
    static SFU: RefCell<(Sfu, u64)> = RefCell::new((
        Sfu::new("10.0.0.1:3478".parse().expect("an address"), Instant::now()),
        0,
    ));
}

static DEFAULT_PANIC_HOOK: Once = Once::new();

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    DEFAULT_PANIC_HOOK.call_once(|| drop(std::panic::take_hook()));
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(offer) = Offer::parse(text) else {
        return;
    };
    SFU.with(|cell| {
        let (sfu, next) = &mut *cell.borrow_mut();
        *next += 1;
        let id = ParticipantId(*next);
        if sfu.add_participant(Instant::now(), CallId(1), id, offer).is_ok() {
            let _ = sfu.remove_participant(id);
        }
        while !matches!(sfu.poll_output(), Output::Timeout(_)) {}
    });
});
