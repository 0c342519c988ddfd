//! Known vulnerabilities of what detection found: each detected product and version (and
//! the banner it came from) looked up in the vulnerability index of the history database,
//! when one was imported there (`portgate data import nvd|osv`).

use std::collections::{BTreeSet, HashMap};

use portgate_model::{
    ClearedVulnerability, CvssScore, DataSource, Detection, ScanReport, VulnConfidence,
    Vulnerability, VulnerabilityReport,
};
use portgate_store::Store;
use portgate_vuln::{Assessment, Confidence, Cvss, Evidence, Source, VulnIndex};

use crate::Error;

/// Longest banner line handed to the banner parser.
const BANNER_CHARS: usize = 256;

/// Adds the known vulnerabilities of every detected product to `report` when the store
/// holds vulnerability data. Returns whether it did (false: no data imported). The index
/// rows read are only those of the products found.
pub async fn annotate_vulnerabilities(
    report: &mut ScanReport,
    store: &Store,
) -> Result<bool, Error> {
    if !store
        .has_vulnerability_data()
        .await
        .map_err(Error::history)?
    {
        return Ok(false);
    }
    let keys = vulnerability_keys(report);
    let index = store
        .vulnerability_index(&keys)
        .await
        .map_err(Error::history)?;
    annotate_with(report, &index);
    Ok(true)
}

/// The index keys (`portgate_vuln::lookup_keys`) of every detected product of `report`,
/// sorted and without repeats: the rows a store reads to answer its lookups.
pub fn vulnerability_keys(report: &ScanReport) -> Vec<String> {
    let mut keys: BTreeSet<String> = BTreeSet::new();
    for s in report.hosts.iter().flat_map(|h| &h.services) {
        if let Some((product, version, banner)) = lookup_of(&s.detection) {
            keys.extend(portgate_vuln::lookup_keys(
                &product,
                &version,
                banner.as_deref(),
            ));
        }
    }
    keys.into_iter().collect()
}

/// Adds what `index` knows of every detected product to `report`. A fleet runs the same
/// few versions many times: each distinct product, version and banner is assessed once.
pub fn annotate_with(report: &mut ScanReport, index: &VulnIndex) {
    let data = data_sources(index);
    let mut seen: HashMap<(String, String, Option<String>), VulnerabilityReport> = HashMap::new();
    for host in &mut report.hosts {
        for s in &mut host.services {
            if let Some(key) = lookup_of(&s.detection) {
                let found = seen
                    .entry(key)
                    .or_insert_with_key(|(product, version, banner)| {
                        report_of(
                            index.assess(product, version, banner.as_deref()),
                            data.clone(),
                        )
                    })
                    .clone();
                s.detection.vulnerabilities = Some(found);
            }
        }
    }
}

/// The product, version and banner a detection gives for a lookup, if it names a product.
fn lookup_of(d: &Detection) -> Option<(String, String, Option<String>)> {
    let product = d.product.clone().filter(|p| !p.trim().is_empty())?;
    let version = d.version.clone().unwrap_or_default();
    let banner = d
        .http
        .as_ref()
        .and_then(|h| h.server.clone())
        .or_else(|| {
            let text = String::from_utf8_lossy(d.evidence.as_bytes());
            text.lines()
                .next()
                .map(|l| l.chars().take(BANNER_CHARS).collect::<String>())
        })
        .filter(|b| !b.trim().is_empty());
    Some((product, version, banner))
}

fn data_sources(index: &VulnIndex) -> Vec<DataSource> {
    let stats = index.stats();
    [(Source::Nvd, stats.nvd_date), (Source::Osv, stats.osv_date)]
        .into_iter()
        .filter(|(_, d)| d.effective().is_some())
        .map(|(s, d)| DataSource {
            source: s.to_string(),
            date: d.effective(),
        })
        .collect()
}

fn report_of(a: Assessment, data: Vec<DataSource>) -> VulnerabilityReport {
    let distribution = a.distro.as_ref().map(|d| {
        let release = d
            .release
            .as_deref()
            .map(|r| format!(" {r}"))
            .unwrap_or_default();
        match &a.package_version {
            Some(v) => format!("{}{release}: {v}", d.family),
            None => format!("{}{release}", d.family),
        }
    });
    VulnerabilityReport {
        data,
        cpe_keys: a.cpe_keys,
        distribution,
        matches: a
            .matches
            .into_iter()
            .map(|m| Vulnerability {
                id: m.cve,
                confidence: confidence(m.confidence),
                cvss_v31: m.cvss_v31.map(cvss),
                cvss_v40: m.cvss_v40.map(cvss),
                cpe: m.cpe,
                package_version: m.package_version,
                evidence: m.evidence.iter().map(evidence_line).collect(),
                sources: m
                    .sources
                    .into_iter()
                    .map(|s| DataSource {
                        source: s.source.to_string(),
                        date: s.date,
                    })
                    .collect(),
                note: m.note,
                summary: m.summary,
            })
            .collect(),
        cleared: a
            .cleared_by_distribution
            .into_iter()
            .map(|c| ClearedVulnerability {
                id: c.cve,
                package: c.package,
                package_version: c.package_version,
                fixed_by: c
                    .fixes
                    .into_iter()
                    .map(|f| match f.fixed {
                        Some(v) => format!("{}: fixed in {v}", f.advisory),
                        None => format!("{}: version outside its ranges", f.advisory),
                    })
                    .collect(),
            })
            .collect(),
        notes: a.notes,
    }
}

fn confidence(c: Confidence) -> VulnConfidence {
    match c {
        Confidence::DistroVerified => VulnConfidence::DistroVerified,
        Confidence::UpstreamVersion => VulnConfidence::UpstreamVersion,
        Confidence::PossiblyBackported => VulnConfidence::PossiblyBackported,
        Confidence::CpeGuess => VulnConfidence::CpeGuess,
    }
}

fn cvss(c: Cvss) -> CvssScore {
    CvssScore {
        score: c.score,
        vector: c.vector,
        severity: c.severity,
    }
}

/// One line per range: what held the version.
fn evidence_line(e: &Evidence) -> String {
    match e {
        Evidence::NvdRange {
            criteria,
            start_including,
            start_excluding,
            end_including,
            end_excluding,
            ..
        } => {
            let mut bounds = Vec::new();
            if let Some(v) = start_including {
                bounds.push(format!(">= {v}"));
            }
            if let Some(v) = start_excluding {
                bounds.push(format!("> {v}"));
            }
            if let Some(v) = end_including {
                bounds.push(format!("<= {v}"));
            }
            if let Some(v) = end_excluding {
                bounds.push(format!("< {v}"));
            }
            if bounds.is_empty() {
                format!("NVD {criteria}")
            } else {
                format!("NVD {criteria} {}", bounds.join(", "))
            }
        }
        Evidence::OsvRange {
            advisory,
            ecosystem,
            package,
            introduced,
            fixed,
            last_affected,
            listed,
        } => {
            let mut parts = Vec::new();
            if let Some(v) = introduced {
                parts.push(format!("introduced {v}"));
            }
            if let Some(v) = fixed {
                parts.push(format!("fixed {v}"));
            }
            if let Some(v) = last_affected {
                parts.push(format!("last affected {v}"));
            }
            if *listed {
                parts.push("version listed".to_owned());
            }
            format!("{advisory} {ecosystem} {package}: {}", parts.join(", "))
        }
    }
}
