//! What the history keeps of scans and checks: ids, scan records, per-address snapshots
//! (the points of a target's timeline) and check records.

use crate::{Change, Finding, PortState, Protocol, Reason};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Defines an id: a number the database assigns, shown and parsed as that number.
macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
        )]
        #[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
        #[serde(transparent)]
        pub struct $name(pub i64);

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.fmt(f)
            }
        }

        impl std::str::FromStr for $name {
            type Err = String;

            fn from_str(text: &str) -> Result<Self, Self::Err> {
                text.trim()
                    .parse::<i64>()
                    .ok()
                    .filter(|n| *n > 0)
                    .map($name)
                    .ok_or_else(|| format!("\"{text}\" is not a {} id (a positive number)", $what))
            }
        }
    };
}

id_type!(
    /// The id of a stored scan.
    ScanId,
    "scan"
);
id_type!(
    /// The id of a stored check.
    CheckId,
    "check"
);

/// Where a stored scan stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum StoredStatus {
    /// Begun and not finalised: still going, or its writer died on another host.
    Running,
    /// Finalised; covered everything asked.
    Completed,
    /// Finalised with parts left out, or interrupted before it was finalised.
    Incomplete,
}

impl StoredStatus {
    /// `running`, `completed` or `incomplete`.
    pub fn as_str(self) -> &'static str {
        match self {
            StoredStatus::Running => "running",
            StoredStatus::Completed => "completed",
            StoredStatus::Incomplete => "incomplete",
        }
    }

    /// The status named `text` as [`StoredStatus::as_str`] writes it.
    pub fn from_name(text: &str) -> Option<StoredStatus> {
        match text {
            "running" => Some(StoredStatus::Running),
            "completed" => Some(StoredStatus::Completed),
            "incomplete" => Some(StoredStatus::Incomplete),
            _ => None,
        }
    }
}

/// One stored scan, without its ports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ScanRecord {
    /// Its id.
    pub id: ScanId,
    /// Where it stands.
    pub status: StoredStatus,
    /// When it started.
    #[cfg_attr(feature = "schema", schemars(with = "String"))]
    pub started_at: DateTime<Utc>,
    /// When it was finalised.
    #[cfg_attr(feature = "schema", schemars(with = "Option<String>"))]
    pub finished_at: Option<DateTime<Utc>>,
    /// How ports were probed.
    pub method: Option<String>,
    /// The targets as given.
    pub targets: Vec<String>,
    /// The manifest's git revision.
    pub manifest_revision: Option<String>,
    /// Why it is incomplete.
    pub incomplete_reasons: Vec<String>,
    /// Addresses scanned.
    pub hosts: i64,
    /// Ports with a state.
    pub ports_scanned: i64,
    /// Open ports.
    pub open: i64,
    /// Closed ports.
    pub closed: i64,
    /// Filtered ports.
    pub filtered: i64,
    /// Open|filtered ports.
    pub open_filtered: i64,
}

/// A port with a row of its own (open, or not in its host's most common state).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct StoredPort {
    /// `tcp` or `udp`.
    pub protocol: Protocol,
    /// Port number.
    pub port: u16,
    /// `open`, `closed`, `filtered` or `open|filtered`.
    pub state: PortState,
    /// The observation behind the state.
    pub reason: Reason,
}

/// What detection found on a port, as stored.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct StoredService {
    /// `tcp` or `udp`.
    pub protocol: Protocol,
    /// Port number.
    pub port: u16,
    /// Service name.
    pub service: Option<String>,
    /// Product.
    pub product: Option<String>,
    /// Version.
    pub version: Option<String>,
    /// TLS issuer of the leaf certificate.
    pub tls_issuer: Option<String>,
    /// Leaf expiry (RFC 3339).
    pub tls_not_after: Option<String>,
    /// SHA-256 of the leaf certificate.
    pub tls_fingerprint_sha256: Option<String>,
    /// Whether the certificate verified.
    pub tls_valid: Option<bool>,
    /// Why it did not.
    pub tls_reasons: Vec<String>,
    /// HTTP status.
    pub http_status: Option<u16>,
    /// HTTP `Server` header.
    pub http_server: Option<String>,
    /// HTML title.
    pub http_title: Option<String>,
}

/// One address of a target in one scan: a point of the target's timeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct HostSnapshot {
    /// The scan.
    pub scan: ScanRecord,
    /// The target as given.
    pub target: String,
    /// The name the address came from.
    pub hostname: Option<String>,
    /// The address.
    pub ip: String,
    /// Ports asked for.
    pub ports_requested: i64,
    /// Open ports.
    pub open: i64,
    /// Closed ports.
    pub closed: i64,
    /// Filtered ports.
    pub filtered: i64,
    /// Open|filtered ports.
    pub open_filtered: i64,
    /// Whether the host looked like a tarpit.
    pub tarpit: bool,
    /// The state of the TCP ports that have no row (only counted), if any.
    pub unlisted_tcp: Option<PortState>,
    /// The state of the UDP ports that have no row (only counted), if any.
    pub unlisted_udp: Option<PortState>,
    /// Every port with a row: open ones, and those not in the state of [`HostSnapshot::unlisted_tcp`]
    /// (TCP) or [`HostSnapshot::unlisted_udp`] (UDP).
    pub ports: Vec<StoredPort>,
    /// What detection found.
    pub services: Vec<StoredService>,
}

/// A stored check's summary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckRecord {
    /// Its id.
    pub id: CheckId,
    /// The scan it judged.
    pub scan_id: ScanId,
    /// When it was stored.
    pub created_at: DateTime<Utc>,
    /// The manifest's git revision.
    pub manifest_revision: Option<String>,
    /// The findings, in the order given.
    pub findings: Vec<Finding>,
}

/// A target's timeline: one snapshot per address per scan, newest first, and the scans
/// of it that are still running or were interrupted.
#[derive(Debug, Clone)]
pub struct Timeline {
    /// Finalised scans, per address.
    pub snapshots: Vec<HostSnapshot>,
    /// Per snapshot, what changed since the same address's previous snapshot in this
    /// timeline (`policy::drift`, one scan to the next); None for its first.
    pub changes: Vec<Option<Vec<Change>>>,
    /// Scans not finalised.
    pub unfinished: Vec<ScanRecord>,
}

/// What was compared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DiffSpan {
    /// Two scans, every difference.
    Scans {
        /// The earlier scan.
        before: ScanId,
        /// The later scan.
        after: ScanId,
    },
    /// A target's scans since a moment, with flap control.
    Since {
        /// The target.
        target: String,
        /// The start of the period.
        since: DateTime<Utc>,
        /// Whether the first scan is the last one before the period (the baseline).
        baseline: bool,
    },
}

/// The changes between scans.
#[derive(Debug, Clone)]
pub struct Diffed {
    /// What was compared.
    pub span: DiffSpan,
    /// The scans, oldest first: a change's `first_seen` and `at` index this list.
    pub scans: Vec<(ScanId, DateTime<Utc>)>,
    /// The changes (`policy::drift`).
    pub changes: Vec<Change>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_read_print_and_serialise_as_their_numbers() {
        assert_eq!("42".parse::<ScanId>(), Ok(ScanId(42)));
        assert_eq!(" 7 ".parse::<CheckId>(), Ok(CheckId(7)));
        for bad in ["0", "-3", "x", ""] {
            let err = bad.parse::<ScanId>().expect_err(bad);
            assert!(err.contains("not a scan id"), "{err}");
        }
        assert_eq!(ScanId(7).to_string(), "7");
        assert_eq!(serde_json::to_string(&CheckId(9)).expect("serialises"), "9");
        assert_eq!(
            serde_json::from_str::<ScanId>("12").expect("reads"),
            ScanId(12)
        );
    }
}
