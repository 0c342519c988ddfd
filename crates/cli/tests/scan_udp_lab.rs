//! UDP scanning against real UDP services (dnsmasq, chronyd, snmpd) in a lab namespace:
//! open, closed and open|filtered exactly, IPv4 and IPv6, with the kernel's ICMP rate
//! limit in force. Needs root; skips with a printed reason without it.

#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use portgate_lab::{LabConfig, LabHost, Profile, udp_services_skip_reason};
use std::collections::BTreeSet;
use std::sync::Mutex;

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn lab(test: &str, profile: Profile) -> Option<LabHost> {
    if let Some(reason) = udp_services_skip_reason() {
        // .ci/run runs as root and installs dnsmasq-base, chrony and snmpd.
        portgate_test_support::skip(test, reason);
        return None;
    }
    Some(LabHost::start(LabConfig::new(profile).udp_services(true)).expect("lab host starts"))
}

/// Scans the UDP `ports` of `ip` and checks each state against the truth.
fn assert_udp_states(lab: &LabHost, ip: &str, ports: &[u16]) {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let list: Vec<String> = ports.iter().map(u16::to_string).collect();
    let spec = format!("U:{}", list.join(","));
    let (code, report, stderr) = scan_json(&[ip, "-p", &spec, "--all-ports"]);
    assert_eq!(code, 0, "{ip}: {stderr}");
    assert_eq!(report["method"], "udp", "a UDP-only scan");
    let host = host(&report, ip);
    let entries = host["ports"].as_array().unwrap();
    assert_eq!(
        entries.len(),
        ports.len(),
        "{ip}: every port settled: {host}"
    );
    for entry in entries {
        assert_eq!(entry["protocol"], "udp");
        let port = entry["port"].as_u64().unwrap() as u16;
        let want = lab.truth().expected_udp(port).to_string();
        assert_eq!(entry["state"], want.as_str(), "{ip} {port}/udp: {entry}");
        let reason = match want.as_str() {
            "open" => "udp-response",
            "closed" => "port-unreach",
            _ => "no-response",
        };
        assert_eq!(entry["reason"], reason, "{ip} {port}/udp");
    }
}

#[test]
fn firewalled_host_udp_open_closed_and_open_filtered() {
    let Some(lab) = lab(
        "firewalled_host_udp_open_closed_and_open_filtered",
        Profile::Firewalled,
    ) else {
        return;
    };
    let truth = lab.truth();
    assert_eq!(truth.udp_open, BTreeSet::from([53, 123, 161]));
    let mut ports: Vec<u16> = truth
        .udp_open
        .iter()
        .chain(&truth.udp_reject)
        .copied()
        .collect();
    ports.extend(5000..5010);
    for ip in [lab.ipv4().to_string(), lab.ipv6().to_string()] {
        assert_udp_states(&lab, &ip, &ports);
    }
}

/// Twenty closed ports on a host that sends at most one ICMP error per second after a
/// short burst: each must still come out closed, not open|filtered.
#[test]
fn closed_udp_ports_behind_icmp_rate_limiting() {
    let Some(lab) = lab("closed_udp_ports_behind_icmp_rate_limiting", Profile::Open) else {
        return;
    };
    let mut ports: Vec<u16> = lab.truth().udp_open.iter().copied().collect();
    ports.extend(2000..2020);
    assert_udp_states(&lab, &lab.ipv4().to_string(), &ports);
}

#[test]
fn tcp_and_udp_in_one_scan() {
    let Some(lab) = lab("tcp_and_udp_in_one_scan", Profile::Firewalled) else {
        return;
    };
    let ip = lab.ipv4().to_string();
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let (code, report, stderr) = scan_json(&[&ip, "-p", "T:22,23,113,U:53,123,161,1000,5000"]);
    assert_eq!(code, 0, "{stderr}");
    let host = host(&report, &ip);
    let state = |port: u16, protocol: &str| {
        host["ports"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["port"] == port && p["protocol"] == protocol)
            .map(|p| p["state"].as_str().unwrap().to_string())
            .unwrap_or_default()
    };
    assert_eq!(state(22, "tcp"), "open");
    assert_eq!(state(23, "tcp"), "filtered");
    assert_eq!(state(113, "tcp"), "closed");
    for port in [53, 123, 161] {
        assert_eq!(state(port, "udp"), "open", "{port}/udp");
    }
    assert_eq!(state(1000, "udp"), "closed");
    assert_eq!(state(5000, "udp"), "open|filtered");
}

/// `--enrich` against a lab host, names answered by the lab's own resolver
/// (`--dns-server` at the host's dnsmasq): the DNS records kept as evidence with the
/// resolver used; the network of each address from an iptoasn table imported into the
/// database; no registration service for `.test` (a note, not a failure).
#[test]
fn enrich_against_a_lab_host_with_its_resolver() {
    let Some(lab) = lab("enrich_against_a_lab_host_with_its_resolver", Profile::Open) else {
        return;
    };
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("h.db").display().to_string();
    let table = dir.path().join("ip2asn.tsv");
    std::fs::write(
        &table,
        "198.18.0.0\t198.19.255.255\t64500\tZZ\tBENCHMARK-LAB Example Lab Network\n",
    )
    .unwrap();
    let (code, _, stderr) = run(&[
        "data",
        "import",
        "asn",
        table.to_str().unwrap(),
        "--db",
        &db,
    ]);
    assert_eq!(code, 0, "{stderr}");
    let resolver = format!("{}:53", lab.ipv4());
    let cache = dir.path().join("cache.json");
    let (code, report, stderr) = scan_json(&[
        portgate_lab::DNS_HOST_RECORD,
        "-p",
        "T:22,80",
        "--connect",
        "--dns-server",
        &resolver,
        "--enrich",
        "--enrich-cache",
        cache.to_str().unwrap(),
        "--db",
        &db,
    ]);
    assert_eq!(code, 0, "{stderr}");
    let target = &report["enrichment"]["targets"][0];
    assert_eq!(target["name"], portgate_lab::DNS_HOST_RECORD, "{report}");
    assert_eq!(target["dns"]["resolver"], resolver.as_str());
    assert_eq!(
        target["dns"]["a"],
        serde_json::json!([lab.ipv4().to_string()])
    );
    assert_eq!(
        target["dns"]["aaaa"],
        serde_json::json!([lab.ipv6().to_string()])
    );
    assert!(
        target["notes"].to_string().contains("registration"),
        "no RDAP or WHOIS service for .test: {target}"
    );
    let networks = report["enrichment"]["networks"].as_array().unwrap();
    let v4 = networks
        .iter()
        .find(|n| n["ip"] == lab.ipv4().to_string())
        .unwrap_or_else(|| panic!("{report}"));
    assert_eq!(v4["owners"][0]["asns"][0], 64500);
    let v6 = networks
        .iter()
        .find(|n| n["ip"] == lab.ipv6().to_string())
        .unwrap();
    assert!(
        v6["owners"].as_array().unwrap().is_empty(),
        "an IPv4 table: {v6}"
    );
}
