//! NVD CVE API / feed format 2.0: `{"vulnerabilities": [{"cve": {…}}, …]}`.
//!
//! Only the fields used for matching are read: `id`, `published`, `lastModified`,
//! `vulnStatus` (a `Rejected` CVE is removed), `descriptions`, `metrics.cvssMetricV31`
//! and `metrics.cvssMetricV40` (`cvssData.baseScore`, `vectorString`, `baseSeverity`;
//! NVD's own `Primary` metric is preferred), and `configurations[].nodes[].cpeMatch[]`.
//! Every other field is ignored.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::cpe::{CpeValue, parse_cpe23};
use crate::error::VulnError;
use crate::time::parse_timestamp;

/// Longest version bound or vector string accepted, in bytes.
const MAX_FIELD_LEN: usize = 256;
/// Description characters kept.
const MAX_DESCRIPTION_CHARS: usize = 1000;

/// A CVSS score as published.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cvss {
    /// The base score, 0.0 to 10.0 (absent when the source gives only a vector).
    pub score: Option<f64>,
    /// The vector string (`CVSS:3.1/AV:N/…`).
    pub vector: String,
    /// The base severity (`LOW`, `MEDIUM`, `HIGH`, `CRITICAL`) when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<String>,
}

/// One CVE as kept in the index.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct NvdCve {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub published: Option<DateTime<Utc>>,
    pub last_modified: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cvss_v31: Option<Cvss>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cvss_v40: Option<Cvss>,
    pub configurations: Vec<Configuration>,
}

impl NvdCve {
    /// The `vendor:product` keys of the application entries marked vulnerable.
    pub fn vulnerable_keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = self
            .configurations
            .iter()
            .flat_map(|c| &c.nodes)
            .flat_map(|n| &n.matches)
            .filter(|m| m.vulnerable && m.part == 'a')
            .map(|m| m.key.clone())
            .collect();
        keys.sort();
        keys.dedup();
        keys
    }

    pub fn cpe_match_count(&self) -> usize {
        self.configurations
            .iter()
            .flat_map(|c| &c.nodes)
            .map(|n| n.matches.len())
            .sum()
    }
}

/// A configuration: its nodes combined with AND or OR, optionally negated.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Configuration {
    #[serde(default, skip_serializing_if = "is_false")]
    pub and: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub negate: bool,
    pub nodes: Vec<Node>,
}

/// A node: its CPE matches combined with AND or OR, optionally negated.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Node {
    #[serde(default, skip_serializing_if = "is_false")]
    pub and: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub negate: bool,
    pub matches: Vec<CpeMatch>,
}

/// One `cpeMatch` entry.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct CpeMatch {
    pub vulnerable: bool,
    pub criteria: String,
    /// `vendor:product`, from `criteria`.
    pub key: String,
    /// `a`, `o` or `h`, from `criteria`.
    pub part: char,
    /// The version attribute, from `criteria`.
    pub version: CpeValue,
    /// The update attribute, from `criteria`.
    pub update: CpeValue,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_including: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_excluding: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_including: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_excluding: Option<String>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// What a feed says about one CVE.
#[derive(Debug)]
pub(crate) enum NvdItem {
    /// A CVE to add or replace.
    Cve(Box<NvdCve>),
    /// A rejected CVE, to remove.
    Rejected {
        id: String,
        last_modified: DateTime<Utc>,
    },
}

// ---- the feed as parsed -------------------------------------------------------------

#[derive(Deserialize)]
struct RawFeed {
    vulnerabilities: Vec<RawItem>,
}

#[derive(Deserialize)]
struct RawItem {
    cve: RawCve,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawCve {
    id: String,
    #[serde(default)]
    published: Option<String>,
    #[serde(default)]
    last_modified: Option<String>,
    #[serde(default)]
    vuln_status: Option<String>,
    #[serde(default)]
    descriptions: Vec<RawDescription>,
    #[serde(default)]
    metrics: RawMetrics,
    #[serde(default)]
    configurations: Vec<RawConfiguration>,
}

#[derive(Deserialize)]
struct RawDescription {
    lang: String,
    value: String,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct RawMetrics {
    #[serde(default)]
    cvss_metric_v31: Vec<RawMetric>,
    #[serde(default)]
    cvss_metric_v40: Vec<RawMetric>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawMetric {
    #[serde(default, rename = "type")]
    kind: Option<String>,
    cvss_data: RawCvssData,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawCvssData {
    base_score: f64,
    vector_string: String,
    #[serde(default)]
    base_severity: Option<String>,
}

#[derive(Deserialize)]
struct RawConfiguration {
    #[serde(default)]
    operator: Option<String>,
    #[serde(default)]
    negate: bool,
    nodes: Vec<RawNode>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawNode {
    #[serde(default)]
    operator: Option<String>,
    #[serde(default)]
    negate: bool,
    cpe_match: Vec<RawCpeMatch>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawCpeMatch {
    vulnerable: bool,
    criteria: String,
    #[serde(default)]
    version_start_including: Option<String>,
    #[serde(default)]
    version_start_excluding: Option<String>,
    #[serde(default)]
    version_end_including: Option<String>,
    #[serde(default)]
    version_end_excluding: Option<String>,
}

/// Parses a whole feed (already decompressed). Nothing is returned unless every record
/// is valid.
pub(crate) fn parse_feed(path: &str, bytes: &[u8]) -> Result<Vec<NvdItem>, VulnError> {
    let feed: RawFeed = crate::read::json_document(path, bytes, "feed")?;
    feed.vulnerabilities
        .into_iter()
        .enumerate()
        .map(|(i, item)| convert(path, i, item.cve))
        .collect()
}

fn convert(path: &str, index: usize, raw: RawCve) -> Result<NvdItem, VulnError> {
    let base = format!("vulnerabilities[{index}].cve");
    let id = raw.id.trim().to_owned();
    if !is_cve_id(&id) {
        return Err(VulnError::record(
            path,
            &format!("#{index}"),
            format!("{base}.id"),
            &raw.id,
            "not a CVE id (CVE-YYYY-NNNN)",
        ));
    }
    let rec_err = |field: String, value: &str, reason: &str| {
        VulnError::record(path, &id, field, value, reason)
    };
    let last_modified_raw = raw.last_modified.as_deref().or(raw.published.as_deref());
    let last_modified = match last_modified_raw {
        Some(s) => parse_timestamp(s).ok_or_else(|| {
            rec_err(
                format!("{base}.lastModified"),
                s,
                "not a timestamp (YYYY-MM-DDTHH:MM:SS[.fff])",
            )
        })?,
        None => {
            return Err(rec_err(
                format!("{base}.lastModified"),
                "",
                "missing (needed to keep the newest copy of a CVE)",
            ));
        }
    };
    if raw
        .vuln_status
        .as_deref()
        .is_some_and(|s| s.eq_ignore_ascii_case("rejected"))
    {
        return Ok(NvdItem::Rejected { id, last_modified });
    }
    let published = match raw.published.as_deref() {
        Some(s) => Some(
            parse_timestamp(s)
                .ok_or_else(|| rec_err(format!("{base}.published"), s, "not a timestamp"))?,
        ),
        None => None,
    };
    let description = raw
        .descriptions
        .iter()
        .find(|d| d.lang.eq_ignore_ascii_case("en"))
        .or(raw.descriptions.first())
        .map(|d| d.value.chars().take(MAX_DESCRIPTION_CHARS).collect())
        .unwrap_or_default();
    let cvss_v31 = pick_metric(&raw.metrics.cvss_metric_v31, "CVSS:3.1/").map_err(
        |(i, field, value, reason)| {
            rec_err(
                format!("{base}.metrics.cvssMetricV31[{i}].cvssData.{field}"),
                &value,
                reason,
            )
        },
    )?;
    let cvss_v40 = pick_metric(&raw.metrics.cvss_metric_v40, "CVSS:4.0/").map_err(
        |(i, field, value, reason)| {
            rec_err(
                format!("{base}.metrics.cvssMetricV40[{i}].cvssData.{field}"),
                &value,
                reason,
            )
        },
    )?;

    let mut configurations = Vec::with_capacity(raw.configurations.len());
    for (ci, rc) in raw.configurations.into_iter().enumerate() {
        let cbase = format!("{base}.configurations[{ci}]");
        let and = parse_operator(rc.operator.as_deref())
            .map_err(|v| rec_err(format!("{cbase}.operator"), &v, "not AND or OR"))?;
        let mut nodes = Vec::with_capacity(rc.nodes.len());
        for (ni, rn) in rc.nodes.into_iter().enumerate() {
            let nbase = format!("{cbase}.nodes[{ni}]");
            let node_and = parse_operator(rn.operator.as_deref())
                .map_err(|v| rec_err(format!("{nbase}.operator"), &v, "not AND or OR"))?;
            let mut matches = Vec::with_capacity(rn.cpe_match.len());
            for (mi, m) in rn.cpe_match.into_iter().enumerate() {
                let mbase = format!("{nbase}.cpeMatch[{mi}]");
                let cpe = parse_cpe23(&m.criteria).map_err(|e| {
                    rec_err(format!("{mbase}.criteria"), &m.criteria, &e.to_string())
                })?;
                let bound = |name: &str, v: Option<String>| -> Result<Option<String>, VulnError> {
                    match v {
                        None => Ok(None),
                        Some(v) if v.trim().is_empty() || v.len() > MAX_FIELD_LEN => Err(rec_err(
                            format!("{mbase}.{name}"),
                            &v,
                            "empty or longer than 256 bytes",
                        )),
                        Some(v) => Ok(Some(v.trim().to_owned())),
                    }
                };
                matches.push(CpeMatch {
                    vulnerable: m.vulnerable,
                    key: cpe.key(),
                    part: cpe.part,
                    version: cpe.version,
                    update: cpe.update,
                    start_including: bound("versionStartIncluding", m.version_start_including)?,
                    start_excluding: bound("versionStartExcluding", m.version_start_excluding)?,
                    end_including: bound("versionEndIncluding", m.version_end_including)?,
                    end_excluding: bound("versionEndExcluding", m.version_end_excluding)?,
                    criteria: m.criteria,
                });
            }
            nodes.push(Node {
                and: node_and,
                negate: rn.negate,
                matches,
            });
        }
        configurations.push(Configuration {
            and,
            negate: rc.negate,
            nodes,
        });
    }
    Ok(NvdItem::Cve(Box::new(NvdCve {
        id,
        published,
        last_modified,
        description,
        cvss_v31,
        cvss_v40,
        configurations,
    })))
}

type MetricError = (usize, &'static str, String, &'static str);

fn pick_metric(metrics: &[RawMetric], prefix: &str) -> Result<Option<Cvss>, MetricError> {
    for (i, m) in metrics.iter().enumerate() {
        let d = &m.cvss_data;
        if !(d.base_score.is_finite() && (0.0..=10.0).contains(&d.base_score)) {
            return Err((
                i,
                "baseScore",
                d.base_score.to_string(),
                "not between 0 and 10",
            ));
        }
        if d.vector_string.len() > MAX_FIELD_LEN || !d.vector_string.starts_with(prefix) {
            return Err((
                i,
                "vectorString",
                d.vector_string.clone(),
                "not a vector of this CVSS version",
            ));
        }
    }
    let chosen = metrics
        .iter()
        .find(|m| m.kind.as_deref() == Some("Primary"))
        .or(metrics.first());
    Ok(chosen.map(|m| Cvss {
        score: Some(m.cvss_data.base_score),
        vector: m.cvss_data.vector_string.clone(),
        severity: m
            .cvss_data
            .base_severity
            .as_ref()
            .map(|s| s.chars().take(16).collect()),
    }))
}

/// `true` for AND, `false` for OR or absent; the value refused otherwise.
fn parse_operator(op: Option<&str>) -> Result<bool, String> {
    match op {
        None => Ok(false),
        Some(s) if s.eq_ignore_ascii_case("or") => Ok(false),
        Some(s) if s.eq_ignore_ascii_case("and") => Ok(true),
        Some(s) => Err(s.to_owned()),
    }
}

/// `CVE-` then a 4-digit year, `-`, and 4 or more digits.
pub(crate) fn is_cve_id(s: &str) -> bool {
    let Some(rest) = s.strip_prefix("CVE-") else {
        return false;
    };
    let Some((year, number)) = rest.split_once('-') else {
        return false;
    };
    year.len() == 4
        && year.bytes().all(|b| b.is_ascii_digit())
        && (4..=19).contains(&number.len())
        && number.bytes().all(|b| b.is_ascii_digit())
}
