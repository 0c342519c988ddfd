//! What changed on one port between scans: the drift engine's findings
//! (`portgate_policy::drift` decides them; check, diff and history report them).

use crate::Protocol;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::IpAddr;

/// What changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "kebab-case")]
pub enum ChangeKind {
    /// The port is open and was not (or was not seen before).
    NewlyOpen,
    /// An open port now answers closed: did the service die?
    OpenToClosed,
    /// An open port is now filtered (or open|filtered): a firewall in the way?
    OpenToFiltered,
    /// Another state change of a port that was not open (closed ↔ filtered).
    StateChanged,
    /// The detected service changed.
    ServiceChanged,
    /// The detected product changed.
    ProductChanged,
    /// The detected version changed.
    VersionChanged,
    /// The certificate's issuer changed.
    CertificateIssuerChanged,
    /// The certificate's expiry changed (a renewal, or a replacement).
    CertificateExpiryChanged,
    /// Another certificate (its SHA-256 fingerprint changed), or TLS appeared or went away.
    CertificateChanged,
    /// The certificate used to verify and no longer does, or the reverse.
    TlsVerdictChanged,
}

impl ChangeKind {
    /// Every kind, in report order.
    pub const ALL: [ChangeKind; 11] = [
        ChangeKind::NewlyOpen,
        ChangeKind::OpenToClosed,
        ChangeKind::OpenToFiltered,
        ChangeKind::StateChanged,
        ChangeKind::ServiceChanged,
        ChangeKind::ProductChanged,
        ChangeKind::VersionChanged,
        ChangeKind::CertificateIssuerChanged,
        ChangeKind::CertificateExpiryChanged,
        ChangeKind::CertificateChanged,
        ChangeKind::TlsVerdictChanged,
    ];

    /// The stable identifier, as in JSON.
    pub fn id(self) -> &'static str {
        match self {
            ChangeKind::NewlyOpen => "newly-open",
            ChangeKind::OpenToClosed => "open-to-closed",
            ChangeKind::OpenToFiltered => "open-to-filtered",
            ChangeKind::StateChanged => "state-changed",
            ChangeKind::ServiceChanged => "service-changed",
            ChangeKind::ProductChanged => "product-changed",
            ChangeKind::VersionChanged => "version-changed",
            ChangeKind::CertificateIssuerChanged => "certificate-issuer-changed",
            ChangeKind::CertificateExpiryChanged => "certificate-expiry-changed",
            ChangeKind::CertificateChanged => "certificate-changed",
            ChangeKind::TlsVerdictChanged => "tls-verdict-changed",
        }
    }
}

impl fmt::Display for ChangeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id())
    }
}

/// Whether a change is confirmed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(tag = "status", rename_all = "lowercase")]
pub enum ChangeStatus {
    /// Seen in as many consecutive scans as its kind needs.
    Confirmed,
    /// Seen in `seen` consecutive scans (the newest ones) of the `needed`.
    Pending {
        /// Consecutive observations so far.
        seen: u32,
        /// Observations that confirm it.
        needed: u32,
    },
}

/// One change of one port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    /// What changed.
    pub kind: ChangeKind,
    /// Confirmed or pending.
    #[serde(flatten)]
    pub status: ChangeStatus,
    /// The target as given in the newest scan that saw the port.
    pub target: String,
    /// The address.
    pub ip: IpAddr,
    /// The protocol.
    pub protocol: Protocol,
    /// The port.
    pub port: u16,
    /// The value before (`None`: not observed, or absent, e.g. no version).
    pub before: Option<String>,
    /// The value after.
    pub after: Option<String>,
    /// Index (in the history given) of the scan where the new value was first seen.
    pub first_seen: usize,
    /// Index of the scan that confirmed it; for a pending change, the newest scan.
    pub at: usize,
}

impl Change {
    /// Whether it is confirmed.
    pub fn is_confirmed(&self) -> bool {
        self.status == ChangeStatus::Confirmed
    }

    /// `198.18.0.1:22/tcp` or `[2001:db8::1]:22/tcp`.
    pub fn endpoint(&self) -> String {
        match self.ip {
            IpAddr::V6(ip) => format!("[{ip}]:{}/{}", self.port, self.protocol),
            IpAddr::V4(ip) => format!("{ip}:{}/{}", self.port, self.protocol),
        }
    }
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let show = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".to_string());
        write!(
            f,
            "{} {}: {} → {}",
            self.endpoint(),
            self.kind,
            show(&self.before),
            show(&self.after)
        )?;
        if let ChangeStatus::Pending { seen, needed } = self.status {
            write!(f, " (pending: seen {seen} of {needed})")?;
        }
        Ok(())
    }
}
