//! CEF (ArcSight Common Event Format) events: one per alert item, as the MSG of a syslog
//! message.
//!
//! ```text
//! CEF:0|portgate|portgate|<version>|<signature id>|<name>|<severity 0-10>|<extensions>
//! ```
//!
//! Header fields escape `\` and `|`; extension values escape `\`, `=`, and write line
//! breaks as `\n` and `\r`. Extension keys are fixed: `rt` (milliseconds since the epoch),
//! `act` (the item state), `cat` (the alert kind), `externalId` (the alert id), `dhost`
//! (the target), `dst` (the address), `dpt` (the port), `proto` (`TCP` or `UDP`),
//! `cs1`…`cs5` with their labels (`fingerprint`, `asset`, `owner`, `rule`, `suppressed`),
//! and `msg` (the finding's message) last, the one cut when the event is too long. Keys
//! whose value is unknown are left out (there is no `src`: the scanner's address is not
//! part of a finding).

use std::fmt::Write as _;

use portgate_model::{Protocol, Rule, Severity};

use crate::message::{Alert, AlertItem, ItemState};
use crate::render::is_hostile;

/// The CEF device vendor and product.
const DEVICE: &str = "portgate";
/// The CEF device version: this crate's.
const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The most bytes of an escaped extension value other than `msg`.
const FIELD_LIMIT: usize = 512;
/// Marks a value that was cut.
const CUT: &str = "…";

/// The stable name of each rule in signature ids (the table in [`signature_id`]).
fn rule_signature(rule: Rule) -> &'static str {
    match rule {
        Rule::Approved => "port.approved",
        Rule::UnapprovedPort => "port.unapproved",
        Rule::ServiceMismatch => "service.mismatch",
        Rule::TlsRequired => "tls.required",
        Rule::TlsInvalid => "tls.invalid",
        Rule::TlsExpiring => "tls.expiring",
        Rule::ApprovedPortMissing => "port.missing",
        Rule::ApprovalExpired => "approval.expired",
        Rule::OutsideExpectedNetwork => "network.outside",
        Rule::ChangedSinceLastScan => "service.changed",
        Rule::ScanInconclusive => "scan.inconclusive",
        Rule::KnownVulnerability => "vulnerability.known",
        Rule::DomainExpiring => "domain.expiring",
        Rule::ExposedManagementUi => "app.management-ui",
        Rule::UnauthenticatedApi => "app.unauthenticated",
        Rule::DebugEndpointExposed => "app.debug-endpoint",
        Rule::DefaultCredentials => "app.default-login",
    }
}

/// The CEF signature id (and syslog MSGID) of an item: the rule's name from this table
/// for an open item, followed by `.reopened`, `.resolved` or `.acknowledged` for the
/// other states (`port.unapproved.resolved`). Stable: a SIEM rule may match on it.
///
/// | rule | signature id |
/// |---|---|
/// | approved | `port.approved` |
/// | unapproved-port | `port.unapproved` |
/// | service-mismatch | `service.mismatch` |
/// | tls-required | `tls.required` |
/// | tls-invalid | `tls.invalid` |
/// | tls-expiring | `tls.expiring` |
/// | approved-port-missing | `port.missing` |
/// | approval-expired | `approval.expired` |
/// | outside-expected-network | `network.outside` |
/// | changed-since-last-scan | `service.changed` |
/// | scan-inconclusive | `scan.inconclusive` |
/// | known-vulnerability | `vulnerability.known` |
/// | domain-expiring | `domain.expiring` |
/// | exposed-management-ui | `app.management-ui` |
/// | unauthenticated-api | `app.unauthenticated` |
/// | debug-endpoint-exposed | `app.debug-endpoint` |
/// | default-credentials | `app.default-login` |
pub fn signature_id(rule: Rule, state: ItemState) -> String {
    let base = rule_signature(rule);
    match state {
        ItemState::Open => base.to_string(),
        other => format!("{base}.{other}"),
    }
}

/// The CEF severity (0–10) of a finding severity: info 0, low 3, medium 5, high 8,
/// critical 10.
pub fn cef_severity(severity: Severity) -> u8 {
    match severity {
        Severity::Info => 0,
        Severity::Low => 3,
        Severity::Medium => 5,
        Severity::High => 8,
        Severity::Critical => 10,
    }
}

/// `s` for a CEF header field: `\` and `|` escaped; line breaks and tabs become spaces and
/// other control characters U+FFFD (a header is one line).
pub(crate) fn escape_header(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '|' => out.push_str("\\|"),
            '\n' | '\r' | '\t' => out.push(' '),
            c if is_hostile(c) => out.push(char::REPLACEMENT_CHARACTER),
            c => out.push(c),
        }
    }
    out
}

/// The escaped form of one character of an extension value.
fn escape_extension_char(c: char, out: &mut String) {
    match c {
        '\\' => out.push_str("\\\\"),
        '=' => out.push_str("\\="),
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push(' '),
        c if is_hostile(c) => out.push(char::REPLACEMENT_CHARACTER),
        c => out.push(c),
    }
}

/// `s` for a CEF extension value: `\` and `=` escaped, line breaks written `\n` and `\r`;
/// tabs become spaces and other control characters U+FFFD.
#[cfg(test)]
pub(crate) fn escape_extension(s: &str) -> String {
    escape_extension_limited(s, usize::MAX)
}

/// [`escape_extension`] of `s`, cut to at most `limit` bytes between two escaped
/// characters (never inside an escape) and marked with `…` when cut.
pub(crate) fn escape_extension_limited(s: &str, limit: usize) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        escape_extension_char(c, &mut out);
    }
    if out.len() <= limit {
        return out;
    }
    // Too long: as many whole escaped characters as fit before the mark.
    let mut cut = String::with_capacity(limit);
    let mut unit = String::with_capacity(4);
    let room = limit.saturating_sub(CUT.len());
    for c in s.chars() {
        unit.clear();
        escape_extension_char(c, &mut unit);
        if cut.len() + unit.len() > room {
            break;
        }
        cut.push_str(&unit);
    }
    if cut.len() + CUT.len() <= limit {
        cut.push_str(CUT);
    }
    cut
}

/// The CEF event of `item` of `alert`, at most `limit` bytes (the `msg` extension is cut
/// to fit; when even the rest does not fit, it is cut too).
pub(crate) fn event(alert: &Alert, item: &AlertItem, limit: usize) -> String {
    let f = &item.finding;
    let name = match item.state {
        ItemState::Open => f.rule.title().to_string(),
        ItemState::Reopened => format!("Reopened: {}", f.rule.title()),
        ItemState::Resolved => format!("Resolved: {}", f.rule.title()),
        ItemState::Acknowledged => format!("Acknowledged: {}", f.rule.title()),
    };
    let mut line = format!(
        "CEF:0|{}|{}|{}|{}|{}|{}|",
        escape_header(DEVICE),
        escape_header(DEVICE),
        escape_header(VERSION),
        escape_header(&signature_id(f.rule, item.state)),
        escape_header(&name),
        cef_severity(f.severity),
    );
    let mut extensions: Vec<(&str, String)> = vec![
        ("rt", alert.created_at.timestamp_millis().to_string()),
        ("act", item.state.as_str().to_string()),
        ("cat", alert.kind.as_str().to_string()),
        ("externalId", alert.id.clone()),
        ("dhost", f.target.clone()),
    ];
    if let Some(ip) = f.ip {
        extensions.push(("dst", ip.to_string()));
    }
    if let Some(port) = f.port {
        extensions.push(("dpt", port.to_string()));
    }
    if let Some(protocol) = f.protocol {
        let proto = match protocol {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
        };
        extensions.push(("proto", proto.to_string()));
    }
    extensions.push(("cs1Label", "fingerprint".to_string()));
    extensions.push(("cs1", item.fingerprint.clone()));
    if let Some(asset) = &f.asset {
        extensions.push(("cs2Label", "asset".to_string()));
        extensions.push(("cs2", asset.clone()));
    }
    if let Some(owner) = &f.owner {
        extensions.push(("cs3Label", "owner".to_string()));
        extensions.push(("cs3", owner.clone()));
    }
    extensions.push(("cs4Label", "rule".to_string()));
    extensions.push(("cs4", f.rule.id().to_string()));
    extensions.push(("cs5Label", "suppressed".to_string()));
    extensions.push(("cs5", item.suppressed.to_string()));
    let mut first = true;
    for (key, value) in extensions {
        let value = escape_extension_limited(&value, FIELD_LIMIT);
        let _ = write!(line, "{}{key}={value}", if first { "" } else { " " });
        first = false;
    }
    line.push_str(" msg=");
    let room = limit.saturating_sub(line.len());
    line.push_str(&escape_extension_limited(&f.message, room));
    if line.len() > limit {
        // Only a limit smaller than the fixed part gets here.
        let mut cut = limit;
        while !line.is_char_boundary(cut) {
            cut -= 1;
        }
        line.truncate(cut);
    }
    line
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::testing::{alert, hostile_item, item};

    #[test]
    fn header_escaping() {
        for (input, want) in [
            ("plain", "plain"),
            ("a|b", "a\\|b"),
            ("back\\slash", "back\\\\slash"),
            ("\\|", "\\\\\\|"),
            ("eq=ok", "eq=ok"),
            ("line\nbreak", "line break"),
            ("nul\0", "nul\u{FFFD}"),
        ] {
            assert_eq!(escape_header(input), want, "{input:?}");
        }
    }

    #[test]
    fn extension_escaping() {
        for (input, want) in [
            ("plain", "plain"),
            ("a=b", "a\\=b"),
            ("back\\slash", "back\\\\slash"),
            ("pipe|stays", "pipe|stays"),
            ("two\nlines\r", "two\\nlines\\r"),
            ("tab\there", "tab here"),
            ("esc\x1b[0m", "esc\u{FFFD}[0m"),
            ("ünï=", "ünï\\="),
        ] {
            assert_eq!(escape_extension(input), want, "{input:?}");
        }
    }

    #[test]
    fn cut_values_never_split_an_escape_or_a_char() {
        assert_eq!(escape_extension_limited("abc", 3), "abc");
        assert_eq!(escape_extension_limited("abcd", 3), "…");
        assert_eq!(escape_extension_limited("abcdef", 5), "ab…");
        assert_eq!(escape_extension_limited("a===", 6), "a\\=…");
        assert_eq!(escape_extension_limited("éééé", 7), "éé…");
        assert_eq!(escape_extension_limited("xyz", 2), "");
        let original = "a\\b=c\nd\u{e9}e|f";
        for limit in 0..40 {
            let cut = escape_extension_limited(original, limit);
            assert!(cut.len() <= limit, "{limit}: {cut:?}");
            // What is left un-escapes to a prefix of the original.
            let kept = cut.strip_suffix('…').unwrap_or(&cut);
            let mut plain = String::new();
            let mut chars = kept.chars();
            while let Some(c) = chars.next() {
                if c == '\\' {
                    match chars.next() {
                        Some('n') => plain.push('\n'),
                        Some('r') => plain.push('\r'),
                        Some(c) => plain.push(c),
                        None => panic!("{limit}: a cut escape in {cut:?}"),
                    }
                } else {
                    plain.push(c);
                }
            }
            assert!(original.starts_with(&plain), "{limit}: {cut:?}");
        }
    }

    #[test]
    fn signature_ids_are_unique_per_rule_and_state() {
        let mut ids = Vec::new();
        for rule in Rule::ALL {
            for state in ItemState::ALL {
                let id = signature_id(rule, state);
                // It is also the syslog MSGID: at most 32 printable ASCII characters.
                assert!(
                    id.len() <= 32 && id.bytes().all(|b| b.is_ascii_graphic()),
                    "{id}"
                );
                ids.push(id);
            }
        }
        let n = ids.len();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), n);
        assert_eq!(
            signature_id(Rule::TlsInvalid, ItemState::Open),
            "tls.invalid"
        );
        assert_eq!(
            signature_id(Rule::UnapprovedPort, ItemState::Resolved),
            "port.unapproved.resolved"
        );
    }

    #[test]
    fn the_documented_table_is_the_code() {
        let source = include_str!("cef.rs");
        for rule in Rule::ALL {
            let row = format!("/// | {} | `{}` |", rule.id(), rule_signature(rule));
            assert!(source.contains(&row), "{row}");
        }
    }

    #[test]
    fn an_event_has_its_header_and_extensions() {
        let a = alert(vec![item(Rule::UnapprovedPort, Severity::High, "fp1")]);
        let line = event(&a, &a.items[0], 8192);
        assert!(
            line.starts_with(&format!(
                "CEF:0|portgate|portgate|{VERSION}|port.unapproved|Open port not approved in the manifest|8|rt="
            )),
            "{line}"
        );
        for part in [
            " act=open ",
            " dst=198.18.0.7 ",
            " dpt=8080 ",
            " proto=TCP ",
            " cs1Label=fingerprint cs1=fp1 ",
            " cs2Label=asset cs2=web ",
            " msg=8080/tcp is open and no approval covers it",
        ] {
            assert!(line.contains(part), "{part} in {line}");
        }
        assert!(!line.contains(" src="));
    }

    #[test]
    fn a_long_message_is_cut_to_the_limit() {
        let mut it = hostile_item();
        it.finding.message = "=\\\n".repeat(10_000);
        let a = alert(vec![it]);
        for limit in [200, 1000, 8000] {
            let line = event(&a, &a.items[0], limit);
            assert!(line.len() <= limit, "{limit}: {}", line.len());
        }
        let line = event(&a, &a.items[0], 8000);
        assert!(line.ends_with('…'), "{}", &line[line.len() - 20..]);
    }
}
