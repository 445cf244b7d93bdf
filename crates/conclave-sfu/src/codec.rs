//! What the SFU reads of a video RTP payload: the codec's payload descriptor, which the sender's
//! packetizer writes in the clear in front of the (SFrame-encrypted) frame data. It tells
//! whether a packet starts a frame, whether that frame is a key frame (where a receiver can
//! start decoding, so where a slot may switch to another sender or layer), and, for VP8, where
//! the frame data begins (for the tap, which reassembles frames) and how wide its picture id
//! is (for the slot that renumbers it).
//!
//! Written here rather than taken from `str0m` because its depacketizers are private and its
//! public [`str0m::rtp::Vp8Descriptor`] does not say where the descriptor ends.
//!
//! Every function takes bytes from the network: it never panics and reads nothing past the
//! slice; a payload too short to tell is "not a key frame".

use str0m::format::Codec;

/// What a packet's payload descriptor says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Packet {
    /// The first packet of a frame.
    pub(crate) starts_frame: bool,
    /// The first packet of a key frame.
    pub(crate) starts_keyframe: bool,
    /// VP8 only: its payload descriptor.
    pub(crate) vp8: Option<Vp8Header>,
}

/// What the SFU needs of a VP8 payload descriptor (RFC 7741 §4.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Vp8Header {
    /// Where the frame data begins (always inside the payload).
    pub(crate) len: usize,
    /// The picture id's width as a mask (0x7f or 0x7fff), if the descriptor has one.
    pub(crate) picture_id_mask: Option<u16>,
}

/// Reads the payload descriptor of a `codec` packet. Audio packets are each a whole frame that
/// can be decoded alone.
pub(crate) fn inspect(codec: Codec, payload: &[u8]) -> Packet {
    match codec {
        Codec::Opus | Codec::PCMU | Codec::PCMA | Codec::G722 => Packet {
            starts_frame: true,
            starts_keyframe: true,
            vp8: None,
        },
        Codec::Vp8 => vp8(payload).unwrap_or_default(),
        Codec::Vp9 => vp9(payload).unwrap_or_default(),
        Codec::H264 => h264(payload).unwrap_or_default(),
        Codec::Av1 => av1(payload).unwrap_or_default(),
        _ => Packet::default(),
    }
}

/// A VP8 packet's payload descriptor, or `None` if the payload ends inside it.
fn vp8_header(payload: &[u8]) -> Option<Vp8Header> {
    let first = *payload.first()?;
    let mut len = 1;
    let mut picture_id_mask = None;
    if first & 0x80 != 0 {
        // X: an extension byte says which optional fields follow
        let ext = *payload.get(1)?;
        len += 1;
        if ext & 0x80 != 0 {
            // I: picture id, 15 bits when its M bit is set
            let wide = *payload.get(len)? & 0x80 != 0;
            picture_id_mask = Some(if wide { 0x7fff } else { 0x7f });
            len += if wide { 2 } else { 1 };
        }
        if ext & 0x40 != 0 {
            len += 1; // L: TL0PICIDX
        }
        if ext & 0x30 != 0 {
            len += 1; // T or K: TID, Y, KEYIDX share a byte
        }
    }
    (len < payload.len()).then_some(Vp8Header {
        len,
        picture_id_mask,
    })
}

/// VP8: S (start of a partition) with partition index 0 starts a frame; the frame's first byte,
/// whose lowest bit is the inverse key frame flag (RFC 6386 §9.1), stays clear under SFrame.
fn vp8(payload: &[u8]) -> Option<Packet> {
    let first = *payload.first()?;
    let starts_frame = first & 0x10 != 0 && first & 0x07 == 0;
    let header = vp8_header(payload)?;
    let frame = *payload.get(header.len)?;
    Some(Packet {
        starts_frame,
        starts_keyframe: starts_frame && frame & 0x01 == 0,
        vp8: Some(header),
    })
}

/// VP9 (RFC 9628 §4.2): B starts a frame; P clear means it is not predicted from another
/// picture.
fn vp9(payload: &[u8]) -> Option<Packet> {
    let first = *payload.first()?;
    let starts_frame = first & 0x08 != 0;
    Some(Packet {
        starts_frame,
        starts_keyframe: starts_frame && first & 0x40 == 0,
        vp8: None,
    })
}

/// H.264 (RFC 6184 §5): an IDR slice (5) or a sequence parameter set (7), alone, first in an
/// aggregation packet (STAP-A), or at the start of a fragmented unit (FU-A).
fn h264(payload: &[u8]) -> Option<Packet> {
    let key = |nal: u8| matches!(nal & 0x1f, 5 | 7);
    let first = *payload.first()?;
    Some(match first & 0x1f {
        1..=23 => Packet {
            starts_frame: true,
            starts_keyframe: key(first),
            vp8: None,
        },
        24 => Packet {
            starts_frame: true,
            starts_keyframe: key(*payload.get(3)?),
            vp8: None,
        },
        28 => {
            let fu = *payload.get(1)?;
            let start = fu & 0x80 != 0;
            Packet {
                starts_frame: start,
                starts_keyframe: start && key(fu),
                vp8: None,
            }
        }
        _ => Packet::default(),
    })
}

/// AV1 (RTP payload format for AV1 §4.4): N marks the first packet of a coded video sequence;
/// Z clear means the packet does not continue an OBU from the previous one.
fn av1(payload: &[u8]) -> Option<Packet> {
    let first = *payload.first()?;
    let starts_frame = first & 0x80 == 0;
    Some(Packet {
        starts_frame,
        starts_keyframe: first & 0x08 != 0,
        vp8: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vp8_key_frames_are_found_behind_every_descriptor_shape() {
        // S, PID 0, no extension; frame header 0x10 (key frame: lowest bit clear)
        assert_eq!(
            inspect(Codec::Vp8, &[0x10, 0x10, 0xaa]),
            Packet {
                starts_frame: true,
                starts_keyframe: true,
                vp8: Some(Vp8Header {
                    len: 1,
                    picture_id_mask: None
                }),
            }
        );
        // delta frame
        assert!(!inspect(Codec::Vp8, &[0x10, 0x11, 0xaa]).starts_keyframe);
        // X, I with a 15-bit picture id, L, T: five descriptor bytes, then the frame
        let p = [0x90, 0xe0, 0x80 | 0x12, 0x34, 0x07, 0x20, 0x50, 0xaa];
        let header = |p: &[u8]| vp8_header(p).map(|h| (h.len, h.picture_id_mask));
        assert_eq!(header(&p), Some((6, Some(0x7fff))));
        assert_eq!(header(&[0x90, 0x80, 0x12, 0x10]), Some((3, Some(0x7f))));
        assert_eq!(header(&[0x10, 0x10]), Some((1, None)));
        assert!(inspect(Codec::Vp8, &p).starts_keyframe);
        // a continuation packet (no S) never starts a key frame, whatever follows
        let continuation = inspect(Codec::Vp8, &[0x00, 0x00]);
        assert!(!continuation.starts_frame && !continuation.starts_keyframe);
        // a second partition's start is not a frame's start
        assert!(!inspect(Codec::Vp8, &[0x11, 0x00]).starts_frame);
    }

    #[test]
    fn short_or_odd_payloads_are_no_key_frame_and_do_not_panic() {
        for codec in [Codec::Vp8, Codec::Vp9, Codec::H264, Codec::Av1] {
            assert!(!inspect(codec, &[]).starts_keyframe);
        }
        // descriptor announces fields the payload does not have
        assert_eq!(vp8_header(&[0x90]), None);
        assert_eq!(vp8_header(&[0x90, 0x80, 0x80]), None);
        assert!(!inspect(Codec::Vp8, &[0x90, 0x80]).starts_keyframe);
        assert!(!inspect(Codec::H264, &[24, 0, 5]).starts_keyframe);
        assert!(!inspect(Codec::H264, &[28]).starts_keyframe);
        for len in 0..12 {
            for fill in [0x00, 0xff, 0x90] {
                let p = vec![fill; len];
                for codec in [Codec::Vp8, Codec::Vp9, Codec::H264, Codec::Av1, Codec::Opus] {
                    let _ = inspect(codec, &p);
                }
                if let Some(h) = vp8_header(&p) {
                    assert!(h.len < p.len());
                }
            }
        }
    }

    #[test]
    fn other_codecs_key_frames() {
        // VP9: B set, P clear
        assert!(inspect(Codec::Vp9, &[0x08]).starts_keyframe);
        assert!(!inspect(Codec::Vp9, &[0x48]).starts_keyframe);
        // H.264: SPS alone, IDR in FU-A start, STAP-A starting with an SPS, a P slice
        assert!(inspect(Codec::H264, &[0x67]).starts_keyframe);
        assert!(inspect(Codec::H264, &[0x7c, 0x85]).starts_keyframe);
        assert!(!inspect(Codec::H264, &[0x7c, 0x05]).starts_keyframe);
        assert!(inspect(Codec::H264, &[0x78, 0x00, 0x04, 0x67]).starts_keyframe);
        assert!(!inspect(Codec::H264, &[0x41]).starts_keyframe);
        // AV1: N set
        assert!(inspect(Codec::Av1, &[0x18]).starts_keyframe);
        assert!(!inspect(Codec::Av1, &[0x10]).starts_keyframe);
        // audio: every packet
        assert!(inspect(Codec::Opus, &[]).starts_keyframe);
    }
}
