//! `check` called as a library, without the binary: a real listener on 127.0.0.1, a
//! manifest from text, a SQLite history in a temporary directory.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use portgate_model::{Outcome, Rule};
use portgate_pipeline::{CheckOptions, Detector, Error, ErrorKind, Saved, check, location};
use portgate_policy::Manifest;
use portgate_scan::{NullSink, TcpMethod};
use std::net::TcpListener;

/// A loopback port nothing listens on (bound, then released).
fn closed_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn manifest(listening: u16, closed: u16, approve: bool) -> Manifest {
    let approved = if approve {
        format!("    approved:\n      - port: {listening}\n        justification: the app\n")
    } else {
        "    approved: []\n".to_string()
    };
    Manifest::from_yaml(
        &format!(
            "version: 1\nassets:\n  - name: app\n    environment: staging\n    targets: [127.0.0.1]\n    ports: T:{listening},{closed}\n{approved}"
        ),
        "exposure.yaml",
    )
    .expect("the manifest loads")
}

fn options(env: &str) -> CheckOptions {
    CheckOptions::builder()
        .env(Some(env.to_string()))
        .tcp_method(TcpMethod::Connect)
        .revision(Some("0123abc".into()))
        .build()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_check_scans_evaluates_compares_and_saves() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let listening = listener.local_addr().unwrap().port();
    let closed = closed_port();
    let detection = Detector::load(None, None).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("history.db");
    let history = location(Some(db.to_str().unwrap())).unwrap();

    let run = async |approve: bool| {
        check(
            &manifest(listening, closed, approve),
            &options("staging"),
            &detection,
            Some(&history),
            &mut NullSink,
        )
        .await
        .expect("the check runs")
    };

    // Approved: passes; nothing stored before, so nothing compared.
    let first = run(true).await;
    assert_eq!(
        first.evaluation.outcome,
        Outcome::Pass,
        "{:?}",
        first.evaluation
    );
    assert!(first.compared.is_empty());
    let host = &first.report.hosts[0];
    assert_eq!(host.ip.to_string(), "127.0.0.1");
    assert_eq!(host.ports.len(), 2, "both planned ports were scanned");
    let Saved::Saved {
        scan, check: id, ..
    } = first.saved
    else {
        panic!("saved: {:?}", first.saved);
    };

    // Not approved: fails with an unapproved-port finding naming the port, and is
    // compared with the scan saved before.
    let second = run(false).await;
    assert_eq!(second.evaluation.outcome, Outcome::Fail);
    let finding = second
        .evaluation
        .findings
        .iter()
        .find(|f| f.rule == Rule::UnapprovedPort)
        .expect("an unapproved-port finding");
    assert_eq!(finding.port, Some(listening));
    assert_eq!(second.compared.len(), 1);
    assert_eq!(second.compared[0].scan, scan);
    let Saved::Saved {
        scan: scan2,
        check: id2,
        ..
    } = second.saved
    else {
        panic!("saved: {:?}", second.saved);
    };
    assert!(scan2 > scan && id2 > id);
    drop(listener);
}

#[tokio::test]
async fn wrong_input_is_an_input_error_before_any_probe() {
    let detection = Detector::load(None, None).unwrap();
    let closed = closed_port();
    // An environment the manifest does not know.
    let err = check(
        &manifest(closed, closed, true),
        &options("production"),
        &detection,
        None,
        &mut NullSink,
    )
    .await
    .expect_err("unknown environment");
    assert!(matches!(err, Error::Manifest(_)), "{err:?}");
    assert_eq!(err.kind(), ErrorKind::Input);
    assert!(err.to_string().contains("production"), "{err}");
    // A database location that is neither a file nor postgres://.
    let err = location(Some("mysql://db.example.test/x")).expect_err("unsupported");
    assert_eq!(err.kind(), ErrorKind::Input);
    // A CA file that does not exist.
    let err = Detector::load(None, Some(std::path::Path::new("/nonexistent/ca.pem")))
        .expect_err("missing CA file");
    assert!(matches!(err, Error::Ca(_)), "{err:?}");
}
