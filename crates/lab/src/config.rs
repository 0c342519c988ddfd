//! What a lab host is made of: its firewall profile, listeners and expected states.

use crate::*;

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
    pub(crate) fn validate(&self) -> Result<GroundTruth, LabError> {
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
    pub(crate) fn hidden_tcp_ports(&self) -> BTreeSet<u16> {
        if self.udp_services {
            BTreeSet::from([services::DNS_PORT])
        } else {
            BTreeSet::new()
        }
    }

    pub(crate) fn effective_loss(&self) -> f64 {
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
