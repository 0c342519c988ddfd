//! The Slack channel against a Slack-shaped receiver that rate-limits the first message.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::routing::post;
use portgate_alert::{Failure, ItemState};
use portgate_model::{Rule, Severity};
use tokio::net::TcpListener;

use crate::common::{alert, channel, hostile_item, item};

#[derive(Clone, Default)]
struct Receiver {
    /// When each message arrived, and its body.
    messages: Arc<Mutex<Vec<(Instant, serde_json::Value)>>>,
}

/// `429` with `Retry-After: 1` for the first message, then `200 ok` as Slack does.
async fn hook(
    State(receiver): State<Receiver>,
    body: Bytes,
) -> (StatusCode, HeaderMap, &'static str) {
    let json = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
    let mut messages = receiver.messages.lock().unwrap();
    messages.push((Instant::now(), json));
    let mut headers = HeaderMap::new();
    if messages.len() == 1 {
        headers.insert("retry-after", HeaderValue::from_static("1"));
        return (StatusCode::TOO_MANY_REQUESTS, headers, "rate_limited");
    }
    (StatusCode::OK, headers, "ok")
}

fn section_texts(message: &serde_json::Value) -> Vec<String> {
    message["blocks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["type"] == "section")
        .map(|b| b["text"]["text"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn rate_limited_then_delivered_one_message_a_second() {
    let receiver = Receiver::default();
    let app = Router::new()
        .route("/services/T000/B000/XXXX", post(hook))
        .with_state(receiver.clone());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let slack = channel(&format!(
        "slack:\n  url: http://{address}/services/T000/B000/XXXX\n  timeout: 5\n"
    ));
    assert_eq!(slack.label(), format!("slack {address}"));

    let small = alert(
        "alert-slack-1",
        vec![
            item(Rule::UnapprovedPort, Severity::High, 8080, ItemState::Open),
            hostile_item(),
        ],
    );
    let err = slack.deliver(&small).await.unwrap_err();
    assert!(err.retryable, "{err}");
    assert_eq!(err.retry_after, Some(Duration::from_secs(1)));
    assert!(
        matches!(err.cause, Failure::Status { status: 429, .. }),
        "{err}"
    );
    assert!(!err.to_string().contains("XXXX"), "{err}");

    slack.deliver(&small).await.unwrap();

    let items = (0..200)
        .map(|i| {
            let mut it = item(
                Rule::UnapprovedPort,
                Severity::Medium,
                10_000 + i,
                ItemState::Reopened,
            );
            it.finding.message = format!("{i} {}", "banner <&> ünïcødé ".repeat(60));
            it
        })
        .collect();
    slack.deliver(&alert("alert-slack-2", items)).await.unwrap();

    let messages = receiver.messages.lock().unwrap().clone();
    assert_eq!(messages.len(), 3);
    for pair in messages.windows(2) {
        let gap = pair[1].0 - pair[0].0;
        assert!(gap >= Duration::from_secs(1), "{gap:?}");
    }
    let (_, first) = &messages[1];
    assert_eq!(first["blocks"][0]["type"], "header");
    assert_eq!(
        first["blocks"][0]["text"]["text"],
        "[CRITICAL] Exposure on web"
    );
    assert!(
        first["text"]
            .as_str()
            .unwrap()
            .starts_with("[CRITICAL] Exposure on web")
    );
    let texts = section_texts(first);
    assert!(texts[0].contains("&lt;!channel&gt;"), "{}", texts[0]);
    assert!(!texts[0].contains("<!channel>"), "{}", texts[0]);

    let (_, big) = &messages[2];
    assert!(big["blocks"].as_array().unwrap().len() <= 50);
    let texts = section_texts(big);
    assert!(texts.len() > 1);
    for text in &texts {
        assert!(text.chars().count() <= 3000, "{}", text.chars().count());
    }
}
