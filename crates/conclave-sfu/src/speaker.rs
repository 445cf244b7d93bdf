//! Active speaker detection from the audio level header extension (RFC 6464).
//!
//! Senders put the level of each audio packet in a header extension (0 dBov loudest, -127
//! silence) outside the encrypted payload, so the SFU can tell who speaks without hearing
//! them. Per call, each participant's loudness is smoothed over about half a second; the
//! loudest participant above a speech threshold becomes the speaker, but only when they are
//! clearly louder than the current speaker or the current speaker fell silent, so that two
//! people talking at once do not make the view flicker.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::ParticipantId;

/// Levels below this (in dBov) count as silence.
const SPEECH_THRESHOLD_DBOV: f32 = -60.0;

/// How much louder (in dB, smoothed) a challenger must be to take over from someone still
/// speaking.
const TAKEOVER_MARGIN_DB: f32 = 6.0;

/// How often the speaker is decided.
const DECISION_INTERVAL: Duration = Duration::from_millis(300);

/// A participant whose audio stopped this long ago is silent, whatever their last level.
const SILENT_AFTER: Duration = Duration::from_millis(1_000);

/// Weight of a new observation in the moving average (audio packets come every 20 ms, so
/// about the last 25 packets, half a second, dominate).
const SMOOTHING: f32 = 0.04;

#[derive(Debug, Clone, Copy)]
struct Loudness {
    /// Exponentially smoothed level, dBov.
    level: f32,
    last: Instant,
}

/// Speaker detection for one call.
#[derive(Debug, Default)]
pub(crate) struct SpeakerDetector {
    loudness: BTreeMap<ParticipantId, Loudness>,
    speaker: Option<ParticipantId>,
    last_decision: Option<Instant>,
}

impl SpeakerDetector {
    /// One audio packet of `participant` at `level_dbov` (RFC 6464: 0 loudest, -127 silence;
    /// values out of range are clamped). Returns the new speaker if the decision due now
    /// changed it.
    pub(crate) fn observe(
        &mut self,
        participant: ParticipantId,
        level_dbov: i8,
        now: Instant,
    ) -> Option<ParticipantId> {
        let level = f32::from(level_dbov.clamp(-127, 0));
        let entry = self.loudness.entry(participant).or_insert(Loudness {
            level: -127.0,
            last: now,
        });
        entry.level += SMOOTHING * (level - entry.level);
        entry.last = now;
        if self
            .last_decision
            .is_some_and(|t| now.saturating_duration_since(t) < DECISION_INTERVAL)
        {
            return None;
        }
        self.last_decision = Some(now);
        self.decide(now)
    }

    /// Whether `participant` speaks now: their smoothed level is above the speech threshold
    /// and their audio still arrives.
    pub(crate) fn speaking(&self, participant: ParticipantId, now: Instant) -> bool {
        self.level(participant, now) >= SPEECH_THRESHOLD_DBOV
    }

    /// Forgets a participant who left; if they were the speaker, nobody is until the next
    /// decision.
    pub(crate) fn remove(&mut self, participant: ParticipantId) {
        self.loudness.remove(&participant);
        if self.speaker == Some(participant) {
            self.speaker = None;
        }
    }

    fn level(&self, participant: ParticipantId, now: Instant) -> f32 {
        self.loudness
            .get(&participant)
            .filter(|l| now.saturating_duration_since(l.last) < SILENT_AFTER)
            .map_or(-127.0, |l| l.level)
    }

    fn decide(&mut self, now: Instant) -> Option<ParticipantId> {
        let (loudest, level) = self
            .loudness
            .keys()
            .map(|p| (*p, self.level(*p, now)))
            .max_by(|a, b| a.1.total_cmp(&b.1))?;
        if level < SPEECH_THRESHOLD_DBOV || self.speaker == Some(loudest) {
            return None;
        }
        let current = self.speaker.map_or(-127.0, |p| self.level(p, now));
        if current >= SPEECH_THRESHOLD_DBOV && level < current + TAKEOVER_MARGIN_DB {
            return None;
        }
        self.speaker = Some(loudest);
        Some(loudest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds 20 ms packets for `ms` milliseconds from each (participant, level); returns every
    /// change of speaker.
    fn talk(
        d: &mut SpeakerDetector,
        start: &mut Instant,
        ms: u64,
        voices: &[(u64, i8)],
    ) -> Vec<u64> {
        let mut changes = Vec::new();
        for _ in 0..ms / 20 {
            *start += Duration::from_millis(20);
            for (p, level) in voices {
                if let Some(s) = d.observe(ParticipantId(*p), *level, *start) {
                    changes.push(s.0);
                }
            }
        }
        changes
    }

    #[test]
    fn the_loudest_voice_speaks_and_a_quiet_room_has_no_speaker() {
        let mut d = SpeakerDetector::default();
        let mut now = Instant::now();
        assert!(talk(&mut d, &mut now, 2_000, &[(1, -127), (2, -100)]).is_empty());
        assert_eq!(talk(&mut d, &mut now, 2_000, &[(1, -20), (2, -90)]), [1]);
    }

    #[test]
    fn a_slightly_louder_voice_does_not_interrupt_but_a_clearly_louder_one_does() {
        let mut d = SpeakerDetector::default();
        let mut now = Instant::now();
        assert_eq!(talk(&mut d, &mut now, 2_000, &[(1, -30), (2, -90)]), [1]);
        assert!(talk(&mut d, &mut now, 3_000, &[(1, -30), (2, -27)]).is_empty());
        assert_eq!(talk(&mut d, &mut now, 3_000, &[(1, -30), (2, -15)]), [2]);
    }

    #[test]
    fn when_the_speaker_stops_the_next_voice_takes_over() {
        let mut d = SpeakerDetector::default();
        let mut now = Instant::now();
        assert_eq!(talk(&mut d, &mut now, 2_000, &[(1, -20), (2, -40)]), [1]);
        // participant 1's audio stops entirely (muted): 2 takes over within about a second
        assert_eq!(talk(&mut d, &mut now, 2_000, &[(2, -40)]), [2]);
        d.remove(ParticipantId(2));
        assert!(talk(&mut d, &mut now, 1_000, &[(3, -127)]).is_empty());
    }
}
