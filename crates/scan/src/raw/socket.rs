//! Raw sockets: the capability check, the SYN sender and the reply receiver.
//!
//! The kernel writes the IP header of everything sent here (no `IP_HDRINCL`); the
//! source address is pinned per packet with `IP_PKTINFO` / `IPV6_PKTINFO`, so the
//! TCP checksum (computed over the pseudo-header of the `src` the caller passes)
//! always matches the header the kernel writes, and a `src` that is not a local
//! address is refused by the kernel instead of producing a packet with a wrong
//! checksum.

use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6, UdpSocket};
use std::os::fd::{AsFd, AsRawFd};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::socket::{
    ControlMessage, MsgFlags, SockaddrIn, SockaddrIn6, SockaddrStorage, recvfrom, sendmsg,
};
use socket2::{Domain, Protocol, Socket, Type};

use super::packet::{self, Reply};

/// Socket buffer size asked for (the kernel caps it at `net.core.[rw]mem_max`).
const SOCKET_BUFFER: usize = 4 << 20;

/// Receive buffer forced past `net.core.rmem_max` where the process may
/// (CAP_NET_ADMIN). A raw socket's buffer holds a reply's whole kernel
/// allocation (about 1 KiB for a 40-byte RST), so the capped default (about
/// 400 KiB) holds a few hundred replies: at 100,000 answers per second a
/// receiver held up for 5 ms by a busy CPU loses answers, and a lost answer
/// costs a retry or, worse, a closed port called filtered.
const FORCED_RECV_BUFFER: usize = 64 << 20;

/// Receive buffer: replies are parsed from their headers only, and a longer
/// datagram is truncated to this (which the parsers handle).
const RECV_BUFFER: usize = 4096;

/// Which raw socket an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum RawSocketKind {
    /// `AF_INET`, `SOCK_RAW`, `IPPROTO_TCP`.
    TcpV4,
    /// `AF_INET6`, `SOCK_RAW`, `IPPROTO_TCP`.
    TcpV6,
    /// `AF_INET`, `SOCK_RAW`, `IPPROTO_ICMP`.
    IcmpV4,
    /// `AF_INET6`, `SOCK_RAW`, `IPPROTO_ICMPV6`.
    IcmpV6,
}

impl RawSocketKind {
    fn domain(self) -> Domain {
        match self {
            Self::TcpV4 | Self::IcmpV4 => Domain::IPV4,
            Self::TcpV6 | Self::IcmpV6 => Domain::IPV6,
        }
    }

    fn protocol(self) -> Protocol {
        match self {
            Self::TcpV4 | Self::TcpV6 => Protocol::TCP,
            Self::IcmpV4 => Protocol::ICMPV4,
            Self::IcmpV6 => Protocol::ICMPV6,
        }
    }

    fn is_v6(self) -> bool {
        matches!(self, Self::TcpV6 | Self::IcmpV6)
    }
}

impl fmt::Display for RawSocketKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::TcpV4 => "raw IPv4 TCP socket",
            Self::TcpV6 => "raw IPv6 TCP socket",
            Self::IcmpV4 => "raw ICMP socket",
            Self::IcmpV6 => "raw ICMPv6 socket",
        })
    }
}

/// Why raw sockets cannot be used.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RawError {
    /// The process may not open raw sockets (no root / `CAP_NET_RAW`): fall back
    /// to connect scanning.
    #[error("not permitted to open a {socket} (needs root or CAP_NET_RAW): {source}")]
    NotPermitted {
        /// The socket that could not be opened.
        socket: RawSocketKind,
        /// The OS error (EPERM or EACCES).
        #[source]
        source: io::Error,
    },
    /// Any other failure to open or configure a raw socket.
    #[error("cannot {operation} {socket}: {source}")]
    Io {
        /// The socket concerned.
        socket: RawSocketKind,
        /// What was being done (`open`, `set nonblocking on`, ...).
        operation: &'static str,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

/// Whether `err` means "no permission" (EPERM or EACCES).
fn is_permission_error(err: &io::Error) -> bool {
    matches!(err.raw_os_error(), Some(libc::EPERM | libc::EACCES))
}

/// Whether `err` means the address family is not available (IPv6 disabled).
fn is_family_unsupported(err: &io::Error) -> bool {
    matches!(
        err.raw_os_error(),
        Some(libc::EAFNOSUPPORT | libc::EPROTONOSUPPORT)
    )
}

/// Opens a nonblocking raw socket of `kind` with large buffers.
fn open(kind: RawSocketKind) -> Result<Socket, RawError> {
    let socket =
        Socket::new(kind.domain(), Type::RAW, Some(kind.protocol())).map_err(|source| {
            if is_permission_error(&source) {
                RawError::NotPermitted {
                    socket: kind,
                    source,
                }
            } else {
                RawError::Io {
                    socket: kind,
                    operation: "open",
                    source,
                }
            }
        })?;
    socket
        .set_nonblocking(true)
        .map_err(|source| RawError::Io {
            socket: kind,
            operation: "set nonblocking on",
            source,
        })?;
    // Best effort: the default buffers are fine at low rates.
    if nix::sys::socket::setsockopt(
        &socket,
        nix::sys::socket::sockopt::RcvBufForce,
        &FORCED_RECV_BUFFER,
    )
    .is_err()
    {
        let _ = socket.set_recv_buffer_size(SOCKET_BUFFER);
    }
    let _ = socket.set_send_buffer_size(SOCKET_BUFFER);
    Ok(socket)
}

/// Opens an IPv6 socket of `kind`, or `None` when IPv6 is not available on this
/// host (other errors are errors).
fn open_optional_v6(kind: RawSocketKind) -> Result<Option<Socket>, RawError> {
    debug_assert!(kind.is_v6());
    match open(kind) {
        Ok(socket) => Ok(Some(socket)),
        Err(RawError::Io { source, .. }) if is_family_unsupported(&source) => Ok(None),
        Err(err) => Err(err),
    }
}

/// Checks that this process may open raw sockets, by opening (and closing) a raw
/// IPv4 TCP socket. [`RawError::NotPermitted`] means: fall back to connect scanning.
#[cfg(test)]
pub(crate) fn raw_capability() -> Result<(), RawError> {
    open(RawSocketKind::TcpV4).map(drop)
}

/// The source address the kernel would use to reach `dst`, found by connecting a
/// UDP socket (which sends nothing) and reading its local address.
pub(crate) fn source_for(dst: IpAddr) -> io::Result<IpAddr> {
    let unspecified = match dst {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    };
    let socket = UdpSocket::bind(SocketAddr::new(unspecified, 0))?;
    // Any non-zero port: a UDP connect only picks the route.
    socket.connect(SocketAddr::new(dst, 9))?;
    Ok(socket.local_addr()?.ip())
}

#[cfg(test)]
impl RawError {
    /// The socket the error is about.
    pub(crate) fn socket(&self) -> RawSocketKind {
        match self {
            Self::NotPermitted { socket, .. } | Self::Io { socket, .. } => *socket,
        }
    }
}

/// Sends TCP SYN probes through raw IPv4 and IPv6 sockets (nonblocking).
///
/// Shareable between threads (`&self` methods); the packet buffer is reused.
#[derive(Debug)]
pub(crate) struct RawSender {
    v4: Socket,
    v6: Option<Socket>,
    buf: Mutex<Vec<u8>>,
}

impl RawSender {
    /// Opens the sockets. IPv6 is optional: on a host without IPv6, sending to an
    /// IPv6 destination fails with [`io::ErrorKind::Unsupported`].
    pub(crate) fn new() -> Result<Self, RawError> {
        Ok(Self {
            v4: open(RawSocketKind::TcpV4)?,
            v6: open_optional_v6(RawSocketKind::TcpV6)?,
            buf: Mutex::new(Vec::with_capacity(packet::SYN_LEN)),
        })
    }

    /// Sends one SYN `src:src_port -> dst:dst_port` with sequence number `seq`.
    ///
    /// `src` must be a local address (normally [`source_for`]`(dst)`): it is both
    /// in the checksum and pinned as the packet's source. Errors: mixed families
    /// ([`io::ErrorKind::InvalidInput`]), a non-local `src` (EINVAL/EADDRNOTAVAIL),
    /// and back-pressure (`WouldBlock` for EAGAIN, or ENOBUFS), which the caller
    /// should treat as "slow down and retry".
    pub(crate) fn send_syn(
        &self,
        src: IpAddr,
        dst: IpAddr,
        src_port: u16,
        dst_port: u16,
        seq: u32,
    ) -> io::Result<()> {
        let mut buf = self.buf.lock().unwrap_or_else(PoisonError::into_inner);
        packet::build_syn(src, dst, src_port, dst_port, seq, &mut buf)
            .map_err(|err| io::Error::new(io::ErrorKind::InvalidInput, err))?;
        let iov = [io::IoSlice::new(&buf)];
        let sent = match (src, dst) {
            (IpAddr::V4(src), IpAddr::V4(dst)) => {
                let info = libc::in_pktinfo {
                    ipi_ifindex: 0,
                    ipi_spec_dst: libc::in_addr {
                        s_addr: u32::from(src).to_be(),
                    },
                    ipi_addr: libc::in_addr { s_addr: 0 },
                };
                let to = SockaddrIn::from(SocketAddrV4::new(dst, 0));
                sendmsg(
                    self.v4.as_raw_fd(),
                    &iov,
                    &[ControlMessage::Ipv4PacketInfo(&info)],
                    MsgFlags::empty(),
                    Some(&to),
                )
            }
            (IpAddr::V6(src), IpAddr::V6(dst)) => {
                let Some(v6) = &self.v6 else {
                    return Err(io::Error::new(
                        io::ErrorKind::Unsupported,
                        "IPv6 raw sockets are not available on this host",
                    ));
                };
                let info = libc::in6_pktinfo {
                    ipi6_addr: libc::in6_addr {
                        s6_addr: src.octets(),
                    },
                    ipi6_ifindex: 0,
                };
                // The port of a raw IPv6 destination must be 0 (or the protocol).
                let to = SockaddrIn6::from(SocketAddrV6::new(dst, 0, 0, 0));
                sendmsg(
                    v6.as_raw_fd(),
                    &iov,
                    &[ControlMessage::Ipv6PacketInfo(&info)],
                    MsgFlags::empty(),
                    Some(&to),
                )
            }
            // `build_syn` already refused mixed families.
            _ => Err(Errno::EAFNOSUPPORT),
        }
        .map_err(io::Error::from)?;
        if sent == buf.len() {
            Ok(())
        } else {
            Err(io::Error::new(
                io::ErrorKind::WriteZero,
                format!("raw send wrote {sent} of {} bytes", buf.len()),
            ))
        }
    }
}

/// Receives replies to probes from raw TCP and ICMP sockets of both families.
///
/// Every raw socket sees a copy of every incoming packet of its protocol, so most
/// of what arrives is unrelated traffic; [`RawReceiver::recv`] skips what does not
/// parse, and the caller filters the rest by port and cookie.
#[derive(Debug)]
pub(crate) struct RawReceiver {
    sockets: Vec<(RawSocketKind, Socket)>,
    timeout: Duration,
    /// Index of the socket to read first next time (round robin).
    next: usize,
    /// Replies read in a row from the current socket.
    burst: u32,
    buf: Vec<u8>,
}

/// Replies read from one socket in a row before the others get a turn.
const FAIR_BURST: u32 = 64;

impl RawReceiver {
    /// How long [`RawReceiver::recv`] waits by default.
    pub(crate) const DEFAULT_TIMEOUT: Duration = Duration::from_millis(50);

    /// Opens the four sockets (the IPv6 ones only if IPv6 is available) with
    /// [`RawReceiver::DEFAULT_TIMEOUT`].
    pub(crate) fn new() -> Result<Self, RawError> {
        Self::with_timeout(Self::DEFAULT_TIMEOUT)
    }

    /// Like [`RawReceiver::new`], with the given wait per [`RawReceiver::recv`].
    pub(crate) fn with_timeout(timeout: Duration) -> Result<Self, RawError> {
        let mut sockets = Vec::with_capacity(4);
        for kind in [RawSocketKind::TcpV4, RawSocketKind::IcmpV4] {
            sockets.push((kind, open(kind)?));
        }
        for kind in [RawSocketKind::TcpV6, RawSocketKind::IcmpV6] {
            if let Some(socket) = open_optional_v6(kind)? {
                sockets.push((kind, socket));
            }
        }
        Ok(Self {
            sockets,
            timeout,
            next: 0,
            burst: 0,
            buf: vec![0; RECV_BUFFER],
        })
    }

    /// The wait per [`RawReceiver::recv`].
    #[cfg(test)]
    pub(crate) fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The next reply and when it was read, waiting up to the timeout; `None` if
    /// none came in time. Packets that are not replies are skipped.
    pub(crate) fn recv(&mut self) -> Option<(Reply, Instant)> {
        let deadline = Instant::now() + self.timeout;
        loop {
            if let Some(reply) = self.drain(deadline) {
                return Some(reply);
            }
            let remaining = deadline.checked_duration_since(Instant::now())?;
            if remaining.is_zero() || !self.wait(remaining) {
                return None;
            }
        }
    }

    /// Reads every socket, round robin, until one yields a reply, all are empty,
    /// or the deadline passes.
    fn drain(&mut self, deadline: Instant) -> Option<(Reply, Instant)> {
        let count = self.sockets.len();
        for step in 0..count {
            let index = (self.next + step) % count;
            let Some((kind, socket)) = self.sockets.get(index) else {
                continue;
            };
            let (kind, fd) = (*kind, socket.as_raw_fd());
            loop {
                let (len, from) = match recvfrom::<SockaddrStorage>(fd, &mut self.buf) {
                    Ok(received) => received,
                    Err(Errno::EINTR) => continue,
                    // EAGAIN: empty. Anything else (e.g. a transient ENOBUFS):
                    // move on to the next socket.
                    Err(_) => break,
                };
                let at = Instant::now();
                let data = self.buf.get(..len).unwrap_or(&self.buf);
                let source_v6 = || from.as_ref()?.as_sockaddr_in6().map(SockaddrIn6::ip);
                let reply = match kind {
                    RawSocketKind::TcpV4 => packet::parse_tcp_v4(data),
                    RawSocketKind::IcmpV4 => packet::parse_icmp_v4(data),
                    RawSocketKind::TcpV6 => {
                        source_v6().and_then(|src| packet::parse_tcp_v6(src, data))
                    }
                    RawSocketKind::IcmpV6 => {
                        source_v6().and_then(|src| packet::parse_icmp_v6(src, data))
                    }
                };
                if let Some(reply) = reply {
                    // Stay on a socket that has data (no wasted reads of empty ones),
                    // but hand the turn on after a burst, so a busy one cannot starve
                    // the others.
                    self.burst += 1;
                    if self.burst >= FAIR_BURST {
                        self.burst = 0;
                        self.next = (index + 1) % count;
                    } else {
                        self.next = index;
                    }
                    return Some((reply, at));
                }
                if at >= deadline {
                    return None;
                }
            }
        }
        None
    }

    /// Waits until a socket is readable or `timeout` passes; `false` on timeout or
    /// a poll error.
    fn wait(&self, timeout: Duration) -> bool {
        let mut fds: Vec<PollFd<'_>> = self
            .sockets
            .iter()
            .map(|(_, socket)| PollFd::new(socket.as_fd(), PollFlags::POLLIN))
            .collect();
        // Round up to whole milliseconds so a sub-millisecond rest does not spin.
        let millis = timeout.as_micros().div_ceil(1000);
        let timeout = PollTimeout::try_from(millis).unwrap_or(PollTimeout::MAX);
        match poll(&mut fds, timeout) {
            Ok(ready) => ready > 0,
            // A signal: let the caller re-check the deadline and read.
            Err(Errno::EINTR) => true,
            Err(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raw::packet::PROTO_UDP;
    use crate::raw::{CookieKey, UnreachableKind};
    use portgate_lab::{ExpectedState, LabConfig, LabHost, Profile, skip_reason};
    use std::net::TcpListener;

    /// `Some(reason)` when raw sockets cannot be used here.
    fn raw_skip_reason() -> Option<String> {
        if !nix::unistd::geteuid().is_root() {
            return Some("not root; raw sockets need CAP_NET_RAW".to_owned());
        }
        raw_capability().err().map(|e| e.to_string())
    }

    /// Skips `name` (through `portgate_test_support::skip`) and returns true when raw
    /// sockets (and, with `lab`, the lab) are unavailable.
    #[track_caller]
    fn skip(name: &str, lab: bool) -> bool {
        let reason = raw_skip_reason().or_else(|| if lab { skip_reason() } else { None });
        match reason {
            Some(reason) => {
                portgate_test_support::skip(name, reason);
                true
            }
            None => false,
        }
    }

    /// Collects replies matching `keep` for `duration`, stopping early once
    /// `done` says enough has arrived.
    fn collect(
        receiver: &mut RawReceiver,
        duration: Duration,
        keep: impl Fn(&Reply) -> bool,
        done: impl Fn(&[Reply]) -> bool,
    ) -> Vec<Reply> {
        let deadline = Instant::now() + duration;
        let mut replies = Vec::new();
        while Instant::now() < deadline && !done(&replies) {
            if let Some((reply, _)) = receiver.recv()
                && keep(&reply)
            {
                replies.push(reply);
            }
        }
        replies
    }

    fn random_port() -> u16 {
        rand::random_range(40000..60000)
    }

    #[test]
    fn raw_source_for_loopback() {
        let v4 = IpAddr::V4(Ipv4Addr::LOCALHOST);
        assert_eq!(source_for(v4).expect("route to 127.0.0.1"), v4);
        let v6 = IpAddr::V6(Ipv6Addr::LOCALHOST);
        match source_for(v6) {
            Ok(src) => assert_eq!(src, v6),
            Err(err) => portgate_test_support::skip("raw_source_for_loopback (IPv6 part)", err),
        }
    }

    #[test]
    fn raw_capability_matches_privileges() {
        match raw_capability() {
            Ok(()) => {}
            Err(RawError::NotPermitted { socket, .. }) => {
                assert_eq!(socket, RawSocketKind::TcpV4);
                assert!(
                    !nix::unistd::geteuid().is_root(),
                    "root but raw sockets not permitted"
                );
            }
            Err(err) => panic!("unexpected error: {err}"),
        }
    }

    #[test]
    fn raw_error_messages_name_socket_and_operation() {
        let err = RawError::Io {
            socket: RawSocketKind::IcmpV6,
            operation: "open",
            source: io::Error::from_raw_os_error(libc::EMFILE),
        };
        let text = err.to_string();
        assert!(
            text.starts_with("cannot open raw ICMPv6 socket: "),
            "{text}"
        );
        assert_eq!(err.socket(), RawSocketKind::IcmpV6);
        let denied = RawError::NotPermitted {
            socket: RawSocketKind::TcpV4,
            source: io::Error::from_raw_os_error(libc::EPERM),
        };
        assert!(denied.to_string().contains("CAP_NET_RAW"));
    }

    #[test]
    fn raw_send_rejects_bad_sources() {
        if skip("raw_send_rejects_bad_sources", false) {
            return;
        }
        let sender = RawSender::new().expect("raw sender");
        let local = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let err = sender
            .send_syn(local, IpAddr::V6(Ipv6Addr::LOCALHOST), 1, 2, 3)
            .expect_err("mixed families");
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        // 198.19.255.254 is not configured here: the kernel refuses to use it as a
        // source (and the destination is loopback anyway).
        let not_local = IpAddr::V4(Ipv4Addr::new(198, 19, 255, 254));
        let err = sender
            .send_syn(not_local, local, 40000, 9, 1)
            .expect_err("non-local source");
        println!("non-local source refused: {err}");
    }

    /// SYNs from `src` over loopback: a listening port answers SYN-ACK, a closed
    /// one RST.
    fn loopback_round_trip(src: IpAddr, address: IpAddr) {
        let listener = TcpListener::bind(SocketAddr::new(address, 0)).expect("bind listener");
        let open_port = listener.local_addr().expect("local addr").port();
        // A port that was just free (bound and released) is very likely closed.
        let closed_port = TcpListener::bind(SocketAddr::new(address, 0))
            .and_then(|l| l.local_addr())
            .expect("probe free port")
            .port();
        let key = CookieKey::random();
        let sender = RawSender::new().expect("raw sender");
        let mut receiver = RawReceiver::new().expect("raw receiver");
        let (sport_open, sport_closed) = (random_port(), random_port().wrapping_add(1));
        for (sport, dport) in [(sport_open, open_port), (sport_closed, closed_port)] {
            sender
                .send_syn(
                    src,
                    address,
                    sport,
                    dport,
                    key.probe_seq(src, address, sport, dport, 0),
                )
                .expect("send");
        }
        let replies = collect(
            &mut receiver,
            Duration::from_secs(2),
            |r| match *r {
                Reply::SynAck { src, dst_port, .. } | Reply::Rst { src, dst_port, .. } => {
                    src == address && (dst_port == sport_open || dst_port == sport_closed)
                }
                Reply::Unreachable { .. } => false,
            },
            |r| r.len() >= 2,
        );
        let syn_ack = replies.iter().find_map(|r| match *r {
            Reply::SynAck {
                src_port,
                dst_port,
                ack,
                ..
            } if dst_port == sport_open => Some((src_port, ack)),
            _ => None,
        });
        let (port, ack) = syn_ack.unwrap_or_else(|| panic!("no SYN-ACK in {replies:?}"));
        assert_eq!(port, open_port);
        assert_eq!(
            key.verify(src, address, sport_open, open_port, ack),
            Some(0)
        );
        let rst = replies.iter().find_map(|r| match *r {
            Reply::Rst {
                src_port,
                dst_port,
                ack,
                ack_flag,
                ..
            } if dst_port == sport_closed => Some((src_port, ack, ack_flag)),
            _ => None,
        });
        let (port, ack, ack_flag) = rst.unwrap_or_else(|| panic!("no RST in {replies:?}"));
        assert_eq!(port, closed_port);
        assert!(ack_flag);
        assert_eq!(
            key.verify(src, address, sport_closed, closed_port, ack),
            Some(0)
        );
    }

    #[test]
    fn raw_loopback_v4() {
        if skip("raw_loopback_v4", false) {
            return;
        }
        let address = IpAddr::V4(Ipv4Addr::LOCALHOST);
        loopback_round_trip(source_for(address).expect("source"), address);
        // 127.0.0.3 is local too but not the address the kernel would choose: the
        // replies come back only if the source is really pinned (else the checksum,
        // computed for 127.0.0.3, would not match and the SYN would be dropped).
        loopback_round_trip(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3)), address);
    }

    #[test]
    fn raw_loopback_v6() {
        if skip("raw_loopback_v6", false) {
            return;
        }
        if TcpListener::bind((Ipv6Addr::LOCALHOST, 0)).is_err() {
            portgate_test_support::skip("raw_loopback_v6", "no IPv6 loopback");
            return;
        }
        let address = IpAddr::V6(Ipv6Addr::LOCALHOST);
        loopback_round_trip(source_for(address).expect("source"), address);
    }

    /// Open, reject and dropped ports of a firewalled lab host over one family.
    fn firewalled_round_trip(lab: &LabHost, target: IpAddr) {
        let truth = lab.truth();
        let open_port = *truth.open.iter().find(|&&p| p == 22).expect("22 is open");
        let reject_port = *truth.reject.first().expect("a reject port");
        let dropped_port = 9;
        assert_eq!(truth.expected(dropped_port), ExpectedState::Filtered);

        let key = CookieKey::random();
        let sender = RawSender::new().expect("raw sender");
        let mut receiver = RawReceiver::new().expect("raw receiver");
        let src = source_for(target).expect("source");
        let base = random_port();
        let probes = [
            (base, open_port),
            (base.wrapping_add(1), reject_port),
            (base.wrapping_add(2), dropped_port),
        ];
        for (sport, dport) in probes {
            sender
                .send_syn(
                    src,
                    target,
                    sport,
                    dport,
                    key.probe_seq(src, target, sport, dport, 0),
                )
                .expect("send");
        }
        let ours = |port: u16| probes.iter().any(|&(sport, _)| sport == port);
        // Wait the full second (not just until two replies came) so that an answer
        // from the dropped port would be seen.
        let replies = collect(
            &mut receiver,
            Duration::from_secs(1),
            |r| match *r {
                Reply::SynAck { src, dst_port, .. } | Reply::Rst { src, dst_port, .. } => {
                    src == target && ours(dst_port)
                }
                Reply::Unreachable {
                    original_dst,
                    original_src_port,
                    ..
                } => original_dst == target && ours(original_src_port),
            },
            |_| false,
        );
        let verified =
            |sport: u16, dport: u16, ack: u32| key.verify(src, target, sport, dport, ack).is_some();
        assert!(
            replies.iter().any(|r| matches!(*r,
                Reply::SynAck { src_port, dst_port, ack, .. }
                    if src_port == open_port && dst_port == base && verified(base, open_port, ack))),
            "{target}: no verified SYN-ACK from port {open_port} in {replies:?}"
        );
        assert!(
            replies.iter().any(|r| matches!(*r,
                Reply::Rst { src_port, dst_port, ack, ack_flag: true, .. }
                    if src_port == reject_port
                        && dst_port == base.wrapping_add(1)
                        && verified(base.wrapping_add(1), reject_port, ack))),
            "{target}: no verified RST from port {reject_port} in {replies:?}"
        );
        assert!(
            !replies.iter().any(|r| matches!(*r,
                Reply::SynAck { dst_port, .. } | Reply::Rst { dst_port, .. }
                    if dst_port == base.wrapping_add(2))),
            "{target}: the dropped port {dropped_port} answered: {replies:?}"
        );
        assert!(
            !replies
                .iter()
                .any(|r| matches!(r, Reply::Unreachable { .. })),
            "{target}: unexpected ICMP error: {replies:?}"
        );
    }

    #[test]
    fn raw_lab_firewalled_syn_scan() {
        if skip("raw_lab_firewalled_syn_scan", true) {
            return;
        }
        let lab = LabHost::start(LabConfig::new(Profile::Firewalled)).expect("lab host");
        firewalled_round_trip(&lab, IpAddr::V4(lab.ipv4()));
        firewalled_round_trip(&lab, IpAddr::V6(lab.ipv6()));
    }

    /// A UDP datagram to a closed port of an open-profile lab host comes back as an
    /// ICMP / ICMPv6 port unreachable.
    fn udp_port_unreachable(target: IpAddr) {
        let closed_port = 9;
        let mut receiver = RawReceiver::new().expect("raw receiver");
        let bind = match target {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        };
        let socket = UdpSocket::bind(SocketAddr::new(bind, 0)).expect("bind UDP");
        let local_port = socket.local_addr().expect("local addr").port();
        let mut replies = Vec::new();
        // ICMP errors are rate limited, but a fresh host allows a small burst; a
        // couple of tries cover a lost datagram.
        for _ in 0..3 {
            socket
                .send_to(b"portgate", SocketAddr::new(target, closed_port))
                .expect("send UDP");
            replies = collect(
                &mut receiver,
                Duration::from_millis(700),
                |r| {
                    matches!(*r, Reply::Unreachable { original_dst, original_src_port, .. }
                        if original_dst == target && original_src_port == local_port)
                },
                |r| !r.is_empty(),
            );
            if !replies.is_empty() {
                break;
            }
        }
        let first = replies
            .first()
            .unwrap_or_else(|| panic!("{target}: no ICMP error for UDP port {closed_port}"));
        assert_eq!(
            *first,
            Reply::Unreachable {
                from: target,
                original_dst: target,
                original_dst_port: closed_port,
                original_src_port: local_port,
                protocol: PROTO_UDP,
                original_seq: None,
                kind: UnreachableKind::PortUnreachable,
            }
        );
    }

    #[test]
    fn raw_lab_icmp_port_unreachable() {
        if skip("raw_lab_icmp_port_unreachable", true) {
            return;
        }
        let lab = LabHost::start(LabConfig::new(Profile::Open)).expect("lab host");
        udp_port_unreachable(IpAddr::V4(lab.ipv4()));
        udp_port_unreachable(IpAddr::V6(lab.ipv6()));
    }

    #[test]
    fn raw_receiver_times_out_quietly() {
        if skip("raw_receiver_times_out_quietly", false) {
            return;
        }
        let mut receiver =
            RawReceiver::with_timeout(Duration::from_millis(20)).expect("raw receiver");
        assert_eq!(receiver.timeout(), Duration::from_millis(20));
        let started = Instant::now();
        // Unrelated traffic may produce replies; either way it returns promptly.
        let _ = receiver.recv();
        assert!(started.elapsed() < Duration::from_secs(1));
    }
}
