//! Service detection against the daemon zoo: real daemons from Debian packages (OpenSSH,
//! nginx, Apache, Exim, Dovecot, vsftpd, telnetd, memcached, Redis, node exporter,
//! InfluxDB, Jupyter with and without a token, Prometheus, Alertmanager, etcd, Tomcat
//! with its manager, RabbitMQ with its management plugin, Docker Engine, xrdp, TigerVNC)
//! in one lab namespace, each on its standard port. Every plain and STARTTLS port must be
//! named with the exact service, product and version the ground truth gives (versions
//! read from the installed packages), once through the library and once through
//! `portgate scan --detect`; through the binary also the application behind HTTP, its
//! version and exactly the exposures the zoo sets up, each with its proof — and the
//! default logins only with `--try-default-credentials`.
//!
//! The zoo starts once for this test binary (one test), and is stopped with it. Needs
//! root; daemons whose package is missing are skipped with a printed reason (a failure
//! under strict mode).

#![allow(clippy::unwrap_used)]

mod common;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use portgate_detect::{DetectOptions, ProbeDb, detect};
use portgate_lab::{Transport, Zoo, ZooService, zoo_skip_reason};
use portgate_model::Detection;

/// Differences between a detection and the ground truth (empty: exact).
fn mismatches(
    expected: &ZooService,
    service: Option<&str>,
    product: Option<&str>,
    version: Option<&str>,
    info: Option<&str>,
) -> Vec<String> {
    let mut out = Vec::new();
    if service != Some(expected.service) {
        out.push(format!("service {service:?}, want {:?}", expected.service));
    }
    if product != expected.product.as_deref() {
        out.push(format!("product {product:?}, want {:?}", expected.product));
    }
    if version != expected.version.as_deref() {
        out.push(format!("version {version:?}, want {:?}", expected.version));
    }
    if let Some(want) = expected.info
        && !info.unwrap_or_default().contains(want)
    {
        out.push(format!("info {info:?}, want it to contain {want:?}"));
    }
    out
}

/// Differences between the application a scan names on a zoo port and the ground truth:
/// id, version and the exact set of proven exposures; with `logins`, the default login
/// accepted as the zoo sets it up; without, no attempt at all.
fn application_mismatches(
    expected: &ZooService,
    detected: &serde_json::Value,
    logins: bool,
) -> Vec<String> {
    let found = detected["applications"]["found"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let at = format!("{} {}", expected.port, expected.daemon);
    let Some(want) = &expected.application else {
        return if found.is_empty() {
            Vec::new()
        } else {
            vec![format!("{at}: applications {found:?}, want none")]
        };
    };
    let Some(app) = found.iter().find(|a| a["id"] == want.id) else {
        return vec![format!(
            "{at}: application {} not named ({}; requests {})",
            want.id, detected["applications"]["found"], detected["applications"]["notes"]
        )];
    };
    let mut out = Vec::new();
    // Behind a login the version may only show once logged in (RabbitMQ tells it in its
    // overview): without the login a missing version is allowed there, a wrong one never.
    let hidden = !logins && want.default_login.is_some() && app["version"].is_null();
    if !hidden && app["version"].as_str() != want.version.as_deref() {
        out.push(format!(
            "{at}: version {}, want {:?}",
            app["version"], want.version
        ));
    }
    let exposures: Vec<&serde_json::Value> = app["exposures"]
        .as_array()
        .map(|a| a.iter().collect())
        .unwrap_or_default();
    let mut checks: Vec<&str> = exposures
        .iter()
        .filter(|e| e["kind"] != "default-credentials")
        .filter_map(|e| e["check"].as_str())
        .collect();
    checks.sort_unstable();
    let mut wanted = want.exposures.clone();
    wanted.sort_unstable();
    if checks != wanted {
        out.push(format!("{at}: exposures {checks:?}, want {wanted:?}"));
    }
    for e in &exposures {
        if !e["proof"]["request"]
            .as_str()
            .is_some_and(|r| r.starts_with("GET http://"))
            || e["proof"]["answer"].as_str().is_none_or(str::is_empty)
        {
            out.push(format!("{at}: exposure without its proof: {e}"));
        }
    }
    let attempts = app["credential_attempts"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let accepted = exposures
        .iter()
        .find(|e| e["kind"] == "default-credentials");
    match (logins, want.default_login) {
        (false, _) if !attempts.is_empty() => {
            out.push(format!(
                "{at}: default logins tried without the flag: {attempts:?}"
            ));
        }
        (true, Some(user)) => {
            let proven = accepted.is_some_and(|e| {
                e["proof"]["credentials"]
                    .as_str()
                    .is_some_and(|c| c.starts_with(&format!("{user}:")))
            });
            if !proven
                || !attempts
                    .iter()
                    .any(|a| a["user"] == user && a["accepted"] == true)
            {
                out.push(format!(
                    "{at}: default login {user} not proven: {attempts:?} {accepted:?}"
                ));
            }
        }
        _ => {}
    }
    out
}

#[test]
fn zoo_daemons_are_named_exactly() {
    if let Some(reason) = zoo_skip_reason() {
        portgate_test_support::skip("zoo_daemons_are_named_exactly", reason);
        return;
    }
    let zoo = Zoo::start().expect("the zoo starts");
    // The other daemons are still checked; under strict mode (CI installs every zoo
    // package) a missing one is a failure.
    for skip in zoo.skipped() {
        portgate_test_support::skip(
            &format!("zoo daemon {} ({})", skip.daemon, skip.package),
            &skip.reason,
        );
    }
    let ip = IpAddr::V4(zoo.ipv4());
    let checked: Vec<&ZooService> = zoo
        .services()
        .iter()
        .filter(|s| s.transport != Transport::Tls)
        .collect();
    assert!(checked.len() >= 12, "{} zoo ports", checked.len());

    // The library, every port at once (as the CLI does).
    let db = Arc::new(ProbeDb::builtin().expect("db"));
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let results: Vec<(u16, Detection, Duration)> = runtime.block_on(async {
        let mut tasks = tokio::task::JoinSet::new();
        for s in &checked {
            let db = Arc::clone(&db);
            let addr = SocketAddr::new(ip, s.port);
            tasks.spawn(async move {
                let start = Instant::now();
                let d = detect(addr, &db, &DetectOptions::default()).await;
                (addr.port(), d, start.elapsed())
            });
        }
        let mut out = Vec::new();
        while let Some(done) = tasks.join_next().await {
            out.push(done.expect("detection task"));
        }
        out
    });
    let mut failures = Vec::new();
    for expected in &checked {
        let (_, d, took) = results
            .iter()
            .find(|(port, ..)| *port == expected.port)
            .expect("a result per port");
        println!(
            "{:>5} {:<14} {:?} {:?} {:?} {:?} ({took:.2?})",
            expected.port, expected.daemon, d.service, d.product, d.version, d.info
        );
        let wrong = mismatches(
            expected,
            d.service.as_deref(),
            d.product.as_deref(),
            d.version.as_deref(),
            d.info.as_deref(),
        );
        if !wrong.is_empty() {
            failures.push(format!(
                "{} {}: {}",
                expected.port,
                expected.daemon,
                wrong.join("; ")
            ));
        }
        if d.evidence.is_empty() {
            failures.push(format!("{}: no evidence", expected.port));
        }
    }
    // A plain web server is named after one more round trip, not after a timeout.
    if let Some((_, _, took)) = results.iter().find(|(port, ..)| *port == 80) {
        assert!(*took < Duration::from_millis(1500), "nginx took {took:?}");
    }

    // The binary: the same ports through `portgate scan --detect`.
    let ip_text = ip.to_string();
    let ports: Vec<String> = checked.iter().map(|s| s.port.to_string()).collect();
    let (code, report, stderr) =
        scan_json(&[&ip_text, "-p", &ports.join(","), "--detect", "--connect"]);
    assert_eq!(code, 0, "{stderr}");
    let host = host(&report, &ip_text);
    for expected in &checked {
        let Some(entry) = host["ports"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["port"] == expected.port)
        else {
            failures.push(format!("portgate scan: port {} missing", expected.port));
            continue;
        };
        let detected = &entry["detected"];
        let wrong = mismatches(
            expected,
            detected["service"].as_str(),
            detected["product"].as_str(),
            detected["version"].as_str(),
            detected["info"].as_str(),
        );
        if !wrong.is_empty() {
            failures.push(format!(
                "portgate scan {} {}: {}",
                expected.port,
                expected.daemon,
                wrong.join("; ")
            ));
        }
        failures.extend(application_mismatches(expected, detected, false));
    }

    // The management interfaces with a documented default login, with
    // `--try-default-credentials`: the login is accepted (the zoo sets it up that way) and
    // recorded; without the flag no credentials were sent (above: no attempts).
    let with_login: Vec<String> = checked
        .iter()
        .filter(|s| {
            s.application
                .as_ref()
                .is_some_and(|a| a.default_login.is_some())
        })
        .map(|s| s.port.to_string())
        .collect();
    if !with_login.is_empty() {
        let (code, report, stderr) = scan_json(&[
            &ip_text,
            "-p",
            &with_login.join(","),
            "--detect",
            "--connect",
            "--try-default-credentials",
        ]);
        assert_eq!(code, 0, "{stderr}");
        let host = self::host(&report, &ip_text);
        for expected in checked.iter().filter(|s| {
            s.application
                .as_ref()
                .is_some_and(|a| a.default_login.is_some())
        }) {
            let detected = host["ports"]
                .as_array()
                .unwrap()
                .iter()
                .find(|p| p["port"] == expected.port)
                .map(|e| e["detected"].clone())
                .unwrap_or_default();
            failures.extend(application_mismatches(expected, &detected, true));
        }
    }

    // What the zoo offers for TLS tests is real: the certificate and its CA are PEM.
    // TLS and STARTTLS through `portgate scan --detect --ca <the zoo's CA>`: every TLS
    // port is named as the service inside TLS, every STARTTLS port upgraded, every
    // certificate verified against the zoo's CA, and the web servers inspected over HTTP.
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("zoo-ca.pem");
    std::fs::write(&ca, zoo.ca_pem()).unwrap();
    let tls_ports: Vec<&ZooService> = zoo
        .services()
        .iter()
        .filter(|s| s.transport != Transport::Plain)
        .collect();
    let ports: Vec<String> = tls_ports.iter().map(|s| s.port.to_string()).collect();
    let (code, report, stderr) = scan_json(&[
        &ip_text,
        "-p",
        &ports.join(","),
        "--detect",
        "--connect",
        "--ca",
        ca.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stderr}");
    let host = self::host(&report, &ip_text);
    for expected in &tls_ports {
        let entry = host["ports"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["port"] == expected.port);
        let detected = entry
            .map(|e| &e["detected"])
            .unwrap_or(&serde_json::Value::Null);
        println!("{:>5} {}", expected.port, detected);
        let service = match (expected.transport, expected.service) {
            (Transport::Tls, "http") => "https".to_string(),
            (Transport::Tls, plain) => format!("{plain}s"),
            (_, plain) => plain.to_string(),
        };
        let tls = &detected["tls"];
        let mut wrong = Vec::new();
        if detected["service"] != service.as_str() {
            wrong.push(format!("service {}, want {service}", detected["service"]));
        }
        if detected["product"].as_str() != expected.product.as_deref() {
            wrong.push(format!(
                "product {}, want {:?}",
                detected["product"], expected.product
            ));
        }
        if tls["valid"] != true {
            wrong.push(format!("certificate not valid: {}", tls["reasons"]));
        }
        let via = if expected.transport == Transport::StartTls {
            serde_json::Value::from(expected.service)
        } else {
            serde_json::Value::Null
        };
        if tls["starttls"] != via {
            wrong.push(format!("starttls {}, want {via}", tls["starttls"]));
        }
        if expected.port == 443 && detected["http"]["status"] != 200 {
            wrong.push(format!("HTTP inside TLS: {}", detected["http"]));
        }
        if !wrong.is_empty() {
            failures.push(format!(
                "TLS {} {}: {}",
                expected.port,
                expected.daemon,
                wrong.join("; ")
            ));
        }
    }

    assert!(zoo.ca_pem().starts_with("-----BEGIN CERTIFICATE-----"));
    assert!(zoo.cert_pem().starts_with("-----BEGIN CERTIFICATE-----"));
    for port in [443, 993, 995, 465] {
        if zoo.service(port).is_some() {
            assert!(zoo.tls_ports().contains(&port), "{port} speaks TLS");
        }
    }
    for port in [25, 587, 110, 143] {
        if zoo.service(port).is_some() {
            assert!(
                zoo.starttls_ports().contains(&port),
                "{port} offers STARTTLS"
            );
        }
    }
    if zoo.service(22).is_some() {
        failures.extend(openssh_vulnerabilities(&ip_text));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The zoo's real OpenSSH against the CVE-2024-6387 fixture feeds (NVD 2.0 and the Debian
/// advisory DSA-5724-1 in OSV form): the package installed here is judged by its banner's
/// Debian revision — vulnerable (distro-verified) before 1:9.2p1-2+deb12u3, cleared from
/// it on.
fn openssh_vulnerabilities(ip: &str) -> Vec<String> {
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../vuln/tests/fixtures");
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("h.db").display().to_string();
    for (kind, file) in [("nvd", "nvd-cve-2024-6387.json"), ("osv", "osv")] {
        let path = fixtures.join(file);
        let (code, _, stderr) = run(&["data", "import", kind, path.to_str().unwrap(), "--db", &db]);
        assert_eq!(code, 0, "{stderr}");
    }
    let (code, report, stderr) = scan_json(&[ip, "-p", "22", "--detect", "--connect", "--db", &db]);
    assert_eq!(code, 0, "{stderr}");
    let entry = &host(&report, ip)["ports"][0];
    let banner = entry["detected"]["evidence"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let vulns = &entry["detected"]["vulnerabilities"];
    println!("   22 openssh vulnerabilities: {vulns}");
    let Some(revision) = banner
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.strip_prefix("Debian-"))
        .map(|r| r.trim_end_matches("\\r\\n").trim_end_matches("\\n"))
    else {
        return vec![format!(
            "the zoo's OpenSSH banner names no Debian revision: {banner:?}"
        )];
    };
    let package = format!("1:9.2p1-{revision}");
    let fixed = portgate_vuln::compare_dpkg(&package, "1:9.2p1-2+deb12u3")
        .map(|o| o != std::cmp::Ordering::Less)
        .unwrap_or(false);
    let matched: Vec<&str> = vulns["matches"]
        .as_array()
        .map(|a| a.iter().filter_map(|m| m["id"].as_str()).collect())
        .unwrap_or_default();
    let cleared: Vec<&str> = vulns["cleared"]
        .as_array()
        .map(|a| a.iter().filter_map(|m| m["id"].as_str()).collect())
        .unwrap_or_default();
    let mut wrong = Vec::new();
    if !banner.contains("OpenSSH_9.2p1") {
        wrong.push(format!(
            "the fixtures are for OpenSSH 9.2p1, the zoo runs {banner:?}"
        ));
    } else if fixed && (!matched.is_empty() || cleared != ["CVE-2024-6387"]) {
        wrong.push(format!(
            "{package} has the fix: want CVE-2024-6387 cleared, got {vulns}"
        ));
    } else if !fixed
        && (matched != ["CVE-2024-6387"] || vulns["matches"][0]["confidence"] != "distro-verified")
    {
        wrong.push(format!(
            "{package} lacks the fix: want CVE-2024-6387 distro-verified, got {vulns}"
        ));
    }
    wrong
}
