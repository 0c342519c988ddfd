//! What is behind a port: service and version detection, TLS (direct and STARTTLS) and
//! HTTP inspection; [`inspect_port`] runs them all on one port.
//!
//! The probe database is data (`data/probes.toml`, extendable with a file of the same
//! format); the engine connects, waits for a banner, then sends probes in order and stops
//! at the first hard match. Every read is bounded in bytes and in time, because a scanned
//! service may be hostile. This crate never prints and never panics on anything a
//! service can send.

mod apps;
mod http;
mod inspect;
mod probes;
mod starttls;
mod tls;

pub use apps::{
    App, AppDb, AppLoadError, AppOptions, Target as AppTarget, identify as identify_application,
};
pub use http::{
    CORS_PROBE_ORIGIN, HttpError, HttpOptions, USER_AGENT, inspect_http, inspect_http_at,
};
pub use inspect::{InspectOptions, inspect_port};
pub use probes::{
    DetectOptions, EscapeError, LoadError, Match, Probe, ProbeDb, Template, detect, parse_escapes,
};
pub use starttls::{StartTlsError, StartTlsOptions, Upgrade, upgrade};
pub use tls::{TlsError, TlsOptions, check_ca_file, inspect_tls, inspect_tls_at};
