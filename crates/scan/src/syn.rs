//! SYN probing: a raw SYN out, the answer matched back by its cookie.
//!
//! Each probe's sequence number is a keyed hash of its addresses and ports
//! ([`CookieKey`]); a reply counts only if it acknowledges exactly that number plus one,
//! so a stray or spoofed SYN-ACK never marks a port open. The engine sends from its own
//! task (a SYN is one `sendmsg`, no socket per probe); a receiver thread reads the raw
//! sockets, independent of the async workers, stamps each verified answer with the time
//! it was read and passes it on through a channel, which the engine drains before it
//! declares any probe unanswered.

use crate::probe::{Outcome, classify};
use crate::raw::cookie::ATTEMPT_MASK;
use crate::raw::{
    CookieKey, PROTO_TCP, RawError, RawReceiver, RawSender, Reply, UnreachableKind, source_for,
};
use portgate_model::Reason;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Instant;
use tokio::sync::mpsc::UnboundedSender;

/// Our source port is drawn from here: above Linux's default ephemeral range
/// (32768–60999), so it never collides with the connect scanner's or anyone's sockets.
const SOURCE_PORTS: std::ops::RangeInclusive<u16> = 61_000..=65_000;

/// The attempt an answer is taken to answer when it does not say (an ICMP error quoting
/// too little of the SYN): the engine reads it as "the latest one sent".
pub(crate) const LATEST_ATTEMPT: u8 = u8::MAX;

/// A verified answer to one of our SYNs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SynAnswer {
    /// The target that answered.
    pub(crate) ip: IpAddr,
    /// The port the answer is about.
    pub(crate) port: u16,
    /// What it says.
    pub(crate) outcome: Outcome,
    /// Which attempt it answers (0 for the first SYN).
    pub(crate) attempt: u8,
    /// When the receiver read it.
    pub(crate) at: Instant,
}

/// Sends SYNs; its receiver thread passes verified answers on.
pub(crate) struct SynProber {
    sender: RawSender,
    key: CookieKey,
    src_port: u16,
    /// Our address towards each target (None: no route).
    sources: HashMap<IpAddr, Option<IpAddr>>,
    stop: AtomicBool,
}

/// Stops the receiver thread when dropped.
pub(crate) struct SynGuard {
    prober: Arc<SynProber>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for SynGuard {
    fn drop(&mut self) {
        self.prober.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            // The receiver wakes at least every read timeout to see the flag.
            let _ = thread.join();
        }
    }
}

impl SynProber {
    /// Opens the raw sockets and starts the receiver, which sends verified answers to
    /// `answers`. `NotPermitted` means: use connect.
    pub(crate) fn start(
        targets: impl IntoIterator<Item = IpAddr>,
        answers: UnboundedSender<SynAnswer>,
    ) -> Result<(Arc<SynProber>, SynGuard), RawError> {
        let sender = RawSender::new()?;
        let receiver = RawReceiver::new()?;
        let sources = targets
            .into_iter()
            .map(|ip| (ip, source_for(ip).ok()))
            .collect();
        let prober = Arc::new(SynProber {
            sender,
            key: CookieKey::random(),
            src_port: rand::random_range(SOURCE_PORTS),
            sources,
            stop: AtomicBool::new(false),
        });
        let for_thread = Arc::clone(&prober);
        let thread = std::thread::Builder::new()
            .name("portgate-syn-rx".into())
            .spawn(move || for_thread.receive(receiver, &answers))
            .map_err(|source| RawError::Io {
                socket: crate::raw::RawSocketKind::TcpV4,
                operation: "start the receiver for",
                source,
            })?;
        let guard = SynGuard {
            prober: Arc::clone(&prober),
            thread: Some(thread),
        };
        Ok((prober, guard))
    }

    /// Sends attempt `attempt` of the SYN to `dst:port`. `Some` when it could not go
    /// out, saying why.
    pub(crate) fn send(&self, dst: IpAddr, port: u16, attempt: u8) -> Option<Outcome> {
        let Some(Some(src)) = self.sources.get(&dst).copied() else {
            return Some(Outcome::Unreachable(Reason::NetUnreachable));
        };
        let seq = self.key.probe_seq(
            src,
            dst,
            self.src_port,
            port,
            attempt.min(ATTEMPT_MASK as u8),
        );
        self.sender
            .send_syn(src, dst, self.src_port, port, seq)
            .err()
            .map(|error| classify(&error))
    }

    /// The receiver thread: read, verify, pass on, until stopped (or the engine is gone).
    fn receive(&self, mut receiver: RawReceiver, answers: &UnboundedSender<SynAnswer>) {
        while !self.stop.load(Ordering::Relaxed) {
            if let Some((reply, at)) = receiver.recv()
                && let Some(((ip, port), outcome, attempt)) = self.verdict(reply)
                && answers
                    .send(SynAnswer {
                        ip,
                        port,
                        outcome,
                        attempt,
                        at,
                    })
                    .is_err()
            {
                return;
            }
        }
    }

    /// What a reply says about which probe and which of its attempts, if it is a
    /// genuine answer to one of ours.
    fn verdict(&self, reply: Reply) -> Option<((IpAddr, u16), Outcome, u8)> {
        let ours = |target: IpAddr| self.sources.get(&target).copied().flatten();
        let (src, src_port, dst_port, ack, outcome) = match reply {
            Reply::SynAck {
                src,
                src_port,
                dst_port,
                ack,
            } => (src, src_port, dst_port, ack, Outcome::Open),
            Reply::Rst {
                src,
                src_port,
                dst_port,
                ack,
                ack_flag: true,
            } => (src, src_port, dst_port, ack, Outcome::Closed),
            unreachable => return self.unreachable_verdict(unreachable),
        };
        if dst_port != self.src_port {
            return None;
        }
        let local = ours(src)?;
        self.key
            .verify(local, src, self.src_port, src_port, ack)
            .map(|attempt| ((src, src_port), outcome, attempt))
    }

    /// An ICMP error about one of our SYNs, if it quotes our cookie.
    fn unreachable_verdict(&self, reply: Reply) -> Option<((IpAddr, u16), Outcome, u8)> {
        let ours = |target: IpAddr| self.sources.get(&target).copied().flatten();
        match reply {
            Reply::Unreachable {
                original_dst,
                original_dst_port,
                original_src_port,
                protocol: PROTO_TCP,
                original_seq,
                kind,
                ..
            } if original_src_port == self.src_port => {
                let local = ours(original_dst)?;
                // An ICMP error may quote too little of our header to carry the
                // sequence number; it then counts as an answer to the latest attempt.
                let attempt = match original_seq {
                    Some(seq) => self.key.verify_quoted(
                        local,
                        original_dst,
                        self.src_port,
                        original_dst_port,
                        seq,
                    )?,
                    None => LATEST_ATTEMPT,
                };
                let reason = match kind {
                    UnreachableKind::HostUnreachable => Reason::HostUnreachable,
                    UnreachableKind::NetUnreachable => Reason::NetUnreachable,
                    UnreachableKind::PortUnreachable => Reason::PortUnreachable,
                    UnreachableKind::AdminProhibited
                    | UnreachableKind::ProtocolUnreachable
                    | UnreachableKind::Other(_) => Reason::AdminProhibited,
                };
                Some((
                    (original_dst, original_dst_port),
                    Outcome::Unreachable(reason),
                    attempt,
                ))
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prober_without_sockets() -> Option<SynProber> {
        // Sending needs raw sockets; verdicts do not, but the struct holds a sender.
        let sender = RawSender::new().ok()?;
        Some(SynProber {
            sender,
            key: CookieKey::from_keys(1, 2),
            src_port: 61_234,
            sources: HashMap::from([(
                "198.18.0.2".parse().ok()?,
                Some("198.18.0.1".parse().ok()?),
            )]),
            stop: AtomicBool::new(false),
        })
    }

    #[test]
    fn only_replies_carrying_our_cookie_count() {
        let Some(p) = prober_without_sockets() else {
            portgate_test_support::skip(
                "only_replies_carrying_our_cookie_count",
                "raw sockets not permitted",
            );
            return;
        };
        let target: IpAddr = "198.18.0.2".parse().unwrap_or(IpAddr::from([0, 0, 0, 0]));
        let local: IpAddr = "198.18.0.1".parse().unwrap_or(IpAddr::from([0, 0, 0, 0]));
        let cookie = p.key.probe_seq(local, target, 61_234, 443, 0);
        let syn_ack = |ack, dst_port| Reply::SynAck {
            src: target,
            src_port: 443,
            dst_port,
            ack,
        };
        assert_eq!(
            p.verdict(syn_ack(cookie.wrapping_add(1), 61_234)),
            Some(((target, 443), Outcome::Open, 0))
        );
        assert_eq!(p.verdict(syn_ack(cookie, 61_234)), None, "ack off by one");
        assert_eq!(p.verdict(syn_ack(12345, 61_234)), None, "spoofed");
        assert_eq!(
            p.verdict(syn_ack(cookie.wrapping_add(1), 61_235)),
            None,
            "not our port"
        );
        let rst = Reply::Rst {
            src: target,
            src_port: 443,
            dst_port: 61_234,
            ack: cookie.wrapping_add(1),
            ack_flag: true,
        };
        assert_eq!(p.verdict(rst), Some(((target, 443), Outcome::Closed, 0)));
        let retry = p.key.probe_seq(local, target, 61_234, 443, 2);
        assert_eq!(
            p.verdict(syn_ack(retry.wrapping_add(1), 61_234)),
            Some(((target, 443), Outcome::Open, 2)),
            "the answer says which attempt it answers"
        );
        let stranger = Reply::SynAck {
            src: "198.18.0.9".parse().unwrap_or(target),
            src_port: 443,
            dst_port: 61_234,
            ack: cookie.wrapping_add(1),
        };
        assert_eq!(p.verdict(stranger), None, "a host we did not probe");
    }
}
