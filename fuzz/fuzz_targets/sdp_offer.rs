//! SDP offers as participants send them in `media_offer`: the call parses each
//! (`conclave_sfu::Offer::parse`, str0m's SDP parser) and the SFU answers what parses. Here
//! every offer that parses is answered by one SFU kept for the process, and the participant
//! removed again, so that a run exercises negotiation as well as parsing.
#![no_main]

use std::cell::RefCell;
use std::time::Instant;

use conclave_sfu::{CallId, Offer, Output, ParticipantId, Sfu};

thread_local! {
    static SFU: RefCell<(Sfu, u64)> = RefCell::new((
        Sfu::new("10.0.0.1:3478".parse().expect("an address"), Instant::now()),
        0,
    ));
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
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
