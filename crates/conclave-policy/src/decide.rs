//! The decision itself.

use std::net::IpAddr;

use conclave_types::{Classification, DeviceTrust, Timestamp};
use serde::{Deserialize, Serialize};

use crate::profile::{Audience, LobbyRule, NamedNetwork, Profile, UntrustedNetworkAction};
use crate::reason::{Outcome, Reason};

/// What the server knows about the meeting at decision time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeetingFacts {
    /// The scheduled start.
    pub starts_at: Timestamp,
    /// The scheduled end.
    pub ends_at: Timestamp,
    /// Whether the meeting has been cancelled.
    pub cancelled: bool,
    /// Whether a host locked the room.
    pub locked: bool,
    /// How many people are currently in the call.
    pub participants: u32,
}

/// How the person asking relates to the meeting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Relation {
    /// Organiser or co-host.
    Host,
    /// On the invitation list.
    Invitee,
    /// An account of the organisation that was not invited.
    Colleague,
    /// Holds the link but has no account of the organisation.
    Guest,
}

/// A request to join a meeting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinRequest {
    /// How the person relates to the meeting.
    pub relation: Relation,
    /// The trust of the device they are joining from.
    pub device_trust: DeviceTrust,
    /// The address the request came from.
    pub client_addr: IpAddr,
}

/// Whether the client address lies in one of the profile's trusted networks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum NetworkAssessment {
    /// Inside a trusted network; the first matching one in the profile's order.
    Trusted {
        /// The name of that network.
        name: String,
    },
    /// Outside every trusted network.
    Untrusted,
}

/// The result of [`decide`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    /// The most severe outcome among `reasons`, or `Admit` when there are none.
    pub outcome: Outcome,
    /// Every reason that applies, in the order documented on [`decide`].
    pub reasons: Vec<Reason>,
    /// Where the client is connecting from.
    pub network: NetworkAssessment,
}

/// The other spelling of an address: `a.b.c.d` <-> `::ffff:a.b.c.d`.
fn alternate_form(addr: IpAddr) -> Option<IpAddr> {
    match addr {
        IpAddr::V4(v4) => Some(IpAddr::V6(v4.to_ipv6_mapped())),
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4),
    }
}

fn assess_network(networks: &[NamedNetwork], addr: IpAddr) -> NetworkAssessment {
    let alt = alternate_form(addr);
    networks
        .iter()
        .find(|n| {
            n.ranges
                .iter()
                .any(|r| r.contains(&addr) || alt.is_some_and(|a| r.contains(&a)))
        })
        .map_or(NetworkAssessment::Untrusted, |n| {
            NetworkAssessment::Trusted {
                name: n.name.clone(),
            }
        })
}

fn in_audience(audience: Audience, relation: Relation) -> bool {
    match audience {
        Audience::Invitees => matches!(relation, Relation::Host | Relation::Invitee),
        Audience::Organisation => !matches!(relation, Relation::Guest),
        Audience::Guests => true,
    }
}

/// Decides whether a join request is admitted, sent to the lobby or denied.
///
/// Pure: no I/O and no clock; `now` is whatever the caller says it is, so the same
/// inputs always give the same decision.
///
/// # Semantics
///
/// The network is always assessed: the client address is `Trusted` with the name of
/// the first of the profile's trusted networks that contains it, else `Untrusted`.
/// An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) matches IPv4 ranges as `a.b.c.d`
/// (and an IPv4 address matches ranges written in the mapped form).
///
/// 1. **Audience.** `invitees` admits hosts and invitees, `organisation` also
///    colleagues, `guests` everyone. Anyone else is denied with
///    `[NotInAudience]` alone: nothing else is evaluated, so nothing about the meeting
///    leaks to them.
///
/// Otherwise every applicable reason is collected, in this order, so that the person
/// sees all problems at once:
///
/// 2. `Cancelled` (deny) if the meeting is cancelled.
/// 3. With a join window: `TooEarly { opens_at }` (deny) if
///    `now < starts_at - opens_before_start`; `Ended` (deny) if
///    `now > ends_at + closes_after_end`. Both bounds are inclusive: joining exactly at
///    either is allowed. Without a window the meeting is joinable at any time.
/// 4. `DeviceNotTrusted` (deny) if the device's trust is below the required trust —
///    for hosts too.
/// 5. From an untrusted network: `UntrustedNetworkFlagged` (admit),
///    `UntrustedNetworkLobby` (lobby) or `UntrustedNetworkDenied` (deny), per the
///    profile's action — uniformly for every relation, hosts included.
/// 6. `Full { max }` (deny) if `participants >= max`, for everyone including hosts.
/// 7. Hosts never wait in the lobby for the following reasons:
///    `LobbyForGuests` (lobby rule `guests`, colleagues and guests);
///    `LobbyForEveryone` (lobby rule `everyone`, everyone but hosts);
///    `LockedByHost` if a host locked the room;
///    `LockedAfterStart` if the profile locks `d` after the start and
///    `now >= starts_at + d`.
///
/// The outcome is the most severe [`Reason::outcome`] among the reasons: `Admit` when
/// there are none or only `UntrustedNetworkFlagged`. Time arithmetic saturates, so no
/// input can make this function panic.
pub fn decide(
    classification: &Classification,
    profile: &Profile,
    meeting: &MeetingFacts,
    request: &JoinRequest,
    now: Timestamp,
) -> Decision {
    // The classification only shapes the explanations, which callers render with
    // `Reason::explain`; the decision itself depends on the profile alone.
    let _ = classification;
    let network = assess_network(&profile.trusted_networks, request.client_addr);
    let relation = request.relation;

    if !in_audience(profile.audience, relation) {
        return Decision {
            outcome: Outcome::Deny,
            reasons: vec![Reason::NotInAudience],
            network,
        };
    }

    let mut reasons = Vec::new();
    if meeting.cancelled {
        reasons.push(Reason::Cancelled);
    }
    if let Some(window) = profile.join_window {
        let opens_at = meeting.starts_at.saturating_sub(window.opens_before_start);
        let closes_at = meeting.ends_at.saturating_add(window.closes_after_end);
        if now < opens_at {
            reasons.push(Reason::TooEarly { opens_at });
        }
        if now > closes_at {
            reasons.push(Reason::Ended);
        }
    }
    if request.device_trust < profile.required_trust {
        reasons.push(Reason::DeviceNotTrusted {
            required: profile.required_trust,
            actual: request.device_trust,
        });
    }
    if network == NetworkAssessment::Untrusted {
        reasons.push(match profile.untrusted_network {
            UntrustedNetworkAction::Flag => Reason::UntrustedNetworkFlagged,
            UntrustedNetworkAction::Lobby => Reason::UntrustedNetworkLobby,
            UntrustedNetworkAction::Deny => Reason::UntrustedNetworkDenied,
        });
    }
    if let Some(max) = profile.max_participants {
        if meeting.participants >= max {
            reasons.push(Reason::Full { max });
        }
    }
    if relation != Relation::Host {
        match profile.lobby {
            LobbyRule::None => {}
            LobbyRule::Guests => {
                if matches!(relation, Relation::Colleague | Relation::Guest) {
                    reasons.push(Reason::LobbyForGuests);
                }
            }
            LobbyRule::Everyone => reasons.push(Reason::LobbyForEveryone),
        }
        if meeting.locked {
            reasons.push(Reason::LockedByHost);
        }
        if let Some(after) = profile.lock_after_start {
            if now >= meeting.starts_at.saturating_add(after) {
                reasons.push(Reason::LockedAfterStart);
            }
        }
    }

    let outcome = reasons
        .iter()
        .map(Reason::outcome)
        .max()
        .unwrap_or(Outcome::Admit);
    Decision {
        outcome,
        reasons,
        network,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn nets() -> Vec<NamedNetwork> {
        vec![
            NamedNetwork {
                name: "vpn".into(),
                ranges: vec!["10.8.0.0/16".parse().expect("net")],
            },
            NamedNetwork {
                name: "office".into(),
                ranges: vec![
                    "10.0.0.0/8".parse().expect("net"),
                    "2001:db8::/32".parse().expect("net"),
                ],
            },
            NamedNetwork {
                name: "mapped".into(),
                ranges: vec!["::ffff:192.168.0.0/112".parse().expect("net")],
            },
        ]
    }

    fn trusted(name: &str) -> NetworkAssessment {
        NetworkAssessment::Trusted { name: name.into() }
    }

    #[test]
    fn first_matching_network_wins() {
        let n = nets();
        assert_eq!(
            assess_network(&n, IpAddr::V4(Ipv4Addr::new(10, 8, 1, 1))),
            trusted("vpn")
        );
        assert_eq!(
            assess_network(&n, IpAddr::V4(Ipv4Addr::new(10, 9, 1, 1))),
            trusted("office")
        );
        assert_eq!(
            assess_network(&n, IpAddr::V6("2001:db8::1".parse().expect("addr"))),
            trusted("office")
        );
        assert_eq!(
            assess_network(&n, IpAddr::V4(Ipv4Addr::new(11, 0, 0, 1))),
            NetworkAssessment::Untrusted
        );
        assert_eq!(
            assess_network(&[], IpAddr::V6(Ipv6Addr::LOCALHOST)),
            NetworkAssessment::Untrusted
        );
    }

    #[test]
    fn ipv4_mapped_addresses_match_as_ipv4_and_back() {
        let n = nets();
        let mapped = IpAddr::V6(Ipv4Addr::new(10, 8, 0, 7).to_ipv6_mapped());
        assert_eq!(assess_network(&n, mapped), trusted("vpn"));
        let plain = IpAddr::V4(Ipv4Addr::new(192, 168, 3, 4));
        assert_eq!(assess_network(&n, plain), trusted("mapped"));
        // An IPv4-compatible (not mapped) address is not treated as IPv4.
        let compat: IpAddr = "::10.8.0.7".parse().expect("addr");
        assert_eq!(assess_network(&n, compat), NetworkAssessment::Untrusted);
    }

    #[test]
    fn audience_table() {
        use Audience::*;
        use Relation::*;
        for (aud, rel, ok) in [
            (Invitees, Host, true),
            (Invitees, Invitee, true),
            (Invitees, Colleague, false),
            (Invitees, Guest, false),
            (Organisation, Host, true),
            (Organisation, Invitee, true),
            (Organisation, Colleague, true),
            (Organisation, Guest, false),
            (Guests, Host, true),
            (Guests, Invitee, true),
            (Guests, Colleague, true),
            (Guests, Guest, true),
        ] {
            assert_eq!(in_audience(aud, rel), ok, "{aud:?} {rel:?}");
        }
    }
}
