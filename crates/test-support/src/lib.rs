//! What portgate's test crates share: honest skips, a throw-away history database, test
//! certificates and daemons started for one test.
//!
//! A test that cannot run here (not root, a tool or package missing) calls [`skip`] and
//! returns: it prints `SKIP <test>: <reason>`, and under strict mode ([`STRICT_ENV`] set,
//! or `CI` set) it fails instead, so that nothing skips silently in CI.
//!
//! This crate is for tests only: no crate depends on it outside `[dev-dependencies]`, and
//! it must not ship in the binary.

pub mod certs;
pub mod daemons;
pub mod db;

use std::fmt::Display;

/// Set to a non-empty value other than `0`, every [`skip`] is a failure.
pub const STRICT_ENV: &str = "PORTGATE_TEST_STRICT";

/// Whether a skip is a failure here: [`STRICT_ENV`] is set to a non-empty value other than
/// `0`, or `CI` is set (to anything).
pub fn strict() -> bool {
    strict_from(
        std::env::var_os(STRICT_ENV).as_deref(),
        std::env::var_os("CI").as_deref(),
    )
}

fn strict_from(strict: Option<&std::ffi::OsStr>, ci: Option<&std::ffi::OsStr>) -> bool {
    strict.is_some_and(|v| !v.is_empty() && v != "0") || ci.is_some()
}

/// `test` cannot run here because of `reason`: prints `SKIP <test>: <reason>` to stderr
/// and returns (the caller then returns). Under strict mode ([`strict`]) it panics
/// instead, naming the test and the reason.
#[track_caller]
pub fn skip(test: &str, reason: impl Display) {
    if strict() {
        panic!("{test} cannot run under {STRICT_ENV}: {reason}");
    }
    eprintln!("SKIP {test}: {reason}");
}

/// Whether this process runs as root (effective uid 0).
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// True when running as root; otherwise [`skip`]s `test` with the reason
/// `not root (<needs>)` and returns false.
#[track_caller]
pub fn require_root(test: &str, needs: &str) -> bool {
    if is_root() {
        return true;
    }
    skip(test, format_args!("not root ({needs})"));
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;

    #[test]
    fn strict_mode_follows_the_two_variables() {
        let os = |v: Option<&'static str>| v.map(OsStr::new);
        for (value, ci, want) in [
            (None, None, false),
            (Some(""), None, false),
            (Some("0"), None, false),
            (Some("1"), None, true),
            (Some("yes"), None, true),
            (None, Some("1"), true),
            (None, Some(""), true),
            (Some("0"), Some("true"), true),
        ] {
            assert_eq!(
                strict_from(os(value), os(ci)),
                want,
                "{STRICT_ENV}={value:?} CI={ci:?}"
            );
        }
    }
}
