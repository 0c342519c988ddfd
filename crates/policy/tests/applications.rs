//! The application rules: `exposed-management-ui`, `unauthenticated-api`,
//! `debug-endpoint-exposed` and `default-credentials`, with the approval's `application`
//! and `accept`, the risk table's application severities, and the proof on the finding.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use chrono::{TimeZone, Utc};
use portgate_model::{
    DetectedService, Finding, HostReport, Outcome, PortResult, PortState, Protocol, Reason, Rule,
    ScanMethod, ScanReport, ScanStatus, Severity, TargetReport,
};
use portgate_policy::{Manifest, evaluate};

const MANIFEST: &str = r##"version: 1
assets:
  - name: plain
    targets: [198.18.0.2]
    approved:
      - port: 3000
        justification: dashboards
  - name: named
    targets: [198.18.0.3]
    approved:
      - port: 3000
        justification: dashboards
        application: grafana
  - name: accepted
    targets: [198.18.0.4]
    approved:
      - port: 3000
        justification: dashboards, read-only for the office
        application: Grafana
        accept: [grafana-anonymous-search]
  - name: by-rule
    targets: [198.18.0.5]
    approved:
      - port: 9090
        justification: metrics
        accept: [unauthenticated-api]
  - name: nothing
    targets: [198.18.0.6]
"##;

/// A detection with an application, built from JSON like a report read back.
fn grafana(port: u16, exposures: &[(&str, &str)], app: &str, category: &str) -> DetectedService {
    let exposures: Vec<serde_json::Value> = exposures
        .iter()
        .map(|(check, kind)| {
            serde_json::json!({
                "check": check,
                "kind": kind,
                "proves": "x",
                "title": format!("{check} proven"),
                "proof": {
                    "request": format!("GET http://198.18.0.2:{port}/api/search"),
                    "credentials": if *kind == "default-credentials" { Some("admin:admin (HTTP Basic)") } else { None },
                    "status": 200,
                    "answer": "HTTP/1.1 200 OK\\r\\n\\r\\n[{\"title\":\"Ops\"}]",
                },
            })
        })
        .collect();
    let mut value = serde_json::json!({
        "port": port,
        "protocol": "tcp",
        "service": "http",
        "product": null,
        "version": null,
        "soft": false,
        "evidence": [],
        "applications": {
            "found": [{
                "id": app,
                "name": "Grafana",
                "category": category,
                "version": "10.4.2",
                "evidence": ["GET /api/health → 200 application/json"],
                "exposures": exposures,
            }],
            "requests": 5,
            "elapsed_ms": 3,
        },
    });
    // `proves` is not a report field: drop it again (the report carries `title`).
    if let Some(list) = value["applications"]["found"][0]["exposures"].as_array_mut() {
        for e in list {
            if let Some(o) = e.as_object_mut() {
                o.remove("proves");
            }
        }
    }
    serde_json::from_value(value).expect("a detected service")
}

fn host(ip: &str, port: u16, service: DetectedService) -> HostReport {
    HostReport {
        target: ip.into(),
        hostname: None,
        ip: ip.parse().unwrap(),
        ports_requested: 1,
        ports: vec![PortResult {
            port,
            protocol: Protocol::Tcp,
            state: PortState::Open,
            reason: Reason::SynAck,
            rtt_us: Some(100),
            attempts: 1,
            at_ms: 10,
        }],
        services: vec![service],
        tarpit: None,
    }
}

fn report(hosts: Vec<HostReport>) -> ScanReport {
    let started_at = Utc.with_ymd_and_hms(2026, 11, 30, 12, 0, 0).unwrap();
    let targets = hosts
        .iter()
        .map(|h| TargetReport {
            input: h.target.clone(),
            kind: "ip".into(),
            addresses: vec![h.ip],
            address_count: 1,
            cname_chain: vec![],
            error: None,
        })
        .collect();
    ScanReport {
        method: ScanMethod::Syn,
        started_at,
        finished_at: started_at + chrono::Duration::seconds(1),
        status: ScanStatus::Completed,
        incomplete_reasons: vec![],
        targets,
        hosts,
        enrichment: None,
    }
}

fn findings(h: HostReport) -> Vec<Finding> {
    let manifest = Manifest::from_yaml(MANIFEST, "exposure.yaml").expect("manifest");
    evaluate(&manifest, None, &report(vec![h]), None).findings
}

fn has(findings: &[Finding], rule: Rule, outcome: Outcome, severity: Severity) -> bool {
    findings
        .iter()
        .any(|f| f.rule == rule && f.outcome == outcome && f.severity == severity)
}

const SEARCH: (&str, &str) = ("grafana-anonymous-search", "unauthenticated-api");

#[test]
fn an_approved_port_with_a_management_ui_fails_unless_the_approval_names_it() {
    let f = findings(host(
        "198.18.0.2",
        3000,
        grafana(3000, &[], "grafana", "management-ui"),
    ));
    assert!(
        has(&f, Rule::Approved, Outcome::Pass, Severity::Info),
        "{f:#?}"
    );
    // The management console's severity comes from the risk table (high).
    assert!(
        has(&f, Rule::ExposedManagementUi, Outcome::Fail, Severity::High),
        "{f:#?}"
    );
    let ui = f
        .iter()
        .find(|f| f.rule == Rule::ExposedManagementUi)
        .unwrap();
    assert!(ui.message.contains("Grafana 10.4.2"), "{}", ui.message);
    assert!(
        ui.message.contains("application: grafana"),
        "{}",
        ui.message
    );
    assert!(ui.location.is_some());

    let f = findings(host(
        "198.18.0.3",
        3000,
        grafana(3000, &[], "grafana", "management-ui"),
    ));
    assert!(f.iter().all(|f| f.outcome == Outcome::Pass), "{f:#?}");
}

#[test]
fn a_proven_exposure_fails_with_its_proof_unless_accepted() {
    // Named application, exposure not accepted: still a failure, with the proof.
    let f = findings(host(
        "198.18.0.3",
        3000,
        grafana(3000, &[SEARCH], "grafana", "management-ui"),
    ));
    assert!(
        has(&f, Rule::UnauthenticatedApi, Outcome::Fail, Severity::High),
        "{f:#?}"
    );
    let api = f
        .iter()
        .find(|f| f.rule == Rule::UnauthenticatedApi)
        .unwrap();
    let proof = api.proof.as_ref().expect("a proof");
    assert_eq!(proof.request, "GET http://198.18.0.2:3000/api/search");
    assert!(proof.answer.escaped().contains("Ops"));
    assert!(
        api.message.contains("[grafana-anonymous-search]"),
        "{}",
        api.message
    );

    // Accepted by check id: passes, for the record.
    let f = findings(host(
        "198.18.0.4",
        3000,
        grafana(3000, &[SEARCH], "grafana", "management-ui"),
    ));
    assert!(
        has(&f, Rule::UnauthenticatedApi, Outcome::Pass, Severity::Info),
        "{f:#?}"
    );
    assert!(f.iter().all(|f| f.outcome == Outcome::Pass), "{f:#?}");
}

#[test]
fn accept_by_rule_and_monitoring_applications() {
    // Prometheus is monitoring, not a management interface: no finding of its own; its
    // proven exposure is accepted by rule.
    let f = findings(host(
        "198.18.0.5",
        9090,
        grafana(
            9090,
            &[("prometheus-targets", "unauthenticated-api")],
            "prometheus",
            "monitoring",
        ),
    ));
    assert!(
        !f.iter().any(|f| f.rule == Rule::ExposedManagementUi),
        "{f:#?}"
    );
    assert!(
        has(&f, Rule::UnauthenticatedApi, Outcome::Pass, Severity::Info),
        "{f:#?}"
    );
}

#[test]
fn a_default_login_is_critical_and_never_accepted() {
    let f = findings(host(
        "198.18.0.4",
        3000,
        grafana(
            3000,
            &[SEARCH, ("grafana-default-login", "default-credentials")],
            "grafana",
            "management-ui",
        ),
    ));
    assert!(
        has(
            &f,
            Rule::DefaultCredentials,
            Outcome::Fail,
            Severity::Critical
        ),
        "{f:#?}"
    );
    let login = f
        .iter()
        .find(|f| f.rule == Rule::DefaultCredentials)
        .unwrap();
    assert_eq!(
        login.proof.as_ref().and_then(|p| p.credentials.as_deref()),
        Some("admin:admin (HTTP Basic)")
    );

    let bad = MANIFEST.replace(
        "accept: [grafana-anonymous-search]",
        "accept: [grafana-anonymous-search, default-credentials]",
    );
    let err = Manifest::from_yaml(&bad, "exposure.yaml")
        .expect_err("refused")
        .to_string();
    assert!(err.contains("exposure.yaml:"), "{err}");
    assert!(err.contains("accept[1]"), "{err}");
    assert!(err.contains("cannot be accepted"), "{err}");
}

#[test]
fn another_application_than_the_approved_one_is_a_mismatch() {
    let f = findings(host(
        "198.18.0.3",
        3000,
        grafana(3000, &[], "jenkins", "management-ui"),
    ));
    let mismatch = f
        .iter()
        .find(|f| f.rule == Rule::ServiceMismatch)
        .expect("a mismatch");
    assert_eq!(mismatch.outcome, Outcome::Fail);
    assert!(
        mismatch
            .message
            .contains("approved for the application grafana"),
        "{}",
        mismatch.message
    );
    // And the management interface is not the approved one either.
    assert!(f.iter().any(|f| f.rule == Rule::ExposedManagementUi));
}

#[test]
fn an_unapproved_port_takes_the_application_severity() {
    let f = findings(host(
        "198.18.0.6",
        8888,
        grafana(
            8888,
            &[("jupyter-kernels", "unauthenticated-api")],
            "jupyter",
            "management-ui",
        ),
    ));
    // Jupyter is code execution: critical, for the open port as for the exposure.
    assert!(
        has(&f, Rule::UnapprovedPort, Outcome::Fail, Severity::Critical),
        "{f:#?}"
    );
    assert!(
        has(
            &f,
            Rule::UnauthenticatedApi,
            Outcome::Fail,
            Severity::Critical
        ),
        "{f:#?}"
    );
}

#[test]
fn approval_fields_are_checked_with_their_place() {
    let bad = MANIFEST.replace("application: grafana", "application: \"graf ana!\"");
    let err = Manifest::from_yaml(&bad, "exposure.yaml")
        .expect_err("refused")
        .to_string();
    assert!(err.contains("application"), "{err}");
    assert!(err.contains("exposure.yaml:"), "{err}");
}
