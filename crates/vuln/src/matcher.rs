//! Matching a detected product against the index.
//!
//! # Steps
//!
//! 1. The product name is looked up in the [`ProductTable`]; its CPE `vendor:product`
//!    pairs are the keys. A name that is not in the table is matched against the CPE
//!    product names of the imported data (`lighttpd` → `lighttpd:lighttpd`): a guess.
//! 2. NVD: each CVE filed under a key has its configurations evaluated against the
//!    version (three-valued: true, false, unknown). A `cpeMatch` entry of the product
//!    is true when the version is in its range (or equals its exact version); an entry
//!    of another product is false when marked vulnerable (it is that product's flaw) and
//!    *unknown* when not (a platform or context — `o:`/`h:` parts, or an application the
//!    product runs with — that one detected application cannot verify). Nodes and
//!    configurations combine their entries with AND/OR (false wins an AND, true an OR,
//!    unknown otherwise) and `negate` swaps true and false. A configuration matches when
//!    it is true, or unknown, with a vulnerable entry of the product true in one of its
//!    non-negated nodes; the unknown case is reported as [`Confidence::CpeGuess`].
//! 3. Distribution: when the banner names Debian or Ubuntu, the package version
//!    (`epoch:upstream-revision`) is compared with dpkg ordering against the OSV records
//!    of the product's source package in that release (see [`crate::banner`] for how the
//!    release is read; when the banner does not say it, the candidate releases are those
//!    whose records name a package version with the same upstream version, and all of
//!    them must agree). A range is walked as OSV specifies: events sorted, `introduced`
//!    opens, `fixed` closes at its version, `last_affected` closes after it; a version in
//!    `versions` is affected. When records disagree about one CVE in one release, a
//!    range holding the version that is closed by a later fix wins (the version is
//!    affected), then a fix at or below the version (patched), then an open-ended range
//!    (affected).
//!
//! # Confidence
//!
//! | confidence | when |
//! |---|---|
//! | `distro-verified` | the distribution's records put the package version in an affected range |
//! | `upstream-version` | no distribution in the banner; an NVD configuration is true for the version |
//! | `possibly-backported` | the banner names a distribution, the upstream version is in an NVD range, but no advisory data of that distribution can settle it (none imported for the package and release, no package revision in the banner, no record naming the CVE, or candidate releases that disagree) |
//! | `cpe-guess` | the product was mapped by name only, or the configuration's platform part could not be verified |
//!
//! A CVE that the distribution's records say is fixed in (or does not affect) the
//! package version is not listed; it is reported in
//! [`Assessment::cleared_by_distribution`].

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::banner::{DistroFamily, DistroHint, parse_banner};
use crate::cpe::{Cpe, CpeValue};
use crate::index::{Source, VulnIndex};
use crate::nvd::{Configuration, CpeMatch, Cvss, NvdCve};
use crate::osv::{
    OsvAffected, OsvEvent, ecosystem_family, ecosystem_is_extension, ecosystem_release,
};
use crate::products::{
    NormalizedVersion, ProductEntry, ProductTable, VersionScheme, normalize_version,
};
use crate::version::{compare_dpkg, compare_upstream, dpkg_upstream, parse_dpkg};

/// How sure a match is (see the [module documentation](self)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Confidence {
    /// The distribution's advisories put the package version in an affected range.
    DistroVerified,
    /// The upstream version is in an NVD range, and no distribution was named.
    UpstreamVersion,
    /// The upstream version is in an NVD range, but the distribution named by the banner
    /// may have backported the fix and no advisory data settles it.
    PossiblyBackported,
    /// The product was mapped by name only, or a platform condition is unverified.
    CpeGuess,
}

impl Confidence {
    /// The kebab-case name (`distro-verified` …).
    pub fn as_str(&self) -> &'static str {
        match self {
            Confidence::DistroVerified => "distro-verified",
            Confidence::UpstreamVersion => "upstream-version",
            Confidence::PossiblyBackported => "possibly-backported",
            Confidence::CpeGuess => "cpe-guess",
        }
    }
}

impl std::fmt::Display for Confidence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A source and the date of its data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceDate {
    /// The source.
    pub source: Source,
    /// Its dataset date, or the newest record's (see [`crate::DataDate`]).
    pub date: Option<DateTime<Utc>>,
}

/// Why a CVE matched.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Evidence {
    /// An NVD `cpeMatch` entry that holds the version.
    NvdRange {
        /// The entry's CPE (`cpe:2.3:a:openbsd:openssh:*:…`).
        criteria: String,
        /// `versionStartIncluding`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        start_including: Option<String>,
        /// `versionStartExcluding`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        start_excluding: Option<String>,
        /// `versionEndIncluding`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        end_including: Option<String>,
        /// `versionEndExcluding`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        end_excluding: Option<String>,
        /// The index of the configuration in the CVE.
        configuration: usize,
        /// Whether the configuration also requires a platform that was not verified.
        platform_unverified: bool,
    },
    /// An OSV range (or version list) of a distribution that holds the package version.
    OsvRange {
        /// The advisory's id (`DSA-5724-1`, `UBUNTU-CVE-2024-6387` …).
        advisory: String,
        /// The ecosystem (`Debian:12`).
        ecosystem: String,
        /// The source package.
        package: String,
        /// The `introduced` event that opened the range (`0`: from the start).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        introduced: Option<String>,
        /// The `fixed` event that closes it, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        fixed: Option<String>,
        /// The `last_affected` event that closes it, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        last_affected: Option<String>,
        /// Whether the version is listed in the record's `versions`.
        listed: bool,
    },
}

/// One vulnerability that applies to the product.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VulnMatch {
    /// The CVE id, or the advisory's id when it names no CVE.
    pub cve: String,
    /// How sure the match is.
    pub confidence: Confidence,
    /// CVSS v3.1, when published.
    pub cvss_v31: Option<Cvss>,
    /// CVSS v4.0, when published.
    pub cvss_v40: Option<Cvss>,
    /// The CPE of the product at its version that was matched
    /// (`cpe:2.3:a:openbsd:openssh:9.2:p1:*:*:*:*:*:*`).
    pub cpe: Option<String>,
    /// The distribution package version compared, when one was.
    pub package_version: Option<String>,
    /// The ranges that hold the version.
    pub evidence: Vec<Evidence>,
    /// The sources used and their dates.
    pub sources: Vec<SourceDate>,
    /// Why the confidence is what it is, when that needs saying.
    pub note: Option<String>,
    /// NVD's description or the advisory's summary.
    pub summary: Option<String>,
}

/// A CVE that the upstream version matched or a distribution record named, and that the
/// distribution's records say does not affect the package version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DistroClearance {
    /// The CVE id (or advisory id).
    pub cve: String,
    /// The ecosystems whose records cleared it.
    pub ecosystems: Vec<String>,
    /// The source package.
    pub package: String,
    /// The package version compared.
    pub package_version: String,
    /// The advisories that clear it.
    pub fixes: Vec<AdvisoryFix>,
}

/// An advisory's word on a package version.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AdvisoryFix {
    /// The advisory's id (`DSA-5724-1`).
    pub advisory: String,
    /// The version that fixed it, at or below the package version (`None`: the version
    /// is outside every range of the advisory).
    pub fixed: Option<String>,
}

/// The whole answer of a lookup: the matches and how they were found.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Assessment {
    /// The product's name in the table, if it is there.
    pub product: Option<String>,
    /// The CPE `vendor:product` keys searched.
    pub cpe_keys: Vec<String>,
    /// Whether the keys were found by the product's name only (not in the table).
    pub mapped_by_name_only: bool,
    /// The version as matched.
    pub version: Option<NormalizedVersion>,
    /// What the banner said about a distribution.
    pub distro: Option<DistroHint>,
    /// The distribution package version built from the banner.
    pub package_version: Option<String>,
    /// The source package whose advisories were read.
    pub distro_package: Option<String>,
    /// The ecosystems whose advisories were compared (`Debian:12` …).
    pub distro_ecosystems: Vec<String>,
    /// The vulnerabilities that apply, highest CVSS first.
    pub matches: Vec<VulnMatch>,
    /// The CVEs the distribution's records clear for this package version.
    pub cleared_by_distribution: Vec<DistroClearance>,
    /// What could not be done, and why.
    pub notes: Vec<String>,
}

// ---- NVD evaluation ---------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tri {
    True,
    False,
    Unknown,
}

impl Tri {
    fn not(self) -> Tri {
        match self {
            Tri::True => Tri::False,
            Tri::False => Tri::True,
            Tri::Unknown => Tri::Unknown,
        }
    }

    fn combine(and: bool, items: impl Iterator<Item = Tri>) -> Tri {
        let (mut any_true, mut any_false, mut any_unknown, mut any) = (false, false, false, false);
        for t in items {
            any = true;
            match t {
                Tri::True => any_true = true,
                Tri::False => any_false = true,
                Tri::Unknown => any_unknown = true,
            }
        }
        if !any {
            return Tri::False;
        }
        if and {
            if any_false {
                Tri::False
            } else if any_unknown {
                Tri::Unknown
            } else {
                Tri::True
            }
        } else if any_true {
            Tri::True
        } else if any_unknown {
            Tri::Unknown
        } else {
            Tri::False
        }
    }
}

/// Whether an entry of the product holds the version.
pub(crate) fn cpe_match_holds(m: &CpeMatch, v: &NormalizedVersion) -> bool {
    let update_ok = match &m.update {
        CpeValue::Any => true,
        CpeValue::NotApplicable => v.update.is_none(),
        CpeValue::Value(u) => v
            .update
            .as_deref()
            .is_some_and(|x| x.eq_ignore_ascii_case(u)),
    };
    let has_range = m.start_including.is_some()
        || m.start_excluding.is_some()
        || m.end_including.is_some()
        || m.end_excluding.is_some();
    if has_range {
        match &m.version {
            CpeValue::Any => {}
            CpeValue::NotApplicable => return false,
            CpeValue::Value(x) => {
                if compare_upstream(&v.full, x) != Ordering::Equal
                    && compare_upstream(&v.base, x) != Ordering::Equal
                {
                    return false;
                }
            }
        }
        if !update_ok {
            return false;
        }
        let c = |bound: &Option<String>| bound.as_deref().map(|b| compare_upstream(&v.full, b));
        if c(&m.start_including).is_some_and(|o| o == Ordering::Less) {
            return false;
        }
        if c(&m.start_excluding).is_some_and(|o| o != Ordering::Greater) {
            return false;
        }
        if c(&m.end_including).is_some_and(|o| o == Ordering::Greater) {
            return false;
        }
        if c(&m.end_excluding).is_some_and(|o| o != Ordering::Less) {
            return false;
        }
        return true;
    }
    match &m.version {
        CpeValue::Any => update_ok,
        CpeValue::NotApplicable => false,
        CpeValue::Value(x) => {
            let whole = compare_upstream(&v.full, x) == Ordering::Equal
                && matches!(m.update, CpeValue::Any | CpeValue::NotApplicable);
            whole || (compare_upstream(&v.base, x) == Ordering::Equal && update_ok)
        }
    }
}

struct NvdHit {
    platform_unverified: bool,
    evidence: Vec<Evidence>,
    key: String,
}

fn evaluate_cve(cve: &NvdCve, keys: &BTreeSet<String>, v: &NormalizedVersion) -> Option<NvdHit> {
    let mut best: Option<NvdHit> = None;
    for (ci, config) in cve.configurations.iter().enumerate() {
        let Some(hit) = evaluate_configuration(ci, config, keys, v) else {
            continue;
        };
        match &best {
            Some(b) if !b.platform_unverified || hit.platform_unverified => {}
            _ => best = Some(hit),
        }
    }
    best
}

fn evaluate_configuration(
    ci: usize,
    config: &Configuration,
    keys: &BTreeSet<String>,
    v: &NormalizedVersion,
) -> Option<NvdHit> {
    let mut evidence = Vec::new();
    let mut key = None;
    let node_results = config.nodes.iter().map(|node| {
        let entries = node.matches.iter().map(|m| {
            if m.part == 'a' && keys.contains(&m.key) {
                if cpe_match_holds(m, v) {
                    if m.vulnerable && !node.negate {
                        evidence.push(m);
                    }
                    Tri::True
                } else {
                    Tri::False
                }
            } else if m.vulnerable {
                Tri::False
            } else {
                Tri::Unknown
            }
        });
        let t = Tri::combine(node.and, entries.collect::<Vec<_>>().into_iter());
        if node.negate { t.not() } else { t }
    });
    let results: Vec<Tri> = node_results.collect();
    let mut result = Tri::combine(config.and, results.into_iter());
    if config.negate {
        result = result.not();
    }
    if result == Tri::False || evidence.is_empty() {
        return None;
    }
    let platform_unverified = result == Tri::Unknown;
    let evidence = evidence
        .into_iter()
        .map(|m| {
            if key.is_none() {
                key = Some(m.key.clone());
            }
            Evidence::NvdRange {
                criteria: m.criteria.clone(),
                start_including: m.start_including.clone(),
                start_excluding: m.start_excluding.clone(),
                end_including: m.end_including.clone(),
                end_excluding: m.end_excluding.clone(),
                configuration: ci,
                platform_unverified,
            }
        })
        .collect();
    Some(NvdHit {
        platform_unverified,
        evidence,
        key: key.unwrap_or_default(),
    })
}

// ---- OSV evaluation ---------------------------------------------------------------------

/// What one release's records say about one CVE for the package version.
#[derive(Debug, Clone)]
enum Verdict {
    /// In a range closed by a later fix.
    AffectedFixLater(Vec<Evidence>),
    /// Fixed at or below the version.
    Fixed(Vec<(String, Option<String>)>),
    /// In an open-ended range, or listed.
    AffectedOpen(Vec<Evidence>),
    /// In no range.
    NotAffected(Vec<(String, Option<String>)>),
}

impl Verdict {
    fn rank(&self) -> u8 {
        match self {
            Verdict::AffectedFixLater(_) => 3,
            Verdict::Fixed(_) => 2,
            Verdict::AffectedOpen(_) => 1,
            Verdict::NotAffected(_) => 0,
        }
    }

    fn affected(&self) -> bool {
        matches!(
            self,
            Verdict::AffectedFixLater(_) | Verdict::AffectedOpen(_)
        )
    }

    /// Keeps the stronger verdict; equal ones pool their evidence.
    fn merge(self, other: Verdict) -> Verdict {
        match self.rank().cmp(&other.rank()) {
            Ordering::Greater => self,
            Ordering::Less => other,
            Ordering::Equal => match (self, other) {
                (Verdict::AffectedFixLater(mut a), Verdict::AffectedFixLater(b)) => {
                    a.extend(b);
                    Verdict::AffectedFixLater(a)
                }
                (Verdict::AffectedOpen(mut a), Verdict::AffectedOpen(b)) => {
                    a.extend(b);
                    Verdict::AffectedOpen(a)
                }
                (Verdict::Fixed(mut a), Verdict::Fixed(b)) => {
                    a.extend(b);
                    Verdict::Fixed(a)
                }
                (Verdict::NotAffected(mut a), Verdict::NotAffected(b)) => {
                    a.extend(b);
                    Verdict::NotAffected(a)
                }
                (x, _) => x,
            },
        }
    }
}

fn dpkg_cmp(event_version: &str, pv: &str) -> Option<Ordering> {
    compare_dpkg(event_version, pv).ok()
}

/// One affected entry's verdict for the package version.
fn entry_verdict(advisory: &str, a: &OsvAffected, pv: &str) -> Verdict {
    let evidence = |introduced: Option<String>,
                    fixed: Option<String>,
                    last_affected: Option<String>,
                    listed: bool| Evidence::OsvRange {
        advisory: advisory.to_owned(),
        ecosystem: a.ecosystem.clone(),
        package: a.package.clone(),
        introduced,
        fixed,
        last_affected,
        listed,
    };
    let mut verdict: Option<Verdict> = None;
    let mut add = |v: Verdict| {
        verdict = Some(match verdict.take() {
            Some(old) => old.merge(v),
            None => v,
        });
    };
    if a.versions
        .iter()
        .any(|x| dpkg_cmp(x, pv) == Some(Ordering::Equal))
    {
        add(Verdict::AffectedOpen(vec![evidence(
            None, None, None, true,
        )]));
    }
    for range in &a.ranges {
        let mut events: Vec<(&OsvEvent, Option<debversion::Version>)> = range
            .iter()
            .filter_map(|e| match e {
                OsvEvent::Introduced(v) if v == "0" => Some((e, None)),
                _ => parse_dpkg(e.version()).ok().map(|p| (e, Some(p))),
            })
            .collect();
        events.sort_by(|x, y| match (&x.1, &y.1) {
            (None, None) => Ordering::Equal,
            (None, Some(_)) => Ordering::Less,
            (Some(_), None) => Ordering::Greater,
            (Some(a), Some(b)) => a.cmp(b),
        });
        let Ok(pv_parsed) = parse_dpkg(pv) else {
            continue;
        };
        let mut affected = false;
        let mut last_introduced: Option<String> = None;
        let mut closed_by: Option<String> = None;
        let mut after: (Option<String>, Option<String>) = (None, None);
        for (event, parsed) in &events {
            let ord = parsed
                .as_ref()
                .map_or(Ordering::Less, |p| p.cmp(&pv_parsed));
            match event {
                OsvEvent::Introduced(v) if ord != Ordering::Greater => {
                    affected = true;
                    last_introduced = Some(v.clone());
                }
                OsvEvent::Fixed(v) if ord != Ordering::Greater => {
                    affected = false;
                    closed_by = Some(v.clone());
                }
                OsvEvent::LastAffected(_) if ord == Ordering::Less => {
                    affected = false;
                    closed_by = None;
                }
                OsvEvent::Fixed(v) if after.0.is_none() && after.1.is_none() => {
                    after.0 = Some(v.clone());
                }
                OsvEvent::LastAffected(v) if after.0.is_none() && after.1.is_none() => {
                    after.1 = Some(v.clone());
                }
                _ => {}
            }
        }
        if affected {
            let ev = evidence(last_introduced, after.0.clone(), after.1.clone(), false);
            if after.0.is_some() || after.1.is_some() {
                add(Verdict::AffectedFixLater(vec![ev]));
            } else {
                add(Verdict::AffectedOpen(vec![ev]));
            }
        } else if let Some(fixed) = closed_by {
            add(Verdict::Fixed(vec![(advisory.to_owned(), Some(fixed))]));
        } else {
            add(Verdict::NotAffected(vec![(advisory.to_owned(), None)]));
        }
    }
    verdict.unwrap_or(Verdict::NotAffected(vec![(advisory.to_owned(), None)]))
}

/// An advisory's id and one of its affected entries.
type AdvisoryEntry<'a> = (&'a str, &'a OsvAffected);

/// CVSS and summary of a distribution record.
struct RecordInfo {
    cvss_v31: Option<Cvss>,
    cvss_v40: Option<Cvss>,
    summary: Option<String>,
}

/// The distribution side of an assessment.
struct DistroResult {
    /// CVE → (ecosystem → verdict).
    verdicts: BTreeMap<String, BTreeMap<String, Verdict>>,
    /// CVSS and summary of the records, by CVE.
    record_info: BTreeMap<String, RecordInfo>,
    package: String,
    package_version: String,
    ecosystems: Vec<String>,
}

// ---- the lookup -------------------------------------------------------------------------

impl VulnIndex {
    /// The vulnerabilities of a product at a version, using the built-in product table.
    /// `banner` (optional) is what the service sent (`SSH-2.0-OpenSSH_9.2p1
    /// Debian-2+deb12u3`); it gives the distribution's package version. An empty
    /// `version` is taken from the banner. See [`VulnIndex::assess`] for the reasons
    /// behind an empty answer.
    pub fn lookup(&self, product: &str, version: &str, banner: Option<&str>) -> Vec<VulnMatch> {
        self.assess(product, version, banner).matches
    }

    /// Like [`VulnIndex::lookup`], with the whole answer: what was searched, what the
    /// distribution's records cleared, and notes on what could not be done.
    pub fn assess(&self, product: &str, version: &str, banner: Option<&str>) -> Assessment {
        self.assess_with(ProductTable::builtin(), product, version, banner)
    }

    /// Like [`VulnIndex::assess`], with another product table.
    pub fn assess_with(
        &self,
        table: &ProductTable,
        product: &str,
        version: &str,
        banner: Option<&str>,
    ) -> Assessment {
        let mut out = Assessment::default();
        let banner_info = banner.map(parse_banner).unwrap_or_default();
        let product = if product.trim().is_empty() {
            banner_info.product.as_deref().unwrap_or_default()
        } else {
            product
        };
        let entry = table.get(product);
        out.product = entry.map(|e| e.name.clone());
        let version = if version.trim().is_empty() {
            banner_info.version.as_deref().unwrap_or_default()
        } else {
            version
        };
        let normalized = match entry {
            Some(e) => e.normalize_version(version),
            None => normalize_version(VersionScheme::Plain, version),
        };
        let Some(v) = normalized else {
            out.notes.push(format!(
                "no usable version for {product:?} (got {:?}): nothing can be matched",
                version.chars().take(64).collect::<String>()
            ));
            return out;
        };
        out.version = Some(v.clone());
        out.distro = banner_info.distro.clone();

        let keys: BTreeSet<String> = match entry {
            Some(e) => e.cpes.iter().cloned().collect(),
            None => {
                out.mapped_by_name_only = true;
                let guess = product.trim().to_lowercase().replace([' ', '-'], "_");
                let mut keys: BTreeSet<String> = BTreeSet::new();
                for name in [guess.clone(), guess.replace('_', "-")] {
                    if let Some(k) = self.by_cpe_product.get(&name) {
                        keys.extend(k.iter().cloned());
                    }
                }
                if keys.is_empty() {
                    out.notes.push(format!(
                        "{product:?} is not in the product table and no CPE product of that name is in the data"
                    ));
                } else {
                    out.notes.push(format!(
                        "{product:?} is not in the product table: CPEs guessed by name ({})",
                        keys.iter().cloned().collect::<Vec<_>>().join(", ")
                    ));
                }
                keys
            }
        };
        out.cpe_keys = keys.iter().cloned().collect();

        // NVD.
        let mut cve_ids: BTreeSet<&String> = BTreeSet::new();
        for key in &keys {
            if let Some(ids) = self.by_cpe.get(key) {
                cve_ids.extend(ids);
            }
        }
        let mut nvd_hits: BTreeMap<String, NvdHit> = BTreeMap::new();
        for id in cve_ids {
            if let Some(cve) = self.nvd.get(id)
                && let Some(hit) = evaluate_cve(cve, &keys, &v)
            {
                nvd_hits.insert(id.clone(), hit);
            }
        }

        // Distribution.
        let mut distro_gap: Option<String> = None;
        let mut distro: Option<DistroResult> = None;
        if let Some(hint) = &banner_info.distro {
            match self.distro_assess(entry, hint, &v) {
                Ok(d) => {
                    out.package_version = Some(d.package_version.clone());
                    out.distro_package = Some(d.package.clone());
                    out.distro_ecosystems = d.ecosystems.clone();
                    distro = Some(d);
                }
                Err(gap) => {
                    out.notes.push(gap.clone());
                    distro_gap = Some(gap);
                }
            }
        }

        let nvd_source = SourceDate {
            source: Source::Nvd,
            date: self.nvd_date.effective(),
        };
        let osv_source = SourceDate {
            source: Source::Osv,
            date: self.osv_date.effective(),
        };
        let product_cpe = |key: &str| {
            key.split_once(':').map(|(vendor, prod)| {
                Cpe {
                    part: 'a',
                    vendor: vendor.to_owned(),
                    product: prod.to_owned(),
                    version: CpeValue::Value(v.base.clone()),
                    update: match &v.update {
                        Some(u) => CpeValue::Value(u.clone()),
                        None => CpeValue::Any,
                    },
                }
                .formatted()
            })
        };

        let mut matches: Vec<VulnMatch> = Vec::new();
        for (id, hit) in &nvd_hits {
            let cve = self.nvd.get(id);
            let mut m = VulnMatch {
                cve: id.clone(),
                confidence: Confidence::UpstreamVersion,
                cvss_v31: cve.and_then(|c| c.cvss_v31.clone()),
                cvss_v40: cve.and_then(|c| c.cvss_v40.clone()),
                cpe: product_cpe(&hit.key),
                package_version: None,
                evidence: hit.evidence.clone(),
                sources: vec![nvd_source.clone()],
                note: None,
                summary: cve.map(|c| c.description.clone()).filter(|d| !d.is_empty()),
            };
            if out.mapped_by_name_only {
                m.confidence = Confidence::CpeGuess;
                m.note = Some("product mapped to a CPE by its name only".to_owned());
            } else if hit.platform_unverified {
                m.confidence = Confidence::CpeGuess;
                m.note = Some(
                    "the configuration also requires a platform or component that was not verified"
                        .to_owned(),
                );
            }
            if let Some(gap) = &distro_gap {
                m.confidence = Confidence::PossiblyBackported;
                m.note = Some(gap.clone());
            } else if let Some(d) = &distro {
                m.package_version = Some(d.package_version.clone());
                match d.verdicts.get(id) {
                    None => {
                        m.confidence = Confidence::PossiblyBackported;
                        m.note = Some(format!(
                            "no imported advisory of {} for {} names {id}",
                            d.ecosystems.join(", "),
                            d.package
                        ));
                    }
                    Some(per_eco) => {
                        let affected = per_eco.values().filter(|x| x.affected()).count();
                        if affected == per_eco.len() {
                            m.confidence = Confidence::DistroVerified;
                            m.note = None;
                            m.sources.push(osv_source.clone());
                            for verdict in per_eco.values() {
                                if let Verdict::AffectedFixLater(e) | Verdict::AffectedOpen(e) =
                                    verdict
                                {
                                    m.evidence.extend(e.iter().cloned());
                                }
                            }
                        } else if affected == 0 {
                            continue; // cleared below
                        } else {
                            m.confidence = Confidence::PossiblyBackported;
                            m.sources.push(osv_source.clone());
                            m.note = Some(disagreement_note(per_eco));
                        }
                    }
                }
            }
            matches.push(m);
        }

        // Distribution verdicts: CVEs NVD did not match, and the clearances.
        if let Some(d) = &distro {
            for (id, per_eco) in &d.verdicts {
                let affected = per_eco.values().filter(|x| x.affected()).count();
                if affected == 0 {
                    let mut fixes = Vec::new();
                    for verdict in per_eco.values() {
                        if let Verdict::Fixed(f) | Verdict::NotAffected(f) = verdict {
                            fixes.extend(f.iter().cloned());
                        }
                    }
                    let mut fixes: Vec<AdvisoryFix> = fixes
                        .into_iter()
                        .map(|(advisory, fixed)| AdvisoryFix { advisory, fixed })
                        .collect();
                    fixes.sort();
                    fixes.dedup();
                    out.cleared_by_distribution.push(DistroClearance {
                        cve: id.clone(),
                        ecosystems: per_eco.keys().cloned().collect(),
                        package: d.package.clone(),
                        package_version: d.package_version.clone(),
                        fixes,
                    });
                    continue;
                }
                if nvd_hits.contains_key(id) {
                    continue;
                }
                let nvd = self.nvd.get(id);
                let info = d.record_info.get(id);
                let mut evidence = Vec::new();
                for verdict in per_eco.values() {
                    if let Verdict::AffectedFixLater(e) | Verdict::AffectedOpen(e) = verdict {
                        evidence.extend(e.iter().cloned());
                    }
                }
                let mut sources = vec![osv_source.clone()];
                if nvd.is_some() {
                    sources.push(nvd_source.clone());
                }
                let all = affected == per_eco.len();
                matches.push(VulnMatch {
                    cve: id.clone(),
                    confidence: if all {
                        Confidence::DistroVerified
                    } else {
                        Confidence::PossiblyBackported
                    },
                    cvss_v31: nvd
                        .and_then(|c| c.cvss_v31.clone())
                        .or_else(|| info.and_then(|i| i.cvss_v31.clone())),
                    cvss_v40: nvd
                        .and_then(|c| c.cvss_v40.clone())
                        .or_else(|| info.and_then(|i| i.cvss_v40.clone())),
                    cpe: keys.iter().next().and_then(|k| product_cpe(k)),
                    package_version: Some(d.package_version.clone()),
                    evidence,
                    sources,
                    note: (!all).then(|| disagreement_note(per_eco)),
                    summary: nvd
                        .map(|c| c.description.clone())
                        .filter(|s| !s.is_empty())
                        .or_else(|| info.and_then(|i| i.summary.clone())),
                });
            }
        }

        matches.sort_by(|a, b| {
            let score = |m: &VulnMatch| {
                m.cvss_v31
                    .as_ref()
                    .and_then(|c| c.score)
                    .or_else(|| m.cvss_v40.as_ref().and_then(|c| c.score))
                    .unwrap_or(-1.0)
            };
            score(b)
                .partial_cmp(&score(a))
                .unwrap_or(Ordering::Equal)
                .then_with(|| a.cve.cmp(&b.cve))
        });
        out.matches = matches;
        out
    }

    /// Reads the distribution's records for the package; `Err` says why they cannot
    /// settle anything.
    fn distro_assess(
        &self,
        entry: Option<&ProductEntry>,
        hint: &DistroHint,
        v: &NormalizedVersion,
    ) -> Result<DistroResult, String> {
        let family = &hint.family;
        if let DistroFamily::Other(name) = family {
            return Err(format!(
                "the banner names {name}, whose advisories are not read: the fix may be backported"
            ));
        }
        let Some(entry) = entry else {
            return Err(format!(
                "the banner names {family}, but the product is not in the product table: the fix may be backported"
            ));
        };
        let Some(packaging) = entry.packaging(family) else {
            return Err(format!(
                "the product table names no {family} package for {}: the fix may be backported",
                entry.name
            ));
        };
        let Some(revision_or_full) = hint
            .package_version
            .clone()
            .or_else(|| hint.revision.as_ref().map(|r| format!("{}-{r}", v.full)))
        else {
            return Err(format!(
                "the banner names {family} but not the package revision: the fix may be backported"
            ));
        };
        let package_version = if revision_or_full.contains(':') || packaging.epoch == 0 {
            revision_or_full
        } else {
            format!("{}:{revision_or_full}", packaging.epoch)
        };
        if parse_dpkg(&package_version).is_err() {
            return Err(format!(
                "{package_version:?} is not a valid {family} package version: the fix may be backported"
            ));
        }
        let upstream = dpkg_upstream(&package_version).to_owned();
        let wants_extension = package_version.contains("esm");

        // The first source package name with records of this distribution and release.
        let names = packaging.source_names(&v.full);
        let mut gap: Option<String> = None;
        let mut chosen: Option<(String, Vec<AdvisoryEntry<'_>>, BTreeSet<&str>)> = None;
        for name in &names {
            let Some(ids) = self.osv_by_package.get(name) else {
                continue;
            };
            let entries: Vec<AdvisoryEntry<'_>> = ids
                .iter()
                .filter_map(|id| self.osv.get(id))
                .flat_map(|r| r.affected.iter().map(move |a| (r.id.as_str(), a)))
                .filter(|(_, a)| {
                    &a.package == name
                        && ecosystem_family(&a.ecosystem).as_ref() == Some(family)
                        && ecosystem_is_extension(&a.ecosystem) == wants_extension
                })
                .collect();
            if entries.is_empty() {
                continue;
            }
            let ecosystems: BTreeSet<&str> = match &hint.release {
                Some(release) => entries
                    .iter()
                    .map(|(_, a)| a.ecosystem.as_str())
                    .filter(|e| ecosystem_release(e) == Some(release.as_str()))
                    .collect(),
                None => entries
                    .iter()
                    .filter(|(_, a)| {
                        a.versions
                            .iter()
                            .map(String::as_str)
                            .chain(a.ranges.iter().flatten().map(OsvEvent::version))
                            .any(|x| x != "0" && dpkg_upstream(x) == upstream)
                    })
                    .map(|(_, a)| a.ecosystem.as_str())
                    .collect(),
            };
            if ecosystems.is_empty() {
                gap.get_or_insert(match &hint.release {
                    Some(release) => format!(
                        "no {family} {release} advisory data imported for package {name}: the fix may be backported"
                    ),
                    None => format!(
                        "the banner does not say the {family} release, and no imported {family} advisory for {name} names upstream version {upstream}: the fix may be backported"
                    ),
                });
                continue;
            }
            chosen = Some((name.clone(), entries, ecosystems));
            break;
        }
        let Some((package, entries, ecosystems)) = chosen else {
            return Err(gap.unwrap_or_else(|| {
                format!(
                    "no {family} advisory data imported for package {}: the fix may be backported",
                    names.join(" or ")
                )
            }));
        };

        let mut verdicts: BTreeMap<String, BTreeMap<String, Verdict>> = BTreeMap::new();
        let mut record_info = BTreeMap::new();
        for (advisory, a) in &entries {
            if !ecosystems.contains(a.ecosystem.as_str()) {
                continue;
            }
            let Some(record) = self.osv.get(*advisory) else {
                continue;
            };
            let verdict = entry_verdict(advisory, a, &package_version);
            let ids: Vec<String> = if record.cves.is_empty() {
                vec![record.id.clone()]
            } else {
                record.cves.clone()
            };
            for id in ids {
                record_info.entry(id.clone()).or_insert_with(|| RecordInfo {
                    cvss_v31: record.cvss_v31.clone(),
                    cvss_v40: record.cvss_v40.clone(),
                    summary: record.summary.clone(),
                });
                let per_eco = verdicts.entry(id).or_default();
                let merged = match per_eco.remove(&a.ecosystem) {
                    Some(old) => old.merge(verdict.clone()),
                    None => verdict.clone(),
                };
                per_eco.insert(a.ecosystem.clone(), merged);
            }
        }
        Ok(DistroResult {
            verdicts,
            record_info,
            package,
            package_version,
            ecosystems: ecosystems.into_iter().map(str::to_owned).collect(),
        })
    }
}

fn disagreement_note(per_eco: &BTreeMap<String, Verdict>) -> String {
    let (affected, clear): (Vec<&String>, Vec<&String>) =
        per_eco.keys().partition(|k| per_eco[*k].affected());
    format!(
        "the banner does not say the release: affected in {}, not in {}",
        affected
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        clear
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::cpe::parse_cpe23;

    fn m(criteria: &str, bounds: [Option<&str>; 4]) -> CpeMatch {
        let cpe = parse_cpe23(criteria).unwrap();
        CpeMatch {
            vulnerable: true,
            criteria: criteria.to_owned(),
            key: cpe.key(),
            part: cpe.part,
            version: cpe.version,
            update: cpe.update,
            start_including: bounds[0].map(str::to_owned),
            start_excluding: bounds[1].map(str::to_owned),
            end_including: bounds[2].map(str::to_owned),
            end_excluding: bounds[3].map(str::to_owned),
        }
    }

    fn ssh(v: &str) -> NormalizedVersion {
        normalize_version(VersionScheme::Openssh, v).unwrap()
    }

    const ANY: &str = "cpe:2.3:a:openbsd:openssh:*:*:*:*:*:*:*:*";

    #[test]
    fn range_bounds() {
        let incl = m(ANY, [Some("8.5p1"), None, Some("9.7p1"), None]);
        assert!(cpe_match_holds(&incl, &ssh("8.5p1")));
        assert!(cpe_match_holds(&incl, &ssh("9.7p1")));
        assert!(!cpe_match_holds(&incl, &ssh("8.4p1")));
        assert!(!cpe_match_holds(&incl, &ssh("9.8p1")));
        let excl = m(ANY, [None, Some("8.5p1"), None, Some("9.7p1")]);
        assert!(!cpe_match_holds(&excl, &ssh("8.5p1")));
        assert!(!cpe_match_holds(&excl, &ssh("9.7p1")));
        assert!(cpe_match_holds(&excl, &ssh("8.6p1")));
        assert!(cpe_match_holds(&excl, &ssh("9.7")));
        // "8.5" <= "8.5p1": a bound without the portable suffix.
        let end = m(ANY, [None, None, Some("8.5p1"), None]);
        assert!(cpe_match_holds(&end, &ssh("8.5")));
        let start = m(ANY, [Some("8.5"), None, None, None]);
        assert!(cpe_match_holds(&start, &ssh("8.5p1")));
    }

    #[test]
    fn exact_versions() {
        let p1 = m("cpe:2.3:a:openbsd:openssh:9.7:p1:*:*:*:*:*:*", [None; 4]);
        assert!(cpe_match_holds(&p1, &ssh("9.7p1")));
        assert!(!cpe_match_holds(&p1, &ssh("9.7p2")));
        assert!(!cpe_match_holds(&p1, &ssh("9.7")));
        let none = m("cpe:2.3:a:openbsd:openssh:9.7:-:*:*:*:*:*:*", [None; 4]);
        assert!(cpe_match_holds(&none, &ssh("9.7")));
        assert!(!cpe_match_holds(&none, &ssh("9.7p1")));
        let any_update = m("cpe:2.3:a:openbsd:openssh:9.7:*:*:*:*:*:*:*", [None; 4]);
        assert!(cpe_match_holds(&any_update, &ssh("9.7p1")));
        assert!(cpe_match_holds(&any_update, &ssh("9.7")));
        assert!(!cpe_match_holds(&any_update, &ssh("9.6p1")));
        let joined = m("cpe:2.3:a:openbsd:openssh:7.2p2:*:*:*:*:*:*:*", [None; 4]);
        assert!(cpe_match_holds(&joined, &ssh("7.2p2")));
        let all = m(ANY, [None; 4]);
        assert!(cpe_match_holds(&all, &ssh("1.0")));
        let na = m("cpe:2.3:a:openbsd:openssh:-:*:*:*:*:*:*:*", [None; 4]);
        assert!(!cpe_match_holds(&na, &ssh("9.7")));
    }

    fn aff(ranges: Vec<Vec<OsvEvent>>, versions: &[&str]) -> OsvAffected {
        OsvAffected {
            ecosystem: "Debian:12".into(),
            package: "openssh".into(),
            ranges,
            versions: versions.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn osv_ranges() {
        use OsvEvent::*;
        let a = aff(
            vec![vec![
                Introduced("0".into()),
                Fixed("1:9.2p1-2+deb12u3".into()),
            ]],
            &[],
        );
        assert!(matches!(
            entry_verdict("DSA", &a, "1:9.2p1-2+deb12u2"),
            Verdict::AffectedFixLater(_)
        ));
        assert!(matches!(
            entry_verdict("DSA", &a, "1:9.2p1-2+deb12u3"),
            Verdict::Fixed(_)
        ));
        // Unsorted events, two ranges in one, last_affected.
        let a = aff(
            vec![vec![
                Fixed("2.0-1".into()),
                Introduced("3.0-1".into()),
                Introduced("1.0-1".into()),
                LastAffected("3.5-1".into()),
            ]],
            &[],
        );
        let affected = |pv| entry_verdict("X", &a, pv).affected();
        assert!(!affected("0.9-1"));
        assert!(affected("1.0-1"));
        assert!(affected("1.9-1"));
        assert!(!affected("2.0-1"));
        assert!(affected("3.0-1"));
        assert!(affected("3.5-1"));
        assert!(!affected("3.6-1"));
        // Open-ended, and a listed version.
        let a = aff(vec![vec![Introduced("0".into())]], &[]);
        assert!(matches!(
            entry_verdict("X", &a, "1.0-1"),
            Verdict::AffectedOpen(_)
        ));
        let a = aff(vec![], &["1.0-1"]);
        assert!(entry_verdict("X", &a, "1.0-1").affected());
        assert!(!entry_verdict("X", &a, "1.0-2").affected());
    }

    #[test]
    fn tri_logic() {
        use Tri::*;
        assert_eq!(Tri::combine(true, [True, Unknown].into_iter()), Unknown);
        assert_eq!(Tri::combine(true, [False, Unknown].into_iter()), False);
        assert_eq!(Tri::combine(false, [False, Unknown].into_iter()), Unknown);
        assert_eq!(Tri::combine(false, [True, Unknown].into_iter()), True);
        assert_eq!(Tri::combine(false, std::iter::empty()), False);
        assert_eq!(Unknown.not(), Unknown);
    }
}
