//! JUnit XML for CI test tabs: a test suite per asset, a test case per address and port;
//! a failure is a `<failure>`, an inconclusive scan an `<error>`, a warning goes to
//! `<system-out>`.

use crate::check::{CheckReport, service_text};
use portgate_model::{Finding, Outcome};
use std::collections::BTreeMap;
use std::fmt::Write;

/// Text safe inside XML 1.0: markup escaped, characters XML cannot carry dropped.
fn xml(text: &str) -> String {
    let allowed: String = text
        .chars()
        .filter(|c| matches!(*c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..))
        .collect();
    quick_xml::escape::escape(allowed.as_str()).into_owned()
}

/// Renders the check as JUnit XML (trailing newline).
pub fn junit(report: &CheckReport<'_>) -> String {
    // suite (asset) -> case (address and port) -> findings
    let mut suites: BTreeMap<String, BTreeMap<String, Vec<&Finding>>> = BTreeMap::new();
    for f in report.findings {
        let suite = match &f.asset {
            Some(asset) => format!("asset {asset}"),
            None => "targets without an asset".to_string(),
        };
        let case = match (f.ip, f.port, f.protocol) {
            (_, Some(_), Some(_)) => f.endpoint(),
            (Some(ip), _, _) => format!("{} ({ip})", f.target),
            _ => f.target.clone(),
        };
        suites
            .entry(suite)
            .or_default()
            .entry(case)
            .or_default()
            .push(f);
    }
    let count = |cases: &BTreeMap<String, Vec<&Finding>>, outcome: Outcome| {
        cases.values().filter(|fs| worst(fs) == outcome).count()
    };
    let mut body = String::new();
    let (mut tests, mut failures, mut errors) = (0, 0, 0);
    for (suite, cases) in &suites {
        let (t, fl, er) = (
            cases.len(),
            count(cases, Outcome::Fail),
            count(cases, Outcome::Inconclusive),
        );
        tests += t;
        failures += fl;
        errors += er;
        let _ = writeln!(
            body,
            "  <testsuite name=\"{}\" tests=\"{t}\" failures=\"{fl}\" errors=\"{er}\" skipped=\"0\">",
            xml(suite)
        );
        for (case, findings) in cases {
            let classname = format!("portgate.{}", suite.replace(' ', "_"));
            let _ = write!(
                body,
                "    <testcase classname=\"{}\" name=\"{}\"",
                xml(&classname),
                xml(case)
            );
            let mut inner = String::new();
            let mut out_lines = Vec::new();
            for f in findings {
                let detail = format!(
                    "{} [{}] severity {}; service {}; owner {}",
                    f.message,
                    f.rule.id(),
                    f.severity,
                    service_text(f),
                    f.owner.as_deref().unwrap_or("-")
                );
                match f.outcome {
                    Outcome::Fail => {
                        let _ = writeln!(
                            inner,
                            "      <failure message=\"{}\" type=\"{}\">{}</failure>",
                            xml(&f.message),
                            f.rule.id(),
                            xml(&detail)
                        );
                    }
                    Outcome::Inconclusive => {
                        let _ = writeln!(
                            inner,
                            "      <error message=\"{}\" type=\"{}\">{}</error>",
                            xml(&f.message),
                            f.rule.id(),
                            xml(&detail)
                        );
                    }
                    Outcome::Warn => out_lines.push(format!("warning: {detail}")),
                    Outcome::Pass => out_lines.push(format!("pass: {detail}")),
                }
            }
            if !out_lines.is_empty() {
                let _ = writeln!(
                    inner,
                    "      <system-out>{}</system-out>",
                    xml(&out_lines.join("\n"))
                );
            }
            if inner.is_empty() {
                body.push_str("/>\n");
            } else {
                let _ = write!(body, ">\n{inner}    </testcase>\n");
            }
        }
        body.push_str("  </testsuite>\n");
    }
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"portgate check\" tests=\"{tests}\" failures=\"{failures}\" errors=\"{errors}\" time=\"{:.3}\">\n{body}</testsuites>\n",
        report.scan.duration().as_secs_f64()
    )
}

/// The outcome of a test case: its worst finding.
fn worst(findings: &[&Finding]) -> Outcome {
    let mut worst = Outcome::Pass;
    for f in findings {
        worst = match (worst, f.outcome) {
            (_, Outcome::Fail) | (Outcome::Fail, _) => Outcome::Fail,
            (_, Outcome::Inconclusive) | (Outcome::Inconclusive, _) => Outcome::Inconclusive,
            (_, Outcome::Warn) | (Outcome::Warn, _) => Outcome::Warn,
            _ => Outcome::Pass,
        };
    }
    worst
}
