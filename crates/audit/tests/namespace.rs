//! Network namespaces: a listener inside one is invisible in the root namespace's socket
//! tables, though its process is visible; `--netns` audits it from inside. And inside
//! against outside: a real scan of a lab host, compared with the audit of its namespace.
//! Every test needs root and skips without it (through `portgate_test_support::skip`: a
//! failure under strict mode).

#![allow(clippy::unwrap_used)]

use portgate_audit::{
    AuditRule, BindScope, Families, Inventory, Namespace, ScanSnapshot, Verdict, collect, compare,
    evaluate,
};
use portgate_lab::{LabConfig, LabHost, Profile, skip_reason};
use portgate_model::{PortSpec, Protocol, Severity, TargetSpec};
use std::net::IpAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const PYTHON: &str = "/usr/bin/python3";

macro_rules! skip_unless_lab {
    ($name:literal) => {
        if let Some(reason) = skip_reason() {
            portgate_test_support::skip($name, reason);
            return;
        }
        if !std::path::Path::new(PYTHON).exists() {
            portgate_test_support::skip(
                $name,
                format_args!("{PYTHON} is missing (Debian package python3)"),
            );
            return;
        }
    };
}

/// A child process killed (by its pid) and reaped when the test ends.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `python3 -m http.server` as nobody inside the namespace.
fn http_server_in(namespace: &str, bind: &str, port: u16, dir: &std::path::Path) -> Reaped {
    Reaped(
        Command::new("ip")
            .args([
                "netns", "exec", namespace, "setpriv", "--reuid", "nobody", "--regid", "nogroup",
            ])
            .args([
                "--clear-groups",
                PYTHON,
                "-m",
                "http.server",
                "--bind",
                bind,
                &port.to_string(),
            ])
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start python3 -m http.server in the namespace"),
    )
}

fn wait_for(namespace: &Namespace, port: u16, pid: u32) -> Inventory {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let inventory = collect(namespace).expect("socket tables of the namespace");
        if inventory
            .listeners
            .iter()
            .any(|l| l.port == port && l.processes.iter().any(|p| p.pid as u32 == pid))
        {
            return inventory;
        }
        assert!(
            Instant::now() < deadline,
            "pid {pid} never listened on {port}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_namespace_listener_is_seen_only_from_inside() {
    skip_unless_lab!("a_namespace_listener_is_seen_only_from_inside");
    let lab = LabHost::start(LabConfig::new(Profile::Open).open_ports([8080])).expect("lab host");
    let named = Namespace::Named(lab.namespace().to_string());
    let dir = tempfile::tempdir().expect("temporary directory");
    let child = http_server_in(lab.namespace(), &lab.ipv4().to_string(), 8000, dir.path());
    let inside = wait_for(&named, 8000, child.0.id());

    // The lab's own listener runs on a thread of this test process, inside the namespace.
    let lab_listener = inside
        .listeners
        .iter()
        .find(|l| l.protocol == Protocol::Tcp && l.port == 8080)
        .expect("the lab listener is listed inside");
    assert_eq!(lab_listener.scope, BindScope::AllInterfaces);
    assert_eq!(lab_listener.families, Families::Dual);
    assert!(
        lab_listener
            .processes
            .iter()
            .any(|p| p.pid as u32 == std::process::id())
    );

    let python = inside
        .listeners
        .iter()
        .find(|l| l.port == 8000)
        .expect("python listener");
    assert_eq!(python.address, IpAddr::V4(lab.ipv4()));
    assert_eq!(python.scope, BindScope::Interface);
    assert_eq!(python.user.as_deref(), Some("nobody"));
    let process = python.process().expect("its process");
    assert_eq!(process.name, "python3");
    assert_eq!(process.pid as u32, child.0.id());

    // The same namespace named by a pid inside it.
    let by_pid = collect(&Namespace::Process(child.0.id() as i32)).expect("namespace of a pid");
    assert!(by_pid.listeners.iter().any(|l| l.inode == python.inode));

    // From the root namespace: the process and its descriptor are visible, but the root
    // namespace's socket tables do not hold the socket, so it is not listed there.
    let root = collect(&Namespace::Current).expect("root namespace");
    for inode in [python.inode, lab_listener.inode] {
        assert!(
            !root.listeners.iter().any(|l| l.inode == inode),
            "inode {inode} listed in the root namespace"
        );
    }
    let fds: Vec<u64> = procfs::process::Process::new(child.0.id() as i32)
        .expect("the child's /proc entry")
        .fd()
        .expect("its descriptors")
        .flatten()
        .filter_map(|fd| match fd.target {
            procfs::process::FDTarget::Socket(inode) => Some(inode),
            _ => None,
        })
        .collect();
    assert!(fds.contains(&python.inode), "/proc/PID/fd names the socket");

    // A namespace that does not exist is an input error naming it.
    let err = collect(&Namespace::Named("pglab-none-such".into())).expect_err("no such namespace");
    assert!(
        err.to_string().contains("/run/netns/pglab-none-such"),
        "{err}"
    );
}

#[test]
fn inside_against_a_real_scan_of_the_lab() {
    skip_unless_lab!("inside_against_a_real_scan_of_the_lab");
    let lab =
        LabHost::start(LabConfig::new(Profile::Firewalled).open_ports([8080])).expect("lab host");
    let ns = lab.namespace().to_string();
    // Listening inside on the Elasticsearch port, but the firewall drops it.
    let dir = tempfile::tempdir().expect("temporary directory");
    let child = http_server_in(&ns, "0.0.0.0", 9200, dir.path());
    let named = Namespace::Named(ns.clone());
    wait_for(&named, 9200, child.0.id());
    // Port 2222 is forwarded to 8080 by NAT: open from outside, nothing listens on it.
    let status = Command::new("ip")
        .args([
            "netns",
            "exec",
            &ns,
            "iptables",
            "-t",
            "nat",
            "-A",
            "PREROUTING",
            "-p",
            "tcp",
        ])
        .args(["--dport", "2222", "-j", "REDIRECT", "--to-ports", "8080"])
        .status()
        .expect("iptables");
    assert!(status.success(), "the NAT rule goes in");

    let scanner = portgate_scan::Scanner::builder()
        .ports(PortSpec::tcp([2222, 8080, 9200]))
        .tcp_method(portgate_scan::TcpMethod::Connect)
        .max_rtt_timeout(Duration::from_millis(500))
        .initial_rtt_timeout(Duration::from_millis(500))
        .build()
        .expect("scanner");
    let targets: Vec<TargetSpec> = vec![
        lab.ipv4().to_string().parse().expect("target"),
        lab.ipv6().to_string().parse().expect("target"),
    ];
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let report = runtime
        .block_on(scanner.run(&targets, &mut portgate_scan::NullSink))
        .expect("scan");
    let json = portgate_report::json(&report, portgate_report::RenderOptions::default());
    let file = tempfile::NamedTempFile::new().expect("temporary file");
    std::fs::write(file.path(), json).expect("write the scan report");
    let scan = ScanSnapshot::load(file.path()).expect("the scan report reads back");

    let inventory = collect(&named).expect("the lab namespace");
    let comparison = compare(&inventory, &scan);
    let verdict = |ip: IpAddr, port: u16| {
        comparison
            .ports
            .iter()
            .find(|c| c.ip == ip && c.port == port && c.protocol == Protocol::Tcp)
            .map(|c| c.verdict)
    };
    let v4 = IpAddr::V4(lab.ipv4());
    let v6 = IpAddr::V6(lab.ipv6());
    assert_eq!(
        verdict(v4, 8080),
        Some(Verdict::Reachable),
        "{comparison:#?}"
    );
    assert_eq!(
        verdict(v6, 8080),
        Some(Verdict::Reachable),
        "{comparison:#?}"
    );
    assert_eq!(
        verdict(v4, 9200),
        Some(Verdict::NotReachable),
        "{comparison:#?}"
    );
    // python bound 0.0.0.0: IPv4 only, so the IPv6 address has no such listener.
    assert_eq!(verdict(v6, 9200), None, "{comparison:#?}");
    assert_eq!(
        verdict(v4, 2222),
        Some(Verdict::ReachableNotListening),
        "{comparison:#?}"
    );
    // The NAT rule is IPv4 only: on IPv6, 2222 is filtered and nothing listens.
    assert_eq!(verdict(v6, 2222), None, "{comparison:#?}");
    let blocked = comparison
        .ports
        .iter()
        .find(|c| c.ip == v4 && c.port == 9200)
        .expect("9200");
    assert_eq!(blocked.process.as_deref(), Some("python3"));
    assert_eq!(blocked.user.as_deref(), Some("nobody"));
    assert_eq!(blocked.scan_state.as_deref(), Some("filtered"));

    let findings = evaluate(&inventory, None, &[], Some(&comparison));
    let nat = findings
        .iter()
        .find(|f| f.rule == AuditRule::ReachableNotListening)
        .expect("a reachable-not-listening finding");
    assert_eq!((nat.address, nat.port), (Some(v4), Some(2222)));
    let exposed = findings
        .iter()
        .find(|f| f.rule == AuditRule::ExposedService && f.port == Some(9200))
        .expect("9200 on all interfaces is a finding, firewall or not");
    assert_eq!(exposed.severity, Severity::Critical);
}
