//! OSV imports: a directory, a zip archive, re-imports (idempotent, newer replaces,
//! older ignored, withdrawn removed), other ecosystems skipped, and the index's
//! serialization.

#![allow(clippy::unwrap_used)]

mod common;

use std::io::Write;
use std::path::Path;

use common::{fixture, full_index};
use portgate_vuln::{Confidence, ImportOptions, VulnIndex};

fn write_zip(path: &Path, entries: &[(&str, Vec<u8>)]) {
    let file = std::fs::File::create(path).unwrap();
    let mut zip = zip::ZipWriter::new(file);
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    for (name, bytes) in entries {
        zip.start_file(*name, options).unwrap();
        zip.write_all(bytes).unwrap();
    }
    zip.finish().unwrap();
}

fn dsa() -> Vec<u8> {
    std::fs::read(fixture("osv/DSA-5724-1.json")).unwrap()
}

fn ubuntu() -> Vec<u8> {
    std::fs::read(fixture("osv/UBUNTU-CVE-2024-6387.json")).unwrap()
}

#[test]
fn directory_import_counts() {
    let mut index = VulnIndex::new();
    let report = index
        .import_osv_path(&fixture("osv"), &ImportOptions::default())
        .unwrap();
    assert_eq!((report.files, report.records, report.added), (2, 2, 2));
    let stats = index.stats();
    assert_eq!(stats.osv_records, 2);
    assert_eq!(stats.osv_packages, 1);
    assert_eq!(
        stats.osv_ecosystems,
        [
            "Debian:12",
            "Ubuntu:22.04:LTS",
            "Ubuntu:23.10",
            "Ubuntu:24.04:LTS"
        ]
    );
}

#[test]
fn reimport_is_idempotent() {
    let mut index = full_index();
    let before = index.stats();
    let report = index
        .import_osv_path(&fixture("osv"), &ImportOptions::default())
        .unwrap();
    assert_eq!((report.added, report.replaced, report.unchanged), (0, 0, 2));
    let report = index
        .import_nvd_path(
            &fixture("nvd-cve-2024-6387.json"),
            &ImportOptions::default(),
        )
        .unwrap();
    assert_eq!((report.added, report.replaced, report.unchanged), (0, 0, 1));
    assert_eq!(index.stats(), before);
}

#[test]
fn zip_import_matches_directory_import() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("all.zip");
    write_zip(
        &path,
        &[
            ("DSA-5724-1.json", dsa()),
            ("ubuntu/UBUNTU-CVE-2024-6387.json", ubuntu()),
            ("README.txt", b"not a record".to_vec()),
        ],
    );
    let mut index = common::nvd_index();
    let report = index
        .import_osv_path(&path, &ImportOptions::default())
        .unwrap();
    assert_eq!((report.files, report.added), (2, 2));
    assert_eq!(index.stats(), full_index().stats());
    let found = index.lookup(
        "OpenSSH",
        "",
        Some("SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u2"),
    );
    assert_eq!(found[0].confidence, Confidence::DistroVerified);
    // Twice: nothing changes.
    let report = index
        .import_osv_path(&path, &ImportOptions::default())
        .unwrap();
    assert_eq!((report.added, report.unchanged), (0, 2));

    // The same archive from memory.
    let mut from_bytes = common::nvd_index();
    from_bytes
        .import_osv_bytes(
            "all.zip",
            std::fs::read(&path).unwrap(),
            &ImportOptions::default(),
        )
        .unwrap();
    assert_eq!(from_bytes.stats(), index.stats());
}

fn edit(bytes: &[u8], from: &str, to: &str) -> Vec<u8> {
    let text = String::from_utf8(bytes.to_vec()).unwrap();
    assert!(text.contains(from), "{from}");
    text.replace(from, to).into_bytes()
}

#[test]
fn newer_record_replaces_older_is_ignored() {
    let mut index = full_index();
    let banner = Some("SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3");
    assert!(index.lookup("OpenSSH", "", banner).is_empty());

    // A newer copy of the advisory moves the fix one revision later.
    let newer = edit(
        &edit(&dsa(), "2024-07-01T12:00:00Z", "2024-08-01T00:00:00Z"),
        "\"fixed\": \"1:9.2p1-2+deb12u3\"",
        "\"fixed\": \"1:9.2p1-2+deb12u4\"",
    );
    let report = index
        .import_osv_bytes("DSA-5724-1.json", newer, &ImportOptions::default())
        .unwrap();
    assert_eq!(report.replaced, 1);
    assert_eq!(index.stats().osv_records, 2);
    assert_eq!(
        index.lookup("OpenSSH", "", banner)[0].confidence,
        Confidence::DistroVerified
    );

    // An older copy does not come back.
    let report = index
        .import_osv_bytes("DSA-5724-1.json", dsa(), &ImportOptions::default())
        .unwrap();
    assert_eq!(report.older, 1);
    assert_eq!(index.lookup("OpenSSH", "", banner).len(), 1);
}

#[test]
fn withdrawn_record_is_removed() {
    let mut index = full_index();
    let withdrawn = edit(
        &edit(&dsa(), "2024-07-01T12:00:00Z", "2024-09-01T00:00:00Z"),
        "\"id\": \"DSA-5724-1\",",
        "\"id\": \"DSA-5724-1\", \"withdrawn\": \"2024-09-01T00:00:00Z\",",
    );
    let report = index
        .import_osv_bytes("DSA-5724-1.json", withdrawn, &ImportOptions::default())
        .unwrap();
    assert_eq!(report.removed, 1);
    assert_eq!(index.stats().osv_records, 1);
    // No Debian data left: the Debian banner is possibly backported again.
    let found = index.lookup(
        "OpenSSH",
        "",
        Some("SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3"),
    );
    assert_eq!(found[0].confidence, Confidence::PossiblyBackported);
}

#[test]
fn other_ecosystems_are_skipped() {
    let record = br#"{"id": "GHSA-xxxx-yyyy-zzzz", "modified": "2024-01-01T00:00:00Z",
        "aliases": ["CVE-2024-0001"],
        "affected": [{"package": {"ecosystem": "PyPI", "name": "requests"},
            "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "2.32.0"}]}]}]}"#;
    let mut index = VulnIndex::new();
    let report = index
        .import_osv_bytes("ghsa.json", record.to_vec(), &ImportOptions::default())
        .unwrap();
    assert_eq!((report.records, report.skipped, report.added), (1, 1, 0));
    assert_eq!(index.stats().osv_records, 0);
}

#[test]
fn an_array_of_records_is_read() {
    let mut array = b"[".to_vec();
    array.extend(dsa());
    array.push(b',');
    array.extend(ubuntu());
    array.push(b']');
    let mut index = VulnIndex::new();
    let report = index
        .import_osv_bytes("records.json", array, &ImportOptions::default())
        .unwrap();
    assert_eq!(report.added, 2);
}

#[test]
fn index_survives_serialization() {
    let index = full_index();
    let json = serde_json::to_string(&index).unwrap();
    let back: VulnIndex = serde_json::from_str(&json).unwrap();
    assert_eq!(back.stats(), index.stats());
    for banner in [
        "SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u2",
        "SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3",
        "SSH-2.0-OpenSSH_8.9p1 Ubuntu-3ubuntu0.9",
        "SSH-2.0-OpenSSH_9.6",
    ] {
        assert_eq!(
            back.assess("OpenSSH", "", Some(banner)),
            index.assess("OpenSSH", "", Some(banner)),
            "{banner}"
        );
    }
    // Incremental after a round trip: the same data again changes nothing.
    let mut back = back;
    let report = back
        .import_osv_path(&fixture("osv"), &ImportOptions::default())
        .unwrap();
    assert_eq!(report.unchanged, 2);
    // Another format version is refused.
    let other = json.replacen("\"format\":1", "\"format\":99", 1);
    let err = serde_json::from_str::<VulnIndex>(&other).unwrap_err();
    assert!(err.to_string().contains("format 99"), "{err}");
}
