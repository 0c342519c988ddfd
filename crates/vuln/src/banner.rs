//! Reading a distribution's package version out of a banner.
//!
//! Recognised forms (only the first 1024 bytes of a banner are read):
//!
//! | banner | distribution | package version |
//! |---|---|---|
//! | `SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3` | Debian 12 (`deb12`) | `1:9.2p1-2+deb12u3` |
//! | `SSH-2.0-OpenSSH_8.9p1 Ubuntu-3ubuntu0.10` | Ubuntu, release not said | `1:8.9p1-3ubuntu0.10` |
//! | `SSH-2.0-OpenSSH_9.6` | none | none (upstream only) |
//! | `SSH-2.0-OpenSSH_9.3 FreeBSD-20230719` | FreeBSD (no advisory data) | none |
//! | `15.8 (Debian 15.8-0+deb12u1)` (PostgreSQL) | Debian 12 | `15.8-0+deb12u1` |
//! | `Apache/2.4.62 (Debian)` | Debian, release not said | none |
//! | `8.0.36-0ubuntu0.22.04.1` (MySQL) | Ubuntu 22.04 | `8.0.36-0ubuntu0.22.04.1` |
//! | `10.11.6-MariaDB-0+deb12u1` | Debian 12 | `1:10.11.6-0+deb12u1` (epoch from the table) |
//!
//! The Debian release comes from a `debNuM` marker in the revision (`+deb12u3`,
//! `~deb12u1`); the Ubuntu release from `ubuntu0.YY.MM` or `~YY.MM` (`0ubuntu0.22.04.1`,
//! `1ubuntu1~22.04.1`). A revision without a marker (`Debian-2`, `Ubuntu-3ubuntu0.10`)
//! leaves the release unknown; the matcher then looks for it in the imported advisories.

use serde::{Deserialize, Serialize};

/// Bytes of a banner that are read.
pub const MAX_BANNER_LEN: usize = 1024;

/// A Linux distribution (or other system) named by a banner.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DistroFamily {
    /// Debian (OSV ecosystems `Debian:N`).
    Debian,
    /// Ubuntu (OSV ecosystems `Ubuntu:YY.MM[:LTS]`).
    Ubuntu,
    /// Another system that patches its packages (FreeBSD, Raspbian, Red Hat …), for
    /// which no advisory data is read.
    Other(String),
}

impl std::fmt::Display for DistroFamily {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DistroFamily::Debian => f.write_str("Debian"),
            DistroFamily::Ubuntu => f.write_str("Ubuntu"),
            DistroFamily::Other(name) => f.write_str(name),
        }
    }
}

/// What a banner says about the distribution's package.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DistroHint {
    /// The distribution.
    pub family: DistroFamily,
    /// Its release (`12`, `22.04`) when the banner says it.
    pub release: Option<String>,
    /// The Debian revision of the package (`2+deb12u3`) when the banner gives it.
    pub revision: Option<String>,
    /// The package version without epoch (`15.8-0+deb12u1`) when the banner gives it whole.
    pub package_version: Option<String>,
}

/// What a banner says.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct BannerInfo {
    /// The software name (`OpenSSH` in an SSH banner).
    pub product: Option<String>,
    /// The upstream version (`9.2p1` in an SSH banner, `15.8` before `(Debian …)`).
    pub version: Option<String>,
    /// The distribution, when the banner names one.
    pub distro: Option<DistroHint>,
}

/// Reads a banner (see the module documentation for the forms). Never fails: what is not
/// recognised is left out.
pub fn parse_banner(banner: &str) -> BannerInfo {
    let mut end = banner.len().min(MAX_BANNER_LEN);
    while !banner.is_char_boundary(end) {
        end -= 1;
    }
    let text = banner[..end].trim_matches(|c: char| c.is_whitespace() || c == '\0');
    if let Some(rest) = text.strip_prefix("SSH-") {
        return parse_ssh(rest);
    }
    parse_generic(text)
}

fn parse_ssh(rest: &str) -> BannerInfo {
    let line = rest.lines().next().unwrap_or_default();
    let (ident, comment) = match line.split_once(' ') {
        Some((i, c)) => (i, c.trim()),
        None => (line, ""),
    };
    // protoversion "-" softwareversion
    let software = ident.split_once('-').map(|(_, s)| s).unwrap_or_default();
    let (product, version) = match software.rsplit_once('_') {
        Some((p, v)) if v.starts_with(|c: char| c.is_ascii_digit()) => {
            (Some(p.to_owned()), Some(v.to_owned()))
        }
        _ => ((!software.is_empty()).then(|| software.to_owned()), None),
    };
    let distro = comment
        .split_whitespace()
        .next()
        .and_then(|token| token.split_once('-'))
        .and_then(|(name, revision)| distro_from_name(name, Some(revision), None));
    BannerInfo {
        product,
        version,
        distro,
    }
}

fn parse_generic(text: &str) -> BannerInfo {
    // "(Debian 15.8-0+deb12u1)", "(Ubuntu)", "(Red Hat Enterprise Linux)".
    let mut rest = text;
    while let Some(open) = rest.find('(') {
        let after = &rest[open + 1..];
        let Some(close) = after.find(')') else { break };
        let inside = after[..close].trim();
        rest = &after[close + 1..];
        let mut words = inside.split_whitespace();
        let Some(first) = words.next() else { continue };
        let second = words.next();
        let full = second.filter(|w| w.starts_with(|c: char| c.is_ascii_digit()));
        let name = if full.is_some() || second.is_none() {
            first.to_owned()
        } else {
            inside.to_owned()
        };
        if let Some(hint) = distro_from_name(&name, None, full) {
            let version = text[..text.find('(').unwrap_or(0)]
                .split(['/', ' '])
                .rev()
                .find(|w| w.starts_with(|c: char| c.is_ascii_digit()))
                .map(str::to_owned)
                .or_else(|| full.map(|f| crate::version::dpkg_upstream(f).to_owned()));
            return BannerInfo {
                product: None,
                version,
                distro: Some(hint),
            };
        }
    }
    // "8.0.36-0ubuntu0.22.04.1", "10.11.6-MariaDB-0+deb12u1".
    for token in text.split(|c: char| c.is_whitespace() || c == '\0') {
        let Some((head, revision)) = token.rsplit_once('-') else {
            continue;
        };
        let family = if revision.contains("ubuntu") {
            DistroFamily::Ubuntu
        } else if debian_release(revision).is_some() {
            DistroFamily::Debian
        } else {
            continue;
        };
        if !valid_revision(revision) {
            continue;
        }
        let upstream = head.split('-').next().unwrap_or_default();
        if !upstream.starts_with(|c: char| c.is_ascii_digit()) {
            continue;
        }
        let release = release_of(&family, revision);
        return BannerInfo {
            product: None,
            version: Some(upstream.to_owned()),
            distro: Some(DistroHint {
                family,
                release,
                revision: Some(revision.to_owned()),
                package_version: None,
            }),
        };
    }
    BannerInfo::default()
}

/// A distribution from its name in a banner, with the revision or the whole package
/// version if given.
fn distro_from_name(
    name: &str,
    revision: Option<&str>,
    package_version: Option<&str>,
) -> Option<DistroHint> {
    let lower = name.to_ascii_lowercase();
    let family = if lower.starts_with("debian") {
        DistroFamily::Debian
    } else if lower.starts_with("ubuntu") {
        DistroFamily::Ubuntu
    } else {
        {
            const OTHERS: [&str; 12] = [
                "raspbian",
                "freebsd",
                "netbsd",
                "red hat",
                "centos",
                "rocky",
                "almalinux",
                "fedora",
                "suse",
                "opensuse",
                "amazon",
                "alpine",
            ];
            if !OTHERS.iter().any(|o| lower.starts_with(o)) {
                return None;
            }
            DistroFamily::Other(name.chars().take(64).collect())
        }
    };
    let revision = revision.filter(|r| valid_revision(r));
    let package_version = package_version.filter(|v| crate::version::parse_dpkg(v).is_ok());
    let from_package = package_version.and_then(|v| v.rsplit_once('-').map(|(_, r)| r));
    let marker_source = revision.or(from_package).unwrap_or_default();
    let release = release_of(&family, marker_source);
    Some(DistroHint {
        family,
        release,
        revision: revision.or(from_package).map(str::to_owned),
        package_version: package_version.map(str::to_owned),
    })
}

fn valid_revision(r: &str) -> bool {
    !r.is_empty()
        && r.len() <= 128
        && r.starts_with(|c: char| c.is_ascii_alphanumeric())
        && r.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+.~".contains(&b))
}

fn release_of(family: &DistroFamily, revision: &str) -> Option<String> {
    match family {
        DistroFamily::Debian => debian_release(revision),
        DistroFamily::Ubuntu => ubuntu_release(revision),
        DistroFamily::Other(_) => None,
    }
}

/// `2+deb12u3` → `12`.
pub(crate) fn debian_release(revision: &str) -> Option<String> {
    let bytes = revision.as_bytes();
    let mut i = 0;
    while let Some(pos) = revision[i..].find("deb") {
        let start = i + pos + 3;
        let digits = bytes[start..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count();
        if digits > 0 && digits <= 3 && bytes.get(start + digits) == Some(&b'u') {
            return Some(
                revision[start..start + digits]
                    .trim_start_matches('0')
                    .to_owned(),
            )
            .filter(|s| !s.is_empty());
        }
        i = start;
    }
    None
}

/// `0ubuntu0.22.04.1` or `1ubuntu1~22.04.1` → `22.04`.
pub(crate) fn ubuntu_release(revision: &str) -> Option<String> {
    let bytes = revision.as_bytes();
    for (i, _) in revision.match_indices(|c: char| c.is_ascii_digit()) {
        let preceded = revision[..i].ends_with("ubuntu0.") || revision[..i].ends_with('~');
        if !preceded || i + 5 > bytes.len() {
            continue;
        }
        let cand = &bytes[i..i + 5];
        let shape = cand[..2].iter().all(u8::is_ascii_digit)
            && cand[2] == b'.'
            && cand[3..].iter().all(u8::is_ascii_digit);
        let month_ok = matches!(&cand[3..], b"04" | b"10" | b"06");
        let ends = bytes.get(i + 5).is_none_or(|b| !b.is_ascii_digit());
        if shape && month_ok && ends {
            return Some(revision[i..i + 5].to_owned());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn ssh_banners() {
        let b = parse_banner("SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n");
        assert_eq!(b.product.as_deref(), Some("OpenSSH"));
        assert_eq!(b.version.as_deref(), Some("9.2p1"));
        let d = b.distro.unwrap();
        assert_eq!(d.family, DistroFamily::Debian);
        assert_eq!(d.release.as_deref(), Some("12"));
        assert_eq!(d.revision.as_deref(), Some("2+deb12u3"));

        let d = parse_banner("SSH-2.0-OpenSSH_8.9p1 Ubuntu-3ubuntu0.10")
            .distro
            .unwrap();
        assert_eq!(d.family, DistroFamily::Ubuntu);
        assert_eq!(d.release, None);
        assert_eq!(d.revision.as_deref(), Some("3ubuntu0.10"));

        let b = parse_banner("SSH-2.0-OpenSSH_9.6");
        assert_eq!(b.version.as_deref(), Some("9.6"));
        assert!(b.distro.is_none());

        let d = parse_banner("SSH-2.0-OpenSSH_9.3 FreeBSD-20230719")
            .distro
            .unwrap();
        assert_eq!(d.family, DistroFamily::Other("FreeBSD".into()));

        let b = parse_banner("SSH-2.0-OpenSSH_for_Windows_8.1");
        assert_eq!(b.product.as_deref(), Some("OpenSSH_for_Windows"));
        assert_eq!(b.version.as_deref(), Some("8.1"));
        assert!(
            parse_banner("SSH-2.0-OpenSSH_9.6 hello-world")
                .distro
                .is_none()
        );
    }

    #[test]
    fn other_banners() {
        let b = parse_banner("15.8 (Debian 15.8-0+deb12u1)");
        assert_eq!(b.version.as_deref(), Some("15.8"));
        let d = b.distro.unwrap();
        assert_eq!(d.release.as_deref(), Some("12"));
        assert_eq!(d.package_version.as_deref(), Some("15.8-0+deb12u1"));
        assert_eq!(d.revision.as_deref(), Some("0+deb12u1"));

        let b = parse_banner("Apache/2.4.62 (Debian)");
        assert_eq!(b.version.as_deref(), Some("2.4.62"));
        let d = b.distro.unwrap();
        assert_eq!(
            (d.family, d.release, d.revision),
            (DistroFamily::Debian, None, None)
        );

        let d = parse_banner("Apache/2.4.57 (Red Hat Enterprise Linux)")
            .distro
            .unwrap();
        assert!(matches!(d.family, DistroFamily::Other(_)));

        let b = parse_banner("8.0.36-0ubuntu0.22.04.1");
        let d = b.distro.unwrap();
        assert_eq!(b.version.as_deref(), Some("8.0.36"));
        assert_eq!(d.release.as_deref(), Some("22.04"));

        let b = parse_banner("10.11.6-MariaDB-0+deb12u1");
        assert_eq!(b.version.as_deref(), Some("10.11.6"));
        assert_eq!(b.distro.unwrap().revision.as_deref(), Some("0+deb12u1"));

        // MariaDB's own packages are not Debian's.
        assert!(
            parse_banner("10.11.6-MariaDB-1:10.11.6+maria~deb12")
                .distro
                .is_none()
        );
        assert!(parse_banner("nginx/1.22.1").distro.is_none());
        assert_eq!(parse_banner(""), BannerInfo::default());
    }

    #[test]
    fn releases() {
        assert_eq!(debian_release("2+deb12u3").as_deref(), Some("12"));
        assert_eq!(debian_release("1~deb11u1").as_deref(), Some("11"));
        assert_eq!(debian_release("2"), None);
        assert_eq!(debian_release("debian"), None);
        assert_eq!(ubuntu_release("0ubuntu0.22.04.1").as_deref(), Some("22.04"));
        assert_eq!(ubuntu_release("1ubuntu1~20.04.3").as_deref(), Some("20.04"));
        assert_eq!(ubuntu_release("3ubuntu0.10"), None);
        assert_eq!(ubuntu_release("3ubuntu13.3"), None);
        assert_eq!(ubuntu_release("0ubuntu0.13.14"), None);
    }

    #[test]
    fn hostile_banners_do_not_panic() {
        let long = "é".repeat(2000);
        for b in [
            long.as_str(),
            "SSH-",
            "SSH-2.0-",
            "SSH-2.0-_ -",
            "(((",
            "())(",
            "( Debian",
            "(Debian 1:)",
            "-ubuntu",
            "x-deb1u",
            "SSH-2.0-OpenSSH_9.6 Debian-",
        ] {
            let _ = parse_banner(b);
        }
    }
}
