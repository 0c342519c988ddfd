//! Exit codes are chosen by the kind of failure, the same in every command: one row per
//! command and kind, each run through the real binary (0 done, 1 policy failure, 2 usage or
//! input, 3 the work could not complete). Every target is 127.0.0.1; no row needs root.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{closed_port, run};
use std::net::TcpListener;
use std::path::Path;

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

#[test]
fn every_command_exits_by_the_kind_of_failure() {
    let dir = tempfile::tempdir().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let open = listener.local_addr().unwrap().port().to_string();
    let closed = closed_port().to_string();
    let db = dir.path().join("history.db").display().to_string();
    let missing_dir = dir.path().join("no/such/dir/out").display().to_string();
    let bad_ca = write(dir.path(), "ca.pem", "not a certificate\n");
    let manifest = |ports: &str, approved: &str| {
        write(
            dir.path(),
            &format!("m-{}.yaml", ports.replace([':', ',', '-'], "_")),
            &format!(
                "version: 1\nassets:\n  - name: app\n    environment: staging\n    targets: [127.0.0.1]\n    ports: {ports}\n    approved: [{approved}]\n"
            ),
        )
    };
    let quiet = manifest(&format!("T:{closed}"), "");
    let unapproved = manifest(&format!("T:{open}"), "");
    let everything = manifest("T:1-65535", "");
    let bad_version = write(dir.path(), "v2.yaml", "version: 2\nassets: []\n");
    let unsupported_db = "mysql://db.example.test/portgate";

    // (command and kind, arguments, exit code, a piece of the message)
    let rows: Vec<(&str, Vec<&str>, i32, &str)> = vec![
        // scan
        (
            "scan: done",
            vec!["scan", "127.0.0.1", "-p", &closed, "--connect"],
            0,
            "",
        ),
        (
            "scan: bad port",
            vec!["scan", "127.0.0.1", "-p", "70000"],
            2,
            "70000",
        ),
        (
            "scan: over the address limit",
            vec!["scan", "127.0.0.0/30", "-p", &closed, "--max-hosts", "1"],
            2,
            "limit",
        ),
        (
            "scan: unusable CA file",
            vec![
                "scan",
                "127.0.0.1",
                "-p",
                &closed,
                "--detect",
                "--ca",
                &bad_ca,
            ],
            2,
            "ca.pem",
        ),
        (
            "scan: unsupported history database",
            vec!["scan", "127.0.0.1", "-p", &closed, "--db", unsupported_db],
            2,
            "unsupported database",
        ),
        (
            "scan: output file cannot be written",
            vec![
                "scan",
                "127.0.0.1",
                "-p",
                &closed,
                "--connect",
                "--output-file",
                &missing_dir,
            ],
            2,
            "cannot write",
        ),
        (
            "scan: deadline reached",
            vec!["scan", "127.0.0.1", "-p-", "--connect", "--deadline", "1ms"],
            3,
            "incomplete",
        ),
        // check
        (
            "check: pass",
            vec!["check", "--manifest", &quiet, "--connect"],
            0,
            "",
        ),
        (
            "check: policy failure",
            vec!["check", "--manifest", &unapproved, "--connect"],
            1,
            "",
        ),
        (
            "check: missing manifest",
            vec!["check", "--manifest", "/nonexistent/exposure.yaml"],
            2,
            "exposure.yaml",
        ),
        (
            "check: invalid manifest",
            vec!["check", "--manifest", &bad_version],
            2,
            "v2.yaml",
        ),
        (
            "check: unknown environment",
            vec!["check", "--manifest", &quiet, "--env", "production"],
            2,
            "production",
        ),
        (
            "check: unusable CA file",
            vec!["check", "--manifest", &quiet, "--ca", &bad_ca],
            2,
            "ca.pem",
        ),
        (
            "check: unsupported history database",
            vec!["check", "--manifest", &quiet, "--db", unsupported_db],
            2,
            "unsupported database",
        ),
        (
            "check: output file cannot be written",
            vec![
                "check",
                "--manifest",
                &quiet,
                "--connect",
                "--json",
                &missing_dir,
            ],
            2,
            "cannot write",
        ),
        (
            "check: deadline reached (inconclusive)",
            vec![
                "check",
                "--manifest",
                &everything,
                "--connect",
                "--deadline",
                "1ms",
            ],
            3,
            "",
        ),
        // baseline
        (
            "baseline init: bad port set",
            vec!["baseline", "init", "127.0.0.1", "-p", "T:0"],
            2,
            "T:0",
        ),
        // history, diff, db
        (
            "history: unsupported database",
            vec!["history", "127.0.0.1", "--db", unsupported_db],
            2,
            "unsupported database",
        ),
        (
            "diff: not a scan id",
            vec!["diff", "a", "b", "--db", &db],
            2,
            "not a scan id",
        ),
        (
            "diff: no such scan",
            vec!["diff", "1", "2", "--db", &db],
            2,
            "",
        ),
        (
            "db export: file cannot be created",
            vec!["db", "export", "--jsonl", &missing_dir, "--db", &db],
            2,
            "cannot write",
        ),
        // audit
        (
            "audit: output file cannot be written",
            vec!["audit", "--output-file", &missing_dir],
            2,
            "cannot write",
        ),
    ];
    let mut wrong = Vec::new();
    for (what, args, code, needle) in &rows {
        let (got, _stdout, stderr) = run(args);
        if got != *code || !stderr.contains(needle) {
            wrong.push(format!(
                "{what}: exit {got} (want {code}), stderr: {stderr}"
            ));
        }
    }
    drop(listener);
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
