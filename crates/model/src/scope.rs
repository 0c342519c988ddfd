//! The authorised scan scope: the address ranges a server may scan.
//!
//! A [`Scope`] is a set of CIDR ranges, IPv4 and IPv6. A server has one; an API key may
//! narrow it further ([`Scope::narrow`]). Every address and range is checked against it
//! before a probe is sent ([`Scope::check_addr`], [`Scope::check_net`]), after the
//! forms that reach an IPv4 host through IPv6 have been read for the IPv4 address they
//! stand for:
//!
//! - an IPv4-mapped address (`::ffff:10.0.0.1`) is its IPv4 address;
//! - a NAT64 address (`64:ff9b::10.0.0.1`, or `64:ff9b:1::10.0.0.1` in the local-use
//!   prefix) is allowed only when the IPv4 address it embeds is in scope;
//! - a deprecated IPv4-compatible address (`::10.0.0.1`) is refused;
//! - the unspecified address (`0.0.0.0`, `::`), which reaches the scanning host
//!   itself, is refused.

use crate::addr::{
    self, COMPATIBLE, MAPPED, NAT64_LOCAL_USE, NAT64_LOCAL_USE_96, NAT64_WELL_KNOWN, Nat64,
};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

const UNSPECIFIED_WHY: &str = "the unspecified address, which reaches the scanning host itself";
const MAPPED_WHY: &str =
    "the IPv4-mapped addresses, which reach IPv4 hosts: write the IPv4 range instead";
const COMPATIBLE_WHY: &str = "the deprecated IPv4-compatible addresses, which are never scanned: write the IPv4 range instead";
const NAT64_WHY: &str = "a NAT64 prefix, whose addresses reach IPv4 hosts: write the IPv4 range, or its NAT64 form with a prefix of /96 or longer";

/// The set of addresses a server is authorised to scan: CIDR ranges, IPv4 and IPv6.
///
/// Kept as the smallest list of disjoint ranges that covers the same addresses
/// (IPv4 first, each family in address order); IPv4-mapped IPv6 ranges are stored as
/// their IPv4 range. An empty scope allows nothing. Serialised as a list of CIDR
/// strings (`["10.0.0.0/8", "2001:db8::/32"]`); deserialising checks each entry as
/// [`Scope::parse_entry`] does.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Scope {
    nets: Vec<IpNet>,
}

/// Why a scope entry was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ScopeParseError {
    /// A list with no entry at all.
    #[error("the scope is empty: list at least one CIDR range")]
    Empty,
    /// An entry that is not a CIDR range, or one that cannot stand in a scope.
    #[error("invalid scope entry \"{entry}\": {detail}")]
    BadEntry {
        /// The entry as written.
        entry: String,
        /// What was wrong.
        detail: String,
    },
}

/// Why an address or a range may not be scanned. The messages name the address or
/// range and say why, fit for the detail of an HTTP 403 problem.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ScopeError {
    /// The address is not in the scope.
    #[error("{addr} is outside the authorised scan scope")]
    OutOfScope {
        /// The address (IPv4 for an IPv4-mapped one).
        addr: IpAddr,
    },
    /// A NAT64 address whose embedded IPv4 address is not in the scope.
    #[error("{addr} is the NAT64 form of {ipv4}, which is outside the authorised scan scope")]
    Nat64OutOfScope {
        /// The NAT64 address.
        addr: Ipv6Addr,
        /// The IPv4 address it reaches.
        ipv4: Ipv4Addr,
    },
    /// In the NAT64 local-use prefix `64:ff9b:1::/48` but outside `64:ff9b:1::/96`,
    /// where the IPv4 address reached depends on how the translator is configured.
    #[error(
        "{target} is in the NAT64 local-use prefix 64:ff9b:1::/48 outside 64:ff9b:1::/96, where the IPv4 address it reaches depends on the translator's prefix length: write the IPv4 address, or its 64:ff9b:1::/96 form"
    )]
    Nat64Ambiguous {
        /// The address or range as written.
        target: String,
    },
    /// A deprecated IPv4-compatible IPv6 address (`::a.b.c.d`).
    #[error(
        "{addr} is a deprecated IPv4-compatible IPv6 address, which is never scanned: write the IPv4 address {ipv4} instead"
    )]
    Ipv4Compatible {
        /// The address.
        addr: Ipv6Addr,
        /// The IPv4 address it embeds.
        ipv4: Ipv4Addr,
    },
    /// A range of deprecated IPv4-compatible IPv6 addresses.
    #[error(
        "{net} is a range of deprecated IPv4-compatible IPv6 addresses, which are never scanned: write the IPv4 range {ipv4} instead"
    )]
    Ipv4CompatibleNet {
        /// The range.
        net: Ipv6Net,
        /// The IPv4 range it embeds.
        ipv4: Ipv4Net,
    },
    /// `0.0.0.0` or `::`, which a connection treats as the scanning host itself.
    #[error("{addr} is {UNSPECIFIED_WHY}; it is never scanned")]
    Unspecified {
        /// The address.
        addr: IpAddr,
    },
    /// No address of the range is in the scope.
    #[error("{net} is outside the authorised scan scope")]
    NetOutOfScope {
        /// The range (IPv4 for an IPv4-mapped one).
        net: IpNet,
    },
    /// Part of the range is outside the scope; a range is scanned only when all of it
    /// is inside.
    #[error(
        "{net} is not entirely inside the authorised scan scope: its addresses from {first_outside} to {last_outside} are outside it"
    )]
    NetPartlyOutOfScope {
        /// The range (IPv4 for an IPv4-mapped one).
        net: IpNet,
        /// The range's first address outside the scope.
        first_outside: IpAddr,
        /// The last address of the run outside the scope that starts at `first_outside`
        /// (there may be more runs after it).
        last_outside: IpAddr,
    },
    /// A NAT64 range whose embedded IPv4 range is not entirely in the scope.
    #[error(
        "{net} is the NAT64 form of {ipv4}, which is not entirely inside the authorised scan scope: {first_outside} is outside it"
    )]
    Nat64NetOutOfScope {
        /// The NAT64 range.
        net: Ipv6Net,
        /// The IPv4 range it reaches.
        ipv4: Ipv4Net,
        /// The IPv4 range's first address outside the scope.
        first_outside: Ipv4Addr,
    },
    /// A range that covers addresses which are never scanned as such: the unspecified
    /// address, or a whole prefix of IPv6 addresses that stand for IPv4 ones.
    #[error("{net} covers {special}, {why}")]
    CoversSpecial {
        /// The range.
        net: IpNet,
        /// The special range it covers.
        special: IpNet,
        /// What the special range is, and what to write instead.
        why: &'static str,
    },
}

impl Scope {
    /// A scope of these ranges. Host bits are cleared, IPv4-mapped ranges of /96 or
    /// longer become their IPv4 range, and overlapping or adjacent ranges are merged.
    /// Unlike [`Scope::parse`], nothing is refused: an IPv4-compatible or NAT64 range
    /// here allows nothing, as those addresses are checked by the IPv4 address they
    /// embed.
    pub fn new(nets: Vec<IpNet>) -> Scope {
        let nets: Vec<IpNet> = nets
            .into_iter()
            .map(|net| match net.trunc() {
                IpNet::V6(v6) if MAPPED.contains(&v6) => IpNet::V4(addr::embedded_net(v6)),
                other => other,
            })
            .collect();
        Scope::from_canonical(nets)
    }

    fn from_canonical(nets: Vec<IpNet>) -> Scope {
        let mut nets = IpNet::aggregate(&nets);
        nets.sort_by_key(|net| (matches!(net, IpNet::V6(_)), bounds(*net).0));
        Scope { nets }
    }

    /// A scope from a list of entries, each checked as [`Scope::parse_entry`] checks it.
    /// An empty list is an empty scope, which allows nothing.
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<Scope, ScopeParseError> {
        entries
            .iter()
            .map(|entry| Scope::parse_entry(entry.as_ref()))
            .collect::<Result<Vec<_>, _>>()
            .map(Scope::from_canonical)
    }

    /// One scope entry: a CIDR range (`10.0.0.0/8`, `2001:db8::/32`) or a single
    /// address (`/32` or `/128`), in standard form.
    ///
    /// Stricter than a scan target, as an entry grants access:
    /// - the base must be the range's first address (`10.0.0.1/8` is refused, not read
    ///   as `10.0.0.0/8`);
    /// - legacy IPv4 forms (`10.1`, `0x0a000000`) are refused;
    /// - an IPv4-mapped range needs a prefix of /96 or longer and becomes its IPv4 range
    ///   (`::ffff:10.0.0.0/104` is `10.0.0.0/8`);
    /// - IPv4-compatible and NAT64 ranges are refused: those addresses are checked by
    ///   the IPv4 address they embed, so only an IPv4 entry can allow them.
    pub fn parse_entry(entry: &str) -> Result<IpNet, ScopeParseError> {
        let text = entry.trim();
        let bad = |detail: String| ScopeParseError::BadEntry {
            entry: text.to_string(),
            detail,
        };
        if text.is_empty() {
            return Err(bad("it is empty".to_string()));
        }
        let (base, prefix) = match text.split_once('/') {
            Some((base, prefix)) => (base, Some(prefix)),
            None => (text, None),
        };
        let ip: IpAddr = base.parse().map_err(|_| {
            let numeric = base.split('.').all(addr::is_numeric_label);
            match addr::parse_ipv4_legacy(base) {
                Ok(v4) if numeric => bad(format!(
                    "\"{base}\" is not a dotted-quad address; write {v4}"
                )),
                _ => bad(format!("\"{base}\" is not an IP address")),
            }
        })?;
        let max = if ip.is_ipv4() { 32 } else { 128 };
        let len = match prefix {
            None => max,
            Some(p) if !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()) => p
                .parse::<u8>()
                .map_err(|_| bad(format!("prefix \"{p}\" is not a number")))?,
            Some(p) => return Err(bad(format!("prefix \"{p}\" is not a number"))),
        };
        let net =
            IpNet::new(ip, len).map_err(|_| bad(format!("prefix /{len} is longer than /{max}")))?;
        if let IpAddr::V6(v6) = ip
            && v6.to_ipv4_mapped().is_some()
            && len < 96
        {
            return Err(bad(format!(
                "{base} is an IPv4-mapped address, so its prefix must be /96 or longer (/96 plus the IPv4 prefix)"
            )));
        }
        if net.trunc().addr() != ip {
            return Err(bad(format!(
                "{ip} is not the first address of a /{len}; did you mean {}?",
                net.trunc()
            )));
        }
        let IpNet::V6(net6) = net else {
            return Ok(net);
        };
        if MAPPED.contains(&net6) {
            return Ok(IpNet::V4(addr::embedded_net(net6)));
        }
        // Inside ::/96 only `::` and `::1` are not IPv4-compatible.
        if COMPATIBLE.contains(&net6) && u128::from(net6.broadcast()) > 1 {
            return Err(bad(format!(
                "{net6} is a range of deprecated IPv4-compatible IPv6 addresses, which are never scanned; write the IPv4 range {} instead",
                addr::embedded_net(net6)
            )));
        }
        if NAT64_WELL_KNOWN.contains(&net6) || NAT64_LOCAL_USE.contains(&net6) {
            return Err(bad(format!(
                "{net6} is a NAT64 range; NAT64 addresses are checked by the IPv4 address they embed, so list the IPv4 range instead"
            )));
        }
        Ok(net)
    }

    /// The scope's ranges: disjoint, merged, IPv4 first, each family in address order.
    pub fn nets(&self) -> &[IpNet] {
        &self.nets
    }

    /// Whether the scope allows nothing.
    pub fn is_empty(&self) -> bool {
        self.nets.is_empty()
    }

    /// The addresses in both scopes (an API key's scope narrowing a server's). Two
    /// CIDR ranges either nest or are disjoint, so the intersection of two lists is
    /// the smaller of each nested pair, and is exact.
    pub fn narrow(&self, other: &Scope) -> Scope {
        let mut nets = Vec::new();
        for a in &self.nets {
            for b in &other.nets {
                if a.contains(b) {
                    nets.push(*b);
                } else if b.contains(a) {
                    nets.push(*a);
                }
            }
        }
        Scope::from_canonical(nets)
    }

    /// Checks one address and returns the address to scan.
    ///
    /// An IPv4-mapped address is checked, and returned, as its IPv4 address. A NAT64
    /// address (`64:ff9b::/96`, or `64:ff9b:1::/96` in the local-use prefix) is checked
    /// by the IPv4 address in its low 32 bits and returned as it is, to be reached
    /// through the translator; an address elsewhere in the local-use `64:ff9b:1::/48`
    /// is refused, as the IPv4 address it reaches cannot be known. IPv4-compatible
    /// addresses and the unspecified address are refused.
    pub fn check_addr(&self, ip: IpAddr) -> Result<IpAddr, ScopeError> {
        let ip = ip.to_canonical();
        if ip.is_unspecified() {
            return Err(ScopeError::Unspecified { addr: ip });
        }
        if let IpAddr::V6(v6) = ip {
            if let Some(ipv4) = addr::ipv4_compatible(v6) {
                return Err(ScopeError::Ipv4Compatible { addr: v6, ipv4 });
            }
            match addr::nat64_embedded(v6) {
                Some(Nat64::Embeds(ipv4)) if self.contains(IpAddr::V4(ipv4)) => return Ok(ip),
                Some(Nat64::Embeds(ipv4)) => {
                    return Err(ScopeError::Nat64OutOfScope { addr: v6, ipv4 });
                }
                Some(Nat64::Ambiguous) => {
                    return Err(ScopeError::Nat64Ambiguous {
                        target: v6.to_string(),
                    });
                }
                None => {}
            }
        }
        if self.contains(ip) {
            Ok(ip)
        } else {
            Err(ScopeError::OutOfScope { addr: ip })
        }
    }

    /// Checks a CIDR range and returns the range to scan: allowed only when every
    /// address in it is in scope. A range of one address is checked as
    /// [`Scope::check_addr`] checks it.
    ///
    /// An IPv4-mapped range of /96 or longer is checked, and returned, as its IPv4
    /// range; a NAT64 range of /96 or longer by its IPv4 range, and returned as it is.
    /// Refused: ranges of IPv4-compatible addresses, ranges that contain the
    /// unspecified address, and ranges that cover a whole IPv4-mapped,
    /// IPv4-compatible or NAT64 prefix (`::/64`, `64:ff9b::/64`).
    pub fn check_net(&self, net: IpNet) -> Result<IpNet, ScopeError> {
        let net = net.trunc();
        if net.prefix_len() == net.max_prefix_len() {
            return self.check_addr(net.addr()).map(IpNet::from);
        }
        let covers =
            |special: IpNet, why: &'static str| ScopeError::CoversSpecial { net, special, why };
        let v6 = match net {
            IpNet::V4(v4) => {
                if v4.contains(&Ipv4Addr::UNSPECIFIED) {
                    return Err(covers(
                        IpNet::from(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
                        UNSPECIFIED_WHY,
                    ));
                }
                return self.check_covered(net).map(|()| net);
            }
            IpNet::V6(v6) => v6,
        };
        if MAPPED.contains(&v6) {
            return self.check_net(IpNet::V4(addr::embedded_net(v6)));
        }
        if v6.contains(&MAPPED) {
            return Err(covers(IpNet::V6(MAPPED), MAPPED_WHY));
        }
        if COMPATIBLE.contains(&v6) {
            // Inside ::/96 only `::` and `::1` are not IPv4-compatible: this is ::/127.
            if u128::from(v6.broadcast()) <= 1 {
                return Err(covers(
                    IpNet::from(IpAddr::V6(Ipv6Addr::UNSPECIFIED)),
                    UNSPECIFIED_WHY,
                ));
            }
            return Err(ScopeError::Ipv4CompatibleNet {
                net: v6,
                ipv4: addr::embedded_net(v6),
            });
        }
        if v6.contains(&COMPATIBLE) {
            return Err(covers(IpNet::V6(COMPATIBLE), COMPATIBLE_WHY));
        }
        for prefix in [NAT64_WELL_KNOWN, NAT64_LOCAL_USE_96] {
            if prefix.contains(&v6) {
                let ipv4 = addr::embedded_net(v6);
                return match self.first_gap(IpNet::V4(ipv4)) {
                    None => Ok(net),
                    Some((IpAddr::V4(first_outside), _)) => Err(ScopeError::Nat64NetOutOfScope {
                        net: v6,
                        ipv4,
                        first_outside,
                    }),
                    Some(_) => Err(ScopeError::NetOutOfScope { net }),
                };
            }
        }
        if NAT64_LOCAL_USE.contains(&v6) {
            return Err(ScopeError::Nat64Ambiguous {
                target: v6.to_string(),
            });
        }
        // A range covering the local-use /48 covers its sibling 64:ff9b::/48 too.
        if v6.contains(&NAT64_WELL_KNOWN) {
            return Err(covers(IpNet::V6(NAT64_WELL_KNOWN), NAT64_WHY));
        }
        self.check_covered(net).map(|()| net)
    }

    fn contains(&self, ip: IpAddr) -> bool {
        self.nets.iter().any(|net| net.contains(&ip))
    }

    fn check_covered(&self, net: IpNet) -> Result<(), ScopeError> {
        match self.first_gap(net) {
            None => Ok(()),
            Some((first, last)) if first == net.network() && last == net.broadcast() => {
                Err(ScopeError::NetOutOfScope { net })
            }
            Some((first_outside, last_outside)) => Err(ScopeError::NetPartlyOutOfScope {
                net,
                first_outside,
                last_outside,
            }),
        }
    }

    /// The first run of the range's addresses that the scope does not cover, as its
    /// first and last address; `None` when the scope covers all of the range.
    fn first_gap(&self, net: IpNet) -> Option<(IpAddr, IpAddr)> {
        let (start, end) = bounds(net);
        let to_addr = |bits: u128| match net {
            IpNet::V4(_) => IpAddr::V4(Ipv4Addr::from(bits as u32)),
            IpNet::V6(_) => IpAddr::V6(Ipv6Addr::from(bits)),
        };
        let mut cursor = start;
        // The scope's ranges of the same family are disjoint and in address order.
        for (low, high) in self
            .nets
            .iter()
            .filter(|n| n.addr().is_ipv4() == net.addr().is_ipv4())
            .map(|n| bounds(*n))
        {
            if high < cursor {
                continue;
            }
            if low > cursor {
                return Some((to_addr(cursor), to_addr(end.min(low - 1))));
            }
            if high >= end {
                return None;
            }
            cursor = high + 1;
        }
        Some((to_addr(cursor), to_addr(end)))
    }
}

/// A range's first and last address as integers.
fn bounds(net: IpNet) -> (u128, u128) {
    match net {
        IpNet::V4(v4) => (
            u128::from(u32::from(v4.network())),
            u128::from(u32::from(v4.broadcast())),
        ),
        IpNet::V6(v6) => (u128::from(v6.network()), u128::from(v6.broadcast())),
    }
}

impl FromStr for Scope {
    type Err = ScopeParseError;

    /// A list of entries separated by commas or whitespace
    /// (`"10.0.0.0/8, 2001:db8::/32"`), each checked as [`Scope::parse_entry`] checks
    /// it. Text with no entry is refused: an empty scope is written as an empty list.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let entries: Vec<&str> = text
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|entry| !entry.is_empty())
            .collect();
        if entries.is_empty() {
            return Err(ScopeParseError::Empty);
        }
        Scope::parse(&entries)
    }
}

impl fmt::Display for Scope {
    /// The ranges separated by `", "`; `(empty)` for an empty scope.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.nets.is_empty() {
            return f.write_str("(empty)");
        }
        for (i, net) in self.nets.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{net}")?;
        }
        Ok(())
    }
}

impl Serialize for Scope {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.nets.iter().map(ToString::to_string))
    }
}

impl<'de> Deserialize<'de> for Scope {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let entries = Vec::<String>::deserialize(deserializer)?;
        Scope::parse(&entries).map_err(serde::de::Error::custom)
    }
}
