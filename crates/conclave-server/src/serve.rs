//! `conclave serve`: listeners, TLS, periodic work and orderly shutdown.

use std::io::Write as _;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum_server::tls_rustls::RustlsConfig;

use crate::api::{app, now, AppState};
use crate::config::Config;
use crate::setup;

/// Runs the server until SIGINT or SIGTERM.
pub async fn serve(config: Config) -> anyhow::Result<()> {
    let data = setup::open(&config).await?;
    let (cert, key) = config.tls_paths();
    let tls = RustlsConfig::from_config(crate::tls::server_config(&cert, &key)?);
    let state = AppState::new(
        config.clone(),
        data.store.clone(),
        data.audit,
        Arc::clone(&data.key),
    )?;
    let router = app(state.clone());
    anyhow::ensure!(
        !config.media.listen.ip().is_unspecified(),
        "media.listen must be an address participants can reach, not {}",
        config.media.listen
    );
    let (media, media_task) = crate::media::Media::bind(config.media.listen)
        .await
        .with_context(|| format!("binding the media socket {}", config.media.listen))?;
    // Tests and scripts read this line to learn the port chosen for port 0.
    println!("media on udp://{}", media.local_addr());
    let _ = state.media.set(media);
    let _sfu = media_task
        .spawn(state.clone())
        .context("starting the media thread")?;

    let handle = axum_server::Handle::new();
    let mut servers = Vec::new();
    for addr in &config.server.listen {
        let listener = TcpListener::bind(addr).with_context(|| format!("listening on {addr}"))?;
        listener.set_nonblocking(true)?;
        let local = listener.local_addr()?;
        // Tests and scripts read this line to learn the ports chosen for port 0.
        println!("listening on https://{local}");
        // TCP_NODELAY: signalling is many small messages (a commit, a roster update, an SDP
        // answer) each of which should leave at once, not wait for the peer's delayed ACK
        // of the one before (up to 40 ms on Linux).
        let server = axum_server::from_tcp_rustls(listener, tls.clone())
            .map(|tls| tls.acceptor(axum_server::accept::NoDelayAcceptor::new()))
            .handle(handle.clone())
            .serve(
                router
                    .clone()
                    .into_make_service_with_connect_info::<SocketAddr>(),
            );
        servers.push(tokio::spawn(server));
    }
    println!("Conclave is ready at {}", config.server.public_url);
    state
        .audit
        .note(
            now(),
            "system",
            "server.start",
            "server",
            "ok",
            vec![format!(
                "listening on {}",
                config
                    .server
                    .listen
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            )],
        )
        .await?;

    let periodic = tokio::spawn(periodic_work(state.clone()));
    shutdown_signal().await;
    tracing::info!("shutting down");
    // calls first: participants hear "going away" and reconnect once the server is back
    state.calls.shutdown(Duration::from_secs(2)).await;
    handle.graceful_shutdown(Some(Duration::from_secs(5)));
    for server in servers {
        let _ = server.await;
    }
    periodic.abort();

    let t = now();
    state.audit.flush_refusals(t).await?;
    state
        .audit
        .note(t, "system", "server.stop", "server", "ok", vec![])
        .await?;
    state.audit.sign_head(t).await?;
    state.store.close().await;
    // Whoever started the server may be gone by now (its end of stdout closed): a failed
    // write must not turn a clean stop into a panic.
    let _ = writeln!(std::io::stdout(), "stopped; audit log head signed");
    Ok(())
}

/// How often the server looks for devices revoked outside it (the `conclave device revoke`
/// command writes the database directly); revocations through the API reach running calls
/// at once.
const REVOCATION_SWEEP: Duration = Duration::from_secs(1);

/// Signs the audit head, reports aggregated probes, purges expired rows and passes
/// revocations made by other processes to running calls, each on its own period.
async fn periodic_work(state: AppState) {
    let audit = &state.config.audit;
    let mut sign = tokio::time::interval(Duration::from_secs(audit.sign_interval_seconds.into()));
    let mut probes = tokio::time::interval(Duration::from_secs(
        audit.probe_report_interval_seconds.into(),
    ));
    let mut purge = tokio::time::interval(Duration::from_secs(600));
    let mut revocations = tokio::time::interval(REVOCATION_SWEEP);
    for timer in [&mut sign, &mut probes, &mut purge, &mut revocations] {
        timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    }
    let mut swept = now();
    // what the last sweep saw, so that each revocation is passed on once
    let mut seen: std::collections::HashSet<conclave_types::DeviceId> = Default::default();
    loop {
        let result = tokio::select! {
            _ = sign.tick() => state.audit.sign_head(now()).await.map(drop),
            _ = probes.tick() => state.audit.flush_refusals(now()).await,
            _ = purge.tick() => state.store.purge_expired(now()).await,
            _ = revocations.tick() => {
                // Overlapping windows, so that a revocation stamped just before the last
                // sweep but committed after it is still seen; each is passed on once (one
                // made through the API reached the calls already and is passed on again,
                // which changes nothing there).
                let since = swept.saturating_sub(Duration::from_secs(10));
                swept = now();
                state.store.devices_revoked_since(since).await.map(|devices| {
                    let devices: std::collections::HashSet<_> = devices.into_iter().collect();
                    for device in devices.difference(&seen) {
                        state.calls.device_revoked(*device);
                    }
                    seen = devices;
                })
            }
        };
        if let Err(e) = result {
            tracing::error!(error = %e, "periodic work failed");
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
