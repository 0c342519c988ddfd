//! Integration tests: real namespaces, real listeners, real iptables rules.
//! Every test skips (prints `SKIP <name>: <reason>`) when not run as root.

use std::io::{ErrorKind, Read};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::process::Command;
use std::time::Duration;

use portgate_lab::{ExpectedState, LabConfig, LabHost, Profile, in_lab_range, skip_reason};

macro_rules! skip_unless_lab {
    ($name:literal) => {
        if let Some(reason) = skip_reason() {
            println!("SKIP {}: {reason}", $name);
            return;
        }
    };
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
