//! After the sweep: tell tarpits from services, and confirm open ports with a full
//! handshake when asked (`--verify`).

use crate::probe::{self, Clock, Outcome, SharedTimeouts};
use futures::stream::{self, StreamExt};
use portgate_model::{HostReport, PortState, Protocol, Reason, TarpitEvidence};
use rand::seq::IndexedRandom;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::time::Instant;

/// A host is taken for a tarpit when at least this many TCP ports were probed...
const TARPIT_MIN_PROBED: usize = 200;
/// ...and at least this share of them answered as open.
const TARPIT_SHARE: f64 = 0.9;
/// Ports of a tarpit checked with a full connect, as evidence.
const TARPIT_SAMPLE: usize = 8;
/// Wait for a confirming handshake.
const CONFIRM_TIMEOUT: Duration = Duration::from_secs(2);
/// Confirming connects in flight at once.
const CONFIRM_PARALLEL: usize = 256;

/// Flags tarpits (their "open" TCP ports become filtered with reason `tarpit`), then, if
/// `verify`, re-checks every remaining open TCP port with a full connect and keeps what
/// the handshake says.
pub(crate) async fn confirm(hosts: &mut [HostReport], verify: bool) {
    for host in hosts.iter_mut() {
        let probed = host
            .ports
            .iter()
            .filter(|p| p.protocol == Protocol::Tcp)
            .count();
        let open = host.open_tcp_ports();
        if probed >= TARPIT_MIN_PROBED && open.len() as f64 >= probed as f64 * TARPIT_SHARE {
            let sample: Vec<u16> = open
                .choose_multiple(&mut rand::rng(), TARPIT_SAMPLE)
                .copied()
                .collect();
            let outcomes = handshakes(host, &sample).await;
            let handshakes = outcomes.iter().filter(|(_, o)| *o == Outcome::Open).count();
            host.tarpit = Some(TarpitEvidence {
                answered: u32::try_from(open.len()).unwrap_or(u32::MAX),
                probed: u32::try_from(probed).unwrap_or(u32::MAX),
                sampled: u32::try_from(sample.len()).unwrap_or(u32::MAX),
                handshakes: u32::try_from(handshakes).unwrap_or(u32::MAX),
            });
            for port in host.ports.iter_mut() {
                if port.protocol == Protocol::Tcp && port.state == PortState::Open {
                    port.state = PortState::Filtered;
                    port.reason = Reason::Tarpit;
                }
            }
            continue;
        }
        if verify && !open.is_empty() {
            for (port, outcome) in handshakes(host, &open).await {
                let Some(result) = host
                    .ports
                    .iter_mut()
                    .find(|p| p.protocol == Protocol::Tcp && p.port == port)
                else {
                    continue;
                };
                result.attempts = result.attempts.saturating_add(1);
                let (state, reason) = match outcome {
                    Outcome::Open => continue,
                    Outcome::Closed => (PortState::Closed, Reason::Reset),
                    Outcome::Unreachable(reason) => (PortState::Filtered, reason),
                    Outcome::LocalRefusal => (PortState::Filtered, Reason::LocalRefusal),
                    Outcome::TimedOut | Outcome::Exhausted => {
                        (PortState::Filtered, Reason::NoResponse)
                    }
                };
                result.state = state;
                result.reason = reason;
            }
        }
    }
}

/// Full connects to `ports` of the host, a few hundred at a time.
async fn handshakes(host: &HostReport, ports: &[u16]) -> Vec<(u16, Outcome)> {
    let timeouts = SharedTimeouts::new(CONFIRM_TIMEOUT, 1);
    let ip = host.ip;
    stream::iter(ports.iter().copied())
        .map(|port| {
            let timeouts = &timeouts;
            async move {
                let clock = Clock {
                    started: Instant::now(),
                    timeouts,
                    host: 0,
                    recheck: CONFIRM_TIMEOUT,
                };
                (
                    port,
                    probe::connect_once(SocketAddr::new(ip, port), clock).await,
                )
            }
        })
        .buffer_unordered(CONFIRM_PARALLEL)
        .collect()
        .await
}
