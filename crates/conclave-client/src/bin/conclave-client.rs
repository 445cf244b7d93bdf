//! `conclave-client`: a native Conclave participant on the command line.
//!
//! Signs in, registers a device (or reuses one saved with `--device`), asks the policy to
//! join a meeting, waits in the lobby if it must, then holds the call: MLS over the
//! signalling WebSocket, the bundled VP8 and Opus samples SFrame-encrypted over UDP to the
//! SFU. While it runs it reports on stderr what a user would see (admission, roster, security
//! code, chat); when it leaves it prints what it received and decrypted intact from whom.
//!
//! ```sh
//! CONCLAVE_PASSWORD=… conclave-client --server https://127.0.0.1:8443 --ca data/tls/cert.pem \
//!     --user dana join 7f3c… --for 30
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use conclave_client::media::Slots;
use conclave_client::net::{
    Call, CallState, Client, ClientError, Device, JoinAnswer, MediaOptions, Organisation,
    Reconnected, VideoSample,
};
use conclave_protocol::{ClientMessage, CloseCode};
use conclave_types::MeetingId;
use serde_json::{json, Value};

/// A native Conclave participant.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Cli {
    /// The server, as `https://host:port`.
    #[arg(long, env = "CONCLAVE_SERVER")]
    server: String,
    /// Trust only this certificate (PEM) for the server, e.g. the generated
    /// `data/tls/cert.pem`; without it the usual web roots are trusted.
    #[arg(long, env = "CONCLAVE_CA")]
    ca: Option<PathBuf>,
    /// The account's login name.
    #[arg(long, env = "CONCLAVE_USER")]
    user: String,
    /// A file holding the account's password (first line); else `CONCLAVE_PASSWORD`.
    #[arg(long)]
    password_file: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Joins a meeting and stays until `--for` is over, Ctrl-C, or the call ends.
    Join {
        /// The meeting's id. Ids are URL-safe base64 and may start with '-'.
        #[arg(allow_hyphen_values = true)]
        meeting: MeetingId,
        /// Keep the device in this file (created and registered on first use, mode 0600).
        /// Without it a fresh device is registered for this run.
        #[arg(long)]
        device: Option<PathBuf>,
        /// The name of a newly registered device.
        #[arg(long, default_value = "conclave-client")]
        device_name: String,
        /// Leave after this many seconds in the call.
        #[arg(long = "for", value_name = "SECONDS")]
        duration: Option<f64>,
        /// Send this chat message once in the call (repeatable).
        #[arg(long)]
        chat: Vec<String>,
        /// Send no audio.
        #[arg(long)]
        no_audio: bool,
        /// Send no video.
        #[arg(long)]
        no_video: bool,
        /// Send the 640x360 sample (~1.3 Mbit/s at 30 frames a second) instead of the
        /// 320x180 one (~200 kbit/s at 15).
        #[arg(long)]
        hd: bool,
        /// Send video as three simulcast layers (640x360, 320x180, 160x90 at 30 frames a
        /// second); the server forwards each receiver the layer its bandwidth allows.
        #[arg(long)]
        simulcast: bool,
        /// Video frames per second (default: the sample's own rate).
        #[arg(long)]
        fps: Option<u32>,
        /// The audio level stated on audio packets, in dBov (0 loudest, -127 silence): the
        /// samples are sent as recorded, so the level that picks the active speaker is given.
        #[arg(long, default_value_t = -30, allow_negative_numbers = true)]
        level: i8,
        /// How many of the others to hear at once (the last speakers).
        #[arg(long, default_value_t = Slots::default().audio)]
        audio_slots: usize,
        /// How many of the others to see at once (the last speakers).
        #[arg(long, default_value_t = Slots::default().video)]
        video_slots: usize,
        /// As a host: admit everyone who waits in the lobby.
        #[arg(long)]
        admit_waiting: bool,
        /// Print the final report as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// How long the participant tries to get back into the call after losing it.
const RECONNECT_LIMIT: Duration = Duration::from_secs(60);

/// Exit statuses beyond 0 (left normally) and 1 (error).
const EXIT_DENIED: u8 = 2;
const EXIT_ENDED: u8 = 3;

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("CONCLAVE_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("conclave-client: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("conclave-client: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn say(line: &str) {
    eprintln!("conclave-client: {line}");
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let password = match &cli.password_file {
        Some(path) => std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?
            .lines()
            .next()
            .unwrap_or_default()
            .to_owned(),
        None => std::env::var("CONCLAVE_PASSWORD")
            .context("give the password in CONCLAVE_PASSWORD or with --password-file")?,
    };
    let pem = match &cli.ca {
        Some(path) => {
            Some(std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?)
        }
        None => None,
    };
    let mut client = Client::new(&cli.server, pem.as_deref())?;
    client
        .sign_in(&cli.user, &password)
        .await
        .context("cannot sign in")?;
    let Command::Join {
        meeting,
        device,
        device_name,
        duration,
        chat,
        no_audio,
        no_video,
        hd,
        simulcast,
        fps,
        level,
        audio_slots,
        video_slots,
        admit_waiting,
        json,
    } = cli.command;
    let device = load_or_register(&client, device.as_deref(), &device_name).await?;
    let organisation = client.organisation().await?;

    let asked = Instant::now();
    let ticket = match client.join(&meeting, &device).await? {
        JoinAnswer::Admitted { ticket } => {
            say("admitted by the meeting's policy");
            ticket
        }
        JoinAnswer::Lobby { ticket, reasons } => {
            say(&format!(
                "waiting in the lobby for a host: {}",
                reasons.join("; ")
            ));
            ticket
        }
        JoinAnswer::Denied { reasons } => {
            say(&format!("refused: {}", reasons.join("; ")));
            return Ok(ExitCode::from(EXIT_DENIED));
        }
    };
    let options = MediaOptions {
        audio: !no_audio,
        video: !no_video,
        video_sample: if hd {
            VideoSample::Hd
        } else {
            VideoSample::Small
        },
        video_fps: fps.unwrap_or(if hd || simulcast { 30 } else { 15 }),
        simulcast,
        audio_level: level,
        slots: Slots {
            audio: audio_slots,
            video: video_slots,
        },
    };
    let mut call = client
        .connect_with(&meeting, &device, &organisation, ticket, options)
        .await?;
    let ended = hold(
        &mut call,
        (&client, &device, &organisation),
        duration.map(Duration::from_secs_f64),
        &chat,
        admit_waiting,
    )
    .await;
    let report = call.with(|s| report(s, asked));
    if !ended {
        call.leave().await;
    }
    if json {
        println!("{report}");
    } else {
        print_report(&report);
    }
    Ok(if ended {
        ExitCode::from(EXIT_ENDED)
    } else {
        ExitCode::SUCCESS
    })
}

/// Loads the device saved at `path`, or registers a new one (saved there if given).
async fn load_or_register(
    client: &Client,
    path: Option<&std::path::Path>,
    name: &str,
) -> anyhow::Result<Device> {
    if let Some(path) = path.filter(|p| p.exists()) {
        let mut device = Device::load(path)?;
        // trust may have changed since it was saved; the server's answer is current
        match client.refresh_credential(&mut device).await {
            Ok(()) => device.save(path)?,
            Err(ClientError::Api {
                status: 403 | 404,
                message,
            }) => {
                anyhow::bail!("the saved device can no longer be used: {message}")
            }
            Err(e) => return Err(e.into()),
        }
        return Ok(device);
    }
    let device = client.register_device(name).await?;
    say(&format!("registered device {} ({})", device.id, name));
    if let Some(path) = path {
        device
            .save(path)
            .with_context(|| format!("cannot save the device to {}", path.display()))?;
    }
    Ok(device)
}

/// Follows the call, saying what changes, until `duration` in the group is over, Ctrl-C, or
/// the server ends the call; reconnects (resuming the seat or joining again) when the
/// connection or the server failed. Returns whether the server ended the call.
async fn hold(
    call: &mut Call,
    (client, device, organisation): (&Client, &Device, &Organisation),
    duration: Option<Duration>,
    chat: &[String],
    admit_waiting: bool,
) -> bool {
    let mut seen = Seen::default();
    let mut in_group_since = None;
    let mut interrupted = std::pin::pin!(tokio::signal::ctrl_c());
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    loop {
        tokio::select! {
            _ = &mut interrupted => return false,
            _ = tick.tick() => {}
        }
        call.with(|s| seen.say_changes(s));
        if admit_waiting {
            let waiting: Vec<_> = call.with(|s| {
                s.participant
                    .lobby()
                    .iter()
                    .map(|l| l.participant)
                    .filter(|p| !seen.admitted.contains(p))
                    .collect()
            });
            for participant in waiting {
                say(&format!("admitting {participant}"));
                seen.admitted.push(participant);
                call.send(ClientMessage::Admit { participant }).await;
            }
        }
        if let Some((code, reason)) = call.with(|s| s.closed.clone()) {
            say(&format!("disconnected ({code}): {reason}"));
            match call
                .reconnect(client, device, organisation, RECONNECT_LIMIT)
                .await
            {
                Ok(Reconnected::Resumed) => say("resumed the seat"),
                Ok(Reconnected::Rejoined) => say("joined the call again"),
                Ok(Reconnected::Lobby(reasons)) => say(&format!(
                    "joined again; waiting in the lobby: {}",
                    reasons.join("; ")
                )),
                Err(e) => {
                    say(&format!("the call ended: {e}"));
                    return true;
                }
            }
            continue;
        }
        if in_group_since.is_none() && call.with(|s| s.participant.epoch().is_some()) {
            in_group_since = Some(Instant::now());
            for text in chat {
                call.chat(text).await;
            }
        }
        if let (Some(since), Some(duration)) = (in_group_since, duration) {
            if since.elapsed() >= duration {
                return false;
            }
        }
    }
}

/// What was already said, so that only changes are.
#[derive(Default)]
struct Seen {
    code: Option<String>,
    roster: Vec<String>,
    chat: usize,
    alerts: usize,
    lobby: usize,
    refusals: usize,
    admitted: Vec<conclave_types::ParticipantId>,
    speaker: Option<conclave_types::ParticipantId>,
}

impl Seen {
    fn say_changes(&mut self, s: &CallState) {
        let p = &s.participant;
        if let Some(code) = p.security_code() {
            if self.code.as_ref() != Some(&code) {
                say(&format!(
                    "security code {code} (epoch {})",
                    p.epoch().unwrap_or(0)
                ));
                self.code = Some(code);
            }
        }
        if p.active_speaker() != self.speaker {
            self.speaker = p.active_speaker();
            if let Some(speaker) = p
                .roster()
                .iter()
                .find(|e| Some(e.participant) == self.speaker)
            {
                say(&format!("{} is speaking", speaker.display_name));
            }
        }
        let roster: Vec<String> = p.roster().iter().map(roster_line).collect();
        if roster != self.roster {
            say(&format!("roster: {}", roster.join(" | ")));
            self.roster = roster;
        }
        for c in p.chat().iter().skip(self.chat) {
            say(&format!("chat from {}: {}", name_of(s, c.from), c.text));
        }
        self.chat = p.chat().len();
        for a in p.alerts().iter().skip(self.alerts) {
            say(&format!(
                "alert: {}",
                serde_json::to_string(a).unwrap_or_default()
            ));
        }
        self.alerts = p.alerts().len();
        if p.lobby().len() != self.lobby {
            for l in p.lobby() {
                say(&format!(
                    "in the lobby: {} ({}): {}",
                    l.display_name,
                    l.participant,
                    l.reasons.join("; ")
                ));
            }
            self.lobby = p.lobby().len();
        }
        for r in p.refusals().iter().skip(self.refusals) {
            say(&format!("refused an MLS change: {r:?}"));
        }
        self.refusals = p.refusals().len();
    }
}

fn roster_line(e: &conclave_protocol::RosterEntry) -> String {
    format!(
        "{} ({}) {:?} device, {:?} network, media {:?}{}",
        e.display_name,
        e.user_name,
        e.device_trust,
        e.network,
        e.media,
        if e.host { ", host" } else { "" }
    )
    .to_lowercase()
}

fn name_of(s: &CallState, device: conclave_types::DeviceId) -> String {
    s.participant
        .roster()
        .iter()
        .find(|e| e.device_id == device)
        .map_or_else(|| device.to_string(), |e| e.display_name.clone())
}

/// What the participant saw, as JSON (printed as such with `--json`).
fn report(s: &CallState, asked: Instant) -> Value {
    let p = &s.participant;
    let mut from: BTreeMap<String, Value> = BTreeMap::new();
    let leaves: Vec<u32> = s
        .received
        .audio_intact
        .keys()
        .chain(s.received.video_intact.keys())
        .copied()
        .collect();
    for leaf in leaves {
        let name = p
            .members()
            .get(&leaf)
            .map_or_else(|| format!("leaf {leaf}"), |d| name_of(s, *d));
        from.insert(
            name,
            json!({
                "leaf": leaf,
                "audio_frames": s.received.audio_intact.get(&leaf).copied().unwrap_or(0),
                "video_frames": s.received.video_intact.get(&leaf).copied().unwrap_or(0),
            }),
        );
    }
    let stats = s.media.as_ref().map(|m| m.stats().clone());
    json!({
        "participant": p.id().map(|id| id.to_string()),
        "security_code": p.security_code(),
        "active_speaker": p.active_speaker().map(|id| id.to_string()),
        "epoch": p.epoch(),
        "codes": p.codes().iter().map(|(e, c)| json!({"epoch": e, "code": c})).collect::<Vec<_>>(),
        "roster": p.roster(),
        "mismatches": p.mismatches().iter().map(|m| format!("{m:?}")).collect::<Vec<_>>(),
        "received_intact": from,
        "altered": s.received.altered,
        "dropped": stats.as_ref().map(|st| json!({
            "no_key": st.dropped.no_key,
            "unknown_epoch": st.dropped.unknown_epoch,
            "stale_epoch": st.dropped.stale_epoch,
            "unknown_sender": st.dropped.unknown_sender,
            "authentication": st.dropped.authentication,
            "replayed": st.dropped.replayed,
            "malformed": st.dropped.malformed,
            "reflected": st.dropped.reflected,
            "other": st.dropped.other,
        })),
        "sent": stats.as_ref().map(|st| json!({
            "audio_frames": st.audio_sent,
            "video_frames": st.video_sent,
            "keyframes": st.keyframes_sent,
        })),
        "first_frame_ms": s.received.first_frame.map(|t| t.duration_since(asked).as_millis() as u64),
        "chat": p.chat().iter().map(|c| json!({"from": name_of(s, c.from), "text": c.text})).collect::<Vec<_>>(),
        "closed": s.closed.as_ref().map(|(code, reason)| json!({
            "code": code,
            "reason": reason,
            "meaning": CloseCode::from_code(*code).map(|c| format!("{c:?}")),
        })),
    })
}

fn print_report(r: &Value) {
    println!(
        "security code: {}",
        r["security_code"]
            .as_str()
            .unwrap_or("none (never in the group)")
    );
    println!("received and decrypted intact:");
    match r["received_intact"].as_object() {
        Some(from) if !from.is_empty() => {
            for (name, v) in from {
                println!(
                    "  {name}: {} audio, {} video frames",
                    v["audio_frames"], v["video_frames"]
                );
            }
        }
        _ => println!("  nothing"),
    }
    println!("altered frames: {}", r["altered"]);
    if let Some(d) = r["dropped"].as_object() {
        let total: u64 = d.values().filter_map(Value::as_u64).sum();
        println!("frames that did not decrypt: {total}");
    }
    if let Some(ms) = r["first_frame_ms"].as_u64() {
        println!("first remote frame {ms} ms after asking to join");
    }
    let mismatches = r["mismatches"].as_array().map_or(0, Vec::len);
    if mismatches > 0 {
        println!(
            "WARNING: roster and encrypted group disagree: {}",
            r["mismatches"]
        );
    }
}
