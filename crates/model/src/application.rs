//! The application behind an HTTP port (Grafana, Jupyter, a Docker API …) and what it
//! exposes to anyone who asks: each exposure with the request that proved it and the first
//! bytes of the answer.

use serde::{Deserialize, Serialize};

use crate::Evidence;

/// What kind of exposure a check proves; each is a policy rule of the same name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "kebab-case")]
pub enum ExposureKind {
    /// A management interface (or its first-start setup page) is reachable.
    ExposedManagementUi,
    /// An API answers without credentials with data it should guard.
    UnauthenticatedApi,
    /// A debugging or diagnostics endpoint (environment, heap dump, profiler) answers.
    DebugEndpointExposed,
    /// The vendor's documented default login is accepted.
    DefaultCredentials,
}

impl ExposureKind {
    /// Every kind.
    pub const ALL: [ExposureKind; 4] = [
        ExposureKind::ExposedManagementUi,
        ExposureKind::UnauthenticatedApi,
        ExposureKind::DebugEndpointExposed,
        ExposureKind::DefaultCredentials,
    ];

    /// The name in data files, reports and the manifest (`unauthenticated-api` …).
    pub fn as_str(self) -> &'static str {
        match self {
            ExposureKind::ExposedManagementUi => "exposed-management-ui",
            ExposureKind::UnauthenticatedApi => "unauthenticated-api",
            ExposureKind::DebugEndpointExposed => "debug-endpoint-exposed",
            ExposureKind::DefaultCredentials => "default-credentials",
        }
    }

    /// The kind named `name`.
    pub fn parse(name: &str) -> Option<ExposureKind> {
        Self::ALL.into_iter().find(|k| k.as_str() == name)
    }
}

impl std::fmt::Display for ExposureKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The request that proved a claim and the start of its answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Proof {
    /// `GET http://198.18.0.2:8888/api/kernels`.
    pub request: String,
    /// The credentials sent, when any (`guest:guest (HTTP Basic)`); absent for a request
    /// without any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials: Option<String>,
    /// The answer's status code.
    pub status: u16,
    /// The first bytes of the answer's body, escaped.
    pub answer: Evidence,
}

/// One proven exposure of an application.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Exposure {
    /// The check's identifier in the application database (`jupyter-kernels`).
    pub check: String,
    /// The kind of exposure (its policy rule).
    pub kind: ExposureKind,
    /// What the answer proves, in one sentence.
    pub title: String,
    /// The request and the start of its answer.
    pub proof: Proof,
}

/// A default login that was tried (only with `--try-default-credentials`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct CredentialAttempt {
    /// `GET http://198.18.0.2:15672/api/whoami`.
    pub request: String,
    /// The user name tried.
    pub user: String,
    /// The answer's status code; absent when no answer came.
    pub status: Option<u16>,
    /// Whether the login was accepted.
    pub accepted: bool,
}

/// An application recognised behind an HTTP port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Application {
    /// Its identifier in the application database (`grafana`); approvals name it.
    pub id: String,
    /// Its name (`Grafana`).
    pub name: String,
    /// What it is: `management-ui`, `api`, `monitoring`, `database`.
    pub category: String,
    /// Its version, when it tells it.
    pub version: Option<String>,
    /// How it was recognised, one line per matching answer.
    pub evidence: Vec<String>,
    /// What it exposes to anyone, each with its proof.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exposures: Vec<Exposure>,
    /// Default logins tried, accepted or not (only with `--try-default-credentials`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub credential_attempts: Vec<CredentialAttempt>,
}

/// What the application checks of one port found, and what they cost.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ApplicationReport {
    /// The applications recognised (usually one).
    pub found: Vec<Application>,
    /// HTTP requests sent for fingerprints and checks.
    pub requests: u32,
    /// Time they took, in milliseconds.
    pub elapsed_ms: u64,
    /// What stopped or limited the checks (a timeout, the request budget, a catch-all).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}
