//! Layered configuration, seen in what the real binary does: a flag wins over its
//! `PORTGATE_*` variable, which wins over the configuration file, which wins over the
//! default; a file's unknown key or bad value is refused with its place; and the server's
//! JSON log.

#![allow(clippy::unwrap_used)]

mod common;

use common::server::{free_port, http, key};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// `portgate` with no `PORTGATE_*` variable of the caller's and its home in `home` (so no
/// configuration file of the machine's is read).
fn portgate_in(home: &Path) -> Command {
    let mut command = common::portgate();
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("PORTGATE_") {
            command.env_remove(&name);
        }
    }
    command
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join(".config"))
        .env("XDG_DATA_HOME", home.join(".local/share"))
        .stdin(Stdio::null());
    command
}

/// Runs a scan of 127.0.0.1 (full connects, so no privilege matters) with `extra` and
/// `env`; the JSON report.
fn ports_requested(home: &Path, env: &[(&str, &str)], extra: &[&str]) -> u64 {
    let mut command = portgate_in(home);
    command.args([
        "scan",
        "127.0.0.1",
        "--connect",
        "-o",
        "json",
        "--no-progress",
    ]);
    command.args(extra);
    for (name, value) in env {
        command.env(name, value);
    }
    let out = command.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let report: Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {stderr}"));
    report["summary"]["ports_requested"].as_u64().unwrap()
}

/// The same setting (`scan --ports`) from each layer, each overriding the one below; the
/// file found at its default place, at `$PORTGATE_CONFIG` and at `--config`.
#[test]
fn each_layer_overrides_the_one_below() {
    let home = tempfile::tempdir().unwrap();
    let home = home.path();
    // Default: top1000.
    assert_eq!(ports_requested(home, &[], &[]), 1000);
    // The file at its default place: $XDG_CONFIG_HOME/portgate/config.yaml.
    let dir = home.join(".config/portgate");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("config.yaml"), "scan:\n  ports: 1-3\n").unwrap();
    assert_eq!(ports_requested(home, &[], &[]), 3);
    // The environment over the file.
    assert_eq!(ports_requested(home, &[("PORTGATE_PORTS", "1-2")], &[]), 2);
    // The flag over the environment.
    assert_eq!(
        ports_requested(home, &[("PORTGATE_PORTS", "1-2")], &["-p", "7"]),
        1
    );
    // Another file, named by $PORTGATE_CONFIG or --config, replaces the default one.
    let other = home.join("other.yaml");
    std::fs::write(&other, "scan:\n  ports: 1-4\n").unwrap();
    let other_text = other.display().to_string();
    assert_eq!(
        ports_requested(home, &[("PORTGATE_CONFIG", &other_text)], &[]),
        4
    );
    std::fs::write(home.join("third.yaml"), "scan:\n  ports: 1-5\n").unwrap();
    let third = home.join("third.yaml").display().to_string();
    assert_eq!(
        ports_requested(
            home,
            &[("PORTGATE_CONFIG", &other_text)],
            &["--config", &third]
        ),
        5
    );

    // --print-config says where each setting came from.
    let out = portgate_in(home)
        .args(["scan", "127.0.0.1", "--print-config", "--retries", "4"])
        .env("PORTGATE_MAX_HOSTS", "9")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    let line = |key: &str| {
        text.lines()
            .find(|l| l.split_whitespace().next() == Some(key))
            .unwrap_or_else(|| panic!("no {key} in {text}"))
            .to_string()
    };
    assert!(line("scan.ports").contains("file "), "{text}");
    assert!(line("scan.ports").contains("config.yaml:2:3"), "{text}");
    assert!(line("scan.retries").ends_with("flag"), "{text}");
    assert!(
        line("scan.max_hosts").ends_with("env PORTGATE_MAX_HOSTS"),
        "{text}"
    );
    assert!(line("scan.seed").ends_with("default"), "{text}");
}

/// A file setting that conflicts with a flag given is left out (`open: true` in the file,
/// `--all-ports` on the command line), instead of making the command line invalid.
#[test]
fn a_flag_displaces_the_file_settings_it_conflicts_with() {
    let home = tempfile::tempdir().unwrap();
    let config = home.path().join("c.yaml");
    std::fs::write(&config, "scan:\n  open: true\n").unwrap();
    let out = portgate_in(home.path())
        .args([
            "scan",
            "127.0.0.1",
            "--all-ports",
            "--print-config",
            "--config",
        ])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.lines()
            .any(|l| l.starts_with("scan.open ") && l.contains("false")),
        "{text}"
    );
}

/// Unknown sections and keys are refused with file:line:column; a bad value names the
/// file, the key and the value; all with exit 2, before anything runs.
#[test]
fn unknown_keys_and_bad_values_are_refused_with_their_place() {
    let home = tempfile::tempdir().unwrap();
    let config = home.path().join("portgate.yaml");
    for (text, expected) in [
        (
            "scan:\n  ports: 22\n  retires: 3\n",
            &["portgate.yaml:3:3", "unknown key \"retires\"", "retries"][..],
        ),
        (
            "scna:\n  ports: 22\n",
            &["portgate.yaml:1:1", "unknown section \"scna\""][..],
        ),
        (
            "db:\n  prune:\n    keep_weeks: 3\n",
            &["portgate.yaml:3:5", "db prune: unknown key \"keep_weeks\""][..],
        ),
        (
            "scan:\n  retries: lots\n",
            &["portgate.yaml:2:12", "scan: retries: \"lots\""][..],
        ),
        (
            "serve:\n  scope: [127.0.0.0/8]\n  cache_ttl: soon\n",
            &["portgate.yaml:3:14", "serve: cache_ttl: \"soon\""][..],
        ),
        (
            "check:\n  mode: lenient\n",
            &["portgate.yaml:2:9", "check: mode: \"lenient\""][..],
        ),
        (
            "scan:\n  ports: [22, 80]\n",
            &["portgate.yaml:2:10", "scan: ports: takes one value"][..],
        ),
    ] {
        std::fs::write(&config, text).unwrap();
        let out = portgate_in(home.path())
            .args(["scan", "127.0.0.1", "--config"])
            .arg(&config)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{text}: {stderr}");
        for part in expected {
            assert!(stderr.contains(part), "{text}: {part} not in {stderr}");
        }
        assert!(out.stdout.is_empty(), "{text}: nothing ran");
    }
    // A named file that is not there is an error too (a missing default one is not).
    let out = portgate_in(home.path())
        .args(["scan", "127.0.0.1", "--print-config"])
        .env("PORTGATE_CONFIG", home.path().join("absent.yaml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("absent.yaml"));
}

/// `serve --log-format json`: every line on standard error is a JSON object with
/// timestamp, level and message; the startup line carries the address as a field. The
/// listening address comes from the environment over the file, the log format from the
/// file's `serve:` section.
#[test]
fn the_server_logs_json_lines() {
    let home = tempfile::tempdir().unwrap();
    let db = home.path().join("serve.db").display().to_string();
    let key = key(&db);
    let port = free_port();
    let file_port = std::iter::repeat_with(free_port)
        .find(|p| *p != port)
        .unwrap();
    let config = home.path().join("config.yaml");
    std::fs::write(
        &config,
        format!(
            "serve:\n  listen: 127.0.0.1:{file_port}\n  scope: [127.0.0.0/8]\n  workers: 1\n  log_format: json\n  log_level: \"info,portgate_serve=debug\"\n"
        ),
    )
    .unwrap();
    let mut child = portgate_in(home.path())
        .args(["serve", "--db", &db, "--config"])
        .arg(&config)
        .env("PORTGATE_LISTEN", format!("127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        BufReader::new(stderr)
            .lines()
            .map(Result::unwrap)
            .collect::<Vec<_>>()
    });
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(start.elapsed() < Duration::from_secs(20), "not started");
        std::thread::sleep(Duration::from_millis(50));
    }
    let (status, body) = http(port, "GET", "/v1/scans", &key, None);
    assert_eq!(status, 200, "{body}");
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap());
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    assert!(child.wait().unwrap().success());
    let lines = reader.join().unwrap();
    let events: Vec<Value> = lines
        .iter()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")))
        .collect();
    for event in &events {
        for field in ["timestamp", "level", "target", "message"] {
            assert!(event[field].is_string(), "no {field}: {event}");
        }
    }
    let started = events
        .iter()
        .find(|e| e["message"].as_str().unwrap().starts_with("listening on"))
        .unwrap_or_else(|| panic!("no startup line in {lines:?}"));
    assert_eq!(started["level"], "INFO");
    assert_eq!(started["listen"], format!("127.0.0.1:{port}"), "{started}");
    // The request, at debug level, with its route.
    assert!(
        events
            .iter()
            .any(|e| e["route"] == "/v1/scans" && e["status"] == 200),
        "{lines:?}"
    );
    assert!(
        events.iter().any(|e| e["message"] == "draining"),
        "{lines:?}"
    );
}
