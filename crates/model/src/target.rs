//! What a user asked to scan: an address, a CIDR range or a hostname.
//!
//! Parsing normalises the spellings that name the same address in several ways and
//! refuses the ones that cannot be read safely, so that what is checked (against a
//! scope, a manifest, a history) is what is scanned:
//!
//! - an IPv4-mapped IPv6 address (`::ffff:127.0.0.1`) is its IPv4 address;
//! - a deprecated IPv4-compatible IPv6 address (`::127.0.0.1`) is refused;
//! - the IPv4 literals `inet_aton` reads (`2130706433`, `0177.0.0.1`, `0x7f.1`,
//!   `127.1`) are their dotted-quad address, as nmap, ping and curl read them;
//! - a CIDR range takes only a standard base address, or an IPv4-mapped one with a
//!   prefix of /96 or more (`::ffff:10.0.0.0/104` is `10.0.0.0/8`);
//! - a Unicode name is its IDNA ASCII form (`bücher.test` is `xn--bcher-kva.test`).

use crate::addr::{self, COMPATIBLE, MAPPED};
use ipnet::{IpNet, Ipv4Net};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::str::FromStr;

/// One target as the user wrote it, validated and normalised but not yet resolved or
/// expanded.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", content = "value", rename_all = "lowercase")]
pub enum TargetSpec {
    /// A single IPv4 or IPv6 address; never an IPv4-mapped or IPv4-compatible IPv6
    /// address.
    Ip(IpAddr),
    /// A CIDR range (host bits cleared).
    Cidr(IpNet),
    /// A DNS name in its ASCII form (IDNA labels as `xn--` Punycode), lower-cased,
    /// without a trailing dot.
    Hostname(String),
}

/// Why a target was rejected. Each message names the input and says what was wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TargetSpecError {
    /// Empty input.
    #[error("empty target")]
    Empty,
    /// Looked like a CIDR range but was not one.
    #[error("\"{input}\" is not a valid CIDR range: {detail}")]
    BadCidr {
        /// The input.
        input: String,
        /// What was wrong.
        detail: String,
    },
    /// Not an address, range or valid hostname.
    #[error("\"{input}\" is not an IP address, a CIDR range or a hostname: {detail}")]
    BadHostname {
        /// The input.
        input: String,
        /// What was wrong.
        detail: String,
    },
    /// Made of numbers only, so read as an IPv4 address, but not a valid one.
    #[error("\"{input}\" looks like an IP address but is not a valid one: {detail}")]
    BadIpv4 {
        /// The input.
        input: String,
        /// What was wrong.
        detail: String,
    },
    /// A deprecated IPv4-compatible IPv6 address (`::a.b.c.d`, RFC 4291 §2.5.5.1).
    #[error(
        "\"{input}\" is a deprecated IPv4-compatible IPv6 address; write the IPv4 address {ipv4} instead"
    )]
    Ipv4Compatible {
        /// The input.
        input: String,
        /// The IPv4 address it embeds.
        ipv4: Ipv4Addr,
    },
    /// A name that IDNA (UTS #46) processing refuses.
    #[error("\"{input}\" is not a valid internationalised domain name: {detail}")]
    BadIdna {
        /// The input.
        input: String,
        /// What was wrong.
        detail: String,
    },
}

impl TargetSpec {
    /// How many addresses the target covers before resolution (a hostname counts as 1;
    /// it may resolve to several).
    pub fn address_count(&self) -> u128 {
        match self {
            TargetSpec::Ip(_) | TargetSpec::Hostname(_) => 1,
            TargetSpec::Cidr(IpNet::V4(net)) => 1u128 << (32 - u32::from(net.prefix_len())),
            TargetSpec::Cidr(IpNet::V6(net)) => {
                let bits = 128 - u32::from(net.prefix_len());
                if bits >= 128 {
                    u128::MAX
                } else {
                    1u128 << bits
                }
            }
        }
    }

    /// `ip`, `cidr` or `hostname`.
    pub fn kind(&self) -> &'static str {
        match self {
            TargetSpec::Ip(_) => "ip",
            TargetSpec::Cidr(_) => "cidr",
            TargetSpec::Hostname(_) => "hostname",
        }
    }
}

impl fmt::Display for TargetSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TargetSpec::Ip(ip) => write!(f, "{ip}"),
            TargetSpec::Cidr(net) => write!(f, "{net}"),
            TargetSpec::Hostname(name) => f.write_str(name),
        }
    }
}

impl FromStr for TargetSpec {
    type Err = TargetSpecError;

    /// Parses and normalises one target (surrounding whitespace ignored).
    ///
    /// - An IP address in standard form, optionally in brackets (`[2001:db8::1]`). An
    ///   IPv4-mapped IPv6 address is its IPv4 address; an IPv4-compatible one
    ///   (`::a.b.c.d`, other than `::` and `::1`) is refused.
    /// - An IPv4 address in any form `inet_aton` accepts, with or without one
    ///   trailing dot: `a.b.c.d`, `a.b.c` (c fills 16 bits), `a.b` (b fills 24 bits) or
    ///   `a` (32 bits), each part decimal, octal with a leading `0` or hexadecimal
    ///   with a leading `0x`. So `2130706433`, `0177.0.0.1`, `0x7f.1` and `127.1` are
    ///   all `127.0.0.1`, and `010.0.0.1` is `8.0.0.1`. A bare number is an address
    ///   too: `80` is `0.0.0.80`, as nmap, ping and curl read it — surprising, but
    ///   refusing it would make `portgate` disagree with the tools its users check
    ///   against. A name made of numbers only that is not a valid address
    ///   (`1.2.3.4.5`, `999.1.1.1`, `08.1.1.1`) is an error, never a hostname.
    /// - A CIDR range `address/prefix` whose address is in standard form; an
    ///   IPv4-mapped base needs a prefix of /96 or more and gives the IPv4 range
    ///   (`::ffff:10.0.0.0/104` is `10.0.0.0/8`). Host bits are cleared.
    /// - Otherwise a hostname: IDNA (UTS #46, non-transitional) maps it to its ASCII
    ///   form, then each label must be 1 to 63 letters, digits, `-` or `_`, not
    ///   starting or ending with `-`, the whole at most 253 characters, the last
    ///   label not a number. One trailing dot is dropped.
    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let s = input.trim();
        if s.is_empty() {
            return Err(TargetSpecError::Empty);
        }
        let unbracketed = s
            .strip_prefix('[')
            .and_then(|r| r.strip_suffix(']'))
            .unwrap_or(s);
        if let Ok(ip) = unbracketed.parse::<IpAddr>() {
            return canonical_ip(s, ip).map(TargetSpec::Ip);
        }
        if let Some((base, prefix)) = s.split_once('/') {
            return parse_cidr(s, base, prefix).map(TargetSpec::Cidr);
        }
        let ascii = to_ascii_name(s)?;
        let name = ascii.strip_suffix('.').unwrap_or(&ascii);
        if name.parse::<std::net::Ipv6Addr>().is_ok() {
            return Err(TargetSpecError::BadHostname {
                input: s.to_string(),
                detail: "an IPv6 address takes no trailing dot".to_string(),
            });
        }
        if name.split('.').all(addr::is_numeric_label) {
            return addr::parse_ipv4_legacy(name)
                .map(|ip| TargetSpec::Ip(IpAddr::V4(ip)))
                .map_err(|detail| TargetSpecError::BadIpv4 {
                    input: s.to_string(),
                    detail,
                });
        }
        validate_hostname(s, name).map(TargetSpec::Hostname)
    }
}

/// An IPv4-mapped address as its IPv4 address; an IPv4-compatible one refused.
fn canonical_ip(input: &str, ip: IpAddr) -> Result<IpAddr, TargetSpecError> {
    let ip = ip.to_canonical();
    if let IpAddr::V6(v6) = ip
        && let Some(ipv4) = addr::ipv4_compatible(v6)
    {
        return Err(TargetSpecError::Ipv4Compatible {
            input: input.to_string(),
            ipv4,
        });
    }
    Ok(ip)
}

fn parse_cidr(input: &str, base: &str, prefix: &str) -> Result<IpNet, TargetSpecError> {
    let bad = |detail: String| TargetSpecError::BadCidr {
        input: input.to_string(),
        detail,
    };
    let ip: IpAddr = base.parse().map_err(|_| {
        let numeric = base.split('.').all(addr::is_numeric_label);
        match addr::parse_ipv4_legacy(base) {
            Ok(v4) if numeric => bad(format!(
                "\"{base}\" is not a dotted-quad address: a range's base must be in standard form (did you mean {v4}?)"
            )),
            _ => bad(format!("\"{base}\" is not an IP address")),
        }
    })?;
    if prefix.is_empty() || prefix.len() > 3 || !prefix.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad(format!("prefix \"{prefix}\" is not a number")));
    }
    let len: u8 = prefix
        .parse()
        .map_err(|_| bad(format!("prefix \"{prefix}\" is not a number")))?;
    let net = IpNet::new(ip, len).map_err(|_| {
        let max = if ip.is_ipv4() { 32 } else { 128 };
        bad(format!("prefix /{len} is longer than /{max}"))
    })?;
    let IpNet::V6(net6) = net else {
        return Ok(net.trunc());
    };
    let IpAddr::V6(base6) = ip else {
        return Ok(net.trunc());
    };
    if base6.to_ipv4_mapped().is_some() {
        if len < 96 {
            return Err(bad(format!(
                "{base} is an IPv4-mapped address, so its prefix must be /96 or longer (/96 plus the IPv4 prefix); /{len} reaches beyond {MAPPED}"
            )));
        }
        return Ok(IpNet::V4(addr::embedded_net(net6.trunc())));
    }
    let net6 = net6.trunc();
    if let Some(v4) = addr::ipv4_compatible(base6) {
        return Err(bad(format!(
            "{base} is a deprecated IPv4-compatible IPv6 address{}",
            ipv4_suggestion(v4, len)
        )));
    }
    // Inside ::/96 only `::` and `::1` are not IPv4-compatible.
    if COMPATIBLE.contains(&net6) && u128::from(net6.broadcast()) > 1 {
        return Err(bad(format!(
            "{net6} is a range of deprecated IPv4-compatible IPv6 addresses; write the IPv4 range {} instead",
            addr::embedded_net(net6)
        )));
    }
    Ok(IpNet::V6(net6))
}

/// "; write the IPv4 range 10.0.0.0/8 instead" for an IPv4-compatible base written
/// with a /96-or-longer prefix; nothing when the prefix is shorter (there is no IPv4
/// range to suggest).
fn ipv4_suggestion(v4: Ipv4Addr, len: u8) -> String {
    match Ipv4Net::new(v4, len.saturating_sub(96)) {
        Ok(net) if len >= 96 => format!("; write the IPv4 range {} instead", net.trunc()),
        _ => String::new(),
    }
}

/// The name's ASCII form under IDNA (UTS #46, non-transitional, no STD3 rules: the
/// hostname check that follows is stricter on ASCII and allows `_`).
fn to_ascii_name(input: &str) -> Result<String, TargetSpecError> {
    idna::domain_to_ascii(input).map_err(|_| TargetSpecError::BadIdna {
        input: input.to_string(),
        detail: idna_failure(input),
    })
}

/// Why IDNA refused a name: the first character it never allows, or else the first
/// label that fails with the rule it most likely breaks.
fn idna_failure(input: &str) -> String {
    let refused = |text: &str| idna::domain_to_ascii(text).is_err();
    if let Some(c) = input
        .chars()
        .find(|&c| !c.is_ascii() && refused(&c.to_string()) && refused(&format!("a{c}")))
    {
        return format!(
            "the character U+{:04X} ({c:?}) is not allowed in this domain name",
            u32::from(c)
        );
    }
    let label = input
        .split('.')
        .find(|label| refused(label))
        .unwrap_or(input);
    if label
        .get(..4)
        .is_some_and(|prefix| prefix.eq_ignore_ascii_case("xn--"))
    {
        format!("the label \"{label}\" is not valid Punycode for an IDNA label")
    } else {
        format!(
            "the label \"{label}\" breaks an IDNA rule (a leading combining mark, a joiner out of context or mixed right-to-left text)"
        )
    }
}

/// Checks the ASCII form of a name; `input` is what the user wrote, for the message.
fn validate_hostname(input: &str, name: &str) -> Result<String, TargetSpecError> {
    let bad = |detail: &str| TargetSpecError::BadHostname {
        input: input.to_string(),
        detail: detail.to_string(),
    };
    let name = name.to_ascii_lowercase();
    if name.len() > 253 {
        return Err(bad("longer than 253 characters"));
    }
    for label in name.split('.') {
        if label.is_empty() {
            return Err(bad("empty label"));
        }
        if label.len() > 63 {
            return Err(bad("a label is longer than 63 characters"));
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(bad("only letters, digits, '-', '_' and '.' are allowed"));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(bad("a label starts or ends with '-'"));
        }
    }
    if name.rsplit('.').next().is_some_and(addr::is_numeric_label) {
        return Err(bad(
            "its last label is a number, so it looks like an IP address but is not a valid one (no top-level domain is a number)",
        ));
    }
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_kind() {
        let ok: &[(&str, &str, u128)] = &[
            ("198.18.0.2", "ip", 1),
            ("::1", "ip", 1),
            ("[2001:db8::2]", "ip", 1),
            ("198.18.0.0/24", "cidr", 256),
            ("198.18.0.77/30", "cidr", 4),
            ("2001:db8::/120", "cidr", 256),
            ("localhost", "hostname", 1),
            ("Example.TEST.", "hostname", 1),
            ("_srv.a-b.test", "hostname", 1),
        ];
        for (input, kind, count) in ok {
            let spec: TargetSpec = input.parse().unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(spec.kind(), *kind, "{input}");
            assert_eq!(spec.address_count(), *count, "{input}");
        }
        assert_eq!(
            "198.18.0.77/30"
                .parse::<TargetSpec>()
                .map(|t| t.to_string()),
            Ok("198.18.0.76/30".to_string())
        );
        assert_eq!(
            "Example.TEST.".parse::<TargetSpec>().map(|t| t.to_string()),
            Ok("example.test".to_string())
        );
    }

    #[test]
    fn rejects_with_the_reason() {
        let bad: &[(&str, &str)] = &[
            ("", "empty target"),
            ("198.18.0.0/33", "prefix /33 is longer than /32"),
            ("198.18.0.0/x", "prefix \"x\" is not a number"),
            ("127.0.0.300/8", "\"127.0.0.300\" is not an IP address"),
            ("127.0.0.300", "looks like an IP address"),
            ("bad host", "only letters"),
            ("a..b", "empty label"),
            ("-a.test", "starts or ends with '-'"),
        ];
        for (input, want) in bad {
            let err = input.parse::<TargetSpec>().expect_err(input).to_string();
            assert!(err.contains(want), "{input}: got {err:?}, want {want:?}");
        }
    }
}
