//! The renderers on a fixed report: snapshot of the human table, the JSON rules, and the
//! committed JSON Schema matching the types.

#![allow(clippy::unwrap_used)]

use chrono::{TimeZone, Utc};
use portgate_model::{
    HostReport, PortResult, PortState, Protocol, Reason, ScanMethod, ScanReport, ScanStatus,
    TargetReport,
};
use portgate_report::{RenderOptions, json, json_schema, table};

fn port(port: u16, state: PortState, reason: Reason, rtt_us: Option<u32>) -> PortResult {
    PortResult {
        port,
        protocol: Protocol::Tcp,
        state,
        reason,
        rtt_us,
        attempts: if rtt_us.is_some() { 1 } else { 2 },
        at_ms: 250,
    }
}

fn sample() -> ScanReport {
    let mut ports = vec![
        port(22, PortState::Open, Reason::SynAck, Some(412)),
        port(443, PortState::Open, Reason::SynAck, Some(388)),
        port(6379, PortState::Open, Reason::SynAck, Some(1520)),
        port(113, PortState::Closed, Reason::Reset, Some(300)),
    ];
    // 30 filtered ports: more than 25, so summarised.
    ports.extend((8000..8030).map(|p| port(p, PortState::Filtered, Reason::NoResponse, None)));
    ports.sort_by_key(|p| p.port);
    let started_at = Utc.with_ymd_and_hms(2026, 11, 23, 12, 0, 0).unwrap();
    ScanReport {
        method: ScanMethod::Connect,
        started_at,
        finished_at: started_at + chrono::Duration::milliseconds(1234),
        status: ScanStatus::Incomplete,
        incomplete_reasons: vec![
            "target nosuch.example.test: \"nosuch.example.test\" does not exist (NXDOMAIN)".into(),
        ],
        targets: vec![
            TargetReport {
                input: "www.example.test".into(),
                kind: "hostname".into(),
                addresses: vec!["198.18.0.2".parse().unwrap()],
                address_count: 1,
                cname_chain: vec!["web.example.test".into()],
                error: None,
            },
            TargetReport {
                input: "nosuch.example.test".into(),
                kind: "hostname".into(),
                addresses: vec![],
                address_count: 0,
                cname_chain: vec![],
                error: Some("\"nosuch.example.test\" does not exist (NXDOMAIN)".into()),
            },
        ],
        hosts: vec![HostReport {
            target: "www.example.test".into(),
            hostname: Some("www.example.test".into()),
            ip: "198.18.0.2".parse().unwrap(),
            ports_requested: 36,
            ports,
            services: Vec::new(),
            tarpit: None,
        }],
        enrichment: None,
    }
}

#[test]
fn table_snapshot() {
    insta::assert_snapshot!(table(&sample(), RenderOptions::default()));
}

#[test]
fn table_open_only_snapshot() {
    insta::assert_snapshot!(table(
        &sample(),
        RenderOptions {
            only_open: true,
            all_ports: false
        }
    ));
}

#[test]
fn json_lists_per_the_rules_and_counts_everything() {
    let value: serde_json::Value =
        serde_json::from_str(&json(&sample(), RenderOptions::default())).unwrap();
    assert_eq!(value["schema"], "portgate.scan.v1");
    assert_eq!(value["status"], "incomplete");
    assert_eq!(value["duration_ms"], 1234);
    assert_eq!(value["started_at"], "2026-11-23T12:00:00.000Z");
    let host = &value["hosts"][0];
    assert_eq!(host["counts"]["filtered"], 30);
    assert_eq!(host["counts"]["not_scanned"], 2);
    assert_eq!(host["not_shown"]["filtered"], 30);
    assert_eq!(host["ports"].as_array().unwrap().len(), 4);
    let ssh = &host["ports"][0];
    assert_eq!(ssh["port"], 22);
    assert_eq!(ssh["service"], "ssh");
    assert_eq!(ssh["rtt_ms"], 0.412);
    assert_eq!(ssh["observed_at"], "2026-11-23T12:00:00.250Z");
    assert_eq!(value["summary"]["not_scanned"], 2);
    // 4 ports answered at the first try, 30 silent after a retry: 4 + 30 × 2 probes,
    // summarised ports included.
    assert_eq!(value["summary"]["probes_sent"], 64);
    assert_eq!(
        value["targets"][1]["error"],
        "\"nosuch.example.test\" does not exist (NXDOMAIN)"
    );

    let all: serde_json::Value = serde_json::from_str(&json(
        &sample(),
        RenderOptions {
            only_open: false,
            all_ports: true,
        },
    ))
    .unwrap();
    assert_eq!(all["hosts"][0]["ports"].as_array().unwrap().len(), 34);
    let open: serde_json::Value = serde_json::from_str(&json(
        &sample(),
        RenderOptions {
            only_open: true,
            all_ports: false,
        },
    ))
    .unwrap();
    assert_eq!(open["hosts"][0]["ports"].as_array().unwrap().len(), 3);
    assert_eq!(open["hosts"][0]["not_shown"]["closed"], 1);
}

/// `docs/scan-report.schema.json` is what the types generate. To refresh it after a
/// deliberate change: `PORTGATE_BLESS=1 cargo test -p portgate-report`.
#[test]
fn committed_schema_matches_the_types() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/scan-report.schema.json"
    );
    let generated = json_schema();
    if std::env::var_os("PORTGATE_BLESS").is_some() {
        std::fs::write(path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        committed == generated,
        "docs/scan-report.schema.json is out of date; run PORTGATE_BLESS=1 cargo test -p portgate-report"
    );
    let schema: serde_json::Value = serde_json::from_str(&generated).unwrap();
    assert_eq!(schema["$id"], "portgate.scan.v1");
    for field in [
        "schema",
        "status",
        "targets",
        "hosts",
        "summary",
        "started_at",
        "duration_ms",
    ] {
        assert!(
            schema["properties"][field].is_object(),
            "schema lacks {field}"
        );
    }
}

/// `docs/history.schema.json` and `docs/diff.schema.json` are what the history documents'
/// types generate (refresh: `PORTGATE_BLESS=1 cargo test -p portgate-report`).
#[test]
fn committed_history_schemas_match_the_types() {
    let (timeline, diff) = portgate_report::history_schemas();
    for (name, generated, id) in [
        ("history", timeline, "portgate.history.v1"),
        ("diff", diff, "portgate.diff.v1"),
    ] {
        let path = format!(
            "{}/../../docs/{name}.schema.json",
            env!("CARGO_MANIFEST_DIR")
        );
        if std::env::var_os("PORTGATE_BLESS").is_some() {
            std::fs::write(&path, &generated).unwrap();
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == generated,
            "docs/{name}.schema.json is out of date; run PORTGATE_BLESS=1 cargo test -p portgate-report"
        );
        let schema: serde_json::Value = serde_json::from_str(&generated).unwrap();
        assert_eq!(schema["$id"], id);
    }
}

/// A document with every port listed reads back into a report that writes the same
/// document; one that summarises ports is refused, saying why.
#[test]
fn a_json_report_with_every_port_reads_back() {
    let all = RenderOptions {
        only_open: false,
        all_ports: true,
    };
    let mut report = sample();
    // Detection with hostile bytes and TLS, so that the detected part round-trips too.
    report.hosts[0]
        .services
        .push(portgate_model::DetectedService {
            port: 22,
            protocol: portgate_model::Protocol::Tcp,
            detection: portgate_model::Detection {
                service: Some("ssh".into()),
                evidence: b"SSH-2.0-x\r\n\x00\xff".to_vec().into(),
                ..Default::default()
            },
        });
    let text = portgate_report::json(&report, all);
    let back = portgate_report::read_json(&text).unwrap();
    assert_eq!(portgate_report::json(&back, all), text);
    assert_eq!(
        back.hosts[0]
            .service_on(portgate_model::Protocol::Tcp, 22)
            .unwrap()
            .evidence
            .as_bytes(),
        b"SSH-2.0-x\r\n\x00\xff"
    );

    let summarised = portgate_report::json(&report, RenderOptions::default());
    if summarised != text {
        let err = portgate_report::read_json(&summarised).unwrap_err();
        assert!(err.contains("not listed"), "{err}");
    }
    let err = portgate_report::read_json("{\"schema\": \"other.v9\"}").unwrap_err();
    assert!(err.contains("other.v9"), "{err}");
}
