//! SARIF 2.1.0 for code-scanning dashboards: one result per finding that is not a pass,
//! located at the manifest line of its asset (or approval), with a fingerprint that stays the
//! same from run to run for the same target, protocol, port and rule.

use crate::check::{CheckReport, port_text, service_text};
use portgate_model::{Outcome, Rule, Severity};
use serde_json::{Value, json};

/// The SARIF version written.
pub const SARIF_VERSION: &str = "2.1.0";

/// The key of [`sarif`]'s partial fingerprints.
pub const FINGERPRINT_KEY: &str = "portgateEndpoint/v1";

fn level(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Fail => "error",
        Outcome::Warn | Outcome::Inconclusive => "warning",
        Outcome::Pass => "none",
    }
}

/// The score code-scanning dashboards sort by (`security-severity`, 0.0-10.0).
fn security_severity(severity: Severity) -> &'static str {
    match severity {
        Severity::Critical => "9.5",
        Severity::High => "8.0",
        Severity::Medium => "5.5",
        Severity::Low => "3.0",
        Severity::Info => "0.0",
    }
}

/// Renders the check as a SARIF 2.1.0 log (pretty JSON, trailing newline).
pub fn sarif(report: &CheckReport<'_>) -> String {
    let rules: Vec<Value> = Rule::ALL
        .iter()
        .map(|rule| {
            json!({
                "id": rule.id(),
                "name": rule.title().replace(' ', ""),
                "shortDescription": { "text": rule.title() },
                "fullDescription": { "text": rule.title() },
                "help": { "text": rule.help(), "markdown": rule.help() },
                "defaultConfiguration": { "level": if *rule == Rule::Approved { "none" } else { "error" } },
                "properties": { "tags": ["security", "network-exposure"] },
            })
        })
        .collect();
    let results: Vec<Value> = report
        .findings
        .iter()
        .filter(|f| f.outcome != Outcome::Pass)
        .map(|f| {
            let rule_index = Rule::ALL.iter().position(|r| *r == f.rule).unwrap_or(0);
            let (file, line, column) = match &f.location {
                Some(l) => (l.file.clone(), l.line.max(1), l.column.max(1)),
                None => (report.manifest.to_string(), 1, 1),
            };
            let mut fingerprint = format!(
                "{}|{}|{}|{}",
                f.target,
                f.protocol.map(|p| p.as_str()).unwrap_or("-"),
                f.port.map(|p| p.to_string()).unwrap_or_else(|| "-".into()),
                f.rule.id()
            );
            // Several proofs of one rule on one port are several results.
            if let Some(p) = &f.proof {
                fingerprint.push_str(&format!("|{}", p.request));
            }
            let mut message = format!("{}: {}", f.endpoint(), f.message);
            if let Some(owner) = &f.owner {
                message.push_str(&format!(" (owner: {owner})"));
            }
            let references: Vec<Value> = f
                .references
                .iter()
                .map(|id| json!({ "id": id, "url": portgate_model::vulnerability::record_url(id) }))
                .collect();
            let mut markdown = if references.is_empty() {
                None
            } else {
                let links = crate::check::reference_links(f, usize::MAX);
                Some(format!("{message}\n\n{}", links.join(", ")))
            };
            let proof = f.proof.as_ref().map(|p| {
                let answer = crate::check::proof_answer(p, 400).replace('`', "\\x60");
                let credentials = p
                    .credentials
                    .as_deref()
                    .map(|c| format!(" (credentials {c})"))
                    .unwrap_or_default();
                markdown = Some(format!(
                    "{message}\n\nProof: `{}`{credentials} answered {}:\n\n```\n{answer}\n```",
                    p.request.replace('`', "\\x60"),
                    p.status
                ));
                json!({
                    "request": p.request,
                    "credentials": p.credentials,
                    "status": p.status,
                    "answer": p.answer.escaped(),
                })
            });
            if let Some(fix) = &f.fix {
                let text = markdown.take().unwrap_or_else(|| message.clone());
                markdown = Some(format!(
                    "{text}\n\nTo approve it (with its reason in place of the TODO):\n\n```sh\n{}\n```",
                    fix.command.replace('`', "\\x60")
                ));
            }
            let fixes: Vec<Value> = f
                .fix
                .iter()
                .filter_map(|fix| {
                    let edit = fix.edit.as_ref()?;
                    Some(json!({
                        "description": { "text": format!("{}: {}", fix.description, fix.command) },
                        "artifactChanges": [{
                            "artifactLocation": { "uri": edit.file },
                            "replacements": [{
                                "deletedRegion": {
                                    "startLine": edit.start_line,
                                    "startColumn": edit.start_column,
                                    "endLine": edit.end_line,
                                    "endColumn": edit.end_column,
                                },
                                "insertedContent": { "text": edit.inserted },
                            }],
                        }],
                    }))
                })
                .collect();
            let mut message_json = json!({ "text": message });
            if let Some(markdown) = markdown {
                message_json["markdown"] = json!(markdown);
            }
            let mut result = json!({
                "ruleId": f.rule.id(),
                "ruleIndex": rule_index,
                "level": level(f.outcome),
                "message": message_json,
                "locations": [{
                    "physicalLocation": {
                        "artifactLocation": { "uri": file },
                        "region": { "startLine": line, "startColumn": column },
                    },
                    "logicalLocations": [{
                        "name": f.endpoint(),
                        "fullyQualifiedName": match &f.asset {
                            Some(asset) => format!("{asset}/{}", f.endpoint()),
                            None => f.endpoint(),
                        },
                        "kind": "resource",
                    }],
                }],
                "partialFingerprints": { FINGERPRINT_KEY: fingerprint },
                "properties": {
                    "outcome": f.outcome.as_str(),
                    "severity": f.severity.as_str(),
                    "security-severity": security_severity(f.severity),
                    "target": f.target,
                    "ip": f.ip.map(|ip| ip.to_string()),
                    "port": port_text(f),
                    "service": service_text(f),
                    "asset": f.asset,
                    "owner": f.owner,
                    "references": references,
                    "proof": proof,
                },
            });
            if !fixes.is_empty() {
                result["fixes"] = json!(fixes);
            }
            result
        })
        .collect();
    let log = json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": SARIF_VERSION,
        "runs": [{
            "tool": {
                "driver": {
                    "name": "portgate",
                    "version": env!("CARGO_PKG_VERSION"),
                    "semanticVersion": env!("CARGO_PKG_VERSION"),
                    "rules": rules,
                }
            },
            "invocations": [{
                "executionSuccessful": report.outcome != Outcome::Inconclusive,
                "startTimeUtc": report.scan.started_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                "endTimeUtc": report.scan.finished_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            }],
            "results": results,
            "properties": { "outcome": report.outcome.as_str(), "mode": report.mode() },
        }]
    });
    let mut text = serde_json::to_string_pretty(&log).unwrap_or_default();
    text.push('\n');
    text
}
