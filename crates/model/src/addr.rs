//! Address forms that carry an IPv4 address inside IPv6, and the legacy IPv4 literals
//! that `inet_aton` reads. Shared by target parsing and the scan scope.

use ipnet::{Ipv4Net, Ipv6Net};
use std::net::{Ipv4Addr, Ipv6Addr};

/// `::ffff:0:0/96`, the IPv4-mapped addresses.
pub(crate) const MAPPED: Ipv6Net = net6(Ipv6Addr::new(0, 0, 0, 0, 0, 0xffff, 0, 0), 96);
/// `::/96`, the deprecated IPv4-compatible addresses (apart from `::` and `::1`).
pub(crate) const COMPATIBLE: Ipv6Net = net6(Ipv6Addr::UNSPECIFIED, 96);
/// `64:ff9b::/96`, the NAT64 well-known prefix (RFC 6052).
pub(crate) const NAT64_WELL_KNOWN: Ipv6Net =
    net6(Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, 0, 0), 96);
/// `64:ff9b:1::/48`, the NAT64 local-use prefix (RFC 8215).
pub(crate) const NAT64_LOCAL_USE: Ipv6Net = net6(Ipv6Addr::new(0x64, 0xff9b, 1, 0, 0, 0, 0, 0), 48);
/// `64:ff9b:1::/96`, the part of the local-use prefix whose addresses are read
/// unambiguously (see [`nat64_embedded`]).
pub(crate) const NAT64_LOCAL_USE_96: Ipv6Net =
    net6(Ipv6Addr::new(0x64, 0xff9b, 1, 0, 0, 0, 0, 0), 96);

const fn net6(addr: Ipv6Addr, len: u8) -> Ipv6Net {
    Ipv6Net::new_assert(addr, len)
}

/// The low 32 bits of an IPv6 address as an IPv4 address.
pub(crate) fn low_ipv4(addr: Ipv6Addr) -> Ipv4Addr {
    Ipv4Addr::from(u128::from(addr) as u32)
}

/// The IPv4 address of a deprecated IPv4-compatible IPv6 address (`::a.b.c.d`); `None`
/// for any other address, `::` and `::1` included.
pub(crate) fn ipv4_compatible(addr: Ipv6Addr) -> Option<Ipv4Addr> {
    let bits = u128::from(addr);
    (bits >> 32 == 0 && bits > 1).then(|| low_ipv4(addr))
}

/// How a NAT64 address embeds its IPv4 address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Nat64 {
    /// In `64:ff9b::/96` or `64:ff9b:1::/96`: the IPv4 address is the low 32 bits.
    Embeds(Ipv4Addr),
    /// In `64:ff9b:1::/48` but outside `64:ff9b:1::/96`: where the IPv4 address sits
    /// depends on the prefix length the translator was configured with (RFC 6052
    /// allows /48, /56, /64 and /96 inside the local-use /48), so it cannot be read.
    Ambiguous,
}

/// The IPv4 address a NAT64 address stands for; `None` outside both NAT64 prefixes.
pub(crate) fn nat64_embedded(addr: Ipv6Addr) -> Option<Nat64> {
    if NAT64_WELL_KNOWN.contains(&addr) || NAT64_LOCAL_USE_96.contains(&addr) {
        Some(Nat64::Embeds(low_ipv4(addr)))
    } else if NAT64_LOCAL_USE.contains(&addr) {
        Some(Nat64::Ambiguous)
    } else {
        None
    }
}

/// The IPv4 range that an IPv6 range of /96 or longer, inside a /96 that embeds IPv4
/// addresses in its low 32 bits, stands for: its low 32 bits, its prefix less 96.
pub(crate) fn embedded_net(net: Ipv6Net) -> Ipv4Net {
    let len = net.prefix_len().saturating_sub(96);
    Ipv4Net::new_assert(low_ipv4(net.network()), len).trunc()
}

/// Whether a label is a number as `inet_aton` reads one: decimal digits, or `0x`/`0X`
/// followed by hexadecimal digits (possibly none: such a label is an error, not a name).
pub(crate) fn is_numeric_label(label: &str) -> bool {
    if let Some(hex) = label
        .strip_prefix("0x")
        .or_else(|| label.strip_prefix("0X"))
    {
        hex.bytes().all(|b| b.is_ascii_hexdigit())
    } else {
        !label.is_empty() && label.bytes().all(|b| b.is_ascii_digit())
    }
}

/// An IPv4 literal in any form `inet_aton` accepts: `a`, `a.b` (b fills 24 bits),
/// `a.b.c` (c fills 16 bits) or `a.b.c.d`, each part decimal, octal with a leading `0`
/// or hexadecimal with a leading `0x`. The error says which part is wrong and why.
pub(crate) fn parse_ipv4_legacy(text: &str) -> Result<Ipv4Addr, String> {
    let parts: Vec<&str> = text.split('.').collect();
    if parts.len() > 4 {
        return Err(format!(
            "it has {} dot-separated numbers; an IPv4 address has at most 4",
            parts.len()
        ));
    }
    let values = parts
        .iter()
        .map(|part| parse_ipv4_part(part))
        .collect::<Result<Vec<u32>, String>>()?;
    let (last, leading) = values.split_last().ok_or("it is empty")?;
    let mut addr: u32 = 0;
    for (i, (part, value)) in parts.iter().zip(leading).enumerate() {
        if *value > 255 {
            return Err(format!("\"{part}\" is {value}, larger than 255"));
        }
        addr |= value << (24 - 8 * i);
    }
    let last_bits = 8 * (5 - parts.len()) as u32;
    let max = if last_bits == 32 {
        u32::MAX
    } else {
        (1u32 << last_bits) - 1
    };
    if *last > max {
        let part = parts.last().copied().unwrap_or_default();
        return Err(if parts.len() == 4 {
            format!("\"{part}\" is {last}, larger than 255")
        } else {
            format!(
                "\"{part}\" is {last}, larger than {max} (the last of {} numbers fills {last_bits} bits)",
                parts.len()
            )
        });
    }
    Ok(Ipv4Addr::from(addr | last))
}

fn parse_ipv4_part(part: &str) -> Result<u32, String> {
    let (digits, radix, what) =
        if let Some(hex) = part.strip_prefix("0x").or_else(|| part.strip_prefix("0X")) {
            if hex.is_empty() {
                return Err(format!("\"{part}\" has no hexadecimal digits after 0x"));
            }
            (hex, 16, "hexadecimal")
        } else if part.len() > 1 && part.starts_with('0') {
            (&part[1..], 8, "octal (it starts with 0)")
        } else if part.is_empty() {
            return Err("it has an empty part".to_string());
        } else {
            (part, 10, "decimal")
        };
    let mut value: u64 = 0;
    for c in digits.chars() {
        let digit = c
            .to_digit(radix)
            .ok_or_else(|| format!("\"{part}\" is {what} but has the digit '{c}'"))?;
        value = value * u64::from(radix) + u64::from(digit);
        if value > u64::from(u32::MAX) {
            return Err(format!("\"{part}\" is larger than {}", u32::MAX));
        }
    }
    // `value` fits: checked against u32::MAX above.
    Ok(value as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compatible_excludes_unspecified_and_loopback() {
        assert_eq!(ipv4_compatible(Ipv6Addr::UNSPECIFIED), None);
        assert_eq!(ipv4_compatible(Ipv6Addr::LOCALHOST), None);
        assert_eq!(
            ipv4_compatible("::127.0.0.1".parse().expect("literal")),
            Some(Ipv4Addr::LOCALHOST)
        );
        assert_eq!(
            ipv4_compatible("::ffff:127.0.0.1".parse().expect("literal")),
            None
        );
    }

    #[test]
    fn nat64_forms() {
        let read = |s: &str| nat64_embedded(s.parse().expect("literal"));
        assert_eq!(
            read("64:ff9b::192.0.2.1"),
            Some(Nat64::Embeds(Ipv4Addr::new(192, 0, 2, 1)))
        );
        assert_eq!(
            read("64:ff9b:1::192.0.2.1"),
            Some(Nat64::Embeds(Ipv4Addr::new(192, 0, 2, 1)))
        );
        assert_eq!(read("64:ff9b:1:2::192.0.2.1"), Some(Nat64::Ambiguous));
        assert_eq!(read("64:ff9b:2::192.0.2.1"), None);
        assert_eq!(read("2001:db8::1"), None);
    }

    #[test]
    fn legacy_ipv4_edges() {
        assert_eq!(parse_ipv4_legacy("4294967295"), Ok(Ipv4Addr::BROADCAST));
        assert_eq!(parse_ipv4_legacy("037777777777"), Ok(Ipv4Addr::BROADCAST));
        assert_eq!(parse_ipv4_legacy("0xFFFFFFFF"), Ok(Ipv4Addr::BROADCAST));
        assert_eq!(
            parse_ipv4_legacy("0x00000000000000007f000001"),
            Ok(Ipv4Addr::LOCALHOST)
        );
        assert_eq!(
            parse_ipv4_legacy("1.16777215"),
            Ok(Ipv4Addr::new(1, 255, 255, 255))
        );
        assert_eq!(parse_ipv4_legacy("0"), Ok(Ipv4Addr::UNSPECIFIED));
        assert!(parse_ipv4_legacy("4294967296").is_err());
        assert!(parse_ipv4_legacy("99999999999999999999999").is_err());
        assert!(parse_ipv4_legacy("1.16777216").is_err());
        assert!(parse_ipv4_legacy("1.2.65536").is_err());
        assert!(parse_ipv4_legacy("").is_err());
    }
}
