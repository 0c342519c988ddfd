//! What the store hands out: ids, scan records, timeline snapshots, check records.

use chrono::{DateTime, Utc};
use portgate_model::{Finding, PortState, Protocol, Reason};
use serde::{Deserialize, Serialize};

/// Defines an id: a number the database assigns, shown and parsed as that number.
macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
            sqlx::Type,
        )]
        #[serde(transparent)]
        #[sqlx(transparent)]
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

    pub(crate) fn parse(text: &str) -> Option<StoredStatus> {
        match text {
            "running" => Some(StoredStatus::Running),
            "completed" => Some(StoredStatus::Completed),
            "incomplete" => Some(StoredStatus::Incomplete),
            _ => None,
        }
    }
}

/// What is known of a scan when it starts.
#[derive(Debug, Clone, Default)]
pub struct ScanStart {
    /// When it started.
    pub started_at: Option<DateTime<Utc>>,
    /// The targets as given.
    pub targets: Vec<String>,
    /// `connect`, `syn`, `udp`, or none while not yet known.
    pub method: Option<String>,
    /// The git revision of the manifest the scan was run for, when there is one.
    pub manifest_revision: Option<String>,
}

/// One stored scan, without its ports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScanRecord {
    /// Its id.
    pub id: ScanId,
    /// Where it stands.
    pub status: StoredStatus,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// When it was finalised.
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
pub struct StoredPort {
    /// `tcp` or `udp`.
    pub protocol: Protocol,
    /// Port number.
    pub port: u16,
    /// `open`, `closed`, `filtered` or `open|filtered`.
    #[serde(with = "portgate_model::wire::state")]
    pub state: PortState,
    /// The observation behind the state.
    #[serde(with = "portgate_model::wire::reason")]
    pub reason: Reason,
}

/// What detection found on a port, as stored.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
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
    #[serde(with = "portgate_model::wire::state_opt")]
    pub unlisted_tcp: Option<PortState>,
    /// The state of the UDP ports that have no row (only counted), if any.
    #[serde(with = "portgate_model::wire::state_opt")]
    pub unlisted_udp: Option<PortState>,
    /// Every port with a row: open ones, and those not in the state of [`HostSnapshot::unlisted_tcp`]
    /// (TCP) or [`HostSnapshot::unlisted_udp`] (UDP).
    pub ports: Vec<StoredPort>,
    /// What detection found.
    pub services: Vec<StoredService>,
}

/// What to keep when pruning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retention {
    /// Scans that started within this many days of `now`.
    KeepDays {
        /// Days.
        days: u32,
        /// The present (passed in, for tests).
        now: DateTime<Utc>,
    },
    /// The newest this many scans.
    KeepScans(u64),
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
