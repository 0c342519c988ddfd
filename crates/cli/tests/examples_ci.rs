//! The CI examples run what they say: the `portgate check` command of the GitHub Actions
//! workflow and of the GitLab CI job, taken from the files, run against the example manifest
//! (its staging asset is 127.0.0.1), writing every output they publish.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::PathBuf;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Every string in a YAML document that runs `portgate check`, as arguments.
fn check_commands(file: &str) -> Vec<Vec<String>> {
    let text = std::fs::read_to_string(repo().join(file)).expect("the CI example exists");
    let doc: serde_json::Value =
        serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{file} is not YAML: {e}"));
    let mut found = Vec::new();
    let mut stack = vec![&doc];
    while let Some(value) = stack.pop() {
        match value {
            serde_json::Value::String(s) if s.contains("portgate check") => {
                let command = s.replace("\\\n", " ");
                let start = command.find("portgate check").unwrap();
                // The server's URL is a CI variable: one token for the test to fill in.
                let line = command[start..]
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .replace("\"${{ vars.PORTGATE_SERVER }}\"", "PORTGATE_SERVER")
                    .replace("\"$PORTGATE_SERVER\"", "PORTGATE_SERVER");
                found.push(
                    line.split_whitespace()
                        .skip(1)
                        .map(str::to_string)
                        .collect(),
                );
            }
            serde_json::Value::Array(items) => stack.extend(items),
            serde_json::Value::Object(map) => stack.extend(map.values()),
            _ => {}
        }
    }
    found
}

#[test]
fn github_and_gitlab_examples_run_the_gate() {
    // The server variant's server: a `portgate serve` of this test, scope 127.0.0.0/8.
    let served = tempfile::tempdir().unwrap();
    let db = served.path().join("serve.db").display().to_string();
    let key = common::server::key(&db);
    let server = common::server::Served::start(&db, common::server::free_port());
    let url = format!("http://127.0.0.1:{}", server.port);
    for file in [
        "examples/github/portgate.yml",
        "examples/gitlab/.gitlab-ci.yml",
    ] {
        let commands = check_commands(file);
        assert_eq!(
            commands.len(),
            2,
            "{file}: a check here and one through a server, got {commands:?}"
        );
        assert!(
            commands.iter().any(|c| c.iter().any(|a| a == "--server")),
            "{file}: {commands:?}"
        );
        let mut outcomes = Vec::new();
        for command in &commands {
            outcomes.push(run_example(file, command, &url, &key));
        }
        // Scanned here or by the server: the same decision.
        assert_eq!(outcomes[0], outcomes[1], "{file}");
    }
}

/// Runs one example command (outputs in a temporary directory, the server's URL for its
/// variable); returns the exit code and the outcome of its evidence.
fn run_example(file: &str, command: &[String], url: &str, key: &str) -> (i32, String) {
    {
        let dir = tempfile::tempdir().unwrap();
        let manifest = repo().join("examples/exposure.yaml").display().to_string();
        let args: Vec<String> = command
            .iter()
            .map(|a| {
                if a == "examples/exposure.yaml" {
                    manifest.clone()
                } else if a.starts_with("portgate-") || a == "portgate.sarif" {
                    dir.path().join(a).display().to_string()
                } else if a.contains("PORTGATE_SERVER") {
                    url.to_string()
                } else {
                    a.clone()
                }
            })
            .collect();
        assert!(args.iter().any(|a| a == "--env"), "{file}: {args:?}");
        let out = common::portgate()
            .args(&args)
            .env("PORTGATE_API_KEY", key)
            .output()
            .unwrap();
        let code = out.status.code().unwrap_or(-1);
        let stdout = String::from_utf8_lossy(&out.stdout);
        // 0 when this machine has nothing unapproved on 127.0.0.1, 1 when it does (its
        // databases): either way a decision, with every output written.
        assert!(
            code == 0 || code == 1,
            "{file}: exit {code}\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        for output in [
            "portgate-evidence.json",
            "portgate.sarif",
            "portgate-junit.xml",
            "portgate-summary.md",
        ] {
            let path = dir.path().join(output);
            assert!(path.exists(), "{file}: {output} not written");
        }
        let evidence: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(dir.path().join("portgate-evidence.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(evidence["environment"], "staging");
        assert_eq!(evidence["outcome"] == "fail", code == 1, "{file}: {stdout}");
        // Only the staging asset (and no production name) was scanned.
        let targets: Vec<&str> = evidence["scan"]["targets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["input"].as_str().unwrap())
            .collect();
        assert_eq!(targets, ["127.0.0.1"]);
        (
            code,
            evidence["outcome"].as_str().unwrap_or_default().to_string(),
        )
    }
}

/// The pull-request example: the workflow's `manifest lint` command, run as written
/// against the example manifest (clean: exit 0, annotations in GitHub's format for a
/// manifest with an error), and the CODEOWNERS example naming the manifest.
#[test]
fn pull_request_example_lints_the_manifest() {
    let text = std::fs::read_to_string(repo().join("examples/github/manifest-review.yml")).unwrap();
    let doc: serde_json::Value = serde_saphyr::from_str(&text).unwrap();
    assert_eq!(doc["on"]["pull_request"]["paths"][0], "exposure.yaml");
    let steps = doc["jobs"]["lint"]["steps"].as_array().unwrap();
    let lint = steps
        .iter()
        .filter_map(|s| s["run"].as_str())
        .find(|r| r.contains("portgate manifest lint"))
        .expect("a step runs portgate manifest lint");
    let args: Vec<String> = lint
        .split_whitespace()
        .skip(1)
        .map(|a| {
            if a == "examples/exposure.yaml" {
                repo().join(a).display().to_string()
            } else {
                a.to_string()
            }
        })
        .collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, stdout, stderr) = common::run(&args);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("0 error(s)"), "{stdout}");

    // The same command on a manifest with an expired approval: an error annotation at
    // its line, exit 1.
    let dir = tempfile::tempdir().unwrap();
    let expired = dir.path().join("exposure.yaml");
    std::fs::write(
        &expired,
        "version: 1\nassets:\n  - name: web\n    targets: [198.18.0.2]\n    approved:\n      - port: 443\n        justification: \"old, site: public\"\n        approved_until: 2020-01-31\n",
    )
    .unwrap();
    let mut args = args.clone();
    let at = args
        .iter()
        .position(|a| a.ends_with("exposure.yaml"))
        .unwrap();
    let file = expired.display().to_string();
    args[at] = &file;
    let (code, stdout, _) = common::run(&args);
    assert_eq!(code, 1, "{stdout}");
    let first = stdout.lines().next().unwrap();
    assert!(
        first.starts_with(&format!(
            "::error file={file},line=6,col=9,title=portgate manifest lint::"
        )),
        "{first}"
    );
    assert!(first.contains("expired on 2020-01-31"), "{first}");

    let owners = std::fs::read_to_string(repo().join("examples/github/CODEOWNERS")).unwrap();
    assert!(
        owners
            .lines()
            .any(|l| l.starts_with("/exposure.yaml ") && l.contains('@')),
        "{owners}"
    );
}
