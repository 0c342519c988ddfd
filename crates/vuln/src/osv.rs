//! OSV records (<https://ossf.github.io/osv-schema/>) of the Debian (`Debian:12`) and
//! Ubuntu (`Ubuntu:22.04:LTS`, `Ubuntu:Pro:18.04:LTS`, …) ecosystems.
//!
//! Read: `id`, `modified`, `withdrawn`, the CVE ids among `id`, `aliases`, `upstream`
//! and `related` (distributions name the CVEs an advisory fixes in `upstream` or
//! `related` rather than `aliases`), `summary`, `severity` (CVSS vectors), and for each
//! `affected[]` entry of a Debian or Ubuntu ecosystem: `package.ecosystem`,
//! `package.name`, `ranges[]` of type `ECOSYSTEM` (`introduced`, `fixed`,
//! `last_affected`) and `versions`. Entries of other ecosystems are skipped; a record with
//! none left is skipped whole.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::VulnError;
use crate::nvd::{Cvss, is_cve_id};
use crate::time::parse_timestamp;
use crate::version::parse_dpkg;

/// Longest OSV id, package name or ecosystem accepted, in bytes.
const MAX_NAME_LEN: usize = 256;

/// One OSV record as kept in the index.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct OsvRecord {
    pub id: String,
    pub modified: DateTime<Utc>,
    pub cves: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cvss_v31: Option<Cvss>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cvss_v40: Option<Cvss>,
    pub affected: Vec<OsvAffected>,
}

/// One package of one distribution release named by a record.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct OsvAffected {
    pub ecosystem: String,
    pub package: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ranges: Vec<Vec<OsvEvent>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub versions: Vec<String>,
}

/// A range event. `Introduced("0")` is "since the first version".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum OsvEvent {
    Introduced(String),
    Fixed(String),
    LastAffected(String),
}

impl OsvEvent {
    pub fn version(&self) -> &str {
        match self {
            OsvEvent::Introduced(v) | OsvEvent::Fixed(v) | OsvEvent::LastAffected(v) => v,
        }
    }
}

/// What one OSV file says.
#[derive(Debug)]
pub(crate) enum OsvItem {
    /// A record to add or replace.
    Record(Box<OsvRecord>),
    /// A withdrawn record, to remove.
    Withdrawn { id: String, modified: DateTime<Utc> },
    /// A record about no Debian or Ubuntu package.
    Skipped,
}

/// `Debian:12` → `Some(Debian)`, `Ubuntu:22.04:LTS` → `Some(Ubuntu)`.
pub(crate) fn ecosystem_family(ecosystem: &str) -> Option<crate::banner::DistroFamily> {
    let first = ecosystem.split(':').next().unwrap_or_default();
    match first {
        "Debian" => Some(crate::banner::DistroFamily::Debian),
        "Ubuntu" => Some(crate::banner::DistroFamily::Ubuntu),
        _ => None,
    }
}

/// The release an ecosystem names: `Debian:12` → `12`, `Ubuntu:Pro:18.04:LTS` → `18.04`.
pub(crate) fn ecosystem_release(ecosystem: &str) -> Option<&str> {
    let mut parts = ecosystem.split(':');
    match parts.next()? {
        "Debian" => parts.next().filter(|r| !r.is_empty()),
        "Ubuntu" => parts.find(|p| {
            let b = p.as_bytes();
            b.len() == 5
                && b[2] == b'.'
                && b[..2].iter().all(u8::is_ascii_digit)
                && b[3..].iter().all(u8::is_ascii_digit)
        }),
        _ => None,
    }
}

/// Whether an ecosystem is a paid extension (Ubuntu Pro, FIPS), whose fixes reach only
/// the hosts enrolled in it.
pub(crate) fn ecosystem_is_extension(ecosystem: &str) -> bool {
    ecosystem
        .split(':')
        .any(|p| p == "Pro" || p.starts_with("FIPS"))
}

// ---- the record as parsed -----------------------------------------------------------

#[derive(Deserialize)]
struct RawRecord {
    id: String,
    modified: String,
    #[serde(default)]
    withdrawn: Option<String>,
    #[serde(default)]
    aliases: Vec<String>,
    #[serde(default)]
    upstream: Vec<String>,
    #[serde(default)]
    related: Vec<String>,
    #[serde(default)]
    summary: Option<String>,
    #[serde(default)]
    severity: Vec<RawSeverity>,
    #[serde(default)]
    affected: Vec<RawAffected>,
}

#[derive(Deserialize)]
struct RawSeverity {
    #[serde(rename = "type")]
    kind: String,
    score: String,
}

#[derive(Deserialize)]
struct RawAffected {
    #[serde(default)]
    package: Option<RawPackage>,
    #[serde(default)]
    ranges: Vec<RawRange>,
    #[serde(default)]
    versions: Vec<String>,
}

#[derive(Deserialize)]
struct RawPackage {
    ecosystem: String,
    name: String,
}

#[derive(Deserialize)]
struct RawRange {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    events: Vec<RawEvent>,
}

#[derive(Deserialize)]
struct RawEvent {
    #[serde(default)]
    introduced: Option<String>,
    #[serde(default)]
    fixed: Option<String>,
    #[serde(default)]
    last_affected: Option<String>,
    #[serde(default)]
    limit: Option<String>,
}

/// Parses one OSV file: a record, or an array of records.
pub(crate) fn parse_file(path: &str, bytes: &[u8]) -> Result<Vec<OsvItem>, VulnError> {
    let trimmed = bytes
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .map(|i| bytes[i]);
    if trimmed == Some(b'[') {
        let values: Vec<serde_json::Value> = crate::read::json_document(path, bytes, "records")?;
        values
            .into_iter()
            .enumerate()
            .map(|(i, v)| {
                let raw: RawRecord = serde_path_to_error::deserialize(v).map_err(|e| {
                    let at = format!("[{i}].{}", e.path());
                    VulnError::Json {
                        path: path.to_owned(),
                        at,
                        line: 0,
                        column: 0,
                        message: e.into_inner().to_string(),
                    }
                })?;
                convert(path, &format!("[{i}]"), raw)
            })
            .collect()
    } else {
        let raw: RawRecord = crate::read::json_document(path, bytes, "record")?;
        Ok(vec![convert(path, "", raw)?])
    }
}

fn convert(path: &str, prefix: &str, raw: RawRecord) -> Result<OsvItem, VulnError> {
    let id = raw.id.trim().to_owned();
    let field = |name: &str| {
        if prefix.is_empty() {
            name.to_owned()
        } else {
            format!("{prefix}.{name}")
        }
    };
    if id.is_empty() || id.len() > MAX_NAME_LEN || id.chars().any(char::is_control) {
        return Err(VulnError::record(
            path,
            if prefix.is_empty() { "(no id)" } else { prefix },
            field("id"),
            &raw.id,
            "empty, longer than 256 bytes, or with control characters",
        ));
    }
    let err = |f: String, value: &str, reason: &str| VulnError::record(path, &id, f, value, reason);
    let modified = parse_timestamp(&raw.modified).ok_or_else(|| {
        err(
            field("modified"),
            &raw.modified,
            "not an RFC 3339 timestamp",
        )
    })?;
    if let Some(w) = &raw.withdrawn {
        parse_timestamp(w)
            .ok_or_else(|| err(field("withdrawn"), w, "not an RFC 3339 timestamp"))?;
        return Ok(OsvItem::Withdrawn { id, modified });
    }

    let mut cves: Vec<String> = std::iter::once(&id)
        .chain(&raw.aliases)
        .chain(&raw.upstream)
        .chain(&raw.related)
        .map(|s| s.trim())
        .filter(|s| is_cve_id(s))
        .map(str::to_owned)
        .collect();
    cves.sort();
    cves.dedup();

    let mut affected = Vec::new();
    for (ai, a) in raw.affected.into_iter().enumerate() {
        let abase = field(&format!("affected[{ai}]"));
        let Some(pkg) = a.package else { continue };
        if ecosystem_family(&pkg.ecosystem).is_none() {
            continue;
        }
        if ecosystem_release(&pkg.ecosystem).is_none() || pkg.ecosystem.len() > MAX_NAME_LEN {
            return Err(err(
                format!("{abase}.package.ecosystem"),
                &pkg.ecosystem,
                "a Debian or Ubuntu ecosystem without a release (Debian:12, Ubuntu:22.04:LTS)",
            ));
        }
        let name = pkg.name.trim();
        if name.is_empty()
            || name.len() > MAX_NAME_LEN
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
        {
            return Err(err(
                format!("{abase}.package.name"),
                &pkg.name,
                "not a Debian source package name",
            ));
        }
        let mut ranges = Vec::new();
        for (ri, r) in a.ranges.into_iter().enumerate() {
            if r.kind != "ECOSYSTEM" {
                continue;
            }
            let mut events = Vec::with_capacity(r.events.len());
            for (ei, e) in r.events.into_iter().enumerate() {
                let ebase = format!("{abase}.ranges[{ri}].events[{ei}]");
                let given = [
                    e.introduced.is_some(),
                    e.fixed.is_some(),
                    e.last_affected.is_some(),
                    e.limit.is_some(),
                ]
                .iter()
                .filter(|x| **x)
                .count();
                if given != 1 {
                    return Err(err(
                        ebase,
                        "",
                        "an event must have exactly one of introduced, fixed, last_affected, limit",
                    ));
                }
                let (kind, event) = if let Some(v) = e.introduced {
                    ("introduced", OsvEvent::Introduced(v))
                } else if let Some(v) = e.fixed {
                    ("fixed", OsvEvent::Fixed(v))
                } else if let Some(v) = e.last_affected {
                    ("last_affected", OsvEvent::LastAffected(v))
                } else {
                    continue; // `limit` is for GIT ranges.
                };
                let v = event.version();
                if !(kind == "introduced" && v == "0") {
                    parse_dpkg(v).map_err(|e| err(format!("{ebase}.{kind}"), v, &e.reason))?;
                }
                events.push(event);
            }
            ranges.push(events);
        }
        let mut versions = Vec::with_capacity(a.versions.len());
        for (vi, v) in a.versions.into_iter().enumerate() {
            parse_dpkg(&v).map_err(|e| err(format!("{abase}.versions[{vi}]"), &v, &e.reason))?;
            versions.push(v);
        }
        affected.push(OsvAffected {
            ecosystem: pkg.ecosystem,
            package: name.to_owned(),
            ranges,
            versions,
        });
    }
    if affected.is_empty() {
        return Ok(OsvItem::Skipped);
    }

    let vector = |prefix: &str, kind: &str| {
        raw.severity
            .iter()
            .find(|s| s.kind == kind && s.score.starts_with(prefix) && s.score.len() <= 256)
            .map(|s| Cvss {
                score: None,
                vector: s.score.clone(),
                severity: None,
            })
    };
    Ok(OsvItem::Record(Box::new(OsvRecord {
        cvss_v31: vector("CVSS:3.1/", "CVSS_V3"),
        cvss_v40: vector("CVSS:4.0/", "CVSS_V4"),
        summary: raw
            .summary
            .map(|s| s.chars().take(300).collect::<String>())
            .filter(|s| !s.is_empty()),
        id,
        modified,
        cves,
        affected,
    })))
}
