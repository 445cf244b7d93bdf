//! Signalling frames as the server (client messages) and a participant (server messages)
//! receive them: decode, and re-encode what decodes.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(message) = conclave_protocol::ClientMessage::decode(text) {
            let again = conclave_protocol::ClientMessage::decode(&message.encode());
            assert_eq!(again.as_ref(), Ok(&message), "client message round trip");
        }
        if let Ok(message) = conclave_protocol::ServerMessage::decode(text) {
            let again = conclave_protocol::ServerMessage::decode(&message.encode());
            assert_eq!(again.as_ref(), Ok(&message), "server message round trip");
        }
    }
});
