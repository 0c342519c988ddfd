//! Real listeners, real processes, real namespaces: the audit must name the process, the
//! user and the binding of each. Tests needing root skip without it (through
//! `portgate_test_support::skip`: a failure under strict mode).

#![allow(clippy::unwrap_used)]

use portgate_audit::{
    AuditRule, BindScope, Families, Inventory, Listener, Namespace, TunnelKind, collect, evaluate,
    tunnels,
};
use portgate_model::{Outcome, Protocol, Severity};
use portgate_test_support::daemons::{Redis, RedisOptions};
use portgate_test_support::{is_root, require_root, skip};
use socket2::{Domain, Socket, Type};
use std::io::{BufRead, BufReader};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const PYTHON: &str = "/usr/bin/python3";

#[track_caller]
fn root_skip(test: &str) -> bool {
    !require_root(
        test,
        "needs root to read other users' processes and to switch users",
    )
}

fn inventory() -> Inventory {
    collect(&Namespace::Current).expect("the socket tables of this namespace are readable")
}

fn find(inventory: &Inventory, protocol: Protocol, address: IpAddr, port: u16) -> &Listener {
    inventory
        .listeners
        .iter()
        .find(|l| l.protocol == protocol && l.address == address && l.port == port)
        .unwrap_or_else(|| {
            panic!(
                "no {protocol} listener on {address}:{port}: {:#?}",
                inventory.listeners
            )
        })
}

fn my_comm() -> String {
    std::fs::read_to_string("/proc/self/comm")
        .expect("own comm")
        .trim()
        .to_string()
}

fn my_user() -> String {
    nix::unistd::User::from_uid(nix::unistd::geteuid())
        .expect("passwd lookup")
        .expect("this user has a passwd entry")
        .name
}

fn v6_socket(kind: Type, address: SocketAddr, v6only: bool) -> Socket {
    let socket = Socket::new(Domain::IPV6, kind, None).expect("IPv6 socket");
    socket.set_only_v6(v6only).expect("IPV6_V6ONLY");
    socket.bind(&address.into()).expect("bind");
    if kind == Type::STREAM {
        socket.listen(16).expect("listen");
    }
    socket
}

fn port_of(socket: &Socket) -> u16 {
    socket
        .local_addr()
        .expect("local address")
        .as_socket()
        .expect("inet")
        .port()
}

/// A child process killed (by its pid) and reaped when the test ends, however it ends.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits until `pid` holds a listener on `port`, reading the namespace again and again.
fn wait_for(namespace: &Namespace, protocol: Protocol, port: u16, pid: u32) -> Inventory {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let inventory = collect(namespace).expect("socket tables");
        if inventory.listeners.iter().any(|l| {
            l.protocol == protocol
                && l.port == port
                && l.processes.iter().any(|p| p.pid as u32 == pid)
        }) {
            return inventory;
        }
        assert!(
            Instant::now() < deadline,
            "pid {pid} never listened on {port}/{protocol}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

#[test]
fn listeners_of_this_process_are_classified_by_binding() {
    let loopback = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
    let all_v4 = TcpListener::bind("0.0.0.0:0").expect("bind 0.0.0.0");
    let dual = v6_socket(Type::STREAM, "[::]:0".parse().expect("addr"), false);
    let v6only = v6_socket(Type::STREAM, "[::]:0".parse().expect("addr"), true);
    let v6_loopback = v6_socket(Type::STREAM, "[::1]:0".parse().expect("addr"), true);
    let mapped = v6_socket(
        Type::STREAM,
        "[::ffff:127.0.0.1]:0".parse().expect("addr"),
        false,
    );
    let udp_loopback = UdpSocket::bind("127.0.0.1:0").expect("bind udp");
    let udp_all = UdpSocket::bind("0.0.0.0:0").expect("bind udp");
    let udp_dual = v6_socket(Type::DGRAM, "[::]:0".parse().expect("addr"), false);
    // A connected UDP socket is a client, not a listener.
    let udp_client = UdpSocket::bind("127.0.0.1:0").expect("bind udp client");
    udp_client
        .connect(udp_loopback.local_addr().expect("addr"))
        .expect("connect udp");

    let inventory = inventory();
    let me = std::process::id();
    let comm = my_comm();
    let user = my_user();
    let any4 = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
    let any6 = IpAddr::V6(Ipv6Addr::UNSPECIFIED);
    let cases: [(Protocol, IpAddr, u16, BindScope, Families); 9] = [
        (
            Protocol::Tcp,
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            loopback.local_addr().expect("a").port(),
            BindScope::Loopback,
            Families::Ipv4,
        ),
        (
            Protocol::Tcp,
            any4,
            all_v4.local_addr().expect("a").port(),
            BindScope::AllInterfaces,
            Families::Ipv4,
        ),
        (
            Protocol::Tcp,
            any6,
            port_of(&dual),
            BindScope::AllInterfaces,
            Families::Dual,
        ),
        (
            Protocol::Tcp,
            any6,
            port_of(&v6only),
            BindScope::AllInterfaces,
            Families::Ipv6,
        ),
        (
            Protocol::Tcp,
            IpAddr::V6(Ipv6Addr::LOCALHOST),
            port_of(&v6_loopback),
            BindScope::Loopback,
            Families::Ipv6,
        ),
        // IPv4-mapped on an IPv6 socket: shown and classified as the IPv4 address.
        (
            Protocol::Tcp,
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            port_of(&mapped),
            BindScope::Loopback,
            Families::Ipv4,
        ),
        (
            Protocol::Udp,
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            udp_loopback.local_addr().expect("a").port(),
            BindScope::Loopback,
            Families::Ipv4,
        ),
        (
            Protocol::Udp,
            any4,
            udp_all.local_addr().expect("a").port(),
            BindScope::AllInterfaces,
            Families::Ipv4,
        ),
        (
            Protocol::Udp,
            any6,
            port_of(&udp_dual),
            BindScope::AllInterfaces,
            Families::Dual,
        ),
    ];
    for (protocol, address, port, scope, families) in cases {
        let l = find(&inventory, protocol, address, port);
        assert_eq!(l.scope, scope, "{}", l.endpoint());
        assert_eq!(l.families, families, "{}", l.endpoint());
        assert_eq!(l.user.as_deref(), Some(user.as_str()), "{}", l.endpoint());
        let p = l
            .process()
            .unwrap_or_else(|| panic!("{} has no process: {:?}", l.endpoint(), l.owner_hidden));
        assert_eq!(p.pid as u32, me, "{}", l.endpoint());
        assert_eq!(p.name, comm, "{}", l.endpoint());
        assert!(!p.cmdline.is_empty(), "{}", l.endpoint());
        assert!(l.owner_hidden.is_none());
    }
    assert!(
        find(
            &inventory,
            Protocol::Tcp,
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            port_of(&mapped)
        )
        .ipv4_mapped
    );
    assert_eq!(
        find(&inventory, Protocol::Tcp, any6, port_of(&v6only)).v6only,
        Some(true)
    );
    // Coverage follows the families: the v6-only socket does not take IPv4.
    let only6 = find(&inventory, Protocol::Tcp, any6, port_of(&v6only));
    assert_eq!(only6.covers("127.0.0.1".parse().expect("ip")), Some(false));
    assert_eq!(only6.covers("::1".parse().expect("ip")), Some(true));
    let both = find(&inventory, Protocol::Tcp, any6, port_of(&dual));
    assert_eq!(both.covers("127.0.0.1".parse().expect("ip")), Some(true));
    let client_port = udp_client.local_addr().expect("addr").port();
    assert!(
        !inventory
            .listeners
            .iter()
            .any(|l| l.protocol == Protocol::Udp && l.port == client_port),
        "a connected UDP socket is not listed as a listener"
    );

    // All-interface listeners are findings; loopback ones are not.
    let findings = evaluate(&inventory, None, &[], None);
    let exposed = |port: u16| {
        findings.iter().any(|f| {
            f.rule == AuditRule::ExposedService && f.port == Some(port) && f.pid == Some(me as i32)
        })
    };
    assert!(exposed(all_v4.local_addr().expect("a").port()));
    assert!(exposed(port_of(&dual)));
    assert!(!exposed(loopback.local_addr().expect("a").port()));
}

#[test]
fn an_address_of_one_interface_is_one_interface() {
    let Some(address) = nix::ifaddrs::getifaddrs()
        .expect("interfaces")
        .filter_map(|i| {
            i.address
                .and_then(|a| a.as_sockaddr_in().map(|s| IpAddr::V4(s.ip())))
        })
        .find(|ip| !ip.is_loopback())
    else {
        skip(
            "an_address_of_one_interface_is_one_interface",
            "no non-loopback IPv4 address here",
        );
        return;
    };
    // Binding sends nothing: no packet leaves for this address.
    let listener = TcpListener::bind(SocketAddr::new(address, 0)).expect("bind interface address");
    let inventory = inventory();
    let l = find(
        &inventory,
        Protocol::Tcp,
        address,
        listener.local_addr().expect("a").port(),
    );
    assert_eq!(l.scope, BindScope::Interface);
    assert_eq!(l.covers(address), Some(true));
    assert_eq!(l.covers("127.0.0.1".parse().expect("ip")), Some(false));
}

#[test]
fn another_users_process_is_named_with_its_user_and_service() {
    if root_skip("another_users_process_is_named_with_its_user_and_service") {
        return;
    }
    // Redis on an odd port, as nobody, on all interfaces: it is still Redis.
    let Some(redis) = Redis::start_with(
        "another_users_process_is_named_with_its_user_and_service",
        &RedisOptions {
            bind: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            run_as: Some(("nobody".into(), "nogroup".into())),
        },
    ) else {
        return;
    };
    let port = redis.port;
    let inventory = wait_for(&Namespace::Current, Protocol::Tcp, port, redis.pid());
    let l = find(
        &inventory,
        Protocol::Tcp,
        IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        port,
    );
    let p = l.process().expect("process");
    assert_eq!(p.pid as u32, redis.pid());
    assert_eq!(p.name, "redis-server");
    assert_eq!(p.user.as_deref(), Some("nobody"));
    assert_eq!(l.user.as_deref(), Some("nobody"));
    assert_eq!(l.scope, BindScope::AllInterfaces);
    assert_eq!(l.service.as_deref(), Some("redis"));
    assert!(l.service_from_process);
    let findings = evaluate(&inventory, None, &[], None);
    let finding = findings
        .iter()
        .find(|f| f.rule == AuditRule::ExposedService && f.port == Some(port))
        .expect("an exposed-service finding");
    assert_eq!(finding.severity, Severity::Critical, "{}", finding.message);
    assert_eq!(finding.outcome, Outcome::Fail);
    assert_eq!(finding.user.as_deref(), Some("nobody"));
    assert!(finding.message.contains("redis"), "{}", finding.message);
}

#[test]
fn python_http_server_as_nobody_on_loopback() {
    if root_skip("python_http_server_as_nobody_on_loopback") {
        return;
    }
    if !std::path::Path::new(PYTHON).exists() {
        skip(
            "python_http_server_as_nobody_on_loopback",
            format_args!("{PYTHON} is missing (Debian package python3)"),
        );
        return;
    }
    let port = free_port();
    let dir = tempfile::tempdir().expect("temporary directory");
    let child = Reaped(
        Command::new("setpriv")
            .args([
                "--reuid",
                "nobody",
                "--regid",
                "nogroup",
                "--clear-groups",
                PYTHON,
            ])
            .args([
                "-m",
                "http.server",
                "--bind",
                "127.0.0.1",
                &port.to_string(),
            ])
            .current_dir(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start python3 -m http.server"),
    );
    let inventory = wait_for(&Namespace::Current, Protocol::Tcp, port, child.0.id());
    let l = find(
        &inventory,
        Protocol::Tcp,
        IpAddr::V4(Ipv4Addr::LOCALHOST),
        port,
    );
    let p = l.process().expect("process");
    assert_eq!(p.name, "python3");
    assert_eq!(
        p.cmdline.get(1..3),
        Some(&["-m".to_string(), "http.server".to_string()][..])
    );
    assert_eq!(l.user.as_deref(), Some("nobody"));
    assert_eq!(l.scope, BindScope::Loopback);
    assert!(
        !evaluate(&inventory, None, &[], None)
            .iter()
            .any(|f| f.port == Some(port)),
        "a loopback listener is no finding without --expect"
    );
}

/// A Redis of its own on loopback, found as a loopback listener named by its process: as
/// root, run as nobody (another user's process, which only root sees).
#[test]
fn a_redis_on_loopback_is_found_on_loopback() {
    let run_as = is_root().then(|| ("nobody".to_string(), "nogroup".to_string()));
    let Some(redis) = Redis::start_with(
        "a_redis_on_loopback_is_found_on_loopback",
        &RedisOptions {
            run_as: run_as.clone(),
            ..RedisOptions::default()
        },
    ) else {
        return;
    };
    let inventory = wait_for(&Namespace::Current, Protocol::Tcp, redis.port, redis.pid());
    let found = find(
        &inventory,
        Protocol::Tcp,
        IpAddr::V4(Ipv4Addr::LOCALHOST),
        redis.port,
    );
    assert_eq!(found.scope, BindScope::Loopback);
    let p = found.process().expect("the process is seen");
    assert_eq!(p.pid as u32, redis.pid());
    assert_eq!(p.name, "redis-server");
    assert_eq!(found.service.as_deref(), Some("redis"));
    assert!(found.service_from_process);
    if let Some((user, _)) = run_as {
        assert_eq!(found.user.as_deref(), Some(user.as_str()));
    }
}

#[test]
fn ssh_port_forwarding_and_long_lived_connections_are_tunnels() {
    if !std::path::Path::new("/usr/bin/ssh").exists() {
        skip(
            "ssh_port_forwarding_and_long_lived_connections_are_tunnels",
            "ssh is not installed (Debian package openssh-client)",
        );
        return;
    }
    // A server that accepts and never speaks: ssh waits for the banner, its connection
    // established, long enough to be seen.
    let server = TcpListener::bind("127.0.0.1:0").expect("bind");
    let server_port = server.local_addr().expect("addr").port();
    let forward_port = free_port();
    let mut ssh = Reaped(
        Command::new("/usr/bin/ssh")
            .args([
                "-N",
                "-L",
                &format!("127.0.0.1:{forward_port}:127.0.0.1:9"),
                "-p",
                &server_port.to_string(),
            ])
            .args([
                "-o",
                "BatchMode=yes",
                "-o",
                "StrictHostKeyChecking=no",
                "-o",
                "UserKnownHostsFile=/dev/null",
            ])
            .args(["-o", "ConnectTimeout=30", "-F", "/dev/null", "127.0.0.1"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start ssh"),
    );
    let (_accepted, _) = server.accept().expect("ssh connects");
    // A long-lived connection from this process to a port tunnels hide behind.
    let https = [8443u16, 443]
        .into_iter()
        .find_map(|p| TcpListener::bind(("127.0.0.1", p)).ok());
    let client = https
        .as_ref()
        .map(|l| TcpStream::connect(l.local_addr().expect("addr")).expect("connect"));

    let deadline = Instant::now() + Duration::from_secs(10);
    let found = loop {
        let inventory = inventory();
        let found = tunnels(&inventory, Duration::ZERO);
        if found.iter().any(|t| {
            t.connection
                .processes
                .iter()
                .any(|p| p.pid as u32 == ssh.0.id())
        }) {
            break found;
        }
        if let Ok(Some(status)) = ssh.0.try_wait() {
            let mut err = String::new();
            if let Some(stderr) = ssh.0.stderr.take() {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    err.push_str(&line);
                }
            }
            panic!("ssh exited ({status}) before it was seen: {err}");
        }
        assert!(
            Instant::now() < deadline,
            "the ssh connection never showed: {found:#?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let tunnel = found
        .iter()
        .find(|t| {
            t.connection
                .processes
                .iter()
                .any(|p| p.pid as u32 == ssh.0.id())
        })
        .expect("ssh tunnel");
    assert_eq!(tunnel.kind, TunnelKind::SshLocalForward);
    assert_eq!(tunnel.connection.remote.port(), server_port);
    assert!(
        tunnel
            .detail
            .contains(&format!("-L 127.0.0.1:{forward_port}")),
        "{}",
        tunnel.detail
    );
    assert_eq!(tunnel.connection.user.as_deref(), Some(my_user().as_str()));

    if let (Some(listener), Some(client)) = (&https, &client) {
        let port = listener.local_addr().expect("addr").port();
        let local = client.local_addr().expect("addr");
        let long = found
            .iter()
            .find(|t| t.connection.local == local)
            .expect("the connection to 8443/443 is listed");
        assert_eq!(long.kind, TunnelKind::LongLived);
        assert_eq!(long.connection.remote.port(), port);
        assert_eq!(long.connection.processes[0].pid as u32, std::process::id());
        // With a threshold longer than this process has run, it is not listed.
        let inventory = inventory();
        assert!(
            !tunnels(&inventory, Duration::from_secs(10 * 365 * 86_400))
                .iter()
                .any(|t| t.connection.local == local)
        );
    } else {
        // The rest of the test still runs.
        skip(
            "ssh_port_forwarding_and_long_lived_connections_are_tunnels (long-lived case)",
            "ports 8443 and 443 on 127.0.0.1 are taken",
        );
    }
    // The accepted end is inbound: never an outbound tunnel.
    let inventory = inventory();
    assert!(
        !inventory
            .outbound
            .iter()
            .any(|c| c.local.port() == server_port)
    );
}
