//! Targets of a request: parsed, resolved once and checked against the authorised scope
//! before a single probe. The scan then uses exactly the addresses checked (a name is
//! never resolved again, so DNS cannot swap an address in between).

use crate::problem::Problem;
use portgate_model::{ScanReport, Scope, TargetReport, TargetSpec};
use serde::{Deserialize, Serialize};
use std::net::IpAddr;
use std::str::FromStr;
use std::time::Duration;

/// One target as given and what it was checked as.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checked {
    /// As the client wrote it.
    pub input: String,
    /// The normalised target to scan (an address, a range; for a name, its addresses).
    pub specs: Vec<TargetSpec>,
    /// For a name: the name (the report names it instead of its addresses).
    pub hostname: Option<String>,
}

/// Most targets in one request.
pub const MAX_TARGETS: usize = 256;

/// Parses, resolves and checks `inputs` against `scope`.
pub async fn check(
    inputs: &[String],
    scope: &Scope,
    resolve_timeout: Option<Duration>,
) -> Result<Vec<Checked>, Problem> {
    if inputs.is_empty() {
        return Err(Problem::invalid("targets: give at least one target"));
    }
    if inputs.len() > MAX_TARGETS {
        return Err(Problem::invalid(format!(
            "targets: {} given, at most {MAX_TARGETS} per request",
            inputs.len()
        )));
    }
    let mut out = Vec::with_capacity(inputs.len());
    for (i, input) in inputs.iter().enumerate() {
        let spec = TargetSpec::from_str(input)
            .map_err(|e| Problem::invalid(format!("targets[{i}]: {e}")))?;
        let checked = match spec {
            TargetSpec::Ip(ip) => {
                let ip = scope
                    .check_addr(ip)
                    .map_err(|e| Problem::out_of_scope(format!("targets[{i}] \"{input}\": {e}")))?;
                Checked {
                    input: input.clone(),
                    specs: vec![TargetSpec::Ip(ip)],
                    hostname: None,
                }
            }
            TargetSpec::Cidr(net) => {
                let net = scope
                    .check_net(net)
                    .map_err(|e| Problem::out_of_scope(format!("targets[{i}] \"{input}\": {e}")))?;
                Checked {
                    input: input.clone(),
                    specs: vec![TargetSpec::Cidr(net)],
                    hostname: None,
                }
            }
            TargetSpec::Hostname(name) => {
                let Some(resolve_timeout) = resolve_timeout else {
                    return Err(Problem::invalid(format!(
                        "targets[{i}] \"{input}\": this server takes addresses and ranges only, not names"
                    )));
                };
                let addresses = resolve(&name, resolve_timeout)
                    .await
                    .map_err(|e| Problem::invalid(format!("targets[{i}] \"{input}\": {e}")))?;
                let mut specs = Vec::with_capacity(addresses.len());
                for ip in addresses {
                    let ip = scope.check_addr(ip).map_err(|e| {
                        Problem::out_of_scope(format!(
                            "targets[{i}] \"{input}\" resolves to {ip}, which is refused: {e}"
                        ))
                    })?;
                    if !specs.contains(&TargetSpec::Ip(ip)) {
                        specs.push(TargetSpec::Ip(ip));
                    }
                }
                Checked {
                    input: input.clone(),
                    specs,
                    hostname: Some(name),
                }
            }
        };
        out.push(checked);
    }
    Ok(out)
}

/// Every address of `name` (the system resolver, as the CLI's default), bounded in time.
async fn resolve(name: &str, timeout: Duration) -> Result<Vec<IpAddr>, String> {
    let lookup = tokio::net::lookup_host((name, 0));
    match tokio::time::timeout(timeout, lookup).await {
        Err(_) => Err(format!("name did not resolve within {timeout:?}")),
        Ok(Err(e)) => Err(format!("name does not resolve: {e}")),
        Ok(Ok(addrs)) => {
            let mut out: Vec<IpAddr> = Vec::new();
            for a in addrs {
                if !out.contains(&a.ip()) {
                    out.push(a.ip());
                }
            }
            if out.is_empty() {
                Err("name has no address".into())
            } else {
                Ok(out)
            }
        }
    }
}

/// Every target to hand to the scanner.
pub fn specs(checked: &[Checked]) -> Vec<TargetSpec> {
    checked
        .iter()
        .flat_map(|c| c.specs.iter().cloned())
        .collect()
}

/// Puts the names back into a report of the addresses they resolved to: one target entry
/// per name, its hosts attributed to it.
pub fn relabel(report: &mut ScanReport, checked: &[Checked]) {
    let mut targets: Vec<TargetReport> = Vec::with_capacity(checked.len());
    let mut used = vec![false; report.targets.len()];
    for c in checked {
        let Some(name) = &c.hostname else {
            if let Some(i) = report.targets.iter().enumerate().position(|(i, t)| {
                !used[i] && c.specs.first().is_some_and(|s| s.to_string() == t.input)
            }) {
                used[i] = true;
                let mut target = report.targets[i].clone();
                target.input = c.input.clone();
                for host in &mut report.hosts {
                    if host.target == report.targets[i].input {
                        host.target = c.input.clone();
                    }
                }
                targets.push(target);
            }
            continue;
        };
        let addresses: Vec<IpAddr> = c
            .specs
            .iter()
            .filter_map(|s| match s {
                TargetSpec::Ip(ip) => Some(*ip),
                _ => None,
            })
            .collect();
        for (i, t) in report.targets.iter().enumerate() {
            if !used[i] && t.addresses.len() == 1 && addresses.contains(&t.addresses[0]) {
                used[i] = true;
            }
        }
        for host in &mut report.hosts {
            if addresses.contains(&host.ip) {
                host.target = name.clone();
                host.hostname = Some(name.clone());
            }
        }
        targets.push(TargetReport {
            input: c.input.clone(),
            kind: "hostname".into(),
            address_count: addresses.len() as u64,
            addresses,
            cname_chain: Vec::new(),
            error: None,
        });
    }
    report.targets = targets;
}
