//! Every row of the decision matrix (DESIGN.md), one table: a manifest, a scan report
//! (and a previous one), and the findings and outcome the evaluation must give.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use chrono::{TimeZone, Utc};
use portgate_model::{
    DetectedService, HostReport, Outcome, PortResult, PortState, Protocol, Reason, Rule,
    ScanMethod, ScanReport, ScanStatus, Severity, TargetReport, TlsSummary,
};
use portgate_policy::{Manifest, evaluate};

const MANIFEST: &str = r##"version: 1
defaults:
  ports: top100
  tls_expiry_warn_days: 30
approved:
  - port: 22
    justification: bastion access everywhere
assets:
  - name: web
    environment: staging
    owner: team-web
    escalation: "#web-oncall"
    targets: [198.18.0.2]
    expected_network: [198.18.0.0/24]
    approved:
      - port: 443
        service: https
        tls: required
        justification: public site
      - port: 80
        service: http
        justification: redirect to https
        approved_until: 2026-01-31
      - port: 8443
        justification: admin, behind VPN
  - name: db
    environment: staging
    owner: team-data
    targets: [198.18.0.3]
    tags: { role: database }
    on_missing: fail
    approved:
      - port: 5432
        service: postgresql
        justification: app database
  - name: prod-web
    environment: production
    owner: team-web
    targets: [198.18.1.2]
    approved:
      - port: 443
        justification: public site
"##;

fn open(port: u16) -> PortResult {
    state(port, PortState::Open, Reason::SynAck)
}

fn state(port: u16, state: PortState, reason: Reason) -> PortResult {
    PortResult {
        port,
        protocol: Protocol::Tcp,
        state,
        reason,
        rtt_us: Some(100),
        attempts: 1,
        at_ms: 10,
    }
}

/// Built from JSON so that fields the model gains later keep their defaults.
fn detected(port: u16, service: &str, product: Option<&str>) -> DetectedService {
    serde_json::from_value(serde_json::json!({
        "port": port,
        "protocol": "tcp",
        "service": service,
        "product": product,
        "version": product.map(|_| "1.0"),
        "soft": false,
        "evidence": [],
    }))
    .expect("a detected service")
}

fn tls(port: u16, valid: bool, days_left: i64, reasons: &[&str]) -> DetectedService {
    let summary: TlsSummary = serde_json::from_value(serde_json::json!({
        "protocol": "TLSv1.3",
        "cipher_suite": "TLS13_AES_128_GCM_SHA256",
        "subject": "CN=web.test",
        "issuer": "CN=web.test",
        "san_dns": ["web.test"],
        "not_after": "2026-12-01T00:00:00Z",
        "days_left": days_left,
        "self_signed": true,
        "valid": valid,
        "reasons": reasons,
    }))
    .expect("a TLS summary");
    let mut d = detected(port, "tls", None);
    d.detection.tls = Some(summary);
    d
}

fn host(
    target: &str,
    ip: &str,
    ports: Vec<PortResult>,
    services: Vec<DetectedService>,
) -> HostReport {
    HostReport {
        target: target.into(),
        hostname: None,
        ip: ip.parse().unwrap(),
        ports_requested: ports.len() as u32,
        ports,
        services,
        tarpit: None,
    }
}

fn report(hosts: Vec<HostReport>) -> ScanReport {
    let started_at = Utc.with_ymd_and_hms(2026, 11, 30, 12, 0, 0).unwrap();
    let mut targets: Vec<TargetReport> = Vec::new();
    for h in &hosts {
        if !targets.iter().any(|t| t.input == h.target) {
            targets.push(TargetReport {
                input: h.target.clone(),
                kind: "ip".into(),
                addresses: vec![h.ip],
                address_count: 1,
                cname_chain: vec![],
                error: None,
            });
        }
    }
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

/// The good state of the web asset: 443 with a valid certificate.
fn web_ok() -> (Vec<PortResult>, Vec<DetectedService>) {
    (vec![open(443)], vec![tls(443, true, 200, &[])])
}

struct Case {
    name: &'static str,
    env: Option<&'static str>,
    report: ScanReport,
    previous: Option<ScanReport>,
    /// (rule, outcome, severity, port) that must be among the findings.
    want: Vec<(Rule, Outcome, Severity, Option<u16>)>,
    outcome: Outcome,
}

fn cases() -> Vec<Case> {
    let (ok_ports, ok_services) = web_ok();
    let web = |mut ports: Vec<PortResult>, mut services: Vec<DetectedService>| {
        let (p, s) = web_ok();
        ports.extend(p);
        services.extend(s);
        ports.sort_by_key(|p| p.port);
        host("198.18.0.2", "198.18.0.2", ports, services)
    };
    vec![
        Case {
            name: "approved port open, service as expected: pass",
            env: Some("staging"),
            report: report(vec![host(
                "198.18.0.2",
                "198.18.0.2",
                ok_ports.clone(),
                ok_services.clone(),
            )]),
            previous: None,
            want: vec![(Rule::Approved, Outcome::Pass, Severity::Info, Some(443))],
            outcome: Outcome::Pass,
        },
        Case {
            name: "globally approved port open: pass",
            env: Some("staging"),
            report: report(vec![web(
                vec![open(22)],
                vec![detected(22, "ssh", Some("OpenSSH"))],
            )]),
            previous: None,
            want: vec![(Rule::Approved, Outcome::Pass, Severity::Info, Some(22))],
            outcome: Outcome::Pass,
        },
        Case {
            name: "unapproved port open: fail with the risk of the port",
            env: Some("staging"),
            report: report(vec![web(vec![open(3306)], vec![])]),
            previous: None,
            want: vec![(
                Rule::UnapprovedPort,
                Outcome::Fail,
                Severity::Critical,
                Some(3306),
            )],
            outcome: Outcome::Fail,
        },
        Case {
            name: "unapproved Redis on 8080 is Redis: critical, not web",
            env: Some("staging"),
            report: report(vec![web(
                vec![open(8080)],
                vec![detected(8080, "redis", Some("Redis"))],
            )]),
            previous: None,
            want: vec![(
                Rule::UnapprovedPort,
                Outcome::Fail,
                Severity::Critical,
                Some(8080),
            )],
            outcome: Outcome::Fail,
        },
        Case {
            name: "unapproved web port: low",
            env: Some("staging"),
            report: report(vec![web(
                vec![open(8000)],
                vec![detected(8000, "http", None)],
            )]),
            previous: None,
            want: vec![(
                Rule::UnapprovedPort,
                Outcome::Fail,
                Severity::Low,
                Some(8000),
            )],
            outcome: Outcome::Fail,
        },
        Case {
            name: "role tag lowers the risk of what the role expects",
            env: Some("staging"),
            report: report(vec![host(
                "198.18.0.3",
                "198.18.0.3",
                vec![open(5432), open(3306)],
                vec![
                    detected(5432, "postgresql", None),
                    detected(3306, "mysql", None),
                ],
            )]),
            previous: None,
            want: vec![
                (Rule::Approved, Outcome::Pass, Severity::Info, Some(5432)),
                (
                    Rule::UnapprovedPort,
                    Outcome::Fail,
                    Severity::High,
                    Some(3306),
                ),
            ],
            outcome: Outcome::Fail,
        },
        Case {
            name: "approved port answered by another service: fail",
            env: Some("staging"),
            report: report(vec![host(
                "198.18.0.3",
                "198.18.0.3",
                vec![open(5432)],
                vec![detected(5432, "redis", None)],
            )]),
            previous: None,
            want: vec![(
                Rule::ServiceMismatch,
                Outcome::Fail,
                Severity::High,
                Some(5432),
            )],
            outcome: Outcome::Fail,
        },
        Case {
            name: "TLS certificate invalid (expired, self-signed): fail",
            env: Some("staging"),
            report: report(vec![host(
                "198.18.0.2",
                "198.18.0.2",
                vec![open(443)],
                vec![tls(443, false, -3, &["expired", "self-signed"])],
            )]),
            previous: None,
            want: vec![(Rule::TlsInvalid, Outcome::Fail, Severity::High, Some(443))],
            outcome: Outcome::Fail,
        },
        Case {
            name: "TLS certificate expiring within the window: warn",
            env: Some("staging"),
            report: report(vec![host(
                "198.18.0.2",
                "198.18.0.2",
                vec![open(443)],
                vec![tls(443, true, 10, &[])],
            )]),
            previous: None,
            want: vec![
                (Rule::Approved, Outcome::Pass, Severity::Info, Some(443)),
                (
                    Rule::TlsExpiring,
                    Outcome::Warn,
                    Severity::Medium,
                    Some(443),
                ),
            ],
            outcome: Outcome::Warn,
        },
        Case {
            name: "tls: required on a plaintext port: fail",
            env: Some("staging"),
            report: report(vec![host(
                "198.18.0.2",
                "198.18.0.2",
                vec![open(443)],
                vec![detected(443, "http", None)],
            )]),
            previous: None,
            want: vec![(Rule::TlsRequired, Outcome::Fail, Severity::High, Some(443))],
            outcome: Outcome::Fail,
        },
        Case {
            name: "approved port filtered: warn by default",
            env: Some("staging"),
            report: report(vec![host(
                "198.18.0.2",
                "198.18.0.2",
                vec![state(443, PortState::Filtered, Reason::NoResponse)],
                vec![],
            )]),
            previous: None,
            want: vec![(
                Rule::ApprovedPortMissing,
                Outcome::Warn,
                Severity::Medium,
                Some(443),
            )],
            outcome: Outcome::Warn,
        },
        Case {
            name: "approved port closed on an asset with on_missing: fail",
            env: Some("staging"),
            report: report(vec![host(
                "198.18.0.3",
                "198.18.0.3",
                vec![state(5432, PortState::Closed, Reason::Reset)],
                vec![],
            )]),
            previous: None,
            want: vec![(
                Rule::ApprovedPortMissing,
                Outcome::Fail,
                Severity::Medium,
                Some(5432),
            )],
            outcome: Outcome::Fail,
        },
        Case {
            name: "service, version and certificate changed since the last scan: warn",
            env: Some("staging"),
            report: report(vec![web(
                vec![open(22)],
                vec![detected(22, "ssh", Some("OpenSSH"))],
            )]),
            previous: Some(report(vec![web(
                vec![open(22)],
                vec![{
                    let mut d = detected(22, "ssh", Some("OpenSSH"));
                    d.detection.version = Some("0.9".into());
                    d
                }],
            )])),
            want: vec![(
                Rule::ChangedSinceLastScan,
                Outcome::Warn,
                Severity::Low,
                Some(22),
            )],
            outcome: Outcome::Warn,
        },
        Case {
            name: "target outside its expected network: fail",
            env: Some("staging"),
            report: report(vec![host(
                "198.18.0.2",
                "198.18.9.9",
                ok_ports.clone(),
                ok_services.clone(),
            )]),
            previous: None,
            want: vec![(
                Rule::OutsideExpectedNetwork,
                Outcome::Fail,
                Severity::High,
                None,
            )],
            outcome: Outcome::Fail,
        },
        Case {
            name: "approval past its expiry date: fail",
            env: Some("staging"),
            report: report(vec![web(vec![open(80)], vec![detected(80, "http", None)])]),
            previous: None,
            want: vec![(
                Rule::ApprovalExpired,
                Outcome::Fail,
                Severity::Medium,
                Some(80),
            )],
            outcome: Outcome::Fail,
        },
        Case {
            name: "unresolvable target: inconclusive",
            env: Some("staging"),
            report: {
                let mut r = report(vec![]);
                r.targets.push(TargetReport {
                    input: "gone.example.test".into(),
                    kind: "hostname".into(),
                    addresses: vec![],
                    address_count: 0,
                    cname_chain: vec![],
                    error: Some("NXDOMAIN".into()),
                });
                r.status = ScanStatus::Incomplete;
                r.incomplete_reasons = vec!["target gone.example.test: NXDOMAIN".into()];
                r
            },
            previous: None,
            want: vec![(
                Rule::ScanInconclusive,
                Outcome::Inconclusive,
                Severity::Medium,
                None,
            )],
            outcome: Outcome::Inconclusive,
        },
        Case {
            name: "unreachable host: inconclusive",
            env: Some("staging"),
            report: report(vec![host(
                "198.18.0.2",
                "198.18.0.2",
                vec![
                    state(443, PortState::Filtered, Reason::HostUnreachable),
                    state(80, PortState::Filtered, Reason::HostUnreachable),
                ],
                vec![],
            )]),
            previous: None,
            want: vec![(
                Rule::ScanInconclusive,
                Outcome::Inconclusive,
                Severity::Medium,
                None,
            )],
            outcome: Outcome::Inconclusive,
        },
        Case {
            name: "deadline left ports unscanned: inconclusive",
            env: Some("staging"),
            report: {
                let mut h = host(
                    "198.18.0.2",
                    "198.18.0.2",
                    ok_ports.clone(),
                    ok_services.clone(),
                );
                h.ports_requested = 100;
                let mut r = report(vec![h]);
                r.status = ScanStatus::Incomplete;
                r.incomplete_reasons = vec!["deadline".into()];
                r
            },
            previous: None,
            want: vec![(
                Rule::ScanInconclusive,
                Outcome::Inconclusive,
                Severity::Medium,
                None,
            )],
            outcome: Outcome::Inconclusive,
        },
        Case {
            name: "a target no asset lists is checked against the global list alone",
            env: Some("staging"),
            report: report(vec![host(
                "127.0.0.1",
                "127.0.0.1",
                vec![open(22), open(443)],
                vec![detected(22, "ssh", None), tls(443, true, 200, &[])],
            )]),
            previous: None,
            want: vec![
                (Rule::Approved, Outcome::Pass, Severity::Info, Some(22)),
                (
                    Rule::UnapprovedPort,
                    Outcome::Fail,
                    Severity::Low,
                    Some(443),
                ),
            ],
            outcome: Outcome::Fail,
        },
        Case {
            name: "--env selects assets: a production target is not staging's",
            env: Some("staging"),
            report: report(vec![host(
                "198.18.1.2",
                "198.18.1.2",
                vec![open(443)],
                vec![],
            )]),
            previous: None,
            want: vec![(
                Rule::UnapprovedPort,
                Outcome::Fail,
                Severity::Low,
                Some(443),
            )],
            outcome: Outcome::Fail,
        },
        Case {
            name: "the production asset approves it in production",
            env: Some("production"),
            report: report(vec![host(
                "198.18.1.2",
                "198.18.1.2",
                vec![open(443)],
                vec![],
            )]),
            previous: None,
            want: vec![(Rule::Approved, Outcome::Pass, Severity::Info, Some(443))],
            outcome: Outcome::Pass,
        },
    ]
}

#[test]
fn every_row_of_the_decision_matrix() {
    let manifest = Manifest::from_yaml(MANIFEST, "exposure.yaml").expect("the test manifest loads");
    for case in cases() {
        let eval = evaluate(&manifest, case.env, &case.report, case.previous.as_ref());
        for (rule, outcome, severity, port) in &case.want {
            assert!(
                eval.findings.iter().any(|f| f.rule == *rule
                    && f.outcome == *outcome
                    && f.severity == *severity
                    && f.port == *port),
                "{}: no {rule} {outcome} {severity} {port:?} in {:#?}",
                case.name,
                eval.findings
            );
        }
        assert_eq!(
            eval.outcome, case.outcome,
            "{}: {:#?}",
            case.name, eval.findings
        );
        // Never a silent pass: every open port has a finding.
        for host in &case.report.hosts {
            for port in host.ports.iter().filter(|p| p.state == PortState::Open) {
                assert!(
                    eval.findings
                        .iter()
                        .any(|f| f.ip == Some(host.ip) && f.port == Some(port.port)),
                    "{}: open port {} has no finding",
                    case.name,
                    port.port
                );
            }
        }
    }
}

#[test]
fn findings_carry_owner_location_and_a_readable_message() {
    let manifest = Manifest::from_yaml(MANIFEST, "exposure.yaml").expect("loads");
    let r = report(vec![host(
        "198.18.0.2",
        "198.18.0.2",
        vec![open(443), open(6379)],
        vec![tls(443, true, 200, &[]), {
            let mut d = detected(6379, "redis", Some("Redis"));
            d.detection.info = Some("no authentication".into());
            d
        }],
    )]);
    let eval = evaluate(&manifest, Some("staging"), &r, None);
    let redis = eval
        .findings
        .iter()
        .find(|f| f.port == Some(6379))
        .expect("a finding for 6379");
    assert_eq!(redis.rule, Rule::UnapprovedPort);
    assert_eq!(redis.owner.as_deref(), Some("team-web"));
    assert_eq!(redis.escalation.as_deref(), Some("#web-oncall"));
    assert_eq!(redis.asset.as_deref(), Some("web"));
    assert_eq!(redis.service.as_deref(), Some("redis"));
    assert_eq!(redis.version.as_deref(), Some("1.0"));
    let location = redis.location.as_ref().expect("located");
    assert_eq!(
        (location.file.as_str(), location.line),
        ("exposure.yaml", 9)
    );
    assert!(redis.message.contains("Redis 1.0") && redis.message.contains("no authentication"));
    // The approval's own line for the approved port.
    let https = eval
        .findings
        .iter()
        .find(|f| f.port == Some(443))
        .expect("443");
    assert_eq!(https.location.as_ref().map(|l| l.line), Some(16));
    // Failures come first.
    assert_eq!(eval.findings[0].outcome, Outcome::Fail);
    assert_eq!(eval.outcome, Outcome::Fail);
    assert!(!eval.monitor);
}

#[test]
fn fail_on_threshold_and_monitor_mode() {
    let mut manifest = Manifest::from_yaml(MANIFEST, "exposure.yaml").expect("loads");
    let r = report(vec![host(
        "198.18.0.2",
        "198.18.0.2",
        vec![open(443), open(8000)],
        vec![tls(443, true, 200, &[]), detected(8000, "http", None)],
    )]);
    manifest.defaults.fail_on = portgate_policy::FailOn::High;
    let eval = evaluate(&manifest, Some("staging"), &r, None);
    let low = eval
        .findings
        .iter()
        .find(|f| f.port == Some(8000))
        .expect("8000");
    assert_eq!(low.outcome, Outcome::Warn);
    assert!(low.message.contains("below the fail-on threshold high"));
    assert_eq!(eval.outcome, Outcome::Warn);

    manifest.defaults.fail_on = portgate_policy::FailOn::Low;
    manifest.mode = portgate_policy::Mode::Monitor;
    let eval = evaluate(&manifest, Some("staging"), &r, None);
    assert_eq!(eval.outcome, Outcome::Fail);
    assert!(
        eval.monitor,
        "monitor mode: the same findings, flagged as monitored"
    );
}

#[test]
fn the_scan_plan_covers_approved_ports_and_groups_by_port_set() {
    let manifest = Manifest::from_yaml(MANIFEST, "exposure.yaml").expect("loads");
    let plan = manifest.scan_plan(Some("staging"), &[]);
    let targets: Vec<String> = plan
        .iter()
        .flat_map(|g| g.targets.iter().map(|t| t.to_string()))
        .collect();
    assert_eq!(targets, ["198.18.0.2", "198.18.0.3"]);
    for group in &plan {
        assert!(
            group.ports.tcp_ports().contains(&22),
            "globally approved port scanned"
        );
        assert!(group.ports.tcp_ports().len() >= 100);
    }
    // An ephemeral target: the default ports plus the global approvals.
    let plan = manifest.scan_plan(Some("staging"), &["127.0.0.1".parse().unwrap()]);
    assert_eq!(plan.len(), 1);
    assert_eq!(plan[0].targets[0].to_string(), "127.0.0.1");
}

#[test]
fn changes_since_the_last_scan_come_from_the_drift_engine() {
    let web = |ports: Vec<PortResult>, services: Vec<DetectedService>| {
        host("198.18.0.2", "198.18.0.2", ports, services)
    };
    let manifest = Manifest::from_yaml(MANIFEST, "exposure.yaml").expect("loads");
    let now = report(vec![web(
        vec![open(22)],
        vec![detected(22, "ssh", Some("OpenSSH"))],
    )]);
    let mut old = detected(22, "ssh", Some("OpenSSH"));
    old.detection.version = Some("0.9".into());
    let before = report(vec![web(vec![open(22)], vec![old])]);
    let eval = evaluate(&manifest, Some("staging"), &now, Some(&before));
    let change = eval
        .findings
        .iter()
        .find(|f| f.rule == Rule::ChangedSinceLastScan)
        .expect("a change");
    assert!(
        change
            .message
            .ends_with("changed since the last scan: version 0.9 -> 1.0"),
        "{}",
        change.message
    );
    // The same scan twice: nothing changed.
    let eval = evaluate(&manifest, Some("staging"), &now, Some(&now));
    assert!(
        !eval
            .findings
            .iter()
            .any(|f| f.rule == Rule::ChangedSinceLastScan)
    );
}

/// `defaults.unlisted: review`: a target no asset lists (a review app) is judged against
/// the global list, and its failures are warnings for review; listed targets still fail.
#[test]
fn unlisted_targets_go_to_review_when_the_manifest_says_so() {
    let mut manifest = Manifest::from_yaml(MANIFEST, "exposure.yaml").expect("loads");
    let unlisted = host(
        "127.0.0.1",
        "127.0.0.1",
        vec![open(22), open(443)],
        vec![detected(22, "ssh", None), tls(443, true, 200, &[])],
    );
    let r = report(vec![unlisted.clone()]);
    assert_eq!(
        evaluate(&manifest, Some("staging"), &r, None).outcome,
        Outcome::Fail
    );
    manifest.defaults.unlisted = portgate_policy::Unlisted::Review;
    let eval = evaluate(&manifest, Some("staging"), &r, None);
    assert_eq!(eval.outcome, Outcome::Warn, "{:#?}", eval.findings);
    let review = eval
        .findings
        .iter()
        .find(|f| f.port == Some(443))
        .expect("443");
    assert_eq!(review.outcome, Outcome::Warn);
    assert!(review.message.contains("for review"), "{}", review.message);
    // A listed target's failure still fails.
    let listed = host("198.18.0.2", "198.18.0.2", vec![open(8000)], vec![]);
    let eval = evaluate(
        &manifest,
        Some("staging"),
        &report(vec![unlisted, listed]),
        None,
    );
    assert_eq!(eval.outcome, Outcome::Fail, "{:#?}", eval.findings);
    // Read from the manifest.
    let text = MANIFEST.replace(
        "  tls_expiry_warn_days: 30\n",
        "  tls_expiry_warn_days: 30\n  unlisted: review\n",
    );
    let read = Manifest::from_yaml(&text, "exposure.yaml").expect("loads");
    assert_eq!(read.defaults.unlisted, portgate_policy::Unlisted::Review);
    let bad = MANIFEST.replace(
        "  tls_expiry_warn_days: 30\n",
        "  tls_expiry_warn_days: 30\n  unlisted: ignore\n",
    );
    let err = Manifest::from_yaml(&bad, "exposure.yaml")
        .expect_err("refused")
        .to_string();
    assert!(
        err.contains("exposure.yaml:5") && err.contains("unlisted"),
        "{err}"
    );
}
