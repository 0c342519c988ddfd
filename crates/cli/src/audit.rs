//! `portgate audit`: what listens on this host, which process, which user, bound where;
//! tunnels; and, with `--compare`, this host against a scan of it from outside.
//!
//! Exit codes: 0 pass (always without `--expect`); 1 a finding at or above `--fail-on`
//! when `--expect` is given; 2 usage or input error (expected-listeners file, scan report,
//! namespace); 3 the socket tables could not be read.

use crate::Failure;
use clap::{Args, ValueEnum};
use portgate_audit::{
    AuditError, AuditOptions, AuditReport, ExpectedListeners, Namespace, ScanSnapshot, fails,
    human_age,
};
use portgate_model::Severity;
use std::fmt::Write as _;
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

/// `-o`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum AuditFormat {
    /// Aligned columns for people.
    Table,
    /// JSON (schema portgate.audit.v1).
    Json,
}

/// `--fail-on`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum AuditFailOn {
    /// Only critical findings fail.
    Critical,
    /// High and critical.
    High,
    /// Medium and above.
    Medium,
    /// Low and above.
    Low,
    /// Every failing finding.
    Info,
}

#[derive(Debug, Args)]
pub(crate) struct AuditArgs {
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = AuditFormat::Table)]
    pub(crate) format: AuditFormat,

    /// The listeners this host may have (YAML: `expected_listeners: [{port, protocol,
    /// process, user, bind}]`); with it, findings at or above --fail-on exit 1.
    #[arg(long, value_name = "FILE")]
    pub(crate) expect: Option<PathBuf>,

    /// A scan of this host from outside (`portgate scan -o json`): what listens here but is
    /// not reachable, and what is reachable but does not listen here.
    #[arg(long, value_name = "SCAN.json")]
    pub(crate) compare: Option<PathBuf>,

    /// Audit another network namespace: a name under /run/netns, or the pid of a process in
    /// it (needs root).
    #[arg(long, value_name = "NAME|PID")]
    pub(crate) netns: Option<String>,

    /// The least severity that fails (with --expect).
    #[arg(long, value_enum, value_name = "SEVERITY", default_value_t = AuditFailOn::Low, env = "PORTGATE_AUDIT_FAIL_ON")]
    pub(crate) fail_on: AuditFailOn,

    /// A process running this long with a connection to port 22, 443 or 8443 is listed as
    /// a possible tunnel.
    #[arg(long, value_parser = crate::args::parse_duration, default_value = "30m", value_name = "DURATION", env = "PORTGATE_LONG_LIVED")]
    pub(crate) long_lived: Duration,

    /// Write the report to this file instead of standard output.
    #[arg(long, value_name = "PATH")]
    pub(crate) output_file: Option<PathBuf>,
}

/// Runs the audit and returns its exit code.
pub(crate) fn run(args: AuditArgs) -> Result<u8, Failure> {
    let expect = args
        .expect
        .as_deref()
        .map(ExpectedListeners::load)
        .transpose()
        .map_err(|e| Failure::usage(e.to_string()))?;
    let scan = args
        .compare
        .as_deref()
        .map(ScanSnapshot::load)
        .transpose()
        .map_err(|e| Failure::usage(e.to_string()))?;
    let options = AuditOptions {
        namespace: args
            .netns
            .as_deref()
            .map_or(Namespace::Current, Namespace::parse),
        long_lived: args.long_lived,
    };
    let report =
        portgate_audit::audit(&options, expect.as_ref(), scan.as_ref()).map_err(|e| match e {
            AuditError::Namespace { .. } => Failure::usage(e.to_string()),
            _ => Failure::scan(e.to_string()),
        })?;
    let text = match args.format {
        AuditFormat::Table => table(&report),
        AuditFormat::Json => {
            let mut text = serde_json::to_string_pretty(&report)
                .map_err(|e| Failure::scan(format!("could not serialise the audit: {e}")))?;
            text.push('\n');
            text
        }
    };
    match &args.output_file {
        Some(path) => {
            std::fs::write(path, &text).map_err(|e| crate::exit::cannot_write(path, &e))?
        }
        None => {
            let mut stdout = std::io::stdout().lock();
            // A closed pipe is not a finding.
            let _ = stdout
                .write_all(text.as_bytes())
                .and_then(|()| stdout.flush());
        }
    }
    let threshold = match args.fail_on {
        AuditFailOn::Critical => Severity::Critical,
        AuditFailOn::High => Severity::High,
        AuditFailOn::Medium => Severity::Medium,
        AuditFailOn::Low => Severity::Low,
        AuditFailOn::Info => Severity::Info,
    };
    Ok(u8::from(
        expect.is_some() && fails(&report.findings, threshold),
    ))
}

/// Longest command line shown in the table (JSON has all of it).
const COMMAND_WIDTH: usize = 60;

fn shorten(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        text.to_string()
    } else {
        let cut: String = text.chars().take(width.saturating_sub(1)).collect();
        format!("{cut}…")
    }
}

fn dash(value: Option<String>) -> String {
    value.unwrap_or_else(|| "-".to_string())
}

/// The report for people.
pub(crate) fn table(report: &AuditReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "portgate audit: {} listeners in network namespace {}{}",
        report.listeners.len(),
        report.namespace,
        if report.privileged {
            ""
        } else {
            " (not root: other users' processes are hidden)"
        }
    );
    out.push('\n');
    let mut rows = vec![
        [
            "PROTO", "ADDRESS", "PORT", "BIND", "FAMILY", "PID", "PROCESS", "USER", "SERVICE",
            "COMMAND",
        ]
        .map(str::to_string)
        .to_vec(),
    ];
    for l in &report.listeners {
        let process = l.process();
        let extra = l.processes.len().saturating_sub(1);
        rows.push(vec![
            l.protocol.to_string(),
            l.address.to_string(),
            l.port.to_string(),
            l.scope.as_str().to_string(),
            l.families.as_str().to_string(),
            match process {
                Some(p) if extra > 0 => format!("{} +{extra}", p.pid),
                Some(p) => p.pid.to_string(),
                None => "?".to_string(),
            },
            process.map_or_else(|| "(hidden)".to_string(), |p| p.name.clone()),
            l.user.clone().unwrap_or_else(|| l.uid.to_string()),
            dash(l.service.clone()),
            match process {
                Some(p) => shorten(&p.cmdline.join(" "), COMMAND_WIDTH),
                None => shorten(l.owner_hidden.as_deref().unwrap_or(""), COMMAND_WIDTH),
            },
        ]);
    }
    out.push_str(&portgate_report::columns(&rows));

    if !report.tunnels.is_empty() {
        let _ = writeln!(out, "\nOutbound connections that look like tunnels:");
        let mut rows = vec![
            [
                "LOCAL", "REMOTE", "KIND", "PID", "PROCESS", "USER", "AGE", "EVIDENCE",
            ]
            .map(str::to_string)
            .to_vec(),
        ];
        for t in &report.tunnels {
            let process = t.connection.processes.first();
            rows.push(vec![
                t.connection.local.to_string(),
                t.connection.remote.to_string(),
                t.kind.as_str().to_string(),
                dash(process.map(|p| p.pid.to_string())),
                process.map_or_else(|| "(hidden)".to_string(), |p| p.name.clone()),
                t.connection
                    .user
                    .clone()
                    .unwrap_or_else(|| t.connection.uid.to_string()),
                dash(process.and_then(|p| p.age_s).map(human_age)),
                shorten(&t.detail, COMMAND_WIDTH),
            ]);
        }
        out.push_str(&portgate_report::columns(&rows));
    }

    if let Some(comparison) = &report.comparison {
        let addresses: Vec<String> = comparison
            .addresses
            .iter()
            .map(ToString::to_string)
            .collect();
        let _ = writeln!(
            out,
            "\nInside against outside ({}: {}{}):",
            comparison.scan,
            addresses.join(", "),
            if comparison.scan_incomplete {
                "; the scan is incomplete"
            } else {
                ""
            }
        );
        let mut rows = vec![
            ["ADDRESS", "PORT", "OUTSIDE", "INSIDE", "VERDICT"]
                .map(str::to_string)
                .to_vec(),
        ];
        for c in &comparison.ports {
            rows.push(vec![
                c.ip.to_string(),
                format!("{}/{}", c.port, c.protocol),
                c.scan_state
                    .clone()
                    .unwrap_or_else(|| "not listed".to_string()),
                match (&c.process, c.pid) {
                    (Some(name), Some(pid)) => format!("{name} ({pid})"),
                    _ if c.bound.is_some() => "(hidden)".to_string(),
                    _ => "nothing listens".to_string(),
                },
                c.verdict.as_str().to_string(),
            ]);
        }
        out.push_str(&portgate_report::columns(&rows));
    }

    if report.findings.is_empty() {
        out.push_str("\nNo findings.\n");
    } else {
        let _ = writeln!(out, "\nFindings:");
        let mut rows = Vec::new();
        for f in &report.findings {
            let mut line = vec![
                f.severity.as_str().to_string(),
                f.outcome.as_str().to_string(),
                f.rule.id().to_string(),
                f.message.clone(),
            ];
            if let Some(at) = &f.location {
                line[3] = format!("{} [{}:{}:{}]", f.message, at.file, at.line, at.column);
            }
            rows.push(line);
        }
        out.push_str(&portgate_report::columns(&rows));
    }
    for note in &report.notes {
        let _ = writeln!(out, "note: {note}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use portgate_audit::{
        AuditFinding, AuditRule, BindScope, Compared, Comparison, Connection, Families, Listener,
        ProcessInfo, Tunnel, TunnelKind, Verdict,
    };
    use portgate_model::{Outcome, Protocol};

    fn process(pid: i32, name: &str, cmdline: &str, user: &str) -> ProcessInfo {
        ProcessInfo {
            pid,
            name: name.into(),
            cmdline: cmdline.split(' ').map(str::to_string).collect(),
            uid: 0,
            user: Some(user.into()),
            age_s: Some(7500),
        }
    }

    #[test]
    fn the_table_for_people() {
        let redis = Listener {
            protocol: Protocol::Tcp,
            address: "0.0.0.0".parse().expect("ip"),
            port: 8080,
            scope: BindScope::AllInterfaces,
            families: Families::Ipv4,
            ipv4_mapped: false,
            v6only: None,
            uid: 0,
            user: Some("redis".into()),
            inode: 1,
            processes: vec![process(
                310,
                "redis-server",
                "/usr/bin/redis-server *:8080",
                "redis",
            )],
            owner_hidden: None,
            service: Some("redis".into()),
            service_from_process: true,
        };
        let hidden = Listener {
            protocol: Protocol::Udp,
            address: "::".parse().expect("ip"),
            port: 5353,
            scope: BindScope::AllInterfaces,
            families: Families::Dual,
            v6only: Some(false),
            user: Some("root".into()),
            inode: 2,
            processes: Vec::new(),
            owner_hidden: Some("no process of this PID namespace holds it".into()),
            service: None,
            service_from_process: false,
            ..redis.clone()
        };
        let report = AuditReport {
            schema: portgate_audit::AUDIT_SCHEMA_ID,
            portgate_version: "0.1.0",
            namespace: "current".into(),
            privileged: true,
            expect: None,
            listeners: vec![redis, hidden],
            tunnels: vec![Tunnel {
                kind: TunnelKind::SshRemoteForward,
                detail: "-R 9000:127.0.0.1:22".into(),
                connection: Connection {
                    local: "127.0.0.1:40000".parse().expect("addr"),
                    remote: "127.0.0.1:22".parse().expect("addr"),
                    uid: 1000,
                    user: Some("alice".into()),
                    inode: 3,
                    processes: vec![process(
                        400,
                        "ssh",
                        "ssh -N -R 9000:127.0.0.1:22 jump",
                        "alice",
                    )],
                    owner_hidden: None,
                },
            }],
            comparison: Some(Comparison {
                scan: "scan.json".into(),
                addresses: vec!["127.0.0.1".parse().expect("ip")],
                scan_incomplete: false,
                ports: vec![Compared {
                    ip: "127.0.0.1".parse().expect("ip"),
                    protocol: Protocol::Tcp,
                    port: 2222,
                    scan_state: Some("open".into()),
                    verdict: Verdict::ReachableNotListening,
                    bound: None,
                    process: None,
                    pid: None,
                    user: None,
                }],
            }),
            findings: vec![AuditFinding {
                rule: AuditRule::ExposedService,
                outcome: Outcome::Fail,
                severity: Severity::Critical,
                protocol: Some(Protocol::Tcp),
                address: Some("0.0.0.0".parse().expect("ip")),
                port: Some(8080),
                service: Some("redis".into()),
                process: Some("redis-server".into()),
                pid: Some(310),
                user: Some("redis".into()),
                message: "0.0.0.0:8080/tcp redis listens on all interfaces".into(),
                location: None,
            }],
            notes: vec!["a note".into()],
        };
        let want = "\
portgate audit: 2 listeners in network namespace current

PROTO  ADDRESS  PORT  BIND            FAMILY     PID  PROCESS       USER   SERVICE  COMMAND
tcp    0.0.0.0  8080  all-interfaces  ipv4       310  redis-server  redis  redis    /usr/bin/redis-server *:8080
udp    ::       5353  all-interfaces  ipv4+ipv6  ?    (hidden)      root   -        no process of this PID namespace holds it

Outbound connections that look like tunnels:
LOCAL            REMOTE        KIND                PID  PROCESS  USER   AGE   EVIDENCE
127.0.0.1:40000  127.0.0.1:22  ssh-remote-forward  400  ssh      alice  2h5m  -R 9000:127.0.0.1:22

Inside against outside (scan.json: 127.0.0.1):
ADDRESS    PORT      OUTSIDE  INSIDE           VERDICT
127.0.0.1  2222/tcp  open     nothing listens  reachable-not-listening

Findings:
critical  fail  exposed-service  0.0.0.0:8080/tcp redis listens on all interfaces
note: a note
";
        assert_eq!(table(&report), want);
    }
}
