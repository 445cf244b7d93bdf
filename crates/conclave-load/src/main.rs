//! `conclave-load`: puts one call under load through the real `conclave` binary and measures
//! what the server pays for it, then sends traffic of the same shape through a bare UDP relay
//! (`conclave-relay`) for the baseline the SFU's cost is quoted against.
//!
//! Everything runs on loopback: the harness starts the server with a fresh data directory,
//! creates the accounts, and runs every participant (`conclave_client`, MLS + SFrame + str0m)
//! in this process. The participants' own cost is reported too: on a small machine they
//! compete with the server for the same cores.
//!
//! ```sh
//! cargo build --release -p conclave-server -p conclave-load -p conclave-relay
//! target/release/conclave-load --participants 20 --video-senders 1 --seconds 20
//! ```

mod process;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use clap::Parser;
use conclave_client::media::Slots;
use conclave_client::net::{
    Call, Client, Device, JoinAnswer, MediaOptions, Organisation, VideoSample,
};
use conclave_types::MeetingId;
use process::{Process, Usage};
use serde_json::{json, Value};

/// Load harness for one Conclave call.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Participants in the call.
    #[arg(long, default_value_t = 10)]
    participants: usize,
    /// How many of them send video.
    #[arg(long, default_value_t = 1)]
    video_senders: usize,
    /// How many of them send audio (default: all; in a large meeting most are muted). At most
    /// 25, the most a participant hears at once.
    #[arg(long)]
    audio_senders: Option<usize>,
    /// Video frames per second of each video sender (they send the 640x360, ~1.3 Mbit/s
    /// sample at 30 frames a second).
    #[arg(long, default_value_t = 30)]
    fps: u32,
    /// Length of each measurement window.
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// How often a latecomer joins the loaded call to time join → first decrypted frame.
    #[arg(long, default_value_t = 5)]
    joins: usize,
    /// The `conclave` server binary (default: next to this one).
    #[arg(long)]
    server_bin: Option<PathBuf>,
    /// The `conclave-relay` binary (default: next to this one).
    #[arg(long)]
    relay_bin: Option<PathBuf>,
    /// Print the results as one JSON document.
    #[arg(long)]
    json: bool,
}

fn sibling(name: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let path = exe.with_file_name(name);
    if !path.exists() {
        bail!(
            "{} not found: build it (cargo build --release -p {name}) or name it with --{}-bin",
            path.display(),
            if name == "conclave" {
                "server"
            } else {
                "relay"
            }
        );
    }
    Ok(path)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.participants < 2 {
        bail!("--participants must be at least 2");
    }
    let server_bin = match &args.server_bin {
        Some(p) => p.clone(),
        None => sibling("conclave")?,
    };
    let relay_bin = match &args.relay_bin {
        Some(p) => p.clone(),
        None => sibling("conclave-relay")?,
    };
    let sfu = sfu_phase(&args, &server_bin).await?;
    let relay = relay_phase(&args, &relay_bin, &sfu.senders).await?;
    let ratio = sfu.result["server_cpu_ns_per_forwarded_packet"]
        .as_f64()
        .zip(relay["relay_cpu_ns_per_forwarded_packet"].as_f64())
        .map(|(s, r)| s / r);
    let report = json!({
        "participants": args.participants,
        "video_senders": args.video_senders,
        "audio_senders": args.audio_senders.unwrap_or(args.participants),
        "fps": args.fps,
        "seconds": args.seconds,
        "sfu": sfu.result,
        "relay": relay,
        "sfu_to_relay_cpu_ratio": ratio,
    });
    if args.json {
        println!("{report}");
    } else {
        print_report(&report);
    }
    Ok(())
}

/// Longer than a frame takes from a sender's pacer to a receiver's count on loopback.
const PIPELINE_DELAY: Duration = Duration::from_millis(1_000);

/// What one participant sent during the SFU window: the relay phase sends the same.
#[derive(Debug, Clone, Copy)]
struct Sender {
    datagrams_per_second: f64,
    bytes_per_datagram: usize,
}

struct SfuPhase {
    result: Value,
    senders: Vec<Sender>,
}

/// A running server with its accounts.
struct Server {
    process: Process,
    base: String,
    pem: Vec<u8>,
    admin_password: String,
    _dir: tempfile::TempDir,
}

fn start_server(bin: &std::path::Path) -> anyhow::Result<Server> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    let config = format!(
        "[server]\nlisten = [\"127.0.0.1:0\"]\n\
         [media]\nlisten = \"127.0.0.1:0\"\n\
         [storage]\ndata_dir = \"{}\"\n\
         [limits]\nmeeting_lookups_per_minute_per_client = 100000\n\
         meeting_lookups_per_minute_per_user = 100000\n\
         [networks]\noffice = [\"127.0.0.0/8\"]\n",
        data.display()
    );
    let path = dir.path().join("conclave.toml");
    std::fs::write(&path, config)?;
    let mut command = Command::new(bin);
    command
        .arg("--config")
        .arg(&path)
        .arg("serve")
        // the server's log level: CONCLAVE_SERVER_LOG, e.g. `conclave_sfu=debug`
        .env(
            "CONCLAVE_LOG",
            std::env::var("CONCLAVE_SERVER_LOG").unwrap_or_else(|_| "warn".into()),
        );
    let process = Process::start(command)?;
    let (mut base, mut admin_password) = (String::new(), String::new());
    loop {
        let line = process.line()?;
        if let Some(p) = line.strip_prefix("  password: ") {
            admin_password = p.to_owned();
        } else if let Some(url) = line.strip_prefix("listening on ") {
            base = url.to_owned();
        } else if line.starts_with("Conclave is ready") {
            break;
        }
    }
    let pem = std::fs::read(data.join("tls/cert.pem"))?;
    Ok(Server {
        process,
        base,
        pem,
        admin_password,
        _dir: dir,
    })
}

struct Person {
    name: String,
    password: String,
    client: Client,
    device: Device,
}

/// Creates `n` accounts (the first an organiser), signs each in, registers a device each, and
/// schedules an internal meeting with everyone invited.
async fn populate(
    server: &Server,
    n: usize,
) -> anyhow::Result<(MeetingId, Organisation, Vec<Person>)> {
    let mut admin = Client::new(&server.base, Some(&server.pem))?;
    admin.sign_in("admin", &server.admin_password).await?;
    let mut people = Vec::with_capacity(n);
    let mut names = Vec::with_capacity(n);
    for i in 0..n {
        let name = format!("load{i:03}");
        let role = if i == 0 { "organiser" } else { "member" };
        let (status, v) = admin
            .request(
                "POST",
                "/api/users",
                Some(json!({"name": name, "display_name": format!("Load {i}"), "role": role})),
            )
            .await?;
        if status != 201 {
            bail!("creating {name}: {status} {v}");
        }
        let password = v["generated_password"]
            .as_str()
            .context("generated password")?
            .to_owned();
        let mut client = Client::new(&server.base, Some(&server.pem))?;
        client.sign_in(&name, &password).await?;
        let device = client.register_device("load").await?;
        names.push(name.clone());
        people.push(Person {
            name,
            password,
            client,
            device,
        });
    }
    let now = time::OffsetDateTime::now_utc();
    let rfc3339 = |t: time::OffsetDateTime| {
        t.format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default()
    };
    let (status, v) = people[0]
        .client
        .request(
            "POST",
            "/api/meetings",
            Some(json!({
                "title": "Load",
                "agenda": "",
                "classification": "internal",
                "starts_at": rfc3339(now - time::Duration::minutes(1)),
                "ends_at": rfc3339(now + time::Duration::hours(4)),
                "invitees": names[1..],
            })),
        )
        .await?;
    if status != 201 {
        bail!("scheduling the meeting: {status} {v}");
    }
    let meeting: MeetingId = v["id"]
        .as_str()
        .context("meeting id")?
        .parse()
        .map_err(|e| anyhow::anyhow!("meeting id: {e:?}"))?;
    let organisation = people[0].client.organisation().await?;
    Ok((meeting, organisation, people))
}

/// Asks to join as `device` and, admitted, opens the call: the call, and when the policy's
/// answer came.
async fn enter(
    client: &Client,
    device: &Device,
    meeting: &MeetingId,
    organisation: &Organisation,
    options: MediaOptions,
) -> anyhow::Result<(Call, Instant)> {
    let JoinAnswer::Admitted { ticket } = client.join(meeting, device).await? else {
        bail!("a load participant was not admitted");
    };
    let admitted = Instant::now();
    let call = client
        .connect_with(meeting, device, organisation, ticket, options)
        .await?;
    Ok((call, admitted))
}

/// Counters of every participant at one instant.
#[derive(Debug, Default, Clone)]
struct Snapshot {
    at: Option<Instant>,
    server: Usage,
    harness: Usage,
    datagrams_in: Vec<u64>,
    datagrams_out: Vec<u64>,
    bytes_out: Vec<u64>,
    frames_sent: Vec<u64>,
    frames_received: u64,
    altered: u64,
    undecryptable: u64,
}

fn snapshot(server: &Server, calls: &[Call]) -> anyhow::Result<Snapshot> {
    let mut s = Snapshot {
        at: Some(Instant::now()),
        server: server.process.usage()?,
        harness: Usage::own()?,
        ..Snapshot::default()
    };
    for call in calls {
        call.with(|c| {
            s.datagrams_in.push(c.received.datagrams_in);
            s.datagrams_out.push(c.received.datagrams_out);
            s.bytes_out.push(c.received.bytes_out);
            let stats = c.media.as_ref().map(|m| m.stats().clone());
            s.frames_sent
                .push(stats.as_ref().map_or(0, |st| st.audio_sent + st.video_sent));
            s.undecryptable += stats.map_or(0, |st| st.dropped.total());
            s.frames_received += c.received.audio_intact.values().sum::<u64>()
                + c.received.video_intact.values().sum::<u64>();
            s.altered += c.received.altered;
        });
    }
    Ok(s)
}

async fn sfu_phase(args: &Args, server_bin: &std::path::Path) -> anyhow::Result<SfuPhase> {
    let server = start_server(server_bin)?;
    eprintln!(
        "conclave-load: server up ({}); creating {} accounts",
        server.base,
        args.participants + 1
    );
    let (meeting, organisation, people) = populate(&server, args.participants + 1).await?;
    let idle = server.process.usage()?;

    // Every participant takes a slot for every sender, so that every frame sent is expected
    // at every other participant (the SFU's slot limit: conclave_sfu::MAX_SLOTS_PER_KIND).
    let audio_senders = args.audio_senders.unwrap_or(args.participants);
    if audio_senders.max(args.video_senders) > 25 {
        bail!(
            "at most 25 audio and 25 video senders: a participant hears and sees at most 25 \
             others at once (the last speakers), and this harness expects every frame sent at \
             every receiver"
        );
    }
    let slots = Slots {
        audio: audio_senders.max(1),
        video: args.video_senders.max(1),
    };
    let mut calls = Vec::with_capacity(args.participants);
    for (i, person) in people.iter().take(args.participants).enumerate() {
        let options = MediaOptions {
            audio: i < audio_senders,
            video: i < args.video_senders,
            video_fps: args.fps,
            video_sample: VideoSample::Hd,
            slots,
            ..MediaOptions::default()
        };
        let (call, _) = enter(
            &person.client,
            &person.device,
            &meeting,
            &organisation,
            options,
        )
        .await?;
        if !call
            .wait_for(Duration::from_secs(60), |s| s.participant.epoch().is_some())
            .await
        {
            bail!("participant {i} did not get into the group within a minute");
        }
        calls.push(call);
        if (i + 1) % 10 == 0 {
            eprintln!("conclave-load: {} in the call", i + 1);
        }
    }
    let settled = tokio::time::timeout(Duration::from_secs(120), async {
        loop {
            let epochs: Vec<_> = calls
                .iter()
                .map(|c| {
                    c.with(|s| {
                        (
                            s.participant.epoch(),
                            s.media.as_ref().map(|m| m.is_connected()),
                        )
                    })
                })
                .collect();
            if epochs
                .iter()
                .all(|e| e.1 == Some(true) && e.0 == epochs[0].0)
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    if settled.is_err() {
        let mut views = std::collections::BTreeMap::new();
        for call in &calls {
            let view = call.with(|s| {
                (
                    s.participant.epoch(),
                    s.media.as_ref().map(|m| m.is_connected()),
                    s.closed.clone(),
                )
            });
            *views.entry(format!("{view:?}")).or_insert(0) += 1;
        }
        bail!(
            "the call did not settle (same epoch, media connected) within two minutes; \
             (epoch, media connected, closed) -> participants: {views:?}"
        );
    }
    // let key frames, rates and receivers' jitter buffers settle after the last join
    tokio::time::sleep(Duration::from_secs(5)).await;
    let loaded = server.process.usage()?;
    eprintln!(
        "conclave-load: {} participants in the call; measuring {} s",
        args.participants, args.seconds
    );
    // What is received is read one pipeline delay after what is sent, so that the frames
    // counted at the receivers are the ones sent in the window.
    let before = snapshot(&server, &calls)?;
    tokio::time::sleep(PIPELINE_DELAY).await;
    let before_received = snapshot(&server, &calls)?;
    tokio::time::sleep(Duration::from_secs(args.seconds).saturating_sub(PIPELINE_DELAY)).await;
    let after = snapshot(&server, &calls)?;
    tokio::time::sleep(PIPELINE_DELAY).await;
    let after_received = snapshot(&server, &calls)?;

    // A latecomer joins the loaded call, repeatedly, on a thread and runtime of its own as
    // on a device of its own: on the harness's runtime its every step would queue behind the
    // tasks of the N participants already in the call.
    let latecomer = people.last().context("latecomer")?;
    let (mut latencies, mut phases) = std::thread::scope(|scope| {
        scope
            .spawn(|| {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?
                    .block_on(join_repeatedly(
                        (&server.base, &server.pem),
                        latecomer,
                        &meeting,
                        &organisation,
                        args.joins,
                    ))
            })
            .join()
            .map_err(|_| anyhow::anyhow!("the latecomer's thread panicked"))?
    })?;
    for call in calls {
        call.leave().await;
    }
    server.process.terminate()?;

    let window = after
        .at
        .zip(before.at)
        .map_or(0.0, |(a, b)| a.duration_since(b).as_secs_f64());
    let delta = |a: &[u64], b: &[u64]| -> Vec<u64> {
        a.iter().zip(b).map(|(a, b)| a.saturating_sub(*b)).collect()
    };
    let received: u64 = delta(&after.datagrams_in, &before.datagrams_in)
        .iter()
        .sum();
    let sent_per = delta(&after.datagrams_out, &before.datagrams_out);
    let bytes_per = delta(&after.bytes_out, &before.bytes_out);
    let frames_sent: u64 = delta(&after.frames_sent, &before.frames_sent).iter().sum();
    let expected_frames = frames_sent * (args.participants as u64 - 1);
    let frames_received = after_received.frames_received - before_received.frames_received;
    let server_cpu = after.server.cpu_since(&before.server);
    let harness_cpu = after.harness.cpu_since(&before.harness);
    let senders = sent_per
        .iter()
        .zip(&bytes_per)
        .map(|(d, b)| Sender {
            datagrams_per_second: *d as f64 / window,
            bytes_per_datagram: usize::try_from(b / (*d).max(1)).unwrap_or(1200),
        })
        .collect();
    latencies.sort_by(f64::total_cmp);
    let result = json!({
        "window_seconds": window,
        "forwarded_packets_per_second": received as f64 / window,
        "received_packets_per_second": sent_per.iter().sum::<u64>() as f64 / window,
        "server_cpu_ns_per_forwarded_packet": server_cpu as f64 / received.max(1) as f64,
        "server_cpu_cores": server_cpu as f64 / 1e9 / window,
        "harness_cpu_cores": harness_cpu as f64 / 1e9 / window,
        "server_rss_idle_bytes": idle.rss_bytes,
        "server_rss_loaded_bytes": loaded.rss_bytes,
        "server_memory_per_participant_bytes":
            loaded.rss_bytes.saturating_sub(idle.rss_bytes) / args.participants as u64,
        "frames_sent": frames_sent,
        "frames_expected": expected_frames,
        "frames_received_intact": frames_received,
        "frame_loss": loss(frames_received, expected_frames),
        "frames_altered": after_received.altered - before_received.altered,
        "frames_undecryptable": after_received.undecryptable - before_received.undecryptable,
        "join_to_first_frame_ms": latencies,
        "join_phases_median_ms": {
            "admitted": median(&mut phases.admitted),
            "signalling": median(&mut phases.connected),
            "media_offer": median(&mut phases.offered),
            "in_group": median(&mut phases.in_group),
            "media_answer": median(&mut phases.answered),
            "media_connected": median(&mut phases.media_up),
        },
        "join_to_first_frame_median_ms": latencies.get(latencies.len() / 2),
        "joins_without_a_frame_in_10_s": args.joins - latencies.len(),
    });
    Ok(SfuPhase { result, senders })
}

/// Joins `times` times, each time until the first remote frame opens (or 10 s pass), then
/// leaves: the join latencies (ms) and the steps' times.
async fn join_repeatedly(
    (base, pem): (&str, &[u8]),
    latecomer: &Person,
    meeting: &MeetingId,
    organisation: &Organisation,
    times: usize,
) -> anyhow::Result<(Vec<f64>, JoinPhases)> {
    let mut latencies = Vec::new();
    let mut phases = JoinPhases::default();
    // signed in again here, so that its HTTP connections live on this runtime too
    let mut client = Client::new(base, Some(pem))?;
    client.sign_in(&latecomer.name, &latecomer.password).await?;
    for _ in 0..times {
        let asked = Instant::now();
        let since = |t: Instant| t.duration_since(asked).as_secs_f64() * 1000.0;
        let (call, admitted) = enter(
            &client,
            &latecomer.device,
            meeting,
            organisation,
            MediaOptions::default(),
        )
        .await?;
        phases.admitted.push(since(admitted));
        phases.connected.push(since(Instant::now()));
        call.wait_for(Duration::from_secs(10), |s| {
            s.received.first_frame.is_some()
        })
        .await;
        let received = call.with(|s| s.received.clone());
        phases.offered.extend(received.offered.map(since));
        phases.in_group.extend(received.in_group.map(since));
        phases.answered.extend(received.answered.map(since));
        phases.media_up.extend(received.connected.map(since));
        latencies.extend(received.first_frame.map(since));
        call.leave().await;
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    Ok((latencies, phases))
}

/// When each step of a latecomer's join was done, in ms from its join request: the policy
/// admitted it, its signalling connection is open, it offered media (on the roster), it holds
/// the group's keys (Welcome processed), the SFU answered its offer, ICE and DTLS are up.
#[derive(Debug, Default)]
struct JoinPhases {
    admitted: Vec<f64>,
    connected: Vec<f64>,
    offered: Vec<f64>,
    in_group: Vec<f64>,
    answered: Vec<f64>,
    media_up: Vec<f64>,
}

/// The share of what was expected in a window that did not arrive. What was in flight when
/// the window opened arrives inside it without having been counted as sent, so a window
/// without loss can receive a little more than expected: that reads as no loss.
fn loss(received: u64, expected: u64) -> f64 {
    (1.0 - received as f64 / expected.max(1) as f64).max(0.0)
}

fn median(values: &mut [f64]) -> Option<f64> {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied()
}

/// Sends what each participant sent in the SFU phase (same datagram rate and size) through
/// the bare relay, which forwards every datagram to every other participant.
async fn relay_phase(
    args: &Args,
    relay_bin: &std::path::Path,
    senders: &[Sender],
) -> anyhow::Result<Value> {
    let mut relay = Process::start({
        let mut c = Command::new(relay_bin);
        c.arg("--listen").arg("127.0.0.1:0");
        c
    })?;
    let line = relay.line()?;
    let address: SocketAddr = line
        .strip_prefix("relay on udp://")
        .with_context(|| format!("unexpected first line from the relay: {line}"))?
        .parse()?;
    let received = Arc::new(AtomicU64::new(0));
    let sent = Arc::new(AtomicU64::new(0));
    let mut sockets = Vec::new();
    for _ in senders {
        let socket = Arc::new(tokio::net::UdpSocket::bind("127.0.0.1:0").await?);
        // announce: the relay learns its peers from their first datagram
        socket.send_to(b"hello", address).await?;
        sockets.push(socket);
    }
    let mut tasks = Vec::new();
    for socket in &sockets {
        let (socket, received) = (Arc::clone(socket), Arc::clone(&received));
        tasks.push(tokio::spawn(async move {
            let mut buf = vec![0u8; 2048];
            while socket.recv_from(&mut buf).await.is_ok() {
                received.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = (
        relay.usage()?,
        received.load(Ordering::Relaxed),
        Instant::now(),
    );
    let stop = Instant::now() + Duration::from_secs(args.seconds);
    for (socket, sender) in sockets.iter().zip(senders) {
        if sender.datagrams_per_second <= 0.0 {
            continue;
        }
        let (socket, sent, sender) = (Arc::clone(socket), Arc::clone(&sent), *sender);
        tasks.push(tokio::spawn(async move {
            let payload = vec![0x80u8; sender.bytes_per_datagram.clamp(1, 1500)];
            let mut tick =
                tokio::time::interval(Duration::from_secs_f64(1.0 / sender.datagrams_per_second));
            while Instant::now() < stop {
                tick.tick().await;
                if socket.send_to(&payload, address).await.is_ok() {
                    sent.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    tokio::time::sleep_until(tokio::time::Instant::from_std(stop)).await;
    // what is in flight arrives
    tokio::time::sleep(Duration::from_millis(200)).await;
    let after = (
        relay.usage()?,
        received.load(Ordering::Relaxed),
        Instant::now(),
    );
    let stats = relay.close_stdin()?;
    for task in tasks {
        task.abort();
    }
    let forwarded = after.1 - before.1;
    let window = after.2.duration_since(before.2).as_secs_f64();
    let cpu = after.0.cpu_since(&before.0);
    let sent = sent.load(Ordering::Relaxed);
    let expected = sent * (senders.len() as u64 - 1);
    Ok(json!({
        "window_seconds": window,
        "forwarded_packets_per_second": forwarded as f64 / window,
        "relay_cpu_ns_per_forwarded_packet": cpu as f64 / forwarded.max(1) as f64,
        "relay_cpu_cores": cpu as f64 / 1e9 / window,
        "packet_loss": loss(forwarded, expected),
        "relay_stats": serde_json::from_str::<Value>(&stats).unwrap_or(Value::Null),
    }))
}

fn print_report(r: &Value) {
    let s = &r["sfu"];
    let b = &r["relay"];
    println!(
        "{} participants, {} audio and {} video sender(s) at {} fps, {} s windows",
        r["participants"], r["audio_senders"], r["video_senders"], r["fps"], r["seconds"]
    );
    println!("SFU (conclave serve):");
    println!(
        "  forwarded {:.0} packets/s, server CPU {:.0} ns per forwarded packet ({:.2} cores)",
        s["forwarded_packets_per_second"].as_f64().unwrap_or(0.0),
        s["server_cpu_ns_per_forwarded_packet"]
            .as_f64()
            .unwrap_or(0.0),
        s["server_cpu_cores"].as_f64().unwrap_or(0.0)
    );
    println!(
        "  memory per participant {:.1} KiB (RSS idle {:.1} MiB, loaded {:.1} MiB)",
        s["server_memory_per_participant_bytes"]
            .as_f64()
            .unwrap_or(0.0)
            / 1024.0,
        s["server_rss_idle_bytes"].as_f64().unwrap_or(0.0) / 1048576.0,
        s["server_rss_loaded_bytes"].as_f64().unwrap_or(0.0) / 1048576.0
    );
    println!(
        "  frames: {} sent x receivers = {} expected, {} received intact (loss {:.2} %), {} altered, {} undecryptable",
        s["frames_sent"],
        s["frames_expected"],
        s["frames_received_intact"],
        s["frame_loss"].as_f64().unwrap_or(0.0) * 100.0,
        s["frames_altered"],
        s["frames_undecryptable"]
    );
    println!(
        "  join -> first decrypted frame: median {} ms of {}",
        s["join_to_first_frame_median_ms"]
            .as_f64()
            .map_or("-".into(), |m| format!("{m:.0}")),
        s["join_to_first_frame_ms"]
    );
    let phase = |name: &str| {
        s["join_phases_median_ms"][name]
            .as_f64()
            .map_or("-".into(), |m| format!("{m:.0}"))
    };
    println!(
        "  join phases (median ms from the request): admitted {}, signalling {}, media offered {}, in the group {}, media answered {}, connected {}",
        phase("admitted"),
        phase("signalling"),
        phase("media_offer"),
        phase("in_group"),
        phase("media_answer"),
        phase("media_connected")
    );
    println!(
        "  participants (this process) used {:.2} cores",
        s["harness_cpu_cores"].as_f64().unwrap_or(0.0)
    );
    println!("bare relay (conclave-relay), same datagram rates and sizes:");
    println!(
        "  forwarded {:.0} packets/s, relay CPU {:.0} ns per forwarded packet, loss {:.2} %",
        b["forwarded_packets_per_second"].as_f64().unwrap_or(0.0),
        b["relay_cpu_ns_per_forwarded_packet"]
            .as_f64()
            .unwrap_or(0.0),
        b["packet_loss"].as_f64().unwrap_or(0.0) * 100.0
    );
    match r["sfu_to_relay_cpu_ratio"].as_f64() {
        Some(x) => println!("SFU / relay CPU per forwarded packet: {x:.1}x"),
        None => println!("SFU / relay CPU per forwarded packet: not measured"),
    }
}
