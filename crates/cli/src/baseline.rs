//! `portgate baseline init` (a manifest from today's scan) and `portgate manifest schema`.

use crate::Failure;
use clap::{Args, Subcommand};
use portgate_detect::probes::ProbeDb;
use portgate_model::{PortSpec, PortState, Protocol, TargetSpec};
use portgate_policy::{
    ApprovedPort, Asset, Defaults, Manifest, Mode, Ports, ProtocolName, Spanned, Target, TlsPolicy,
};
use portgate_scan::{NullSink, Scanner};
use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug, Args)]
pub(crate) struct BaselineArgs {
    #[command(subcommand)]
    pub(crate) command: BaselineCommand,
}

#[derive(Debug, Subcommand)]
pub(crate) enum BaselineCommand {
    /// Scan TARGETS and print a manifest approving every open port (justification TODO),
    /// so adoption starts from today's state: `portgate baseline init HOST > exposure.yaml`.
    Init(InitArgs),
}

#[derive(Debug, Args)]
pub(crate) struct InitArgs {
    /// Hostnames, IP addresses or CIDR ranges; each becomes an asset.
    #[arg(value_name = "TARGET", required = true)]
    pub(crate) targets: Vec<String>,

    /// Ports to scan (recorded as the manifest's default port set).
    #[arg(
        short = 'p',
        long,
        value_name = "PORTS",
        default_value = "top1000",
        allow_hyphen_values = true
    )]
    pub(crate) ports: String,

    /// Environment to record on every asset.
    #[arg(long, value_name = "ENV")]
    pub(crate) env: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct ManifestArgs {
    #[command(subcommand)]
    pub(crate) command: ManifestCommand,
}

#[derive(Debug, Subcommand)]
pub(crate) enum ManifestCommand {
    /// Print the manifest's JSON Schema (for editors: yaml-language-server).
    Schema,
}

/// `portgate manifest ...`.
pub(crate) fn run_manifest(args: ManifestArgs) -> Result<u8, Failure> {
    match args.command {
        ManifestCommand::Schema => {
            print!("{}", portgate_policy::manifest_schema());
            Ok(0)
        }
    }
}

fn spanned<T>(value: T) -> Spanned<T> {
    Spanned::new(
        value,
        serde_saphyr::Location::UNKNOWN,
        serde_saphyr::Location::UNKNOWN,
    )
}

/// `portgate baseline ...`.
pub(crate) fn run(args: BaselineArgs) -> Result<u8, Failure> {
    let BaselineCommand::Init(args) = args.command;
    let ports = Ports::try_from(args.ports.clone())
        .map_err(|e| Failure::usage(format!("-p {}: {e}", args.ports)))?;
    let targets = args
        .targets
        .iter()
        .map(|t| {
            t.parse::<TargetSpec>()
                .map_err(|e| Failure::usage(format!("target {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let spec: PortSpec = ports.spec().clone();
    let scanner = Scanner::builder()
        .ports(spec)
        .build()
        .map_err(|e| Failure::usage(e.to_string()))?;
    scanner
        .check_targets(&targets)
        .map_err(|e| Failure::usage(e.to_string()))?;
    let db = ProbeDb::builtin().map_err(|e| Failure::usage(e.to_string()))?;
    let options = crate::scan::inspect_options(None)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::scan(format!("could not start the async runtime: {e}")))?;
    let mut report = runtime
        .block_on(scanner.run(&targets, &mut NullSink))
        .map_err(|e| Failure::usage(e.to_string()))?;
    runtime.block_on(crate::scan::detect_services(&mut report, &db, &options));

    let mut assets = Vec::new();
    for target in &targets {
        let name = target.to_string();
        // Every open port of any address of the target, with what answered there.
        let mut open: BTreeMap<(Protocol, u16), (Option<String>, bool)> = BTreeMap::new();
        for host in report.hosts.iter().filter(|h| h.target == name) {
            for port in host.ports.iter().filter(|p| p.state == PortState::Open) {
                let detected = host.service_on(port.protocol, port.port);
                let service = detected
                    .and_then(|d| d.service.clone())
                    .filter(|s| s != "tls");
                let tls = detected.is_some_and(|d| d.tls.is_some());
                open.entry((port.protocol, port.port))
                    .or_insert((service, tls));
            }
        }
        let approved = open
            .into_iter()
            .map(|((protocol, port), (service, tls))| {
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
                })
            })
            .collect();
        assets.push(spanned(Asset {
            name: name.clone(),
            environment: args.env.clone(),
            owner: None,
            escalation: None,
            criticality: None,
            tags: BTreeMap::new(),
            targets: vec![spanned(Target(target.clone()))],
            ports: None,
            approved,
            expected_network: Vec::new(),
            on_missing: None,
        }));
    }
    let manifest = Manifest {
        version: 1,
        mode: Mode::Enforce,
        defaults: Defaults {
            ports,
            ..Defaults::default()
        },
        approved: Vec::new(),
        assets,
        source: String::new(),
    };
    let yaml = serde_saphyr::to_string(&manifest)
        .map_err(|e| Failure::scan(format!("could not write the manifest: {e}")))?;
    let unresolved: BTreeSet<&str> = report
        .targets
        .iter()
        .filter(|t| t.error.is_some())
        .map(|t| t.input.as_str())
        .collect();
    print!(
        "# portgate manifest written by `portgate baseline init` from the scan of {}.\n# Every open port is approved as found: review each, write its justification (TODO),\n# set owners, then commit this file and run `portgate check --manifest FILE`.\n{yaml}",
        report
            .started_at
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    );
    if !unresolved.is_empty() {
        for target in &unresolved {
            eprintln!("portgate: incomplete: target {target} could not be scanned");
        }
        return Ok(3);
    }
    Ok(0)
}
