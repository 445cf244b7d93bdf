//! Shared fixtures for the integration tests.
#![allow(dead_code)]

use std::net::IpAddr;

use conclave_policy::{default_profiles, NamedNetwork, Profile, ProfileSpec};
use conclave_types::{Classification, Timestamp};

/// `office = ["127.0.0.1/32"]`, the only network the built-in profiles refer to.
pub(crate) fn office() -> Vec<NamedNetwork> {
    vec![NamedNetwork {
        name: "office".to_string(),
        ranges: vec!["127.0.0.1/32".parse().expect("valid range")],
    }]
}

/// A client inside `office`.
pub(crate) fn trusted_addr() -> IpAddr {
    "127.0.0.1".parse().expect("valid address")
}

/// A client outside `office`.
pub(crate) fn untrusted_addr() -> IpAddr {
    "::1".parse().expect("valid address")
}

/// The built-in spec of that name.
pub(crate) fn default_spec(name: &str) -> (Classification, ProfileSpec) {
    default_profiles()
        .into_iter()
        .find(|(c, _)| c.as_str() == name)
        .expect("a built-in profile of that name")
}

/// The built-in profile of that name, resolved against [`office`].
pub(crate) fn default_profile(name: &str) -> (Classification, Profile) {
    let (c, spec) = default_spec(name);
    let p = Profile::resolve(&spec, &office()).expect("office is defined");
    (c, p)
}

pub(crate) fn ts(s: &str) -> Timestamp {
    Timestamp::parse_rfc3339(s).expect("valid RFC 3339")
}

/// Scheduled start of the test meeting.
pub(crate) fn start() -> Timestamp {
    ts("2026-11-23T09:30:00Z")
}

/// Scheduled end of the test meeting.
pub(crate) fn end() -> Timestamp {
    ts("2026-11-23T10:30:00Z")
}

pub(crate) fn minutes(m: i64) -> i64 {
    m * 60_000
}

/// `t` shifted by `m` minutes (may be negative).
pub(crate) fn shift(t: Timestamp, m: i64) -> Timestamp {
    Timestamp::from_unix_millis(t.unix_millis() + minutes(m))
}
