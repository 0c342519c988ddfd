//! Port states and the observation that led to each.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A port's state: what a scan concluded about one port. Written by its name
/// ([`PortState::as_str`]); the older `open_filtered` is read too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub enum PortState {
    /// The handshake completed.
    #[serde(rename = "open")]
    Open,
    /// Refused (TCP reset).
    #[serde(rename = "closed")]
    Closed,
    /// No answer after retries, an ICMP unreachable, or a tarpit's answer.
    #[serde(rename = "filtered")]
    Filtered,
    /// UDP: no answer.
    #[serde(rename = "open|filtered", alias = "open_filtered")]
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
///
/// Written by its name ([`Reason::as_str`]); the longer names of older stored reports
/// (`host-unreachable`, ...) are read too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "kebab-case")]
pub enum Reason {
    /// The TCP handshake completed (connect scan) or a SYN-ACK came back.
    SynAck,
    /// The connection was refused: a TCP reset came back.
    Reset,
    /// An ICMP host-unreachable came back (or the kernel reported the host unreachable).
    #[serde(rename = "host-unreach", alias = "host-unreachable")]
    HostUnreachable,
    /// An ICMP network-unreachable came back, or there is no route.
    #[serde(rename = "net-unreach", alias = "net-unreachable")]
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
    #[serde(rename = "port-unreach", alias = "port-unreachable")]
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

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize, Deserialize, PartialEq, Debug)]
    struct Row {
        state: PortState,
        unlisted: Option<PortState>,
        reason: Reason,
    }

    #[test]
    fn written_by_name_and_unknown_names_are_refused() {
        for state in PortState::ALL {
            for reason in Reason::ALL {
                let row = Row {
                    state,
                    unlisted: Some(state),
                    reason,
                };
                let text = serde_json::to_string(&row).expect("serialises");
                assert!(
                    text.contains(&format!("\"state\":\"{}\"", state.as_str()))
                        && text.contains(&format!("\"reason\":\"{}\"", reason.as_str())),
                    "{text}"
                );
                assert_eq!(serde_json::from_str::<Row>(&text).expect("reads"), row);
            }
        }
        // The names older stored reports used.
        let old = r#"{"state":"open_filtered","unlisted":null,"reason":"port-unreachable"}"#;
        let row: Row = serde_json::from_str(old).expect("reads");
        assert_eq!(
            (row.state, row.unlisted, row.reason),
            (PortState::OpenFiltered, None, Reason::PortUnreachable)
        );
        let err =
            serde_json::from_str::<Row>(r#"{"state":"ajar","unlisted":null,"reason":"reset"}"#)
                .expect_err("unknown state");
        assert!(err.to_string().contains("ajar"), "{err}");
    }
}
