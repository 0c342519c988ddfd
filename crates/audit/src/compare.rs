//! Inside against outside: this host's listeners against a scan of it from elsewhere
//! (`portgate scan -o json`, schema `portgate.scan.v1`).

use crate::inventory::{Inventory, Listener, canonical};
use portgate_model::Protocol;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;

/// Largest scan report read.
pub const MAX_SCAN_BYTES: usize = 256 * 1024 * 1024;

/// The scan report format this reads.
pub const SCAN_SCHEMA: &str = "portgate.scan.v1";

/// What compare needs of a scan report.
#[derive(Debug, Clone, Deserialize)]
pub struct ScanSnapshot {
    /// Format and version (`portgate.scan.v1`).
    pub schema: String,
    /// `completed` or `incomplete`.
    #[serde(default)]
    pub status: String,
    /// Every address scanned.
    pub hosts: Vec<ScanHost>,
    /// The file as given (set by the loader).
    #[serde(skip)]
    pub source: String,
}

/// One scanned address.
#[derive(Debug, Clone, Deserialize)]
pub struct ScanHost {
    /// The address.
    pub ip: IpAddr,
    /// Listed ports (open ports are always listed).
    pub ports: Vec<ScanPort>,
    /// States whose ports the report summarised instead of listing.
    #[serde(default)]
    pub not_shown: BTreeMap<String, usize>,
}

/// One listed port.
#[derive(Debug, Clone, Deserialize)]
pub struct ScanPort {
    /// Number.
    pub port: u16,
    /// `tcp` or `udp`.
    pub protocol: Protocol,
    /// `open`, `closed`, `filtered` or `open|filtered`.
    pub state: String,
}

/// Why a scan report could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CompareError {
    /// The file could not be read.
    #[error("cannot read scan report {file}: {source}")]
    Read {
        /// The file.
        file: String,
        /// The reason.
        source: std::io::Error,
    },
    /// Not a scan report this version reads.
    #[error("{file}:{line}:{column}: {message}")]
    Invalid {
        /// The file.
        file: String,
        /// 1-based line (0 when unknown).
        line: usize,
        /// 1-based column (0 when unknown).
        column: usize,
        /// What is wrong.
        message: String,
    },
}

impl ScanSnapshot {
    /// Reads a `portgate scan -o json` report.
    pub fn load(path: &Path) -> Result<ScanSnapshot, CompareError> {
        let file = path.display().to_string();
        let read = |source| CompareError::Read {
            file: file.clone(),
            source,
        };
        let size = std::fs::metadata(path).map_err(read)?.len();
        if size > MAX_SCAN_BYTES as u64 {
            return Err(CompareError::Invalid {
                file,
                line: 0,
                column: 0,
                message: format!(
                    "the file is {size} bytes, more than the limit of {MAX_SCAN_BYTES}"
                ),
            });
        }
        let bytes = std::fs::read(path).map_err(read)?;
        ScanSnapshot::from_slice(&bytes, &file)
    }

    /// Parses a report; `file` names it in errors.
    pub fn from_slice(bytes: &[u8], file: &str) -> Result<ScanSnapshot, CompareError> {
        let mut snapshot: ScanSnapshot =
            serde_json::from_slice(bytes).map_err(|e| CompareError::Invalid {
                file: file.to_string(),
                line: e.line(),
                column: e.column(),
                message: format!("not a portgate scan report (`portgate scan -o json`): {e}"),
            })?;
        if snapshot.schema != SCAN_SCHEMA {
            return Err(CompareError::Invalid {
                file: file.to_string(),
                line: 0,
                column: 0,
                message: format!(
                    "schema is \"{}\"; this portgate compares with \"{SCAN_SCHEMA}\" reports",
                    snapshot.schema
                ),
            });
        }
        snapshot.source = file.to_string();
        Ok(snapshot)
    }
}

/// What the outside saw of a port, against what listens here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// Open from outside and something listens here: what is served is reachable.
    Reachable,
    /// Something listens here, and the scan found the port closed or filtered: a firewall
    /// (or the binding) keeps it in.
    NotReachable,
    /// UDP open|filtered: the scan cannot tell.
    Unknown,
    /// Something listens here on a port the scan did not list (not scanned, or summarised
    /// among closed or filtered ports: scan with --all-ports to tell).
    NotInScan,
    /// Open from outside, and nothing here listens on it for that address: NAT, port
    /// forwarding, or another host answers for this address.
    ReachableNotListening,
}

impl Verdict {
    /// The stable name (`not-reachable`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Reachable => "reachable",
            Verdict::NotReachable => "not-reachable",
            Verdict::Unknown => "unknown",
            Verdict::NotInScan => "not-in-scan",
            Verdict::ReachableNotListening => "reachable-not-listening",
        }
    }
}

/// One port of one scanned address, inside against outside.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct Compared {
    /// The scanned address.
    pub ip: IpAddr,
    /// `tcp` or `udp`.
    pub protocol: Protocol,
    /// The port.
    pub port: u16,
    /// What the scan saw (`open`, `closed`, ...; none when the port is not listed).
    pub scan_state: Option<String>,
    /// The conclusion.
    pub verdict: Verdict,
    /// The local socket's bound address, when one listens.
    pub bound: Option<IpAddr>,
    /// The process holding it.
    pub process: Option<String>,
    /// Its pid.
    pub pid: Option<i32>,
    /// The socket's user.
    pub user: Option<String>,
}

/// The whole comparison.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Comparison {
    /// The scan report compared with.
    pub scan: String,
    /// The addresses it scanned.
    pub addresses: Vec<IpAddr>,
    /// The scan did not complete (some ports may be missing from it).
    pub scan_incomplete: bool,
    /// Every port either side knows of, by address, protocol and port.
    pub ports: Vec<Compared>,
}

/// Compares the listeners of this host with a scan of its addresses from outside.
pub fn compare(inventory: &Inventory, scan: &ScanSnapshot) -> Comparison {
    let mut ports: BTreeMap<(IpAddr, Protocol, u16), Compared> = BTreeMap::new();
    for host in &scan.hosts {
        let ip = canonical(host.ip);
        for listener in &inventory.listeners {
            if listener.covers(ip) == Some(false) {
                continue;
            }
            let listed = host
                .ports
                .iter()
                .find(|p| p.protocol == listener.protocol && p.port == listener.port);
            let verdict = match listed.map(|p| p.state.as_str()) {
                Some("open") => Verdict::Reachable,
                Some("open|filtered") => Verdict::Unknown,
                Some(_) => Verdict::NotReachable,
                None => Verdict::NotInScan,
            };
            ports
                .entry((ip, listener.protocol, listener.port))
                .or_insert_with(|| entry(ip, listener, listed.map(|p| p.state.clone()), verdict));
        }
        for port in host.ports.iter().filter(|p| p.state == "open") {
            ports
                .entry((ip, port.protocol, port.port))
                .or_insert_with(|| Compared {
                    ip,
                    protocol: port.protocol,
                    port: port.port,
                    scan_state: Some(port.state.clone()),
                    verdict: Verdict::ReachableNotListening,
                    bound: None,
                    process: None,
                    pid: None,
                    user: None,
                });
        }
    }
    Comparison {
        scan: scan.source.clone(),
        addresses: scan.hosts.iter().map(|h| h.ip).collect(),
        scan_incomplete: scan.status == "incomplete",
        ports: ports.into_values().collect(),
    }
}

fn entry(ip: IpAddr, listener: &Listener, state: Option<String>, verdict: Verdict) -> Compared {
    let process = listener.process();
    Compared {
        ip,
        protocol: listener.protocol,
        port: listener.port,
        scan_state: state,
        verdict,
        bound: Some(listener.address),
        process: process.map(|p| p.name.clone()),
        pid: process.map(|p| p.pid),
        user: listener.user.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_of_another_format_are_refused_with_a_place() {
        let err = ScanSnapshot::from_slice(
            b"{\"schema\": \"portgate.scan.v9\", \"hosts\": []}",
            "s.json",
        )
        .expect_err("wrong schema");
        assert!(err.to_string().contains("portgate.scan.v9"), "{err}");
        let err = ScanSnapshot::from_slice(
            b"{\n  \"schema\": \"portgate.scan.v1\",\n  \"hosts\": 3\n}",
            "s.json",
        )
        .expect_err("hosts is not a list");
        assert!(err.to_string().starts_with("s.json:3:"), "{err}");
        let err = ScanSnapshot::from_slice(b"\x00", "s.json").expect_err("binary");
        assert!(err.to_string().starts_with("s.json:1:"), "{err}");
    }
}
