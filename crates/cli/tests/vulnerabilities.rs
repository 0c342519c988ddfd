//! Known vulnerabilities through the binary: `portgate data import nvd|osv` into a history
//! database, then `scan --detect --db` and `check` against services on 127.0.0.1 that send
//! banners recorded from real OpenSSH packages (Debian 12 before and after the
//! CVE-2024-6387 update, Ubuntu 22.04 after it, an upstream build). The fixture feeds
//! are written in the NVD 2.0 and OSV formats from the published records
//! (`crates/vuln/tests/fixtures`). The zoo test (`detect_zoo.rs`) does the same against a
//! real OpenSSH.

#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use serde_json::Value;
use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A TCP service on 127.0.0.1 that sends `banner` to every connection and then waits for
/// the client to close (at most five seconds). Stops with the test process.
fn banner_server(banner: &'static str) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut stream = stream;
                let _ = stream.write_all(banner.as_bytes());
                let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                let mut sink = [0u8; 1024];
                while matches!(std::io::Read::read(&mut stream, &mut sink), Ok(n) if n > 0) {}
            });
        }
    });
    port
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../vuln/tests/fixtures")
}

fn import(db: &str, with_osv: bool) {
    let nvd = fixtures().join("nvd-cve-2024-6387.json");
    let (code, _, stderr) = run(&[
        "data",
        "import",
        "nvd",
        nvd.to_str().unwrap(),
        "--db",
        db,
        "--date",
        "2024-07-12",
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("1 added"), "{stderr}");
    if with_osv {
        let osv = fixtures().join("osv");
        let (code, _, stderr) = run(&["data", "import", "osv", osv.to_str().unwrap(), "--db", db]);
        assert_eq!(code, 0, "{stderr}");
        assert!(stderr.contains("2 added"), "{stderr}");
    }
}

const DEB12U2: &str = "SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u2\r\n";
const DEB12U3: &str = "SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n";
const UBUNTU: &str = "SSH-2.0-OpenSSH_8.9p1 Ubuntu-3ubuntu0.10\r\n";
const UPSTREAM: &str = "SSH-2.0-OpenSSH_9.6\r\n";
const FIXED: &str = "SSH-2.0-OpenSSH_9.8p1\r\n";

/// The `vulnerabilities` of the port in a scan report.
fn vulns(report: &Value, port: u16) -> &Value {
    let host = host(report, "127.0.0.1");
    let entry = host["ports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["port"] == port)
        .unwrap_or_else(|| panic!("port {port} missing: {host}"));
    &entry["detected"]["vulnerabilities"]
}

fn ids(list: &Value) -> Vec<String> {
    list.as_array()
        .map(|a| {
            a.iter()
                .map(|m| m["id"].as_str().unwrap().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn scan_lists_cves_with_an_honest_confidence() {
    let ports: Vec<u16> = [DEB12U2, DEB12U3, UBUNTU, UPSTREAM, FIXED]
        .into_iter()
        .map(banner_server)
        .collect();
    let list = ports
        .iter()
        .map(u16::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("h.db").display().to_string();

    // Without an index in the database: no vulnerability section at all.
    let (code, report, stderr) = scan_json(&[
        "127.0.0.1",
        "-p",
        &list,
        "--detect",
        "--connect",
        "--db",
        &db,
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert!(vulns(&report, ports[0]).is_null(), "{report}");

    import(&db, true);
    let (code, report, stderr) = scan_json(&[
        "127.0.0.1",
        "-p",
        &list,
        "--detect",
        "--connect",
        "--db",
        &db,
    ]);
    assert_eq!(code, 0, "{stderr}");
    // Debian 12, deb12u2: the Debian advisory says vulnerable.
    let v = vulns(&report, ports[0]);
    assert_eq!(ids(&v["matches"]), ["CVE-2024-6387"], "{v}");
    assert_eq!(v["matches"][0]["confidence"], "distro-verified", "{v}");
    assert_eq!(v["matches"][0]["cvss_v31"]["score"], 8.1);
    assert_eq!(v["matches"][0]["package_version"], "1:9.2p1-2+deb12u2");
    let evidence = v["matches"][0]["evidence"].to_string();
    assert!(
        evidence.contains("DSA-5724-1") && evidence.contains("cpe:2.3:a:openbsd:openssh"),
        "{evidence}"
    );
    assert!(
        v["data"].to_string().contains("2024-07-12"),
        "the data's date: {v}"
    );
    // deb12u3 and Ubuntu's 3ubuntu0.10 carry the fix: cleared, not matched.
    for (port, what) in [(ports[1], "deb12u3"), (ports[2], "ubuntu0.10")] {
        let v = vulns(&report, port);
        assert!(ids(&v["matches"]).is_empty(), "{what}: {v}");
        assert_eq!(ids(&v["cleared"]), ["CVE-2024-6387"], "{what}: {v}");
    }
    // An upstream build in the range; one past it.
    let v = vulns(&report, ports[3]);
    assert_eq!(v["matches"][0]["confidence"], "upstream-version", "{v}");
    assert!(ids(&vulns(&report, ports[4])["matches"]).is_empty());

    // The table shows them under the port.
    let (code, table, stderr) = run(&[
        "scan",
        "127.0.0.1",
        "-p",
        &list,
        "--detect",
        "--connect",
        "--db",
        &db,
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        table.contains("CVE-2024-6387     8.1  distro-verified"),
        "{table}"
    );
    assert!(
        table.contains("fixed by the distribution in 1:9.2p1-2+deb12u3: CVE-2024-6387"),
        "{table}"
    );

    // NVD alone: a distribution banner is only "possibly backported".
    let nvd_only = dir.path().join("nvd-only.db").display().to_string();
    import(&nvd_only, false);
    let (_, report, _) = scan_json(&[
        "127.0.0.1",
        "-p",
        &list,
        "--detect",
        "--connect",
        "--db",
        &nvd_only,
    ]);
    for port in &ports[..3] {
        let v = vulns(&report, *port);
        assert_eq!(v["matches"][0]["confidence"], "possibly-backported", "{v}");
    }

    // Importing the same files again changes nothing.
    let nvd = fixtures().join("nvd-cve-2024-6387.json");
    let (code, _, stderr) = run(&["data", "import", "nvd", nvd.to_str().unwrap(), "--db", &db]);
    assert_eq!(code, 0);
    assert!(
        stderr.contains("0 added, 0 replaced, 1 unchanged"),
        "{stderr}"
    );
    let (code, listing, _) = run(&["data", "list", "--db", &db]);
    assert_eq!(code, 0);
    assert!(
        listing.contains("nvd") && listing.contains("2024-07-12") && listing.contains("osv"),
        "{listing}"
    );

    // A file that is not a feed: exit 2, the file named, nothing imported.
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, "{\"vulnerabilities\": [{\"cve\": {\"id\": 7}}]}").unwrap();
    let (code, _, stderr) = run(&["data", "import", "nvd", bad.to_str().unwrap(), "--db", &db]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("bad.json"), "{stderr}");
}

fn manifest(dir: &Path, ports: &[u16], defaults: &str) -> String {
    let approved: String = ports
        .iter()
        .map(|p| {
            format!("      - port: {p}\n        service: ssh\n        justification: bastion\n")
        })
        .collect();
    let list = ports
        .iter()
        .map(u16::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let path = dir.join("exposure.yaml");
    std::fs::write(
        &path,
        format!("version: 1\n{defaults}assets:\n  - name: bastion\n    owner: team-ops\n    targets: [127.0.0.1]\n    ports: T:{list}\n    approved:\n{approved}"),
    )
    .unwrap();
    path.display().to_string()
}

#[test]
fn check_fails_on_a_verified_vulnerability_and_names_it() {
    let vulnerable = banner_server(DEB12U2);
    let patched = banner_server(DEB12U3);
    let upstream = banner_server(UPSTREAM);
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("h.db").display().to_string();
    import(&db, true);

    // Defaults: upstream-version and surer matches count, CVSS 7.0 fails.
    let m = manifest(dir.path(), &[vulnerable, patched, upstream], "");
    let out = ["s.sarif", "m.md", "e.json"].map(|f| dir.path().join(f).display().to_string());
    let (code, stdout, stderr) = run(&[
        "check",
        "--manifest",
        &m,
        "--connect",
        "--db",
        &db,
        "--sarif",
        &out[0],
        "--markdown",
        &out[1],
        "--json",
        &out[2],
    ]);
    assert_eq!(code, 1, "stdout: {stdout}\nstderr: {stderr}");
    let failing: Vec<&str> = stdout
        .lines()
        .filter(|l| l.contains("known-vulnerability"))
        .collect();
    assert_eq!(
        failing.len(),
        2,
        "deb12u2 and the upstream 9.6 fail, deb12u3 does not: {stdout}"
    );
    for port in [vulnerable, upstream] {
        assert!(
            failing.iter().any(|l| l.contains(&format!(" {port}/tcp"))),
            "{port}: {stdout}"
        );
    }
    assert_eq!(
        stdout.matches("CVE-2024-6387 (CVSS 8.1").count(),
        2,
        "{stdout}"
    );
    assert!(
        !failing
            .iter()
            .any(|l| l.contains(&format!(" {patched}/tcp"))),
        "{stdout}"
    );
    let sarif: Value = serde_json::from_str(&std::fs::read_to_string(&out[0]).unwrap()).unwrap();
    let results = sarif["runs"][0]["results"].as_array().unwrap();
    let vuln: Vec<&Value> = results
        .iter()
        .filter(|r| r["ruleId"] == "known-vulnerability")
        .collect();
    assert_eq!(vuln.len(), 2, "{sarif}");
    assert_eq!(vuln[0]["level"], "error");
    assert_eq!(
        vuln[0]["properties"]["references"][0]["id"],
        "CVE-2024-6387"
    );
    assert_eq!(
        vuln[0]["properties"]["references"][0]["url"],
        "https://nvd.nist.gov/vuln/detail/CVE-2024-6387"
    );
    assert!(
        vuln[0]["message"]["markdown"]
            .as_str()
            .unwrap()
            .contains("[CVE-2024-6387](https://nvd.nist.gov/vuln/detail/CVE-2024-6387)")
    );
    let rules = sarif["runs"][0]["tool"]["driver"]["rules"].to_string();
    assert!(rules.contains("known-vulnerability"), "{rules}");
    let md = std::fs::read_to_string(&out[1]).unwrap();
    assert!(
        md.contains("[CVE-2024-6387](https://nvd.nist.gov/vuln/detail/CVE-2024-6387)"),
        "{md}"
    );
    let json: Value = serde_json::from_str(&std::fs::read_to_string(&out[2]).unwrap()).unwrap();
    assert!(
        json.to_string()
            .contains("\"references\":[\"CVE-2024-6387\"]"),
        "{json}"
    );

    // Only distribution-verified matches, failing from 9.0: deb12u2 (8.1) is a warning,
    // the upstream build is not counted.
    let m = manifest(
        dir.path(),
        &[vulnerable, patched, upstream],
        "defaults:\n  min_confidence: distro-verified\n  fail_on_cvss: 9.0\n",
    );
    let (code, stdout, stderr) = run(&["check", "--manifest", &m, "--connect", "--db", &db]);
    assert_eq!(code, 0, "stdout: {stdout}\nstderr: {stderr}");
    let lines: Vec<&str> = stdout
        .lines()
        .filter(|l| l.contains("known-vulnerability"))
        .collect();
    assert_eq!(lines.len(), 1, "{stdout}");
    assert!(lines[0].contains(&format!(" {vulnerable}/tcp")), "{stdout}");
    assert!(stdout.contains("none at or above CVSS 9.0"), "{stdout}");

    // A threshold out of range is refused with the place.
    let m = manifest(dir.path(), &[vulnerable], "defaults:\n  fail_on_cvss: 11\n");
    let (code, _, stderr) = run(&["check", "--manifest", &m, "--connect", "--db", &db]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("exposure.yaml:3")
            && stderr.contains("fail_on_cvss must be a CVSS score from 0.0 to 10.0, not 11"),
        "{stderr}"
    );
    let m = manifest(
        dir.path(),
        &[vulnerable],
        "defaults:\n  min_confidence: sure\n",
    );
    let (code, _, stderr) = run(&["check", "--manifest", &m, "--connect", "--db", &db]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("exposure.yaml:3") && stderr.contains("sure"),
        "{stderr}"
    );
}
