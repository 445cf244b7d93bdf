//! Policy profiles: the TOML shape ([`ProfileSpec`]), the resolved form ([`Profile`])
//! and the four built-in defaults.

use std::time::Duration;

use conclave_types::{Classification, DeviceTrust};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};

/// A named list of address ranges from config, e.g. `office = ["10.1.0.0/16"]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedNetwork {
    /// The name profiles refer to in `trusted_networks`.
    pub name: String,
    /// The address ranges that make up the network.
    pub ranges: Vec<IpNet>,
}

/// Who may join a meeting at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Audience {
    /// Only hosts and invitees.
    Invitees,
    /// Any account of the organisation (hosts, invitees and colleagues).
    Organisation,
    /// Anyone holding the link, including guests without an account.
    Guests,
}

/// Who waits in the lobby until a host admits them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LobbyRule {
    /// Nobody waits.
    None,
    /// Anyone who was not invited: colleagues and guests.
    Guests,
    /// Everyone except hosts.
    Everyone,
}

/// What a join from a network outside the profile's trusted networks gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UntrustedNetworkAction {
    /// Admitted, but marked so that hosts and the roster show it.
    Flag,
    /// Sent to the lobby; a host (or co-host) must admit them.
    Lobby,
    /// Refused.
    Deny,
}

/// The TOML shape of a profile in the server's config, e.g. under `[profiles.secret]`.
///
/// `audience`, `lobby`, `device_trust` and `untrusted_network` are required; the rest
/// default to "no restriction". Unknown fields are rejected, so that a typo cannot
/// silently weaken a profile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileSpec {
    /// Who may join at all.
    pub audience: Audience,
    /// Who waits in the lobby.
    pub lobby: LobbyRule,
    /// The minimum device trust required to join (hosts included).
    pub device_trust: DeviceTrust,
    /// Names of `[networks.*]` entries that count as trusted.
    #[serde(default)]
    pub trusted_networks: Vec<String>,
    /// What a join from outside the trusted networks gets.
    pub untrusted_network: UntrustedNetworkAction,
    /// Minutes before the start at which joining opens; `None` means there is no join
    /// window at all (joinable any time, even after the end).
    #[serde(default)]
    pub join_opens_minutes_before_start: Option<u32>,
    /// Minutes after the end at which joining closes; only meaningful together with
    /// `join_opens_minutes_before_start`, and `None` then means 0.
    #[serde(default)]
    pub join_closes_minutes_after_end: Option<u32>,
    /// Minutes after the start at which the meeting locks (late joiners wait in the
    /// lobby); `None` means it never locks by schedule.
    #[serde(default)]
    pub lock_minutes_after_start: Option<u32>,
    /// The most participants allowed in the call at once; `None` means unlimited.
    #[serde(default)]
    pub max_participants: Option<u32>,
}

/// When a meeting with a join window can be joined, relative to its schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JoinWindow {
    /// Joining opens this long before the scheduled start.
    pub opens_before_start: Duration,
    /// Joining closes this long after the scheduled end.
    pub closes_after_end: Duration,
}

/// A profile with network names resolved to ranges; what [`decide`](crate::decide) uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    /// Who may join at all.
    pub audience: Audience,
    /// Who waits in the lobby.
    pub lobby: LobbyRule,
    /// The minimum device trust required to join (hosts included).
    pub required_trust: DeviceTrust,
    /// The trusted networks, in the order the profile lists them.
    pub trusted_networks: Vec<NamedNetwork>,
    /// What a join from outside the trusted networks gets.
    pub untrusted_network: UntrustedNetworkAction,
    /// When joining is possible; `None` means any time.
    pub join_window: Option<JoinWindow>,
    /// How long after the start the meeting locks; `None` means never by schedule.
    pub lock_after_start: Option<Duration>,
    /// The most participants allowed in the call at once; `None` means unlimited.
    pub max_participants: Option<u32>,
}

/// A mistake in the policy configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyConfigError {
    /// A profile lists a trusted network that no `[networks.*]` entry defines.
    #[error("trusted network `{0}` is not defined under [networks]")]
    UnknownNetwork(String),
}

fn minutes(m: u32) -> Duration {
    Duration::from_secs(u64::from(m) * 60)
}

impl Profile {
    /// Resolves network names against the config's named networks.
    ///
    /// If `networks` defines a name twice, the first definition is used. A
    /// `join_closes_minutes_after_end` without `join_opens_minutes_before_start` is
    /// ignored, as documented on [`ProfileSpec`].
    pub fn resolve(
        spec: &ProfileSpec,
        networks: &[NamedNetwork],
    ) -> Result<Profile, PolicyConfigError> {
        let trusted_networks = spec
            .trusted_networks
            .iter()
            .map(|name| {
                networks
                    .iter()
                    .find(|n| &n.name == name)
                    .cloned()
                    .ok_or_else(|| PolicyConfigError::UnknownNetwork(name.clone()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let join_window = spec
            .join_opens_minutes_before_start
            .map(|opens| JoinWindow {
                opens_before_start: minutes(opens),
                closes_after_end: minutes(spec.join_closes_minutes_after_end.unwrap_or(0)),
            });
        Ok(Profile {
            audience: spec.audience,
            lobby: spec.lobby,
            required_trust: spec.device_trust,
            trusted_networks,
            untrusted_network: spec.untrusted_network,
            join_window,
            lock_after_start: spec.lock_minutes_after_start.map(minutes),
            max_participants: spec.max_participants,
        })
    }

    /// What the profile means, one plain sentence per rule, for the people who
    /// choose a classification and the people who join under it.
    pub fn describe(&self) -> Vec<String> {
        let mut lines = vec![match self.audience {
            Audience::Invitees => "only hosts and invited people can join",
            Audience::Organisation => "anyone with an account of the organisation can join",
            Audience::Guests => "anyone who has the link can join",
        }
        .to_string()];
        match self.lobby {
            LobbyRule::None => {}
            LobbyRule::Guests => lines.push(
                "people who were not invited wait in the lobby until a host admits them".into(),
            ),
            LobbyRule::Everyone => lines
                .push("everyone except hosts waits in the lobby until a host admits them".into()),
        }
        if self.required_trust == DeviceTrust::Managed {
            lines.push("only from devices managed by the organisation".into());
        }
        let names: Vec<&str> = self
            .trusted_networks
            .iter()
            .map(|n| n.name.as_str())
            .collect();
        let trusted = if names.is_empty() {
            "no network is trusted".to_string()
        } else {
            format!("trusted networks: {}", names.join(", "))
        };
        lines.push(match self.untrusted_network {
            UntrustedNetworkAction::Flag => {
                format!("{trusted}; people on other networks are shown as untrusted")
            }
            UntrustedNetworkAction::Lobby => {
                format!("{trusted}; people on other networks wait for a host to admit them")
            }
            UntrustedNetworkAction::Deny => {
                format!("{trusted}; nobody can join from any other network")
            }
        });
        if let Some(w) = self.join_window {
            let after = match w.closes_after_end.as_secs() / 60 {
                0 => "closes at the scheduled end".to_string(),
                m => format!("closes {m} minutes after the scheduled end"),
            };
            lines.push(format!(
                "joining opens {} minutes before the start and {after}",
                w.opens_before_start.as_secs() / 60
            ));
        }
        if let Some(lock) = self.lock_after_start {
            lines.push(format!(
                "{} minutes after the start the room locks: latecomers wait for a host",
                lock.as_secs() / 60
            ));
        }
        if let Some(max) = self.max_participants {
            lines.push(format!("at most {max} participants"));
        }
        lines
    }
}

/// The four built-in profiles, used when the config defines none of that name.
///
/// Returns `(classification, spec)` for `open`, `internal`, `confidential` and
/// `secret`, in that order. `internal`, `confidential` and `secret` trust the network
/// named `office`, which the config must therefore define (see [`Profile::resolve`]).
///
/// | profile        | audience     | lobby  | device   | untrusted | window (before / after) | lock   | max |
/// |----------------|--------------|--------|----------|-----------|-------------------------|--------|-----|
/// | `open`         | guests       | guests | personal | flag      | none                    | none   | —   |
/// | `internal`     | organisation | none   | personal | flag      | 60 / 60 min             | none   | —   |
/// | `confidential` | invitees     | none   | personal | lobby     | 30 / 30 min             | none   | 50  |
/// | `secret`       | invitees     | none   | managed  | deny      | 15 / 0 min              | 10 min | 20  |
pub fn default_profiles() -> Vec<(Classification, ProfileSpec)> {
    let office = || vec!["office".to_string()];
    let specs = [
        (
            "open",
            ProfileSpec {
                audience: Audience::Guests,
                lobby: LobbyRule::Guests,
                device_trust: DeviceTrust::Personal,
                trusted_networks: office(),
                untrusted_network: UntrustedNetworkAction::Flag,
                join_opens_minutes_before_start: None,
                join_closes_minutes_after_end: None,
                lock_minutes_after_start: None,
                max_participants: None,
            },
        ),
        (
            "internal",
            ProfileSpec {
                audience: Audience::Organisation,
                lobby: LobbyRule::None,
                device_trust: DeviceTrust::Personal,
                trusted_networks: office(),
                untrusted_network: UntrustedNetworkAction::Flag,
                join_opens_minutes_before_start: Some(60),
                join_closes_minutes_after_end: Some(60),
                lock_minutes_after_start: None,
                max_participants: None,
            },
        ),
        (
            "confidential",
            ProfileSpec {
                audience: Audience::Invitees,
                lobby: LobbyRule::None,
                device_trust: DeviceTrust::Personal,
                trusted_networks: office(),
                untrusted_network: UntrustedNetworkAction::Lobby,
                join_opens_minutes_before_start: Some(30),
                join_closes_minutes_after_end: Some(30),
                lock_minutes_after_start: None,
                max_participants: Some(50),
            },
        ),
        (
            "secret",
            ProfileSpec {
                audience: Audience::Invitees,
                lobby: LobbyRule::None,
                device_trust: DeviceTrust::Managed,
                trusted_networks: office(),
                untrusted_network: UntrustedNetworkAction::Deny,
                join_opens_minutes_before_start: Some(15),
                join_closes_minutes_after_end: Some(0),
                lock_minutes_after_start: Some(10),
                max_participants: Some(20),
            },
        ),
    ];
    // The names are valid classifications, so nothing is dropped; filter_map keeps the
    // function free of any panic path all the same.
    specs
        .into_iter()
        .filter_map(|(name, spec)| Classification::new(name).ok().map(|c| (c, spec)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_secret_profile_describes_itself_in_plain_words() {
        let networks = [NamedNetwork {
            name: "office".into(),
            ranges: vec!["10.0.0.0/8".parse().expect("valid net")],
        }];
        let spec = default_profiles()
            .into_iter()
            .find(|(c, _)| c.as_str() == "secret")
            .expect("secret default")
            .1;
        let lines = Profile::resolve(&spec, &networks)
            .expect("office")
            .describe();
        assert_eq!(
            lines,
            [
                "only hosts and invited people can join",
                "only from devices managed by the organisation",
                "trusted networks: office; nobody can join from any other network",
                "joining opens 15 minutes before the start and closes at the scheduled end",
                "10 minutes after the start the room locks: latecomers wait for a host",
                "at most 20 participants",
            ]
        );
    }

    #[test]
    fn all_four_defaults_are_present_in_order() {
        let names: Vec<String> = default_profiles()
            .into_iter()
            .map(|(c, _)| c.as_str().to_string())
            .collect();
        assert_eq!(names, ["open", "internal", "confidential", "secret"]);
    }

    #[test]
    fn closes_defaults_to_zero_and_is_ignored_without_opens() {
        let mut spec = ProfileSpec {
            audience: Audience::Guests,
            lobby: LobbyRule::None,
            device_trust: DeviceTrust::Personal,
            trusted_networks: Vec::new(),
            untrusted_network: UntrustedNetworkAction::Flag,
            join_opens_minutes_before_start: Some(5),
            join_closes_minutes_after_end: None,
            lock_minutes_after_start: Some(u32::MAX),
            max_participants: None,
        };
        let p = Profile::resolve(&spec, &[]).expect("no networks referenced");
        assert_eq!(
            p.join_window,
            Some(JoinWindow {
                opens_before_start: Duration::from_secs(300),
                closes_after_end: Duration::ZERO
            })
        );
        assert_eq!(
            p.lock_after_start,
            Some(Duration::from_secs(u64::from(u32::MAX) * 60))
        );
        spec.join_opens_minutes_before_start = None;
        spec.join_closes_minutes_after_end = Some(10);
        let p = Profile::resolve(&spec, &[]).expect("no networks referenced");
        assert_eq!(p.join_window, None);
    }

    #[test]
    fn first_definition_of_a_duplicated_network_wins() {
        let a: IpNet = "10.0.0.0/8".parse().expect("valid net");
        let b: IpNet = "192.168.0.0/16".parse().expect("valid net");
        let networks = [
            NamedNetwork {
                name: "office".into(),
                ranges: vec![a],
            },
            NamedNetwork {
                name: "office".into(),
                ranges: vec![b],
            },
        ];
        let spec = default_profiles()
            .into_iter()
            .find(|(c, _)| c.as_str() == "secret")
            .expect("secret default")
            .1;
        let p = Profile::resolve(&spec, &networks).expect("office defined");
        assert_eq!(p.trusted_networks, vec![networks[0].clone()]);
    }
}
