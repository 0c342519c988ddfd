//! Integration tests: real namespaces, real listeners, real iptables rules.
//! Every test skips when not run as root (through `portgate_test_support::skip`: a
//! failure under strict mode).

use std::io::{ErrorKind, Read};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, UdpSocket};
use std::process::Command;
use std::time::{Duration, Instant};

use portgate_lab::{
    DelayConfig, DelayStats, ExpectedState, ExpectedUdpState, LabConfig, LabHost, Profile,
    UDP_SERVICE_PORTS, in_lab_range, skip_reason, udp_services_skip_reason,
};

/// Tests that measure time run alone: they take this lock for writing, every other lab
/// test takes it for reading (in its skip macro), so no namespace is being built or
/// flooded on the two cores while a delay line's punctuality is measured.
static TIMING: std::sync::RwLock<()> = std::sync::RwLock::new(());

fn shared_lab() -> std::sync::RwLockReadGuard<'static, ()> {
    TIMING
        .read()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn alone_in_lab() -> std::sync::RwLockWriteGuard<'static, ()> {
    TIMING
        .write()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

macro_rules! skip_unless_lab {
    ($name:literal) => {
        if let Some(reason) = skip_reason() {
            portgate_test_support::skip($name, reason);
            return;
        }
        let _lab = shared_lab();
    };
}

/// Skips unless the lab can run with a delay line: root, the lab's tools,
/// iptables and ip6tables, and NFQUEUE in the kernel.
/// `skip_unless_delay!(name, alone)` runs the test with no other lab test beside it.
macro_rules! skip_unless_delay {
    ($name:literal) => {
        if let Some(reason) = delay_skip_reason() {
            portgate_test_support::skip($name, reason);
            return;
        }
        let _lab = shared_lab();
    };
    ($name:literal, alone) => {
        if let Some(reason) = delay_skip_reason() {
            portgate_test_support::skip($name, reason);
            return;
        }
        let _lab = alone_in_lab();
    };
}

fn delay_skip_reason() -> Option<String> {
    skip_reason().or_else(|| {
        let tools = ["iptables", "ip6tables"];
        let missing = tools.iter().find(|tool| {
            !Command::new("sh")
                .args(["-c", &format!("command -v {tool}")])
                .output()
                .is_ok_and(|out| out.status.success())
        });
        if let Some(tool) = missing {
            return Some(format!("`{tool}` not found (Debian package iptables)"));
        }
        let nfqueue = std::path::Path::new("/proc/net/netfilter/nfnetlink_queue").exists()
            || Command::new("modprobe")
                .arg("nfnetlink_queue")
                .status()
                .is_ok_and(|s| s.success());
        (!nfqueue).then(|| "NFQUEUE (kernel module nfnetlink_queue) not available".to_owned())
    })
}

/// Skips unless the lab can run with its UDP services (root, tools, daemons).
macro_rules! skip_unless_udp_services {
    ($name:literal) => {
        if let Some(reason) = udp_services_skip_reason() {
            portgate_test_support::skip($name, reason);
            return;
        }
        let _lab = shared_lab();
    };
}

// Requests copied from portgate-scan's crates/scan/data/udp-payloads.toml
// (written from the RFCs cited there).

/// "dns": ID "PG", RD, one question "version.bind" TXT CH (RFC 1035 4.1).
const DNS_QUERY: &str = "50 47 01 00 00 01 00 00 00 00 00 00
    07 76 65 72 73 69 6f 6e 04 62 69 6e 64 00 00 10 00 03";

/// "ntp": NTPv4 client request, 48 bytes (RFC 5905 7.3).
const NTP_QUERY: &str = "23 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00
    00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00
    50 47 00 00 00 00 00 01";

/// "snmp-v1": GetRequest sysDescr.0, community "public" (RFC 1157).
const SNMP_V1_QUERY: &str = "30 29 02 01 00 04 06 70 75 62 6c 69 63 a0 1c
    02 04 50 47 00 01 02 01 00 02 01 00 30 0e 30 0c
    06 08 2b 06 01 02 01 01 01 00 05 00";

/// "snmp-v2c": the same as SNMPv2c (RFC 1901, RFC 3416).
const SNMP_V2C_QUERY: &str = "30 29 02 01 01 04 06 70 75 62 6c 69 63 a0 1c
    02 04 50 47 00 02 02 01 00 02 01 00 30 0e 30 0c
    06 08 2b 06 01 02 01 01 01 00 05 00";

fn hex(text: &str) -> Vec<u8> {
    text.split_whitespace()
        .map(|byte| u8::from_str_radix(byte, 16).expect("hex byte"))
        .collect()
}

/// Sends `payload` from a connected UDP socket and waits up to `timeout` for
/// one datagram back (ICMP port unreachable shows up as ECONNREFUSED).
fn udp_exchange(
    ip: IpAddr,
    port: u16,
    payload: &[u8],
    timeout: Duration,
) -> std::io::Result<Vec<u8>> {
    assert!(in_lab_range(ip), "tests only send to lab addresses");
    let local: SocketAddr = match ip {
        IpAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        IpAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let socket = UdpSocket::bind(local)?;
    socket.connect(SocketAddr::new(ip, port))?;
    socket.send(payload)?;
    let mut buf = vec![0u8; 4096];
    // A signal (another test's child exiting) interrupts the wait: wait on for the rest.
    let deadline = Instant::now() + timeout;
    let n = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(ErrorKind::TimedOut.into());
        }
        socket.set_read_timeout(Some(left))?;
        match socket.recv(&mut buf) {
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            other => break other?,
        }
    };
    buf.truncate(n);
    Ok(buf)
}

fn is_timeout(err: &std::io::Error) -> bool {
    matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Whether `pid` is a running `program` (not reaped, not reused by another).
fn process_is(pid: u32, program: &str) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .map(|comm| comm.trim() == program)
        .unwrap_or(false)
}

fn connect(ip: impl Into<IpAddr>, port: u16, timeout: Duration) -> std::io::Result<TcpStream> {
    let ip = ip.into();
    assert!(in_lab_range(ip), "tests only connect to lab addresses");
    TcpStream::connect_timeout(&SocketAddr::new(ip, port), timeout)
}

fn both_families(host: &LabHost) -> [IpAddr; 2] {
    [IpAddr::V4(host.ipv4()), IpAddr::V6(host.ipv6())]
}

fn netns_list() -> String {
    let out = Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("ip netns list runs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn lists_namespace(listing: &str, name: &str) -> bool {
    listing
        .lines()
        .any(|l| l.split_whitespace().next() == Some(name))
}

fn ns_rules(namespace: &str, tool: &str) -> String {
    let out = Command::new("ip")
        .args(["netns", "exec", namespace, tool, "-S"])
        .output()
        .expect("iptables -S runs");
    assert!(out.status.success(), "{tool} -S failed: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn open_profile_accepts_open_ports_and_refuses_others() {
    skip_unless_lab!("open_profile_accepts_open_ports_and_refuses_others");
    let host = LabHost::start(LabConfig::new(Profile::Open)).expect("lab starts");
    let truth = host.truth();
    for ip in both_families(&host) {
        for port in [22, 443] {
            assert_eq!(truth.expected(port), ExpectedState::Open);
            connect(ip, port, Duration::from_secs(2))
                .unwrap_or_else(|e| panic!("connect {ip} port {port}: {e}"));
        }
        for port in [23, 8081] {
            assert_eq!(truth.expected(port), ExpectedState::Closed);
            let err = connect(ip, port, Duration::from_secs(2)).expect_err("port is closed");
            assert_eq!(err.kind(), ErrorKind::ConnectionRefused, "{ip} port {port}");
        }
    }
    assert!(
        ns_rules(host.namespace(), "iptables")
            .lines()
            .all(|l| !l.contains("DROP"))
    );
}

#[test]
fn firewalled_profile_opens_rejects_and_filters() {
    skip_unless_lab!("firewalled_profile_opens_rejects_and_filters");
    let host = LabHost::start(LabConfig::new(Profile::Firewalled)).expect("lab starts");
    let truth = host.truth();
    assert_eq!(truth.expected(80), ExpectedState::Open);
    assert_eq!(truth.expected(113), ExpectedState::Closed);
    assert_eq!(truth.expected(23), ExpectedState::Filtered);
    for ip in both_families(&host) {
        connect(ip, 80, Duration::from_secs(2)).unwrap_or_else(|e| panic!("connect {ip}:80: {e}"));
        let err = connect(ip, 113, Duration::from_secs(2)).expect_err("reject port");
        assert_eq!(err.kind(), ErrorKind::ConnectionRefused, "{ip} port 113");
        let err = connect(ip, 23, Duration::from_secs(1)).expect_err("filtered port");
        assert_eq!(err.kind(), ErrorKind::TimedOut, "{ip} port 23");
    }
    // The rules are there for both families.
    assert!(ns_rules(host.namespace(), "iptables").contains("-P INPUT DROP"));
    let v6 = ns_rules(host.namespace(), "ip6tables");
    assert!(v6.contains("-P INPUT DROP"));
    assert!(v6.contains("ipv6-icmp"));
}

#[test]
fn lossy_profile_has_statistic_rule_and_open_ports_connect() {
    skip_unless_lab!("lossy_profile_has_statistic_rule_and_open_ports_connect");
    let host = LabHost::start(LabConfig::new(Profile::Lossy)).expect("lab starts");
    assert!(ns_rules(host.namespace(), "iptables").contains("statistic"));
    assert!(ns_rules(host.namespace(), "ip6tables").contains("statistic"));
    assert_eq!(host.loss_probability(), 0.02);
    for ip in both_families(&host) {
        for port in [22, 3306, 65535] {
            let connected = (0..5).any(|_| connect(ip, port, Duration::from_secs(2)).is_ok());
            assert!(connected, "{ip} port {port} never connected in 5 tries");
        }
    }
}

#[test]
fn drop_removes_namespace_and_veth() {
    skip_unless_lab!("drop_removes_namespace_and_veth");
    let host = LabHost::start(LabConfig::new(Profile::Firewalled)).expect("lab starts");
    let namespace = host.namespace().to_owned();
    let host_if = host.host_interface().to_owned();
    assert!(namespace.starts_with("pglab-"));
    assert!(lists_namespace(&netns_list(), &namespace));
    assert!(
        std::path::Path::new("/sys/class/net")
            .join(&host_if)
            .exists()
    );
    drop(host);
    assert!(
        !lists_namespace(&netns_list(), &namespace),
        "{namespace} still listed"
    );
    assert!(
        !std::path::Path::new("/sys/class/net")
            .join(&host_if)
            .exists()
    );
}

#[test]
fn two_hosts_at_once_are_independent() {
    skip_unless_lab!("two_hosts_at_once_are_independent");
    let a = LabHost::start(LabConfig::new(Profile::Open).open_ports([80])).expect("lab a");
    let b = LabHost::start(LabConfig::new(Profile::Open).open_ports([81])).expect("lab b");
    assert_ne!(a.namespace(), b.namespace());
    assert_ne!(a.ipv4(), b.ipv4());
    assert_ne!(a.ipv6(), b.ipv6());
    assert_ne!(a.host_ipv4(), b.host_ipv4());
    assert_ne!(a.host_interface(), b.host_interface());
    assert_ne!(a.target_mac(), b.target_mac());
    for (host, open, closed) in [(&a, 80, 81), (&b, 81, 80)] {
        for ip in both_families(host) {
            connect(ip, open, Duration::from_secs(2))
                .unwrap_or_else(|e| panic!("{ip}:{open}: {e}"));
            let err = connect(ip, closed, Duration::from_secs(2)).expect_err("closed");
            assert_eq!(err.kind(), ErrorKind::ConnectionRefused);
        }
    }
}

#[test]
fn addresses_are_lab_addresses() {
    skip_unless_lab!("addresses_are_lab_addresses");
    let host = LabHost::start(LabConfig::new(Profile::Open).open_ports([22])).expect("lab starts");
    for ip in [
        IpAddr::V4(host.ipv4()),
        IpAddr::V4(host.host_ipv4()),
        IpAddr::V6(host.ipv6()),
        IpAddr::V6(host.host_ipv6()),
    ] {
        assert!(in_lab_range(ip), "{ip}");
    }
    let o = host.ipv4().octets();
    let h = host.host_ipv4().octets();
    assert_eq!(o[..3], h[..3]);
    assert_eq!((h[3] % 4, o[3] % 4), (1, 2));
    let mac = host.target_mac();
    assert_eq!(mac.len(), 17, "{mac}");
    assert_eq!(mac.matches(':').count(), 5, "{mac}");
    assert!(host.host_interface().starts_with("pgh"));
    assert!(host.host_interface().len() <= 15);
}

#[test]
fn greeting_is_sent() {
    skip_unless_lab!("greeting_is_sent");
    let banner = b"SSH-2.0-portgate-lab\r\n".to_vec();
    let config = LabConfig::new(Profile::Open)
        .open_ports([22, 80])
        .greeting(22, banner.clone());
    let host = LabHost::start(config).expect("lab starts");
    for ip in both_families(&host) {
        let mut stream = connect(ip, 22, Duration::from_secs(2)).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(2)))
            .expect("timeout");
        let mut got = Vec::new();
        stream.read_to_end(&mut got).expect("read banner");
        assert_eq!(got, banner);
        // Port without greeting: closes without sending anything.
        let mut stream = connect(ip, 80, Duration::from_secs(2)).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(2)))
            .expect("timeout");
        let mut got = Vec::new();
        let _ = stream.read_to_end(&mut got);
        assert!(got.is_empty());
    }
}

#[test]
fn host_without_open_ports_starts() {
    skip_unless_lab!("host_without_open_ports_starts");
    let host = LabHost::start(
        LabConfig::new(Profile::Firewalled)
            .open_ports([])
            .reject_ports([113]),
    )
    .expect("lab starts");
    assert!(host.truth().open.is_empty());
    let err = connect(host.ipv4(), 113, Duration::from_secs(2)).expect_err("reject port");
    assert_eq!(err.kind(), ErrorKind::ConnectionRefused);
}

#[test]
fn clean_removes_namespaces_of_dead_processes_only() {
    skip_unless_lab!("clean_removes_namespaces_of_dead_processes_only");
    // No pid can be this large (pid_max is at most 2^22).
    let stale = "pglab-4999999-0";
    let status = Command::new("ip")
        .args(["netns", "add", stale])
        .status()
        .expect("ip runs");
    assert!(status.success());
    let live = LabHost::start(LabConfig::new(Profile::Open).open_ports([22])).expect("lab starts");
    let removed = portgate_lab::clean_stale_namespaces().expect("clean works");
    assert!(removed.iter().any(|n| n == stale), "{removed:?}");
    assert!(!removed.iter().any(|n| n == live.namespace()));
    let listing = netns_list();
    assert!(!lists_namespace(&listing, stale));
    assert!(lists_namespace(&listing, live.namespace()));
}

#[test]
fn invalid_config_is_rejected_before_touching_anything() {
    let err = LabHost::start(LabConfig::new(Profile::Firewalled).reject_ports([22]))
        .expect_err("22 is open and rejecting");
    assert!(
        matches!(err, portgate_lab::LabError::InvalidConfig(_)),
        "{err}"
    );
}

#[test]
fn udp_services_answer_on_both_families() {
    skip_unless_udp_services!("udp_services_answer_on_both_families");
    let host =
        LabHost::start(LabConfig::new(Profile::Open).udp_services(true)).expect("lab starts");
    let truth = host.truth();
    assert_eq!(
        truth.udp_open.iter().copied().collect::<Vec<_>>(),
        UDP_SERVICE_PORTS
    );
    for port in UDP_SERVICE_PORTS {
        assert_eq!(truth.expected_udp(port), ExpectedUdpState::Open);
    }
    let pids = host.udp_service_pids();
    let programs: Vec<&str> = pids.iter().map(|(name, _)| *name).collect();
    assert_eq!(programs, ["dnsmasq", "chronyd", "snmpd"]);
    for (name, pid) in &pids {
        assert!(process_is(*pid, name), "{name} runs as pid {pid}");
    }
    let timeout = Duration::from_secs(2);
    for ip in both_families(&host) {
        let dns = hex(DNS_QUERY);
        let reply = udp_exchange(ip, 53, &dns, timeout).unwrap_or_else(|e| panic!("DNS {ip}: {e}"));
        assert!(reply.len() >= 12, "DNS reply from {ip}: {reply:02x?}");
        assert_eq!(reply[..2], dns[..2], "same ID");
        assert_ne!(reply[2] & 0x80, 0, "QR set");

        let reply = udp_exchange(ip, 123, &hex(NTP_QUERY), timeout)
            .unwrap_or_else(|e| panic!("NTP {ip}: {e}"));
        assert_eq!(reply.len(), 48, "NTP reply from {ip}");
        assert_eq!(reply[0] & 0x07, 4, "server mode");
        assert_eq!(
            reply[24..32],
            hex(NTP_QUERY)[40..48],
            "origin = our transmit"
        );

        for query in [SNMP_V1_QUERY, SNMP_V2C_QUERY] {
            let reply = udp_exchange(ip, 161, &hex(query), timeout)
                .unwrap_or_else(|e| panic!("SNMP {ip}: {e}"));
            assert_eq!(reply[0], 0x30, "SNMP message from {ip}");
            assert!(contains(&reply, b"public"));
            assert!(
                contains(&reply, portgate_lab::SNMP_SYS_DESCR.as_bytes()),
                "sysDescr in {reply:02x?}"
            );
        }

        // A port without a service is still closed, and TCP 53 (where
        // dnsmasq also listens) keeps the TCP ground truth: closed.
        let err = udp_exchange(ip, 1000, b"x", timeout).expect_err("closed UDP port");
        assert_eq!(err.kind(), ErrorKind::ConnectionRefused, "{ip} UDP 1000");
        assert_eq!(truth.expected(53), ExpectedState::Closed);
        let err = connect(ip, 53, timeout).expect_err("TCP 53 looks closed");
        assert_eq!(err.kind(), ErrorKind::ConnectionRefused, "{ip} TCP 53");
    }
    let namespace = host.namespace().to_owned();
    drop(host);
    for (name, pid) in pids {
        assert!(!process_is(pid, name), "{name} (pid {pid}) still runs");
    }
    assert!(!lists_namespace(&netns_list(), &namespace));
}

#[test]
fn closed_udp_port_is_refused_on_open_profile() {
    skip_unless_lab!("closed_udp_port_is_refused_on_open_profile");
    let host = LabHost::start(LabConfig::new(Profile::Open).open_ports([22])).expect("lab starts");
    let truth = host.truth();
    assert!(truth.udp_open.is_empty());
    for ip in both_families(&host) {
        for port in [9, 53, 40000] {
            assert_eq!(truth.expected_udp(port), ExpectedUdpState::Closed);
            let err = udp_exchange(ip, port, b"portgate", Duration::from_secs(2))
                .expect_err("closed UDP port");
            assert_eq!(err.kind(), ErrorKind::ConnectionRefused, "{ip} UDP {port}");
        }
    }
}

#[test]
fn firewalled_udp_drops_and_rejects() {
    skip_unless_lab!("firewalled_udp_drops_and_rejects");
    let host = LabHost::start(LabConfig::new(Profile::Firewalled)).expect("lab starts");
    let truth = host.truth();
    assert_eq!(
        truth.udp_reject.iter().copied().collect::<Vec<_>>(),
        portgate_lab::DEFAULT_UDP_REJECT_PORTS
    );
    assert_eq!(truth.expected_udp(1000), ExpectedUdpState::Closed);
    assert_eq!(truth.expected_udp(69), ExpectedUdpState::OpenFiltered);
    for ip in both_families(&host) {
        let err = udp_exchange(ip, 69, b"portgate", Duration::from_secs(1))
            .expect_err("dropped UDP port");
        assert!(is_timeout(&err), "{ip} UDP 69: {err}");
        for port in [1000, 1001] {
            let err = udp_exchange(ip, port, b"portgate", Duration::from_secs(2))
                .expect_err("rejecting UDP port");
            assert_eq!(err.kind(), ErrorKind::ConnectionRefused, "{ip} UDP {port}");
        }
    }
    let v4 = ns_rules(host.namespace(), "iptables");
    assert!(
        v4.contains("-p udp -m udp --dport 1000 -j REJECT --reject-with icmp-port-unreachable")
    );
    let v6 = ns_rules(host.namespace(), "ip6tables");
    assert!(
        v6.contains("-p udp -m udp --dport 1000 -j REJECT --reject-with icmp6-port-unreachable")
    );
}

#[test]
fn firewalled_udp_services_pass_the_firewall() {
    skip_unless_udp_services!("firewalled_udp_services_pass_the_firewall");
    let host = LabHost::start(
        LabConfig::new(Profile::Firewalled)
            .udp_services(true)
            .udp_reject_ports([2049]),
    )
    .expect("lab starts");
    let truth = host.truth();
    assert_eq!(truth.expected_udp(2049), ExpectedUdpState::Closed);
    assert_eq!(truth.expected_udp(1000), ExpectedUdpState::OpenFiltered);
    assert_eq!(truth.expected(53), ExpectedState::Filtered);
    let timeout = Duration::from_secs(2);
    for ip in both_families(&host) {
        udp_exchange(ip, 53, &hex(DNS_QUERY), timeout).unwrap_or_else(|e| panic!("DNS {ip}: {e}"));
        let ntp = udp_exchange(ip, 123, &hex(NTP_QUERY), timeout)
            .unwrap_or_else(|e| panic!("NTP {ip}: {e}"));
        assert_eq!(ntp.len(), 48);
        udp_exchange(ip, 161, &hex(SNMP_V2C_QUERY), timeout)
            .unwrap_or_else(|e| panic!("SNMP {ip}: {e}"));
        let err = udp_exchange(ip, 2049, b"x", timeout).expect_err("reject port");
        assert_eq!(err.kind(), ErrorKind::ConnectionRefused, "{ip} UDP 2049");
        let err = udp_exchange(ip, 1000, b"x", Duration::from_secs(1)).expect_err("dropped");
        assert!(is_timeout(&err), "{ip} UDP 1000: {err}");
        let err = connect(ip, 53, Duration::from_secs(1)).expect_err("TCP 53 filtered");
        assert_eq!(err.kind(), ErrorKind::TimedOut, "{ip} TCP 53");
    }
}

#[test]
fn icmp_ratelimit_is_applied_in_the_namespace() {
    skip_unless_lab!("icmp_ratelimit_is_applied_in_the_namespace");
    let host = LabHost::start(
        LabConfig::new(Profile::Open)
            .open_ports([22])
            .icmp_ratelimit_ms(0),
    )
    .expect("lab starts");
    assert_eq!(host.icmp_ratelimit_ms(), Some(0));
    for key in ["net.ipv4.icmp_ratelimit", "net.ipv6.icmp.ratelimit"] {
        let out = Command::new("ip")
            .args(["netns", "exec", host.namespace(), "sysctl", "-n", key])
            .output()
            .expect("sysctl runs");
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "0", "{key}");
    }
    // Without a rate limit every probe of a closed port is refused, well past
    // the default limit's burst.
    for ip in both_families(&host) {
        for port in 30000..30020 {
            let err =
                udp_exchange(ip, port, b"x", Duration::from_secs(1)).expect_err("closed UDP port");
            assert_eq!(err.kind(), ErrorKind::ConnectionRefused, "{ip} UDP {port}");
        }
    }
}

// ---------------------------------------------------------------------------
// Delay line.

/// Times `n` TCP handshakes to `ip:port` (each connection closed at once);
/// returns the round-trip times in milliseconds.
fn handshake_rtts_ms(ip: IpAddr, port: u16, n: usize, timeout: Duration) -> Vec<f64> {
    (0..n)
        .map(|i| {
            let start = Instant::now();
            connect(ip, port, timeout)
                .unwrap_or_else(|e| panic!("handshake {i} with {ip}:{port}: {e}"));
            start.elapsed().as_secs_f64() * 1e3
        })
        .collect()
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mid = sorted.len() / 2;
    if sorted.len().is_multiple_of(2) {
        (sorted[mid - 1] + sorted[mid]) / 2.0
    } else {
        sorted[mid]
    }
}

/// The delay line's counters once it holds nothing and nothing new arrived
/// for a while (TCP closes trickle on after the last connect).
fn idle_stats(host: &LabHost) -> DelayStats {
    let settle = host
        .delay_config()
        .map_or(Duration::ZERO, |c| c.delay + c.jitter)
        + Duration::from_millis(150);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut last = host.delay_stats().expect("host has a delay line");
    loop {
        std::thread::sleep(settle);
        let now = host.delay_stats().expect("host has a delay line");
        if (now.is_idle() && now.packets == last.packets) || Instant::now() > deadline {
            return now;
        }
        last = now;
    }
}

/// The counters add up, nothing was lost in the kernel and nothing failed.
fn assert_consistent(stats: &DelayStats) {
    assert!(stats.is_idle(), "still holding packets: {stats:?}");
    assert_eq!(
        stats.released + stats.dropped_by_loss,
        stats.packets,
        "{stats:?}"
    );
    assert_eq!(stats.kernel_dropped, 0, "{stats:?}");
    assert_eq!(stats.verdict_errors, 0, "{stats:?}");
    assert_eq!(stats.error, None, "{stats:?}");
}

/// ≥ 20 handshakes per family through a delay line of `delay_ms`: the median
/// RTT is within ±2 ms of it; a closed port answers RST after the delay too.
/// Runs a timing measurement up to three times: on a 2-core machine running other tests,
/// one measurement can be disturbed (a release a few ms late); three in a row cannot pass
/// by luck, and each failure is printed.
fn measured(name: &str, measure: impl Fn() + std::panic::RefUnwindSafe) {
    for attempt in 1..=3 {
        match std::panic::catch_unwind(&measure) {
            Ok(()) => return,
            Err(_) if attempt < 3 => {
                eprintln!("{name}: attempt {attempt} disturbed, measuring again")
            }
            Err(e) => std::panic::resume_unwind(e),
        }
    }
}

fn delay_sets_rtt(delay_ms: u64) {
    measured(&format!("delay {delay_ms} ms"), || {
        delay_sets_rtt_once(delay_ms)
    });
}

fn delay_sets_rtt_once(delay_ms: u64) {
    let delay = Duration::from_millis(delay_ms);
    let host = LabHost::start(
        LabConfig::new(Profile::Open)
            .open_ports([22])
            .delay(DelayConfig::new(delay)),
    )
    .expect("lab starts");
    let timeout = delay + Duration::from_secs(2);
    for ip in both_families(&host) {
        // The first handshake of IPv6 may wait for neighbour discovery.
        let _ = connect(ip, 22, timeout);
        let rtts = handshake_rtts_ms(ip, 22, 20, timeout);
        let med = median(&rtts);
        println!(
            "delay {delay_ms} ms, {ip}: median handshake RTT {med:.3} ms over 20 ({rtts:.2?})"
        );
        assert!(
            (med - delay_ms as f64).abs() <= 2.0,
            "{ip}: median RTT {med:.3} ms, configured {delay_ms} ms: {rtts:?}"
        );
        for port in [23, 8081] {
            // Three refusals per port; their median is held to the same ±2 ms.
            let took: Vec<f64> = (0..3)
                .map(|_| {
                    let start = Instant::now();
                    let err = connect(ip, port, timeout).expect_err("closed port");
                    assert_eq!(err.kind(), ErrorKind::ConnectionRefused, "{ip} port {port}");
                    start.elapsed().as_secs_f64() * 1e3
                })
                .collect();
            let med = median(&took);
            assert!(
                (med - delay_ms as f64).abs() <= 2.0,
                "{ip} port {port}: RST after {med:.3} ms (median of {took:.2?}), configured {delay_ms} ms"
            );
        }
    }
    let stats = idle_stats(&host);
    println!("delay {delay_ms} ms: {stats:?}");
    assert_consistent(&stats);
    assert_eq!(stats.dropped_by_loss, 0);
    // Per family: 27 SYNs at least (21 handshakes, 6 refused), plus ACKs.
    assert!(stats.packets >= 54, "{stats:?}");
    // Single releases can be a few ms late when the two cores are busy
    // (the tests run in parallel); on average the line must be punctual.
    assert!(stats.mean_lateness < Duration::from_millis(1), "{stats:?}");
    assert!(
        stats.bottleneck(Duration::from_millis(10)).is_none(),
        "{stats:?}"
    );
}

#[test]
fn delay_line_20ms_sets_the_round_trip_time() {
    skip_unless_delay!("delay_line_20ms_sets_the_round_trip_time", alone);
    delay_sets_rtt(20);
}

#[test]
fn delay_line_80ms_sets_the_round_trip_time() {
    skip_unless_delay!("delay_line_80ms_sets_the_round_trip_time", alone);
    delay_sets_rtt(80);
}

#[test]
fn delay_line_200ms_sets_the_round_trip_time() {
    skip_unless_delay!("delay_line_200ms_sets_the_round_trip_time", alone);
    delay_sets_rtt(200);
}

#[test]
fn delay_line_jitter_spreads_round_trips() {
    skip_unless_delay!("delay_line_jitter_spreads_round_trips", alone);
    measured("jitter", jitter_spreads_round_trips);
}

fn jitter_spreads_round_trips() {
    let host = LabHost::start(
        LabConfig::new(Profile::Open)
            .open_ports([22])
            .delay(DelayConfig::new(Duration::from_millis(50)).jitter(Duration::from_millis(10))),
    )
    .expect("lab starts");
    let ip = IpAddr::V4(host.ipv4());
    let rtts = handshake_rtts_ms(ip, 22, 40, Duration::from_secs(2));
    let (min, max) = rtts
        .iter()
        .fold((f64::MAX, f64::MIN), |(lo, hi), &r| (lo.min(r), hi.max(r)));
    println!(
        "jitter 50±10 ms: RTTs {min:.3}..{max:.3} ms, median {:.3} ms",
        median(&rtts)
    );
    // Never early. Late by the loop's wake-up and the veth: a single release can be a few
    // ms late when both cores are busy (the tests run in parallel), as above; on average
    // the line must be punctual, which its own statistics say.
    assert!(min >= 40.0, "{rtts:?}");
    assert!(max <= 65.0, "{rtts:?}");
    assert!(max - min > 5.0, "spread {:.3} ms: {rtts:?}", max - min);
    let stats = idle_stats(&host);
    assert_consistent(&stats);
    assert!(stats.mean_lateness < Duration::from_millis(1), "{stats:?}");
}

#[test]
fn delay_line_path_loss_drops_about_half() {
    skip_unless_delay!("delay_line_path_loss_drops_about_half");
    let host = LabHost::start(
        LabConfig::new(Profile::Open)
            .open_ports([22])
            .delay(DelayConfig::new(Duration::from_millis(5)).loss(0.5)),
    )
    .expect("lab starts");
    let ip = IpAddr::V4(host.ipv4());
    // 200 attempts from 8 threads; a lost SYN is retransmitted only
    // after 1 s, so with a 150 ms timeout each loss is a failed attempt.
    let failures: usize = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..8)
            .map(|_| {
                scope.spawn(move || {
                    (0..25)
                        .filter(|_| match connect(ip, 22, Duration::from_millis(150)) {
                            Ok(_) => false,
                            Err(e) if e.kind() == ErrorKind::TimedOut => true,
                            Err(e) => panic!("unexpected connect error: {e}"),
                        })
                        .count()
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().expect("worker")).sum()
    });
    println!("path loss 0.5: {failures} of 200 connects failed");
    assert!((60..=140).contains(&failures), "{failures} of 200 failed");
    let stats = idle_stats(&host);
    println!("path loss 0.5: {stats:?}");
    assert_consistent(&stats);
    let fraction = stats.dropped_by_loss as f64 / stats.packets as f64;
    assert!((0.35..=0.65).contains(&fraction), "{stats:?}");
}

#[test]
fn delay_line_rate_ceiling_spaces_replies() {
    skip_unless_delay!("delay_line_rate_ceiling_spaces_replies", alone);
    // 50 packets/s: one every 20 ms. Twenty simultaneous connects to a
    // closed port get their RSTs spread over at least ~380 ms.
    let host = LabHost::start(
        LabConfig::new(Profile::Open)
            .open_ports([22])
            .delay(DelayConfig::new(Duration::from_millis(1)).rate_pps(50)),
    )
    .expect("lab starts");
    let ip = IpAddr::V4(host.ipv4());
    let start = Instant::now();
    let mut done: Vec<f64> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..20)
            .map(|_| {
                scope.spawn(move || {
                    let err = connect(ip, 23, Duration::from_secs(3)).expect_err("closed");
                    assert_eq!(err.kind(), ErrorKind::ConnectionRefused);
                    start.elapsed().as_secs_f64() * 1e3
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().expect("worker"))
            .collect()
    });
    done.sort_by(f64::total_cmp);
    let spread = done[done.len() - 1] - done[0];
    println!("rate 50 pps: 20 RSTs over {spread:.1} ms");
    assert!(spread >= 300.0, "RSTs at {done:?} ms");
    let stats = idle_stats(&host);
    assert_consistent(&stats);
    assert!(stats.max_queue >= 10, "the queue grew: {stats:?}");
}

#[test]
fn delay_line_stops_cleanly() {
    skip_unless_delay!("delay_line_stops_cleanly");
    let mut host = LabHost::start(
        LabConfig::new(Profile::Firewalled)
            .open_ports([22])
            .delay(DelayConfig::new(Duration::from_millis(300))),
    )
    .expect("lab starts");
    let namespace = host.namespace().to_owned();
    for tool in ["iptables", "ip6tables"] {
        let rules = Command::new("ip")
            .args(["netns", "exec", &namespace, tool, "-t", "mangle", "-S"])
            .output()
            .expect("iptables runs");
        let rules = String::from_utf8_lossy(&rules.stdout);
        let want = format!(
            "-A PREROUTING -i {} -j NFQUEUE --queue-num 0",
            host.ns_interface()
        );
        assert!(rules.contains(&want), "{tool}: {rules}");
        // The profile's filter rules are still there.
        assert!(ns_rules(&namespace, tool).contains("-P INPUT DROP"));
    }
    assert!(host.delay_line().is_some_and(|d| d.is_running()));
    // The firewall's reject and filter still hold through the delay line.
    let err = connect(host.ipv4(), 23, Duration::from_millis(800)).expect_err("filtered");
    assert_eq!(err.kind(), ErrorKind::TimedOut);
    // A handshake in flight when the line stops: its SYN is released at
    // once instead of after 300 ms.
    let ip = IpAddr::V4(host.ipv4());
    let pending = std::thread::spawn(move || {
        let start = Instant::now();
        connect(ip, 22, Duration::from_secs(2)).map(|_| start.elapsed())
    });
    std::thread::sleep(Duration::from_millis(100));
    let stats = host.stop_delay().expect("had a delay line");
    let took = pending.join().expect("connect thread").expect("connects");
    assert!(took < Duration::from_millis(250), "took {took:?}");
    assert!(stats.flushed_at_stop >= 1, "{stats:?}");
    assert_consistent(&stats);
    assert_eq!(host.delay_stats(), Some(stats), "final counters stay");
    assert!(!host.delay_line().is_some_and(|d| d.is_running()));
    for tool in ["iptables", "ip6tables"] {
        let rules = Command::new("ip")
            .args(["netns", "exec", &namespace, tool, "-t", "mangle", "-S"])
            .output()
            .expect("iptables runs");
        assert!(!String::from_utf8_lossy(&rules.stdout).contains("NFQUEUE"));
    }
    // No delay any more.
    let rtts = handshake_rtts_ms(ip, 22, 5, Duration::from_secs(1));
    assert!(median(&rtts) < 5.0, "{rtts:?}");
    // A second stop is harmless; dropping the host removes the namespace.
    assert!(host.stop_delay().is_some());
    drop(host);
    assert!(!lists_namespace(&netns_list(), &namespace));
}

#[test]
fn dropping_a_host_with_held_packets_tears_down() {
    skip_unless_delay!("dropping_a_host_with_held_packets_tears_down");
    let host = LabHost::start(
        LabConfig::new(Profile::Open)
            .open_ports([22])
            .delay(DelayConfig::new(Duration::from_secs(5))),
    )
    .expect("lab starts");
    let namespace = host.namespace().to_owned();
    let ip = IpAddr::V4(host.ipv4());
    let _pending = std::thread::spawn(move || connect(ip, 22, Duration::from_millis(500)));
    std::thread::sleep(Duration::from_millis(100));
    assert!(host.delay_stats().is_some_and(|s| s.queued >= 1));
    let start = Instant::now();
    drop(host);
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "teardown took {:?}",
        start.elapsed()
    );
    assert!(!lists_namespace(&netns_list(), &namespace));
}

#[test]
fn invalid_delay_is_rejected_before_touching_anything() {
    let err = LabHost::start(
        LabConfig::new(Profile::Open)
            .delay(DelayConfig::new(Duration::from_millis(5)).jitter(Duration::from_millis(10))),
    )
    .expect_err("jitter larger than the delay");
    assert!(
        matches!(err, portgate_lab::LabError::InvalidConfig(_)),
        "{err}"
    );
}

/// Sends UDP datagrams from inside the lab namespace to `target` (the
/// root-side veth address) at `rate` packets/s for `duration`; returns how
/// many were sent.
fn blast_from_namespace(namespace: &str, target: SocketAddr, rate: u64, duration: Duration) -> u64 {
    let ns_path = format!("/var/run/netns/{namespace}");
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let ns = std::fs::File::open(&ns_path).expect("open namespace");
                nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
                let socket = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).expect("bind");
                // Held packets count against the send buffer until released.
                nix::sys::socket::setsockopt(
                    &socket,
                    nix::sys::socket::sockopt::SndBufForce,
                    &(256 << 20),
                )
                .expect("SO_SNDBUFFORCE");
                socket.connect(target).expect("connect");
                let start = Instant::now();
                let mut sent = 0u64;
                while start.elapsed() < duration {
                    // Pace in 1 ms steps.
                    let due = (start.elapsed().as_secs_f64() * rate as f64) as u64;
                    while sent < due {
                        if socket.send(b"portgate-delay-bench").is_ok() {
                            sent += 1;
                        }
                    }
                    std::thread::sleep(Duration::from_micros(500));
                }
                sent
            })
            .join()
            .expect("blaster thread")
    })
}

/// How many packets/s the delay line keeps up with. A benchmark, not a
/// check: `cargo test -p portgate-lab --release --test lab -- --ignored
/// --nocapture delay_line_throughput`.
#[test]
#[ignore = "benchmark; run with --ignored --nocapture (best with --release)"]
fn delay_line_throughput() {
    skip_unless_delay!("delay_line_throughput", alone);
    for rate in [50_000u64, 100_000, 150_000, 200_000, 300_000] {
        let host = LabHost::start(
            LabConfig::new(Profile::Open)
                .open_ports([22])
                .delay(DelayConfig::new(Duration::from_millis(20))),
        )
        .expect("lab starts");
        let sink = UdpSocket::bind((host.host_ipv4(), 0)).expect("sink");
        nix::sys::socket::setsockopt(&sink, nix::sys::socket::sockopt::RcvBufForce, &(64 << 20))
            .expect("SO_RCVBUFFORCE");
        let target = sink.local_addr().expect("sink address");
        assert!(in_lab_range(target.ip()));
        let before = host.delay_stats().expect("delay line");
        let sent = blast_from_namespace(host.namespace(), target, rate, Duration::from_secs(3));
        let stats = idle_stats(&host);
        let took = 3.0;
        println!(
            "offered {rate} pps: sent {} pps, through the line {} pps; kernel_dropped {}, \
             max_queue {}, lateness mean {:?} max {:?}, max read lag {:?}",
            sent as f64 / took,
            (stats.packets - before.packets) as f64 / took,
            stats.kernel_dropped,
            stats.max_queue,
            stats.mean_lateness,
            stats.max_lateness,
            stats.max_read_lag,
        );
        if let Some(reason) = stats.bottleneck(Duration::from_millis(2)) {
            println!("  -> bottleneck: {reason}");
        }
    }
}

/// Lab networks: one namespace answering for a whole prefix.
mod network {
    use std::collections::BTreeSet;
    use std::io::ErrorKind;
    use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
    use std::process::Command;
    use std::time::{Duration, Instant};

    use portgate_lab::{
        ExpectedState, HostKind, LabError, LabNetwork, NetworkConfig, in_lab_range,
        network_skip_reason,
    };

    /// Like `skip_unless_lab!`, for the lab networks.
    macro_rules! skip_unless_network {
        ($name:literal) => {
            if let Some(reason) = network_skip_reason() {
                portgate_test_support::skip($name, reason);
                return;
            }
            let _lab = super::shared_lab();
        };
    }

    /// What a connect from the root namespace observes at `ip:port`.
    fn observe(network: &LabNetwork, ip: Ipv4Addr, port: u16, timeout: Duration) -> ExpectedState {
        assert!(
            network.prefix().contains(ip) && in_lab_range(IpAddr::V4(ip)),
            "tests only connect to the network's own addresses"
        );
        match TcpStream::connect_timeout(&SocketAddr::from((ip, port)), timeout) {
            Ok(_) => ExpectedState::Open,
            Err(e) if e.kind() == ErrorKind::ConnectionRefused => ExpectedState::Closed,
            Err(e) if matches!(e.kind(), ErrorKind::TimedOut | ErrorKind::WouldBlock) => {
                ExpectedState::Filtered
            }
            Err(e) => panic!("connect {ip}:{port}: {e}"),
        }
    }

    /// Probes every `(ip, port)` at once (300 ms timeout); a mismatch is
    /// retried twice with a longer timeout, so a busy machine cannot turn an
    /// answer into "filtered". Returns the remaining mismatches.
    fn mismatches(network: &LabNetwork, probes: &[(Ipv4Addr, u16)]) -> Vec<String> {
        std::thread::scope(|scope| {
            let handles: Vec<_> = probes
                .iter()
                .map(|&(ip, port)| {
                    scope.spawn(move || {
                        let expected = network.expected(ip, port);
                        let mut seen = observe(network, ip, port, Duration::from_millis(300));
                        for _ in 0..2 {
                            if seen == expected {
                                break;
                            }
                            seen = observe(network, ip, port, Duration::from_secs(1));
                        }
                        (seen != expected).then(|| {
                            let kind = network.truth().host(ip).map(|h| h.kind);
                            format!("{ip}:{port} ({kind:?}): expected {expected}, saw {seen}")
                        })
                    })
                })
                .collect();
            handles
                .into_iter()
                .filter_map(|h| h.join().expect("probe thread"))
                .collect()
        })
    }

    fn root_routes() -> String {
        let out = Command::new("ip")
            .args(["-4", "route", "show"])
            .output()
            .expect("ip route runs");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn namespace_exists(name: &str) -> bool {
        std::path::Path::new("/var/run/netns").join(name).exists()
    }

    #[test]
    fn network_hosts_answer_as_the_truth_says() {
        skip_unless_network!("network_hosts_answer_as_the_truth_says");
        let network =
            LabNetwork::start(NetworkConfig::new().hosts(256).seed(2024)).expect("network starts");
        let prefix = network.prefix();
        assert_eq!(prefix.len(), 24);
        assert_eq!(prefix.network().octets()[..2], [198, 19]);
        let route = format!(
            "{prefix} via {} dev {}",
            network.gateway_ipv4(),
            network.host_interface()
        );
        assert!(root_routes().contains(&route), "{route} missing");

        let truth = network.truth();
        let listening: BTreeSet<u16> = network.listening_ports().iter().copied().collect();
        let mut probes = Vec::new();
        for kind in HostKind::ALL {
            let hosts: Vec<_> = truth.hosts.iter().filter(|(_, h)| h.kind == kind).collect();
            assert!(!hosts.is_empty(), "no {kind} host among 256");
            // Spread over the prefix: up to 6 per kind.
            let step = (hosts.len() / 6).max(1);
            for (ip, host) in hosts.into_iter().step_by(step).take(6) {
                let mut ports: Vec<u16> = host.open.iter().take(2).copied().collect();
                ports.extend(host.reject.iter().take(2));
                // A port with a listener (open elsewhere) but not open here.
                ports.extend(listening.iter().find(|p| !host.open.contains(p)));
                // A port outside the varying ports.
                ports.push(12);
                probes.extend(ports.into_iter().map(|port| (*ip, port)));
            }
        }
        let states: BTreeSet<String> = probes
            .iter()
            .map(|(ip, port)| network.expected(*ip, *port).to_string())
            .collect();
        assert_eq!(states.len(), 3, "the sample covers open, closed, filtered");
        let started = Instant::now();
        let wrong = mismatches(&network, &probes);
        println!(
            "{} probes of {prefix} in {:?}",
            probes.len(),
            started.elapsed()
        );
        assert!(wrong.is_empty(), "mismatches:\n{}", wrong.join("\n"));
    }

    #[test]
    fn network_truth_depends_on_the_seed_and_teardown_is_complete() {
        skip_unless_network!("network_truth_depends_on_the_seed_and_teardown_is_complete");
        let config = NetworkConfig::new().hosts(256);
        let a = LabNetwork::start(config.clone().seed(7)).expect("network a");
        let b = LabNetwork::start(config.clone().seed(7)).expect("network b");
        let c = LabNetwork::start(config.seed(8)).expect("network c");
        let prefixes = [a.prefix(), b.prefix(), c.prefix()];
        for (i, p) in prefixes.iter().enumerate() {
            for q in &prefixes[i + 1..] {
                assert!(
                    !p.contains(q.network()) && !q.contains(p.network()),
                    "{p} {q}"
                );
            }
        }
        // Same seed: the same truth host by host (at another prefix).
        assert!(a.truth().hosts.values().eq(b.truth().hosts.values()));
        assert_eq!(a.counts(), b.counts());
        // Another seed: another truth.
        assert!(!a.truth().hosts.values().eq(c.truth().hosts.values()));
        // b really is b: its first open service accepts, the same position
        // in a does too.
        let (ip_b, port) = b.truth().open_services().next().expect("an open port");
        let offset = b.prefix().offset_of(ip_b).expect("inside");
        let ip_a = a.prefix().nth(offset).expect("same size");
        for (network, ip) in [(&a, ip_a), (&b, ip_b)] {
            assert_eq!(
                observe(network, ip, port, Duration::from_secs(2)),
                ExpectedState::Open
            );
        }

        let names: Vec<(String, String, String)> = [&a, &b, &c]
            .iter()
            .map(|n| {
                (
                    n.namespace().to_owned(),
                    n.host_interface().to_owned(),
                    n.prefix().to_string(),
                )
            })
            .collect();
        drop((a, b, c));
        let routes = root_routes();
        for (namespace, host_if, prefix) in names {
            assert!(!namespace_exists(&namespace), "{namespace} still there");
            assert!(
                !std::path::Path::new("/sys/class/net")
                    .join(&host_if)
                    .exists(),
                "{host_if} still there"
            );
            assert!(!routes.contains(&prefix), "route to {prefix} still there");
        }
    }

    #[test]
    fn network_of_4096_hosts_starts_quickly() {
        skip_unless_network!("network_of_4096_hosts_starts_quickly");
        let config = NetworkConfig::new().seed(99);
        let started = Instant::now();
        let network = LabNetwork::start(config.clone()).expect("network starts");
        let took = started.elapsed();
        let counts = network.counts();
        println!(
            "4096-host network {} started in {took:?}: {counts:?}, {} listening ports, \
             {} open services",
            network.prefix(),
            network.listening_ports().len(),
            network.truth().open_services().count()
        );
        assert!(took < Duration::from_secs(10), "took {took:?}");
        assert_eq!(network.prefix().len(), 20);
        assert_eq!(network.truth().hosts.len(), 4096);
        for (kind, share) in [
            (HostKind::Dark, config.dark),
            (HostKind::RstOnly, config.rst_only),
            (HostKind::Firewalled, config.firewalled),
            (HostKind::Open, config.open),
        ] {
            let total = config.dark + config.rst_only + config.firewalled + config.open;
            let expected = 4096.0 * share / total;
            let got = f64::from(counts.get(kind));
            assert!(
                (got - expected).abs() < 4096.0 * 0.05,
                "{kind}: {got} hosts, expected about {expected}"
            );
        }
        // The top and bottom of the /20 answer too.
        let prefix = network.prefix();
        let probes: Vec<(Ipv4Addr, u16)> = [0, 1, 2047, 4094, 4095]
            .into_iter()
            .filter_map(|offset| prefix.nth(offset))
            .flat_map(|ip| {
                let host = network.truth().host(ip).expect("inside");
                let open = host.open.first().copied().unwrap_or(22);
                [(ip, open), (ip, 80)]
            })
            .collect();
        let wrong = mismatches(&network, &probes);
        assert!(wrong.is_empty(), "mismatches:\n{}", wrong.join("\n"));
    }

    #[test]
    fn invalid_network_config_is_rejected_before_touching_anything() {
        for config in [
            NetworkConfig::new().hosts(100),
            NetworkConfig::new().hosts(8192),
            NetworkConfig::new().ports([0]),
            NetworkConfig::new().open(-1.0),
        ] {
            assert!(
                matches!(
                    LabNetwork::start(config.clone()),
                    Err(LabError::InvalidConfig(_))
                ),
                "{config:?} must be invalid"
            );
        }
    }
}
