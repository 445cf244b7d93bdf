//! The join-policy engine of Conclave.
//!
//! Every meeting has a [`Classification`] (`open`, `internal`, `confidential`,
//! `secret`, or one an organisation defines). The server's TOML config maps each
//! classification to a policy profile ([`ProfileSpec`]), which [`Profile::resolve`]
//! turns into a [`Profile`] by looking up the named trusted networks. When someone
//! asks to join, [`decide`] weighs the profile, the facts about the meeting, the
//! request and the current time, and returns a [`Decision`]: [`Outcome::Admit`],
//! [`Outcome::Lobby`] or [`Outcome::Deny`], with every [`Reason`] that applies. Each
//! reason has a stable code for programs and a plain-language explanation for the
//! person trying to join.
//!
//! Together the profiles encode a *secure dial-in procedure*: a `secret` meeting, for
//! example, can only be joined by invitees, from a managed device, on a trusted
//! network, shortly before it starts and not after it has locked.
//!
//! # Why it is pure
//!
//! This crate does no I/O and never reads a clock: `now` is an argument, and the
//! meeting facts are plain values the server looked up. The same inputs therefore
//! always give the same decision, which makes the policy exhaustively testable
//! (every profile × device × network × time × relation is checked in the tests),
//! lets the audit log record exactly what was decided and why, and keeps a security
//! decision free of hidden state.
//!
//! # Example
//!
//! ```
//! use std::net::IpAddr;
//! use conclave_policy::{
//!     decide, default_profiles, JoinRequest, MeetingFacts, NamedNetwork, Outcome, Profile,
//!     Reason, Relation,
//! };
//! use conclave_types::{DeviceTrust, Timestamp};
//!
//! let networks = [NamedNetwork {
//!     name: "office".into(),
//!     ranges: vec!["10.1.0.0/16".parse().expect("valid range")],
//! }];
//! let (secret, spec) = default_profiles()
//!     .into_iter()
//!     .find(|(c, _)| c.as_str() == "secret")
//!     .expect("built in");
//! let profile = Profile::resolve(&spec, &networks).expect("office is defined");
//!
//! let starts_at = Timestamp::parse_rfc3339("2026-11-23T09:30:00Z").expect("valid");
//! let meeting = MeetingFacts {
//!     starts_at,
//!     ends_at: Timestamp::parse_rfc3339("2026-11-23T10:30:00Z").expect("valid"),
//!     cancelled: false,
//!     locked: false,
//!     participants: 3,
//! };
//! let request = JoinRequest {
//!     relation: Relation::Invitee,
//!     device_trust: DeviceTrust::Managed,
//!     client_addr: "203.0.113.7".parse::<IpAddr>().expect("valid"),
//! };
//!
//! let decision = decide(&secret, &profile, &meeting, &request, starts_at);
//! assert_eq!(decision.outcome, Outcome::Deny);
//! assert_eq!(decision.reasons, [Reason::UntrustedNetworkDenied]);
//! assert_eq!(
//!     decision.reasons[0].explain(&secret),
//!     "secret meetings can only be joined from a trusted network; \
//!      you are connecting from an untrusted network"
//! );
//! ```

mod decide;
mod profile;
mod reason;

pub use decide::{decide, Decision, JoinRequest, MeetingFacts, NetworkAssessment, Relation};
pub use ipnet::IpNet;
pub use profile::{
    default_profiles, Audience, JoinWindow, LobbyRule, NamedNetwork, PolicyConfigError, Profile,
    ProfileSpec, UntrustedNetworkAction,
};
pub use reason::{Outcome, Reason};

#[doc(no_inline)]
pub use conclave_types::{Classification, DeviceTrust, Timestamp};
