//! Renderings of an alert for people: plain text and HTML (the two parts of an email),
//! and the sanitising every rendering applies to text that came from a scanned service.
//!
//! Finding text (service banners, products, versions, messages quoting them) is written
//! by whoever runs the scanned port and may be hostile: it is reduced to one line with
//! no control or bidirectional-override characters ([`one_line`]), and in HTML every
//! character with a meaning is escaped ([`html_escape`]).

use std::fmt::Write as _;

use crate::message::{Alert, AlertItem};

/// `s` on one line, for a person: line breaks and tabs become spaces; other control
/// characters and the bidirectional overrides (which can make text read differently
/// from what it is) become U+FFFD.
pub fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '\n' | '\r' | '\t' => ' ',
            c if is_hostile(c) => char::REPLACEMENT_CHARACTER,
            c => c,
        })
        .collect()
}

/// Control characters and the bidirectional embeddings, overrides and isolates.
pub(crate) fn is_hostile(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// `s` safe in HTML text and in a quoted attribute value: `&`, `<`, `>`, `"` and `'`
/// become character references, and the text is reduced to one line ([`one_line`]).
pub fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + s.len() / 8);
    for c in one_line(s).chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The subject of the alert: `[HIGH] <title>`, on one line.
pub fn subject(alert: &Alert) -> String {
    format!(
        "[{}] {}",
        alert.severity().as_str().to_ascii_uppercase(),
        one_line(&alert.title)
    )
}

/// An acknowledgement URL fit for a link: http or https, without spaces, quotes or angle
/// brackets. Anything else (`javascript:`, …) is not offered as a link.
pub(crate) fn linkable(url: &str) -> Option<&str> {
    let scheme_ok = url.starts_with("https://") || url.starts_with("http://");
    let clean = !url
        .chars()
        .any(|c| c.is_whitespace() || is_hostile(c) || matches!(c, '"' | '\'' | '<' | '>' | '|'));
    (scheme_ok && clean).then_some(url)
}

/// The facts of an item after its endpoint, in order: `state`, then `asset`, `owner`,
/// `service` when known.
fn item_facts(item: &AlertItem) -> Vec<(&'static str, String)> {
    let f = &item.finding;
    let mut facts = vec![("state", item.state.as_str().to_string())];
    if item.suppressed {
        facts.push(("suppressed", "maintenance window".to_string()));
    }
    facts.push(("rule", f.rule.id().to_string()));
    for (name, value) in [
        ("asset", &f.asset),
        ("owner", &f.owner),
        ("service", &f.service),
        ("product", &f.product),
        ("version", &f.version),
    ] {
        if let Some(value) = value {
            facts.push((name, value.clone()));
        }
    }
    facts.push(("fingerprint", item.fingerprint.clone()));
    facts
}

/// The plain-text rendering: a header line, a line of context, and a block per item.
pub fn text(alert: &Alert) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{}", subject(alert));
    let _ = writeln!(
        out,
        "{} alert, {} item{}, {} (id {})",
        alert.kind,
        alert.items.len(),
        if alert.items.len() == 1 { "" } else { "s" },
        alert.created_at.format("%Y-%m-%d %H:%M:%S UTC"),
        one_line(&alert.id),
    );
    for item in &alert.items {
        let f = &item.finding;
        let _ = writeln!(
            out,
            "\n- [{}] {}: {}",
            f.severity.as_str().to_ascii_uppercase(),
            one_line(&f.endpoint()),
            one_line(f.rule.title()),
        );
        let _ = writeln!(out, "  {}", one_line(&f.message));
        let facts: Vec<String> = item_facts(item)
            .into_iter()
            .map(|(name, value)| format!("{name}: {}", one_line(&value)))
            .collect();
        let _ = writeln!(out, "  {}", facts.join(", "));
        if let Some(url) = item.ack_url.as_deref().and_then(linkable) {
            let _ = writeln!(out, "  acknowledge: {url}");
        }
    }
    out
}

/// The HTML rendering: a complete document with a table of the items. Every piece of
/// text is escaped ([`html_escape`]); acknowledgement links are offered only for http(s)
/// URLs.
pub fn html(alert: &Alert) -> String {
    let mut out = String::new();
    let subject = html_escape(&subject(alert));
    let _ = writeln!(out, "<!DOCTYPE html>");
    let _ = writeln!(out, "<html><head><meta charset=\"utf-8\">");
    let _ = writeln!(out, "<title>{subject}</title></head><body>");
    let _ = writeln!(out, "<h1>{subject}</h1>");
    let _ = writeln!(
        out,
        "<p>{} alert, {} item{}, {} (id <code>{}</code>)</p>",
        alert.kind,
        alert.items.len(),
        if alert.items.len() == 1 { "" } else { "s" },
        alert.created_at.format("%Y-%m-%d %H:%M:%S UTC"),
        html_escape(&alert.id),
    );
    let _ = writeln!(out, "<table border=\"1\" cellpadding=\"4\">");
    let _ = writeln!(
        out,
        "<tr><th>Severity</th><th>Endpoint</th><th>Finding</th><th>Details</th></tr>"
    );
    for item in &alert.items {
        let f = &item.finding;
        let _ = writeln!(out, "<tr>");
        let _ = writeln!(out, "<td>{}</td>", f.severity.as_str().to_ascii_uppercase());
        let _ = writeln!(out, "<td><code>{}</code></td>", html_escape(&f.endpoint()));
        let _ = writeln!(
            out,
            "<td><b>{}</b><br>\n{}</td>",
            html_escape(f.rule.title()),
            html_escape(&f.message)
        );
        let _ = writeln!(out, "<td>");
        for (name, value) in item_facts(item) {
            let _ = writeln!(out, "{name}: {}<br>", html_escape(&value));
        }
        if let Some(url) = item.ack_url.as_deref().and_then(linkable) {
            let _ = writeln!(out, "<a href=\"{}\">Acknowledge</a>", html_escape(url));
        }
        let _ = writeln!(out, "</td>\n</tr>");
    }
    let _ = writeln!(out, "</table>\n</body></html>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{alert, hostile_item};

    #[test]
    fn html_escapes_each_meaningful_character() {
        for (input, want) in [
            ("plain", "plain"),
            ("<script>", "&lt;script&gt;"),
            ("a & b", "a &amp; b"),
            ("\"'", "&quot;&#39;"),
            ("&amp;", "&amp;amp;"),
            ("line\nbreak\r\ttab", "line break  tab"),
            ("nul\0esc\x1b[31m", "nul\u{FFFD}esc\u{FFFD}[31m"),
            ("rtl\u{202E}txt.exe", "rtl\u{FFFD}txt.exe"),
            ("ünïcødé ✓", "ünïcødé ✓"),
        ] {
            assert_eq!(html_escape(input), want, "{input:?}");
        }
    }

    #[test]
    fn hostile_finding_text_never_reaches_the_html_raw() {
        let a = alert(vec![hostile_item()]);
        let html = html(&a);
        assert!(!html.contains("<script"), "{html}");
        assert!(!html.contains("<img"), "{html}");
        assert!(
            html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{html}"
        );
        assert!(
            html.contains("&lt;img src=x onerror=&quot;x&quot;&gt;"),
            "{html}"
        );
        // The javascript: acknowledgement URL is not offered as a link.
        assert!(!html.contains("javascript:"), "{html}");
        assert!(!html.contains('\u{1b}'), "{html}");
        // The only tags are ours.
        let tags: std::collections::BTreeSet<&str> = html
            .split('<')
            .skip(1)
            .map(|t| t.split([' ', '>']).next().unwrap_or(""))
            .collect();
        let ours = [
            "!DOCTYPE", "html", "head", "meta", "title", "/title", "/head", "body", "h1", "/h1",
            "p", "/p", "code", "/code", "table", "tr", "th", "/th", "/tr", "td", "/td", "b", "/b",
            "br", "/table", "/body", "/html",
        ];
        for tag in tags {
            assert!(ours.contains(&tag), "unexpected tag {tag:?} in {html}");
        }
    }

    #[test]
    fn text_is_one_line_per_field() {
        let a = alert(vec![hostile_item()]);
        let text = text(&a);
        assert!(text.starts_with("[CRITICAL] "), "{text}");
        assert!(!text.contains('\u{1b}') && !text.contains('\r'), "{text}");
        // Header, context, then a blank line and three lines for the one item.
        assert_eq!(text.lines().count(), 6, "{text}");
    }

    #[test]
    fn only_http_urls_are_links() {
        assert!(linkable("https://portgate.example/ack/1").is_some());
        assert!(linkable("http://portgate.example/ack?x=1&y=2").is_some());
        assert!(linkable("javascript:alert(1)").is_none());
        assert!(linkable("https://x/\"onmouseover=").is_none());
        assert!(linkable("https://x/a b").is_none());
    }
}
