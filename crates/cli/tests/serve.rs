//! `portgate serve` as a process: a job survives `kill -9` of its server (run again to
//! completion after the restart, reported once), and SIGTERM drains (the running scan
//! finishes, no new job is taken).

#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use serde_json::{Value, json};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

/// One HTTP/1.1 request to the server (Connection: close); the status and the JSON body.
fn http(port: u16, method: &str, path: &str, key: &str, body: Option<&Value>) -> (u16, Value) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let payload = body.map(|b| b.to_string()).unwrap_or_default();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nx-api-key: {key}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{payload}",
        payload.len()
    );
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let status: u16 = answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = answer.split("\r\n\r\n").nth(1).unwrap_or_default();
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

struct Served {
    child: Child,
    port: u16,
}

impl Served {
    fn start(db: &str, port: u16) -> Served {
        let child = portgate()
            .args([
                "serve",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--db",
                db,
                "--scope",
                "127.0.0.0/8",
                "--workers",
                "1",
                "--drain-timeout",
                "60s",
                // The test polls every 20 ms.
                "--rate",
                "100000",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let start = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "the server did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Served { child, port }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn key(db: &str) -> String {
    let (code, out, err) = run(&["keys", "create", "--name", "ci", "--db", db]);
    assert_eq!(code, 0, "{err}");
    let key = out.trim().to_string();
    assert!(key.starts_with("pg_") && key.len() == 67, "{key}");
    key
}

/// Polls scan `id` until `done` says so (at most 120 s); returns its view.
fn poll(port: u16, key: &str, id: i64, done: impl Fn(&Value) -> bool) -> Value {
    let start = Instant::now();
    loop {
        let (status, body) = http(port, "GET", &format!("/v1/scans/{id}"), key, None);
        assert_eq!(status, 200, "{body}");
        if done(&body) {
            return body;
        }
        assert!(start.elapsed() < Duration::from_secs(120), "{body}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A scan long enough to be caught running: 16,384 loopback addresses × 40 ports.
fn long_scan() -> Value {
    json!({"targets": ["127.2.0.0/18"], "ports": "1-40"})
}

#[test]
fn a_job_survives_kill_9_and_is_reported_once() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("serve.db").display().to_string();
    let key = key(&db);
    let port = free_port();
    let mut server = Served::start(&db, port);
    let (status, accepted) = http(port, "POST", "/v1/scans", &key, Some(&long_scan()));
    assert_eq!(status, 202, "{accepted}");
    let id = accepted["scanId"].as_i64().unwrap();
    poll(port, &key, id, |v| v["status"] == "running");
    // Killed mid-scan.
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    let server = Served::start(&db, port);
    let done = poll(server.port, &key, id, |v| {
        !["queued", "running"].contains(&v["status"].as_str().unwrap())
    });
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["attempts"], 2, "run again after the restart: {done}");
    // 16,382 hosts: a range's network and broadcast addresses are not scanned.
    assert_eq!(done["report"]["summary"]["ports_scanned"], 16_382 * 40);
    // One scan in the list, one scan in the history.
    let (_, list) = http(port, "GET", "/v1/scans", &key, None);
    assert_eq!(list["items"].as_array().unwrap().len(), 1, "{list}");
    drop(server);
    let (code, history, err) = run(&["history", "127.2.0.0/18", "--db", &db, "-o", "json"]);
    assert_eq!(code, 0, "{err}");
    let history: Value = serde_json::from_str(&history).unwrap();
    let scans: std::collections::BTreeSet<i64> = history["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["scan"]["id"].as_i64().unwrap())
        .collect();
    assert_eq!(scans.len(), 1, "{history}");
}

#[test]
fn sigterm_drains_the_running_scan_and_takes_no_new_one() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("serve.db").display().to_string();
    let key = key(&db);
    let port = free_port();
    let mut server = Served::start(&db, port);
    let (_, first) = http(port, "POST", "/v1/scans", &key, Some(&long_scan()));
    let (_, second) = http(port, "POST", "/v1/scans", &key, Some(&long_scan()));
    let first = first["scanId"].as_i64().unwrap();
    let second = second["scanId"].as_i64().unwrap();
    poll(port, &key, first, |v| v["status"] == "running");
    let pid = nix::unistd::Pid::from_raw(i32::try_from(server.child.id()).unwrap());
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let status = server.child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    // The running scan finished before the process ended; the queued one was not taken.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (running, waiting) = runtime.block_on(async {
        let store = portgate_store::Store::open(&portgate_store::Location::parse(&db).unwrap())
            .await
            .unwrap();
        (
            store.job(first).await.unwrap().unwrap(),
            store.job(second).await.unwrap().unwrap(),
        )
    });
    assert_eq!(
        running.status,
        portgate_store::JobStatus::Succeeded,
        "{running:?}"
    );
    assert_eq!(running.attempts, 1);
    assert!(running.result.is_some());
    assert_eq!(
        waiting.status,
        portgate_store::JobStatus::Queued,
        "{waiting:?}"
    );
    assert_eq!(waiting.attempts, 0);
}
