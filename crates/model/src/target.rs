//! What a user asked to scan: an address, a CIDR range or a hostname.

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// One target as the user wrote it, validated but not yet resolved or expanded.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", content = "value", rename_all = "lowercase")]
pub enum TargetSpec {
    /// A single IPv4 or IPv6 address.
    Ip(IpAddr),
    /// A CIDR range (host bits cleared).
    Cidr(IpNet),
    /// A DNS name, lower-cased, without a trailing dot.
    Hostname(String),
}

/// Why a target was rejected.
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
            return Ok(TargetSpec::Ip(ip));
        }
        if let Some((addr, prefix)) = s.split_once('/') {
            let bad = |detail: String| TargetSpecError::BadCidr {
                input: s.to_string(),
                detail,
            };
            let ip: IpAddr = addr
                .parse()
                .map_err(|_| bad(format!("\"{addr}\" is not an IP address")))?;
            let len: u8 = prefix
                .parse()
                .map_err(|_| bad(format!("prefix \"{prefix}\" is not a number")))?;
            let net = IpNet::new(ip, len).map_err(|_| {
                let max = if ip.is_ipv4() { 32 } else { 128 };
                bad(format!("prefix /{len} is longer than /{max}"))
            })?;
            return Ok(TargetSpec::Cidr(net.trunc()));
        }
        validate_hostname(s).map(TargetSpec::Hostname)
    }
}

fn validate_hostname(input: &str) -> Result<String, TargetSpecError> {
    let bad = |detail: &str| TargetSpecError::BadHostname {
        input: input.to_string(),
        detail: detail.to_string(),
    };
    let name = input
        .strip_suffix('.')
        .unwrap_or(input)
        .to_ascii_lowercase();
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
    if name.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return Err(bad("looks like an IP address but is not a valid one"));
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
