//! A generated NVD feed of 5,000 CVEs, then 10,000 lookups whose answers are checked
//! against the feed itself. A full-size feed (250,000 CVEs, 1 M cpeMatch) is an ignored
//! test, for measuring by hand.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;

use portgate_vuln::{Confidence, ImportOptions, VulnIndex, synthetic_nvd_feed};
use serde_json::Value;

struct Case {
    id: String,
    product: String,
    start: String,
    end: String,
    and: bool,
}

/// The CVEs of the feed with their first (ranged) entry, read from the JSON itself.
fn cases(feed: &str) -> Vec<Case> {
    let doc: Value = serde_json::from_str(feed).unwrap();
    let mut out = Vec::new();
    for item in doc["vulnerabilities"].as_array().unwrap() {
        let cve = &item["cve"];
        if cve["vulnStatus"] == "Rejected" {
            continue;
        }
        let config = &cve["configurations"][0];
        let first = &config["nodes"][0]["cpeMatch"][0];
        let criteria = first["criteria"].as_str().unwrap();
        let product = criteria.split(':').nth(4).unwrap().to_owned();
        out.push(Case {
            id: cve["id"].as_str().unwrap().to_owned(),
            product,
            start: first["versionStartIncluding"].as_str().unwrap().to_owned(),
            end: first["versionEndExcluding"].as_str().unwrap().to_owned(),
            and: config["operator"] == "AND",
        });
    }
    out
}

#[test]
fn five_thousand_cves_ten_thousand_lookups() {
    let feed = synthetic_nvd_feed(5_000, 4, 42);
    assert_eq!(feed, synthetic_nvd_feed(5_000, 4, 42), "deterministic");
    let cases = cases(&feed);
    let mut index = VulnIndex::new();
    let report = index
        .import_nvd_bytes(
            "synthetic.json",
            feed.into_bytes(),
            &ImportOptions::default(),
        )
        .unwrap();
    assert_eq!(report.records, 5_000);
    let stats = index.stats();
    assert_eq!(stats.nvd_cves, cases.len());
    assert_eq!(
        stats.nvd_cpe_matches,
        cases.len() * 4 + cases.iter().filter(|c| c.and).count()
    );

    let mut checked = 0;
    for i in 0..10_000usize {
        let case = &cases[(i * 7919) % cases.len()];
        let product = if case.product == "openssh" {
            "OpenSSH"
        } else {
            case.product.as_str()
        };
        // Inside the range (its start), and at its end (excluded).
        let (version, inside) = if i % 2 == 0 {
            (case.start.as_str(), true)
        } else {
            (case.end.as_str(), false)
        };
        let found = index.lookup(product, version, None);
        let hit = found.iter().find(|m| m.cve == case.id);
        assert_eq!(hit.is_some(), inside, "{} {product} {version}", case.id);
        if let Some(m) = hit {
            let want = if product == "OpenSSH" && !case.and {
                Confidence::UpstreamVersion
            } else {
                Confidence::CpeGuess
            };
            assert_eq!(m.confidence, want, "{}", case.id);
            checked += 1;
        }
        let ids: BTreeSet<&str> = found.iter().map(|m| m.cve.as_str()).collect();
        assert_eq!(ids.len(), found.len(), "no CVE twice");
    }
    assert_eq!(checked, 5_000);
}

#[test]
#[ignore = "full size: about 450 MB of JSON; run by hand to measure"]
fn full_size_feed() {
    let started = std::time::Instant::now();
    let feed = synthetic_nvd_feed(250_000, 4, 1);
    eprintln!("generated {} bytes in {:?}", feed.len(), started.elapsed());
    let started = std::time::Instant::now();
    let mut index = VulnIndex::new();
    index
        .import_nvd_bytes("full.json", feed.into_bytes(), &ImportOptions::default())
        .unwrap();
    eprintln!("imported in {:?}", started.elapsed());
    let stats = index.stats();
    assert!(stats.nvd_cpe_matches >= 950_000, "{stats:?}");
    let started = std::time::Instant::now();
    for i in 0..10_000 {
        let _ = index.lookup(&format!("synthproduct{}", i * 13 % 25_000), "5.5.0", None);
    }
    eprintln!(
        "10,000 lookups of synthetic products in {:?}",
        started.elapsed()
    );
    let started = std::time::Instant::now();
    for _ in 0..1_000 {
        let _ = index.lookup(
            "OpenSSH",
            "",
            Some("SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u2"),
        );
    }
    eprintln!(
        "1,000 OpenSSH lookups ({} CVEs filed under openbsd:openssh) in {:?}; {stats:?}",
        index.assess("OpenSSH", "9.2p1", None).matches.len(),
        started.elapsed()
    );
}
