//! A Markdown summary of a check, for a pipeline's step summary or a merge-request comment.

use crate::check::{CheckReport, plural, port_text, service_text};
use portgate_model::Outcome;
use std::fmt::Write;

/// Text safe inside a Markdown table cell.
fn cell(text: &str) -> String {
    text.chars()
        .filter(|c| !c.is_control())
        .collect::<String>()
        .replace('\\', "\\\\")
        .replace('|', "\\|")
        .replace('<', "&lt;")
        .replace('`', "'")
}

/// Renders the check as Markdown (trailing newline).
pub fn markdown(report: &CheckReport<'_>) -> String {
    let mut out = String::new();
    let verdict = match report.outcome {
        Outcome::Pass => "✅ pass",
        Outcome::Warn => "✅ pass with warnings",
        Outcome::Fail => "❌ fail",
        Outcome::Inconclusive => "⚠️ inconclusive",
    };
    let _ = writeln!(out, "## portgate check: {verdict}\n");
    let env = report
        .env
        .map(|e| format!(", environment `{}`", cell(e)))
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "**{}** failed, **{}** inconclusive, **{}** warning{}, **{}** passed. Manifest `{}`{env}, {} mode, {} host{} scanned in {:.1} s.\n",
        report.count(Outcome::Fail),
        report.count(Outcome::Inconclusive),
        report.count(Outcome::Warn),
        plural(report.count(Outcome::Warn)),
        report.count(Outcome::Pass),
        cell(report.manifest),
        report.mode(),
        report.scan.hosts.len(),
        plural(report.scan.hosts.len()),
        report.scan.duration().as_secs_f64()
    );
    if report.monitor && report.outcome == Outcome::Fail {
        let _ = writeln!(
            out,
            "_Monitor mode: the failures below do not fail the pipeline._\n"
        );
    }
    for (outcome, findings) in report.needing_attention() {
        let title = match outcome {
            Outcome::Fail => "Failed",
            Outcome::Inconclusive => "Inconclusive",
            _ => "Warnings",
        };
        let _ = writeln!(out, "### {title}\n");
        let _ = writeln!(
            out,
            "| severity | target | address | port | service | rule | owner | why |"
        );
        let _ = writeln!(out, "|---|---|---|---|---|---|---|---|");
        for f in findings {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | `{}` | {} | {} |",
                f.severity,
                cell(&f.target),
                f.ip.map(|ip| ip.to_string()).unwrap_or_default(),
                port_text(f),
                cell(&service_text(f)),
                f.rule.id(),
                cell(f.owner.as_deref().unwrap_or("")),
                cell(&f.message) + &reference_links(f) + &proof(f)
            );
        }
        out.push('\n');
    }
    approvals(report, &mut out);
    out
}

/// The approvals the failing ports would need, once each: the command and the lines it
/// writes (a reviewer of the manifest's pull request then sees them).
fn approvals(report: &CheckReport<'_>, out: &mut String) {
    let mut seen = std::collections::BTreeSet::new();
    let fixes: Vec<&portgate_model::Fix> = report
        .needing_attention()
        .into_iter()
        .flat_map(|(_, findings)| findings)
        .filter_map(|f| f.fix.as_ref())
        .filter(|fix| seen.insert(fix.command.clone()))
        .collect();
    if fixes.is_empty() {
        return;
    }
    let _ = writeln!(out, "### To approve\n");
    let _ = writeln!(
        out,
        "If a port above should be reachable, approve it in a pull request, with its reason in place of the TODO:\n"
    );
    for fix in fixes {
        let place = fix
            .edit
            .as_ref()
            .map(|e| format!(" — `{}` line {}", cell(&e.file), e.start_line))
            .unwrap_or_default();
        let _ = writeln!(out, "**{}**{place}\n", cell(&fix.description));
        let _ = writeln!(out, "{}", fenced(&fix.command, "sh"));
        let _ = writeln!(out, "{}", fenced(&fix.yaml, "yaml"));
    }
}

/// `text` in a code block whose fence is longer than any run of backticks in it.
fn fenced(text: &str, language: &str) -> String {
    let mut longest = 0;
    let mut run = 0;
    for c in text.chars() {
        run = if c == '`' { run + 1 } else { 0 };
        longest = longest.max(run);
    }
    let fence = "`".repeat(longest.max(2) + 1);
    let body: String = text
        .chars()
        .filter(|c| *c == '\n' || !c.is_control())
        .collect();
    format!(
        "{fence}{language}\n{}\n{fence}\n",
        body.trim_end_matches('\n')
    )
}

/// The request that proved the finding and the start of its answer, for the "why" cell.
fn proof(f: &portgate_model::Finding) -> String {
    match &f.proof {
        None => String::new(),
        Some(p) => {
            let credentials = p
                .credentials
                .as_deref()
                .map(|c| format!(" with {}", cell(c)))
                .unwrap_or_default();
            format!(
                "<br>proof: `{}`{credentials} → {}: `{}`",
                cell(&p.request),
                p.status,
                cell(&crate::check::proof_answer(p, 160))
            )
        }
    }
}

/// Links to the records a finding rests on (at most ten), for the "why" cell.
fn reference_links(f: &portgate_model::Finding) -> String {
    let links = crate::check::reference_links(f, 10);
    if links.is_empty() {
        String::new()
    } else {
        format!("<br>{}", links.join(" "))
    }
}
