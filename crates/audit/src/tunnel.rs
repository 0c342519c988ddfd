//! Outbound connections that look like tunnels: ssh port forwarding, known tunnel programs,
//! and long-lived connections to the ports tunnels hide behind (22, 443, 8443).

use crate::inventory::{Connection, Inventory, ProcessInfo};
use schemars::JsonSchema;
use serde::Serialize;
use std::time::Duration;

/// Remote ports a long-lived tunnel usually goes to: SSH, and HTTPS where only it may leave.
pub const TUNNEL_PORTS: [u16; 3] = [22, 443, 8443];

/// Programs whose whole job is to tunnel.
pub const TUNNEL_PROGRAMS: [&str; 8] = [
    "autossh",
    "sshuttle",
    "chisel",
    "ngrok",
    "cloudflared",
    "frpc",
    "bore",
    "gost",
];

/// Why a connection looks like a tunnel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum TunnelKind {
    /// `ssh -R`: a port of the far side leads back into this host's network.
    SshRemoteForward,
    /// `ssh -D`: a SOCKS proxy through the far side.
    SshDynamicForward,
    /// `ssh -L`: a local port leads to a host reached through the far side.
    SshLocalForward,
    /// A program made for tunnelling.
    TunnelProgram,
    /// A process that has run for long holds a connection to 22, 443 or 8443.
    LongLived,
}

impl TunnelKind {
    /// The stable name (`ssh-remote-forward`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            TunnelKind::SshRemoteForward => "ssh-remote-forward",
            TunnelKind::SshDynamicForward => "ssh-dynamic-forward",
            TunnelKind::SshLocalForward => "ssh-local-forward",
            TunnelKind::TunnelProgram => "tunnel-program",
            TunnelKind::LongLived => "long-lived",
        }
    }
}

/// An outbound connection that looks like a tunnel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct Tunnel {
    /// Why it looks like one (the most telling reason).
    pub kind: TunnelKind,
    /// The evidence: the forwarding options, the program, or how long the process has run.
    pub detail: String,
    /// The connection.
    pub connection: Connection,
}

/// The tunnels among the outbound connections. `long_lived`: how long a process must have
/// run before its connection to 22/443/8443 counts (the kernel does not tell a connection's
/// age, so the age of the process holding it is the bound used).
pub fn tunnels(inventory: &Inventory, long_lived: Duration) -> Vec<Tunnel> {
    inventory
        .outbound
        .iter()
        .filter_map(|connection| {
            let (kind, detail) = connection
                .processes
                .iter()
                .filter_map(|p| classify(p, connection, long_lived))
                .min_by_key(|(kind, _)| *kind)?;
            Some(Tunnel {
                kind,
                detail,
                connection: connection.clone(),
            })
        })
        .collect()
}

fn classify(
    process: &ProcessInfo,
    connection: &Connection,
    long_lived: Duration,
) -> Option<(TunnelKind, String)> {
    if process.is_named("ssh") || process.is_named("autossh") {
        let forwards = ssh_forwards(process.cmdline.get(1..).unwrap_or_default());
        if let Some(kind) = forwards.iter().map(|(k, _)| *k).min() {
            let detail = forwards
                .iter()
                .map(|(_, text)| text.as_str())
                .collect::<Vec<_>>()
                .join(" ");
            return Some((kind, detail));
        }
    }
    if let Some(program) = TUNNEL_PROGRAMS.iter().find(|p| process.is_named(p)) {
        return Some((TunnelKind::TunnelProgram, (*program).to_string()));
    }
    let age = process.age_s?;
    (TUNNEL_PORTS.contains(&connection.remote.port()) && age >= long_lived.as_secs()).then(|| {
        (
            TunnelKind::LongLived,
            format!("process running for {}", human_age(age)),
        )
    })
}

/// ssh's options that take a value (OpenSSH's option string).
const SSH_VALUE_OPTIONS: &str = "BbcDEeFIiJLlmOopQRSWw";

/// The forwarding options of an ssh command line (after argv[0]): `-L`, `-R`, `-D` (also
/// bundled as `-fNR`, or as `-o RemoteForward=...`), each with its text.
pub fn ssh_forwards(args: &[String]) -> Vec<(TunnelKind, String)> {
    let mut found = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        i += 1;
        let Some(letters) = arg.strip_prefix('-') else {
            continue;
        };
        if letters.is_empty() || letters.starts_with('-') {
            continue;
        }
        for (at, letter) in letters.char_indices() {
            if !SSH_VALUE_OPTIONS.contains(letter) {
                continue;
            }
            let rest = &letters[at + letter.len_utf8()..];
            let value = if rest.is_empty() {
                let next = args.get(i).cloned().unwrap_or_default();
                i += 1;
                next
            } else {
                rest.to_string()
            };
            let kind = match letter {
                'L' => Some(TunnelKind::SshLocalForward),
                'R' => Some(TunnelKind::SshRemoteForward),
                'D' => Some(TunnelKind::SshDynamicForward),
                'o' => forward_option(&value),
                _ => None,
            };
            if let Some(kind) = kind {
                let text = if letter == 'o' {
                    format!("-o {value}")
                } else {
                    format!("-{letter} {value}")
                };
                found.push((kind, text));
            }
            break;
        }
    }
    found
}

fn forward_option(value: &str) -> Option<TunnelKind> {
    let key = value
        .split(|c: char| c == '=' || c.is_whitespace())
        .next()?
        .to_ascii_lowercase();
    match key.as_str() {
        "localforward" => Some(TunnelKind::SshLocalForward),
        "remoteforward" => Some(TunnelKind::SshRemoteForward),
        "dynamicforward" => Some(TunnelKind::SshDynamicForward),
        _ => None,
    }
}

/// `3d4h`, `2h5m`, `7m`, `40s`.
pub fn human_age(seconds: u64) -> String {
    let (d, h, m, s) = (
        seconds / 86_400,
        seconds / 3600 % 24,
        seconds / 60 % 60,
        seconds % 60,
    );
    if d > 0 {
        format!("{d}d{h}h")
    } else if h > 0 {
        format!("{h}h{m}m")
    } else if m > 0 {
        format!("{m}m")
    } else {
        format!("{s}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn ssh_forwarding_options_are_found() {
        let cases: &[(&str, &[TunnelKind])] = &[
            (
                "-N -R 8080:localhost:80 bastion",
                &[TunnelKind::SshRemoteForward],
            ),
            ("-fNL5432:db:5432 jump", &[TunnelKind::SshLocalForward]),
            ("-D 1080 -p 443 proxy", &[TunnelKind::SshDynamicForward]),
            (
                "-o RemoteForward=9000:127.0.0.1:22 host",
                &[TunnelKind::SshRemoteForward],
            ),
            ("-oLocalForward 1:h:2 host", &[TunnelKind::SshLocalForward]),
            // -i takes a value: a key file named -L is not a forward.
            ("-i -L host", &[]),
            ("-p 22 host uptime", &[]),
            (
                "-l root -L 1:h:2 -R 3:h:4 host",
                &[TunnelKind::SshLocalForward, TunnelKind::SshRemoteForward],
            ),
        ];
        for (line, want) in cases {
            let got: Vec<TunnelKind> = ssh_forwards(&args(line))
                .into_iter()
                .map(|(k, _)| k)
                .collect();
            assert_eq!(&got, want, "{line}");
        }
    }

    #[test]
    fn ages_read_well() {
        assert_eq!(human_age(40), "40s");
        assert_eq!(human_age(420), "7m");
        assert_eq!(human_age(7500), "2h5m");
        assert_eq!(human_age(3 * 86_400 + 4 * 3600), "3d4h");
    }
}
