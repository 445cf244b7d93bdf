//! SFrame media frames as a receiver gets them: every codec's clear-prefix parser,
//! header, key lookup, replay window and tag check.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    conclave_frame::fuzzing::open_frame(data);
});
