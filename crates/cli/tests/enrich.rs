//! Context through the binary: IP-to-network tables imported with `portgate data import
//! asn` (the three formats) and used by `expected_network: [AS…]`; `--enrich` with a real
//! DNS server (dnsmasq on 127.0.0.1, `--dns-server`), a local RDAP server (real HTTP,
//! answers in RFC 9083 shape, found through a bootstrap file) and a local WHOIS server,
//! the registration cache, and the `domain-expiring` warning.

#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

fn enrich_fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../enrich/tests/fixtures")
}

/// An iptoasn table that places 127.0.0.0/8 in AS64500.
fn loopback_table(dir: &Path) -> String {
    let path = dir.join("ip2asn-v4.tsv");
    std::fs::write(
        &path,
        "0.0.0.0\t126.255.255.255\t0\tNone\tNot routed\n127.0.0.0\t127.255.255.255\t64500\tZZ\tLOOPBACK-NET Example Loopback\n",
    )
    .unwrap();
    path.display().to_string()
}

fn manifest(dir: &Path, port: u16, expected: &str) -> String {
    let path = dir.join("exposure.yaml");
    std::fs::write(
        &path,
        format!(
            "version: 1\nassets:\n  - name: web\n    targets: [127.0.0.1]\n    ports: T:{port}\n    expected_network: [{expected}]\n    approved:\n      - port: {port}\n        justification: the app\n"
        ),
    )
    .unwrap();
    path.display().to_string()
}

#[test]
fn network_tables_place_addresses_and_expected_networks_use_them() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("h.db").display().to_string();
    let listeners = Listeners::start(1);
    let port = listeners.ports[0];

    // Before any table: an AS can not be compared, which is a warning that says so.
    let m = manifest(dir.path(), port, "AS64500");
    let (code, stdout, stderr) = run(&["check", "--manifest", &m, "--connect", "--db", &db]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(
        stdout.contains("which no imported network table places"),
        "{stdout}"
    );

    // The three formats import; each is a dataset of its own.
    let f = enrich_fixtures();
    for (file, name, want) in [
        (f.join("ip2asn-v6.tsv"), "v6", "asn:v6 (iptoasn)"),
        (
            f.join("routeviews-rv2-20250101-1200.pfx2as"),
            "caida",
            "asn:caida (caida-pfx2as)",
        ),
        (
            f.join("asn-test.mmdb"),
            "geolite",
            "asn:geolite (maxmind-asn)",
        ),
    ] {
        let (code, _, stderr) = run(&[
            "data",
            "import",
            "asn",
            file.to_str().unwrap(),
            "--name",
            name,
            "--db",
            &db,
        ]);
        assert_eq!(code, 0, "{stderr}");
        assert!(stderr.contains(want), "{stderr}");
    }
    let table = loopback_table(dir.path());
    let (code, _, stderr) = run(&[
        "data",
        "import",
        "asn",
        &table,
        "--name",
        "lab",
        "--date",
        "2026-11-01",
        "--db",
        &db,
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("1 skipped"), "the not-routed row: {stderr}");
    let (_, listing, _) = run(&["data", "list", "--db", &db]);
    for name in ["asn:v6", "asn:caida", "asn:geolite", "asn:lab"] {
        assert!(listing.contains(name), "{listing}");
    }
    assert!(
        listing.contains("2025-01-01"),
        "the CAIDA file's date: {listing}"
    );

    // The scan report names the network of the address.
    let (code, report, stderr) = scan_json(&[
        "127.0.0.1",
        "-p",
        &port.to_string(),
        "--connect",
        "--db",
        &db,
    ]);
    assert_eq!(code, 0, "{stderr}");
    let owners = &report["enrichment"]["networks"][0]["owners"];
    assert_eq!(owners[0]["asns"][0], 64500, "{report}");
    assert_eq!(owners[0]["dataset"], "asn:lab");
    assert!(owners[0]["org"].as_str().unwrap().contains("LOOPBACK-NET"));

    // expected_network by AS, by organisation (any case), and a wrong AS naming what was found.
    for (expected, code_want) in [
        ("AS64500", 0),
        ("\"loopback-net example loopback\"", 0),
        ("AS64501", 1),
    ] {
        let m = manifest(dir.path(), port, expected);
        let (code, stdout, stderr) = run(&["check", "--manifest", &m, "--connect", "--db", &db]);
        assert_eq!(code, code_want, "{expected}: {stdout}{stderr}");
        if code_want == 1 {
            assert!(stdout.contains("outside-expected-network"), "{stdout}");
            assert!(stdout.contains("(AS64500 LOOPBACK-NET Example Loopback, ZZ), outside its expected network AS64501"), "{stdout}");
        }
    }
    // A CIDR that is not one is refused at its line.
    let m = manifest(dir.path(), port, "127.0.0.0/33");
    let (code, _, stderr) = run(&["check", "--manifest", &m, "--connect", "--db", &db]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("exposure.yaml:6") && stderr.contains("invalid CIDR range"),
        "{stderr}"
    );

    // A file that is none of the formats: exit 2, the file and line named.
    let bad = dir.path().join("bad.tsv");
    std::fs::write(&bad, "127.0.0.0\tnot-an-address\t64500\tZZ\tX\n").unwrap();
    let (code, _, stderr) = run(&["data", "import", "asn", bad.to_str().unwrap(), "--db", &db]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("bad.tsv") && stderr.contains(":1"),
        "{stderr}"
    );
}

/// An RDAP server on 127.0.0.1 answering `/domain/pg.test` with an RFC 9083 domain object
/// whose registration expires in `days` days; counts the requests.
fn rdap_server(days: i64) -> (u16, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let count = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&count);
    let expires = (chrono::Utc::now() + chrono::TimeDelta::days(days))
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut stream = stream;
            stream.set_read_timeout(Some(Duration::from_secs(5))).ok();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request = String::new();
            if reader.read_line(&mut request).is_err() {
                continue;
            }
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
            }
            seen.fetch_add(1, Ordering::SeqCst);
            let (status, body) = if request.starts_with("GET /domain/pg.test ") {
                ("200 OK", serde_json::json!({
                    "objectClassName": "domain",
                    "rdapConformance": ["rdap_level_0"],
                    "handle": "PG-TEST-1",
                    "ldhName": "pg.test",
                    "status": ["client transfer prohibited"],
                    "entities": [{
                        "objectClassName": "entity",
                        "roles": ["registrar"],
                        "publicIds": [{"type": "IANA Registrar ID", "identifier": "9999"}],
                        "vcardArray": ["vcard", [["version", {}, "text", "4.0"], ["fn", {}, "text", "Example Registrar, Inc."]]]
                    }],
                    "events": [
                        {"eventAction": "registration", "eventDate": "2001-05-01T00:00:00Z"},
                        {"eventAction": "expiration", "eventDate": expires}
                    ],
                    "nameservers": [
                        {"objectClassName": "nameserver", "ldhName": "ns1.pg.test"},
                        {"objectClassName": "nameserver", "ldhName": "ns2.pg.test"}
                    ]
                }).to_string())
            } else if request.starts_with("GET /ip/127.0.0.1 ") {
                (
                    "200 OK",
                    serde_json::json!({
                        "objectClassName": "ip network",
                        "rdapConformance": ["rdap_level_0"],
                        "handle": "NET-127-0-0-0-1",
                        "startAddress": "127.0.0.0",
                        "endAddress": "127.255.255.255",
                        "ipVersion": "v4",
                        "name": "LOOPBACK-BLOCK",
                        "type": "RESERVED",
                        "country": "ZZ"
                    })
                    .to_string(),
                )
            } else {
                (
                    "404 Not Found",
                    "{\"errorCode\": 404, \"title\": \"not found\"}".to_owned(),
                )
            };
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\nContent-Type: application/rdap+json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (port, count)
}

/// A WHOIS server on 127.0.0.1 (one line in, a registry's answer out).
fn whois_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut stream = stream;
            stream.set_read_timeout(Some(Duration::from_secs(5))).ok();
            let mut buf = [0u8; 256];
            let _ = stream.read(&mut buf);
            let _ = stream.write_all(
                b"Domain Name: PG.WHOIS\r\nRegistrar: Example Whois Registrar\r\nCreation Date: 2010-01-01T00:00:00Z\r\nRegistry Expiry Date: 2099-01-01T00:00:00Z\r\nName Server: NS1.PG.WHOIS\r\nDomain Status: ok\r\n",
            );
        }
    });
    port
}

#[test]
fn enrich_adds_dns_and_registration_and_warns_before_expiry() {
    let Some(dns) = Dnsmasq::start_with(
        "enrich_adds_dns_and_registration_and_warns_before_expiry",
        &[
            "--mx-host=pg.test,mail.pg.test,10",
            "--txt-record=pg.test,v=spf1 -all",
            "--host-record=app.pg.whois,127.0.0.1",
            "--local=/pg.whois/",
        ],
    ) else {
        return;
    };
    let listeners = Listeners::start(1);
    let port = listeners.ports[0].to_string();
    let (rdap, requests) = rdap_server(10);
    let whois = whois_server();
    let dir = tempfile::tempdir().unwrap();
    let bootstrap = dir.path().join("dns.json");
    std::fs::write(
        &bootstrap,
        format!("{{\"version\": \"1.0\", \"publication\": \"2026-11-01T00:00:00Z\", \"services\": [[[\"test\"], [\"http://127.0.0.1:{rdap}/\"]]]}}"),
    )
    .unwrap();
    let ipv4_bootstrap = dir.path().join("ipv4.json");
    std::fs::write(
        &ipv4_bootstrap,
        format!("{{\"version\": \"1.0\", \"publication\": \"2026-11-01T00:00:00Z\", \"services\": [[[\"127.0.0.0/8\"], [\"http://127.0.0.1:{rdap}/\"]]]}}"),
    )
    .unwrap();
    let whois_table = dir.path().join("whois.txt");
    std::fs::write(&whois_table, format!("whois 127.0.0.1:{whois}\n")).unwrap();
    let cache = dir.path().join("cache/registrations.json");
    let dns_server = dns.addr.to_string();
    let common = [
        "--connect",
        "--dns-server",
        &dns_server,
        "--enrich",
        "--rdap-bootstrap",
        bootstrap.to_str().unwrap(),
        "--rdap-bootstrap",
        ipv4_bootstrap.to_str().unwrap(),
        "--whois-servers",
        whois_table.to_str().unwrap(),
        "--enrich-cache",
        cache.to_str().unwrap(),
    ];
    let mut args = vec!["www.pg.test", "app.pg.whois", "-p", &port];
    args.extend_from_slice(&common);
    let (code, report, stderr) = scan_json(&args);
    assert_eq!(code, 0, "{stderr}");
    let targets = &report["enrichment"]["targets"];
    let www = &targets[0];
    assert_eq!(www["name"], "www.pg.test", "{report}");
    assert_eq!(www["registrable_domain"], "pg.test");
    assert_eq!(
        www["dns"]["cname_chain"],
        serde_json::json!(["web.pg.test", "app.pg.test"]),
        "{www}"
    );
    assert_eq!(www["dns"]["a"], serde_json::json!(["127.0.0.1"]));
    assert_eq!(www["dns"]["resolver"], dns_server.as_str());
    let reg = &www["registration"];
    assert_eq!(reg["source"], "rdap", "{www}");
    assert_eq!(reg["registrar"], "Example Registrar, Inc.");
    assert_eq!(
        reg["nameservers"],
        serde_json::json!(["ns1.pg.test", "ns2.pg.test"])
    );
    assert!(
        (9..=10).contains(&reg["days_left"].as_i64().unwrap()),
        "{reg}"
    );
    // No RDAP service for .whois: WHOIS answers.
    let other = &targets[1];
    assert_eq!(other["registration"]["source"], "whois", "{other}");
    assert_eq!(
        other["registration"]["registrar"],
        "Example Whois Registrar"
    );
    // Both names resolve to 127.0.0.1: its block is looked up once.
    let networks = &report["enrichment"]["networks"];
    assert_eq!(
        networks[0]["registration"]["name"], "LOOPBACK-BLOCK",
        "{report}"
    );
    assert_eq!(
        networks[0]["registration"]["range"],
        "127.0.0.0 - 127.255.255.255"
    );
    assert_eq!(requests.load(Ordering::SeqCst), 2);

    // The table shows it; the second run is answered from the cache.
    let mut args = vec!["www.pg.test", "-p", &port];
    args.extend_from_slice(&common);
    let mut all = vec!["scan"];
    all.extend_from_slice(&args);
    let (code, table, stderr) = run(&all);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        table.contains("domain pg.test: registrar Example Registrar, Inc., expires"),
        "{table}"
    );
    assert!(table.contains("CNAME  web.pg.test, app.pg.test"), "{table}");
    assert_eq!(requests.load(Ordering::SeqCst), 2, "the cache answered");
    assert!(cache.exists());

    // check: the domain expiring within 30 days (the default) is a warning.
    let m = dir.path().join("exposure.yaml");
    std::fs::write(
        &m,
        format!("version: 1\nassets:\n  - name: web\n    targets: [www.pg.test]\n    ports: T:{port}\n    approved:\n      - port: {port}\n        justification: the app\n"),
    )
    .unwrap();
    let mut args = vec!["check", "--manifest", m.to_str().unwrap()];
    args.extend_from_slice(&common);
    // Without --enrich, an asset's `enrich: true` asks for the same lookups.
    let text = std::fs::read_to_string(&m)
        .unwrap()
        .replace("  - name: web\n", "  - name: web\n    enrich: true\n");
    std::fs::write(&m, text).unwrap();
    args.retain(|a| *a != "--enrich");
    let (code, stdout, stderr) = run(&args);
    assert_eq!(code, 0, "a warning: {stdout}{stderr}");
    assert!(stdout.contains("domain-expiring"), "{stdout}{stderr}");
    assert!(
        stdout.contains("the domain pg.test of www.pg.test expires in"),
        "{stdout}"
    );

    // An unreadable bootstrap is refused before anything is scanned.
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, "{\"services\": 7}").unwrap();
    let (code, _, stderr) = run(&[
        "scan",
        "www.pg.test",
        "-p",
        &port,
        "--dns-server",
        &dns_server,
        "--enrich",
        "--rdap-bootstrap",
        bad.to_str().unwrap(),
    ]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("bad.json"), "{stderr}");
}
