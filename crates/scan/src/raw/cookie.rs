//! Stateless SYN cookies: the initial sequence number of every probe is a keyed
//! hash of its 4-tuple, so a reply can be matched to a probe without a table and a
//! forged reply (one that did not see the probe) is rejected.
//!
//! A probe carries `seq = cookie(src, dst, src_port, dst_port)` with its low four bits
//! replaced by the attempt number ([`CookieKey::probe_seq`]). A genuine SYN-ACK or
//! RST-ACK acknowledges it with `ack == seq + 1` (wrapping); an ICMP error quotes the
//! probe's TCP header and so carries `seq` itself. Either way the answer says which
//! attempt it answers: an answer to a first SYN that arrives after its retry went out is
//! a late answer, not a lost probe, and its round trip is measured from the right send
//! (Karn's problem, solved by tagging instead of by discarding the sample).

use std::fmt;
use std::net::IpAddr;

use siphasher::sip::SipHasher13;

/// Length of the hashed message: family tag, two 16-byte addresses, two ports.
const MESSAGE_LEN: usize = 1 + 16 + 16 + 2 + 2;

/// The low bits of a probe's sequence number that carry its attempt number; the other
/// 28 bits are the keyed hash.
pub(crate) const ATTEMPT_MASK: u32 = 0xF;

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

    /// The sequence number of attempt `attempt` (0-based, at most [`ATTEMPT_MASK`]) of
    /// the probe `src:src_port -> dst:dst_port`.
    pub(crate) fn probe_seq(
        &self,
        src: IpAddr,
        dst: IpAddr,
        src_port: u16,
        dst_port: u16,
        attempt: u8,
    ) -> u32 {
        (self.cookie(src, dst, src_port, dst_port) & !ATTEMPT_MASK)
            | (u32::from(attempt) & ATTEMPT_MASK)
    }

    /// Which attempt `ack` (from a SYN-ACK or RST-ACK) acknowledges, if it acknowledges
    /// one of the probe `src:src_port -> dst:dst_port`, i.e. equals one of its sequence
    /// numbers plus one.
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
    ) -> Option<u8> {
        self.verify_quoted(src, dst, src_port, dst_port, ack.wrapping_sub(1))
    }

    /// Which attempt `seq` (quoted by an ICMP error about a probe) belongs to, if it is
    /// one of the probe's sequence numbers.
    pub(crate) fn verify_quoted(
        &self,
        src: IpAddr,
        dst: IpAddr,
        src_port: u16,
        dst_port: u16,
        seq: u32,
    ) -> Option<u8> {
        let expected = self.cookie(src, dst, src_port, dst_port) & !ATTEMPT_MASK;
        // The mask keeps the value under 16.
        (seq & !ATTEMPT_MASK == expected).then_some((seq & ATTEMPT_MASK) as u8)
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
        let seq = key.probe_seq(A6, B6, 50000, 443, 0);
        assert_eq!(key.verify(A6, B6, 50000, 443, seq.wrapping_add(1)), Some(0));
        assert_eq!(key.verify(A6, B6, 50000, 443, seq.wrapping_add(17)), None);
        assert_eq!(key.verify(A6, B6, 50000, 443, seq.wrapping_sub(16)), None);
        assert_eq!(key.verify(A6, B6, 50001, 443, seq.wrapping_add(1)), None);
        assert_eq!(key.verify_quoted(A6, B6, 50000, 443, seq), Some(0));
        assert_eq!(key.verify_quoted(A6, B6, 50000, 443, seq ^ 0x100), None);
    }

    #[test]
    fn every_attempt_is_told_apart() {
        let key = CookieKey::from_keys(7, 9);
        for attempt in 0..=ATTEMPT_MASK as u8 {
            let seq = key.probe_seq(A, B, 61_000, 22, attempt);
            assert_eq!(
                key.verify(A, B, 61_000, 22, seq.wrapping_add(1)),
                Some(attempt)
            );
            assert_eq!(key.verify_quoted(A, B, 61_000, 22, seq), Some(attempt));
            assert_eq!(key.verify(A, B, 61_000, 23, seq.wrapping_add(1)), None);
        }
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
