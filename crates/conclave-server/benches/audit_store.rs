//! The audit log on a real SQLite file: one append as the server does it (read the
//! head, chain, insert, commit), and `verify_stored` over a 100,000-entry log, which
//! is what `conclave audit verify` runs.

#![allow(missing_docs)] // criterion_group! generates undocumented items.

use std::sync::Arc;

use conclave_identity::OrganisationKey;
use conclave_server::api::now;
use conclave_server::audit_log::{verify_stored, AuditLog};
use conclave_server::store::Store;
use criterion::{criterion_group, criterion_main, Criterion};

const ENTRIES: u64 = 100_000;

fn audit_store(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let key = Arc::new(OrganisationKey::generate(&mut rand::rngs::OsRng));
    let store = rt
        .block_on(Store::open(&dir.path().join("conclave.db"), true))
        .expect("store");
    let audit = AuditLog::new(store.clone(), Arc::clone(&key));
    let append = || async {
        audit
            .note(
                now(),
                "user:AAAAAAAAAAAAAAAAAAAAAA",
                "meeting.join",
                "meeting:BBBBBBBBBBBBBBBBBBBBBB",
                "deny",
                vec!["untrusted_network_denied".into(), "client ::1".into()],
            )
            .await
            .expect("append")
    };

    let mut group = c.benchmark_group("audit_sqlite");
    group.sample_size(20);
    group.bench_function("append_one", |b| b.to_async(&rt).iter(append));

    rt.block_on(async {
        let mut seq = 0;
        while seq < ENTRIES {
            seq = append().await.seq;
            if seq % 1000 == 0 {
                audit.sign_head(now()).await.expect("sign");
            }
        }
    });
    group.sample_size(10);
    group.bench_function("verify_stored_100k", |b| {
        b.to_async(&rt).iter(|| async {
            let report = verify_stored(&store, &key.public()).await.expect("intact");
            assert!(report.entries >= ENTRIES);
        })
    });
    group.finish();
}

criterion_group!(benches, audit_store);
criterion_main!(benches);
