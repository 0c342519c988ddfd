//! The types that cross portgate's crates.
//!
//! Targets, port specifications (with the named port sets), port states, the
//! [`ScanReport`] a scan produces and the [`Scope`] a server is authorised to scan.
//! This crate is pure data and parsing: it performs no I/O, opens no socket and reads
//! no file at run time.

mod addr;
pub mod application;
mod change;
pub mod enrichment;
mod evidence;
mod finding;
pub mod history;
pub mod http;
pub mod lifecycle;
mod ports;
mod report;
mod scope;
mod state;
mod target;
pub mod vulnerability;

pub use application::{
    Application, ApplicationReport, CredentialAttempt, Exposure, ExposureKind, Proof,
};
pub use change::{Change, ChangeKind, ChangeStatus};
pub use enrichment::{
    AddressNetwork, AddressRegistration, DnsRecords, DomainRegistration, Enrichment,
    NetworkOwnerInfo, TargetContext,
};
pub use evidence::Evidence;
pub use finding::{Finding, Fix, ManifestLocation, Outcome, Rule, Severity, TextEdit};
pub use http::{CookieFlags, Cors, HttpInfo, SecurityHeaders};
pub use ports::{
    PortSet, PortSetEntry, PortSetSource, PortSpec, PortSpecError, Protocol, port_sets,
    service_name,
};
pub use report::{
    CertFailure, DetectedService, Detection, HostReport, PortResult, ScanMethod, ScanReport,
    ScanStatus, Summary, TargetReport, TarpitEvidence, TlsSummary,
};
pub use scope::{Scope, ScopeError, ScopeParseError};
pub use state::{PortState, Reason};
pub use target::{TargetSpec, TargetSpecError};
pub use vulnerability::{
    ClearedVulnerability, CvssScore, DataSource, VulnConfidence, Vulnerability, VulnerabilityReport,
};
