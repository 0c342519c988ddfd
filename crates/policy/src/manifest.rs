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
    /// Networks the targets must resolve into (CIDR ranges); empty: no check.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expected_network: Vec<Cidr>,
    /// What to do when an approved port is filtered or closed (default: `defaults.on_missing`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_missing: Option<OnMissing>,
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

/// Why a manifest was refused: the file, the place in it, the key, and what is wrong.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ManifestError {
    /// The file could not be read.
    #[error("cannot read manifest {file}: {source}")]
    Read {
        /// The file.
        file: String,
        /// The reason.
        source: std::io::Error,
    },
    /// The file is not a valid manifest.
    #[error("{file}:{line}:{column}: {key}{message}", key = key_prefix(.key))]
    Invalid {
        /// The file.
        file: String,
        /// 1-based line (0 when unknown).
        line: u64,
        /// 1-based column (0 when unknown).
        column: u64,
        /// The key at fault, as a path (`assets[1].approved[0].port`), when known.
        key: Option<String>,
        /// What is wrong.
        message: String,
    },
    /// `--env` names an environment no asset has.
    #[error("{file}: no asset has environment \"{env}\" (environments in the manifest: {known})", known = known_list(.known))]
    UnknownEnvironment {
        /// The file.
        file: String,
        /// The environment asked for.
        env: String,
        /// Those the manifest has.
        known: Vec<String>,
    },
}

fn key_prefix(key: &Option<String>) -> String {
    key.as_ref().map(|k| format!("{k}: ")).unwrap_or_default()
}

fn known_list(known: &[String]) -> String {
    if known.is_empty() {
        "none".to_string()
    } else {
        known.join(", ")
    }
}

fn position<T>(spanned: &Spanned<T>) -> (u64, u64) {
    (spanned.referenced.line(), spanned.referenced.column())
}

impl Manifest {
    /// Reads and validates a manifest file.
    pub fn load(path: &Path) -> Result<Manifest, ManifestError> {
        let file = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|source| ManifestError::Read {
            file: file.clone(),
            source,
        })?;
        Manifest::from_bytes(&bytes, &file)
    }

    /// Parses and validates manifest bytes; `file` names them in errors and locations.
    pub fn from_bytes(bytes: &[u8], file: &str) -> Result<Manifest, ManifestError> {
        let invalid = |line, column, message: String| ManifestError::Invalid {
            file: file.to_string(),
            line,
            column,
            key: None,
            message,
        };
        if bytes.len() > MAX_MANIFEST_BYTES {
            return Err(invalid(
                0,
                0,
                format!(
                    "the manifest is {} bytes, more than the limit of {MAX_MANIFEST_BYTES}",
                    bytes.len()
                ),
            ));
        }
        let text = std::str::from_utf8(bytes).map_err(|e| {
            let before = &bytes[..e.valid_up_to()];
            let line = before.iter().filter(|b| **b == b'\n').count() as u64 + 1;
            let column = before.iter().rev().take_while(|b| **b != b'\n').count() as u64 + 1;
            invalid(line, column, "the manifest is not valid UTF-8".to_string())
        })?;
        Manifest::from_yaml(text, file)
    }

    /// Parses and validates manifest text; `file` names it in errors and locations.
    pub fn from_yaml(text: &str, file: &str) -> Result<Manifest, ManifestError> {
        let mut manifest: Manifest = serde_saphyr::from_str(text).map_err(|e| {
            let (line, column) = e
                .location()
                .map(|l| (l.line(), l.column()))
                .unwrap_or((0, 0));
            ManifestError::Invalid {
                file: file.to_string(),
                line,
                column,
                key: key_at(text, line, column),
                message: plain_message(&e),
            }
        })?;
        manifest.source = file.to_string();
        manifest.validate()?;
        Ok(manifest)
    }

    /// Checks what the types cannot: the version, names, ports, duplicates.
    fn validate(&self) -> Result<(), ManifestError> {
        let error = |(line, column): (u64, u64), key: String, message: String| {
            Err(ManifestError::Invalid {
                file: self.source.clone(),
                line,
                column,
                key: Some(key),
                message,
            })
        };
        if self.version != 1 {
            return error(
                (1, 1),
                "version".into(),
                format!(
                    "unsupported manifest version {}: this portgate reads version 1",
                    self.version
                ),
            );
        }
        check_approvals(&self.approved, "approved", &self.source)?;
        let mut names = BTreeSet::new();
        let mut claimed: Vec<(Option<String>, String, String)> = Vec::new();
        for (index, asset) in self.assets.iter().enumerate() {
            let key = format!("assets[{index}]");
            let at = position(asset);
            let a = &asset.value;
            if a.name.trim().is_empty() {
                return error(at, format!("{key}.name"), "the name is empty".into());
            }
            if !names.insert(a.name.as_str()) {
                return error(
                    at,
                    format!("{key}.name"),
                    format!("asset name \"{}\" is used twice", a.name),
                );
            }
            if a.targets.is_empty() {
                return error(
                    at,
                    format!("{key}.targets"),
                    format!("asset \"{}\" has no target", a.name),
                );
            }
            if let Some(env) = &a.environment
                && env.trim().is_empty()
            {
                return error(
                    at,
                    format!("{key}.environment"),
                    "the environment is empty".into(),
                );
            }
            for (t, target) in a.targets.iter().enumerate() {
                let text = target.value.0.to_string();
                // The same target in two assets checked together would make its findings
                // ambiguous (which owner, which approvals).
                let clash = claimed.iter().find(|(env, other, _)| {
                    *other == text
                        && (env.is_none() || a.environment.is_none() || *env == a.environment)
                });
                if let Some((_, _, first)) = clash {
                    return error(
                        position(target),
                        format!("{key}.targets[{t}]"),
                        format!("target \"{text}\" is already listed by asset \"{first}\""),
                    );
                }
                claimed.push((a.environment.clone(), text, a.name.clone()));
            }
            check_approvals(&a.approved, &format!("{key}.approved"), &self.source)?;
        }
        Ok(())
    }

    /// The environments the assets name, sorted.
    pub fn environments(&self) -> Vec<String> {
        let set: BTreeSet<&str> = self
            .assets
            .iter()
            .filter_map(|a| a.value.environment.as_deref())
            .collect();
        set.into_iter().map(str::to_string).collect()
    }

    /// Checks that `env` (if any) is an environment of the manifest.
    pub fn check_environment(&self, env: Option<&str>) -> Result<(), ManifestError> {
        match env {
            Some(env) if !self.environments().iter().any(|e| e == env) => {
                Err(ManifestError::UnknownEnvironment {
                    file: self.source.clone(),
                    env: env.to_string(),
                    known: self.environments(),
                })
            }
            _ => Ok(()),
        }
    }

    /// The assets checked in `env`: those of that environment and those without one; every
    /// asset when no environment is given.
    pub fn assets_in<'a>(
        &'a self,
        env: Option<&'a str>,
    ) -> impl Iterator<Item = &'a Spanned<Asset>> {
        self.assets
            .iter()
            .filter(move |a| match (env, &a.value.environment) {
                (None, _) | (_, None) => true,
                (Some(env), Some(asset_env)) => env == asset_env,
            })
    }

    /// Where an item of this manifest is written.
    pub fn location<T>(&self, spanned: &Spanned<T>) -> portgate_model::ManifestLocation {
        let (line, column) = position(spanned);
        portgate_model::ManifestLocation {
            file: self.source.clone(),
            line: u32::try_from(line).unwrap_or(u32::MAX),
            column: u32::try_from(column).unwrap_or(u32::MAX),
        }
    }
}

impl Asset {
    /// The ports to scan on this asset: its own or the default set, plus its approved ports.
    pub fn scan_ports(&self, defaults: &Defaults) -> PortSpec {
        let base = self.ports.as_ref().unwrap_or(&defaults.ports).spec();
        with_approved(base, &self.approved)
    }
}

/// `base` plus every port of `approved`.
pub fn with_approved(base: &PortSpec, approved: &[Spanned<ApprovedPort>]) -> PortSpec {
    let mut tcp: BTreeSet<u16> = base.tcp_ports().iter().copied().collect();
    let mut udp: BTreeSet<u16> = base.udp_ports().iter().copied().collect();
    for a in approved {
        match a.value.protocol {
            ProtocolName::Tcp => tcp.insert(a.value.port),
            ProtocolName::Udp => udp.insert(a.value.port),
        };
    }
    let text = format!("T:{},U:{}", join(&tcp), join(&udp));
    // Built from valid ports, so it parses; empty lists are left out.
    let text = match (tcp.is_empty(), udp.is_empty()) {
        (false, false) => text,
        (false, true) => format!("T:{}", join(&tcp)),
        (true, false) => format!("U:{}", join(&udp)),
        (true, true) => return PortSpec::default(),
    };
    PortSpec::from_str(&text).unwrap_or_default()
}

fn join(ports: &BTreeSet<u16>) -> String {
    ports
        .iter()
        .map(u16::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

fn check_approvals(
    approved: &[Spanned<ApprovedPort>],
    key: &str,
    file: &str,
) -> Result<(), ManifestError> {
    let mut seen = BTreeSet::new();
    for (index, entry) in approved.iter().enumerate() {
        let (line, column) = position(entry);
        let fail = |field: &str, message: String| {
            Err(ManifestError::Invalid {
                file: file.to_string(),
                line,
                column,
                key: Some(format!("{key}[{index}].{field}")),
                message,
            })
        };
        let a = &entry.value;
        if a.port == 0 {
            return fail("port", "port 0 is not a port (ports are 1-65535)".into());
        }
        if a.justification.trim().is_empty() {
            return fail(
                "justification",
                format!("the approval of port {} has an empty justification", a.port),
            );
        }
        if !seen.insert((a.port, a.protocol as u8)) {
            return fail(
                "port",
                format!(
                    "port {}/{} is approved twice in this list",
                    a.port,
                    Protocol::from(a.protocol)
                ),
            );
        }
    }
    Ok(())
}

/// The key whose value is at `line`:`column` (1-based): the last `key:` before the column
/// on that line, else the nearest less-indented `key:` line above (a list item's key).
fn key_at(text: &str, line: u64, column: u64) -> Option<String> {
    let lines: Vec<&str> = text.lines().collect();
    let index = usize::try_from(line).ok()?.checked_sub(1)?;
    let current = lines.get(index)?;
    let column = usize::try_from(column).unwrap_or(usize::MAX);
    let before: String = current.chars().take(column.saturating_sub(1)).collect();
    // The error is at a key itself (an unknown key).
    let rest: String = current.chars().skip(column.saturating_sub(1)).collect();
    if let Some((key, _)) = rest.split_once(':')
        && !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_alphanumeric() || c == '_' || c == '-')
    {
        return Some(key.to_string());
    }
    if let Some(key) = last_key(&before) {
        return Some(key);
    }
    // The value starts the line (a list item or a block scalar): look upwards.
    let indent = |l: &str| l.len() - l.trim_start_matches([' ', '-']).len();
    let mut limit = indent(current);
    for above in lines[..index].iter().rev() {
        let trimmed = above.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        if indent(above) < limit || (indent(above) == limit && !above.trim_start().starts_with('-'))
        {
            if let Some(key) = last_key(above) {
                return Some(key);
            }
            limit = indent(above);
        }
    }
    None
}

/// The last plain `key:` of a piece of a YAML line.
fn last_key(piece: &str) -> Option<String> {
    let mut found = None;
    for (at, _) in piece.match_indices(':') {
        let head = &piece[..at];
        // Past the last character that cannot be part of a key (which may be multi-byte).
        let start = head
            .char_indices()
            .rev()
            .find(|(_, c)| !(c.is_alphanumeric() || *c == '_' || *c == '-'))
            .map_or(0, |(i, c)| i + c.len_utf8());
        let key = &head[start..];
        let after = piece[at + 1..].chars().next();
        if !key.is_empty() && !key.starts_with('-') && after.is_none_or(char::is_whitespace) {
            found = Some(key.to_string());
        }
    }
    found
}

/// The message of a YAML error without the source snippet, on one line.
fn plain_message(error: &serde_saphyr::Error) -> String {
    let text = error.without_snippet().to_string();
    let first = text.lines().next().unwrap_or("invalid manifest").trim();
    // The location is printed separately, in file:line:column form.
    let first = match first.rfind(" at line ") {
        Some(at) => &first[..at],
        None => first,
    };
    first.to_string()
}

/// The JSON Schema of [`Manifest`], pretty-printed with a trailing newline.
pub fn manifest_schema() -> String {
    let schema = schemars::schema_for!(Manifest);
    let mut text = serde_json::to_string_pretty(&schema).unwrap_or_default();
    text.push('\n');
    text
}

/// Targets to scan with one port set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanGroup {
    /// The ports.
    pub ports: PortSpec,
    /// The targets, in manifest order.
    pub targets: Vec<TargetSpec>,
}

impl Manifest {
    /// What to scan for a check in `env`: the targets of the selected assets, or only
    /// `only` when given (a target no asset lists is scanned with the default ports and
    /// the globally approved ones), grouped by port set.
    pub fn scan_plan(&self, env: Option<&str>, only: &[TargetSpec]) -> Vec<ScanGroup> {
        let mut groups: Vec<ScanGroup> = Vec::new();
        let mut add = |ports: PortSpec, target: TargetSpec| match groups
            .iter_mut()
            .find(|g| g.ports == ports)
        {
            Some(group) => {
                if !group.targets.contains(&target) {
                    group.targets.push(target);
                }
            }
            None => groups.push(ScanGroup {
                ports,
                targets: vec![target],
            }),
        };
        let for_asset = |asset: &Asset| {
            let ports = asset.scan_ports(&self.defaults);
            with_approved(&ports, &self.approved)
        };
        if only.is_empty() {
            for asset in self.assets_in(env) {
                for target in &asset.value.targets {
                    add(for_asset(&asset.value), target.value.0.clone());
                }
            }
        } else {
            for target in only {
                let asset = self.assets_in(env).find(|a| {
                    a.value
                        .targets
                        .iter()
                        .any(|t| t.value.0.to_string() == target.to_string())
                });
                let ports = match asset {
                    Some(asset) => for_asset(&asset.value),
                    None => with_approved(self.defaults.ports.spec(), &self.approved),
                };
                add(ports, target.clone());
            }
        }
        groups
    }
}
