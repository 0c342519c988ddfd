//! The life of a finding between checks, as stored: its state, and what the store tracks
//! of it. What a check does to it is `portgate_policy::lifecycle`.

use serde::{Deserialize, Serialize};

/// Where a finding stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FindingState {
    /// Seen and not acknowledged.
    Open,
    /// Someone said they know (with a name and a comment).
    Acknowledged,
    /// No longer seen.
    Resolved,
}

impl FindingState {
    /// The name stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            FindingState::Open => "open",
            FindingState::Acknowledged => "acknowledged",
            FindingState::Resolved => "resolved",
        }
    }

    /// The state named `name`.
    pub fn parse(name: &str) -> Option<FindingState> {
        match name {
            "open" => Some(FindingState::Open),
            "acknowledged" => Some(FindingState::Acknowledged),
            "resolved" => Some(FindingState::Resolved),
            _ => None,
        }
    }
}

/// A finding as the store tracks it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tracked {
    /// Its fingerprint.
    pub fingerprint: String,
    /// Its target.
    pub target: String,
    /// Where it stands.
    pub state: FindingState,
    /// Checks in a row of its target that did not show it.
    pub missing_runs: u32,
}
