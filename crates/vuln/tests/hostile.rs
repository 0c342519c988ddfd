//! Hostile input: truncated JSON, wrong types, bad values, files and archives over the
//! caps, gzip bombs, mangled bytes. Each gives an error naming the file and the place,
//! never a panic, and leaves the index as it was.

#![allow(clippy::unwrap_used)]

mod common;

use std::io::Write;

use common::{fixture, full_index};
use portgate_vuln::{ImportOptions, Limits, VulnError, VulnIndex};

fn nvd_text() -> String {
    std::fs::read_to_string(fixture("nvd-cve-2024-6387.json")).unwrap()
}

fn dsa_text() -> String {
    std::fs::read_to_string(fixture("osv/DSA-5724-1.json")).unwrap()
}

fn import_nvd(name: &str, text: &str) -> Result<VulnIndex, VulnError> {
    let mut index = VulnIndex::new();
    index.import_nvd_bytes(name, text.as_bytes().to_vec(), &ImportOptions::default())?;
    Ok(index)
}

fn small(limits: Limits) -> ImportOptions {
    ImportOptions {
        limits,
        ..ImportOptions::default()
    }
}

#[test]
fn truncated_nvd_json_names_the_file_and_place() {
    let text = nvd_text();
    let cut = &text[..text.find("\"configurations\"").unwrap() + 30];
    let err = import_nvd("nvdcve-2.0-2024.json", cut).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.starts_with("nvdcve-2.0-2024.json: at vulnerabilities[0].cve"),
        "{msg}"
    );
    assert!(msg.contains("EOF"), "{msg}");
    match err {
        VulnError::Json { line, column, .. } => assert!(line > 1 && column > 0),
        other => panic!("{other:?}"),
    }
}

#[test]
fn wrong_types_name_the_field() {
    let text = nvd_text().replace("\"baseScore\": 8.1", "\"baseScore\": \"high\"");
    let msg = import_nvd("feed.json", &text).unwrap_err().to_string();
    assert!(
        msg.contains("vulnerabilities[0].cve.metrics.cvssMetricV31[0].cvssData.baseScore"),
        "{msg}"
    );
    assert!(msg.contains("invalid type"), "{msg}");

    let text = nvd_text().replace("\"vulnerable\": true", "\"vulnerable\": \"yes\"");
    let msg = import_nvd("feed.json", &text).unwrap_err().to_string();
    assert!(
        msg.contains("configurations[0].nodes[0].cpeMatch[0].vulnerable"),
        "{msg}"
    );

    let msg = import_nvd("feed.json", "{\"vulnerabilities\": {}}")
        .unwrap_err()
        .to_string();
    assert!(msg.contains("vulnerabilities"), "{msg}");
    let msg = import_nvd("feed.json", "[1, 2, 3]")
        .unwrap_err()
        .to_string();
    assert!(msg.contains("feed.json"), "{msg}");
    let msg = import_nvd("feed.json", "").unwrap_err().to_string();
    assert!(msg.contains("feed.json"), "{msg}");
}

#[test]
fn bad_values_name_the_record_field_and_value() {
    let cases = [
        (
            "cpe:2.3:a:openbsd:openssh:*:*:*:*:*:*:*:*\",\n                    \"versionEndExcluding\": \"4.4p1\"",
            "cpe:2.3:a:openbsd:openssh\",\n                    \"versionEndExcluding\": \"4.4p1\"",
            "cpeMatch[0].criteria",
        ),
        (
            "\"operator\": \"OR\"",
            "\"operator\": \"XOR\"",
            "nodes[0].operator",
        ),
        (
            "\"lastModified\": \"2024-07-11T14:15:12.977\"",
            "\"lastModified\": \"last tuesday\"",
            "cve.lastModified",
        ),
        ("\"baseScore\": 8.1", "\"baseScore\": 81", "baseScore"),
        (
            "\"id\": \"CVE-2024-6387\"",
            "\"id\": \"CVE-24-1\"",
            "cve.id",
        ),
        (
            "\"versionStartIncluding\": \"8.5p1\"",
            "\"versionStartIncluding\": \"\"",
            "versionStartIncluding",
        ),
    ];
    for (from, to, field) in cases {
        let text = nvd_text();
        assert!(text.contains(from), "{from}");
        let err = import_nvd("feed.json", &text.replacen(from, to, 1)).unwrap_err();
        let msg = err.to_string();
        assert!(msg.starts_with("feed.json: record "), "{msg}");
        assert!(msg.contains(field), "{field}: {msg}");
        assert!(matches!(err, VulnError::Record { .. }), "{msg}");
    }
}

#[test]
fn bad_osv_values_name_the_record_field_and_value() {
    let cases = [
        (
            "\"fixed\": \"1:9.2p1-2+deb12u3\"",
            "\"fixed\": \"not a version\"",
            "affected[0].ranges[0].events[1].fixed",
        ),
        (
            "\"modified\": \"2024-07-01T12:00:00Z\"",
            "\"modified\": \"soon\"",
            "modified",
        ),
        (
            "\"ecosystem\": \"Debian:12\"",
            "\"ecosystem\": \"Debian\"",
            "package.ecosystem",
        ),
        (
            "\"name\": \"openssh\"",
            "\"name\": \"open ssh/../x\"",
            "package.name",
        ),
        (
            "{ \"introduced\": \"0\" }",
            "{ \"introduced\": \"0\", \"fixed\": \"1:1.0-1\" }",
            "events[0]",
        ),
    ];
    for (from, to, field) in cases {
        let text = dsa_text();
        assert!(text.contains(from), "{from}");
        let mut index = VulnIndex::new();
        let err = index
            .import_osv_bytes(
                "DSA-5724-1.json",
                text.replacen(from, to, 1).into_bytes(),
                &ImportOptions::default(),
            )
            .unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.starts_with("DSA-5724-1.json: record DSA-5724-1: field "),
            "{msg}"
        );
        assert!(msg.contains(field), "{field}: {msg}");
    }
    let mut index = VulnIndex::new();
    let err = index
        .import_osv_bytes(
            "x.json",
            br#"{"id": "DSA-1", "modified": "2024-01-01T00:00:00Z", "affected": [{"package": {"ecosystem": "Debian:12", "name": 7}}]}"#.to_vec(),
            &ImportOptions::default(),
        )
        .unwrap_err();
    assert!(
        err.to_string().contains("at affected[0].package.name"),
        "{err}"
    );
}

#[test]
fn a_failed_import_changes_nothing() {
    let mut index = full_index();
    let before = index.stats();
    let mut text = nvd_text();
    // A valid first record and a broken second one.
    let second = text.replace("CVE-2024-6387", "CVE-2024-9999");
    let start = second.find("{\n      \"cve\"").unwrap();
    let end = second.rfind("\n  ]").unwrap();
    let record = second[start..end].replace("\"operator\": \"OR\"", "\"operator\": 3");
    let insert_at = text.rfind("\n  ]").unwrap();
    text.insert_str(insert_at, &format!(",{record}"));
    assert!(
        index
            .import_nvd_bytes("feed.json", text.into_bytes(), &ImportOptions::default())
            .is_err()
    );
    assert_eq!(index.stats(), before);

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("a.json"),
        dsa_text().replace("DSA-5724-1", "DSA-9999-1"),
    )
    .unwrap();
    std::fs::write(dir.path().join("b.json"), "{\"id\": ").unwrap();
    let err = index
        .import_osv_path(dir.path(), &ImportOptions::default())
        .unwrap_err();
    assert!(err.to_string().contains("b.json"), "{err}");
    assert_eq!(index.stats(), before);
}

#[test]
fn files_over_the_cap_are_refused_before_reading() {
    let dir = tempfile::tempdir().unwrap();
    // A sparse file one byte over the default NVD cap (1 GiB): refused from its size.
    let huge = dir.path().join("huge.json");
    let file = std::fs::File::create(&huge).unwrap();
    file.set_len(Limits::default().max_nvd_bytes + 1).unwrap();
    drop(file);
    let mut index = VulnIndex::new();
    let err = index
        .import_nvd_path(&huge, &ImportOptions::default())
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("huge.json") && msg.contains("larger than the cap"),
        "{msg}"
    );
    assert!(matches!(err, VulnError::TooLarge { limit, .. } if limit == 1 << 30));

    // The same with a small cap and a real file.
    let path = fixture("nvd-cve-2024-6387.json");
    let limits = Limits {
        max_nvd_bytes: 1024,
        ..Limits::default()
    };
    let err = index.import_nvd_path(&path, &small(limits)).unwrap_err();
    assert!(
        matches!(err, VulnError::TooLarge { limit: 1024, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("nvd-cve-2024-6387.json"));

    let limits = Limits {
        max_osv_record_bytes: 100,
        ..Limits::default()
    };
    let err = index
        .import_osv_path(&fixture("osv"), &small(limits))
        .unwrap_err();
    assert!(matches!(err, VulnError::TooLarge { .. }), "{err}");
}

#[test]
fn gzip_bombs_stop_at_the_cap() {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(b"{\"vulnerabilities\": [").unwrap();
    gz.write_all(&vec![b' '; 8 << 20]).unwrap();
    gz.write_all(b"]}").unwrap();
    let bomb = gz.finish().unwrap();
    assert!(bomb.len() < 64 << 10);
    let limits = Limits {
        max_nvd_bytes: 1 << 20,
        ..Limits::default()
    };
    let mut index = VulnIndex::new();
    let err = index
        .import_nvd_bytes("bomb.json.gz", bomb, &small(limits))
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("bomb.json.gz: the decompressed content is larger"),
        "{msg}"
    );

    // A gzip header with garbage after it.
    let err = index
        .import_nvd_bytes(
            "bad.gz",
            vec![0x1f, 0x8b, 8, 0, 1, 2, 3],
            &ImportOptions::default(),
        )
        .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("bad.gz: not a valid gzip stream"),
        "{err}"
    );
}

#[test]
fn zip_archives_are_held_to_the_caps() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("all.zip");
    let file = std::fs::File::create(&path).unwrap();
    let mut zip = zip::ZipWriter::new(file);
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    zip.start_file("DSA-5724-1.json", options).unwrap();
    zip.write_all(dsa_text().as_bytes()).unwrap();
    zip.start_file("big/padding.json", options).unwrap();
    // Valid (an empty array of records), but 4 MiB.
    zip.write_all(b"[").unwrap();
    zip.write_all(&vec![b' '; 4 << 20]).unwrap();
    zip.write_all(b"]").unwrap();
    zip.start_file("broken.json", options).unwrap();
    zip.write_all(b"{\"id\": \"DSA-1\", \"modified\": ")
        .unwrap();
    zip.finish().unwrap();

    let mut index = VulnIndex::new();
    let limits = Limits {
        max_osv_record_bytes: 1 << 20,
        ..Limits::default()
    };
    let err = index.import_osv_path(&path, &small(limits)).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("all.zip!big/padding.json: the entry is larger"),
        "{msg}"
    );

    let limits = Limits {
        max_osv_total_bytes: 2 << 20,
        ..Limits::default()
    };
    let err = index.import_osv_path(&path, &small(limits)).unwrap_err();
    assert!(err.to_string().contains("entries together"), "{err}");

    let limits = Limits {
        max_osv_files: 1,
        ..Limits::default()
    };
    let err = index.import_osv_path(&path, &small(limits)).unwrap_err();
    assert!(err.to_string().contains("more than 1 .json"), "{err}");

    let err = index
        .import_osv_path(&path, &ImportOptions::default())
        .unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("all.zip!broken.json"), "{msg}");
    assert_eq!(index.stats().osv_records, 0);

    // Not a zip after its magic number.
    let err = index
        .import_osv_bytes(
            "fake.zip",
            b"PK\x03\x04garbage".to_vec(),
            &ImportOptions::default(),
        )
        .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("fake.zip: not a readable zip archive"),
        "{err}"
    );
}

#[test]
fn missing_paths_are_io_errors() {
    let mut index = VulnIndex::new();
    let err = index
        .import_nvd_path(&fixture("no-such-file.json"), &ImportOptions::default())
        .unwrap_err();
    assert!(matches!(err, VulnError::Io { .. }));
    assert!(err.to_string().contains("no-such-file.json"));
    assert!(
        index
            .import_osv_path(&fixture("no-such-dir"), &ImportOptions::default())
            .is_err()
    );
}

/// Deterministic mangling of the fixtures: every result is an `Ok` or an `Err`.
#[test]
fn mangled_bytes_never_panic() {
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let inputs = [
        nvd_text().into_bytes(),
        std::fs::read(fixture("nvd-edge-cases.json")).unwrap(),
        dsa_text().into_bytes(),
        std::fs::read(fixture("osv/UBUNTU-CVE-2024-6387.json")).unwrap(),
    ];
    let specials = [
        b'"', b'{', b'}', b'[', b']', b':', b',', b'\\', b'0', b'-', 0xff, b'~',
    ];
    for round in 0..1500 {
        let mut bytes = inputs[round % inputs.len()].clone();
        let edits = 1 + next() % 4;
        for _ in 0..edits {
            let at = (next() % bytes.len() as u64) as usize;
            match next() % 3 {
                0 => bytes[at] = specials[(next() % specials.len() as u64) as usize],
                1 => bytes.truncate(at),
                _ => {
                    bytes.remove(at);
                }
            }
            if bytes.is_empty() {
                break;
            }
        }
        let mut index = VulnIndex::new();
        let _ = index.import_nvd_bytes("m.json", bytes.clone(), &ImportOptions::default());
        let _ = index.import_osv_bytes("m.json", bytes, &ImportOptions::default());
        for banner in [
            "SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u2",
            "SSH-2.0-OpenSSH_8.9p1 Ubuntu-3ubuntu0.9",
        ] {
            let _ = index.lookup("OpenSSH", "", Some(banner));
        }
    }
}

#[test]
fn hostile_lookups_never_panic() {
    let index = full_index();
    let long = "9".repeat(10_000);
    let weird = "é\u{0}\u{202e}~:-+";
    for product in ["OpenSSH", "", weird, long.as_str(), "nginx", "SSH-2.0"] {
        for version in ["", "9.2p1", weird, long.as_str(), "1:9.2p1-2", "~"] {
            for banner in [
                None,
                Some(""),
                Some(weird),
                Some(long.as_str()),
                Some("SSH-2.0-OpenSSH_9.2p1 Debian-"),
                Some("SSH-2.0-OpenSSH_9.2p1 Debian-99999999999999999999:x"),
                Some("SSH-2.0-OpenSSH_é Ubuntu-~"),
                Some("(Debian 1:2:3-4-5)"),
                Some("1.0-0ubuntu0.99.04.1"),
            ] {
                let _ = index.assess(product, version, banner);
            }
        }
    }
}
