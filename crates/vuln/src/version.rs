//! Version ordering: upstream versions (as NVD ranges and banners write them) and Debian
//! package versions (dpkg ordering).
//!
//! # Upstream versions
//!
//! [`compare_upstream`] splits a version into segments: runs of ASCII digits (numeric
//! segments) and runs of ASCII letters (alphabetic segments). Every other character
//! (`.`, `-`, `_`, `+`, `~`, `:` …) only separates segments. `9.2p1` is `9 2 p 1`,
//! `2.4.58` is `2 4 58`, `1.3.6rc2` is `1 3 6 rc 2`. Segments are compared pairwise,
//! left to right:
//!
//! * numeric against numeric: by value (leading zeros ignored, any length, no overflow);
//! * alphabetic against alphabetic: a pre-release word (`dev` < `alpha` < `beta` <
//!   `pre` = `preview` < `rc`) is below any other word; two other words compare as
//!   lower-case strings (`a` < `b` < `p`);
//! * numeric against alphabetic: a pre-release word is below the number, any other word
//!   is below it too (`9.2p1` < `9.2.1`);
//! * when one version has no more segments: a missing segment counts as `0` against a
//!   numeric one (`9.2` = `9.2.0`, `1.0` < `1.0.1`), and as *after* a pre-release word but
//!   *before* any other word: `1.0rc1` < `1.0` < `1.0a` < `1.0p1`. So OpenSSH's portable
//!   releases sort after the OpenBSD release they are based on (`8.5` < `8.5p1` <
//!   `8.5p2` < `8.6`) and ProFTPD's letter releases after their base (`1.3.5` < `1.3.5a`
//!   < `1.3.5b`).
//!
//! Case does not matter. An empty version sorts before every other.
//!
//! # Debian versions
//!
//! [`compare_dpkg`] is dpkg's ordering (Debian Policy 5.6.12): epoch numerically, then
//! upstream version and Debian revision with dpkg's algorithm, where `~` sorts before
//! everything, even the end of the string.

use std::cmp::Ordering;

/// A pre-release word's rank (any case), or `None` for any other alphabetic segment.
fn pre_release_rank(word: &str) -> Option<u8> {
    const WORDS: [(&str, u8); 7] = [
        ("dev", 0),
        ("snapshot", 0),
        ("alpha", 1),
        ("beta", 2),
        ("pre", 3),
        ("preview", 3),
        ("rc", 4),
    ];
    WORDS
        .iter()
        .find(|(w, _)| w.eq_ignore_ascii_case(word))
        .map(|(_, rank)| *rank)
}

#[derive(Debug, Clone, Copy)]
enum Segment<'a> {
    Number(&'a str),
    Word(&'a str),
}

struct Segments<'a> {
    rest: &'a str,
}

impl<'a> Iterator for Segments<'a> {
    type Item = Segment<'a>;

    fn next(&mut self) -> Option<Self::Item> {
        let s = self
            .rest
            .trim_start_matches(|c: char| !c.is_ascii_alphanumeric());
        let first = s.chars().next()?;
        let end = if first.is_ascii_digit() {
            s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len())
        } else {
            s.find(|c: char| !c.is_ascii_alphabetic())
                .unwrap_or(s.len())
        };
        let (head, tail) = s.split_at(end);
        self.rest = tail;
        Some(if first.is_ascii_digit() {
            Segment::Number(head.trim_start_matches('0'))
        } else {
            Segment::Word(head)
        })
    }
}

fn segments(version: &str) -> Segments<'_> {
    Segments { rest: version }
}

/// Numeric strings without leading zeros: longer is larger, then lexicographic.
fn compare_numbers(a: &str, b: &str) -> Ordering {
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

fn compare_words(a: &str, b: &str) -> Ordering {
    match (pre_release_rank(a), pre_release_rank(b)) {
        (Some(x), Some(y)) => x.cmp(&y),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => a
            .bytes()
            .map(|c| c.to_ascii_lowercase())
            .cmp(b.bytes().map(|c| c.to_ascii_lowercase())),
    }
}

/// Compares two upstream versions segment by segment (see the module documentation for
/// the rule). Total and panic-free on any input.
pub fn compare_upstream(a: &str, b: &str) -> Ordering {
    let mut left = segments(a);
    let mut right = segments(b);
    loop {
        let ord = match (left.next(), right.next()) {
            (None, None) => return Ordering::Equal,
            (Some(Segment::Number(x)), Some(Segment::Number(y))) => compare_numbers(x, y),
            (Some(Segment::Word(x)), Some(Segment::Word(y))) => compare_words(x, y),
            (Some(Segment::Number(_)), Some(Segment::Word(_))) => Ordering::Greater,
            (Some(Segment::Word(_)), Some(Segment::Number(_))) => Ordering::Less,
            (Some(Segment::Number(x)), None) => compare_numbers(x, ""),
            (None, Some(Segment::Number(y))) => compare_numbers("", y),
            (Some(Segment::Word(x)), None) => word_after_end(x),
            (None, Some(Segment::Word(y))) => word_after_end(y).reverse(),
        };
        if ord != Ordering::Equal {
            return ord;
        }
    }
}

/// How a version that goes on with `word` compares with one that has ended.
fn word_after_end(word: &str) -> Ordering {
    if pre_release_rank(word).is_some() {
        Ordering::Less
    } else {
        Ordering::Greater
    }
}

/// Why a Debian version could not be compared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DpkgVersionError {
    /// The version as given.
    pub version: String,
    /// What is wrong with it.
    pub reason: String,
}

impl std::fmt::Display for DpkgVersionError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "invalid Debian version {:?}: {}",
            self.version, self.reason
        )
    }
}

impl std::error::Error for DpkgVersionError {}

/// Longest Debian version accepted, in bytes.
pub const MAX_DPKG_VERSION_LEN: usize = 256;

/// Parses a Debian package version (`[epoch:]upstream[-revision]`).
pub fn parse_dpkg(version: &str) -> Result<debversion::Version, DpkgVersionError> {
    let err = |reason: &str| DpkgVersionError {
        version: version.chars().take(MAX_DPKG_VERSION_LEN).collect(),
        reason: reason.to_owned(),
    };
    if version.is_empty() {
        return Err(err("empty"));
    }
    if version.len() > MAX_DPKG_VERSION_LEN {
        return Err(err("longer than 256 bytes"));
    }
    if let Some((epoch, _)) = version.split_once(':') {
        if epoch.is_empty() || !epoch.bytes().all(|b| b.is_ascii_digit()) {
            return Err(err("the epoch before ':' is not a number"));
        }
        if epoch.parse::<u32>().is_err() {
            return Err(err("the epoch is too large"));
        }
    }
    let parsed: debversion::Version = version
        .parse()
        .map_err(|e: debversion::ParseError| err(&e.to_string()))?;
    if version.contains(':') && parsed.epoch.is_none() {
        return Err(err("nothing after the epoch"));
    }
    if !parsed
        .upstream_version
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_digit())
    {
        return Err(err("the upstream version does not start with a digit"));
    }
    Ok(parsed)
}

/// Compares two Debian package versions with dpkg's ordering.
pub fn compare_dpkg(a: &str, b: &str) -> Result<Ordering, DpkgVersionError> {
    Ok(parse_dpkg(a)?.cmp(&parse_dpkg(b)?))
}

/// The upstream part of a Debian version: without the epoch and the Debian revision.
pub fn dpkg_upstream(version: &str) -> &str {
    let without_epoch = match version.split_once(':') {
        Some((epoch, rest)) if !epoch.is_empty() && epoch.bytes().all(|b| b.is_ascii_digit()) => {
            rest
        }
        _ => version,
    };
    match without_epoch.rfind('-') {
        Some(i) => &without_epoch[..i],
        None => without_epoch,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn lt(a: &str, b: &str) {
        assert_eq!(compare_upstream(a, b), Ordering::Less, "{a} < {b}");
        assert_eq!(compare_upstream(b, a), Ordering::Greater, "{b} > {a}");
    }

    fn eq(a: &str, b: &str) {
        assert_eq!(compare_upstream(a, b), Ordering::Equal, "{a} = {b}");
        assert_eq!(compare_upstream(b, a), Ordering::Equal, "{b} = {a}");
    }

    #[test]
    fn upstream_ordering() {
        lt("9.2p1", "9.8p1");
        lt("8.5", "8.5p1");
        lt("8.5p1", "8.5p2");
        lt("8.5p2", "8.6");
        lt("4.3p2", "4.4p1");
        lt("2.4.6", "2.4.58");
        lt("1.0rc1", "1.0");
        lt("1.0alpha", "1.0beta");
        lt("1.0beta2", "1.0rc1");
        lt("1.0", "1.0a");
        lt("1.3.5", "1.3.5a");
        lt("1.3.5a", "1.3.5b");
        lt("1.3.6rc2", "1.3.6");
        lt("9.2p1", "9.2.1");
        lt("1.0", "1.0.1");
        lt("", "0.1");
        lt("1.9", "1.10");
        lt("99999999999999999999999", "100000000000000000000000");
        eq("9.2", "9.2.0");
        eq("9.2P1", "9.2p1");
        eq("01.002", "1.2");
        eq("1-2", "1.2");
        eq("", "");
    }

    #[test]
    fn upstream_ordering_never_panics() {
        for s in ["", "...", "~", "é", "1.é.2", "\u{0}", "a", "9"] {
            for t in ["", "1", "a", "é"] {
                let _ = compare_upstream(s, t);
            }
        }
    }

    #[test]
    fn dpkg_ordering() {
        let c = |a, b| compare_dpkg(a, b).unwrap();
        assert_eq!(
            c("1:9.2p1-2+deb12u3", "1:9.2p1-2+deb12u2"),
            Ordering::Greater
        );
        assert_eq!(
            c("1:8.9p1-3ubuntu0.10", "1:8.9p1-3ubuntu0.9"),
            Ordering::Greater
        );
        assert_eq!(c("1.0~rc1-1", "1.0-1"), Ordering::Less);
        assert_eq!(c("1.0~~", "1.0~"), Ordering::Less);
        assert_eq!(c("1.0~", "1.0"), Ordering::Less);
        assert_eq!(c("1.0", "1.0+b1"), Ordering::Less);
        assert_eq!(c("1:0.1", "9.9"), Ordering::Greater);
        assert_eq!(c("2:1.0", "1:99.0"), Ordering::Greater);
        assert_eq!(c("0:1.0-1", "1.0-1"), Ordering::Equal);
        assert_eq!(c("1.0-1", "1.0-1"), Ordering::Equal);
        assert_eq!(c("7.0.15-1~deb12u1", "7.0.15-1"), Ordering::Less);
    }

    #[test]
    fn dpkg_rejects_bad_versions() {
        for bad in [
            "",
            "a1.0",
            "x:1.0",
            ":1.0",
            "1:",
            "1.0 2",
            "99999999999:1.0",
        ] {
            assert!(parse_dpkg(bad).is_err(), "{bad:?}");
        }
        assert!(parse_dpkg(&"1".repeat(300)).is_err());
    }

    #[test]
    fn dpkg_upstream_part() {
        assert_eq!(dpkg_upstream("1:9.2p1-2+deb12u3"), "9.2p1");
        assert_eq!(dpkg_upstream("15.8-0+deb12u1"), "15.8");
        assert_eq!(dpkg_upstream("2.4.7"), "2.4.7");
        assert_eq!(dpkg_upstream("1:2.3-4-5"), "2.3-4");
    }
}
