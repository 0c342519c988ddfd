//! Scanner configuration, assembled with a consuming builder.

use crate::ScanError;
use portgate_model::PortSpec;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::time::Duration;

/// Default ceiling on attempts in flight at once.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 8192;

/// Default window ceiling of a SYN scan of TCP ports only: a SYN holds no descriptor, so
/// the ceiling is set by the path (a bandwidth-delay product: 100,000 probes a second to
/// hosts 200 ms away keep 20,000 in flight, and silent probes hold their place for a
/// timeout), not by the open-file limit.
pub const DEFAULT_SYN_MAX_IN_FLIGHT: usize = 65_536;
/// Default cap on the addresses one scan may cover.
pub const DEFAULT_MAX_ADDRESSES: u64 = 65_536;
/// File descriptors left for everything that is not a probe.
const FD_RESERVE: u64 = 128;

/// How TCP ports are probed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TcpMethod {
    /// A raw SYN when raw sockets are permitted (root or CAP_NET_RAW), else a connect.
    #[default]
    Auto,
    /// A full handshake through the operating system; needs no privilege.
    Connect,
    /// A raw SYN; falls back to connect when raw sockets are not permitted.
    Syn,
}

/// Everything the engine needs to know; built by [`ScannerBuilder`].
#[derive(Debug, Clone)]
pub struct ScanConfig {
    pub(crate) tcp_ports: Vec<u16>,
    pub(crate) udp_ports: Vec<u16>,
    pub(crate) tcp_method: TcpMethod,
    pub(crate) verify: bool,
    pub(crate) retries: u8,
    pub(crate) min_rtt_timeout: Duration,
    pub(crate) max_rtt_timeout: Duration,
    pub(crate) initial_rtt_timeout: Duration,
    pub(crate) initial_in_flight: usize,
    pub(crate) max_in_flight: usize,
    pub(crate) host_concurrency: usize,
    /// Whether the ceiling was given (`max_in_flight`), not defaulted.
    pub(crate) max_in_flight_given: bool,
    pub(crate) rate: Option<NonZeroU32>,
    pub(crate) deadline: Option<Duration>,
    pub(crate) max_addresses: u64,
    pub(crate) dns_server: Option<SocketAddr>,
    pub(crate) dns_timeout: Duration,
    pub(crate) seed: Option<u64>,
}

impl ScanConfig {
    /// This configuration as a SYN scan runs it: with TCP ports only and no ceiling given,
    /// the whole scan's window may grow to [`DEFAULT_SYN_MAX_IN_FLIGHT`], as no probe holds
    /// a descriptor. One host's share stays as it was (8,192 at most): many hosts far away
    /// need the room, one host gains little from it and gets bursts it may not absorb. UDP
    /// probes hold descriptors, so a scan with UDP ports keeps the descriptor-bound ceiling.
    pub(crate) fn for_syn(&self) -> ScanConfig {
        let mut config = self.clone();
        if self.udp_ports.is_empty() && !self.max_in_flight_given {
            config.max_in_flight = DEFAULT_SYN_MAX_IN_FLIGHT;
        }
        config
    }

    /// The TCP ports probed on each address.
    pub fn tcp_ports(&self) -> &[u16] {
        &self.tcp_ports
    }

    /// How TCP ports are to be probed.
    pub fn tcp_method(&self) -> TcpMethod {
        self.tcp_method
    }

    /// Whether open ports found by SYN are confirmed by a full connect.
    pub fn verify(&self) -> bool {
        self.verify
    }

    /// The UDP ports probed on each address.
    pub fn udp_ports(&self) -> &[u16] {
        &self.udp_ports
    }

    /// Retries of an unanswered port (before loss is seen on a host).
    pub fn retries(&self) -> u8 {
        self.retries
    }

    /// The ceiling on attempts in flight.
    pub fn max_in_flight(&self) -> usize {
        self.max_in_flight
    }
}

/// Builds a [`crate::Scanner`]. Every setter consumes and returns the builder.
#[derive(Debug, Clone)]
pub struct ScannerBuilder {
    ports: PortSpec,
    tcp_method: TcpMethod,
    verify: bool,
    retries: u8,
    min_rtt_timeout: Duration,
    max_rtt_timeout: Duration,
    initial_rtt_timeout: Duration,
    initial_in_flight: usize,
    max_in_flight: Option<usize>,
    host_concurrency: Option<usize>,
    rate: Option<NonZeroU32>,
    deadline: Option<Duration>,
    max_addresses: u64,
    dns_server: Option<SocketAddr>,
    dns_timeout: Duration,
    seed: Option<u64>,
}

impl Default for ScannerBuilder {
    fn default() -> Self {
        ScannerBuilder {
            ports: PortSpec::default(),
            tcp_method: TcpMethod::Auto,
            verify: false,
            retries: 1,
            min_rtt_timeout: Duration::from_millis(100),
            max_rtt_timeout: Duration::from_secs(3),
            initial_rtt_timeout: Duration::from_secs(1),
            initial_in_flight: 1024,
            max_in_flight: None,
            host_concurrency: None,
            rate: None,
            deadline: None,
            max_addresses: DEFAULT_MAX_ADDRESSES,
            dns_server: None,
            dns_timeout: Duration::from_secs(3),
            seed: None,
        }
    }
}

impl ScannerBuilder {
    /// Ports to probe on every address.
    #[must_use]
    pub fn ports(mut self, ports: PortSpec) -> Self {
        self.ports = ports;
        self
    }

    /// How TCP ports are probed (default: SYN when permitted, else connect).
    #[must_use]
    pub fn tcp_method(mut self, method: TcpMethod) -> Self {
        self.tcp_method = method;
        self
    }

    /// Confirm each port found open with a full connect before reporting it (SYN scans).
    #[must_use]
    pub fn verify(mut self, verify: bool) -> Self {
        self.verify = verify;
        self
    }

    /// Retries of a port that did not answer (default 1). Once a host shows loss (a port
    /// answers only on a retry) its ports get at least 3.
    #[must_use]
    pub fn retries(mut self, retries: u8) -> Self {
        self.retries = retries;
        self
    }

    /// Floor of the per-attempt timeout (default 100 ms).
    #[must_use]
    pub fn min_rtt_timeout(mut self, timeout: Duration) -> Self {
        self.min_rtt_timeout = timeout;
        self
    }

    /// Ceiling of the per-attempt timeout (default 3 s).
    #[must_use]
    pub fn max_rtt_timeout(mut self, timeout: Duration) -> Self {
        self.max_rtt_timeout = timeout;
        self
    }

    /// Timeout used before any round trip has been measured (default 1 s).
    #[must_use]
    pub fn initial_rtt_timeout(mut self, timeout: Duration) -> Self {
        self.initial_rtt_timeout = timeout;
        self
    }

    /// Window of in-flight attempts at the start (default 1024).
    #[must_use]
    pub fn initial_in_flight(mut self, n: usize) -> Self {
        self.initial_in_flight = n;
        self
    }

    /// Ceiling of the window (default: 8192, or fewer when the open-file limit is lower).
    #[must_use]
    pub fn max_in_flight(mut self, n: usize) -> Self {
        self.max_in_flight = Some(n);
        self
    }

    /// Attempts in flight to one address at most (default: the window's ceiling).
    #[must_use]
    pub fn host_concurrency(mut self, n: usize) -> Self {
        self.host_concurrency = Some(n);
        self
    }

    /// Probes per second across the whole scan (default: unlimited).
    #[must_use]
    pub fn rate_limit(mut self, per_second: Option<NonZeroU32>) -> Self {
        self.rate = per_second;
        self
    }

    /// Stop after this long, reporting the scan as incomplete (default: none).
    #[must_use]
    pub fn deadline(mut self, deadline: Option<Duration>) -> Self {
        self.deadline = deadline;
        self
    }

    /// Most addresses one scan may cover (default 65,536).
    #[must_use]
    pub fn max_addresses(mut self, n: u64) -> Self {
        self.max_addresses = n;
        self
    }

    /// Resolve names with this DNS server instead of the system's configuration.
    #[must_use]
    pub fn dns_server(mut self, server: Option<SocketAddr>) -> Self {
        self.dns_server = server;
        self
    }

    /// How long one DNS query may take (default 3 s).
    #[must_use]
    pub fn dns_timeout(mut self, timeout: Duration) -> Self {
        self.dns_timeout = timeout;
        self
    }

    /// Seed of the random probe order (default: random).
    #[must_use]
    pub fn seed(mut self, seed: Option<u64>) -> Self {
        self.seed = seed;
        self
    }

    /// Checks the settings and builds the scanner.
    pub fn build(self) -> Result<crate::Scanner, ScanError> {
        if self.ports.is_empty() {
            return Err(ScanError::NoPorts);
        }
        if self.min_rtt_timeout > self.max_rtt_timeout {
            return Err(ScanError::TimeoutOrder {
                min: self.min_rtt_timeout,
                max: self.max_rtt_timeout,
            });
        }
        for (what, value) in [
            ("the initial window", Some(self.initial_in_flight)),
            ("the maximum in flight", self.max_in_flight),
            ("the per-host concurrency", self.host_concurrency),
            ("the address limit", Some(self.max_addresses as usize)),
        ] {
            if value == Some(0) {
                return Err(ScanError::ZeroLimit { what });
            }
        }
        let max_in_flight = self
            .max_in_flight
            .unwrap_or_else(|| default_max_in_flight(open_file_limit()));
        Ok(crate::Scanner {
            config: ScanConfig {
                tcp_ports: self.ports.tcp_ports().to_vec(),
                udp_ports: self.ports.udp_ports().to_vec(),
                tcp_method: self.tcp_method,
                verify: self.verify,
                retries: self.retries,
                min_rtt_timeout: self.min_rtt_timeout,
                max_rtt_timeout: self.max_rtt_timeout,
                initial_rtt_timeout: self.initial_rtt_timeout,
                initial_in_flight: self.initial_in_flight.min(max_in_flight),
                max_in_flight,
                host_concurrency: self.host_concurrency.unwrap_or(max_in_flight),
                max_in_flight_given: self.max_in_flight.is_some(),
                rate: self.rate,
                deadline: self.deadline,
                max_addresses: self.max_addresses,
                dns_server: self.dns_server,
                dns_timeout: self.dns_timeout,
                seed: self.seed,
            },
        })
    }
}

/// The soft limit on open files, if it can be read.
fn open_file_limit() -> Option<u64> {
    nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .ok()
        .map(|(soft, _hard)| soft)
}

fn default_max_in_flight(fd_limit: Option<u64>) -> usize {
    match fd_limit {
        Some(limit) => {
            let usable = limit.saturating_sub(FD_RESERVE).max(16);
            usize::try_from(usable)
                .unwrap_or(DEFAULT_MAX_IN_FLIGHT)
                .min(DEFAULT_MAX_IN_FLIGHT)
        }
        None => 1024,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_ceiling_follows_the_file_limit() {
        assert_eq!(
            default_max_in_flight(Some(1_048_576)),
            DEFAULT_MAX_IN_FLIGHT
        );
        assert_eq!(default_max_in_flight(Some(1024)), 896);
        assert_eq!(default_max_in_flight(Some(64)), 16);
        assert_eq!(default_max_in_flight(None), 1024);
    }

    #[test]
    fn rejects_contradictions() {
        let ports: PortSpec = "80".parse().unwrap_or_default();
        let err = |b: ScannerBuilder| b.build().err().map(|e| e.to_string());
        assert_eq!(
            err(ScannerBuilder::default()),
            Some("no port to scan".into())
        );
        assert!(
            err(ScannerBuilder::default()
                .ports(ports.clone())
                .min_rtt_timeout(Duration::from_secs(5)))
            .is_some_and(|e| e.contains("minimum RTT timeout 5s"))
        );
        assert!(
            err(ScannerBuilder::default()
                .ports(ports.clone())
                .max_in_flight(0))
            .is_some_and(|e| e.contains("maximum in flight must be at least 1"))
        );
        let udp: PortSpec = "U:53".parse().unwrap_or_default();
        assert!(ScannerBuilder::default().ports(udp).build().is_ok());
        assert!(ScannerBuilder::default().ports(ports).build().is_ok());
    }

    #[test]
    fn a_syn_scan_of_tcp_ports_only_gets_the_larger_ceiling_unless_one_is_given() {
        let tcp = |b: ScannerBuilder| {
            b.ports("T:1-100".parse().expect("ports"))
                .build()
                .expect("builds")
                .config
        };
        let syn = tcp(ScannerBuilder::default()).for_syn();
        assert_eq!(syn.max_in_flight, DEFAULT_SYN_MAX_IN_FLIGHT);
        assert!(
            syn.host_concurrency <= DEFAULT_MAX_IN_FLIGHT,
            "one host's share unchanged"
        );
        let given = tcp(ScannerBuilder::default().max_in_flight(500)).for_syn();
        assert_eq!((given.max_in_flight, given.host_concurrency), (500, 500));
        let per_host = tcp(ScannerBuilder::default().host_concurrency(64)).for_syn();
        assert_eq!(per_host.max_in_flight, DEFAULT_SYN_MAX_IN_FLIGHT);
        assert_eq!(per_host.host_concurrency, 64);
        let with_udp = ScannerBuilder::default()
            .ports("T:80,U:53".parse().expect("ports"))
            .build()
            .expect("builds")
            .config
            .for_syn();
        assert!(
            with_udp.max_in_flight <= DEFAULT_MAX_IN_FLIGHT,
            "UDP holds descriptors"
        );
    }
}
