//! Adding one member to a group of N: commit creation (by an existing member),
//! Welcome processing (by the joiner), commit processing (by another member).

#![allow(missing_docs, clippy::unwrap_used, unreachable_pub, dead_code)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::{claims, org, Harness, LATER, NOW};
use conclave_e2ee::{Input, MemberIdentity, Output, Session};
use conclave_types::{DeviceId, UserId};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};

/// A fresh joiner with a unique device (beyond the harness's `u8` numbering).
fn fresh(counter: u32) -> (Session, DeviceId) {
    let mut seed = [0x55; 32];
    seed[..4].copy_from_slice(&counter.to_be_bytes());
    let mut id = [0x77; 16];
    id[..4].copy_from_slice(&counter.to_be_bytes());
    let mut c = claims(200, seed, LATER);
    c.device_id = DeviceId::from_bytes(id);
    c.user_id = UserId::from_bytes(id);
    let credential = org().issue_credential(c);
    let session = Session::new(
        MemberIdentity::new(credential, seed),
        org().public(),
        common::server().info(),
        NOW,
    )
    .unwrap();
    (session, DeviceId::from_bytes(id))
}

fn drain(s: &mut Session) -> Vec<Output> {
    std::iter::from_fn(|| s.poll_output()).collect()
}

fn sent(outputs: &[Output]) -> Vec<u8> {
    outputs
        .iter()
        .find_map(|o| match o {
            Output::Send(b) => Some(b.clone()),
            _ => None,
        })
        .unwrap()
}

/// Group of `size`; only members 1 (committer) and 2 (observer) stay in sync
/// during the benchmark.
struct Bench {
    h: Harness,
    counter: u32,
}

#[derive(Default)]
struct Times {
    commit: Duration,
    welcome: Duration,
    process: Duration,
}

impl Bench {
    /// Members 1 and 2 join normally; the other `size - 2` are added in
    /// batched commits that only members 1 and 2 process (the others never
    /// take part, which does not change the cost for 1, 2 and the joiner).
    fn new(size: u32) -> Self {
        let mut bench = Self {
            h: Harness::with_members(2),
            counter: 1_000_000,
        };
        let mut remaining = size.saturating_sub(2);
        while remaining > 0 {
            let batch = remaining.min(100);
            remaining -= batch;
            for _ in 0..batch {
                bench.counter += 1;
                let (joiner, device) = fresh(bench.counter);
                for n in [1, 2] {
                    bench
                        .h
                        .member_mut(n)
                        .handle(Input::Admitted { device }, NOW)
                        .unwrap();
                }
                let proposal = bench
                    .h
                    .server
                    .propose_add(bench.h.ds.group(), &joiner.key_package())
                    .unwrap();
                bench.deliver(&proposal);
            }
            bench
                .h
                .member_mut(1)
                .handle(Input::CommitPending, NOW)
                .unwrap();
            let commit = sent(&drain(bench.h.member_mut(1)));
            bench.h.ds.submit(&commit).unwrap();
            bench.deliver(&commit);
        }
        assert_eq!(bench.h.member(2).members().len() as u32, size);
        bench.counter = 0;
        bench
    }

    fn deliver(&mut self, bytes: &[u8]) {
        for n in [1, 2] {
            self.h
                .member_mut(n)
                .handle(Input::Delivered(bytes.to_vec()), NOW)
                .unwrap();
            drain(self.h.member_mut(n));
        }
    }

    /// Adds a member (timed), then removes it again (untimed).
    fn cycle(&mut self, times: &mut Times) {
        self.counter += 1;
        let (mut joiner, device) = fresh(self.counter);
        for n in [1, 2] {
            self.h
                .member_mut(n)
                .handle(Input::Admitted { device }, NOW)
                .unwrap();
        }
        let proposal = self
            .h
            .server
            .propose_add(self.h.ds.group(), &joiner.key_package())
            .unwrap();
        self.deliver(&proposal);

        let t = Instant::now();
        self.h
            .member_mut(1)
            .handle(Input::CommitPending, NOW)
            .unwrap();
        let out = drain(self.h.member_mut(1));
        times.commit += t.elapsed();
        let commit = sent(&out);
        let welcome = out
            .iter()
            .find_map(|o| match o {
                Output::Welcome(b) => Some(b.clone()),
                _ => None,
            })
            .unwrap();
        self.h.ds.submit(&commit).unwrap();

        let t = Instant::now();
        joiner.handle(Input::Delivered(welcome), NOW).unwrap();
        times.welcome += t.elapsed();

        let t = Instant::now();
        self.h
            .member_mut(2)
            .handle(Input::Delivered(commit.clone()), NOW)
            .unwrap();
        times.process += t.elapsed();
        drain(self.h.member_mut(2));
        self.h
            .member_mut(1)
            .handle(Input::Delivered(commit), NOW)
            .unwrap();
        drain(self.h.member_mut(1));

        // Remove the joiner again so the group size stays fixed.
        let leaf = joiner.own_leaf().unwrap();
        let proposal = self
            .h
            .server
            .propose_remove(self.h.ds.group(), leaf)
            .unwrap();
        self.deliver(&proposal);
        self.h
            .member_mut(1)
            .handle(Input::CommitPending, NOW)
            .unwrap();
        let commit = sent(&drain(self.h.member_mut(1)));
        self.h.ds.submit(&commit).unwrap();
        self.deliver(&commit);
    }
}

/// 10 and 100; 1000 too with `CONCLAVE_BENCH_1000=1`.
fn sizes() -> Vec<u32> {
    let mut sizes = vec![10, 100];
    if std::env::var_os("CONCLAVE_BENCH_1000").is_some() {
        sizes.push(1000);
    }
    sizes
}

fn add_member(c: &mut Criterion) {
    let mut group = c.benchmark_group("add_member");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(5));
    for size in sizes() {
        let mut bench = Bench::new(size);
        for (part, pick) in [("commit", 0usize), ("welcome", 1), ("process_commit", 2)] {
            group.bench_function(BenchmarkId::new(part, size), |b| {
                b.iter_custom(|iters| {
                    let mut times = Times::default();
                    for _ in 0..iters {
                        bench.cycle(&mut times);
                    }
                    [times.commit, times.welcome, times.process][pick]
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, add_member);
criterion_main!(benches);
