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
use conclave_client::net as native;
use conclave_protocol::ClientMessage;
use conclave_server::api::now;
use conclave_types::{MeetingId, Timestamp};
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
/// its output unless it passes. Returns what it printed.
fn scenario(server: &Server, scenario: &str, vars: &[(&str, &str)]) -> String {
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
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Browser tests take turns. Each runs one or two Chromiums (encoding and decoding video in
/// software) next to the server and native participants; several at once on a 2-core machine
/// starve the media. Hold the returned guard for the whole test.
async fn my_turn() -> tokio::sync::MutexGuard<'static, ()> {
    static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    TURN.lock().await
}

/// Every account's password in these tests.
const PASSWORD: &str = "correct horse battery staple";

/// Signs in as the admin and creates these accounts (name, role), each shown as its name in
/// capitals, all with [`PASSWORD`]; returns the admin's client.
async fn accounts(server: &Server, people: &[(&str, &str)]) -> Client {
    let mut admin = server.client();
    admin
        .login(&server.v4, "admin", &server.admin_password)
        .await;
    for (name, role) in people {
        let a = admin
            .post(
                &format!("{}/api/users", server.v4),
                json!({"name": name, "display_name": name.to_uppercase(), "role": role,
                       "password": PASSWORD}),
            )
            .await;
        assert_eq!(a.status, 201, "{:?}", a.json());
    }
    admin
}

/// The organiser olga schedules an hour-long meeting from `starts`; returns its id.
async fn schedule(
    server: &Server,
    title: &str,
    classification: &str,
    starts: Timestamp,
    invitees: &[&str],
) -> String {
    let mut olga = server.client();
    olga.login(&server.v4, "olga", PASSWORD).await;
    let ends = starts.saturating_add(Duration::from_secs(3600));
    let a = olga
        .post(
            &format!("{}/api/meetings", server.v4),
            json!({"title": title, "classification": classification,
                   "starts_at": starts.to_rfc3339(), "ends_at": ends.to_rfc3339(),
                   "invitees": invitees}),
        )
        .await;
    assert_eq!(a.status, 201, "{:?}", a.json());
    a.json()["id"].as_str().expect("id").to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_organiser_signs_in_schedules_a_meeting_and_finds_it_in_my_meetings() {
    let _turn = my_turn().await;
    let server = Server::start();
    let base = server.v4.clone();
    accounts(&server, &[("olga", "organiser"), ("ivan", "member")]).await;

    scenario(
        &server,
        "schedule.mjs",
        &[
            ("CONCLAVE_USER", "olga"),
            ("CONCLAVE_PASSWORD", PASSWORD),
            ("CONCLAVE_INVITEE", "ivan"),
        ],
    );

    // what the browser scheduled is there, as typed, and the invitee sees it too
    let mut ivan: Client = server.client();
    ivan.login(&base, "ivan", PASSWORD).await;
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
        self.answer("go");
    }

    /// Lets the script go on from its step, telling it `value` (`go <value>`).
    fn go_with(&mut self, value: &str) {
        self.answer(&format!("go {value}"));
    }

    fn answer(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("the scenario is running");
        writeln!(stdin, "{line}").expect("write to the scenario");
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

/// The audit log's entries as the admin reads them.
async fn audit(admin: &Client, base: &str) -> Value {
    let a = admin.get(&format!("{base}/api/audit?limit=1000")).await;
    assert_eq!(a.status, 200, "{:?}", a.json());
    a.json()
}

async fn audit_length(admin: &Client, base: &str) -> usize {
    audit(admin, base).await.as_array().expect("a list").len()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_invitee_checks_from_the_browser_whether_they_can_join_a_secret_meeting() {
    let _turn = my_turn().await;
    let server = Server::start();
    let base = server.v4.clone();
    let admin = accounts(&server, &[("olga", "organiser"), ("ivan", "member")]).await;
    let password = PASSWORD;
    // a secret meeting whose join window is open (15 minutes before the start) and that
    // has not started, so it does not lock after its start while the scenario runs
    let meeting = schedule(
        &server,
        "Board strategy",
        "secret",
        now().saturating_add(Duration::from_secs(5 * 60)),
        &["ivan"],
    )
    .await;
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
    // the new device is made managed too, so only its network keeps it out; the host, on a
    // managed device in the office, opens the call
    let newest = live
        .iter()
        .find(|d| d["id"] != device_id.as_str())
        .expect("the new device");
    let a = admin
        .send(
            "PATCH",
            &format!("{base}/api/devices/{}", newest["id"].as_str().expect("id")),
            Some(json!({"trust": "managed"})),
        )
        .await;
    assert_eq!(a.status, 200, "{:?}", a.json());
    let meeting_id: MeetingId = meeting.parse().expect("meeting id");
    let host = native_enter_managed(&server, &admin, "olga", &meeting_id).await;
    native_settled(&host, 1, None).await;
    let audit_before = audit_length(&admin, &base).await;
    steps.go();

    // the attempt from [::1]: the host is alerted, it is audited, nobody joins the group
    steps.reached("refused").await;
    let alerted = host
        .wait_for(Duration::from_secs(60), |s| {
            s.participant
                .alerts()
                .iter()
                .any(|a| a.kind == "join_refused" && a.who.as_deref() == Some("IVAN"))
        })
        .await;
    assert!(
        alerted,
        "no alert: {:?}",
        host.with(|s| s.participant.alerts().to_vec())
    );
    host.with(|s| {
        assert_eq!(s.participant.members().len(), 1, "nobody was added");
        assert_eq!(s.participant.roster().len(), 1);
    });
    let text = audit(&admin, &base).await.to_string();
    assert!(audit_length(&admin, &base).await > audit_before);
    assert!(text.contains("untrusted_network_denied"), "{text}");
    steps.go();

    // from the office the same person is let in: the host sees the same code
    steps.reached("joined").await;
    let code = native_settled(&host, 2, None).await;
    assert!(
        steps.said.iter().any(|l| l == &format!("CODE {code}")),
        "the browser shows the host's code {code}: {:?}",
        steps.said
    );
    steps.go();
    steps.finish().await;
}

/// [`native_enter`] for a secret meeting: `name`'s new device is made managed by `admin`
/// before it asks to join from the office network.
async fn native_enter_managed(
    server: &Server,
    admin: &Client,
    name: &str,
    meeting: &MeetingId,
) -> native::Call {
    let base = &server.v4;
    let pem = std::fs::read(server.data_dir().join("tls/cert.pem")).expect("certificate");
    let mut client = native::Client::new(base, Some(&pem)).expect("client");
    client.sign_in(name, PASSWORD).await.expect("sign in");
    let mut device = client
        .register_device("office desktop")
        .await
        .expect("device");
    let a = admin
        .send(
            "PATCH",
            &format!("{base}/api/devices/{}", device.id),
            Some(json!({"trust": "managed"})),
        )
        .await;
    assert_eq!(a.status, 200, "{:?}", a.json());
    client
        .refresh_credential(&mut device)
        .await
        .expect("a credential that says managed");
    let org = client.organisation().await.expect("organisation");
    let ticket = match client.join(meeting, &device).await.expect("join") {
        native::JoinAnswer::Admitted { ticket } => ticket,
        answer => panic!("{name} expected admission: {answer:?}"),
    };
    client
        .connect(meeting, &device, &org, ticket)
        .await
        .expect("connect")
}

/// A native participant's view of its call, for the failure message.
fn native_state(call: &native::Call) -> String {
    call.with(|s| {
        format!(
            "{:?} members {:?} roster {:?} errors {:?} closed {:?}",
            s.participant,
            s.participant.members(),
            s.participant
                .roster()
                .iter()
                .map(|e| &e.display_name)
                .collect::<Vec<_>>(),
            s.participant.errors(),
            s.closed
        )
    })
}

/// A native participant: `name` signs in at `base` (the address decides the network),
/// registers a device and enters `meeting`'s call, admitted at once or, with `lobby`, in
/// the lobby.
async fn native_enter(
    server: &Server,
    base: &str,
    name: &str,
    meeting: &MeetingId,
    lobby: bool,
) -> native::Call {
    let pem = std::fs::read(server.data_dir().join("tls/cert.pem")).expect("certificate");
    let mut client = native::Client::new(base, Some(&pem)).expect("client");
    client.sign_in(name, PASSWORD).await.expect("sign in");
    let device = client.register_device("laptop").await.expect("device");
    let org = client.organisation().await.expect("organisation");
    let ticket = match client.join(meeting, &device).await.expect("join") {
        native::JoinAnswer::Admitted { ticket } if !lobby => ticket,
        native::JoinAnswer::Lobby { ticket, .. } if lobby => ticket,
        answer => panic!(
            "{name} expected {}: {answer:?}",
            if lobby { "the lobby" } else { "admission" }
        ),
    };
    client
        .connect(meeting, &device, &org, ticket)
        .await
        .expect("connect")
}

/// Waits until the server closes the native participant's connection, and checks it closed
/// with `code`.
async fn native_closed_with(call: &native::Call, code: conclave_protocol::CloseCode) {
    let closed = call
        .wait_for(Duration::from_secs(60), |s| s.closed.is_some())
        .await;
    assert!(closed, "still connected: {}", native_state(call));
    let (got, reason) = call.with(|s| s.closed.clone().expect("closed"));
    assert_eq!(got, code.code(), "{reason}");
}

/// Waits until the native participant is in the group with `n` members, a roster of `n`
/// that matches it, and a code other than `not`; returns the code.
async fn native_settled(call: &native::Call, n: usize, not: Option<&str>) -> String {
    let settled = call
        .wait_for(Duration::from_secs(60), |s| {
            let p = &s.participant;
            p.epoch().is_some()
                && p.members().len() == n
                && p.roster().len() == n
                && p.mismatches().is_empty()
                && p.security_code().as_deref() != not
        })
        .await;
    assert!(
        settled,
        "the native participant did not settle with {n}: {}",
        native_state(call)
    );
    call.with(|s| s.participant.security_code().expect("in the group"))
}

/// OLGA (organiser) and IVAN (member), and an internal meeting `title` under way that OLGA
/// hosts and IVAN, a native participant, has joined first: he created the call's MLS group
/// (call-guest.mjs has a browser create it). Personal devices on the trusted 127.0.0.1 are
/// admitted. Returns the admin, the meeting id and IVAN's call.
async fn native_call_under_way(server: &Server, title: &str) -> (Client, String, native::Call) {
    let admin = accounts(server, &[("olga", "organiser"), ("ivan", "member")]).await;
    let meeting_text = schedule(
        server,
        title,
        "internal",
        now().saturating_sub(Duration::from_secs(60)),
        &["ivan"],
    )
    .await;
    let meeting: MeetingId = meeting_text.parse().expect("meeting id");
    let call = native_enter(server, &server.v4, "ivan", &meeting, false).await;
    native_settled(&call, 1, None).await;
    (admin, meeting_text, call)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_host_joins_a_call_from_the_browser_with_a_native_participant() {
    let _turn = my_turn().await;
    let server = Server::start();
    let base = server.v4.clone();
    let password = PASSWORD;
    let (admin, meeting_text, call) = native_call_under_way(&server, "Incident review").await;

    let mut steps = Steps::start(
        &server,
        "call.mjs",
        &[
            ("CONCLAVE_USER", "olga"),
            ("CONCLAVE_PASSWORD", password),
            ("CONCLAVE_MEETING", &meeting_text),
            ("CONCLAVE_MEETING_TITLE", "Incident review"),
        ],
    );

    // both in one group: the page compares its code with this one
    steps.reached("in-call").await;
    let code = native_settled(&call, 2, None).await;
    let browser_device = call.with(|s| {
        let roster = s.participant.roster();
        let olga = roster
            .iter()
            .find(|e| e.display_name == "OLGA")
            .expect("the host on the roster");
        assert!(olga.host);
        olga.device_id
    });
    let mut olga = server.client();
    olga.login(&base, "olga", PASSWORD).await;
    assert_eq!(
        devices(&olga, &base).await[0]["id"],
        browser_device.to_string(),
        "the browser joined as the device it registered"
    );
    // the browser's audio and video open with the group's keys here
    let browser_leaf = call.with(|s| {
        s.participant
            .members()
            .iter()
            .find(|(_, d)| **d == browser_device)
            .map(|(leaf, _)| *leaf)
            .expect("the browser is a member")
    });
    let hears_browser = call
        .wait_for(Duration::from_secs(60), |s| {
            s.received.audio_opened.get(&browser_leaf) > Some(&20)
                && s.received.video_opened.get(&browser_leaf) > Some(&20)
        })
        .await;
    assert!(hears_browser, "{:?}", call.with(|s| s.received.clone()));
    steps.go_with(&code);

    // the browser's chat arrives intact, from the browser's device (its MLS credential)
    steps.reached("chat-sent").await;
    let arrived = call
        .wait_for(Duration::from_secs(60), |s| {
            s.participant
                .chat()
                .iter()
                .any(|c| c.text == "hello from the browser" && c.from == browser_device)
        })
        .await;
    assert!(
        arrived,
        "the browser's chat did not arrive: {:?}",
        call.with(|s| s.participant.chat().to_vec())
    );
    call.chat("hello from the native participant").await;
    steps.go();

    // the browser's connection went silent and the server closed it; meanwhile IVAN says
    // something, which the resumed seat gets replayed
    steps.reached("dropped").await;
    call.chat("said while you were away").await;
    steps.go();
    steps.reached("resumed").await;
    assert_eq!(
        native_settled(&call, 2, None).await,
        code,
        "a resumed seat keeps its leaf: no new epoch"
    );
    steps.go();

    // the native participant's media turns undecryptable; the page says so
    steps.reached("garbled").await;
    call.desync_media_keys();
    steps.go();

    // the native participant leaves; the page sees the group rekey
    steps.reached("native-leaves").await;
    call.leave().await;
    steps.go();

    steps.reached("left").await;
    steps.go();
    steps.finish().await;

    // the server recorded the browser's join and leave
    let text = audit(&admin, &base).await.to_string();
    assert!(
        text.contains("call.enter") && text.contains("call.leave"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_host_in_the_browser_locks_the_call_and_admits_a_guest_from_the_lobby() {
    let _turn = my_turn().await;
    let server = Server::start();
    let base = server.v4.clone();
    let admin = accounts(
        &server,
        &[
            ("olga", "organiser"),
            ("ivan", "member"),
            ("max", "member"),
            ("dana", "member"),
        ],
    )
    .await;
    let password = PASSWORD;
    // confidential: invitees on an untrusted network wait in the lobby
    let meeting_text = schedule(
        &server,
        "Merger talks",
        "confidential",
        now().saturating_sub(Duration::from_secs(60)),
        &["ivan", "max", "dana"],
    )
    .await;
    let meeting: MeetingId = meeting_text.parse().expect("meeting id");

    // IVAN creates the group from the office
    let ivan_call = native_enter(&server, &base, "ivan", &meeting, false).await;
    native_settled(&ivan_call, 1, None).await;

    let mut steps = Steps::start(
        &server,
        "call-lobby.mjs",
        &[
            ("CONCLAVE_USER", "olga"),
            ("CONCLAVE_PASSWORD", password),
            ("CONCLAVE_MEETING", &meeting_text),
            ("CONCLAVE_MEETING_TITLE", "Merger talks"),
        ],
    );

    // the browser host's lock reaches everyone, and the meeting
    steps.reached("locked").await;
    assert!(
        ivan_call
            .wait_for(Duration::from_secs(60), |s| s.participant.locked())
            .await,
        "the call did not lock: {}",
        native_state(&ivan_call)
    );
    steps.go();
    steps.reached("unlocked").await;
    assert!(
        ivan_call
            .wait_for(Duration::from_secs(60), |s| !s.participant.locked())
            .await,
        "the call did not unlock: {}",
        native_state(&ivan_call)
    );

    // MAX asks from [::1]: the lobby
    let max_call = native_enter(&server, &server.v6, "max", &meeting, true).await;
    assert!(
        max_call
            .wait_for(Duration::from_secs(60), |s| s
                .participant
                .waiting()
                .is_some())
            .await,
        "MAX is not waiting: {}",
        native_state(&max_call)
    );
    steps.go();

    // admitted by the host in the browser: one group of three
    steps.reached("admitted").await;
    let code = native_settled(&max_call, 3, None).await;
    assert_eq!(native_settled(&ivan_call, 3, None).await, code);
    steps.go_with(&code);

    // DANA asks from [::1] too; the host denies her
    steps.reached("dana-waits").await;
    let dana_call = native_enter(&server, &server.v6, "dana", &meeting, true).await;
    steps.go();
    steps.reached("denied").await;
    native_closed_with(&dana_call, conclave_protocol::CloseCode::Denied).await;
    dana_call.with(|s| assert!(s.participant.epoch().is_none(), "never in the group"));
    steps.go();

    // the host removes MAX: MAX is told, and the group goes on without MAX's keys
    steps.reached("removed").await;
    native_closed_with(&max_call, conclave_protocol::CloseCode::Removed).await;
    let after = native_settled(&ivan_call, 2, Some(&code)).await;
    steps.go_with(&after);
    steps.finish().await;
    let text = audit(&admin, &base).await.to_string();
    for action in ["call.admit", "call.deny", "call.remove", "call.lock"] {
        assert!(text.contains(action), "{action} in {text}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_browser_starts_the_call_and_a_second_browser_waits_in_the_lobby_for_the_host() {
    let _turn = my_turn().await;
    let server = Server::start_tapped();
    let base = server.v4.clone();
    accounts(&server, &[("olga", "organiser"), ("ivan", "member")]).await;
    let password = PASSWORD;
    let meeting_text = schedule(
        &server,
        "Merger talks",
        "confidential",
        now().saturating_sub(Duration::from_secs(60)),
        &["ivan"],
    )
    .await;
    let meeting: MeetingId = meeting_text.parse().expect("meeting id");

    let mut steps = Steps::start(
        &server,
        "call-guest.mjs",
        &[
            ("CONCLAVE_USER", "ivan"),
            ("CONCLAVE_PASSWORD", password),
            ("CONCLAVE_MEETING", &meeting_text),
            ("CONCLAVE_MEETING_TITLE", "Merger talks"),
        ],
    );

    // alone, the browser created the group; the host joins it through the browser's commit
    steps.reached("started").await;
    let call = native_enter(&server, &base, "olga", &meeting, false).await;
    let code = native_settled(&call, 2, None).await;
    steps.go_with(&code);

    // the browser at [::1] waits in the lobby; the host admits it
    steps.reached("waiting").await;
    assert!(
        call.wait_for(Duration::from_secs(60), |s| s.participant.lobby().len()
            == 1)
            .await,
        "nobody in the host's lobby: {}",
        native_state(&call)
    );
    let seat = call.with(|s| {
        let waiting = &s.participant.lobby()[0];
        assert_eq!(waiting.display_name, "IVAN");
        waiting.participant
    });
    call.send(ClientMessage::Admit { participant: seat }).await;
    steps.go();

    steps.reached("in-call").await;
    let code = native_settled(&call, 3, None).await;
    // the host opens both browsers' audio and video with the group's keys
    let browsers: Vec<u32> = call.with(|s| {
        let own = s.participant.key_material().map(|k| k.own_leaf);
        s.participant
            .members()
            .keys()
            .copied()
            .filter(|leaf| Some(*leaf) != own)
            .collect()
    });
    assert_eq!(browsers.len(), 2);
    let hears_both = call
        .wait_for(Duration::from_secs(60), |s| {
            browsers.iter().all(|leaf| {
                s.received.audio_opened.get(leaf) > Some(&20)
                    && s.received.video_opened.get(leaf) > Some(&20)
            })
        })
        .await;
    assert!(hears_both, "{:?}", call.with(|s| s.received.clone()));
    browser_frames_are_ciphertext_at_the_sfu(&server, &call, &browsers);
    steps.go_with(&code);

    // the host removes the guest who came from [::1]
    steps.reached("remove-guest").await;
    let guest = call.with(|s| {
        s.participant
            .roster()
            .iter()
            .find(|e| !e.network.trusted)
            .map(|e| e.participant)
            .expect("the guest on the roster")
    });
    call.send(ClientMessage::Remove { participant: guest })
        .await;
    native_settled(&call, 2, Some(&code)).await;
    steps.go();
    steps.finish().await;
}

/// What the SFU forwarded from the browsers (its tap: what a compromised server records)
/// opens only with the group's keys, and beyond the clear codec header it holds none of the
/// plaintext.
fn browser_frames_are_ciphertext_at_the_sfu(
    server: &Server,
    call: &native::Call,
    browsers: &[u32],
) {
    use base64::Engine as _;
    use conclave_frame::{Codec, FrameConfig, FrameCrypto, FrameError};
    let keys = call.with(|s| s.participant.key_material().cloned().expect("keys"));
    let mut member = FrameCrypto::new(FrameConfig::default());
    member
        .set_epoch(
            keys.epoch,
            keys.secret.expose(),
            keys.own_leaf,
            &keys.members,
            0,
        )
        .expect("the epoch's keys");
    let mut outsider = FrameCrypto::new(FrameConfig::default());
    outsider
        .set_epoch(keys.epoch, &[0x5a; 16], keys.own_leaf, &keys.members, 0)
        .expect("a wrong secret");
    let tap = std::fs::read_to_string(server.tap.as_ref().expect("tapped")).expect("tap file");
    let (mut opened, mut compared, mut same) = (0, 0usize, 0usize);
    for line in tap.lines() {
        let v: Value = serde_json::from_str(line).expect("a JSON line");
        let frame = base64::engine::general_purpose::STANDARD
            .decode(v["payload"].as_str().expect("payload"))
            .expect("base64");
        let codec = if v["kind"] == "audio" {
            Codec::Opus
        } else {
            Codec::Vp8
        };
        let Some(leaf) = member.claimed_sender(codec, &frame) else {
            continue;
        };
        if !browsers.contains(&leaf) {
            continue;
        }
        let Ok(plain) = member.open(codec, &frame, 0) else {
            // sealed under an earlier epoch
            continue;
        };
        opened += 1;
        assert_eq!(
            outsider.open(codec, &frame, 0).map(|_| ()),
            Err(FrameError::Authentication),
            "a wrong key opens nothing"
        );
        // past the clear prefix (10 bytes at most), no 8 bytes of the plaintext appear
        let prefix = if codec == Codec::Opus { 0 } else { 10 };
        let sealed: std::collections::HashSet<&[u8]> =
            frame.get(prefix..).unwrap_or_default().windows(8).collect();
        for window in plain.frame.get(prefix..).unwrap_or_default().windows(8) {
            compared += 1;
            same += usize::from(sealed.contains(window));
        }
    }
    assert!(opened > 100, "browser frames in the tap: {opened}");
    assert!(compared > 10_000, "plaintext compared: {compared} windows");
    assert_eq!(
        same, 0,
        "plaintext in the SFU's view: {same} of {compared} windows"
    );
}

/// Not a test: the browser figures of docs/BENCHMARKS.md, printed. One browser joins a native
/// participant's call several times (`RUNS`, default 7): time from Join to the first remote
/// video frame shown, and the worker's seal/open cost per frame.
/// `cargo test --release -p conclave-server --test browser -- --ignored --nocapture join_figures`
#[tokio::test(flavor = "multi_thread")]
#[ignore = "a benchmark: run on its own, see docs/BENCHMARKS.md"]
async fn join_figures() {
    let _turn = my_turn().await;
    let server = Server::start();
    // IVAN's call stays open while the browser comes and goes
    let (_admin, meeting_text, _call) = native_call_under_way(&server, "Figures").await;
    let runs = std::env::var("RUNS").unwrap_or_else(|_| "7".into());
    let server_ref = &server;
    let printed = tokio::task::block_in_place(|| {
        scenario(
            server_ref,
            "join-figures.mjs",
            &[
                ("CONCLAVE_USER", "olga"),
                ("CONCLAVE_PASSWORD", PASSWORD),
                ("CONCLAVE_MEETING", &meeting_text),
                ("RUNS", &runs),
            ],
        )
    });
    println!("{printed}");
}
