//! A bare UDP fan-out relay: every datagram a peer sends is forwarded, unchanged, to every
//! other peer.
//!
//! # Why this exists
//!
//! Conclave's load harness quotes the SFU's server CPU cost per forwarded packet against this
//! relay, run on the same load in the same run. The relay does the least work that still
//! delivers the same fan-out: no ICE, DTLS, SRTP, RTCP, congestion control or routing policy,
//! just `recvmmsg` of up to [`BATCH`] datagrams and `sendmmsg` of each to every other peer.
//! Whatever the SFU costs above this floor is the price of being an SFU rather than a packet
//! pump; a number without this baseline says little, because kernel UDP cost dominates both.
//!
//! # Why it is written by hand
//!
//! No crate provides a bare fan-out relay: TURN servers and media relays all carry protocol
//! work (allocations, permissions, authentication) that would blur the baseline. It is a
//! hundred lines over the safe `recvmmsg`/`sendmmsg` wrappers of the `nix` crate, so this
//! crate keeps the workspace's `forbid(unsafe_code)`.
//!
//! # Run loop
//!
//! [`serve`] blocks: receive a batch (waiting at most the socket's read timeout, so `stop` is
//! checked regularly), learn new peers from source addresses, build one send list for the whole
//! batch, send it with as few `sendmmsg` calls as fit, repeat. In the steady state it allocates
//! nothing: datagram buffers, message headers, address and I/O-vector lists are reused.
//!
//! ```no_run
//! use std::net::UdpSocket;
//! use std::sync::atomic::AtomicBool;
//!
//! let socket = UdpSocket::bind("127.0.0.1:0")?;
//! let stop = AtomicBool::new(false); // set from another thread to end the loop
//! let stats = conclave_relay::serve(socket, &stop)?;
//! println!("{} datagrams forwarded", stats.forwarded_packets);
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! Linux only (`recvmmsg`/`sendmmsg`).

use std::collections::HashMap;
use std::io;
use std::io::{IoSlice, IoSliceMut};
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::socket::{recvmmsg, sendmmsg, MsgFlags, MultiHeaders, SockaddrLike, SockaddrStorage};

/// Most datagrams read by one `recvmmsg` call.
pub const BATCH: usize = 64;

/// Receive buffer per datagram: the largest UDP payload, so nothing is ever truncated.
const MAX_DATAGRAM: usize = 65_536;

/// Most datagrams handed to one `sendmmsg` call (Linux caps a call at `UIO_MAXIOV` = 1024).
const SEND_BATCH: usize = 1024;

/// How long one receive waits before `stop` is checked again.
const READ_TIMEOUT: Duration = Duration::from_millis(100);

/// What one [`serve`] run did, returned when it stops.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct RelayStats {
    /// Datagrams received, from any source.
    pub received_packets: u64,
    /// Payload bytes of the datagrams received.
    pub received_bytes: u64,
    /// Datagrams sent: one per received datagram and other peer known at that time.
    pub forwarded_packets: u64,
    /// Payload bytes of the datagrams sent.
    pub forwarded_bytes: u64,
    /// Distinct source addresses learned.
    pub peers: u64,
    /// Forwards the kernel refused (each is one datagram to one peer, dropped).
    pub send_errors: u64,
}

/// Relays datagrams on `socket` until `stop` is set, then returns what it did.
///
/// A peer is any source address that has sent a datagram; it is learned from its first one
/// and kept for the rest of the run. Every datagram received is sent to every other known
/// peer (a first datagram goes to the peers known before it), never back to its sender.
///
/// The socket's read timeout is set to 100 ms so that `stop` is seen within about that long.
///
/// # Errors
///
/// An I/O error from setting the timeout or from receiving (other than a timeout or an
/// interruption). A failed send is not an error: it is counted in
/// [`RelayStats::send_errors`] and the relay carries on.
pub fn serve(socket: UdpSocket, stop: &AtomicBool) -> io::Result<RelayStats> {
    socket.set_read_timeout(Some(READ_TIMEOUT))?;
    let fd = socket.as_raw_fd();
    let mut relay = Relay::default();

    // Everything the loop touches is allocated here, once.
    let mut buffers = vec![0u8; BATCH * MAX_DATAGRAM];
    let mut recv_headers = MultiHeaders::<SockaddrStorage>::preallocate(BATCH, None);
    let mut send_headers = MultiHeaders::<SockaddrStorage>::preallocate(SEND_BATCH, None);
    // (length, sender's peer index, peers known on its arrival) of each datagram of a batch.
    let mut batch: Vec<(usize, usize, usize)> = Vec::with_capacity(BATCH);
    // One destination and one datagram per forward, in the same order.
    let mut dests: Vec<Option<SockaddrStorage>> = Vec::new();
    // The send list borrows the buffers, so it is rebuilt each batch; `recycle` keeps its
    // allocation across batches.
    let mut send_spare: Vec<[IoSlice<'static>; 1]> = Vec::new();

    while !stop.load(Ordering::Relaxed) {
        batch.clear();
        {
            // On the stack: nix's `recvmmsg` borrows these for as long as their own lifetime,
            // so they cannot outlive one call.
            let mut iovs: [[IoSliceMut<'_>; 1]; BATCH] =
                std::array::from_fn(|_| [IoSliceMut::new(&mut [])]);
            for (iov, buffer) in iovs.iter_mut().zip(buffers.chunks_exact_mut(MAX_DATAGRAM)) {
                *iov = [IoSliceMut::new(buffer)];
            }
            match recvmmsg(
                fd,
                &mut recv_headers,
                iovs.iter_mut(),
                MsgFlags::MSG_WAITFORONE,
                None,
            ) {
                Ok(received) => {
                    for msg in received {
                        if let Some(source) = msg.address {
                            let source = relay.peer_index(source);
                            batch.push((msg.bytes, source, relay.peers.len()));
                        }
                    }
                }
                Err(Errno::EAGAIN | Errno::EINTR | Errno::ECONNREFUSED) => {}
                Err(e) => return Err(e.into()),
            }
        }
        if batch.is_empty() {
            continue;
        }

        let mut iovs = recycle(std::mem::take(&mut send_spare));
        dests.clear();
        for (&(len, source, known), buffer) in batch.iter().zip(buffers.chunks_exact(MAX_DATAGRAM))
        {
            relay.stats.received_packets += 1;
            relay.stats.received_bytes += len as u64;
            let datagram = &buffer[..len];
            // Only the peers known when this datagram arrived, not those learned later in
            // the same batch.
            for (index, peer) in relay.peers[..known].iter().enumerate() {
                if index != source {
                    iovs.push([IoSlice::new(datagram)]);
                    dests.push(Some(*peer));
                }
            }
        }
        relay.send_all(fd, &mut send_headers, &iovs, &dests);
        send_spare = recycle(iovs);
    }
    Ok(relay.stats)
}

/// The relay's state across batches: the peers and the counters.
#[derive(Default)]
struct Relay {
    /// Known peers in the order they were learned.
    peers: Vec<SockaddrStorage>,
    /// Index into `peers` by address.
    index: HashMap<SocketAddr, usize>,
    stats: RelayStats,
}

impl Relay {
    /// The index of the peer at `source`, learning it if it is new.
    fn peer_index(&mut self, source: SockaddrStorage) -> usize {
        let key = socket_addr(&source);
        if let Some(&index) = self.index.get(&key) {
            return index;
        }
        let index = self.peers.len();
        self.peers.push(source);
        self.index.insert(key, index);
        self.stats.peers += 1;
        index
    }

    /// Sends `iovs[i]` to `dests[i]` for every `i`, skipping (and counting) any the kernel
    /// refuses.
    fn send_all(
        &mut self,
        fd: std::os::fd::RawFd,
        headers: &mut MultiHeaders<SockaddrStorage>,
        iovs: &[[IoSlice<'_>; 1]],
        dests: &[Option<SockaddrStorage>],
    ) {
        let mut next = 0;
        while next < iovs.len() {
            // `sendmmsg` sends the datagrams in order and stops at the first one that fails;
            // if that was the first of the call, it returns the error instead.
            match sendmmsg(
                fd,
                headers,
                &iovs[next..],
                &dests[next..],
                [],
                MsgFlags::empty(),
            ) {
                Ok(sent) => {
                    // nix only tells how many were sent through this iterator. (Its `next`
                    // reads the header's own address slot, which `sendmmsg` never fills: a
                    // read of uninitialised bytes inside nix, harmless in practice; rustix's
                    // `sendmmsg` returns the count directly but has no `recvmmsg`.)
                    let sent = sent.count().min(iovs.len() - next);
                    if sent == 0 {
                        // Not supposed to happen for a non-empty call; counting it as a
                        // refusal keeps the loop finite.
                        self.stats.send_errors += 1;
                        next += 1;
                        continue;
                    }
                    for iov in &iovs[next..next + sent] {
                        self.stats.forwarded_packets += 1;
                        self.stats.forwarded_bytes += iov[0].len() as u64;
                    }
                    next += sent;
                }
                Err(Errno::EINTR) => {}
                Err(_) => {
                    self.stats.send_errors += 1;
                    next += 1;
                }
            }
        }
    }
}

/// The standard form of a source address, for the peer index.
fn socket_addr(address: &SockaddrStorage) -> SocketAddr {
    if let Some(v4) = address.as_sockaddr_in() {
        SocketAddr::V4((*v4).into())
    } else if let Some(v6) = address.as_sockaddr_in6() {
        SocketAddr::V6((*v6).into())
    } else {
        // A UDP socket only receives from IP sources; anything else maps to one placeholder
        // peer rather than a panic.
        SocketAddr::from(([0, 0, 0, 0], address.len() as u16))
    }
}

/// Empties `vec` and hands its allocation back with a new lifetime for the slices it will hold.
/// Collecting a by-value iterator of a same-layout type into a `Vec` reuses the source
/// allocation, so this does not allocate.
#[expect(
    clippy::unnecessary_filter_map,
    reason = "`filter` cannot change the element type; the new lifetime is the point"
)]
fn recycle<'b>(vec: Vec<[IoSlice<'_>; 1]>) -> Vec<[IoSlice<'b>; 1]> {
    vec.into_iter().filter_map(|_| None).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recycling_keeps_the_allocation() {
        let data = [0u8; 4];
        let mut vec: Vec<[IoSlice<'_>; 1]> = Vec::with_capacity(100);
        vec.extend((0..50).map(|_| [IoSlice::new(&data)]));
        let pointer = vec.as_ptr() as usize;
        let recycled: Vec<[IoSlice<'static>; 1]> = recycle(vec);
        assert!(recycled.is_empty());
        assert_eq!(recycled.capacity(), 100);
        assert_eq!(recycled.as_ptr() as usize, pointer);
    }

    #[test]
    fn socket_addr_round_trips_ip_addresses() {
        for text in ["127.0.0.2:4000", "[::1]:5000"] {
            let addr: SocketAddr = text.parse().expect("literal address");
            assert_eq!(socket_addr(&SockaddrStorage::from(addr)), addr);
        }
    }
}
