//! `portgate manifest lint`: what a reviewer of a manifest change should know about a
//! manifest that loads (a manifest that does not load is refused by [`Manifest::load`]
//! already, with its place — a target listed twice included): approvals past their date,
//! approvals of ports the asset never scans, approvals that repeat a global one, and
//! justifications still left as the placeholder `baseline init` and proposed fixes write.

use chrono::NaiveDate;
use portgate_model::{ManifestLocation, Protocol};
use serde::Serialize;

use crate::manifest::{ApprovedPort, Manifest};

/// How serious a lint finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LintLevel {
    /// Fails the lint (exit 1): the manifest says something that cannot hold.
    Error,
    /// Worth a look; does not fail.
    Warning,
}

impl LintLevel {
    /// `error` or `warning`.
    pub fn as_str(self) -> &'static str {
        match self {
            LintLevel::Error => "error",
            LintLevel::Warning => "warning",
        }
    }
}

/// One thing the lint found, at its place in the manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LintFinding {
    /// How serious.
    pub level: LintLevel,
    /// Where.
    pub location: ManifestLocation,
    /// What, in one sentence.
    pub message: String,
}

fn port_text(a: &ApprovedPort) -> String {
    format!("{}/{}", a.port, Protocol::from(a.protocol))
}

/// Whether a justification is still a placeholder: empty, or starting with `TODO` (as
/// `portgate baseline init` and the approvals a failing check proposes write it).
fn placeholder(justification: &str) -> bool {
    let text = justification.trim();
    text.is_empty()
        || text
            .get(..4)
            .is_some_and(|head| head.eq_ignore_ascii_case("todo"))
}

/// Everything the lint finds in `manifest` on `today`, in manifest order.
pub fn lint(manifest: &Manifest, today: NaiveDate) -> Vec<LintFinding> {
    let mut out = Vec::new();
    let expired = |a: &ApprovedPort| {
        a.approved_until
            .as_ref()
            .filter(|u| u.0 < today)
            .map(|u| u.0)
    };
    // Global approvals: expired, or for a port no asset (nor the default set) scans.
    for g in &manifest.approved {
        let a = &g.value;
        if let Some(until) = expired(a) {
            out.push(LintFinding {
                level: LintLevel::Error,
                location: manifest.location(g),
                message: format!("the global approval of {} expired on {until}", port_text(a)),
            });
        }
        if placeholder(&a.justification) {
            out.push(LintFinding {
                level: LintLevel::Warning,
                location: manifest.location(g),
                message: format!(
                    "the global approval of {} has no justification yet ({:?})",
                    port_text(a),
                    a.justification
                ),
            });
        }
        let protocol = Protocol::from(a.protocol);
        let scanned = std::iter::once(&manifest.defaults.ports)
            .chain(
                manifest
                    .assets
                    .iter()
                    .filter_map(|x| x.value.ports.as_ref()),
            )
            .any(|p| p.spec().ports(protocol).contains(&a.port));
        if !scanned {
            out.push(LintFinding {
                level: LintLevel::Warning,
                location: manifest.location(g),
                message: format!(
                    "the global approval of {} is for a port no asset scans (the default set is {})",
                    port_text(a),
                    manifest.defaults.ports.as_str()
                ),
            });
        }
    }
    for asset in &manifest.assets {
        let x = &asset.value;
        let ports = x.ports.as_ref().unwrap_or(&manifest.defaults.ports);
        for s in &x.approved {
            let a = &s.value;
            if let Some(until) = expired(a) {
                out.push(LintFinding {
                    level: LintLevel::Error,
                    location: manifest.location(s),
                    message: format!(
                        "the approval of {} on asset {} expired on {until}",
                        port_text(a),
                        x.name
                    ),
                });
            }
            if placeholder(&a.justification) {
                out.push(LintFinding {
                    level: LintLevel::Warning,
                    location: manifest.location(s),
                    message: format!(
                        "the approval of {} on asset {} has no justification yet ({:?})",
                        port_text(a),
                        x.name,
                        a.justification
                    ),
                });
            }
            if !ports
                .spec()
                .ports(Protocol::from(a.protocol))
                .contains(&a.port)
            {
                out.push(LintFinding {
                    level: LintLevel::Warning,
                    location: manifest.location(s),
                    message: format!(
                        "asset {} approves {}, which its port set {} does not scan",
                        x.name,
                        port_text(a),
                        ports.as_str()
                    ),
                });
            }
            if manifest
                .approved
                .iter()
                .any(|g| g.value.port == a.port && g.value.protocol == a.protocol)
            {
                out.push(LintFinding {
                    level: LintLevel::Warning,
                    location: manifest.location(s),
                    message: format!(
                        "asset {} approves {}, which the global list approves already",
                        x.name,
                        port_text(a)
                    ),
                });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::placeholder;

    #[test]
    fn placeholders_are_told_from_reasons() {
        for text in [
            "TODO",
            "todo",
            "  TODO: why this port must be reachable",
            "",
        ] {
            assert!(placeholder(text), "{text:?}");
        }
        for text in ["public site", "metrics, see TODO list", "Tod", "bastion"] {
            assert!(!placeholder(text), "{text:?}");
        }
    }
}
