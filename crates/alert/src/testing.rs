//! Alerts for the unit tests.

use chrono::{TimeZone, Utc};
use portgate_model::{Finding, Outcome, PortState, Protocol, Rule, Severity};

use crate::message::{Alert, AlertItem, AlertKind, ItemState};

/// A finding of `rule` at `severity` on 198.18.0.7:8080/tcp of asset `web`.
pub fn finding(rule: Rule, severity: Severity) -> Finding {
    Finding {
        rule,
        outcome: Outcome::Fail,
        severity,
        target: "web.pg.test".to_string(),
        ip: Some(
            "198.18.0.7"
                .parse()
                .unwrap_or(std::net::Ipv4Addr::LOCALHOST.into()),
        ),
        protocol: Some(Protocol::Tcp),
        port: Some(8080),
        state: Some(PortState::Open),
        service: Some("http".to_string()),
        product: Some("nginx".to_string()),
        version: Some("1.25".to_string()),
        asset: Some("web".to_string()),
        owner: Some("team-web".to_string()),
        escalation: None,
        message: "8080/tcp is open and no approval covers it".to_string(),
        location: None,
        references: Vec::new(),
        proof: None,
        fix: None,
    }
}

/// An open item of `rule` at `severity` with `fingerprint`.
pub fn item(rule: Rule, severity: Severity, fingerprint: &str) -> AlertItem {
    AlertItem {
        fingerprint: fingerprint.to_string(),
        state: ItemState::Open,
        suppressed: false,
        finding: finding(rule, severity),
        ack_url: None,
    }
}

/// A critical item whose scanned text tries every trick.
pub fn hostile_item() -> AlertItem {
    let mut item = item(Rule::UnapprovedPort, Severity::Critical, "fp|=\\x");
    item.finding.message =
        "banner <script>alert(1)</script>\r\n\x1b[31mred & \u{202E}gnp.exe".to_string();
    item.finding.product = Some("<img src=x onerror=\"x\">".to_string());
    item.finding.asset = Some("a|b=c\\d\ne".to_string());
    item.ack_url = Some("javascript:alert(1)".to_string());
    item
}

/// An opened alert of `items`.
pub fn alert(items: Vec<AlertItem>) -> Alert {
    Alert {
        id: "alert-0001".to_string(),
        kind: AlertKind::Opened,
        title: "Exposure on web".to_string(),
        created_at: Utc
            .with_ymd_and_hms(2025, 1, 31, 8, 0, 0)
            .single()
            .unwrap_or_default(),
        items,
    }
}
