//! `portgate manifest lint`: errors (an approval past its date) exit 1, warnings (an approval of a port the asset never scans, one
//! that repeats a global approval, a justification left as TODO) alone exit 0, a manifest that does not load exits 2;
//! every finding at its line and column.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::run;

const MANIFEST: &str = "version: 1
approved:
  - port: 22
    justification: bastion access everywhere
  - port: 8443
    justification: old admin
    approved_until: 2020-01-31
assets:
  - name: web
    environment: staging
    targets: [198.18.0.2]
    ports: T:22,80,443
    approved:
      - port: 443
        justification: public site
      - port: 9090
        justification: metrics
      - port: 22
        justification: repeated
  - name: old
    environment: staging
    targets: [198.18.0.3]
    approved:
      - port: 80
        justification: temporary
        approved_until: 2020-01-31
      - port: 443
        justification: TODO
";

#[test]
fn lint_finds_errors_and_warnings_at_their_place() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("exposure.yaml");
    std::fs::write(&path, MANIFEST).unwrap();
    let file = path.to_str().unwrap();
    let (code, stdout, stderr) = run(&["manifest", "lint", "--manifest", file]);
    assert_eq!(code, 1, "{stdout}{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    let has = |place: &str, text: &str| {
        lines
            .iter()
            .any(|l| l.starts_with(&format!("{file}:{place}")) && l.contains(text))
    };
    assert!(
        has(
            "5:",
            "error: the global approval of 8443/tcp expired on 2020-01-31"
        ),
        "{stdout}"
    );
    assert!(
        has(
            "16:",
            "warning: asset web approves 9090/tcp, which its port set T:22,80,443 does not scan"
        ),
        "{stdout}"
    );
    assert!(
        has(
            "18:",
            "warning: asset web approves 22/tcp, which the global list approves already"
        ),
        "{stdout}"
    );
    assert!(
        has(
            "24:",
            "error: the approval of 80/tcp on asset old expired on 2020-01-31"
        ),
        "{stdout}"
    );
    assert!(
        has(
            "27:",
            "warning: the approval of 443/tcp on asset old has no justification yet (\"TODO\")"
        ),
        "{stdout}"
    );
    assert!(stdout.contains("2 error(s), 3 warning(s)"), "{stdout}");

    let (code, json, _) = run(&["manifest", "lint", "--manifest", file, "--format", "json"]);
    assert_eq!(code, 1);
    let doc: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(doc["errors"], 2);
    assert_eq!(doc["warnings"], 3);
    assert_eq!(doc["findings"][0]["level"], "error");
    assert!(doc["findings"][0]["location"]["line"].is_number());

    // Warnings alone pass.
    let clean = MANIFEST.replace("approved_until: 2020-01-31", "approved_until: 2099-01-31");
    std::fs::write(&path, clean).unwrap();
    let (code, stdout, _) = run(&["manifest", "lint", "--manifest", file]);
    assert_eq!(code, 0, "{stdout}");
    assert!(stdout.contains("0 error(s), 3 warning(s)"), "{stdout}");

    // A manifest that does not load (a misspelt key; a target listed twice): exit 2 with
    // its place.
    std::fs::write(
        &path,
        MANIFEST.replace("[198.18.0.3]", "[198.18.0.3, 198.18.0.2]"),
    )
    .unwrap();
    let (code, _, stderr) = run(&["manifest", "lint", "--manifest", file]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("exposure.yaml:22:") && stderr.contains("already listed"),
        "{stderr}"
    );
    std::fs::write(
        &path,
        MANIFEST.replace("justification: metrics", "justificaton: metrics"),
    )
    .unwrap();
    let (code, _, stderr) = run(&["manifest", "lint", "--manifest", file]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("exposure.yaml:1") && stderr.contains("justificaton"),
        "{stderr}"
    );
}
