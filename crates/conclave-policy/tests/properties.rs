//! Properties that hold for every input.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use conclave_policy::{
    decide, default_profiles, Audience, IpNet, JoinRequest, JoinWindow, LobbyRule, MeetingFacts,
    NamedNetwork, NetworkAssessment, Outcome, Profile, Reason, Relation, UntrustedNetworkAction,
};
use conclave_types::{Classification, DeviceTrust, Timestamp};
use proptest::prelude::*;

fn relation() -> impl Strategy<Value = Relation> {
    prop_oneof![
        Just(Relation::Host),
        Just(Relation::Invitee),
        Just(Relation::Colleague),
        Just(Relation::Guest),
    ]
}

fn trust() -> impl Strategy<Value = DeviceTrust> {
    prop_oneof![Just(DeviceTrust::Personal), Just(DeviceTrust::Managed)]
}

/// Any address, in all three spellings: IPv4, IPv6, and IPv4-mapped IPv6.
fn addr() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        any::<u32>().prop_map(|a| IpAddr::V4(Ipv4Addr::from(a))),
        any::<u128>().prop_map(|a| IpAddr::V6(Ipv6Addr::from(a))),
        any::<u32>().prop_map(|a| IpAddr::V6(Ipv4Addr::from(a).to_ipv6_mapped())),
        // Near the office range, so that the boundaries get exercised.
        (any::<u16>(), 0u8..=2).prop_map(|(low, second)| {
            let [a, b] = low.to_be_bytes();
            IpAddr::V4(Ipv4Addr::new(10, second, a, b))
        }),
    ]
}

fn timestamp() -> impl Strategy<Value = Timestamp> {
    prop_oneof![
        any::<i64>(),
        // Around 2026, where real meetings are.
        1_700_000_000_000i64..1_900_000_000_000,
    ]
    .prop_map(Timestamp::from_unix_millis)
}

fn meeting() -> impl Strategy<Value = MeetingFacts> {
    (
        timestamp(),
        any::<bool>(),
        any::<i64>(),
        any::<bool>(),
        any::<bool>(),
        any::<u32>(),
    )
        .prop_map(|(starts_at, near, len, cancelled, locked, participants)| {
            // Usually a sensible schedule, sometimes an arbitrary (even inverted) one.
            let ends_at = if near {
                Timestamp::from_unix_millis(
                    starts_at
                        .unix_millis()
                        .saturating_add(len.rem_euclid(86_400_000)),
                )
            } else {
                Timestamp::from_unix_millis(len)
            };
            MeetingFacts {
                starts_at,
                ends_at,
                cancelled,
                locked,
                participants,
            }
        })
}

/// The office range of the secret property: 10.1.0.0/16.
fn in_office(addr: IpAddr) -> bool {
    let v4 = match addr {
        IpAddr::V4(v4) => v4,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4,
            None => return false,
        },
    };
    let [a, b, _, _] = v4.octets();
    a == 10 && b == 1
}

fn secret() -> (Classification, Profile) {
    let (c, spec) = default_profiles()
        .into_iter()
        .find(|(c, _)| c.as_str() == "secret")
        .expect("built in");
    let office = [NamedNetwork {
        name: "office".into(),
        ranges: vec!["10.1.0.0/16".parse().expect("valid range")],
    }];
    (c, Profile::resolve(&spec, &office).expect("office defined"))
}

fn duration() -> impl Strategy<Value = Duration> {
    prop_oneof![
        (0u64..10_000).prop_map(|m| Duration::from_secs(m * 60)),
        any::<u64>().prop_map(Duration::from_secs),
        any::<u64>().prop_map(Duration::from_millis),
    ]
}

fn net() -> impl Strategy<Value = IpNet> {
    prop_oneof![
        (any::<u32>(), 0u8..=32).prop_map(|(a, p)| IpNet::new(IpAddr::V4(a.into()), p)),
        (any::<u128>(), 0u8..=128).prop_map(|(a, p)| IpNet::new(IpAddr::V6(a.into()), p)),
        (0u8..=2, 8u8..=32)
            .prop_map(|(b, p)| IpNet::new(IpAddr::V4(Ipv4Addr::new(10, b, 0, 0)), p)),
    ]
    .prop_map(|n| n.expect("prefix within range"))
}

fn profile() -> impl Strategy<Value = Profile> {
    let networks = prop::collection::vec(
        ("[a-z]{1,6}", prop::collection::vec(net(), 0..4))
            .prop_map(|(name, ranges)| NamedNetwork { name, ranges }),
        0..4,
    );
    (
        prop_oneof![
            Just(Audience::Invitees),
            Just(Audience::Organisation),
            Just(Audience::Guests)
        ],
        prop_oneof![
            Just(LobbyRule::None),
            Just(LobbyRule::Guests),
            Just(LobbyRule::Everyone)
        ],
        trust(),
        networks,
        prop_oneof![
            Just(UntrustedNetworkAction::Flag),
            Just(UntrustedNetworkAction::Lobby),
            Just(UntrustedNetworkAction::Deny)
        ],
        prop::option::of((duration(), duration())),
        prop::option::of(duration()),
        prop::option::of(any::<u32>()),
    )
        .prop_map(
            |(
                audience,
                lobby,
                required_trust,
                trusted_networks,
                untrusted_network,
                window,
                lock,
                max,
            )| {
                Profile {
                    audience,
                    lobby,
                    required_trust,
                    trusted_networks,
                    untrusted_network,
                    join_window: window.map(|(opens_before_start, closes_after_end)| JoinWindow {
                        opens_before_start,
                        closes_after_end,
                    }),
                    lock_after_start: lock,
                    max_participants: max,
                }
            },
        )
}

fn request() -> impl Strategy<Value = JoinRequest> {
    (relation(), trust(), addr()).prop_map(|(relation, device_trust, client_addr)| JoinRequest {
        relation,
        device_trust,
        client_addr,
    })
}

/// Whether `addr` lies in `net`, IPv4-mapped addresses counting as IPv4; written
/// independently of the crate with plain bit arithmetic.
fn contains(net: &IpNet, addr: IpAddr) -> bool {
    fn as_v6(a: IpAddr) -> u128 {
        match a {
            IpAddr::V4(v4) => u128::from(u32::from(v4)) | 0xffff_0000_0000,
            IpAddr::V6(v6) => u128::from(v6),
        }
    }
    let (base, prefix) = match net {
        IpNet::V4(n) => (as_v6(IpAddr::V4(n.addr())), u32::from(n.prefix_len()) + 96),
        IpNet::V6(n) => (as_v6(IpAddr::V6(n.addr())), u32::from(n.prefix_len())),
    };
    let mask = if prefix == 0 {
        0
    } else {
        u128::MAX << (128 - prefix)
    };
    (base & mask) == (as_v6(addr) & mask)
}

const LOBBY_FOR_NON_HOSTS: [&str; 4] = [
    "lobby_for_guests",
    "lobby_for_everyone",
    "locked_by_host",
    "locked_after_start",
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 2048, ..ProptestConfig::default() })]

    /// The secure dial-in procedure: a secret meeting is never joined directly from an
    /// untrusted network or a personal device, whatever else is true.
    #[test]
    fn secret_never_admits_untrusted_networks_or_personal_devices(
        relation in relation(),
        device_trust in trust(),
        client_addr in addr(),
        meeting in meeting(),
        now in timestamp(),
    ) {
        let (c, profile) = secret();
        let trusted = in_office(client_addr);
        let request = JoinRequest { relation, device_trust, client_addr };
        let d = decide(&c, &profile, &meeting, &request, now);
        if !trusted || device_trust == DeviceTrust::Personal {
            prop_assert_eq!(d.outcome, Outcome::Deny);
        }
        prop_assert_eq!(d.network == NetworkAssessment::Untrusted, !trusted);
    }

    /// The secret property again, with every address guaranteed to be outside the office.
    #[test]
    fn secret_denies_every_address_outside_the_office(
        relation in relation(),
        device_trust in trust(),
        client_addr in addr().prop_filter("outside the office", |a| !in_office(*a)),
        meeting in meeting(),
        now in timestamp(),
    ) {
        let (c, profile) = secret();
        let request = JoinRequest { relation, device_trust, client_addr };
        let d = decide(&c, &profile, &meeting, &request, now);
        prop_assert_ne!(d.outcome, Outcome::Admit);
        prop_assert_eq!(d.network, NetworkAssessment::Untrusted);
        if relation == Relation::Host || relation == Relation::Invitee {
            prop_assert!(d.reasons.contains(&Reason::UntrustedNetworkDenied));
        } else {
            prop_assert_eq!(d.reasons, vec![Reason::NotInAudience]);
        }
    }

    /// decide never panics, and its decision is internally consistent.
    #[test]
    fn decisions_are_consistent_for_arbitrary_inputs(
        profile in profile(),
        meeting in meeting(),
        request in request(),
        now in timestamp(),
    ) {
        let c = Classification::new("any").expect("valid name");
        let d = decide(&c, &profile, &meeting, &request, now);

        // The outcome is the most severe reason, Admit when there is none.
        let max = d.reasons.iter().map(Reason::outcome).max().unwrap_or(Outcome::Admit);
        prop_assert_eq!(d.outcome, max);
        // Admit means no reasons, or only flags.
        if d.outcome == Outcome::Admit {
            prop_assert!(d.reasons.iter().all(|r| *r == Reason::UntrustedNetworkFlagged));
        }
        if d.reasons.is_empty() {
            prop_assert_eq!(d.outcome, Outcome::Admit);
        }
        // NotInAudience appears alone.
        if d.reasons.contains(&Reason::NotInAudience) {
            prop_assert_eq!(&d.reasons, &vec![Reason::NotInAudience]);
        }
        // No reason twice.
        let mut codes: Vec<&str> = d.reasons.iter().map(Reason::code).collect();
        codes.sort_unstable();
        let n = codes.len();
        codes.dedup();
        prop_assert_eq!(codes.len(), n);
        // Hosts are always in the audience and never wait for the lobby rule or locks.
        if request.relation == Relation::Host {
            for r in &d.reasons {
                prop_assert!(r != &Reason::NotInAudience);
                prop_assert!(!LOBBY_FOR_NON_HOSTS.contains(&r.code()), "{:?}", r);
            }
        }
        // The network assessment names the first trusted network containing the client.
        let first = profile
            .trusted_networks
            .iter()
            .find(|n| n.ranges.iter().any(|r| contains(r, request.client_addr)));
        match first {
            Some(n) => prop_assert_eq!(&d.network, &NetworkAssessment::Trusted { name: n.name.clone() }),
            None => prop_assert_eq!(&d.network, &NetworkAssessment::Untrusted),
        }
        // Every reason can be explained.
        for r in &d.reasons {
            prop_assert!(!r.explain(&c).is_empty());
        }
    }

    /// A better device or a trusted network never makes the outcome worse.
    #[test]
    fn more_trust_never_hurts(
        profile in profile(),
        meeting in meeting(),
        request in request(),
        now in timestamp(),
    ) {
        let c = Classification::new("any").expect("valid name");
        let before = decide(&c, &profile, &meeting, &request, now);
        let managed = JoinRequest { device_trust: DeviceTrust::Managed, ..request.clone() };
        prop_assert!(decide(&c, &profile, &meeting, &managed, now).outcome <= before.outcome);
        if let Some(range) = profile.trusted_networks.iter().flat_map(|n| n.ranges.first()).next() {
            let inside = JoinRequest { client_addr: range.network(), ..request };
            prop_assert!(decide(&c, &profile, &meeting, &inside, now).outcome <= before.outcome);
        }
    }
}
