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
}

/// The `*-restore` input for `profile`, or `None` when no rules are needed.
pub(crate) fn ruleset(
    family: Family,
    profile: Profile,
    open: &BTreeSet<u16>,
    reject: &BTreeSet<u16>,
    loss_probability: f64,
) -> Option<String> {
    let mut lines = vec!["*filter".to_owned()];
    match profile {
        Profile::Open => return None,
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
        }
        Profile::Lossy => {
            lines.push(":INPUT ACCEPT [0:0]".to_owned());
            lines.push(":FORWARD ACCEPT [0:0]".to_owned());
            lines.push(":OUTPUT ACCEPT [0:0]".to_owned());
            lines.push(format!(
                "-A INPUT -p tcp --syn -m statistic --mode random --probability {loss_probability} -j DROP"
            ));
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
    open: &BTreeSet<u16>,
    reject: &BTreeSet<u16>,
    loss_probability: f64,
) -> Result<(), LabError> {
    for family in [Family::V4, Family::V6] {
        if let Some(rules) = ruleset(family, profile, open, reject, loss_probability) {
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

    #[test]
    fn open_profile_has_no_rules() {
        assert!(ruleset(Family::V4, Profile::Open, &set(&[22]), &set(&[]), 0.0).is_none());
        assert!(ruleset(Family::V6, Profile::Open, &set(&[22]), &set(&[]), 0.0).is_none());
    }

    #[test]
    fn firewalled_rules() {
        let v4 = ruleset(
            Family::V4,
            Profile::Firewalled,
            &set(&[22, 80]),
            &set(&[113]),
            0.0,
        )
        .expect("rules");
        assert!(v4.contains(":INPUT DROP"));
        assert!(v4.contains("-A INPUT -i lo -j ACCEPT"));
        assert!(v4.contains("--ctstate ESTABLISHED,RELATED -j ACCEPT"));
        assert!(v4.contains("-A INPUT -p tcp --dport 22 -j ACCEPT"));
        assert!(v4.contains("-A INPUT -p tcp --dport 80 -j ACCEPT"));
        assert!(v4.contains("-A INPUT -p tcp --dport 113 -j REJECT --reject-with tcp-reset"));
        assert!(!v4.contains("ipv6-icmp"));
        assert!(v4.ends_with("COMMIT\n"));
        let v6 = ruleset(
            Family::V6,
            Profile::Firewalled,
            &set(&[22]),
            &set(&[113]),
            0.0,
        )
        .expect("rules");
        assert!(v6.contains("-A INPUT -p ipv6-icmp -j ACCEPT"));
    }

    #[test]
    fn lossy_rules() {
        for family in [Family::V4, Family::V6] {
            let rules =
                ruleset(family, Profile::Lossy, &set(&[22]), &set(&[]), 0.02).expect("rules");
            assert!(rules.contains(
                "-A INPUT -p tcp --syn -m statistic --mode random --probability 0.02 -j DROP"
            ));
        }
    }
}
