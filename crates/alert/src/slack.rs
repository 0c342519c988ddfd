//! The Slack channel: one Block Kit message per alert to an incoming webhook, at most one
//! message a second per channel.
//!
//! The message is a header block (the subject), a context line, then section blocks of
//! mrkdwn, one line per item, each section at most [`SECTION_LIMIT`] bytes (so at most as
//! many characters as Slack allows). Slack allows 50 blocks: items beyond what fits are
//! counted in a last line rather than sent in further messages, so one alert stays one
//! notification. Text from findings is escaped as Slack's mrkdwn requires (`&`, `<`, `>`),
//! which also keeps it from forming links or mentions.

use std::fmt;
use std::time::Duration;

use reqwest::Url;
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderValue};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::channel::Delivery;
use crate::config::Timeout;
use crate::error::{ConfigError, DeliveryError, Failure};
use crate::http;
use crate::message::{Alert, AlertItem};
use crate::render::{linkable, one_line, subject};

/// The most bytes in the text of one section block (Slack's limit is 3,000 characters).
pub const SECTION_LIMIT: usize = 3000;
/// The most characters in the header block.
const HEADER_LIMIT: usize = 150;
/// The most blocks in one message.
const MAX_BLOCKS: usize = 50;
/// The shortest time between two messages of one channel.
pub const MIN_INTERVAL: Duration = Duration::from_secs(1);

/// The Slack channel's settings.
///
/// ```yaml
/// slack:
///   url: https://hooks.slack.com/services/T000/B000/XXXX   # the incoming-webhook URL
///   timeout: 10                                            # seconds, optional
/// ```
#[derive(Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlackConfig {
    /// The incoming-webhook URL (a secret: it is never shown in errors or logs).
    pub url: String,
    /// How long to wait for the connect and for the whole exchange (default 10 s).
    #[serde(default)]
    pub timeout: Option<Timeout>,
}

impl fmt::Debug for SlackConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SlackConfig")
            .field("url", &"<redacted>")
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// `s` on one line with `&`, `<` and `>` escaped as Slack's mrkdwn requires.
pub(crate) fn mrkdwn_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in one_line(s).chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

/// The largest char boundary of `s` at or below `index`.
fn floor_boundary(s: &str, index: usize) -> usize {
    if index >= s.len() {
        return s.len();
    }
    (0..=index)
        .rev()
        .find(|&i| s.is_char_boundary(i))
        .unwrap_or(0)
}

/// Escaped mrkdwn `s` cut to at most `limit` bytes on a char boundary, never inside an
/// `&…;` escape, and marked with `…` when cut.
fn truncate_escaped(s: &str, limit: usize) -> String {
    if s.len() <= limit {
        return s.to_string();
    }
    const MARK: &str = "…";
    let mut cut = floor_boundary(s, limit.saturating_sub(MARK.len()));
    if let Some(amp) = s[..cut].rfind('&')
        && !s[amp..cut].contains(';')
    {
        cut = amp;
    }
    format!("{}{MARK}", &s[..cut])
}

/// `s` cut to at most `limit` characters, marked with `…` when cut.
fn truncate_chars(s: &str, limit: usize) -> String {
    if s.chars().count() <= limit {
        return s.to_string();
    }
    let mut out: String = s.chars().take(limit.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// One item as one line of mrkdwn, at most [`SECTION_LIMIT`] bytes.
fn item_line(item: &AlertItem) -> String {
    let f = &item.finding;
    let mut facts = vec![item.state.as_str().to_string()];
    if item.suppressed {
        facts.push("in maintenance window".to_string());
    }
    if let Some(asset) = &f.asset {
        facts.push(format!("asset {}", mrkdwn_escape(asset)));
    }
    if let Some(owner) = &f.owner {
        facts.push(format!("owner {}", mrkdwn_escape(owner)));
    }
    let mut line = format!(
        "• *{}* {} — {}: {} _({})_",
        f.severity.as_str().to_ascii_uppercase(),
        mrkdwn_escape(&f.endpoint()),
        mrkdwn_escape(f.rule.title()),
        mrkdwn_escape(&f.message),
        facts.join(", "),
    );
    if let Some(url) = item.ack_url.as_deref().and_then(linkable) {
        line.push_str(&format!(" <{}|acknowledge>", url.replace('&', "&amp;")));
    }
    truncate_escaped(&line, SECTION_LIMIT)
}

/// The Block Kit message of `alert`.
pub(crate) fn payload(alert: &Alert) -> Value {
    let subject = subject(alert);
    let mut blocks = vec![
        json!({
            "type": "header",
            "text": {"type": "plain_text", "text": truncate_chars(&subject, HEADER_LIMIT)},
        }),
        json!({
            "type": "context",
            "elements": [{"type": "mrkdwn", "text": format!(
                "{} alert · {} item{} · {}",
                alert.kind,
                alert.items.len(),
                if alert.items.len() == 1 { "" } else { "s" },
                alert.created_at.format("%Y-%m-%d %H:%M UTC"),
            )}],
        }),
    ];
    // Room for the sections and, if items are left over, a line counting them.
    let max_sections = MAX_BLOCKS - blocks.len() - 1;
    let mut sections: Vec<String> = Vec::new();
    let mut current = String::new();
    let mut shown = 0;
    for item in &alert.items {
        let line = item_line(item);
        if !current.is_empty() && current.len() + 1 + line.len() > SECTION_LIMIT {
            if sections.len() + 1 == max_sections {
                break;
            }
            sections.push(std::mem::take(&mut current));
        }
        if !current.is_empty() {
            current.push('\n');
        }
        current.push_str(&line);
        shown += 1;
    }
    if !current.is_empty() {
        sections.push(current);
    }
    for text in sections {
        blocks.push(json!({"type": "section", "text": {"type": "mrkdwn", "text": text}}));
    }
    let left = alert.items.len() - shown;
    if left > 0 {
        blocks.push(json!({
            "type": "context",
            "elements": [{"type": "mrkdwn", "text": format!("… and {left} more item{} not shown", if left == 1 { "" } else { "s" })}],
        }));
    }
    let fallback = format!(
        "{} ({} item{})",
        mrkdwn_escape(&subject),
        alert.items.len(),
        if alert.items.len() == 1 { "" } else { "s" }
    );
    json!({"text": truncate_escaped(&fallback, SECTION_LIMIT), "blocks": blocks})
}

/// A Slack channel, ready to deliver.
pub(crate) struct SlackChannel {
    pub(crate) label: String,
    url: Url,
    client: reqwest::Client,
    timeout: Duration,
    /// When the last message was answered: the next waits until [`MIN_INTERVAL`] after.
    last: Mutex<Option<Instant>>,
}

impl SlackChannel {
    pub(crate) fn new(config: &SlackConfig) -> Result<SlackChannel, ConfigError> {
        let url = http::parse_url("slack", &config.url)?;
        let label = http::label("slack", &url);
        let timeout = Timeout::or_default(config.timeout);
        let client = http::client(&label, timeout)?;
        Ok(SlackChannel {
            label,
            url,
            client,
            timeout,
            last: Mutex::new(None),
        })
    }

    pub(crate) async fn deliver(&self, alert: &Alert) -> Result<Delivery, DeliveryError> {
        let body = serde_json::to_vec(&payload(alert))
            .map_err(|e| DeliveryError::permanent(&self.label, Failure::Encode(e.to_string())))?;
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        // Held across the request: messages of one channel go one at a time, each at
        // least MIN_INTERVAL after the previous one was answered.
        let mut last = self.last.lock().await;
        if let Some(at) = *last {
            tokio::time::sleep_until(at + MIN_INTERVAL).await;
        }
        let result = http::post(
            &self.label,
            &self.client,
            &self.url,
            headers,
            body,
            self.timeout,
        )
        .await;
        *last = Some(Instant::now());
        result?;
        Ok(Delivery {
            channel: self.label.clone(),
            messages: 1,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::testing::{alert, hostile_item, item};
    use portgate_model::{Rule, Severity};

    fn sections(payload: &Value) -> Vec<String> {
        payload["blocks"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|b| b["type"] == "section")
            .map(|b| b["text"]["text"].as_str().unwrap().to_string())
            .collect()
    }

    #[test]
    fn mrkdwn_escapes_the_three_characters() {
        for (input, want) in [
            ("a & b", "a &amp; b"),
            ("<!channel>", "&lt;!channel&gt;"),
            ("<https://evil|click>", "&lt;https://evil|click&gt;"),
            ("multi\nline", "multi line"),
        ] {
            assert_eq!(mrkdwn_escape(input), want);
        }
    }

    #[test]
    fn truncation_keeps_chars_and_escapes_whole() {
        let s = "é".repeat(2000); // 4000 bytes
        let cut = truncate_escaped(&s, 3000);
        assert!(cut.len() <= 3000 && cut.ends_with('…'), "{}", cut.len());
        let s = format!("{}&amp;&lt;", "x".repeat(2995));
        let cut = truncate_escaped(&s, 3000);
        assert!(cut.len() <= 3000, "{}", cut.len());
        assert!(cut.ends_with("x…"), "{}", &cut[2990..]);
        assert_eq!(truncate_escaped("short", 3000), "short");
    }

    #[test]
    fn many_long_items_split_into_sections_under_the_limit() {
        let items: Vec<_> = (0..200)
            .map(|i| {
                let mut it = item(Rule::UnapprovedPort, Severity::High, &format!("fp{i}"));
                it.finding.message = format!("{i}: {}", "<&>é".repeat(400));
                it
            })
            .collect();
        let p = payload(&alert(items));
        let blocks = p["blocks"].as_array().unwrap();
        assert!(blocks.len() <= MAX_BLOCKS, "{}", blocks.len());
        let texts = sections(&p);
        assert!(texts.len() > 1);
        for text in &texts {
            assert!(text.len() <= SECTION_LIMIT, "{}", text.len());
            assert!(!text.contains('<') || text.contains("<https"), "unescaped");
        }
        let last = blocks.last().unwrap()["elements"][0]["text"]
            .as_str()
            .unwrap();
        assert!(last.contains("more items not shown"), "{last}");
        let shown: usize = texts.iter().map(|t| t.lines().count()).sum();
        assert!(last.contains(&format!("{} more", 200 - shown)), "{last}");
    }

    #[test]
    fn a_single_overlong_line_is_cut_safely() {
        let mut it = hostile_item();
        it.finding.message = "ü<".repeat(5000);
        let p = payload(&alert(vec![it]));
        let texts = sections(&p);
        assert_eq!(texts.len(), 1);
        assert!(texts[0].len() <= SECTION_LIMIT);
        assert!(texts[0].ends_with('…'));
        assert!(p["text"].as_str().unwrap().starts_with("[CRITICAL] "));
    }

    #[test]
    fn hostile_text_forms_no_link_or_mention() {
        let mut it = hostile_item();
        it.finding.message = "<!channel> <https://evil.example|click>".to_string();
        it.ack_url = Some("https://portgate.example/ack?id=1&t=2".to_string());
        let texts = sections(&payload(&alert(vec![it])));
        assert!(texts[0].contains("&lt;!channel&gt;"), "{}", texts[0]);
        // The only link is the acknowledgement.
        assert_eq!(texts[0].matches('<').count(), 1, "{}", texts[0]);
        assert!(
            texts[0].contains("<https://portgate.example/ack?id=1&amp;t=2|acknowledge>"),
            "{}",
            texts[0]
        );
    }
}
