//! Address and name derivation for lab hosts.
//!
//! Every lab host gets one /30 out of 198.18.0.0/16 (the lower half of
//! 198.18.0.0/15, RFC 2544, benchmarking; lab networks take 198.19.0.0/16)
//! and one /64 out of 2001:db8::/32 (RFC 3849, documentation), both chosen by
//! a "subnet index" in `0..SUBNET_COUNT`. Nothing in this module can produce an
//! address outside those two ranges; [`in_lab_range`] is the check the rest of
//! the crate uses before it sends anything anywhere.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Number of /30 subnets in 198.18.0.0/16 (198.19.0.0/16 is for lab networks).
pub(crate) const SUBNET_COUNT: u16 = 16384;

/// First address of 198.18.0.0/15.
const V4_BASE: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 0);

/// One lab subnet: a /30 (IPv4) and a /64 (IPv6) plus the veth names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Subnet {
    index: u16,
}

impl Subnet {
    /// The subnet with the given index (taken modulo [`SUBNET_COUNT`]).
    pub(crate) fn new(index: u16) -> Self {
        Self {
            index: index % SUBNET_COUNT,
        }
    }

    /// The subnet index.
    #[cfg(test)]
    pub(crate) fn index(self) -> u16 {
        self.index
    }

    /// The next subnet index, wrapping around.
    pub(crate) fn next(self) -> Self {
        Self::new((self.index + 1) % SUBNET_COUNT)
    }

    fn v4_at(self, offset: u32) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(V4_BASE) + u32::from(self.index) * 4 + offset)
    }

    /// Root-namespace side IPv4 address (`.1` of the /30).
    pub(crate) fn host_v4(self) -> Ipv4Addr {
        self.v4_at(1)
    }

    /// Namespace side IPv4 address (`.2` of the /30).
    pub(crate) fn ns_v4(self) -> Ipv4Addr {
        self.v4_at(2)
    }

    /// Root-namespace side IPv6 address (`2001:db8:<index>::1`).
    pub(crate) fn host_v6(self) -> Ipv6Addr {
        Ipv6Addr::new(0x2001, 0x0db8, self.index, 0, 0, 0, 0, 1)
    }

    /// Namespace side IPv6 address (`2001:db8:<index>::2`).
    pub(crate) fn ns_v6(self) -> Ipv6Addr {
        Ipv6Addr::new(0x2001, 0x0db8, self.index, 0, 0, 0, 0, 2)
    }

    /// Root-namespace side veth name (`pgh<hex index>`, at most 7 chars).
    pub(crate) fn host_if(self) -> String {
        format!("pgh{:x}", self.index)
    }

    /// Namespace side veth name (`pgn<hex index>`, at most 7 chars).
    pub(crate) fn ns_if(self) -> String {
        format!("pgn{:x}", self.index)
    }
}

/// First subnet index to try for the lab host number `counter` of process `pid`.
pub(crate) fn candidate_index(pid: u32, counter: u32) -> u16 {
    let mut hasher = DefaultHasher::new();
    (pid, counter).hash(&mut hasher);
    let reduced = hasher.finish() % u64::from(SUBNET_COUNT);
    // `reduced < 32768`, so the conversion cannot fail.
    u16::try_from(reduced).unwrap_or(0)
}

/// Whether `ip` lies inside the only ranges this crate may ever touch:
/// 198.18.0.0/15 and 2001:db8::/32.
pub fn in_lab_range(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            a == 198 && (b == 18 || b == 19)
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            s[0] == 0x2001 && s[1] == 0x0db8
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_and_last_subnets() {
        let first = Subnet::new(0);
        assert_eq!(first.host_v4(), Ipv4Addr::new(198, 18, 0, 1));
        assert_eq!(first.ns_v4(), Ipv4Addr::new(198, 18, 0, 2));
        assert_eq!(
            first.host_v6(),
            "2001:db8:0::1".parse::<Ipv6Addr>().expect("literal")
        );
        assert_eq!(
            first.ns_v6(),
            "2001:db8:0::2".parse::<Ipv6Addr>().expect("literal")
        );
        assert_eq!(first.host_if(), "pgh0");
        assert_eq!(first.ns_if(), "pgn0");

        let last = Subnet::new(SUBNET_COUNT - 1);
        assert_eq!(last.host_v4(), Ipv4Addr::new(198, 18, 255, 253));
        assert_eq!(last.ns_v4(), Ipv4Addr::new(198, 18, 255, 254));
        assert_eq!(
            last.ns_v6(),
            "2001:db8:3fff::2".parse::<Ipv6Addr>().expect("literal")
        );
        assert_eq!(last.host_if(), "pgh3fff");
        assert_eq!(last.ns_if(), "pgn3fff");
    }

    #[test]
    fn index_wraps_and_next_wraps() {
        assert_eq!(Subnet::new(SUBNET_COUNT).index(), 0);
        assert_eq!(Subnet::new(SUBNET_COUNT - 1).next().index(), 0);
        assert_eq!(Subnet::new(5).next().index(), 6);
        let s = Subnet::new(0x1a2b);
        assert_eq!(s.host_v4(), Ipv4Addr::new(198, 18, 0x68, 0xad));
        assert_eq!(s.ns_v6().segments()[2], 0x1a2b);
    }

    #[test]
    fn every_subnet_stays_in_range_and_names_fit() {
        for index in 0..SUBNET_COUNT {
            let s = Subnet::new(index);
            for ip in [
                IpAddr::V4(s.host_v4()),
                IpAddr::V4(s.ns_v4()),
                IpAddr::V6(s.host_v6()),
                IpAddr::V6(s.ns_v6()),
            ] {
                assert!(in_lab_range(ip), "{ip} out of range for index {index}");
            }
            assert!(s.host_if().len() <= 15);
            assert!(s.ns_if().len() <= 15);
            // .1 and .2 of a /30: the network address is a multiple of 4.
            assert_eq!(u32::from(s.host_v4()) % 4, 1);
            // 198.19.0.0/16 is left to lab networks.
            assert_eq!(s.ns_v4().octets()[..2], [198, 18]);
        }
    }

    #[test]
    fn range_check_rejects_everything_else() {
        for ip in [
            "127.0.0.1",
            "198.17.255.255",
            "198.20.0.0",
            "10.0.0.1",
            "::1",
            "2001:db9::1",
            "fd00::2",
        ] {
            let ip: IpAddr = ip.parse().expect("literal");
            assert!(!in_lab_range(ip), "{ip} must be out of range");
        }
    }

    #[test]
    fn candidate_index_is_deterministic_and_in_range() {
        assert_eq!(candidate_index(42, 7), candidate_index(42, 7));
        for counter in 0..1000 {
            assert!(candidate_index(1234, counter) < SUBNET_COUNT);
        }
        let distinct: std::collections::BTreeSet<u16> =
            (0..100).map(|c| candidate_index(1234, c)).collect();
        assert!(distinct.len() > 90, "hash spreads indices");
    }
}
