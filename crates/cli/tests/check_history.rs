//! `portgate check --db`: the real binary checks a real SSH-greeting listener on 127.0.0.1
//! twice while its version changes, against a SQLite file in a temporary directory and a fresh
//! database on the PostgreSQL server of 127.0.0.1:5432; the manifest lies in a git repository
//! made in the test, so the stored scans and checks carry its revision.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use portgate_store::{Location, Store};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

mod history_db;
use history_db::block_on;
use portgate_test_support::db::postgres_blocking;

/// Runs `portgate` (without the caller's $PORTGATE_DB unless `env` sets it); returns (exit
/// code, stdout, stderr).
fn portgate(args: &[&str], env: &[(&str, &Path)]) -> (i32, String, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_portgate"));
    command.args(args).env_remove("PORTGATE_DB");
    for (key, value) in env {
        command.env(key, value);
    }
    let out = command.output().expect("portgate runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A TCP server on 127.0.0.1 that greets every connection with the current banner, as an
/// SSH server does, then waits (at most 2 s) for the client to hang up.
struct SshGreeter {
    port: u16,
    banner: Arc<Mutex<String>>,
}

impl SshGreeter {
    fn start(banner: &str) -> SshGreeter {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let banner = Arc::new(Mutex::new(banner.to_string()));
        let shared = Arc::clone(&banner);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let greeting = shared.lock().expect("banner").clone();
                std::thread::spawn(move || {
                    let _ = stream.write_all(greeting.as_bytes());
                    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
                    let mut buf = [0u8; 1024];
                    while matches!(stream.read(&mut buf), Ok(n) if n > 0) {}
                });
            }
        });
        SshGreeter { port, banner }
    }

    /// The server now runs another version.
    fn upgrade(&self, banner: &str) {
        *self.banner.lock().expect("banner") = banner.to_string();
    }
}

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args([
            "-c",
            "user.name=portgate test",
            "-c",
            "user.email=test@example.test",
            "-c",
            "commit.gpgsign=false",
        ])
        .args(args)
        .output()
        .expect("git runs (the tests need git)");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// `exposure.yaml` approving SSH on `port` of 127.0.0.1, committed to a new git repository
/// in `dir`; returns the manifest's path and the commit.
fn manifest_in_git(dir: &Path, port: u16) -> (String, String) {
    git(dir, &["init", "-q"]);
    let path = dir.join("exposure.yaml");
    std::fs::write(
        &path,
        format!(
            "version: 1\nassets:\n  - name: bastion\n    owner: team-ops\n    targets: [127.0.0.1]\n    ports: T:{port}\n    approved:\n      - port: {port}\n        service: ssh\n        justification: SSH from the bastion network\n"
        ),
    )
    .expect("write the manifest");
    git(dir, &["add", "exposure.yaml"]);
    git(dir, &["commit", "-q", "-m", "exposure"]);
    (path.display().to_string(), git(dir, &["rev-parse", "HEAD"]))
}

fn open(db: &str) -> Store {
    block_on(Store::open(&Location::parse(db).expect("location"))).expect("open the store")
}

/// Two checks of the same port while its SSH server is upgraded: the second warns about the
/// version change (exit 0, warnings pass), the history has both scans with their findings
/// and the manifest's commit; an uncommitted edit of the manifest is recorded as `-dirty`.
fn version_change_flow(db: &str, backend: &str) {
    let server = SshGreeter::start("SSH-2.0-OpenSSH_9.2p1\r\n");
    let repo = tempfile::tempdir().expect("tempdir");
    let (manifest, commit) = manifest_in_git(repo.path(), server.port);
    let evidence = repo.path().join("evidence.json").display().to_string();
    let check = |evidence: &str| {
        portgate(
            &[
                "check",
                "--manifest",
                &manifest,
                "--connect",
                "--db",
                db,
                "--json",
                evidence,
            ],
            &[],
        )
    };

    let (code, stdout, stderr) = check(&evidence);
    assert_eq!(code, 0, "{backend}: stdout: {stdout}\nstderr: {stderr}");
    assert!(stdout.starts_with("portgate check: PASS"), "{stdout}");
    assert!(!stdout.contains("changed since"), "first check: {stdout}");
    assert!(
        stderr.contains(&format!(
            "saved as scan 1, check 1 (manifest revision {commit})"
        )),
        "{backend}: {stderr}"
    );

    server.upgrade("SSH-2.0-OpenSSH_9.6p1\r\n");
    let (code, stdout, stderr) = check(&evidence);
    assert_eq!(
        code, 0,
        "{backend}: a change is a warning: {stdout}\n{stderr}"
    );
    assert!(
        stderr.contains("127.0.0.1: compared with scan 1 of "),
        "{stderr}"
    );
    let line = stdout
        .lines()
        .position(|l| l.contains("changed-since-last-scan"))
        .unwrap_or_else(|| panic!("{backend}: no change reported: {stdout}"));
    let text = stdout
        .lines()
        .skip(line)
        .take(2)
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        text.contains("version 9.2p1 -> 9.6p1"),
        "{backend}: the old and new versions are named: {text}"
    );
    assert!(
        stdout.contains("WARNINGS"),
        "{backend}: under warnings: {stdout}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&evidence).expect("evidence")).unwrap();
    assert_eq!(json["outcome"], "warn", "{json}");
    let changed: Vec<&serde_json::Value> = json["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["rule"] == "changed-since-last-scan")
        .collect();
    assert_eq!(changed.len(), 1, "{json}");
    assert_eq!(changed[0]["outcome"], "warn");
    assert_eq!(changed[0]["port"], server.port);
    assert_eq!(changed[0]["version"], "9.6p1");

    // The history: both scans, each with its check and the manifest's commit.
    let store = open(db);
    let scans = block_on(store.scans_of_target("127.0.0.1", None)).expect("scans");
    assert_eq!(scans.len(), 2, "{backend}: {scans:?}");
    for scan in &scans {
        assert_eq!(scan.manifest_revision.as_deref(), Some(commit.as_str()));
        assert_eq!(scan.open, 1, "{scan:?}");
    }
    let version_of = |id| {
        let report = block_on(store.load_report(id)).expect("report");
        report.hosts[0].services[0].detection.version.clone()
    };
    assert_eq!(version_of(scans[0].id).as_deref(), Some("9.2p1"));
    assert_eq!(version_of(scans[1].id).as_deref(), Some("9.6p1"));
    let first = block_on(store.checks_of_scan(scans[0].id)).expect("checks");
    let second = block_on(store.checks_of_scan(scans[1].id)).expect("checks");
    assert_eq!((first.len(), second.len()), (1, 1));
    assert_eq!(first[0].manifest_revision.as_deref(), Some(commit.as_str()));
    assert_eq!(
        second[0].manifest_revision.as_deref(),
        Some(commit.as_str())
    );
    assert!(
        !first[0]
            .findings
            .iter()
            .any(|f| f.rule.id() == "changed-since-last-scan"),
        "{:?}",
        first[0].findings
    );
    // The stored findings are the ones reported.
    let reported: Vec<portgate_model::Finding> =
        serde_json::from_value(json["findings"].clone()).expect("findings");
    assert_eq!(second[0].findings, reported);
    block_on(store.close());

    // `portgate history` reads the same database.
    let (code, history, stderr) = portgate(&["history", "127.0.0.1", "--db", db], &[]);
    assert_eq!(code, 0, "{stderr}");
    assert!(history.contains("2 scans"), "{history}");

    // An edit not yet committed: the revision says so.
    let mut text = std::fs::read_to_string(&manifest).expect("manifest");
    text.push_str("# an edit\n");
    std::fs::write(&manifest, text).expect("edit the manifest");
    let (code, stdout, stderr) = check(&evidence);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(
        stderr.contains(&format!("(manifest revision {commit}-dirty)")),
        "{stderr}"
    );
    assert!(
        !stdout.contains("changed-since-last-scan"),
        "nothing changed since the second check: {stdout}"
    );
    let store = open(db);
    let scans = block_on(store.scans_of_target("127.0.0.1", None)).expect("scans");
    assert_eq!(
        scans[2].manifest_revision.as_deref(),
        Some(format!("{commit}-dirty").as_str())
    );
    block_on(store.close());
}

#[test]
fn a_changed_ssh_version_warns_and_both_checks_are_stored_in_sqlite() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("history.db").display().to_string();
    version_change_flow(&db, "sqlite");
}

#[test]
fn a_changed_ssh_version_warns_and_both_checks_are_stored_in_postgresql() {
    let pg = postgres_blocking("portgate_check_version");
    version_change_flow(&pg.url, "postgres");
}

/// `$PORTGATE_DB` saves a check as it saves a scan; a manifest outside any git work tree is
/// checked and saved without a revision; a check without a database saves nothing.
#[test]
fn portgate_db_saves_checks_and_a_manifest_outside_git_has_no_revision() {
    let server = SshGreeter::start("SSH-2.0-OpenSSH_9.2p1\r\n");
    let dir = tempfile::tempdir().expect("tempdir");
    let manifest = dir.path().join("exposure.yaml");
    std::fs::write(
        &manifest,
        format!(
            "version: 1\nassets:\n  - name: bastion\n    targets: [127.0.0.1]\n    ports: T:{p}\n    approved:\n      - port: {p}\n        service: ssh\n        justification: SSH\n",
            p = server.port
        ),
    )
    .expect("write the manifest");
    let manifest = manifest.display().to_string();
    let db = dir.path().join("nested").join("history.db");
    let args = ["check", "--manifest", &manifest, "--connect"];

    let (code, stdout, stderr) = portgate(&args, &[]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(!stderr.contains("saved as scan"), "{stderr}");
    assert!(
        !db.exists(),
        "no database without --db, --save or $PORTGATE_DB"
    );

    let (code, stdout, stderr) = portgate(&args, &[("PORTGATE_DB", &db)]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(stderr.contains("saved as scan 1, check 1 in"), "{stderr}");
    let store = open(&db.display().to_string());
    let scans = block_on(store.scans_of_target("127.0.0.1", None)).expect("scans");
    assert_eq!(scans.len(), 1);
    assert_eq!(scans[0].manifest_revision, None);
    let checks = block_on(store.checks_of_scan(scans[0].id)).expect("checks");
    assert_eq!(checks.len(), 1);
    assert_eq!(checks[0].manifest_revision, None);
    assert!(
        checks[0]
            .findings
            .iter()
            .any(|f| f.port == Some(server.port)),
        "{:?}",
        checks[0].findings
    );
    block_on(store.close());

    // A database that cannot be opened is a usage error before anything is scanned.
    let (code, _, stderr) = portgate(
        &[
            "check",
            "--manifest",
            &manifest,
            "--connect",
            "--db",
            "mysql://127.0.0.1/portgate",
        ],
        &[],
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("mysql"), "{stderr}");
}
