//! What is behind a port: service and version detection, TLS (direct and STARTTLS) and
//! HTTP inspection; [`inspect::inspect_port`] runs them all on one port.
//!
//! The probe database is data (`data/probes.toml`, extendable with a file of the same
//! format); the engine connects, waits for a banner, then sends probes in order and stops
//! at the first hard match. Every read is bounded in bytes and in time, because a scanned
//! service may be hostile. This crate never prints and never panics on anything a
//! service can send.

pub mod http;
pub mod inspect;
pub mod probes;
pub mod starttls;
pub mod tls;
