//! Lab networks: one namespace that answers for a whole IPv4 prefix.
//!
//! A [`LabNetwork`] is a single `pglab-*` namespace joined to the root
//! namespace by a veth /30 (like a [`LabHost`](crate::LabHost)) that owns
//! every address of a prefix of 198.19.0.0/16 (up to a /20, 4096 hosts)
//! through `ip route add local <prefix> dev lo`; the root namespace reaches
//! the prefix through one route via the namespace's veth address. Each
//! address is a "host" of one [`HostKind`] with its own open and reject
//! ports, all derived deterministically from a seed ([`NetworkTruth`]), and
//! one nftables ruleset inside the namespace gives every address its
//! behaviour, while one dual-stack listener per port that is open anywhere
//! accepts for all of them.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::str::FromStr;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::addr::Subnet;
use crate::listener;
use crate::rng::{SplitMix64, mix64};
use crate::{
    ALLOCATION, ExpectedState, LabError, Resources, cmd, configure_link, create_namespace,
    create_veth, in_lab_range, read_mac,
};
use crate::{DelayConfig, DelayLine, DelayStats};

/// portgate's own 100 most exposed TCP ports (`top100`, from the model crate's
/// port-set data), sorted: the default [`NetworkConfig::ports`].
pub fn common_ports() -> Vec<u16> {
    let mut ports = portgate_model::port_sets()
        .top100(portgate_model::Protocol::Tcp)
        .to_vec();
    ports.sort_unstable();
    ports
}

/// Largest number of hosts (addresses) of a network: a /20.
pub const MAX_NETWORK_HOSTS: u32 = 4096;

/// Most open ports an `open` or `firewalled` host gets (it gets 0 to this many).
pub const MAX_OPEN_PER_HOST: usize = 8;

/// Most reject ports a `firewalled` host gets (it gets 0 to this many).
pub const MAX_REJECT_PER_HOST: usize = 3;

/// Default share of [`HostKind::Dark`] hosts.
pub const DEFAULT_DARK_SHARE: f64 = 0.5;
/// Default share of [`HostKind::RstOnly`] hosts.
pub const DEFAULT_RST_ONLY_SHARE: f64 = 0.15;
/// Default share of [`HostKind::Firewalled`] hosts.
pub const DEFAULT_FIREWALLED_SHARE: f64 = 0.2;
/// Default share of [`HostKind::Open`] hosts.
pub const DEFAULT_OPEN_SHARE: f64 = 0.15;

/// Networks are allocated inside this /16 (LabHost /30s live in 198.18.0.0/16).
const NETWORK_RANGE: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 0);

/// How long [`LabNetwork::start`] waits for its readiness probes to pass.
const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// Timeout of one readiness connect.
const PROBE_TIMEOUT: Duration = Duration::from_millis(300);

/// Tools a network needs in `PATH`.
const NETWORK_TOOLS: [&str; 2] = ["ip", "nft"];

/// Name of the nftables table inside the namespace.
const NFT_TABLE: &str = "portgate_lab_net";

/// Routes shorter than this are not treated as occupying part of the
/// network range (a default route, or a /8 towards some VPN).
const MIN_CONFLICT_LEN: u8 = 15;

/// How one address of a network behaves, on every TCP port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HostKind {
    /// No answer at all: every packet to it is dropped (every port filtered).
    Dark,
    /// Every port closed: every TCP SYN answered with RST.
    RstOnly,
    /// Its open ports accept, its reject ports answer RST, every other
    /// packet is silently dropped (filtered).
    Firewalled,
    /// Its open ports accept, every other port answers RST.
    Open,
}

impl HostKind {
    /// All kinds.
    pub const ALL: [HostKind; 4] = [
        HostKind::Dark,
        HostKind::RstOnly,
        HostKind::Firewalled,
        HostKind::Open,
    ];

    /// The snake_case name (`dark`, `rst_only`, `firewalled`, `open`).
    pub fn as_str(self) -> &'static str {
        match self {
            HostKind::Dark => "dark",
            HostKind::RstOnly => "rst_only",
            HostKind::Firewalled => "firewalled",
            HostKind::Open => "open",
        }
    }
}

impl fmt::Display for HostKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An IPv4 prefix inside 198.18.0.0/15 (the lab range), e.g. `198.19.16.0/20`.
/// Serialised as that text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct NetworkPrefix {
    network: Ipv4Addr,
    len: u8,
}

impl NetworkPrefix {
    /// The prefix `network/len`; `network` must be its first address
    /// (no host bits set), `len` at least 15, and the prefix inside
    /// 198.18.0.0/15.
    pub fn new(network: Ipv4Addr, len: u8) -> Result<Self, LabError> {
        if !(MIN_CONFLICT_LEN..=32).contains(&len) {
            return Err(LabError::InvalidConfig(format!(
                "prefix length {len} is not within 15..=32"
            )));
        }
        if u32::from(network) & !mask(len) != 0 {
            return Err(LabError::InvalidConfig(format!(
                "{network}/{len} has host bits set"
            )));
        }
        if !in_lab_range(IpAddr::V4(network)) {
            return Err(LabError::InvalidConfig(format!(
                "{network}/{len} is outside 198.18.0.0/15"
            )));
        }
        Ok(Self { network, len })
    }

    /// The first address.
    pub fn network(self) -> Ipv4Addr {
        self.network
    }

    /// The prefix length.
    pub fn len(self) -> u8 {
        self.len
    }

    /// Never true (a prefix has at least one address); for clippy's
    /// `len_without_is_empty`.
    pub fn is_empty(self) -> bool {
        false
    }

    /// Number of addresses.
    pub fn size(self) -> u32 {
        // len >= 15, so the shift is at most 17.
        1u32 << (32 - u32::from(self.len))
    }

    /// Whether `ip` lies inside the prefix.
    pub fn contains(self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & mask(self.len) == u32::from(self.network)
    }

    /// The address at `offset` from the first one (`None` past the end).
    pub fn nth(self, offset: u32) -> Option<Ipv4Addr> {
        (offset < self.size()).then(|| Ipv4Addr::from(u32::from(self.network) + offset))
    }

    /// Every address, in order.
    pub fn addresses(self) -> impl Iterator<Item = Ipv4Addr> {
        let base = u32::from(self.network);
        (0..self.size()).map(move |offset| Ipv4Addr::from(base + offset))
    }

    /// The offset of `ip` from the first address (`None` outside); the
    /// truth of an address depends on this position only.
    pub fn offset_of(self, ip: Ipv4Addr) -> Option<u32> {
        self.contains(ip)
            .then(|| u32::from(ip) - u32::from(self.network))
    }
}

impl fmt::Display for NetworkPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.len)
    }
}

impl FromStr for NetworkPrefix {
    type Err = LabError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = || LabError::InvalidConfig(format!("`{s}` is not an IPv4 prefix"));
        let (network, len) = s.trim().split_once('/').ok_or_else(invalid)?;
        let network: Ipv4Addr = network.parse().map_err(|_| invalid())?;
        let len: u8 = len.parse().map_err(|_| invalid())?;
        Self::new(network, len)
    }
}

impl TryFrom<String> for NetworkPrefix {
    type Error = LabError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        value.parse()
    }
}

impl From<NetworkPrefix> for String {
    fn from(prefix: NetworkPrefix) -> Self {
        prefix.to_string()
    }
}

/// The netmask of a prefix length (`len` 0..=32).
fn mask(len: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0)
}

/// What to build. Start from [`NetworkConfig::new`] and adjust with the
/// setters.
///
/// The host kinds are drawn with probabilities proportional to the four
/// shares (they need not add up to 1).
#[derive(Debug, Clone, PartialEq)]
pub struct NetworkConfig {
    /// Number of addresses, a power of two in `1..=4096` (a /32 to a /20).
    pub hosts: u32,
    /// The ports whose states vary between hosts (open and reject ports are
    /// drawn from these). Sorted and deduplicated on use; port 0 is invalid.
    pub ports: Vec<u16>,
    /// Seed of the per-host draws.
    pub seed: u64,
    /// Share of [`HostKind::Dark`] hosts.
    pub dark: f64,
    /// Share of [`HostKind::RstOnly`] hosts.
    pub rst_only: f64,
    /// Share of [`HostKind::Firewalled`] hosts.
    pub firewalled: f64,
    /// Share of [`HostKind::Open`] hosts.
    pub open: f64,
    /// A delay line on every packet that reaches the network (`None`: none,
    /// the default): every host is then that far away.
    pub delay: Option<DelayConfig>,
}

impl NetworkConfig {
    /// 4096 hosts, [`common_ports`], seed 0, and the default shares
    /// ([`DEFAULT_DARK_SHARE`], [`DEFAULT_RST_ONLY_SHARE`],
    /// [`DEFAULT_FIREWALLED_SHARE`], [`DEFAULT_OPEN_SHARE`]).
    pub fn new() -> Self {
        Self {
            hosts: MAX_NETWORK_HOSTS,
            ports: common_ports(),
            seed: 0,
            dark: DEFAULT_DARK_SHARE,
            rst_only: DEFAULT_RST_ONLY_SHARE,
            firewalled: DEFAULT_FIREWALLED_SHARE,
            open: DEFAULT_OPEN_SHARE,
            delay: None,
        }
    }

    /// Puts every host behind a delay line ([`DelayConfig`]), installed once
    /// the network answers.
    #[must_use]
    pub fn delay(mut self, delay: DelayConfig) -> Self {
        self.delay = Some(delay);
        self
    }

    /// Sets the number of hosts (a power of two in `1..=4096`).
    #[must_use]
    pub fn hosts(mut self, hosts: u32) -> Self {
        self.hosts = hosts;
        self
    }

    /// Replaces the varying ports.
    #[must_use]
    pub fn ports(mut self, ports: impl IntoIterator<Item = u16>) -> Self {
        self.ports = ports.into_iter().collect();
        self
    }

    /// Sets the seed.
    #[must_use]
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Sets the share of dark hosts.
    #[must_use]
    pub fn dark(mut self, share: f64) -> Self {
        self.dark = share;
        self
    }

    /// Sets the share of RST-only hosts.
    #[must_use]
    pub fn rst_only(mut self, share: f64) -> Self {
        self.rst_only = share;
        self
    }

    /// Sets the share of firewalled hosts.
    #[must_use]
    pub fn firewalled(mut self, share: f64) -> Self {
        self.firewalled = share;
        self
    }

    /// Sets the share of open hosts.
    #[must_use]
    pub fn open(mut self, share: f64) -> Self {
        self.open = share;
        self
    }

    /// The prefix length for [`NetworkConfig::hosts`].
    fn prefix_len(&self) -> u8 {
        // hosts is a power of two <= 4096 after validation: at most 12.
        32 - u8::try_from(self.hosts.trailing_zeros()).unwrap_or(0)
    }

    /// Checks the configuration; returns the sorted, deduplicated ports.
    fn validate(&self) -> Result<Vec<u16>, LabError> {
        if let Some(delay) = &self.delay {
            delay.validate()?;
        }
        if !self.hosts.is_power_of_two() || self.hosts > MAX_NETWORK_HOSTS {
            return Err(LabError::InvalidConfig(format!(
                "hosts must be a power of two from 1 to {MAX_NETWORK_HOSTS}, not {}",
                self.hosts
            )));
        }
        let ports: BTreeSet<u16> = self.ports.iter().copied().collect();
        if ports.contains(&0) {
            return Err(LabError::InvalidConfig("port 0 cannot be used".to_owned()));
        }
        let shares = self.shares();
        if let Some((kind, share)) = HostKind::ALL
            .iter()
            .zip(shares)
            .find(|(_, share)| !(share.is_finite() && *share >= 0.0))
        {
            return Err(LabError::InvalidConfig(format!(
                "share of {kind} hosts is {share}, not a finite number >= 0"
            )));
        }
        let total: f64 = shares.iter().sum();
        if !(total.is_finite() && total > 0.0) {
            return Err(LabError::InvalidConfig(format!(
                "the host kind shares add up to {total}; at least one must be positive"
            )));
        }
        Ok(ports.into_iter().collect())
    }

    /// The shares in [`HostKind::ALL`] order.
    fn shares(&self) -> [f64; 4] {
        [self.dark, self.rst_only, self.firewalled, self.open]
    }
}

impl Default for NetworkConfig {
    fn default() -> Self {
        Self::new()
    }
}

/// The exact behaviour of one address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostTruth {
    /// Its kind.
    pub kind: HostKind,
    /// Ports that accept (open and firewalled hosts only; at most
    /// [`MAX_OPEN_PER_HOST`]).
    pub open: BTreeSet<u16>,
    /// Ports that answer RST through a firewall rule (firewalled hosts only;
    /// at most [`MAX_REJECT_PER_HOST`], disjoint from `open`).
    pub reject: BTreeSet<u16>,
}

impl HostTruth {
    /// What a correct scanner reports for TCP `port` of this host.
    ///
    /// Open ports are open. Every other port: dark, filtered; rst_only and
    /// open, closed; firewalled, closed for its reject ports and filtered
    /// for the rest. Ports outside [`NetworkConfig::ports`] follow the same
    /// rule.
    pub fn expected(&self, port: u16) -> ExpectedState {
        if self.open.contains(&port) {
            return ExpectedState::Open;
        }
        match self.kind {
            HostKind::Dark => ExpectedState::Filtered,
            HostKind::RstOnly | HostKind::Open => ExpectedState::Closed,
            HostKind::Firewalled if self.reject.contains(&port) => ExpectedState::Closed,
            HostKind::Firewalled => ExpectedState::Filtered,
        }
    }
}

/// Number of hosts of each kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KindCounts {
    /// Dark hosts.
    pub dark: u32,
    /// RST-only hosts.
    pub rst_only: u32,
    /// Firewalled hosts.
    pub firewalled: u32,
    /// Open hosts.
    pub open: u32,
}

impl KindCounts {
    /// The count of `kind`.
    pub fn get(&self, kind: HostKind) -> u32 {
        match kind {
            HostKind::Dark => self.dark,
            HostKind::RstOnly => self.rst_only,
            HostKind::Firewalled => self.firewalled,
            HostKind::Open => self.open,
        }
    }

    fn get_mut(&mut self, kind: HostKind) -> &mut u32 {
        match kind {
            HostKind::Dark => &mut self.dark,
            HostKind::RstOnly => &mut self.rst_only,
            HostKind::Firewalled => &mut self.firewalled,
            HostKind::Open => &mut self.open,
        }
    }
}

/// The ground truth of a whole network: every address's kind, open ports
/// and reject ports. Serialises to JSON as
/// `{"prefix":"198.19.16.0/20","seed":1,"ports":[...],"hosts":{"198.19.16.0":{"kind":"dark","open":[],"reject":[]},...}}`.
///
/// It depends only on the configuration and the position of each address
/// in the prefix (not on which prefix was allocated): two networks with the
/// same configuration have the same truth host by host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkTruth {
    /// The prefix.
    pub prefix: NetworkPrefix,
    /// The seed it was derived from.
    pub seed: u64,
    /// The varying ports (sorted).
    pub ports: Vec<u16>,
    /// Every address of the prefix.
    pub hosts: BTreeMap<Ipv4Addr, HostTruth>,
}

impl NetworkTruth {
    /// Derives the truth `config` gives the addresses of `prefix` (which must
    /// have `config.hosts` addresses). Pure: touches nothing.
    ///
    /// Host number `i` of the prefix draws from a SplitMix64 generator
    /// seeded with `seed ^ mix(i)`: its kind (probabilities proportional to
    /// the shares), then for open and firewalled hosts 0 to 8 open ports,
    /// and for firewalled hosts 0 to 3 reject ports, distinct, from the
    /// sorted ports.
    pub fn derive(config: &NetworkConfig, prefix: NetworkPrefix) -> Result<Self, LabError> {
        let ports = config.validate()?;
        if prefix.size() != config.hosts {
            return Err(LabError::InvalidConfig(format!(
                "{prefix} has {} addresses, the configuration {} hosts",
                prefix.size(),
                config.hosts
            )));
        }
        let shares = config.shares();
        let hosts = prefix
            .addresses()
            .zip(0u32..)
            .map(|(ip, offset)| (ip, derive_host(config.seed, offset, &shares, &ports)))
            .collect();
        Ok(Self {
            prefix,
            seed: config.seed,
            ports,
            hosts,
        })
    }

    /// The truth of `ip` (`None` outside the prefix).
    pub fn host(&self, ip: Ipv4Addr) -> Option<&HostTruth> {
        self.hosts.get(&ip)
    }

    /// What a correct scanner reports for `ip`, TCP `port`. Addresses
    /// outside the prefix are not part of the network: filtered.
    pub fn expected(&self, ip: Ipv4Addr, port: u16) -> ExpectedState {
        self.host(ip)
            .map_or(ExpectedState::Filtered, |host| host.expected(port))
    }

    /// Number of hosts of each kind.
    pub fn counts(&self) -> KindCounts {
        let mut counts = KindCounts::default();
        for host in self.hosts.values() {
            *counts.get_mut(host.kind) += 1;
        }
        counts
    }

    /// Every port open on at least one address (each gets a listener).
    pub fn listening_ports(&self) -> BTreeSet<u16> {
        self.hosts
            .values()
            .flat_map(|host| host.open.iter().copied())
            .collect()
    }

    /// Every `(address, port)` that is open, in address order.
    pub fn open_services(&self) -> impl Iterator<Item = (Ipv4Addr, u16)> + '_ {
        self.hosts
            .iter()
            .flat_map(|(ip, host)| host.open.iter().map(move |port| (*ip, *port)))
    }

    /// The nftables ruleset (`nft -f` input) that gives every address its
    /// behaviour.
    fn nft_ruleset(&self) -> String {
        let mut open = Vec::new();
        let mut reject = Vec::new();
        let mut dark = Vec::new();
        let mut firewalled = Vec::new();
        for (ip, host) in &self.hosts {
            open.extend(host.open.iter().map(|port| format!("{ip} . {port}")));
            reject.extend(host.reject.iter().map(|port| format!("{ip} . {port}")));
            match host.kind {
                HostKind::Dark => dark.push(ip.to_string()),
                HostKind::Firewalled => firewalled.push(ip.to_string()),
                HostKind::RstOnly | HostKind::Open => {}
            }
        }
        let mut text = format!("table ip {NFT_TABLE} {{\n");
        for (name, key, elements) in [
            ("open_services", "ipv4_addr . inet_service", &open),
            ("reject_services", "ipv4_addr . inet_service", &reject),
            ("dark_hosts", "ipv4_addr", &dark),
            ("firewalled_hosts", "ipv4_addr", &firewalled),
        ] {
            text.push_str(&format!("\tset {name} {{\n\t\ttype {key}\n"));
            if !elements.is_empty() {
                text.push_str("\t\telements = {\n");
                for chunk in elements.chunks(16) {
                    text.push_str("\t\t\t");
                    text.push_str(&chunk.join(", "));
                    text.push_str(",\n");
                }
                text.push_str("\t\t}\n");
            }
            text.push_str("\t}\n");
        }
        text.push_str(&format!(
            "\tchain input {{\n\
             \t\ttype filter hook input priority filter; policy accept;\n\
             \t\tip daddr != {prefix} accept\n\
             \t\tct state established,related accept\n\
             \t\tip daddr . tcp dport @open_services accept\n\
             \t\tip daddr @dark_hosts drop\n\
             \t\tip daddr . tcp dport @reject_services reject with tcp reset\n\
             \t\tip daddr @firewalled_hosts drop\n\
             \t\tmeta l4proto tcp reject with tcp reset\n\
             \t}}\n}}\n",
            prefix = self.prefix
        ));
        text
    }
}

/// The truth of host number `offset`; `ports` sorted and distinct.
fn derive_host(seed: u64, offset: u32, shares: &[f64; 4], ports: &[u16]) -> HostTruth {
    // "PGLABNET": keeps offset 0 from mixing to 0.
    let mut rng = SplitMix64(seed ^ mix64(u64::from(offset) ^ 0x5047_4c41_424e_4554));
    let total: f64 = shares.iter().sum();
    let mut point = rng.unit() * total;
    let mut kind = HostKind::ALL[0];
    for (candidate, share) in HostKind::ALL.into_iter().zip(shares) {
        // Skip zero shares, so rounding can never pick a kind at 0.
        if *share <= 0.0 {
            continue;
        }
        kind = candidate;
        if point < *share {
            break;
        }
        point -= share;
    }
    let (n_open, n_reject) = match kind {
        HostKind::Dark | HostKind::RstOnly => (0, 0),
        HostKind::Open => (rng.below(MAX_OPEN_PER_HOST + 1), 0),
        HostKind::Firewalled => (
            rng.below(MAX_OPEN_PER_HOST + 1),
            rng.below(MAX_REJECT_PER_HOST + 1),
        ),
    };
    // Partial Fisher-Yates: the first n_open + n_reject of a shuffle.
    let mut indices: Vec<usize> = (0..ports.len()).collect();
    let wanted = (n_open + n_reject).min(ports.len());
    for i in 0..wanted {
        let j = i + rng.below(ports.len() - i);
        indices.swap(i, j);
    }
    let n_open = n_open.min(wanted);
    HostTruth {
        kind,
        open: indices[..n_open].iter().map(|&i| ports[i]).collect(),
        reject: indices[n_open..wanted].iter().map(|&i| ports[i]).collect(),
    }
}

/// For tests: `Some(reason)` when a [`LabNetwork`] cannot run here (not
/// root, or `ip` or `nft` missing; the Debian packages are `iproute2` and
/// `nftables`).
pub fn network_skip_reason() -> Option<String> {
    let euid = nix::unistd::geteuid();
    if !euid.is_root() {
        return Some(format!(
            "not root (euid {euid}); the lab needs CAP_NET_ADMIN to create network namespaces"
        ));
    }
    NETWORK_TOOLS
        .iter()
        .find(|tool| !cmd::tool_available(tool))
        .map(|tool| format!("required tool `{tool}` not found in PATH"))
}

/// The root-namespace route of a network (deleted at teardown).
#[derive(Debug)]
struct Route {
    prefix: String,
    gateway: String,
    host_if: String,
}

/// Everything a network created, undone in reverse order by
/// [`NetworkResources::teardown`].
#[derive(Debug, Default)]
struct NetworkResources {
    route: Option<Route>,
    inner: Resources,
}

impl NetworkResources {
    /// Stops the listeners, deletes the root-namespace route, the veth and
    /// the namespace. Idempotent; never panics.
    fn teardown(&mut self) {
        if let Some(mut listener) = self.inner.listener.take() {
            listener.stop();
        }
        if let Some(route) = self.route.take() {
            let args = [
                "ip",
                "route",
                "del",
                &route.prefix,
                "via",
                &route.gateway,
                "dev",
                &route.host_if,
            ];
            match cmd::run(&args) {
                Ok(_) => {}
                // Already gone (e.g. with its veth).
                Err(LabError::Command { stderr, .. })
                    if stderr.contains("No such process") || stderr.contains("Cannot find") => {}
                Err(err) => {
                    eprintln!(
                        "portgate-lab: warning: could not delete route {}: {err}",
                        route.prefix
                    );
                }
            }
        }
        self.inner.teardown();
    }
}

impl Drop for NetworkResources {
    fn drop(&mut self) {
        self.teardown();
    }
}

/// A lab network: one namespace answering for every address of a prefix of
/// 198.19.0.0/16, each address behaving as its [`HostTruth`] says.
///
/// Scan it from the root namespace (from [`LabNetwork::host_ipv4`], the
/// root side of its veth: the namespace has no other route back). Dropping
/// it stops the listeners, deletes the root-namespace route, the veth and
/// the namespace.
#[derive(Debug)]
pub struct LabNetwork {
    resources: NetworkResources,
    namespace: String,
    subnet: Subnet,
    host_if: String,
    ns_if: String,
    target_mac: String,
    listening: Vec<u16>,
    truth: NetworkTruth,
}

impl LabNetwork {
    /// Creates the namespace and its veth /30, allocates a free prefix of
    /// 198.19.0.0/16 with `config.hosts` addresses, routes it from the root
    /// namespace to the namespace, starts one listener per port open on any
    /// address, loads the nftables ruleset, and returns once a known-open
    /// `(address, port)` accepts and a known-closed one refuses.
    ///
    /// On failure everything created so far is removed again.
    pub fn start(config: NetworkConfig) -> Result<LabNetwork, LabError> {
        config.validate()?;
        if !nix::unistd::geteuid().is_root() {
            return Err(LabError::NotRoot);
        }
        if let Some(tool) = NETWORK_TOOLS.iter().find(|t| !cmd::tool_available(t)) {
            return Err(LabError::ToolMissing {
                tool: (*tool).to_owned(),
            });
        }

        let mut resources = NetworkResources::default();
        let (namespace, counter) = create_namespace()?;
        resources.inner.namespace = Some(namespace.clone());
        let subnet = create_veth(counter)?;
        let host_if = subnet.host_if();
        let ns_if = subnet.ns_if();
        resources.inner.host_if = Some(host_if.clone());
        configure_link(&namespace, subnet)?;
        let target_mac = read_mac(&namespace, &ns_if)?;

        let prefix = allocate_prefix(config.prefix_len(), counter, subnet, &mut resources)?;
        let prefix_text = prefix.to_string();
        cmd::run(&[
            "ip",
            "-n",
            &namespace,
            "route",
            "add",
            "local",
            &prefix_text,
            "dev",
            "lo",
        ])?;

        let truth = NetworkTruth::derive(&config, prefix)?;
        let listening: Vec<u16> = truth.listening_ports().into_iter().collect();
        resources.inner.listener = Some(listener::spawn(
            &namespace,
            listening.clone(),
            BTreeMap::new(),
        )?);
        cmd::run_with_input(
            &["ip", "netns", "exec", &namespace, "nft", "-f", "-"],
            Some(&truth.nft_ruleset()),
        )?;
        wait_ready(&truth, &listening)?;
        if let Some(delay) = config.delay {
            resources.inner.delay = Some(DelayLine::start(&namespace, &ns_if, delay)?);
        }

        Ok(LabNetwork {
            resources,
            namespace,
            subnet,
            host_if,
            ns_if,
            target_mac,
            listening,
            truth,
        })
    }

    /// The prefix whose every address is a host.
    pub fn prefix(&self) -> NetworkPrefix {
        self.truth.prefix
    }

    /// The ground truth of every address.
    pub fn truth(&self) -> &NetworkTruth {
        &self.truth
    }

    /// What a correct scanner reports for `ip`, TCP `port` (filtered for
    /// addresses outside [`LabNetwork::prefix`]).
    pub fn expected(&self, ip: Ipv4Addr, port: u16) -> ExpectedState {
        self.truth.expected(ip, port)
    }

    /// Number of hosts of each kind.
    pub fn counts(&self) -> KindCounts {
        self.truth.counts()
    }

    /// The delay line's counters so far (`None` without one).
    pub fn delay_stats(&self) -> Option<DelayStats> {
        self.resources.inner.delay.as_ref().map(DelayLine::stats)
    }

    /// The ports with a listener (open on at least one address), sorted.
    pub fn listening_ports(&self) -> &[u16] {
        &self.listening
    }

    /// The namespace name (`pglab-<pid>-<n>`).
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The root-namespace side veth interface (`pgh<hex>`); the route to the
    /// prefix goes through it.
    pub fn host_interface(&self) -> &str {
        &self.host_if
    }

    /// The namespace side veth interface (`pgn<hex>`, lives in the namespace).
    pub fn ns_interface(&self) -> &str {
        &self.ns_if
    }

    /// The root-namespace side IPv4 address of the veth (scan source).
    pub fn host_ipv4(&self) -> Ipv4Addr {
        self.subnet.host_v4()
    }

    /// The namespace side IPv4 address of the veth: the next hop of the
    /// root namespace's route to the prefix.
    pub fn gateway_ipv4(&self) -> Ipv4Addr {
        self.subnet.ns_v4()
    }

    /// MAC address of the namespace-side veth (masscan's `--router-mac`).
    pub fn target_mac(&self) -> &str {
        &self.target_mac
    }
}

impl Drop for LabNetwork {
    fn drop(&mut self) {
        self.resources.teardown();
    }
}

/// An IPv4 prefix as `(network, len)` numbers.
type RawPrefix = (u32, u8);

/// Parses `a.b.c.d/len` or `a.b.c.d` (a /32).
fn parse_raw_prefix(token: &str) -> Option<RawPrefix> {
    let (addr, len) = match token.split_once('/') {
        Some((addr, len)) => (addr, len.parse().ok()?),
        None => (token, 32),
    };
    if len > 32 {
        return None;
    }
    let addr: Ipv4Addr = addr.parse().ok()?;
    Some((u32::from(addr) & mask(len), len))
}

fn overlaps(a: RawPrefix, b: RawPrefix) -> bool {
    let m = mask(a.1.min(b.1));
    a.0 & m == b.0 & m
}

/// The IPv4 prefixes in use according to `ip -o -4 addr show` (each
/// address, as a /32) and `ip -4 route show table all` (each destination),
/// leaving out routes shorter than a /15 (default routes and the like,
/// which a more specific lab route does not take anything from).
fn used_prefixes(addresses: &str, routes: &str) -> Vec<RawPrefix> {
    const ROUTE_TYPES: [&str; 10] = [
        "unicast",
        "local",
        "broadcast",
        "multicast",
        "anycast",
        "unreachable",
        "prohibit",
        "blackhole",
        "throw",
        "nat",
    ];
    let mut used = Vec::new();
    for line in addresses.lines() {
        let mut tokens = line.split_whitespace();
        if tokens.any(|t| t == "inet")
            && let Some((addr, _)) = tokens.next().and_then(|t| t.split_once('/'))
            && let Some(prefix) = parse_raw_prefix(addr)
        {
            used.push(prefix);
        }
    }
    for line in routes.lines() {
        let mut tokens = line.split_whitespace().peekable();
        if tokens.peek().is_some_and(|t| ROUTE_TYPES.contains(t)) {
            tokens.next();
        }
        if let Some(prefix) = tokens.next().and_then(parse_raw_prefix)
            && prefix.1 >= MIN_CONFLICT_LEN
        {
            used.push(prefix);
        }
    }
    used
}

/// Picks a /`len` of 198.19.0.0/16 that no address or route of the root
/// namespace overlaps, and claims it by adding the root-namespace route to
/// it via the namespace's veth address (recorded in `resources`).
fn allocate_prefix(
    len: u8,
    counter: u32,
    subnet: Subnet,
    resources: &mut NetworkResources,
) -> Result<NetworkPrefix, LabError> {
    let _guard = ALLOCATION
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let addresses = cmd::run(&["ip", "-o", "-4", "addr", "show"])?;
    let routes = cmd::run(&["ip", "-4", "route", "show", "table", "all"])?;
    let used = used_prefixes(&addresses, &routes);
    let host_if = subnet.host_if();
    let gateway = subnet.ns_v4().to_string();
    let source = subnet.host_v4().to_string();
    // len in 20..=32: 2^(len-16) blocks of the /16.
    let blocks: u32 = 1 << (u32::from(len) - 16);
    let step = 1u32 << (32 - u32::from(len));
    let mut hasher = DefaultHasher::new();
    (std::process::id(), counter, "network").hash(&mut hasher);
    let start = u32::try_from(hasher.finish() % u64::from(blocks)).unwrap_or(0);
    let attempts = blocks.min(4096);
    for i in 0..attempts {
        let block = (start + i) % blocks;
        let network = Ipv4Addr::from(u32::from(NETWORK_RANGE) + block * step);
        let prefix = NetworkPrefix::new(network, len)?;
        let raw = (u32::from(network), len);
        if used.iter().any(|u| overlaps(*u, raw)) {
            continue;
        }
        let text = prefix.to_string();
        match cmd::run(&[
            "ip", "route", "add", &text, "via", &gateway, "dev", &host_if, "src", &source,
        ]) {
            Ok(_) => {
                resources.route = Some(Route {
                    prefix: text,
                    gateway,
                    host_if,
                });
                return Ok(prefix);
            }
            // Another process claimed it since the listing.
            Err(err) if cmd::is_already_exists(&err) => {}
            Err(err) => return Err(err),
        }
    }
    Err(LabError::NoFreePrefix { len, attempts })
}

/// What a connect from the root namespace observed.
fn observe(address: SocketAddr) -> Result<ExpectedState, io::Error> {
    match TcpStream::connect_timeout(&address, PROBE_TIMEOUT) {
        Ok(_) => Ok(ExpectedState::Open),
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => Ok(ExpectedState::Closed),
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
            ) =>
        {
            Ok(ExpectedState::Filtered)
        }
        Err(e) => Err(e),
    }
}

/// The readiness probes: one open `(address, port)` (if any address has an
/// open port) and one closed one (an rst_only address if there is one).
fn readiness_probes(truth: &NetworkTruth, listening: &[u16]) -> Vec<(SocketAddr, ExpectedState)> {
    let mut probes = Vec::new();
    if let Some((ip, port)) = truth.open_services().next() {
        probes.push((SocketAddr::from((ip, port)), ExpectedState::Open));
    }
    // A port with a listener proves the final reject rule works; 9 (discard)
    // is closed on an rst_only host whatever the ports.
    let ports: Vec<u16> = listening.iter().copied().chain([9]).collect();
    let closed = |kind: HostKind| {
        truth
            .hosts
            .iter()
            .filter(move |(_, host)| host.kind == kind)
            .find_map(|(ip, host)| {
                ports
                    .iter()
                    .find(|port| host.expected(**port) == ExpectedState::Closed)
                    .map(|port| SocketAddr::from((*ip, *port)))
            })
    };
    if let Some(address) = closed(HostKind::RstOnly)
        .or_else(|| closed(HostKind::Open))
        .or_else(|| {
            // Firewalled: its reject ports.
            truth
                .hosts
                .iter()
                .find_map(|(ip, host)| host.reject.first().map(|p| SocketAddr::from((*ip, *p))))
        })
    {
        probes.push((address, ExpectedState::Closed));
    }
    probes
}

/// Connects from the root namespace until every readiness probe observes
/// its expected state.
fn wait_ready(truth: &NetworkTruth, listening: &[u16]) -> Result<(), LabError> {
    let probes = readiness_probes(truth, listening);
    for (address, _) in &probes {
        let in_prefix = matches!(address.ip(), IpAddr::V4(v4) if truth.prefix.contains(v4));
        if !in_prefix || !in_lab_range(address.ip()) {
            // Cannot happen: every probe address comes from the truth.
            return Err(LabError::InvalidConfig(format!(
                "refusing to probe {address}: outside {}",
                truth.prefix
            )));
        }
    }
    let deadline = Instant::now() + READY_TIMEOUT;
    let mut pending = probes;
    loop {
        let mut last_error = None;
        pending.retain(|(address, expected)| match observe(*address) {
            Ok(observed) if observed == *expected => false,
            Ok(observed) => {
                last_error = Some((*address, format!("expected {expected}, saw {observed}")));
                true
            }
            Err(e) => {
                last_error = Some((*address, format!("expected {expected}: {e}")));
                true
            }
        });
        let Some((address, last_error)) = last_error else {
            return Ok(());
        };
        if Instant::now() >= deadline {
            return Err(LabError::NotReachable {
                address,
                timeout: READY_TIMEOUT,
                last_error,
            });
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prefix(text: &str) -> NetworkPrefix {
        text.parse().expect("valid prefix")
    }

    fn truth(config: &NetworkConfig) -> NetworkTruth {
        let len = config.prefix_len();
        let network = Ipv4Addr::new(198, 19, 16, 0);
        NetworkTruth::derive(config, NetworkPrefix::new(network, len).expect("prefix"))
            .expect("valid config")
    }

    #[test]
    fn common_ports_are_100_distinct_sorted_nonzero() {
        let ports = common_ports();
        assert_eq!(ports.len(), 100);
        assert!(ports.windows(2).all(|w| w[0] < w[1]));
        assert!(!ports.contains(&0));
        for port in [22, 80, 443, 3389, 8080] {
            assert!(ports.contains(&port), "{port}");
        }
    }

    #[test]
    fn prefix_math_and_text() {
        let p = prefix("198.19.16.0/20");
        assert_eq!(p.size(), 4096);
        assert_eq!(p.to_string(), "198.19.16.0/20");
        assert!(p.contains(Ipv4Addr::new(198, 19, 31, 255)));
        assert!(!p.contains(Ipv4Addr::new(198, 19, 32, 0)));
        assert!(!p.contains(Ipv4Addr::new(198, 19, 15, 255)));
        assert_eq!(p.nth(4095), Some(Ipv4Addr::new(198, 19, 31, 255)));
        assert_eq!(p.nth(4096), None);
        assert_eq!(p.addresses().count(), 4096);
        assert_eq!(p.offset_of(Ipv4Addr::new(198, 19, 17, 1)), Some(257));
        assert_eq!(prefix("198.19.0.7/32").size(), 1);
        for bad in [
            "198.19.16.1/20",
            "10.0.0.0/20",
            "198.16.0.0/14",
            "198.19.0.0/33",
            "198.19.0.0",
            "x/20",
        ] {
            assert!(bad.parse::<NetworkPrefix>().is_err(), "{bad}");
        }
        let json = serde_json::to_string(&p).expect("serialize");
        assert_eq!(json, "\"198.19.16.0/20\"");
        assert_eq!(
            serde_json::from_str::<NetworkPrefix>(&json).expect("parse"),
            p
        );
        assert!(serde_json::from_str::<NetworkPrefix>("\"10.0.0.0/8\"").is_err());
    }

    #[test]
    fn config_validation() {
        assert_eq!(NetworkConfig::new().prefix_len(), 20);
        assert_eq!(NetworkConfig::new().hosts(1).prefix_len(), 32);
        assert_eq!(NetworkConfig::new().hosts(256).prefix_len(), 24);
        let bad = [
            NetworkConfig::new().hosts(0),
            NetworkConfig::new().hosts(3),
            NetworkConfig::new().hosts(8192),
            NetworkConfig::new().ports([0, 22]),
            NetworkConfig::new().dark(-0.1),
            NetworkConfig::new().open(f64::NAN),
            NetworkConfig::new().rst_only(f64::INFINITY),
            NetworkConfig::new()
                .dark(0.0)
                .rst_only(0.0)
                .firewalled(0.0)
                .open(0.0),
        ];
        for config in bad {
            assert!(
                matches!(config.validate(), Err(LabError::InvalidConfig(_))),
                "{config:?} must be invalid"
            );
        }
        let ports = NetworkConfig::new()
            .ports([80, 22, 80])
            .validate()
            .expect("valid");
        assert_eq!(ports, [22, 80]);
        let config = NetworkConfig::new().hosts(256);
        assert!(
            NetworkTruth::derive(&config, prefix("198.19.0.0/20")).is_err(),
            "size mismatch"
        );
    }

    #[test]
    fn derivation_is_deterministic_and_seed_dependent() {
        let config = NetworkConfig::new().seed(42);
        let a = truth(&config);
        let b = truth(&config);
        assert_eq!(a, b);
        let c = truth(&config.clone().seed(43));
        assert_ne!(a.hosts, c.hosts);
        // Per position, not per absolute address: another prefix, same hosts.
        let moved = NetworkTruth::derive(&config, prefix("198.19.48.0/20")).expect("derive");
        assert!(a.hosts.values().eq(moved.hosts.values()));
        // The port order given does not matter.
        let mut reversed = common_ports();
        reversed.reverse();
        assert_eq!(truth(&config.clone().ports(reversed)), a);
        // A fixed point, so the derivation does not change by accident.
        let first = &a.hosts[&Ipv4Addr::new(198, 19, 16, 0)];
        let again = derive_host(42, 0, &config.shares(), &common_ports());
        assert_eq!(*first, again);
    }

    #[test]
    fn hosts_follow_their_kind() {
        let t = truth(&NetworkConfig::new().seed(7));
        let ports: BTreeSet<u16> = common_ports().into_iter().collect();
        let mut open_sizes = BTreeSet::new();
        let mut reject_sizes = BTreeSet::new();
        for host in t.hosts.values() {
            assert!(host.open.is_subset(&ports));
            assert!(host.reject.is_subset(&ports));
            assert!(host.open.is_disjoint(&host.reject));
            assert!(host.open.len() <= MAX_OPEN_PER_HOST);
            assert!(host.reject.len() <= MAX_REJECT_PER_HOST);
            match host.kind {
                HostKind::Dark | HostKind::RstOnly => {
                    assert!(host.open.is_empty() && host.reject.is_empty());
                }
                HostKind::Open => {
                    assert!(host.reject.is_empty());
                    open_sizes.insert(host.open.len());
                }
                HostKind::Firewalled => {
                    open_sizes.insert(host.open.len());
                    reject_sizes.insert(host.reject.len());
                }
            }
        }
        // Over 4096 hosts every count from 0 to the maximum occurs.
        assert_eq!(open_sizes, (0..=MAX_OPEN_PER_HOST).collect());
        assert_eq!(reject_sizes, (0..=MAX_REJECT_PER_HOST).collect());
    }

    #[test]
    fn counts_match_shares() {
        let t = truth(&NetworkConfig::new().seed(1));
        let counts = t.counts();
        assert_eq!(
            counts.dark + counts.rst_only + counts.firewalled + counts.open,
            4096
        );
        for (kind, share) in HostKind::ALL.into_iter().zip(NetworkConfig::new().shares()) {
            let expected = share * 4096.0;
            let got = f64::from(counts.get(kind));
            assert!(
                (got - expected).abs() < 150.0,
                "{kind}: {got} vs {expected}"
            );
        }
        // A zero share never occurs.
        let t = truth(&NetworkConfig::new().seed(1).dark(0.0).firewalled(0.0));
        assert_eq!(t.counts().dark, 0);
        assert_eq!(t.counts().firewalled, 0);
        // Only one kind.
        let t = truth(
            &NetworkConfig::new()
                .hosts(16)
                .dark(0.0)
                .rst_only(0.0)
                .open(0.0),
        );
        assert_eq!(t.counts().firewalled, 16);
    }

    #[test]
    fn expected_per_kind() {
        let host = |kind, open: &[u16], reject: &[u16]| HostTruth {
            kind,
            open: open.iter().copied().collect(),
            reject: reject.iter().copied().collect(),
        };
        let dark = host(HostKind::Dark, &[], &[]);
        assert_eq!(dark.expected(22), ExpectedState::Filtered);
        let rst = host(HostKind::RstOnly, &[], &[]);
        assert_eq!(rst.expected(22), ExpectedState::Closed);
        assert_eq!(rst.expected(12), ExpectedState::Closed);
        let open = host(HostKind::Open, &[80], &[]);
        assert_eq!(open.expected(80), ExpectedState::Open);
        assert_eq!(open.expected(22), ExpectedState::Closed);
        assert_eq!(open.expected(12), ExpectedState::Closed);
        let fw = host(HostKind::Firewalled, &[80], &[113]);
        assert_eq!(fw.expected(80), ExpectedState::Open);
        assert_eq!(fw.expected(113), ExpectedState::Closed);
        assert_eq!(fw.expected(22), ExpectedState::Filtered);
        assert_eq!(fw.expected(12), ExpectedState::Filtered);

        let t = truth(&NetworkConfig::new().hosts(256).seed(3));
        assert_eq!(
            t.expected(Ipv4Addr::new(198, 19, 17, 0), 22),
            ExpectedState::Filtered,
            "outside the prefix"
        );
        for (ip, host) in &t.hosts {
            for port in [1, 22, 80, 443, 65535] {
                assert_eq!(t.expected(*ip, port), host.expected(port));
            }
        }
    }

    #[test]
    fn truth_json_round_trip() {
        let t = truth(&NetworkConfig::new().hosts(16).seed(5));
        let json = serde_json::to_string(&t).expect("serialize");
        assert!(json.starts_with("{\"prefix\":\"198.19.16.0/28\",\"seed\":5,"));
        assert!(json.contains("\"198.19.16.15\":{\"kind\":"));
        let back: NetworkTruth = serde_json::from_str(&json).expect("parse");
        assert_eq!(back, t);
        assert_eq!(
            serde_json::to_string(&HostKind::RstOnly).expect("serialize"),
            "\"rst_only\""
        );
    }

    #[test]
    fn ruleset_lists_every_element() {
        let t = truth(&NetworkConfig::new().seed(9));
        let rules = t.nft_ruleset();
        let counts = t.counts();
        let open_elements: usize = t.hosts.values().map(|h| h.open.len()).sum();
        let reject_elements: usize = t.hosts.values().map(|h| h.reject.len()).sum();
        // "a.b.c.d . port" elements in the two concatenated sets, plus two
        // set types and two rules with " . ".
        assert_eq!(
            rules.matches(" . ").count(),
            open_elements + reject_elements + 4
        );
        let (ip, host) = t
            .hosts
            .iter()
            .find(|(_, h)| h.kind == HostKind::Firewalled && !h.reject.is_empty())
            .expect("a firewalled host with reject ports");
        let port = host.reject.first().expect("non-empty");
        assert!(rules.contains(&format!("{ip} . {port}")));
        assert!(rules.contains("type ipv4_addr . inet_service"));
        assert!(rules.contains("ip daddr != 198.19.16.0/20 accept"));
        assert!(rules.contains("meta l4proto tcp reject with tcp reset"));
        let dark_listed = t
            .hosts
            .iter()
            .filter(|(_, h)| h.kind == HostKind::Dark)
            .all(|(ip, _)| rules.contains(&format!("{ip},")));
        assert!(dark_listed);
        assert!(counts.dark > 0);
        // Empty sets have no elements clause (nft rejects `elements = { }`).
        let only_rst = truth(
            &NetworkConfig::new()
                .hosts(4)
                .dark(0.0)
                .firewalled(0.0)
                .open(0.0),
        );
        let rules = only_rst.nft_ruleset();
        assert!(!rules.contains("elements"));
        assert!(only_rst.listening_ports().is_empty());
    }

    #[test]
    fn readiness_probes_pick_open_and_closed() {
        let t = truth(&NetworkConfig::new().hosts(256).seed(11));
        let listening: Vec<u16> = t.listening_ports().into_iter().collect();
        let probes = readiness_probes(&t, &listening);
        assert_eq!(probes.len(), 2);
        for (address, expected) in probes {
            let IpAddr::V4(ip) = address.ip() else {
                panic!("IPv4 only")
            };
            assert_eq!(t.expected(ip, address.port()), expected);
        }
        // Nothing open and nothing closed: no probes.
        let dark = truth(
            &NetworkConfig::new()
                .hosts(4)
                .rst_only(0.0)
                .firewalled(0.0)
                .open(0.0),
        );
        assert!(readiness_probes(&dark, &[]).is_empty());
    }

    #[test]
    fn used_prefixes_parse_addresses_and_routes() {
        let addresses = "1: lo    inet 127.0.0.1/8 scope host lo\\       valid_lft forever\n\
            5: pgh1581    inet 198.19.86.5/30 scope global pgh1581\\ valid_lft forever\n";
        let routes = "default via 192.0.2.1 dev eth0\n\
            192.0.2.0/24 dev eth0 proto kernel scope link src 192.0.2.2\n\
            198.19.32.0/20 via 198.18.1.2 dev pgh40\n\
            10.0.0.0/8 via 192.0.2.9 dev eth0\n\
            local 198.19.86.5 dev pgh1581 table local proto kernel scope host src 198.19.86.5\n\
            broadcast 127.255.255.255 dev lo table local proto kernel scope link src 127.0.0.1\n";
        let used = used_prefixes(addresses, routes);
        let ip = |a, b, c, d| u32::from(Ipv4Addr::new(a, b, c, d));
        assert!(used.contains(&(ip(127, 0, 0, 1), 32)));
        assert!(used.contains(&(ip(198, 19, 86, 5), 32)));
        assert!(used.contains(&(ip(198, 19, 32, 0), 20)));
        assert!(used.contains(&(ip(192, 0, 2, 0), 24)));
        assert!(used.contains(&(ip(127, 255, 255, 255), 32)));
        assert!(!used.iter().any(|p| p.1 < MIN_CONFLICT_LEN), "{used:?}");
        let free = |a, b, c, d, len| !used.iter().any(|u| overlaps(*u, (ip(a, b, c, d), len)));
        assert!(!free(198, 19, 32, 0, 20));
        assert!(!free(198, 19, 40, 0, 24));
        assert!(!free(198, 19, 80, 0, 20), "holds 198.19.86.5");
        assert!(free(198, 19, 0, 0, 20));
        assert!(free(198, 19, 48, 0, 20));
        assert_eq!(
            parse_raw_prefix("198.19.1.7/24"),
            Some((ip(198, 19, 1, 0), 24))
        );
        assert_eq!(parse_raw_prefix("default"), None);
        assert_eq!(parse_raw_prefix("198.19.1.7/40"), None);
    }

    #[test]
    fn rng_is_uniform_enough() {
        let mut rng = SplitMix64(123);
        let mut buckets = [0u32; 9];
        for _ in 0..90_000 {
            buckets[rng.below(9)] += 1;
        }
        assert!(
            buckets.iter().all(|&b| (9_000..11_000).contains(&b)),
            "{buckets:?}"
        );
        assert!((0..1000).all(|_| (0.0..1.0).contains(&rng.unit())));
    }
}
