//! `portgate serve` as a process: a job survives `kill -9` of its server (run again to
//! completion after the restart, reported once), and SIGTERM drains (the running scan
//! finishes, no new job is taken).

#![allow(clippy::unwrap_used)]

mod common;

use common::server::*;
use common::*;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

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

/// On both store backends.
#[test]
fn a_job_survives_kill_9_and_is_reported_once() {
    for db in portgate_test_support::db::backends_blocking("portgate_serve") {
        eprintln!("store backend: {}", db.name);
        survives_kill_9(&db.url);
    }
}

fn survives_kill_9(db: &str) {
    let db = db.to_string();
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

/// SIGTERM with time to drain: the running scan finishes before the process ends and the
/// queued one is not taken; with none (`--drain-timeout 0s`): the running scan goes back to
/// the queue and the next start runs it to completion. On both store backends.
#[test]
fn sigterm_drains_the_running_scan_and_takes_no_new_one() {
    for db in portgate_test_support::db::backends_blocking("portgate_drain") {
        eprintln!("store backend: {}", db.name);
        drains(&db.url);
    }
}

fn drains(db: &str) {
    let key = key(db);
    let port = free_port();
    // Time enough for the running scan to finish on a busy machine: this branch is about
    // finishing it, the one below about running out of time.
    let server = Served::start_draining(db, port, "600s");
    let (_, first) = http(port, "POST", "/v1/scans", &key, Some(&long_scan()));
    let (_, second) = http(port, "POST", "/v1/scans", &key, Some(&long_scan()));
    let first = first["scanId"].as_i64().unwrap();
    let second = second["scanId"].as_i64().unwrap();
    poll(port, &key, first, |v| v["status"] == "running");
    terminate(server);
    let (running, waiting) = (job(db, first), job(db, second));
    assert_eq!(
        running.status,
        portgate_store::JobStatus::Succeeded,
        "{running:?}"
    );
    assert_eq!(running.attempts, 1);
    // Its report is kept in the history, once.
    assert!(running.scan_id.is_some(), "{running:?}");
    assert!(running.result.is_none(), "{running:?}");
    assert_eq!(
        waiting.status,
        portgate_store::JobStatus::Queued,
        "{waiting:?}"
    );
    assert_eq!(waiting.attempts, 0);

    // No time to drain: the second scan, now running, is queued again for the next start.
    let server = Served::start_draining(db, port, "0s");
    poll(port, &key, second, |v| v["status"] == "running");
    terminate(server);
    let requeued = job(db, second);
    assert_eq!(
        requeued.status,
        portgate_store::JobStatus::Queued,
        "{requeued:?}"
    );
    assert_eq!(requeued.attempts, 1);
    assert!(requeued.result.is_none());
    let server = Served::start(db, port);
    let done = poll(server.port, &key, second, |v| {
        !["queued", "running"].contains(&v["status"].as_str().unwrap())
    });
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["attempts"], 2, "{done}");
}

/// Sends SIGTERM to the server and waits for it to end by itself, successfully.
fn terminate(mut server: Served) {
    let pid = nix::unistd::Pid::from_raw(i32::try_from(server.child.id()).unwrap());
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let status = server.child.wait().unwrap();
    assert!(status.success(), "{status:?}");
}

/// Job `id` as stored in `db`.
fn job(db: &str, id: i64) -> portgate_store::Job {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let store = portgate_store::Store::open(&portgate_store::Location::parse(db).unwrap())
            .await
            .unwrap();
        let job = store.job(id).await.unwrap().unwrap();
        store.close().await;
        job
    })
}

/// `portgate scan --server`: the same report as scanning here, and the same exit codes.
#[test]
fn scan_through_a_server_reports_what_a_local_scan_does() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("serve.db").display().to_string();
    let key = key(&db);
    let server = Served::start(&db, free_port());
    let url = format!("http://127.0.0.1:{}", server.port);
    let listeners = Listeners::start(2);
    let closed = closed_port();
    let spec = format!("{},{},{closed}", listeners.ports[0], listeners.ports[1]);
    let remote = |args: &[&str]| {
        let out = portgate()
            .args(["scan", "--server", &url])
            .args(args)
            .env("PORTGATE_API_KEY", &key)
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, text, err) = remote(&["127.0.0.1", "-p", &spec, "-o", "json"]);
    assert_eq!(code, 0, "{err}");
    let there: Value = serde_json::from_str(&text).unwrap();
    let (_, here, _) = scan_json(&["127.0.0.1", "-p", &spec]);
    let states = |report: &Value| -> Vec<(u64, String)> {
        report["hosts"][0]["ports"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                (
                    p["port"].as_u64().unwrap(),
                    p["state"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };
    assert_eq!(states(&there), states(&here));
    assert_eq!(there["summary"]["open"], 2);
    // The table too.
    let (code, table, _) = remote(&["127.0.0.1", "-p", &spec]);
    assert_eq!(code, 0);
    assert!(
        table.contains(&format!("{}/tcp", listeners.ports[0])),
        "{table}"
    );

    // Refusals are usage errors (2), naming the reason; an unreachable server is 3.
    let (code, _, err) = remote(&["198.51.100.7", "-p", "22"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("198.51.100.7") && err.contains("403"), "{err}");
    let (code, _, err) = remote(&["127.0.0.1", "-p", "22", "--syn"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--syn is not for --server"), "{err}");
    let out = portgate()
        .args(["scan", "--server", &url, "127.0.0.1", "-p", "22"])
        .env_remove("PORTGATE_API_KEY")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("PORTGATE_API_KEY"));
    let gone = format!("http://127.0.0.1:{}", free_port());
    let out = portgate()
        .args(["scan", "--server", &gone, "127.0.0.1", "-p", "22"])
        .env("PORTGATE_API_KEY", &key)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `portgate serve --config FILE`: the file's settings, the flags winning over it, and a
/// wrong key refused with its file, line and column.
#[test]
fn the_configuration_file_is_read_and_checked() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("serve.db").display().to_string();
    let key = key(&db);
    let port = free_port();
    let config = dir.path().join("serve.yaml");
    std::fs::write(
        &config,
        format!(
            "listen: 127.0.0.1:1\ndb: {db}\nscope: [127.0.0.0/8]\nworkers: 2\nrate: 5\naddresses_only: true\n"
        ),
    )
    .unwrap();
    // The flag's address wins over the file's.
    let mut child = portgate()
        .args(["serve", "--config"])
        .arg(&config)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(start.elapsed() < Duration::from_secs(20), "not started");
        std::thread::sleep(Duration::from_millis(50));
    }
    // The file's settings hold: names refused, 5 requests a minute.
    let (status, problem) = http(
        port,
        "POST",
        "/v1/scans",
        &key,
        Some(&json!({"targets": ["localhost"], "ports": "22"})),
    );
    assert_eq!(status, 400, "{problem}");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("addresses and ranges only")
    );
    let statuses: Vec<u16> = (0..6)
        .map(|_| http(port, "GET", "/v1/scans", &key, None).0)
        .collect();
    assert!(statuses.contains(&429), "{statuses:?}");
    let _ = child.kill();
    let _ = child.wait();

    std::fs::write(&config, "scope: [127.0.0.0/8]\nworker: 2\n").unwrap();
    let (code, _, err) = run(&["serve", "--config", &config.display().to_string()]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("serve.yaml:2:1"), "{err}");
    assert!(err.contains("worker"), "{err}");
    let (code, _, err) = run(&["serve", "--db", &db]);
    assert_eq!(code, 2);
    assert!(err.contains("--scope"), "{err}");

    // Monitoring settings are checked before the server starts: each refusal names the
    // file, the entry and what was wrong.
    let manifest = dir.path().join("exposure.yaml");
    std::fs::write(&manifest, "version: 1\nassets: []\n").unwrap();
    for (monitoring, expected) in [
        (
            "schedules:\n  - {name: hourly, cron: \"61 * * * *\"}\n",
            "schedules[0] (hourly): cron \"61 * * * *\"",
        ),
        (
            "schedules:\n  - {name: hourly, cron: \"0 * * * *\", ports: \"T:70000\"}\n",
            "schedules[0] (hourly): ports",
        ),
        (
            "schedules:\n  - {name: hourly, cron: \"0 * * * *\", manifests: [prod]}\n",
            "no manifest named \"prod\"",
        ),
        (
            "alerts:\n  - {name: ops, webhook: {url: \"ftp://hooks.example.test/\", secret: s}}\n",
            "ops",
        ),
        (
            "alerts:\n  - {name: ops, pager: {url: \"https://hooks.example.test/\"}}\n",
            "serve.yaml:5:5: alerts",
        ),
        (
            "schedules:\n  - {name: nightly, cron: \"30 2 * * *\", timezone: Mars/Base}\n",
            "schedules[0] (nightly): timezone \"Mars/Base\"",
        ),
        (
            "windows:\n  - {name: m, cron: \"0 2 * * 6\"}\n",
            "windows[0] (m): duration",
        ),
        (
            "windows:\n  - {name: m, asset: db, target: 198.18.0.10, start: 2026-12-05T22:00:00Z, end: 2026-12-06T02:00:00Z}\n",
            "windows[0] (m): give one of asset, target or tag",
        ),
        (
            "windows:\n  - {name: m, start: 2026-12-06T22:00:00Z, end: 2026-12-06T02:00:00Z}\n",
            "windows[0] (m): end",
        ),
        (
            "windows:\n  - {name: m, start: yesterday, end: 2026-12-06T02:00:00Z}\n",
            "serve.yaml:5",
        ),
        (
            "alerts:\n  - {name: ops, webhook: {url: \"https://hooks.example.test/\", secret: s}}\nescalation:\n  - {after: 30m, to: pager}\n",
            "escalation[0]: to: no alert channel named \"pager\"",
        ),
        (
            "alerts:\n  - {name: ops, webhook: {url: \"https://hooks.example.test/\", secret: s}}\nescalation:\n  - {after: soon, to: ops}\n",
            "escalation[0]: after",
        ),
        (
            "public_url: https://portgate.example.test\n",
            "public_url and link_secret go together",
        ),
        (
            "public_url: https://portgate.example.test\nlink_secret: short\n",
            "link_secret: 5 bytes",
        ),
    ] {
        std::fs::write(
            &config,
            format!("db: {db}\nscope: [127.0.0.0/8]\nmanifests: [exposure.yaml]\n{monitoring}"),
        )
        .unwrap();
        let (code, _, err) = run(&["serve", "--config", &config.display().to_string()]);
        assert_eq!(code, 2, "{monitoring}: {err}");
        assert!(err.contains(expected), "{monitoring}: {err}");
    }
}

/// `portgate window` on a store: made, listed, refused when invalid, deleted.
#[test]
fn windows_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("portgate.db").display().to_string();
    let (code, out, err) = run(&[
        "window",
        "add",
        "db-move",
        "--scope",
        "asset:orders-db",
        "--start",
        "2026-12-05T22:00:00Z",
        "--end",
        "2026-12-06T02:00:00Z",
        "--comment",
        "new cluster",
        "--by",
        "alice",
        "--db",
        &db,
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.starts_with("db-move\tasset:orders-db\t2026-12-05T22:00:00"),
        "{out}"
    );
    let (code, _, err) = run(&[
        "window",
        "add",
        "sat",
        "--cron",
        "0 22 * * 6",
        "--timezone",
        "Europe/Berlin",
        "--duration",
        "2h",
        "--db",
        &db,
    ]);
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = run(&["window", "list", "--db", &db]);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(
        lines[1].contains("cron \"0 22 * * 6\" Europe/Berlin for 7200s"),
        "{out}"
    );
    for (args, expected) in [
        (
            vec![
                "window",
                "add",
                "x",
                "--scope",
                "host:a",
                "--start",
                "2026-12-05T22:00:00Z",
                "--end",
                "2026-12-06T02:00:00Z",
            ],
            "scope",
        ),
        (
            vec![
                "window",
                "add",
                "x",
                "--cron",
                "0 2 * * *",
                "--duration",
                "1h",
                "--timezone",
                "Mars/Base",
            ],
            "timezone \"Mars/Base\"",
        ),
        (
            vec!["window", "add", "x", "--cron", "0 2 * * *"],
            "--duration",
        ),
        (vec!["window", "delete", "nothing"], "no window nothing"),
    ] {
        let mut args = args;
        args.extend(["--db", &db]);
        let (code, _, err) = run(&args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(err.contains(expected), "{args:?}: {err}");
    }
    let (code, out, err) = run(&["window", "delete", "db-move", "--db", &db]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), "db-move: deleted");
    let (_, out, _) = run(&["window", "list", "--db", &db]);
    assert_eq!(out.lines().count(), 1, "{out}");
}
