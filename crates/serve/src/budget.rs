//! The memory the scans running at once may take. A scan's memory grows with its
//! address × port pairs (the engine's state per pair, the results kept for the report, the
//! report as stored); before its first probe a scan reserves its estimate from the server's
//! budget and waits, keeping its place, while the scans running hold too much of it. A scan
//! larger than the whole budget runs alone.

use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::{Semaphore, SemaphorePermit};

/// Memory one scanned address × port pair takes while the scan runs and its report is
/// stored: about twice what was measured (a loopback /24 × 1,000 ports raised a server's
/// peak RSS by 18.6 MB, 53 bytes a pair beside the fixed part).
pub const BYTES_PER_PAIR: u64 = 100;
/// Memory of any scan beside its pairs (the probe database for detection, buffers).
pub const BYTES_PER_SCAN: u64 = 4 << 20;
/// The unit reserved.
const UNIT: u64 = 1 << 20;

/// The budget of one server.
#[derive(Debug)]
pub struct Budget {
    units: Semaphore,
    total: u32,
    waiting: AtomicU64,
    running: AtomicU64,
    reserved: AtomicU64,
}

/// A running scan's share of the budget, given back when dropped.
#[derive(Debug)]
pub struct Reservation<'a> {
    _permit: SemaphorePermit<'a>,
    budget: &'a Budget,
    units: u32,
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        self.budget.running.fetch_sub(1, Ordering::Relaxed);
        self.budget
            .reserved
            .fetch_sub(u64::from(self.units), Ordering::Relaxed);
    }
}

/// One more in a gauge for as long as it lives.
struct Counted<'a>(&'a AtomicU64);

impl<'a> Counted<'a> {
    fn new(gauge: &'a AtomicU64) -> Self {
        gauge.fetch_add(1, Ordering::Relaxed);
        Counted(gauge)
    }
}

impl Drop for Counted<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// What the budget holds now, for `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    /// Scans holding a reservation.
    pub running: u64,
    /// Scans waiting for one.
    pub waiting: u64,
    /// Bytes reserved.
    pub reserved_bytes: u64,
    /// Bytes in the budget.
    pub total_bytes: u64,
}

impl Budget {
    /// A budget of `bytes` (at least one unit).
    pub fn new(bytes: u64) -> Budget {
        let total = u32::try_from((bytes / UNIT).clamp(1, u64::from(u32::MAX >> 3)))
            .unwrap_or(u32::MAX >> 3);
        Budget {
            units: Semaphore::new(total as usize),
            total,
            waiting: AtomicU64::new(0),
            running: AtomicU64::new(0),
            reserved: AtomicU64::new(0),
        }
    }

    /// The estimate of a scan of `pairs` address × port pairs, in bytes.
    pub fn estimate(pairs: u64) -> u64 {
        pairs
            .saturating_mul(BYTES_PER_PAIR)
            .saturating_add(BYTES_PER_SCAN)
    }

    /// Reserves the estimate of a scan of `pairs` (the whole budget at most), waiting for it
    /// in turn.
    pub async fn reserve(&self, pairs: u64) -> Reservation<'_> {
        let units = Self::estimate(pairs).div_ceil(UNIT);
        let units = u32::try_from(units)
            .unwrap_or(u32::MAX)
            .clamp(1, self.total);
        let permit = {
            // Counted as waiting until it has its share, or is cancelled while waiting.
            let _waiting = Counted::new(&self.waiting);
            self.units.acquire_many(units).await
        };
        // The semaphore is never closed.
        #[allow(clippy::expect_used)]
        let permit = permit.expect("the budget's semaphore is never closed");
        self.running.fetch_add(1, Ordering::Relaxed);
        self.reserved.fetch_add(u64::from(units), Ordering::Relaxed);
        Reservation {
            _permit: permit,
            budget: self,
            units,
        }
    }

    /// What is held now.
    pub fn usage(&self) -> Usage {
        Usage {
            running: self.running.load(Ordering::Relaxed),
            waiting: self.waiting.load(Ordering::Relaxed),
            reserved_bytes: self.reserved.load(Ordering::Relaxed) * UNIT,
            total_bytes: u64::from(self.total) * UNIT,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn scans_wait_while_the_running_ones_hold_the_budget() {
        let budget = Budget::new(100 * UNIT);
        // 60 MiB of pairs and more: the second must wait for the first.
        let pairs = 60 * UNIT / BYTES_PER_PAIR;
        let first = budget.reserve(pairs).await;
        assert_eq!(budget.usage().running, 1);
        let second = tokio::time::timeout(Duration::from_millis(50), budget.reserve(pairs)).await;
        assert!(second.is_err(), "a second 64 MiB scan fitted in 100 MiB");
        // A small one still fits beside it.
        let small = budget.reserve(10).await;
        assert_eq!(budget.usage().running, 2);
        assert_eq!(budget.usage().reserved_bytes, 69 * UNIT);
        drop(first);
        drop(small);
        let second = tokio::time::timeout(Duration::from_secs(1), budget.reserve(pairs)).await;
        assert!(second.is_ok());
        assert_eq!(budget.usage().waiting, 0);
    }

    #[tokio::test]
    async fn a_scan_larger_than_the_budget_runs_alone() {
        let budget = Budget::new(10 * UNIT);
        let huge = budget.reserve(u64::MAX).await;
        assert_eq!(budget.usage().reserved_bytes, 10 * UNIT);
        let other = tokio::time::timeout(Duration::from_millis(50), budget.reserve(1)).await;
        assert!(other.is_err());
        drop(huge);
        assert_eq!(budget.usage().running, 0);
        assert_eq!(budget.usage().reserved_bytes, 0);
    }

    #[test]
    fn the_estimate_grows_with_the_pairs() {
        assert_eq!(Budget::estimate(0), BYTES_PER_SCAN);
        assert_eq!(
            Budget::estimate(254_000),
            254_000 * BYTES_PER_PAIR + BYTES_PER_SCAN
        );
        assert_eq!(Budget::estimate(u64::MAX), u64::MAX);
    }
}
