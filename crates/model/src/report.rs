//! The result of a scan: per target how it resolved, per address every port's state.

use crate::{Evidence, PortState, Protocol, Reason};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::net::IpAddr;
use std::time::Duration;

/// How ports were probed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ScanMethod {
    /// Full TCP handshake through the operating system (unprivileged).
    Connect,
    /// Half-open: a raw SYN, the answer read from a raw socket (root or CAP_NET_RAW).
    Syn,
    /// No TCP port was asked for: UDP only.
    Udp,
}

impl ScanMethod {
    /// The name used in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            ScanMethod::Connect => "connect",
            ScanMethod::Syn => "syn",
            ScanMethod::Udp => "udp",
        }
    }
}

/// Whether the scan covered everything.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum ScanStatus {
    /// Every port of every resolvable address has a state.
    Completed,
    /// Something was left out.
    Incomplete,
}

/// One target as given.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct TargetReport {
    /// As the user wrote it.
    pub input: String,
    /// `ip`, `cidr` or `hostname`.
    pub kind: String,
    /// Addresses scanned for it (empty for a CIDR range: see `address_count`).
    #[cfg_attr(feature = "schema", schemars(with = "Vec<String>"))]
    pub addresses: Vec<IpAddr>,
    /// Number of addresses it stood for.
    pub address_count: u64,
    /// For a hostname: the CNAMEs followed, in order (empty when none).
    pub cname_chain: Vec<String>,
    /// Why it could not be scanned, or null.
    pub error: Option<String>,
}

/// The result for one port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortResult {
    /// Port number.
    pub port: u16,
    /// Protocol.
    pub protocol: Protocol,
    /// The conclusion.
    pub state: PortState,
    /// The observation behind it.
    pub reason: Reason,
    /// Round-trip time of the answer, in microseconds (none when nothing answered).
    pub rtt_us: Option<u32>,
    /// Probes sent for this port.
    pub attempts: u8,
    /// When the state was settled, in milliseconds after the scan started.
    pub at_ms: u32,
}

/// All results for one address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostReport {
    /// The target (as the user wrote it) this address came from.
    pub target: String,
    /// The name it was resolved from, if any.
    pub hostname: Option<String>,
    /// The address probed.
    pub ip: IpAddr,
    /// How many ports were to be probed.
    pub ports_requested: u32,
    /// Results, sorted by protocol then port; ports the scan did not reach are absent.
    pub ports: Vec<PortResult>,
    /// What answers on open ports, when detection ran (`--detect`), by protocol and port.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub services: Vec<DetectedService>,
    /// Set when the host answered on nearly every TCP port: such answers are a tarpit's,
    /// not services, and those ports are reported filtered with reason `tarpit`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tarpit: Option<TarpitEvidence>,
}

/// What service detection found on one open port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DetectedService {
    /// Port.
    pub port: u16,
    /// Protocol.
    pub protocol: Protocol,
    /// What answers there.
    #[serde(flatten)]
    pub detection: Detection,
}

/// Service detection on one port, with its evidence.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Detection {
    /// Service name (`ssh`, `http`, `redis`, ...), or null when nothing matched.
    pub service: Option<String>,
    /// Product, when the service tells it.
    pub product: Option<String>,
    /// Version, when the service tells it.
    pub version: Option<String>,
    /// Extra information, e.g. `no authentication`.
    pub info: Option<String>,
    /// CPE of the product.
    pub cpe: Option<String>,
    /// The probe whose answer matched.
    pub probe: Option<String>,
    /// True when only the service is known (a soft match).
    pub soft: bool,
    /// The answer the claim rests on: printable ASCII kept, other bytes as `\xNN`,
    /// at most 512 bytes of it. When nothing matched, the first answer received.
    pub evidence: Evidence,
    /// What a TLS handshake showed, when the port speaks TLS; absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsSummary>,
    /// What an HTTP request showed, when the port speaks HTTP (plain or inside TLS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<crate::http::HttpInfo>,
    /// What else inspection noticed, e.g. that STARTTLS is not offered.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// Known vulnerabilities of the product and version, when a vulnerability index was
    /// consulted; absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vulnerabilities: Option<crate::vulnerability::VulnerabilityReport>,
    /// The application behind an HTTP port and what it exposes, when the application
    /// checks ran; absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applications: Option<crate::application::ApplicationReport>,
}

/// Why a certificate failed verification. Written by its name (`expired`,
/// `not-yet-valid`, `untrusted-issuer`, `name-mismatch`, `self-signed`), or as the text
/// of any other failure.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CertFailure {
    /// The leaf's `notAfter` is in the past (or WebPKI found an expired certificate).
    Expired,
    /// The leaf's `notBefore` is in the future (or WebPKI found such a certificate).
    NotYetValid,
    /// The chain does not lead to a trusted root.
    UntrustedIssuer,
    /// The leaf is not valid for the requested server name.
    NameMismatch,
    /// The leaf is self-signed and is not itself a trust root.
    SelfSigned,
    /// Anything else (bad signature, bad encoding, oversized chain, ...).
    Other(String),
}

impl CertFailure {
    /// The name written in reports.
    pub fn as_str(&self) -> &str {
        match self {
            CertFailure::Expired => "expired",
            CertFailure::NotYetValid => "not-yet-valid",
            CertFailure::UntrustedIssuer => "untrusted-issuer",
            CertFailure::NameMismatch => "name-mismatch",
            CertFailure::SelfSigned => "self-signed",
            CertFailure::Other(text) => text,
        }
    }

    /// The failure a name stands for; any other text is [`CertFailure::Other`].
    pub fn from_name(name: &str) -> CertFailure {
        match name {
            "expired" => CertFailure::Expired,
            "not-yet-valid" => CertFailure::NotYetValid,
            "untrusted-issuer" => CertFailure::UntrustedIssuer,
            "name-mismatch" => CertFailure::NameMismatch,
            "self-signed" => CertFailure::SelfSigned,
            other => CertFailure::Other(other.to_string()),
        }
    }
}

impl std::fmt::Display for CertFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for CertFailure {
    fn serialize<S: serde::Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        ser.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for CertFailure {
    fn deserialize<D: serde::Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        Ok(CertFailure::from_name(&String::deserialize(de)?))
    }
}

crate::evidence::schema_as_string!(CertFailure);

/// A TLS handshake on a port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct TlsSummary {
    /// How TLS was reached: absent for TLS from the first byte, else the plaintext
    /// upgrade used (`smtp`, `imap`, `pop3`, `ftp`, `postgresql`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub starttls: Option<String>,
    /// `TLSv1.3` or `TLSv1.2`.
    pub protocol: String,
    /// Negotiated cipher suite.
    pub cipher_suite: String,
    /// Negotiated ALPN protocol, if any.
    #[serde(default)]
    pub alpn: Option<String>,
    /// The name sent as SNI and checked against the certificate; null for a bare address.
    #[serde(default)]
    pub server_name: Option<String>,
    /// Leaf certificate subject.
    pub subject: String,
    /// Leaf certificate issuer.
    pub issuer: String,
    /// DNS names of the leaf.
    pub san_dns: Vec<String>,
    /// IP addresses of the leaf.
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(with = "Vec<String>"))]
    pub san_ips: Vec<IpAddr>,
    /// Leaf start of validity, RFC 3339.
    #[serde(default)]
    pub not_before: Option<String>,
    /// Leaf expiry, RFC 3339.
    pub not_after: Option<String>,
    /// Days until expiry, negative once expired.
    pub days_left: Option<i64>,
    /// The leaf is issued by itself.
    pub self_signed: bool,
    /// Certificates the server sent.
    #[serde(default)]
    pub chain_len: usize,
    /// SHA-256 of the leaf certificate (DER), lower-case hex.
    #[serde(default)]
    pub fingerprint_sha256: String,
    /// The chain and the name verified.
    pub valid: bool,
    /// Each reason it did not: `expired`, `not-yet-valid`, `untrusted-issuer`,
    /// `name-mismatch`, `self-signed`, or other text.
    pub reasons: Vec<CertFailure>,
}

impl TlsSummary {
    /// The reasons, joined by `, `.
    pub fn reasons_text(&self) -> String {
        let names: Vec<&str> = self.reasons.iter().map(CertFailure::as_str).collect();
        names.join(", ")
    }
}

impl HostReport {
    /// What detection found on a port, if it ran there.
    pub fn service_on(&self, protocol: Protocol, port: u16) -> Option<&Detection> {
        self.services
            .iter()
            .find(|s| s.protocol == protocol && s.port == port)
            .map(|s| &s.detection)
    }
}

/// Evidence that a host is a tarpit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct TarpitEvidence {
    /// TCP ports that answered as if open.
    pub answered: u32,
    /// TCP ports probed.
    pub probed: u32,
    /// Ports of a random sample checked with a full connect.
    pub sampled: u32,
    /// Of those, how many completed the handshake.
    pub handshakes: u32,
}

impl HostReport {
    /// The open TCP ports, in the order scanned.
    pub fn open_tcp_ports(&self) -> Vec<u16> {
        self.ports
            .iter()
            .filter(|p| p.protocol == Protocol::Tcp && p.state == PortState::Open)
            .map(|p| p.port)
            .collect()
    }

    /// Number of ports in a state.
    pub fn count(&self, state: PortState) -> usize {
        self.ports.iter().filter(|p| p.state == state).count()
    }
}

/// One scan, start to finish.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScanReport {
    /// How ports were probed.
    pub method: ScanMethod,
    /// When the scan started.
    pub started_at: DateTime<Utc>,
    /// When it ended.
    pub finished_at: DateTime<Utc>,
    /// Whether it covered everything.
    pub status: ScanStatus,
    /// Why not, when it did not.
    pub incomplete_reasons: Vec<String>,
    /// Every target given, in order.
    pub targets: Vec<TargetReport>,
    /// Every address scanned, in target order.
    pub hosts: Vec<HostReport>,
    /// The network of each address (from imported tables) and, with `--enrich`, the DNS
    /// records and registration of each host name; absent when there was none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enrichment: Option<crate::enrichment::Enrichment>,
}

/// Counts over the whole scan.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Summary {
    /// Targets given.
    pub targets: usize,
    /// Targets that could not be scanned.
    pub targets_failed: usize,
    /// Addresses scanned.
    pub hosts: usize,
    /// (address, port) pairs requested.
    pub ports_requested: u64,
    /// Pairs with a state.
    pub ports_scanned: u64,
    /// Open.
    pub open: u64,
    /// Closed.
    pub closed: u64,
    /// Filtered.
    pub filtered: u64,
    /// Open|filtered.
    pub open_filtered: u64,
    /// Requested pairs not reached.
    pub not_scanned: u64,
    /// Probes sent to learn the states: every first try and retry of every scanned pair
    /// (connect attempts, SYNs, UDP datagrams; detection's requests are not counted).
    pub probes_sent: u64,
}

impl ScanReport {
    /// Wall time of the scan.
    pub fn duration(&self) -> Duration {
        (self.finished_at - self.started_at)
            .to_std()
            .unwrap_or_default()
    }

    /// Counts of targets, hosts and port states.
    pub fn summary(&self) -> Summary {
        let mut s = Summary {
            targets: self.targets.len(),
            targets_failed: self.targets.iter().filter(|t| t.error.is_some()).count(),
            hosts: self.hosts.len(),
            ..Summary::default()
        };
        for host in &self.hosts {
            s.ports_requested += u64::from(host.ports_requested);
            s.ports_scanned += host.ports.len() as u64;
            for port in &host.ports {
                s.probes_sent += u64::from(port.attempts);
                match port.state {
                    PortState::Open => s.open += 1,
                    PortState::Closed => s.closed += 1,
                    PortState::Filtered => s.filtered += 1,
                    PortState::OpenFiltered => s.open_filtered += 1,
                }
            }
        }
        s.not_scanned = s.ports_requested.saturating_sub(s.ports_scanned);
        s
    }
}
