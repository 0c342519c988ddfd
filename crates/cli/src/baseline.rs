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
    /// Check a manifest for a pull request: it loads (schema, values, duplicate approvals),
    /// no approval is past its date, no target is listed twice in an environment (errors);
    /// approvals of ports nobody scans and approvals that repeat a global one (warnings).
    ///
    /// Exit status: 0 no error (warnings allowed), 1 an error, 2 the manifest does not load.
    Lint {
        /// The manifest.
        #[arg(long, value_name = "FILE")]
        manifest: std::path::PathBuf,
        /// Output format.
        #[arg(long, value_enum, default_value = "table")]
        format: LintFormat,
    },
}

/// Output formats of `manifest lint`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum LintFormat {
    /// One line per finding: `file:line:column: level: message`.
    Table,
    /// JSON: the findings and their counts.
    Json,
}

/// `portgate manifest ...`.
pub(crate) fn run_manifest(args: ManifestArgs) -> Result<u8, Failure> {
    match args.command {
        ManifestCommand::Schema => {
            print!("{}", portgate_policy::manifest_schema());
            Ok(0)
        }
        ManifestCommand::Lint { manifest, format } => {
            let loaded = portgate_policy::Manifest::load(&manifest)?;
            let findings = portgate_policy::lint(&loaded, chrono::Utc::now().date_naive());
            let errors = findings
                .iter()
                .filter(|f| f.level == portgate_policy::LintLevel::Error)
                .count();
            let warnings = findings.len() - errors;
            let text = match format {
                LintFormat::Json => {
                    let doc = serde_json::json!({
                        "manifest": loaded.source,
                        "errors": errors,
                        "warnings": warnings,
                        "findings": findings,
                    });
                    format!("{doc:#}\n")
                }
                LintFormat::Table => {
                    let mut out = String::new();
                    for f in &findings {
                        out.push_str(&format!(
                            "{}:{}:{}: {}: {}\n",
                            f.location.file,
                            f.location.line,
                            f.location.column,
                            f.level.as_str(),
                            f.message
                        ));
                    }
                    out.push_str(&format!(
                        "portgate manifest lint: {}: {errors} error(s), {warnings} warning(s)\n",
                        loaded.source
                    ));
                    out
                }
            };
            crate::write_stdout(&text);
            Ok(if errors > 0 { 1 } else { 0 })
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
