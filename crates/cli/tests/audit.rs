//! `portgate audit` end to end: the real binary against real listeners, as root and as
//! nobody, inside lab namespaces, and against a real `portgate scan -o json`.
//! Tests needing root skip without it (through `portgate_test_support::skip`: a failure
//! under strict mode).

#![allow(clippy::unwrap_used)]

mod common;

use common::{portgate, run};
use portgate_lab::{LabConfig, LabHost, Profile, skip_reason};
use serde_json::Value;
use std::net::TcpListener;
use std::process::Command;

macro_rules! skip_unless_lab {
    ($name:literal) => {
        if let Some(reason) = skip_reason() {
            portgate_test_support::skip($name, reason);
            return;
        }
    };
}

/// A child process killed (by its pid) and reaped when the test ends, however it ends.
struct Reaped(std::process::Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs `portgate audit -o json`, parses the report and checks it against
/// `docs/audit-report.schema.json`.
fn audit_json(args: &[&str]) -> (i32, Value, String) {
    let mut all = vec!["audit", "-o", "json"];
    all.extend_from_slice(args);
    let (code, stdout, stderr) = run(&all);
    let value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {stdout}\nstderr: {stderr}"));
    assert_valid(&value);
    (code, value, stderr)
}

fn assert_valid(report: &Value) {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/audit-report.schema.json"
    ))
    .unwrap();
    let schema: Value = serde_json::from_str(&text).unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(report)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "not a valid audit report: {errors:#?}");
}

fn listed_at<'a>(report: &'a Value, port: u16, address: &str) -> &'a Value {
    report["listeners"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["port"] == port && l["address"] == address)
        .unwrap_or_else(|| panic!("no listener {address}:{port} in {report:#}"))
}

fn my_comm() -> String {
    std::fs::read_to_string("/proc/self/comm")
        .unwrap()
        .trim()
        .to_string()
}

fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> String {
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

#[test]
fn json_names_the_process_user_and_binding_of_a_listener() {
    let listener = TcpListener::bind("0.0.0.0:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (code, report, stderr) = audit_json(&[]);
    assert_eq!(code, 0, "no --expect: always 0; {stderr}");
    assert_eq!(report["schema"], "portgate.audit.v1");
    let l = listed_at(&report, port, "0.0.0.0");
    assert_eq!(l["protocol"], "tcp");
    assert_eq!(l["scope"], "all-interfaces");
    assert_eq!(l["families"], "ipv4");
    assert_eq!(l["processes"][0]["pid"], std::process::id());
    assert_eq!(l["processes"][0]["name"], my_comm());
    let finding = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["port"] == port)
        .expect("a finding for the all-interfaces listener");
    assert_eq!(finding["rule"], "exposed-service");
    assert_eq!(finding["pid"], std::process::id());

    // The table shows the same row.
    let (code, table, _) = run(&["audit"]);
    assert_eq!(code, 0);
    let row = table
        .lines()
        .find(|line| {
            line.split_whitespace()
                .take(3)
                .eq(["tcp", "0.0.0.0", &port.to_string()])
        })
        .unwrap_or_else(|| panic!("no row for {port}:\n{table}"));
    assert!(
        row.contains("all-interfaces") && row.contains(&std::process::id().to_string()),
        "{row}"
    );
}

#[test]
fn as_nobody_a_root_listener_is_flagged_not_dropped() {
    if !portgate_test_support::require_root(
        "as_nobody_a_root_listener_is_flagged_not_dropped",
        "needs to switch to nobody",
    ) {
        return;
    }
    let listener = TcpListener::bind("0.0.0.0:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let out = Command::new("setpriv")
        .args(["--reuid", "nobody", "--regid", "nogroup", "--clear-groups"])
        .arg(env!("CARGO_BIN_EXE_portgate"))
        .args(["audit", "-o", "json"])
        .output()
        .expect("setpriv runs portgate");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_str(&stdout).expect("JSON");
    assert_valid(&report);
    assert_eq!(report["privileged"], false);
    let l = listed_at(&report, port, "0.0.0.0");
    assert_eq!(l["processes"].as_array().map(Vec::len), Some(0));
    assert_eq!(
        l["user"], "root",
        "the socket's user is known without its process"
    );
    assert!(
        l["owner_hidden"]
            .as_str()
            .unwrap()
            .contains("another user's process"),
        "{l}"
    );
    assert!(
        report["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| { f["rule"] == "owner-hidden" && f["port"] == port && f["user"] == "root" })
    );
}

#[test]
fn expect_gates_with_check_exit_codes_in_a_lab_namespace() {
    skip_unless_lab!("expect_gates_with_check_exit_codes_in_a_lab_namespace");
    let lab = LabHost::start(LabConfig::new(Profile::Open).open_ports([8080])).unwrap();
    let ns = lab.namespace();
    let dir = tempfile::tempdir().unwrap();
    let comm = my_comm();

    // Exactly what listens there: pass.
    let good = write(
        &dir,
        "good.yaml",
        &format!(
            "expected_listeners:\n  - port: 8080\n    process: {comm}\n    user: root\n    bind: all-interfaces\n"
        ),
    );
    let (code, report, stderr) = audit_json(&["--netns", ns, "--expect", &good]);
    assert_eq!(code, 0, "{stderr}\n{report:#}");
    assert_eq!(report["namespace"], ns);
    assert_eq!(
        report["findings"].as_array().map(Vec::len),
        Some(0),
        "{report:#}"
    );

    // Another process, another user, a narrower binding expected; a missing listener.
    let bad = write(
        &dir,
        "bad.yaml",
        "expected_listeners:\n  - port: 8080\n    process: nginx\n    user: www-data\n    bind: loopback\n  - port: 5432\n",
    );
    let (code, report, _) = audit_json(&["--netns", ns, "--expect", &bad]);
    assert_eq!(code, 1, "{report:#}");
    let findings = report["findings"].as_array().unwrap();
    let mismatch = findings
        .iter()
        .find(|f| f["rule"] == "listener-mismatch")
        .expect("listener-mismatch");
    let message = mismatch["message"].as_str().unwrap();
    for words in [
        "expected nginx",
        "user is root, expected www-data",
        "expected at most loopback",
    ] {
        assert!(message.contains(words), "{message} lacks {words}");
    }
    assert_eq!(mismatch["location"]["line"], 2);
    let missing = findings
        .iter()
        .find(|f| f["rule"] == "expected-listener-missing")
        .expect("missing 5432");
    assert_eq!(missing["port"], 5432);
    assert_eq!(missing["outcome"], "warn");
    // The mismatch is high: --fail-on critical lets it pass.
    let (code, _, _) = audit_json(&["--netns", ns, "--expect", &bad, "--fail-on", "critical"]);
    assert_eq!(code, 0);

    // An empty list: the listener is unexpected.
    let empty = write(&dir, "empty.yaml", "expected_listeners: []\n");
    let (code, report, _) = audit_json(&["--netns", ns, "--expect", &empty]);
    assert_eq!(code, 1);
    assert!(
        report["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["rule"] == "unexpected-listener" && f["port"] == 8080)
    );

    // Input errors exit 2 and name the place.
    let typo = write(
        &dir,
        "typo.yaml",
        "expected_listeners:\n  - port: 8080\n    proces: nginx\n",
    );
    let (code, _, stderr) = run(&["audit", "--netns", ns, "--expect", &typo]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains(&format!("{typo}:3:5:")) && stderr.contains("proces"),
        "{stderr}"
    );
    let (code, _, stderr) = run(&["audit", "--netns", "pglab-none-such"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("/run/netns/pglab-none-such"), "{stderr}");
    let not_scan = write(&dir, "not-scan.json", "{\"schema\": \"portgate.audit.v1\"}");
    let (code, _, stderr) = run(&["audit", "--compare", &not_scan]);
    assert_eq!(code, 2, "{stderr}");
}

#[test]
fn compare_with_a_real_scan_of_a_lab_host() {
    skip_unless_lab!("compare_with_a_real_scan_of_a_lab_host");
    if !std::path::Path::new("/usr/bin/python3").exists() {
        portgate_test_support::skip(
            "compare_with_a_real_scan_of_a_lab_host",
            "/usr/bin/python3 is missing (Debian package python3)",
        );
        return;
    }
    let lab = LabHost::start(LabConfig::new(Profile::Firewalled).open_ports([8080])).unwrap();
    let ns = lab.namespace().to_string();
    // Forwarded by NAT to 8080: reachable, but nothing listens on 2222 itself.
    let status = Command::new("ip")
        .args([
            "netns",
            "exec",
            &ns,
            "iptables",
            "-t",
            "nat",
            "-A",
            "PREROUTING",
            "-p",
            "tcp",
        ])
        .args(["--dport", "2222", "-j", "REDIRECT", "--to-ports", "8080"])
        .status()
        .unwrap();
    assert!(status.success());
    // Listening inside on 9300, dropped by the firewall. Bound in the namespace by a
    // process started there, so the audit names it.
    let mut child = Reaped(Command::new("ip")
        .args(["netns", "exec", &ns, "/usr/bin/python3", "-c"])
        .arg("import socket,time\ns=socket.socket()\ns.bind(('0.0.0.0',9300))\ns.listen()\nprint('ok',flush=True)\ntime.sleep(60)")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3 in the namespace"));
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.0.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    assert_eq!(line.trim(), "ok");

    let dir = tempfile::tempdir().unwrap();
    let scan_file = dir.path().join("scan.json");
    let ip = lab.ipv4().to_string();
    let out = portgate()
        .args([
            "scan",
            &ip,
            "-p",
            "2222,8080,9300",
            "--connect",
            "--max-rtt-timeout",
            "500ms",
        ])
        .args([
            "--initial-rtt-timeout",
            "500ms",
            "-o",
            "json",
            "--output-file",
        ])
        .arg(&scan_file)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (code, report, stderr) =
        audit_json(&["--netns", &ns, "--compare", scan_file.to_str().unwrap()]);
    drop(child);
    assert_eq!(code, 0, "{stderr}");
    let ports = report["comparison"]["ports"].as_array().unwrap();
    let verdict = |port: u16| {
        ports
            .iter()
            .find(|p| p["port"] == port && p["ip"] == ip.as_str())
            .map(|p| p["verdict"].as_str().unwrap().to_string())
    };
    assert_eq!(verdict(8080).as_deref(), Some("reachable"), "{report:#}");
    assert_eq!(
        verdict(9300).as_deref(),
        Some("not-reachable"),
        "{report:#}"
    );
    assert_eq!(
        verdict(2222).as_deref(),
        Some("reachable-not-listening"),
        "{report:#}"
    );
    let blocked = ports.iter().find(|p| p["port"] == 9300).unwrap();
    assert_eq!(blocked["process"], "python3");
    assert_eq!(blocked["scan_state"], "filtered");
    // The table says the same.
    let (_, table, _) = run(&[
        "audit",
        "--netns",
        &ns,
        "--compare",
        scan_file.to_str().unwrap(),
    ]);
    assert!(table.contains("Inside against outside"), "{table}");
    assert!(
        table.lines().any(|l| l.contains("2222/tcp")
            && l.contains("nothing listens")
            && l.contains("reachable-not-listening")),
        "{table}"
    );
}
