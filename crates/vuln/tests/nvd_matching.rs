//! NVD configuration matching: range ends, exact versions and updates, AND
//! configurations, negated nodes, guesses by name, and gzip feeds.

#![allow(clippy::unwrap_used)]

mod common;

use std::io::Write;

use common::{edge_index, fixture, ssh_ids};
use portgate_vuln::{Confidence, ImportOptions, VulnIndex};

fn has(index: &VulnIndex, version: &str, id: &str) -> bool {
    ssh_ids(index, version).iter().any(|c| c == id)
}

#[test]
fn both_ends_included() {
    let index = edge_index();
    let id = "CVE-2099-0001";
    assert!(!has(&index, "6.9p1", id));
    assert!(!has(&index, "7.0", id), "7.0 < 7.0p1");
    assert!(has(&index, "7.0p1", id));
    assert!(has(&index, "7.2p2", id));
    assert!(has(&index, "7.4p1", id));
    assert!(!has(&index, "7.4p2", id));
    assert!(!has(&index, "7.5", id));
}

#[test]
fn both_ends_excluded() {
    let index = edge_index();
    let id = "CVE-2099-0002";
    assert!(!has(&index, "7.0p1", id));
    assert!(has(&index, "7.0p2", id));
    assert!(has(&index, "7.1p1", id));
    assert!(has(&index, "7.4", id), "7.4 < 7.4p1");
    assert!(!has(&index, "7.4p1", id));
}

#[test]
fn exact_version_with_update() {
    let index = edge_index();
    assert!(has(&index, "7.7p1", "CVE-2099-0003"));
    assert!(!has(&index, "7.7", "CVE-2099-0003"));
    assert!(!has(&index, "7.7p2", "CVE-2099-0003"));
    // `-` update: the release without a portable suffix only.
    assert!(has(&index, "7.8", "CVE-2099-0007"));
    assert!(!has(&index, "7.8p1", "CVE-2099-0007"));
}

#[test]
fn and_configuration_with_an_unverifiable_platform_is_a_cpe_guess() {
    let index = edge_index();
    let found = index.lookup("OpenSSH", "7.8p1", None);
    let m = found.iter().find(|m| m.cve == "CVE-2099-0004").unwrap();
    assert_eq!(m.confidence, Confidence::CpeGuess);
    assert!(m.note.as_deref().unwrap().contains("platform"));
    assert!(!has(&index, "7.9p1", "CVE-2099-0004"));
}

#[test]
fn and_configuration_of_the_product_itself() {
    let index = edge_index();
    let id = "CVE-2099-0008";
    assert!(!has(&index, "7.2p1", id), "the second node is false");
    assert!(has(&index, "7.4p1", id));
    assert!(!has(&index, "7.6p1", id), "the first node is false");
    let found = index.lookup("OpenSSH", "7.4p1", None);
    let m = found.iter().find(|m| m.cve == id).unwrap();
    assert_eq!(m.confidence, Confidence::UpstreamVersion);
}

#[test]
fn negated_node() {
    let index = edge_index();
    let id = "CVE-2099-0005";
    assert!(has(&index, "7.5p1", id));
    assert!(!has(&index, "7.6p1", id), "the negated node excludes 7.6p1");
    assert!(has(&index, "7.7p1", id));
    let found = index.lookup("OpenSSH", "7.5p1", None);
    let m = found.iter().find(|m| m.cve == id).unwrap();
    assert_eq!(m.confidence, Confidence::UpstreamVersion);
}

#[test]
fn another_applications_flaw_is_not_the_products() {
    let index = edge_index();
    for v in ["1.0", "7.0p1", "9.9p1"] {
        assert!(!has(&index, v, "CVE-2099-0006"), "{v}");
    }
}

#[test]
fn a_product_not_in_the_table_is_guessed_by_name() {
    let index = edge_index();
    let a = index.assess("SSHPlugin", "1.5", None);
    assert!(a.mapped_by_name_only);
    assert_eq!(a.cpe_keys, ["example:sshplugin"]);
    let m = &a.matches[0];
    assert_eq!(m.cve, "CVE-2099-0006");
    assert_eq!(m.confidence, Confidence::CpeGuess);
    assert!(index.lookup("SSHPlugin", "2.0", None).is_empty());
    let a = index.assess("Unheard-of httpd", "1.0", None);
    assert!(a.matches.is_empty());
    assert!(a.notes[0].contains("not in the product table"));
}

#[test]
fn cvss_versions_are_read() {
    let index = edge_index();
    let found = index.lookup("OpenSSH", "7.2p1", None);
    let m = found.iter().find(|m| m.cve == "CVE-2099-0001").unwrap();
    let v31 = m.cvss_v31.as_ref().unwrap();
    assert_eq!(v31.score, Some(5.3));
    assert_eq!(v31.severity.as_deref(), Some("MEDIUM"));
    let v40 = m.cvss_v40.as_ref().unwrap();
    assert_eq!(v40.score, Some(6.9));
    assert!(v40.vector.starts_with("CVSS:4.0/"));
    // Highest score first.
    let scores: Vec<f64> = found
        .iter()
        .map(|m| m.cvss_v31.as_ref().and_then(|c| c.score).unwrap_or(-1.0))
        .collect();
    assert!(scores.windows(2).all(|w| w[0] >= w[1]), "{scores:?}");
}

#[test]
fn versions_without_a_number_match_nothing() {
    let index = edge_index();
    for v in ["", "   ", "unknown", "x.y"] {
        let a = index.assess("OpenSSH", v, None);
        assert!(a.matches.is_empty());
        assert!(a.notes[0].contains("no usable version"));
    }
}

#[test]
fn gzip_feed_imports_like_plain() {
    let plain = std::fs::read(fixture("nvd-edge-cases.json")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nvdcve-2.0-test.json.gz");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&plain).unwrap();
    std::fs::write(&path, gz.finish().unwrap()).unwrap();

    let mut index = VulnIndex::new();
    let report = index
        .import_nvd_path(&path, &ImportOptions::default())
        .unwrap();
    assert_eq!(report.records, 8);
    assert_eq!(report.added, 8);
    assert_eq!(index.stats(), edge_index().stats());
    assert_eq!(ssh_ids(&index, "7.2p1"), ssh_ids(&edge_index(), "7.2p1"));
}
