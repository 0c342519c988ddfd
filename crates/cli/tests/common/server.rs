//! A `portgate serve` process for the tests, and a minimal HTTP client for it.

use super::{portgate, run};
use serde_json::Value;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

/// One HTTP/1.1 request to the server (Connection: close); the status and the JSON body.
pub fn http(port: u16, method: &str, path: &str, key: &str, body: Option<&Value>) -> (u16, Value) {
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

pub struct Served {
    /// The server process.
    pub child: Child,
    /// Its port on 127.0.0.1.
    pub port: u16,
}

impl Served {
    /// Starts `portgate serve` on `port` with the history `db`, scope 127.0.0.0/8, one
    /// worker, and 60 s for running scans to finish on SIGTERM.
    pub fn start(db: &str, port: u16) -> Served {
        Served::start_draining(db, port, "60s")
    }

    /// [`Served::start`] with `drain` for running scans to finish on SIGTERM.
    pub fn start_draining(db: &str, port: u16, drain: &str) -> Served {
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
                drain,
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

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn key(db: &str) -> String {
    let (code, out, err) = run(&["keys", "create", "--name", "ci", "--db", db]);
    assert_eq!(code, 0, "{err}");
    let key = out.trim().to_string();
    assert!(key.starts_with("pg_") && key.len() == 67, "{key}");
    key
}
