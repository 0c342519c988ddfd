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
use portgate_serve::{AlertRoute, Config, Schedule, State};
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
    let secret = format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(KEY)
    );
    let url = format!("http://127.0.0.1:{port}/hook");
    config.alerts.push(AlertRoute {
        name: "ops".into(),
        min_severity: Severity::Info,
        channel: serde_json::from_value(json!({"webhook": {"url": url, "secret": secret}}))
            .unwrap(),
    });
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
