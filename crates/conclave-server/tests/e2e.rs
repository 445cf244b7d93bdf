//! End to end with the real binary: a real SQLite file in a temp dir, HTTPS on
//! 127.0.0.1 and [::1] with OS-chosen ports, the CLI run against the live data
//! directory, and the audit log tampered with through the `sqlite3` shell.

mod common;

use std::path::Path;
use std::process::Command;

use common::{cli_in, random_meeting_id, Answer, Server};
use conclave_identity::{JoinTicket, OrganisationPublicKey};
use conclave_types::Timestamp;
use serde_json::{json, Value};

fn now_plus_minutes(m: i64) -> String {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_millis();
    Timestamp::from_unix_millis(i64::try_from(ms).expect("fits") + m * 60_000).to_rfc3339()
}

fn reason_codes(a: &Answer) -> Vec<String> {
    a.json()["reasons"]
        .as_array()
        .expect("reasons")
        .iter()
        .map(|r| r["code"].as_str().expect("code").to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_meeting_admits_only_managed_devices_on_trusted_networks() {
    let mut server = Server::start();
    let (v4, v6) = (server.v4.clone(), server.v6.clone());

    // An admin sets up the organisation over the API.
    let mut admin = server.client();
    admin
        .login(&v4, "admin", &server.admin_password.clone())
        .await;
    let mut passwords = std::collections::HashMap::new();
    for (name, role) in [
        ("olga", "organiser"),
        ("ivan", "member"),
        ("max", "member"),
        ("aude", "auditor"),
    ] {
        let a = admin
            .post(
                &format!("{v4}/api/users"),
                json!({"name": name, "display_name": name.to_uppercase(), "role": role}),
            )
            .await;
        assert_eq!(a.status, 201, "{:?}", a.json());
        passwords.insert(
            name,
            a.json()["generated_password"]
                .as_str()
                .expect("password")
                .to_string(),
        );
    }
    // The printed one-time admin password is replaced at once; other sessions end.
    let mut other_admin_session = server.client();
    other_admin_session
        .login(&v4, "admin", &server.admin_password.clone())
        .await;
    let changed = admin
        .post(
            &format!("{v4}/api/session/password"),
            json!({"current_password": server.admin_password, "new_password": "a much longer passphrase"}),
        )
        .await;
    assert_eq!(changed.status, 204);
    assert_eq!(
        other_admin_session
            .get(&format!("{v4}/api/session"))
            .await
            .status,
        401
    );
    assert_eq!(admin.get(&format!("{v4}/api/session")).await.status, 200);
    let org: OrganisationPublicKey = admin.get(&format!("{v4}/api/organisation")).await.json()
        ["public_key"]
        .as_str()
        .expect("key")
        .parse()
        .expect("organisation key");

    // Ivan registers two devices; an admin marks the first managed with the CLI while
    // the server runs.
    let mut ivan = server.client();
    ivan.login(&v4, "ivan", &passwords["ivan"]).await;
    let (laptop, laptop_id, old_credential) = ivan.register_device(&v4, "work laptop").await;
    let (phone, _, phone_credential) = ivan.register_device(&v4, "own phone").await;
    let out = server.cli(&["device", "set-trust", &laptop_id, "managed"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let fresh = ivan
        .get(&format!("{v4}/api/devices/{laptop_id}/credential"))
        .await;
    assert_eq!(fresh.status, 200);
    assert_eq!(fresh.json()["device"]["trust"], "managed");
    let laptop_credential = fresh.json()["credential"]
        .as_str()
        .expect("credential")
        .to_string();

    // Olga schedules a secret meeting with Ivan invited.
    let mut olga = server.client();
    olga.login(&v4, "olga", &passwords["olga"]).await;
    let created = olga
        .post(
            &format!("{v4}/api/meetings"),
            json!({
                "title": "Weekly readiness review",
                "agenda": "1. status",
                "classification": "secret",
                "starts_at": now_plus_minutes(-1),
                "ends_at": now_plus_minutes(60),
                "invitees": ["ivan"],
            }),
        )
        .await;
    assert_eq!(created.status, 201, "{:?}", created.json());
    let meeting = created.json()["id"].as_str().expect("id").to_string();
    assert_eq!(meeting.len(), 22);

    // The managed laptop on 127.0.0.1 (trusted) is admitted with a valid ticket.
    let admitted = ivan.join(&v4, &meeting, &laptop, &laptop_credential).await;
    assert_eq!(admitted.status, 200, "{:?}", admitted.json());
    assert_eq!(admitted.json()["outcome"], "admit");
    assert_eq!(
        admitted.json()["network"],
        json!({"trusted": true, "name": "office"})
    );
    let ticket = JoinTicket::decode(admitted.json()["ticket"].as_str().expect("ticket"))
        .expect("ticket decodes");
    let claims = ticket
        .verify(
            &org,
            Timestamp::parse_rfc3339(&now_plus_minutes(0)).expect("now"),
        )
        .expect("ticket verifies");
    assert_eq!(claims.meeting_id.to_string(), meeting);
    assert_eq!(claims.device_id.to_string(), laptop_id);

    // The credential from before the trust change is out of date.
    assert_eq!(
        ivan.join(&v4, &meeting, &laptop, &old_credential)
            .await
            .status,
        409
    );

    // The same laptop over [::1] (untrusted) is denied, with the reason in words.
    let mut ivan6 = server.client();
    ivan6.login(&v6, "ivan", &passwords["ivan"]).await;
    let denied = ivan6.join(&v6, &meeting, &laptop, &laptop_credential).await;
    assert_eq!(denied.status, 403, "{:?}", denied.json());
    assert_eq!(denied.json()["outcome"], "deny");
    assert_eq!(reason_codes(&denied), ["untrusted_network_denied"]);
    assert_eq!(
        denied.json()["reasons"][0]["message"],
        "secret meetings can only be joined from a trusted network; you are connecting from an untrusted network"
    );

    // A personal device is denied even from the trusted network.
    let personal = ivan.join(&v4, &meeting, &phone, &phone_credential).await;
    assert_eq!(personal.status, 403);
    assert_eq!(reason_codes(&personal), ["device_not_trusted"]);

    // Outsiders learn nothing: a non-invitee (with a real device and a valid proof of
    // possession) and a signed-out client get exactly the answer for a random id.
    let mut max = server.client();
    max.login(&v4, "max", &passwords["max"]).await;
    let (max_key, _, max_credential) = max.register_device(&v4, "desktop").await;
    let nobody = server.client();
    let random = random_meeting_id();
    let join_by_max = max.join(&v4, &meeting, &max_key, &max_credential).await;
    let join_by_max_random = max.join(&v4, &random, &max_key, &max_credential).await;
    assert_eq!(join_by_max.status, 404);
    assert_eq!(join_by_max, join_by_max_random);
    let body = json!({"credential": max_credential, "challenge": "x", "signature": "x"});
    for (method, path, body) in [
        ("GET", "", None),
        ("PATCH", "", Some(json!({"title": "x"}))),
        ("DELETE", "", None),
        ("POST", "/challenge", Some(json!({}))),
        ("POST", "/join", Some(body)),
    ] {
        let real = format!("{v4}/api/meetings/{meeting}{path}");
        let fake = format!("{v4}/api/meetings/{random}{path}");
        let answers = [
            nobody.send(method, &real, body.clone()).await,
            nobody.send(method, &fake, body.clone()).await,
        ];
        assert_eq!(answers[0], answers[1], "{method} {path}: signed out");
        assert_eq!(answers[0].status, 404);
        if method != "POST" {
            let by_max = max.send(method, &real, body.clone()).await;
            assert_eq!(
                by_max,
                max.send(method, &fake, body.clone()).await,
                "{method} {path}: non-invitee"
            );
            assert_eq!(
                by_max, answers[0],
                "{method} {path}: signed in or not, the same"
            );
        }
    }
    assert!(max
        .get(&format!("{v4}/api/meetings"))
        .await
        .json()
        .as_array()
        .expect("list")
        .is_empty());

    // Every decision is in the audit log, which the auditor reads.
    let mut aude = server.client();
    aude.login(&v4, "aude", &passwords["aude"]).await;
    let entries = aude.get(&format!("{v4}/api/audit?limit=1000")).await.json();
    let joins: Vec<(String, String, Value)> = entries
        .as_array()
        .expect("entries")
        .iter()
        .filter(|e| e["action"] == "meeting.join" && e["target"] == format!("meeting:{meeting}"))
        .map(|e| {
            (
                e["actor"].as_str().unwrap_or_default().to_string(),
                e["decision"].as_str().unwrap_or_default().to_string(),
                e["reasons"].clone(),
            )
        })
        .collect();
    let decisions: Vec<&str> = joins.iter().map(|(_, d, _)| d.as_str()).collect();
    assert_eq!(decisions, ["admit", "deny", "deny", "deny"], "{joins:#?}");
    let reasons = |i: usize| joins[i].2.to_string();
    assert!(reasons(1).contains("untrusted_network_denied") && reasons(1).contains("client ::1"));
    assert!(reasons(2).contains("device_not_trusted"));
    assert!(reasons(3).contains("not_in_audience"));

    // Orderly stop signs the head; the untouched log verifies.
    server.stop();
    let out = server.cli(&["audit", "verify"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("audit log intact"));

    tampering_is_detected(&server.data_dir());
}

/// Copies the data directory, runs SQL on the copy with the sqlite3 shell, and expects
/// `conclave audit verify` to fail naming `entry`.
fn tamper(data: &Path, sql: &str, expected: &str) {
    let copy = tempfile::tempdir().expect("temp dir");
    for file in ["conclave.db", "organisation.key"] {
        std::fs::copy(data.join(file), copy.path().join(file)).expect("copy");
    }
    let sql = format!("DROP TRIGGER audit_log_no_update; DROP TRIGGER audit_log_no_delete; {sql}");
    let out = Command::new("sqlite3")
        .arg(copy.path().join("conclave.db"))
        .arg(&sql)
        .output()
        .expect("the sqlite3 shell is installed (scripts/setup --test)");
    assert!(
        out.status.success(),
        "{sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = cli_in(copy.path(), &["audit", "verify"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{sql}: verify must fail; said {stderr}"
    );
    assert!(
        stderr.contains(expected),
        "{sql}: expected {expected:?} in {stderr:?}"
    );
}

fn tampering_is_detected(data: &Path) {
    let count = |sql: &str| -> i64 {
        let out = Command::new("sqlite3")
            .arg(data.join("conclave.db"))
            .arg(sql)
            .output()
            .expect("sqlite3");
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .expect("a number")
    };
    let last = count("SELECT MAX(seq) FROM audit_log");
    assert!(last > 20, "the scenario wrote a real log ({last} entries)");
    assert_eq!(
        count("SELECT MAX(seq) FROM audit_heads"),
        last,
        "shutdown signed the head"
    );

    // Edited: a deny rewritten as admit.
    tamper(
        data,
        "UPDATE audit_log SET decision = 'admit' WHERE seq = 12",
        "audit entry 12: its contents do not match its hash",
    );
    // Deleted.
    tamper(
        data,
        "DELETE FROM audit_log WHERE seq = 7",
        "audit entry 8: expected entry 7",
    );
    // Reordered: entries 5 and 6 swap places.
    tamper(
        data,
        "UPDATE audit_log SET seq = -1 WHERE seq = 5; UPDATE audit_log SET seq = 5 WHERE seq = 6; \
         UPDATE audit_log SET seq = 6 WHERE seq = -1",
        "audit entry 5:",
    );
    // Inserted: a copy of entry 3 slipped in after entry 9, later entries renumbered.
    tamper(
        data,
        "UPDATE audit_log SET seq = seq + 100000 WHERE seq > 9; \
         UPDATE audit_log SET seq = seq - 99999 WHERE seq > 100000; \
         INSERT INTO audit_log SELECT 10, time, actor, action, target, decision, reasons, prev_hash, hash \
         FROM audit_log WHERE seq = 3",
        "audit entry 10:",
    );
    // Truncated behind the signed head.
    tamper(
        data,
        &format!("DELETE FROM audit_log WHERE seq >= {}", last - 1),
        &format!(
            "audit entry {}: the log ends at entry {}",
            last - 1,
            last - 2
        ),
    );
}
