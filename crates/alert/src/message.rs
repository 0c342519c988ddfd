//! The alert message: an [`Alert`] of one [`AlertKind`] carrying [`AlertItem`]s, each a
//! [`Finding`] with its fingerprint and [`ItemState`]; and its JSON document.

use std::fmt;

use chrono::{DateTime, Utc};
use portgate_model::{Finding, Severity};
use serde::{Deserialize, Serialize, Serializer};

/// The `type` of the JSON document of an alert. A receiver checks it: a document of a
/// later, incompatible shape will carry another type.
pub const DOCUMENT_TYPE: &str = "portgate.alert.v1";

/// Why an alert is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertKind {
    /// Findings newly open (or open again).
    Opened,
    /// Findings no longer seen.
    Resolved,
    /// Findings open for too long without acknowledgement, sent to the escalation channel.
    Escalated,
    /// A periodic summary of open findings.
    Digest,
}

impl AlertKind {
    /// `opened`, `resolved`, `escalated` or `digest`.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::Opened => "opened",
            AlertKind::Resolved => "resolved",
            AlertKind::Escalated => "escalated",
            AlertKind::Digest => "digest",
        }
    }
}

impl fmt::Display for AlertKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a finding stands in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ItemState {
    /// Seen for the first time.
    Open,
    /// Seen again after it had been resolved.
    Reopened,
    /// No longer seen.
    Resolved,
    /// Still seen, and someone said they are on it.
    Acknowledged,
}

impl ItemState {
    /// Every state, in life order.
    pub const ALL: [ItemState; 4] = [
        ItemState::Open,
        ItemState::Reopened,
        ItemState::Resolved,
        ItemState::Acknowledged,
    ];

    /// `open`, `reopened`, `resolved` or `acknowledged`.
    pub fn as_str(self) -> &'static str {
        match self {
            ItemState::Open => "open",
            ItemState::Reopened => "reopened",
            ItemState::Resolved => "resolved",
            ItemState::Acknowledged => "acknowledged",
        }
    }
}

impl fmt::Display for ItemState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One finding in an alert.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertItem {
    /// What identifies the finding across scans (dedup key of the finding).
    pub fingerprint: String,
    /// Where the finding stands.
    pub state: ItemState,
    /// The finding was raised inside a maintenance window.
    pub suppressed: bool,
    /// The finding, as the policy concluded it.
    pub finding: Finding,
    /// Where a person acknowledges the finding, when the sender offers it.
    pub ack_url: Option<String>,
}

/// One alert message, delivered as one unit to each channel.
///
/// Its JSON document (the body of a webhook, see [`Alert::to_json`]) is:
///
/// ```json
/// {
///   "type": "portgate.alert.v1",
///   "id": "…",                       // stable per message; the webhook-id
///   "kind": "opened",                // opened | resolved | escalated | digest
///   "title": "…",
///   "created_at": "2025-01-31T08:00:00Z",   // RFC 3339, UTC
///   "severity": "high",              // highest item severity; info when there is none
///   "items": [
///     {
///       "fingerprint": "…",
///       "state": "open",             // open | reopened | resolved | acknowledged
///       "suppressed": false,         // raised inside a maintenance window
///       "finding": { "rule": "unapproved-port", "outcome": "fail", "severity": "high",
///                    "target": "…", "ip": "…", "protocol": "tcp", "port": 8080,
///                    "state": "open", "service": …, "product": …, "version": …,
///                    "asset": …, "owner": …, "escalation": …, "message": "…",
///                    "location": {"file": "…", "line": 1, "column": 1} },
///       "ack_url": null
///     }
///   ]
/// }
/// ```
///
/// Every key is always present (absent values are `null`). Keys may be added to a
/// `portgate.alert.v1` document, never removed or changed in meaning: receivers ignore
/// keys they do not know. Reading a document back checks `type` and ignores `severity`
/// (it is recomputed from the items).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(try_from = "AlertDocument")]
pub struct Alert {
    /// Stable per message: the `webhook-id`, and the key receivers deduplicate on.
    pub id: String,
    /// Why the alert is sent.
    pub kind: AlertKind,
    /// One line for a person (a subject, a header).
    pub title: String,
    /// When the alert was made.
    pub created_at: DateTime<Utc>,
    /// The findings.
    pub items: Vec<AlertItem>,
}

impl Alert {
    /// The highest severity among the items; [`Severity::Info`] when there is none.
    pub fn severity(&self) -> Severity {
        self.items
            .iter()
            .map(|item| item.finding.severity)
            .max()
            .unwrap_or(Severity::Info)
    }

    /// The plain-text rendering ([`crate::render::text`]).
    pub fn to_text(&self) -> String {
        crate::render::text(self)
    }

    /// The HTML rendering ([`crate::render::html`]), every piece of finding text escaped.
    pub fn to_html(&self) -> String {
        crate::render::html(self)
    }

    /// The JSON document (see [`Alert`]), compact, as sent in a webhook body.
    pub fn to_json(&self) -> Result<Vec<u8>, serde_json::Error> {
        serde_json::to_vec(self)
    }
}

/// The document as written: [`Alert`] plus its type and severity.
#[derive(Serialize)]
struct AlertDocumentRef<'a> {
    #[serde(rename = "type")]
    document_type: &'static str,
    id: &'a str,
    kind: AlertKind,
    title: &'a str,
    created_at: &'a DateTime<Utc>,
    severity: Severity,
    items: &'a [AlertItem],
}

impl Serialize for Alert {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        AlertDocumentRef {
            document_type: DOCUMENT_TYPE,
            id: &self.id,
            kind: self.kind,
            title: &self.title,
            created_at: &self.created_at,
            severity: self.severity(),
            items: &self.items,
        }
        .serialize(serializer)
    }
}

/// The document as read.
#[derive(Deserialize)]
struct AlertDocument {
    #[serde(rename = "type")]
    document_type: String,
    id: String,
    kind: AlertKind,
    title: String,
    created_at: DateTime<Utc>,
    items: Vec<AlertItem>,
}

impl TryFrom<AlertDocument> for Alert {
    type Error = String;

    fn try_from(document: AlertDocument) -> Result<Alert, String> {
        if document.document_type != DOCUMENT_TYPE {
            return Err(format!(
                "document type {:?} is not {DOCUMENT_TYPE:?}",
                document.document_type
            ));
        }
        Ok(Alert {
            id: document.id,
            kind: document.kind,
            title: document.title,
            created_at: document.created_at,
            items: document.items,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::testing::{alert, item};
    use portgate_model::Rule;

    #[test]
    fn severity_is_the_highest_of_the_items() {
        let mut a = alert(vec![
            item(Rule::TlsExpiring, Severity::Low, "a"),
            item(Rule::UnapprovedPort, Severity::Critical, "b"),
            item(Rule::ServiceMismatch, Severity::Medium, "c"),
        ]);
        assert_eq!(a.severity(), Severity::Critical);
        a.items.clear();
        assert_eq!(a.severity(), Severity::Info);
    }

    #[test]
    fn the_document_has_its_type_and_severity_and_reads_back() {
        let a = alert(vec![item(Rule::UnapprovedPort, Severity::High, "fp-1")]);
        let json: serde_json::Value = serde_json::from_slice(&a.to_json().unwrap()).unwrap();
        assert_eq!(json["type"], DOCUMENT_TYPE);
        assert_eq!(json["id"], a.id);
        assert_eq!(json["kind"], "opened");
        assert_eq!(json["severity"], "high");
        assert_eq!(json["items"][0]["fingerprint"], "fp-1");
        assert_eq!(json["items"][0]["state"], "open");
        assert_eq!(json["items"][0]["suppressed"], false);
        assert_eq!(json["items"][0]["ack_url"], serde_json::Value::Null);
        assert_eq!(json["items"][0]["finding"]["rule"], "unapproved-port");
        let back: Alert = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(back, a);

        let mut other = json;
        other["type"] = "portgate.alert.v2".into();
        let err = serde_json::from_value::<Alert>(other).unwrap_err();
        assert!(err.to_string().contains("portgate.alert.v2"), "{err}");
    }
}
