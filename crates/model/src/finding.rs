//! What the policy concluded about a target or a port: [`Finding`]s with a [`Rule`], an
//! [`Outcome`] and a [`Severity`], each locatable in the manifest that asked for it.

use crate::{PortState, Protocol};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::IpAddr;

/// How bad a finding is, least to most.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// For the record (e.g. an approved port, as expected).
    Info,
    /// Low risk.
    Low,
    /// Medium risk.
    Medium,
    /// High risk.
    High,
    /// Critical risk.
    Critical,
}

impl Severity {
    /// Every severity, most severe first.
    pub const ALL: [Severity; 5] = [
        Severity::Critical,
        Severity::High,
        Severity::Medium,
        Severity::Low,
        Severity::Info,
    ];

    /// `critical`, `high`, `medium`, `low` or `info`.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }

    /// One step less severe (info stays info).
    pub fn lowered(self) -> Severity {
        match self {
            Severity::Critical => Severity::High,
            Severity::High => Severity::Medium,
            Severity::Medium => Severity::Low,
            Severity::Low | Severity::Info => Severity::Info,
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a finding means for the gate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// As approved or expected.
    Pass,
    /// Worth a look; does not fail the gate.
    Warn,
    /// Fails the gate (a check in enforce mode; the audit with `--expect`).
    Fail,
    /// Could not be verified: fails the gate like a failure, never a silent pass.
    Inconclusive,
}

impl Outcome {
    /// `pass`, `warn`, `fail` or `inconclusive`.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Pass => "pass",
            Outcome::Warn => "warn",
            Outcome::Fail => "fail",
            Outcome::Inconclusive => "inconclusive",
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The rule of the decision matrix a finding comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Rule {
    /// An approved port is open and the service is as expected.
    Approved,
    /// A port is open that no approval covers.
    UnapprovedPort,
    /// An approved port is open but another service answers there.
    ServiceMismatch,
    /// The approval demands TLS and the port does not speak it.
    TlsRequired,
    /// The certificate fails verification (expired, untrusted, name mismatch).
    TlsInvalid,
    /// The certificate expires soon.
    TlsExpiring,
    /// An approved port is filtered or closed.
    ApprovedPortMissing,
    /// The approval of an open port is past its expiry date.
    ApprovalExpired,
    /// The target resolved to an address outside its expected network.
    OutsideExpectedNetwork,
    /// Service, product, version or certificate changed since the previous scan.
    ChangedSinceLastScan,
    /// The scan could not tell (unresolvable target, unreachable host, deadline).
    ScanInconclusive,
    /// The detected version has known vulnerabilities (from imported NVD/OSV data).
    KnownVulnerability,
    /// The target's registered domain expires soon (from registration data).
    DomainExpiring,
    /// A management interface (or its first-start setup page) is reachable.
    ExposedManagementUi,
    /// An API answers without credentials with data it should guard.
    UnauthenticatedApi,
    /// A debugging endpoint (environment, heap dump, script console) answers.
    DebugEndpointExposed,
    /// A vendor's default login is accepted (with `--try-default-credentials`).
    DefaultCredentials,
}

impl Rule {
    /// Every rule, in matrix order.
    pub const ALL: [Rule; 17] = [
        Rule::Approved,
        Rule::UnapprovedPort,
        Rule::ServiceMismatch,
        Rule::TlsRequired,
        Rule::TlsInvalid,
        Rule::TlsExpiring,
        Rule::ApprovedPortMissing,
        Rule::ApprovalExpired,
        Rule::OutsideExpectedNetwork,
        Rule::ChangedSinceLastScan,
        Rule::ScanInconclusive,
        Rule::KnownVulnerability,
        Rule::DomainExpiring,
        Rule::ExposedManagementUi,
        Rule::UnauthenticatedApi,
        Rule::DebugEndpointExposed,
        Rule::DefaultCredentials,
    ];

    /// The stable identifier (`unapproved-port`, ...), as in reports and SARIF.
    pub fn id(self) -> &'static str {
        match self {
            Rule::Approved => "approved",
            Rule::UnapprovedPort => "unapproved-port",
            Rule::ServiceMismatch => "service-mismatch",
            Rule::TlsRequired => "tls-required",
            Rule::TlsInvalid => "tls-invalid",
            Rule::TlsExpiring => "tls-expiring",
            Rule::ApprovedPortMissing => "approved-port-missing",
            Rule::ApprovalExpired => "approval-expired",
            Rule::OutsideExpectedNetwork => "outside-expected-network",
            Rule::ChangedSinceLastScan => "changed-since-last-scan",
            Rule::ScanInconclusive => "scan-inconclusive",
            Rule::KnownVulnerability => "known-vulnerability",
            Rule::DomainExpiring => "domain-expiring",
            Rule::ExposedManagementUi => "exposed-management-ui",
            Rule::UnauthenticatedApi => "unauthenticated-api",
            Rule::DebugEndpointExposed => "debug-endpoint-exposed",
            Rule::DefaultCredentials => "default-credentials",
        }
    }

    /// One line saying what the rule checks.
    pub fn title(self) -> &'static str {
        match self {
            Rule::Approved => "Approved port open with the expected service",
            Rule::UnapprovedPort => "Open port not approved in the manifest",
            Rule::ServiceMismatch => "Approved port answered by another service",
            Rule::TlsRequired => "Approved port must speak TLS and does not",
            Rule::TlsInvalid => "TLS certificate fails verification",
            Rule::TlsExpiring => "TLS certificate expires soon",
            Rule::ApprovedPortMissing => "Approved port is filtered or closed",
            Rule::ApprovalExpired => "Approval past its expiry date",
            Rule::OutsideExpectedNetwork => "Target resolves outside its expected network",
            Rule::ChangedSinceLastScan => "Service, version or certificate changed",
            Rule::ScanInconclusive => "Scan could not conclude",
            Rule::KnownVulnerability => "Detected version has known vulnerabilities",
            Rule::DomainExpiring => "Registered domain expires soon",
            Rule::ExposedManagementUi => "Management interface reachable",
            Rule::UnauthenticatedApi => "API answers without credentials",
            Rule::DebugEndpointExposed => "Debugging endpoint reachable",
            Rule::DefaultCredentials => "Vendor default login accepted",
        }
    }

    /// What to do about a finding of this rule.
    pub fn help(self) -> &'static str {
        match self {
            Rule::Approved => "Nothing to do: the port is approved and answers as expected.",
            Rule::UnapprovedPort => {
                "Close the port or bind the service to a private interface; if the exposure is intended, add an entry to the asset's `approved` list with a justification (and an `approved_until` date for a temporary exception)."
            }
            Rule::ServiceMismatch => {
                "Another service answers on an approved port. Find out what is listening (a misrouted deploy, a debug service) or correct the expected `service` of the approval."
            }
            Rule::TlsRequired => {
                "The approval says `tls: required`: serve TLS on the port, or change the approval after review."
            }
            Rule::TlsInvalid => {
                "Renew or replace the certificate: it must be within its validity period, chain to a trusted root and name the host."
            }
            Rule::TlsExpiring => {
                "Renew the certificate before it expires (the warning window is `defaults.tls_expiry_warn_days`)."
            }
            Rule::ApprovedPortMissing => {
                "An approved service is not reachable: check whether it died or a firewall changed. Set the asset's `on_missing` to `fail`, `warn` or `ignore`."
            }
            Rule::ApprovalExpired => {
                "Renew the approval (a new `approved_until` after review) or close the port."
            }
            Rule::OutsideExpectedNetwork => {
                "The name resolves to an address outside `expected_network`: check DNS (hijack, stale record) or update the expected network."
            }
            Rule::ChangedSinceLastScan => {
                "Confirm the change was intended (an upgrade, a certificate renewal)."
            }
            Rule::ScanInconclusive => {
                "The scan could not conclude for this target: check that it resolves and is reachable from where the check runs, or raise the deadline."
            }
            Rule::KnownVulnerability => {
                "Upgrade the service (or install the distribution's security update) to a version outside the vulnerable ranges. The gate counts matches at or above `defaults.min_confidence` and fails at `defaults.fail_on_cvss`; a distribution banner without advisory data is only `possibly-backported`."
            }
            Rule::DomainExpiring => {
                "Renew the domain's registration before it expires (the warning window is `defaults.domain_expiry_warn_days`)."
            }
            Rule::ExposedManagementUi => {
                "Put the management interface behind a VPN, an authenticating proxy or a private interface, and finish any first-start setup. If it must be reachable, name it in the approval (`application: <id>`); a proven setup page needs `accept: [<check id>]`."
            }
            Rule::UnauthenticatedApi => {
                "Turn on the application's authentication (a token, TLS client certificates, ACLs) or bind it to a private interface. An approval accepts a proven exposure only when it lists it: `accept: [<check id>]`."
            }
            Rule::DebugEndpointExposed => {
                "Disable the debugging endpoint or restrict it to localhost (for Spring Boot: `management.endpoints.web.exposure.include` without env, heapdump and configprops); treat what it handed out (environment, heap) as leaked."
            }
            Rule::DefaultCredentials => {
                "Change the default password (or remove the user) now, and treat the service as compromised until checked: anyone could log in."
            }
        }
    }
}

impl From<crate::application::ExposureKind> for Rule {
    fn from(kind: crate::application::ExposureKind) -> Rule {
        use crate::application::ExposureKind as K;
        match kind {
            K::ExposedManagementUi => Rule::ExposedManagementUi,
            K::UnauthenticatedApi => Rule::UnauthenticatedApi,
            K::DebugEndpointExposed => Rule::DebugEndpointExposed,
            K::DefaultCredentials => Rule::DefaultCredentials,
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id())
    }
}

/// A place in a file the user wrote (the manifest, the audit's expected-listeners file):
/// the file as given and a 1-based line and column.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ManifestLocation {
    /// The file as given.
    pub file: String,
    /// 1-based line.
    pub line: u32,
    /// 1-based column.
    pub column: u32,
}

/// One conclusion of the policy about a target, an address or a port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// The rule of the decision matrix.
    pub rule: Rule,
    /// What it means for the gate.
    pub outcome: Outcome,
    /// How bad it is.
    pub severity: Severity,
    /// The target as written in the manifest or on the command line.
    pub target: String,
    /// The address, when the finding is about one.
    pub ip: Option<IpAddr>,
    /// The protocol, when the finding is about a port.
    pub protocol: Option<Protocol>,
    /// The port, when the finding is about one.
    pub port: Option<u16>,
    /// The port's state, when the finding is about a port.
    pub state: Option<PortState>,
    /// The detected service (else the usual service of the port number).
    pub service: Option<String>,
    /// The detected product.
    pub product: Option<String>,
    /// The detected version.
    pub version: Option<String>,
    /// The manifest asset the target belongs to; none for a target given on the command
    /// line that no asset lists (checked against the global approved list).
    pub asset: Option<String>,
    /// The asset's owner.
    pub owner: Option<String>,
    /// The asset's escalation channel.
    pub escalation: Option<String>,
    /// Why, in one sentence a person understands.
    pub message: String,
    /// Where in the manifest the asset (or the approval) is written.
    pub location: Option<ManifestLocation>,
    /// The records the finding rests on (CVE ids of a `known-vulnerability`), surest and
    /// highest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub references: Vec<String>,
    /// The request that proved the finding and the first bytes of its answer (the
    /// application rules).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proof: Option<crate::application::Proof>,
    /// The manifest change that would approve what the finding reports (unapproved
    /// ports): the command that makes it and the text it inserts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fix: Option<Fix>,
}

/// A proposed manifest change: `portgate baseline approve …` and exactly what it writes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fix {
    /// One line: what the change does (`approve 9090/tcp for asset web`).
    pub description: String,
    /// The command that makes the change.
    pub command: String,
    /// The manifest's entry, as YAML lines at its indentation (trailing newline).
    pub yaml: String,
    /// Where the text goes, when the manifest's text was at hand.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edit: Option<TextEdit>,
}

/// A replacement of a region of a file (an insertion when the region is empty): 1-based
/// lines, 1-based columns counted in characters, the end exclusive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TextEdit {
    /// The file as given.
    pub file: String,
    /// First line of the replaced region.
    pub start_line: u32,
    /// Its first column.
    pub start_column: u32,
    /// Line where the region ends.
    pub end_line: u32,
    /// Column just after the region (equal to the start for an insertion).
    pub end_column: u32,
    /// The text put there.
    pub inserted: String,
}

impl Finding {
    /// `198.18.0.1:443/tcp`, `198.18.0.1`, or the target when there is no address.
    pub fn endpoint(&self) -> String {
        match (self.ip, self.port, self.protocol) {
            (Some(IpAddr::V6(ip)), Some(port), Some(protocol)) => {
                format!("[{ip}]:{port}/{protocol}")
            }
            (Some(ip), Some(port), Some(protocol)) => format!("{ip}:{port}/{protocol}"),
            (Some(ip), _, _) => ip.to_string(),
            _ => self.target.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn severities_order_and_lower() {
        assert!(Severity::Critical > Severity::High);
        assert!(Severity::Low > Severity::Info);
        assert_eq!(Severity::Critical.lowered(), Severity::High);
        assert_eq!(Severity::Info.lowered(), Severity::Info);
    }

    #[test]
    fn rule_ids_are_unique_and_documented() {
        let mut ids: Vec<&str> = Rule::ALL.iter().map(|r| r.id()).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), Rule::ALL.len());
        for rule in Rule::ALL {
            assert!(
                !rule.title().is_empty() && !rule.help().is_empty(),
                "{rule}"
            );
        }
    }
}
