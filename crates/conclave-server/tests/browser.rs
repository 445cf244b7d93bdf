//! The web app in headless Chromium against the real binary: each test prepares the server
//! (accounts, meetings) over its API, runs one scenario script of `web/tests/` with
//! playwright-core, and checks on the server what the clicks did.
//!
//! Needs `web/dist` and `web/node_modules` (`scripts/test` builds both first) and Debian's
//! `chromium` (`scripts/setup --test` installs it).

mod common;

use std::path::Path;
use std::process::Command;

use common::{web_dist, Client, Server};
use serde_json::json;

/// Runs `web/tests/{scenario}` with the server's address and these variables; panics with
/// its output unless it passes.
fn scenario(server: &Server, scenario: &str, vars: &[(&str, &str)]) {
    let web = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../web");
    assert!(
        web_dist().join("index.html").exists(),
        "web/dist is missing: run `npm run --prefix web build` (scripts/test does)"
    );
    let output = Command::new("node")
        .arg(web.join("tests").join(scenario))
        .env("CONCLAVE_URL", &server.v4)
        .envs(vars.iter().copied())
        .output()
        .expect("run node (scripts/setup checks it is installed)");
    assert!(
        output.status.success(),
        "{scenario} failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_organiser_signs_in_schedules_a_meeting_and_finds_it_in_my_meetings() {
    let server = Server::start();
    let base = server.v4.clone();
    let mut admin = server.client();
    admin.login(&base, "admin", &server.admin_password).await;
    for (name, role) in [("olga", "organiser"), ("ivan", "member")] {
        let a = admin
            .post(
                &format!("{base}/api/users"),
                json!({"name": name, "display_name": name.to_uppercase(), "role": role,
                       "password": "correct horse battery staple"}),
            )
            .await;
        assert_eq!(a.status, 201, "{:?}", a.json());
    }

    scenario(
        &server,
        "schedule.mjs",
        &[
            ("CONCLAVE_USER", "olga"),
            ("CONCLAVE_PASSWORD", "correct horse battery staple"),
            ("CONCLAVE_INVITEE", "ivan"),
        ],
    );

    // what the browser scheduled is there, as typed, and the invitee sees it too
    let mut ivan: Client = server.client();
    ivan.login(&base, "ivan", "correct horse battery staple")
        .await;
    let list = ivan.get(&format!("{base}/api/meetings")).await;
    assert_eq!(list.status, 200);
    let meetings = list.json();
    let titles: Vec<&str> = meetings
        .as_array()
        .expect("a list")
        .iter()
        .filter_map(|m| m["title"].as_str())
        .collect();
    assert_eq!(titles, ["Budget review"], "{meetings}");
}
