//! Test lab for portgate: throw-away "hosts" whose port states are known exactly.
//!
//! A [`LabHost`] is a Linux network namespace (`pglab-<pid>-<n>`) connected to
//! the root namespace by a veth pair, with TCP listeners on its open ports and
//! an iptables profile ([`Profile`]) that makes the remaining ports closed
//! (RST), filtered (silently dropped) or lossy. Optionally
//! ([`LabConfig::udp_services`]) it runs real UDP services: dnsmasq (DNS, 53),
//! chronyd (NTP, 123) and snmpd (SNMP, 161). [`GroundTruth`] says what a
//! correct scanner must report for every TCP and UDP port. Integration tests
//! use the library; the benchmark script uses the `portgate-lab` binary.
//!
//! Optionally ([`LabConfig::delay`]) a delay line holds every packet that
//! reaches the lab host for a configured time, with jitter, random loss and a
//! packet-rate ceiling ([`DelayConfig`]), so scanners meet a real round-trip
//! time: an `iptables -t mangle -A PREROUTING -i <veth> -j NFQUEUE` rule (and its
//! ip6tables twin) inside the namespace hands those packets to a thread of
//! this process that releases them when due ([`DelayStats`] says how well it
//! kept up).
//!
//! A [`LabNetwork`] is one namespace that answers for every address of a
//! prefix of 198.19.0.0/16 (up to a /20: 4096 scan targets), each address a
//! dark, RST-only, firewalled or open host with its own open ports drawn from
//! a seed, all enforced by one nftables ruleset; [`NetworkTruth`] is its
//! ground truth. Lab hosts' /30s stay inside 198.18.0.0/16, so the two never
//! collide.
//!
//! # What this crate must not do
//!
//! It must never send packets to, or configure, any address outside
//! 198.18.0.0/15 (RFC 2544 benchmarking range) and 2001:db8::/32 (RFC 3849
//! documentation range): every address it derives lies in those ranges (see
//! [`in_lab_range`]), and the only traffic it generates itself is readiness
//! probes to the lab host's own addresses (or to addresses of a lab
//! network's prefix). It only creates and deletes
//! namespaces named `pglab-*` and veth interfaces named `pgh*`/`pgn*`, never
//! touches the root namespace's firewall (its own rules live in the lab
//! namespace's filter table and, with a delay line, its mangle table's
//! PREROUTING chain; a lab network's nftables table lives in its namespace),
//! routes (other than the veth's own connected routes and, for a
//! [`LabNetwork`], one route to its 198.19.0.0/16 prefix via its own veth,
//! added only after checking the prefix against every root-namespace address
//! and route, and deleted at teardown), sysctls or other interfaces, and
//! never kills a process
//! other than the UDP service daemons it started itself (by their pid).
//! Creating a lab needs root (CAP_NET_ADMIN); see [`skip_reason`] and
//! [`udp_services_skip_reason`].

mod addr;
mod cmd;
mod delay;
mod firewall;
mod listener;
mod network;
mod rng;
mod services;
mod zoo;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::str::FromStr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

pub use addr::in_lab_range;
use addr::{SUBNET_COUNT, Subnet, candidate_index};
pub use delay::{DEFAULT_DELAY_SEED, DelayConfig, DelayLine, DelayStats, MAX_DELAY};
use listener::ListenerHandle;
pub use network::{
    DEFAULT_DARK_SHARE, DEFAULT_FIREWALLED_SHARE, DEFAULT_OPEN_SHARE, DEFAULT_RST_ONLY_SHARE,
    HostKind, HostTruth, KindCounts, LabNetwork, MAX_NETWORK_HOSTS, MAX_OPEN_PER_HOST,
    MAX_REJECT_PER_HOST, NetworkConfig, NetworkPrefix, NetworkTruth, common_ports,
    network_skip_reason,
};
use services::Services;
pub use zoo::{
    Transport, ZOO_HOST_NAME, ZOO_PACKAGES, Zoo, ZooService, ZooSkip, installed_version,
    upstream_version, zoo_skip_reason,
};

/// The 17 ports that are open by default.
pub const DEFAULT_OPEN_PORTS: [u16; 17] = [
    1, 22, 80, 443, 3306, 5432, 6379, 8080, 8443, 9090, 11211, 27017, 31337, 40000, 50000, 60000,
    65535,
];

/// The ports that answer with a TCP reset by default under [`Profile::Firewalled`].
pub const DEFAULT_REJECT_PORTS: [u16; 5] = [113, 2000, 7000, 12345, 54321];

/// The UDP ports served by real daemons when [`LabConfig::udp_services`] is on:
/// DNS (dnsmasq), NTP (chronyd), SNMP (snmpd).
pub const UDP_SERVICE_PORTS: [u16; 3] =
    [services::DNS_PORT, services::NTP_PORT, services::SNMP_PORT];

/// The UDP ports that answer ICMP port unreachable by default under
/// [`Profile::Firewalled`].
pub const DEFAULT_UDP_REJECT_PORTS: [u16; 2] = [1000, 1001];

/// The `sysDescr.0` value the lab's SNMP agent reports.
pub const SNMP_SYS_DESCR: &str = services::SNMP_SYS_DESCR;

/// The name the lab's DNS server resolves to the lab host's own addresses.
pub const DNS_HOST_RECORD: &str = services::DNS_HOST_RECORD;

/// Default probability that [`Profile::Lossy`] drops an incoming SYN.
pub const DEFAULT_LOSS_PROBABILITY: f64 = 0.02;

/// Prefix of every namespace this crate creates.
pub const NAMESPACE_PREFIX: &str = "pglab-";

/// How long [`LabHost::start`] waits for the host to become reachable.
const READY_TIMEOUT: Duration = Duration::from_secs(5);

/// Tools that must be in `PATH`.
const REQUIRED_TOOLS: [&str; 3] = ["ip", "iptables-restore", "ip6tables-restore"];

/// Per-process counter for namespace names.
static COUNTER: AtomicU32 = AtomicU32::new(0);

/// Serialises subnet allocation between lab hosts of this process.
static ALLOCATION: Mutex<()> = Mutex::new(());

/// The firewall profile of a lab host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    /// No firewall: open ports accept, every other port answers RST.
    #[default]
    Open,
    /// Default-drop firewall: open ports accept, reject ports answer RST,
    /// every other port is silently dropped (filtered).
    Firewalled,
    /// Like [`Profile::Open`], but a random fraction of incoming SYNs is dropped.
    Lossy,
}

impl Profile {
    /// All profiles.
    pub const ALL: [Profile; 3] = [Profile::Open, Profile::Firewalled, Profile::Lossy];

    /// The lowercase name (`open`, `firewalled`, `lossy`).
    pub fn as_str(self) -> &'static str {
        match self {
            Profile::Open => "open",
            Profile::Firewalled => "firewalled",
            Profile::Lossy => "lossy",
        }
    }
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Error of [`Profile::from_str`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown profile `{0}` (expected open, firewalled or lossy)")]
pub struct ParseProfileError(pub String);

impl FromStr for Profile {
    type Err = ParseProfileError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Profile::ALL
            .into_iter()
            .find(|p| p.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| ParseProfileError(s.to_owned()))
    }
}

/// The state a correct scanner must report for a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExpectedState {
    /// The port accepts connections.
    Open,
    /// The port answers SYN with RST.
    Closed,
    /// The port does not answer at all.
    Filtered,
}

impl fmt::Display for ExpectedState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ExpectedState::Open => "open",
            ExpectedState::Closed => "closed",
            ExpectedState::Filtered => "filtered",
        })
    }
}

/// The state a correct scanner must report for a UDP port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ExpectedUdpState {
    /// A service answers the right request.
    #[serde(rename = "open")]
    Open,
    /// The host answers ICMP port unreachable.
    #[serde(rename = "closed")]
    Closed,
    /// Nothing answers: the port may be open (silent service) or filtered.
    #[serde(rename = "open|filtered")]
    OpenFiltered,
}

impl fmt::Display for ExpectedUdpState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ExpectedUdpState::Open => "open",
            ExpectedUdpState::Closed => "closed",
            ExpectedUdpState::OpenFiltered => "open|filtered",
        })
    }
}

/// What to build. Start from [`LabConfig::new`] and adjust with the setters.
#[derive(Debug, Clone, PartialEq)]
pub struct LabConfig {
    /// Firewall profile.
    pub profile: Profile,
    /// Ports with a listener (must be non-zero and distinct from `reject_ports`).
    pub open_ports: Vec<u16>,
    /// Ports that answer RST under [`Profile::Firewalled`]; ignored otherwise
    /// (every non-open port is closed there anyway).
    pub reject_ports: Vec<u16>,
    /// Probability in `0.0..=1.0` that an incoming SYN is dropped; only used
    /// by [`Profile::Lossy`].
    pub loss_probability: f64,
    /// Bytes an open port sends right after accepting, before closing
    /// (banner services). Ports without an entry close at once.
    pub greetings: BTreeMap<u16, Vec<u8>>,
    /// Run dnsmasq, chronyd and snmpd on [`UDP_SERVICE_PORTS`] (off by default).
    /// TCP port 53, where dnsmasq also listens, keeps the state every other
    /// non-open TCP port has, and must then not be an open port.
    pub udp_services: bool,
    /// UDP ports that answer ICMP port unreachable under
    /// [`Profile::Firewalled`]; ignored otherwise (every UDP port without a
    /// service is closed there anyway).
    pub udp_reject_ports: Vec<u16>,
    /// Per-destination ICMP error rate limit inside the namespace, in
    /// milliseconds (`net.ipv4.icmp_ratelimit` and `net.ipv6.icmp.ratelimit`;
    /// 0 disables it). `None` keeps the kernel defaults (1000 ms for IPv4,
    /// 1000 or 100 ms for IPv6 depending on the kernel, after a small burst).
    /// The kernel's overall ICMP budget (`net.ipv4.icmp_msgs_per_sec`,
    /// `icmp_msgs_burst`) is not changed and still applies.
    pub icmp_ratelimit_ms: Option<u32>,
    /// A delay line on every packet that reaches the lab host (`None`: none, the
    /// default). See [`LabConfig::delay`].
    pub delay: Option<DelayConfig>,
}

impl LabConfig {
    /// The defaults for `profile`: [`DEFAULT_OPEN_PORTS`] open;
    /// [`DEFAULT_REJECT_PORTS`] rejecting and [`DEFAULT_UDP_REJECT_PORTS`]
    /// rejecting UDP (firewalled only, empty otherwise); loss probability
    /// [`DEFAULT_LOSS_PROBABILITY`] (lossy only, 0 otherwise); no greetings;
    /// no UDP services; the kernel's ICMP rate limit.
    pub fn new(profile: Profile) -> Self {
        let firewalled = profile == Profile::Firewalled;
        Self {
            profile,
            open_ports: DEFAULT_OPEN_PORTS.to_vec(),
            reject_ports: if firewalled {
                DEFAULT_REJECT_PORTS.to_vec()
            } else {
                Vec::new()
            },
            loss_probability: if profile == Profile::Lossy {
                DEFAULT_LOSS_PROBABILITY
            } else {
                0.0
            },
            greetings: BTreeMap::new(),
            udp_services: false,
            udp_reject_ports: if firewalled {
                DEFAULT_UDP_REJECT_PORTS.to_vec()
            } else {
                Vec::new()
            },
            icmp_ratelimit_ms: None,
            delay: None,
        }
    }

    /// Replaces the open ports.
    #[must_use]
    pub fn open_ports(mut self, ports: impl IntoIterator<Item = u16>) -> Self {
        self.open_ports = ports.into_iter().collect();
        self
    }

    /// Replaces the reject ports.
    #[must_use]
    pub fn reject_ports(mut self, ports: impl IntoIterator<Item = u16>) -> Self {
        self.reject_ports = ports.into_iter().collect();
        self
    }

    /// Sets the SYN drop probability (lossy profile).
    #[must_use]
    pub fn loss_probability(mut self, probability: f64) -> Self {
        self.loss_probability = probability;
        self
    }

    /// Makes the open port `port` send `bytes` to every client, then close.
    #[must_use]
    pub fn greeting(mut self, port: u16, bytes: impl Into<Vec<u8>>) -> Self {
        self.greetings.insert(port, bytes.into());
        self
    }

    /// Runs (or not) the real UDP services on [`UDP_SERVICE_PORTS`]: dnsmasq,
    /// chronyd and snmpd inside the namespace, bound to the lab host's IPv4
    /// and IPv6 address. Needs those programs installed.
    #[must_use]
    pub fn udp_services(mut self, on: bool) -> Self {
        self.udp_services = on;
        self
    }

    /// Replaces the UDP reject ports (firewalled profile).
    #[must_use]
    pub fn udp_reject_ports(mut self, ports: impl IntoIterator<Item = u16>) -> Self {
        self.udp_reject_ports = ports.into_iter().collect();
        self
    }

    /// Sets the namespace's per-destination ICMP error rate limit
    /// (`net.ipv4.icmp_ratelimit` and `net.ipv6.icmp.ratelimit`) to `ms`
    /// milliseconds; 0 disables it. See [`LabConfig::icmp_ratelimit_ms`].
    #[must_use]
    pub fn icmp_ratelimit_ms(mut self, ms: u32) -> Self {
        self.icmp_ratelimit_ms = Some(ms);
        self
    }

    /// Puts a delay line on every packet that reaches the lab host (SYNs,
    /// ACKs, UDP, data), so a scanner in the root namespace sees
    /// a round trip of `delay` (plus jitter), with random loss and a
    /// packet-rate ceiling if configured. It is installed last, after the
    /// readiness checks and the firewall. Needs `iptables` and `ip6tables`.
    #[must_use]
    pub fn delay(mut self, delay: DelayConfig) -> Self {
        self.delay = Some(delay);
        self
    }

    /// Checks the configuration and computes the ground truth.
    fn validate(&self) -> Result<GroundTruth, LabError> {
        let open: BTreeSet<u16> = self.open_ports.iter().copied().collect();
        let reject: BTreeSet<u16> = if self.profile == Profile::Firewalled {
            self.reject_ports.iter().copied().collect()
        } else {
            BTreeSet::new()
        };
        if open.contains(&0) || reject.contains(&0) {
            return Err(LabError::InvalidConfig("port 0 cannot be used".to_owned()));
        }
        if let Some(port) = open.intersection(&reject).next() {
            return Err(LabError::InvalidConfig(format!(
                "port {port} is both open and rejecting"
            )));
        }
        if !(0.0..=1.0).contains(&self.loss_probability) {
            return Err(LabError::InvalidConfig(format!(
                "loss probability {} is not within 0..=1",
                self.loss_probability
            )));
        }
        if let Some(port) = self.greetings.keys().find(|p| !open.contains(p)) {
            return Err(LabError::InvalidConfig(format!(
                "greeting configured for port {port}, which is not open"
            )));
        }
        let udp_open: BTreeSet<u16> = if self.udp_services {
            UDP_SERVICE_PORTS.into_iter().collect()
        } else {
            BTreeSet::new()
        };
        let udp_reject: BTreeSet<u16> = if self.profile == Profile::Firewalled {
            self.udp_reject_ports.iter().copied().collect()
        } else {
            BTreeSet::new()
        };
        if udp_reject.contains(&0) {
            return Err(LabError::InvalidConfig(
                "UDP port 0 cannot be used".to_owned(),
            ));
        }
        if let Some(port) = udp_open.intersection(&udp_reject).next() {
            return Err(LabError::InvalidConfig(format!(
                "UDP port {port} has a service and cannot be rejecting"
            )));
        }
        if let Some(port) = self.hidden_tcp_ports().intersection(&open).next() {
            return Err(LabError::InvalidConfig(format!(
                "TCP port {port} is taken by the DNS service of udp_services and cannot be open"
            )));
        }
        if let Some(delay) = &self.delay {
            delay.validate()?;
        }
        if let Some(ms) = self.icmp_ratelimit_ms
            && i32::try_from(ms).is_err()
        {
            return Err(LabError::InvalidConfig(format!(
                "ICMP rate limit {ms} ms is too large"
            )));
        }
        Ok(GroundTruth {
            profile: self.profile,
            open,
            reject,
            udp_open,
            udp_reject,
        })
    }

    /// TCP ports a UDP service's daemon listens on as well (dnsmasq: 53),
    /// which the firewall makes look like every other non-open port.
    fn hidden_tcp_ports(&self) -> BTreeSet<u16> {
        if self.udp_services {
            BTreeSet::from([services::DNS_PORT])
        } else {
            BTreeSet::new()
        }
    }

    fn effective_loss(&self) -> f64 {
        if self.profile == Profile::Lossy {
            self.loss_probability
        } else {
            0.0
        }
    }
}

impl Default for LabConfig {
    fn default() -> Self {
        Self::new(Profile::Open)
    }
}

/// The exact state of every port of a lab host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroundTruth {
    /// The firewall profile.
    pub profile: Profile,
    /// Ports with a listener.
    pub open: BTreeSet<u16>,
    /// Ports that answer RST through a firewall rule (firewalled profile only).
    pub reject: BTreeSet<u16>,
    /// UDP ports with a real service ([`UDP_SERVICE_PORTS`] when
    /// [`LabConfig::udp_services`] is on, else empty).
    #[serde(default)]
    pub udp_open: BTreeSet<u16>,
    /// UDP ports that answer ICMP port unreachable through a firewall rule
    /// (firewalled profile only).
    #[serde(default)]
    pub udp_reject: BTreeSet<u16>,
}

impl GroundTruth {
    /// What a correct scanner reports for `port`.
    ///
    /// Open and lossy: open ports are open, every other port is closed.
    /// Firewalled: open ports are open, reject ports closed, all others filtered.
    pub fn expected(&self, port: u16) -> ExpectedState {
        if self.open.contains(&port) {
            return ExpectedState::Open;
        }
        match self.profile {
            Profile::Open | Profile::Lossy => ExpectedState::Closed,
            Profile::Firewalled if self.reject.contains(&port) => ExpectedState::Closed,
            Profile::Firewalled => ExpectedState::Filtered,
        }
    }

    /// What a correct UDP scanner reports for `port`.
    ///
    /// Service ports are open. Open and lossy profiles: every other port is
    /// closed (the kernel answers ICMP port unreachable, subject to the ICMP
    /// rate limit). Firewalled: UDP reject ports are closed, all others
    /// open|filtered (dropped without an answer).
    pub fn expected_udp(&self, port: u16) -> ExpectedUdpState {
        if self.udp_open.contains(&port) {
            return ExpectedUdpState::Open;
        }
        match self.profile {
            Profile::Open | Profile::Lossy => ExpectedUdpState::Closed,
            Profile::Firewalled if self.udp_reject.contains(&port) => ExpectedUdpState::Closed,
            Profile::Firewalled => ExpectedUdpState::OpenFiltered,
        }
    }
}

/// Why a lab host could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LabError {
    /// The process is not root (euid != 0); namespaces need CAP_NET_ADMIN.
    #[error("the lab needs root (CAP_NET_ADMIN) to create network namespaces")]
    NotRoot,
    /// A required program is not installed.
    #[error("required tool `{tool}` not found in PATH")]
    ToolMissing {
        /// The program name.
        tool: String,
    },
    /// An external command exited unsuccessfully.
    #[error("command `{command}` failed ({status}): {stderr}")]
    Command {
        /// The command line.
        command: String,
        /// Its exit status.
        status: String,
        /// Its standard error, trimmed.
        stderr: String,
    },
    /// A listener could not be bound inside the namespace.
    #[error("cannot listen on [::]:{port} in namespace {namespace}: {source}")]
    Bind {
        /// The port.
        port: u16,
        /// The namespace.
        namespace: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// Some other I/O operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The listener thread failed or did not report in time.
    #[error("listener thread of namespace {namespace}: {reason}")]
    Listener {
        /// The namespace.
        namespace: String,
        /// What went wrong.
        reason: String,
    },
    /// The configuration is inconsistent.
    #[error("invalid lab configuration: {0}")]
    InvalidConfig(String),
    /// Every candidate /30 in 198.18.0.0/16 is in use.
    #[error("no free subnet in 198.18.0.0/16 after {attempts} attempts")]
    NoFreeSubnet {
        /// How many subnets were tried.
        attempts: u32,
    },
    /// The lab host did not become reachable from the root namespace in time.
    #[error("{address} not reachable from the root namespace within {timeout:?}: {last_error}")]
    NotReachable {
        /// The probed address.
        address: SocketAddr,
        /// How long it was tried.
        timeout: Duration,
        /// The last connect error.
        last_error: String,
    },
    /// A UDP service daemon exited or did not answer in time.
    #[error("UDP service {service}: {reason}")]
    Service {
        /// The daemon (`dnsmasq`, `chronyd`, `snmpd`).
        service: String,
        /// What went wrong, with the end of its log.
        reason: String,
    },
    /// A zoo daemon exited or did not accept connections in time.
    #[error("zoo daemon {daemon}: {reason}")]
    ZooDaemon {
        /// The daemon (`sshd`, `nginx`, ...).
        daemon: String,
        /// What went wrong, with the end of its log.
        reason: String,
    },
    /// The delay line failed to start or to bind its NFQUEUE queue.
    #[error("delay line of namespace {namespace}: {reason}")]
    DelayLine {
        /// The namespace.
        namespace: String,
        /// What went wrong.
        reason: String,
    },
    /// No /`len` of 198.19.0.0/16 is free for a [`LabNetwork`] (every
    /// candidate overlaps an address or route of the root namespace).
    #[error("no free /{len} in 198.19.0.0/16 for a lab network after {attempts} attempts")]
    NoFreePrefix {
        /// The prefix length wanted.
        len: u8,
        /// How many prefixes were tried.
        attempts: u32,
    },
    /// A command printed something this crate could not understand.
    #[error("unexpected output from `{command}`: {detail}")]
    UnexpectedOutput {
        /// The command line.
        command: String,
        /// What was wrong.
        detail: String,
    },
}

/// For tests: `Some(reason)` when the lab cannot run here (not root, or a
/// required tool is missing). Tests pass the reason to `portgate_test_support::skip`
/// (which prints `SKIP <test>: <reason>`, or fails under strict mode) and return.
pub fn skip_reason() -> Option<String> {
    let euid = nix::unistd::geteuid();
    if !euid.is_root() {
        return Some(format!(
            "not root (euid {euid}); the lab needs CAP_NET_ADMIN to create network namespaces"
        ));
    }
    REQUIRED_TOOLS
        .iter()
        .find(|tool| !cmd::tool_available(tool))
        .map(|tool| format!("required tool `{tool}` not found in PATH"))
}

/// Like [`skip_reason`], for labs with [`LabConfig::udp_services`]: also
/// `Some(reason)` when dnsmasq, chronyd or snmpd is not installed (Debian
/// packages `dnsmasq-base`, `chrony`, `snmpd`).
pub fn udp_services_skip_reason() -> Option<String> {
    skip_reason().or_else(|| {
        services::TOOLS
            .iter()
            .find(|tool| !cmd::tool_available(tool))
            .map(|tool| format!("UDP service program `{tool}` not found in PATH"))
    })
}

/// Everything that has to be undone, in creation order. Dropping it undoes it.
#[derive(Debug, Default)]
struct Resources {
    namespace: Option<String>,
    host_if: Option<String>,
    listener: Option<ListenerHandle>,
    services: Option<Services>,
    delay: Option<DelayLine>,
}

impl Resources {
    /// Stops the delay line (its iptables rules first, then its thread), the
    /// listeners and the UDP service daemons, deletes the veth and the
    /// namespace. Idempotent; never panics.
    fn teardown(&mut self) {
        // The delay line was set up last and goes first: its rules must not
        // outlive its thread, and its thread lives in the namespace.
        if let Some(mut delay) = self.delay.take() {
            delay.stop();
        }
        // The listener thread and the daemons are inside the namespace and
        // keep it alive.
        if let Some(mut listener) = self.listener.take() {
            listener.stop();
        }
        if let Some(mut services) = self.services.take() {
            services.stop();
        }
        // Deleting one end deletes both; doing it explicitly makes the
        // host-side address disappear at once instead of asynchronously.
        if let Some(host_if) = self.host_if.take() {
            let _ = cmd::run_quiet(&["ip", "link", "del", &host_if]);
        }
        if let Some(namespace) = self.namespace.take()
            && let Err(err) = cmd::run(&["ip", "netns", "del", &namespace])
        {
            eprintln!("portgate-lab: warning: could not delete namespace {namespace}: {err}");
        }
    }
}

impl Drop for Resources {
    fn drop(&mut self) {
        self.teardown();
    }
}

/// A lab host: a network namespace with listeners, optional UDP services and
/// a firewall profile.
///
/// Dropping it stops the listeners and the service daemons and deletes the
/// namespace (the veth pair goes with it).
#[derive(Debug)]
pub struct LabHost {
    resources: Resources,
    namespace: String,
    subnet: Subnet,
    host_if: String,
    ns_if: String,
    target_mac: String,
    truth: GroundTruth,
    loss_probability: f64,
    greetings: BTreeMap<u16, Vec<u8>>,
    icmp_ratelimit_ms: Option<u32>,
}

impl LabHost {
    /// Creates the namespace, veth pair, addresses, listeners, UDP services
    /// and firewall rules; returns once listeners accept, every UDP service
    /// answers its query on both addresses, and the rules are in place.
    ///
    /// On failure everything created so far is removed again.
    pub fn start(config: LabConfig) -> Result<LabHost, LabError> {
        let truth = config.validate()?;
        if !nix::unistd::geteuid().is_root() {
            return Err(LabError::NotRoot);
        }
        let service_tools: &[&str] = if config.udp_services {
            &services::TOOLS
        } else {
            &[]
        };
        let sysctl_tool: &[&str] = if config.icmp_ratelimit_ms.is_some() {
            &["sysctl"]
        } else {
            &[]
        };
        let delay_tools: &[&str] = if config.delay.is_some() {
            &["iptables", "ip6tables"]
        } else {
            &[]
        };
        if let Some(tool) = REQUIRED_TOOLS
            .iter()
            .chain(service_tools)
            .chain(sysctl_tool)
            .chain(delay_tools)
            .find(|t| !cmd::tool_available(t))
        {
            return Err(LabError::ToolMissing {
                tool: (*tool).to_owned(),
            });
        }

        let mut resources = Resources::default();
        let (namespace, counter) = create_namespace()?;
        resources.namespace = Some(namespace.clone());
        let subnet = create_veth(counter)?;
        let host_if = subnet.host_if();
        let ns_if = subnet.ns_if();
        resources.host_if = Some(host_if.clone());

        configure_link(&namespace, subnet)?;
        let target_mac = read_mac(&namespace, &ns_if)?;
        if let Some(ms) = config.icmp_ratelimit_ms {
            set_icmp_ratelimit(&namespace, ms)?;
        }

        let ports: Vec<u16> = truth.open.iter().copied().collect();
        resources.listener = Some(listener::spawn(
            &namespace,
            ports,
            config.greetings.clone(),
        )?);

        // Probe before the firewall goes up, so a lossy or firewalled profile
        // cannot get in the way of the readiness check.
        let probe_port = truth.open.first().copied();
        wait_reachable(IpAddr::V4(subnet.ns_v4()), probe_port)?;
        wait_reachable(IpAddr::V6(subnet.ns_v6()), probe_port)?;

        if config.udp_services {
            let services = resources.services.insert(Services::start(
                &namespace,
                subnet.ns_v4(),
                subnet.ns_v6(),
            )?);
            services.wait_ready(subnet.ns_v4(), subnet.ns_v6(), READY_TIMEOUT)?;
        }

        let hidden_tcp = config.hidden_tcp_ports();
        firewall::apply(
            &namespace,
            truth.profile,
            firewall::Ports {
                open: &truth.open,
                reject: &truth.reject,
                udp_open: &truth.udp_open,
                udp_reject: &truth.udp_reject,
                tcp_hidden: &hidden_tcp,
            },
            config.effective_loss(),
        )?;

        // Last, so the readiness checks above were not delayed; nothing
        // probes through it (a lossy delay line could fail any probe).
        if let Some(delay) = config.delay {
            resources.delay = Some(DelayLine::start(&namespace, &ns_if, delay)?);
        }

        Ok(LabHost {
            resources,
            namespace,
            subnet,
            host_if,
            ns_if,
            target_mac,
            truth,
            loss_probability: config.effective_loss(),
            greetings: config.greetings,
            icmp_ratelimit_ms: config.icmp_ratelimit_ms,
        })
    }

    /// The namespace-side IPv4 address (scan target).
    pub fn ipv4(&self) -> Ipv4Addr {
        self.subnet.ns_v4()
    }

    /// The namespace-side IPv6 address (scan target).
    pub fn ipv6(&self) -> Ipv6Addr {
        self.subnet.ns_v6()
    }

    /// The root-namespace side IPv4 address (scan source).
    pub fn host_ipv4(&self) -> Ipv4Addr {
        self.subnet.host_v4()
    }

    /// The root-namespace side IPv6 address (scan source).
    pub fn host_ipv6(&self) -> Ipv6Addr {
        self.subnet.host_v6()
    }

    /// The root-namespace side veth interface (`pgh<hex>`).
    pub fn host_interface(&self) -> &str {
        &self.host_if
    }

    /// The namespace side veth interface (`pgn<hex>`, lives in the namespace).
    pub fn ns_interface(&self) -> &str {
        &self.ns_if
    }

    /// MAC address of the namespace-side veth (masscan's `--router-mac`).
    pub fn target_mac(&self) -> &str {
        &self.target_mac
    }

    /// The namespace name (`pglab-<pid>-<n>`).
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The state of every port.
    pub fn truth(&self) -> &GroundTruth {
        &self.truth
    }

    /// The SYN drop probability in effect (0 unless the profile is lossy).
    pub fn loss_probability(&self) -> f64 {
        self.loss_probability
    }

    /// The greetings sent by open ports.
    pub fn greetings(&self) -> &BTreeMap<u16, Vec<u8>> {
        &self.greetings
    }

    /// The ICMP rate limit set in the namespace, in milliseconds (`None`:
    /// the kernel default).
    pub fn icmp_ratelimit_ms(&self) -> Option<u32> {
        self.icmp_ratelimit_ms
    }

    /// The delay line's configuration, if the host has one.
    pub fn delay_config(&self) -> Option<&DelayConfig> {
        self.resources.delay.as_ref().map(DelayLine::config)
    }

    /// The delay line's counters so far (final ones after
    /// [`LabHost::stop_delay`]); `None` without a delay line.
    pub fn delay_stats(&self) -> Option<DelayStats> {
        self.resources.delay.as_ref().map(DelayLine::stats)
    }

    /// The delay line, if the host has one.
    pub fn delay_line(&self) -> Option<&DelayLine> {
        self.resources.delay.as_ref()
    }

    /// Removes the delay line (rules, then thread; held packets are released
    /// at once) and returns its final counters; `None` without a delay line.
    /// Afterwards the host answers without delay, and [`LabHost::delay_stats`]
    /// keeps returning these final counters. Dropping the host does this too.
    pub fn stop_delay(&mut self) -> Option<DelayStats> {
        self.resources.delay.as_mut().map(DelayLine::stop)
    }

    /// `(program, pid)` of each UDP service daemon; empty without
    /// [`LabConfig::udp_services`]. The daemons are gone once the host is
    /// dropped.
    pub fn udp_service_pids(&self) -> Vec<(&'static str, u32)> {
        self.resources
            .services
            .as_ref()
            .map(Services::pids)
            .unwrap_or_default()
    }
}

impl Drop for LabHost {
    fn drop(&mut self) {
        self.resources.teardown();
    }
}

/// Moves the calling thread into the network namespace at `ns_path`
/// (`/var/run/netns/<name>`): every socket it creates afterwards belongs there.
pub(crate) fn enter_namespace(ns_path: &std::path::Path) -> Result<(), LabError> {
    let ns_file = std::fs::File::open(ns_path).map_err(|source| LabError::Io {
        context: format!("opening {}", ns_path.display()),
        source,
    })?;
    nix::sched::setns(&ns_file, nix::sched::CloneFlags::CLONE_NEWNET).map_err(|errno| {
        LabError::Io {
            context: format!("setns into {}", ns_path.display()),
            source: io::Error::from(errno),
        }
    })
}

/// Creates `pglab-<pid>-<counter>`, skipping names left over by a dead
/// process that had the same pid.
fn create_namespace() -> Result<(String, u32), LabError> {
    let pid = std::process::id();
    let mut last = None;
    for _ in 0..64 {
        let counter = COUNTER.fetch_add(1, Ordering::Relaxed);
        let name = format!("{NAMESPACE_PREFIX}{pid}-{counter}");
        match cmd::run(&["ip", "netns", "add", &name]) {
            Ok(_) => return Ok((name, counter)),
            Err(err) if cmd::is_already_exists(&err) => last = Some(err),
            Err(err) => return Err(err),
        }
    }
    Err(last.unwrap_or_else(|| LabError::InvalidConfig("no namespace name".to_owned())))
}

/// Picks a free /30 and creates the veth pair for it (both ends in the root
/// namespace for now).
fn create_veth(counter: u32) -> Result<Subnet, LabError> {
    // Another thread of this process could pick the same subnet between the
    // check and the creation; veth names (which encode the index) make
    // creation fail for other processes.
    let _guard = ALLOCATION
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let addresses = cmd::run(&["ip", "-o", "addr", "show"])?;
    let mut subnet = Subnet::new(candidate_index(std::process::id(), counter));
    const ATTEMPTS: u32 = 1024;
    for _ in 0..ATTEMPTS.min(u32::from(SUBNET_COUNT)) {
        let in_use = [
            format!("inet {}/", subnet.host_v4()),
            format!("inet {}/", subnet.ns_v4()),
            format!("inet6 {}/", subnet.host_v6()),
            format!("inet6 {}/", subnet.ns_v6()),
        ]
        .iter()
        .any(|needle| addresses.contains(needle.as_str()));
        if !in_use {
            let host_if = subnet.host_if();
            let ns_if = subnet.ns_if();
            match cmd::run(&[
                "ip", "link", "add", &host_if, "type", "veth", "peer", "name", &ns_if,
            ]) {
                Ok(_) => return Ok(subnet),
                Err(err) if cmd::is_already_exists(&err) => {}
                Err(err) => return Err(err),
            }
        }
        subnet = subnet.next();
    }
    Err(LabError::NoFreeSubnet { attempts: ATTEMPTS })
}

/// Moves the peer into the namespace and configures addresses and links.
fn configure_link(namespace: &str, subnet: Subnet) -> Result<(), LabError> {
    let host_if = subnet.host_if();
    let ns_if = subnet.ns_if();
    let host_v4 = format!("{}/30", subnet.host_v4());
    let ns_v4 = format!("{}/30", subnet.ns_v4());
    let host_v6 = format!("{}/64", subnet.host_v6());
    let ns_v6 = format!("{}/64", subnet.ns_v6());
    let steps: [&[&str]; 8] = [
        &["ip", "link", "set", &ns_if, "netns", namespace],
        &["ip", "addr", "add", &host_v4, "dev", &host_if],
        &[
            "ip", "-6", "addr", "add", &host_v6, "dev", &host_if, "nodad",
        ],
        &["ip", "link", "set", &host_if, "up"],
        &["ip", "-n", namespace, "link", "set", "lo", "up"],
        &["ip", "-n", namespace, "addr", "add", &ns_v4, "dev", &ns_if],
        &[
            "ip", "-n", namespace, "-6", "addr", "add", &ns_v6, "dev", &ns_if, "nodad",
        ],
        &["ip", "-n", namespace, "link", "set", &ns_if, "up"],
    ];
    for step in steps {
        cmd::run(step)?;
    }
    Ok(())
}

/// Sets the ICMP error rate limit of both address families inside `namespace`.
fn set_icmp_ratelimit(namespace: &str, ms: u32) -> Result<(), LabError> {
    for key in ["net.ipv4.icmp_ratelimit", "net.ipv6.icmp.ratelimit"] {
        let setting = format!("{key}={ms}");
        cmd::run(&["ip", "netns", "exec", namespace, "sysctl", "-w", &setting])?;
    }
    Ok(())
}

/// Reads the MAC address of `interface` inside `namespace`.
fn read_mac(namespace: &str, interface: &str) -> Result<String, LabError> {
    let args = [
        "ip", "-n", namespace, "-j", "link", "show", "dev", interface,
    ];
    let out = cmd::run(&args)?;
    let unexpected = |detail: &str| LabError::UnexpectedOutput {
        command: cmd::render(&args),
        detail: detail.to_owned(),
    };
    let json: serde_json::Value =
        serde_json::from_str(&out).map_err(|e| unexpected(&format!("not JSON: {e}")))?;
    json.get(0)
        .and_then(|link| link.get("address"))
        .and_then(serde_json::Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| unexpected("no \"address\" field"))
}

/// Connects from the root namespace until the host answers (accept or RST).
/// Probes `port` if given, else a port that is certainly closed.
fn wait_reachable(ip: IpAddr, port: Option<u16>) -> Result<(), LabError> {
    if !in_lab_range(ip) {
        // Cannot happen: every address comes from `Subnet`.
        return Err(LabError::InvalidConfig(format!(
            "refusing to probe {ip}: outside 198.18.0.0/15 and 2001:db8::/32"
        )));
    }
    // Without open ports there is no listener; port 9 is then closed for sure.
    let address = SocketAddr::new(ip, port.unwrap_or(9));
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        let error = match TcpStream::connect_timeout(&address, Duration::from_millis(500)) {
            Ok(_) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => return Ok(()),
            Err(e) => e,
        };
        if Instant::now() >= deadline {
            return Err(LabError::NotReachable {
                address,
                timeout: READY_TIMEOUT,
                last_error: error.to_string(),
            });
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Deletes `pglab-<pid>-*` namespaces whose process no longer runs (left over
/// by crashed runs). Returns the names removed.
pub fn clean_stale_namespaces() -> Result<Vec<String>, LabError> {
    let listing = cmd::run(&["ip", "netns", "list"])?;
    let mut removed = Vec::new();
    for name in listing.lines().filter_map(|l| l.split_whitespace().next()) {
        let Some(pid) = namespace_pid(name) else {
            continue;
        };
        if std::path::Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        cmd::run(&["ip", "netns", "del", name])?;
        removed.push(name.to_owned());
    }
    Ok(removed)
}

/// The pid part of a namespace name `pglab-<pid>-<n>`.
fn namespace_pid(name: &str) -> Option<u32> {
    let rest = name.strip_prefix(NAMESPACE_PREFIX)?;
    let (pid, counter) = rest.split_once('-')?;
    counter.parse::<u32>().ok()?;
    pid.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expected_open_and_lossy() {
        for profile in [Profile::Open, Profile::Lossy] {
            let truth = LabConfig::new(profile)
                .reject_ports([113])
                .validate()
                .expect("valid");
            assert_eq!(truth.expected(22), ExpectedState::Open);
            assert_eq!(truth.expected(65535), ExpectedState::Open);
            assert_eq!(truth.expected(113), ExpectedState::Closed);
            assert_eq!(truth.expected(23), ExpectedState::Closed);
            assert!(
                truth.reject.is_empty(),
                "reject ports only exist when firewalled"
            );
        }
    }

    #[test]
    fn expected_firewalled() {
        let truth = LabConfig::new(Profile::Firewalled)
            .validate()
            .expect("valid");
        assert_eq!(truth.open.len(), 17);
        assert_eq!(truth.reject.len(), 5);
        assert_eq!(truth.expected(1), ExpectedState::Open);
        assert_eq!(truth.expected(443), ExpectedState::Open);
        assert_eq!(truth.expected(113), ExpectedState::Closed);
        assert_eq!(truth.expected(54321), ExpectedState::Closed);
        assert_eq!(truth.expected(23), ExpectedState::Filtered);
        assert_eq!(truth.expected(0), ExpectedState::Filtered);
    }

    #[test]
    fn expected_udp_per_profile() {
        for profile in [Profile::Open, Profile::Lossy] {
            let truth = LabConfig::new(profile)
                .udp_services(true)
                .udp_reject_ports([1000])
                .validate()
                .expect("valid");
            assert_eq!(truth.udp_open, BTreeSet::from(UDP_SERVICE_PORTS));
            assert!(truth.udp_reject.is_empty(), "only firewalled rejects");
            for port in UDP_SERVICE_PORTS {
                assert_eq!(truth.expected_udp(port), ExpectedUdpState::Open);
            }
            assert_eq!(truth.expected_udp(1000), ExpectedUdpState::Closed);
            assert_eq!(truth.expected_udp(69), ExpectedUdpState::Closed);
            // TCP is untouched: 53 is closed like any non-open port.
            assert_eq!(truth.expected(53), ExpectedState::Closed);
        }
        let truth = LabConfig::new(Profile::Firewalled)
            .udp_services(true)
            .validate()
            .expect("valid");
        assert_eq!(truth.udp_reject, BTreeSet::from(DEFAULT_UDP_REJECT_PORTS));
        assert_eq!(truth.expected_udp(53), ExpectedUdpState::Open);
        assert_eq!(truth.expected_udp(123), ExpectedUdpState::Open);
        assert_eq!(truth.expected_udp(161), ExpectedUdpState::Open);
        assert_eq!(truth.expected_udp(1000), ExpectedUdpState::Closed);
        assert_eq!(truth.expected_udp(1001), ExpectedUdpState::Closed);
        assert_eq!(truth.expected_udp(69), ExpectedUdpState::OpenFiltered);
        assert_eq!(truth.expected_udp(113), ExpectedUdpState::OpenFiltered);
        assert_eq!(truth.expected(53), ExpectedState::Filtered);
        // Without services nothing is open over UDP.
        let truth = LabConfig::new(Profile::Open).validate().expect("valid");
        assert!(truth.udp_open.is_empty());
        assert_eq!(truth.expected_udp(53), ExpectedUdpState::Closed);
    }

    #[test]
    fn udp_truth_serializes() {
        assert_eq!(
            serde_json::to_string(&ExpectedUdpState::OpenFiltered).expect("serialize"),
            "\"open|filtered\""
        );
        assert_eq!(ExpectedUdpState::OpenFiltered.to_string(), "open|filtered");
        assert_eq!(ExpectedUdpState::Closed.to_string(), "closed");
        // Ground truth written before UDP existed still parses.
        let old = r#"{"profile":"open","open":[22],"reject":[]}"#;
        let truth: GroundTruth = serde_json::from_str(old).expect("parse");
        assert!(truth.udp_open.is_empty() && truth.udp_reject.is_empty());
    }

    #[test]
    fn defaults() {
        let open = LabConfig::new(Profile::Open);
        assert_eq!(open.open_ports, DEFAULT_OPEN_PORTS);
        assert!(open.reject_ports.is_empty());
        assert_eq!(open.loss_probability, 0.0);
        let lossy = LabConfig::new(Profile::Lossy);
        assert_eq!(lossy.loss_probability, DEFAULT_LOSS_PROBABILITY);
        let fw = LabConfig::new(Profile::Firewalled);
        assert_eq!(fw.reject_ports, DEFAULT_REJECT_PORTS);
        assert_eq!(LabConfig::default().profile, Profile::Open);
        assert!(!open.udp_services);
        assert!(open.udp_reject_ports.is_empty());
        assert_eq!(open.icmp_ratelimit_ms, None);
        assert_eq!(open.delay, None);
        let delayed =
            LabConfig::new(Profile::Open).delay(DelayConfig::new(Duration::from_millis(80)));
        assert_eq!(
            delayed.delay.map(|d| d.delay),
            Some(Duration::from_millis(80))
        );
        assert!(delayed.validate().is_ok());
        assert_eq!(fw.udp_reject_ports, DEFAULT_UDP_REJECT_PORTS);
        assert_eq!(
            LabConfig::new(Profile::Open)
                .icmp_ratelimit_ms(0)
                .icmp_ratelimit_ms,
            Some(0)
        );
    }

    #[test]
    fn invalid_configs() {
        let cases = [
            LabConfig::new(Profile::Open).open_ports([0, 22]),
            LabConfig::new(Profile::Firewalled).reject_ports([22]),
            LabConfig::new(Profile::Lossy).loss_probability(1.5),
            LabConfig::new(Profile::Lossy).loss_probability(f64::NAN),
            LabConfig::new(Profile::Open).greeting(23, b"hi".to_vec()),
            LabConfig::new(Profile::Firewalled).udp_reject_ports([0]),
            LabConfig::new(Profile::Firewalled)
                .udp_services(true)
                .udp_reject_ports([123]),
            LabConfig::new(Profile::Open)
                .open_ports([22, 53])
                .udp_services(true),
            LabConfig::new(Profile::Open).icmp_ratelimit_ms(u32::MAX),
            LabConfig::new(Profile::Open)
                .delay(DelayConfig::new(Duration::from_millis(5)).jitter(Duration::from_millis(6))),
            LabConfig::new(Profile::Open).delay(DelayConfig::new(Duration::ZERO).loss(2.0)),
        ];
        for config in cases {
            assert!(
                matches!(config.validate(), Err(LabError::InvalidConfig(_))),
                "{config:?} must be invalid"
            );
        }
    }

    #[test]
    fn profile_text_round_trip() {
        for profile in Profile::ALL {
            assert_eq!(profile.to_string().parse::<Profile>(), Ok(profile));
            let json = serde_json::to_string(&profile).expect("serialize");
            assert_eq!(json, format!("\"{profile}\""));
            assert_eq!(
                serde_json::from_str::<Profile>(&json).expect("parse"),
                profile
            );
        }
        assert_eq!("Firewalled".parse::<Profile>(), Ok(Profile::Firewalled));
        assert!("closed".parse::<Profile>().is_err());
        assert_eq!(
            serde_json::to_string(&ExpectedState::Filtered).expect("serialize"),
            "\"filtered\""
        );
    }

    #[test]
    fn namespace_pid_parsing() {
        assert_eq!(namespace_pid("pglab-1234-0"), Some(1234));
        assert_eq!(namespace_pid("pglab-1234-17"), Some(1234));
        assert_eq!(namespace_pid("pglab-x-1"), None);
        assert_eq!(namespace_pid("pglab-1234"), None);
        assert_eq!(namespace_pid("other-1234-1"), None);
    }
}
