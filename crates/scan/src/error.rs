//! Errors that stop a scan before it starts.

use std::time::Duration;

/// A configuration or input the scanner cannot work with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ScanError {
    /// No port to scan.
    #[error("no port to scan")]
    NoPorts,
    /// No target given.
    #[error("no target to scan")]
    NoTargets,
    /// Timeouts that contradict each other.
    #[error("minimum RTT timeout {min:?} is greater than the maximum {max:?}")]
    TimeoutOrder {
        /// Minimum given.
        min: Duration,
        /// Maximum given.
        max: Duration,
    },
    /// A count that must be at least 1 was 0.
    #[error("{what} must be at least 1")]
    ZeroLimit {
        /// Which setting.
        what: &'static str,
    },
    /// A target covers more addresses than allowed.
    #[error(
        "target \"{target}\" covers {count} addresses, more than the limit of {limit}; scan smaller ranges or raise the limit"
    )]
    TooManyAddresses {
        /// The target as written.
        target: String,
        /// Addresses it covers.
        count: u128,
        /// The limit.
        limit: u64,
    },
    /// The async runtime could not be started.
    #[error("could not start the DNS resolver: {0}")]
    Resolver(String),
}
