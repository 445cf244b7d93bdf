//! Interop of the WebAssembly build with the native crates: the Node.js build in
//! `target/wasm/node` (made by `scripts/build-wasm`, which `scripts/test` runs
//! first) is driven by `tests/node/interop.mjs` over stdin/stdout JSON lines.
//! A missing build fails these tests: it is a broken checkout, not a reason to skip.

#![allow(missing_docs, clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use conclave_e2ee::{
    DeliveryService, Event, ExternalSender, Input, MemberIdentity, Output, Session, Verdict,
};
use conclave_frame::{Codec, FrameConfig, FrameCrypto};
use conclave_identity::{CredentialClaims, DeviceKey, OrganisationKey};
use conclave_types::{DeviceId, DeviceTrust, MeetingId, Timestamp, UserId};
use serde_json::{json, Value};

const NOW_MS: i64 = 1_700_000_000_000;
const NOW: Timestamp = Timestamp::from_unix_millis(NOW_MS);

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn from_hex(text: &str) -> Vec<u8> {
    assert!(text.len() % 2 == 0, "odd hex length");
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("node replies with valid hex"))
        .collect()
}

/// The node child running interop.mjs.
struct Node {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Node {
    fn start() -> Self {
        let wasm = repo().join("target/wasm/node");
        assert!(
            wasm.join("conclave_wasm.js").is_file(),
            "{} is missing: run scripts/build-wasm (scripts/test does) before cargo test",
            wasm.display()
        );
        let mut child = Command::new("node")
            .arg(repo().join("crates/conclave-wasm/tests/node/interop.mjs"))
            .env("CONCLAVE_WASM_NODE", &wasm)
            .env("CONCLAVE_REPO", repo())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("node (Node.js 18+) is installed; scripts/setup checks");
        let stdin = child.stdin.take().expect("stdin is piped");
        let stdout = BufReader::new(child.stdout.take().expect("stdout is piped"));
        Self {
            child,
            stdin,
            stdout,
        }
    }

    /// Sends one request and returns the reply, which may be an error.
    fn try_call(&mut self, request: Value) -> Value {
        writeln!(self.stdin, "{request}").expect("node reads its stdin");
        self.stdin.flush().expect("node reads its stdin");
        let mut line = String::new();
        self.stdout
            .read_line(&mut line)
            .expect("node writes its stdout");
        assert!(!line.is_empty(), "node exited while handling {request}");
        serde_json::from_str(&line).expect("node replies with one JSON line")
    }

    /// Sends one request and returns the successful reply.
    fn call(&mut self, request: Value) -> Value {
        let reply = self.try_call(request.clone());
        assert_eq!(reply["ok"], true, "{request} failed: {reply}");
        reply
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn codec_name(codec: Codec) -> &'static str {
    match codec {
        Codec::Vp8 => "vp8",
        Codec::Vp9 => "vp9",
        Codec::H264 => "h264",
        Codec::Av1 => "av1",
        Codec::Opus => "opus",
        _ => "unknown",
    }
}

fn sample_frames() -> Vec<(Codec, Vec<u8>)> {
    let filled = |first: &[u8], len: usize| {
        let mut f = first.to_vec();
        f.extend((f.len()..len).map(|i| (i as u8).wrapping_mul(31)));
        f
    };
    vec![
        (Codec::Opus, filled(&[0x78], 100)),
        (Codec::Vp8, filled(&[0x31, 0x02, 0x00], 1_200)),
        (
            Codec::Vp8,
            filled(
                &[0x50, 0x2a, 0x01, 0x9d, 0x01, 0x2a, 0x80, 0x02, 0xe0, 0x01],
                50_000,
            ),
        ),
        (
            Codec::H264,
            filled(
                &[
                    0, 0, 0, 1, 0x67, 0x42, 0, 0, 0, 1, 0x68, 0xce, 0, 0, 1, 0x65, 0xb8,
                ],
                3_000,
            ),
        ),
        (Codec::Vp9, filled(&[0x82], 500)),
        (Codec::Av1, filled(&[0x12, 0x00], 500)),
    ]
}

#[test]
fn wasm_reproduces_the_known_answers() {
    let mut node = Node::start();
    let reply = node.call(json!({"cmd": "kat"}));
    // 5 security codes and 5 MLS-SFrame vectors at the time of writing
    assert!(reply["checked"].as_u64().unwrap() >= 10, "{reply}");
}

#[test]
fn frames_cross_between_native_and_wasm() {
    let secret = [0x5a; 16];
    let members = [0, 1];
    let mut native = FrameCrypto::new(FrameConfig::default());
    native.set_epoch(3, &secret, 0, &members, 0).unwrap();
    let mut node = Node::start();
    node.call(json!({"cmd": "frame_new", "grace_ms": 2000}));
    node.call(
        json!({"cmd": "frame_set_epoch", "epoch": 3, "secret": to_hex(&secret),
        "own_leaf": 1, "members": members, "now": 0}),
    );

    for (codec, frame) in sample_frames() {
        let name = codec_name(codec);
        // native → wasm
        let sealed = native.seal(codec, &frame).unwrap();
        let opened =
            node.call(json!({"cmd": "open", "codec": name, "sealed": to_hex(&sealed), "now": 1}));
        assert_eq!(from_hex(opened["frame"].as_str().unwrap()), frame, "{name}");
        assert_eq!(
            (opened["sender_leaf"].as_u64(), opened["epoch"].as_u64()),
            (Some(0), Some(3))
        );
        // a replay, and a tampered frame, are refused in wasm too
        let replay = node
            .try_call(json!({"cmd": "open", "codec": name, "sealed": to_hex(&sealed), "now": 1}));
        assert_eq!(replay["ok"], false, "{name} replay opened");
        let mut tampered = native.seal(codec, &frame).unwrap();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        let refused = node
            .try_call(json!({"cmd": "open", "codec": name, "sealed": to_hex(&tampered), "now": 1}));
        assert_eq!(refused["ok"], false, "{name} tampered frame opened");

        // wasm → native
        let sealed = node.call(json!({"cmd": "seal", "codec": name, "frame": to_hex(&frame)}));
        let sealed = from_hex(sealed["sealed"].as_str().unwrap());
        let opened = native.open(codec, &sealed, 1).unwrap();
        assert_eq!((opened.sender_leaf, opened.epoch), (1, 3));
        assert_eq!(opened.frame, frame, "{name}");
    }
}

fn organisation() -> OrganisationKey {
    OrganisationKey::from_seed(&[7; 32])
}

fn identity(n: u8) -> (conclave_identity::DeviceCredential, [u8; 32]) {
    let seed = [n; 32];
    let credential = organisation().issue_credential(CredentialClaims {
        organisation: "Example Ltd".into(),
        user_id: UserId::from_bytes([n; 16]),
        user_name: format!("user{n}"),
        display_name: format!("User {n}"),
        device_id: DeviceId::from_bytes([n; 16]),
        device_key: DeviceKey::from_seed(&seed).public(),
        trust: DeviceTrust::Managed,
        issued_at: Timestamp::from_unix_millis(0),
        expires_at: Timestamp::from_unix_millis(4_000_000_000_000),
    });
    (credential, seed)
}

fn drain(session: &mut Session) -> Vec<Output> {
    std::iter::from_fn(|| session.poll_output()).collect()
}

/// A native member (creator) and a wasm member join one MLS group through a
/// native server (external sender and delivery service), agree on the
/// security code and the SFrame secret, exchange application messages both
/// ways and then media frames keyed from the group.
#[test]
fn native_and_wasm_members_share_one_group() {
    let server = ExternalSender::from_seed(&[9; 32], b"conclave.example".to_vec());
    let (alice_credential, alice_seed) = identity(1);
    let mut alice = Session::new(
        MemberIdentity::new(alice_credential, alice_seed),
        organisation().public(),
        server.info(),
        NOW,
    )
    .unwrap();
    alice.handle(Input::CreateGroup, NOW).unwrap();
    drain(&mut alice);
    let mut ds = DeliveryService::new(alice.group_id().unwrap(), 0);

    let (bob_credential, bob_seed) = identity(2);
    let info = server.info();
    let mut node = Node::start();
    node.call(json!({
        "cmd": "member_new",
        "credential": to_hex(&bob_credential.to_bytes()),
        "seed": to_hex(&bob_seed),
        "organisation": organisation().public().to_string(),
        "server_key": to_hex(&info.signature_key),
        "server_identity": to_hex(&info.identity),
        "now": NOW_MS,
    }));
    let key_package = node.call(json!({"cmd": "key_package"}));
    let key_package = from_hex(key_package["key_package"].as_str().unwrap());

    // the server admits bob and proposes his Add; alice commits it
    alice
        .handle(
            Input::Admitted {
                device: DeviceId::from_bytes([2; 16]),
            },
            NOW,
        )
        .unwrap();
    let proposal = server.propose_add(ds.group(), &key_package).unwrap();
    assert_eq!(ds.submit(&proposal).unwrap(), Verdict::Forward);
    alice.handle(Input::Delivered(proposal), NOW).unwrap();
    alice.handle(Input::CommitPending, NOW).unwrap();
    let (mut commit, mut welcome) = (None, None);
    for output in drain(&mut alice) {
        match output {
            Output::Send(bytes) => commit = Some(bytes),
            Output::Welcome(bytes) => welcome = Some(bytes),
            _ => {}
        }
    }
    let commit = commit.expect("alice commits the Add");
    assert_eq!(ds.submit(&commit).unwrap(), Verdict::Forward);
    alice.handle(Input::Delivered(commit), NOW).unwrap();
    drain(&mut alice);
    let welcome = welcome.expect("the Add's commit comes with a Welcome");
    node.call(json!({"cmd": "delivered", "bytes": to_hex(&welcome), "now": NOW_MS}));
    let outputs = node.call(json!({"cmd": "poll"}));
    let events: Vec<&Value> = outputs["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["kind"] == "event")
        .map(|o| &o["event"])
        .collect();
    assert!(
        events
            .iter()
            .any(|e| e["type"] == "joined" && e["epoch"] == 1),
        "{outputs}"
    );
    assert!(
        events
            .iter()
            .any(|e| e["type"] == "member_added" && e["user_name"] == "user1"),
        "{outputs}"
    );

    // one group: same epoch, security code and media secret
    let state = node.call(json!({"cmd": "state"}));
    assert_eq!(state["epoch"], 1);
    assert_eq!(
        state["security_code"].as_str(),
        alice.security_code().as_deref()
    );
    let secret = alice.sframe_epoch_secret().unwrap();
    assert_eq!(
        from_hex(state["sframe_epoch_secret"].as_str().unwrap()),
        secret.expose()
    );

    // application messages both ways
    node.call(
        json!({"cmd": "send_application", "data": to_hex(b"hello from wasm"), "now": NOW_MS}),
    );
    let outputs = node.call(json!({"cmd": "poll"}));
    let message = outputs["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["kind"] == "send")
        .expect("the wasm member sends its application message");
    let message = from_hex(message["bytes"].as_str().unwrap());
    assert_eq!(ds.submit(&message).unwrap(), Verdict::Forward);
    alice.handle(Input::Delivered(message), NOW).unwrap();
    let bob_leaf = u32::try_from(state["own_leaf"].as_u64().unwrap()).unwrap();
    assert!(drain(&mut alice).iter().any(|o| matches!(
        o,
        Output::Event(Event::Application { sender_leaf, data })
            if *sender_leaf == bob_leaf && data == b"hello from wasm"
    )));

    alice
        .handle(Input::SendApplication(b"hello from native".to_vec()), NOW)
        .unwrap();
    let message = drain(&mut alice)
        .into_iter()
        .find_map(|o| match o {
            Output::Send(bytes) => Some(bytes),
            _ => None,
        })
        .expect("alice sends her application message");
    assert_eq!(ds.submit(&message).unwrap(), Verdict::Forward);
    node.call(json!({"cmd": "delivered", "bytes": to_hex(&message), "now": NOW_MS}));
    let outputs = node.call(json!({"cmd": "poll"}));
    assert!(
        outputs["outputs"].as_array().unwrap().iter().any(|o| {
            o["event"]["type"] == "application"
                && o["event"]["data"] == to_hex(b"hello from native")
                && o["event"]["sender_leaf"] == alice.own_leaf().unwrap()
        }),
        "{outputs}"
    );

    // media keyed from the group: native alice seals, wasm bob opens
    let alice_leaf = alice.own_leaf().unwrap();
    let leaves: Vec<u32> = alice.members().iter().map(|m| m.leaf).collect();
    let mut native = FrameCrypto::new(FrameConfig::default());
    native
        .set_epoch(1, secret.expose(), alice_leaf, &leaves, 0)
        .unwrap();
    node.call(json!({"cmd": "frame_new", "grace_ms": 2000}));
    node.call(
        json!({"cmd": "frame_set_epoch", "epoch": 1, "secret": state["sframe_epoch_secret"],
        "own_leaf": bob_leaf, "members": state["member_leaves"], "now": 0}),
    );
    let frame = [0x31, 0x02, 0x00, 1, 2, 3, 4, 5];
    let sealed = native.seal(Codec::Vp8, &frame).unwrap();
    let opened =
        node.call(json!({"cmd": "open", "codec": "vp8", "sealed": to_hex(&sealed), "now": 1}));
    assert_eq!(from_hex(opened["frame"].as_str().unwrap()), frame);
    assert_eq!(opened["sender_leaf"], alice_leaf);
}

/// Seal+open timing of the WebAssembly build under Node.js. Prints ns per
/// operation; run with `cargo test -p conclave-wasm --release -- --nocapture
/// wasm_frame_timing` to see them (the wasm is always the release build).
#[test]
fn wasm_frame_timing() {
    let iterations: u64 = std::env::var("CONCLAVE_WASM_BENCH_ITERATIONS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1_000);
    let mut node = Node::start();
    let reply = node.call(json!({"cmd": "bench", "iterations": iterations}));
    for result in reply["results"].as_array().unwrap() {
        println!(
            "wasm seal+open {:<16} {:>10} ns/op ({} iterations)",
            result["name"].as_str().unwrap(),
            result["ns_per_op"],
            result["iterations"]
        );
        assert!(result["ns_per_op"].as_f64().unwrap() > 0.0);
    }
}

/// The browser's device key: the public key it registers and its join proofs are the
/// native ones, and the server's check accepts them.
#[test]
fn wasm_device_keys_prove_possession_as_native_ones_do() {
    let mut node = Node::start();
    let seed = [7u8; 32];
    let native = DeviceKey::from_seed(&seed);
    let public = node.call(json!({"cmd": "device_public_key", "seed": to_hex(&seed)}));
    assert_eq!(public["public_key"], native.public().to_string());

    let meeting = MeetingId::from_bytes([3; 16]);
    let challenge = [9u8; 32];
    let signed = node.call(json!({
        "cmd": "sign_join_challenge",
        "seed": to_hex(&seed),
        "meeting": meeting.to_string(),
        "challenge": to_hex(&challenge),
    }));
    let signature = from_hex(signed["signature"].as_str().expect("hex"));
    assert_eq!(
        signature,
        native.sign_join_challenge(&meeting, &challenge).to_vec()
    );
    native
        .public()
        .verify_join_challenge(&meeting, &challenge, &signature)
        .expect("the server accepts the browser's proof");

    // bad input is an error, not a panic
    for bad in [
        json!({"cmd": "device_public_key", "seed": "0102"}),
        json!({"cmd": "sign_join_challenge", "seed": to_hex(&seed), "meeting": "nope",
               "challenge": to_hex(&challenge)}),
        json!({"cmd": "sign_join_challenge", "seed": to_hex(&seed),
               "meeting": meeting.to_string(), "challenge": "00"}),
    ] {
        let reply = node.try_call(bad.clone());
        assert_eq!(reply["ok"], false, "{bad}: {reply}");
    }
}

/// A browser that is first in a call creates the group and uploads its GroupInfo: the
/// server's delivery service starts from it (the server as the only external sender,
/// the creator as the only member).
#[test]
fn a_wasm_member_creates_a_group_the_delivery_service_accepts() {
    let server = ExternalSender::from_seed(&[9; 32], b"conclave.example".to_vec());
    let (credential, seed) = identity(3);
    let info = server.info();
    let mut node = Node::start();
    let before = node.try_call(json!({"cmd": "group_info"}));
    assert_eq!(before["ok"], false, "no group yet: {before}");
    node.call(json!({
        "cmd": "member_new",
        "credential": to_hex(&credential.to_bytes()),
        "seed": to_hex(&seed),
        "organisation": organisation().public().to_string(),
        "server_key": to_hex(&info.signature_key),
        "server_identity": to_hex(&info.identity),
        "now": NOW_MS,
    }));
    let none = node.try_call(json!({"cmd": "group_info"}));
    assert_eq!(none["ok"], false, "no group yet: {none}");
    node.call(json!({"cmd": "create_group", "now": NOW_MS}));
    let group_info = node.call(json!({"cmd": "group_info"}));
    let group_info = from_hex(group_info["group_info"].as_str().expect("hex"));
    DeliveryService::from_group_info(&group_info, &info).expect("the DS accepts it");
    let state = node.call(json!({"cmd": "state"}));
    assert_eq!(state["epoch"], 0);
    assert_eq!(state["member_leaves"], json!([0]));
}
