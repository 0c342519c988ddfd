//! Scan formats in and out, with real peers.
//!
//! Out: `portgate scan -o nmap-xml` and `check --xml`, validated against the DTD of
//! Debian's nmap package with `xmllint` (libxml2-utils) and compared by `ndiff` (Debian's
//! ndiff package) across two scans of 127.0.0.1 between which a port closed.
//!
//! In: `portgate check --from-scan` and `portgate import` on the output of the real nmap
//! (`-oX`) and masscan (`-oJ`, `-oL`) against a lab host (root: a namespace, and masscan's
//! raw packets on the lab's veth), and on portgate's own JSON.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{closed_port, run};
use portgate_lab::{LabConfig, LabHost, Profile, in_lab_range, skip_reason};
use std::io::Write;
use std::net::TcpListener;
use std::path::Path;
use std::process::Command;

const DTD: &str = "/usr/share/nmap/nmap.dtd";

/// `Some(reason)` when a tool the test needs is missing.
fn missing_tools() -> Option<String> {
    if !Path::new(DTD).exists() {
        return Some(format!("{DTD} not found (Debian package nmap)"));
    }
    for (tool, package) in [("xmllint", "libxml2-utils"), ("ndiff", "ndiff")] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .is_ok_and(|o| o.status.success());
        if !found {
            return Some(format!("`{tool}` not found (Debian package {package})"));
        }
    }
    None
}

fn valid(path: &Path) {
    let out = Command::new("xmllint")
        .args(["--noout", "--dtdvalid", DTD])
        .arg(path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}: {}\n{}",
        path.display(),
        String::from_utf8_lossy(&out.stderr),
        std::fs::read_to_string(path).unwrap_or_default()
    );
}

#[test]
fn nmap_xml_is_valid_and_ndiff_reads_it() {
    if let Some(reason) = missing_tools() {
        portgate_test_support::skip("nmap_xml_is_valid_and_ndiff_reads_it", reason);
        return;
    }
    // A service whose banner holds markup and a control byte: escaped, still valid.
    let banner = TcpListener::bind("127.0.0.1:0").unwrap();
    let banner_port = banner.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in banner.incoming() {
            let Ok(mut s) = stream else { continue };
            let _ = s.write_all(b"SSH-2.0-OpenSSH_9.6 <b>&\"x\x01\"</b>\r\n");
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
    });
    let closing = TcpListener::bind("127.0.0.1:0").unwrap();
    let closing_port = closing.local_addr().unwrap().port();
    let closed = closed_port();
    let ports = format!("{banner_port},{closing_port},{closed}");
    let dir = tempfile::tempdir().unwrap();
    let before = dir.path().join("before.xml");
    let after = dir.path().join("after.xml");

    let (code, _, stderr) = run(&[
        "scan",
        "127.0.0.1",
        "-p",
        &ports,
        "--connect",
        "--detect",
        "-o",
        "nmap-xml",
        "--output-file",
        before.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stderr}");
    valid(&before);
    let xml = std::fs::read_to_string(&before).unwrap();
    assert!(xml.contains("<nmaprun scanner=\"nmap\""), "{xml}");
    assert!(xml.contains("<!-- portgate "), "{xml}");
    assert!(
        xml.contains(&format!("<port protocol=\"tcp\" portid=\"{banner_port}\"><state state=\"open\" reason=\"syn-ack\"")),
        "{xml}"
    );
    assert!(
        xml.contains("product=\"OpenSSH\" version=\"9.6\"") && xml.contains("method=\"probed\""),
        "{xml}"
    );
    assert!(
        xml.contains("<cpe>cpe:/a:openbsd:openssh:9.6</cpe>"),
        "{xml}"
    );
    assert!(
        xml.contains(&format!(
            "portid=\"{closed}\"><state state=\"closed\" reason=\"conn-refused\""
        )),
        "{xml}"
    );
    assert!(!xml.contains('\u{1}'), "a control byte went through");

    drop(closing);
    // With 30 more closed ports: summarised as <extraports>, as nmap does, and still valid.
    let more = format!("{ports},40001-40030");
    let (code, _, stderr) = run(&[
        "scan",
        "127.0.0.1",
        "-p",
        &more,
        "--connect",
        "-o",
        "nmap-xml",
        "--output-file",
        after.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stderr}");
    valid(&after);
    let xml = std::fs::read_to_string(&after).unwrap();
    assert!(
        xml.contains("<extraports state=\"closed\" count=\""),
        "{xml}"
    );
    let diff = Command::new("ndiff")
        .arg(&before)
        .arg(&after)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&diff.stdout);
    // ndiff exits 1 when the scans differ, 2 on an error (a file it cannot read).
    assert_eq!(
        diff.status.code(),
        Some(1),
        "{text}{}",
        String::from_utf8_lossy(&diff.stderr)
    );
    let open_line = text.lines().any(|l| {
        l.starts_with('-') && l.contains(&format!("{closing_port}/tcp")) && l.contains("open")
    });
    // The port that closed is now one of the closed ports summarised as <extraports>.
    let closed_line = text
        .lines()
        .any(|l| l.starts_with("+Not shown: ") && l.ends_with(" closed ports"));
    assert!(open_line && closed_line, "{text}");
}

#[test]
fn check_writes_its_scan_as_nmap_xml() {
    if let Some(reason) = missing_tools() {
        portgate_test_support::skip("check_writes_its_scan_as_nmap_xml", reason);
        return;
    }
    let open = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = open.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("exposure.yaml");
    std::fs::write(
        &manifest,
        format!("version: 1\nassets:\n  - name: app\n    targets: [127.0.0.1]\n    ports: T:{port}\n    approved:\n      - port: {port}\n        justification: the app\n"),
    )
    .unwrap();
    let xml = dir.path().join("scan.xml");
    let (code, stdout, stderr) = run(&[
        "check",
        "--manifest",
        manifest.to_str().unwrap(),
        "--connect",
        "--xml",
        xml.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    valid(&xml);
    let text = std::fs::read_to_string(&xml).unwrap();
    assert!(
        text.contains(&format!("portid=\"{port}\"><state state=\"open\"")),
        "{text}"
    );
    drop(open);
}

/// The lab host for the import tests: ports 22 and 80 open, 81 closed (the open profile
/// refuses every port it does not serve).
fn lab(test: &str) -> Option<LabHost> {
    if let Some(reason) = skip_reason() {
        portgate_test_support::skip(test, reason);
        return None;
    }
    for (tool, package) in [("nmap", "nmap"), ("masscan", "masscan")] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .is_ok_and(|o| o.status.success());
        if !found {
            portgate_test_support::skip(
                test,
                format!("`{tool}` not found (Debian package {package})"),
            );
            return None;
        }
    }
    Some(LabHost::start(LabConfig::new(Profile::Open).open_ports([22, 80])).expect("lab host"))
}

/// The scanners' own output for the lab host: (nmap -oX, masscan -oJ, masscan -oL).
fn peer_outputs(host: &LabHost, dir: &Path) -> [std::path::PathBuf; 3] {
    let ip = host.ipv4().to_string();
    assert!(
        in_lab_range(host.ipv4().into()),
        "only lab addresses are scanned"
    );
    let xml = dir.join("nmap.xml");
    let out = Command::new("nmap")
        .args(["-sT", "-Pn", "-n", "-p", "22,80,81", &ip, "-oX"])
        .arg(&xml)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut masscan = Vec::new();
    for (flag, name) in [("-oJ", "masscan.json"), ("-oL", "masscan.txt")] {
        let path = dir.join(name);
        let out = Command::new("masscan")
            .args([&ip, "-p", "22,80,81", "--rate", "1000", "--wait", "1"])
            .args(["--adapter", host.host_interface()])
            .args(["--adapter-ip", &host.host_ipv4().to_string()])
            .args(["--router-mac", host.target_mac()])
            .arg(flag)
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "masscan: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        masscan.push(path);
    }
    let [json, list] = <[std::path::PathBuf; 2]>::try_from(masscan).unwrap();
    [xml, json, list]
}

#[test]
fn checks_and_imports_read_what_nmap_and_masscan_wrote() {
    let Some(host) = lab("checks_and_imports_read_what_nmap_and_masscan_wrote") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let ip = host.ipv4().to_string();
    // 22 approved, 80 not: every scanner's file fails the gate on 80 and only there.
    let manifest = dir.path().join("exposure.yaml");
    std::fs::write(
        &manifest,
        format!("version: 1\nassets:\n  - name: lab\n    targets: [{ip}]\n    ports: T:22,80,81\n    approved:\n      - port: 22\n        justification: bastion\n"),
    )
    .unwrap();
    let db = dir.path().join("history.db");
    let db = db.to_str().unwrap();
    for file in peer_outputs(&host, dir.path()) {
        let f = file.to_str().unwrap();
        let json = dir.path().join("check.json");
        let (code, stdout, stderr) = run(&[
            "check",
            "--manifest",
            manifest.to_str().unwrap(),
            "--from-scan",
            f,
            "--json",
            json.to_str().unwrap(),
        ]);
        assert_eq!(code, 1, "{f}: {stdout}{stderr}");
        let evidence: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
        let failed: Vec<(String, u64)> = evidence["findings"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|x| x["outcome"] == "fail")
            .map(|x| {
                (
                    x["rule"].as_str().unwrap().to_owned(),
                    x["port"].as_u64().unwrap_or(0),
                )
            })
            .collect();
        assert_eq!(
            failed,
            [("unapproved-port".to_owned(), 80)],
            "{f}: {stdout}"
        );
        assert!(
            evidence["findings"]
                .as_array()
                .unwrap()
                .iter()
                .any(|x| x["rule"] == "approved" && x["port"] == 22),
            "{f}: {stdout}"
        );

        let (code, _, stderr) = run(&["import", f, "--db", db]);
        assert_eq!(code, 0, "{f}: {stderr}");
        assert!(
            stderr.contains("1 host(s), 2 open port(s); saved as scan"),
            "{f}: {stderr}"
        );
    }
    // The imported scans are history: the timeline shows them.
    let (code, stdout, stderr) = run(&["history", &ip, "--db", db]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("22/tcp") && stdout.contains("80/tcp"),
        "{stdout}"
    );

    // portgate's own JSON (every port listed) reads back too; a file of another kind is a
    // usage error naming it.
    let own = dir.path().join("own.json");
    let (code, _, stderr) = run(&[
        "scan",
        &ip,
        "-p",
        "22,80,81",
        "--connect",
        "-o",
        "json",
        "--all-ports",
        "--output-file",
        own.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stderr}");
    let (code, stdout, stderr) = run(&[
        "check",
        "--manifest",
        manifest.to_str().unwrap(),
        "--from-scan",
        own.to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "{stdout}{stderr}");
    let junk = dir.path().join("notes.txt");
    std::fs::write(&junk, "hello\n").unwrap();
    let (code, _, stderr) = run(&[
        "check",
        "--manifest",
        manifest.to_str().unwrap(),
        "--from-scan",
        junk.to_str().unwrap(),
    ]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("notes.txt: not a scan portgate reads"),
        "{stderr}"
    );
}
