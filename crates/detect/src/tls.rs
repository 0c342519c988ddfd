//! TLS inspection.
