//! Real media for the native participant: VP8 frames from IVF files and Opus packets from
//! Ogg files, so that what a native participant sends is something browsers can decode.
//!
//! The sample files in the crate's `media/` directory were made once with ffmpeg (the
//! commands are in `media/README.md`) and are compiled into the crate ([`SAMPLE_VP8_IVF`],
//! [`SAMPLE_VP8_IVF_HD`], [`SAMPLE_OPUS_OGG`]): they are small (about 200 KB together), and a
//! participant binary run from anywhere (a load test on another machine, a container) needs
//! no path to find them.
//!
//! The parsers are deliberately small: IVF is a 32-byte header and 12-byte frame headers;
//! Ogg is pages of lacing values (RFC 3533) whose CRC is checked, and Ogg Opus (RFC 7845)
//! adds the `OpusHead` and `OpusTags` header packets, which are read and skipped. Bad input
//! never panics; it is a [`FileError`].

use std::time::Duration;

/// The sample video: 2 s of ffmpeg's `testsrc` at 320x180, 15 frames a second, VP8 with a key
/// frame every 15 frames, in IVF.
pub const SAMPLE_VP8_IVF: &[u8] = include_bytes!("../../media/testsrc-320x180-15fps.ivf");

/// The load sample: 1 s of ffmpeg's `testsrc` with noise (so that it compresses like a camera
/// picture) at 640x360, 30 frames a second, VP8 at about 1.3 Mbit/s with a key frame at the
/// start, in IVF: a realistic top simulcast layer.
pub const SAMPLE_VP8_IVF_HD: &[u8] = include_bytes!("../../media/testsrc-640x360-30fps.ivf");

/// The middle simulcast layer to [`SAMPLE_VP8_IVF_HD`]: the same picture at 320x180, ~360 kbit/s.
pub const SAMPLE_VP8_IVF_MID: &[u8] = include_bytes!("../../media/testsrc-320x180-30fps.ivf");

/// The low simulcast layer: the same picture at 160x90, ~110 kbit/s.
pub const SAMPLE_VP8_IVF_LOW: &[u8] = include_bytes!("../../media/testsrc-160x90-30fps.ivf");

/// The sample audio: 2 s of a 440 Hz sine, Opus in 20 ms packets at 48 kHz, mono, in Ogg.
pub const SAMPLE_OPUS_OGG: &[u8] = include_bytes!("../../media/sine-440hz-20ms.ogg");

/// Why a file could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FileError {
    /// The file ends in the middle of a header or frame.
    #[error("truncated {0}")]
    Truncated(&'static str),
    /// A signature, version or field is not what the format requires. The text names it.
    #[error("invalid {0}")]
    Invalid(&'static str),
    /// An Ogg page's checksum does not match.
    #[error("Ogg page checksum mismatch")]
    Checksum,
}

/// A video file's frames.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ivf {
    /// The codec's FourCC (`VP80` for VP8).
    pub fourcc: [u8; 4],
    /// Width in pixels.
    pub width: u16,
    /// Height in pixels.
    pub height: u16,
    /// The time base numerator: timestamps count units of `timebase_num / timebase_den` s.
    pub timebase_num: u32,
    /// The time base denominator.
    pub timebase_den: u32,
    /// The frames, in file order.
    pub frames: Vec<VideoFrame>,
}

/// One encoded video frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VideoFrame {
    /// The presentation timestamp, in time base units.
    pub pts: u64,
    /// Whether it is a VP8 key frame (bit 0 of the frame tag clear, RFC 6386 §9.1); only
    /// meaningful for VP8.
    pub keyframe: bool,
    /// The encoded frame.
    pub data: Vec<u8>,
}

impl Ivf {
    /// The time between two frames, from the time base (one unit per frame, as ffmpeg
    /// writes constant-rate IVF). `None` for a zero or absurd time base.
    pub fn frame_interval(&self) -> Option<Duration> {
        if self.timebase_den == 0 || self.timebase_num == 0 {
            return None;
        }
        let nanos =
            u64::from(self.timebase_num).checked_mul(1_000_000_000)? / u64::from(self.timebase_den);
        (nanos > 0).then(|| Duration::from_nanos(nanos))
    }
}

/// Reads an IVF file: a 32-byte header (`DKIF`, version 0, header length, FourCC, size, time
/// base, frame count) and frames of a 12-byte header (length, timestamp) plus data.
///
/// # Errors
/// [`FileError`] if the header is wrong or the file ends inside a frame.
pub fn parse_ivf(bytes: &[u8]) -> Result<Ivf, FileError> {
    let header = bytes.get(..32).ok_or(FileError::Truncated("IVF header"))?;
    if &header[..4] != b"DKIF" {
        return Err(FileError::Invalid("IVF signature"));
    }
    if le16(header, 4) != 0 {
        return Err(FileError::Invalid("IVF version"));
    }
    let header_len = usize::from(le16(header, 6));
    if header_len < 32 {
        return Err(FileError::Invalid("IVF header length"));
    }
    let mut fourcc = [0; 4];
    fourcc.copy_from_slice(&header[8..12]);
    let mut rest = bytes
        .get(header_len..)
        .ok_or(FileError::Truncated("IVF header"))?;
    let mut frames = Vec::new();
    while !rest.is_empty() {
        let frame_header = rest
            .get(..12)
            .ok_or(FileError::Truncated("IVF frame header"))?;
        let len = usize::try_from(le32(frame_header, 0))
            .map_err(|_| FileError::Invalid("IVF frame length"))?;
        let pts = u64::from(le32(frame_header, 4)) | u64::from(le32(frame_header, 8)) << 32;
        let data = rest
            .get(12..)
            .and_then(|r| r.get(..len))
            .ok_or(FileError::Truncated("IVF frame"))?;
        frames.push(VideoFrame {
            pts,
            keyframe: data.first().is_some_and(|tag| tag & 1 == 0),
            data: data.to_vec(),
        });
        rest = &rest[12 + len..];
    }
    Ok(Ivf {
        fourcc,
        width: le16(header, 12),
        height: le16(header, 14),
        timebase_den: le32(header, 16),
        timebase_num: le32(header, 20),
        frames,
    })
}

/// An Ogg Opus file's audio.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OggOpus {
    /// Channels (from `OpusHead`).
    pub channels: u8,
    /// Samples (at 48 kHz) to drop from the decoder's output at the start.
    pub pre_skip: u16,
    /// The encoder's input sample rate (informational; Opus always decodes at 48 kHz here).
    pub input_sample_rate: u32,
    /// The audio packets, in order.
    pub packets: Vec<AudioPacket>,
}

/// One Opus packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioPacket {
    /// Its duration in 48 kHz samples, from its TOC byte (RFC 6716 §3.1); 0 if it cannot be
    /// read.
    pub samples: u32,
    /// The packet.
    pub data: Vec<u8>,
}

impl AudioPacket {
    /// Its duration.
    pub fn duration(&self) -> Duration {
        Duration::from_micros(u64::from(self.samples) * 1_000 / 48)
    }
}

/// Reads an Ogg Opus file (RFC 7845): the first logical stream's packets, of which the first
/// is `OpusHead` and the second `OpusTags`; the rest are audio. Pages of other logical
/// streams are skipped.
///
/// # Errors
/// [`FileError`] for a damaged page (bad signature, version, checksum, truncation), missing
/// or malformed Opus headers.
pub fn parse_ogg_opus(bytes: &[u8]) -> Result<OggOpus, FileError> {
    let packets = ogg_packets(bytes)?;
    let mut packets = packets.into_iter();
    let head = packets
        .next()
        .ok_or(FileError::Invalid("missing OpusHead"))?;
    if head.len() < 19 || &head[..8] != b"OpusHead" {
        return Err(FileError::Invalid("OpusHead"));
    }
    if head[8] >> 4 != 0 {
        return Err(FileError::Invalid("OpusHead version"));
    }
    let tags = packets
        .next()
        .ok_or(FileError::Invalid("missing OpusTags"))?;
    if tags.len() < 8 || &tags[..8] != b"OpusTags" {
        return Err(FileError::Invalid("OpusTags"));
    }
    Ok(OggOpus {
        channels: head[9],
        pre_skip: le16(&head, 10),
        input_sample_rate: le32(&head, 12),
        packets: packets
            .map(|data| AudioPacket {
                samples: opus_packet_samples(&data).unwrap_or(0),
                data,
            })
            .collect(),
    })
}

/// The packets of the first logical stream of an Ogg file, joined across pages.
fn ogg_packets(mut bytes: &[u8]) -> Result<Vec<Vec<u8>>, FileError> {
    let mut serial = None;
    let mut packets = Vec::new();
    let mut partial: Vec<u8> = Vec::new();
    while !bytes.is_empty() {
        let header = bytes
            .get(..27)
            .ok_or(FileError::Truncated("Ogg page header"))?;
        if &header[..4] != b"OggS" {
            return Err(FileError::Invalid("Ogg capture pattern"));
        }
        if header[4] != 0 {
            return Err(FileError::Invalid("Ogg version"));
        }
        let continued = header[5] & 0x01 != 0;
        let page_serial = le32(header, 14);
        let segments = usize::from(header[26]);
        let lacing = bytes
            .get(27..27 + segments)
            .ok_or(FileError::Truncated("Ogg segment table"))?;
        let body_len: usize = lacing.iter().map(|&l| usize::from(l)).sum();
        let page_len = 27 + segments + body_len;
        let page = bytes
            .get(..page_len)
            .ok_or(FileError::Truncated("Ogg page"))?;
        if le32(page, 22) != ogg_crc(page) {
            return Err(FileError::Checksum);
        }
        bytes = &bytes[page_len..];
        if *serial.get_or_insert(page_serial) != page_serial {
            continue;
        }
        if !continued {
            // A packet left open by the previous page was never finished.
            partial.clear();
        }
        let mut body = &page[27 + segments..];
        for &l in lacing {
            let (segment, rest) = body.split_at(usize::from(l));
            partial.extend_from_slice(segment);
            body = rest;
            if l < 255 {
                packets.push(std::mem::take(&mut partial));
            }
        }
    }
    Ok(packets)
}

/// The Ogg page checksum: CRC-32 with polynomial 0x04c11db7, no reflection, initial value
/// and final XOR 0, over the page with its checksum field zeroed.
fn ogg_crc(page: &[u8]) -> u32 {
    let mut crc = 0u32;
    for (i, &byte) in page.iter().enumerate() {
        let byte = if (22..26).contains(&i) { 0 } else { byte };
        crc ^= u32::from(byte) << 24;
        for _ in 0..8 {
            crc = if crc & 0x8000_0000 != 0 {
                crc << 1 ^ 0x04c1_1db7
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// An Opus packet's duration in 48 kHz samples from its TOC byte and frame count
/// (RFC 6716 §3.1, §3.2.5). `None` for an empty packet or a code 3 packet without its count.
pub fn opus_packet_samples(packet: &[u8]) -> Option<u32> {
    let toc = *packet.first()?;
    let config = toc >> 3;
    let frame_samples: u32 = match config {
        // SILK: 10, 20, 40, 60 ms
        0..=11 => [480, 960, 1920, 2880][usize::from(config % 4)],
        // Hybrid: 10, 20 ms
        12..=15 => [480, 960][usize::from(config % 2)],
        // CELT: 2.5, 5, 10, 20 ms
        _ => [120, 240, 480, 960][usize::from(config % 4)],
    };
    let frames = match toc & 0x03 {
        0 => 1,
        1 | 2 => 2,
        _ => u32::from(*packet.get(1)? & 0x3f),
    };
    Some(frame_samples * frames)
}

/// The sample video, parsed.
///
/// # Panics
/// Never with the file the crate ships (its parse is tested); the `expect` names that.
pub fn sample_video() -> Ivf {
    #[allow(clippy::expect_used)]
    parse_ivf(SAMPLE_VP8_IVF).expect("the bundled IVF sample parses (tested in this module)")
}

/// The load sample ([`SAMPLE_VP8_IVF_HD`]), parsed.
///
/// # Panics
/// Never with the file the crate ships (its parse is tested); the `expect` names that.
pub fn sample_video_hd() -> Ivf {
    #[allow(clippy::expect_used)]
    parse_ivf(SAMPLE_VP8_IVF_HD).expect("the bundled IVF sample parses (tested in this module)")
}

/// The three simulcast layers a native participant sends with simulcast on, by RTP stream id
/// (RFC 8851 `rid`), highest first: `h` ([`SAMPLE_VP8_IVF_HD`]), `m` and `l`. Each is 30
/// frames with a key frame first, so frame `i` of every layer shows the same moment.
///
/// # Panics
/// Never with the files the crate ships (their parse is tested); the `expect` names that.
pub fn simulcast_layers() -> [(&'static str, Ivf); 3] {
    #[allow(clippy::expect_used)]
    let parse = |bytes| parse_ivf(bytes).expect("the bundled IVF samples parse (tested here)");
    [
        ("h", parse(SAMPLE_VP8_IVF_HD)),
        ("m", parse(SAMPLE_VP8_IVF_MID)),
        ("l", parse(SAMPLE_VP8_IVF_LOW)),
    ]
}

/// The sample audio, parsed.
///
/// # Panics
/// Never with the file the crate ships (its parse is tested); the `expect` names that.
pub fn sample_audio() -> OggOpus {
    #[allow(clippy::expect_used)]
    parse_ogg_opus(SAMPLE_OPUS_OGG)
        .expect("the bundled Ogg Opus sample parses (tested in this module)")
}

fn le16(bytes: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([bytes[at], bytes[at + 1]])
}

fn le32(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_sample_video_is_two_seconds_of_vp8_with_a_key_frame_every_15() {
        let ivf = sample_video();
        assert_eq!(&ivf.fourcc, b"VP80");
        assert_eq!((ivf.width, ivf.height), (320, 180));
        assert_eq!(ivf.frame_interval(), Some(Duration::from_nanos(66_666_666)));
        assert_eq!(ivf.frames.len(), 30);
        let keys: Vec<usize> = (0..30).filter(|&i| ivf.frames[i].keyframe).collect();
        assert_eq!(keys, [0, 15]);
        for (i, frame) in ivf.frames.iter().enumerate() {
            assert_eq!(frame.pts, i as u64);
            assert!(frame.data.len() >= 10);
        }
        // A VP8 key frame's start code and size (RFC 6386 §9.1).
        let key = &ivf.frames[0].data;
        assert_eq!(&key[3..6], [0x9d, 0x01, 0x2a]);
        assert_eq!(u16::from_le_bytes([key[6], key[7]]) & 0x3fff, 320);
        assert_eq!(u16::from_le_bytes([key[8], key[9]]) & 0x3fff, 180);
    }

    #[test]
    fn the_load_sample_is_one_second_of_640x360_at_30_fps_and_about_a_megabit() {
        let ivf = sample_video_hd();
        assert_eq!((ivf.width, ivf.height), (640, 360));
        assert_eq!(ivf.frames.len(), 30);
        assert!(ivf.frames[0].keyframe);
        assert!(ivf.frames[1..].iter().all(|f| !f.keyframe));
        let bits: usize = ivf.frames.iter().map(|f| f.data.len() * 8).sum();
        assert!((1_000_000..1_600_000).contains(&bits), "{bits} bit/s");
    }

    #[test]
    fn the_simulcast_layers_line_up_and_get_smaller() {
        let layers = simulcast_layers();
        let sizes: Vec<(u16, usize)> = layers
            .iter()
            .map(|(_, ivf)| {
                assert_eq!(ivf.frames.len(), 30);
                assert!(ivf.frames[0].keyframe);
                (ivf.width, ivf.frames.iter().map(|f| f.data.len()).sum())
            })
            .collect();
        assert_eq!(
            sizes.iter().map(|s| s.0).collect::<Vec<_>>(),
            [640, 320, 160]
        );
        assert!(
            sizes[0].1 > sizes[1].1 && sizes[1].1 > sizes[2].1,
            "{sizes:?}"
        );
    }

    #[test]
    fn the_sample_audio_is_opus_in_20_ms_packets() {
        let ogg = sample_audio();
        assert_eq!(ogg.channels, 1);
        assert_eq!(ogg.input_sample_rate, 48_000);
        assert!(ogg.packets.len() >= 100, "{}", ogg.packets.len());
        for p in &ogg.packets {
            assert_eq!(p.samples, 960);
            assert_eq!(p.duration(), Duration::from_millis(20));
            assert!(!p.data.is_empty());
        }
    }

    #[test]
    fn every_truncation_of_the_samples_is_an_error_or_a_prefix_never_a_panic() {
        let ivf = sample_video();
        for cut in 0..SAMPLE_VP8_IVF.len() {
            match parse_ivf(&SAMPLE_VP8_IVF[..cut]) {
                // Cut exactly between frames: the frames before the cut.
                Ok(part) => assert_eq!(part.frames[..], ivf.frames[..part.frames.len()]),
                Err(e) => assert!(matches!(e, FileError::Truncated(_)), "{e}"),
            }
        }
        let ogg = sample_audio();
        for cut in 0..SAMPLE_OPUS_OGG.len() {
            if let Ok(part) = parse_ogg_opus(&SAMPLE_OPUS_OGG[..cut]) {
                assert_eq!(part.packets[..], ogg.packets[..part.packets.len()]);
            }
        }
    }

    #[test]
    fn garbage_and_damage_are_errors() {
        let mut x = 0x9e37_79b9u32;
        for len in [0usize, 1, 11, 27, 31, 32, 33, 100, 4096] {
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                    (x >> 16) as u8
                })
                .collect();
            assert!(parse_ivf(&bytes).is_err());
            assert!(parse_ogg_opus(&bytes).is_err());
            // With the right signatures in front, the rest still cannot make it panic.
            let mut ivf = b"DKIF\0\0\x20\0VP80".to_vec();
            ivf.extend_from_slice(&bytes);
            let _ = parse_ivf(&ivf);
            let mut ogg = b"OggS\0".to_vec();
            ogg.extend_from_slice(&bytes);
            assert!(parse_ogg_opus(&ogg).is_err());
        }
        // A frame length far past the end.
        let mut ivf = SAMPLE_VP8_IVF[..32].to_vec();
        ivf.extend_from_slice(&u32::MAX.to_le_bytes());
        ivf.extend_from_slice(&[0; 8]);
        assert_eq!(parse_ivf(&ivf), Err(FileError::Truncated("IVF frame")));
        // A header length shorter than the header, or past the end.
        let mut bad = SAMPLE_VP8_IVF.to_vec();
        bad[6] = 8;
        assert_eq!(
            parse_ivf(&bad),
            Err(FileError::Invalid("IVF header length"))
        );
        bad[6..8].copy_from_slice(&u16::MAX.to_le_bytes());
        assert!(parse_ivf(&bad).is_err());
        // One flipped bit anywhere in an Ogg page fails its checksum (or its structure).
        for at in (0..SAMPLE_OPUS_OGG.len()).step_by(97) {
            let mut bad = SAMPLE_OPUS_OGG.to_vec();
            bad[at] ^= 0x10;
            assert!(parse_ogg_opus(&bad).is_err(), "flip at {at}");
        }
        // Not Ogg at all.
        assert!(parse_ogg_opus(SAMPLE_VP8_IVF).is_err());
    }

    #[test]
    fn opus_durations_follow_the_toc_byte() {
        assert_eq!(opus_packet_samples(&[]), None);
        assert_eq!(opus_packet_samples(&[0xfc]), Some(960)); // CELT 20 ms, 1 frame
        assert_eq!(opus_packet_samples(&[0x09]), Some(1920)); // SILK 20 ms, 2 frames
        assert_eq!(opus_packet_samples(&[0x0b]), None); // code 3 without its count
        assert_eq!(opus_packet_samples(&[0x0b, 0x03]), Some(2880)); // SILK 20 ms x 3
        assert_eq!(opus_packet_samples(&[0x80]), Some(120)); // CELT 2.5 ms
    }
}
