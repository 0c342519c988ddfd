//! Imported data in the store, the same suite on SQLite and on PostgreSQL: the
//! vulnerability index (incremental, idempotent re-import; a lookup reads only its rows
//! and answers as the whole index does) and the network-owner ranges.

mod common;

use common::*;
use portgate_store::{AsnRow, Store};
use portgate_vuln::{
    Confidence, ImportOptions, VulnIndex, lookup_keys, read_nvd_path, read_osv_path,
};
use std::path::{Path, PathBuf};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../vuln/tests/fixtures")
}

async fn open(db: &TestDb) -> Store {
    Store::open(&location(db))
        .await
        .unwrap_or_else(|e| panic!("{}: open: {e}", db.name))
}

const DEB12U2: &str = "SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u2";
const DEB12U3: &str = "SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3";

/// The regreSSHion feed with its `lastModified` and `vulnStatus` changed.
fn variant(dir: &Path, name: &str, last_modified: &str, status: &str) -> PathBuf {
    let text = std::fs::read_to_string(fixtures().join("nvd-cve-2024-6387.json")).expect("fixture");
    let text = text
        .replace(
            "\"lastModified\": \"2024-07-11T14:15:12.977\"",
            &format!("\"lastModified\": \"{last_modified}\""),
        )
        .replace(
            "\"vulnStatus\": \"Modified\"",
            &format!("\"vulnStatus\": \"{status}\""),
        );
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write");
    path
}

#[tokio::test]
async fn vulnerability_imports_are_incremental_and_lookups_read_only_their_rows() {
    let tmp = tempfile::tempdir().expect("tmp");
    let options = ImportOptions::default();
    let nvd = read_nvd_path(&fixtures().join("nvd-cve-2024-6387.json"), &options).expect("nvd");
    let edges = read_nvd_path(&fixtures().join("nvd-edge-cases.json"), &options).expect("edges");
    let osv = read_osv_path(&fixtures().join("osv"), &options).expect("osv");
    // The whole index in memory, for the comparison.
    let mut whole = VulnIndex::new();
    for f in ["nvd-cve-2024-6387.json", "nvd-edge-cases.json"] {
        whole
            .import_nvd_path(&fixtures().join(f), &options)
            .expect("import");
    }
    whole
        .import_osv_path(&fixtures().join("osv"), &options)
        .expect("import");

    for db in backends().await {
        let store = open(&db).await;
        assert!(
            !store.has_vulnerability_data().await.expect("query"),
            "{}",
            db.name
        );
        let first = store
            .import_vulnerabilities(&nvd, "nvd-2.0")
            .await
            .expect("import");
        assert_eq!((first.added, first.unchanged), (1, 0), "{}", db.name);
        store
            .import_vulnerabilities(&edges, "nvd-2.0")
            .await
            .expect("import");
        let o = store
            .import_vulnerabilities(&osv, "osv")
            .await
            .expect("import");
        assert_eq!(o.added, 2, "{}", db.name);
        assert!(store.has_vulnerability_data().await.expect("query"));

        // The same file again changes nothing.
        let again = store
            .import_vulnerabilities(&nvd, "nvd-2.0")
            .await
            .expect("import");
        assert_eq!(
            (again.added, again.replaced, again.unchanged),
            (0, 0, 1),
            "{}",
            db.name
        );

        // A lookup's rows answer as the whole index does.
        for banner in [
            DEB12U2,
            DEB12U3,
            "SSH-2.0-OpenSSH_9.6",
            "SSH-2.0-OpenSSH_9.8p1",
        ] {
            let keys = lookup_keys("OpenSSH", "", Some(banner));
            assert!(keys.iter().any(|k| k == "cpe:openbsd:openssh"), "{keys:?}");
            let part = store.vulnerability_index(&keys).await.expect("index");
            let (got, want) = (
                part.assess("OpenSSH", "", Some(banner)),
                whole.assess("OpenSSH", "", Some(banner)),
            );
            assert_eq!(got.matches, want.matches, "{}: {banner}", db.name);
            assert_eq!(
                got.cleared_by_distribution, want.cleared_by_distribution,
                "{banner}"
            );
            // Only the OpenSSH records were read, not the edge-case CVEs.
            assert!(
                part.stats().nvd_cves < whole.stats().nvd_cves,
                "{}",
                db.name
            );
        }
        let part = store
            .vulnerability_index(&lookup_keys("OpenSSH", "", Some(DEB12U2)))
            .await
            .expect("index");
        let vulnerable = part.lookup("OpenSSH", "", Some(DEB12U2));
        assert_eq!(vulnerable[0].cve, "CVE-2024-6387");
        assert_eq!(vulnerable[0].confidence, Confidence::DistroVerified);
        assert!(
            part.lookup("OpenSSH", "", Some(DEB12U3)).is_empty(),
            "{}",
            db.name
        );
        // The data's dates come from the store.
        assert!(part.stats().nvd_date.newest_record.is_some());

        // A newer copy replaces, an older one does not, a rejection removes.
        let newer = read_nvd_path(
            &variant(
                tmp.path(),
                "newer.json",
                "2024-08-01T00:00:00.000",
                "Modified",
            ),
            &options,
        )
        .expect("read");
        let r = store
            .import_vulnerabilities(&newer, "nvd-2.0")
            .await
            .expect("import");
        assert_eq!(r.replaced, 1, "{}", db.name);
        let r = store
            .import_vulnerabilities(&nvd, "nvd-2.0")
            .await
            .expect("import");
        assert_eq!(r.older, 1, "{}", db.name);
        let rejected = read_nvd_path(
            &variant(
                tmp.path(),
                "rejected.json",
                "2024-09-01T00:00:00.000",
                "Rejected",
            ),
            &options,
        )
        .expect("read");
        let r = store
            .import_vulnerabilities(&rejected, "nvd-2.0")
            .await
            .expect("import");
        assert_eq!(r.removed, 1, "{}", db.name);
        let part = store
            .vulnerability_index(&lookup_keys("OpenSSH", "", Some("SSH-2.0-OpenSSH_9.6")))
            .await
            .expect("index");
        assert!(
            part.lookup("OpenSSH", "", Some("SSH-2.0-OpenSSH_9.6"))
                .is_empty(),
            "{}",
            db.name
        );

        let sets = store.datasets().await.expect("datasets");
        let nvd_set = sets.iter().find(|d| d.name == "nvd").expect("nvd dataset");
        assert_eq!(nvd_set.kind, "vuln");
        assert_eq!(nvd_set.records, 8, "{}: 9 imported, one rejected", db.name);
        assert!(sets.iter().any(|d| d.name == "osv" && d.records == 2));
        store.close().await;
    }
}

fn key(ip: &str) -> [u8; 16] {
    match ip.parse::<std::net::IpAddr>().expect("ip") {
        std::net::IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        std::net::IpAddr::V6(v6) => v6.octets(),
    }
}

fn row(start: &str, end: &str, asns: &[u32], org: &str) -> AsnRow {
    AsnRow {
        start: key(start),
        end: key(end),
        asns: asns.to_vec(),
        org: Some(org.to_owned()),
        country: Some("ZZ".to_owned()),
    }
}

#[tokio::test]
async fn network_owner_ranges_answer_at_their_edges() {
    for db in backends().await {
        let store = open(&db).await;
        let rows = vec![
            row("198.18.0.0", "198.18.0.255", &[64500], "Example Net"),
            row(
                "198.18.2.0",
                "198.18.3.255",
                &[64501, 64502],
                "Multi Origin",
            ),
            row("2001:db8::", "2001:db8::ffff", &[64510], "Example Six"),
        ];
        store
            .import_asn("lab", "iptoasn", None, "lab.tsv", &rows)
            .await
            .expect("import");
        for (ip, want) in [
            ("198.18.0.0", Some(vec![64500])),
            ("198.18.0.255", Some(vec![64500])),
            ("198.18.1.0", None),
            ("198.18.3.255", Some(vec![64501, 64502])),
            ("198.18.4.0", None),
            ("2001:db8::ffff", Some(vec![64510])),
            ("2001:db8::1:0", None),
            ("::1", None),
        ] {
            let owners = store.network_owner(key(ip)).await.expect("lookup");
            assert_eq!(
                owners.first().map(|o| o.asns.clone()),
                want,
                "{}: {ip}",
                db.name
            );
        }
        // Importing the dataset again replaces it.
        store
            .import_asn("lab", "iptoasn", None, "lab.tsv", &rows[..1])
            .await
            .expect("import");
        assert!(
            store
                .network_owner(key("198.18.2.1"))
                .await
                .expect("lookup")
                .is_empty()
        );
        let sets = store.datasets().await.expect("datasets");
        let set = sets.iter().find(|d| d.name == "asn:lab").expect("dataset");
        assert_eq!((set.kind.as_str(), set.records), ("asn", 1), "{}", db.name);
        store.close().await;
    }
}
