//! Times one `decide` call for the built-in `secret` profile, with three trusted
//! networks of ten ranges each, for a client inside the last network and one outside
//! all of them (the worst case: every range is checked).

// `criterion_group!` generates a public function that cannot carry a doc comment.
#![allow(missing_docs)]

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use conclave_policy::{
    decide, default_profiles, IpNet, JoinRequest, MeetingFacts, NamedNetwork, Outcome, Profile,
    Relation,
};
use conclave_types::{DeviceTrust, Timestamp};
use criterion::{criterion_group, criterion_main, Criterion};

fn networks() -> Vec<NamedNetwork> {
    let v4 = |a: u8, b: u8, p: u8| {
        IpNet::new(IpAddr::V4(Ipv4Addr::new(a, b, 0, 0)), p).expect("valid prefix")
    };
    let v6 = |seg: u16| {
        IpNet::new(
            IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, seg, 0, 0, 0, 0, 0)),
            48,
        )
        .expect("valid prefix")
    };
    vec![
        NamedNetwork {
            name: "vpn".into(),
            ranges: (0..10).map(|i| v4(10, 100 + i, 16)).collect(),
        },
        NamedNetwork {
            name: "branches".into(),
            ranges: (0..5u8)
                .map(|i| v4(172, 16 + i, 16))
                .chain((0..5u16).map(|i| v6(0x100 + i)))
                .collect(),
        },
        NamedNetwork {
            name: "office".into(),
            ranges: (0..9)
                .map(|i| v4(192, 168, 24 + i))
                .chain([v4(10, 1, 16)])
                .collect(),
        },
    ]
}

fn bench_decide(c: &mut Criterion) {
    let (secret, mut spec) = default_profiles()
        .into_iter()
        .find(|(c, _)| c.as_str() == "secret")
        .expect("built in");
    spec.trusted_networks = vec!["vpn".into(), "branches".into(), "office".into()];
    let profile = Profile::resolve(&spec, &networks()).expect("all defined");
    let start = Timestamp::parse_rfc3339("2026-11-23T09:30:00Z").expect("valid");
    let meeting = MeetingFacts {
        starts_at: start,
        ends_at: Timestamp::parse_rfc3339("2026-11-23T10:30:00Z").expect("valid"),
        cancelled: false,
        locked: false,
        participants: 7,
    };
    let now = Timestamp::from_unix_millis(start.unix_millis() - 5 * 60_000);
    let trusted = JoinRequest {
        relation: Relation::Invitee,
        device_trust: DeviceTrust::Managed,
        client_addr: "10.1.2.3".parse().expect("valid"),
    };
    let untrusted = JoinRequest {
        client_addr: "203.0.113.9".parse().expect("valid"),
        ..trusted.clone()
    };
    assert_eq!(
        decide(&secret, &profile, &meeting, &trusted, now).outcome,
        Outcome::Admit
    );
    assert_eq!(
        decide(&secret, &profile, &meeting, &untrusted, now).outcome,
        Outcome::Deny
    );

    let mut group = c.benchmark_group("decide_secret_3x10_ranges");
    group.bench_function("trusted_client", |b| {
        b.iter(|| {
            decide(
                &secret,
                &profile,
                &meeting,
                black_box(&trusted),
                black_box(now),
            )
        })
    });
    group.bench_function("untrusted_client", |b| {
        b.iter(|| {
            decide(
                &secret,
                &profile,
                &meeting,
                black_box(&untrusted),
                black_box(now),
            )
        })
    });
    group.finish();
}

criterion_group!(benches, bench_decide);
criterion_main!(benches);
