//! Timing: round-trip estimation per host and the adaptive window of in-flight attempts.

use std::time::{Duration, Instant};

/// Smoothed RTT and its variance (RFC 6298), giving the time to wait for an answer.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct RttEstimator {
    srtt: Option<Duration>,
    rttvar: Duration,
    samples: u32,
}

impl RttEstimator {
    pub(crate) fn sample(&mut self, rtt: Duration) {
        self.samples = self.samples.saturating_add(1);
        match self.srtt {
            None => {
                self.srtt = Some(rtt);
                self.rttvar = rtt / 2;
            }
            Some(srtt) => {
                let delta = srtt.abs_diff(rtt);
                self.rttvar = (self.rttvar * 3 + delta) / 4;
                self.srtt = Some((srtt * 7 + rtt) / 8);
            }
        }
    }

    /// The smoothed round trip, once there is a sample.
    pub(crate) fn srtt(&self) -> Option<Duration> {
        self.srtt
    }

    /// srtt + 4·rttvar, once there is a sample.
    pub(crate) fn timeout(&self) -> Option<Duration> {
        self.srtt.map(|srtt| srtt + self.rttvar * 4)
    }
}

/// How many attempts may be in flight at once.
///
/// Delay-based growth: the window grows by one for each attempt that settles while the
/// queueing delay (smoothed round trip minus the smallest seen) stays under a target, and
/// shrinks by a tenth, at most once per round trip, when the delay climbs past twice the
/// target. The round trip is measured from the moment the engine launches an attempt, so
/// it includes the time the attempt waited for a CPU: on a fast network the window stops
/// at what this machine can drive without making answers late, and timeouts stay honest.
///
/// A port that stays silent through every retry (a firewall dropping probes) is not
/// congestion and counts like an answer. Proven loss — a port that answered only on a
/// retry — shrinks the window by a quarter, at most once per timeout interval. Running
/// out of sockets or buffers caps the window at what the system could hold, and the cap
/// creeps back up from there.
#[derive(Debug, Clone)]
pub(crate) struct Window {
    size: f64,
    min: f64,
    max: f64,
    /// Upper bound learned from resource exhaustion (EMFILE, ENOBUFS, EADDRNOTAVAIL).
    resource_ceiling: f64,
    last_decrease: Option<Instant>,
    queue_target: Duration,
    base_rtt: Option<Duration>,
    srtt: Option<Duration>,
    /// Smoothed wait between queueing an attempt and its start.
    start_delay: Option<Duration>,
}

impl Window {
    pub(crate) fn new(initial: usize, max: usize, queue_target: Duration) -> Self {
        let max = max.max(1) as f64;
        Window {
            size: (initial as f64).clamp(1.0, max),
            min: 8f64.min(max),
            max,
            resource_ceiling: max,
            last_decrease: None,
            queue_target,
            base_rtt: None,
            srtt: None,
            start_delay: None,
        }
    }

    /// The smoothed round trip of answered attempts, queueing included, once known.
    pub(crate) fn srtt(&self) -> Option<Duration> {
        self.srtt
    }

    pub(crate) fn size(&self) -> usize {
        self.size.min(self.resource_ceiling).max(1.0) as usize
    }

    fn queueing(&self) -> Duration {
        match (self.srtt, self.base_rtt) {
            (Some(srtt), Some(base)) => srtt.saturating_sub(base),
            _ => Duration::ZERO,
        }
    }

    fn grow(&mut self) {
        self.size = (self.size + 1.0).min(self.max);
        if self.resource_ceiling < self.max {
            // Try a little more room again, slowly.
            self.resource_ceiling = (self.resource_ceiling + 0.05).min(self.max);
        }
    }

    /// An attempt was answered after `rtt` (measured from its launch).
    pub(crate) fn on_answer(&mut self, rtt: Duration, now: Instant) {
        self.base_rtt = Some(self.base_rtt.map_or(rtt, |base| base.min(rtt)));
        self.srtt = Some(self.srtt.map_or(rtt, |srtt| (srtt * 7 + rtt) / 8));
        let queueing = self.queueing();
        if queueing < self.queue_target {
            self.grow();
        } else if queueing > self.queue_target * 2 {
            self.decrease(now, 0.9);
        }
    }

    /// An attempt waited `delay` between being queued and starting: time spent waiting
    /// for a CPU, which no answer would show on a host that answers nothing.
    pub(crate) fn on_start_delay(&mut self, delay: Duration, now: Instant) {
        self.start_delay = Some(self.start_delay.map_or(delay, |d| (d * 7 + delay) / 8));
        if delay > self.queue_target * 2 {
            self.decrease(now, 0.9);
        }
    }

    fn decrease(&mut self, now: Instant, factor: f64) {
        let interval = self
            .srtt
            .unwrap_or_default()
            .max(self.queue_target)
            .max(Duration::from_millis(5));
        if self
            .last_decrease
            .is_none_or(|at| now.duration_since(at) >= interval)
        {
            self.last_decrease = Some(now);
            self.size = (self.size * factor).max(self.min);
        }
    }

    /// A port stayed silent through every retry.
    pub(crate) fn on_silence(&mut self) {
        if self.queueing() < self.queue_target
            && self.start_delay.unwrap_or_default() < self.queue_target
        {
            self.grow();
        }
    }

    pub(crate) fn on_loss(&mut self, now: Instant, interval: Duration) {
        if self
            .last_decrease
            .is_some_and(|at| now.duration_since(at) < interval)
        {
            return;
        }
        self.last_decrease = Some(now);
        self.size = (self.size * 0.75).max(self.min);
    }

    pub(crate) fn on_resource_exhausted(&mut self, in_flight: usize) {
        let ceiling = ((in_flight as f64) * 0.9).floor().max(1.0);
        self.resource_ceiling = self.resource_ceiling.min(ceiling);
        self.size = self.size.min(self.resource_ceiling);
    }
}

/// Spreads launches over the round trip, as TCP paces its congestion window: a window
/// of `w` attempts over a path of round trip `srtt` goes out at `gain · w / srtt`
/// probes per second instead of `w` at once. Bursts hurt on a real path — a router
/// queue or a target's SYN backlog drops the tail of one, and every drop costs a
/// timeout — while on a sub-millisecond path the rate is far above what the machine
/// can send, so pacing costs nothing there.
#[derive(Debug, Clone)]
pub(crate) struct Pacer {
    /// Launches allowed now (fractional), up to `burst`.
    credit: f64,
    last: Option<Instant>,
}

impl Pacer {
    /// The rate may run ahead of the window by this factor, so that a growing window
    /// (doubling per round trip while answers are prompt) is never held back.
    const GAIN: f64 = 2.0;
    /// The largest burst: this long's worth of the rate, and never fewer than
    /// `MIN_BURST` launches.
    const BURST_TIME: Duration = Duration::from_millis(1);
    const MIN_BURST: f64 = 16.0;

    pub(crate) fn new() -> Self {
        Pacer {
            credit: Self::MIN_BURST,
            last: None,
        }
    }

    fn rate(window: usize, srtt: Duration) -> f64 {
        Self::GAIN * window as f64 / srtt.as_secs_f64().max(1e-6)
    }

    fn refill(&mut self, window: usize, srtt: Option<Duration>, now: Instant) {
        let Some(srtt) = srtt else {
            // Before any answer there is no rate to pace to: the window alone limits.
            self.credit = f64::INFINITY;
            self.last = Some(now);
            return;
        };
        let rate = Self::rate(window, srtt);
        let burst = (rate * Self::BURST_TIME.as_secs_f64()).max(Self::MIN_BURST);
        let elapsed = self
            .last
            .map_or(Duration::ZERO, |last| now.saturating_duration_since(last));
        self.credit = (self.credit.min(burst) + elapsed.as_secs_f64() * rate).min(burst);
        self.last = Some(now);
    }

    /// Takes one launch if the pace allows it now; otherwise says when it will.
    pub(crate) fn take(
        &mut self,
        window: usize,
        srtt: Option<Duration>,
        now: Instant,
    ) -> Result<(), Instant> {
        self.refill(window, srtt, now);
        if self.credit >= 1.0 {
            self.credit -= 1.0;
            return Ok(());
        }
        let rate = srtt.map_or(f64::INFINITY, |srtt| Self::rate(window, srtt));
        let wait = Duration::from_secs_f64(((1.0 - self.credit) / rate).min(1.0));
        Err(now + wait)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn estimator_follows_rfc6298() {
        let mut e = RttEstimator::default();
        assert_eq!(e.timeout(), None);
        e.sample(Duration::from_millis(100));
        assert_eq!(e.timeout(), Some(Duration::from_millis(300)));
        for _ in 0..50 {
            e.sample(Duration::from_millis(10));
        }
        let t = e.timeout().unwrap_or_default();
        assert!(
            t < Duration::from_millis(15),
            "converges near 10ms, got {t:?}"
        );
    }

    #[test]
    fn window_grows_shrinks_and_respects_resources() {
        let start = Instant::now();
        let ms = Duration::from_millis;
        let mut w = Window::new(100, 1000, ms(20));
        for _ in 0..50 {
            w.on_answer(ms(1), start);
        }
        assert_eq!(w.size(), 150, "grows while answers are prompt");
        for _ in 0..10 {
            w.on_silence();
        }
        assert_eq!(w.size(), 160, "silence is not congestion");
        w.on_loss(start, ms(100));
        assert_eq!(w.size(), 120);
        // A second loss within the same interval does not shrink again.
        w.on_loss(start + ms(10), ms(100));
        assert_eq!(w.size(), 120);
        w.on_loss(start + ms(200), ms(100));
        assert_eq!(w.size(), 90);
        w.on_resource_exhausted(40);
        assert_eq!(w.size(), 36);
        for _ in 0..2000 {
            w.on_answer(ms(1), start);
        }
        assert!(
            w.size() > 36 && w.size() <= 1000,
            "recovers, got {}",
            w.size()
        );
        let mut tiny = Window::new(5000, 10, ms(20));
        assert_eq!(tiny.size(), 10);
        tiny.on_loss(start, Duration::ZERO);
        assert_eq!(tiny.size(), 8);
    }

    #[test]
    fn window_backs_off_when_answers_queue() {
        let start = Instant::now();
        let ms = Duration::from_millis;
        let mut w = Window::new(1000, 8000, ms(20));
        w.on_answer(ms(1), start);
        let before = w.size();
        // Answers now take 80 ms: the delay is ours, not the network's.
        let mut now = start;
        for _ in 0..200 {
            now += ms(1);
            w.on_answer(ms(80), now);
        }
        assert!(
            w.size() < before,
            "shrinks under queueing: {} vs {before}",
            w.size()
        );
        let low = w.size();
        for _ in 0..100 {
            w.on_silence();
        }
        assert_eq!(w.size(), low, "no growth on silence while answers are late");
    }

    #[test]
    fn pacer_spreads_a_window_over_the_round_trip() {
        let start = Instant::now();
        let ms = Duration::from_millis;
        let mut pacer = Pacer::new();
        // No answer yet: nothing to pace to.
        for _ in 0..5000 {
            assert!(pacer.take(1000, None, start).is_ok());
        }
        // 1,000 in flight over 80 ms, gain 2: 25,000 per second, 25 per millisecond.
        let srtt = Some(ms(80));
        let mut now = start + ms(1);
        let mut sent = 0;
        let mut wakes = 0;
        while now < start + ms(101) {
            match pacer.take(1000, srtt, now) {
                Ok(()) => sent += 1,
                Err(at) => {
                    assert!(at > now && at <= now + ms(1), "{:?}", at - now);
                    now = at;
                    wakes += 1;
                }
            }
        }
        assert!((2400..=2600).contains(&sent), "100 ms at 25/ms: {sent}");
        assert!(wakes > 100, "spread out, not one burst: {wakes}");
        // A microsecond path: the pace is far above anything the machine can send.
        let mut fast = Pacer::new();
        let now = start + ms(200);
        let taken = (0..100_000)
            .filter(|_| {
                fast.take(8192, Some(Duration::from_micros(50)), now)
                    .is_ok()
            })
            .count();
        assert!(taken >= 16, "{taken}");
        let later = now + Duration::from_micros(100);
        let taken = (0..100_000)
            .filter(|_| {
                fast.take(8192, Some(Duration::from_micros(50)), later)
                    .is_ok()
            })
            .count();
        assert!(taken > 10_000, "{taken}");
    }
}
