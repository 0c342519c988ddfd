//! portgate's policy: the manifest (baseline) a team keeps in its repository, the risk
//! table, and the evaluation of a scan report against them into [`Finding`]s.
//!
//! Pure functions of their inputs: this crate never scans, never prints and never exits;
//! it reads a file only in [`Manifest::load`]. Every error names the manifest file, line,
//! column and key.

pub mod approve;
pub mod drift;
mod evaluate;
pub mod lifecycle;
mod lint;
mod manifest;
pub mod risk;
pub mod yaml;

pub use evaluate::{Evaluation, evaluate, manifest_top, merge_reports};
pub use lint::{LintFinding, LintLevel, lint};
pub use manifest::{
    ApprovalDate, ApprovedPort, Asset, Cidr, Criticality, CvssThreshold, Defaults, FailOn,
    MANIFEST_SCHEMA_ID, MAX_MANIFEST_BYTES, Manifest, ManifestError, MinConfidence, Mode,
    OnMissing, Ports, ProtocolName, ScanGroup, Target, TlsPolicy, Unlisted, manifest_schema,
    with_approved,
};
pub use portgate_model::{Finding, Outcome, Rule, Severity};
pub use serde_saphyr::Spanned;
