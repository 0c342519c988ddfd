//! The connect-scan engine: a sliding window of in-flight connection attempts.
//!
//! Jobs (address, port) come in a random order from a keyed permutation. Each attempt is
//! its own task, so both cores carry the socket work; the driver keeps the bookkeeping in
//! one place and never touches a socket.
//!
//! An attempt owns its timeout, counted from the moment it actually starts (not from when
//! it was queued), and before giving up it asks the kernel for the socket's state
//! (`SO_ERROR`, `getpeername`): an answer that arrived while this machine was too busy to
//! notice is still an answer. The timeout itself is read from shared per-host values that
//! the driver updates as round trips are measured, and re-read at least once per timeout
//! floor, so attempts started before the first answer stop waiting the initial second as
//! soon as one arrives.

use crate::ScanConfig;
use crate::event::{Progress, ScanEvent, ScanSink};
use crate::permute::Permutation;
use crate::targets::HostEntry;
use crate::timing::{RttEstimator, Window};
use governor::clock::{Clock, DefaultClock};
use governor::{Quota, RateLimiter};
use portgate_model::{PortResult, PortState, Protocol, Reason};
use socket2::{Domain, Socket, Type};
use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::task::JoinSet;
use tokio::time::Instant;

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
    deferred: VecDeque<Job>,
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
            deferred: VecDeque::new(),
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Job {
    host: u32,
    port: u16,
    attempt: u8,
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
    /// Nothing came back within the host's timeout.
    TimedOut,
}

struct Completion {
    job: Job,
    outcome: Outcome,
    /// When the driver queued the attempt, when it started, when it ended.
    launched: Instant,
    started: Instant,
    finished: Instant,
}

/// Per-host timeouts in microseconds, written by the driver, read by the attempts.
/// 0 for a host means "no measurement of its own yet: use the scan-wide value".
struct SharedTimeouts {
    global: AtomicU32,
    hosts: Vec<AtomicU32>,
}

impl SharedTimeouts {
    fn get(&self, host: u32) -> Duration {
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
}

fn micros(d: Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX).max(1)
}

/// How the engine's run ended.
pub(crate) struct EngineEnd {
    pub(crate) deadline_hit: bool,
}

struct Engine<'a> {
    config: &'a ScanConfig,
    sink: &'a mut dyn ScanSink,
    hosts: &'a mut [HostState],
    started: Instant,
    tasks: JoinSet<Completion>,
    ready: VecDeque<Job>,
    deferred_total: usize,
    window: Window,
    global_rtt: RttEstimator,
    timeouts: Arc<SharedTimeouts>,
    done: u64,
    open: u64,
    total: u64,
    lost_tasks: u64,
    pause_until: Option<Instant>,
}

/// Probes every configured TCP port on every host; results land in `hosts[i].results`.
pub(crate) async fn run(
    config: &ScanConfig,
    hosts: &mut [HostState],
    started: Instant,
    seed: u64,
    sink: &mut dyn ScanSink,
) -> EngineEnd {
    let ports = &config.tcp_ports;
    let lead_ports: Vec<u16> = LEAD_PORTS
        .iter()
        .copied()
        .filter(|p| ports.binary_search(p).is_ok())
        .collect();
    let host_count = hosts.len() as u64;
    let total = host_count * ports.len() as u64;
    let initial_timeout = config
        .initial_rtt_timeout
        .clamp(config.min_rtt_timeout, config.max_rtt_timeout);
    let timeouts = Arc::new(SharedTimeouts {
        global: AtomicU32::new(micros(initial_timeout)),
        hosts: hosts.iter().map(|_| AtomicU32::new(0)).collect(),
    });
    let mut engine = Engine {
        config,
        sink,
        hosts,
        started,
        tasks: JoinSet::new(),
        ready: VecDeque::new(),
        deferred_total: 0,
        window: Window::new(
            config.initial_in_flight,
            config.max_in_flight,
            config.min_rtt_timeout / QUEUE_TARGET_DIVISOR,
        ),
        global_rtt: RttEstimator::default(),
        timeouts,
        done: 0,
        open: 0,
        total,
        lost_tasks: 0,
        pause_until: None,
    };
    // Lead ports first, host by host; then everything else in random order.
    for &port in &lead_ports {
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
    let mut next_progress = Instant::now() + PROGRESS_EVERY;

    let deadline_hit = loop {
        let now = Instant::now();
        if deadline.is_some_and(|at| now >= at) {
            break true;
        }
        if now >= next_progress {
            next_progress = now + PROGRESS_EVERY;
            engine.progress();
        }
        // Fill the window.
        if engine.pause_until.is_none_or(|until| now >= until) {
            engine.pause_until = None;
            while engine.tasks.len() < engine.window.size() {
                let job = if let Some(job) = engine.ready.pop_front() {
                    job
                } else if next_fresh < order.len()
                    && engine.deferred_total < engine.config.max_in_flight * 4
                {
                    let index = order.at(next_fresh);
                    next_fresh += 1;
                    let port = ports[(index / host_count) as usize];
                    if lead_ports.contains(&port) {
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
        if engine.tasks.is_empty()
            && engine.ready.is_empty()
            && engine.deferred_total == 0
            && next_fresh >= order.len()
        {
            break false;
        }
        let mut wake = next_progress;
        for at in [engine.pause_until, deadline].into_iter().flatten() {
            wake = wake.min(at);
        }
        tokio::select! {
            biased;
            Some(joined) = engine.tasks.join_next() => {
                engine.joined(joined);
                // Take everything already finished before going round the loop.
                while let Some(joined) = engine.tasks.try_join_next() {
                    engine.joined(joined);
                }
            }
            () = tokio::time::sleep_until(wake) => {}
        }
    };
    if deadline_hit {
        engine.tasks.abort_all();
    }
    engine.progress();
    for host in engine.hosts.iter_mut() {
        host.results.sort_unstable_by_key(|r| (r.protocol, r.port));
    }
    engine.sink.event(ScanEvent::Finished);
    EngineEnd { deadline_hit }
}

impl Engine<'_> {
    fn launch(&mut self, job: Job, now: Instant) {
        let host = &mut self.hosts[job.host as usize];
        host.in_flight += 1;
        let addr = SocketAddr::new(host.entry.ip, job.port);
        let timeouts = Arc::clone(&self.timeouts);
        let recheck = self.config.min_rtt_timeout;
        self.tasks.spawn(async move {
            let started = Instant::now();
            let outcome = connect_once(addr, started, &timeouts, job.host, recheck).await;
            Completion {
                job,
                outcome,
                launched: now,
                started,
                finished: Instant::now(),
            }
        });
    }

    fn joined(&mut self, joined: Result<Completion, tokio::task::JoinError>) {
        match joined {
            Ok(completion) => self.complete(completion),
            // Attempts do not panic and are cancelled only at the deadline; should one
            // be lost anyway, its port is reported as not scanned rather than guessed.
            Err(_) => self.lost_tasks += 1,
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
        let job = completion.job;
        self.release(job.host);
        let now = completion.finished.into_std();
        let queued = completion
            .started
            .saturating_duration_since(completion.launched);
        self.window.on_start_delay(queued, now);
        let (state, reason) = match completion.outcome {
            Outcome::Exhausted => {
                // Not an answer: try the same attempt again once the window has room.
                self.window.on_resource_exhausted(self.tasks.len());
                self.ready.push_front(job);
                if self.tasks.is_empty() {
                    self.pause_until = Some(Instant::now() + RESOURCE_PAUSE);
                }
                return;
            }
            Outcome::TimedOut => {
                self.timed_out(job);
                return;
            }
            Outcome::Open => (PortState::Open, Reason::SynAck),
            Outcome::Closed => (PortState::Closed, Reason::Reset),
            Outcome::Unreachable(reason) => (PortState::Filtered, reason),
            Outcome::LocalRefusal => {
                self.window.on_silence();
                self.settle(job, PortState::Filtered, Reason::LocalRefusal, None);
                return;
            }
        };
        // An answer. The round trip for timeouts is counted from the attempt's start
        // (that is where its timeout counts from); the window looks at the whole delay
        // from launch, queueing included.
        let rtt = completion
            .finished
            .saturating_duration_since(completion.started);
        let host = &mut self.hosts[job.host as usize];
        host.answered += 1;
        host.rtt.sample(rtt);
        self.global_rtt.sample(rtt);
        self.publish_timeouts(job.host);
        self.window.on_answer(
            completion
                .finished
                .saturating_duration_since(completion.launched),
            now,
        );
        if job.attempt > 0 {
            // An earlier attempt went unanswered, this one did not: loss.
            let timeout = self.timeouts.get(job.host);
            self.hosts[job.host as usize].loss_events += 1;
            self.window.on_loss(now, timeout);
        }
        self.settle(job, state, reason, Some(rtt));
    }

    /// Publishes the host's and the scan's current timeouts to the attempts:
    /// srtt + 4·rttvar, within the floor and the ceiling.
    fn publish_timeouts(&self, host_index: u32) {
        let clamp = |d: Duration| d.clamp(self.config.min_rtt_timeout, self.config.max_rtt_timeout);
        if let Some(t) = self.hosts[host_index as usize].rtt.timeout()
            && let Some(slot) = self.timeouts.hosts.get(host_index as usize)
        {
            slot.store(micros(clamp(t)), Ordering::Relaxed);
        }
        if let Some(t) = self.global_rtt.timeout() {
            self.timeouts
                .global
                .store(micros(clamp(t)), Ordering::Relaxed);
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
            in_flight: self.tasks.len(),
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

/// One TCP connection attempt, started at `started`.
///
/// Waits for the socket to become writable (connected or refused), for at most the host's
/// current timeout, re-reading it at least every `recheck`. Before reporting a timeout it
/// asks the kernel directly, so a late wake-up never turns an answer into silence.
async fn connect_once(
    addr: SocketAddr,
    started: Instant,
    timeouts: &SharedTimeouts,
    host: u32,
    recheck: Duration,
) -> Outcome {
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
    loop {
        if let Some(outcome) = settled(&stream, addr) {
            return outcome;
        }
        let now = Instant::now();
        let deadline = started + timeouts.get(host);
        if now >= deadline {
            return Outcome::TimedOut;
        }
        let wake = deadline.min(now + recheck);
        if let Ok(Ok(())) = tokio::time::timeout_at(wake, stream.writable()).await
            && settled(&stream, addr).is_none()
        {
            // Writable yet not connected: a spurious wake-up. Wait out the interval
            // rather than spin on a readiness flag that stays set.
            tokio::time::sleep_until(wake).await;
        }
    }
}

/// The kernel's verdict on a connecting socket, if it has one yet.
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
            | libc::ENOSPC
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
