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
                let line = command[start..].lines().next().unwrap_or_default();
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
    for file in [
        "examples/github/portgate.yml",
        "examples/gitlab/.gitlab-ci.yml",
    ] {
        let commands = check_commands(file);
        assert_eq!(
            commands.len(),
            1,
            "{file}: one check command, got {commands:?}"
        );
        let dir = tempfile::tempdir().unwrap();
        let manifest = repo().join("examples/exposure.yaml").display().to_string();
        let args: Vec<String> = commands[0]
            .iter()
            .map(|a| {
                if a == "examples/exposure.yaml" {
                    manifest.clone()
                } else if a.starts_with("portgate-") || a == "portgate.sarif" {
                    dir.path().join(a).display().to_string()
                } else {
                    a.clone()
                }
            })
            .collect();
        assert!(args.iter().any(|a| a == "--env"), "{file}: {args:?}");
        let out = common::portgate().args(&args).output().unwrap();
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
    }
}
