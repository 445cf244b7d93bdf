//! Identifiers and timestamps as they arrive in paths and bodies. An identifier that
//! parses must print as exactly the same text.
#![no_main]

use std::str::FromStr as _;

use conclave_types::{DeviceId, MeetingId, Timestamp, UserId};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(id) = MeetingId::from_str(text) {
        assert_eq!(id.to_string(), text, "meeting id round trip");
    }
    if let Ok(id) = DeviceId::from_str(text) {
        assert_eq!(id.to_string(), text, "device id round trip");
    }
    if let Ok(id) = UserId::from_str(text) {
        assert_eq!(id.to_string(), text, "user id round trip");
    }
    let _ = Timestamp::parse_rfc3339(text);
});
