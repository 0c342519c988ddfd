//! The application rules end to end: the real binary's `check` against a server on
//! 127.0.43.1:8888 that answers as a Jupyter Notebook without a token does (the answers of
//! the Debian package's notebook 6.4.12, recorded in the daemon zoo; the zoo's own test
//! runs the real one). The approval without `application` fails twice (the management
//! interface, and its API without a token, with the proof in every output); naming the
//! application and accepting the proven exposures passes; `--no-app-checks` leaves them
//! alone.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::run;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::time::Duration;

/// Answers like Jupyter Notebook 6.4.12 without a token; returns the address.
fn jupyter_without_token() -> SocketAddr {
    let listener = TcpListener::bind("127.0.43.1:8888")
        .or_else(|_| TcpListener::bind("127.0.43.2:8888"))
        .expect("a loopback address for port 8888");
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            std::thread::spawn(move || {
                let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
                let mut buf = Vec::new();
                let mut chunk = [0u8; 1024];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 16384 {
                    match s.read(&mut chunk) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&buf).into_owned();
                let path = head.split_whitespace().nth(1).unwrap_or("/");
                let (status, extra, body) = match path {
                    "/" => ("302 Found", "Location: /tree?\r\n", String::new()),
                    "/api" => ("200 OK", "", r#"{"version": "6.4.12"}"#.to_owned()),
                    "/api/kernels" => ("200 OK", "", "[]".to_owned()),
                    "/api/contents" => (
                        "200 OK",
                        "",
                        r#"{"name": "", "path": "", "type": "directory", "content": []}"#
                            .to_owned(),
                    ),
                    _ => (
                        "404 Not Found",
                        "",
                        "<title>404 : Not Found</title>".to_owned(),
                    ),
                };
                let answer = format!(
                    "HTTP/1.1 {status}\r\nServer: TornadoServer/6.2\r\nContent-Type: text/html; charset=UTF-8\r\n{extra}Content-Length: {}\r\n\r\n{body}",
                    body.len()
                );
                let _ = s.write_all(answer.as_bytes());
            });
        }
    });
    addr
}

fn manifest(dir: &Path, ip: &str, approval_extra: &str) -> String {
    let path = dir.join("exposure.yaml");
    std::fs::write(
        &path,
        format!(
            "version: 1\nassets:\n  - name: notebooks\n    owner: team-data\n    targets: [{ip}]\n    ports: T:8888\n    approved:\n      - port: 8888\n        justification: the data team's notebook\n{approval_extra}"
        ),
    )
    .unwrap();
    path.display().to_string()
}

#[test]
fn application_findings_fail_the_gate_with_their_proof() {
    let addr = jupyter_without_token();
    let ip = addr.ip().to_string();
    let dir = tempfile::tempdir().unwrap();
    let plain = manifest(dir.path(), &ip, "");
    let sarif = dir.path().join("s.sarif").display().to_string();
    let md = dir.path().join("m.md").display().to_string();
    let json = dir.path().join("e.json").display().to_string();
    let (code, stdout, stderr) = run(&[
        "check",
        "--manifest",
        &plain,
        "--connect",
        "--sarif",
        &sarif,
        "--markdown",
        &md,
        "--json",
        &json,
    ]);
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert!(stdout.contains("[exposed-management-ui]"), "{stdout}");
    assert!(stdout.contains("[unauthenticated-api]"), "{stdout}");
    assert!(stdout.contains("Jupyter Notebook 6.4.12"), "{stdout}");
    assert!(stdout.contains("application: jupyter"), "{stdout}");

    let log: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&sarif).unwrap()).unwrap();
    let results = log["runs"][0]["results"].as_array().unwrap();
    let kernels = results
        .iter()
        .find(|r| {
            r["ruleId"] == "unauthenticated-api"
                && r["properties"]["proof"]["request"]
                    .as_str()
                    .is_some_and(|q| q.ends_with(":8888/api/kernels"))
        })
        .unwrap_or_else(|| panic!("no kernels result: {results:#?}"));
    assert_eq!(kernels["properties"]["proof"]["status"], 200);
    let md_message = kernels["message"]["markdown"].as_str().unwrap();
    assert!(md_message.contains("Proof: `GET http://"), "{md_message}");
    assert!(md_message.contains("```"), "{md_message}");
    // Two proofs of one rule on one port are two results (their fingerprints differ).
    let prints: std::collections::BTreeSet<&str> = results
        .iter()
        .filter(|r| r["ruleId"] == "unauthenticated-api")
        .filter_map(|r| {
            r["partialFingerprints"]
                .as_object()?
                .values()
                .next()?
                .as_str()
        })
        .collect();
    assert_eq!(prints.len(), 2, "{results:#?}");
    let rules: Vec<&str> = log["runs"][0]["tool"]["driver"]["rules"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["id"].as_str())
        .collect();
    for rule in [
        "exposed-management-ui",
        "unauthenticated-api",
        "debug-endpoint-exposed",
        "default-credentials",
    ] {
        assert!(rules.contains(&rule), "{rules:?}");
    }

    let markdown = std::fs::read_to_string(&md).unwrap();
    assert!(markdown.contains("proof: `GET http://"), "{markdown}");
    let evidence: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let findings = evidence["findings"].as_array().unwrap();
    assert!(
        findings
            .iter()
            .any(|f| f["rule"] == "unauthenticated-api" && f["proof"]["answer"].is_string()),
        "{findings:#?}"
    );

    // Naming the application and accepting both proven exposures: pass.
    let accepted = manifest(
        dir.path(),
        &ip,
        "        application: jupyter\n        accept: [jupyter-kernels, jupyter-contents]\n",
    );
    let (code, stdout, stderr) = run(&["check", "--manifest", &accepted, "--connect"]);
    assert_eq!(code, 0, "{stdout}{stderr}");

    // Only one accepted: the other still fails.
    let half = manifest(
        dir.path(),
        &ip,
        "        application: jupyter\n        accept: [jupyter-kernels]\n",
    );
    let (code, stdout, _) = run(&["check", "--manifest", &half, "--connect"]);
    assert_eq!(code, 1, "{stdout}");
    assert!(stdout.contains("jupyter-contents"), "{stdout}");
    assert!(!stdout.contains("[exposed-management-ui]"), "{stdout}");

    // Without the application checks the plain approval passes.
    let (code, stdout, stderr) = run(&[
        "check",
        "--manifest",
        &plain,
        "--connect",
        "--no-app-checks",
    ]);
    assert_eq!(code, 0, "{stdout}{stderr}");

    // An accepted default login is refused before anything is scanned.
    let bad = manifest(dir.path(), &ip, "        accept: [default-credentials]\n");
    let (code, _, stderr) = run(&["check", "--manifest", &bad, "--connect"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("exposure.yaml:"), "{stderr}");
    assert!(stderr.contains("cannot be accepted"), "{stderr}");
}

#[test]
fn a_bad_application_file_is_a_usage_error_with_its_place() {
    let dir = tempfile::tempdir().unwrap();
    let apps = dir.path().join("apps.toml");
    std::fs::write(
        &apps,
        "[[app]]\nid = \"ours\"\nname = \"Ours\"\ncategory = \"api\"\n  [[app.identify]]\n  body = \"(\"\n",
    )
    .unwrap();
    let apps = apps.display().to_string();
    let (code, _, stderr) = run(&["scan", "127.0.0.1", "-p", "1", "--detect", "--apps", &apps]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("apps.toml:6:"), "{stderr}");
    assert!(stderr.contains("application \"ours\""), "{stderr}");
    assert!(stderr.contains("bad regex in `body`"), "{stderr}");
}
