//! Port states and the observation that led to each.

use serde::{Deserialize, Serialize};
use std::fmt;

/// What a scan concluded about one port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PortState {
    /// Something accepted the connection (the handshake completed).
    Open,
    /// The host answered that nothing listens (RST / connection refused).
    Closed,
    /// No answer after every retry, or an ICMP unreachable: something in the way.
    Filtered,
    /// UDP: no answer, which an open service and a filter both produce.
    OpenFiltered,
}

impl PortState {
    /// Every state, in display order.
    pub const ALL: [PortState; 4] = [
        PortState::Open,
        PortState::Closed,
        PortState::Filtered,
        PortState::OpenFiltered,
    ];

    /// The name used in tables and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            PortState::Open => "open",
            PortState::Closed => "closed",
            PortState::Filtered => "filtered",
            PortState::OpenFiltered => "open|filtered",
        }
    }

    /// The state named `name` as [`PortState::as_str`] writes it.
    pub fn from_name(name: &str) -> Option<PortState> {
        PortState::ALL.into_iter().find(|s| s.as_str() == name)
    }
}

impl fmt::Display for PortState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The observation behind a [`PortState`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Reason {
    /// The TCP handshake completed (connect scan) or a SYN-ACK came back.
    SynAck,
    /// The connection was refused: a TCP reset came back.
    Reset,
    /// An ICMP host-unreachable came back (or the kernel reported the host unreachable).
    HostUnreachable,
    /// An ICMP network-unreachable came back, or there is no route.
    NetUnreachable,
    /// An ICMP administratively-prohibited (a firewall said no).
    AdminProhibited,
    /// No answer to any attempt.
    NoResponse,
    /// The local system refused to send (e.g. a local firewall rule).
    LocalRefusal,
    /// A UDP datagram came back.
    UdpResponse,
    /// An ICMP port-unreachable came back (UDP: nothing listens).
    PortUnreachable,
    /// The host answers SYN-ACK on nearly every port: a tarpit, not a service.
    Tarpit,
}

impl Reason {
    /// Every reason.
    pub const ALL: [Reason; 10] = [
        Reason::SynAck,
        Reason::Reset,
        Reason::HostUnreachable,
        Reason::NetUnreachable,
        Reason::AdminProhibited,
        Reason::NoResponse,
        Reason::LocalRefusal,
        Reason::UdpResponse,
        Reason::PortUnreachable,
        Reason::Tarpit,
    ];

    /// The reason named `name` as [`Reason::as_str`] writes it.
    pub fn from_name(name: &str) -> Option<Reason> {
        Reason::ALL.into_iter().find(|r| r.as_str() == name)
    }

    /// The name used in tables and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::SynAck => "syn-ack",
            Reason::Reset => "reset",
            Reason::HostUnreachable => "host-unreach",
            Reason::NetUnreachable => "net-unreach",
            Reason::AdminProhibited => "admin-prohibited",
            Reason::NoResponse => "no-response",
            Reason::LocalRefusal => "local-refusal",
            Reason::UdpResponse => "udp-response",
            Reason::PortUnreachable => "port-unreach",
            Reason::Tarpit => "tarpit",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
