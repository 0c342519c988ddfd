//! Raw sockets and packets for SYN scanning (Linux).
//!
//! - [`cookie`]: stateless per-probe sequence numbers ([`CookieKey`]) that let a
//!   reply be matched to its probe and forged replies be rejected.
//! - [`packet`]: building TCP SYN probes (header, options, checksum) and parsing
//!   what raw sockets receive into [`Reply`] values, without ever panicking.
//! - [`socket`]: opening raw sockets ([`RawSender`], [`RawReceiver`]) and finding the source address for a destination
//!   ([`source_for`]).
//!
//! No `unsafe` code: sockets come from `socket2`, and sending with an explicit
//! source address, receiving and polling go through `nix`'s safe wrappers.

pub(crate) mod cookie;
pub(crate) mod packet;
pub(crate) mod socket;

// What the SYN prober uses.
pub(crate) use cookie::CookieKey;
pub(crate) use packet::{PROTO_TCP, Reply, UnreachableKind};
pub(crate) use socket::{RawError, RawReceiver, RawSender, RawSocketKind, source_for};
