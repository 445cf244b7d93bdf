//! Helpers shared by the integration tests.
#![allow(dead_code, unreachable_pub)]

use conclave_frame::{Codec, FrameConfig, FrameCrypto};

/// Decodes a hex string; the test data is trusted.
pub fn hex(s: &str) -> Vec<u8> {
    assert!(s.len() % 2 == 0, "odd hex length");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("valid hex in test data"))
        .collect()
}

/// Encodes bytes as lowercase hex.
pub fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A distinctive, incompressible-looking payload of `len` bytes.
pub fn payload(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ 0x5a)
        .collect()
}

/// A VP8 key frame: frame tag with the key-frame bit clear, start code, 640x480.
pub fn vp8_key_frame(len: usize) -> Vec<u8> {
    let mut f = vec![0x50, 0x2a, 0x01, 0x9d, 0x01, 0x2a, 0x80, 0x02, 0xe0, 0x01];
    f.extend(payload(len.saturating_sub(10), 1));
    f.truncate(len.max(10));
    f
}

/// A VP8 delta frame (key-frame bit set).
pub fn vp8_delta_frame(len: usize) -> Vec<u8> {
    let mut f = vec![0x31, 0x02, 0x00];
    f.extend(payload(len.saturating_sub(3), 2));
    f
}

/// An Opus frame (TOC byte + payload).
pub fn opus_frame(len: usize) -> Vec<u8> {
    let mut f = vec![0x78];
    f.extend(payload(len.saturating_sub(1), 3));
    f
}

/// An H.264 Annex B key frame: SPS, PPS, IDR slice whose payload holds start-code-like runs.
pub fn h264_frame(slice_len: usize) -> Vec<u8> {
    let mut f = vec![
        0, 0, 0, 1, 0x67, 0x42, 0xc0, 0x15, 0x8c, 0x68, 0x14, 0x1f, 0x20, 0, 0, 0, 1, 0x68, 0xce,
        0x3c, 0x80, 0, 0, 0, 1, 0x65, 0xb8,
    ];
    let mut body = payload(slice_len, 4);
    for chunk in body.chunks_mut(40) {
        if chunk.len() >= 4 {
            chunk[..4].copy_from_slice(&[0, 0, 3, 1]);
        }
    }
    f.extend(body);
    f
}

/// The number of leading bytes that must be clear for `frame` of `codec`, as documented.
pub fn expected_prefix(codec: Codec, frame: &[u8]) -> usize {
    match codec {
        Codec::Vp8 if frame[0] & 1 == 0 => 10,
        Codec::Vp8 => 3,
        Codec::H264 => 27,
        _ => 0,
    }
}

/// One FrameCrypto per member, all in `epoch` with `secret`.
pub fn group(n: u32, epoch: u64, secret: &[u8], now_ms: u64) -> Vec<FrameCrypto> {
    let members: Vec<u32> = (0..n).collect();
    members
        .iter()
        .map(|&leaf| {
            let mut c = FrameCrypto::new(FrameConfig::default());
            c.set_epoch(epoch, secret, leaf, &members, now_ms)
                .expect("valid epoch");
            c
        })
        .collect()
}
