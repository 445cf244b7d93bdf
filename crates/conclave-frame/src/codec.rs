//! Codec-aware clear prefixes and H.264 start-code escaping.
//!
//! The sender and the receiver must agree on the clear prefix length without any side channel:
//! the sender computes it from the plaintext frame, the receiver from the bytes it received.
//! Every rule here only looks at bytes that stay in the clear, so both reach the same length.
//! A frame too short for its codec's rule is refused on sealing rather than sealed with a
//! shorter prefix, because a receiver could not tell the two apart.

use crate::FrameError;

/// The media codec of a frame, which decides how many leading bytes stay in the clear.
///
/// | codec     | clear prefix                                                                 |
/// |-----------|------------------------------------------------------------------------------|
/// | `Vp8`     | key frame 10 bytes, delta frame 3 bytes                                      |
/// | `H264`    | up to and including the first slice NAL header + 1 slice-header byte         |
/// | `Vp9`     | none                                                                         |
/// | `Av1`     | none                                                                         |
/// | `Opus`    | none                                                                         |
/// | `Unknown` | none                                                                         |
///
/// The reasons are given on each variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Codec {
    /// VP8 (RFC 6386). The first byte's bit 0 is the inverted key-frame flag of the frame tag.
    /// A key frame keeps 10 bytes clear: the 3-byte frame tag plus the 3-byte start code and the
    /// 4 bytes of width and height (RFC 6386 §9.1). Chromium's VP8 depacketizer reads exactly
    /// these to flag key frames and learn the resolution, and drops a key frame shorter than
    /// that. A delta frame keeps its 3-byte frame tag clear. This matches LiveKit's and the
    /// WebRTC sample's frame cryptors. A key frame shorter than 10 bytes, a delta frame
    /// shorter than 3 or an empty frame is not valid VP8 and is refused with
    /// [`FrameError::Malformed`].
    Vp8,
    /// VP9: fully encrypted. Chromium builds the VP9 RTP payload descriptor from the encoder's
    /// codec-specific info, not from the bitstream, and its depacketizer only reads that
    /// descriptor, so nothing of the frame needs to stay clear (LiveKit also keeps 0 bytes).
    Vp9,
    /// H.264 in Annex B byte-stream form. Chromium's H.264 packetizer splits the frame at start
    /// codes and its depacketizer parses SPS and PPS NAL units and the start of each slice
    /// header (`first_mb_in_slice`, `slice_type`, `pic_parameter_set_id`), dropping what it
    /// cannot parse. So everything up to and including the first slice NAL unit (type 1 or 5)
    /// header plus one slice-header byte stays clear (parameter sets, SEI and AUD before it
    /// included), as in LiveKit's frame cryptor; everything after it (including later NAL
    /// units) is encrypted. Ciphertext can contain `00 00 01`, which a packetizer would take
    /// for a start code, so the encrypted part is escaped with H.264 emulation prevention
    /// (a `03` byte after any two zero bytes followed by a byte `<= 03`), continuing from the
    /// zero bytes that end the clear prefix, and unescaped (strictly, only the canonical form
    /// is accepted) before decryption.
    ///
    /// A frame without a slice NAL unit keeps only its leading start code and NAL header clear
    /// (if it starts with one), so the packetizer still finds one NAL unit. A slice NAL unit
    /// with no byte after its header is refused with [`FrameError::Malformed`].
    H264,
    /// AV1: fully encrypted. LiveKit's released frame cryptor refuses AV1; keeping its OBU
    /// headers and size fields clear would need several clear ranges interleaved with
    /// ciphertext, which the single-prefix SFrame layout cannot express. Note that
    /// Chromium's AV1 packetizer parses OBU headers, so a fully encrypted AV1 frame needs an
    /// SFrame-aware (generic) packetization on the RTP path.
    Av1,
    /// Opus: fully encrypted. The packetizer does not read Opus payloads, and the TOC byte
    /// would leak the coding mode and bandwidth, which correlate with speech activity.
    Opus,
    /// Any other codec: fully encrypted, the safe default.
    Unknown,
}

impl Codec {
    /// The codec named by its lower-case name as browsers and the signalling protocol
    /// spell it: `vp8`, `vp9`, `h264`, `av1`, `opus`. Any other name is
    /// [`Codec::Unknown`], which is fully encrypted: the safe default.
    pub fn from_name(name: &str) -> Self {
        match name {
            "vp8" => Self::Vp8,
            "vp9" => Self::Vp9,
            "h264" => Self::H264,
            "av1" => Self::Av1,
            "opus" => Self::Opus,
            _ => Self::Unknown,
        }
    }
}

/// Clear bytes of a VP8 key frame: 3-byte frame tag, 3-byte start code, 4 bytes of dimensions.
pub(crate) const VP8_KEY_FRAME_CLEAR: usize = 10;
/// Clear bytes of a VP8 delta frame: the 3-byte frame tag.
pub(crate) const VP8_DELTA_FRAME_CLEAR: usize = 3;

/// The clear prefix length of `bytes`, which is either a plaintext frame (sealing) or a sealed
/// frame (opening); both lead to the same length because only clear bytes are read.
pub(crate) fn clear_prefix_len(codec: Codec, bytes: &[u8]) -> Result<usize, FrameError> {
    match codec {
        Codec::Vp8 => {
            let first = bytes
                .first()
                .ok_or(FrameError::Malformed("empty VP8 frame"))?;
            let clear = if first & 0x01 == 0 {
                VP8_KEY_FRAME_CLEAR
            } else {
                VP8_DELTA_FRAME_CLEAR
            };
            if bytes.len() < clear {
                return Err(FrameError::Malformed(
                    "VP8 frame shorter than its frame header",
                ));
            }
            Ok(clear)
        }
        Codec::H264 => h264_clear_prefix_len(bytes),
        Codec::Vp9 | Codec::Av1 | Codec::Opus | Codec::Unknown => Ok(0),
    }
}

/// H.264 NAL unit types of coded slices (non-IDR and IDR).
fn is_h264_slice(nal_header: u8) -> bool {
    matches!(nal_header & 0x1f, 1 | 5)
}

fn h264_clear_prefix_len(bytes: &[u8]) -> Result<usize, FrameError> {
    let mut i = 0;
    while i + 3 < bytes.len() {
        if bytes[i] == 0 && bytes[i + 1] == 0 && bytes[i + 2] == 1 {
            let header = i + 3;
            if is_h264_slice(bytes[header]) {
                let end = header + 2;
                if end > bytes.len() {
                    return Err(FrameError::Malformed("H.264 slice NAL unit truncated"));
                }
                return Ok(end);
            }
            i = header;
        } else {
            i += 1;
        }
    }
    // no slice: keep a leading start code and its NAL header clear, if there is one
    if bytes.len() >= 4 && bytes[..3] == [0, 0, 1] {
        Ok(4)
    } else if bytes.len() >= 5 && bytes[..4] == [0, 0, 0, 1] {
        Ok(5)
    } else {
        Ok(0)
    }
}

/// How many zero bytes (at most 2) end `prefix`, the state emulation prevention continues from.
pub(crate) fn trailing_zeros(prefix: &[u8]) -> usize {
    prefix.iter().rev().take(2).take_while(|b| **b == 0).count()
}

/// Appends `src` to `out` with H.264 emulation prevention, continuing after `zeros` zero bytes.
pub(crate) fn escape_into(mut zeros: usize, src: &[u8], out: &mut Vec<u8>) {
    out.reserve(src.len() + src.len() / 64 + 1);
    for &b in src {
        if zeros >= 2 && b <= 3 {
            out.push(3);
            zeros = 0;
        }
        out.push(b);
        zeros = if b == 0 { zeros + 1 } else { 0 };
    }
}

/// Removes H.264 emulation prevention from `src`, continuing after `zeros` zero bytes.
///
/// Strict: only the exact output of [`escape_into`] is accepted, so every escaped byte string
/// has one decoding and tampering with an escape byte cannot go unnoticed.
pub(crate) fn unescape(mut zeros: usize, src: &[u8]) -> Result<Vec<u8>, FrameError> {
    let mut out = Vec::with_capacity(src.len());
    let mut iter = src.iter().copied().peekable();
    while let Some(b) = iter.next() {
        if zeros >= 2 {
            match b {
                0..=2 => return Err(FrameError::Malformed("start code inside H.264 ciphertext")),
                3 => {
                    match iter.peek() {
                        Some(next) if *next <= 3 => {}
                        _ => return Err(FrameError::Malformed("non-canonical H.264 escaping")),
                    }
                    zeros = 0;
                    continue;
                }
                _ => {}
            }
        }
        out.push(b);
        zeros = if b == 0 { zeros + 1 } else { 0 };
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_round_trips_and_hides_start_codes() {
        let src = [0, 0, 1, 0, 0, 0, 0, 3, 0, 0, 2, 0, 0];
        for seed in 0..=2 {
            let mut out = Vec::new();
            escape_into(seed, &src, &mut out);
            let mut seeded = vec![0u8; seed];
            seeded.extend_from_slice(&out);
            assert!(!seeded
                .windows(3)
                .any(|w| w[0] == 0 && w[1] == 0 && w[2] <= 2));
            assert_eq!(unescape(seed, &out).expect("canonical"), src);
        }
    }

    #[test]
    fn unescape_rejects_non_canonical() {
        assert!(unescape(0, &[0, 0, 1]).is_err());
        assert!(unescape(0, &[0, 0, 3]).is_err());
        assert!(unescape(0, &[0, 0, 3, 4]).is_err());
        assert!(unescape(2, &[0]).is_err());
    }

    #[test]
    fn h264_prefix_covers_parameter_sets_and_first_slice_header() {
        let frame = [
            0, 0, 0, 1, 0x67, 9, 9, 0, 0, 1, 0x68, 7, 0, 0, 1, 0x65, 0xb8, 1, 2,
        ];
        assert_eq!(h264_clear_prefix_len(&frame), Ok(17));
        assert_eq!(h264_clear_prefix_len(&[0, 0, 1, 0x67, 1]), Ok(4));
        assert_eq!(h264_clear_prefix_len(&[0, 0, 0, 1, 0x67]), Ok(5));
        assert_eq!(h264_clear_prefix_len(&[7, 7]), Ok(0));
        assert!(h264_clear_prefix_len(&[0, 0, 1, 0x65]).is_err());
    }
}
