//! Who is in which call right now.
//!
//! The policy engine needs the participant count (`max_participants`); the signalling
//! layer owns the truth and updates this registry as people enter and leave calls.
//! Until a call runs on this server, every meeting has zero participants.

use std::collections::HashMap;
use std::sync::Mutex;

use conclave_types::MeetingId;

/// Participant counts per meeting.
#[derive(Debug, Default)]
pub struct Presence {
    counts: Mutex<HashMap<MeetingId, u32>>,
}

impl Presence {
    /// Participants currently in `meeting`'s call.
    pub fn participants(&self, meeting: &MeetingId) -> u32 {
        self.counts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(meeting)
            .copied()
            .unwrap_or(0)
    }

    /// Someone entered the call.
    pub fn entered(&self, meeting: MeetingId) {
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        *counts.entry(meeting).or_insert(0) += 1;
    }

    /// Someone left the call.
    pub fn left(&self, meeting: &MeetingId) {
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = counts.get_mut(meeting) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                counts.remove(meeting);
            }
        }
    }
}
