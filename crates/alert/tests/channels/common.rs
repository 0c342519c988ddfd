//! Alerts, channels and receivers shared by the tests.

use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use portgate_alert::{Alert, AlertItem, AlertKind, Channel, ChannelConfig, ItemState};
use portgate_model::{Finding, Outcome, PortState, Protocol, Rule, Severity};

/// How long a test waits for a receiver.
pub const WAIT: Duration = Duration::from_secs(10);

/// Text a hostile service could put in a banner: CEF's and syslog's special characters,
/// line breaks, HTML and Slack markup.
pub const HOSTILE: &str = "evil|pipe=eq\\back\nline\rcr <script>x</script> & <!channel>";

/// When the test alerts were made (whole milliseconds).
pub fn created_at() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 1, 31, 8, 0, 0).single().unwrap()
        + chrono::Duration::milliseconds(123)
}

/// A finding of `rule` at `severity` on 198.18.0.7:`port`/tcp of asset `web`.
pub fn finding(rule: Rule, severity: Severity, port: u16) -> Finding {
    Finding {
        rule,
        outcome: Outcome::Fail,
        severity,
        target: "web.pg.test".to_string(),
        ip: Some("198.18.0.7".parse().unwrap()),
        protocol: Some(Protocol::Tcp),
        port: Some(port),
        state: Some(PortState::Open),
        service: Some("http".to_string()),
        product: None,
        version: None,
        asset: Some("web".to_string()),
        owner: Some("team-web".to_string()),
        escalation: None,
        message: format!("{port}/tcp is open and no approval covers it"),
        location: None,
        references: Vec::new(),
        proof: None,
        fix: None,
    }
}

/// An item in `state`.
pub fn item(rule: Rule, severity: Severity, port: u16, state: ItemState) -> AlertItem {
    AlertItem {
        fingerprint: format!("fp-{port}"),
        state,
        suppressed: false,
        finding: finding(rule, severity, port),
        ack_url: Some(format!("https://portgate.pg.test/ack/fp-{port}")),
    }
}

/// An item whose scanned text is [`HOSTILE`] in the message, fingerprint and asset.
pub fn hostile_item() -> AlertItem {
    let mut item = item(
        Rule::UnapprovedPort,
        Severity::Critical,
        6666,
        ItemState::Open,
    );
    item.finding.message = HOSTILE.to_string();
    item.finding.asset = Some(HOSTILE.to_string());
    item.fingerprint = format!("fp {HOSTILE}");
    item
}

/// An alert of `items`.
pub fn alert(id: &str, items: Vec<AlertItem>) -> Alert {
    Alert {
        id: id.to_string(),
        kind: AlertKind::Opened,
        title: "Exposure on web".to_string(),
        created_at: created_at(),
        items,
    }
}

/// The channel of a YAML configuration.
pub fn channel(yaml: &str) -> Channel {
    let config: ChannelConfig = serde_saphyr::from_str(yaml).unwrap();
    Channel::new(&config).unwrap()
}

/// An HTTP client for sending to the receivers directly.
pub fn http_client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder().timeout(WAIT).build().unwrap()
}
