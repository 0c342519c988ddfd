//! iptables / ip6tables rule sets for the lab profiles.
//!
//! Rules are loaded with `iptables-restore` / `ip6tables-restore` inside the
//! namespace: one process per address family, applied atomically.

use std::collections::BTreeSet;

use crate::{LabError, Profile, cmd};

/// Address family of a rule set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Family {
    V4,
    V6,
}

impl Family {
    fn restore_tool(self) -> &'static str {
        match self {
            Family::V4 => "iptables-restore",
            Family::V6 => "ip6tables-restore",
        }
    }

    /// The `--reject-with` type that makes a UDP port look closed.
    fn port_unreachable(self) -> &'static str {
        match self {
            Family::V4 => "icmp-port-unreachable",
            Family::V6 => "icmp6-port-unreachable",
        }
    }
}

/// The ports the rules are about.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ports<'a> {
    /// TCP ports with a listener.
    pub(crate) open: &'a BTreeSet<u16>,
    /// TCP ports answering RST (firewalled).
    pub(crate) reject: &'a BTreeSet<u16>,
    /// UDP ports with a service.
    pub(crate) udp_open: &'a BTreeSet<u16>,
    /// UDP ports answering ICMP port unreachable (firewalled).
    pub(crate) udp_reject: &'a BTreeSet<u16>,
    /// TCP ports on which a UDP service's daemon also listens (dnsmasq on 53)
    /// but which the ground truth treats like any other non-open port: RST
    /// under the open and lossy profiles, dropped (or `reject`) when firewalled.
    pub(crate) tcp_hidden: &'a BTreeSet<u16>,
}

/// The `*-restore` input for `profile`, or `None` when no rules are needed.
pub(crate) fn ruleset(
    family: Family,
    profile: Profile,
    ports: Ports<'_>,
    loss_probability: f64,
) -> Option<String> {
    let Ports {
        open,
        reject,
        udp_open,
        udp_reject,
        tcp_hidden,
    } = ports;
    let hide = |lines: &mut Vec<String>| {
        for port in tcp_hidden {
            lines.push(format!(
                "-A INPUT -p tcp --dport {port} -j REJECT --reject-with tcp-reset"
            ));
        }
    };
    let mut lines = vec!["*filter".to_owned()];
    match profile {
        Profile::Open if tcp_hidden.is_empty() => return None,
        Profile::Open => {
            lines.push(":INPUT ACCEPT [0:0]".to_owned());
            lines.push(":FORWARD ACCEPT [0:0]".to_owned());
            lines.push(":OUTPUT ACCEPT [0:0]".to_owned());
            hide(&mut lines);
        }
        Profile::Firewalled => {
            lines.push(":INPUT DROP [0:0]".to_owned());
            lines.push(":FORWARD ACCEPT [0:0]".to_owned());
            lines.push(":OUTPUT ACCEPT [0:0]".to_owned());
            lines.push("-A INPUT -i lo -j ACCEPT".to_owned());
            lines.push("-A INPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT".to_owned());
            if family == Family::V6 {
                // Neighbour discovery must keep working.
                lines.push("-A INPUT -p ipv6-icmp -j ACCEPT".to_owned());
            }
            for port in open {
                lines.push(format!("-A INPUT -p tcp --dport {port} -j ACCEPT"));
            }
            for port in reject {
                lines.push(format!(
                    "-A INPUT -p tcp --dport {port} -j REJECT --reject-with tcp-reset"
                ));
            }
            for port in udp_open {
                lines.push(format!("-A INPUT -p udp --dport {port} -j ACCEPT"));
            }
            for port in udp_reject {
                lines.push(format!(
                    "-A INPUT -p udp --dport {port} -j REJECT --reject-with {}",
                    family.port_unreachable()
                ));
            }
            // `tcp_hidden` needs nothing here: the DROP policy filters it.
        }
        Profile::Lossy => {
            lines.push(":INPUT ACCEPT [0:0]".to_owned());
            lines.push(":FORWARD ACCEPT [0:0]".to_owned());
            lines.push(":OUTPUT ACCEPT [0:0]".to_owned());
            lines.push(format!(
                "-A INPUT -p tcp --syn -m statistic --mode random --probability {loss_probability} -j DROP"
            ));
            hide(&mut lines);
        }
    }
    lines.push("COMMIT".to_owned());
    let mut text = lines.join("\n");
    text.push('\n');
    Some(text)
}

/// Applies the profile's rules for both address families inside `namespace`.
pub(crate) fn apply(
    namespace: &str,
    profile: Profile,
    ports: Ports<'_>,
    loss_probability: f64,
) -> Result<(), LabError> {
    for family in [Family::V4, Family::V6] {
        if let Some(rules) = ruleset(family, profile, ports, loss_probability) {
            cmd::run_with_input(
                &["ip", "netns", "exec", namespace, family.restore_tool()],
                Some(&rules),
            )?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(ports: &[u16]) -> BTreeSet<u16> {
        ports.iter().copied().collect()
    }

    /// Owned port sets for [`Ports`].
    struct Sets {
        open: BTreeSet<u16>,
        reject: BTreeSet<u16>,
        udp_open: BTreeSet<u16>,
        udp_reject: BTreeSet<u16>,
        tcp_hidden: BTreeSet<u16>,
    }

    impl Sets {
        fn tcp(open: &[u16], reject: &[u16]) -> Sets {
            Sets {
                open: set(open),
                reject: set(reject),
                udp_open: set(&[]),
                udp_reject: set(&[]),
                tcp_hidden: set(&[]),
            }
        }

        fn ports(&self) -> Ports<'_> {
            Ports {
                open: &self.open,
                reject: &self.reject,
                udp_open: &self.udp_open,
                udp_reject: &self.udp_reject,
                tcp_hidden: &self.tcp_hidden,
            }
        }
    }

    #[test]
    fn open_profile_has_no_rules() {
        let sets = Sets::tcp(&[22], &[]);
        assert!(ruleset(Family::V4, Profile::Open, sets.ports(), 0.0).is_none());
        assert!(ruleset(Family::V6, Profile::Open, sets.ports(), 0.0).is_none());
    }

    #[test]
    fn firewalled_rules() {
        let sets = Sets::tcp(&[22, 80], &[113]);
        let v4 = ruleset(Family::V4, Profile::Firewalled, sets.ports(), 0.0).expect("rules");
        assert!(v4.contains(":INPUT DROP"));
        assert!(v4.contains("-A INPUT -i lo -j ACCEPT"));
        assert!(v4.contains("--ctstate ESTABLISHED,RELATED -j ACCEPT"));
        assert!(v4.contains("-A INPUT -p tcp --dport 22 -j ACCEPT"));
        assert!(v4.contains("-A INPUT -p tcp --dport 80 -j ACCEPT"));
        assert!(v4.contains("-A INPUT -p tcp --dport 113 -j REJECT --reject-with tcp-reset"));
        assert!(!v4.contains("ipv6-icmp"));
        assert!(!v4.contains("-p udp"));
        assert!(v4.ends_with("COMMIT\n"));
        let sets = Sets::tcp(&[22], &[113]);
        let v6 = ruleset(Family::V6, Profile::Firewalled, sets.ports(), 0.0).expect("rules");
        assert!(v6.contains("-A INPUT -p ipv6-icmp -j ACCEPT"));
    }

    #[test]
    fn firewalled_udp_rules() {
        let sets = Sets {
            udp_open: set(&[53, 123]),
            udp_reject: set(&[1000]),
            tcp_hidden: set(&[53]),
            ..Sets::tcp(&[22], &[113])
        };
        let v4 = ruleset(Family::V4, Profile::Firewalled, sets.ports(), 0.0).expect("rules");
        assert!(v4.contains("-A INPUT -p udp --dport 53 -j ACCEPT"));
        assert!(v4.contains("-A INPUT -p udp --dport 123 -j ACCEPT"));
        assert!(v4.contains(
            "-A INPUT -p udp --dport 1000 -j REJECT --reject-with icmp-port-unreachable"
        ));
        // The DROP policy already filters the hidden TCP port.
        assert!(!v4.contains("-p tcp --dport 53"));
        let v6 = ruleset(Family::V6, Profile::Firewalled, sets.ports(), 0.0).expect("rules");
        assert!(v6.contains(
            "-A INPUT -p udp --dport 1000 -j REJECT --reject-with icmp6-port-unreachable"
        ));
    }

    #[test]
    fn hidden_tcp_ports_answer_rst_under_open_and_lossy() {
        let sets = Sets {
            udp_open: set(&[53]),
            tcp_hidden: set(&[53]),
            ..Sets::tcp(&[22], &[])
        };
        for family in [Family::V4, Family::V6] {
            let open = ruleset(family, Profile::Open, sets.ports(), 0.0).expect("rules");
            assert!(open.contains(":INPUT ACCEPT"));
            assert!(open.contains("-A INPUT -p tcp --dport 53 -j REJECT --reject-with tcp-reset"));
            assert!(!open.contains("DROP"));
            assert!(!open.contains("-p udp"), "UDP 53 stays reachable");
            let lossy = ruleset(family, Profile::Lossy, sets.ports(), 0.02).expect("rules");
            assert!(lossy.contains("statistic"));
            assert!(lossy.contains("-A INPUT -p tcp --dport 53 -j REJECT --reject-with tcp-reset"));
        }
    }

    #[test]
    fn lossy_rules() {
        let sets = Sets::tcp(&[22], &[]);
        for family in [Family::V4, Family::V6] {
            let rules = ruleset(family, Profile::Lossy, sets.ports(), 0.02).expect("rules");
            assert!(rules.contains(
                "-A INPUT -p tcp --syn -m statistic --mode random --probability 0.02 -j DROP"
            ));
        }
    }
}
