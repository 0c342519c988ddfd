//! The store's behaviour, the same suite on SQLite and on PostgreSQL.

mod common;

use common::*;
use portgate_model::{Finding, Outcome, PortState, Protocol, Rule, ScanStatus, Severity};
use portgate_store::{Location, Retention, ScanStart, Store, StoreError, StoredStatus};

async fn open(db: &TestDb) -> Store {
    Store::open(&location(db))
        .await
        .unwrap_or_else(|e| panic!("{}: open: {e}", db.name))
}

#[tokio::test]
async fn a_scan_reloads_exactly_and_its_rows_are_queryable() {
    for db in backends().await {
        let store = open(&db).await;
        let report = web_report(at(0), "app.example", "198.18.0.10");
        let id = store
            .save_scan(&report, Some("3f2c1a9"))
            .await
            .expect("save");
        let back = store.load_report(id).await.expect("reload");
        assert_eq!(back, report, "{}", db.name);

        let record = store.scan(id).await.expect("record");
        assert_eq!(record.status, StoredStatus::Completed, "{}", db.name);
        assert_eq!(record.manifest_revision.as_deref(), Some("3f2c1a9"));
        assert_eq!(record.targets, vec!["app.example".to_string()]);
        assert_eq!(record.method.as_deref(), Some("connect"));
        assert_eq!((record.open, record.closed, record.filtered), (2, 1, 1));
        assert_eq!(record.started_at, report.started_at);
        assert_eq!(record.finished_at, Some(report.finished_at));

        let history = store.history("app.example", 10).await.expect("history");
        assert_eq!(history.len(), 1, "{}", db.name);
        let snap = &history[0];
        assert_eq!(snap.ip, "198.18.0.10");
        assert_eq!((snap.open, snap.closed, snap.filtered), (2, 1, 1));
        // Closed ports are counted, not stored as rows.
        let ports: Vec<(u16, &str)> = snap
            .ports
            .iter()
            .map(|p| (p.port, p.state.as_str()))
            .collect();
        assert_eq!(ports, vec![(22, "open"), (443, "open"), (8080, "filtered")]);
        let https = snap
            .services
            .iter()
            .find(|s| s.port == 443)
            .expect("443 service");
        assert_eq!(https.product.as_deref(), Some("nginx"));
        assert_eq!(https.tls_issuer.as_deref(), Some("CN=Test CA"));
        assert_eq!(https.tls_fingerprint_sha256.as_deref(), Some("ab12"));
        assert_eq!(https.tls_not_after.as_deref(), Some("2027-01-01T00:00:00Z"));
        assert_eq!(https.tls_valid, Some(true));
        assert_eq!(https.http_status, Some(200));
        assert_eq!(https.http_title.as_deref(), Some("Welcome"));
        assert_eq!(https.http_server.as_deref(), Some("nginx/1.24.0"));
        // The address finds the same timeline as the target.
        let by_ip = store.history("198.18.0.10", 10).await.expect("history");
        assert_eq!(by_ip, history);
        store.close().await;
    }
}

#[tokio::test]
async fn a_scan_is_running_until_finalised_once() {
    for db in backends().await {
        let store = open(&db).await;
        let id = store
            .begin_scan(&ScanStart {
                started_at: Some(at(0)),
                targets: vec!["198.18.0.1".into()],
                method: None,
                manifest_revision: None,
            })
            .await
            .expect("begin");
        let record = store.scan(id).await.expect("record");
        assert_eq!(record.status, StoredStatus::Running, "{}", db.name);
        assert_eq!(record.finished_at, None);
        // A running scan has no report and is not in any target's finalised scans.
        assert!(matches!(
            store.load_report(id).await,
            Err(StoreError::Corrupt { .. })
        ));
        assert!(
            store
                .scans_of_target("198.18.0.1", None)
                .await
                .expect("scans")
                .is_empty()
        );
        let unfinished = store
            .unfinished_scans_of_target("198.18.0.1", 10)
            .await
            .expect("unfinished");
        assert_eq!(unfinished.len(), 1, "{}", db.name);
        assert_eq!(unfinished[0].id, id);
        // Our own process is alive: reopening does not mark it interrupted.
        let again = open(&db).await;
        assert_eq!(
            again.scan(id).await.expect("record").status,
            StoredStatus::Running
        );

        let mut report = report(
            at(0),
            vec![host(
                "198.18.0.1",
                "198.18.0.1",
                vec![port(22, PortState::Filtered)],
            )],
        );
        report.status = ScanStatus::Incomplete;
        report.incomplete_reasons = vec!["deadline reached".into()];
        store.finish_scan(id, &report).await.expect("finish");
        let record = store.scan(id).await.expect("record");
        assert_eq!(record.status, StoredStatus::Incomplete);
        assert!(
            store
                .unfinished_scans_of_target("198.18.0.1", 10)
                .await
                .expect("unfinished")
                .is_empty()
        );
        assert_eq!(
            record.incomplete_reasons,
            vec!["deadline reached".to_string()]
        );
        assert!(
            matches!(
                store.finish_scan(id, &report).await,
                Err(StoreError::NotRunning { scan_id, .. }) if scan_id == id
            ),
            "{}",
            db.name
        );
        assert!(matches!(
            store.scan(portgate_store::ScanId(id.0 + 100)).await,
            Err(StoreError::NoSuchScan { .. })
        ));
        store.close().await;
        again.close().await;
    }
}

#[tokio::test]
async fn history_is_newest_first_and_limited() {
    for db in backends().await {
        let store = open(&db).await;
        for minute in 0..5 {
            store
                .save_scan(&web_report(at(minute), "app.example", "198.18.0.10"), None)
                .await
                .expect("save");
        }
        store
            .save_scan(&web_report(at(9), "other.example", "198.18.0.11"), None)
            .await
            .expect("save");
        let history = store.history("app.example", 3).await.expect("history");
        let starts: Vec<_> = history.iter().map(|h| h.scan.started_at).collect();
        assert_eq!(starts, vec![at(4), at(3), at(2)], "{}", db.name);
        let scans = store
            .scans_of_target("app.example", Some(at(2)))
            .await
            .expect("scans");
        assert_eq!(scans.len(), 3);
        assert!(scans.windows(2).all(|w| w[0].started_at <= w[1].started_at));
        let before = store
            .last_scan_of_target_before("app.example", at(2))
            .await
            .expect("query")
            .expect("a scan before");
        assert_eq!(before.started_at, at(1));
        assert!(
            store
                .history("nothing.example", 3)
                .await
                .expect("history")
                .is_empty()
        );
        store.close().await;
    }
}

#[tokio::test]
async fn checks_store_their_findings() {
    for db in backends().await {
        let store = open(&db).await;
        let id = store
            .save_scan(&web_report(at(0), "app.example", "198.18.0.10"), None)
            .await
            .expect("save");
        let findings = vec![
            Finding {
                rule: Rule::UnapprovedPort,
                outcome: Outcome::Fail,
                severity: Severity::Critical,
                target: "app.example".into(),
                ip: Some("198.18.0.10".parse().expect("ip")),
                protocol: Some(Protocol::Tcp),
                port: Some(22),
                state: Some(PortState::Open),
                service: Some("ssh".into()),
                product: Some("OpenSSH".into()),
                version: Some("9.6".into()),
                asset: Some("web".into()),
                owner: Some("team-web".into()),
                escalation: None,
                message: "22/tcp ssh is open and not approved".into(),
                location: None,
                references: Vec::new(),
                proof: None,
                fix: None,
            },
            Finding {
                rule: Rule::Approved,
                outcome: Outcome::Pass,
                severity: Severity::Info,
                target: "app.example".into(),
                ip: None,
                protocol: None,
                port: None,
                state: None,
                service: None,
                product: None,
                version: None,
                asset: None,
                owner: None,
                escalation: None,
                message: "ok".into(),
                location: None,
                references: Vec::new(),
                proof: None,
                fix: None,
            },
        ];
        let check = store
            .save_check(id, &findings, Some("deadbeef"))
            .await
            .expect("save check");
        let checks = store.checks_of_scan(id).await.expect("checks");
        assert_eq!(checks.len(), 1, "{}", db.name);
        assert_eq!(checks[0].id, check);
        assert_eq!(checks[0].manifest_revision.as_deref(), Some("deadbeef"));
        assert_eq!(checks[0].findings, findings);
        // A check of a scan that does not exist is refused by the foreign key.
        assert!(
            store
                .save_check(portgate_store::ScanId(id.0 + 1000), &findings, None)
                .await
                .is_err()
        );
        store.close().await;
    }
}

#[tokio::test]
async fn prune_keeps_days_or_scans_and_never_a_running_scan() {
    for db in backends().await {
        let store = open(&db).await;
        let mut ids = Vec::new();
        for day in 0..6 {
            ids.push(
                store
                    .save_scan(
                        &web_report(at(day * 24 * 60), "app.example", "198.18.0.10"),
                        None,
                    )
                    .await
                    .expect("save"),
            );
        }
        store.save_check(ids[0], &[], None).await.expect("check");
        let running = store
            .begin_scan(&ScanStart {
                started_at: Some(at(-10_000)),
                ..ScanStart::default()
            })
            .await
            .expect("begin");
        // Day 5 is "now": keep 2 days keeps days 3, 4 and 5.
        let deleted = store
            .prune(Retention::KeepDays {
                days: 2,
                now: at(5 * 24 * 60),
            })
            .await
            .expect("prune");
        assert_eq!(deleted, 3, "{}", db.name);
        assert!(matches!(
            store.load_report(ids[0]).await,
            Err(StoreError::NoSuchScan { .. })
        ));
        assert!(
            store
                .checks_of_scan(ids[0])
                .await
                .expect("checks")
                .is_empty()
        );
        assert_eq!(
            store.scan(running).await.expect("kept").status,
            StoredStatus::Running
        );
        let deleted = store.prune(Retention::KeepScans(1)).await.expect("prune");
        // The running scan is the oldest, so "the newest one" is day 5, and the running one
        // stays as well.
        assert_eq!(deleted, 2, "{}", db.name);
        let left: Vec<_> = store
            .scans(100)
            .await
            .expect("scans")
            .iter()
            .map(|s| s.id)
            .collect();
        assert_eq!(left, vec![ids[5], running]);
        assert_eq!(
            store
                .history("app.example", 10)
                .await
                .expect("history")
                .len(),
            1
        );
        store.close().await;
    }
}

#[tokio::test]
async fn export_writes_one_line_per_scan() {
    for db in backends().await {
        let store = open(&db).await;
        let first = web_report(at(0), "app.example", "198.18.0.10");
        let id = store.save_scan(&first, None).await.expect("save");
        store.save_check(id, &[], Some("r1")).await.expect("check");
        store
            .begin_scan(&ScanStart {
                started_at: Some(at(5)),
                targets: vec!["app.example".into()],
                ..ScanStart::default()
            })
            .await
            .expect("begin");
        let mut out = Vec::new();
        let lines = store.export_jsonl(&mut out).await.expect("export");
        assert_eq!(lines, 2, "{}", db.name);
        let text = String::from_utf8(out).expect("utf-8");
        let parsed: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).expect("a JSON line"))
            .collect();
        assert_eq!(parsed[0]["schema"], "portgate.export.v1");
        let report: portgate_model::ScanReport =
            serde_json::from_value(parsed[0]["report"].clone()).expect("report");
        assert_eq!(report, first);
        assert_eq!(parsed[0]["checks"][0]["manifest_revision"], "r1");
        assert_eq!(parsed[1]["scan"]["status"], "running");
        assert!(parsed[1]["report"].is_null());
        store.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_lose_nothing() {
    const PER_WRITER: usize = 15;
    for db in backends().await {
        // Two stores (two pools, as two processes would have) writing at once.
        let writers = [open(&db).await, open(&db).await];
        let mut tasks = Vec::new();
        for (octet, store) in writers.into_iter().enumerate() {
            tasks.push(tokio::spawn(async move {
                let mut saved = Vec::new();
                for i in 0..PER_WRITER {
                    let ip = format!("198.18.{octet}.{i}");
                    let report = web_report(at(i as i64), &ip, &ip);
                    let id = store
                        .save_scan(&report, None)
                        .await
                        .expect("concurrent save");
                    store
                        .save_check(id, &[], None)
                        .await
                        .expect("concurrent check");
                    saved.push((id, report));
                }
                store.close().await;
                saved
            }));
        }
        let mut saved = Vec::new();
        for task in tasks {
            saved.extend(task.await.expect("writer task"));
        }
        let store = open(&db).await;
        assert_eq!(
            store.scans(1000).await.expect("scans").len(),
            2 * PER_WRITER,
            "{}",
            db.name
        );
        for (id, report) in &saved {
            assert_eq!(&store.load_report(*id).await.expect("reload"), report);
            let history = store
                .history(&report.hosts[0].target, 5)
                .await
                .expect("history");
            assert_eq!(history.len(), 1);
            assert_eq!(history[0].ports.len(), 3);
            assert_eq!(history[0].services.len(), 2);
            assert_eq!(store.checks_of_scan(*id).await.expect("checks").len(), 1);
        }
        store.close().await;
    }
}

#[test]
fn sqlite_and_postgres_migrations_differ_only_in_generated_ids_and_binary_type() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
    let list = |sub: &str| {
        let mut names: Vec<String> = std::fs::read_dir(dir.join(sub))
            .expect("migrations directory")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    };
    assert_eq!(list("sqlite"), list("postgres"));
    for name in list("sqlite") {
        let read = |sub: &str| std::fs::read_to_string(dir.join(sub).join(&name)).expect("read");
        let sqlite = read("sqlite")
            .replace(
                "id INTEGER PRIMARY KEY AUTOINCREMENT,",
                "id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,",
            )
            .replace(" BLOB NOT NULL", " BYTEA NOT NULL");
        assert_eq!(sqlite, read("postgres"), "{name}");
    }
}

#[tokio::test]
async fn a_bad_location_is_a_clear_error() {
    let err = Location::parse("mysql://root@127.0.0.1/db").expect_err("unsupported");
    assert!(err.to_string().contains("mysql://"), "{err}");
    // Nothing listens on port 1 of the loopback: the error names the database.
    let err = Store::open(&Location::Postgres("postgres://u:pw@127.0.0.1:1/x".into()))
        .await
        .expect_err("no server");
    let text = err.to_string();
    assert!(text.contains("postgres://u:***@127.0.0.1:1/x"), "{text}");
    assert!(!text.contains("pw"), "{text}");
    // A file where the directory should be.
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("file"), b"x").expect("write");
    let err = Store::open(&Location::Sqlite(dir.path().join("file/history.db")))
        .await
        .expect_err("not a directory");
    assert!(err.to_string().contains("file"), "{err}");
    // A file that is not a database.
    let junk = dir.path().join("junk.db");
    std::fs::write(&junk, vec![0x42u8; 8192]).expect("write");
    let err = Store::open(&Location::Sqlite(junk.clone()))
        .await
        .expect_err("not a database");
    assert!(err.to_string().contains("junk.db"), "{err}");
}

#[tokio::test]
async fn only_the_most_common_state_of_a_host_goes_unlisted() {
    for db in backends().await {
        let store = open(&db).await;
        // Behind a dropping firewall: filtered everywhere but one open and one closed port.
        let mut ports: Vec<_> = (1..=500).map(|p| port(p, PortState::Filtered)).collect();
        ports[21] = port(22, PortState::Open);
        ports[112] = port(113, PortState::Closed);
        let firewalled = host("fw.example", "198.18.0.20", ports);
        let mut plain = host(
            "plain.example",
            "198.18.0.21",
            (1..=500).map(|p| port(p, PortState::Closed)).collect(),
        );
        plain.ports[79] = port(80, PortState::Open);
        plain.ports[80] = port(81, PortState::Filtered);
        let report = report(at(0), vec![firewalled, plain]);
        let id = store.save_scan(&report, None).await.expect("save");
        let fw = &store.history("fw.example", 1).await.expect("history")[0];
        assert_eq!(fw.unlisted_tcp, Some(PortState::Filtered), "{}", db.name);
        assert_eq!(fw.unlisted_udp, None);
        let listed: Vec<(u16, &str)> = fw
            .ports
            .iter()
            .map(|p| (p.port, p.state.as_str()))
            .collect();
        assert_eq!(listed, vec![(22, "open"), (113, "closed")]);
        assert_eq!((fw.open, fw.closed, fw.filtered), (1, 1, 498));
        let plain = &store.history("plain.example", 1).await.expect("history")[0];
        assert_eq!(plain.unlisted_tcp, Some(PortState::Closed));
        let listed: Vec<(u16, &str)> = plain
            .ports
            .iter()
            .map(|p| (p.port, p.state.as_str()))
            .collect();
        assert_eq!(listed, vec![(80, "open"), (81, "filtered")]);
        // Every port is still in the report.
        assert_eq!(store.load_report(id).await.expect("reload"), report);
        store.close().await;
    }
}
