//! A manifest from today's scan: every open port approved as found, so adoption starts
//! from the present state and every later change shows.

use crate::Error;
use portgate_model::{PortState, Protocol, ScanReport, TargetSpec};
use portgate_policy::{
    ApprovedPort, Asset, Defaults, Manifest, Mode, Ports, ProtocolName, Spanned, Target, TlsPolicy,
};
use std::collections::BTreeMap;

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
}

/// A manifest with one asset per target of `targets` (in `env` when given) approving
/// every port `report` found open on any of its addresses, with the detected service and
/// TLS required where TLS answered, and the application found behind HTTP; justification `TODO`. `ports` becomes the default
/// port set.
pub fn baseline_from(
    report: &ScanReport,
    targets: &[TargetSpec],
    ports: Ports,
    env: Option<&str>,
) -> Manifest {
    let mut assets = Vec::new();
    for target in targets {
        let name = target.to_string();
        // Every open port of any address of the target, with what answered there.
        let mut open: BTreeMap<(Protocol, u16), Found> = BTreeMap::new();
        for host in report.hosts.iter().filter(|h| h.target == name) {
            for port in host.ports.iter().filter(|p| p.state == PortState::Open) {
                let detected = host.service_on(port.protocol, port.port);
                let service = detected
                    .and_then(|d| d.service.clone())
                    .filter(|s| s != "tls");
                let tls = detected.is_some_and(|d| d.tls.is_some());
                // The application found is what the baseline approves (its proven
                // exposures are not accepted: they are for review).
                let application = detected
                    .and_then(|d| d.applications.as_ref())
                    .and_then(|a| a.found.first())
                    .map(|a| a.id.clone());
                open.entry((port.protocol, port.port)).or_insert(Found {
                    service,
                    tls,
                    application,
                });
            }
        }
        let approved = open
            .into_iter()
            .map(|((protocol, port), found)| {
                let Found {
                    service,
                    tls,
                    application,
                } = found;
                spanned(ApprovedPort {
                    port,
                    protocol: match protocol {
                        Protocol::Tcp => ProtocolName::Tcp,
                        Protocol::Udp => ProtocolName::Udp,
                    },
                    service,
                    tls: if tls {
                        TlsPolicy::Required
                    } else {
                        TlsPolicy::Optional
                    },
                    justification: "TODO".to_string(),
                    approved_until: None,
                    application,
                    accept: Vec::new(),
                })
            })
            .collect();
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
    Manifest {
        version: 1,
        mode: Mode::Enforce,
        defaults: Defaults {
            ports,
            ..Defaults::default()
        },
        approved: Vec::new(),
        assets,
        source: String::new(),
    }
}

/// The manifest as YAML, headed by a comment that says where it came from and what to
/// review before committing it.
pub fn baseline_yaml(manifest: &Manifest, report: &ScanReport) -> Result<String, Error> {
    let yaml = serde_saphyr::to_string(manifest)
        .map_err(|e| Error::Input(format!("could not write the manifest: {e}")))?;
    Ok(format!(
        "# portgate manifest written by `portgate baseline init` from the scan of {}.\n# Every open port is approved as found: review each, write its justification (TODO),\n# set owners, then commit this file and run `portgate check --manifest FILE`.\n{yaml}",
        report
            .started_at
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    ))
}
