//! Runs the real `conclave` binary on loopback with a real SQLite file in a temp dir,
//! and talks to it over HTTPS that verifies the server's generated certificate.

#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use conclave_identity::DeviceKey;
use conclave_types::MeetingId;
use serde_json::{json, Value};

pub const BINARY: &str = env!("CARGO_BIN_EXE_conclave");

/// The built web app (`npm run --prefix web build`, which scripts/test runs first).
pub fn web_dist() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../web/dist")
}

/// A running server and its data directory.
pub struct Server {
    pub dir: tempfile::TempDir,
    pub child: Option<Child>,
    pub v4: String,
    pub v6: String,
    /// The SFU's UDP address, `host:port`.
    pub media: String,
    /// Where the SFU writes every frame it forwards, if it does ([`Server::start_tapped`]).
    pub tap: Option<PathBuf>,
    pub admin_password: String,
    stdout: mpsc::Receiver<String>,
}

impl Server {
    /// Writes a config trusting only 127.0.0.1/32 and starts `conclave serve` on
    /// 127.0.0.1 and [::1] with ports chosen by the OS.
    pub fn start() -> Self {
        Self::start_with_tap(false)
    }

    /// [`Server::start`] with the SFU's media tap on: every forwarded frame goes to
    /// [`Server::tap`].
    pub fn start_tapped() -> Self {
        Self::start_with_tap(true)
    }

    fn start_with_tap(tap: bool) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let tap = tap.then(|| dir.path().join("tap.jsonl"));
        Self::write_config(
            dir.path(),
            "127.0.0.1:0",
            "[::1]:0",
            "127.0.0.1:0",
            tap.as_deref(),
        );
        let mut server = Self {
            dir,
            child: None,
            v4: String::new(),
            v6: String::new(),
            media: String::new(),
            tap,
            admin_password: String::new(),
            stdout: mpsc::channel().1,
        };
        server.launch();
        assert!(
            !server.admin_password.is_empty(),
            "first start prints the admin password"
        );
        server
    }

    /// Stops the server (SIGTERM) and starts it again on the same data directory and the
    /// same ports, as an operator restarting it would.
    pub fn restart(&mut self) {
        self.stop();
        let port = |url: &str| url.rsplit(':').next().expect("a port").to_string();
        Self::write_config(
            self.dir.path(),
            &format!("127.0.0.1:{}", port(&self.v4)),
            &format!("[::1]:{}", port(&self.v6)),
            &self.media.clone(),
            self.tap.clone().as_deref(),
        );
        self.launch();
    }

    fn write_config(dir: &Path, v4: &str, v6: &str, media: &str, tap: Option<&Path>) {
        let tap = tap.map_or(String::new(), |t| format!("tap = \"{}\"\n", t.display()));
        let config = format!(
            "[server]\nlisten = [\"{v4}\", \"{v6}\"]\n\
             [media]\nlisten = \"{media}\"\n{tap}\
             [storage]\ndata_dir = \"{}\"\n\
             [audit]\nsign_interval_seconds = 1\n\
             [networks]\noffice = [\"127.0.0.1/32\"]\n\
             [web]\ndir = \"{}\"\n",
            dir.join("data").display(),
            web_dist().display()
        );
        std::fs::write(dir.join("conclave.toml"), config).expect("write config");
    }

    /// Starts `conclave serve` with the written config and reads its addresses.
    fn launch(&mut self) {
        let mut child = Command::new(BINARY)
            .arg("--config")
            .arg(self.dir.path().join("conclave.toml"))
            .arg("serve")
            .env("CONCLAVE_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start conclave");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        self.child = Some(child);
        self.stdout = rx;
        loop {
            let line = self.line();
            if let Some(p) = line.strip_prefix("  password: ") {
                self.admin_password = p.to_string();
            } else if let Some(addr) = line.strip_prefix("media on udp://") {
                self.media = addr.to_string();
            } else if let Some(url) = line.strip_prefix("listening on ") {
                if url.contains('[') {
                    self.v6 = url.to_string();
                } else {
                    self.v4 = url.to_string();
                }
            } else if line.starts_with("Conclave is ready") {
                break;
            }
        }
    }

    /// The next line the server printed.
    pub fn line(&self) -> String {
        self.stdout
            .recv_timeout(Duration::from_secs(60))
            .expect("the server printed a line in time")
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// An HTTPS client trusting only the server's certificate, with a cookie jar.
    pub fn client(&self) -> Client {
        let pem = std::fs::read(self.data_dir().join("tls/cert.pem")).expect("dev certificate");
        let http = reqwest::Client::builder()
            .tls_built_in_root_certs(false)
            .add_root_certificate(reqwest::Certificate::from_pem(&pem).expect("pem"))
            .cookie_store(true)
            .build()
            .expect("client");
        Client {
            http,
            csrf: String::new(),
        }
    }

    /// Runs `conclave` against this server's data directory.
    pub fn cli(&self, args: &[&str]) -> Output {
        cli_in(&self.data_dir(), args)
    }

    /// SIGTERM, then waits for an orderly exit.
    pub fn stop(&mut self) {
        let mut child = self.child.take().expect("running");
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status()
            .expect("kill");
        assert!(status.success());
        let status = child.wait().expect("wait");
        assert!(status.success(), "orderly shutdown exits 0, got {status}");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Runs `conclave ARGS` with `data_dir` as the data directory.
pub fn cli_in(data_dir: &Path, args: &[&str]) -> Output {
    Command::new(BINARY)
        .args(args)
        .env("CONCLAVE_DATA_DIR", data_dir)
        .env("CONCLAVE_LOG", "warn")
        .output()
        .expect("run conclave")
}

/// One signed-in (or not) browser-like client.
pub struct Client {
    pub http: reqwest::Client,
    pub csrf: String,
}

/// Status, headers (without `date`) and body: what must match byte for byte.
#[derive(Debug, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("JSON body")
    }
}

impl Client {
    pub async fn send(&self, method: &str, url: &str, body: Option<Value>) -> Answer {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut req = self
            .http
            .request(method, url)
            .header("x-csrf-token", &self.csrf);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status().as_u16();
        let mut headers: Vec<(String, Vec<u8>)> = resp
            .headers()
            .iter()
            .filter(|(k, _)| k.as_str() != "date")
            .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
            .collect();
        headers.sort();
        let body = resp.bytes().await.expect("body").to_vec();
        Answer {
            status,
            headers,
            body,
        }
    }

    pub async fn get(&self, url: &str) -> Answer {
        self.send("GET", url, None).await
    }

    pub async fn post(&self, url: &str, body: Value) -> Answer {
        self.send("POST", url, Some(body)).await
    }

    pub async fn login(&mut self, base: &str, name: &str, password: &str) {
        let a = self
            .post(
                &format!("{base}/api/session"),
                json!({"name": name, "password": password}),
            )
            .await;
        assert_eq!(a.status, 200, "sign-in of {name}: {:?}", a.json());
        self.csrf = a.json()["csrf_token"].as_str().expect("csrf").to_string();
    }

    /// Registers a fresh device key; returns the key, device id and credential.
    pub async fn register_device(&self, base: &str, name: &str) -> (DeviceKey, String, String) {
        let key = DeviceKey::generate(&mut rand::rngs::OsRng);
        let a = self
            .post(
                &format!("{base}/api/devices"),
                json!({"name": name, "public_key": key.public().to_string()}),
            )
            .await;
        assert_eq!(a.status, 201, "{:?}", a.json());
        let v = a.json();
        (
            key,
            v["device"]["id"].as_str().expect("id").to_string(),
            v["credential"].as_str().expect("credential").to_string(),
        )
    }

    /// Asks for a challenge and posts the signed join request.
    pub async fn join(
        &self,
        base: &str,
        meeting: &str,
        key: &DeviceKey,
        credential: &str,
    ) -> Answer {
        let c = self
            .post(
                &format!("{base}/api/meetings/{meeting}/challenge"),
                json!({}),
            )
            .await;
        assert_eq!(c.status, 200, "challenge: {:?}", c.json());
        let challenge = c.json()["challenge"]
            .as_str()
            .expect("challenge")
            .to_string();
        let bytes: [u8; 32] = URL_SAFE_NO_PAD
            .decode(&challenge)
            .expect("base64")
            .try_into()
            .expect("32 bytes");
        let id: MeetingId = meeting.parse().expect("meeting id");
        let signature = key.sign_join_challenge(&id, &bytes);
        self.post(
            &format!("{base}/api/meetings/{meeting}/join"),
            json!({
                "credential": credential,
                "challenge": challenge,
                "signature": URL_SAFE_NO_PAD.encode(signature),
            }),
        )
        .await
    }
}

/// A meeting id nobody created.
pub fn random_meeting_id() -> String {
    MeetingId::from_bytes(rand::random()).to_string()
}
