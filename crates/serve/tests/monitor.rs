//! Monitoring end to end on loopback: a seconds-level schedule checks a manifest, a port
//! that opens between two runs is one signed webhook alert (verified here as a receiver
//! would, with the HMAC recomputed), nothing is sent again while it stays open, an
//! acknowledgement is kept with its events, and a port that closes is resolved only after
//! the drift rules confirm it (two runs), then sent as resolved.

#![allow(clippy::unwrap_used)]

use axum::body::Bytes;
use axum::http::HeaderMap;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use portgate_model::{Scope, Severity};
use portgate_serve::{
    AckLinks, AlertRoute, Config, Escalation, Schedule, State, Window, WindowScope,
};
use portgate_store::{Location, Store};
use serde_json::{Value, json};
use sha2::Sha256;
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";

type Received = Arc<Mutex<Vec<(HeaderMap, Bytes)>>>;

/// A webhook receiver on loopback that keeps what it was sent; answers 200.
async fn receiver() -> (String, Received) {
    receiver_on(tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap())
}

/// [`receiver`] on `listener`.
fn receiver_on(listener: tokio::net::TcpListener) -> (String, Received) {
    let received: Received = Arc::default();
    let kept = received.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: Bytes| {
            let kept = kept.clone();
            async move {
                kept.lock().unwrap().push((headers, body));
                "ok"
            }
        }),
    );
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}/hook"), received)
}

/// The body, after checking both signatures as a receiver would.
fn verified(headers: &HeaderMap, body: &[u8]) -> Value {
    let header = |name: &str| headers[name].to_str().unwrap().to_string();
    let (id, timestamp) = (header("webhook-id"), header("webhook-timestamp"));
    let mut mac = Hmac::<Sha256>::new_from_slice(KEY).unwrap();
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    let expected = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    assert_eq!(header("webhook-signature"), format!("v1,{expected}"));
    let mut mac = Hmac::<Sha256>::new_from_slice(KEY).unwrap();
    mac.update(body);
    let github = hex::encode(mac.finalize().into_bytes());
    assert_eq!(
        header("x-portgate-signature-256"),
        format!("sha256={github}")
    );
    let now = chrono::Utc::now().timestamp();
    assert!((now - timestamp.parse::<i64>().unwrap()).abs() < 60);
    serde_json::from_slice(body).unwrap()
}

/// A webhook route to `url`, signed with [`KEY`].
fn webhook_route(name: &str, url: &str, min_severity: Severity) -> AlertRoute {
    let secret = format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(KEY)
    );
    AlertRoute {
        name: name.into(),
        min_severity,
        assets: Vec::new(),
        owners: Vec::new(),
        channel: serde_json::from_value(json!({"webhook": {"url": url, "secret": secret}}))
            .unwrap(),
    }
}

/// A manifest with one asset `app` on 127.0.0.1 and `ports`, in `dir`.
fn manifest_in(dir: &std::path::Path, ports: &str) -> std::path::PathBuf {
    let manifest = dir.join("exposure.yaml");
    std::fs::write(
        &manifest,
        format!(
            "version: 1\nassets:\n  - name: app\n    owner: ops\n    tags: {{role: db}}\n    targets: [127.0.0.1]\n    ports: \"{ports}\"\n"
        ),
    )
    .unwrap();
    manifest
}

/// Starts a server on `store` with `config` (its `listen` replaced): the state, the base
/// URL and an API key of the whole scope.
async fn start(
    store: Store,
    mut config: Config,
    listener: tokio::net::TcpListener,
) -> (State, String, String) {
    let addr = listener.local_addr().unwrap();
    config.listen = addr;
    // The tests poll.
    config.requests_per_minute = 1_000_000;
    let (key, _) = portgate_serve::create_key(&store, "test", None)
        .await
        .unwrap();
    let state = State::new(store, config);
    let run_state = state.clone();
    tokio::spawn(async move {
        let _ = portgate_serve::run(run_state, listener, Duration::from_secs(5)).await;
    });
    let _ = rustls::crypto::ring::default_provider().install_default();
    (state, format!("http://{addr}"), key)
}

/// A store, a listener and a configuration that checks an asset on 127.0.0.1 with `ports`
/// every two seconds (the directory and the database are kept alive by the caller).
async fn watched(
    ports: &str,
) -> (
    tempfile::TempDir,
    portgate_test_support::db::TestDb,
    Store,
    tokio::net::TcpListener,
    Config,
) {
    let dir = tempfile::tempdir().unwrap();
    let db = portgate_test_support::db::sqlite();
    let store = Store::open(&Location::parse(&db.url).unwrap())
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut config = Config::new(
        listener.local_addr().unwrap(),
        Scope::parse(&["127.0.0.0/8"]).unwrap(),
    );
    config
        .manifests
        .insert("exposure".into(), manifest_in(dir.path(), ports));
    config.schedules.push(every_two_seconds());
    (dir, db, store, listener, config)
}

fn every_two_seconds() -> Schedule {
    Schedule::new(
        "fast",
        None,
        "*/2 * * * * *",
        Duration::ZERO,
        "schedules[0]",
    )
    .unwrap()
}

async fn get_json(client: &reqwest::Client, url: &str, key: &str) -> Value {
    client
        .get(url)
        .header("x-api-key", key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn wait_for(received: &Received, n: usize, within: Duration) -> Vec<Value> {
    let start = Instant::now();
    loop {
        let got: Vec<Value> = received
            .lock()
            .unwrap()
            .iter()
            .map(|(h, b)| verified(h, b))
            .collect();
        if got.len() >= n {
            return got;
        }
        assert!(
            start.elapsed() < within,
            "{} alert(s) after {within:?}, waiting for {n}: {got:?}",
            got.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_scheduled_check_alerts_once_per_change() {
    let (url, received) = receiver().await;
    let first = TcpListener::bind("127.0.0.1:0").unwrap();
    let first_port = first.local_addr().unwrap().port();
    let second_port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("exposure.yaml");
    std::fs::write(
        &manifest,
        format!(
            "version: 1\nassets:\n  - name: app\n    owner: ops\n    targets: [127.0.0.1]\n    ports: \"T:{first_port},{second_port}\"\n"
        ),
    )
    .unwrap();
    let db = portgate_test_support::db::sqlite();
    let store = Store::open(&Location::parse(&db.url).unwrap())
        .await
        .unwrap();
    let (key, _) = portgate_serve::create_key(&store, "test", None)
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut config = Config::new(addr, Scope::parse(&["127.0.0.0/8"]).unwrap());
    config.manifests.insert("exposure".into(), manifest);
    config.schedules.push(
        Schedule::new(
            "fast",
            None,
            "*/2 * * * * *",
            Duration::ZERO,
            "schedules[0]",
        )
        .unwrap(),
    );
    let secret = format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(KEY)
    );
    let channel: portgate_alert::ChannelConfig =
        serde_json::from_value(json!({"webhook": {"url": url, "secret": secret}})).unwrap();
    config.alerts.push(AlertRoute {
        name: "ops".into(),
        min_severity: Severity::Low,
        assets: Vec::new(),
        owners: Vec::new(),
        channel,
    });
    let state = State::new(store, config);
    let run_state = state.clone();
    tokio::spawn(async move {
        let _ = portgate_serve::run(run_state, listener, Duration::from_secs(5)).await;
    });
    let base = format!("http://{addr}");
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::new();

    // The first run: the listening port is a new finding.
    let alerts = wait_for(&received, 1, Duration::from_secs(30)).await;
    let opened = &alerts[0];
    assert_eq!(opened["kind"], "opened", "{opened}");
    let items = opened["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{opened}");
    assert_eq!(items[0]["finding"]["port"], first_port);
    let first_fp = items[0]["fingerprint"].as_str().unwrap().to_string();

    // The second port opens between two runs: one alert, naming it alone.
    let second = TcpListener::bind(("127.0.0.1", second_port)).unwrap();
    let alerts = wait_for(&received, 2, Duration::from_secs(30)).await;
    let items = alerts[1]["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{}", alerts[1]);
    assert_eq!(items[0]["finding"]["port"], second_port);
    assert_eq!(items[0]["state"], "open");

    // Runs go on; nothing changed, nothing is sent.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(received.lock().unwrap().len(), 2);

    // Acknowledged over the API, with its events.
    let acked: Value = client
        .post(format!("{base}/v1/findings/{first_fp}/ack"))
        .header("x-api-key", &key)
        .json(&json!({"by": "alice", "comment": "known, migration ticket OPS-7"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(acked["state"], "acknowledged", "{acked}");
    assert_eq!(acked["acknowledgedBy"], "alice");
    let events: Vec<&str> = acked["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(events, ["opened", "acknowledged"]);

    // The second port closes: resolved once two runs in a row miss it, then sent once.
    drop(second);
    let alerts = wait_for(&received, 3, Duration::from_secs(30)).await;
    assert_eq!(alerts[2]["kind"], "resolved", "{}", alerts[2]);
    assert_eq!(alerts[2]["items"][0]["finding"]["port"], second_port);
    let open: Value = client
        .get(format!("{base}/v1/findings?state=resolved"))
        .header("x-api-key", &key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(open["items"].as_array().unwrap().len(), 1, "{open}");
    // The outbox kept each message once, delivered.
    let outbox = state.0.store.outbox(10).await.unwrap();
    assert_eq!(outbox.len(), 3);
    assert!(outbox.iter().all(|m| m.status == "delivered"), "{outbox:?}");
    drop(first);
}

/// A receiver that is down when the alert is written: the attempts fail and are logged, the
/// message waits in the outbox, and once the receiver is up it gets the message exactly once.
#[tokio::test(flavor = "multi_thread")]
async fn an_alert_waits_for_a_receiver_that_is_down_and_arrives_once() {
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let db = portgate_test_support::db::sqlite();
    let store = Store::open(&Location::parse(&db.url).unwrap())
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut config = Config::new(addr, Scope::parse(&["127.0.0.0/8"]).unwrap());
    let url = format!("http://127.0.0.1:{port}/hook");
    config
        .alerts
        .push(webhook_route("ops", &url, Severity::Info));
    let alert = json!({
        "type": "portgate.alert.v1", "id": "portgate-check-7-ops", "kind": "opened",
        "title": "1 new finding (test)", "created_at": chrono::Utc::now(),
        "severity": "info", "items": []
    });
    assert!(
        store
            .enqueue_alert(
                "ops",
                "portgate-check-7-ops",
                &alert.to_string(),
                chrono::Utc::now()
            )
            .await
            .unwrap()
    );
    // Written twice, kept once.
    assert!(
        !store
            .enqueue_alert(
                "ops",
                "portgate-check-7-ops",
                &alert.to_string(),
                chrono::Utc::now()
            )
            .await
            .unwrap()
    );
    let state = State::new(store, config);
    let run_state = state.clone();
    tokio::spawn(async move {
        let _ = portgate_serve::run(run_state, listener, Duration::from_secs(5)).await;
    });
    // Down: attempts fail and the message stays pending.
    let start = Instant::now();
    loop {
        let outbox = state.0.store.outbox(10).await.unwrap();
        if outbox[0].attempts >= 2 {
            assert_eq!(outbox[0].status, "pending", "{outbox:?}");
            assert!(outbox[0].last_error.is_some(), "{outbox:?}");
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "{outbox:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Up: delivered, once.
    let (_, received) = receiver_on(
        tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap(),
    );
    let got = wait_for(&received, 1, Duration::from_secs(30)).await;
    assert_eq!(got[0]["id"], "portgate-check-7-ops");
    let start = Instant::now();
    while state.0.store.outbox(10).await.unwrap()[0].status != "delivered" {
        assert!(start.elapsed() < Duration::from_secs(10));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        received.lock().unwrap().len(),
        1,
        "delivered more than once"
    );
}

/// A maintenance window over the asset: the port found inside it is recorded and marked
/// suppressed, nothing is sent while it is open; when it closes one digest tells of it,
/// with a signed link that acknowledges it (a GET shows a form and changes nothing, the form
/// acknowledges, a changed link is refused); when the port closes later the resolved alert
/// is marked suppressed.
#[tokio::test(flavor = "multi_thread")]
async fn a_window_suppresses_then_digests() {
    let (url, received) = receiver().await;
    let open = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = open.local_addr().unwrap().port();
    let ports = format!("T:{port}");
    let dir = tempfile::tempdir().unwrap();
    let db = portgate_test_support::db::sqlite();
    let store = Store::open(&Location::parse(&db.url).unwrap())
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut config = Config::new(addr, Scope::parse(&["127.0.0.0/8"]).unwrap());
    config
        .manifests
        .insert("exposure".into(), manifest_in(dir.path(), &ports));
    config.schedules.push(every_two_seconds());
    config
        .alerts
        .push(webhook_route("ops", &url, Severity::Info));
    config.ack_links = Some(
        AckLinks::new(
            &format!("http://{addr}"),
            &"k".repeat(32),
            Duration::from_secs(3600),
        )
        .unwrap(),
    );
    // The window is in the store before the schedule can run a check (on a busy machine the
    // first check may end before a request reaches the API); the API then sets it again.
    let opened = chrono::Utc::now() - chrono::Duration::seconds(1);
    store
        .put_window(&portgate_store::StoredWindow {
            name: "migration".into(),
            scope_kind: "tag".into(),
            scope_value: Some("role=db".into()),
            starts_at: Some(opened),
            ends_at: Some(chrono::Utc::now() + chrono::Duration::seconds(60)),
            cron: None,
            timezone: None,
            duration_ms: None,
            comment: Some("database migration".into()),
            created_by: Some("alice".into()),
            created_at: chrono::Utc::now(),
            source: "api".into(),
            digested_until: None,
        })
        .await
        .unwrap();
    let (state, base, key) = start(store, config, listener).await;
    let client = reqwest::Client::new();
    // A window over the API, open for a minute; closed below once the check has run
    // (a check of a port that says nothing takes seconds: detection waits for a banner).
    let put_window = |end: chrono::DateTime<chrono::Utc>| {
        let client = client.clone();
        let (base, key) = (base.clone(), key.clone());
        async move {
            let body = json!({
                "name": "migration", "scope": "tag:role=db",
                "start": opened, "end": end,
                "comment": "database migration", "createdBy": "alice"
            });
            let r = client
                .post(format!("{base}/v1/windows"))
                .header("x-api-key", &key)
                .json(&body)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 201);
        }
    };
    let end = chrono::Utc::now() + chrono::Duration::seconds(60);
    put_window(end).await;

    // Inside the window: recorded, marked, not sent.
    let start_wait = Instant::now();
    let fp = loop {
        let list = get_json(&client, &format!("{base}/v1/findings"), &key).await;
        if let Some(f) = list["items"].as_array().unwrap().first() {
            assert_eq!(f["suppressedBy"], "migration", "{f}");
            assert_eq!(f["finding"]["port"], port);
            break f["fingerprint"].as_str().unwrap().to_string();
        }
        assert!(
            start_wait.elapsed() < Duration::from_secs(50),
            "no finding: {list}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(chrono::Utc::now() < end, "the check came after the window");
    let windows = get_json(&client, &format!("{base}/v1/windows"), &key).await;
    assert_eq!(windows["items"][0]["name"], "migration", "{windows}");
    assert_eq!(windows["items"][0]["source"], "api");
    assert!(windows["items"][0]["openUntil"].is_string(), "{windows}");
    // More checks run inside the window; nothing is sent.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(received.lock().unwrap().len(), 0, "sent inside the window");
    // The window is shortened to close now.
    put_window(chrono::Utc::now() + chrono::Duration::milliseconds(500)).await;

    // Closed: one digest.
    let alerts = wait_for(&received, 1, Duration::from_secs(30)).await;
    let digest = &alerts[0];
    assert_eq!(digest["kind"], "digest", "{digest}");
    assert!(
        digest["title"].as_str().unwrap().contains("migration"),
        "{digest}"
    );
    let item = &digest["items"][0];
    assert_eq!(item["fingerprint"], fp.as_str());
    assert_eq!(item["suppressed"], true);
    assert_eq!(item["state"], "open");
    let link = item["ack_url"].as_str().unwrap().to_string();
    assert!(
        link.starts_with(&format!("{base}/v1/ack/{fp}?expires=")),
        "{link}"
    );

    // The link: a GET shows the form and changes nothing.
    let page = client.get(&link).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("<form method=\"post\""), "{html}");
    let f = get_json(&client, &format!("{base}/v1/findings/{fp}"), &key).await;
    assert_eq!(f["state"], "open");
    // A changed link is refused.
    let tampered = link.replace("sig=", "sig=00");
    let refused = client
        .post(&tampered)
        .form(&[("by", "mallory"), ("comment", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
    // The form acknowledges.
    let done = client
        .post(&link)
        .form(&[("by", "bob <b>"), ("comment", "planned migration")])
        .send()
        .await
        .unwrap();
    assert_eq!(done.status(), 200);
    let html = done.text().await.unwrap();
    assert!(html.contains("bob &lt;b&gt;"), "{html}");
    let f = get_json(&client, &format!("{base}/v1/findings/{fp}"), &key).await;
    assert_eq!(f["state"], "acknowledged", "{f}");
    assert_eq!(f["acknowledgedBy"], "bob <b>");
    let events: Vec<&str> = f["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(events, ["opened", "suppressed", "acknowledged"], "{f}");

    // The port closes after the window: resolved, marked suppressed.
    drop(open);
    let alerts = wait_for(&received, 2, Duration::from_secs(30)).await;
    assert_eq!(alerts[1]["kind"], "resolved", "{}", alerts[1]);
    assert_eq!(alerts[1]["items"][0]["suppressed"], true);
    assert_eq!(alerts.len(), 2, "{alerts:?}");
    drop(state);
}

/// Windows over the API: made, listed, refused when invalid or from a narrowed key,
/// deleted; the configuration file's own cannot be deleted there.
#[tokio::test(flavor = "multi_thread")]
async fn windows_over_the_api() {
    let db = portgate_test_support::db::sqlite();
    let store = Store::open(&Location::parse(&db.url).unwrap())
        .await
        .unwrap();
    let (narrow, _) = portgate_serve::create_key(
        &store,
        "narrow",
        Some(&Scope::parse(&["127.0.0.1/32"]).unwrap()),
    )
    .await
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut config = Config::new(
        listener.local_addr().unwrap(),
        Scope::parse(&["127.0.0.0/8"]).unwrap(),
    );
    config.windows.push(
        Window::recurring(
            "weekly",
            WindowScope::All,
            "0 22 * * 6",
            Some("Europe/Berlin"),
            Duration::from_secs(7200),
            "windows[0]",
        )
        .unwrap(),
    );
    let (_state, base, key) = start(store, config, listener).await;
    let client = reqwest::Client::new();
    let post = |body: Value, key: String| {
        let client = client.clone();
        let base = base.clone();
        async move {
            let r = client
                .post(format!("{base}/v1/windows"))
                .header("x-api-key", key)
                .json(&body)
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            let ctype = r.headers()["content-type"].to_str().unwrap().to_string();
            (status, ctype, r.json::<Value>().await.unwrap())
        }
    };
    let made = post(
        json!({"name": "db-move", "scope": "asset:orders-db", "start": "2026-12-05T22:00:00Z",
               "end": "2026-12-06T02:00:00Z", "comment": "move to the new cluster", "createdBy": "alice"}),
        key.clone(),
    )
    .await;
    assert_eq!(made.0, 201, "{:?}", made.2);
    assert_eq!(made.2["scope"], "asset:orders-db");
    for (body, needle) in [
        (
            json!({"name": "x", "scope": "host:a", "start": "2026-12-05T22:00:00Z", "end": "2026-12-06T02:00:00Z"}),
            "scope",
        ),
        (
            json!({"name": "x", "scope": "all", "start": "2026-12-06T22:00:00Z", "end": "2026-12-06T02:00:00Z"}),
            "not after start",
        ),
        (
            json!({"name": "x", "scope": "all", "cron": "0 25 * * *", "durationSeconds": 60}),
            "cron",
        ),
        (
            json!({"name": "x", "scope": "all", "cron": "0 2 * * *"}),
            "durationSeconds",
        ),
        (
            json!({"name": "x", "scope": "all", "cron": "0 2 * * *", "durationSeconds": 60, "timezone": "Mars/Base"}),
            "timezone",
        ),
        (
            json!({"name": "bad name", "scope": "all", "cron": "0 2 * * *", "durationSeconds": 60}),
            "name",
        ),
    ] {
        let (status, ctype, problem) = post(body.clone(), key.clone()).await;
        assert_eq!(status, 400, "{body} -> {problem}");
        assert_eq!(ctype, "application/problem+json");
        assert!(
            problem["detail"].as_str().unwrap().contains(needle),
            "{body} -> {problem}"
        );
    }
    let (status, _, problem) = post(
        json!({"name": "y", "scope": "all", "cron": "0 2 * * *", "durationSeconds": 60}),
        narrow.clone(),
    )
    .await;
    assert_eq!(status, 403, "{problem}");
    let (status, _, problem) = post(
        json!({"name": "weekly", "scope": "all", "cron": "0 2 * * *", "durationSeconds": 60}),
        key.clone(),
    )
    .await;
    assert_eq!(status, 409, "{problem}");
    let list = get_json(&client, &format!("{base}/v1/windows"), &key).await;
    let names: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["db-move", "weekly"], "{list}");
    assert_eq!(list["items"][1]["timezone"], "Europe/Berlin");
    let delete = |name: &str| {
        client
            .delete(format!("{base}/v1/windows/{name}"))
            .header("x-api-key", &key)
            .send()
    };
    assert_eq!(delete("weekly").await.unwrap().status(), 409);
    assert_eq!(delete("db-move").await.unwrap().status(), 204);
    assert_eq!(delete("db-move").await.unwrap().status(), 404);
}

/// Escalation in real time: an open finding nobody acknowledges goes to the second channel
/// after the set time and again at each repeat; acknowledging it stops that.
#[tokio::test(flavor = "multi_thread")]
async fn an_unacknowledged_finding_escalates_until_acknowledged() {
    let (ops_url, ops) = receiver().await;
    let (pager_url, pager) = receiver().await;
    let open = TcpListener::bind("127.0.0.1:0").unwrap();
    let ports = format!("T:{}", open.local_addr().unwrap().port());
    let (_dir, _db, store, listener, mut config) = watched(&ports).await;
    config
        .alerts
        .push(webhook_route("ops", &ops_url, Severity::Info));
    // The pager takes nothing but escalations.
    let mut pager_route = webhook_route("pager", &pager_url, Severity::Critical);
    pager_route.assets = vec!["nothing".into()];
    config.alerts.push(pager_route);
    config.escalations.push(Escalation {
        min_severity: Severity::Info,
        after: Duration::from_secs(2),
        repeat: Some(Duration::from_secs(3)),
        to: "pager".into(),
    });
    let (_state, base, key) = start(store, config, listener).await;
    let client = reqwest::Client::new();

    let opened = wait_for(&ops, 1, Duration::from_secs(20)).await;
    assert_eq!(opened[0]["kind"], "opened");
    let fp = opened[0]["items"][0]["fingerprint"]
        .as_str()
        .unwrap()
        .to_string();
    let told = Instant::now();
    let escalated = wait_for(&pager, 1, Duration::from_secs(20)).await;
    let first_after = told.elapsed();
    assert_eq!(escalated[0]["kind"], "escalated", "{}", escalated[0]);
    assert_eq!(escalated[0]["items"][0]["fingerprint"], fp.as_str());
    assert!(
        first_after >= Duration::from_millis(1000),
        "escalated after {first_after:?}"
    );
    let escalated = wait_for(&pager, 2, Duration::from_secs(20)).await;
    assert_eq!(escalated[1]["kind"], "escalated");
    assert_ne!(escalated[0]["id"], escalated[1]["id"]);

    let acked = client
        .post(format!("{base}/v1/findings/{fp}/ack"))
        .header("x-api-key", &key)
        .json(&json!({"by": "carol", "comment": "on it"}))
        .send()
        .await
        .unwrap();
    assert_eq!(acked.status(), 200);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after_ack = pager.lock().unwrap().len();
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(
        pager.lock().unwrap().len(),
        after_ack,
        "escalated after the acknowledgement"
    );
    let f = get_json(&client, &format!("{base}/v1/findings/{fp}"), &key).await;
    let escalations = f["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["event"] == "escalated" && e["detail"] == "pager")
        .count();
    assert_eq!(escalations, after_ack, "{f}");
    assert_eq!(
        ops.lock().unwrap().len(),
        1,
        "the first channel was told once"
    );
    drop(open);
}

/// A sender that stops in the middle of the outbox gives back what it took; the next server
/// on the same store sends the rest: every message arrives, none twice.
#[tokio::test(flavor = "multi_thread")]
async fn a_restart_in_the_middle_of_the_outbox_loses_nothing() {
    // A slow receiver, so that the first server stops with messages in hand.
    let received: Received = Arc::default();
    let kept = received.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: Bytes| {
            let kept = kept.clone();
            async move {
                tokio::time::sleep(Duration::from_millis(150)).await;
                kept.lock().unwrap().push((headers, body));
                "ok"
            }
        }),
    );
    let hook = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", hook.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(hook, app).await;
    });
    let db = portgate_test_support::db::sqlite();
    let location = Location::parse(&db.url).unwrap();
    let store = Store::open(&location).await.unwrap();
    const N: usize = 12;
    for i in 0..N {
        let id = format!("portgate-check-{i}-ops");
        let alert = json!({
            "type": "portgate.alert.v1", "id": id, "kind": "opened",
            "title": "1 new finding (test)", "created_at": chrono::Utc::now(),
            "severity": "info", "items": []
        });
        assert!(
            store
                .enqueue_alert("ops", &id, &alert.to_string(), chrono::Utc::now())
                .await
                .unwrap()
        );
    }
    let config = |listener: &tokio::net::TcpListener| {
        let mut config = Config::new(
            listener.local_addr().unwrap(),
            Scope::parse(&["127.0.0.0/8"]).unwrap(),
        );
        config
            .alerts
            .push(webhook_route("ops", &url, Severity::Info));
        config
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let first_config = config(&listener);
    let (first, _, _) = start(store, first_config, listener).await;
    let start_wait = Instant::now();
    while received.lock().unwrap().len() < 3 {
        assert!(start_wait.elapsed() < Duration::from_secs(20));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    first.drain();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let sent_by_first = received.lock().unwrap().len();
    assert!(
        sent_by_first < N,
        "the first server sent everything before it stopped"
    );
    let pending = first.0.store.outbox(100).await.unwrap();
    assert!(
        pending.iter().filter(|m| m.status == "pending").count() >= N - sent_by_first,
        "{pending:?}"
    );

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let second_config = config(&listener);
    let (second, _, _) = start(
        Store::open(&location).await.unwrap(),
        second_config,
        listener,
    )
    .await;
    let got = wait_for(&received, N, Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let got_after = received.lock().unwrap().len();
    let ids: std::collections::BTreeSet<String> = got
        .iter()
        .map(|a| a["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), N, "a message was lost");
    assert_eq!(got_after, N, "a message arrived twice");
    let outbox = second.0.store.outbox(100).await.unwrap();
    assert!(outbox.iter().all(|m| m.status == "delivered"), "{outbox:?}");
}

/// Drops the SYNs to one loopback port while it lives (iptables), as a lossy path would.
struct DroppedPort(u16);

impl DroppedPort {
    fn rule(port: u16, action: &str) -> std::process::Output {
        std::process::Command::new("iptables")
            .args([
                "-w", action, "INPUT", "-i", "lo", "-p", "tcp", "--syn", "--dport",
            ])
            .arg(port.to_string())
            .args(["-m", "comment", "--comment", "portgate-test", "-j", "DROP"])
            .output()
            .expect("iptables runs")
    }

    fn new(port: u16) -> DroppedPort {
        let out = Self::rule(port, "-I");
        assert!(
            out.status.success(),
            "iptables: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        DroppedPort(port)
    }
}

impl Drop for DroppedPort {
    fn drop(&mut self) {
        let _ = Self::rule(self.0, "-D");
    }
}

/// A port that one check does not see (its packets dropped once, as on a lossy path) is
/// pending, not news: no alert is sent, and the next check that sees it again clears it.
#[tokio::test(flavor = "multi_thread")]
async fn a_port_lost_by_one_check_is_not_an_alert() {
    if !portgate_test_support::require_root(
        "a_port_lost_by_one_check_is_not_an_alert",
        "drops the port's packets with iptables",
    ) {
        return;
    }
    let (url, received) = receiver().await;
    let open = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = open.local_addr().unwrap().port();
    let ports = format!("T:{port}");
    let (_dir, _db, store, listener, mut config) = watched(&ports).await;
    config
        .alerts
        .push(webhook_route("ops", &url, Severity::Info));
    let (_state, base, key) = start(store, config, listener).await;
    let client = reqwest::Client::new();
    let opened = wait_for(&received, 1, Duration::from_secs(20)).await;
    let fp = opened[0]["items"][0]["fingerprint"]
        .as_str()
        .unwrap()
        .to_string();
    let missing = |f: &Value| f["missingRuns"].as_u64().unwrap();

    let dropped = DroppedPort::new(port);
    let start_wait = Instant::now();
    loop {
        let f = get_json(&client, &format!("{base}/v1/findings/{fp}"), &key).await;
        if missing(&f) == 1 {
            break;
        }
        assert_eq!(f["state"], "open", "{f}");
        assert!(
            start_wait.elapsed() < Duration::from_secs(20),
            "never missed: {f}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(dropped);
    let start_wait = Instant::now();
    loop {
        let f = get_json(&client, &format!("{base}/v1/findings/{fp}"), &key).await;
        assert_eq!(f["state"], "open", "resolved by one lost check: {f}");
        if missing(&f) == 0 {
            break;
        }
        assert!(
            start_wait.elapsed() < Duration::from_secs(20),
            "not seen again: {f}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        received.lock().unwrap().len(),
        1,
        "an alert for a port lost once"
    );
    drop(open);
}

/// A review app: a check of a target no asset lists, with a manifest that says
/// `unlisted: review`, warns instead of failing, and its findings land in the review queue —
/// not in an alert.
#[tokio::test(flavor = "multi_thread")]
async fn a_target_without_a_baseline_goes_to_the_review_queue() {
    let (url, received) = receiver().await;
    let open = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = open.local_addr().unwrap().port();
    let db = portgate_test_support::db::sqlite();
    let store = Store::open(&Location::parse(&db.url).unwrap())
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut config = Config::new(
        listener.local_addr().unwrap(),
        Scope::parse(&["127.0.0.0/8"]).unwrap(),
    );
    config
        .alerts
        .push(webhook_route("ops", &url, Severity::Info));
    let (_state, base, key) = start(store, config, listener).await;
    let client = reqwest::Client::new();
    let manifest = |unlisted: &str| {
        format!(
            "version: 1\ndefaults: {{ports: \"T:{port}\", unlisted: {unlisted}}}\nassets:\n  - name: app\n    targets: [127.0.0.2]\n"
        )
    };
    let check = |unlisted: &'static str| {
        let client = client.clone();
        let base = base.clone();
        let key = key.clone();
        let body = json!({"manifest": manifest(unlisted), "target": "127.0.0.1"});
        async move {
            let accepted: Value = client
                .post(format!("{base}/v1/checks"))
                .header("x-api-key", &key)
                .json(&body)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let id = accepted["checkId"]
                .as_i64()
                .unwrap_or_else(|| panic!("{accepted}"));
            let start_wait = Instant::now();
            loop {
                let view = get_json(&client, &format!("{base}/v1/checks/{id}"), &key).await;
                if view["status"] != "queued" && view["status"] != "running" {
                    return view;
                }
                assert!(start_wait.elapsed() < Duration::from_secs(30), "{view}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    let enforced = check("enforce").await;
    assert_eq!(enforced["decision"], "fail", "{enforced}");
    let queue = get_json(&client, &format!("{base}/v1/findings?queue=review"), &key).await;
    assert_eq!(queue["items"].as_array().unwrap().len(), 0, "{queue}");

    let reviewed = check("review").await;
    assert_eq!(reviewed["decision"], "warn", "{reviewed}");
    let queue = get_json(&client, &format!("{base}/v1/findings?queue=review"), &key).await;
    let items = queue["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{queue}");
    assert_eq!(items[0]["queue"], "review");
    assert_eq!(items[0]["finding"]["port"], port);
    assert_eq!(items[0]["state"], "open");
    let rest = get_json(&client, &format!("{base}/v1/findings?queue=monitor"), &key).await;
    assert_eq!(rest["items"].as_array().unwrap().len(), 0, "{rest}");
    let bad = client
        .get(format!("{base}/v1/findings?queue=later"))
        .header("x-api-key", &key)
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        received.lock().unwrap().len(),
        0,
        "a review finding was alerted"
    );
    drop(open);
}
