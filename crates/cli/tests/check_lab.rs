//! `portgate check` against ten lab hosts (network namespaces in 198.18.0.0/15) whose ports
//! are known: firewalled hosts with 17 open ports each, a manifest of ten assets scanning
//! top1000. Every open port gets a decision, filtered approved ports warn, and the check's
//! wall time is printed (speed is shown by measurement, not asserted). Needs root.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use portgate_lab::{LabConfig, LabHost, Profile, skip_reason};
use std::fmt::Write;
use std::time::Instant;

#[test]
fn ten_lab_targets_top1000_each_port_decided() {
    if let Some(reason) = skip_reason() {
        portgate_test_support::skip("ten_lab_targets_top1000_each_port_decided", reason);
        return;
    }
    let labs: Vec<LabHost> = (0..10)
        .map(|_| LabHost::start(LabConfig::new(Profile::Firewalled)).expect("lab host starts"))
        .collect();
    let mut manifest =
        String::from("version: 1\ndefaults:\n  ports: top1000\n  on_missing: warn\nassets:\n");
    for (i, lab) in labs.iter().enumerate() {
        // 22, 80 and 443 are approved (open on the lab), 2049 too (filtered there).
        let _ = write!(
            manifest,
            "  - name: lab-{i}\n    owner: team-{i}\n    targets: [{}]\n    expected_network: [198.18.0.0/15]\n    approved:\n      - port: 22\n        justification: ssh\n      - port: 80\n        justification: web\n      - port: 443\n        justification: web\n      - port: 2049\n        justification: nfs\n",
            lab.ipv4()
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lab.yaml");
    std::fs::write(&path, &manifest).unwrap();
    let evidence = dir.path().join("evidence.json");
    let started = Instant::now();
    let (code, stdout, stderr) = common::run(&[
        "check",
        "--manifest",
        path.to_str().unwrap(),
        "--json",
        evidence.to_str().unwrap(),
    ]);
    let elapsed = started.elapsed();
    eprintln!(
        "portgate check: 10 lab targets x top1000: {:.2} s (exit {code})",
        elapsed.as_secs_f64()
    );
    assert_eq!(code, 1, "unapproved lab ports fail: {stdout}\n{stderr}");
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&evidence).unwrap()).unwrap();
    let findings = doc["findings"].as_array().unwrap();
    for (i, lab) in labs.iter().enumerate() {
        let ip = lab.ipv4().to_string();
        let of = |port: u16| -> Vec<(&str, &str)> {
            findings
                .iter()
                .filter(|f| f["ip"] == ip.as_str() && f["port"] == port)
                .map(|f| (f["rule"].as_str().unwrap(), f["outcome"].as_str().unwrap()))
                .collect()
        };
        // Every open port of the lab that top1000 covers is decided.
        for port in &lab.truth().open {
            if !portgate_model::port_sets()
                .top1000(portgate_model::Protocol::Tcp)
                .contains(port)
                && ![22, 80, 443].contains(port)
            {
                continue;
            }
            let got = of(*port);
            let want = if [22, 80, 443].contains(port) {
                ("approved", "pass")
            } else {
                ("unapproved-port", "fail")
            };
            assert!(got.contains(&want), "lab-{i} {ip}:{port}: {got:?}");
        }
        assert!(
            of(2049).contains(&("approved-port-missing", "warn")),
            "lab-{i}: the filtered approved port warns"
        );
        assert!(
            findings.iter().any(|f| f["ip"] == ip.as_str()
                && f["port"] == 6379
                && f["severity"] == "critical"),
            "lab-{i}: 6379 is critical"
        );
    }
}
