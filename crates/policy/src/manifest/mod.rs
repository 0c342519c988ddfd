//! The manifest (baseline): what a team owns, what may be reachable on it, and who to call.
//!
//! YAML, loaded with [`Manifest::from_yaml`]; unknown keys are errors, and every error names
//! the file, line, column and key. The JSON Schema for editors is generated from these types
//! ([`manifest_schema`]) and kept in `docs/manifest.schema.json`.

use chrono::NaiveDate;
use ipnet::IpNet;
use portgate_model::{PortSpec, Protocol, Severity, TargetSpec};
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};
use serde_saphyr::Spanned;
use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::Path;
use std::str::FromStr;

mod load;
mod plan;

pub use load::ManifestError;
pub(crate) use load::position;
pub use plan::{ScanGroup, with_approved};

/// Names the manifest format and its version (the schema's `$id`).
pub const MANIFEST_SCHEMA_ID: &str = "portgate.manifest.v1";

/// The largest manifest read, in bytes: a manifest is a reviewed text file, not a data dump.
pub const MAX_MANIFEST_BYTES: usize = 4 * 1024 * 1024;

/// The whole manifest.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "portgate manifest", extend("$id" = MANIFEST_SCHEMA_ID))]
pub struct Manifest {
    /// Format version; `1`.
    pub version: u32,
    /// `enforce` (policy failures fail the check) or `monitor` (report everything, exit 0).
    #[serde(default)]
    pub mode: Mode,
    /// Settings every asset inherits.
    #[serde(default)]
    pub defaults: Defaults,
    /// Approvals that hold for every target, including targets given with `--target` that
    /// no asset lists (ephemeral environments).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(with = "Vec<ApprovedPort>")]
    pub approved: Vec<Spanned<ApprovedPort>>,
    /// What the team owns.
    #[serde(default)]
    #[schemars(with = "Vec<Asset>")]
    pub assets: Vec<Spanned<Asset>>,
    /// The file it was read from, as given (for messages and SARIF locations).
    #[serde(skip)]
    #[schemars(skip)]
    pub source: String,
    /// The text it was read from (for proposed changes of it); empty for a manifest
    /// built in code.
    #[serde(skip)]
    #[schemars(skip)]
    pub text: String,
}

/// How a failing check ends.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Policy failures fail the check (exit 1).
    #[default]
    Enforce,
    /// Report everything, exit 0.
    Monitor,
}

/// What to do when an approved port is filtered or closed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum OnMissing {
    /// A warning (the check still passes).
    #[default]
    Warn,
    /// A policy failure.
    Fail,
    /// Nothing.
    Ignore,
}

/// What a finding of a target no asset lists (a review app, an ephemeral environment:
/// judged against the global approved list alone) does to the check.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Unlisted {
    /// It fails the check like any other.
    #[default]
    Enforce,
    /// It is a warning and goes to the review queue of `portgate serve`: it blocks no one.
    Review,
}

impl Unlisted {
    fn is_enforce(&self) -> bool {
        *self == Unlisted::Enforce
    }
}

/// The least severity that fails the check.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum FailOn {
    /// Only critical failures fail the check.
    Critical,
    /// High and critical.
    High,
    /// Medium and above.
    Medium,
    /// Every failure.
    #[default]
    Low,
}

impl FailOn {
    /// The least severity that fails.
    pub fn severity(self) -> Severity {
        match self {
            FailOn::Critical => Severity::Critical,
            FailOn::High => Severity::High,
            FailOn::Medium => Severity::Medium,
            FailOn::Low => Severity::Low,
        }
    }
}

/// Settings every asset inherits.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Defaults {
    /// Ports to scan, as `portgate scan -p` takes them (`top1000`, `22,80,443`, `T:1-1024,U:53`).
    #[serde(default = "Ports::default_set")]
    pub ports: Ports,
    /// What to do when an approved port is filtered or closed: `warn`, `fail` or `ignore`.
    #[serde(default)]
    pub on_missing: OnMissing,
    /// Warn when a certificate expires within this many days.
    #[serde(default = "default_expiry_warn_days")]
    pub tls_expiry_warn_days: u32,
    /// The least severity that fails the check: `critical`, `high`, `medium` or `low`
    /// (`--fail-on` overrides it).
    #[serde(default)]
    pub fail_on: FailOn,
    /// What a finding of a target no asset lists does: `enforce` (fails like any other) or
    /// `review` (a warning, and the review queue of `portgate serve`).
    #[serde(default, skip_serializing_if = "Unlisted::is_enforce")]
    pub unlisted: Unlisted,
    /// `known-vulnerability`: the least CVSS base score (0.0 to 10.0; v4.0 where published,
    /// else v3.1) that fails the check; matches below it are warnings.
    #[serde(default = "default_fail_on_cvss")]
    #[schemars(with = "f64", range(min = 0.0, max = 10.0))]
    pub fail_on_cvss: CvssThreshold,
    /// `known-vulnerability`: the least sure match counted: `distro-verified`,
    /// `upstream-version` (the default: an upstream version in a vulnerable range, or a
    /// distribution's advisory naming the package version), `possibly-backported` or
    /// `cpe-guess`.
    #[serde(default = "default_min_confidence")]
    pub min_confidence: MinConfidence,
    /// `domain-expiring`: warn when the registered domain of a target expires within this
    /// many days (with `--enrich`).
    #[serde(default = "default_expiry_warn_days")]
    pub domain_expiry_warn_days: u32,
}

/// A CVSS base score threshold, 0.0 to 10.0.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Serialize)]
#[serde(transparent)]
pub struct CvssThreshold(pub f64);

impl<'de> Deserialize<'de> for CvssThreshold {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = f64::deserialize(d)?;
        if !(0.0..=10.0).contains(&v) {
            return Err(serde::de::Error::custom(format!(
                "fail_on_cvss must be a CVSS score from 0.0 to 10.0, not {v}"
            )));
        }
        Ok(CvssThreshold(v))
    }
}

fn default_fail_on_cvss() -> CvssThreshold {
    CvssThreshold(7.0)
}

/// The least sure vulnerability match a check counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum MinConfidence {
    /// Only matches the distribution's own advisories confirm.
    DistroVerified,
    /// Also upstream versions in a vulnerable range (banner without a distribution).
    UpstreamVersion,
    /// Also distribution banners without advisory data (the fix may be backported).
    PossiblyBackported,
    /// Everything, products mapped by name included.
    CpeGuess,
}

impl MinConfidence {
    /// The floor as a confidence.
    pub fn confidence(self) -> portgate_model::VulnConfidence {
        use portgate_model::VulnConfidence as C;
        match self {
            MinConfidence::DistroVerified => C::DistroVerified,
            MinConfidence::UpstreamVersion => C::UpstreamVersion,
            MinConfidence::PossiblyBackported => C::PossiblyBackported,
            MinConfidence::CpeGuess => C::CpeGuess,
        }
    }
}

fn default_min_confidence() -> MinConfidence {
    MinConfidence::UpstreamVersion
}

fn default_expiry_warn_days() -> u32 {
    30
}

impl Default for Defaults {
    fn default() -> Self {
        Defaults {
            ports: Ports::default_set(),
            on_missing: OnMissing::default(),
            tls_expiry_warn_days: default_expiry_warn_days(),
            fail_on: FailOn::default(),
            unlisted: Unlisted::default(),
            fail_on_cvss: default_fail_on_cvss(),
            min_confidence: default_min_confidence(),
            domain_expiry_warn_days: default_expiry_warn_days(),
        }
    }
}

/// Something the team owns: targets and what may be reachable on them.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Asset {
    /// Unique name.
    pub name: String,
    /// Environment (`staging`, `production`, ...), selected with `--env`; an asset without
    /// one is checked in every environment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    /// Who answers for it (a team, a person).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// Where to escalate (a channel, a pager).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub escalation: Option<String>,
    /// How much it matters: `low`, `medium`, `high` or `critical`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub criticality: Option<Criticality>,
    /// Free labels; `role` lowers the risk of the services the role expects (a database
    /// port on a host with `role: database`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
    /// Hostnames, IP addresses or CIDR ranges.
    #[schemars(with = "Vec<Target>")]
    pub targets: Vec<Spanned<Target>>,
    /// Ports to scan (default: `defaults.ports`); the approved ports are always scanned too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ports: Option<Ports>,
    /// What may be reachable.
    #[serde(default)]
    #[schemars(with = "Vec<ApprovedPort>")]
    pub approved: Vec<Spanned<ApprovedPort>>,
    /// Networks the targets must resolve into: CIDR ranges, AS numbers (`AS64500`) or
    /// organisation names (as the imported network tables spell them, any case); an
    /// address in any of them passes. Empty: no check.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expected_network: Vec<ExpectedNetwork>,
    /// What to do when an approved port is filtered or closed (default: `defaults.on_missing`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_missing: Option<OnMissing>,
    /// Look up the DNS records and domain registration of this asset's host names at each
    /// check, as `--enrich` does for every asset.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub enrich: bool,
}

/// How much an asset matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Criticality {
    /// Low.
    Low,
    /// Medium.
    Medium,
    /// High.
    High,
    /// Critical.
    Critical,
}

/// TLS expectation of an approved port.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum TlsPolicy {
    /// The port must speak TLS with a valid certificate.
    Required,
    /// TLS is checked when the port speaks it.
    #[default]
    Optional,
}

/// A transport protocol.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ProtocolName {
    /// TCP.
    #[default]
    Tcp,
    /// UDP.
    Udp,
}

impl From<ProtocolName> for Protocol {
    fn from(p: ProtocolName) -> Protocol {
        match p {
            ProtocolName::Tcp => Protocol::Tcp,
            ProtocolName::Udp => Protocol::Udp,
        }
    }
}

/// One approved port.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ApprovedPort {
    /// Port number, 1-65535.
    pub port: u16,
    /// `tcp` (default) or `udp`.
    #[serde(default)]
    pub protocol: ProtocolName,
    /// The service expected there (`https`, `ssh`, `postgresql`, ...); another detected
    /// service is a failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// `required`: the port must speak TLS; `optional` (default): checked when it does.
    #[serde(default)]
    pub tls: TlsPolicy,
    /// Why it may be reachable (reviewed with the change).
    pub justification: String,
    /// Last day the approval holds (`YYYY-MM-DD`); past it, the open port fails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved_until: Option<ApprovalDate>,
    /// The application approved behind the port, by its identifier in the application
    /// database (`grafana`, `jupyter`, as `portgate scan --detect` names it). A management
    /// interface found on an approved port fails (`exposed-management-ui`) unless it is the
    /// one named here; another application answering is a `service-mismatch`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub application: Option<String>,
    /// Proven exposures accepted on this port, each by its check identifier
    /// (`prometheus-targets`) or by rule (`unauthenticated-api`, `debug-endpoint-exposed`,
    /// `exposed-management-ui`); they pass instead of failing. A vendor default login
    /// (`default-credentials`) is never accepted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub accept: Vec<String>,
    /// The addresses the approval holds for, among those of the asset's targets
    /// (`[127.0.0.1]` when a name resolves to more than one address); empty (the default):
    /// every address. On another address the port is not approved, and it being closed
    /// there is not reported missing.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<std::net::IpAddr>,
}

impl ApprovedPort {
    /// Whether the approval holds on `ip`.
    pub fn holds_on(&self, ip: std::net::IpAddr) -> bool {
        self.addresses.is_empty() || self.addresses.contains(&ip)
    }

    /// Whether the approval accepts the proven exposure `check` of kind `kind`.
    pub fn accepts(&self, check: &str, kind: portgate_model::ExposureKind) -> bool {
        kind != portgate_model::ExposureKind::DefaultCredentials
            && self
                .accept
                .iter()
                .any(|a| a.eq_ignore_ascii_case(check) || a.eq_ignore_ascii_case(kind.as_str()))
    }

    /// Whether `application` (an identifier) is the one this approval names.
    pub fn approves_application(&self, application: &str) -> bool {
        self.application
            .as_deref()
            .is_some_and(|a| a.eq_ignore_ascii_case(application))
    }
}

/// Generates the JSON Schema of a type read from a string.
macro_rules! string_schema {
    ($ty:ty, $name:literal, $description:literal $(, $key:literal : $value:literal)*) => {
        impl JsonSchema for $ty {
            fn schema_name() -> Cow<'static, str> {
                Cow::Borrowed($name)
            }
            fn json_schema(_: &mut SchemaGenerator) -> Schema {
                json_schema!({ "type": "string", "description": $description $(, $key: $value)* })
            }
        }
    };
}

/// A port specification as `portgate scan -p` takes it, kept with its text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Ports {
    text: String,
    spec: PortSpec,
}

impl Ports {
    fn default_set() -> Ports {
        Ports::try_from("top1000".to_string()).unwrap_or_else(|_| Ports {
            text: "top1000".into(),
            spec: PortSpec::default(),
        })
    }

    /// The parsed specification.
    pub fn spec(&self) -> &PortSpec {
        &self.spec
    }

    /// As written.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl TryFrom<String> for Ports {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        let spec = text
            .parse::<PortSpec>()
            .map_err(|e| format!("invalid port specification: {e}"))?;
        Ok(Ports { text, spec })
    }
}

impl From<Ports> for String {
    fn from(p: Ports) -> String {
        p.text
    }
}

string_schema!(
    Ports,
    "PortSpec",
    "Ports as `portgate scan -p` takes them: `22,80,443`, `8000-8100`, `top100`, `top1000`, `all`, `T:22,U:53`"
);

/// A target: hostname, IP address or CIDR range.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Target(pub TargetSpec);

impl TryFrom<String> for Target {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        text.parse::<TargetSpec>()
            .map(Target)
            .map_err(|e| format!("invalid target: {e}"))
    }
}

impl From<Target> for String {
    fn from(t: Target) -> String {
        t.0.to_string()
    }
}

string_schema!(
    Target,
    "Target",
    "A hostname, an IPv4 or IPv6 address, or a CIDR range"
);

/// A CIDR range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Cidr(pub IpNet);

impl TryFrom<String> for Cidr {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        let trimmed = text.trim();
        if let Ok(net) = trimmed.parse::<IpNet>() {
            return Ok(Cidr(net.trunc()));
        }
        // A single address is a /32 or /128.
        if let Ok(ip) = trimmed.parse::<std::net::IpAddr>() {
            return Ok(Cidr(IpNet::from(ip)));
        }
        Err(format!(
            "invalid CIDR range \"{text}\": expected an address with a prefix length, like 198.18.0.0/24 or 2001:db8::/32"
        ))
    }
}

impl From<Cidr> for String {
    fn from(c: Cidr) -> String {
        c.0.to_string()
    }
}

string_schema!(
    Cidr,
    "Cidr",
    "A CIDR range like 198.18.0.0/24 or 2001:db8::/32 (a bare address is a /32 or /128)"
);

/// One entry of `expected_network`: a CIDR range, an AS number or an organisation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum ExpectedNetwork {
    /// Addresses in this range.
    Cidr(IpNet),
    /// Addresses the network tables give to this AS.
    Asn(u32),
    /// Addresses the network tables give to this organisation (compared without case).
    Org(String),
}

impl TryFrom<String> for ExpectedNetwork {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        let trimmed = text.trim();
        if let Some(number) = trimmed
            .strip_prefix("AS")
            .or_else(|| trimmed.strip_prefix("as"))
            .filter(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
        {
            return number
                .parse::<u32>()
                .map(ExpectedNetwork::Asn)
                .map_err(|_| {
                    format!("invalid AS number \"{text}\": AS numbers go up to AS4294967295")
                });
        }
        let address_like = trimmed.contains('/')
            || trimmed.contains(':')
            || trimmed.chars().all(|c| c.is_ascii_digit() || c == '.');
        if address_like {
            return Cidr::try_from(text.clone()).map(|c| ExpectedNetwork::Cidr(c.0));
        }
        if trimmed.chars().count() > 128 || trimmed.chars().any(char::is_control) {
            return Err(format!(
                "invalid organisation \"{}\": at most 128 printable characters",
                trimmed.chars().take(32).collect::<String>()
            ));
        }
        Ok(ExpectedNetwork::Org(trimmed.to_owned()))
    }
}

impl From<ExpectedNetwork> for String {
    fn from(n: ExpectedNetwork) -> String {
        n.to_string()
    }
}

impl std::fmt::Display for ExpectedNetwork {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExpectedNetwork::Cidr(net) => write!(f, "{net}"),
            ExpectedNetwork::Asn(n) => write!(f, "AS{n}"),
            ExpectedNetwork::Org(o) => f.write_str(o),
        }
    }
}

string_schema!(
    ExpectedNetwork,
    "ExpectedNetwork",
    "A CIDR range like 198.18.0.0/24 or 2001:db8::/32 (a bare address is a /32 or /128), an AS number like AS64500, or an organisation name as the imported network tables give it"
);

/// A calendar day, `YYYY-MM-DD`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ApprovalDate(pub NaiveDate);

impl TryFrom<String> for ApprovalDate {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d")
            .map(ApprovalDate)
            .map_err(|e| format!("invalid date \"{text}\" ({e}): write it as YYYY-MM-DD"))
    }
}

impl From<ApprovalDate> for String {
    fn from(d: ApprovalDate) -> String {
        d.0.format("%Y-%m-%d").to_string()
    }
}

impl fmt::Display for ApprovalDate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.format("%Y-%m-%d"))
    }
}

string_schema!(ApprovalDate, "Date", "A day, YYYY-MM-DD", "format": "date");

/// The JSON Schema of [`Manifest`], pretty-printed with a trailing newline.
pub fn manifest_schema() -> String {
    let schema = schemars::schema_for!(Manifest);
    let mut text = serde_json::to_string_pretty(&schema).unwrap_or_default();
    text.push('\n');
    text
}
