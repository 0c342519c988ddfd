//! The history commands' human tables and JSON documents.

use chrono::{DateTime, Utc};
use portgate_model::PortState;
use portgate_pipeline::{DiffSpan, Diffed, Timeline};
use portgate_policy::drift::{Change, ChangeKind, ChangeStatus};
use portgate_report::columns;
use portgate_store::{HostSnapshot, ScanId};
use std::collections::BTreeSet;

pub(crate) fn when(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%S").to_string()
}

/// `portgate history` as a table: the timeline, then the scans not finalised.
pub(crate) fn timeline_table(target: &str, timeline: &Timeline) -> String {
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
pub(crate) fn timeline_json(target: &str, timeline: &Timeline) -> String {
    let value = serde_json::json!({
        "schema": "portgate.history.v1",
        "target": target,
        "snapshots": timeline.snapshots,
        "unfinished": timeline.unfinished,
    });
    format!(
        "{}\n",
        serde_json::to_string_pretty(&value).unwrap_or_default()
    )
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
pub(crate) fn diff_json(diffed: &Diffed) -> String {
    let scans = &diffed.scans;
    let changes: Vec<serde_json::Value> = diffed
        .changes
        .iter()
        .map(|c| {
            let mut value = serde_json::to_value(c).unwrap_or_default();
            if let Some(object) = value.as_object_mut() {
                object.insert(
                    "first_seen_scan".into(),
                    scans.get(c.first_seen).map(|s| s.0.0).into(),
                );
                object.insert("at_scan".into(), scans.get(c.at).map(|s| s.0.0).into());
                object.remove("first_seen");
                object.remove("at");
            }
            value
        })
        .collect();
    let value = serde_json::json!({
        "schema": "portgate.diff.v1",
        "scans": scans.iter().map(|(id, at)| serde_json::json!({"id": id, "started_at": at})).collect::<Vec<_>>(),
        "changes": changes,
    });
    format!(
        "{}\n",
        serde_json::to_string_pretty(&value).unwrap_or_default()
    )
}

/// `portgate diff` as a table.
pub(crate) fn diff_table(diffed: &Diffed) -> String {
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
    use portgate_store::{ScanRecord, StoredPort, StoredService, StoredStatus};

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
}
