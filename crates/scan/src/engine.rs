//! The scan driver: a sliding window of in-flight attempts over every (address, port).
//!
//! Jobs come in a random order from a keyed permutation. Each attempt is its own task
//! ([`crate::probe`]), so both cores carry the socket work; the driver keeps the
//! bookkeeping in one place, never touches a socket, and reads outcomes as attempts end.

use crate::ScanConfig;
use crate::event::{Progress, ScanEvent, ScanSink};
use crate::permute::Permutation;
use crate::probe::{self, Clock, Outcome, SharedTimeouts};
use crate::syn::{LATEST_ATTEMPT, SynAnswer, SynProber};
use crate::targets::HostEntry;
use crate::timing::{Pacer, RttEstimator, Window};
use governor::clock::{Clock as _, DefaultClock};
use governor::{Quota, RateLimiter};
use portgate_model::{PortResult, PortState, Protocol, Reason};
use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::task::JoinSet;
use tokio::time::Instant;

/// Launches per turn of the driver loop, so that a window that just grew by thousands
/// does not keep answers and timeouts waiting while it fills.
const LAUNCHES_PER_TURN: usize = 256;
/// How often SYNs in flight are checked against their timeouts.
const SYN_TICK: Duration = Duration::from_millis(5);
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
/// Linux sends at most one ICMP error per second to a peer after a burst of a few (its
/// `icmp_ratelimit`); most systems have some such limit. Once a host shows it, UDP probes
/// to that host go out no faster than this, so a closed port is not taken for open|filtered.
const ICMP_LIMITED_GAP: Duration = Duration::from_millis(1000);
/// A host's loss share is judged over at least this long...
const MIN_EPOCH: Duration = Duration::from_millis(100);
/// ...and at least this many answers.
const MIN_EPOCH_ANSWERS: u32 = 32;
/// A host's window is cut when more than this share of its answers needed a retry.
const HOST_CUT_LOSS_SHARE: f64 = 0.05;
/// A host's window is never cut below this.
const MIN_HOST_CWND: f64 = 4.0;
/// Ports of all hosts whose "filtered" verdict may wait for their host's loss to be
/// measured (see [`HostState::held`]); beyond this, verdicts are given at once.
const HELD_CAP: usize = 1 << 18;
/// Loss samples a host gets at most, as a share of the ports scanned per host (one per
/// this many ports), and in any case at most [`MAX_SAMPLES`].
const PORTS_PER_SAMPLE: usize = 128;
const MAX_SAMPLES: u32 = 512;
/// Samples one answering port gets at most.
const MAX_SAMPLES_PER_PORT: u8 = 64;
/// Losses a host's held verdicts wait for: the first loss alone, seen after n trials,
/// puts the loss rate at 1/n, too high when n is small, and would buy held ports more
/// retries than the path calls for.
const LOSS_EVIDENCE: u32 = 2;
/// Answering ports that start sampling at once when a host first holds a verdict.
const SAMPLE_STARTERS: usize = 16;
/// UDP retries on a host that rate-limits its ICMP errors.
const ICMP_LIMITED_RETRIES: u8 = 6;
/// Paced UDP retries that may stay silent in a row before the silence is taken for a
/// filter's rather than a rate limit's.
const PACED_SILENCE_LIMIT: u8 = 3;

/// One address and its bookkeeping.
pub(crate) struct HostState {
    pub(crate) entry: HostEntry,
    pub(crate) results: Vec<PortResult>,
    rtt: RttEstimator,
    in_flight: usize,
    /// Ports that answered (and loss samples taken), and how many of those answered only
    /// on a retry (or, as samples, not at all).
    answered: u32,
    /// Ports that answered.
    answering: u32,
    loss_events: u32,
    /// UDP: the host sends ICMP port-unreachables, yet some ports stayed silent: it may
    /// be rate-limiting its ICMP errors, so its UDP probes are paced to that rate.
    icmp_limited: bool,
    /// UDP: a port of this host known to answer ICMP port-unreachable, and whether a
    /// canary probe to it is out. When other ports stay silent, the canary tells a rate
    /// limit (the known-closed port is silent too: the host has run out of ICMP errors)
    /// from a filter (it answers: the silence elsewhere is real) without waiting.
    known_closed: Option<u16>,
    canary_out: bool,
    /// UDP: paced retries that stayed silent in a row; after a few, the silence is a
    /// filter's and pacing stops for good (`icmp_cleared`).
    paced_silence: u8,
    icmp_cleared: bool,
    udp_next: Option<Instant>,
    deferred: VecDeque<Job>,
    /// This host's own congestion window (attempts in flight to it at most), cut in
    /// half when it proves to drop probes — a target that rate-limits its answers — and
    /// grown again by its answers (slow start up to `ssthresh`, then one per window).
    cwnd: f64,
    ssthresh: f64,
    /// Answers, and answers that came only on a retry, since `epoch_start`. The share is
    /// judged per epoch (a timeout interval or more): retries go out together, so their
    /// answers bunch up and would overstate loss if counted in arrival order. Random loss
    /// of a few percent is not a host turning probes away, and does not cut its window.
    epoch_start: Option<Instant>,
    /// When the host's window was last cut. Losses of probes sent before it were
    /// already answered by that cut and do not cut again — otherwise the retries of one
    /// bad moment, answered over the following epochs, would halve the window epoch after
    /// epoch down to its floor, where on a long path it grows back by one per round trip.
    cut_at: Option<Instant>,
    epoch_answers: u32,
    epoch_losses: u32,
    /// SYNs in flight to this host: when each went out, to which port, which attempt.
    syn_sent: VecDeque<(Instant, u16, u8)>,
    syn_active: bool,
    /// TCP ports that stayed silent through their retries while the host's loss is not
    /// known: a host that answers only a few ports (a firewall dropping the rest) shows
    /// little loss to measure, and an answering port whose every reply was lost would be
    /// called filtered. Their verdict waits while the host's answering ports are probed
    /// again (loss samples); once a sample goes unanswered the loss is known and these
    /// ports get the retries it calls for, otherwise they are filtered at the end.
    held: Vec<Job>,
    /// Loss samples scheduled for this host.
    samples: u32,
}

impl HostState {
    pub(crate) fn new(entry: HostEntry) -> Self {
        HostState {
            cwnd: f64::INFINITY,
            ssthresh: f64::INFINITY,
            epoch_start: None,
            cut_at: None,
            epoch_answers: 0,
            epoch_losses: 0,
            entry,
            results: Vec::new(),
            rtt: RttEstimator::default(),
            in_flight: 0,
            answered: 0,
            answering: 0,
            loss_events: 0,
            icmp_limited: false,
            known_closed: None,
            canary_out: false,
            paced_silence: 0,
            icmp_cleared: false,
            udp_next: None,
            deferred: VecDeque::new(),
            syn_sent: VecDeque::new(),
            syn_active: false,
            held: Vec::new(),
            samples: 0,
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Job {
    host: u32,
    port: u16,
    protocol: Protocol,
    attempt: u8,
    /// UDP: sent under its host's ICMP pacing.
    paced: bool,
    /// UDP: a canary to a port known closed, asking whether the host still sends ICMP
    /// errors; its outcome settles no port.
    canary: bool,
    /// When the previous attempt went out (a retry's lost probe).
    previous: Option<Instant>,
    /// TCP: 0 for a port's own probe; n for the nth loss sample of a port that already
    /// answered (its outcome settles no port, it measures the host's loss).
    sample: u8,
}

impl Job {
    /// The first attempt at `port` of host `host`.
    fn first(host: u32, port: u16, protocol: Protocol) -> Self {
        Job {
            host,
            port,
            protocol,
            attempt: 0,
            paced: false,
            canary: false,
            previous: None,
            sample: 0,
        }
    }
}

struct Completion {
    job: Job,
    outcome: Outcome,
    /// When the driver queued the attempt, when it started, when it ended.
    launched: Instant,
    started: Instant,
    finished: Instant,
    /// The attempt still held a place in the window. False for a late answer — one
    /// for an attempt that had already timed out and given its place up: the timeout
    /// was too short, nothing was lost.
    holds_slot: bool,
}

impl Completion {
    /// The attempt `job` ended at once, without going out or coming back.
    fn immediate(job: Job, outcome: Outcome, now: Instant) -> Self {
        Completion {
            job,
            outcome,
            launched: now,
            started: now,
            finished: Instant::now(),
            holds_slot: true,
        }
    }
}

/// A port probed by SYN and not settled yet.
struct SynPort {
    /// The latest attempt sent.
    job: Job,
    /// When each attempt went out (index: attempt number), so that an answer to any of
    /// them, however late, is timed from its own SYN.
    sent: Vec<Instant>,
    /// The latest attempt is in flight (its timeout has not passed).
    outstanding: bool,
}

/// How TCP ports are probed in this run.
pub(crate) enum TcpProber {
    /// Full handshakes through the kernel.
    Connect,
    /// Raw SYNs, sent by the driver itself; answers come through a channel.
    Syn(Arc<SynProber>),
}

/// What the driver needs besides the configuration.
pub(crate) struct Probers {
    pub(crate) tcp: TcpProber,
    /// Payloads per UDP port (empty: an empty datagram).
    pub(crate) udp_payloads: Arc<dyn Fn(u16) -> Vec<Vec<u8>> + Send + Sync>,
}

/// How the engine's run ended.
pub(crate) struct EngineEnd {
    pub(crate) deadline_hit: bool,
}

struct Engine<'a> {
    config: &'a ScanConfig,
    sink: &'a mut dyn ScanSink,
    hosts: &'a mut [HostState],
    probers: &'a Probers,
    started: Instant,
    tasks: JoinSet<Completion>,
    ready: VecDeque<Job>,
    deferred_total: usize,
    /// UDP jobs held back by their host's ICMP pacing, and when the next may go.
    paced: VecDeque<Job>,
    window: Window,
    pacer: Pacer,
    global_rtt: RttEstimator,
    timeouts: Arc<SharedTimeouts>,
    ports_per_host: usize,
    /// Ports probed by SYN and not settled: (host, port) → their attempts. A port stays
    /// here after its attempt times out, until it is settled, so that an answer that
    /// comes after the timeout — while the retry waits for its turn, or after it went
    /// out — still settles it.
    syn_ports: HashMap<(u32, u16), SynPort>,
    /// Entries of `syn_ports` whose latest attempt is in flight.
    syn_outstanding: usize,
    syn_active: Vec<u32>,
    host_of: HashMap<IpAddr, u32>,
    done: u64,
    open: u64,
    total: u64,
    pause_until: Option<Instant>,
    /// Jobs waiting in hosts' `held` lists.
    held_total: usize,
    /// Loss samples a host may get.
    sample_budget: u32,
    /// Fresh ports remain to be probed: loss samples are taken only meanwhile.
    fresh_left: bool,
}

/// Probes every configured port on every host; results land in `hosts[i].results`.
/// `syn_answers` carries the SYN receiver's verified answers when TCP is probed by SYN.
pub(crate) async fn run(
    config: &ScanConfig,
    probers: &Probers,
    mut syn_answers: Option<UnboundedReceiver<SynAnswer>>,
    hosts: &mut [HostState],
    started: Instant,
    seed: u64,
    sink: &mut dyn ScanSink,
) -> EngineEnd {
    let probes: Vec<(Protocol, u16)> = config
        .tcp_ports
        .iter()
        .map(|&p| (Protocol::Tcp, p))
        .chain(config.udp_ports.iter().map(|&p| (Protocol::Udp, p)))
        .collect();
    let lead_ports: Vec<u16> = LEAD_PORTS
        .iter()
        .copied()
        .filter(|p| config.tcp_ports.binary_search(p).is_ok())
        .collect();
    let host_count = hosts.len() as u64;
    let total = host_count * probes.len() as u64;
    let window_hosts = hosts.len().max(1);
    let initial_timeout = config
        .initial_rtt_timeout
        .clamp(config.min_rtt_timeout, config.max_rtt_timeout);
    let mut engine = Engine {
        config,
        sink,
        timeouts: Arc::new(SharedTimeouts::new(initial_timeout, hosts.len())),
        hosts,
        probers,
        started,
        tasks: JoinSet::new(),
        ready: VecDeque::new(),
        deferred_total: 0,
        paced: VecDeque::new(),
        // The window never exceeds what the hosts may hold (each at most its share): a
        // larger one would only pace launches faster than any host takes them, in bursts.
        window: Window::new(
            config.initial_in_flight,
            config
                .max_in_flight
                .min(window_hosts.saturating_mul(config.host_concurrency)),
            config.min_rtt_timeout / QUEUE_TARGET_DIVISOR,
        ),
        pacer: Pacer::new(),
        global_rtt: RttEstimator::default(),
        ports_per_host: probes.len(),
        syn_ports: HashMap::new(),
        syn_outstanding: 0,
        syn_active: Vec::new(),
        host_of: HashMap::new(),
        done: 0,
        open: 0,
        total,
        pause_until: None,
        held_total: 0,
        sample_budget: u32::try_from(probes.len() / PORTS_PER_SAMPLE)
            .unwrap_or(u32::MAX)
            .min(MAX_SAMPLES),
        fresh_left: true,
    };
    engine.host_of = engine
        .hosts
        .iter()
        .enumerate()
        .map(|(i, h)| (h.entry.ip, i as u32))
        .collect();
    let mut next_syn_tick = Instant::now() + SYN_TICK;
    // Lead ports first, host by host; then everything else in random order.
    for &port in &lead_ports {
        for host in 0..host_count {
            engine
                .ready
                .push_back(Job::first(host as u32, port, Protocol::Tcp));
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
            engine.settle_all_held();
            break true;
        }
        engine.fresh_left = next_fresh < order.len();
        if now >= next_progress {
            next_progress = now + PROGRESS_EVERY;
            engine.progress();
        }
        if now >= next_syn_tick {
            next_syn_tick = now + SYN_TICK;
            if let Some(answers) = syn_answers.as_mut() {
                // Answers already read count before anything is declared unanswered.
                while let Ok(answer) = answers.try_recv() {
                    engine.syn_answer(answer);
                }
                engine.syn_expire(Instant::now());
            }
        }
        engine.release_paced(now);
        // Fill the window.
        let mut launched = 0;
        if engine.pause_until.is_none_or(|until| now >= until) {
            engine.pause_until = None;
            while engine.in_flight() < engine.window.size() && launched < LAUNCHES_PER_TURN {
                let job = if let Some(job) = engine.ready.pop_front() {
                    job
                } else if next_fresh < order.len()
                    && engine.deferred_total < engine.config.max_in_flight * 4
                {
                    let index = order.at(next_fresh);
                    next_fresh += 1;
                    let (protocol, port) = probes[(index / host_count) as usize];
                    if protocol == Protocol::Tcp && lead_ports.contains(&port) {
                        continue;
                    }
                    Job::first((index % host_count) as u32, port, protocol)
                } else {
                    break;
                };
                let mut job = job;
                if engine.settled_late(&job) {
                    continue;
                }
                let host = &mut engine.hosts[job.host as usize];
                if host.in_flight >= engine.config.host_concurrency
                    || host.in_flight as f64 >= host.cwnd
                {
                    host.deferred.push_back(job);
                    engine.deferred_total += 1;
                    continue;
                }
                if job.protocol == Protocol::Udp && host.icmp_limited {
                    if host.udp_next.is_some_and(|at| now < at) {
                        engine.paced.push_back(job);
                        continue;
                    }
                    host.udp_next = Some(now + ICMP_LIMITED_GAP);
                    job.paced = true;
                }
                if let Err(at) =
                    engine
                        .pacer
                        .take(engine.window.size(), engine.window.srtt(), now.into_std())
                {
                    engine.ready.push_front(job);
                    engine.pause_until = Some(Instant::from_std(at));
                    break;
                }
                if let Some(limiter) = &limiter
                    && let Err(not_until) = limiter.check()
                {
                    engine.ready.push_front(job);
                    engine.pause_until = Some(now + not_until.wait_time_from(clock.now()));
                    break;
                }
                engine.launch(job, now);
                launched += 1;
            }
        }
        if engine.in_flight() == 0
            && engine.ready.is_empty()
            && engine.paced.is_empty()
            && engine.deferred_total == 0
            && next_fresh >= order.len()
        {
            if engine.held_total > 0 {
                // Whatever loss was measured is all there will be.
                engine.fresh_left = false;
                engine.release_all_held();
                continue;
            }
            break false;
        }
        // More to launch: only look at what has arrived, then come straight back.
        let mut wake = if launched == LAUNCHES_PER_TURN {
            Instant::now()
        } else {
            next_progress
        };
        let syn_tick = (engine.syn_outstanding > 0).then_some(next_syn_tick);
        for at in [engine.pause_until, deadline, engine.next_paced(), syn_tick]
            .into_iter()
            .flatten()
        {
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
            Some(answer) = next_answer(&mut syn_answers) => {
                engine.syn_answer(answer);
                if let Some(answers) = syn_answers.as_mut() {
                    while let Ok(answer) = answers.try_recv() {
                        engine.syn_answer(answer);
                    }
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

/// The next SYN answer, or never when TCP is not probed by SYN.
async fn next_answer(answers: &mut Option<UnboundedReceiver<SynAnswer>>) -> Option<SynAnswer> {
    match answers {
        Some(answers) => answers.recv().await,
        None => std::future::pending().await,
    }
}

impl Engine<'_> {
    fn in_flight(&self) -> usize {
        self.tasks.len() + self.syn_outstanding
    }

    /// A retry whose port an answer to an earlier attempt settled while the retry
    /// waited for its turn: it need not go out.
    fn settled_late(&self, job: &Job) -> bool {
        job.protocol == Protocol::Tcp
            && job.attempt > 0
            && matches!(self.probers.tcp, TcpProber::Syn(_))
            && !self.syn_ports.contains_key(&(job.host, job.port))
    }

    fn launch(&mut self, job: Job, now: Instant) {
        // UDP payloads, or None for a TCP connect; SYNs are sent by the driver itself.
        let udp_payloads = match (job.protocol, &self.probers.tcp) {
            (Protocol::Tcp, TcpProber::Syn(prober)) => {
                let prober = Arc::clone(prober);
                self.launch_syn(&prober, job, now);
                return;
            }
            (Protocol::Tcp, TcpProber::Connect) => None,
            (Protocol::Udp, _) => Some((self.probers.udp_payloads)(job.port)),
        };
        let host = &mut self.hosts[job.host as usize];
        host.in_flight += 1;
        let addr = SocketAddr::new(host.entry.ip, job.port);
        let timeouts = Arc::clone(&self.timeouts);
        let recheck = self.config.min_rtt_timeout;
        self.tasks.spawn(async move {
            let started = Instant::now();
            let clock = Clock {
                started,
                timeouts: &timeouts,
                host: job.host,
                recheck,
            };
            let outcome = match udp_payloads {
                None => probe::connect_once(addr, clock).await,
                Some(payloads) => probe::udp_once(addr, &payloads, clock).await,
            };
            Completion {
                job,
                outcome,
                launched: now,
                started,
                finished: Instant::now(),
                holds_slot: true,
            }
        });
    }

    /// Sends a SYN from the driver and tracks it; its answer comes via `syn_answer`.
    fn launch_syn(&mut self, prober: &SynProber, job: Job, now: Instant) {
        let host = &mut self.hosts[job.host as usize];
        host.in_flight += 1;
        match prober.send(host.entry.ip, job.port, job.attempt) {
            Some(outcome) => self.complete(Completion::immediate(job, outcome, now)),
            None => {
                host.syn_sent.push_back((now, job.port, job.attempt));
                if !host.syn_active {
                    host.syn_active = true;
                    self.syn_active.push(job.host);
                }
                let port = self
                    .syn_ports
                    .entry((job.host, job.port))
                    .or_insert_with(|| SynPort {
                        job,
                        sent: Vec::new(),
                        outstanding: false,
                    });
                let attempt = usize::from(job.attempt);
                if port.sent.len() <= attempt {
                    port.sent.resize(attempt + 1, now);
                }
                port.sent[attempt] = now;
                port.job = job;
                if !port.outstanding {
                    port.outstanding = true;
                    self.syn_outstanding += 1;
                }
            }
        }
    }

    /// A verified answer from the SYN receiver. It settles its port whenever it comes,
    /// as long as the port is not settled yet: an answer to an attempt that already
    /// timed out is late, not lost, and is timed from its own SYN. Duplicates are ignored.
    fn syn_answer(&mut self, answer: SynAnswer) {
        let Some(&host) = self.host_of.get(&answer.ip) else {
            return;
        };
        let Some(port) = self.syn_ports.get_mut(&(host, answer.port)) else {
            return;
        };
        let job = port.job;
        let attempt = if answer.attempt == LATEST_ATTEMPT {
            job.attempt
        } else {
            answer.attempt
        };
        // An attempt never sent: not an answer of ours after all.
        let Some(&sent) = port.sent.get(usize::from(attempt)) else {
            return;
        };
        let holds_slot = port.outstanding && attempt == job.attempt;
        if port.outstanding {
            // Whichever attempt it answers, the one in flight need not wait any more.
            port.outstanding = false;
            self.syn_outstanding -= 1;
            if !holds_slot {
                self.release(host);
            }
        }
        self.complete(Completion {
            job,
            outcome: answer.outcome,
            launched: sent,
            started: sent,
            finished: Instant::from_std(answer.at),
            holds_slot,
        });
    }

    /// SYNs older than their host's timeout are unanswered.
    fn syn_expire(&mut self, now: Instant) {
        let mut index = 0;
        while index < self.syn_active.len() {
            let host_index = self.syn_active[index];
            let timeout = self.timeouts.get(host_index);
            loop {
                let host = &mut self.hosts[host_index as usize];
                let Some(&(sent, port, attempt)) = host.syn_sent.front() else {
                    break;
                };
                // The entry of this very SYN: a port probed again (a loss sample) has
                // an older entry of the same attempt number, which is not its.
                let current = self.syn_ports.get(&(host_index, port)).is_some_and(|p| {
                    p.outstanding
                        && p.job.attempt == attempt
                        && p.sent.get(usize::from(attempt)) == Some(&sent)
                });
                if !current {
                    host.syn_sent.pop_front();
                    continue;
                }
                if now.saturating_duration_since(sent) < timeout {
                    break;
                }
                host.syn_sent.pop_front();
                if let Some(p) = self.syn_ports.get_mut(&(host_index, port)) {
                    // The port stays known until settled: a late answer still counts.
                    p.outstanding = false;
                    self.syn_outstanding -= 1;
                    let job = p.job;
                    self.complete(Completion {
                        job,
                        outcome: Outcome::TimedOut,
                        launched: sent,
                        started: sent,
                        finished: now,
                        holds_slot: true,
                    });
                }
            }
            let host = &mut self.hosts[host_index as usize];
            if host.syn_sent.is_empty() {
                host.syn_active = false;
                self.syn_active.swap_remove(index);
            } else {
                index += 1;
            }
        }
    }

    /// UDP jobs whose host pacing now allows them go back to the front of the queue.
    fn release_paced(&mut self, now: Instant) {
        let mut index = 0;
        while index < self.paced.len() {
            let job = self.paced[index];
            let host = &self.hosts[job.host as usize];
            if host.udp_next.is_none_or(|at| now >= at) {
                self.paced.remove(index);
                self.ready.push_front(job);
                // One per host per gap: the next waits for the gap after this one.
                break;
            }
            index += 1;
        }
    }

    fn next_paced(&self) -> Option<Instant> {
        self.paced
            .iter()
            .filter_map(|job| self.hosts[job.host as usize].udp_next)
            .min()
    }

    fn joined(&mut self, joined: Result<Completion, tokio::task::JoinError>) {
        // Attempts do not panic and are cancelled only at the deadline; should one be
        // lost anyway, its port is reported as not scanned rather than guessed.
        if let Ok(completion) = joined {
            self.complete(completion);
        }
    }

    /// The host gave back a slot: let one of its deferred jobs go.
    fn release(&mut self, host_index: u32) {
        let host = &mut self.hosts[host_index as usize];
        host.in_flight -= 1;
        self.undefer(host_index);
    }

    /// Lets deferred jobs of the host go while it has room under both of its limits.
    fn undefer(&mut self, host_index: u32) {
        let limit = self.config.host_concurrency;
        let host = &mut self.hosts[host_index as usize];
        let mut room = limit
            .min(host.cwnd.min(limit as f64) as usize)
            .saturating_sub(host.in_flight)
            .max(1);
        while room > 0 {
            let Some(job) = host.deferred.pop_front() else {
                break;
            };
            self.deferred_total -= 1;
            self.ready.push_front(job);
            room -= 1;
        }
    }

    fn complete(&mut self, completion: Completion) {
        let job = completion.job;
        if completion.holds_slot {
            self.release(job.host);
        }
        let now = completion.finished.into_std();
        let queued = completion
            .started
            .saturating_duration_since(completion.launched);
        self.window.on_start_delay(queued, now);
        let udp = job.protocol == Protocol::Udp;
        if job.canary {
            let host = &mut self.hosts[job.host as usize];
            host.canary_out = false;
            match completion.outcome {
                Outcome::Closed => host.icmp_cleared = true,
                Outcome::Exhausted => {
                    host.canary_out = true;
                    self.ready.push_front(job);
                }
                _ if !host.icmp_cleared => host.icmp_limited = true,
                _ => {}
            }
            return;
        }
        if job.sample > 0 {
            self.sampled(job, completion.outcome);
            return;
        }
        let (state, reason) = match completion.outcome {
            Outcome::Exhausted => {
                // Not an answer: try the same attempt again once the window has room.
                self.window.on_resource_exhausted(self.in_flight());
                self.ready.push_front(job);
                if self.in_flight() == 0 {
                    self.pause_until = Some(Instant::now() + RESOURCE_PAUSE);
                }
                return;
            }
            Outcome::TimedOut => {
                self.timed_out(Job {
                    previous: Some(completion.launched),
                    ..job
                });
                return;
            }
            Outcome::LocalRefusal => {
                self.window.on_silence();
                self.settle(job, PortState::Filtered, Reason::LocalRefusal, None);
                return;
            }
            Outcome::Open if udp => (PortState::Open, Reason::UdpResponse),
            Outcome::Open => (PortState::Open, Reason::SynAck),
            Outcome::Closed if udp => (PortState::Closed, Reason::PortUnreachable),
            Outcome::Closed => (PortState::Closed, Reason::Reset),
            Outcome::Unreachable(reason) => (PortState::Filtered, reason),
        };
        // An answer. The round trip for timeouts is counted from the attempt's start
        // (that is where its timeout counts from); the window looks at the whole delay
        // from launch, queueing included.
        let rtt = completion
            .finished
            .saturating_duration_since(completion.started);
        let host = &mut self.hosts[job.host as usize];
        host.answered += 1;
        host.answering += 1;
        host.rtt.sample(rtt);
        self.global_rtt.sample(rtt);
        self.publish_timeouts(job.host);
        self.window.on_answer(
            completion
                .finished
                .saturating_duration_since(completion.launched),
            now,
        );
        if udp && state == PortState::Closed {
            let host = &mut self.hosts[job.host as usize];
            host.known_closed.get_or_insert(job.port);
            host.paced_silence = 0;
        }
        let timeout = self.timeouts.get(job.host);
        let at = completion.finished;
        let host = &mut self.hosts[job.host as usize];
        if host.cwnd.is_finite() {
            host.cwnd += if host.cwnd < host.ssthresh {
                1.0
            } else {
                1.0 / host.cwnd
            };
        }
        // Earlier attempts went unanswered and this one was answered in time: loss. A
        // late answer proves the opposite: the probe arrived, the wait was too short.
        let retried = job.attempt > 0 && completion.holds_slot;
        if !(udp && state == PortState::Closed) {
            host.epoch_answers += 1;
            let fresh_loss = retried
                && host
                    .cut_at
                    .is_none_or(|cut| job.previous.is_some_and(|sent| sent >= cut));
            host.epoch_losses += u32::from(fresh_loss);
            let start = *host.epoch_start.get_or_insert(at);
            let elapsed = at.saturating_duration_since(start);
            if elapsed >= timeout.max(MIN_EPOCH) && host.epoch_answers >= MIN_EPOCH_ANSWERS {
                let share = f64::from(host.epoch_losses) / f64::from(host.epoch_answers);
                if share > HOST_CUT_LOSS_SHARE {
                    // The host (or the path to it) drops much of what we send: send it
                    // what it answered — its answers per second times its round trip —
                    // and at most half of what was in flight.
                    let answered = f64::from(host.epoch_answers) / elapsed.as_secs_f64();
                    let bdp = host
                        .rtt
                        .srtt()
                        .map_or(f64::INFINITY, |srtt| answered * srtt.as_secs_f64());
                    host.cwnd = (host.in_flight as f64 / 2.0).min(bdp).max(MIN_HOST_CWND);
                    host.ssthresh = host.cwnd;
                    host.cut_at = Some(at);
                }
                host.epoch_start = Some(at);
                host.epoch_answers = 0;
                host.epoch_losses = 0;
            }
        }
        if retried {
            // An earlier attempt went unanswered, this one did not.
            if udp && state == PortState::Closed {
                // The ICMP error withheld the first time: rate limiting, not loss.
                if !host.icmp_cleared {
                    host.icmp_limited = true;
                }
            } else {
                host.loss_events += 1;
                self.window.on_loss(now, timeout);
            }
        }
        self.settle(job, state, reason, Some(rtt));
        if !udp {
            let host = &self.hosts[job.host as usize];
            if host.loss_events >= LOSS_EVIDENCE && !host.held.is_empty() {
                self.release_held(job.host);
            } else if !host.held.is_empty() && matches!(state, PortState::Open | PortState::Closed)
            {
                self.sample(job.host, job.port, 1);
            }
        }
    }

    /// Publishes the host's and the scan's current timeouts to the attempts:
    /// srtt + 4·rttvar, within the floor and the ceiling.
    fn publish_timeouts(&self, host_index: u32) {
        let clamp = |d: Duration| d.clamp(self.config.min_rtt_timeout, self.config.max_rtt_timeout);
        if let Some(t) = self.hosts[host_index as usize].rtt.timeout() {
            self.timeouts.set_host(host_index, clamp(t));
        }
        if let Some(t) = self.global_rtt.timeout() {
            self.timeouts.set_global(clamp(t));
        }
    }

    fn timed_out(&mut self, job: Job) {
        let mut undecided = false;
        if job.protocol == Protocol::Udp {
            let host = &mut self.hosts[job.host as usize];
            if host.icmp_limited && job.paced {
                host.paced_silence = host.paced_silence.saturating_add(1);
                if host.paced_silence >= PACED_SILENCE_LIMIT {
                    host.icmp_limited = false;
                    host.icmp_cleared = true;
                }
            } else if !host.icmp_limited
                && !host.icmp_cleared
                && let Some(port) = host.known_closed
            {
                // Closed ports answer, this one did not: ask a port known to be closed
                // whether the host still sends ICMP errors at all.
                if !host.canary_out {
                    host.canary_out = true;
                    self.ready.push_front(Job {
                        port,
                        attempt: 0,
                        paced: false,
                        canary: true,
                        previous: None,
                        ..job
                    });
                }
                // No verdict on this port before the canary's.
                undecided = true;
            }
        }
        let mut allowed = self.allowed_retries(job.host);
        let host = &self.hosts[job.host as usize];
        if job.protocol == Protocol::Udp && host.icmp_limited && self.config.retries > 0 {
            allowed = allowed.max(ICMP_LIMITED_RETRIES);
        }
        if undecided && self.config.retries > 0 {
            allowed = allowed.max(job.attempt.saturating_add(1)).min(MAX_RETRIES);
        }
        // Silence is not congestion: a firewall dropping probes says nothing about the
        // path. Loss shows up later, as a retry that gets an answer.
        self.window.on_silence();
        if job.attempt < allowed {
            self.ready.push_back(Job {
                attempt: job.attempt + 1,
                paced: false,
                canary: false,
                ..job
            });
        } else if job.protocol == Protocol::Tcp && self.may_hold(job.host) {
            let host = &mut self.hosts[job.host as usize];
            let first = host.held.is_empty();
            host.held.push(job);
            self.held_total += 1;
            if first {
                self.start_sampling(job.host);
            }
        } else {
            let state = match job.protocol {
                Protocol::Tcp => PortState::Filtered,
                // No answer from UDP: an open service that ignored the probe looks the
                // same as a filter.
                Protocol::Udp => PortState::OpenFiltered,
            };
            self.settle(job, state, Reason::NoResponse, None);
        }
    }

    /// Retries a port of the host gets now: [`retries_for`] its measured loss and the
    /// ports of it expected to answer — those that answered so far, scaled up to every
    /// port of the host by the share of its ports already settled. A missed port is an
    /// answering port whose every reply was lost; a port that never answers cannot be.
    fn allowed_retries(&self, host_index: u32) -> u8 {
        let host = &self.hosts[host_index as usize];
        let seen = (host.results.len() + host.held.len()).max(1);
        let answering = (f64::from(host.answering.max(1)) * self.ports_per_host as f64
            / seen as f64)
            .clamp(1.0, self.ports_per_host.max(1) as f64);
        retries_for(
            self.config.retries,
            host.answered,
            host.loss_events,
            answering.ceil() as usize,
        )
    }

    /// Whether a silent TCP port of the host may wait for the host's loss to be measured:
    /// retries are on, no loss is known yet, the host answers some ports (those are
    /// what can be lost), samples may still be taken, and the held lists have room.
    fn may_hold(&self, host_index: u32) -> bool {
        let host = &self.hosts[host_index as usize];
        self.config.retries > 0
            && host.loss_events < LOSS_EVIDENCE
            && host.answered > 0
            && host.samples < self.sample_budget
            && self.fresh_left
            && self.held_total < HELD_CAP
    }

    /// The host holds its first verdict: its answering ports start being sampled.
    fn start_sampling(&mut self, host_index: u32) {
        let ports: Vec<u16> = self.hosts[host_index as usize]
            .results
            .iter()
            .filter(|r| {
                r.protocol == Protocol::Tcp
                    && matches!(r.state, PortState::Open | PortState::Closed)
            })
            .map(|r| r.port)
            .take(SAMPLE_STARTERS)
            .collect();
        for port in ports {
            self.sample(host_index, port, 1);
        }
    }

    /// Schedules loss sample `n` of an answering TCP port, within the host's budget.
    fn sample(&mut self, host_index: u32, port: u16, n: u8) {
        let budget = self.sample_budget;
        let host = &mut self.hosts[host_index as usize];
        if !self.fresh_left
            || host.loss_events >= LOSS_EVIDENCE
            || host.samples >= budget
            || n > MAX_SAMPLES_PER_PORT
        {
            return;
        }
        host.samples += 1;
        self.ready.push_back(Job {
            sample: n,
            ..Job::first(host_index, port, Protocol::Tcp)
        });
    }

    /// A loss sample's outcome: an answer is one more trial without loss, silence a loss;
    /// either way the port's next sample follows, until the host has shown enough loss
    /// (its held ports then get the retries the loss calls for) or used its budget.
    fn sampled(&mut self, job: Job, outcome: Outcome) {
        if let Some(port) = self.syn_ports.remove(&(job.host, job.port))
            && port.outstanding
        {
            self.syn_outstanding -= 1;
        }
        let host = &mut self.hosts[job.host as usize];
        match outcome {
            Outcome::Exhausted => {
                self.window.on_resource_exhausted(self.in_flight());
                self.ready.push_front(job);
            }
            Outcome::TimedOut => {
                host.answered += 1;
                host.loss_events += 1;
                if host.loss_events >= LOSS_EVIDENCE {
                    self.release_held(job.host);
                } else {
                    self.sample(job.host, job.port, job.sample.saturating_add(1));
                }
            }
            Outcome::Open | Outcome::Closed => {
                host.answered += 1;
                if host.samples >= self.sample_budget {
                    // As much evidence as the host gets, and no loss in it.
                    self.release_held(job.host);
                } else {
                    self.sample(job.host, job.port, job.sample.saturating_add(1));
                }
            }
            // The port stopped answering the same way: no sample of loss.
            Outcome::LocalRefusal | Outcome::Unreachable(_) => {}
        }
    }

    /// The host's held ports get the retries its loss now calls for, or their verdict.
    /// A port a late answer settled meanwhile is left alone.
    fn release_held(&mut self, host_index: u32) {
        let jobs = std::mem::take(&mut self.hosts[host_index as usize].held);
        self.held_total -= jobs.len();
        let syn = matches!(self.probers.tcp, TcpProber::Syn(_));
        for job in jobs {
            if syn && !self.syn_ports.contains_key(&(job.host, job.port)) {
                continue;
            }
            let allowed = self.allowed_retries(host_index);
            if job.attempt < allowed {
                self.ready.push_back(Job {
                    attempt: job.attempt + 1,
                    ..job
                });
            } else {
                self.settle(job, PortState::Filtered, Reason::NoResponse, None);
            }
        }
    }

    /// At the deadline: every held port is filtered, as far as its attempts went.
    fn settle_all_held(&mut self) {
        let syn = matches!(self.probers.tcp, TcpProber::Syn(_));
        for host_index in 0..self.hosts.len() {
            let jobs = std::mem::take(&mut self.hosts[host_index].held);
            self.held_total -= jobs.len();
            for job in jobs {
                if !syn || self.syn_ports.contains_key(&(job.host, job.port)) {
                    self.settle(job, PortState::Filtered, Reason::NoResponse, None);
                }
            }
        }
    }

    /// Every held port of every host: its retries or its verdict.
    fn release_all_held(&mut self) {
        for host_index in 0..self.hosts.len() {
            if !self.hosts[host_index].held.is_empty() {
                self.release_held(host_index as u32);
            }
        }
    }

    fn settle(&mut self, job: Job, state: PortState, reason: Reason, rtt: Option<Duration>) {
        if job.protocol == Protocol::Tcp
            && let Some(port) = self.syn_ports.remove(&(job.host, job.port))
            && port.outstanding
        {
            self.syn_outstanding -= 1;
        }
        self.done += 1;
        if state == PortState::Open {
            self.open += 1;
        }
        let at_ms = u32::try_from(self.started.elapsed().as_millis()).unwrap_or(u32::MAX);
        let result = PortResult {
            port: job.port,
            protocol: job.protocol,
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
            in_flight: self.in_flight(),
            window: self.window.size(),
        }));
    }
}

/// Retries a port of a host gets. Before any loss is seen, the configured number. Once
/// ports have answered only on a retry, the loss rate p is estimated from them and each
/// port gets k attempts with p^k · ports ≤ [`MISS_BUDGET`], `ports` being those expected
/// to answer: at 2% loss, 5 attempts when all of 65,535 ports answer, 3 when 22 do. Never fewer than configured, never more than [`MAX_RETRIES`]; a configured
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
            retries_for(1, 1000, 20, 22),
            2,
            "2% loss, 22 answering ports: 3 attempts"
        );
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
}
