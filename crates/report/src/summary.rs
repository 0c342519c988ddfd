//! The human summary of a check: the decision first, then each failure with target, address,
//! port, service, version, rule and owner: readable in five seconds.

use crate::check::{CheckReport, plural, port_text, service_text};
use portgate_model::Outcome;
use std::fmt::Write;

/// Text for a terminal: control characters (a hostile banner's escape sequences) shown as
/// `\u{..}` instead of written raw.
fn clean(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() {
                format!("\\u{{{:x}}}", u32::from(c))
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// Renders the summary (ends with a newline).
pub fn check_summary(report: &CheckReport<'_>) -> String {
    let mut out = String::new();
    let verdict = match report.outcome {
        Outcome::Pass => "PASS",
        Outcome::Warn => "PASS (with warnings)",
        Outcome::Fail => "FAIL",
        Outcome::Inconclusive => "INCONCLUSIVE",
    };
    let env = report.env.map(|e| format!(", env {e}")).unwrap_or_default();
    let _ = writeln!(
        out,
        "portgate check: {verdict}: {} failed, {} inconclusive, {} warning{}, {} passed ({} mode, manifest {}{env}, {} host{} scanned in {:.1} s)",
        report.count(Outcome::Fail),
        report.count(Outcome::Inconclusive),
        report.count(Outcome::Warn),
        plural(report.count(Outcome::Warn)),
        report.count(Outcome::Pass),
        report.mode(),
        report.manifest,
        report.scan.hosts.len(),
        plural(report.scan.hosts.len()),
        report.scan.duration().as_secs_f64(),
    );
    if report.monitor && report.outcome == Outcome::Fail {
        let _ = writeln!(
            out,
            "monitor mode: the failures below do not fail the check"
        );
    }
    for (outcome, findings) in report.needing_attention() {
        let title = match outcome {
            Outcome::Fail => "FAILED",
            Outcome::Inconclusive => "INCONCLUSIVE",
            _ => "WARNINGS",
        };
        let _ = writeln!(out, "\n{title}");
        for f in findings {
            let ip = f.ip.map(|ip| format!(" ({ip})")).unwrap_or_default();
            let port = port_text(f);
            let service = service_text(f);
            let owner = f
                .owner
                .as_deref()
                .map(|o| format!("  owner {o}"))
                .unwrap_or_default();
            let asset = f
                .asset
                .as_deref()
                .map(|a| format!("  asset {a}"))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "  {:<8} {}{ip} {port}  {service}  [{}]{asset}{owner}",
                f.severity.as_str(),
                clean(&f.target),
                f.rule.id(),
            );
            let _ = writeln!(out, "           {}", clean(&f.message));
        }
    }
    out
}
