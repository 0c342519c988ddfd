//! `portgate check` end to end, the real binary against real listeners on 127.0.0.1: a
//! Redis started here, openssl's TLS server with an expired certificate made in the test,
//! and the examples/ manifests and CI commands.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Listeners, closed_port, run};
use portgate_test_support::certs::{DAY, make_leaf};
use portgate_test_support::daemons::Redis;
use portgate_test_support::skip;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

/// An asset on 127.0.0.1 scanning Redis's port and a listener, approving only the listener.
fn redis_manifest(dir: &Path, redis: u16, approved: u16) -> String {
    write(
        dir,
        "exposure.yaml",
        &format!(
            "version: 1\nassets:\n  - name: cache-host\n    owner: team-cache\n    targets: [127.0.0.1]\n    ports: T:{redis},{approved}\n    approved:\n      - port: {approved}\n        justification: the app\n"
        ),
    )
}

#[test]
fn unapproved_redis_fails_with_exit_1_and_names_redis() {
    // A Redis of its own, on a free port: the service detected, not the port number,
    // makes it critical.
    let Some(redis) = Redis::start("unapproved_redis_fails_with_exit_1_and_names_redis") else {
        return;
    };
    let redis_port = redis.port;
    let listeners = Listeners::start(1);
    let dir = tempfile::tempdir().unwrap();
    let manifest = redis_manifest(dir.path(), redis_port, listeners.ports[0]);
    let outputs =
        ["e.json", "s.sarif", "j.xml", "m.md"].map(|f| dir.path().join(f).display().to_string());
    let (code, stdout, stderr) = run(&[
        "check",
        "--manifest",
        &manifest,
        "--connect",
        "--json",
        &outputs[0],
        "--sarif",
        &outputs[1],
        "--junit",
        &outputs[2],
        "--markdown",
        &outputs[3],
    ]);
    assert_eq!(code, 1, "stdout: {stdout}\nstderr: {stderr}");
    assert!(stdout.starts_with("portgate check: FAIL"), "{stdout}");
    let redis_tcp = format!("{redis_port}/tcp");
    let line = stdout
        .lines()
        .find(|l| l.contains(&format!(":{redis_port}")) || l.contains(&format!(" {redis_tcp}")))
        .unwrap_or_else(|| panic!("no line for {redis_port}: {stdout}"));
    for part in [
        "critical",
        "127.0.0.1",
        redis_tcp.as_str(),
        "redis",
        "unapproved-port",
        "team-cache",
    ] {
        assert!(
            line.contains(part),
            "{part} missing from {line:?}\n{stdout}"
        );
    }
    assert!(stdout.contains("Redis"), "the product is named: {stdout}");
    // Every output is written, from the same findings.
    let evidence: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&outputs[0]).unwrap()).unwrap();
    assert_eq!(evidence["outcome"], "fail");
    let finding = evidence["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["port"] == redis_port)
        .expect("a finding for the Redis port");
    assert_eq!(finding["rule"], "unapproved-port");
    assert_eq!(finding["service"], "redis");
    assert_eq!(finding["location"]["line"], 3);
    assert!(evidence["scan"]["hosts"][0]["ports"].is_array());
    let sarif: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&outputs[1]).unwrap()).unwrap();
    let result = &sarif["runs"][0]["results"][0];
    assert_eq!(result["ruleId"], "unapproved-port");
    assert_eq!(
        result["locations"][0]["physicalLocation"]["region"]["startLine"],
        3
    );
    assert!(
        std::fs::read_to_string(&outputs[2])
            .unwrap()
            .contains("<failure")
    );
    assert!(
        std::fs::read_to_string(&outputs[3])
            .unwrap()
            .contains("| critical | 127.0.0.1 |")
    );

    // Monitor mode: the same findings, exit 0.
    let (code, monitor_out, stderr) = run(&[
        "check",
        "--manifest",
        &manifest,
        "--connect",
        "--mode",
        "monitor",
    ]);
    assert_eq!(code, 0, "{stderr}");
    let failed = |out: &str| -> Vec<String> {
        out.lines()
            .filter(|l| l.contains("[unapproved-port]"))
            .map(str::to_string)
            .collect()
    };
    assert_eq!(failed(&monitor_out), failed(&stdout));
    assert!(monitor_out.contains("monitor mode"), "{monitor_out}");

    // --fail-on critical still fails on Redis; approving it passes.
    let (code, _, _) = run(&[
        "check",
        "--manifest",
        &manifest,
        "--connect",
        "--fail-on",
        "critical",
    ]);
    assert_eq!(code, 1);
}

#[test]
fn approved_tls_port_with_an_expired_self_signed_certificate_fails() {
    let openssl = "/usr/bin/openssl";
    if !Path::new(openssl).exists() {
        // .ci/run installs openssl.
        skip(
            "approved_tls_port_with_an_expired_self_signed_certificate_fails",
            "openssl missing",
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // Self-signed, valid for a year that ended a month ago.
    let cert = make_leaf(&["app.pg.test"], -DAY * 400, -DAY * 35, None).unwrap();
    let cert_path = write(dir.path(), "cert.pem", &cert.pem);
    let key_path = write(dir.path(), "key.pem", &cert.key.serialize_pem());
    // 443 itself when it is free here (root may bind it), else any free port.
    let port = match std::net::TcpListener::bind("127.0.0.1:443") {
        Ok(_) => 443,
        Err(_) => closed_port(),
    };
    let mut server = std::process::Command::new(openssl)
        .args([
            "s_server",
            "-quiet",
            "-accept",
            &format!("127.0.0.1:{port}"),
        ])
        .args(["-cert", &cert_path, "-key", &key_path])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let ready = (0..50).any(|_| {
        std::thread::sleep(Duration::from_millis(100));
        TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    let manifest = write(
        dir.path(),
        "exposure.yaml",
        &format!(
            "version: 1\nassets:\n  - name: web\n    owner: team-web\n    targets: [127.0.0.1]\n    ports: T:{port}\n    approved:\n      - port: {port}\n        service: https\n        tls: required\n        justification: public site\n"
        ),
    );
    let result = ready.then(|| run(&["check", "--manifest", &manifest, "--connect"]));
    let _ = server.kill();
    let _ = server.wait();
    let (code, stdout, stderr) = result.expect("openssl s_server started");
    eprintln!("{stdout}");
    assert_eq!(code, 1, "stdout: {stdout}\nstderr: {stderr}");
    let line = stdout
        .lines()
        .skip_while(|l| !l.contains("[tls-invalid]"))
        .take(2)
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        line.contains(&format!("{port}/tcp")) && line.contains("team-web"),
        "{stdout}"
    );
    assert!(
        line.contains("expired") && line.contains("self-signed"),
        "{stdout}"
    );
}

/// Every example manifest, with an unknown key injected: exit 2, naming the line and key.
#[test]
fn unknown_keys_in_example_manifests_exit_2_naming_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let examples = repo().join("examples");
    let mut tried = 0;
    for entry in std::fs::read_dir(&examples).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        if path.extension().is_none_or(|e| e != "yaml") || !text.contains("\nassets:") {
            continue;
        }
        // After the first asset's name: a sibling key of the asset.
        let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
        let at = lines
            .iter()
            .position(|l| l.trim_start().starts_with("- name:"))
            .unwrap()
            + 1;
        let indent = lines[at - 1].find('-').unwrap() + 2;
        lines.insert(at, format!("{}owner_team: x", " ".repeat(indent)));
        let bad = write(dir.path(), "bad.yaml", &(lines.join("\n") + "\n"));
        let (code, stdout, stderr) = run(&["check", "--manifest", &bad]);
        assert_eq!(code, 2, "{stdout}{stderr}");
        let want = format!("{bad}:{}:", at + 1);
        assert!(
            stderr.contains(&want) && stderr.contains("owner_team"),
            "{stderr}"
        );
        assert!(stdout.is_empty());
        tried += 1;
    }
    assert!(tried > 0);
    // Not a manifest at all, a missing file, an unknown environment: exit 2 too.
    let garbage = write(dir.path(), "garbage.yaml", "\u{0}\u{1}binary");
    let (code, _, stderr) = run(&["check", "--manifest", &garbage]);
    assert_eq!(code, 2);
    assert!(stderr.contains("garbage.yaml:1:1"), "{stderr}");
    let (code, _, stderr) = run(&["check", "--manifest", "/nonexistent/exposure.yaml"]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("cannot read manifest /nonexistent/exposure.yaml"),
        "{stderr}"
    );
    let example = repo().join("examples/exposure.yaml").display().to_string();
    let (code, _, stderr) = run(&["check", "--manifest", &example, "--env", "qa"]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("no asset has environment \"qa\""),
        "{stderr}"
    );
}

#[test]
fn baseline_init_round_trips_through_check() {
    let listeners = Listeners::start(2);
    let ports = format!(
        "{},{},{}",
        listeners.ports[0],
        listeners.ports[1],
        closed_port()
    );
    let (code, yaml, stderr) = run(&["baseline", "init", "127.0.0.1", "-p", &ports]);
    assert_eq!(code, 0, "{stderr}");
    assert!(yaml.contains("justification: TODO"), "{yaml}");
    let dir = tempfile::tempdir().unwrap();
    let manifest = write(dir.path(), "baseline.yaml", &yaml);
    // It loads back, and today's state passes against it.
    let (code, stdout, stderr) = run(&["check", "--manifest", &manifest, "--connect"]);
    assert_eq!(code, 0, "{yaml}\n{stdout}\n{stderr}");
    assert!(stdout.contains(&format!("{} failed", 0)), "{stdout}");
    for port in &listeners.ports {
        assert!(yaml.contains(&format!("port: {port}")), "{yaml}");
    }
    let (code, schema, _) = run(&["manifest", "schema"]);
    assert_eq!(code, 0);
    let schema: serde_json::Value = serde_json::from_str(&schema).unwrap();
    assert_eq!(schema["$id"], "portgate.manifest.v1");
}

/// An ephemeral target no asset lists is checked against the global approved list alone.
#[test]
fn an_ephemeral_target_uses_the_global_approved_list() {
    let listeners = Listeners::start(2);
    let dir = tempfile::tempdir().unwrap();
    let manifest = write(
        dir.path(),
        "exposure.yaml",
        &format!(
            "version: 1\ndefaults:\n  ports: T:{},{}\napproved:\n  - port: {}\n    justification: the app, everywhere\nassets:\n  - name: other\n    targets: [198.18.0.1]\n",
            listeners.ports[0], listeners.ports[1], listeners.ports[0]
        ),
    );
    let (code, stdout, stderr) = run(&[
        "check",
        "--manifest",
        &manifest,
        "--target",
        "127.0.0.1",
        "--connect",
    ]);
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert!(
        stdout.contains("1 failed") && stdout.contains("1 passed"),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("127.0.0.1:{}", listeners.ports[1]))
            || stdout.contains(&format!("{}/tcp", listeners.ports[1])),
        "{stdout}"
    );
}

/// A scan cut short by the deadline is inconclusive: exit 3, never a silent pass; monitor
/// mode still exits 0.
#[test]
fn a_scan_cut_short_is_inconclusive_with_exit_3() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = write(
        dir.path(),
        "exposure.yaml",
        // An address of the loopback range where nothing listens: no port can fail, so
        // the only decision left is the deadline's.
        "version: 1\nassets:\n  - name: local\n    targets: [127.0.0.77]\n    ports: all\n",
    );
    let (code, stdout, stderr) = run(&[
        "check",
        "--manifest",
        &manifest,
        "--connect",
        "--deadline",
        "2ms",
    ]);
    assert_eq!(code, 3, "{stdout}\n{stderr}");
    assert!(
        stdout.starts_with("portgate check: INCONCLUSIVE"),
        "{stdout}"
    );
    assert!(
        stdout.contains("[scan-inconclusive]") && stdout.contains("not scanned"),
        "{stdout}"
    );
    let (code, _, _) = run(&[
        "check",
        "--manifest",
        &manifest,
        "--connect",
        "--deadline",
        "2ms",
        "--mode",
        "monitor",
    ]);
    assert_eq!(code, 0);
}
