//! The API end to end: a real server on 127.0.0.1 with a real SQLite store, real listeners
//! to scan, real HTTP requests.

#![allow(clippy::unwrap_used)]

use portgate_model::Scope;
use portgate_serve::{Config, State};
use portgate_store::{Location, Store};
use portgate_test_support::db::TestDb;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::net::{SocketAddr, TcpListener};
use std::time::{Duration, Instant};

struct Server {
    base: String,
    key: String,
    state: State,
    _db: TestDb,
    _task: tokio::task::JoinHandle<()>,
}

async fn server(tune: impl FnOnce(&mut Config)) -> Server {
    server_on(portgate_test_support::db::sqlite(), tune).await
}

/// A server on `db` (SQLite or PostgreSQL).
async fn server_on(db: TestDb, tune: impl FnOnce(&mut Config)) -> Server {
    let store = Store::open(&Location::parse(&db.url).unwrap())
        .await
        .unwrap();
    let (key, _) = portgate_serve::create_key(&store, "test", None)
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut config = Config::new(addr, Scope::parse(&["127.0.0.0/8", "::1/128"]).unwrap());
    tune(&mut config);
    let state = State::new(store, config);
    let run_state = state.clone();
    let task = tokio::spawn(async move {
        let _ = portgate_serve::run(run_state, listener, Duration::from_secs(5)).await;
    });
    Server {
        base: format!("http://{addr}"),
        key,
        state,
        _db: db,
        _task: task,
    }
}

fn client() -> reqwest::Client {
    // The crate builds reqwest without a TLS provider of its own (the client is given its
    // TLS setup); these plain-HTTP requests need one installed.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

impl Server {
    async fn post(&self, path: &str, body: &Value) -> (StatusCode, Value) {
        let r = client()
            .post(format!("{}{path}", self.base))
            .header("x-api-key", &self.key)
            .json(body)
            .send()
            .await
            .unwrap();
        let status = r.status();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        let r = client()
            .get(format!("{}{path}", self.base))
            .header("x-api-key", &self.key)
            .send()
            .await
            .unwrap();
        let status = r.status();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// Polls a scan until it is done (at most 60 s).
    async fn wait(&self, id: i64) -> Value {
        let start = Instant::now();
        loop {
            let (status, body) = self.get(&format!("/v1/scans/{id}")).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            if !["queued", "running"].contains(&body["status"].as_str().unwrap()) {
                return body;
            }
            assert!(start.elapsed() < Duration::from_secs(60), "{body}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// A port where a service greets with an SSH banner, and a port where nothing listens.
fn ports() -> (std::thread::JoinHandle<()>, u16, u16) {
    let open = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = open.local_addr().unwrap().port();
    let closed = TcpListener::bind("127.0.0.1:0").unwrap();
    let closed_port = closed.local_addr().unwrap().port();
    drop(closed);
    let server = std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in open.incoming() {
            let Ok(mut stream) = stream else { continue };
            let _ = std::io::Write::write_all(&mut stream, b"SSH-2.0-OpenSSH_9.6\r\n");
            held.push(stream);
        }
    });
    (server, port, closed_port)
}

/// On both store backends.
#[tokio::test(flavor = "multi_thread")]
async fn a_scan_is_queued_polled_and_reported() {
    for db in portgate_test_support::db::backends().await {
        eprintln!("store backend: {}", db.name);
        queued_polled_and_reported(server_on(db, |_| {}).await).await;
    }
}

async fn queued_polled_and_reported(s: Server) {
    let (_open, port, closed) = ports();
    let (status, accepted) = s
        .post(
            "/v1/scans",
            &json!({"targets": ["127.0.0.1"], "ports": format!("T:{port},{closed}")}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");
    let id = accepted["scanId"].as_i64().unwrap();
    assert_eq!(accepted["status"], "queued");
    assert_eq!(accepted["links"]["self"], format!("/v1/scans/{id}"));
    let done = s.wait(id).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    let report = &done["report"];
    assert_eq!(report["schema"], "portgate.scan.v1");
    let listed: Vec<(u64, String)> = report["hosts"][0]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["port"].as_u64().unwrap(),
                p["state"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert!(
        listed.contains(&(u64::from(port), "open".into())),
        "{listed:?}"
    );
    assert!(
        listed.contains(&(u64::from(closed), "closed".into())),
        "{listed:?}"
    );
    assert!(done["historyScanId"].as_i64().is_some(), "{done}");
    assert_eq!(done["progress"]["total"], 2);

    // The same Idempotency-Key gives the same scan.
    let again = |key: &'static str| {
        client()
            .post(format!("{}/v1/scans", s.base))
            .header("x-api-key", &s.key)
            .header("idempotency-key", key)
            .json(&json!({"targets": ["127.0.0.1"], "ports": format!("{port}")}))
            .send()
    };
    let first: Value = again("deploy-42").await.unwrap().json().await.unwrap();
    let second: Value = again("deploy-42").await.unwrap().json().await.unwrap();
    assert_eq!(first["scanId"], second["scanId"]);
    let other: Value = again("deploy-43").await.unwrap().json().await.unwrap();
    assert_ne!(first["scanId"], other["scanId"]);

    // Listed, newest first, with a cursor.
    let (_, page) = s.get("/v1/scans?limit=2").await;
    let items = page["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{page}");
    assert!(items[0]["scanId"].as_i64() > items[1]["scanId"].as_i64());
    let next = page["next"].as_str().unwrap();
    let (_, rest) = s.get(&format!("/v1/scans?limit=2&after={next}")).await;
    assert_eq!(rest["items"].as_array().unwrap().len(), 1, "{rest}");
    assert_eq!(rest["next"], Value::Null);
    let (_, filtered) = s.get("/v1/scans?status=succeeded&target=127.0.0.1").await;
    assert!(!filtered["items"].as_array().unwrap().is_empty());
    let (status, bad) = s.get("/v1/scans?status=done").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        bad["detail"].as_str().unwrap().contains("status \"done\""),
        "{bad}"
    );

    // The history of the target, and the difference of two of its scans.
    let (status, timeline) = s.get("/v1/targets/127.0.0.1/history").await;
    assert_eq!(status, StatusCode::OK, "{timeline}");
    assert_eq!(timeline["schema"], "portgate.history.v1");
    assert!(
        !timeline["snapshots"].as_array().unwrap().is_empty(),
        "{timeline}"
    );
    let h1 = done["historyScanId"].as_i64().unwrap();
    let later = s.wait(other["scanId"].as_i64().unwrap()).await;
    let h2 = later["historyScanId"].as_i64().unwrap();
    let (status, diff) = s.get(&format!("/v1/diff?a={h1}&b={h2}")).await;
    assert_eq!(status, StatusCode::OK, "{diff}");
    assert_eq!(diff["schema"], "portgate.diff.v1");
    assert_eq!(diff["scans"].as_array().unwrap().len(), 2, "{diff}");
    let (status, _) = s.get("/v1/diff?a=x&b=2").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = s.get("/v1/diff?a=1&b=999999").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = s.get("/v1/targets/198.51.100.7/history").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_synchronous_check_has_the_published_shape_and_a_cache() {
    let s = server(|_| {}).await;
    let (_open, port, closed) = ports();
    let path = format!("/v1/port-scanner?target=127.0.0.1&ports={port},{closed}&timeout=10");
    let (status, first) = s.get(&path).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    for key in [
        "target",
        "ip",
        "scanId",
        "timestamp",
        "scanDurationMs",
        "ports",
        "summary",
    ] {
        assert!(first.get(key).is_some(), "{key}: {first}");
    }
    assert_eq!(first["target"], "127.0.0.1");
    assert_eq!(first["ip"], "127.0.0.1");
    assert_eq!(first["summary"]["totalScanned"], 2);
    assert_eq!(first["summary"]["open"], 1);
    assert_eq!(first["summary"]["closed"], 1);
    assert_eq!(first["summary"]["filtered"], 0);
    let open = first["ports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["port"] == port)
        .unwrap();
    assert_eq!(open["protocol"], "tcp");
    assert_eq!(open["state"], "open");
    assert_eq!(open["service"], "ssh", "{open}");
    assert_eq!(open["banner"], "SSH-2.0-OpenSSH_9.6\\r\\n", "{open}");

    // A second ask within the TTL is the cached answer; skipCache scans again.
    let (_, cached) = s.get(&path).await;
    assert_eq!(cached["scanId"], first["scanId"]);
    let (_, fresh) = s.get(&format!("{path}&skipCache=true")).await;
    assert_ne!(fresh["scanId"], first["scanId"]);
    let (_, metrics) = (
        (),
        client()
            .get(format!("{}/metrics", s.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
    );
    assert!(
        metrics.contains("portgate_port_checks_total 3"),
        "{metrics}"
    );
    assert!(
        metrics.contains("portgate_port_check_cache_hits_total 1"),
        "{metrics}"
    );

    // Bounded: more than 100 ports or 30 s is refused, pointing at POST /v1/scans.
    for bad in [
        "/v1/port-scanner?target=127.0.0.1&ports=1-101",
        "/v1/port-scanner?target=127.0.0.1&ports=22&timeout=31",
    ] {
        let (status, problem) = s.get(bad).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {problem}");
        assert!(
            problem["detail"]
                .as_str()
                .unwrap()
                .contains("POST /v1/scans"),
            "{problem}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_wrong_and_revoked_keys_get_the_same_401() {
    let s = server(|_| {}).await;
    let url = format!("{}/v1/scans", s.base);
    let (revoked, _) = portgate_serve::create_key(&s.state.0.store, "old", None)
        .await
        .unwrap();
    assert_eq!(s.state.0.store.revoke_key("old").await.unwrap(), 1);
    let mut bodies = Vec::new();
    for key in [None, Some("pg_0000"), Some(revoked.as_str())] {
        let mut request = client().get(&url);
        if let Some(key) = key {
            request = request.header("x-api-key", key);
        }
        let r = request.send().await.unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{key:?}");
        assert_eq!(
            r.headers()["content-type"],
            "application/problem+json",
            "{key:?}"
        );
        bodies.push(r.text().await.unwrap());
    }
    assert!(bodies.iter().all(|b| *b == bodies[0]), "{bodies:?}");
    let problem: Value = serde_json::from_str(&bodies[0]).unwrap();
    assert_eq!(problem["status"], 401);
    assert!(problem["type"].as_str().unwrap().ends_with("/unauthorized"));
}

#[tokio::test(flavor = "multi_thread")]
async fn rate_and_size_limits_answer_429_and_413() {
    let s = server(|c| {
        c.requests_per_minute = 3;
        c.max_body = 1024;
    })
    .await;
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for _ in 0..5 {
        let r = client()
            .get(format!("{}/v1/scans", s.base))
            .header("x-api-key", &s.key)
            .send()
            .await
            .unwrap();
        statuses.push(r.status());
        if r.status() == StatusCode::TOO_MANY_REQUESTS {
            retry_after = r.headers().get("retry-after").cloned();
        }
    }
    assert_eq!(&statuses[..3], &[StatusCode::OK; 3], "{statuses:?}");
    assert_eq!(statuses[3], StatusCode::TOO_MANY_REQUESTS, "{statuses:?}");
    let seconds: u64 = retry_after.unwrap().to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&seconds), "{seconds}");

    // Headers: more than 16 KiB together, or more than 64 of them, get 431.
    let r = client()
        .get(format!("{}/v1/scans", s.base))
        .header("x-api-key", &s.key)
        .header("x-padding", "a".repeat(17 * 1024))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let mut many = client().get(format!("{}/healthz", s.base));
    for i in 0..70 {
        many = many.header(format!("x-h{i}"), "1");
    }
    assert_eq!(
        many.send().await.unwrap().status(),
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
    );

    let s = server(|c| c.max_body = 1024).await;
    let big = json!({"targets": vec!["127.0.0.1"; 200], "ports": "22"});
    let (status, problem) = s.post("/v1/scans", &big).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{problem}");
    assert!(problem["detail"].as_str().unwrap().contains("1024 bytes"));
}

/// Every spelling trick: refused with 403 naming the address when outside the scope, taken
/// as the address it stands for when inside (checked with the synchronous endpoint on a
/// real listener; nothing is sent for a refused one).
#[tokio::test(flavor = "multi_thread")]
async fn the_scope_refuses_every_trick_before_a_probe() {
    let s = server(|_| {}).await;
    let (_open, port, _) = ports();
    for inside in [
        "127.0.0.1",
        "::ffff:127.0.0.1",
        "::ffff:7f00:1",
        "127.1",
        "2130706433",
        "0177.0.0.1",
        "0x7f.1",
        "0x7f000001",
        "127.0.0.1.",
        "localhost",
    ] {
        let (status, body) = s
            .get(&format!(
                "/v1/port-scanner?target={inside}&ports={port}&skipCache=true"
            ))
            .await;
        assert_eq!(status, StatusCode::OK, "{inside}: {body}");
        assert!(
            ["127.0.0.1", "::1"].contains(&body["ip"].as_str().unwrap()),
            "{inside}: {body}"
        );
    }
    for (outside, named) in [
        ("198.51.100.7", "198.51.100.7"),
        ("::ffff:198.51.100.7", "198.51.100.7"),
        ("3325256711", "198.51.100.7"),
        ("0xc6.0x33.0x64.7", "198.51.100.7"),
        ("64:ff9b::c633:6407", "198.51.100.7"),
        ("127.0.0.0/7", "126.0.0.0"),
        ("0.0.0.0", "0.0.0.0"),
        ("::127.0.0.1", "127.0.0.1"),
    ] {
        let (status, body) = s
            .post("/v1/scans", &json!({"targets": [outside], "ports": "22"}))
            .await;
        assert!(
            status == StatusCode::FORBIDDEN || status == StatusCode::BAD_REQUEST,
            "{outside}: {status} {body}"
        );
        let detail = body["detail"].as_str().unwrap();
        assert!(detail.contains(named), "{outside}: {detail}");
    }
    // A key narrowed further refuses what the server would take.
    let (narrow, _) = portgate_serve::create_key(
        &s.state.0.store,
        "narrow",
        Some(&Scope::parse(&["127.0.0.2/32"]).unwrap()),
    )
    .await
    .unwrap();
    let r = client()
        .post(format!("{}/v1/scans", s.base))
        .header("x-api-key", narrow)
        .json(&json!({"targets": ["127.0.0.1"], "ports": "22"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
}

#[tokio::test(flavor = "multi_thread")]
async fn queued_and_running_scans_are_cancelled() {
    let s = server(|c| c.workers = 1).await;
    // A long scan (65,536 loopback addresses) holds the one worker; the next one waits.
    let (_, long) = s
        .post(
            "/v1/scans",
            &json!({"targets": ["127.1.0.0/16"], "ports": "1-20"}),
        )
        .await;
    let (_, waiting) = s
        .post(
            "/v1/scans",
            &json!({"targets": ["127.0.0.1"], "ports": "22"}),
        )
        .await;
    let long = long["scanId"].as_i64().unwrap();
    let waiting = waiting["scanId"].as_i64().unwrap();
    // The long one starts.
    let start = Instant::now();
    loop {
        let (_, body) = s.get(&format!("/v1/scans/{long}")).await;
        if body["status"] == "running" {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "{body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (status, body) = s
        .post(&format!("/v1/scans/{waiting}/cancel"), &json!({}))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["status"], "cancelled");
    let (status, _) = s
        .post(&format!("/v1/scans/{long}/cancel"), &json!({}))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let done = s.wait(long).await;
    assert_eq!(done["status"], "cancelled", "{done}");
    let (status, problem) = s
        .post(&format!("/v1/scans/{long}/cancel"), &json!({}))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{problem}");
}

#[tokio::test(flavor = "multi_thread")]
async fn health_readiness_metrics_and_the_committed_openapi_document() {
    let s = server(|_| {}).await;
    for (path, expected) in [("/healthz", "ok\n"), ("/readyz", "ready\n")] {
        let r = client()
            .get(format!("{}{path}", s.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.text().await.unwrap(), expected);
    }
    let metrics = client()
        .get(format!("{}/metrics", s.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in [
        "portgate_jobs{state=\"queued\"} 0",
        "portgate_probes_sent_total 0",
        "portgate_job_latency_seconds_count 0",
        "portgate_scans_scanning 0",
        "portgate_scans_waiting_for_memory 0",
        "portgate_scan_memory_budget_bytes 1073741824",
    ] {
        assert!(metrics.contains(line), "{line}: {metrics}");
    }
    let served = client()
        .get(format!("{}/openapi.json", s.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/openapi.json");
    if std::env::var_os("PORTGATE_BLESS").is_some() {
        std::fs::write(path, &served).unwrap();
    }
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        committed == served,
        "docs/openapi.json is out of date; run PORTGATE_BLESS=1 cargo test -p portgate-serve"
    );
    let doc: Value = serde_json::from_str(&served).unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    for path in [
        "/v1/scans",
        "/v1/scans/{id}",
        "/v1/scans/{id}/cancel",
        "/v1/port-scanner",
    ] {
        assert!(doc["paths"].get(path).is_some(), "{path}");
    }
    // An unknown path is a problem too.
    let r = client()
        .get(format!("{}/v2/nothing", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let _: SocketAddr = s.base.trim_start_matches("http://").parse().unwrap();
}

/// `POST /v1/checks` with an inline manifest and with one the server is configured with:
/// the decision, the evidence and the renditions; targets outside the scope refused.
#[tokio::test(flavor = "multi_thread")]
async fn a_manifest_is_checked_with_its_renditions() {
    let (_open, port, _) = ports();
    let manifest = format!(
        "version: 1\nassets:\n  - name: app\n    targets: [127.0.0.1]\n    ports: \"T:{port}\"\n    approved:\n      - port: {port}\n        justification: the test's service\n"
    );
    let dir = tempfile::tempdir().unwrap();
    let named = dir.path().join("exposure.yaml");
    // The named one approves nothing: the open port fails it.
    std::fs::write(
        &named,
        format!("version: 1\nassets:\n  - name: app\n    targets: [127.0.0.1]\n    ports: \"T:{port}\"\n"),
    )
    .unwrap();
    let s = server(|c| {
        c.manifests.insert("staging".into(), named.clone());
    })
    .await;
    let check = |body: Value| {
        let s = &s;
        async move {
            let (status, accepted) = s.post("/v1/checks", &body).await;
            assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");
            let id = accepted["checkId"].as_i64().unwrap();
            let start = Instant::now();
            loop {
                let (status, view) = s.get(&format!("/v1/checks/{id}")).await;
                assert_eq!(status, StatusCode::OK, "{view}");
                if !["queued", "running"].contains(&view["status"].as_str().unwrap()) {
                    return (id, view);
                }
                assert!(start.elapsed() < Duration::from_secs(60), "{view}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    let (id, passed) = check(json!({"manifest": manifest})).await;
    assert_eq!(passed["status"], "succeeded", "{passed}");
    assert_eq!(passed["decision"], "pass", "{passed}");
    assert_eq!(
        passed["evidence"]["schema"], "portgate.check.v1",
        "{passed}"
    );
    // The first check of the target: nothing to compare with; its scan is kept.
    assert_eq!(passed["compared"], json!([]), "{passed}");
    let first_scan = passed["scanId"].as_i64().expect("the check's scan is kept");
    let (_, failed) = check(json!({"manifest": "staging"})).await;
    assert_eq!(failed["decision"], "fail", "{failed}");
    // The next check is compared with it, as `portgate check --db` is.
    assert_eq!(failed["compared"][0]["target"], "127.0.0.1", "{failed}");
    assert_eq!(failed["compared"][0]["scanId"], first_scan, "{failed}");
    assert_ne!(failed["scanId"], passed["scanId"]);
    let (status, timeline) = s.get("/v1/targets/127.0.0.1/history").await;
    assert_eq!(status, StatusCode::OK, "{timeline}");
    let scans: std::collections::BTreeSet<i64> = timeline["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|snap| snap["scan"]["id"].as_i64().unwrap())
        .collect();
    assert_eq!(
        scans.len(),
        2,
        "both checks' scans in the history: {timeline}"
    );

    for (format, marker) in [
        ("sarif", "\"version\": \"2.1.0\""),
        ("junit", "<testsuites"),
        ("markdown", "portgate"),
    ] {
        let r = client()
            .get(format!("{}/v1/checks/{id}?format={format}", s.base))
            .header("x-api-key", &s.key)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{format}");
        let text = r.text().await.unwrap();
        assert!(text.contains(marker), "{format}: {text}");
    }
    // A retry with the same Idempotency-Key names the same check.
    let ids: Vec<Value> = {
        let mut ids = Vec::new();
        for _ in 0..2 {
            let r = client()
                .post(format!("{}/v1/checks", s.base))
                .header("x-api-key", &s.key)
                .header("idempotency-key", "release-7")
                .json(&json!({"manifest": "staging"}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::ACCEPTED);
            ids.push(r.json::<Value>().await.unwrap()["checkId"].clone());
        }
        ids
    };
    assert_eq!(ids[0], ids[1]);
    let (status, _) = s.get(&format!("/v1/checks/{id}?format=pdf")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, problem) = s
        .post("/v1/checks", &json!({"manifest": "production"}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{problem}");
    let outside = "version: 1\nassets:\n  - name: x\n    targets: [198.51.100.7]\n";
    let (status, problem) = s.post("/v1/checks", &json!({"manifest": outside})).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{problem}");
    let (status, problem) = s
        .post(
            "/v1/checks",
            &json!({"manifest": "version: 1\nassets: 3\n"}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{problem}");
    assert!(
        problem["detail"].as_str().unwrap().contains("inline:2"),
        "{problem}"
    );
}

/// The OpenAPI document is valid OpenAPI 3.1 by a real validator (`openapi-spec-validator`
/// from PyPI, installed by `.ci/run`), and the validator does reject a broken copy of it (an
/// operation's response without its required description), so a pass means something.
#[test]
fn the_openapi_document_is_valid_openapi_3_1() {
    let test = "the_openapi_document_is_valid_openapi_3_1";
    let validate = |path: &std::path::Path| {
        std::process::Command::new("openapi-spec-validator")
            .arg(path)
            .output()
    };
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("openapi.json");
    let doc = portgate_serve::openapi_json();
    std::fs::write(&good, &doc).unwrap();
    let out = match validate(&good) {
        Ok(out) => out,
        Err(e) => {
            return portgate_test_support::skip(
                test,
                format!("openapi-spec-validator (PyPI) cannot run: {e}"),
            );
        }
    };
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let mut broken: Value = serde_json::from_str(&doc).unwrap();
    let responses = broken["paths"]["/v1/scans"]["post"]["responses"]
        .as_object_mut()
        .unwrap();
    responses
        .get_mut("202")
        .unwrap()
        .as_object_mut()
        .unwrap()
        .remove("description");
    let bad = dir.path().join("broken.json");
    std::fs::write(&bad, broken.to_string()).unwrap();
    let out = validate(&bad).unwrap();
    assert!(
        !out.status.success(),
        "the validator accepted a response without a description"
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("description")
            || String::from_utf8_lossy(&out.stderr).contains("description"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// Two workers, and a memory budget one scan fills: the second scan taken waits for the
/// first's share to come back instead of scanning beside it; both finish.
#[tokio::test(flavor = "multi_thread")]
async fn a_scan_waits_for_the_memory_budget() {
    let s = server(|c| {
        c.workers = 2;
        // A /24 × 100 ports estimates 25,400 × 100 B + 4 MiB: more than this whole budget.
        c.scan_memory = 6 << 20;
    })
    .await;
    let mut ids = Vec::new();
    for i in 0..2 {
        let body = json!({"targets": [format!("127.5.{i}.0/24")], "ports": "1-100"});
        let (status, accepted) = s.post("/v1/scans", &body).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");
        ids.push(accepted["scanId"].as_i64().unwrap());
    }
    let (mut most_scanning, mut most_waiting) = (0, 0);
    let start = Instant::now();
    loop {
        let usage = s.state.0.budget.usage();
        most_scanning = most_scanning.max(usage.running);
        most_waiting = most_waiting.max(usage.waiting);
        assert!(usage.reserved_bytes <= usage.total_bytes, "{usage:?}");
        let done = s.state.0.store.job_counts().await.unwrap();
        let active: i64 = done
            .iter()
            .filter(|(status, _)| !status.is_done())
            .map(|(_, n)| n)
            .sum();
        if active == 0 {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "{usage:?}");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    assert_eq!(most_scanning, 1, "two scans held the budget at once");
    assert_eq!(most_waiting, 1, "the second scan never waited");
    for id in ids {
        let done = s.wait(id).await;
        assert_eq!(done["status"], "succeeded", "{done}");
        assert_eq!(done["report"]["summary"]["ports_scanned"], 254 * 100);
    }
}

/// A scan job tells what the server's history knows: the CVEs of the detected version
/// (the CVE-2024-6387 fixture feed imported there, an upstream OpenSSH 9.6 banner) and the
/// network of the address (an iptoasn table imported there).
#[tokio::test(flavor = "multi_thread")]
async fn a_scan_job_lists_known_vulnerabilities_and_the_network() {
    let s = server(|_| {}).await;
    let store = &s.state.0.store;
    let feed = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../vuln/tests/fixtures/nvd-cve-2024-6387.json");
    portgate_pipeline::import_vulnerabilities(store, portgate_pipeline::VulnFeed::Nvd, &feed, None)
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let table = dir.path().join("ip2asn.tsv");
    std::fs::write(
        &table,
        "127.0.0.0\t127.255.255.255\t64500\tZZ\tLOOPBACK-NET\n",
    )
    .unwrap();
    portgate_pipeline::import_asn(store, &table, Some("lab"), None)
        .await
        .unwrap();
    let (_open, port, _) = ports();
    let (status, accepted) = s
        .post(
            "/v1/scans",
            &json!({"targets": ["127.0.0.1"], "ports": format!("T:{port}"), "detect": true}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");
    let done = s.wait(accepted["scanId"].as_i64().unwrap()).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    let report = &done["report"];
    let entry = &report["hosts"][0]["ports"][0];
    let v = &entry["detected"]["vulnerabilities"];
    assert_eq!(v["matches"][0]["id"], "CVE-2024-6387", "{entry}");
    assert_eq!(v["matches"][0]["confidence"], "upstream-version");
    let owners = &report["enrichment"]["networks"][0]["owners"];
    assert_eq!(owners[0]["asns"][0], 64500, "{report}");
    assert_eq!(owners[0]["dataset"], "asn:lab");
}

/// A server on 127.0.44.1:15672 answering as RabbitMQ's management plugin does (the
/// answers of the Debian package 3.10.8, recorded in the daemon zoo, whose own test runs
/// the real one): the page, and the overview only for guest:guest. Returns the address
/// and the number of requests that carried credentials.
fn rabbitmq_management() -> (SocketAddr, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::io::{Read, Write};
    let listener = TcpListener::bind("127.0.44.1:15672")
        .or_else(|_| TcpListener::bind("127.0.44.2:15672"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let with_auth = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = std::sync::Arc::clone(&with_auth);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            let counter = std::sync::Arc::clone(&counter);
            std::thread::spawn(move || {
                let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
                let mut buf = Vec::new();
                let mut chunk = [0u8; 1024];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 16384 {
                    match s.read(&mut chunk) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&buf).into_owned();
                let path = head.split_whitespace().nth(1).unwrap_or("/").to_owned();
                // "guest:guest" in base64.
                let guest = head.contains("Authorization: Basic Z3Vlc3Q6Z3Vlc3Q=");
                if head.to_ascii_lowercase().contains("authorization:") {
                    counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
                let (status, body) = match (path.as_str(), guest) {
                    ("/", _) => (
                        "200 OK",
                        "<!DOCTYPE html>\n<html>\n  <head>\n    <title>RabbitMQ Management</title>\n  </head>\n</html>\n",
                    ),
                    ("/api/overview", true) => (
                        "200 OK",
                        r#"{"management_version":"3.10.8","rabbitmq_version":"3.10.8","cluster_name":"zoo@localhost"}"#,
                    ),
                    ("/api/overview", false) => (
                        "401 Unauthorized",
                        r#"{"error":"not_authorized","reason":"Not_Authorized"}"#,
                    ),
                    _ => (
                        "404 Not Found",
                        r#"{"error":"Object Not Found","reason":"Not Found"}"#,
                    ),
                };
                let answer = format!(
                    "HTTP/1.1 {status}\r\nserver: Cowboy\r\ncontent-type: text/html\r\ncontent-length: {}\r\n\r\n{body}",
                    body.len()
                );
                let _ = s.write_all(answer.as_bytes());
            });
        }
    });
    (addr, with_auth)
}

/// `try_default_credentials` in a scan request: refused without `detect` (problem+json);
/// with it, the management interface's default login is tried and proven, and without it
/// no request carries credentials.
#[tokio::test(flavor = "multi_thread")]
async fn a_scan_job_tries_default_logins_only_when_asked() {
    let s = server(|_| {}).await;
    let (addr, with_auth) = rabbitmq_management();
    let ip = addr.ip().to_string();
    let (status, problem) = s
        .post(
            "/v1/scans",
            &json!({"targets": [ip], "ports": "T:15672", "try_default_credentials": true}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{problem}");
    assert!(
        problem["detail"].as_str().unwrap().contains("needs detect"),
        "{problem}"
    );

    let (status, accepted) = s
        .post(
            "/v1/scans",
            &json!({"targets": [ip], "ports": "T:15672", "detect": true}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");
    let done = s.wait(accepted["scanId"].as_i64().unwrap()).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    let app = &done["report"]["hosts"][0]["ports"][0]["detected"]["applications"]["found"][0];
    assert_eq!(app["id"], "rabbitmq-management", "{done}");
    assert!(app["credential_attempts"].is_null(), "{app}");
    assert_eq!(with_auth.load(std::sync::atomic::Ordering::SeqCst), 0);

    let (status, accepted) = s
        .post(
            "/v1/scans",
            &json!({"targets": [ip], "ports": "T:15672", "detect": true, "try_default_credentials": true}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");
    let done = s.wait(accepted["scanId"].as_i64().unwrap()).await;
    let app = &done["report"]["hosts"][0]["ports"][0]["detected"]["applications"]["found"][0];
    assert_eq!(app["version"], "3.10.8", "{app}");
    assert_eq!(app["credential_attempts"][0]["user"], "guest", "{app}");
    assert_eq!(app["credential_attempts"][0]["accepted"], true, "{app}");
    let login = app["exposures"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "default-credentials")
        .unwrap_or_else(|| panic!("no default login: {app}"));
    assert_eq!(login["proof"]["credentials"], "guest:guest (HTTP Basic)");
    assert_eq!(with_auth.load(std::sync::atomic::Ordering::SeqCst), 1);
}
