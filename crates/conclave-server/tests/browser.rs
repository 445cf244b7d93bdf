//! The web app in headless Chromium against the real binary: each test prepares the server
//! (accounts, meetings) over its API, runs one scenario script of `web/tests/` with
//! playwright-core, and checks on the server what the clicks did. A scenario that needs the
//! server changed half-way (an admin acting elsewhere) runs as a [`Steps`] conversation.
//!
//! Needs `web/dist` and `web/node_modules` (`scripts/test` builds both first) and Debian's
//! `chromium` (`scripts/setup --test` installs it).

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::Duration;

use common::{web_dist, Client, Server};
use conclave_server::api::now;
use serde_json::{json, Value};
use tokio::sync::mpsc;

/// `web/tests/{scenario}`, once the app is built.
fn script(scenario: &str) -> PathBuf {
    assert!(
        web_dist().join("index.html").exists(),
        "web/dist is missing: run `npm run --prefix web build` (scripts/test does)"
    );
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../web/tests")
        .join(scenario)
}

/// Runs `web/tests/{scenario}` with the server's address and these variables; panics with
/// its output unless it passes.
fn scenario(server: &Server, scenario: &str, vars: &[(&str, &str)]) {
    let output = Command::new("node")
        .arg(script(scenario))
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

/// A scenario that stops at named steps: it prints `STEP <name>` and waits until the test,
/// having checked and changed what it wants on the server, answers `go`.
struct Steps {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::UnboundedReceiver<String>,
    /// What the script printed besides its steps, for the failure message.
    said: Vec<String>,
    stderr: Option<std::thread::JoinHandle<String>>,
}

impl Steps {
    fn start(server: &Server, scenario: &str, vars: &[(&str, &str)]) -> Self {
        let mut child = Command::new("node")
            .arg(script(scenario))
            .env("CONCLAVE_URL", &server.v4)
            .env("CONCLAVE_URL_V6", &server.v6)
            .envs(vars.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run node (scripts/setup checks it is installed)");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut stderr = child.stderr.take().expect("piped stderr");
        let (tx, lines) = mpsc::unbounded_channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text);
            text
        });
        Self {
            stdin: child.stdin.take(),
            child,
            lines,
            said: Vec::new(),
            stderr: Some(stderr),
        }
    }

    /// Waits until the script reaches step `name`; panics with its output if it ends first.
    async fn reached(&mut self, name: &str) {
        while let Some(line) = self.lines.recv().await {
            if line.strip_prefix("STEP ") == Some(name) {
                return;
            }
            self.said.push(line);
        }
        let (status, output) = self.end();
        panic!("the scenario ended ({status}) before step {name}:\n{output}");
    }

    /// Lets the script go on from its step.
    fn go(&mut self) {
        let stdin = self.stdin.as_mut().expect("the scenario is running");
        writeln!(stdin, "go").expect("write to the scenario");
        stdin.flush().expect("flush");
    }

    /// Waits for the script to end; panics with its output unless it passed.
    async fn finish(mut self) {
        drop(self.stdin.take());
        while let Some(line) = self.lines.recv().await {
            self.said.push(line);
        }
        let (status, output) = self.end();
        assert!(status.success(), "the scenario failed:\n{output}");
    }

    /// Waits for node to exit; its status and everything it printed.
    fn end(&mut self) -> (std::process::ExitStatus, String) {
        drop(self.stdin.take());
        let status = self.child.wait().expect("wait for node");
        let stderr = self
            .stderr
            .take()
            .and_then(|t| t.join().ok())
            .unwrap_or_default();
        (status, format!("{}\n{stderr}", self.said.join("\n")))
    }
}

impl Drop for Steps {
    fn drop(&mut self) {
        // A failing test leaves no browser behind: without its stdin the script stops at
        // its next step, and the kill covers one that hangs elsewhere.
        drop(self.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The caller's devices (every device, for an admin).
async fn devices(client: &Client, base: &str) -> Vec<Value> {
    let a = client.get(&format!("{base}/api/devices")).await;
    assert_eq!(a.status, 200, "{:?}", a.json());
    a.json().as_array().expect("a list").clone()
}

async fn audit_length(admin: &Client, base: &str) -> usize {
    let a = admin.get(&format!("{base}/api/audit?limit=1000")).await;
    assert_eq!(a.status, 200, "{:?}", a.json());
    a.json().as_array().expect("a list").len()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_invitee_checks_from_the_browser_whether_they_can_join_a_secret_meeting() {
    let server = Server::start();
    let base = server.v4.clone();
    let mut admin = server.client();
    admin.login(&base, "admin", &server.admin_password).await;
    let password = "correct horse battery staple";
    for (name, role) in [("olga", "organiser"), ("ivan", "member")] {
        let a = admin
            .post(
                &format!("{base}/api/users"),
                json!({"name": name, "display_name": name.to_uppercase(), "role": role,
                       "password": password}),
            )
            .await;
        assert_eq!(a.status, 201, "{:?}", a.json());
    }
    // a secret meeting whose join window is open (15 minutes before the start) and that
    // has not started, so it does not lock after its start while the scenario runs
    let mut olga = server.client();
    olga.login(&base, "olga", password).await;
    let starts = now().saturating_add(Duration::from_secs(5 * 60));
    let ends = starts.saturating_add(Duration::from_secs(3600));
    let a = olga
        .post(
            &format!("{base}/api/meetings"),
            json!({"title": "Board strategy", "classification": "secret",
                   "starts_at": starts.to_rfc3339(), "ends_at": ends.to_rfc3339(),
                   "invitees": ["ivan"]}),
        )
        .await;
    assert_eq!(a.status, 201, "{:?}", a.json());
    let meeting = a.json()["id"].as_str().expect("id").to_string();
    let mut ivan = server.client();
    ivan.login(&base, "ivan", password).await;
    assert!(devices(&ivan, &base).await.is_empty());

    let mut steps = Steps::start(
        &server,
        "prejoin.mjs",
        &[
            ("CONCLAVE_USER", "ivan"),
            ("CONCLAVE_PASSWORD", password),
            ("CONCLAVE_MEETING", &meeting),
            ("CONCLAVE_MEETING_TITLE", "Board strategy"),
        ],
    );

    // opening the meeting's page registered this browser as a personal device
    steps.reached("registered").await;
    let first = devices(&ivan, &base).await;
    assert_eq!(first.len(), 1, "{first:?}");
    assert_eq!(first[0]["trust"], "personal");
    let device_id = first[0]["id"].as_str().expect("id").to_string();
    // an admin makes it managed
    let a = admin
        .send(
            "PATCH",
            &format!("{base}/api/devices/{device_id}"),
            Some(json!({"trust": "managed"})),
        )
        .await;
    assert_eq!(a.status, 200, "{:?}", a.json());
    let audit_before = audit_length(&admin, &base).await;
    steps.go();

    // "Check again" fetched a fresh credential and previewed: no audit entry
    steps.reached("admitted").await;
    assert_eq!(
        audit_length(&admin, &base).await,
        audit_before,
        "a pre-join check is not a join attempt"
    );
    steps.go();

    // a second browser profile is a second device, personal again
    steps.reached("second").await;
    let both = devices(&ivan, &base).await;
    assert_eq!(both.len(), 2, "{both:?}");
    let second = both
        .iter()
        .find(|d| d["id"] != device_id.as_str())
        .expect("a new device");
    assert_eq!(second["trust"], "personal");
    assert_ne!(second["public_key"], first[0]["public_key"]);
    // its owner revokes it (elsewhere): the page says so and offers to register again
    let second_id = second["id"].as_str().expect("id").to_string();
    let a = ivan
        .send("DELETE", &format!("{base}/api/devices/{second_id}"), None)
        .await;
    assert_eq!(a.status, 204, "{:?}", a.json());
    steps.go();

    steps.reached("registered-again").await;
    let all = devices(&ivan, &base).await;
    assert_eq!(all.len(), 3, "{all:?}");
    let live: Vec<&Value> = all.iter().filter(|d| d["revoked_at"].is_null()).collect();
    assert_eq!(live.len(), 2, "the revoked device stays revoked: {all:?}");
    steps.go();
    steps.finish().await;
}
