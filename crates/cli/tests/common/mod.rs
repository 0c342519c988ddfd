//! Helpers for the integration tests: run the real binary, real listeners on
//! 127.0.0.1, a real DNS server (dnsmasq) on 127.0.0.1.

#![allow(dead_code, clippy::unwrap_used)]

pub mod server;

use serde_json::Value;
use std::collections::BTreeSet;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::process::{Child, Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// The `portgate` binary built for these tests.
pub fn portgate() -> Command {
    Command::new(env!("CARGO_BIN_EXE_portgate"))
}

/// Runs `portgate` with `args`; returns (exit code, stdout, stderr).
pub fn run(args: &[&str]) -> (i32, String, String) {
    let out: Output = portgate().args(args).output().expect("portgate runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs `portgate scan ... -o json` and parses the report.
pub fn scan_json(args: &[&str]) -> (i32, Value, String) {
    let mut all = vec!["scan", "-o", "json"];
    all.extend_from_slice(args);
    let (code, stdout, stderr) = run(&all);
    let value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {stdout}\nstderr: {stderr}"));
    (code, value, stderr)
}

/// Ports of a host in the report with the given state (only those listed).
pub fn listed(host: &Value, state: &str) -> BTreeSet<u16> {
    host["ports"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["state"] == state)
        .map(|p| p["port"].as_u64().unwrap() as u16)
        .collect()
}

/// The host entry for `ip`.
pub fn host<'a>(report: &'a Value, ip: &str) -> &'a Value {
    report["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["ip"] == ip)
        .unwrap_or_else(|| panic!("no host {ip} in {report}"))
}

/// TCP listeners on 127.0.0.1 that accept and close connections until dropped.
pub struct Listeners {
    pub ports: Vec<u16>,
}

impl Listeners {
    pub fn start(count: usize) -> Self {
        let mut ports = Vec::new();
        for _ in 0..count {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            ports.push(listener.local_addr().unwrap().port());
            thread::spawn(move || {
                for stream in listener.incoming() {
                    drop(stream);
                }
            });
        }
        ports.sort_unstable();
        Listeners { ports }
    }
}

/// A TCP port on 127.0.0.1 that nothing listens on (bound, then released).
pub fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A dnsmasq serving a test zone on 127.0.0.1; killed (by its own pid) on drop.
pub struct Dnsmasq {
    child: Child,
    pub addr: SocketAddr,
}

/// Where dnsmasq lives, if installed.
pub fn dnsmasq_path() -> Option<&'static str> {
    ["/usr/sbin/dnsmasq", "/usr/bin/dnsmasq"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
}

impl Dnsmasq {
    /// Zone `pg.test`: `app.pg.test` A 127.0.0.1 and AAAA ::1; `web.pg.test` CNAME
    /// `app.pg.test`; `www.pg.test` CNAME `web.pg.test`; every other name NXDOMAIN.
    /// None after a skip (a failure under strict mode) when dnsmasq is not installed.
    pub fn start(test: &str) -> Option<Self> {
        Self::start_with(test, &[])
    }

    /// [`Dnsmasq::start`] with more dnsmasq options (records: `--mx-host=…`,
    /// `--txt-record=…`).
    pub fn start_with(test: &str, extra: &[&str]) -> Option<Self> {
        let Some(path) = dnsmasq_path() else {
            // .ci/run installs dnsmasq-base.
            portgate_test_support::skip(
                test,
                "dnsmasq is not installed (apt-get install dnsmasq-base)",
            );
            return None;
        };
        for _ in 0..5 {
            let port = free_udp_port();
            let mut child = Command::new(path)
                .args([
                    "--keep-in-foreground",
                    "--conf-file=/dev/null",
                    "--no-resolv",
                    "--no-hosts",
                    "--no-poll",
                    "--bind-interfaces",
                    "--listen-address=127.0.0.1",
                    "--pid-file=",
                    "--host-record=app.pg.test,127.0.0.1,::1",
                    "--cname=web.pg.test,app.pg.test",
                    "--cname=www.pg.test,web.pg.test",
                    "--local=/pg.test/",
                    &format!("--port={port}"),
                ])
                .args(extra)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("dnsmasq starts");
            let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
            // Ready when it answers a query over UDP.
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if child.try_wait().ok().flatten().is_some() {
                    break;
                }
                if dns_answers(addr) {
                    return Some(Dnsmasq { child, addr });
                }
                thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("dnsmasq did not start");
    }
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends a minimal A query for `app.pg.test` and waits briefly for any reply.
fn dns_answers(addr: SocketAddr) -> bool {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut query = vec![0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in ["app", "pg", "test"] {
        query.push(label.len() as u8);
        query.extend_from_slice(label.as_bytes());
    }
    query.extend_from_slice(&[0, 0, 1, 0, 1]);
    if socket.send_to(&query, addr).is_err() {
        return false;
    }
    let mut buf = [0u8; 512];
    socket.recv_from(&mut buf).is_ok()
}
