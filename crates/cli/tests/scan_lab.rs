//! `portgate scan` against lab hosts in network namespaces whose every port's state is
//! known: exact states on the `open`, `firewalled` and `lossy` profiles, IPv4 and IPv6.
//! Needs root (namespaces, veth, iptables); skips with a printed reason without it.

#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use portgate_lab::{DelayConfig, LabConfig, LabHost, Profile, skip_reason};
use std::collections::BTreeSet;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Full-range scans one at a time: two cores shared by parallel scans would measure
/// the test harness, not the scanner.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn lab(test: &str, profile: Profile) -> Option<LabHost> {
    if let Some(reason) = skip_reason() {
        portgate_test_support::skip(test, reason);
        return None;
    }
    Some(LabHost::start(LabConfig::new(profile)).expect("lab host starts"))
}

/// A lab host whose every reply is held back by a delay line: a path with a real round
/// trip. Without root it skips with the reason (a failure under strict mode).
fn wan_lab(test: &str, profile: Profile, delay: DelayConfig) -> Option<LabHost> {
    if let Some(reason) = skip_reason() {
        portgate_test_support::skip(test, reason);
        return None;
    }
    Some(
        LabHost::start(LabConfig::new(profile).delay(delay))
            .expect("lab host with a delay line starts"),
    )
}

/// The delay line must not have been what decided the result: no packet of the lab
/// host's lost in its queue, no release far later than scheduled.
fn assert_delay_line_kept_up(lab: &LabHost, label: &str) {
    let stats = lab.delay_stats().expect("a delay line");
    eprintln!("{label}: delay line {stats:?}");
    assert_eq!(
        stats.bottleneck(Duration::from_millis(50)),
        None,
        "{label}: the delay line, not the scanner, limited this run"
    );
}

/// Every port of a host `rtt` away, both profiles (RST host; firewall with REJECT
/// ports), both methods, both families: each port's state equals the truth.
fn wan_every_port_exact(test: &str, delay: DelayConfig) {
    for profile in [Profile::Open, Profile::Firewalled] {
        let Some(lab) = wan_lab(test, profile, delay) else {
            return;
        };
        for method in METHODS {
            for ip in [lab.ipv4().to_string(), lab.ipv6().to_string()] {
                let began = Instant::now();
                assert_exact_states(&lab, &ip, method, 1);
                eprintln!(
                    "{test}: {profile} {ip} {method}: {:.2} s",
                    began.elapsed().as_secs_f64()
                );
            }
        }
        assert_delay_line_kept_up(&lab, &format!("{test} {profile}"));
    }
}

/// Regression: at 20 ms the connect scan called every closed port filtered (a refusal
/// read from SO_ERROR once, then lost), and the SYN scan took late answers for loss.
#[test]
fn wan_20ms_every_port_exact() {
    wan_every_port_exact(
        "wan_20ms_every_port_exact",
        DelayConfig::new(Duration::from_millis(20)),
    );
}

/// Regression: at 80 ms the SYN scan of all ports took minutes and called thousands of
/// closed ports filtered.
#[test]
fn wan_80ms_every_port_exact() {
    wan_every_port_exact(
        "wan_80ms_every_port_exact",
        DelayConfig::new(Duration::from_millis(80)),
    );
}

#[test]
fn wan_200ms_every_port_exact() {
    wan_every_port_exact(
        "wan_200ms_every_port_exact",
        DelayConfig::new(Duration::from_millis(200)),
    );
}

/// 80 ms with 1% jitter (±0.8 ms): at tens of thousands of answers a second, answers
/// overtake each other all the time.
#[test]
fn wan_80ms_with_jitter_every_port_exact() {
    wan_every_port_exact(
        "wan_80ms_with_jitter_every_port_exact",
        DelayConfig::new(Duration::from_millis(80)).jitter(Duration::from_micros(800)),
    );
}

/// 80 ms with 2% of the host's replies lost on the way back.
#[test]
fn wan_80ms_with_loss_every_port_exact() {
    wan_every_port_exact(
        "wan_80ms_with_loss_every_port_exact",
        DelayConfig::new(Duration::from_millis(80)).loss(0.02),
    );
}

/// Both ways of probing TCP: full handshakes, and raw SYNs (root is given here).
const METHODS: [&str; 2] = ["--connect", "--syn"];

/// Scans every port of `ip` and checks each state against the lab's ground truth.
fn assert_exact_states(lab: &LabHost, ip: &str, method: &str, run: usize) {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let (code, report, stderr) = scan_json(&[ip, "-p-", method]);
    let label = format!("{:?} {ip} {method} run {run}", lab.truth().profile);
    assert_eq!(code, 0, "{label}: {stderr}");
    assert_eq!(report["method"], method.trim_start_matches("--"), "{label}");
    let host = host(&report, ip);
    let truth = lab.truth();
    let open = listed(host, "open");
    // 100% recall, and nothing falsely open.
    assert_eq!(open, truth.open, "{label}: open ports");
    let counts = &host["counts"];
    assert_eq!(counts["not_scanned"], 0, "{label}");
    // Every port was probed at least once; retries stay within the retry ceiling.
    let probes = report["summary"]["probes_sent"].as_u64().unwrap();
    assert!(
        (65_535..=65_535 * 11).contains(&probes),
        "{label}: {probes} probes sent"
    );
    match truth.profile {
        Profile::Open | Profile::Lossy => {
            assert_eq!(
                counts["closed"],
                65535 - truth.open.len(),
                "{label}: closed"
            );
            assert_eq!(counts["filtered"], 0, "{label}: nothing is filtered");
        }
        Profile::Firewalled => {
            // 5 closed ports: few enough to be listed one by one.
            assert_eq!(
                listed(host, "closed"),
                truth.reject,
                "{label}: closed = rejected"
            );
            assert_eq!(
                counts["filtered"],
                65535 - truth.open.len() - truth.reject.len(),
                "{label}: every other port filtered"
            );
        }
    }
    let ports_open: BTreeSet<u16> = open.clone();
    for entry in host["ports"].as_array().unwrap() {
        let port = entry["port"].as_u64().unwrap() as u16;
        let want = truth.expected(port).to_string();
        assert_eq!(entry["state"], want.as_str(), "{label}: port {port}");
        if ports_open.contains(&port) {
            assert_eq!(entry["reason"], "syn-ack");
        }
    }
}

#[test]
fn open_host_all_ports_ipv4_and_ipv6() {
    let Some(lab) = lab("open_host_all_ports_ipv4_and_ipv6", Profile::Open) else {
        return;
    };
    for method in METHODS {
        assert_exact_states(&lab, &lab.ipv4().to_string(), method, 1);
        assert_exact_states(&lab, &lab.ipv6().to_string(), method, 1);
    }
}

#[test]
fn firewalled_host_all_ports_ipv4_and_ipv6() {
    let Some(lab) = lab(
        "firewalled_host_all_ports_ipv4_and_ipv6",
        Profile::Firewalled,
    ) else {
        return;
    };
    for method in METHODS {
        assert_exact_states(&lab, &lab.ipv4().to_string(), method, 1);
        assert_exact_states(&lab, &lab.ipv6().to_string(), method, 1);
    }
}

#[test]
fn lossy_host_full_recall_in_every_run() {
    let Some(lab) = lab("lossy_host_full_recall_in_every_run", Profile::Lossy) else {
        return;
    };
    for method in METHODS {
        for run in 1..=3 {
            assert_exact_states(&lab, &lab.ipv4().to_string(), method, run);
        }
        assert_exact_states(&lab, &lab.ipv6().to_string(), method, 1);
    }
}

#[test]
fn firewalled_host_table_names_the_filtered_ports() {
    let Some(lab) = lab(
        "firewalled_host_table_names_the_filtered_ports",
        Profile::Firewalled,
    ) else {
        return;
    };
    let ip = lab.ipv4().to_string();
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    // 20 ports: 2 open, 1 rejected, 17 dropped, all listed.
    let (code, stdout, _) = run(&["scan", &ip, "-p", "20-23,79-81,110-115,7000-7006"]);
    assert_eq!(code, 0);
    assert!(stdout.contains("22/tcp     open      ssh"), "{stdout}");
    assert!(stdout.contains("80/tcp     open      http"), "{stdout}");
    assert!(stdout.contains("113/tcp    closed"), "{stdout}");
    assert!(stdout.contains("7000/tcp   closed"), "{stdout}");
    assert!(
        stdout.contains("21/tcp     filtered  ftp              no-response"),
        "{stdout}"
    );
    assert!(stdout.contains("2 open, 2 closed, 16 filtered"), "{stdout}");
}

#[test]
fn several_hosts_at_once() {
    let Some(a) = lab("several_hosts_at_once", Profile::Open) else {
        return;
    };
    let b = LabHost::start(LabConfig::new(Profile::Firewalled)).expect("second lab host");
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let (code, report, stderr) = scan_json(&[
        &a.ipv4().to_string(),
        &a.ipv6().to_string(),
        &b.ipv4().to_string(),
        &b.ipv6().to_string(),
        "-p",
        "top1000",
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(report["summary"]["hosts"], 4);
    assert_eq!(report["summary"]["ports_scanned"], 4000);
    let top1000: BTreeSet<u16> = portgate_model::port_sets()
        .top1000(portgate_model::Protocol::Tcp)
        .iter()
        .copied()
        .collect();
    for (lab, ip) in [
        (&a, a.ipv4().to_string()),
        (&a, a.ipv6().to_string()),
        (&b, b.ipv4().to_string()),
        (&b, b.ipv6().to_string()),
    ] {
        let want: BTreeSet<u16> = lab.truth().open.intersection(&top1000).copied().collect();
        assert_eq!(listed(host(&report, &ip), "open"), want, "{ip}");
    }
}

/// Regression: with both cores busy, an answer can sit unnoticed past the timeout floor.
/// It is an answer all the same: port 113's reset once came out "filtered" under load.
#[test]
fn exact_states_while_the_cpu_is_saturated() {
    let Some(lab) = lab(
        "exact_states_while_the_cpu_is_saturated",
        Profile::Firewalled,
    ) else {
        return;
    };
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let hogs: Vec<_> = (0..3)
        .map(|_| {
            let stop = std::sync::Arc::clone(&stop);
            std::thread::spawn(move || {
                let mut x = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
                }
            })
        })
        .collect();
    for method in METHODS {
        assert_exact_states(&lab, &lab.ipv4().to_string(), method, 1);
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for hog in hogs {
        hog.join().unwrap();
    }
}

/// A host that accepts a connection on every port is a tarpit, not 1,000 services.
#[test]
fn a_host_answering_every_port_is_flagged_as_a_tarpit() {
    let Some(lab) = lab(
        "a_host_answering_every_port_is_flagged_as_a_tarpit",
        Profile::Open,
    ) else {
        return;
    };
    // Every TCP port of the lab host now reaches its listener on 22.
    for table in ["iptables", "ip6tables"] {
        let status = std::process::Command::new("ip")
            .args([
                "netns",
                "exec",
                lab.namespace(),
                table,
                "-t",
                "nat",
                "-A",
                "PREROUTING",
            ])
            .args(["-p", "tcp", "-j", "REDIRECT", "--to-ports", "22"])
            .status()
            .unwrap();
        assert!(status.success(), "{table} REDIRECT rule");
    }
    let ip = lab.ipv4().to_string();
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let (code, report, stderr) = scan_json(&[&ip, "-p", "1-1000"]);
    assert_eq!(code, 0, "{stderr}");
    let host = host(&report, &ip);
    assert_eq!(host["counts"]["open"], 0, "no port reported open: {host}");
    let tarpit = &host["tarpit"];
    assert_eq!(tarpit["answered"], 1000, "{host}");
    assert_eq!(tarpit["probed"], 1000);
    assert_eq!(tarpit["sampled"], 8);
    assert_eq!(tarpit["handshakes"], 8);
    assert_eq!(host["not_shown"]["filtered"], 1000);
    let (_, table, _) = run(&["scan", &ip, "-p", "1-1000"]);
    assert!(
        table.contains("Tarpit: 1000 of 1000 TCP ports answered as open"),
        "{table}"
    );
}

/// `--verify` re-checks SYN findings with a full handshake. The lab host here refuses
/// handshakes to 8080 from the kernel's ephemeral ports while answering the SYN scanner's
/// source ports: SYN alone says open, the handshake says closed, and --verify reports that.
#[test]
fn verify_confirms_syn_findings_with_a_handshake() {
    let Some(lab) = lab(
        "verify_confirms_syn_findings_with_a_handshake",
        Profile::Open,
    ) else {
        return;
    };
    let status = std::process::Command::new("ip")
        .args(["netns", "exec", lab.namespace(), "iptables", "-I", "INPUT"])
        .args(["-p", "tcp", "--dport", "8080", "--sport", "32768:60999"])
        .args(["-j", "REJECT", "--reject-with", "tcp-reset"])
        .status()
        .unwrap();
    assert!(status.success());
    let ip = lab.ipv4().to_string();
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let (code, plain, _) = scan_json(&[&ip, "-p", "22,80,8080", "--syn"]);
    assert_eq!(code, 0);
    assert_eq!(
        listed(host(&plain, &ip), "open"),
        BTreeSet::from([22, 80, 8080])
    );
    let (code, verified, _) = scan_json(&[&ip, "-p", "22,80,8080", "--syn", "--verify"]);
    assert_eq!(code, 0);
    let host = host(&verified, &ip);
    assert_eq!(listed(host, "open"), BTreeSet::from([22, 80]));
    assert_eq!(listed(host, "closed"), BTreeSet::from([8080]));
}

/// Without raw-socket privilege, a SYN scan falls back to connect with a one-line notice.
#[test]
fn unprivileged_syn_falls_back_to_connect_with_a_notice() {
    if let Some(reason) = skip_reason() {
        portgate_test_support::skip(
            "unprivileged_syn_falls_back_to_connect_with_a_notice",
            reason,
        );
        return;
    }
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    // Drop root: run the binary as nobody, without capabilities.
    let out = std::process::Command::new("setpriv")
        .args([
            "--reuid=nobody",
            "--regid=nogroup",
            "--clear-groups",
            "--inh-caps=-all",
        ])
        .arg(env!("CARGO_BIN_EXE_portgate"))
        .args(["scan", "127.0.0.1", "-p", &port, "-o", "json", "--syn"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    assert!(stderr.contains("raw sockets are not permitted"), "{stderr}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["method"], "connect");
    assert_eq!(report["summary"]["open"], 1);
    drop(listener);
}

/// A target that answers at most 2,000 SYNs a second and drops the rest: the scanner must
/// notice the loss and slow down for that host instead of giving up on ports.
#[test]
fn a_rate_limiting_target_loses_no_port() {
    let Some(lab) = lab("a_rate_limiting_target_loses_no_port", Profile::Open) else {
        return;
    };
    assert_rate_limited_target_exact(&lab);
}

/// The same target 80 ms away. Regression: its drops once cut the host's window epoch
/// after epoch (the retries of one burst, answered later, counted as new losses) down to
/// 4 probes in flight, where it grew back by one per round trip: 68 s for 10,000 ports
/// the host would answer in 5.
#[test]
fn a_rate_limiting_target_80ms_away_loses_no_port() {
    let Some(lab) = wan_lab(
        "a_rate_limiting_target_80ms_away_loses_no_port",
        Profile::Open,
        DelayConfig::new(Duration::from_millis(80)),
    ) else {
        return;
    };
    assert_rate_limited_target_exact(&lab);
}

/// Limits the lab host to answering 2,000 SYNs a second (burst 200; the rest dropped)
/// and checks every state of ports 1-10000 with both methods.
fn assert_rate_limited_target_exact(lab: &LabHost) {
    for table in ["iptables", "ip6tables"] {
        for rule in [
            &[
                "-I", "INPUT", "1", "-p", "tcp", "--syn", "-m", "limit", "--limit", "2000/s",
            ][..],
            &["-I", "INPUT", "2", "-p", "tcp", "--syn", "-j", "DROP"][..],
        ] {
            let mut args = vec!["netns", "exec", lab.namespace(), table];
            args.extend_from_slice(rule);
            if rule.len() > 8 {
                args.extend_from_slice(&["--limit-burst", "200", "-j", "ACCEPT"]);
            }
            let status = std::process::Command::new("ip")
                .args(&args)
                .status()
                .unwrap();
            assert!(status.success(), "{args:?}");
        }
    }
    let ip = lab.ipv4().to_string();
    let want: BTreeSet<u16> = lab.truth().open.range(1..=10_000).copied().collect();
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    for method in METHODS {
        let began = Instant::now();
        let (code, report, stderr) = scan_json(&[&ip, "-p", "1-10000", method]);
        eprintln!(
            "rate-limited target {ip} {method}: {:.2} s",
            began.elapsed().as_secs_f64()
        );
        assert_eq!(code, 0, "{method}: {stderr}");
        let host = host(&report, &ip);
        assert_eq!(listed(host, "open"), want, "{method}");
        assert_eq!(host["counts"]["closed"], 10_000 - want.len(), "{method}");
        assert_eq!(host["counts"]["filtered"], 0, "{method}: {host}");
    }
}

/// ICMP errors instead of silence: filtered, with the ICMP type as the reason.
#[test]
fn icmp_unreachable_and_admin_prohibited_are_filtered_with_their_reason() {
    let Some(lab) = lab(
        "icmp_unreachable_and_admin_prohibited_are_filtered_with_their_reason",
        Profile::Open,
    ) else {
        return;
    };
    let rules: [(&str, &str, &str); 4] = [
        ("iptables", "7001", "icmp-admin-prohibited"),
        ("iptables", "7002", "icmp-host-unreachable"),
        ("ip6tables", "7001", "icmp6-adm-prohibited"),
        ("ip6tables", "7002", "icmp6-addr-unreachable"),
    ];
    for (table, port, with) in rules {
        let status = std::process::Command::new("ip")
            .args([
                "netns",
                "exec",
                lab.namespace(),
                table,
                "-I",
                "INPUT",
                "-p",
                "tcp",
            ])
            .args(["--dport", port, "-j", "REJECT", "--reject-with", with])
            .status()
            .unwrap();
        assert!(status.success(), "{table} {port} {with}");
    }
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    for ip in [lab.ipv4().to_string(), lab.ipv6().to_string()] {
        for method in METHODS {
            let (code, report, stderr) = scan_json(&[&ip, "-p", "22,7001,7002,7003", method]);
            assert_eq!(code, 0, "{stderr}");
            let host = host(&report, &ip);
            let entry = |port: u16| {
                host["ports"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|p| p["port"] == port)
                    .cloned()
                    .unwrap_or_default()
            };
            assert_eq!(entry(22)["state"], "open", "{ip} {method}");
            assert_eq!(entry(7003)["state"], "closed", "{ip} {method}");
            for port in [7001, 7002] {
                let e = entry(port);
                assert_eq!(e["state"], "filtered", "{ip} {method} {port}: {e}");
                let reason = e["reason"].as_str().unwrap_or_default().to_string();
                // Through connect() the kernel reports both as "host unreachable"; a raw
                // socket reads the ICMP code itself.
                let want: &[&str] = match (method, port) {
                    ("--syn", 7001) => &["admin-prohibited"],
                    ("--syn", _) => &["host-unreach"],
                    _ => &["host-unreach", "admin-prohibited"],
                };
                assert!(want.contains(&reason.as_str()), "{ip} {method} {port}: {e}");
            }
        }
    }
}

/// Every (address, port) of a lab network — 256 addresses behind one namespace, each a
/// dark, RST-only, firewalled or open host drawn from a seed — against the truth.
fn assert_network_exact(test: &str, net: &portgate_lab::LabNetwork, method: &str) {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let prefix = net.prefix().to_string();
    let ports: Vec<String> = net.truth().ports.iter().map(u16::to_string).collect();
    let ports = ports.join(",");
    let began = Instant::now();
    let (code, report, stderr) = scan_json(&[&prefix, "-p", &ports, method, "--all-ports"]);
    let label = format!("{test} {prefix} {method}");
    eprintln!("{label}: {:.2} s", began.elapsed().as_secs_f64());
    assert_eq!(code, 0, "{label}: {stderr}");
    let hosts = report["hosts"].as_array().unwrap();
    // The network and broadcast addresses of the prefix are not scanned.
    assert_eq!(hosts.len() as u32, net.prefix().size() - 2, "{label}");
    let mut wrong = Vec::new();
    let mut open = 0;
    for entry in hosts {
        let ip: std::net::Ipv4Addr = entry["ip"].as_str().unwrap().parse().unwrap();
        let reported = entry["ports"].as_array().unwrap();
        assert_eq!(reported.len(), net.truth().ports.len(), "{label}: {ip}");
        for port in reported {
            let number = port["port"].as_u64().unwrap() as u16;
            let want = net.expected(ip, number).to_string();
            open += usize::from(want == "open");
            if port["state"] != want.as_str() {
                wrong.push(format!("{ip}:{number} {} (want {want})", port["state"]));
            }
        }
    }
    assert!(open > 0, "{label}: the seed gave no open port");
    assert!(
        wrong.is_empty(),
        "{label}: {} wrong: {wrong:?}",
        wrong.len()
    );
}

fn lab_network(
    test: &str,
    config: portgate_lab::NetworkConfig,
) -> Option<portgate_lab::LabNetwork> {
    if let Some(reason) = portgate_lab::network_skip_reason() {
        portgate_test_support::skip(test, reason);
        return None;
    }
    Some(portgate_lab::LabNetwork::start(config).expect("lab network starts"))
}

#[test]
fn many_hosts_every_port_exact() {
    let test = "many_hosts_every_port_exact";
    let config = portgate_lab::NetworkConfig::new().hosts(256).seed(7);
    let Some(net) = lab_network(test, config) else {
        return;
    };
    for method in METHODS {
        assert_network_exact(test, &net, method);
    }
}

#[test]
fn many_hosts_80ms_away_every_port_exact() {
    let test = "many_hosts_80ms_away_every_port_exact";
    let config = portgate_lab::NetworkConfig::new()
        .hosts(256)
        .seed(11)
        .delay(DelayConfig::new(Duration::from_millis(80)));
    let Some(net) = lab_network(test, config) else {
        return;
    };
    for method in METHODS {
        assert_network_exact(test, &net, method);
    }
    let stats = net.delay_stats().expect("a delay line");
    assert_eq!(stats.bottleneck(Duration::from_millis(50)), None, "{test}");
}
