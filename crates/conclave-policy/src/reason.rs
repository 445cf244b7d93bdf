//! Outcomes and the reasons behind them.

use conclave_types::{Classification, DeviceTrust, Timestamp};
use serde::Serialize;

/// What happens to a join request. Ordered by severity: `Admit < Lobby < Deny`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The person joins the call.
    Admit,
    /// The person waits until a host admits them.
    Lobby,
    /// The person cannot join.
    Deny,
}

impl Outcome {
    /// The lower-case name used in the API and the audit log: `admit`, `lobby` or `deny`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admit => "admit",
            Self::Lobby => "lobby",
            Self::Deny => "deny",
        }
    }
}

/// One reason behind a [`Decision`](crate::Decision).
///
/// Each reason has a stable [`code`](Reason::code) for programs, a severity
/// ([`outcome`](Reason::outcome)) and a plain-language [`explain`](Reason::explain)
/// for the person trying to join. Serialised internally tagged by its code, e.g.
/// `{"code": "too_early", "opens_at": "2026-11-23T09:15:00Z"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "code", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Reason {
    /// Deny: the profile's audience does not include the person's relation to the meeting.
    NotInAudience,
    /// Deny: the meeting has been cancelled.
    Cancelled,
    /// Deny: the join window has not opened yet.
    TooEarly {
        /// When the join window opens.
        opens_at: Timestamp,
    },
    /// Deny: the join window has closed.
    Ended,
    /// Deny: the device is less trusted than the profile requires.
    DeviceNotTrusted {
        /// The minimum trust the profile requires.
        required: DeviceTrust,
        /// The trust of the device asking to join.
        actual: DeviceTrust,
    },
    /// Deny: the client is outside the trusted networks and the profile denies that.
    UntrustedNetworkDenied,
    /// Deny: the call already has the maximum number of participants.
    Full {
        /// The profile's participant limit.
        max: u32,
    },
    /// Lobby: the person was not invited and the profile sends uninvited people to the lobby.
    LobbyForGuests,
    /// Lobby: the profile sends everyone but hosts to the lobby.
    LobbyForEveryone,
    /// Lobby: the client is outside the trusted networks and the profile sends such
    /// joins to the lobby.
    UntrustedNetworkLobby,
    /// Lobby: a host locked the meeting.
    LockedByHost,
    /// Lobby: the meeting locked itself some time after its start.
    LockedAfterStart,
    /// Admit, but shown to hosts and in the roster: the client is outside the trusted
    /// networks and the profile only flags that.
    UntrustedNetworkFlagged,
}

impl Reason {
    /// The stable snake_case code, e.g. `too_early`; safe to match on in clients.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotInAudience => "not_in_audience",
            Self::Cancelled => "cancelled",
            Self::TooEarly { .. } => "too_early",
            Self::Ended => "ended",
            Self::DeviceNotTrusted { .. } => "device_not_trusted",
            Self::UntrustedNetworkDenied => "untrusted_network_denied",
            Self::Full { .. } => "full",
            Self::LobbyForGuests => "lobby_for_guests",
            Self::LobbyForEveryone => "lobby_for_everyone",
            Self::UntrustedNetworkLobby => "untrusted_network_lobby",
            Self::LockedByHost => "locked_by_host",
            Self::LockedAfterStart => "locked_after_start",
            Self::UntrustedNetworkFlagged => "untrusted_network_flagged",
        }
    }

    /// The reason's severity: the outcome it forces on its own.
    pub fn outcome(&self) -> Outcome {
        match self {
            Self::NotInAudience
            | Self::Cancelled
            | Self::TooEarly { .. }
            | Self::Ended
            | Self::DeviceNotTrusted { .. }
            | Self::UntrustedNetworkDenied
            | Self::Full { .. } => Outcome::Deny,
            Self::LobbyForGuests
            | Self::LobbyForEveryone
            | Self::UntrustedNetworkLobby
            | Self::LockedByHost
            | Self::LockedAfterStart => Outcome::Lobby,
            Self::UntrustedNetworkFlagged => Outcome::Admit,
        }
    }

    /// A short sentence for the person trying to join, e.g. "secret meetings can only
    /// be joined from a managed device; this device is personal".
    ///
    /// `classification` is the meeting's classification. It is deliberately not used
    /// for [`Reason::NotInAudience`], which is given to people who are not entitled to
    /// learn anything about the meeting.
    pub fn explain(&self, classification: &Classification) -> String {
        let c = classification.as_str();
        match self {
            Self::NotInAudience => {
                "you are not allowed to join this meeting; ask its organiser to invite you"
                    .to_string()
            }
            Self::Cancelled => "this meeting has been cancelled".to_string(),
            Self::TooEarly { opens_at } => {
                format!("this meeting opens for joining at {opens_at}")
            }
            Self::Ended => "this meeting has ended and can no longer be joined".to_string(),
            Self::DeviceNotTrusted { required, actual } => format!(
                "{c} meetings can only be joined from a {required} device; this device is {actual}"
            ),
            Self::UntrustedNetworkDenied => format!(
                "{c} meetings can only be joined from a trusted network; \
                 you are connecting from an untrusted network"
            ),
            Self::Full { max } => {
                let noun = if *max == 1 {
                    "participant"
                } else {
                    "participants"
                };
                format!("this meeting is full: {c} meetings allow at most {max} {noun}")
            }
            Self::LobbyForGuests => {
                "you are not on the invitation list, so a host must admit you".to_string()
            }
            Self::LobbyForEveryone => {
                format!("in {c} meetings everyone waits in the lobby until a host admits them")
            }
            Self::UntrustedNetworkLobby => format!(
                "you are connecting from an untrusted network, so a host must admit you \
                 to this {c} meeting"
            ),
            Self::LockedByHost => {
                "a host has locked this meeting, so a host must admit you".to_string()
            }
            Self::LockedAfterStart => format!(
                "{c} meetings lock shortly after they start; you are late, so a host must admit you"
            ),
            Self::UntrustedNetworkFlagged => "you are connecting from an untrusted network; \
                 the hosts and the participant list will show this"
                .to_string(),
        }
    }
}
