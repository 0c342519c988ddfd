//! Distribution package versions from other banners: MariaDB and MySQL handshakes,
//! PostgreSQL's server_version, Apache's Server header. The records here are test data
//! written inline in the NVD 2.0 and OSV formats (CVE-2099-* and TEST-* ids are not real
//! advisories).

#![allow(clippy::unwrap_used)]

use portgate_vuln::{Confidence, ImportOptions, VulnIndex};

fn nvd_record(id: &str, cpe: &str, ranges: &[(&str, &str)]) -> String {
    let matches: Vec<String> = ranges
        .iter()
        .map(|(start, end)| {
            format!(
                r#"{{"vulnerable": true, "criteria": "cpe:2.3:a:{cpe}:*:*:*:*:*:*:*:*", "versionStartIncluding": "{start}", "versionEndExcluding": "{end}"}}"#
            )
        })
        .collect();
    format!(
        r#"{{"cve": {{"id": "{id}", "lastModified": "2099-01-01T00:00:00.000",
            "configurations": [{{"nodes": [{{"operator": "OR", "negate": false, "cpeMatch": [{}]}}]}}]}}}}"#,
        matches.join(",")
    )
}

fn osv_record(id: &str, cve: &str, affected: &[(&str, &str, &str)]) -> Vec<u8> {
    let entries: Vec<String> = affected
        .iter()
        .map(|(eco, name, fixed)| {
            format!(
                r#"{{"package": {{"ecosystem": "{eco}", "name": "{name}"}},
                    "ranges": [{{"type": "ECOSYSTEM", "events": [{{"introduced": "0"}}, {{"fixed": "{fixed}"}}]}}]}}"#
            )
        })
        .collect();
    format!(
        r#"{{"id": "{id}", "modified": "2099-01-01T00:00:00Z", "upstream": ["{cve}"], "affected": [{}]}}"#,
        entries.join(",")
    )
    .into_bytes()
}

fn index() -> VulnIndex {
    let feed = format!(
        r#"{{"vulnerabilities": [{}, {}, {}, {}]}}"#,
        nvd_record(
            "CVE-2099-1001",
            "mariadb:mariadb",
            &[("10.5.0", "10.5.30"), ("10.11.0", "10.11.9")]
        ),
        nvd_record(
            "CVE-2099-1002",
            "postgresql:postgresql",
            &[("15.0", "15.9")]
        ),
        nvd_record(
            "CVE-2099-1003",
            "apache:http_server",
            &[("2.4.0", "2.4.60")]
        ),
        nvd_record("CVE-2099-1004", "oracle:mysql", &[("8.0.0", "8.0.37")]),
    );
    let mut index = VulnIndex::new();
    let options = ImportOptions::default();
    index
        .import_nvd_bytes("test-feed.json", feed.into_bytes(), &options)
        .unwrap();
    for (name, record) in [
        (
            "TEST-1.json",
            osv_record(
                "TEST-1",
                "CVE-2099-1001",
                &[
                    ("Debian:11", "mariadb-10.5", "1:10.5.26-0+deb11u1"),
                    ("Debian:12", "mariadb", "1:10.11.8-0+deb12u1"),
                ],
            ),
        ),
        (
            "TEST-2.json",
            osv_record(
                "TEST-2",
                "CVE-2099-1002",
                &[("Debian:12", "postgresql-15", "15.8-0+deb12u1")],
            ),
        ),
        (
            "TEST-4.json",
            osv_record(
                "TEST-4",
                "CVE-2099-1004",
                &[("Ubuntu:22.04:LTS", "mysql-8.0", "8.0.37-0ubuntu0.22.04.1")],
            ),
        ),
    ] {
        index.import_osv_bytes(name, record, &options).unwrap();
    }
    index
}

#[test]
fn mariadb_package_names_differ_by_release() {
    let index = index();
    let a = index.assess("MariaDB", "10.5.23", Some("10.5.23-MariaDB-0+deb11u1"));
    assert_eq!(a.distro_package.as_deref(), Some("mariadb-10.5"));
    assert_eq!(a.package_version.as_deref(), Some("1:10.5.23-0+deb11u1"));
    assert_eq!(a.matches[0].confidence, Confidence::DistroVerified);

    let a = index.assess("MariaDB", "10.11.6", Some("10.11.6-MariaDB-0+deb12u1"));
    assert_eq!(a.distro_package.as_deref(), Some("mariadb"));
    assert_eq!(a.matches[0].confidence, Confidence::DistroVerified);

    let a = index.assess("MariaDB", "10.11.8", Some("10.11.8-MariaDB-0+deb12u1"));
    assert!(a.matches.is_empty(), "{:#?}", a.matches);
    assert_eq!(a.cleared_by_distribution[0].cve, "CVE-2099-1001");

    // MariaDB's own packages for Debian are not Debian's: upstream version only.
    let found = index.lookup(
        "MariaDB",
        "10.11.6",
        Some("10.11.6-MariaDB-1:10.11.6+maria~deb12"),
    );
    assert_eq!(found[0].confidence, Confidence::UpstreamVersion);
}

#[test]
fn postgresql_server_version() {
    let index = index();
    let a = index.assess("PostgreSQL", "", Some("15.8 (Debian 15.8-0+deb12u1)"));
    assert_eq!(a.package_version.as_deref(), Some("15.8-0+deb12u1"));
    assert_eq!(a.distro_package.as_deref(), Some("postgresql-15"));
    assert!(a.matches.is_empty(), "{:#?}", a.matches);
    let found = index.lookup("PostgreSQL", "", Some("15.7 (Debian 15.7-0+deb12u1)"));
    assert_eq!(found[0].confidence, Confidence::DistroVerified);
    let found = index.lookup("PostgreSQL", "15.7", None);
    assert_eq!(found[0].confidence, Confidence::UpstreamVersion);
}

#[test]
fn apache_naming_only_the_distribution_is_possibly_backported() {
    let index = index();
    let a = index.assess("Apache httpd", "2.4.57", Some("Apache/2.4.57 (Debian)"));
    let m = &a.matches[0];
    assert_eq!(m.confidence, Confidence::PossiblyBackported);
    assert!(
        m.note.as_deref().unwrap().contains("package revision"),
        "{:?}",
        m.note
    );
    let found = index.lookup(
        "Apache httpd",
        "2.4.57",
        Some("Apache/2.4.57 (Red Hat Enterprise Linux)"),
    );
    assert_eq!(found[0].confidence, Confidence::PossiblyBackported);
    let found = index.lookup("Apache httpd", "2.4.57", Some("Apache/2.4.57 (Unix)"));
    assert_eq!(found[0].confidence, Confidence::UpstreamVersion);
}

#[test]
fn mysql_ubuntu_release_from_the_revision() {
    let index = index();
    let a = index.assess("MySQL", "8.0.36", Some("8.0.36-0ubuntu0.22.04.1"));
    assert_eq!(a.distro.as_ref().unwrap().release.as_deref(), Some("22.04"));
    assert_eq!(a.distro_package.as_deref(), Some("mysql-8.0"));
    assert_eq!(a.matches[0].confidence, Confidence::DistroVerified);
    let a = index.assess("MySQL", "8.0.37", Some("8.0.37-0ubuntu0.22.04.1"));
    assert!(a.matches.is_empty());
    // Ubuntu 24.04 has no records here.
    let found = index.lookup("MySQL", "8.0.36", Some("8.0.36-0ubuntu0.24.04.1"));
    assert_eq!(found[0].confidence, Confidence::PossiblyBackported);
}
