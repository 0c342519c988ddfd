//! Version orderings through the public API: dpkg (Debian Policy 5.6.12) and upstream.

#![allow(clippy::unwrap_used)]

use std::cmp::Ordering::{Equal, Greater, Less};

use portgate_vuln::{compare_dpkg, compare_upstream};

#[test]
fn dpkg_ordering() {
    let cases = [
        ("1:9.2p1-2+deb12u3", "1:9.2p1-2+deb12u2", Greater),
        ("1:8.9p1-3ubuntu0.10", "1:8.9p1-3ubuntu0.9", Greater),
        ("1:9.2p1-2", "1:9.2p1-2+deb12u1", Less),
        // `~` sorts before everything, even the end of the string.
        ("1.0~rc1", "1.0", Less),
        ("1.0~~", "1.0~", Less),
        ("1.0~~a", "1.0~", Less),
        ("1.0-1~bpo12+1", "1.0-1", Less),
        ("7.0.15-1~deb12u1", "7.0.15-1", Less),
        // The epoch dominates.
        ("1:1.0", "9.9", Greater),
        ("2:0.1-1", "1:99.99-99", Greater),
        ("0:1.0-1", "1.0-1", Equal),
        // Letters sort before non-letters; numbers numerically.
        ("1.0a", "1.0+", Less),
        ("1.0.10", "1.0.9", Greater),
        ("1.0-10", "1.0-9", Greater),
        ("1.0", "1.0-0", Equal),
    ];
    for (a, b, want) in cases {
        assert_eq!(compare_dpkg(a, b).unwrap(), want, "{a} vs {b}");
        assert_eq!(compare_dpkg(b, a).unwrap(), want.reverse(), "{b} vs {a}");
    }
}

#[test]
fn dpkg_refuses_invalid_versions() {
    for bad in ["", "x1.0", "1:", "a:1.0", "1.0 beta", "1.0_1"] {
        let err = compare_dpkg(bad, "1.0").unwrap_err();
        assert_eq!(err.version, bad);
    }
}

#[test]
fn upstream_ordering() {
    let cases = [
        ("9.2p1", "9.8p1", Less),
        ("8.5", "8.5p1", Less),
        ("8.5p1", "8.5", Greater),
        ("2.4.58", "2.4.6", Greater),
        ("2.4.6", "2.4.06", Equal),
        ("1.3.5", "1.3.5a", Less),
        ("1.3.6rc2", "1.3.6", Less),
        ("1.0beta", "1.0rc1", Less),
        ("9.2", "9.2.0", Equal),
        ("10.0", "9.99", Greater),
    ];
    for (a, b, want) in cases {
        assert_eq!(compare_upstream(a, b), want, "{a} vs {b}");
    }
}
