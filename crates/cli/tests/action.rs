//! The GitHub Action (`action.yml` at the repository's root): its run steps, taken from the
//! file, run with bash the way a runner runs a composite action's steps (`bash --noprofile
//! --norc -eo pipefail`, the step's `env:` with its `${{ }}` expressions resolved, the
//! runner's files for outputs, summary and path), against a manifest and listeners on
//! 127.0.0.1. The `uses:` step (SARIF upload) cannot run here: the test checks the file it
//! would upload and the condition it runs on.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::Listeners;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn action() -> Value {
    let text = std::fs::read_to_string(repo().join("action.yml")).unwrap();
    serde_saphyr::from_str(&text).expect("action.yml is YAML")
}

/// One run of the action's steps.
struct Run {
    /// Each step's outputs, by step id.
    outputs: BTreeMap<String, BTreeMap<String, String>>,
    /// Each run step's exit code and output, by step name.
    steps: BTreeMap<String, (i32, String)>,
    summary: String,
    path_file: String,
    upload_condition: String,
}

/// `${{ inputs.x }}` and `${{ steps.id.outputs.x }}` resolved; anything else is a new kind
/// of expression this test must learn.
fn resolve(
    text: &str,
    inputs: &BTreeMap<String, String>,
    outputs: &BTreeMap<String, BTreeMap<String, String>>,
) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("${{") {
        out.push_str(&rest[..start]);
        let end = rest[start..].find("}}").expect("closed expression") + start;
        let expr = rest[start + 3..end].trim();
        let value = if let Some(name) = expr.strip_prefix("inputs.") {
            inputs
                .get(name)
                .unwrap_or_else(|| panic!("no input {name}"))
                .clone()
        } else if let Some(path) = expr.strip_prefix("steps.") {
            let (id, name) = path
                .split_once(".outputs.")
                .expect("steps.<id>.outputs.<name>");
            outputs
                .get(id)
                .and_then(|o| o.get(name))
                .cloned()
                .unwrap_or_default()
        } else {
            panic!("an expression this test does not know: {expr}")
        };
        out.push_str(&value);
        rest = &rest[end + 2..];
    }
    out.push_str(rest);
    out
}

fn run_action(given: &[(&str, &str)], workdir: &Path, path: &str) -> Run {
    let action = action();
    let mut inputs: BTreeMap<String, String> = action["inputs"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v["default"].as_str().unwrap_or("").to_string()))
        .collect();
    for (k, v) in given {
        assert!(inputs.contains_key(*k), "action.yml has no input {k}");
        inputs.insert(k.to_string(), v.to_string());
    }
    let runner = tempfile::tempdir().unwrap();
    let temp = runner.path().join("temp");
    std::fs::create_dir_all(&temp).unwrap();
    let summary = runner.path().join("summary.md");
    let path_file = runner.path().join("path");
    std::fs::write(&summary, "").unwrap();
    std::fs::write(&path_file, "").unwrap();
    let mut run = Run {
        outputs: BTreeMap::new(),
        steps: BTreeMap::new(),
        summary: String::new(),
        path_file: String::new(),
        upload_condition: String::new(),
    };
    assert_eq!(action["runs"]["using"], "composite");
    for (index, step) in action["runs"]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
    {
        let name = step["name"].as_str().unwrap().to_string();
        if let Some(uses) = step["uses"].as_str() {
            assert!(
                uses.starts_with("github/codeql-action/upload-sarif@"),
                "{uses}"
            );
            run.upload_condition = step["if"].as_str().unwrap().to_string();
            let file = resolve(
                step["with"]["sarif_file"].as_str().unwrap(),
                &inputs,
                &run.outputs,
            );
            if !file.is_empty() {
                let sarif: Value =
                    serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
                assert_eq!(sarif["version"], "2.1.0", "{file}");
            }
            continue;
        }
        let script = step["run"].as_str().expect("a run step");
        assert_eq!(step["shell"], "bash", "{name}");
        let output_file = runner.path().join(format!("output-{index}"));
        std::fs::write(&output_file, "").unwrap();
        let mut command = Command::new("bash");
        command
            .args(["--noprofile", "--norc", "-eo", "pipefail", "-c", script])
            .current_dir(workdir)
            .env("PATH", path)
            .env("RUNNER_TEMP", &temp)
            .env("GITHUB_ACTION_PATH", repo())
            .env("GITHUB_OUTPUT", &output_file)
            .env("GITHUB_STEP_SUMMARY", &summary)
            .env("GITHUB_PATH", &path_file);
        if let Some(env) = step["env"].as_object() {
            for (k, v) in env {
                command.env(k, resolve(v.as_str().unwrap(), &inputs, &run.outputs));
            }
        }
        let out = command.output().unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        run.steps
            .insert(name.clone(), (out.status.code().unwrap_or(-1), text));
        if let Some(id) = step["id"].as_str() {
            let outputs = std::fs::read_to_string(&output_file)
                .unwrap()
                .lines()
                .filter_map(|l| l.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            run.outputs.insert(id.to_string(), outputs);
        }
    }
    run.summary = std::fs::read_to_string(&summary).unwrap();
    run.path_file = std::fs::read_to_string(&path_file).unwrap();
    // The files the outputs name live in the runner's temporary directory: keep them.
    std::mem::forget(runner);
    run
}

#[test]
fn the_action_gates_summarises_and_hands_over_the_sarif() {
    let listeners = Listeners::start(2);
    let (approved, unapproved) = (listeners.ports[0], listeners.ports[1]);
    let work = tempfile::tempdir().unwrap();
    let manifest = work.path().join("exposure.yaml");
    std::fs::write(
        &manifest,
        format!(
            "version: 1\nassets:\n  - name: web\n    environment: staging\n    targets: [127.0.0.1]\n    ports: T:{approved},{unapproved}\n    approved:\n      - port: {approved}\n        justification: the app\n"
        ),
    )
    .unwrap();
    let binary = PathBuf::from(env!("CARGO_BIN_EXE_portgate"));
    let path = format!(
        "{}:{}",
        binary.parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let inputs = [("env", "staging"), ("args", "--connect --deadline 60s")];

    // An unapproved port: the check step records the decision, the gate fails with it.
    let run = run_action(&inputs, work.path(), &path);
    let (code, text) = &run.steps["Install portgate"];
    assert_eq!(*code, 0, "{text}");
    assert!(text.starts_with("portgate is installed: "), "{text}");
    assert!(
        run.path_file.is_empty(),
        "nothing installed: {}",
        run.path_file
    );
    let (code, text) = &run.steps["Check exposure"];
    assert_eq!(*code, 0, "the decision waits for the SARIF upload: {text}");
    let check = &run.outputs["check"];
    assert_eq!(check["exit-code"], "1", "{check:?} {text}");
    assert_eq!(check["outcome"], "fail");
    let sarif: Value =
        serde_json::from_str(&std::fs::read_to_string(&check["sarif"]).unwrap()).unwrap();
    let result = &sarif["runs"][0]["results"][0];
    assert_eq!(result["properties"]["port"], format!("{unapproved}/tcp"));
    assert!(result["fixes"][0]["artifactChanges"].is_array(), "{result}");
    assert!(
        run.upload_condition.contains("always()")
            && run
                .upload_condition
                .contains("inputs.upload-sarif == 'true'"),
        "{}",
        run.upload_condition
    );
    assert!(
        run.summary.starts_with("## portgate check: ❌ fail"),
        "{}",
        run.summary
    );
    assert!(
        run.summary.contains(&format!(
            "portgate baseline approve --manifest exposure.yaml --asset web --port {unapproved}"
        )),
        "{}",
        run.summary
    );
    let (code, text) = &run.steps["Gate"];
    assert_eq!(*code, 1, "{text}");
    assert!(text.contains("portgate check: fail (exit 1)"), "{text}");

    // Approved as the summary proposes: the gate passes.
    let (code, _, stderr) = common::run(&[
        "baseline",
        "approve",
        "--manifest",
        manifest.to_str().unwrap(),
        "--asset",
        "web",
        "--port",
        &unapproved.to_string(),
        "--justification",
        "the admin port, reviewed",
    ]);
    assert_eq!(code, 0, "{stderr}");
    let run = run_action(&inputs, work.path(), &path);
    assert_eq!(run.outputs["check"]["outcome"], "pass");
    assert_eq!(run.steps["Gate"].0, 0, "{}", run.steps["Gate"].1);
    assert!(
        run.summary.starts_with("## portgate check: ✅ pass"),
        "{}",
        run.summary
    );

    // A manifest that does not load: exit 2 through the gate, no SARIF to upload.
    std::fs::write(&manifest, "version: 1\nassets: [\n").unwrap();
    let run = run_action(&inputs, work.path(), &path);
    assert_eq!(run.outputs["check"]["exit-code"], "2");
    assert!(!run.outputs["check"].contains_key("sarif"));
    assert!(
        run.steps["Check exposure"].1.contains("exposure.yaml:"),
        "{}",
        run.steps["Check exposure"].1
    );
    assert_eq!(run.steps["Gate"].0, 2);
}
