//! Table-driven tests: every built-in profile × device × network × time × relation,
//! checked against an independent table of rules, plus hand-written notable rows.

mod common;

use std::net::IpAddr;

use common::*;
use conclave_policy::{
    decide, Audience, Decision, JoinRequest, LobbyRule, MeetingFacts, NetworkAssessment, Outcome,
    Profile, ProfileSpec, Reason, Relation, UntrustedNetworkAction,
};
use conclave_types::{Classification, DeviceTrust, Timestamp};

// ---------------------------------------------------------------------------------
// The independent rule table. Written from the product description, not from the
// implementation: what each built-in profile means in plain terms.

struct Rules {
    name: &'static str,
    /// Relations allowed to join at all.
    admits: &'static [Relation],
    /// Whether colleagues and guests wait in the lobby.
    lobby_for_not_invited: bool,
    /// Whether a managed device is required.
    needs_managed: bool,
    /// The reason code a join from an untrusted network gets.
    untrusted_code: &'static str,
    /// Whether there is a join window (all built-in windows open at most 60 minutes
    /// before the start and close at most 60 minutes after the end).
    has_window: bool,
    /// Whether the meeting locks by schedule (the secret one, 10 minutes after start).
    locks_after_start: bool,
}

const ALL: &[Relation] = &[
    Relation::Host,
    Relation::Invitee,
    Relation::Colleague,
    Relation::Guest,
];
const ORG: &[Relation] = &[Relation::Host, Relation::Invitee, Relation::Colleague];
const INVITED: &[Relation] = &[Relation::Host, Relation::Invitee];

const RULES: &[Rules] = &[
    Rules {
        name: "open",
        admits: ALL,
        lobby_for_not_invited: true,
        needs_managed: false,
        untrusted_code: "untrusted_network_flagged",
        has_window: false,
        locks_after_start: false,
    },
    Rules {
        name: "internal",
        admits: ORG,
        lobby_for_not_invited: false,
        needs_managed: false,
        untrusted_code: "untrusted_network_flagged",
        has_window: true,
        locks_after_start: false,
    },
    Rules {
        name: "confidential",
        admits: INVITED,
        lobby_for_not_invited: false,
        needs_managed: false,
        untrusted_code: "untrusted_network_lobby",
        has_window: true,
        locks_after_start: false,
    },
    Rules {
        name: "secret",
        admits: INVITED,
        lobby_for_not_invited: false,
        needs_managed: true,
        untrusted_code: "untrusted_network_denied",
        has_window: true,
        locks_after_start: true,
    },
];

/// Severity of each code, as the product description defines it.
fn severity(code: &str) -> &'static str {
    match code {
        "not_in_audience"
        | "cancelled"
        | "too_early"
        | "ended"
        | "device_not_trusted"
        | "untrusted_network_denied"
        | "full" => "deny",
        "lobby_for_guests"
        | "lobby_for_everyone"
        | "untrusted_network_lobby"
        | "locked_by_host"
        | "locked_after_start" => "lobby",
        "untrusted_network_flagged" => "admit",
        other => panic!("unknown code {other}"),
    }
}

fn rank(outcome: &str) -> u8 {
    match outcome {
        "admit" => 0,
        "lobby" => 1,
        "deny" => 2,
        other => panic!("unknown outcome {other}"),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum When {
    /// Two hours before the start: before every built-in window opens.
    TooEarly,
    /// Five minutes before the start: inside every window, before any lock.
    InWindow,
    /// Twenty minutes after the start: after the secret lock, before the end.
    AfterLock,
    /// Two hours after the end: after every window closes.
    AfterEnd,
}

impl When {
    fn at(self) -> Timestamp {
        match self {
            When::TooEarly => shift(start(), -120),
            When::InWindow => shift(start(), -5),
            When::AfterLock => shift(start(), 20),
            When::AfterEnd => shift(end(), 120),
        }
    }
}

fn expected_codes(
    rules: &Rules,
    relation: Relation,
    device: DeviceTrust,
    trusted: bool,
    when: When,
) -> Vec<&'static str> {
    if !rules.admits.contains(&relation) {
        return vec!["not_in_audience"];
    }
    let mut codes = Vec::new();
    if rules.has_window && when == When::TooEarly {
        codes.push("too_early");
    }
    if rules.has_window && when == When::AfterEnd {
        codes.push("ended");
    }
    if rules.needs_managed && device == DeviceTrust::Personal {
        codes.push("device_not_trusted");
    }
    if !trusted {
        codes.push(rules.untrusted_code);
    }
    let not_invited = matches!(relation, Relation::Colleague | Relation::Guest);
    if rules.lobby_for_not_invited && not_invited {
        codes.push("lobby_for_guests");
    }
    let late = matches!(when, When::AfterLock | When::AfterEnd);
    if rules.locks_after_start && late && relation != Relation::Host {
        codes.push("locked_after_start");
    }
    codes
}

fn quiet_meeting() -> MeetingFacts {
    MeetingFacts {
        starts_at: start(),
        ends_at: end(),
        cancelled: false,
        locked: false,
        participants: 5,
    }
}

#[test]
fn every_default_profile_device_network_time_and_relation() {
    let devices = [DeviceTrust::Personal, DeviceTrust::Managed];
    let networks = [(true, trusted_addr()), (false, untrusted_addr())];
    let times = [
        When::TooEarly,
        When::InWindow,
        When::AfterLock,
        When::AfterEnd,
    ];
    let mut rows = 0;
    let mut seen_outcomes = std::collections::BTreeSet::new();
    for rules in RULES {
        let (classification, profile) = default_profile(rules.name);
        for &device in &devices {
            for &(trusted, addr) in &networks {
                for &when in &times {
                    for &relation in ALL {
                        let request = JoinRequest {
                            relation,
                            device_trust: device,
                            client_addr: addr,
                        };
                        let d = decide(
                            &classification,
                            &profile,
                            &quiet_meeting(),
                            &request,
                            when.at(),
                        );
                        let row = format!(
                            "{} {device:?} trusted={trusted} {when:?} {relation:?}",
                            rules.name
                        );

                        let want = expected_codes(rules, relation, device, trusted, when);
                        let got: Vec<&str> = d.reasons.iter().map(Reason::code).collect();
                        assert_eq!(got, want, "reasons for {row}");

                        let want_outcome = want
                            .iter()
                            .map(|c| severity(c))
                            .max_by_key(|o| rank(o))
                            .unwrap_or("admit");
                        assert_eq!(d.outcome.as_str(), want_outcome, "outcome for {row}");
                        seen_outcomes.insert(want_outcome);

                        let want_network = if trusted {
                            NetworkAssessment::Trusted {
                                name: "office".into(),
                            }
                        } else {
                            NetworkAssessment::Untrusted
                        };
                        assert_eq!(d.network, want_network, "network for {row}");
                        rows += 1;
                    }
                }
            }
        }
    }
    assert_eq!(rows, 4 * 2 * 2 * 4 * 4);
    assert_eq!(
        seen_outcomes.len(),
        3,
        "the matrix exercises all three outcomes"
    );
}

// ---------------------------------------------------------------------------------
// Notable rows, with exact reasons.

struct Case {
    profile: &'static str,
    relation: Relation,
    device: DeviceTrust,
    addr: IpAddr,
    now: Timestamp,
    meeting: MeetingFacts,
}

impl Case {
    fn new(profile: &'static str, relation: Relation) -> Self {
        Case {
            profile,
            relation,
            device: DeviceTrust::Managed,
            addr: trusted_addr(),
            now: shift(start(), -5),
            meeting: quiet_meeting(),
        }
    }
    fn personal(mut self) -> Self {
        self.device = DeviceTrust::Personal;
        self
    }
    fn untrusted(mut self) -> Self {
        self.addr = untrusted_addr();
        self
    }
    fn at(mut self, now: Timestamp) -> Self {
        self.now = now;
        self
    }
    fn meeting(mut self, f: impl FnOnce(&mut MeetingFacts)) -> Self {
        f(&mut self.meeting);
        self
    }
    fn run(&self) -> (Classification, Decision) {
        let (c, p) = default_profile(self.profile);
        let request = JoinRequest {
            relation: self.relation,
            device_trust: self.device,
            client_addr: self.addr,
        };
        let d = decide(&c, &p, &self.meeting, &request, self.now);
        (c, d)
    }
    fn expect(&self, outcome: Outcome, reasons: &[Reason]) -> (Classification, Decision) {
        let (c, d) = self.run();
        assert_eq!(d.reasons, reasons, "{} {:?}", self.profile, self.relation);
        assert_eq!(d.outcome, outcome, "{} {:?}", self.profile, self.relation);
        (c, d)
    }
}

use Relation::{Colleague, Guest, Host, Invitee};

#[test]
fn secret_invitee_on_managed_device_in_office_is_admitted() {
    let (_, d) = Case::new("secret", Invitee).expect(Outcome::Admit, &[]);
    assert_eq!(
        d.network,
        NetworkAssessment::Trusted {
            name: "office".into()
        }
    );
}

#[test]
fn secret_from_untrusted_network_is_denied_with_a_clear_sentence() {
    let (c, d) = Case::new("secret", Invitee)
        .untrusted()
        .expect(Outcome::Deny, &[Reason::UntrustedNetworkDenied]);
    assert_eq!(d.network, NetworkAssessment::Untrusted);
    assert_eq!(
        d.reasons[0].explain(&c),
        "secret meetings can only be joined from a trusted network; \
         you are connecting from an untrusted network"
    );
}

#[test]
fn secret_from_personal_device_is_denied_even_for_hosts() {
    let device = Reason::DeviceNotTrusted {
        required: DeviceTrust::Managed,
        actual: DeviceTrust::Personal,
    };
    let (c, d) = Case::new("secret", Host)
        .personal()
        .expect(Outcome::Deny, std::slice::from_ref(&device));
    assert_eq!(
        d.reasons[0].explain(&c),
        "secret meetings can only be joined from a managed device; this device is personal"
    );
    Case::new("secret", Host)
        .personal()
        .untrusted()
        .expect(Outcome::Deny, &[device, Reason::UntrustedNetworkDenied]);
}

#[test]
fn not_in_audience_says_nothing_else() {
    // Cancelled, too early, personal, untrusted, full and locked: still only one reason.
    let (c, d) = Case::new("secret", Guest)
        .personal()
        .untrusted()
        .at(shift(start(), -600))
        .meeting(|m| {
            m.cancelled = true;
            m.locked = true;
            m.participants = 1000;
        })
        .expect(Outcome::Deny, &[Reason::NotInAudience]);
    assert_eq!(d.network, NetworkAssessment::Untrusted);
    let text = d.reasons[0].explain(&c);
    assert!(!text.contains("secret"), "{text}");
    Case::new("secret", Colleague).expect(Outcome::Deny, &[Reason::NotInAudience]);
    Case::new("confidential", Colleague).expect(Outcome::Deny, &[Reason::NotInAudience]);
    Case::new("internal", Guest).expect(Outcome::Deny, &[Reason::NotInAudience]);
}

#[test]
fn too_early_names_the_opening_time_and_the_boundary_is_inclusive() {
    let opens_at = ts("2026-11-23T09:15:00Z");
    let (c, d) = Case::new("secret", Invitee)
        .at(shift(start(), -16))
        .expect(Outcome::Deny, &[Reason::TooEarly { opens_at }]);
    assert_eq!(
        d.reasons[0].explain(&c),
        "this meeting opens for joining at 2026-11-23T09:15:00Z"
    );
    Case::new("secret", Invitee)
        .at(opens_at)
        .expect(Outcome::Admit, &[]);
    Case::new("secret", Invitee)
        .at(Timestamp::from_unix_millis(opens_at.unix_millis() - 1))
        .expect(Outcome::Deny, &[Reason::TooEarly { opens_at }]);
}

#[test]
fn the_end_of_the_window_is_inclusive() {
    // secret closes 0 minutes after the end; the host is not subject to the lock.
    Case::new("secret", Host)
        .at(end())
        .expect(Outcome::Admit, &[]);
    Case::new("secret", Host)
        .at(Timestamp::from_unix_millis(end().unix_millis() + 1))
        .expect(Outcome::Deny, &[Reason::Ended]);
    // internal closes 60 minutes after the end.
    Case::new("internal", Colleague)
        .at(shift(end(), 60))
        .expect(Outcome::Admit, &[]);
    Case::new("internal", Colleague)
        .at(Timestamp::from_unix_millis(
            shift(end(), 60).unix_millis() + 1,
        ))
        .expect(Outcome::Deny, &[Reason::Ended]);
}

#[test]
fn secret_locks_ten_minutes_after_start_for_everyone_but_hosts() {
    let lock = shift(start(), 10);
    Case::new("secret", Invitee)
        .at(Timestamp::from_unix_millis(lock.unix_millis() - 1))
        .expect(Outcome::Admit, &[]);
    let (c, d) = Case::new("secret", Invitee)
        .at(lock)
        .expect(Outcome::Lobby, &[Reason::LockedAfterStart]);
    assert_eq!(
        d.reasons[0].explain(&c),
        "secret meetings lock shortly after they start; you are late, so a host must admit you"
    );
    Case::new("secret", Host)
        .at(lock)
        .expect(Outcome::Admit, &[]);
}

#[test]
fn full_meetings_deny_everyone_including_hosts() {
    let (c, d) = Case::new("secret", Host)
        .meeting(|m| m.participants = 20)
        .expect(Outcome::Deny, &[Reason::Full { max: 20 }]);
    assert_eq!(
        d.reasons[0].explain(&c),
        "this meeting is full: secret meetings allow at most 20 participants"
    );
    Case::new("secret", Host)
        .meeting(|m| m.participants = 19)
        .expect(Outcome::Admit, &[]);
    Case::new("confidential", Invitee)
        .meeting(|m| m.participants = 50)
        .expect(Outcome::Deny, &[Reason::Full { max: 50 }]);
    Case::new("open", Host)
        .meeting(|m| m.participants = u32::MAX)
        .expect(Outcome::Admit, &[]);
}

#[test]
fn every_problem_is_reported_at_once_in_documented_order() {
    Case::new("secret", Invitee)
        .personal()
        .untrusted()
        .at(shift(start(), -60))
        .meeting(|m| {
            m.cancelled = true;
            m.locked = true;
            m.participants = 25;
        })
        .expect(
            Outcome::Deny,
            &[
                Reason::Cancelled,
                Reason::TooEarly {
                    opens_at: ts("2026-11-23T09:15:00Z"),
                },
                Reason::DeviceNotTrusted {
                    required: DeviceTrust::Managed,
                    actual: DeviceTrust::Personal,
                },
                Reason::UntrustedNetworkDenied,
                Reason::Full { max: 20 },
                Reason::LockedByHost,
            ],
        );
}

#[test]
fn cancelled_meetings_deny_hosts_too() {
    let (c, d) = Case::new("open", Host)
        .meeting(|m| m.cancelled = true)
        .expect(Outcome::Deny, &[Reason::Cancelled]);
    assert_eq!(d.reasons[0].explain(&c), "this meeting has been cancelled");
}

#[test]
fn confidential_from_untrusted_network_waits_in_the_lobby_hosts_included() {
    let (c, d) = Case::new("confidential", Invitee)
        .personal()
        .untrusted()
        .expect(Outcome::Lobby, &[Reason::UntrustedNetworkLobby]);
    assert_eq!(
        d.reasons[0].explain(&c),
        "you are connecting from an untrusted network, so a host must admit you to this \
         confidential meeting"
    );
    Case::new("confidential", Host)
        .untrusted()
        .expect(Outcome::Lobby, &[Reason::UntrustedNetworkLobby]);
}

#[test]
fn a_room_locked_by_a_host_sends_others_to_the_lobby() {
    let (c, d) = Case::new("confidential", Invitee)
        .meeting(|m| m.locked = true)
        .expect(Outcome::Lobby, &[Reason::LockedByHost]);
    assert_eq!(
        d.reasons[0].explain(&c),
        "a host has locked this meeting, so a host must admit you"
    );
    Case::new("confidential", Host)
        .meeting(|m| m.locked = true)
        .expect(Outcome::Admit, &[]);
}

#[test]
fn open_meetings_flag_untrusted_networks_and_lobby_the_uninvited() {
    let (c, d) = Case::new("open", Guest).personal().untrusted().expect(
        Outcome::Lobby,
        &[Reason::UntrustedNetworkFlagged, Reason::LobbyForGuests],
    );
    assert_eq!(
        d.reasons[1].explain(&c),
        "you are not on the invitation list, so a host must admit you"
    );
    let (c, d) = Case::new("open", Invitee)
        .untrusted()
        .expect(Outcome::Admit, &[Reason::UntrustedNetworkFlagged]);
    assert_eq!(
        d.reasons[0].explain(&c),
        "you are connecting from an untrusted network; the hosts and the participant list \
         will show this"
    );
    Case::new("open", Colleague).expect(Outcome::Lobby, &[Reason::LobbyForGuests]);
}

#[test]
fn open_meetings_have_no_join_window() {
    Case::new("open", Host)
        .at(shift(end(), 60 * 24 * 365))
        .expect(Outcome::Admit, &[]);
    Case::new("open", Guest)
        .at(shift(start(), -60 * 24 * 365))
        .expect(Outcome::Lobby, &[Reason::LobbyForGuests]);
}

#[test]
fn internal_meetings_admit_colleagues_directly() {
    Case::new("internal", Colleague)
        .personal()
        .untrusted()
        .expect(Outcome::Admit, &[Reason::UntrustedNetworkFlagged]);
    let (c, d) = Case::new("internal", Colleague)
        .at(shift(end(), 61))
        .expect(Outcome::Deny, &[Reason::Ended]);
    assert_eq!(
        d.reasons[0].explain(&c),
        "this meeting has ended and can no longer be joined"
    );
}

#[test]
fn ipv4_mapped_ipv6_clients_are_matched_as_ipv4() {
    let mut case = Case::new("secret", Invitee);
    case.addr = "::ffff:127.0.0.1".parse().expect("valid address");
    let (_, d) = case.expect(Outcome::Admit, &[]);
    assert_eq!(
        d.network,
        NetworkAssessment::Trusted {
            name: "office".into()
        }
    );
    case.addr = "::ffff:127.0.0.2".parse().expect("valid address");
    case.expect(Outcome::Deny, &[Reason::UntrustedNetworkDenied]);
}

#[test]
fn lobby_for_everyone_spares_only_hosts() {
    let spec = ProfileSpec {
        audience: Audience::Organisation,
        lobby: LobbyRule::Everyone,
        device_trust: DeviceTrust::Personal,
        trusted_networks: vec![],
        untrusted_network: UntrustedNetworkAction::Flag,
        join_opens_minutes_before_start: None,
        join_closes_minutes_after_end: None,
        lock_minutes_after_start: None,
        max_participants: None,
    };
    let profile = Profile::resolve(&spec, &[]).expect("no networks referenced");
    let c = Classification::new("board").expect("valid name");
    let run = |relation| {
        let request = JoinRequest {
            relation,
            device_trust: DeviceTrust::Personal,
            client_addr: trusted_addr(),
        };
        decide(&c, &profile, &quiet_meeting(), &request, start())
    };
    let d = run(Host);
    assert_eq!(
        (d.outcome, d.reasons),
        (Outcome::Admit, vec![Reason::UntrustedNetworkFlagged])
    );
    for relation in [Invitee, Colleague] {
        let d = run(relation);
        assert_eq!(d.outcome, Outcome::Lobby);
        assert_eq!(
            d.reasons,
            [Reason::UntrustedNetworkFlagged, Reason::LobbyForEveryone]
        );
        assert_eq!(
            d.reasons[1].explain(&c),
            "in board meetings everyone waits in the lobby until a host admits them"
        );
    }
    assert_eq!(run(Guest).reasons, [Reason::NotInAudience]);
}

#[test]
fn every_explanation_is_a_short_specific_sentence() {
    let c = Classification::new("secret").expect("valid name");
    let all = [
        Reason::NotInAudience,
        Reason::Cancelled,
        Reason::TooEarly {
            opens_at: ts("2026-11-23T09:15:00Z"),
        },
        Reason::Ended,
        Reason::DeviceNotTrusted {
            required: DeviceTrust::Managed,
            actual: DeviceTrust::Personal,
        },
        Reason::UntrustedNetworkDenied,
        Reason::Full { max: 1 },
        Reason::LobbyForGuests,
        Reason::LobbyForEveryone,
        Reason::UntrustedNetworkLobby,
        Reason::LockedByHost,
        Reason::LockedAfterStart,
        Reason::UntrustedNetworkFlagged,
    ];
    let mut codes = std::collections::BTreeSet::new();
    for r in &all {
        let text = r.explain(&c);
        assert!(!text.is_empty() && text.len() < 120, "{text}");
        assert!(text.starts_with(|ch: char| ch.is_lowercase()), "{text}");
        assert!(!text.ends_with('.'), "{text}");
        assert_eq!(severity(r.code()), r.outcome().as_str(), "{}", r.code());
        assert!(codes.insert(r.code()), "duplicate code {}", r.code());
    }
    assert_eq!(
        Reason::Full { max: 1 }.explain(&c),
        "this meeting is full: secret meetings allow at most 1 participant"
    );
    assert_eq!(
        Reason::NotInAudience.explain(&c),
        "you are not allowed to join this meeting; ask its organiser to invite you"
    );
}

#[test]
fn reasons_serialise_tagged_by_their_code() {
    let r = Reason::TooEarly {
        opens_at: ts("2026-11-23T09:15:00Z"),
    };
    let v = toml::Value::try_from(&r).expect("serialisable");
    assert_eq!(v.get("code").and_then(|c| c.as_str()), Some("too_early"));
    assert_eq!(
        v.get("opens_at").and_then(|c| c.as_str()),
        Some("2026-11-23T09:15:00Z")
    );
    let r = Reason::DeviceNotTrusted {
        required: DeviceTrust::Managed,
        actual: DeviceTrust::Personal,
    };
    let v = toml::Value::try_from(&r).expect("serialisable");
    assert_eq!(v.get("code").and_then(|c| c.as_str()), Some(r.code()));
    assert_eq!(v.get("required").and_then(|c| c.as_str()), Some("managed"));
    for r in [
        Reason::Ended,
        Reason::UntrustedNetworkFlagged,
        Reason::LockedByHost,
    ] {
        let v = toml::Value::try_from(&r).expect("serialisable");
        assert_eq!(v.get("code").and_then(|c| c.as_str()), Some(r.code()));
    }
    let (_, d) = Case::new("open", Guest).untrusted().run();
    let v = toml::Value::try_from(&d).expect("serialisable");
    assert_eq!(v.get("outcome").and_then(|c| c.as_str()), Some("lobby"));
    let network = v.get("network").expect("network");
    assert_eq!(
        network.get("kind").and_then(|c| c.as_str()),
        Some("untrusted")
    );
}

#[test]
fn outcomes_are_ordered_by_severity() {
    assert!(Outcome::Admit < Outcome::Lobby && Outcome::Lobby < Outcome::Deny);
    assert_eq!(
        [Outcome::Admit, Outcome::Lobby, Outcome::Deny].map(Outcome::as_str),
        ["admit", "lobby", "deny"]
    );
}
