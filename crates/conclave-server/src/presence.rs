//! Who is in which call right now.
//!
//! The policy engine needs the participant count (`max_participants`); the signalling
//! layer owns the truth and writes the count of each call here after every change. Seats
//! in the lobby do not count: they are not in the call, and a full call must still let a
//! host's lobby fill. Until a call runs on this server, every meeting has zero participants.

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

    /// `meeting`'s call now holds `participants` (outside the lobby).
    pub fn set(&self, meeting: MeetingId, participants: u32) {
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        if participants == 0 {
            counts.remove(&meeting);
        } else {
            counts.insert(meeting, participants);
        }
    }
}
