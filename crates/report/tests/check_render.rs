//! The renderers of a check on fixed findings: SARIF valid against the official 2.1.0 schema
//! with stable fingerprints and manifest locations, JUnit that parses back with a case per
//! asset and port, Markdown and the human summary (snapshots).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use chrono::{TimeZone, Utc};
use portgate_model::{
    Finding, ManifestLocation, Outcome, PortState, Protocol, Rule, ScanMethod, ScanReport,
    ScanStatus, Severity,
};
use portgate_report::{CheckReport, check_json, check_summary, junit, markdown, sarif};
use quick_xml::Reader;
use quick_xml::events::Event;

fn finding(
    rule: Rule,
    outcome: Outcome,
    severity: Severity,
    asset: Option<&str>,
    port: Option<u16>,
    message: &str,
) -> Finding {
    Finding {
        rule,
        outcome,
        severity,
        target: "app.example.test".into(),
        ip: Some("198.18.0.2".parse().unwrap()),
        protocol: port.map(|_| Protocol::Tcp),
        port,
        state: port.map(|_| PortState::Open),
        service: port.map(|p| if p == 6379 { "redis" } else { "https" }.to_string()),
        product: port.filter(|p| *p == 6379).map(|_| "Redis".to_string()),
        version: port.filter(|p| *p == 6379).map(|_| "7.0.15".to_string()),
        asset: asset.map(str::to_string),
        owner: asset.map(|_| "team-web".to_string()),
        escalation: None,
        message: message.into(),
        location: asset.map(|_| ManifestLocation {
            file: "exposure.yaml".into(),
            line: 15,
            column: 5,
        }),
        references: Vec::new(),
        proof: None,
        fix: None,
    }
}

fn findings() -> Vec<Finding> {
    vec![
        finding(
            Rule::UnapprovedPort,
            Outcome::Fail,
            Severity::Critical,
            Some("web"),
            Some(6379),
            "6379/tcp (redis, Redis 7.0.15, no authentication) is open and not approved <&\"|'>",
        ),
        finding(
            Rule::TlsInvalid,
            Outcome::Fail,
            Severity::High,
            Some("web"),
            Some(443),
            "443/tcp (https): the certificate for \"CN=app\" is invalid: expired, self-signed",
        ),
        finding(
            Rule::ScanInconclusive,
            Outcome::Inconclusive,
            Severity::Medium,
            None,
            None,
            "gone.example.test could not be scanned: NXDOMAIN \u{1}",
        ),
        finding(
            Rule::TlsExpiring,
            Outcome::Warn,
            Severity::Medium,
            Some("web"),
            Some(443),
            "443/tcp: the certificate expires in 10 days",
        ),
        finding(
            Rule::Approved,
            Outcome::Pass,
            Severity::Info,
            Some("web"),
            Some(22),
            "22/tcp (ssh) is approved: bastion",
        ),
    ]
}

fn scan() -> ScanReport {
    let started_at = Utc.with_ymd_and_hms(2026, 11, 30, 12, 0, 0).unwrap();
    ScanReport {
        method: ScanMethod::Syn,
        started_at,
        finished_at: started_at + chrono::Duration::milliseconds(1500),
        status: ScanStatus::Completed,
        incomplete_reasons: vec![],
        targets: vec![],
        hosts: vec![],
        enrichment: None,
    }
}

fn with_report<T>(f: impl FnOnce(&CheckReport<'_>) -> T) -> T {
    let findings = findings();
    let scan = scan();
    let report = CheckReport {
        findings: &findings,
        outcome: Outcome::Fail,
        monitor: false,
        manifest: "exposure.yaml",
        env: Some("staging"),
        scan: &scan,
    };
    f(&report)
}

fn sarif_schema() -> jsonschema::Validator {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/sarif-schema-2.1.0.json"
    ))
    .expect("the SARIF schema is in tests/data");
    // The published schema's `run.language` pattern has a stray `]` that ECMA-262 regular
    // expressions reject; it is the only one, and `language` is not written by portgate.
    let broken = r#""^[a-zA-Z]{2}|^[a-zA-Z]{2}-[a-zA-Z]{2}]?$""#;
    assert!(
        text.contains(broken),
        "the known defect is still in the schema"
    );
    let text = text.replace(broken, r#""^[a-zA-Z]{2}(-[a-zA-Z]{2})?$""#);
    let schema: serde_json::Value = serde_json::from_str(&text).expect("schema JSON");
    jsonschema::validator_for(&schema).expect("the SARIF schema compiles")
}

#[test]
fn sarif_is_valid_2_1_0_with_locations_and_stable_fingerprints() {
    let text = with_report(sarif);
    let log: serde_json::Value = serde_json::from_str(&text).expect("SARIF is JSON");
    let validator = sarif_schema();
    let errors: Vec<String> = validator
        .iter_errors(&log)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "SARIF does not validate: {errors:#?}");
    assert_eq!(log["version"], "2.1.0");
    let results = log["runs"][0]["results"].as_array().unwrap();
    assert_eq!(results.len(), 4, "every finding but the pass");
    let redis = &results[0];
    assert_eq!(redis["ruleId"], "unapproved-port");
    assert_eq!(redis["level"], "error");
    let region = &redis["locations"][0]["physicalLocation"];
    assert_eq!(region["artifactLocation"]["uri"], "exposure.yaml");
    assert_eq!(region["region"]["startLine"], 15);
    assert_eq!(
        redis["partialFingerprints"][portgate_report::FINGERPRINT_KEY],
        "app.example.test|tcp|6379|unapproved-port"
    );
    // A finding without an asset points at the top of the manifest.
    assert_eq!(
        results[2]["locations"][0]["physicalLocation"]["region"]["startLine"],
        1
    );
    // Every rule is described, with help text.
    let rules = log["runs"][0]["tool"]["driver"]["rules"]
        .as_array()
        .unwrap();
    assert_eq!(rules.len(), Rule::ALL.len());
    assert!(
        rules
            .iter()
            .all(|r| r["help"]["text"].as_str().is_some_and(|t| t.len() > 20))
    );
    // The same findings give the same log (fingerprints do not drift between runs).
    assert_eq!(text, with_report(sarif));
}

#[test]
fn junit_parses_back_with_a_case_per_asset_and_port() {
    let text = with_report(junit);
    let mut reader = Reader::from_str(&text);
    let mut cases = Vec::new();
    let mut failures = 0;
    let mut errors = 0;
    let mut outs = 0;
    let mut root = None;
    loop {
        match reader.read_event().expect("well-formed XML") {
            Event::Start(e) | Event::Empty(e) => {
                let name = String::from_utf8(e.name().as_ref().to_vec()).unwrap();
                match name.as_str() {
                    "testsuites" => {
                        root = Some(
                            e.attributes()
                                .map(|a| a.unwrap())
                                .map(|a| {
                                    (
                                        String::from_utf8(a.key.as_ref().to_vec()).unwrap(),
                                        a.unescape_value().unwrap().into_owned(),
                                    )
                                })
                                .collect::<Vec<_>>(),
                        )
                    }
                    "testcase" => {
                        let name = e
                            .try_get_attribute("name")
                            .unwrap()
                            .unwrap()
                            .unescape_value()
                            .unwrap()
                            .into_owned();
                        cases.push(name);
                    }
                    "failure" => failures += 1,
                    "error" => errors += 1,
                    "system-out" => outs += 1,
                    _ => {}
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    assert_eq!(
        cases,
        [
            "198.18.0.2:22/tcp",
            "198.18.0.2:443/tcp",
            "198.18.0.2:6379/tcp",
            "app.example.test (198.18.0.2)",
        ]
    );
    assert_eq!((failures, errors), (2, 1));
    assert_eq!(outs, 2, "the warning and the pass are in system-out");
    let root = root.expect("a testsuites element");
    assert!(
        root.contains(&("tests".to_string(), "4".to_string())),
        "{root:?}"
    );
    assert!(
        root.contains(&("failures".to_string(), "2".to_string())),
        "{root:?}"
    );
    assert!(
        text.contains("&lt;&amp;&quot;|&apos;&gt;"),
        "markup escaped"
    );
    assert!(
        !text.contains('\u{1}'),
        "characters XML cannot carry are dropped"
    );
}

#[test]
fn markdown_snapshot() {
    insta::assert_snapshot!(with_report(markdown));
}

#[test]
fn human_summary_snapshot() {
    insta::assert_snapshot!(with_report(check_summary));
}

#[test]
fn evidence_json_carries_findings_and_scan() {
    let doc: serde_json::Value = serde_json::from_str(&with_report(check_json)).expect("JSON");
    assert_eq!(doc["schema"], "portgate.check.v1");
    assert_eq!(doc["outcome"], "fail");
    assert_eq!(doc["counts"]["fail"], 2);
    assert_eq!(doc["findings"][0]["rule"], "unapproved-port");
    assert_eq!(doc["findings"][0]["owner"], "team-web");
    assert_eq!(doc["scan"]["schema"], "portgate.scan.v1");
}
