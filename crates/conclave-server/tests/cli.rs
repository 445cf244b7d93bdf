//! The administration commands of the real binary against a fresh data directory.

mod common;

use std::io::Write as _;
use std::process::{Command, Stdio};

use common::{cli_in, BINARY};

fn ok(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn init_is_idempotent_and_protects_the_organisation_key() {
    let dir = tempfile::tempdir().expect("temp dir");
    let first = ok(&cli_in(dir.path(), &["init", "--admin", "root"]));
    assert!(first.contains("name:     root"), "{first}");
    assert!(first.contains("password: "), "{first}");
    let second = ok(&cli_in(dir.path(), &["init"]));
    assert!(!second.contains("password"), "no second admin: {second}");

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let key = dir.path().join("organisation.key");
        let mode = std::fs::metadata(&key).expect("key").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let out = cli_in(dir.path(), &["user", "list"]);
        assert_eq!(out.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&out.stderr).contains("readable by other users"));
    }
}

#[test]
fn users_devices_and_the_audit_log_from_the_command_line() {
    let dir = tempfile::tempdir().expect("temp dir");
    ok(&cli_in(dir.path(), &["init"]));

    let added = ok(&cli_in(
        dir.path(),
        &[
            "user",
            "add",
            "dana",
            "--display-name",
            "Dana Scully",
            "--role",
            "organiser",
        ],
    ));
    assert!(
        added.contains("created dana (organiser)") && added.contains("password: "),
        "{added}"
    );

    let mut child = Command::new(BINARY)
        .args([
            "user",
            "add",
            "fox",
            "--display-name",
            "Fox",
            "--password-stdin",
        ])
        .env("CONCLAVE_DATA_DIR", dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"trust no one, ever\n")
        .expect("write");
    let out = child.wait_with_output().expect("wait");
    assert!(
        !ok(&out).contains("password:"),
        "a given password is not echoed"
    );

    let taken = cli_in(
        dir.path(),
        &["user", "add", "fox", "--display-name", "Fox 2"],
    );
    assert_eq!(taken.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&taken.stderr).contains("taken"));

    let bad_name = cli_in(
        dir.path(),
        &["user", "add", "Fox Mulder", "--display-name", "Fox"],
    );
    assert_eq!(bad_name.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&bad_name.stderr).contains("an account name is 1-64 characters")
    );

    ok(&cli_in(dir.path(), &["user", "set-role", "fox", "auditor"]));
    ok(&cli_in(dir.path(), &["user", "disable", "dana"]));
    let list = ok(&cli_in(dir.path(), &["user", "list"]));
    let line = |name: &str| {
        list.lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("{name} listed in {list}"))
            .to_string()
    };
    assert!(line("fox").contains("auditor"));
    assert!(line("dana").contains("disabled"));

    let bad_role = cli_in(dir.path(), &["user", "set-role", "fox", "emperor"]);
    assert_eq!(
        bad_role.status.code(),
        Some(2),
        "clap rejects unknown roles"
    );
    let unknown = cli_in(dir.path(), &["user", "disable", "nobody"]);
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no account is named `nobody`"));
    let bad_device = cli_in(dir.path(), &["device", "revoke", "not-an-id"]);
    assert!(String::from_utf8_lossy(&bad_device.stderr).contains("malformed device id"));

    // Ids are URL-safe base64 and may start with '-'; the CLI must not take them for flags.
    let dash = cli_in(dir.path(), &["device", "revoke", "-AAAAAAAAAAAAAAAAAAAAA"]);
    assert!(
        String::from_utf8_lossy(&dash.stderr).contains("no such device"),
        "{dash:?}"
    );

    let token = ok(&cli_in(
        dir.path(),
        &["device", "enrol-token", "--user", "fox"],
    ));
    assert!(token.contains("enrolment token"), "{token}");
    assert!(ok(&cli_in(dir.path(), &["device", "list"])).starts_with("ID"));

    let verified = ok(&cli_in(dir.path(), &["audit", "verify"]));
    assert!(verified.contains("audit log intact"), "{verified}");
    let export = dir.path().join("audit.jsonl");
    ok(&cli_in(
        dir.path(),
        &[
            "audit",
            "export",
            "--output",
            export.to_str().expect("utf-8 path"),
        ],
    ));
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&export)
        .expect("export")
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON entry per line"))
        .collect();
    let actions: Vec<&str> = lines.iter().filter_map(|e| e["action"].as_str()).collect();
    assert_eq!(
        actions,
        [
            "system.init",
            "user.create",
            "user.create",
            "user.create",
            "user.update",
            "user.update",
            "device.enrolment_token"
        ]
    );
    assert!(lines.iter().all(|e| e["actor"] == "operator:cli"));
    for (i, e) in lines.iter().enumerate() {
        assert_eq!(e["seq"], i + 1);
    }
}

#[test]
fn a_bad_config_file_is_a_precise_startup_error() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("conclave.toml");
    std::fs::write(
        &config,
        "[server]\nlisten = [\"127.0.0.1:0\"]\nmax_body = 1\n",
    )
    .expect("write");
    let out = Command::new(BINARY)
        .arg("--config")
        .arg(&config)
        .arg("serve")
        .env("CONCLAVE_DATA_DIR", dir.path())
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("conclave.toml") && stderr.contains("unknown field `max_body`"),
        "{stderr}"
    );
    assert!(
        !dir.path().join("conclave.db").exists(),
        "nothing is created on a bad config"
    );
}
