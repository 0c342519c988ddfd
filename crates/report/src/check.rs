//! What every renderer of a check takes: the findings, the decision, and the scan behind them.

use portgate_model::{Finding, Outcome, ScanReport};

/// The result of `portgate check`, as the renderers see it.
#[derive(Debug, Clone, Copy)]
pub struct CheckReport<'a> {
    /// Every finding, failures first.
    pub findings: &'a [Finding],
    /// The decision.
    pub outcome: Outcome,
    /// Monitor mode: reported, never failing.
    pub monitor: bool,
    /// The manifest file as given.
    pub manifest: &'a str,
    /// The environment checked, if one was named.
    pub env: Option<&'a str>,
    /// The scan the findings come from.
    pub scan: &'a ScanReport,
}

impl CheckReport<'_> {
    /// Findings with an outcome.
    /// The findings that need attention, grouped in the order they are shown: failed,
    /// inconclusive, warnings; groups without findings are left out.
    pub fn needing_attention(&self) -> Vec<(Outcome, Vec<&Finding>)> {
        [Outcome::Fail, Outcome::Inconclusive, Outcome::Warn]
            .into_iter()
            .map(|outcome| {
                let found: Vec<&Finding> = self
                    .findings
                    .iter()
                    .filter(|f| f.outcome == outcome)
                    .collect();
                (outcome, found)
            })
            .filter(|(_, found)| !found.is_empty())
            .collect()
    }

    /// How many findings have `outcome`.
    pub fn count(&self, outcome: Outcome) -> usize {
        self.findings
            .iter()
            .filter(|f| f.outcome == outcome)
            .count()
    }

    /// `enforce` or `monitor`.
    pub fn mode(&self) -> &'static str {
        if self.monitor { "monitor" } else { "enforce" }
    }
}

/// `redis Redis 7.0.15` from the service, product and version a finding carries.
pub(crate) fn service_text(f: &Finding) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in [&f.service, &f.product, &f.version].into_iter().flatten() {
        parts.push(part);
    }
    parts.join(" ")
}

/// Markdown links to the first `limit` records a finding rests on (ids no advisory id
/// looks like are left out).
pub(crate) fn reference_links(f: &Finding, limit: usize) -> Vec<String> {
    f.references
        .iter()
        .take(limit)
        .filter_map(|id| {
            portgate_model::vulnerability::record_url(id).map(|url| format!("[{id}]({url})"))
        })
        .collect()
}

/// The first `max` characters of a proof's answer as escaped text (`\r\n` shown as such),
/// with `...` when cut.
pub(crate) fn proof_answer(proof: &portgate_model::Proof, max: usize) -> String {
    let text = proof.answer.escaped();
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text,
    }
}

/// `6379/tcp`, or empty.
pub(crate) fn port_text(f: &Finding) -> String {
    match (f.port, f.protocol) {
        (Some(port), Some(protocol)) => format!("{port}/{protocol}"),
        _ => String::new(),
    }
}

/// `s` unless there is exactly one.
pub(crate) fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}
