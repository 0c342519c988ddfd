//! The history documents: a target's timeline (`portgate history`) and the changes
//! between scans (`portgate diff`), as tables for people and as JSON with their own
//! schema ids ([`HISTORY_SCHEMA_ID`], [`DIFF_SCHEMA_ID`]).

use crate::columns;
use chrono::{DateTime, Utc};
use portgate_model::history::{DiffSpan, Diffed, HostSnapshot, ScanId, ScanRecord, Timeline};
use portgate_model::{Change, ChangeKind, ChangeStatus, PortState};
use schemars::JsonSchema;
use serde::Serialize;
use std::collections::BTreeSet;
use std::net::IpAddr;

/// Names the timeline document (`portgate history -o json`).
pub const HISTORY_SCHEMA_ID: &str = "portgate.history.v1";
/// Names the changes document (`portgate diff -o json`).
pub const DIFF_SCHEMA_ID: &str = "portgate.diff.v1";

/// A target's timeline as JSON (every object's keys in alphabetical order).
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(title = "portgate history timeline", extend("$id" = HISTORY_SCHEMA_ID))]
pub struct TimelineDocument<'a> {
    /// One snapshot per address per finalised scan, newest first.
    pub snapshots: &'a [HostSnapshot],
    /// Format and version of this document: `portgate.history.v1`.
    pub schema: &'static str,
    /// The target as asked for.
    pub target: &'a str,
    /// Scans of the target not finalised: still running, or interrupted.
    pub unfinished: &'a [ScanRecord],
}

/// The changes between scans as JSON (every object's keys in alphabetical order).
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(title = "portgate diff", extend("$id" = DIFF_SCHEMA_ID))]
pub struct DiffDocument<'a> {
    /// The changes, oldest first.
    pub changes: Vec<DiffChange<'a>>,
    /// The scans compared, oldest first.
    pub scans: Vec<DiffScan>,
    /// Format and version of this document: `portgate.diff.v1`.
    pub schema: &'static str,
}

/// A scan compared.
#[derive(Debug, Serialize, JsonSchema)]
pub struct DiffScan {
    /// Its id.
    pub id: ScanId,
    /// When it started.
    #[schemars(with = "String")]
    pub started_at: DateTime<Utc>,
}

/// One change of one port.
#[derive(Debug, Serialize, JsonSchema)]
pub struct DiffChange<'a> {
    /// The value after.
    pub after: Option<&'a str>,
    /// The scan that confirmed it; for a pending change, the newest scan.
    pub at_scan: Option<ScanId>,
    /// The value before (null: not observed, or absent, e.g. no version).
    pub before: Option<&'a str>,
    /// The scan where the new value was first seen.
    pub first_seen_scan: Option<ScanId>,
    /// The address.
    #[schemars(with = "String")]
    pub ip: IpAddr,
    /// What changed.
    pub kind: ChangeKind,
    /// For a pending change: the observations that confirm it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub needed: Option<u32>,
    /// The port.
    pub port: u16,
    /// `tcp` or `udp`.
    #[schemars(with = "String")]
    pub protocol: portgate_model::Protocol,
    /// For a pending change: consecutive observations so far.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seen: Option<u32>,
    /// `confirmed`, or `pending` until seen in as many scans in a row as its kind needs.
    pub status: &'static str,
    /// The target as given in the newest scan that saw the port.
    pub target: &'a str,
}

impl<'a> DiffDocument<'a> {
    /// The document for `diffed`.
    pub fn new(diffed: &'a Diffed) -> Self {
        let scan = |index: usize| diffed.scans.get(index).map(|s| s.0);
        DiffDocument {
            changes: diffed
                .changes
                .iter()
                .map(|c| {
                    let (status, seen, needed) = match c.status {
                        ChangeStatus::Confirmed => ("confirmed", None, None),
                        ChangeStatus::Pending { seen, needed } => {
                            ("pending", Some(seen), Some(needed))
                        }
                    };
                    DiffChange {
                        after: c.after.as_deref(),
                        at_scan: scan(c.at),
                        before: c.before.as_deref(),
                        first_seen_scan: scan(c.first_seen),
                        ip: c.ip,
                        kind: c.kind,
                        needed,
                        port: c.port,
                        protocol: c.protocol,
                        seen,
                        status,
                        target: &c.target,
                    }
                })
                .collect(),
            scans: diffed
                .scans
                .iter()
                .map(|&(id, started_at)| DiffScan { id, started_at })
                .collect(),
            schema: DIFF_SCHEMA_ID,
        }
    }
}

/// Pretty JSON with a trailing newline, every object's keys in alphabetical order (the
/// form of every v1 history document so far).
fn pretty<T: Serialize>(value: &T) -> String {
    let mut text = serde_json::to_value(value)
        .and_then(|v| serde_json::to_string_pretty(&v))
        .unwrap_or_else(|e| format!("{{\"error\": \"could not serialise: {e}\"}}"));
    text.push('\n');
    text
}

/// The JSON Schemas of the timeline and the changes documents, pretty-printed.
pub fn history_schemas() -> (String, String) {
    let text = |schema: schemars::Schema| {
        let mut text = serde_json::to_string_pretty(&schema).unwrap_or_default();
        text.push('\n');
        text
    };
    (
        text(schemars::schema_for!(TimelineDocument<'static>)),
        text(schemars::schema_for!(DiffDocument<'static>)),
    )
}

fn when(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%S").to_string()
}

/// `portgate history` as a table: the timeline, then the scans not finalised.
pub fn timeline_table(target: &str, timeline: &Timeline) -> String {
    let mut text = history_table(target, &timeline.snapshots, &timeline.changes);
    for scan in &timeline.unfinished {
        text.push_str(&format!(
            "scan {} started {} UTC is {}: {}\n",
            scan.id,
            when(scan.started_at),
            scan.status.as_str(),
            if scan.incomplete_reasons.is_empty() {
                "not finalised yet".to_string()
            } else {
                scan.incomplete_reasons.join("; ")
            }
        ));
    }
    text
}

/// `portgate history -o json`.
pub fn timeline_json(target: &str, timeline: &Timeline) -> String {
    pretty(&TimelineDocument {
        snapshots: &timeline.snapshots,
        schema: HISTORY_SCHEMA_ID,
        target,
        unfinished: &timeline.unfinished,
    })
}

/// One line per address per scan, newest first, with what opened (+) and stopped being
/// open (-) since the address's previous scan (`changes`, from the drift engine).
fn history_table(
    target: &str,
    snapshots: &[HostSnapshot],
    changes: &[Option<Vec<Change>>],
) -> String {
    if snapshots.is_empty() {
        return format!("no scan of {target} in the history\n");
    }
    let scans: BTreeSet<ScanId> = snapshots.iter().map(|s| s.scan.id).collect();
    let mut out = format!(
        "{target}: {} scan{}, newest first\n",
        scans.len(),
        if scans.len() == 1 { "" } else { "s" }
    );
    let mut rows = vec![[
        "SCAN".to_string(),
        "STARTED (UTC)".into(),
        "STATUS".into(),
        "ADDRESS".into(),
        "OPEN".into(),
        "FILTERED".into(),
        "CLOSED".into(),
        "CHANGE".into(),
        "OPEN PORTS".into(),
    ]];
    for (i, snap) in snapshots.iter().enumerate() {
        let open = open_ports(snap);
        let change = match changes.get(i) {
            Some(Some(changes)) => open_close(changes),
            _ => "first".to_string(),
        };
        let described: Vec<String> = open
            .iter()
            .map(|p| {
                let service = snap
                    .services
                    .iter()
                    .find(|s| format!("{}/{}", s.port, s.protocol) == *p);
                match service {
                    Some(s) => {
                        let mut text = p.clone();
                        for part in [&s.service, &s.product, &s.version].into_iter().flatten() {
                            text.push(' ');
                            text.push_str(part);
                        }
                        if s.tls_valid == Some(false) {
                            text.push_str(" [TLS invalid]");
                        }
                        text
                    }
                    None => p.clone(),
                }
            })
            .collect();
        rows.push([
            snap.scan.id.to_string(),
            when(snap.scan.started_at),
            snap.scan.status.as_str().to_string(),
            snap.ip.clone(),
            snap.open.to_string(),
            (snap.filtered + snap.open_filtered).to_string(),
            snap.closed.to_string(),
            change,
            if described.is_empty() {
                "-".to_string()
            } else {
                described.join(", ")
            },
        ]);
    }
    out.push_str(&columns(&rows));
    out
}

/// `+PORT/PROTO` for each port newly open, then `-PORT/PROTO` for each that stopped being
/// open; `=` when neither.
fn open_close(changes: &[Change]) -> String {
    let mut opened = Vec::new();
    let mut gone = Vec::new();
    for c in changes {
        match c.kind {
            ChangeKind::NewlyOpen => opened.push(format!("+{}/{}", c.port, c.protocol)),
            ChangeKind::OpenToClosed | ChangeKind::OpenToFiltered => {
                gone.push(format!("-{}/{}", c.port, c.protocol));
            }
            _ => {}
        }
    }
    opened.extend(gone);
    if opened.is_empty() {
        "=".to_string()
    } else {
        opened.join(" ")
    }
}

/// `PORT/PROTO` of every open port, in port order.
fn open_ports(snap: &HostSnapshot) -> Vec<String> {
    snap.ports
        .iter()
        .filter(|p| p.state == PortState::Open)
        .map(|p| format!("{}/{}", p.port, p.protocol))
        .collect()
}

/// What a diff compared, as its table's title.
fn diff_title(diffed: &Diffed) -> String {
    match &diffed.span {
        DiffSpan::Scans { before, after } => format!("scan {before} → scan {after}"),
        DiffSpan::Since {
            target,
            since,
            baseline,
        } => {
            let n = diffed.scans.len();
            format!(
                "{target} since {} UTC: {n} scan{}{}",
                when(*since),
                if n == 1 { "" } else { "s" },
                if *baseline {
                    ", the first the last one before the period"
                } else {
                    ""
                }
            )
        }
    }
}

/// `portgate diff -o json`.
pub fn diff_json(diffed: &Diffed) -> String {
    pretty(&DiffDocument::new(diffed))
}

/// `portgate diff` as a table.
pub fn diff_table(diffed: &Diffed) -> String {
    let (title, scans, changes) = (diff_title(diffed), &diffed.scans, &diffed.changes);
    let mut out = format!("{title}\n");
    if scans.len() < 2 {
        out.push_str("fewer than two scans: nothing to compare\n");
        return out;
    }
    if changes.is_empty() {
        out.push_str("no changes\n");
        return out;
    }
    let scan_id = |index: usize| {
        scans
            .get(index)
            .map(|s| s.0.to_string())
            .unwrap_or_default()
    };
    let mut rows = vec![[
        "SCAN".to_string(),
        "ENDPOINT".into(),
        "CHANGE".into(),
        "BEFORE".into(),
        "AFTER".into(),
        "STATUS".into(),
    ]];
    for c in changes {
        let status = match c.status {
            ChangeStatus::Confirmed => "confirmed".to_string(),
            ChangeStatus::Pending { seen, needed } => format!("pending ({seen} of {needed})"),
        };
        rows.push([
            scan_id(c.at),
            c.endpoint(),
            c.kind.id().to_string(),
            c.before.clone().unwrap_or_else(|| "-".into()),
            c.after.clone().unwrap_or_else(|| "-".into()),
            status,
        ]);
    }
    out.push_str(&columns(&rows));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use portgate_model::Protocol;
    use portgate_model::history::{StoredPort, StoredService, StoredStatus};

    fn snapshot(id: i64, minute: u32, open: &[u16], status: StoredStatus) -> HostSnapshot {
        let started = Utc
            .with_ymd_and_hms(2026, 11, 30, 6, minute, 0)
            .single()
            .unwrap_or_default();
        HostSnapshot {
            scan: ScanRecord {
                id: ScanId(id),
                status,
                started_at: started,
                finished_at: Some(started),
                method: Some("connect".into()),
                targets: vec!["app.example".into()],
                manifest_revision: None,
                incomplete_reasons: vec![],
                hosts: 1,
                ports_scanned: 1000,
                open: open.len() as i64,
                closed: 1000 - open.len() as i64,
                filtered: 0,
                open_filtered: 0,
            },
            target: "app.example".into(),
            hostname: Some("app.example".into()),
            ip: "198.18.0.10".into(),
            ports_requested: 1000,
            open: open.len() as i64,
            closed: 1000 - open.len() as i64,
            filtered: 0,
            open_filtered: 0,
            tarpit: false,
            unlisted_tcp: Some(PortState::Closed),
            unlisted_udp: None,
            ports: open
                .iter()
                .map(|p| StoredPort {
                    protocol: Protocol::Tcp,
                    port: *p,
                    state: PortState::Open,
                    reason: portgate_model::Reason::SynAck,
                })
                .collect(),
            services: open
                .iter()
                .filter(|p| **p == 443)
                .map(|p| StoredService {
                    protocol: Protocol::Tcp,
                    port: *p,
                    service: Some("https".into()),
                    product: Some("nginx".into()),
                    version: Some("1.24.0".into()),
                    tls_valid: Some(false),
                    ..StoredService::default()
                })
                .collect(),
        }
    }

    #[test]
    fn the_timeline_shows_what_opened_and_closed() {
        let snapshots = [
            snapshot(3, 20, &[443, 8080], StoredStatus::Incomplete),
            snapshot(2, 10, &[22, 443], StoredStatus::Completed),
            snapshot(1, 0, &[22, 443], StoredStatus::Completed),
        ];
        let expected = "\
app.example: 3 scans, newest first
SCAN  STARTED (UTC)        STATUS      ADDRESS      OPEN  FILTERED  CLOSED  CHANGE             OPEN PORTS
3     2026-11-30 06:20:00  incomplete  198.18.0.10  2     0         998     +8080/tcp -22/tcp  443/tcp https nginx 1.24.0 [TLS invalid], 8080/tcp
2     2026-11-30 06:10:00  completed   198.18.0.10  2     0         998     =                  22/tcp, 443/tcp https nginx 1.24.0 [TLS invalid]
1     2026-11-30 06:00:00  completed   198.18.0.10  2     0         998     first              22/tcp, 443/tcp https nginx 1.24.0 [TLS invalid]
";
        let change = |kind, port| Change {
            kind,
            status: ChangeStatus::Confirmed,
            target: "app.example".into(),
            ip: "198.18.0.10".parse().expect("an address"),
            protocol: portgate_model::Protocol::Tcp,
            port,
            before: None,
            after: None,
            first_seen: 1,
            at: 1,
        };
        let changes = [
            Some(vec![
                change(ChangeKind::OpenToClosed, 22),
                change(ChangeKind::NewlyOpen, 8080),
                change(ChangeKind::VersionChanged, 443),
            ]),
            Some(vec![]),
            None,
        ];
        assert_eq!(history_table("app.example", &snapshots, &changes), expected);
        assert_eq!(
            history_table("nothing.example", &[], &[]),
            "no scan of nothing.example in the history\n"
        );
    }

    #[test]
    fn the_diff_document_keeps_its_v1_form() {
        let at = Utc
            .with_ymd_and_hms(2026, 11, 30, 6, 0, 0)
            .single()
            .unwrap_or_default();
        let change = |status| Change {
            kind: ChangeKind::VersionChanged,
            status,
            target: "app.example.test".into(),
            ip: "198.18.0.10".parse().expect("an address"),
            protocol: Protocol::Tcp,
            port: 22,
            before: Some("9.2".into()),
            after: None,
            first_seen: 0,
            at: 1,
        };
        let diffed = Diffed {
            span: DiffSpan::Scans {
                before: ScanId(1),
                after: ScanId(2),
            },
            scans: vec![(ScanId(1), at), (ScanId(2), at)],
            changes: vec![
                change(ChangeStatus::Confirmed),
                change(ChangeStatus::Pending { seen: 1, needed: 2 }),
            ],
        };
        let change_text = |status: &str| {
            format!(
                r#"    {{
      "after": null,
      "at_scan": 2,
      "before": "9.2",
      "first_seen_scan": 1,
      "ip": "198.18.0.10",
      "kind": "version-changed",
{status}      "target": "app.example.test"
    }}"#
            )
        };
        let confirmed = change_text(
            "      \"port\": 22,\n      \"protocol\": \"tcp\",\n      \"status\": \"confirmed\",\n",
        );
        let pending = change_text(concat!(
            "      \"needed\": 2,\n      \"port\": 22,\n      \"protocol\": \"tcp\",\n",
            "      \"seen\": 1,\n      \"status\": \"pending\",\n"
        ));
        let scan = |id| {
            format!(
                "    {{\n      \"id\": {id},\n      \"started_at\": \"2026-11-30T06:00:00Z\"\n    }}"
            )
        };
        let expected = format!(
            "{{\n  \"changes\": [\n{confirmed},\n{pending}\n  ],\n  \"scans\": [\n{},\n{}\n  ],\n  \"schema\": \"portgate.diff.v1\"\n}}\n",
            scan(1),
            scan(2)
        );
        assert_eq!(diff_json(&diffed), expected);
        valid(&history_schemas().1, &expected);
    }

    /// `text` is valid against `schema`.
    fn valid(schema: &str, text: &str) {
        let schema: serde_json::Value = serde_json::from_str(schema).expect("a schema");
        let doc: serde_json::Value = serde_json::from_str(text).expect("a document");
        let validator = jsonschema::validator_for(&schema).expect("a valid schema");
        let errors: Vec<String> = validator.iter_errors(&doc).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{errors:?}");
    }

    #[test]
    fn the_timeline_document_keeps_its_v1_form() {
        let timeline = Timeline {
            snapshots: vec![snapshot(1, 0, &[22], StoredStatus::Completed)],
            changes: vec![None],
            unfinished: vec![],
        };
        let expected = r#"{
  "schema": "portgate.history.v1",
  "snapshots": [
    {
      "closed": 999,
      "filtered": 0,
      "hostname": "app.example",
      "ip": "198.18.0.10",
      "open": 1,
      "open_filtered": 0,
      "ports": [
        {
          "port": 22,
          "protocol": "tcp",
          "reason": "syn-ack",
          "state": "open"
        }
      ],
      "ports_requested": 1000,
      "scan": {
        "closed": 999,
        "filtered": 0,
        "finished_at": "2026-11-30T06:00:00Z",
        "hosts": 1,
        "id": 1,
        "incomplete_reasons": [],
        "manifest_revision": null,
        "method": "connect",
        "open": 1,
        "open_filtered": 0,
        "ports_scanned": 1000,
        "started_at": "2026-11-30T06:00:00Z",
        "status": "completed",
        "targets": [
          "app.example"
        ]
      },
      "services": [],
      "target": "app.example",
      "tarpit": false,
      "unlisted_tcp": "closed",
      "unlisted_udp": null
    }
  ],
  "target": "app.example",
  "unfinished": []
}
"#;
        assert_eq!(timeline_json("app.example", &timeline), expected);
        valid(&history_schemas().0, expected);
    }
}
