//! The relay over real UDP on loopback: the library on a thread, and the binary as a process.

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, UdpSocket};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use conclave_relay::{serve, RelayStats};

const PER_PEER: usize = 200;

/// A peer socket on `ip` that gives up reading after `timeout`.
fn peer(ip: &str, timeout: Duration) -> UdpSocket {
    let socket = UdpSocket::bind((ip, 0)).expect("bind a loopback peer");
    socket
        .set_read_timeout(Some(timeout))
        .expect("set the peer's read timeout");
    socket
}

/// Receives one datagram, checking it came from the relay; `None` on timeout.
fn receive(socket: &UdpSocket, relay: SocketAddr) -> Option<Vec<u8>> {
    let mut buffer = [0u8; 2048];
    match socket.recv_from(&mut buffer) {
        Ok((len, from)) => {
            assert_eq!(from, relay, "datagram not from the relay");
            Some(buffer[..len].to_vec())
        }
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) =>
        {
            None
        }
        Err(e) => panic!("peer receive failed: {e}"),
    }
}

/// Datagram `seq` of peer `name`, of a length that varies with `seq`.
fn datagram(name: usize, seq: usize) -> Vec<u8> {
    let mut bytes = format!("peer {name} datagram {seq} ").into_bytes();
    bytes.resize(bytes.len() + seq % 97 * 11, b'a' + (name as u8));
    bytes
}

#[test]
fn each_datagram_reaches_every_other_peer_once_and_intact() {
    let relay_socket = UdpSocket::bind("127.0.0.1:0").expect("bind the relay");
    let relay = relay_socket.local_addr().expect("relay address");
    let stop = Arc::new(AtomicBool::new(false));
    let server = {
        let stop = Arc::clone(&stop);
        thread::spawn(move || serve(relay_socket, &stop))
    };

    let ips = ["127.0.0.1", "127.0.0.2", "127.0.0.3"];
    let peers: Vec<UdpSocket> = ips
        .iter()
        .map(|ip| peer(ip, Duration::from_secs(5)))
        .collect();

    // Registration, one peer at a time: a hello reaches exactly the peers registered before it,
    // and seeing it arrive proves its sender is registered too.
    let mut hello_bytes = 0;
    for (i, socket) in peers.iter().enumerate() {
        let hello = format!("hello from {i}").into_bytes();
        hello_bytes += hello.len();
        socket.send_to(&hello, relay).expect("send hello");
        for earlier in &peers[..i] {
            assert_eq!(receive(earlier, relay), Some(hello.clone()));
        }
    }

    // Every peer sends its datagrams (paced, so no loopback buffer overflows) while reading
    // the others' on a second handle of the same socket.
    let handles: Vec<_> = peers
        .iter()
        .enumerate()
        .map(|(name, socket)| {
            let sender = socket.try_clone().expect("clone peer socket");
            let receiver = socket.try_clone().expect("clone peer socket");
            let send = thread::spawn(move || {
                for seq in 0..PER_PEER {
                    sender
                        .send_to(&datagram(name, seq), relay)
                        .expect("send datagram");
                    thread::sleep(Duration::from_micros(200));
                }
            });
            let receive_all = thread::spawn(move || {
                let mut got = Vec::new();
                while got.len() < 2 * PER_PEER {
                    match receive(&receiver, relay) {
                        Some(bytes) => got.push(bytes),
                        None => break,
                    }
                }
                // Nothing more may follow.
                receiver
                    .set_read_timeout(Some(Duration::from_millis(300)))
                    .expect("shorten read timeout");
                let extra = receive(&receiver, relay);
                (got, extra)
            });
            (send, receive_all)
        })
        .collect();

    let mut data_bytes = 0;
    for (name, (send, receive_all)) in handles.into_iter().enumerate() {
        send.join().expect("sender thread");
        let (got, extra) = receive_all.join().expect("receiver thread");
        assert_eq!(extra, None, "peer {name} got more than the others sent");
        assert_eq!(got.len(), 2 * PER_PEER, "peer {name} missed datagrams");
        let got: HashSet<Vec<u8>> = got.into_iter().collect();
        let expected: HashSet<Vec<u8>> = (0..ips.len())
            .filter(|&other| other != name)
            .flat_map(|other| (0..PER_PEER).map(move |seq| datagram(other, seq)))
            .collect();
        assert_eq!(got, expected, "peer {name} got the wrong datagrams");
        data_bytes += (0..PER_PEER)
            .map(|seq| datagram(name, seq).len())
            .sum::<usize>();
    }

    stop.store(true, Ordering::Relaxed);
    let stats = server
        .join()
        .expect("relay thread")
        .expect("relay ran without error");
    // Hellos reached 0, 1 and 2 peers; each data datagram reached the other 2.
    let hello_forwarded: usize = (0..ips.len())
        .map(|i| i * format!("hello from {i}").len())
        .sum();
    assert_eq!(
        stats,
        RelayStats {
            received_packets: (ips.len() + ips.len() * PER_PEER) as u64,
            received_bytes: (hello_bytes + data_bytes) as u64,
            forwarded_packets: (3 + 2 * ips.len() * PER_PEER) as u64,
            forwarded_bytes: (hello_forwarded + 2 * data_bytes) as u64,
            peers: 3,
            send_errors: 0,
        }
    );
}

#[test]
fn serve_returns_soon_after_stop_with_no_traffic() {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind the relay");
    let stop = Arc::new(AtomicBool::new(false));
    let server = {
        let stop = Arc::clone(&stop);
        thread::spawn(move || serve(socket, &stop))
    };
    thread::sleep(Duration::from_millis(50));
    let asked = Instant::now();
    stop.store(true, Ordering::Relaxed);
    let stats = server.join().expect("relay thread").expect("relay result");
    assert!(asked.elapsed() < Duration::from_secs(1));
    assert_eq!(stats, RelayStats::default());
}

#[test]
fn binary_prints_its_address_relays_and_reports_stats_on_stdin_close() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_conclave-relay"))
        .args(["--listen", "127.0.0.1:0"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start conclave-relay");
    let mut stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
    let mut line = String::new();
    stdout.read_line(&mut line).expect("read address line");
    let relay: SocketAddr = line
        .trim_end()
        .strip_prefix("relay on udp://")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .parse()
        .expect("relay address");

    let a = peer("127.0.0.1", Duration::from_secs(5));
    let b = peer("127.0.0.2", Duration::from_secs(5));
    a.send_to(b"hello a", relay).expect("send");
    b.send_to(b"hello b", relay).expect("send");
    assert_eq!(receive(&a, relay).as_deref(), Some(&b"hello b"[..]));
    for seq in 0..10 {
        a.send_to(&datagram(0, seq), relay).expect("send");
        assert_eq!(receive(&b, relay), Some(datagram(0, seq)));
        b.send_to(&datagram(1, seq), relay).expect("send");
        assert_eq!(receive(&a, relay), Some(datagram(1, seq)));
    }

    drop(child.stdin.take());
    line.clear();
    stdout.read_line(&mut line).expect("read stats line");
    let stats: serde_json::Value = serde_json::from_str(&line).expect("stats line is JSON");
    assert_eq!(stats["received_packets"], 22);
    assert_eq!(stats["forwarded_packets"], 21);
    assert_eq!(stats["peers"], 2);
    assert_eq!(stats["send_errors"], 0);
    let data_bytes: usize = (0..10)
        .map(|seq| datagram(0, seq).len() + datagram(1, seq).len())
        .sum();
    assert_eq!(stats["received_bytes"], 14 + data_bytes);
    assert_eq!(stats["forwarded_bytes"], 7 + data_bytes);

    let deadline = Instant::now() + Duration::from_secs(5);
    let status = loop {
        if let Some(status) = child.try_wait().expect("poll child") {
            break status;
        }
        assert!(Instant::now() < deadline, "relay did not exit");
        thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success());
}
