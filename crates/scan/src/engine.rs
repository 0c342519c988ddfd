//! The connect-scan engine: a sliding window of in-flight connection attempts.
//!
//! Jobs (address, port) come in a random order from a keyed permutation. Each attempt is
//! its own task, so both cores carry the socket work; the driver keeps the bookkeeping in
//! one place. Timeouts are not fixed when an attempt starts: every tick, each host's
//! oldest attempts are compared with the host's *current* timeout, so a scan that starts
//! without a round-trip measurement stops waiting the initial second as soon as a first
//! answer arrives.

use crate::ScanConfig;
use crate::event::{Progress, ScanEvent, ScanSink};
use crate::permute::Permutation;
use crate::targets::HostEntry;
use crate::timing::{RttEstimator, Window};
use governor::clock::{Clock, DefaultClock};
use governor::{Quota, RateLimiter};
use portgate_model::{PortResult, PortState, Protocol, Reason};
use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
use tokio::net::TcpSocket;
use tokio::sync::mpsc;
use tokio::task::AbortHandle;
use tokio::time::{Instant, MissedTickBehavior};

/// How often timeouts are checked.
const TICK: Duration = Duration::from_millis(5);
/// How often progress is reported.
const PROGRESS_EVERY: Duration = Duration::from_millis(100);
/// Pause before trying again when the system had no socket to give and nothing is in flight.
const RESOURCE_PAUSE: Duration = Duration::from_millis(20);
/// Ports probed first on every host so that a round-trip time is measured early, even on
/// a host whose firewall drops everything else. The most common listeners: if the host
/// has any service at all, one of these is likely to answer.
const LEAD_PORTS: [u16; 8] = [80, 443, 22, 21, 25, 3389, 8080, 445];
/// The window stops growing when answers queue for more than the timeout floor divided
/// by this, so that a busy CPU never makes an answer late enough to be taken for silence.
const QUEUE_TARGET_DIVISOR: u32 = 5;
/// Most retries a port gets, however lossy its host.
const MAX_RETRIES: u8 = 9;
/// Once a host shows loss, each port gets enough attempts that the chance of any port of
/// the host losing all of them stays under this.
const MISS_BUDGET: f64 = 1e-3;

/// One address and its bookkeeping.
pub(crate) struct HostState {
    pub(crate) entry: HostEntry,
    pub(crate) results: Vec<PortResult>,
    rtt: RttEstimator,
    in_flight: usize,
    /// Ports that answered, and how many of those answered only on a retry.
    answered: u32,
    loss_events: u32,
    /// Launch time and attempt id, oldest first.
    pending: VecDeque<(Instant, u64)>,
    deferred: VecDeque<Job>,
    active: bool,
}

impl HostState {
    pub(crate) fn new(entry: HostEntry) -> Self {
        HostState {
            entry,
            results: Vec::new(),
            rtt: RttEstimator::default(),
            in_flight: 0,
            answered: 0,
            loss_events: 0,
            pending: VecDeque::new(),
            deferred: VecDeque::new(),
            active: false,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Job {
    host: u32,
    port: u16,
    attempt: u8,
}

struct Flight {
    job: Job,
    launched: Instant,
    abort: AbortHandle,
}

/// What one connection attempt observed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Open,
    Closed,
    Unreachable(Reason),
    LocalRefusal,
    /// The local system ran out of something (descriptors, buffers, local ports):
    /// says nothing about the port.
    Exhausted,
}

struct Completion {
    id: u64,
    outcome: Outcome,
    finished: Instant,
}

/// How the engine's run ended.
pub(crate) struct EngineEnd {
    pub(crate) deadline_hit: bool,
}

struct Engine<'a> {
    config: &'a ScanConfig,
    sink: &'a mut dyn ScanSink,
    hosts: &'a mut [HostState],
    lead_ports: Vec<u16>,
    started: Instant,
    flights: HashMap<u64, Flight>,
    ready: VecDeque<Job>,
    deferred_total: usize,
    active_hosts: Vec<u32>,
    window: Window,
    global_rtt: RttEstimator,
    next_id: u64,
    done: u64,
    open: u64,
    total: u64,
    pause_until: Option<Instant>,
    tx: mpsc::UnboundedSender<Completion>,
}

/// Probes every configured TCP port on every host; results land in `hosts[i].results`.
pub(crate) async fn run(
    config: &ScanConfig,
    hosts: &mut [HostState],
    started: Instant,
    seed: u64,
    sink: &mut dyn ScanSink,
) -> EngineEnd {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let ports = &config.tcp_ports;
    let lead_ports: Vec<u16> = LEAD_PORTS
        .iter()
        .copied()
        .filter(|p| ports.binary_search(p).is_ok())
        .collect();
    let host_count = hosts.len() as u64;
    let total = host_count * ports.len() as u64;
    let mut engine = Engine {
        config,
        sink,
        hosts,
        lead_ports,
        started,
        flights: HashMap::with_capacity(config.max_in_flight),
        ready: VecDeque::new(),
        deferred_total: 0,
        active_hosts: Vec::new(),
        window: Window::new(
            config.initial_in_flight,
            config.max_in_flight,
            config.min_rtt_timeout / QUEUE_TARGET_DIVISOR,
        ),
        global_rtt: RttEstimator::default(),
        next_id: 0,
        done: 0,
        open: 0,
        total,
        pause_until: None,
        tx,
    };
    // Lead ports first, host by host; then everything else in random order.
    for port in engine.lead_ports.clone() {
        for host in 0..host_count {
            engine.ready.push_back(Job {
                host: host as u32,
                port,
                attempt: 0,
            });
        }
    }
    let order = Permutation::new(total, seed);
    let mut next_fresh = 0u64;
    // Paced, not bursty: at most 20 ms worth of probes at once.
    let limiter = config.rate.map(|rate| {
        let burst = std::num::NonZeroU32::new(rate.get() / 50).unwrap_or(std::num::NonZeroU32::MIN);
        RateLimiter::direct(Quota::per_second(rate).allow_burst(burst))
    });
    let clock = DefaultClock::default();
    let deadline = config.deadline.map(|d| started + d);
    let mut ticker = tokio::time::interval(TICK);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut last_progress = Instant::now();

    let deadline_hit = loop {
        // Fill the window.
        let now = Instant::now();
        if engine.pause_until.is_none_or(|until| now >= until) {
            engine.pause_until = None;
            while engine.flights.len() < engine.window.size() {
                let job = if let Some(job) = engine.ready.pop_front() {
                    job
                } else if next_fresh < order.len()
                    && engine.deferred_total < engine.config.max_in_flight * 4
                {
                    let index = order.at(next_fresh);
                    next_fresh += 1;
                    let port = ports[(index / host_count) as usize];
                    if engine.lead_ports.contains(&port) {
                        continue;
                    }
                    Job {
                        host: (index % host_count) as u32,
                        port,
                        attempt: 0,
                    }
                } else {
                    break;
                };
                let host = &mut engine.hosts[job.host as usize];
                if host.in_flight >= engine.config.host_concurrency {
                    host.deferred.push_back(job);
                    engine.deferred_total += 1;
                    continue;
                }
                if let Some(limiter) = &limiter
                    && let Err(not_until) = limiter.check()
                {
                    engine.ready.push_front(job);
                    engine.pause_until = Some(now + not_until.wait_time_from(clock.now()));
                    break;
                }
                engine.launch(job, now);
            }
        }
        if engine.flights.is_empty()
            && engine.ready.is_empty()
            && engine.deferred_total == 0
            && next_fresh >= order.len()
        {
            break false;
        }
        let pause = engine.pause_until;
        tokio::select! {
            biased;
            Some(completion) = rx.recv() => {
                engine.complete(completion);
                // Take everything already queued before going round the loop.
                while let Ok(completion) = rx.try_recv() {
                    engine.complete(completion);
                }
            }
            _ = ticker.tick() => {
                engine.expire(Instant::now());
                if last_progress.elapsed() >= PROGRESS_EVERY {
                    last_progress = Instant::now();
                    engine.progress();
                }
            }
            _ = sleep_until_opt(pause), if pause.is_some() => {}
            _ = sleep_until_opt(deadline), if deadline.is_some() => break true,
        }
    };
    if deadline_hit {
        for (_, flight) in engine.flights.drain() {
            flight.abort.abort();
        }
    }
    engine.progress();
    for host in engine.hosts.iter_mut() {
        host.results.sort_unstable_by_key(|r| (r.protocol, r.port));
    }
    engine.sink.event(ScanEvent::Finished);
    EngineEnd { deadline_hit }
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

impl Engine<'_> {
    fn launch(&mut self, job: Job, now: Instant) {
        let id = self.next_id;
        self.next_id += 1;
        let host = &mut self.hosts[job.host as usize];
        let addr = SocketAddr::new(host.entry.ip, job.port);
        let tx = self.tx.clone();
        let handle = tokio::spawn(async move {
            let outcome = connect_once(addr).await;
            // The receiver is gone only when the scan is over; nothing to do then.
            let _ = tx.send(Completion {
                id,
                outcome,
                finished: Instant::now(),
            });
        });
        self.flights.insert(
            id,
            Flight {
                job,
                launched: now,
                abort: handle.abort_handle(),
            },
        );
        host.in_flight += 1;
        host.pending.push_back((now, id));
        if !host.active {
            host.active = true;
            self.active_hosts.push(job.host);
        }
    }

    /// The host gave back a slot: let one of its deferred jobs go.
    fn release(&mut self, host_index: u32) {
        let host = &mut self.hosts[host_index as usize];
        host.in_flight -= 1;
        if let Some(job) = host.deferred.pop_front() {
            self.deferred_total -= 1;
            self.ready.push_front(job);
        }
    }

    fn complete(&mut self, completion: Completion) {
        // Absent: the attempt already timed out and was retried or settled.
        let Some(flight) = self.flights.remove(&completion.id) else {
            return;
        };
        let job = flight.job;
        self.release(job.host);
        let rtt = completion
            .finished
            .saturating_duration_since(flight.launched);
        let (state, reason) = match completion.outcome {
            Outcome::Exhausted => {
                // Not an answer: try the same attempt again once the window has room.
                self.window.on_resource_exhausted(self.flights.len());
                self.ready.push_front(job);
                if self.flights.is_empty() {
                    self.pause_until = Some(Instant::now() + RESOURCE_PAUSE);
                }
                return;
            }
            Outcome::Open => (PortState::Open, Reason::SynAck),
            Outcome::Closed => (PortState::Closed, Reason::Reset),
            Outcome::Unreachable(reason) => (PortState::Filtered, reason),
            Outcome::LocalRefusal => (PortState::Filtered, Reason::LocalRefusal),
        };
        let answered = completion.outcome != Outcome::LocalRefusal;
        if answered {
            self.hosts[job.host as usize].answered += 1;
            self.hosts[job.host as usize].rtt.sample(rtt);
            self.global_rtt.sample(rtt);
            self.window.on_answer(rtt, completion.finished.into_std());
            if job.attempt > 0 {
                // An earlier attempt went unanswered, this one did not: loss.
                let timeout = self.timeout_for(job.host);
                self.hosts[job.host as usize].loss_events += 1;
                self.window.on_loss(completion.finished.into_std(), timeout);
            }
        }
        if !answered {
            self.window.on_silence();
        }
        self.settle(job, state, reason, answered.then_some(rtt));
    }

    fn expire(&mut self, now: Instant) {
        let mut index = 0;
        while index < self.active_hosts.len() {
            let host_index = self.active_hosts[index];
            let timeout = self.timeout_for(host_index);
            loop {
                let host = &mut self.hosts[host_index as usize];
                let Some(&(launched, id)) = host.pending.front() else {
                    break;
                };
                if !self.flights.contains_key(&id) {
                    host.pending.pop_front();
                    continue;
                }
                if now.saturating_duration_since(launched) < timeout {
                    break;
                }
                host.pending.pop_front();
                if let Some(flight) = self.flights.remove(&id) {
                    flight.abort.abort();
                    self.release(host_index);
                    self.timed_out(flight.job);
                }
            }
            let host = &mut self.hosts[host_index as usize];
            if host.pending.is_empty() {
                host.active = false;
                self.active_hosts.swap_remove(index);
            } else {
                index += 1;
            }
        }
    }

    fn timed_out(&mut self, job: Job) {
        let host = &self.hosts[job.host as usize];
        let allowed = retries_for(
            self.config.retries,
            host.answered,
            host.loss_events,
            self.config.tcp_ports.len(),
        );
        if job.attempt < allowed {
            self.ready.push_back(Job {
                attempt: job.attempt + 1,
                ..job
            });
        } else {
            self.window.on_silence();
            self.settle(job, PortState::Filtered, Reason::NoResponse, None);
        }
    }

    /// The host's current timeout: its own RTT estimate, else the scan's, else the
    /// initial timeout; always within the floor and ceiling.
    fn timeout_for(&self, host_index: u32) -> Duration {
        let host = &self.hosts[host_index as usize];
        host.rtt
            .timeout()
            .or_else(|| self.global_rtt.timeout())
            .unwrap_or(self.config.initial_rtt_timeout)
            .clamp(self.config.min_rtt_timeout, self.config.max_rtt_timeout)
    }

    fn settle(&mut self, job: Job, state: PortState, reason: Reason, rtt: Option<Duration>) {
        self.done += 1;
        if state == PortState::Open {
            self.open += 1;
        }
        let at_ms = u32::try_from(self.started.elapsed().as_millis()).unwrap_or(u32::MAX);
        let result = PortResult {
            port: job.port,
            protocol: Protocol::Tcp,
            state,
            reason,
            rtt_us: rtt.map(|d| u32::try_from(d.as_micros()).unwrap_or(u32::MAX)),
            attempts: job.attempt.saturating_add(1),
            at_ms,
        };
        let host = &mut self.hosts[job.host as usize];
        host.results.push(result);
        let ip = host.entry.ip;
        self.sink.event(ScanEvent::Port {
            ip,
            result: &result,
        });
    }

    fn progress(&mut self) {
        self.sink.event(ScanEvent::Progress(Progress {
            done: self.done,
            total: self.total,
            open: self.open,
            in_flight: self.flights.len(),
            window: self.window.size(),
        }));
    }
}

/// Retries a port of a host gets. Before any loss is seen, the configured number. Once
/// ports have answered only on a retry, the loss rate p is estimated from them and each
/// port gets k attempts with p^k · ports ≤ [`MISS_BUDGET`]: at 2% loss over 65,535 ports,
/// 5 attempts. Never fewer than configured, never more than [`MAX_RETRIES`]; a configured
/// 0 stays 0 (the user asked for speed over certainty).
fn retries_for(configured: u8, answered: u32, losses: u32, ports: usize) -> u8 {
    if configured == 0 || losses == 0 {
        return configured;
    }
    let p = (f64::from(losses) / f64::from(answered.max(1))).clamp(1e-4, 0.5);
    let attempts = ((MISS_BUDGET / ports.max(1) as f64).ln() / p.ln()).ceil();
    let retries = (attempts - 1.0).clamp(0.0, f64::from(MAX_RETRIES)) as u8;
    retries.max(configured)
}

/// One TCP connection attempt.
async fn connect_once(addr: SocketAddr) -> Outcome {
    let socket = match addr.ip() {
        IpAddr::V4(_) => TcpSocket::new_v4(),
        IpAddr::V6(_) => TcpSocket::new_v6(),
    };
    let socket = match socket {
        Ok(socket) => socket,
        Err(error) => return classify(&error),
    };
    // Close with a reset: no TIME_WAIT left behind to use up local ports.
    let _ = socket.set_zero_linger();
    match socket.connect(addr).await {
        Ok(stream) => {
            // Connecting to a local port in the ephemeral range can, rarely, pick that
            // same port as the source and connect the socket to itself. Nothing listens.
            if stream.local_addr().ok() == Some(addr) {
                Outcome::Closed
            } else {
                Outcome::Open
            }
        }
        Err(error) => classify(&error),
    }
}

fn classify(error: &io::Error) -> Outcome {
    match error.raw_os_error() {
        Some(libc::ECONNREFUSED | libc::ECONNRESET) => Outcome::Closed,
        Some(libc::EHOSTUNREACH | libc::EHOSTDOWN) => Outcome::Unreachable(Reason::HostUnreachable),
        Some(libc::ENETUNREACH | libc::ENETDOWN) => Outcome::Unreachable(Reason::NetUnreachable),
        Some(
            libc::EMFILE
            | libc::ENFILE
            | libc::ENOBUFS
            | libc::ENOMEM
            | libc::EADDRNOTAVAIL
            | libc::EAGAIN
            | libc::EADDRINUSE,
        ) => Outcome::Exhausted,
        _ => Outcome::LocalRefusal,
    }
}

/// The seed for the probe order: the configured one, or a random one.
pub(crate) fn order_seed(config: &ScanConfig) -> u64 {
    config.seed.unwrap_or_else(rand::random)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_grow_with_measured_loss() {
        assert_eq!(retries_for(1, 1000, 0, 65535), 1, "no loss seen");
        assert_eq!(retries_for(0, 1000, 100, 65535), 0, "0 is respected");
        assert_eq!(retries_for(1, 1000, 20, 65535), 4, "2% loss: 5 attempts");
        assert_eq!(retries_for(1, 1000, 1, 65535), 2, "0.1% loss: 3 attempts");
        assert_eq!(
            retries_for(1, 10000, 1, 65535),
            1,
            "0.01% loss: 2 attempts do"
        );
        assert_eq!(
            retries_for(1, 10, 9, 65535),
            MAX_RETRIES,
            "heavy loss is capped"
        );
        assert_eq!(
            retries_for(6, 1000, 20, 65535),
            6,
            "never below the configured"
        );
    }

    #[test]
    fn errors_map_to_states() {
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
}
