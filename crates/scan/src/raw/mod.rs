//! Raw sockets and packets for SYN scanning (Linux).
//!
//! - [`cookie`]: stateless per-probe sequence numbers ([`CookieKey`]) that let a
//!   reply be matched to its probe and forged replies be rejected.
//! - [`packet`]: building TCP SYN probes (header, options, checksum) and parsing
//!   what raw sockets receive into [`Reply`] values, without ever panicking.
//! - [`socket`]: opening raw sockets ([`raw_capability`], [`RawSender`],
//!   [`RawReceiver`]) and finding the source address for a destination
//!   ([`source_for`]).
//!
//! No `unsafe` code: sockets come from `socket2`, and sending with an explicit
//! source address, receiving and polling go through `nix`'s safe wrappers.

pub(crate) mod cookie;
pub(crate) mod packet;
pub(crate) mod socket;

// The module's façade for the engine; not every item is used by every caller.
#[allow(unused_imports)]
pub(crate) use cookie::CookieKey;
#[allow(unused_imports)]
pub(crate) use packet::{
    FamilyMismatch, PROTO_TCP, PROTO_UDP, Reply, UnreachableKind, build_syn, internet_checksum,
    parse_icmp_v4, parse_icmp_v6, parse_tcp_v4, parse_tcp_v6,
};
#[allow(unused_imports)]
pub(crate) use socket::{
    RawError, RawReceiver, RawSender, RawSocketKind, raw_capability, source_for,
};
