//! `portgate scan` against real sockets on 127.0.0.1 and a real DNS server; needs no root.

#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use portgate_test_support::daemons::Redis;
use portgate_test_support::skip;
use std::collections::BTreeSet;

#[test]
fn finds_open_and_closed_ports_exactly() {
    let listeners = Listeners::start(3);
    let closed = closed_port();
    let spec = format!(
        "{},{},{},{closed}",
        listeners.ports[0], listeners.ports[1], listeners.ports[2]
    );
    let (code, report, stderr) = scan_json(&["127.0.0.1", "-p", &spec, "--connect"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stderr, "", "nothing on stderr when it is not a terminal");
    let host = host(&report, "127.0.0.1");
    let open: BTreeSet<u16> = listeners.ports.iter().copied().collect();
    assert_eq!(listed(host, "open"), open);
    assert_eq!(listed(host, "closed"), BTreeSet::from([closed]));
    assert_eq!(host["counts"]["filtered"], 0);
    let closed_entry = host["ports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["port"] == closed)
        .unwrap();
    assert_eq!(closed_entry["reason"], "reset");
    assert_eq!(report["summary"]["open"], 3);
    assert_eq!(report["summary"]["ports_scanned"], 4);
    assert_eq!(report["status"], "completed");
}

/// Other spellings of 127.0.0.1 (IPv4-mapped IPv6, the short and numeric forms nmap and
/// ping accept) are scanned as 127.0.0.1, with the default method (SYN as root).
#[test]
fn other_spellings_of_an_address_are_scanned_as_that_address() {
    let listeners = Listeners::start(1);
    let port = listeners.ports[0].to_string();
    for spelling in [
        "::ffff:127.0.0.1",
        "127.1",
        "2130706433",
        "0x7f.1",
        "0177.0.0.1",
    ] {
        let (code, report, stderr) = scan_json(&[spelling, "-p", &port]);
        assert_eq!(code, 0, "{spelling}: {stderr}");
        let host = host(&report, "127.0.0.1");
        assert_eq!(
            listed(host, "open"),
            BTreeSet::from([listeners.ports[0]]),
            "{spelling}: {report}"
        );
    }
    let (code, _, stderr) = run(&["scan", "::127.0.0.1", "-p", &port]);
    assert_eq!(code, 2, "an IPv4-compatible address is refused");
    assert!(stderr.contains("127.0.0.1"), "{stderr}");
}

#[test]
fn json_report_carries_the_documented_fields() {
    let listeners = Listeners::start(1);
    let port = listeners.ports[0].to_string();
    let (code, report, _) = scan_json(&["127.0.0.1", "-p", &port, "--connect"]);
    assert_eq!(code, 0);
    assert_eq!(report["schema"], "portgate.scan.v1");
    assert_eq!(report["method"], "connect");
    for key in ["started_at", "finished_at"] {
        let text = report[key].as_str().unwrap();
        assert!(text.ends_with('Z') && text.contains('T'), "{key}: {text}");
    }
    assert!(report["duration_ms"].is_u64());
    let target = &report["targets"][0];
    assert_eq!(target["input"], "127.0.0.1");
    assert_eq!(target["kind"], "ip");
    assert_eq!(target["error"], serde_json::Value::Null);
    let entry = &report["hosts"][0]["ports"][0];
    assert_eq!(entry["port"], listeners.ports[0]);
    assert_eq!(entry["protocol"], "tcp");
    assert_eq!(entry["state"], "open");
    assert_eq!(entry["reason"], "syn-ack");
    assert!(entry["rtt_ms"].as_f64().unwrap() >= 0.0);
    assert_eq!(entry["attempts"], 1);
    assert!(entry["observed_at"].as_str().unwrap().ends_with('Z'));
    for key in [
        "targets",
        "targets_failed",
        "hosts",
        "ports_requested",
        "ports_scanned",
        "open",
        "closed",
        "filtered",
        "not_scanned",
        "probes_sent",
    ] {
        assert!(report["summary"][key].is_u64(), "summary.{key}");
    }
}

#[test]
fn table_output_lists_open_ports_and_summarises_the_rest() {
    let listeners = Listeners::start(1);
    let port = listeners.ports[0];
    // 40 closed ports around the open one: more than 25, so summarised.
    let spec = format!(
        "{}-{}",
        port.saturating_sub(20).max(1),
        port.saturating_add(20)
    );
    let (code, stdout, _) = run(&["scan", "127.0.0.1", "-p", &spec, "--seed", "7"]);
    assert_eq!(code, 0);
    assert!(stdout.contains("PORT"), "{stdout}");
    assert!(stdout.contains(&format!("{port}/tcp")), "{stdout}");
    // Tests running beside this one may listen in the same range: count what is open.
    let open = stdout.matches(" open ").count();
    assert!(open >= 1, "{stdout}");
    let closed = 41 - open;
    assert!(
        stdout.contains(&format!("Not shown: {closed} closed")),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "1 host, 41 ports scanned: {open} open, {closed} closed, 0 filtered; completed"
        )),
        "{stdout}"
    );
    // --all-ports lists every closed port too.
    let (_, all, _) = run(&["scan", "127.0.0.1", "-p", &spec, "--all-ports"]);
    let listed = all.matches(" closed ").count() + all.matches(" open ").count();
    assert_eq!(listed, 41, "{all}");
}

#[test]
fn output_file_receives_the_report() {
    let listeners = Listeners::start(1);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("report.json");
    let port = listeners.ports[0].to_string();
    let (code, stdout, _) = run(&[
        "scan",
        "127.0.0.1",
        "-p",
        &port,
        "-o",
        "json",
        "--output-file",
        path.to_str().unwrap(),
    ]);
    assert_eq!(code, 0);
    assert_eq!(stdout, "");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(report["summary"]["open"], 1);
}

#[test]
fn bad_port_specs_are_usage_errors_naming_the_token() {
    let cases = [
        ("0", "port 0 in \"0\" is out of range"),
        ("65536", "port 65536 in \"65536\" is out of range"),
        ("90-80", "range \"90-80\" is reversed"),
        ("abc", "\"abc\" is not a port"),
        ("22,abc", "\"abc\" is not a port"),
        ("", "the port specification is empty"),
        ("22,,80", "empty item at position 2"),
    ];
    for (spec, want) in cases {
        let (code, stdout, stderr) = run(&["scan", "127.0.0.1", "-p", spec]);
        assert_eq!(code, 2, "-p {spec:?}: {stderr}");
        assert!(stderr.contains(want), "-p {spec:?}: {stderr}");
        assert_eq!(stdout, "", "-p {spec:?}");
    }
}

#[test]
fn bad_targets_and_arguments_are_usage_errors() {
    let cases: &[(&[&str], &str)] = &[
        (&["scan", "-p", "80"], "no target given"),
        (
            &["scan", "bad host!", "-p", "80"],
            "is not an IP address, a CIDR range or a hostname",
        ),
        (
            &["scan", "198.18.0.0/33", "-p", "80"],
            "prefix /33 is longer than /32",
        ),
        (
            &["scan", "127.0.0.0/8", "-p", "80"],
            "covers 16777216 addresses, more than the limit of 65536",
        ),
        (
            &["scan", "2001:db8::/64", "-p", "80"],
            "more than the limit",
        ),
        (
            &["scan", "127.0.0.0/29", "-p", "80", "--max-hosts", "4"],
            "covers 8 addresses, more than the limit of 4",
        ),
        (
            &["scan", "127.0.0.1", "-p", "80", "--min-rtt-timeout", "5s"],
            "minimum RTT timeout 5s is greater than the maximum 3s",
        ),
        (
            &["scan", "127.0.0.1", "-p", "80", "--deadline", "soon"],
            "\"soon\" is not a duration",
        ),
        (
            &[
                "scan",
                "127.0.0.1",
                "-p",
                "80",
                "-iL",
                "/nonexistent/targets.txt",
            ],
            "cannot read targets file /nonexistent/targets.txt",
        ),
    ];
    for (args, want) in cases {
        let (code, _, stderr) = run(args);
        assert_eq!(code, 2, "{args:?}: {stderr}");
        assert!(stderr.contains(want), "{args:?}: {stderr}");
    }
}

#[test]
fn targets_file_is_read_and_its_errors_cite_the_line() {
    let listeners = Listeners::start(1);
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.txt");
    std::fs::write(
        &good,
        "# owned addresses\n127.0.0.1   # loopback\n\n127.0.0.2, 127.0.0.3\n",
    )
    .unwrap();
    let port = listeners.ports[0].to_string();
    let (code, report, _) = scan_json(&["-iL", good.to_str().unwrap(), "-p", &port]);
    assert_eq!(code, 0);
    assert_eq!(report["summary"]["hosts"], 3);
    assert_eq!(listed(host(&report, "127.0.0.1"), "open").len(), 1);
    // The listener is bound to 127.0.0.1 only.
    assert_eq!(listed(host(&report, "127.0.0.2"), "closed").len(), 1);

    let bad = dir.path().join("bad.txt");
    std::fs::write(&bad, "127.0.0.1\n\n  127.0.0.2 127.0.0.300\n").unwrap();
    let (code, _, stderr) = run(&["scan", "-iL", bad.to_str().unwrap(), "-p", "80"]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains(&format!("{}:3:13: target \"127.0.0.300\"", bad.display())),
        "{stderr}"
    );
}

#[test]
fn cidr_ranges_expand_to_their_hosts() {
    let listeners = Listeners::start(1);
    let port = listeners.ports[0].to_string();
    let (code, report, _) = scan_json(&["127.0.0.0/30", "-p", &port]);
    assert_eq!(code, 0);
    // /30: the two usable addresses, not the network or broadcast address.
    let ips: Vec<&str> = report["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["ip"].as_str().unwrap())
        .collect();
    assert_eq!(ips.len(), 2);
    assert!(
        ips.contains(&"127.0.0.1") && ips.contains(&"127.0.0.2"),
        "{ips:?}"
    );
    assert_eq!(report["targets"][0]["kind"], "cidr");
    assert_eq!(report["targets"][0]["address_count"], 2);
    let (code, report, _) = scan_json(&["::1/128", "-p", &port]);
    assert_eq!(code, 0);
    assert_eq!(report["hosts"][0]["ip"], "::1");
}

#[test]
fn ipv6_loopback_is_scanned() {
    let listener = std::net::TcpListener::bind("[::1]:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in listener.incoming() {
            drop(s)
        }
    });
    let closed = {
        let l = std::net::TcpListener::bind("[::1]:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let (code, report, _) = scan_json(&["::1", "-p", &format!("{port},{closed}")]);
    assert_eq!(code, 0);
    let host = host(&report, "::1");
    assert_eq!(listed(host, "open"), BTreeSet::from([port]));
    assert_eq!(listed(host, "closed"), BTreeSet::from([closed]));
}

#[test]
fn hostnames_resolve_to_every_address_with_the_cname_chain() {
    let Some(dns) = Dnsmasq::start("hostnames_resolve_to_every_address_with_the_cname_chain")
    else {
        return;
    };
    let v4 = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = v4.local_addr().unwrap().port();
    let server = dns.addr.to_string();
    let (code, report, stderr) = scan_json(&[
        "www.pg.test",
        "-p",
        &port.to_string(),
        "--dns-server",
        &server,
    ]);
    assert_eq!(code, 0, "{stderr}");
    let target = &report["targets"][0];
    assert_eq!(target["kind"], "hostname");
    assert_eq!(
        target["cname_chain"],
        serde_json::json!(["web.pg.test", "app.pg.test"])
    );
    let addresses: BTreeSet<&str> = target["addresses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(addresses, BTreeSet::from(["127.0.0.1", "::1"]));
    // Both addresses scanned, each labelled with the name.
    assert_eq!(report["hosts"].as_array().unwrap().len(), 2);
    assert_eq!(host(&report, "127.0.0.1")["hostname"], "www.pg.test");
    assert_eq!(
        listed(host(&report, "127.0.0.1"), "open"),
        BTreeSet::from([port])
    );
    assert_eq!(host(&report, "::1")["counts"]["open"], 0);
    drop(v4);
}

#[test]
fn an_unresolvable_name_fails_that_target_only() {
    let Some(dns) = Dnsmasq::start("an_unresolvable_name_fails_that_target_only") else {
        return;
    };
    let listeners = Listeners::start(1);
    let port = listeners.ports[0].to_string();
    let server = dns.addr.to_string();
    let (code, report, stderr) = scan_json(&[
        "nosuch.pg.test",
        "127.0.0.1",
        "-p",
        &port,
        "--dns-server",
        &server,
    ]);
    assert_eq!(code, 3, "an inconclusive scan is not a pass");
    assert!(stderr.contains("nosuch.pg.test"), "{stderr}");
    assert_eq!(report["status"], "incomplete");
    let failed = &report["targets"][0];
    assert_eq!(failed["input"], "nosuch.pg.test");
    assert!(
        failed["error"]
            .as_str()
            .unwrap()
            .contains("does not exist (NXDOMAIN)"),
        "{failed}"
    );
    assert_eq!(report["summary"]["targets_failed"], 1);
    // The other target was scanned all the same.
    assert_eq!(listed(host(&report, "127.0.0.1"), "open").len(), 1);
    assert!(
        report["incomplete_reasons"][0]
            .as_str()
            .unwrap()
            .contains("nosuch.pg.test")
    );
}

#[test]
fn localhost_resolves_from_the_hosts_file() {
    let listeners = Listeners::start(1);
    let (code, report, stderr) = scan_json(&["localhost", "-p", &listeners.ports[0].to_string()]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(listed(host(&report, "127.0.0.1"), "open").len(), 1);
    assert_eq!(host(&report, "127.0.0.1")["hostname"], "localhost");
}

#[test]
fn the_deadline_stops_the_scan_and_says_so() {
    let (code, report, stderr) = scan_json(&[
        "127.0.0.1",
        "::1",
        "-p-",
        "--deadline",
        "150ms",
        "--max-in-flight",
        "64",
    ]);
    assert_eq!(code, 3, "{stderr}");
    assert_eq!(report["status"], "incomplete");
    assert!(report["summary"]["not_scanned"].as_u64().unwrap() > 0);
    assert!(
        report["incomplete_reasons"][0]
            .as_str()
            .unwrap()
            .contains("deadline of 150ms"),
        "{report}"
    );
    assert!(stderr.contains("deadline"), "{stderr}");
}

#[test]
fn running_out_of_file_descriptors_loses_no_port() {
    // 48 descriptors but a window of 2000 attempts: socket() fails with EMFILE over and
    // over; the engine must shrink its window and still settle every port correctly.
    if !std::path::Path::new("/usr/bin/prlimit").exists() {
        skip(
            "running_out_of_file_descriptors_loses_no_port",
            "prlimit (util-linux) missing",
        );
        return;
    }
    let listeners = Listeners::start(5);
    let extra: Vec<String> = listeners.ports.iter().map(u16::to_string).collect();
    let spec = format!("1-3000,{}", extra.join(","));
    let out = std::process::Command::new("/usr/bin/prlimit")
        .args(["--nofile=48:48", "--"])
        .arg(env!("CARGO_BIN_EXE_portgate"))
        .args([
            "scan",
            "127.0.0.1",
            "-p",
            &spec,
            "-o",
            "json",
            "--max-in-flight",
            "2000",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let starved: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let starved_host = host(&starved, "127.0.0.1");
    assert_eq!(
        starved_host["counts"]["filtered"], 0,
        "no port given up for lack of sockets"
    );
    assert_eq!(
        starved["summary"]["ports_scanned"],
        starved["summary"]["ports_requested"]
    );
    // The same open ports as a scan with descriptors to spare.
    let (code, normal, _) = scan_json(&["127.0.0.1", "-p", &spec]);
    assert_eq!(code, 0);
    let open = listed(starved_host, "open");
    assert_eq!(open, listed(host(&normal, "127.0.0.1"), "open"));
    for port in &listeners.ports {
        assert!(open.contains(port), "{port} missing from {open:?}");
    }
}

#[test]
fn progress_bar_only_on_a_terminal() {
    // `script` gives the command a pseudo-terminal, as a person at a shell would have.
    if !std::path::Path::new("/usr/bin/script").exists() {
        skip(
            "progress_bar_only_on_a_terminal",
            "script (bsdutils) missing",
        );
        return;
    }
    let binary = env!("CARGO_BIN_EXE_portgate");
    let on_tty = |extra: &str| {
        let command = format!("{binary} scan 127.0.0.1 -p- --max-in-flight 128 {extra}");
        let out = std::process::Command::new("/usr/bin/script")
            .args(["-qec", &command, "/dev/null"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let shown = on_tty("");
    assert!(
        shown.contains("/65535 ports"),
        "no progress bar on a terminal: {shown}"
    );
    assert!(shown.contains("65535 ports scanned"), "{shown}");
    let hidden = on_tty("--no-progress");
    assert!(!hidden.contains("/65535 ports"), "{hidden}");
    assert!(hidden.contains("65535 ports scanned"), "{hidden}");
}

#[test]
fn udp_ports_answering_and_refusing() {
    // A UDP service that answers every datagram, and a port where nothing listens.
    let service = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let open = service.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut buf = [0u8; 2048];
        while let Ok((_, from)) = service.recv_from(&mut buf) {
            let _ = service.send_to(b"pong", from);
        }
    });
    let closed = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listeners = Listeners::start(1);
    let spec = format!("T:{},U:{open},{closed}", listeners.ports[0]);
    let (code, report, stderr) = scan_json(&["127.0.0.1", "-p", &spec]);
    assert_eq!(code, 0, "{stderr}");
    let host = host(&report, "127.0.0.1");
    let find = |port: u16, protocol: &str| {
        host["ports"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["port"] == port && p["protocol"] == protocol)
            .unwrap_or_else(|| panic!("{port}/{protocol} missing: {host}"))
            .clone()
    };
    let udp_open = find(open, "udp");
    assert_eq!(udp_open["state"], "open");
    assert_eq!(udp_open["reason"], "udp-response");
    let udp_closed = find(closed, "udp");
    assert_eq!(udp_closed["state"], "closed");
    assert_eq!(udp_closed["reason"], "port-unreach");
    assert_eq!(find(listeners.ports[0], "tcp")["state"], "open");
    assert_eq!(report["summary"]["ports_scanned"], 3);
}

/// `--detect` on a Redis started here, on a free port that is not Redis's: service,
/// product, version and the critical "no authentication", with the answer as evidence.
#[test]
fn detect_names_a_redis_started_here() {
    let Some(redis) = Redis::start("detect_names_a_redis_started_here") else {
        return;
    };
    let port = redis.port.to_string();
    let (code, report, stderr) = scan_json(&["127.0.0.1", "-p", &port, "--detect", "--connect"]);
    assert_eq!(code, 0, "{stderr}");
    let host = host(&report, "127.0.0.1");
    let entry = host["ports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["port"] == redis.port)
        .unwrap_or_else(|| panic!("{port} missing: {host}"));
    let detected = &entry["detected"];
    assert_eq!(detected["service"], "redis", "{detected}");
    assert_eq!(detected["product"], "Redis", "{detected}");
    assert!(
        !detected["evidence"].as_str().unwrap().is_empty(),
        "evidence"
    );
    assert_eq!(
        detected["info"], "no authentication",
        "the critical finding"
    );
    let version = detected["version"].as_str().unwrap();
    assert!(
        version.chars().next().is_some_and(|c| c.is_ascii_digit()),
        "{version}"
    );
    // The table names product and version.
    let (_, table, _) = run(&["scan", "127.0.0.1", "-p", &port, "--detect", "--connect"]);
    assert!(
        table.contains("VERSION") && table.contains("Redis "),
        "{table}"
    );
}

/// `--detect` on the daemons this machine runs on 127.0.0.1 (PostgreSQL, MariaDB,
/// RabbitMQ, Mosquitto, NATS): service, product and version, with the answer as evidence.
#[test]
fn detect_names_the_local_daemons() {
    let daemons: [(u16, &str, Option<&str>); 5] = [
        (3306, "mysql", Some("MariaDB")),
        (5432, "postgresql", Some("PostgreSQL")),
        (5672, "amqp", Some("RabbitMQ")),
        (4222, "nats", Some("NATS")),
        (1883, "mqtt", None),
    ];
    let missing: Vec<String> = daemons
        .iter()
        .filter(|(port, _, _)| std::net::TcpStream::connect(("127.0.0.1", *port)).is_err())
        .map(|(port, service, _)| format!("{service} on 127.0.0.1:{port}"))
        .collect();
    if !missing.is_empty() {
        skip(
            "detect_names_the_local_daemons",
            format_args!(
                "not every daemon is running here (missing: {})",
                missing.join(", ")
            ),
        );
        return;
    }
    let spec: Vec<String> = daemons.iter().map(|(p, _, _)| p.to_string()).collect();
    let (code, report, stderr) =
        scan_json(&["127.0.0.1", "-p", &spec.join(","), "--detect", "--connect"]);
    assert_eq!(code, 0, "{stderr}");
    let host = host(&report, "127.0.0.1");
    for (port, service, product) in daemons {
        let entry = host["ports"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["port"] == port)
            .unwrap_or_else(|| panic!("{port} missing"));
        let detected = &entry["detected"];
        assert_eq!(detected["service"], service, "{port}: {detected}");
        if let Some(product) = product {
            assert_eq!(detected["product"], product, "{port}: {detected}");
        }
        assert!(
            !detected["evidence"].as_str().unwrap().is_empty(),
            "{port}: evidence"
        );
    }
}

#[test]
fn a_bad_probes_file_is_a_usage_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("extra.toml");
    std::fs::write(&path, "[[probe]]\nname = \"gopher\"\nport = [70]\n").unwrap();
    let (code, _, stderr) = run(&[
        "scan",
        "127.0.0.1",
        "-p",
        "1",
        "--detect",
        "--probes",
        path.to_str().unwrap(),
    ]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("extra.toml:") && stderr.contains("gopher"),
        "{stderr}"
    );
}

/// A port that answers no plaintext probe gets a TLS handshake: openssl's own server, with
/// a self-signed certificate made here, is reported as TLS with each certificate failure.
#[test]
fn detect_inspects_tls_on_a_port_that_speaks_it() {
    let openssl = "/usr/bin/openssl";
    if !std::path::Path::new(openssl).exists() {
        // .ci/run installs openssl.
        skip(
            "detect_inspects_tls_on_a_port_that_speaks_it",
            "openssl missing",
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let made = std::process::Command::new(openssl)
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "30",
        ])
        .args([
            "-subj",
            "/CN=app.pg.test",
            "-addext",
            "subjectAltName=DNS:app.pg.test",
            "-addext",
            "basicConstraints=critical,CA:FALSE",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let port = closed_port();
    let mut server = std::process::Command::new(openssl)
        .args([
            "s_server",
            "-quiet",
            "-accept",
            &format!("127.0.0.1:{port}"),
        ])
        .arg("-cert")
        .arg(&cert)
        .arg("-key")
        .arg(&key)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let ready = (0..50).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(100));
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    let port_text = port.to_string();
    let args = ["127.0.0.1", "-p", &port_text, "--detect", "--connect"];
    let cert_text = cert.to_str().unwrap();
    let pinned_args = [&args[..], &["--ca", cert_text]].concat();
    let named_args = [&["localhost"], &pinned_args[1..]].concat();
    let ((code, report, stderr), (pinned_code, pinned, pinned_stderr), named) = if ready {
        (
            scan_json(&args),
            scan_json(&pinned_args),
            Some(scan_json(&named_args)),
        )
    } else {
        let failed = || {
            (
                -1,
                serde_json::Value::Null,
                "openssl s_server did not start".to_string(),
            )
        };
        (failed(), failed(), None)
    };
    let _ = server.kill();
    let _ = server.wait();
    assert_eq!(code, 0, "{stderr}");
    let detected = &host(&report, "127.0.0.1")["ports"][0]["detected"];
    assert_eq!(detected["service"], "tls", "{detected}");
    let tls = &detected["tls"];
    assert!(
        tls["protocol"].as_str().unwrap().starts_with("TLSv1."),
        "{tls}"
    );
    assert_eq!(tls["subject"], "CN=app.pg.test");
    assert_eq!(tls["san_dns"], serde_json::json!(["app.pg.test"]));
    assert_eq!(tls["self_signed"], true);
    assert_eq!(tls["valid"], false);
    let reasons: Vec<&str> = tls["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect();
    assert!(
        reasons.contains(&"self-signed") && reasons.contains(&"untrusted-issuer"),
        "{reasons:?}"
    );
    let days = tls["days_left"].as_i64().unwrap();
    assert!((28..=30).contains(&days), "{days}");
    assert_eq!(
        tls["fingerprint_sha256"].as_str().unwrap().len(),
        64,
        "{tls}"
    );

    // With the certificate itself as the trusted root (--ca) it verifies. (A bare address
    // is scanned: there is no name to check.)
    assert_eq!(pinned_code, 0, "{pinned_stderr}");
    let tls = &host(&pinned, "127.0.0.1")["ports"][0]["detected"]["tls"];
    assert_eq!(tls["reasons"], serde_json::json!([]), "{tls}");
    assert_eq!(tls["valid"], true, "{tls}");
    assert_eq!(tls["server_name"], serde_json::Value::Null);

    // Scanned by name, the name is sent as SNI and checked: "localhost" is not among the
    // certificate's names.
    let (named_code, named, named_stderr) = named.unwrap();
    assert_eq!(named_code, 0, "{named_stderr}");
    let tls = &host(&named, "127.0.0.1")["ports"][0]["detected"]["tls"];
    assert_eq!(tls["server_name"], "localhost", "{tls}");
    assert_eq!(
        tls["reasons"],
        serde_json::json!(["name-mismatch"]),
        "{tls}"
    );
}

/// A CA file that cannot be used stops the scan before it starts, naming the file.
#[test]
fn a_bad_ca_file_is_a_usage_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.pem");
    let junk = dir.path().join("junk.pem");
    std::fs::write(&junk, "not a certificate\n").unwrap();
    for file in [&missing, &junk] {
        let (code, _, stderr) = run(&[
            "scan",
            "127.0.0.1",
            "-p",
            "1",
            "--detect",
            "--ca",
            file.to_str().unwrap(),
        ]);
        assert_eq!(code, 2, "{stderr}");
        assert!(stderr.contains(file.to_str().unwrap()), "{stderr}");
    }
}

/// An HTTP service is inspected: status, redirect, server, title, security headers and
/// cookie flags reach the JSON report and the table.
#[test]
fn detect_inspects_http() {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            std::thread::spawn(move || {
                let _ = conn.set_read_timeout(Some(std::time::Duration::from_secs(5)));
                let mut buf = [0u8; 4096];
                let mut got = Vec::new();
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    match conn.read(&mut buf) {
                        Ok(n) if n > 0 => got.extend_from_slice(&buf[..n]),
                        _ => return,
                    }
                }
                let body = "<html><head><title>Grafana</title></head></html>";
                let _ = write!(
                    conn,
                    "HTTP/1.1 302 Found\r\nServer: nginx/1.22.1\r\nLocation: https://app.pg.test/login\r\nSet-Cookie: session=abc; Path=/; HttpOnly\r\nX-Frame-Options: DENY\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            });
        }
    });
    let port_text = port.to_string();
    let (code, report, stderr) =
        scan_json(&["127.0.0.1", "-p", &port_text, "--detect", "--connect"]);
    assert_eq!(code, 0, "{stderr}");
    let detected = &host(&report, "127.0.0.1")["ports"][0]["detected"];
    assert_eq!(detected["service"], "http", "{detected}");
    assert_eq!(detected["product"], "nginx", "{detected}");
    let http = &detected["http"];
    assert_eq!(http["status"], 302, "{http}");
    assert_eq!(http["redirects_to_https"], true);
    assert_eq!(http["title"], "Grafana");
    assert_eq!(http["security_headers"]["x_frame_options"], "DENY");
    assert_eq!(
        http["cookies"],
        serde_json::json!([{"name": "session", "secure": false, "http_only": true, "same_site": null}])
    );
    assert!(
        http["missing_security_headers"]
            .as_array()
            .unwrap()
            .contains(&serde_json::json!("Content-Security-Policy")),
        "{http}"
    );
    assert!(
        http["head"]
            .as_str()
            .unwrap()
            .starts_with("HTTP/1.1 302 Found\\r\\n")
    );

    let (code, table, stderr) = run(&[
        "scan",
        "127.0.0.1",
        "-p",
        &port_text,
        "--detect",
        "--connect",
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        table.contains("[HTTP 302 -> https://app.pg.test/login \"Grafana\"]"),
        "{table}"
    );
}
