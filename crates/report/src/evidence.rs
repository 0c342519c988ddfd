//! The JSON evidence of a check (`--json FILE`): the decision, every finding, and the full
//! scan report (`portgate.scan.v1`) they rest on.

use crate::check::CheckReport;
use crate::{JsonReport, RenderOptions};
use serde_json::json;

/// Names the evidence document's format and version.
pub const CHECK_SCHEMA_ID: &str = "portgate.check.v1";

/// Renders the evidence as pretty JSON (trailing newline).
pub fn check_json(report: &CheckReport<'_>) -> String {
    let scan = JsonReport::new(
        report.scan,
        RenderOptions {
            only_open: false,
            all_ports: true,
        },
    );
    let doc = json!({
        "schema": CHECK_SCHEMA_ID,
        "portgate_version": env!("CARGO_PKG_VERSION"),
        "outcome": report.outcome,
        "mode": report.mode(),
        "manifest": report.manifest,
        "environment": report.env,
        "counts": {
            "fail": report.count(portgate_model::Outcome::Fail),
            "inconclusive": report.count(portgate_model::Outcome::Inconclusive),
            "warn": report.count(portgate_model::Outcome::Warn),
            "pass": report.count(portgate_model::Outcome::Pass),
        },
        "findings": report.findings,
        "scan": scan,
    });
    let mut text = serde_json::to_string_pretty(&doc)
        .unwrap_or_else(|e| format!("{{\"error\": \"could not serialise the evidence: {e}\"}}"));
    text.push('\n');
    text
}
