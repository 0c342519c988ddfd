//! `portgate baseline init` (a manifest from today's scan) and `portgate manifest schema`.

use crate::Failure;
use clap::{Args, Subcommand};
use portgate_model::TargetSpec;
use portgate_pipeline::{self as pipeline, Detector};
use portgate_policy::Ports;
use portgate_scan::{NullSink, Scanner};
use std::collections::BTreeSet;

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
    let scanner = Scanner::builder().ports(ports.spec().clone()).build()?;
    scanner.check_targets(&targets)?;
    let detection = Detector::load(None, None)?;
    let report = crate::runtime()?.block_on(pipeline::scan(
        &scanner,
        &targets,
        Some(&detection),
        &mut NullSink,
    ))?;
    let manifest = pipeline::baseline_from(&report, &targets, ports, args.env.as_deref());
    // Not an input error: the manifest was built here.
    let yaml =
        pipeline::baseline_yaml(&manifest, &report).map_err(|e| Failure::scan(e.to_string()))?;
    crate::write_stdout(&yaml);
    let unresolved: BTreeSet<&str> = report
        .targets
        .iter()
        .filter(|t| t.error.is_some())
        .map(|t| t.input.as_str())
        .collect();
    if !unresolved.is_empty() {
        for target in &unresolved {
            eprintln!("portgate: incomplete: target {target} could not be scanned");
        }
        return Ok(crate::exit::INCOMPLETE);
    }
    Ok(0)
}
