//! The webhook channel against an axum receiver that verifies what it gets.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::routing::post;
use base64::Engine as _;
use chrono::Utc;
use hmac::{Hmac, Mac};
use portgate_alert::webhook::{self, SignatureHeaders, WebhookSecret};
use portgate_alert::{Alert, Failure};
use portgate_model::{Rule, Severity};
use sha2::Sha256;
use tokio::net::TcpListener;

use crate::common::{alert, channel, hostile_item, http_client, item};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

#[derive(Clone, Default)]
struct Receiver {
    accepted: Arc<Mutex<Vec<(HeaderMap, Bytes)>>>,
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

/// Verifies both signatures as a receiver would: the Standard Webhooks one with the
/// crate's `verify`, the GitHub form recomputed here with the hmac crate.
async fn hook(State(receiver): State<Receiver>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let signed = SignatureHeaders {
        id: header(&headers, "webhook-id"),
        timestamp: header(&headers, "webhook-timestamp"),
        signature: header(&headers, "webhook-signature"),
    };
    if webhook::verify(
        SECRET,
        &signed,
        &body,
        Utc::now(),
        webhook::DEFAULT_TOLERANCE,
    )
    .is_err()
    {
        return StatusCode::UNAUTHORIZED;
    }
    let key = base64::engine::general_purpose::STANDARD
        .decode(SECRET.trim_start_matches("whsec_"))
        .unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(&body);
    let github = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    if header(&headers, "x-portgate-signature-256") != github {
        return StatusCode::UNAUTHORIZED;
    }
    receiver.accepted.lock().unwrap().push((headers, body));
    StatusCode::NO_CONTENT
}

/// Answers with the status in the path; `Retry-After: 7` on 429 and 503.
async fn status(Path(code): Path<u16>) -> (StatusCode, HeaderMap, &'static str) {
    let mut headers = HeaderMap::new();
    if code == 429 || code == 503 {
        headers.insert("retry-after", HeaderValue::from_static("7"));
    }
    (
        StatusCode::from_u16(code).unwrap(),
        headers,
        "receiver says\nno",
    )
}

async fn serve(receiver: Receiver) -> String {
    let app = Router::new()
        .route("/hook", post(hook))
        .route("/status/{code}", post(status))
        .with_state(receiver);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{address}")
}

#[tokio::test]
async fn a_signed_webhook_is_verified_and_a_tampered_or_replayed_one_refused() {
    let receiver = Receiver::default();
    let base = serve(receiver.clone()).await;
    let hook = channel(&format!(
        "webhook: {{url: '{base}/hook', secret: '{SECRET}', timeout: 5}}"
    ));
    let sent = alert(
        "alert-webhook-1",
        vec![
            item(
                Rule::UnapprovedPort,
                Severity::High,
                8080,
                portgate_alert::ItemState::Open,
            ),
            hostile_item(),
        ],
    );
    let delivery = hook.deliver(&sent).await.unwrap();
    assert_eq!(delivery.messages, 1);
    assert!(delivery.channel.starts_with("webhook 127.0.0.1:"));

    let (headers, body) = receiver.accepted.lock().unwrap()[0].clone();
    assert_eq!(header(&headers, "webhook-id"), "alert-webhook-1");
    assert_eq!(header(&headers, "content-type"), "application/json");
    let timestamp: i64 = header(&headers, "webhook-timestamp").parse().unwrap();
    assert!((Utc::now().timestamp() - timestamp).abs() < 60);
    let document: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(document["type"], "portgate.alert.v1");
    assert_eq!(document["severity"], "critical");
    let received: Alert = serde_json::from_slice(&body).unwrap();
    assert_eq!(received, sent);

    let client = http_client();
    let resend = |headers: HeaderMap, body: Vec<u8>| {
        let client = client.clone();
        let url = format!("{base}/hook");
        async move {
            let mut request = client.post(url).body(body);
            for name in [
                "content-type",
                "webhook-id",
                "webhook-timestamp",
                "webhook-signature",
                "x-portgate-signature-256",
            ] {
                request = request.header(name, header(&headers, name));
            }
            request.send().await.unwrap().status().as_u16()
        }
    };
    // The same delivery again passes (deduplication on webhook-id is the receiver's)...
    assert_eq!(resend(headers.clone(), body.to_vec()).await, 204);
    // ... a tampered body does not ...
    let tampered = String::from_utf8(body.to_vec())
        .unwrap()
        .replace("\"critical\"", "\"info\"");
    assert_ne!(tampered.as_bytes(), &body[..]);
    assert_eq!(resend(headers.clone(), tampered.into_bytes()).await, 401);
    // ... nor an old delivery, even correctly signed for its time.
    let old = Utc::now().timestamp() - 600;
    let mut replay = headers.clone();
    replay.insert("webhook-timestamp", old.to_string().parse().unwrap());
    let signature = WebhookSecret::parse(SECRET)
        .unwrap()
        .sign("alert-webhook-1", old, &body);
    replay.insert("webhook-signature", signature.parse().unwrap());
    assert_eq!(resend(replay, body.to_vec()).await, 401);
    assert_eq!(receiver.accepted.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn answers_decide_whether_to_retry() {
    let base = serve(Receiver::default()).await;
    let sent = alert("alert-webhook-2", vec![hostile_item()]);
    for (code, retryable, retry_after) in [
        (500, true, None),
        (502, true, None),
        (503, true, Some(7)),
        (429, true, Some(7)),
        (408, true, None),
        (400, false, None),
        (401, false, None),
        (404, false, None),
        (301, false, None),
    ] {
        let hook = channel(&format!(
            "webhook: {{url: '{base}/status/{code}', secret: raw-secret}}"
        ));
        let err = hook.deliver(&sent).await.unwrap_err();
        assert_eq!(err.retryable, retryable, "{code}: {err}");
        assert_eq!(
            err.retry_after,
            retry_after.map(Duration::from_secs),
            "{code}"
        );
        assert!(
            matches!(&err.cause, Failure::Status { status, .. } if *status == code),
            "{err}"
        );
        // The message names the channel, not the path, and shows the answer on one line.
        let text = err.to_string();
        assert!(text.starts_with("webhook 127.0.0.1:"), "{text}");
        assert!(!text.contains("/status/"), "{text}");
        assert!(text.contains("receiver says no"), "{text}");
    }

    // Nothing listens: worth a retry.
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = closed.local_addr().unwrap();
    drop(closed);
    let hook = channel(&format!(
        "webhook: {{url: 'http://{address}/hook', secret: raw-secret, timeout: 2}}"
    ));
    let err = hook.deliver(&sent).await.unwrap_err();
    assert!(err.retryable, "{err}");
    assert!(matches!(err.cause, Failure::Connect(_)), "{err}");
}

#[tokio::test]
async fn a_receiver_that_never_answers_times_out() {
    // Accepts the connection and reads nothing.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let held = tokio::spawn(async move {
        let (socket, _) = listener.accept().await.unwrap();
        tokio::time::sleep(Duration::from_secs(5)).await;
        drop(socket);
    });
    let hook = channel(&format!(
        "webhook: {{url: 'http://{address}/hook', secret: raw-secret, timeout: 0.5}}"
    ));
    let started = std::time::Instant::now();
    let err = hook
        .deliver(&alert("alert-webhook-3", vec![hostile_item()]))
        .await
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(err.retryable, "{err}");
    assert!(matches!(err.cause, Failure::Timeout { .. }), "{err}");
    held.abort();
}
