//! Single probes: one attempt at one port, each run as its own task.
//!
//! An attempt owns its timeout, counted from the moment it actually starts (not from when
//! it was queued), and before giving up it asks the kernel for the socket's state: an
//! answer that arrived while this machine was too busy to notice is still an answer.
//! The timeout is read from [`SharedTimeouts`], which the driver updates as round trips
//! are measured, and re-read at least once per `recheck`, so attempts started before the
//! first answer stop waiting the initial second as soon as one arrives.

use portgate_model::Reason;
use socket2::{Domain, Socket, Type};
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;
use tokio::net::{TcpStream, UdpSocket};
use tokio::time::Instant;

/// What one attempt observed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// TCP: the handshake completed (or a SYN-ACK came back). UDP: a datagram came back.
    Open,
    /// TCP: refused (RST). UDP: ICMP port unreachable.
    Closed,
    /// ICMP host/net unreachable or administratively prohibited.
    Unreachable(Reason),
    /// The local system refused to send.
    LocalRefusal,
    /// The local system ran out of something (descriptors, buffers, local ports):
    /// says nothing about the port.
    Exhausted,
    /// Nothing came back within the host's timeout.
    TimedOut,
}

/// Per-host timeouts in microseconds, written by the driver, read by the attempts.
/// 0 for a host means "no measurement of its own yet: use the scan-wide value".
pub(crate) struct SharedTimeouts {
    pub(crate) global: AtomicU32,
    pub(crate) hosts: Vec<AtomicU32>,
}

impl SharedTimeouts {
    pub(crate) fn new(initial: Duration, hosts: usize) -> Self {
        SharedTimeouts {
            global: AtomicU32::new(micros(initial)),
            hosts: (0..hosts).map(|_| AtomicU32::new(0)).collect(),
        }
    }

    pub(crate) fn get(&self, host: u32) -> Duration {
        let own = self
            .hosts
            .get(host as usize)
            .map_or(0, |t| t.load(Ordering::Relaxed));
        let micros = if own == 0 {
            self.global.load(Ordering::Relaxed)
        } else {
            own
        };
        Duration::from_micros(u64::from(micros))
    }

    pub(crate) fn set_host(&self, host: u32, timeout: Duration) {
        if let Some(slot) = self.hosts.get(host as usize) {
            slot.store(micros(timeout), Ordering::Relaxed);
        }
    }

    pub(crate) fn set_global(&self, timeout: Duration) {
        self.global.store(micros(timeout), Ordering::Relaxed);
    }
}

fn micros(d: Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX).max(1)
}

/// When an attempt stops waiting: its deadline by the host's current timeout, and the
/// next moment to look again at that timeout.
pub(crate) struct Clock<'a> {
    pub(crate) started: Instant,
    pub(crate) timeouts: &'a SharedTimeouts,
    pub(crate) host: u32,
    pub(crate) recheck: Duration,
}

impl Clock<'_> {
    /// None once the timeout has passed; otherwise when to wake next.
    pub(crate) fn next_wake(&self) -> Option<Instant> {
        let now = Instant::now();
        let deadline = self.started + self.timeouts.get(self.host);
        (now < deadline).then(|| deadline.min(now + self.recheck))
    }
}

/// One TCP connection attempt, started at `started`.
///
/// Waits for the socket to become writable (connected or refused), for at most the host's
/// current timeout, re-reading it at least every `recheck`. Before reporting a timeout it
/// asks the kernel directly, so a late wake-up never turns an answer into silence.
pub(crate) async fn connect_once(addr: SocketAddr, clock: Clock<'_>) -> Outcome {
    let socket = match Socket::new(
        Domain::for_address(addr),
        Type::STREAM.nonblocking(),
        Some(socket2::Protocol::TCP),
    ) {
        Ok(socket) => socket,
        Err(error) => return classify(&error),
    };
    // Close with a reset: no TIME_WAIT left behind to use up local ports.
    let _ = socket.set_linger(Some(Duration::ZERO));
    match socket.connect(&addr.into()) {
        Ok(()) => {}
        Err(error) if error.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(error) => return classify(&error),
    }
    let stream = match TcpStream::from_std(std::net::TcpStream::from(socket)) {
        Ok(stream) => stream,
        Err(error) => return classify(&error),
    };
    let mut connecting = Connecting::new(stream, addr);
    loop {
        if let Some(outcome) = connecting.verdict() {
            return outcome;
        }
        let Some(wake) = clock.next_wake() else {
            return Outcome::TimedOut;
        };
        if let Ok(Ok(())) = tokio::time::timeout_at(wake, connecting.stream.writable()).await
            && connecting.verdict().is_none()
        {
            // Writable yet not connected: a spurious wake-up. Wait out the interval
            // rather than spin on a readiness flag that stays set.
            tokio::time::sleep_until(wake).await;
        }
    }
}

/// A socket whose connect is under way, and the kernel's verdict on it once read.
///
/// The verdict must be kept the first time it is read: reading `SO_ERROR` clears it, so
/// after a refusal a second look finds no error and no peer — the very picture of a
/// connect still waiting for an answer — and the refused port would wait out its
/// timeout and be called filtered. (On a zero-latency path `connect()` fails at once
/// and the second look never happens; 20 ms away it always does.)
struct Connecting {
    stream: TcpStream,
    addr: SocketAddr,
    verdict: Option<Outcome>,
}

impl Connecting {
    fn new(stream: TcpStream, addr: SocketAddr) -> Self {
        Connecting {
            stream,
            addr,
            verdict: None,
        }
    }

    /// The kernel's verdict, read once and then kept.
    fn verdict(&mut self) -> Option<Outcome> {
        if self.verdict.is_none() {
            self.verdict = settled(&self.stream, self.addr);
        }
        self.verdict
    }
}

/// The kernel's verdict on a connecting socket, if it has one yet. Reading it clears a
/// pending error: see [`Connecting`].
fn settled(stream: &TcpStream, addr: SocketAddr) -> Option<Outcome> {
    match stream.take_error() {
        Ok(Some(error)) | Err(error) => return Some(classify(&error)),
        Ok(None) => {}
    }
    match stream.peer_addr() {
        // Connecting to a local port in the ephemeral range can, rarely, pick that same
        // port as the source and connect the socket to itself. Nothing listens there.
        Ok(_) if stream.local_addr().ok() == Some(addr) => Some(Outcome::Closed),
        Ok(_) => Some(Outcome::Open),
        // ENOTCONN: still waiting for an answer.
        Err(_) => None,
    }
}

pub(crate) fn classify(error: &io::Error) -> Outcome {
    match error.raw_os_error() {
        Some(libc::ECONNREFUSED | libc::ECONNRESET) => Outcome::Closed,
        Some(libc::EHOSTUNREACH | libc::EHOSTDOWN) => Outcome::Unreachable(Reason::HostUnreachable),
        Some(libc::ENETUNREACH | libc::ENETDOWN) => Outcome::Unreachable(Reason::NetUnreachable),
        // What Linux reports for an ICMPv6 administratively-prohibited.
        Some(libc::EACCES) => Outcome::Unreachable(Reason::AdminProhibited),
        Some(
            libc::EMFILE
            | libc::ENFILE
            | libc::ENOBUFS
            | libc::ENOMEM
            | libc::ENOSPC
            | libc::EADDRNOTAVAIL
            | libc::EAGAIN
            | libc::EADDRINUSE,
        ) => Outcome::Exhausted,
        _ => Outcome::LocalRefusal,
    }
}

/// One UDP attempt: send each payload (an empty datagram when there is none) from a
/// connected socket, so the kernel reports an ICMP port-unreachable as ECONNREFUSED.
/// Any datagram back means open.
pub(crate) async fn udp_once(addr: SocketAddr, payloads: &[Vec<u8>], clock: Clock<'_>) -> Outcome {
    let local: SocketAddr = match addr.ip() {
        IpAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        IpAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let socket = match UdpSocket::bind(local).await {
        Ok(socket) => socket,
        Err(error) => return classify(&error),
    };
    if let Err(error) = socket.connect(addr).await {
        return classify(&error);
    }
    let empty = [Vec::new()];
    let payloads = if payloads.is_empty() {
        &empty[..]
    } else {
        payloads
    };
    for payload in payloads {
        if let Err(error) = socket.send(payload).await {
            return classify(&error);
        }
    }
    // Replies are read only to learn that there is one; 1 KiB is plenty.
    let mut buf = [0u8; 1024];
    loop {
        match socket.try_recv(&mut buf) {
            Ok(_) => return Outcome::Open,
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
            Err(error) => return classify(&error),
        }
        let Some(wake) = clock.next_wake() else {
            return Outcome::TimedOut;
        };
        match tokio::time::timeout_at(wake, socket.recv(&mut buf)).await {
            Ok(Ok(_)) => return Outcome::Open,
            Ok(Err(error)) => return classify(&error),
            Err(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_map_to_outcomes() {
        let cases = [
            (libc::ECONNREFUSED, Outcome::Closed),
            (
                libc::EHOSTUNREACH,
                Outcome::Unreachable(Reason::HostUnreachable),
            ),
            (
                libc::ENETUNREACH,
                Outcome::Unreachable(Reason::NetUnreachable),
            ),
            (libc::EMFILE, Outcome::Exhausted),
            (libc::ENOBUFS, Outcome::Exhausted),
            (libc::EADDRNOTAVAIL, Outcome::Exhausted),
            (libc::EACCES, Outcome::Unreachable(Reason::AdminProhibited)),
            (libc::EPERM, Outcome::LocalRefusal),
        ];
        for (errno, want) in cases {
            assert_eq!(
                classify(&io::Error::from_raw_os_error(errno)),
                want,
                "{errno}"
            );
        }
    }

    /// A refused connection on loopback, the way the scanner makes it: non-blocking,
    /// with the refusal waiting in `SO_ERROR` once the socket turns writable.
    async fn refused_socket() -> (TcpStream, SocketAddr) {
        // A port that was just free (bound, then released) is closed.
        let addr = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .and_then(|l| l.local_addr())
            .expect("a free port");
        let socket = Socket::new(Domain::IPV4, Type::STREAM.nonblocking(), None).expect("socket");
        match socket.connect(&addr.into()) {
            Err(error) if error.raw_os_error() == Some(libc::EINPROGRESS) => {}
            other => panic!("expected a connect in progress, got {other:?}"),
        }
        let stream = TcpStream::from_std(std::net::TcpStream::from(socket)).expect("tokio stream");
        tokio::time::timeout(Duration::from_secs(5), stream.writable())
            .await
            .expect("refusal within 5 s")
            .expect("writable");
        (stream, addr)
    }

    /// Regression: at 20 ms and more the refusal arrives after `connect()` returned,
    /// the first look at the socket read (and so cleared) `SO_ERROR`, the second found
    /// nothing, and the closed port was reported filtered after its timeout.
    #[tokio::test]
    async fn a_refusal_read_once_is_kept() {
        let (stream, addr) = refused_socket().await;
        assert_eq!(settled(&stream, addr), Some(Outcome::Closed));
        assert_eq!(
            settled(&stream, addr),
            None,
            "the kernel clears SO_ERROR once read: a second raw look sees a pending connect"
        );
        let (stream, addr) = refused_socket().await;
        let mut connecting = Connecting::new(stream, addr);
        assert_eq!(connecting.verdict(), Some(Outcome::Closed));
        assert_eq!(connecting.verdict(), Some(Outcome::Closed), "kept");
    }

    #[tokio::test]
    async fn connect_once_reports_a_refusal_as_closed() {
        let addr = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .and_then(|l| l.local_addr())
            .expect("a free port");
        let timeouts = SharedTimeouts::new(Duration::from_secs(2), 1);
        let clock = Clock {
            started: Instant::now(),
            timeouts: &timeouts,
            host: 0,
            recheck: Duration::from_millis(100),
        };
        let began = Instant::now();
        assert_eq!(connect_once(addr, clock).await, Outcome::Closed);
        assert!(began.elapsed() < Duration::from_secs(2), "not by timeout");
    }

    #[test]
    fn timeouts_fall_back_to_the_scan_wide_value() {
        let t = SharedTimeouts::new(Duration::from_secs(1), 2);
        assert_eq!(t.get(0), Duration::from_secs(1));
        t.set_global(Duration::from_millis(200));
        t.set_host(1, Duration::from_millis(150));
        assert_eq!(t.get(0), Duration::from_millis(200));
        assert_eq!(t.get(1), Duration::from_millis(150));
        assert_eq!(t.get(9), Duration::from_millis(200), "unknown host");
    }
}
