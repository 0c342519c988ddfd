//! Stateless SYN cookies: the initial sequence number of every probe is a keyed
//! hash of its 4-tuple, so a reply can be matched to a probe without a table and a
//! forged reply (one that did not see the probe) is rejected.
//!
//! A probe carries `seq = cookie(src, dst, src_port, dst_port)`. A genuine SYN-ACK or
//! RST-ACK acknowledges it with `ack == seq + 1` (wrapping); an ICMP error quotes the
//! probe's TCP header and so carries `seq` itself.

use std::fmt;
use std::net::IpAddr;

use siphasher::sip::SipHasher13;

/// Length of the hashed message: family tag, two 16-byte addresses, two ports.
const MESSAGE_LEN: usize = 1 + 16 + 16 + 2 + 2;

/// A random 128-bit SipHash key, one per scan.
#[derive(Clone)]
pub(crate) struct CookieKey {
    hasher: SipHasher13,
}

impl CookieKey {
    /// A fresh key from the thread-local CSPRNG.
    pub(crate) fn random() -> Self {
        Self::from_keys(rand::random(), rand::random())
    }

    /// A key from two given halves (tests and reproducible runs).
    pub(crate) fn from_keys(k0: u64, k1: u64) -> Self {
        Self {
            hasher: SipHasher13::new_with_keys(k0, k1),
        }
    }

    /// The cookie (initial sequence number) of the probe `src:src_port -> dst:dst_port`.
    ///
    /// Addresses of different families hash differently (a tag byte precedes them), so
    /// an IPv4 address and its IPv4-mapped IPv6 form give different cookies.
    pub(crate) fn cookie(&self, src: IpAddr, dst: IpAddr, src_port: u16, dst_port: u16) -> u32 {
        let mut message = [0u8; MESSAGE_LEN];
        message[0] = match (src, dst) {
            (IpAddr::V4(_), IpAddr::V4(_)) => 4,
            (IpAddr::V6(_), IpAddr::V6(_)) => 6,
            _ => 0,
        };
        message[1..17].copy_from_slice(&address_bytes(src));
        message[17..33].copy_from_slice(&address_bytes(dst));
        message[33..35].copy_from_slice(&src_port.to_be_bytes());
        message[35..37].copy_from_slice(&dst_port.to_be_bytes());
        let hash = self.hasher.hash(&message);
        // Fold both halves so every key bit influences the 32-bit result.
        ((hash >> 32) as u32) ^ (hash as u32)
    }

    /// Whether `ack` (from a SYN-ACK or RST-ACK) acknowledges the probe
    /// `src:src_port -> dst:dst_port`, i.e. equals its cookie plus one.
    ///
    /// The arguments describe the probe as sent, not the reply: a reply from
    /// `r.src:r.src_port` to our `r.dst_port` is verified with
    /// `verify(our_source, r.src, r.dst_port, r.src_port, r.ack)`.
    pub(crate) fn verify(
        &self,
        src: IpAddr,
        dst: IpAddr,
        src_port: u16,
        dst_port: u16,
        ack: u32,
    ) -> bool {
        ack == self.cookie(src, dst, src_port, dst_port).wrapping_add(1)
    }

    /// Whether `seq` (quoted by an ICMP error about a probe) is the probe's cookie.
    pub(crate) fn verify_quoted(
        &self,
        src: IpAddr,
        dst: IpAddr,
        src_port: u16,
        dst_port: u16,
        seq: u32,
    ) -> bool {
        seq == self.cookie(src, dst, src_port, dst_port)
    }
}

impl fmt::Debug for CookieKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the key.
        f.write_str("CookieKey(..)")
    }
}

/// The address as 16 bytes: IPv6 as is, IPv4 in the first four bytes.
fn address_bytes(ip: IpAddr) -> [u8; 16] {
    match ip {
        IpAddr::V6(v6) => v6.octets(),
        IpAddr::V4(v4) => {
            let mut bytes = [0u8; 16];
            bytes[..4].copy_from_slice(&v4.octets());
            bytes
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    const A: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 18, 0, 1));
    const B: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 18, 0, 2));
    const A6: IpAddr = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1));
    const B6: IpAddr = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2));

    #[test]
    fn cookie_is_deterministic_per_key() {
        let key = CookieKey::from_keys(1, 2);
        assert_eq!(key.cookie(A, B, 40000, 80), key.cookie(A, B, 40000, 80));
        assert_eq!(
            CookieKey::from_keys(1, 2).cookie(A6, B6, 1, 2),
            key.cookie(A6, B6, 1, 2)
        );
    }

    #[test]
    fn cookie_depends_on_every_field_and_the_key() {
        let key = CookieKey::from_keys(0x0123_4567_89ab_cdef, 0xfedc_ba98_7654_3210);
        let base = key.cookie(A, B, 40000, 80);
        assert_ne!(base, key.cookie(B, A, 40000, 80));
        assert_ne!(base, key.cookie(A, B, 40001, 80));
        assert_ne!(base, key.cookie(A, B, 40000, 81));
        assert_ne!(base, key.cookie(A, B, 80, 40000));
        assert_ne!(base, CookieKey::from_keys(1, 2).cookie(A, B, 40000, 80));
        let mapped = |ip: IpAddr| match ip {
            IpAddr::V4(v4) => IpAddr::V6(v4.to_ipv6_mapped()),
            other => other,
        };
        assert_ne!(base, key.cookie(mapped(A), mapped(B), 40000, 80));
    }

    #[test]
    fn verify_accepts_cookie_plus_one_only() {
        let key = CookieKey::random();
        let seq = key.cookie(A6, B6, 50000, 443);
        assert!(key.verify(A6, B6, 50000, 443, seq.wrapping_add(1)));
        assert!(!key.verify(A6, B6, 50000, 443, seq));
        assert!(!key.verify(A6, B6, 50000, 443, seq.wrapping_add(2)));
        assert!(!key.verify(A6, B6, 50001, 443, seq.wrapping_add(1)));
        assert!(key.verify_quoted(A6, B6, 50000, 443, seq));
        assert!(!key.verify_quoted(A6, B6, 50000, 443, seq.wrapping_add(1)));
    }

    #[test]
    fn random_keys_differ_and_debug_hides_key() {
        let (a, b) = (CookieKey::random(), CookieKey::random());
        // 2^-32 chance of a false failure per run is acceptable; use several tuples.
        let differs = (0..4u16).any(|p| a.cookie(A, B, p, 80) != b.cookie(A, B, p, 80));
        assert!(differs);
        assert_eq!(format!("{a:?}"), "CookieKey(..)");
    }
}
