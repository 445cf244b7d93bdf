//! `conclave-relay`: the bare UDP fan-out relay as a process, for the load harness.
//!
//! Prints `relay on udp://ADDR` once bound, relays until its standard input closes, then
//! prints what it did as one JSON line ([`conclave_relay::RelayStats`]) and exits 0.

use std::io::{Read, Write};
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;

/// Bare UDP fan-out relay: forwards every datagram to every other peer that has sent one.
#[derive(Parser)]
#[command(version, about)]
struct Args {
    /// Address to bind the UDP socket to (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let socket = UdpSocket::bind(args.listen).with_context(|| format!("bind {}", args.listen))?;
    let local = socket.local_addr().context("local address")?;
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "relay on udp://{local}")?;
        out.flush()?;
    }

    // The harness stops the relay by closing its standard input.
    let stop = Arc::new(AtomicBool::new(false));
    let stopper = Arc::clone(&stop);
    std::thread::spawn(move || {
        let mut sink = [0u8; 256];
        let mut stdin = std::io::stdin().lock();
        while matches!(stdin.read(&mut sink), Ok(n) if n > 0) {}
        stopper.store(true, Ordering::Relaxed);
    });

    let stats = conclave_relay::serve(socket, &stop).context("relay")?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", serde_json::to_string(&stats)?)?;
    out.flush()?;
    Ok(())
}
