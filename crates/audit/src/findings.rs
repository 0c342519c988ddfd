//! What the audit concludes: listeners exposed to every interface, listeners that differ
//! from the expected ones, owners that cannot be seen, tunnels, and ports reachable from
//! outside that nothing here serves.

use crate::compare::{Comparison, Verdict};
use crate::expect::ExpectedListeners;
use crate::inventory::{BindScope, Inventory, Listener};
use crate::tunnel::{Tunnel, TunnelKind};
use portgate_model::{ManifestLocation, Outcome, Protocol, Severity};
use portgate_policy::risk::{Risk, assess};
use schemars::JsonSchema;
use serde::Serialize;
use std::net::IpAddr;

/// The audit's rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum AuditRule {
    /// A service of the risk table listens on every interface.
    ExposedService,
    /// A listener the expected-listeners file does not list.
    UnexpectedListener,
    /// A listener whose process, user or binding differs from its expected entry.
    ListenerMismatch,
    /// An expected listener that nothing provides.
    ExpectedListenerMissing,
    /// A socket whose owning process cannot be seen.
    OwnerHidden,
    /// An outbound connection that looks like a tunnel.
    OutboundTunnel,
    /// Open from outside, but nothing here listens on it.
    ReachableNotListening,
}

impl AuditRule {
    /// The stable identifier.
    pub fn id(self) -> &'static str {
        match self {
            AuditRule::ExposedService => "exposed-service",
            AuditRule::UnexpectedListener => "unexpected-listener",
            AuditRule::ListenerMismatch => "listener-mismatch",
            AuditRule::ExpectedListenerMissing => "expected-listener-missing",
            AuditRule::OwnerHidden => "owner-hidden",
            AuditRule::OutboundTunnel => "outbound-tunnel",
            AuditRule::ReachableNotListening => "reachable-not-listening",
        }
    }
}

/// One conclusion of the audit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct AuditFinding {
    /// The rule.
    pub rule: AuditRule,
    /// What it means for the gate (with `--expect`).
    pub outcome: Outcome,
    /// How bad it is.
    pub severity: Severity,
    /// The protocol, when about a port.
    pub protocol: Option<Protocol>,
    /// The address, when about one.
    pub address: Option<IpAddr>,
    /// The port, when about one.
    pub port: Option<u16>,
    /// The service (from the process, else the port's usual one).
    pub service: Option<String>,
    /// The process.
    pub process: Option<String>,
    /// Its pid.
    pub pid: Option<i32>,
    /// The user.
    pub user: Option<String>,
    /// Why, in one sentence.
    pub message: String,
    /// The entry of the expected-listeners file it concerns.
    pub location: Option<ManifestLocation>,
}

impl AuditFinding {
    fn about(rule: AuditRule, outcome: Outcome, severity: Severity, listener: &Listener) -> Self {
        let process = listener.process();
        AuditFinding {
            rule,
            outcome,
            severity,
            protocol: Some(listener.protocol),
            address: Some(listener.address),
            port: Some(listener.port),
            service: listener.service.clone(),
            process: process.map(|p| p.name.clone()),
            pid: process.map(|p| p.pid),
            user: listener.user.clone(),
            message: String::new(),
            location: None,
        }
    }

    fn says(mut self, message: String) -> Self {
        self.message = message;
        self
    }
}

/// The risk of a listener: from the service its process runs, else its port number.
pub fn listener_risk(listener: &Listener) -> Risk {
    let service = listener
        .service_from_process
        .then_some(listener.service.as_deref())
        .flatten();
    assess(service, None, listener.protocol, listener.port, None)
}

fn who(listener: &Listener) -> String {
    match listener.process() {
        Some(p) => format!(
            "{} (pid {}) as {}",
            p.name,
            p.pid,
            listener
                .user
                .clone()
                .unwrap_or_else(|| listener.uid.to_string())
        ),
        None => format!(
            "a hidden process as {}",
            listener
                .user
                .clone()
                .unwrap_or_else(|| listener.uid.to_string())
        ),
    }
}

/// Everything the audit concludes. `expect`: the expected listeners, when given (without
/// them, only all-interface exposure, hidden owners, tunnels and the comparison count).
pub fn evaluate(
    inventory: &Inventory,
    expect: Option<&ExpectedListeners>,
    tunnels: &[Tunnel],
    comparison: Option<&Comparison>,
) -> Vec<AuditFinding> {
    let mut findings = Vec::new();
    for listener in &inventory.listeners {
        let risk = listener_risk(listener);
        let service = match (&listener.service, risk.category.as_str()) {
            (Some(service), "unknown service") => service.clone(),
            (Some(service), category) => format!("{service} ({category})"),
            (None, _) => "an unknown service".to_string(),
        };
        let entry = expect.and_then(|e| e.find(listener.protocol, listener.port));
        let location = entry.and_then(|entry| expect.map(|e| e.location(entry)));

        if let Some(reason) = &listener.owner_hidden {
            let wide = listener.scope != BindScope::Loopback;
            let checks_process = entry.is_none_or(|e| e.value.process.is_some());
            let (outcome, severity) = if expect.is_some() && wide && checks_process {
                (Outcome::Inconclusive, Severity::Medium)
            } else if wide {
                (Outcome::Warn, Severity::Medium)
            } else {
                (Outcome::Warn, Severity::Low)
            };
            let mut finding =
                AuditFinding::about(AuditRule::OwnerHidden, outcome, severity, listener).says(
                    format!(
                        "{} ({}) belongs to uid {}, but its process cannot be seen: {reason}",
                        listener.endpoint(),
                        listener.scope.as_str(),
                        listener.uid
                    ),
                );
            finding.location = location.clone();
            findings.push(finding);
        }

        match entry {
            Some(entry) => {
                let want = &entry.value;
                let mut problems = Vec::new();
                if let Some(process) = &want.process
                    && !listener.processes.is_empty()
                    && !listener.processes.iter().any(|p| p.is_named(process))
                {
                    problems.push(format!("process is {}, expected {process}", who(listener)));
                }
                if let Some(user) = &want.user {
                    let uid_text = listener.uid.to_string();
                    let matches = listener.user.as_deref() == Some(user.as_str())
                        || &uid_text == user
                        || listener
                            .processes
                            .iter()
                            .any(|p| p.user.as_deref() == Some(user.as_str()));
                    if !matches {
                        problems.push(format!(
                            "user is {}, expected {user}",
                            listener.user.clone().unwrap_or(uid_text)
                        ));
                    }
                }
                if let Some(bind) = want.bind
                    && listener.scope > bind
                {
                    problems.push(format!(
                        "bound to {} ({}), expected at most {}",
                        listener.address,
                        listener.scope.as_str(),
                        bind.as_str()
                    ));
                }
                if !problems.is_empty() {
                    let severity = risk.severity.max(Severity::High);
                    let mut finding = AuditFinding::about(
                        AuditRule::ListenerMismatch,
                        Outcome::Fail,
                        severity,
                        listener,
                    )
                    .says(format!(
                        "{}: {}",
                        listener.endpoint(),
                        problems.join("; ")
                    ));
                    finding.location = location;
                    findings.push(finding);
                }
            }
            None if expect.is_some() => {
                let (outcome, severity, reach) = match listener.scope {
                    BindScope::Loopback => (Outcome::Warn, Severity::Info, "only from this host"),
                    BindScope::Interface => {
                        (Outcome::Fail, risk.severity, "on one interface address")
                    }
                    BindScope::AllInterfaces => (Outcome::Fail, risk.severity, "on all interfaces"),
                };
                findings.push(
                    AuditFinding::about(AuditRule::UnexpectedListener, outcome, severity, listener)
                        .says(format!(
                            "{} {service} by {} is not an expected listener; reachable {reach}",
                            listener.endpoint(),
                            who(listener)
                        )),
                );
            }
            None => {
                if listener.scope == BindScope::AllInterfaces {
                    findings.push(
                        AuditFinding::about(AuditRule::ExposedService, Outcome::Fail, risk.severity, listener)
                            .says(format!(
                                "{} {service} by {} listens on all interfaces ({}); bind it to loopback or an internal address",
                                listener.endpoint(),
                                who(listener),
                                listener.families.as_str()
                            )),
                    );
                }
            }
        }
    }

    if let Some(expect) = expect {
        for entry in &expect.expected_listeners {
            let want = &entry.value;
            if !inventory
                .listeners
                .iter()
                .any(|l| l.protocol == want.protocol && l.port == want.port)
            {
                findings.push(AuditFinding {
                    rule: AuditRule::ExpectedListenerMissing,
                    outcome: Outcome::Warn,
                    severity: Severity::Medium,
                    protocol: Some(want.protocol),
                    address: None,
                    port: Some(want.port),
                    service: None,
                    process: want.process.clone(),
                    pid: None,
                    user: want.user.clone(),
                    message: format!(
                        "nothing listens on {}/{}{}",
                        want.port,
                        want.protocol,
                        want.process
                            .as_ref()
                            .map(|p| format!(" (expected {p})"))
                            .unwrap_or_default()
                    ),
                    location: Some(expect.location(entry)),
                });
            }
        }
    }

    for tunnel in tunnels {
        let process = tunnel.connection.processes.first();
        let severity = match tunnel.kind {
            TunnelKind::SshRemoteForward | TunnelKind::TunnelProgram => Severity::High,
            TunnelKind::SshDynamicForward | TunnelKind::SshLocalForward => Severity::Medium,
            TunnelKind::LongLived => Severity::Low,
        };
        findings.push(AuditFinding {
            rule: AuditRule::OutboundTunnel,
            outcome: Outcome::Warn,
            severity,
            protocol: Some(Protocol::Tcp),
            address: Some(tunnel.connection.remote.ip()),
            port: Some(tunnel.connection.remote.port()),
            service: None,
            process: process.map(|p| p.name.clone()),
            pid: process.map(|p| p.pid),
            user: tunnel.connection.user.clone(),
            message: format!(
                "{} → {} ({}): {}",
                tunnel.connection.local,
                tunnel.connection.remote,
                tunnel.kind.as_str(),
                tunnel.detail
            ),
            location: None,
        });
    }

    if let Some(comparison) = comparison {
        for port in comparison
            .ports
            .iter()
            .filter(|p| p.verdict == Verdict::ReachableNotListening)
        {
            findings.push(AuditFinding {
                rule: AuditRule::ReachableNotListening,
                outcome: Outcome::Warn,
                severity: Severity::Medium,
                protocol: Some(port.protocol),
                address: Some(port.ip),
                port: Some(port.port),
                service: portgate_model::service_name(port.protocol, port.port).map(str::to_string),
                process: None,
                pid: None,
                user: None,
                message: format!(
                    "{}:{}/{} is open from outside, but nothing here listens on it: NAT, port forwarding, or another host answers",
                    port.ip, port.port, port.protocol
                ),
                location: None,
            });
        }
    }
    findings.sort_by(|a, b| {
        b.severity
            .cmp(&a.severity)
            .then(a.rule.cmp(&b.rule))
            .then(a.port.cmp(&b.port))
            .then(a.address.cmp(&b.address))
    });
    findings
}

/// Whether the findings fail the gate: any `fail` or `inconclusive` at or above `threshold`.
pub fn fails(findings: &[AuditFinding], threshold: Severity) -> bool {
    findings.iter().any(|f| {
        matches!(f.outcome, Outcome::Fail | Outcome::Inconclusive) && f.severity >= threshold
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::{Families, ProcessInfo};

    fn listener(address: &str, port: u16, process: Option<(&str, &str)>, uid: u32) -> Listener {
        let address: IpAddr = address.parse().expect("address");
        let processes: Vec<ProcessInfo> = process
            .into_iter()
            .map(|(name, user)| ProcessInfo {
                pid: 4242,
                name: name.to_string(),
                cmdline: vec![format!("/usr/sbin/{name}")],
                uid,
                user: Some(user.to_string()),
                age_s: Some(60),
            })
            .collect();
        let service = processes
            .first()
            .and_then(|p| crate::service_of(&p.name, &p.cmdline));
        Listener {
            protocol: Protocol::Tcp,
            address,
            port,
            scope: if address.is_unspecified() {
                BindScope::AllInterfaces
            } else if address.is_loopback() {
                BindScope::Loopback
            } else {
                BindScope::Interface
            },
            families: if address.is_ipv4() {
                Families::Ipv4
            } else {
                Families::Dual
            },
            ipv4_mapped: false,
            v6only: None,
            uid,
            // The socket's user is known even when its process is not.
            user: processes
                .first()
                .and_then(|p| p.user.clone())
                .or_else(|| (uid == 0).then(|| "root".to_string())),
            inode: u64::from(port),
            owner_hidden: processes
                .is_empty()
                .then(|| "held by another user's process".to_string()),
            service: service
                .map(str::to_string)
                .or_else(|| portgate_model::service_name(Protocol::Tcp, port).map(str::to_string)),
            service_from_process: service.is_some(),
            processes,
        }
    }

    fn inventory(listeners: Vec<Listener>) -> Inventory {
        Inventory {
            namespace: "current".into(),
            privileged: true,
            listeners,
            outbound: Vec::new(),
            notes: Vec::new(),
        }
    }

    fn rules(findings: &[AuditFinding]) -> Vec<(AuditRule, Outcome, Severity, Option<u16>)> {
        findings
            .iter()
            .map(|f| (f.rule, f.outcome, f.severity, f.port))
            .collect()
    }

    #[test]
    fn without_expectations_only_all_interfaces_and_hidden_owners_count() {
        let inv = inventory(vec![
            listener("127.0.0.1", 6379, Some(("redis-server", "redis")), 100),
            listener("0.0.0.0", 8080, Some(("redis-server", "redis")), 100),
            listener("::", 5432, Some(("postgres", "postgres")), 101),
            listener("198.18.2.3", 3306, Some(("mariadbd", "mysql")), 102),
            listener("0.0.0.0", 8000, Some(("python3", "root")), 0),
            listener("0.0.0.0", 2024, None, 0),
            listener("127.0.0.1", 7000, None, 0),
        ]);
        let got = rules(&evaluate(&inv, None, &[], None));
        assert_eq!(
            got,
            vec![
                // Redis on 8080 is Redis: critical, not web-low.
                (
                    AuditRule::ExposedService,
                    Outcome::Fail,
                    Severity::Critical,
                    Some(5432)
                ),
                (
                    AuditRule::ExposedService,
                    Outcome::Fail,
                    Severity::Critical,
                    Some(8080)
                ),
                (
                    AuditRule::ExposedService,
                    Outcome::Fail,
                    Severity::Medium,
                    Some(2024)
                ),
                (
                    AuditRule::ExposedService,
                    Outcome::Fail,
                    Severity::Medium,
                    Some(8000)
                ),
                (
                    AuditRule::OwnerHidden,
                    Outcome::Warn,
                    Severity::Medium,
                    Some(2024)
                ),
                (
                    AuditRule::OwnerHidden,
                    Outcome::Warn,
                    Severity::Low,
                    Some(7000)
                ),
            ]
        );
    }

    #[test]
    fn expectations_check_process_user_binding_and_presence() {
        let expect = ExpectedListeners::from_yaml(
            "expected_listeners:\n\
             \x20 - {port: 22, process: sshd, user: root}\n\
             \x20 - {port: 6379, process: redis-server, user: redis, bind: loopback}\n\
             \x20 - {port: 5432, user: \"101\"}\n\
             \x20 - {port: 9090, process: prometheus}\n\
             \x20 - {port: 2024, user: root}\n\
             \x20 - {port: 8443, process: nginx}\n",
            "host.yaml",
        )
        .expect("valid");
        let inv = inventory(vec![
            listener("0.0.0.0", 22, Some(("sshd", "root")), 0),
            listener("0.0.0.0", 6379, Some(("redis-server", "root")), 0),
            listener("::", 5432, Some(("postgres", "postgres")), 101),
            listener("127.0.0.1", 11211, Some(("memcached", "memcache")), 103),
            listener("198.18.2.3", 27017, Some(("mongod", "mongodb")), 104),
            listener("0.0.0.0", 2024, None, 0),
            listener("0.0.0.0", 8443, None, 0),
        ]);
        let findings = evaluate(&inv, Some(&expect), &[], None);
        assert_eq!(
            rules(&findings),
            vec![
                (
                    AuditRule::UnexpectedListener,
                    Outcome::Fail,
                    Severity::Critical,
                    Some(27017)
                ),
                (
                    AuditRule::ListenerMismatch,
                    Outcome::Fail,
                    Severity::Critical,
                    Some(6379)
                ),
                (
                    AuditRule::ExpectedListenerMissing,
                    Outcome::Warn,
                    Severity::Medium,
                    Some(9090)
                ),
                // Expected with a user only: the user is checked, the process cannot be.
                (
                    AuditRule::OwnerHidden,
                    Outcome::Warn,
                    Severity::Medium,
                    Some(2024)
                ),
                // Expected with a process: it cannot be verified.
                (
                    AuditRule::OwnerHidden,
                    Outcome::Inconclusive,
                    Severity::Medium,
                    Some(8443)
                ),
                (
                    AuditRule::UnexpectedListener,
                    Outcome::Warn,
                    Severity::Info,
                    Some(11211)
                ),
            ]
        );
        let mismatch = &findings[1];
        assert!(
            mismatch.message.contains("user is root, expected redis")
                && mismatch.message.contains("expected at most loopback"),
            "{}",
            mismatch.message
        );
        let at = mismatch.location.as_ref().expect("located");
        assert_eq!((at.file.as_str(), at.line), ("host.yaml", 3));
        assert!(fails(&findings, Severity::Critical));
        let not_failed: Vec<AuditFinding> = findings
            .iter()
            .filter(|f| f.outcome != Outcome::Fail)
            .cloned()
            .collect();
        assert!(!fails(&not_failed, Severity::High));
        // A process that cannot be verified: inconclusive fails the gate like a failure.
        assert!(fails(&not_failed, Severity::Medium));
    }
}
