//! `portgate scan --db`, `history`, `diff` and `db` against a SQLite file and a fresh
//! database on the PostgreSQL server of 127.0.0.1:5432: real scans of real listeners on
//! 127.0.0.1, a real kill -9 in the middle of a scan, real concurrent writers.

#![allow(clippy::unwrap_used)]

use portgate_store::{Location, Store, StoredStatus};
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod history_db;
use history_db::block_on;
use portgate_test_support::db::{TestDb, backends_blocking};

/// A SQLite file in a temporary directory, and a database made on the PostgreSQL server
/// (named after `test`) and dropped afterwards.
fn backends(test: &str) -> Vec<TestDb> {
    backends_blocking(&format!("portgate_cli_{test}"))
}

fn portgate(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_portgate"))
        .args(args)
        .env_remove("PORTGATE_DB")
        .output()
        .expect("portgate runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn store(db: &TestDb) -> Store {
    block_on(Store::open(&Location::parse(&db.url).expect("location"))).expect("open")
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

#[test]
fn scans_are_saved_and_history_diff_prune_export_read_them() {
    for db in backends("flow") {
        let keep = TcpListener::bind("127.0.0.1:0").expect("bind");
        let keep_port = keep.local_addr().expect("addr").port();
        let gone = TcpListener::bind("127.0.0.1:0").expect("bind");
        let gone_port = gone.local_addr().expect("addr").port();
        let ports = format!("{keep_port},{gone_port}");
        let scan = |n: usize| {
            let (code, _, stderr) = portgate(&[
                "scan",
                "127.0.0.1",
                "-p",
                &ports,
                "--connect",
                "--db",
                &db.url,
            ]);
            assert_eq!(code, 0, "{}: scan {n}: {stderr}", db.name);
            assert!(stderr.contains("saved as scan"), "{stderr}");
        };
        scan(1);
        drop(gone);
        scan(2);

        let (code, table, stderr) = portgate(&["history", "127.0.0.1", "--db", &db.url]);
        assert_eq!(code, 0, "{stderr}");
        assert!(
            table.contains("127.0.0.1: 2 scans, newest first"),
            "{table}"
        );
        assert!(table.contains(&format!("-{gone_port}/tcp")), "{table}");
        assert!(table.contains("first"), "{table}");

        let (code, json, _) = portgate(&["history", "127.0.0.1", "--db", &db.url, "-o", "json"]);
        assert_eq!(code, 0);
        let value: serde_json::Value = serde_json::from_str(&json).expect("JSON");
        let snapshots = value["snapshots"].as_array().expect("snapshots");
        assert_eq!(snapshots.len(), 2);
        assert_eq!(snapshots[0]["open"], 1);
        assert_eq!(snapshots[1]["open"], 2);
        let ids: Vec<i64> = snapshots
            .iter()
            .map(|s| s["scan"]["id"].as_i64().expect("id"))
            .collect();

        // Two scans: a plain difference.
        let (code, out, stderr) = portgate(&[
            "diff",
            &ids[1].to_string(),
            &ids[0].to_string(),
            "--db",
            &db.url,
        ]);
        assert_eq!(code, 0, "{stderr}");
        assert!(out.contains(&format!("127.0.0.1:{gone_port}/tcp")), "{out}");
        assert!(out.contains("open-to-closed"), "{out}");
        assert!(out.contains("confirmed"), "{out}");
        // Over a period: flap control holds the single closed observation as pending...
        let (code, out, _) = portgate(&["diff", "127.0.0.1", "--since", "1h", "--db", &db.url]);
        assert_eq!(code, 0);
        assert!(out.contains("pending (1 of 2)"), "{}: {out}", db.name);
        // ...until a second scan confirms it.
        scan(3);
        let (_, out, _) = portgate(&[
            "diff",
            "127.0.0.1",
            "--since",
            "1h",
            "--db",
            &db.url,
            "-o",
            "json",
        ]);
        let value: serde_json::Value = serde_json::from_str(&out).expect("JSON");
        let changes = value["changes"].as_array().expect("changes");
        assert_eq!(changes.len(), 1, "{out}");
        assert_eq!(changes[0]["kind"], "open-to-closed");
        assert_eq!(changes[0]["status"], "confirmed");
        assert_eq!(changes[0]["port"], gone_port);

        // Bad input: clear errors, exit 2.
        let (code, _, stderr) = portgate(&["diff", "1", "x", "--db", &db.url]);
        assert_eq!(code, 2);
        assert!(stderr.contains("\"x\" is not a scan id"), "{stderr}");
        let (code, _, stderr) = portgate(&["diff", "1", "999999", "--db", &db.url]);
        assert_eq!(code, 2);
        assert!(stderr.contains("no scan with id 999999"), "{stderr}");

        // Export: one line per scan, each with the full report.
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("history.jsonl");
        let file_arg = file.display().to_string();
        let (code, _, stderr) = portgate(&["db", "export", "--jsonl", &file_arg, "--db", &db.url]);
        assert_eq!(code, 0, "{stderr}");
        let text = std::fs::read_to_string(&file).expect("export file");
        assert_eq!(text.lines().count(), 3);
        for line in text.lines() {
            let v: serde_json::Value = serde_json::from_str(line).expect("JSON line");
            assert_eq!(v["report"]["hosts"][0]["ip"], "127.0.0.1");
        }

        // Prune to the newest scan.
        let (code, _, stderr) = portgate(&["db", "prune", "--keep-scans", "1", "--db", &db.url]);
        assert_eq!(code, 0, "{stderr}");
        assert!(stderr.contains("deleted 2 scan(s)"), "{stderr}");
        let (code, table, _) = portgate(&["history", "127.0.0.1", "--db", &db.url]);
        assert_eq!(code, 0);
        assert!(table.contains("1 scan, newest first"), "{table}");
        let (code, _, stderr) = portgate(&["db", "prune", "--db", &db.url]);
        assert_eq!(code, 2, "{stderr}");
        drop(keep);
    }
}

#[test]
fn a_killed_scan_is_marked_incomplete_and_earlier_scans_are_intact() {
    for db in backends("kill") {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port().to_string();
        let (code, _, stderr) = portgate(&[
            "scan",
            "127.0.0.1",
            "-p",
            &port,
            "--connect",
            "--db",
            &db.url,
        ]);
        assert_eq!(code, 0, "{stderr}");
        let earlier = {
            let store = store(&db);
            let scans = block_on(store.scans(10)).expect("scans");
            assert_eq!(scans.len(), 1);
            let report = block_on(store.load_report(scans[0].id)).expect("report");
            (scans[0].clone(), report)
        };

        // Every port at 50 probes a second: minutes of work, killed after it has begun.
        let mut child = Command::new(env!("CARGO_BIN_EXE_portgate"))
            .args([
                "scan",
                "127.0.0.1",
                "-p",
                "1-65535",
                "--connect",
                "--rate",
                "50",
                "--db",
                &db.url,
            ])
            .env_remove("PORTGATE_DB")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn a long scan");
        let started = Instant::now();
        let running = loop {
            let scans = {
                let store = store(&db);
                let scans = block_on(store.scans(10)).expect("scans");
                block_on(store.close());
                scans
            };
            if let Some(s) = scans.iter().find(|s| s.status == StoredStatus::Running) {
                break s.id;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "{}: the scan never showed as running",
                db.name
            );
            std::thread::sleep(Duration::from_millis(100));
        };
        std::thread::sleep(Duration::from_millis(500));
        assert!(
            child.try_wait().expect("try_wait").is_none(),
            "still scanning"
        );
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(i32::try_from(child.id()).expect("pid")),
            nix::sys::signal::Signal::SIGKILL,
        )
        .expect("kill -9");
        child.wait().expect("reap");

        // The next use of the database marks it incomplete; the earlier scan is untouched.
        let store = store(&db);
        let record = block_on(store.scan(running)).expect("record");
        assert_eq!(record.status, StoredStatus::Incomplete, "{}", db.name);
        assert!(
            record.incomplete_reasons[0].contains("interrupted"),
            "{:?}",
            record.incomplete_reasons
        );
        assert_eq!(record.finished_at, None);
        assert_eq!(
            block_on(store.scan(earlier.0.id)).expect("earlier"),
            earlier.0
        );
        assert_eq!(
            block_on(store.load_report(earlier.0.id)).expect("earlier report"),
            earlier.1
        );
        block_on(store.close());
        // The history shows the finished scan's ports, and says the other was interrupted.
        let (code, table, stderr) = portgate(&["history", "127.0.0.1", "--db", &db.url]);
        assert_eq!(code, 0, "{stderr}");
        assert!(table.contains("completed"), "{table}");
        assert!(
            table.contains(&format!("scan {running} started")) && table.contains("interrupted"),
            "{table}"
        );
        drop(listener);
    }
}

#[test]
fn concurrent_scan_processes_lose_nothing() {
    const WRITERS: usize = 4;
    for db in backends("concurrent") {
        let listeners: Vec<TcpListener> = (0..WRITERS)
            .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind"))
            .collect();
        let closed = free_port();
        // Each process scans its own open port and a shared closed one, all at once.
        let children: Vec<_> = listeners
            .iter()
            .map(|l| {
                let ports = format!("{},{closed}", l.local_addr().expect("addr").port());
                Command::new(env!("CARGO_BIN_EXE_portgate"))
                    .args([
                        "scan",
                        "127.0.0.1",
                        "-p",
                        &ports,
                        "--connect",
                        "--db",
                        &db.url,
                    ])
                    .env_remove("PORTGATE_DB")
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped())
                    .spawn()
                    .expect("spawn")
            })
            .collect();
        for child in children {
            let out = child.wait_with_output().expect("wait");
            assert!(
                out.status.success(),
                "{}: {}",
                db.name,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let store = store(&db);
        let scans = block_on(store.scans(100)).expect("scans");
        assert_eq!(scans.len(), WRITERS, "{}", db.name);
        let mut open_ports: Vec<u16> = Vec::new();
        for s in &scans {
            assert_eq!(s.status, StoredStatus::Completed);
            let report = block_on(store.load_report(s.id)).expect("report");
            assert_eq!(report.hosts[0].ports.len(), 2);
            open_ports.extend(
                report.hosts[0]
                    .ports
                    .iter()
                    .filter(|p| p.state == portgate_model::PortState::Open)
                    .map(|p| p.port),
            );
        }
        open_ports.sort_unstable();
        let mut expected: Vec<u16> = listeners
            .iter()
            .map(|l| l.local_addr().expect("addr").port())
            .collect();
        expected.sort_unstable();
        assert_eq!(open_ports, expected, "{}", db.name);
        let history = block_on(store.history("127.0.0.1", 100)).expect("history");
        assert_eq!(history.len(), WRITERS);
        block_on(store.close());
    }
}

#[test]
fn the_default_database_is_portgate_db_then_xdg_data_home() {
    let dir = tempfile::tempdir().expect("tempdir");
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port().to_string();
    let run = |args: &[&str], envs: &[(&str, &std::path::Path)]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_portgate"));
        cmd.args(args)
            .env_remove("PORTGATE_DB")
            .env_remove("XDG_DATA_HOME");
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let out = cmd.output().expect("portgate runs");
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    // $PORTGATE_DB: every scan is saved there, and history reads it.
    let env_db = dir.path().join("env.db");
    run(
        &["scan", "127.0.0.1", "-p", &port, "--connect"],
        &[("PORTGATE_DB", &env_db)],
    );
    assert!(env_db.exists());
    let table = run(&["history", "127.0.0.1"], &[("PORTGATE_DB", &env_db)]);
    assert!(table.contains("1 scan, newest first"), "{table}");
    // `--save`: $XDG_DATA_HOME/portgate/history.db.
    let xdg = dir.path().join("xdg");
    run(
        &["scan", "127.0.0.1", "-p", &port, "--connect", "--save"],
        &[("XDG_DATA_HOME", &xdg)],
    );
    assert!(xdg.join("portgate/history.db").exists());
    let table = run(&["history", "127.0.0.1"], &[("XDG_DATA_HOME", &xdg)]);
    assert!(table.contains("1 scan, newest first"), "{table}");
    // Without --db, --save or $PORTGATE_DB a scan saves nothing.
    let other = dir.path().join("other");
    run(
        &["scan", "127.0.0.1", "-p", &port, "--connect"],
        &[("XDG_DATA_HOME", &other)],
    );
    assert!(!other.exists());
    drop(listener);
}
