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

    /// srtt + 4·rttvar, once there is a sample.
    pub(crate) fn timeout(&self) -> Option<Duration> {
        self.srtt.map(|srtt| srtt + self.rttvar * 4)
    }
}

/// How many attempts may be in flight at once.
///
/// Grows by one for every attempt that settles a port (an answer, or a port that stayed
/// silent through every retry: a firewall dropping probes is not congestion). Shrinks by a
/// quarter when loss is proven — a port answered only on a retry — at most once per
/// timeout interval, and drops to what the system could hold when it ran out of sockets
/// or buffers, creeping back up from there.
#[derive(Debug, Clone)]
pub(crate) struct Window {
    size: f64,
    min: f64,
    max: f64,
    /// Upper bound learned from resource exhaustion (EMFILE, ENOBUFS, EADDRNOTAVAIL).
    resource_ceiling: f64,
    last_decrease: Option<Instant>,
}

impl Window {
    pub(crate) fn new(initial: usize, max: usize) -> Self {
        let max = max.max(1) as f64;
        Window {
            size: (initial as f64).clamp(1.0, max),
            min: 8f64.min(max),
            max,
            resource_ceiling: max,
            last_decrease: None,
        }
    }

    pub(crate) fn size(&self) -> usize {
        self.size.min(self.resource_ceiling).max(1.0) as usize
    }

    pub(crate) fn on_settled(&mut self) {
        self.size = (self.size + 1.0).min(self.max);
        if self.resource_ceiling < self.max {
            // Try a little more room again, slowly.
            self.resource_ceiling = (self.resource_ceiling + 0.05).min(self.max);
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
        let mut w = Window::new(100, 1000);
        for _ in 0..50 {
            w.on_settled();
        }
        assert_eq!(w.size(), 150);
        w.on_loss(start, Duration::from_millis(100));
        assert_eq!(w.size(), 112);
        // A second loss within the same interval does not shrink again.
        w.on_loss(
            start + Duration::from_millis(10),
            Duration::from_millis(100),
        );
        assert_eq!(w.size(), 112);
        w.on_loss(
            start + Duration::from_millis(200),
            Duration::from_millis(100),
        );
        assert_eq!(w.size(), 84);
        w.on_resource_exhausted(40);
        assert_eq!(w.size(), 36);
        for _ in 0..2000 {
            w.on_settled();
        }
        assert!(
            w.size() > 36 && w.size() <= 1000,
            "recovers, got {}",
            w.size()
        );
        let mut tiny = Window::new(5000, 10);
        assert_eq!(tiny.size(), 10);
        tiny.on_loss(start, Duration::ZERO);
        assert_eq!(tiny.size(), 8);
    }
}
