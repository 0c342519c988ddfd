//! CVE-2024-6387 ("regreSSHion") against OpenSSH banners of Debian, Ubuntu and upstream
//! builds, with NVD's ranges and the distributions' OSV records.

#![allow(clippy::unwrap_used)]

mod common;

use chrono::{TimeZone, Utc};
use common::{fixture, full_index, nvd_index};
use portgate_vuln::{Confidence, Evidence, ImportOptions, Source, VulnIndex, VulnMatch};

const CVE: &str = "CVE-2024-6387";

fn find<'a>(matches: &'a [VulnMatch], id: &str) -> Option<&'a VulnMatch> {
    matches.iter().find(|m| m.cve == id)
}

fn osv_only_index() -> VulnIndex {
    let mut index = VulnIndex::new();
    index
        .import_osv_path(&fixture("osv"), &ImportOptions::default())
        .unwrap();
    index
}

#[test]
fn debian_deb12u2_is_vulnerable_distro_verified() {
    let index = full_index();
    let a = index.assess(
        "OpenSSH",
        "9.2p1",
        Some("SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u2"),
    );
    assert_eq!(a.package_version.as_deref(), Some("1:9.2p1-2+deb12u2"));
    assert_eq!(a.distro_ecosystems, ["Debian:12"]);
    let m = find(&a.matches, CVE).unwrap();
    assert_eq!(m.confidence, Confidence::DistroVerified);
    assert_eq!(m.package_version.as_deref(), Some("1:9.2p1-2+deb12u2"));
    let cvss = m.cvss_v31.as_ref().unwrap();
    assert_eq!(cvss.score, Some(8.1));
    assert_eq!(cvss.vector, "CVSS:3.1/AV:N/AC:H/PR:N/UI:N/S:U/C:H/I:H/A:H");
    assert!(m.cvss_v40.is_none());
    assert_eq!(
        m.cpe.as_deref(),
        Some("cpe:2.3:a:openbsd:openssh:9.2:p1:*:*:*:*:*:*")
    );
    // Both the upstream range and the distribution's range are given as evidence.
    assert!(m.evidence.iter().any(|e| matches!(e, Evidence::NvdRange {
        start_including: Some(s), end_excluding: Some(e), ..
    } if s == "8.5p1" && e == "9.8p1")));
    assert!(m.evidence.iter().any(|e| matches!(e, Evidence::OsvRange {
        advisory, ecosystem, fixed: Some(f), ..
    } if advisory == "DSA-5724-1" && ecosystem == "Debian:12" && f == "1:9.2p1-2+deb12u3")));
    let sources: Vec<Source> = m.sources.iter().map(|s| s.source).collect();
    assert_eq!(sources, [Source::Nvd, Source::Osv]);
}

#[test]
fn debian_deb12u3_is_not_listed() {
    let index = full_index();
    let a = index.assess(
        "OpenSSH",
        "9.2p1",
        Some("SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3"),
    );
    assert!(find(&a.matches, CVE).is_none(), "{:#?}", a.matches);
    assert!(a.matches.is_empty());
    let cleared = &a.cleared_by_distribution;
    assert_eq!(cleared.len(), 1);
    assert_eq!(cleared[0].cve, CVE);
    assert_eq!(cleared[0].fixes.len(), 1);
    assert_eq!(cleared[0].fixes[0].advisory, "DSA-5724-1");
    assert_eq!(
        cleared[0].fixes[0].fixed.as_deref(),
        Some("1:9.2p1-2+deb12u3")
    );
}

#[test]
fn ubuntu_fixed_revision_is_not_listed() {
    let index = full_index();
    let a = index.assess(
        "OpenSSH",
        "",
        Some("SSH-2.0-OpenSSH_8.9p1 Ubuntu-3ubuntu0.10"),
    );
    assert!(a.matches.is_empty(), "{:#?}", a.matches);
    // The release was not in the banner: found from the records that know 8.9p1.
    assert_eq!(a.distro_ecosystems, ["Ubuntu:22.04:LTS"]);
    assert_eq!(a.package_version.as_deref(), Some("1:8.9p1-3ubuntu0.10"));
    assert_eq!(a.cleared_by_distribution[0].cve, CVE);
}

#[test]
fn ubuntu_older_revision_is_vulnerable_distro_verified() {
    let index = full_index();
    let found = index.lookup(
        "OpenSSH",
        "8.9p1",
        Some("SSH-2.0-OpenSSH_8.9p1 Ubuntu-3ubuntu0.9"),
    );
    let m = find(&found, CVE).unwrap();
    assert_eq!(m.confidence, Confidence::DistroVerified);
    assert_eq!(m.package_version.as_deref(), Some("1:8.9p1-3ubuntu0.9"));
}

#[test]
fn ubuntu_24_04_is_found_by_its_upstream_version() {
    let index = full_index();
    let a = index.assess(
        "OpenSSH",
        "",
        Some("SSH-2.0-OpenSSH_9.6p1 Ubuntu-3ubuntu13.2"),
    );
    assert_eq!(a.distro_ecosystems, ["Ubuntu:24.04:LTS"]);
    assert_eq!(
        find(&a.matches, CVE).unwrap().confidence,
        Confidence::DistroVerified
    );
    let a = index.assess(
        "OpenSSH",
        "",
        Some("SSH-2.0-OpenSSH_9.6p1 Ubuntu-3ubuntu13.3"),
    );
    assert!(a.matches.is_empty());
}

#[test]
fn upstream_banner_is_upstream_version() {
    let index = full_index();
    let found = index.lookup("OpenSSH", "9.6", Some("SSH-2.0-OpenSSH_9.6"));
    let m = find(&found, CVE).unwrap();
    assert_eq!(m.confidence, Confidence::UpstreamVersion);
    assert_eq!(m.package_version, None);
    assert_eq!(
        m.cpe.as_deref(),
        Some("cpe:2.3:a:openbsd:openssh:9.6:*:*:*:*:*:*:*")
    );
    // The same without a banner.
    let found = index.lookup("OpenSSH", "9.2p1", None);
    assert_eq!(
        find(&found, CVE).unwrap().confidence,
        Confidence::UpstreamVersion
    );
}

#[test]
fn fixed_upstream_is_not_listed() {
    let index = full_index();
    assert!(
        index
            .lookup("OpenSSH", "", Some("SSH-2.0-OpenSSH_9.8p1"))
            .is_empty()
    );
    assert!(index.lookup("OpenSSH", "9.8p1", None).is_empty());
    // Between the two ranges.
    assert!(index.lookup("OpenSSH", "8.4p1", None).is_empty());
    assert!(index.lookup("OpenSSH", "4.4p1", None).is_empty());
    // The old range.
    assert!(find(&index.lookup("OpenSSH", "4.3p2", None), CVE).is_some());
    assert!(find(&index.lookup("OpenSSH", "8.5p1", None), CVE).is_some());
    assert!(find(&index.lookup("OpenSSH", "9.7p1", None), CVE).is_some());
}

#[test]
fn debian_banner_without_debian_data_is_possibly_backported() {
    let index = nvd_index();
    for banner in [
        "SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3",
        "SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u2",
        "SSH-2.0-OpenSSH_8.9p1 Ubuntu-3ubuntu0.10",
        "SSH-2.0-OpenSSH_9.3 FreeBSD-20230719",
    ] {
        let a = index.assess("OpenSSH", "", Some(banner));
        let m = find(&a.matches, CVE).unwrap();
        assert_eq!(m.confidence, Confidence::PossiblyBackported, "{banner}");
        assert_ne!(m.confidence, Confidence::UpstreamVersion);
        assert!(
            m.note.as_deref().unwrap().contains("backported"),
            "{:?}",
            m.note
        );
    }
}

#[test]
fn debian_data_for_another_release_does_not_verify() {
    let index = full_index();
    // Debian 11 (bullseye) banner; only Debian 12 records are imported.
    let found = index.lookup(
        "OpenSSH",
        "",
        Some("SSH-2.0-OpenSSH_8.4p1 Debian-5+deb11u3"),
    );
    assert!(found.is_empty(), "8.4p1 is outside NVD's ranges");
    let a = index.assess(
        "OpenSSH",
        "8.5p1",
        Some("SSH-2.0-OpenSSH_8.5p1 Debian-1+deb11u1"),
    );
    let m = find(&a.matches, CVE).unwrap();
    assert_eq!(m.confidence, Confidence::PossiblyBackported);
    assert!(
        m.note.as_deref().unwrap().contains("Debian 11"),
        "{:?}",
        m.note
    );
}

#[test]
fn debian_revision_without_release_marker_uses_the_records() {
    let index = full_index();
    // bookworm's first openssh, "1:9.2p1-2": the release is found from the records that
    // name upstream 9.2p1 (Debian:12).
    let a = index.assess("OpenSSH", "", Some("SSH-2.0-OpenSSH_9.2p1 Debian-2"));
    assert_eq!(a.distro_ecosystems, ["Debian:12"]);
    assert_eq!(
        find(&a.matches, CVE).unwrap().confidence,
        Confidence::DistroVerified
    );
}

#[test]
fn distribution_records_alone_verify() {
    let index = osv_only_index();
    let found = index.lookup(
        "OpenSSH",
        "",
        Some("SSH-2.0-OpenSSH_8.9p1 Ubuntu-3ubuntu0.9"),
    );
    let m = find(&found, CVE).unwrap();
    assert_eq!(m.confidence, Confidence::DistroVerified);
    // No NVD data: the CVSS vector is the record's own, without a score.
    let cvss = m.cvss_v31.as_ref().unwrap();
    assert_eq!(cvss.score, None);
    assert!(cvss.vector.starts_with("CVSS:3.1/"));
    assert_eq!(m.sources.len(), 1);
    assert_eq!(m.sources[0].source, Source::Osv);
    // An upstream banner reads no distribution data, and there is no NVD data.
    assert!(index.lookup("OpenSSH", "9.6", None).is_empty());
}

#[test]
fn data_dates_are_reported() {
    let index = full_index();
    let found = index.lookup("OpenSSH", "9.6", None);
    let nvd = &find(&found, CVE).unwrap().sources[0];
    assert_eq!(nvd.source, Source::Nvd);
    assert_eq!(
        nvd.date.unwrap().to_rfc3339(),
        "2024-07-11T14:15:12.977+00:00"
    );
    let stats = index.stats();
    assert_eq!(
        stats.osv_date.newest_record,
        Some(Utc.with_ymd_and_hms(2024, 7, 2, 9, 0, 0).unwrap())
    );

    // A dataset date given at import wins.
    let mut index = VulnIndex::new();
    let day = Utc.with_ymd_and_hms(2025, 1, 31, 0, 0, 0).unwrap();
    let options = ImportOptions {
        dataset_date: Some(day),
        ..ImportOptions::default()
    };
    index
        .import_nvd_path(&fixture("nvd-cve-2024-6387.json"), &options)
        .unwrap();
    let found = index.lookup("OpenSSH", "9.6", None);
    assert_eq!(found[0].sources[0].date, Some(day));
}
