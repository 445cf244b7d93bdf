//! Profiles as they appear in the server's TOML config.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::*;
use conclave_policy::{
    default_profiles, Audience, IpNet, JoinWindow, LobbyRule, NamedNetwork, PolicyConfigError,
    Profile, ProfileSpec, UntrustedNetworkAction,
};
use conclave_types::{Classification, DeviceTrust};
use serde::Deserialize;

const SECRET: &str = r#"
audience = "invitees"
lobby = "none"
device_trust = "managed"
trusted_networks = ["office"]
untrusted_network = "deny"
join_opens_minutes_before_start = 15
"#;

#[test]
fn a_partially_specified_profile_parses_with_defaults() {
    let spec: ProfileSpec = toml::from_str(SECRET).expect("valid profile");
    assert_eq!(
        spec,
        ProfileSpec {
            audience: Audience::Invitees,
            lobby: LobbyRule::None,
            device_trust: DeviceTrust::Managed,
            trusted_networks: vec!["office".to_string()],
            untrusted_network: UntrustedNetworkAction::Deny,
            join_opens_minutes_before_start: Some(15),
            join_closes_minutes_after_end: None,
            lock_minutes_after_start: None,
            max_participants: None,
        }
    );
    let profile = Profile::resolve(&spec, &office()).expect("office is defined");
    assert_eq!(
        profile.join_window,
        Some(JoinWindow {
            opens_before_start: Duration::from_secs(15 * 60),
            closes_after_end: Duration::ZERO,
        })
    );
    assert_eq!(profile.required_trust, DeviceTrust::Managed);
    assert_eq!(profile.trusted_networks, office());
    assert_eq!(profile.lock_after_start, None);
    assert_eq!(profile.max_participants, None);
}

#[test]
fn every_option_parses() {
    let spec: ProfileSpec = toml::from_str(
        r#"
audience = "organisation"
lobby = "everyone"
device_trust = "personal"
untrusted_network = "lobby"
join_opens_minutes_before_start = 5
join_closes_minutes_after_end = 7
lock_minutes_after_start = 3
max_participants = 9
"#,
    )
    .expect("valid profile");
    assert_eq!(spec.audience, Audience::Organisation);
    assert_eq!(spec.lobby, LobbyRule::Everyone);
    assert!(spec.trusted_networks.is_empty());
    let p = Profile::resolve(&spec, &[]).expect("no networks referenced");
    assert_eq!(p.untrusted_network, UntrustedNetworkAction::Lobby);
    assert_eq!(
        p.join_window,
        Some(JoinWindow {
            opens_before_start: Duration::from_secs(300),
            closes_after_end: Duration::from_secs(420),
        })
    );
    assert_eq!(p.lock_after_start, Some(Duration::from_secs(180)));
    assert_eq!(p.max_participants, Some(9));
    let guests: ProfileSpec =
        toml::from_str(&SECRET.replace("\"invitees\"", "\"guests\"")).expect("valid profile");
    assert_eq!(guests.audience, Audience::Guests);
    let flag: ProfileSpec =
        toml::from_str(&SECRET.replace("\"deny\"", "\"flag\"")).expect("valid profile");
    assert_eq!(flag.untrusted_network, UntrustedNetworkAction::Flag);
}

#[test]
fn unknown_fields_are_rejected() {
    let typo = format!("{SECRET}max_participant = 5\n");
    let err = toml::from_str::<ProfileSpec>(&typo).expect_err("typo must not be ignored");
    assert!(err.to_string().contains("max_participant"), "{err}");
}

#[test]
fn required_fields_and_values_are_checked() {
    for field in ["audience", "lobby", "device_trust", "untrusted_network"] {
        let text: String = SECRET
            .lines()
            .filter(|l| !l.starts_with(&format!("{field} ")))
            .map(|l| format!("{l}\n"))
            .collect();
        let err = toml::from_str::<ProfileSpec>(&text).expect_err("required field");
        assert!(err.to_string().contains(field), "{field}: {err}");
    }
    for (from, to) in [
        ("\"invitees\"", "\"everyone\""),
        ("\"managed\"", "\"Managed\""),
        ("\"deny\"", "\"block\""),
        ("= 15", "= -15"),
    ] {
        let text = SECRET.replace(from, to);
        assert!(
            toml::from_str::<ProfileSpec>(&text).is_err(),
            "{to} accepted"
        );
    }
}

#[test]
fn resolve_reports_an_unknown_network() {
    let spec: ProfileSpec = toml::from_str(SECRET).expect("valid profile");
    let err = Profile::resolve(&spec, &[]).expect_err("office is not defined");
    assert_eq!(err, PolicyConfigError::UnknownNetwork("office".to_string()));
    assert_eq!(
        err.to_string(),
        "trusted network `office` is not defined under [networks]"
    );
    let other = [NamedNetwork {
        name: "home".to_string(),
        ranges: vec![],
    }];
    assert_eq!(
        Profile::resolve(&spec, &other),
        Err(PolicyConfigError::UnknownNetwork("office".to_string()))
    );
}

/// How the server is expected to lay out its config; only a test stand-in.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    networks: BTreeMap<String, Vec<IpNet>>,
    profiles: BTreeMap<Classification, ProfileSpec>,
}

#[test]
fn a_whole_config_section_resolves() {
    let config: Config = toml::from_str(
        r#"
[networks]
office = ["10.1.0.0/16", "2001:db8:1::/48"]
vpn = ["10.8.0.0/16"]

[profiles.secret]
audience = "invitees"
lobby = "none"
device_trust = "managed"
trusted_networks = ["vpn", "office"]
untrusted_network = "deny"
join_opens_minutes_before_start = 15
lock_minutes_after_start = 10
max_participants = 20

[profiles.board]
audience = "invitees"
lobby = "everyone"
device_trust = "personal"
untrusted_network = "flag"
"#,
    )
    .expect("valid config");
    let networks: Vec<NamedNetwork> = config
        .networks
        .into_iter()
        .map(|(name, ranges)| NamedNetwork { name, ranges })
        .collect();
    let secret = Classification::new("secret").expect("valid name");
    let p = Profile::resolve(&config.profiles[&secret], &networks).expect("all defined");
    let names: Vec<&str> = p.trusted_networks.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(names, ["vpn", "office"], "profile order is kept");
    assert_eq!(p.trusted_networks[1].ranges.len(), 2);
    assert_eq!(p.lock_after_start, Some(Duration::from_secs(600)));
    let board = Classification::new("board").expect("valid name");
    assert!(Profile::resolve(&config.profiles[&board], &networks).is_ok());
}

#[test]
fn default_profiles_match_the_documented_table() {
    let defaults = default_profiles();
    let names: Vec<&str> = defaults.iter().map(|(c, _)| c.as_str()).collect();
    assert_eq!(names, ["open", "internal", "confidential", "secret"]);
    // (audience, lobby, device, untrusted, opens, closes, lock, max)
    let want = [
        (
            "open",
            Audience::Guests,
            LobbyRule::Guests,
            DeviceTrust::Personal,
            UntrustedNetworkAction::Flag,
            None,
            None,
            None,
            None,
        ),
        (
            "internal",
            Audience::Organisation,
            LobbyRule::None,
            DeviceTrust::Personal,
            UntrustedNetworkAction::Flag,
            Some(60),
            Some(60),
            None,
            None,
        ),
        (
            "confidential",
            Audience::Invitees,
            LobbyRule::None,
            DeviceTrust::Personal,
            UntrustedNetworkAction::Lobby,
            Some(30),
            Some(30),
            None,
            Some(50),
        ),
        (
            "secret",
            Audience::Invitees,
            LobbyRule::None,
            DeviceTrust::Managed,
            UntrustedNetworkAction::Deny,
            Some(15),
            Some(0),
            Some(10),
            Some(20),
        ),
    ];
    for (name, audience, lobby, device, untrusted, opens, closes, lock, max) in want {
        let (_, spec) = default_spec(name);
        assert_eq!(
            spec,
            ProfileSpec {
                audience,
                lobby,
                device_trust: device,
                trusted_networks: vec!["office".to_string()],
                untrusted_network: untrusted,
                join_opens_minutes_before_start: opens,
                join_closes_minutes_after_end: closes,
                lock_minutes_after_start: lock,
                max_participants: max,
            },
            "{name}"
        );
        // Every default survives a trip through TOML, so `conclave config dump`-style
        // output can be pasted back into a config file.
        let text = toml::to_string(&spec).expect("serialisable");
        let back: ProfileSpec = toml::from_str(&text).expect("parses back");
        assert_eq!(back, spec, "{name}: {text}");
        assert!(Profile::resolve(&spec, &[]).is_err(), "{name} needs office");
    }
}
