//! Politeness towards registries: at most one request per interval to each server
//! (1 s by default). Requests to the same server wait for their turn; requests to
//! different servers do not wait for each other.

use std::num::NonZeroU32;
use std::time::Duration;

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

/// A rate limit per server, shared by every lookup that should respect it.
pub struct ServerRateLimiter {
    interval: Duration,
    limiter: Option<DefaultKeyedRateLimiter<String>>,
}

impl std::fmt::Debug for ServerRateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerRateLimiter")
            .field("interval", &self.interval)
            .finish_non_exhaustive()
    }
}

impl Default for ServerRateLimiter {
    /// One request per second per server.
    fn default() -> Self {
        ServerRateLimiter::new(Duration::from_secs(1))
    }
}

impl ServerRateLimiter {
    /// At most one request per `interval` to each server, with no burst; a zero
    /// interval is no limit.
    pub fn new(interval: Duration) -> ServerRateLimiter {
        let limiter = Quota::with_period(interval)
            .map(|q| q.allow_burst(NonZeroU32::MIN))
            .map(RateLimiter::keyed);
        ServerRateLimiter { interval, limiter }
    }

    /// The interval between two requests to the same server.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// Waits until a request to `server` (a host name, or `host:port`) may be sent,
    /// and takes that turn.
    pub async fn wait(&self, server: &str) {
        if let Some(limiter) = &self.limiter {
            limiter.until_key_ready(&server.to_ascii_lowercase()).await;
        }
    }
}
