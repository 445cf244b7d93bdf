//! The network driver of the native participant: the HTTP API (sign in, device, join) and
//! the call's WebSocket, moving [`Participant`]'s messages.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use conclave_e2ee::ExternalSenderInfo;
use conclave_identity::{DeviceCredential, DeviceKey, OrganisationPublicKey};
use conclave_protocol::{ClientMessage, CloseCode, ServerMessage};
use conclave_types::{DeviceId, MeetingId, Timestamp};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use zeroize::Zeroizing;

use crate::Participant;

/// What went wrong talking to the server.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// Transport failure (connection, TLS).
    #[error("cannot reach the server: {0}")]
    Transport(String),
    /// The server answered with an error.
    #[error("the server answered {status}: {message}")]
    Api {
        /// HTTP status.
        status: u16,
        /// The server's message.
        message: String,
    },
    /// The server's answer was not what the API promises.
    #[error("unexpected answer from the server: {0}")]
    Unexpected(String),
    /// The policy refused the (new) join request.
    #[error("the meeting's policy refused to let this device in: {}", .0.join("; "))]
    Refused(Vec<String>),
    /// The call's WebSocket was closed.
    #[error("the call closed the connection ({code}): {reason}")]
    Closed {
        /// Close code.
        code: u16,
        /// Its sentence.
        reason: String,
    },
}

/// A registered device: its key and the organisation's credential for it.
pub struct Device {
    seed: Zeroizing<[u8; 32]>,
    /// The device id.
    pub id: DeviceId,
    /// The credential the organisation issued.
    pub credential: DeviceCredential,
}

impl std::fmt::Debug for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Device")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl Device {
    /// Writes the device (its private key included) to `path`, readable by the owner only.
    ///
    /// # Errors
    /// If the file cannot be written.
    pub fn save(&self, path: &std::path::Path) -> std::io::Result<()> {
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt as _;
        let document = Zeroizing::new(
            json!({
                "device_id": self.id.to_string(),
                "seed": STANDARD.encode(*self.seed),
                "credential": self.credential.to_base64(),
            })
            .to_string(),
        );
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(path)?;
        file.write_all(document.as_bytes())?;
        file.sync_all()
    }

    /// Reads a device written by [`Device::save`].
    ///
    /// # Errors
    /// If the file cannot be read, is readable by others, or is not a device.
    pub fn load(path: &std::path::Path) -> Result<Self, ClientError> {
        use std::os::unix::fs::PermissionsExt as _;
        let bad = |why: String| ClientError::Unexpected(format!("{}: {why}", path.display()));
        let metadata = std::fs::metadata(path).map_err(|e| bad(e.to_string()))?;
        if metadata.permissions().mode() & 0o077 != 0 {
            return Err(bad(
                "holds a private key but others may read it; chmod 600 it".into(),
            ));
        }
        let document = Zeroizing::new(std::fs::read(path).map_err(|e| bad(e.to_string()))?);
        let v: Value =
            serde_json::from_slice(&document).map_err(|e| bad(format!("not a device: {e}")))?;
        let seed = Zeroizing::new(
            STANDARD
                .decode(text(&v, "seed")?)
                .ok()
                .and_then(|s| <[u8; 32]>::try_from(s).ok())
                .ok_or_else(|| bad("bad `seed`".into()))?,
        );
        let credential = DeviceCredential::from_base64(&text(&v, "credential")?)
            .map_err(|e| bad(format!("credential: {e}")))?;
        if DeviceKey::from_seed(&seed).public() != credential.claims().device_key {
            return Err(bad("the credential is not for this key".into()));
        }
        Ok(Self {
            seed,
            id: credential.claims().device_id,
            credential,
        })
    }
}

/// Which bundled VP8 sample a native participant sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum VideoSample {
    /// 320x180, about 200 kbit/s at 15 frames a second.
    #[default]
    Small,
    /// 640x360, about 1.3 Mbit/s at 30 frames a second (a realistic top simulcast layer).
    Hd,
}

/// What a native participant sends over media.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MediaOptions {
    /// Send the bundled Opus sample (20 ms packets).
    pub audio: bool,
    /// Send a bundled VP8 sample.
    pub video: bool,
    /// Which one.
    pub video_sample: VideoSample,
    /// Video frames per second (the sample is played faster or slower).
    pub video_fps: u32,
    /// Send the video as three simulcast layers (`h` 640x360, `m` 320x180, `l` 160x90, at
    /// `video_fps`) instead of `video_sample`; the SFU forwards each receiver the layer its
    /// bandwidth allows.
    pub simulcast: bool,
    /// The audio level stated on audio packets (RFC 6464 dBov: 0 loudest, -127 silence),
    /// from which the SFU picks the active speaker.
    pub audio_level: i8,
    /// How many of the others are heard and seen at once.
    pub slots: crate::media::Slots,
}

impl Default for MediaOptions {
    fn default() -> Self {
        Self {
            audio: true,
            video: true,
            video_sample: VideoSample::Small,
            video_fps: 15,
            simulcast: false,
            audio_level: crate::media::DEFAULT_AUDIO_LEVEL_DBOV,
            slots: crate::media::Slots::default(),
        }
    }
}

/// The organisation's keys as the server publishes them.
#[derive(Clone, Debug)]
pub struct Organisation {
    /// Signs credentials and tickets.
    pub public_key: OrganisationPublicKey,
    /// The server's MLS external sender.
    pub external_sender: ExternalSenderInfo,
}

/// The policy's answer to a join request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JoinAnswer {
    /// Admitted: the ticket opens the call's WebSocket.
    Admitted {
        /// The join ticket.
        ticket: String,
    },
    /// Wait in the lobby: the ticket seats the participant there until a host decides.
    Lobby {
        /// The join ticket.
        ticket: String,
        /// Why.
        reasons: Vec<String>,
    },
    /// Refused.
    Denied {
        /// Why.
        reasons: Vec<String>,
    },
}

/// A signed-in account on one server.
#[derive(Debug, Clone)]
pub struct Client {
    base: String,
    http: reqwest::Client,
    csrf: String,
    tls: Arc<rustls::ClientConfig>,
}

fn transport(e: impl std::fmt::Display) -> ClientError {
    ClientError::Transport(e.to_string())
}

fn text(v: &Value, field: &str) -> Result<String, ClientError> {
    v[field]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| ClientError::Unexpected(format!("no `{field}` in the answer")))
}

fn reasons(v: &Value) -> Vec<String> {
    v["reasons"]
        .as_array()
        .map(|r| {
            r.iter()
                .filter_map(|r| r["message"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

impl Client {
    /// A client of the server at `base` (`https://host:port`), trusting only `root_pem` (the
    /// server's certificate or its CA) if given, else the web's usual roots.
    ///
    /// # Errors
    /// If the certificate does not parse.
    pub fn new(base: &str, root_pem: Option<&[u8]>) -> Result<Self, ClientError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        let mut http = reqwest::Client::builder()
            .cookie_store(true)
            .timeout(Duration::from_secs(30));
        if let Some(pem) = root_pem {
            use rustls::pki_types::pem::PemObject as _;
            for cert in rustls::pki_types::CertificateDer::pem_slice_iter(pem) {
                roots.add(cert.map_err(transport)?).map_err(transport)?;
            }
            http = http
                .tls_built_in_root_certs(false)
                .add_root_certificate(reqwest::Certificate::from_pem(pem).map_err(transport)?);
        } else {
            roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        }
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(transport)?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Self {
            base: base.trim_end_matches('/').to_owned(),
            http: http.build().map_err(transport)?,
            csrf: String::new(),
            tls: Arc::new(tls),
        })
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<(u16, Value), ClientError> {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header("x-csrf-token", &self.csrf);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.map_err(transport)?;
        let status = response.status().as_u16();
        let bytes = response.bytes().await.map_err(transport)?;
        let value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Ok((status, value))
    }

    async fn expect(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
        ok: &[u16],
    ) -> Result<Value, ClientError> {
        let (status, value) = self.call(method, path, body).await?;
        if ok.contains(&status) {
            Ok(value)
        } else {
            Err(ClientError::Api {
                status,
                message: value["message"].as_str().unwrap_or("").to_owned(),
            })
        }
    }

    /// Any API request as this account (for tools and tests); answers status and JSON body
    /// (`null` if the body is not JSON).
    ///
    /// # Errors
    /// Transport failures only; error statuses are answers.
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Result<(u16, Value), ClientError> {
        let method = reqwest::Method::from_bytes(method.as_bytes())
            .map_err(|_| ClientError::Unexpected(format!("bad method {method}")))?;
        self.call(method, path, body).await
    }

    /// Signs in.
    ///
    /// # Errors
    /// Wrong credentials, or the server is unreachable.
    pub async fn sign_in(&mut self, name: &str, password: &str) -> Result<(), ClientError> {
        let v = self
            .expect(
                reqwest::Method::POST,
                "/api/session",
                Some(json!({"name": name, "password": password})),
                &[200],
            )
            .await?;
        self.csrf = text(&v, "csrf_token")?;
        Ok(())
    }

    /// The organisation's keys.
    ///
    /// # Errors
    /// If the server is unreachable or answers nonsense.
    pub async fn organisation(&self) -> Result<Organisation, ClientError> {
        let v = self
            .expect(reqwest::Method::GET, "/api/organisation", None, &[200])
            .await?;
        let bad = |what: &str| ClientError::Unexpected(format!("organisation: bad {what}"));
        let public_key = text(&v, "public_key")?
            .parse()
            .map_err(|_| bad("public key"))?;
        let signature_key: [u8; 32] = STANDARD
            .decode(text(&v, "mls_external_sender_key")?)
            .ok()
            .and_then(|k| k.try_into().ok())
            .ok_or_else(|| bad("external sender key"))?;
        let identity = STANDARD
            .decode(text(&v, "mls_external_sender_identity")?)
            .map_err(|_| bad("external sender identity"))?;
        Ok(Organisation {
            public_key,
            external_sender: ExternalSenderInfo {
                signature_key,
                identity,
            },
        })
    }

    /// Registers a new device (fresh key) under `name`.
    ///
    /// # Errors
    /// If the server refuses.
    pub async fn register_device(&self, name: &str) -> Result<Device, ClientError> {
        let seed = Zeroizing::new(rand::random::<[u8; 32]>());
        let key = DeviceKey::from_seed(&seed);
        let v = self
            .expect(
                reqwest::Method::POST,
                "/api/devices",
                Some(json!({"name": name, "public_key": key.public().to_string()})),
                &[201],
            )
            .await?;
        let credential = DeviceCredential::from_base64(&text(&v, "credential")?)
            .map_err(|e| ClientError::Unexpected(format!("credential: {e}")))?;
        Ok(Device {
            seed,
            id: credential.claims().device_id,
            credential,
        })
    }

    /// Refreshes a device's credential (after an administrator changed its trust).
    ///
    /// # Errors
    /// If the server refuses.
    pub async fn refresh_credential(&self, device: &mut Device) -> Result<(), ClientError> {
        let v = self
            .expect(
                reqwest::Method::GET,
                &format!("/api/devices/{}/credential", device.id),
                None,
                &[200],
            )
            .await?;
        device.credential = DeviceCredential::from_base64(&text(&v, "credential")?)
            .map_err(|e| ClientError::Unexpected(format!("credential: {e}")))?;
        Ok(())
    }

    /// Asks the policy to let `device` into `meeting`.
    ///
    /// # Errors
    /// If the meeting is unknown to this account (404), or the server fails.
    pub async fn join(
        &self,
        meeting: &MeetingId,
        device: &Device,
    ) -> Result<JoinAnswer, ClientError> {
        let c = self
            .expect(
                reqwest::Method::POST,
                &format!("/api/meetings/{meeting}/challenge"),
                Some(json!({})),
                &[200],
            )
            .await?;
        let challenge = text(&c, "challenge")?;
        let bytes: [u8; 32] = URL_SAFE_NO_PAD
            .decode(&challenge)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| ClientError::Unexpected("challenge".into()))?;
        let signature = DeviceKey::from_seed(&device.seed).sign_join_challenge(meeting, &bytes);
        let (status, v) = self
            .call(
                reqwest::Method::POST,
                &format!("/api/meetings/{meeting}/join"),
                Some(json!({
                    "credential": device.credential.to_base64(),
                    "challenge": challenge,
                    "signature": URL_SAFE_NO_PAD.encode(signature),
                })),
            )
            .await?;
        match status {
            200 => Ok(JoinAnswer::Admitted {
                ticket: text(&v, "ticket")?,
            }),
            202 => Ok(JoinAnswer::Lobby {
                ticket: text(&v, "ticket")?,
                reasons: reasons(&v),
            }),
            403 => Ok(JoinAnswer::Denied {
                reasons: reasons(&v),
            }),
            _ => Err(ClientError::Api {
                status,
                message: v["message"].as_str().unwrap_or("").to_owned(),
            }),
        }
    }

    /// Opens the call's WebSocket with an admission `ticket` and runs `device`'s participant
    /// in a background task, sending the bundled audio and video samples.
    ///
    /// # Errors
    /// If the WebSocket cannot be opened or the participant cannot be created.
    pub async fn connect(
        &self,
        meeting: &MeetingId,
        device: &Device,
        organisation: &Organisation,
        ticket: String,
    ) -> Result<Call, ClientError> {
        self.connect_with(
            meeting,
            device,
            organisation,
            ticket,
            MediaOptions::default(),
        )
        .await
    }

    /// [`Client::connect`], sending what `options` say.
    ///
    /// # Errors
    /// As [`Client::connect`].
    pub async fn connect_with(
        &self,
        meeting: &MeetingId,
        device: &Device,
        organisation: &Organisation,
        ticket: String,
        options: MediaOptions,
    ) -> Result<Call, ClientError> {
        let (participant, socket, url) = self.open(meeting, device, organisation, ticket).await?;
        let shared = Arc::new(Mutex::new(CallState {
            participant,
            closed: None,
            media: None,
            received: Received::default(),
            silenced: false,
        }));
        let (commands, rx) = mpsc::channel(64);
        let task = tokio::spawn(run(socket, Arc::clone(&shared), rx, options));
        Ok(Call {
            shared,
            commands,
            task,
            url,
            tls: Arc::clone(&self.tls),
            options,
            meeting: *meeting,
        })
    }

    /// A fresh participant for `device` and the call's WebSocket, opened with its `hello`.
    async fn open(
        &self,
        meeting: &MeetingId,
        device: &Device,
        organisation: &Organisation,
        ticket: String,
    ) -> Result<(Participant, Socket, String), ClientError> {
        let participant = Participant::new(
            device.credential.clone(),
            *device.seed,
            organisation.public_key,
            organisation.external_sender.clone(),
            now(),
        )
        .map_err(|e| ClientError::Unexpected(format!("device identity: {e}")))?;
        let hello = participant.hello(ticket);
        let url = format!(
            "{}/api/meetings/{meeting}/signal",
            self.base
                .replacen("https://", "wss://", 1)
                .replacen("http://", "ws://", 1)
        );
        let socket = open_socket(&url, &self.tls, &hello).await?;
        Ok((participant, socket, url))
    }
}

async fn open_socket(
    url: &str,
    tls: &Arc<rustls::ClientConfig>,
    hello: &ClientMessage,
) -> Result<Socket, ClientError> {
    let connector = tokio_tungstenite::Connector::Rustls(Arc::clone(tls));
    let (mut socket, _) =
        // no Nagle: small messages (a commit, an answer) go at once rather than after the
        // server's delayed ACK of the previous one
        tokio_tungstenite::connect_async_tls_with_config(url, None, true, Some(connector))
            .await
            .map_err(transport)?;
    socket
        .send(Message::Text(hello.encode().into()))
        .await
        .map_err(transport)?;
    Ok(socket)
}

/// The wall clock, read at the driver's edge.
pub fn now() -> Timestamp {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    Timestamp::from_unix_millis(ms)
}

/// What a running call shares with its owner.
#[derive(Debug)]
pub struct CallState {
    /// The participant's state.
    pub participant: Participant,
    /// How the server closed the connection, once it has.
    pub closed: Option<(u16, String)>,
    /// Media with the SFU, once the participant is in the call (admitted).
    pub media: Option<crate::media::Media>,
    /// Media frames received.
    pub received: Received,
    /// Media datagrams are dropped both ways ([`Call::silence_media`]).
    pub silenced: bool,
}

/// Things the owner asks a running call to do.
#[derive(Debug)]
enum Command {
    Chat(String),
    Send(ClientMessage),
}

/// A call in progress.
#[derive(Debug)]
pub struct Call {
    shared: Arc<Mutex<CallState>>,
    commands: mpsc::Sender<Command>,
    task: tokio::task::JoinHandle<()>,
    url: String,
    tls: Arc<rustls::ClientConfig>,
    options: MediaOptions,
    meeting: MeetingId,
}

/// How [`Call::reconnect`] got back into the call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reconnected {
    /// The seat was taken back: same group, what was missed replayed.
    Resumed,
    /// A new seat: admitted again by the policy, added to the group (or creating a new one
    /// if nobody else is there, e.g. after a server restart).
    Rejoined,
    /// A new seat in the lobby, for these reasons.
    Lobby(Vec<String>),
}

impl Call {
    /// Reads the call's state.
    pub fn with<R>(&self, f: impl FnOnce(&CallState) -> R) -> R {
        let state = self.shared.lock().unwrap_or_else(|p| p.into_inner());
        f(&state)
    }

    /// Sends a chat message to everyone in the call.
    pub async fn chat(&self, text: &str) {
        let _ = self.commands.send(Command::Chat(text.to_owned())).await;
    }

    /// Sends a protocol message (host controls, leave).
    pub async fn send(&self, message: ClientMessage) {
        let _ = self.commands.send(Command::Send(message)).await;
    }

    /// Leaves the call and waits for the server to close the connection.
    pub async fn leave(self) {
        let _ = self
            .commands
            .send(Command::Send(ClientMessage::Leave {}))
            .await;
        let _ = tokio::time::timeout(Duration::from_secs(5), self.task).await;
    }

    /// Drops the connection without leaving (as a crash or a network loss would).
    pub fn abort(self) {
        self.task.abort();
    }

    /// Drops the connection without leaving but keeps the participant, so that
    /// [`Call::resume`] can take the seat back (as a network loss would).
    pub fn drop_connection(&mut self) {
        self.task.abort();
    }

    /// Reconnects and resumes the seat with the resume token from `joined`: the MLS state
    /// is kept and the server replays what it sent meanwhile.
    ///
    /// # Errors
    /// If there is no seat to resume or the connection fails; the server closes with 4002
    /// when the grace period is over.
    pub async fn resume(&mut self) -> Result<(), ClientError> {
        self.task.abort();
        let hello = self
            .with(|s| s.participant.resume_hello())
            .ok_or_else(|| ClientError::Unexpected("no seat to resume".into()))?;
        let socket = open_socket(&self.url, &self.tls, &hello).await?;
        {
            let mut state = self.shared.lock().unwrap_or_else(|p| p.into_inner());
            state.closed = None;
        }
        let (commands, rx) = mpsc::channel(64);
        self.commands = commands;
        self.task = tokio::spawn(run(socket, Arc::clone(&self.shared), rx, self.options));
        Ok(())
    }

    /// Gets back into the call after its connection ended, for at most `limit`: resumes the
    /// seat if the close allows it, and otherwise (or if the server no longer knows the
    /// seat, e.g. after a restart) asks the policy to join again with a fresh ticket. Waits
    /// out an unreachable server with backoff.
    ///
    /// # Errors
    /// [`ClientError::Refused`] if the policy no longer admits the device;
    /// [`ClientError::Closed`] if the close was a decision about this participant (removed,
    /// denied, revoked, left); otherwise the last failure once `limit` is over.
    pub async fn reconnect(
        &mut self,
        client: &Client,
        device: &Device,
        organisation: &Organisation,
        limit: Duration,
    ) -> Result<Reconnected, ClientError> {
        let deadline = tokio::time::Instant::now() + limit;
        let (code, reason) = self
            .with(|s| s.closed.clone())
            .unwrap_or((1006, "connection lost".into()));
        let known = CloseCode::from_code(code);
        if known.is_some_and(|c| !c.resumable() && !c.rejoinable()) {
            return Err(ClientError::Closed { code, reason });
        }
        let mut resume = known.is_none_or(CloseCode::resumable)
            && self.with(|s| s.participant.resume_hello().is_some());
        let mut delay = Duration::from_millis(200);
        loop {
            let attempt = if resume {
                self.try_resume().await
            } else {
                self.rejoin(client, device, organisation).await.map(Some)
            };
            let failure = match attempt {
                Ok(Some(done)) => return Ok(done),
                // the server answered but does not know the seat: a new one
                Ok(None) => {
                    resume = false;
                    continue;
                }
                Err(e @ (ClientError::Refused(_) | ClientError::Api { .. })) => return Err(e),
                Err(e) => e,
            };
            if tokio::time::Instant::now() + delay > deadline {
                return Err(failure);
            }
            tracing::info!(error = %failure, "reconnecting");
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(5));
        }
    }

    /// Resumes the seat: `Some` once the server kept the connection open for a moment,
    /// `None` if it refused the token.
    async fn try_resume(&mut self) -> Result<Option<Reconnected>, ClientError> {
        self.resume().await?;
        let refused = self
            .wait_for(Duration::from_secs(2), |s| s.closed.is_some())
            .await;
        Ok((!refused).then_some(Reconnected::Resumed))
    }

    /// A new seat for the same device: join again, new participant, new media.
    async fn rejoin(
        &mut self,
        client: &Client,
        device: &Device,
        organisation: &Organisation,
    ) -> Result<Reconnected, ClientError> {
        self.task.abort();
        let (ticket, answer) = match client.join(&self.meeting, device).await? {
            JoinAnswer::Admitted { ticket } => (ticket, Reconnected::Rejoined),
            JoinAnswer::Lobby { ticket, reasons } => (ticket, Reconnected::Lobby(reasons)),
            JoinAnswer::Denied { reasons } => return Err(ClientError::Refused(reasons)),
        };
        let (participant, socket, _) = client
            .open(&self.meeting, device, organisation, ticket)
            .await?;
        {
            let mut state = self.shared.lock().unwrap_or_else(|p| p.into_inner());
            state.participant = participant;
            state.closed = None;
            state.media = None;
        }
        let (commands, rx) = mpsc::channel(64);
        self.commands = commands;
        self.task = tokio::spawn(run(socket, Arc::clone(&self.shared), rx, self.options));
        Ok(answer)
    }

    /// Drops every media datagram both ways from now on, as a network that blocks UDP would,
    /// while signalling carries on (for diagnostics and tests of the server's media timeout).
    pub fn silence_media(&self) {
        let mut state = self.shared.lock().unwrap_or_else(|p| p.into_inner());
        state.silenced = true;
    }

    /// Seals media from now on under keys nobody else holds (an epoch ahead of the group's,
    /// with another secret), as a member whose key schedule went wrong, or a forger, would:
    /// for tests of how receivers report frames that do not open. Signalling and MLS carry on;
    /// the group's next epochs are not installed any more.
    pub fn desync_media_keys(&self) {
        let mut state = self.shared.lock().unwrap_or_else(|p| p.into_inner());
        let state = &mut *state;
        if let (Some(media), Some(keys)) = (state.media.as_mut(), state.participant.key_material())
        {
            let ahead = keys.epoch.saturating_add(1_000);
            if let Err(e) = media.set_epoch(
                ahead,
                &[0x42; 16],
                keys.own_leaf,
                &keys.members,
                Instant::now(),
            ) {
                tracing::warn!(error = %e, "media keys not desynchronised");
            }
        }
    }

    /// Waits until `check` holds for the call's state, polling every 20 ms, for at most
    /// `limit`. Returns whether it held.
    pub async fn wait_for(&self, limit: Duration, check: impl Fn(&CallState) -> bool) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            if self.with(&check) {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Takes the SFU's answer and binds the media socket on the local address that reaches the
/// SFU (signalling may run over another address family than media).
async fn answered(
    shared: &Mutex<CallState>,
    sdp: &str,
) -> Result<Option<tokio::net::UdpSocket>, String> {
    let accepted = {
        let mut state = shared.lock().unwrap_or_else(|p| p.into_inner());
        state.received.answered.get_or_insert_with(Instant::now);
        state.media.as_mut().map(|m| m.accept_answer(sdp))
    };
    let Some(sfu) = accepted.transpose().map_err(|e| e.to_string())? else {
        return Ok(None);
    };
    let socket = bind_towards(sfu[0])
        .await
        .map_err(|e| format!("binding towards {}: {e}", sfu[0]))?;
    let local = socket.local_addr().map_err(|e| e.to_string())?;
    let mut state = shared.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(media) = state.media.as_mut() {
        media
            .add_local_address(local, Instant::now())
            .map_err(|e| e.to_string())?;
    }
    Ok(Some(socket))
}

/// A UDP socket on the local address that routes to `sfu`: the source address the kernel
/// picks for a datagram to it, read from a connected probe socket (which sends nothing).
async fn bind_towards(sfu: SocketAddr) -> std::io::Result<tokio::net::UdpSocket> {
    let any: std::net::IpAddr = if sfu.is_ipv4() {
        std::net::Ipv4Addr::UNSPECIFIED.into()
    } else {
        std::net::Ipv6Addr::UNSPECIFIED.into()
    };
    let probe = tokio::net::UdpSocket::bind((any, 0)).await?;
    probe.connect(sfu).await?;
    let local = probe.local_addr()?.ip();
    let socket = tokio::net::UdpSocket::bind((local, 0)).await?;
    // Several streams arrive at once (a key frame from each sender after a membership
    // change): the default receive buffer (208 KiB on Linux) overflowed in load tests.
    // Best effort: the kernel caps it at net.core.rmem_max.
    let _ = socket2::SockRef::from(&socket).set_recv_buffer_size(RECEIVE_BUFFER);
    Ok(socket)
}

/// The receive buffer asked for on the media socket.
const RECEIVE_BUFFER: usize = 1 << 20;

/// What a participant received over media, checked against the bundled samples every
/// native participant sends.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Received {
    /// Audio frames opened and byte-identical to a sample packet, by sender leaf.
    pub audio_intact: std::collections::BTreeMap<u32, u64>,
    /// Video frames opened and byte-identical to a sample frame, by sender leaf.
    pub video_intact: std::collections::BTreeMap<u32, u64>,
    /// Audio frames that opened (authenticated under the epoch's keys, whatever they hold),
    /// by sender leaf: a browser's frames open without matching a sample.
    pub audio_opened: std::collections::BTreeMap<u32, u64>,
    /// Video frames that opened, by sender leaf.
    pub video_opened: std::collections::BTreeMap<u32, u64>,
    /// Frames that opened but match no sample (garbage on screen if a native participant sent
    /// them; a browser's own encoder output otherwise).
    pub altered: u64,
    /// When the participant first held the group's keys (its Welcome processed).
    pub in_group: Option<Instant>,
    /// When the first media offer went out (the participant was on the roster).
    pub offered: Option<Instant>,
    /// When the SFU's answer to the first media offer arrived.
    pub answered: Option<Instant>,
    /// When ICE and DTLS with the SFU were first up.
    pub connected: Option<Instant>,
    /// When the first remote frame opened intact.
    pub first_frame: Option<Instant>,
    /// Intact video frames by the sample they are from: `small`, or the simulcast layer
    /// `h`, `m`, `l` (the first is also the `--hd` sample).
    pub video_samples: std::collections::BTreeMap<&'static str, u64>,
    /// UDP datagrams received on the media socket.
    pub datagrams_in: u64,
    /// Their bytes.
    pub bytes_in: u64,
    /// UDP datagrams sent from the media socket.
    pub datagrams_out: u64,
    /// Their bytes.
    pub bytes_out: u64,
}

/// The samples a native participant sends, in a loop, at their real rate.
struct Pacer {
    options: MediaOptions,
    /// The video sent: one unlayered stream, or the simulcast layers by rid.
    video: Vec<(Option<&'static str>, Vec<crate::media::files::VideoFrame>)>,
    audio: Vec<crate::media::files::AudioPacket>,
    next_video: usize,
    next_audio: usize,
    video_due: tokio::time::Instant,
    audio_due: tokio::time::Instant,
    /// Every frame any native participant may send, and which sample it is from.
    known: std::collections::HashMap<Vec<u8>, &'static str>,
}

impl Pacer {
    fn new(options: MediaOptions) -> Self {
        let small = crate::media::files::sample_video().frames;
        let layers = crate::media::files::simulcast_layers();
        let audio = crate::media::files::sample_audio().packets;
        let mut known = std::collections::HashMap::new();
        for f in &small {
            known.insert(f.data.clone(), "small");
        }
        for (rid, ivf) in &layers {
            for f in &ivf.frames {
                known.insert(f.data.clone(), *rid);
            }
        }
        for p in &audio {
            known.insert(p.data.clone(), "audio");
        }
        let video = if options.simulcast {
            layers
                .into_iter()
                .map(|(rid, ivf)| (Some(rid), ivf.frames))
                .collect()
        } else {
            match options.video_sample {
                VideoSample::Small => vec![(None, small)],
                VideoSample::Hd => {
                    let [(_, hd), ..] = layers;
                    vec![(None, hd.frames)]
                }
            }
        };
        let now = tokio::time::Instant::now();
        Self {
            options,
            video,
            audio,
            next_video: 0,
            next_audio: 0,
            video_due: now,
            audio_due: now,
            known,
        }
    }

    /// Sends whatever is due now; after a stall it skips ahead rather than bursting.
    fn send_due(&mut self, media: &mut crate::media::Media) {
        let now = tokio::time::Instant::now();
        if now.saturating_duration_since(self.audio_due) > Duration::from_millis(200) {
            self.audio_due = now;
            self.video_due = now;
        }
        if let Some(packet) = self.audio.get(self.next_audio % self.audio.len().max(1)) {
            if self.options.audio && self.audio_due <= now {
                let _ = media.send_audio(now.into_std(), &packet.data);
                self.next_audio += 1;
                self.audio_due += Duration::from_millis(20);
            }
        }
        if self.options.video && self.video_due <= now {
            if media.keyframe_wanted() {
                // restart at the samples' first frame, a key frame in every layer
                self.next_video = 0;
            }
            for (rid, frames) in &self.video {
                if let Some(frame) = frames.get(self.next_video % frames.len().max(1)) {
                    let _ =
                        media.send_video_layer(now.into_std(), *rid, &frame.data, frame.keyframe);
                }
            }
            self.next_video += 1;
            self.video_due += Duration::from_secs(1) / self.options.video_fps.max(1);
        }
    }
}

async fn run(
    socket: Socket,
    shared: Arc<Mutex<CallState>>,
    mut commands: mpsc::Receiver<Command>,
    options: MediaOptions,
) {
    let (mut sink, mut stream) = socket.split();
    // bound once the SFU's answer says where media goes
    let mut udp: Option<tokio::net::UdpSocket> = None;
    let mut heartbeat = tokio::time::interval(Duration::from_secs(2));
    let mut pace = tokio::time::interval(Duration::from_millis(10));
    let mut pacer = Pacer::new(options);
    let mut media_deadline = tokio::time::Instant::now() + Duration::from_secs(3600);
    let mut buf = vec![0u8; 2048];
    let mut nonce = 0u32;
    loop {
        let mut incoming = None;
        let mut outgoing: Vec<ClientMessage> = tokio::select! {
            frame = stream.next() => {
                let mut state = shared.lock().unwrap_or_else(|p| p.into_inner());
                match frame {
                    Some(Ok(Message::Text(text))) => match ServerMessage::decode(&text) {
                        Ok(message) => {
                            state.participant.handle(message.clone(), now());
                            incoming = Some(message);
                        }
                        Err(e) => tracing::warn!(error = %e, "undecodable server message"),
                    },
                    Some(Ok(Message::Close(frame))) => {
                        let (code, reason) = frame.map_or((1005, String::new()), |f| (u16::from(f.code), f.reason.to_string()));
                        state.closed = Some((code, reason));
                        break;
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => {
                        state.closed = Some((1006, e.to_string()));
                        break;
                    }
                    None => {
                        state.closed.get_or_insert((1006, "connection lost".into()));
                        break;
                    }
                }
                std::iter::from_fn(|| state.participant.poll_transmit()).collect()
            }
            command = commands.recv() => {
                let mut state = shared.lock().unwrap_or_else(|p| p.into_inner());
                match command {
                    Some(Command::Chat(text)) => state.participant.send_chat(&text, now()),
                    Some(Command::Send(message)) => state.participant.send(message),
                    None => break,
                }
                std::iter::from_fn(|| state.participant.poll_transmit()).collect()
            }
            _ = heartbeat.tick() => {
                nonce = nonce.wrapping_add(1);
                let state = shared.lock().unwrap_or_else(|p| p.into_inner());
                vec![state.participant.ping(nonce)]
            }
            received = async {
                match &udp {
                    Some(udp) => udp.recv_from(&mut buf).await.map(|(n, source)| (n, source, udp.local_addr())),
                    None => std::future::pending().await,
                }
            } => {
                if let Ok((n, source, Ok(local))) = received {
                    let mut state = shared.lock().unwrap_or_else(|p| p.into_inner());
                    if state.silenced {
                        continue;
                    }
                    state.received.datagrams_in += 1;
                    state.received.bytes_in += n as u64;
                    if let Some(media) = state.media.as_mut() {
                        let _ = media.handle_receive(Instant::now(), source, local, buf.get(..n).unwrap_or_default());
                    }
                }
                Vec::new()
            }
            () = tokio::time::sleep_until(media_deadline) => {
                let mut state = shared.lock().unwrap_or_else(|p| p.into_inner());
                if let Some(media) = state.media.as_mut() {
                    media.handle_timeout(Instant::now());
                }
                Vec::new()
            }
            _ = pace.tick() => {
                let mut state = shared.lock().unwrap_or_else(|p| p.into_inner());
                if let Some(media) = state.media.as_mut().filter(|m| m.is_connected()) {
                    pacer.send_due(media);
                }
                Vec::new()
            }
        };
        if let Some(ServerMessage::MediaAnswer { sdp }) = &incoming {
            match answered(&shared, sdp).await {
                Ok(socket) => udp = socket.or(udp),
                Err(e) => tracing::warn!(error = %e, "no media; signalling only"),
            }
        }
        // media: connect once admitted (while the Welcome is on its way), follow the epochs
        let mut datagrams = Vec::new();
        {
            let mut state = shared.lock().unwrap_or_else(|p| p.into_inner());
            let state = &mut *state;
            if state.media.is_none() && state.participant.in_call() {
                let mut media = crate::media::Media::new(Instant::now());
                media.set_audio_level(options.audio_level);
                let rids: Vec<&str> = pacer.video.iter().filter_map(|(rid, _)| *rid).collect();
                if let Ok(sdp) = media.offer_simulcast(&rids, options.slots) {
                    outgoing.push(ClientMessage::MediaOffer { sdp });
                    state.received.offered.get_or_insert_with(Instant::now);
                }
                state.media = Some(media);
            }
            if let Some(media) = state.media.as_mut() {
                if let Some(keys) = state.participant.key_material() {
                    state.received.in_group.get_or_insert_with(Instant::now);
                    if media.epoch() != Some(keys.epoch) {
                        let _ = media.set_keys(keys, Instant::now());
                    }
                }
                let deadline = loop {
                    match media.poll_output() {
                        crate::media::Output::Transmit(t) => {
                            datagrams.push((t.destination, t.contents))
                        }
                        crate::media::Output::Event(crate::media::MediaEvent::Frame(frame)) => {
                            let sample = pacer.known.get(&frame.frame).copied();
                            let intact = sample.is_some();
                            if let Some(sample) =
                                sample.filter(|_| frame.kind == crate::media::Kind::Video)
                            {
                                *state.received.video_samples.entry(sample).or_default() += 1;
                            }
                            let opened = if frame.kind == crate::media::Kind::Audio {
                                &mut state.received.audio_opened
                            } else {
                                &mut state.received.video_opened
                            };
                            *opened.entry(frame.sender_leaf).or_default() += 1;
                            let counts = if frame.kind == crate::media::Kind::Audio {
                                &mut state.received.audio_intact
                            } else {
                                &mut state.received.video_intact
                            };
                            if intact {
                                *counts.entry(frame.sender_leaf).or_default() += 1;
                                state.received.first_frame.get_or_insert_with(Instant::now);
                            } else {
                                state.received.altered += 1;
                            }
                        }
                        crate::media::Output::Event(crate::media::MediaEvent::Connected) => {
                            state.received.connected.get_or_insert_with(Instant::now);
                        }
                        crate::media::Output::Event(_) => {}
                        crate::media::Output::Timeout(at) => break at,
                    }
                };
                media_deadline = tokio::time::Instant::from_std(deadline);
            }
            if state.silenced {
                datagrams.clear();
            }
            state.received.datagrams_out += datagrams.len() as u64;
            state.received.bytes_out += datagrams.iter().map(|(_, c)| c.len() as u64).sum::<u64>();
        }
        if let Some(udp) = &udp {
            for (destination, contents) in datagrams {
                let _ = udp.send_to(&contents, destination).await;
            }
        }
        for message in outgoing {
            if sink
                .send(Message::Text(message.encode().into()))
                .await
                .is_err()
            {
                let mut state = shared.lock().unwrap_or_else(|p| p.into_inner());
                state.closed.get_or_insert((1006, "connection lost".into()));
                return;
            }
        }
    }
}

/// Whether a close code means the participant should resume.
pub fn resumable(code: u16) -> bool {
    CloseCode::from_code(code).is_some_and(CloseCode::resumable)
}
