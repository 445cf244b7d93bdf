//! Slots: the receiving m-lines a participant offers, and which of the others' tracks fill
//! them.
//!
//! A participant offers, once, as many `recvonly` audio and video m-lines as it wants to
//! play and show at a time. Each is a slot. The SFU fills a receiver's slots of a kind with
//! the best-ranked tracks of that kind (who spoke last first, then who joined first) and
//! moves a track to another slot only when it must: a slot keeps what it carries while that
//! is still wanted. So the SDP does not grow with the call and nobody renegotiates when
//! others join or leave; who is on a slot is told by the frames themselves (the SFrame key id
//! names the sender), not by signalling.
//!
//! Audio changes slot at once. Video keeps playing the old track on the slot until a key
//! frame of the new one arrives (the SFU asks for one), because a decoder can only start
//! there; simulcast layer changes ride on the same mechanism. Across a change the slot's RTP
//! sequence numbers, timestamps and VP8 picture ids continue from where they were (the
//! timestamps advanced by the wall-clock time that passed), so the receiver's jitter buffer
//! and decoder see one stream rather than a jump.

use std::time::{Duration, Instant};

use str0m::media::{MediaKind, Mid, Rid};
use str0m::rtp::SeqNo;

use crate::ParticipantId;

/// One incoming stream: a participant's track, and its simulcast layer if it has layers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Source {
    pub(crate) origin: ParticipantId,
    pub(crate) mid: Mid,
    pub(crate) rid: Option<Rid>,
}

impl Source {
    pub(crate) fn track(&self) -> (ParticipantId, Mid) {
        (self.origin, self.mid)
    }
}

/// One receiving m-line of a participant.
#[derive(Debug)]
pub(crate) struct Slot {
    pub(crate) mid: Mid,
    pub(crate) kind: MediaKind,
    /// What it carries now.
    pub(crate) current: Option<Source>,
    /// What it carries from that stream's next key frame on (video only).
    pub(crate) next: Option<Source>,
    /// A key frame must be asked of `next`'s origin once the receiver is connected.
    pub(crate) keyframe_wanted: bool,
    timeline: Option<Timeline>,
}

/// How a slot renumbers what it forwards: packets of `from` go out with their sequence number
/// and RTP timestamp shifted by offsets fixed when the slot switched to `from`, so that the
/// receiver sees one stream whose numbers run on, whoever sends on it.
#[derive(Debug, Clone, Copy)]
struct Timeline {
    from: Source,
    /// The first sequence number of `from` the slot forwarded; earlier ones, arriving late,
    /// would be numbered into what the previous source used, and are dropped.
    first: u64,
    seq_offset: u64,
    time_offset: u32,
    /// The highest sequence number and the latest timestamp sent, and when.
    last_seq: u64,
    last_time: u32,
    last_at: Instant,
    pictures: Pictures,
}

/// VP8 picture ids (and TL0PICIDX) renumbered like sequence numbers: a decoder that saw a
/// picture id go backwards would drop frames as old ones.
#[derive(Debug, Clone, Copy, Default)]
struct Pictures {
    /// Fixed at the source's first packet with a picture id.
    offsets: Option<(u16, u8)>,
    /// The last sent.
    last: Option<(u16, u8)>,
}

/// A forwarded packet's new numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Renumbered {
    pub(crate) seq: SeqNo,
    pub(crate) time: u32,
}

impl Slot {
    pub(crate) fn new(mid: Mid, kind: MediaKind) -> Slot {
        Slot {
            mid,
            kind,
            current: None,
            next: None,
            keyframe_wanted: false,
            timeline: None,
        }
    }

    /// The track the slot is for: the one it switches to, else the one it carries.
    pub(crate) fn aimed(&self) -> Option<(ParticipantId, Mid)> {
        self.next.or(self.current).map(|s| s.track())
    }

    /// Whether the slot carries or is about to carry this track.
    pub(crate) fn serves(&self, origin: ParticipantId, mid: Mid) -> bool {
        [self.current, self.next]
            .iter()
            .flatten()
            .any(|s| s.track() == (origin, mid))
    }

    /// The numbers a packet of `from` (sequence number `seq`, RTP timestamp `time` on a clock
    /// of `rate` Hz) goes out with `at` this instant, or `None` if it is from before the slot
    /// switched to `from`. At a switch the sequence continues from the last one sent and the
    /// clock moves on by the wall-clock time that passed (at least one tick), so the receiver's
    /// jitter buffer sees one stream rather than a jump. The first source's numbers pass
    /// through without their rollovers: the receiver's SRTP counts rollovers of the slot's
    /// stream from zero, and a sender past 65,536 packets (seven minutes of video) would
    /// otherwise reach a newcomer under a count it cannot know, and nothing would open.
    pub(crate) fn renumber(
        &mut self,
        from: Source,
        seq: SeqNo,
        time: u32,
        rate: u32,
        at: Instant,
    ) -> Option<Renumbered> {
        let seq = *seq;
        let t = match &mut self.timeline {
            Some(t) if t.from == from => {
                if seq < t.first {
                    return None;
                }
                t
            }
            previous => {
                let pictures = Pictures {
                    offsets: None,
                    last: previous.and_then(|p| p.pictures.last),
                };
                let (seq_offset, time_offset) = match previous {
                    Some(p) => {
                        let passed = at.saturating_duration_since(p.last_at).as_micros();
                        let ticks = (passed * u128::from(rate) / 1_000_000).max(1);
                        let next_time = p.last_time.wrapping_add(ticks as u32);
                        (
                            p.last_seq.wrapping_add(1).wrapping_sub(seq),
                            next_time.wrapping_sub(time),
                        )
                    }
                    None => ((seq & 0xffff).wrapping_sub(seq), 0),
                };
                self.timeline.insert(Timeline {
                    from,
                    first: seq,
                    seq_offset,
                    time_offset,
                    last_seq: seq.wrapping_add(seq_offset),
                    last_time: time.wrapping_add(time_offset),
                    last_at: at,
                    pictures,
                })
            }
        };
        let out = Renumbered {
            seq: seq.wrapping_add(t.seq_offset).into(),
            time: time.wrapping_add(t.time_offset),
        };
        if *out.seq >= t.last_seq {
            t.last_seq = *out.seq;
            t.last_time = out.time;
            t.last_at = at;
        }
        Some(out)
    }

    /// The VP8 picture id and TL0PICIDX a packet goes out with, called after
    /// [`Slot::renumber`] forwarded it: they run on across a change of source. `mask` is the
    /// picture id's width in the packet's descriptor (0x7f or 0x7fff).
    pub(crate) fn renumber_vp8(
        &mut self,
        picture_id: u16,
        tl0: Option<u8>,
        mask: u16,
    ) -> (u16, Option<u8>) {
        let Some(t) = &mut self.timeline else {
            return (picture_id, tl0);
        };
        let last = t.pictures.last;
        let (offset, tl0_offset) = *t.pictures.offsets.get_or_insert_with(|| match last {
            Some((id, tl)) => (
                id.wrapping_add(1).wrapping_sub(picture_id),
                tl.wrapping_add(1).wrapping_sub(tl0.unwrap_or(0)),
            ),
            None => (0, 0),
        });
        let id = picture_id.wrapping_add(offset) & mask;
        let tl0 = tl0.map(|v| v.wrapping_add(tl0_offset));
        t.pictures.last = Some((id, tl0.unwrap_or(0)));
        (id, tl0)
    }
}

/// Fills the slots of `kind` with the first of `ranked` (best first): a slot already aimed at
/// one of them keeps it, the others get the wanted tracks no slot has yet, and what is left
/// over carries nothing. Audio slots change at once; video slots get `next` and keep playing
/// `current` until its key frame. Returns how many slots got a new track.
pub(crate) fn assign(
    slots: &mut [Slot],
    kind: MediaKind,
    ranked: &[(ParticipantId, Mid)],
) -> usize {
    let count = slots.iter().filter(|s| s.kind == kind).count();
    let wanted = &ranked[..ranked.len().min(count)];
    let mut missing: Vec<(ParticipantId, Mid)> = wanted
        .iter()
        .filter(|t| {
            !slots
                .iter()
                .any(|s| s.kind == kind && s.aimed() == Some(**t))
        })
        .copied()
        .collect();
    missing.reverse();
    let mut changed = 0;
    for slot in slots.iter_mut().filter(|s| s.kind == kind) {
        if slot.aimed().is_some_and(|t| wanted.contains(&t)) {
            continue;
        }
        match missing.pop() {
            Some((origin, mid)) => {
                let source = Source {
                    origin,
                    mid,
                    rid: None,
                };
                if kind == MediaKind::Audio {
                    slot.current = Some(source);
                    slot.next = None;
                } else {
                    slot.next = Some(source);
                    slot.keyframe_wanted = true;
                }
                changed += 1;
            }
            None => {
                slot.current = None;
                slot.next = None;
                slot.keyframe_wanted = false;
            }
        }
    }
    changed
}

/// How long after their last word a participant still ranks as speaking recently.
pub(crate) const TALK_SPURT_GAP: Duration = Duration::from_millis(1_000);

/// A track that sent no frame for this long gives up its slots (a camera turned off, a muted
/// microphone; Opus with DTX still sends a packet every 400 ms).
pub(crate) const QUIET_AFTER: Duration = Duration::from_secs(3);

#[cfg(test)]
mod tests {
    use super::*;

    fn track(origin: u64, mid: &str) -> (ParticipantId, Mid) {
        (ParticipantId(origin), Mid::from(mid))
    }

    fn slots(kind: MediaKind, n: usize) -> Vec<Slot> {
        (0..n)
            .map(|i| Slot::new(Mid::from(format!("r{i}").as_str()), kind))
            .collect()
    }

    fn carried(slots: &[Slot]) -> Vec<Option<u64>> {
        slots.iter().map(|s| s.aimed().map(|t| t.0 .0)).collect()
    }

    #[test]
    fn slots_take_the_best_ranked_and_keep_them_while_wanted() {
        let mut s = slots(MediaKind::Audio, 2);
        let ranked = [track(1, "a"), track(2, "a"), track(3, "a")];
        assert_eq!(assign(&mut s, MediaKind::Audio, &ranked), 2);
        assert_eq!(carried(&s), [Some(1), Some(2)]);
        // 3 spoke: it replaces the one ranked lowest now, the other stays on its slot
        let ranked = [track(3, "a"), track(1, "a"), track(2, "a")];
        assert_eq!(assign(&mut s, MediaKind::Audio, &ranked), 1);
        assert_eq!(carried(&s), [Some(1), Some(3)]);
        // nothing changes when nothing must
        assert_eq!(assign(&mut s, MediaKind::Audio, &ranked), 0);
        // fewer tracks than slots: the rest carry nothing
        assert_eq!(assign(&mut s, MediaKind::Audio, &[track(3, "a")]), 0);
        assert_eq!(carried(&s), [None, Some(3)]);
    }

    #[test]
    fn video_slots_switch_at_the_next_key_frame_and_other_kinds_are_untouched() {
        let mut s = slots(MediaKind::Video, 1);
        s.extend(slots(MediaKind::Audio, 1));
        assign(&mut s, MediaKind::Video, &[track(1, "v")]);
        assert!(s[0].current.is_none() && s[0].keyframe_wanted);
        assert_eq!(s[0].next.map(|n| n.origin), Some(ParticipantId(1)));
        assert!(s[1].aimed().is_none());
        s[0].current = s[0].next.take();
        assign(&mut s, MediaKind::Video, &[track(2, "v")]);
        // the old track plays on until the new one's key frame
        assert_eq!(s[0].current.map(|c| c.origin), Some(ParticipantId(1)));
        assert_eq!(s[0].aimed(), Some(track(2, "v")));
        assert!(s[0].serves(ParticipantId(1), Mid::from("v")));
        assert!(s[0].serves(ParticipantId(2), Mid::from("v")));
    }

    #[test]
    fn numbers_pass_through_then_run_on_across_a_change_of_source() {
        let mut slot = Slot::new(Mid::from("r0"), MediaKind::Video);
        let start = Instant::now();
        let a = Source {
            origin: ParticipantId(1),
            mid: Mid::from("v"),
            rid: None,
        };
        let b = Source {
            origin: ParticipantId(2),
            ..a
        };
        let r = |seq: u64, time: u32| {
            Some(Renumbered {
                seq: seq.into(),
                time,
            })
        };
        let ms = |n: u64| start + Duration::from_millis(n);
        assert_eq!(
            slot.renumber(a, 100.into(), 1_000, 90_000, start),
            r(100, 1_000)
        );
        assert_eq!(
            slot.renumber(a, 102.into(), 10_000, 90_000, ms(100)),
            r(102, 10_000)
        );
        // a late packet of the same source keeps its place
        assert_eq!(
            slot.renumber(a, 101.into(), 10_000, 90_000, ms(101)),
            r(101, 10_000)
        );
        // b's numbers are far off; its first packet 50 ms later follows a's last directly
        assert_eq!(
            slot.renumber(b, 7_000.into(), 900_000, 90_000, ms(150)),
            r(103, 14_500)
        );
        assert_eq!(
            slot.renumber(b, 7_001.into(), 903_000, 90_000, ms(183)),
            r(104, 17_500)
        );
        // a packet of b from before the switch would reuse a number a sent: dropped
        assert_eq!(
            slot.renumber(b, 6_999.into(), 897_000, 90_000, ms(184)),
            None
        );
        // VP8 picture ids: b's follow a's last one
        let mut slot = Slot::new(Mid::from("r2"), MediaKind::Video);
        slot.renumber(a, 1.into(), 0, 90_000, start);
        assert_eq!(slot.renumber_vp8(7_000, Some(3), 0x7fff), (7_000, Some(3)));
        slot.renumber(a, 2.into(), 3_000, 90_000, start);
        assert_eq!(slot.renumber_vp8(7_001, Some(3), 0x7fff), (7_001, Some(3)));
        slot.renumber(b, 50.into(), 0, 90_000, ms(10));
        assert_eq!(slot.renumber_vp8(12, Some(200), 0x7fff), (7_002, Some(4)));
        slot.renumber(b, 51.into(), 0, 90_000, ms(20));
        assert_eq!(slot.renumber_vp8(13, Some(201), 0x7fff), (7_003, Some(5)));
        // a 7-bit picture id wraps at 128
        slot.renumber(a, 3.into(), 0, 90_000, ms(30));
        assert_eq!(slot.renumber_vp8(0, None, 0x7f), (7_004 & 0x7f, None));
        // the timestamp wraps as RTP's does
        let mut slot = Slot::new(Mid::from("r1"), MediaKind::Audio);
        slot.renumber(a, 5.into(), u32::MAX, 48_000, start);
        assert_eq!(slot.renumber(b, 0.into(), 0, 48_000, start), r(6, 0));
    }

    #[test]
    fn a_new_receiver_gets_a_long_running_stream_without_its_rollovers() {
        let mut slot = Slot::new(Mid::from("r0"), MediaKind::Video);
        let a = Source {
            origin: ParticipantId(1),
            mid: Mid::from("v"),
            rid: None,
        };
        let at = Instant::now();
        // the sender's sequence rolled over three times before this receiver joined
        let mut seq = |n: u64| slot_seq(&mut slot, a, 3 * 65_536 + n, at);
        assert_eq!(seq(65_534), Some(65_534));
        assert_eq!(seq(65_535), Some(65_535));
        // the next rollover is the receiver's first
        assert_eq!(seq(65_536), Some(65_536));
    }

    fn slot_seq(slot: &mut Slot, from: Source, seq: u64, at: Instant) -> Option<u64> {
        slot.renumber(from, seq.into(), 0, 90_000, at)
            .map(|r| *r.seq)
    }
}
