//! Approve by pull request: `portgate baseline approve` edits the manifest in place (the
//! diff is the new entry and nothing else), a failing `check` proposes the exact command
//! and lines (Markdown, SARIF `fixes`, JSON) and the proposal, run, makes the check pass;
//! and `portgate baseline init localhost` writes a manifest that checks clean against the
//! state it was written from, with the risk of each risky service above its entry.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Listeners, closed_port, run};
use portgate_test_support::daemons::Redis;
use std::path::Path;
use std::process::Command;

fn example() -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/exposure.yaml"),
    )
    .unwrap()
}

/// `diff -u` of two files, without its two header lines (they name the files).
fn unified_diff(before: &Path, after: &Path) -> String {
    let out = Command::new("diff")
        .arg("-u")
        .arg(before)
        .arg(after)
        .output()
        .expect("diff (diffutils) runs");
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .skip(2)
        .map(|l| format!("{l}\n"))
        .collect()
}

#[test]
fn approve_edits_in_place_and_the_diff_is_the_entry() {
    let dir = tempfile::tempdir().unwrap();
    let original = dir.path().join("original.yaml");
    let path = dir.path().join("exposure.yaml");
    std::fs::write(&original, example()).unwrap();
    std::fs::write(&path, example()).unwrap();
    let file = path.to_str().unwrap();
    let (code, stdout, stderr) = run(&[
        "baseline",
        "approve",
        "--manifest",
        file,
        "--asset",
        "web",
        "--port",
        "9090",
        "--service",
        "http",
        "--justification",
        "metrics, scraped from the monitoring network",
        "--until",
        "2099-06-30",
    ]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(
        stderr.contains(&format!("{file}:35: approved 9090/tcp for asset web")),
        "{stderr}"
    );
    assert_eq!(
        unified_diff(&original, &path),
        "@@ -32,6 +32,10 @@
         service: http
         justification: health checks from the load balancer
         approved_until: 2027-06-30
+      - port: 9090
+        service: http
+        justification: metrics, scraped from the monitoring network
+        approved_until: 2099-06-30
   - name: database
     environment: production
     owner: team-data
"
    );
    // The edited manifest loads and lints.
    let (code, stdout, stderr) = run(&["manifest", "lint", "--manifest", file]);
    assert!(code == 0 || code == 1, "{stdout}{stderr}");
    assert!(!stdout.contains(":35:"), "the new entry is clean: {stdout}");

    // --dry-run shows the change and writes nothing.
    let before = std::fs::read(&path).unwrap();
    let (code, stdout, stderr) = run(&[
        "baseline",
        "approve",
        "--manifest",
        file,
        "--port",
        "443",
        "--justification",
        "public site",
        "--dry-run",
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("@@ line 14 @@\n+  - port: 443\n+    justification: public site\n"),
        "{stdout}"
    );
    assert_eq!(std::fs::read(&path).unwrap(), before);

    // Refusals: exit 2, the reason and place, the file untouched.
    for (args, message) in [
        (
            vec!["--asset", "web", "--port", "8080", "--justification", "x"],
            format!("{file}:31:9: asset web already approves 8080/tcp"),
        ),
        (
            vec!["--asset", "nope", "--port", "1", "--justification", "x"],
            format!("{file}: no asset named \"nope\" (assets: web, database)"),
        ),
        (
            vec![
                "--port",
                "1",
                "--justification",
                "x",
                "--until",
                "2020-01-01",
            ],
            "--until 2020-01-01 is in the past".to_string(),
        ),
        (
            vec!["--port", "1", "--justification", "x", "--until", "tomorrow"],
            "--until: invalid date \"tomorrow\"".to_string(),
        ),
        (
            vec!["--port", "1", "--justification", "  "],
            "--justification: the reason is empty".to_string(),
        ),
        (
            vec![
                "--port",
                "1",
                "--application",
                "not an id!",
                "--justification",
                "x",
            ],
            "is not an application identifier".to_string(),
        ),
    ] {
        let mut all = vec!["baseline", "approve", "--manifest", file];
        all.extend(args);
        let (code, _, stderr) = run(&all);
        assert_eq!(code, 2, "{all:?}: {stderr}");
        assert!(
            stderr.contains(&message),
            "{all:?}: want {message:?} in {stderr}"
        );
        assert_eq!(std::fs::read(&path).unwrap(), before, "{all:?}");
    }
}

#[test]
fn a_failing_check_proposes_the_approval_and_the_proposal_works() {
    let listeners = Listeners::start(2);
    let (approved, unapproved) = (listeners.ports[0], listeners.ports[1]);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("exposure.yaml");
    let text = format!(
        "# reviewed by team-web\nversion: 1\nassets:\n  - name: web\n    owner: team-web\n    targets: [127.0.0.1]   # the app server\n    ports: T:{approved},{unapproved}\n    approved:\n      - port: {approved}\n        justification: the app\n\n# the end\n"
    );
    std::fs::write(&path, &text).unwrap();
    let file = path.to_str().unwrap();
    let outputs = ["e.json", "s.sarif", "m.md"].map(|f| dir.path().join(f).display().to_string());
    let check = || {
        run(&[
            "check",
            "--manifest",
            file,
            "--connect",
            "--json",
            &outputs[0],
            "--sarif",
            &outputs[1],
            "--markdown",
            &outputs[2],
        ])
    };
    let (code, stdout, stderr) = check();
    assert_eq!(code, 1, "{stdout}{stderr}");
    let command = format!(
        "portgate baseline approve --manifest {file} --asset web --port {unapproved} --justification 'TODO: why this port must be reachable'"
    );
    let entry = format!(
        "      - port: {unapproved}\n        justification: \"TODO: why this port must be reachable\"\n"
    );

    let markdown = std::fs::read_to_string(&outputs[2]).unwrap();
    assert!(
        markdown.contains(&format!(
            "### To approve\n\nIf a port above should be reachable, approve it in a pull request, with its reason in place of the TODO:\n\n**approve {unapproved}/tcp for asset web** — `{file}` line 11\n\n```sh\n{command}\n```\n\n```yaml\n{entry}```\n"
        )),
        "{markdown}"
    );

    let sarif: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&outputs[1]).unwrap()).unwrap();
    let result = &sarif["runs"][0]["results"][0];
    assert_eq!(result["ruleId"], "unapproved-port");
    let fix = &result["fixes"][0];
    assert_eq!(
        fix["artifactChanges"][0]["artifactLocation"]["uri"], file,
        "{fix}"
    );
    let replacement = &fix["artifactChanges"][0]["replacements"][0];
    assert_eq!(
        replacement["deletedRegion"],
        serde_json::json!({"startLine": 11, "startColumn": 1, "endLine": 11, "endColumn": 1})
    );
    assert_eq!(replacement["insertedContent"]["text"], entry);
    assert!(
        result["message"]["markdown"]
            .as_str()
            .unwrap()
            .contains(&command),
        "{result}"
    );

    // The JSON evidence carries the same proposal; its command, run with a reason in
    // place of the TODO, changes exactly that line and makes the check pass.
    let evidence: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&outputs[0]).unwrap()).unwrap();
    let finding = evidence["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["port"] == unapproved)
        .unwrap();
    assert_eq!(finding["fix"]["command"], command.as_str());
    let words: Vec<String> = command
        .split(" --justification ")
        .next()
        .unwrap()
        .split_whitespace()
        .skip(1)
        .map(str::to_string)
        .chain(["--justification".into(), "the admin port".into()])
        .collect();
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    let (code, _, stderr) = run(&words);
    assert_eq!(code, 0, "{stderr}");
    let after = std::fs::read_to_string(&path).unwrap();
    assert_eq!(
        after,
        text.replace(
            "        justification: the app\n",
            &format!(
                "        justification: the app\n      - port: {unapproved}\n        justification: the admin port\n"
            )
        )
    );
    let (code, stdout, stderr) = check();
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(
        !std::fs::read_to_string(&outputs[2])
            .unwrap()
            .contains("To approve")
    );
}

/// Whether `localhost` resolves to ::1 here as well as to 127.0.0.1.
fn localhost_has_ipv6() -> bool {
    use std::net::ToSocketAddrs;
    ("localhost", 0)
        .to_socket_addrs()
        .map(|mut a| a.any(|a| a.ip().is_ipv6()))
        .unwrap_or(false)
}

#[test]
fn baseline_init_of_localhost_checks_clean_and_names_risks() {
    let Some(redis) = Redis::start("baseline_init_of_localhost_checks_clean_and_names_risks")
    else {
        return;
    };
    let listeners = Listeners::start(1);
    let web = listeners.ports[0];
    let closed = closed_port();
    let ports = format!("T:{},{web},{closed}", redis.port);
    let (code, yaml, stderr) = run(&["baseline", "init", "localhost", "-p", &ports]);
    assert_eq!(code, 0, "{yaml}{stderr}");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("exposure.yaml");
    std::fs::write(&path, &yaml).unwrap();

    // Redis's entry: the risk named above it.
    let lines: Vec<&str> = yaml.lines().collect();
    let redis_entry = lines
        .iter()
        .position(|l| l.trim() == format!("- port: {}", redis.port))
        .unwrap_or_else(|| panic!("{yaml}"));
    let above: Vec<&str> = lines[..redis_entry]
        .iter()
        .rev()
        .take_while(|l| l.trim_start().starts_with('#'))
        .copied()
        .collect();
    assert!(
        above.iter().any(|l| l.contains("# RISK critical:")
            && l.contains("Redis")
            && l.contains("no authentication")),
        "{yaml}"
    );
    // The plain listener has no risk comment.
    let web_entry = lines
        .iter()
        .position(|l| l.trim() == format!("- port: {web}"))
        .unwrap();
    assert!(!lines[web_entry - 1].contains("RISK"), "{yaml}");
    if localhost_has_ipv6() {
        // Both listen on 127.0.0.1 only: approved for that address, and said why.
        assert_eq!(yaml.matches("addresses: [127.0.0.1]").count(), 2, "{yaml}");
        assert!(
            above
                .iter()
                .any(|l| l.contains("open on 127.0.0.1 only (closed or filtered on ::1")),
            "{yaml}"
        );
    } else {
        println!("localhost does not resolve to ::1 here: no per-address approvals to write");
    }

    // Checked right away against the same state: clean, not a single warning.
    let json = dir.path().join("e.json");
    let (code, stdout, stderr) = run(&[
        "check",
        "--manifest",
        path.to_str().unwrap(),
        "--json",
        json.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stdout}{stderr}\n{yaml}");
    let evidence: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(evidence["outcome"], "pass", "{stdout}\n{yaml}");
    let not_passing: Vec<&serde_json::Value> = evidence["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["outcome"] != "pass")
        .collect();
    assert!(not_passing.is_empty(), "{not_passing:?}\n{yaml}");
}
