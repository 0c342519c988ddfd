//! portgate's local audit: what listens on this host, which process holds each socket, as
//! which user, bound where; outbound connections that look like tunnels; and this host's
//! listeners against a scan of it from outside.
//!
//! Everything comes from /proc (the socket tables of a network namespace, and every
//! process's open files) plus the kernel's socket-diagnostics netlink interface for the one
//! fact /proc lacks, the IPv6-only flag. This crate never runs `ss` or `netstat`, never
//! sends a packet, never prints and never exits; a socket whose owner cannot be seen is
//! reported as such, never dropped.

mod compare;
mod diag;
mod expect;
mod findings;
mod inventory;
mod services;
mod tunnel;

pub use compare::{
    CompareError, Compared, Comparison, MAX_SCAN_BYTES, SCAN_SCHEMA, ScanHost, ScanPort,
    ScanSnapshot, Verdict, compare,
};
pub use expect::{ExpectError, ExpectedListener, ExpectedListeners, MAX_EXPECT_BYTES};
pub use findings::{AuditFinding, AuditRule, evaluate, fails, listener_risk};
pub use inventory::{
    BindScope, Connection, Families, Inventory, Listener, Namespace, ProcessInfo, collect,
};
pub use services::{ProcessService, process_services, service_of};
pub use tunnel::{
    TUNNEL_PORTS, TUNNEL_PROGRAMS, Tunnel, TunnelKind, human_age, ssh_forwards, tunnels,
};

use schemars::JsonSchema;
use serde::Serialize;
use std::time::Duration;

/// Names the JSON document's format and version.
pub const AUDIT_SCHEMA_ID: &str = "portgate.audit.v1";

/// Why the audit could not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuditError {
    /// A socket table could not be read.
    #[error("cannot read {path}: {source}")]
    Proc {
        /// The file.
        path: String,
        /// The reason.
        source: procfs::ProcError,
    },
    /// The network namespace could not be entered.
    #[error("cannot audit network namespace {namespace} ({path}): {reason}")]
    Namespace {
        /// The namespace as given.
        namespace: String,
        /// Its file.
        path: String,
        /// The reason.
        reason: String,
    },
}

/// What to audit and how.
#[derive(Debug, Clone)]
pub struct AuditOptions {
    /// The network namespace.
    pub namespace: Namespace,
    /// How long a process must have run before its connection to 22/443/8443 counts as a
    /// long-lived tunnel.
    pub long_lived: Duration,
}

impl Default for AuditOptions {
    fn default() -> Self {
        AuditOptions {
            namespace: Namespace::Current,
            long_lived: Duration::from_secs(30 * 60),
        }
    }
}

/// The whole audit, as rendered (`-o json` serialises it).
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[schemars(title = "portgate audit report", extend("$id" = AUDIT_SCHEMA_ID))]
pub struct AuditReport {
    /// `portgate.audit.v1`.
    #[schemars(with = "String")]
    pub schema: &'static str,
    /// Version of portgate that wrote it.
    #[schemars(with = "String")]
    pub portgate_version: &'static str,
    /// The namespace audited.
    pub namespace: String,
    /// Whether it ran as root.
    pub privileged: bool,
    /// The expected-listeners file, when given.
    pub expect: Option<String>,
    /// Listening TCP and bound UDP sockets.
    pub listeners: Vec<Listener>,
    /// Outbound connections that look like tunnels.
    pub tunnels: Vec<Tunnel>,
    /// Inside against outside, when a scan was given.
    pub comparison: Option<Comparison>,
    /// Conclusions, most severe first.
    pub findings: Vec<AuditFinding>,
    /// What could not be read, and what follows from it.
    pub notes: Vec<String>,
}

/// The JSON Schema of [`AuditReport`] (`-o json`), pretty-printed with a trailing newline;
/// kept in `docs/audit-report.schema.json`.
pub fn audit_schema() -> String {
    let schema = schemars::schema_for!(AuditReport);
    let mut text = serde_json::to_string_pretty(&schema).unwrap_or_default();
    text.push('\n');
    text
}

/// Runs the audit: reads the namespace, finds tunnels, compares with a scan when given,
/// and evaluates.
pub fn audit(
    options: &AuditOptions,
    expect: Option<&ExpectedListeners>,
    scan: Option<&ScanSnapshot>,
) -> Result<AuditReport, AuditError> {
    let inventory = collect(&options.namespace)?;
    let found = tunnels(&inventory, options.long_lived);
    let comparison = scan.map(|scan| compare(&inventory, scan));
    let findings = evaluate(&inventory, expect, &found, comparison.as_ref());
    Ok(AuditReport {
        schema: AUDIT_SCHEMA_ID,
        portgate_version: env!("CARGO_PKG_VERSION"),
        namespace: inventory.namespace,
        privileged: inventory.privileged,
        expect: expect.map(|e| e.source.clone()),
        listeners: inventory.listeners,
        tunnels: found,
        comparison,
        findings,
        notes: inventory.notes,
    })
}
