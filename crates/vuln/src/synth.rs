//! A generator of NVD 2.0 feeds of any size, for benchmarks and load tests.

use std::fmt::Write as _;

/// A small deterministic generator (SplitMix64).
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next() % n }
    }
}

const SEVERITIES: [(f64, &str); 4] = [
    (3.1, "LOW"),
    (5.3, "MEDIUM"),
    (7.5, "HIGH"),
    (9.8, "CRITICAL"),
];

/// Writes an NVD 2.0 feed of `cves` synthetic CVEs with `cpe_matches_per_cve` `cpeMatch`
/// entries each (at least 1), deterministic for a `seed`. 250,000 CVEs with 4 entries
/// each is a realistic full-database size (about 1 M `cpeMatch`).
///
/// Layout, so that a benchmark can ask questions with known answers:
///
/// * CVE number `i` (from 0) is `CVE-{2002 + i % 24}-{10000 + i / 24}`.
/// * Every 500th CVE (`i % 500 == 0`) is about OpenSSH (`openbsd:openssh`): its first entry
///   is the range `versionStartIncluding {a}.{b}p1`, `versionEndExcluding {a}.{b+1}p1`
///   with `a` in 5..=9 and `b` in 0..=8.
/// * Every other CVE is about `synthvendor{k}:synthproduct{k}` with `k = i % max(1,
///   cves / 10)`, so each such product has about ten CVEs: its first entry is a range
///   `versionStartIncluding {x}.{y}.0`, `versionEndExcluding {x}.{y + 1 + z}.0`.
/// * The other entries are exact versions of the same product (vulnerable), outside the
///   range.
/// * Every 7th CVE has an AND configuration whose second node is a non-vulnerable
///   platform (`cpe:2.3:o:linux:linux_kernel:-:…`); every 5th has a CVSS v4.0 metric
///   besides v3.1; every 97th is `Rejected` with no configurations.
pub fn synthetic_nvd_feed(cves: usize, cpe_matches_per_cve: usize, seed: u64) -> String {
    let per = cpe_matches_per_cve.max(1);
    let products = (cves / 10).max(1);
    let mut rng = SplitMix(seed);
    let mut out = String::with_capacity(cves.saturating_mul(700 + 160 * per));
    let _ = write!(
        out,
        "{{\"resultsPerPage\":{cves},\"startIndex\":0,\"totalResults\":{cves},\"format\":\"NVD_CVE\",\"version\":\"2.0\",\"timestamp\":\"2025-01-01T00:00:00.000\",\"vulnerabilities\":["
    );
    for i in 0..cves {
        if i > 0 {
            out.push(',');
        }
        let id = format!("CVE-{}-{}", 2002 + i % 24, 10000 + i / 24);
        let month = 1 + rng.below(12);
        let day = 1 + rng.below(28);
        let year = 2002 + i % 24;
        let published = format!("{year}-{month:02}-{day:02}T10:15:00.000");
        let modified = format!("2024-{month:02}-{day:02}T12:00:00.000");
        if i % 97 == 96 {
            let _ = write!(
                out,
                "{{\"cve\":{{\"id\":\"{id}\",\"sourceIdentifier\":\"cve@mitre.org\",\"published\":\"{published}\",\"lastModified\":\"{modified}\",\"vulnStatus\":\"Rejected\",\"descriptions\":[{{\"lang\":\"en\",\"value\":\"Rejected reason: this candidate is unused by its CNA.\"}}],\"metrics\":{{}},\"references\":[]}}}}"
            );
            continue;
        }
        let (vendor, product, ranged, exact): (String, String, (String, String), Vec<String>) =
            if i % 500 == 0 {
                let a = 5 + rng.below(5);
                let b = rng.below(9);
                let exact = (0..per.saturating_sub(1))
                    .map(|j| format!("{}.{}:p{}", a.saturating_sub(1), j % 10, 1 + j / 10))
                    .collect();
                (
                    "openbsd".to_owned(),
                    "openssh".to_owned(),
                    (format!("{a}.{b}p1"), format!("{a}.{}p1", b + 1)),
                    exact,
                )
            } else {
                let k = i % products;
                let x = 1 + rng.below(20);
                let y = rng.below(10);
                let z = rng.below(3);
                let exact = (0..per.saturating_sub(1))
                    .map(|j| format!("{}.{}.{}:*", x + 30, y, j))
                    .collect();
                (
                    format!("synthvendor{k}"),
                    format!("synthproduct{k}"),
                    (format!("{x}.{y}.0"), format!("{x}.{}.0", y + 1 + z)),
                    exact,
                )
            };
        let (score, severity) = SEVERITIES[rng.below(4) as usize];
        let _ = write!(
            out,
            "{{\"cve\":{{\"id\":\"{id}\",\"sourceIdentifier\":\"cve@mitre.org\",\"published\":\"{published}\",\"lastModified\":\"{modified}\",\"vulnStatus\":\"Analyzed\",\"cveTags\":[],\"descriptions\":[{{\"lang\":\"en\",\"value\":\"A flaw in {product} by {vendor} from {} before {} allows a remote attacker to cause a denial of service or possibly execute arbitrary code via crafted input (synthetic record {i}).\"}}],",
            ranged.0, ranged.1
        );
        let _ = write!(
            out,
            "\"metrics\":{{\"cvssMetricV31\":[{{\"source\":\"nvd@nist.gov\",\"type\":\"Primary\",\"cvssData\":{{\"version\":\"3.1\",\"vectorString\":\"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H\",\"baseScore\":{score},\"baseSeverity\":\"{severity}\",\"attackVector\":\"NETWORK\",\"attackComplexity\":\"LOW\",\"privilegesRequired\":\"NONE\",\"userInteraction\":\"NONE\",\"scope\":\"UNCHANGED\",\"confidentialityImpact\":\"HIGH\",\"integrityImpact\":\"HIGH\",\"availabilityImpact\":\"HIGH\"}},\"exploitabilityScore\":3.9,\"impactScore\":5.9}}]"
        );
        if i % 5 == 0 {
            let _ = write!(
                out,
                ",\"cvssMetricV40\":[{{\"source\":\"cna@example.org\",\"type\":\"Secondary\",\"cvssData\":{{\"version\":\"4.0\",\"vectorString\":\"CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N\",\"baseScore\":9.3,\"baseSeverity\":\"CRITICAL\"}}}}]"
            );
        }
        out.push_str("},\"weaknesses\":[{\"source\":\"nvd@nist.gov\",\"type\":\"Primary\",\"description\":[{\"lang\":\"en\",\"value\":\"CWE-787\"}]}],");
        let and = i % 7 == 3;
        out.push_str("\"configurations\":[{");
        if and {
            out.push_str("\"operator\":\"AND\",");
        }
        let _ = write!(
            out,
            "\"nodes\":[{{\"operator\":\"OR\",\"negate\":false,\"cpeMatch\":[{{\"vulnerable\":true,\"criteria\":\"cpe:2.3:a:{vendor}:{product}:*:*:*:*:*:*:*:*\",\"versionStartIncluding\":\"{}\",\"versionEndExcluding\":\"{}\",\"matchCriteriaId\":\"{:016X}\"}}",
            ranged.0,
            ranged.1,
            rng.next()
        );
        for e in &exact {
            let _ = write!(
                out,
                ",{{\"vulnerable\":true,\"criteria\":\"cpe:2.3:a:{vendor}:{product}:{e}:*:*:*:*:*:*\",\"matchCriteriaId\":\"{:016X}\"}}",
                rng.next()
            );
        }
        out.push_str("]}");
        if and {
            let _ = write!(
                out,
                ",{{\"operator\":\"OR\",\"negate\":false,\"cpeMatch\":[{{\"vulnerable\":false,\"criteria\":\"cpe:2.3:o:linux:linux_kernel:-:*:*:*:*:*:*:*\",\"matchCriteriaId\":\"{:016X}\"}}]}}",
                rng.next()
            );
        }
        let _ = write!(
            out,
            "]}}],\"references\":[{{\"url\":\"https://example.org/advisories/{id}\",\"source\":\"cve@mitre.org\"}}]}}}}"
        );
    }
    out.push_str("]}");
    out
}
