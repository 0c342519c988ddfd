//! How the model's types appear in the audit report's JSON Schema: the model crate carries
//! no schema of its own, so these stand in for them (same serialised form).

// Only their schemas are used; the types are never built.
#![allow(dead_code)]

use schemars::JsonSchema;

/// `tcp` or `udp`.
#[derive(JsonSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum ProtocolName {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

/// How bad a finding is.
#[derive(JsonSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum SeverityName {
    /// For the record.
    Info,
    /// Low risk.
    Low,
    /// Medium risk.
    Medium,
    /// High risk.
    High,
    /// Critical risk.
    Critical,
}

/// What a finding means for the gate.
#[derive(JsonSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum OutcomeName {
    /// As expected.
    Pass,
    /// Worth a look; does not fail the gate.
    Warn,
    /// Fails the gate (with `--expect`).
    Fail,
    /// Could not be verified: fails the gate like a failure.
    Inconclusive,
}

/// A place in the expected-listeners file.
#[derive(JsonSchema)]
pub(crate) struct Location {
    /// The file as given.
    file: String,
    /// 1-based line.
    line: u32,
    /// 1-based column.
    column: u32,
}
