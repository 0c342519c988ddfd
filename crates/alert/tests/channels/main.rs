//! Each channel against a real receiver on 127.0.0.1: an HTTP server that verifies the
//! webhook signature, a Slack-shaped server that rate-limits, syslog over UDP, TCP and
//! TLS, and an SMTP server with STARTTLS (aiosmtpd, from PyPI).

#![allow(clippy::unwrap_used)]

mod common;
mod config;
mod email;
mod slack;
mod syslog;
mod webhook;
