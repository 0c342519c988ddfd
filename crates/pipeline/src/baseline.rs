//! A manifest from today's scan: every open port approved as found, so adoption starts
//! from the present state and every later change shows.

use crate::Error;
use portgate_model::{Detection, PortState, Protocol, ScanReport, Severity, TargetSpec};
use portgate_policy::{
    ApprovedPort, Asset, Defaults, Manifest, Mode, Ports, ProtocolName, Spanned, Target, TlsPolicy,
    approve, risk,
};
use std::collections::BTreeMap;
use std::net::IpAddr;

fn spanned<T>(value: T) -> Spanned<T> {
    Spanned::new(
        value,
        serde_saphyr::Location::UNKNOWN,
        serde_saphyr::Location::UNKNOWN,
    )
}

/// What answered on an open port, as the baseline approves it.
struct Found {
    service: Option<String>,
    tls: bool,
    application: Option<String>,
    /// The addresses of the target it was open on.
    open_on: Vec<IpAddr>,
    /// What the reviewer should know: the risk of approving it as found.
    risk: Vec<String>,
}

/// A manifest written from a scan, with the comments its approvals are written with.
#[derive(Debug, Clone)]
pub struct Baseline {
    /// The manifest.
    pub manifest: Manifest,
    /// Comment lines above each approval: (asset, protocol, port) → lines.
    pub comments: BTreeMap<(String, Protocol, u16), Vec<String>>,
}

/// A manifest with one asset per target of `targets` (in `env` when given) approving
/// every port `report` found open on any of its addresses, with the detected service and
/// TLS required where TLS answered, and the application found behind HTTP; justification
/// `TODO`. A port open on only some of a target's addresses (a name that resolves to
/// 127.0.0.1 and ::1, a service bound to one of them) is approved for those addresses, so
/// the baseline checks clean against the state it was written from. Risky services get a
/// comment naming the risk. `ports` becomes the default port set.
pub fn baseline_from(
    report: &ScanReport,
    targets: &[TargetSpec],
    ports: Ports,
    env: Option<&str>,
) -> Baseline {
    let mut assets = Vec::new();
    let mut comments = BTreeMap::new();
    for target in targets {
        let name = target.to_string();
        let hosts: Vec<_> = report.hosts.iter().filter(|h| h.target == name).collect();
        // Every open port of any address of the target, with what answered there.
        let mut open: BTreeMap<(Protocol, u16), Found> = BTreeMap::new();
        for host in &hosts {
            for port in host.ports.iter().filter(|p| p.state == PortState::Open) {
                let detected = host.service_on(port.protocol, port.port);
                let found = open.entry((port.protocol, port.port)).or_insert_with(|| {
                    let service = detected
                        .and_then(|d| d.service.clone())
                        .filter(|s| s != "tls");
                    // The application found is what the baseline approves (its proven
                    // exposures are not accepted: they are for review).
                    let application = detected
                        .and_then(|d| d.applications.as_ref())
                        .and_then(|a| a.found.first())
                        .map(|a| a.id.clone());
                    Found {
                        risk: risk_lines(detected, port.protocol, port.port),
                        service,
                        tls: detected.is_some_and(|d| d.tls.is_some()),
                        application,
                        open_on: Vec::new(),
                    }
                });
                if !found.open_on.contains(&host.ip) {
                    found.open_on.push(host.ip);
                }
            }
        }
        let mut addresses: Vec<IpAddr> = hosts.iter().map(|h| h.ip).collect();
        addresses.sort();
        addresses.dedup();
        let mut approved = Vec::new();
        for ((protocol, port), mut found) in open {
            found.open_on.sort();
            let partial = found.open_on.len() < addresses.len();
            let mut lines = found.risk;
            if partial {
                let closed: Vec<String> = addresses
                    .iter()
                    .filter(|ip| !found.open_on.contains(ip))
                    .map(IpAddr::to_string)
                    .collect();
                lines.push(format!(
                    "open on {} only (closed or filtered on {} at the scan): approved for {}",
                    list(&found.open_on),
                    closed.join(", "),
                    if found.open_on.len() == 1 {
                        "that address"
                    } else {
                        "those addresses"
                    }
                ));
            } else if addresses.len() > 1 && !lines.is_empty() {
                lines.push(format!(
                    "reachable on every address of {name} ({}): bind it to fewer if it need not be",
                    list(&addresses)
                ));
            }
            if !lines.is_empty() {
                comments.insert((name.clone(), protocol, port), lines);
            }
            approved.push(spanned(ApprovedPort {
                port,
                protocol: match protocol {
                    Protocol::Tcp => ProtocolName::Tcp,
                    Protocol::Udp => ProtocolName::Udp,
                },
                service: found.service,
                tls: if found.tls {
                    TlsPolicy::Required
                } else {
                    TlsPolicy::Optional
                },
                justification: "TODO".to_string(),
                approved_until: None,
                application: found.application,
                accept: Vec::new(),
                addresses: if partial { found.open_on } else { Vec::new() },
            }));
        }
        assets.push(spanned(Asset {
            name: name.clone(),
            environment: env.map(str::to_string),
            owner: None,
            escalation: None,
            criticality: None,
            tags: BTreeMap::new(),
            targets: vec![spanned(Target(target.clone()))],
            ports: None,
            approved,
            expected_network: Vec::new(),
            on_missing: None,
            enrich: false,
        }));
    }
    Baseline {
        manifest: Manifest {
            version: 1,
            mode: Mode::Enforce,
            defaults: Defaults {
                ports,
                ..Defaults::default()
            },
            approved: Vec::new(),
            assets,
            source: String::new(),
            text: String::new(),
        },
        comments,
    }
}

fn list(addresses: &[IpAddr]) -> String {
    addresses
        .iter()
        .map(IpAddr::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The comment lines that name the risk of approving what answered as found: services of
/// high or critical risk, and every proven exposure of the application behind HTTP.
fn risk_lines(detected: Option<&Detection>, protocol: Protocol, port: u16) -> Vec<String> {
    let mut lines = Vec::new();
    let service = detected.and_then(|d| d.service.as_deref());
    let product = detected.and_then(|d| d.product.as_deref());
    let mut risk = risk::assess(service, product, protocol, port, None);
    let applications = detected
        .and_then(|d| d.applications.as_ref())
        .map_or(&[][..], |a| a.found.as_slice());
    for app in applications {
        let app_risk = risk::assess_application(&app.id);
        if app_risk.severity > risk.severity {
            risk = app_risk;
        }
    }
    if risk.severity >= Severity::High {
        let mut what: Vec<String> = Vec::new();
        if let Some(d) = detected {
            match (&d.product, &d.version) {
                (Some(p), Some(v)) => what.push(format!("{p} {v}")),
                (Some(p), None) => what.push(p.clone()),
                _ => what.extend(service.map(str::to_string)),
            }
            what.extend(d.info.clone());
        }
        what.extend(applications.iter().map(|a| a.id.clone()));
        let what = if what.is_empty() {
            String::new()
        } else {
            format!(" ({})", what.join(", "))
        };
        lines.push(format!(
            "RISK {}: {}{what} approved as found; confirm it must be reachable here, and by whom",
            risk.severity, risk.category
        ));
    }
    for app in applications {
        for exposure in &app.exposures {
            lines.push(format!(
                "RISK: {} ({}) proven by {}; not accepted here: it fails the check until fixed or accepted",
                exposure.check, exposure.kind.as_str(), exposure.proof.request
            ));
        }
    }
    lines
}

/// The manifest as YAML, headed by a comment that says where it came from and what to
/// review before committing it; each approval written with its comments (risk, addresses)
/// by the same format-preserving editor as `portgate baseline approve`.
pub fn baseline_yaml(baseline: &Baseline, report: &ScanReport) -> Result<String, Error> {
    let mut bare = baseline.manifest.clone();
    for asset in &mut bare.assets {
        asset.value.approved.clear();
    }
    let yaml = serde_saphyr::to_string(&bare)
        .map_err(|e| Error::Input(format!("could not write the manifest: {e}")))?;
    let mut text = format!(
        "# portgate manifest written by `portgate baseline init` from the scan of {}.\n# Every open port is approved as found: review each (RISK comments first), write its\n# justification (TODO), set owners, then commit this file and run\n# `portgate check --manifest FILE`.\n{yaml}",
        report
            .started_at
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    );
    let file = "baseline";
    let load = |text: &str| {
        Manifest::from_yaml(text, file)
            .map_err(|e| Error::Input(format!("could not write the manifest: {e}")))
    };
    let mut current = load(&text)?;
    for asset in &baseline.manifest.assets {
        for entry in &asset.value.approved {
            let e = &entry.value;
            let approval = approve::Approval {
                asset: Some(asset.value.name.clone()),
                entry: e.clone(),
                comment: baseline
                    .comments
                    .get(&(asset.value.name.clone(), Protocol::from(e.protocol), e.port))
                    .cloned()
                    .unwrap_or_default(),
            };
            let edit = approve::plan(&current, &approval)
                .map_err(|e| Error::Input(format!("could not write the manifest: {e}")))?;
            text = edit.apply(&text);
            current = load(&text)?;
        }
    }
    Ok(text)
}
