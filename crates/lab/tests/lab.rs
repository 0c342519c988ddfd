//! Integration tests: real namespaces, real listeners, real iptables rules.
//! Every test skips (prints `SKIP <name>: <reason>`) when not run as root.

use std::io::{ErrorKind, Read};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, UdpSocket};
use std::process::Command;
use std::time::Duration;

use portgate_lab::{
    ExpectedState, ExpectedUdpState, LabConfig, LabHost, Profile, UDP_SERVICE_PORTS, in_lab_range,
    skip_reason, udp_services_skip_reason,
};

macro_rules! skip_unless_lab {
    ($name:literal) => {
        if let Some(reason) = skip_reason() {
            println!("SKIP {}: {reason}", $name);
            return;
        }
    };
}

/// Skips unless the lab can run with its UDP services (root, tools, daemons).
macro_rules! skip_unless_udp_services {
    ($name:literal) => {
        if let Some(reason) = udp_services_skip_reason() {
            println!("SKIP {}: {reason}", $name);
            return;
        }
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
    socket.set_read_timeout(Some(timeout))?;
    socket.send(payload)?;
    let mut buf = vec![0u8; 4096];
    let n = socket.recv(&mut buf)?;
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
