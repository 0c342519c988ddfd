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
    /// Add an approval to a manifest in place, keeping every comment, key order and
    /// indentation: the change is the new entry and nothing else, ready for a pull request.
    /// The edited manifest is read back before it is written; an approval that would not
    /// load, or a port the list already approves, is refused (exit 2) and nothing changes.
    Approve(ApproveArgs),
}

#[derive(Debug, Args)]
pub(crate) struct ApproveArgs {
    /// The manifest to edit.
    #[arg(long, value_name = "FILE")]
    pub(crate) manifest: std::path::PathBuf,
    /// The asset whose list takes the approval; without it, the global `approved:` list.
    #[arg(long, value_name = "NAME")]
    pub(crate) asset: Option<String>,
    /// The port.
    #[arg(long, value_name = "PORT")]
    pub(crate) port: u16,
    /// tcp or udp.
    #[arg(long, value_enum, default_value = "tcp")]
    pub(crate) protocol: ProtocolArg,
    /// The service expected there (https, ssh, postgresql, ...).
    #[arg(long, value_name = "NAME")]
    pub(crate) service: Option<String>,
    /// `required`: the port must speak TLS with a valid certificate.
    #[arg(long, value_enum, default_value = "optional")]
    pub(crate) tls: TlsArg,
    /// The application approved behind the port (grafana, jupyter, ... as `scan --detect`
    /// names it).
    #[arg(long, value_name = "ID")]
    pub(crate) application: Option<String>,
    /// An address the approval holds for (repeatable); without it, every address of the
    /// asset's targets.
    #[arg(long = "address", value_name = "IP")]
    pub(crate) addresses: Vec<std::net::IpAddr>,
    /// Why the port may be reachable (reviewed with the change).
    #[arg(long, value_name = "TEXT")]
    pub(crate) justification: String,
    /// Last day the approval holds, YYYY-MM-DD.
    #[arg(long, value_name = "DATE")]
    pub(crate) until: Option<String>,
    /// A comment line written above the entry (repeatable).
    #[arg(long, value_name = "TEXT")]
    pub(crate) comment: Vec<String>,
    /// Print the change as a unified diff instead of writing the file.
    #[arg(long)]
    pub(crate) dry_run: bool,
}

/// `--protocol`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum ProtocolArg {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

/// `--tls`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum TlsArg {
    /// TLS is checked when the port speaks it.
    Optional,
    /// The port must speak TLS.
    Required,
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
    /// GitHub Actions workflow commands (`::error file=…,line=…,col=…::message`): each
    /// finding an annotation on the pull request's diff, and the table's summary line.
    Github,
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
                LintFormat::Github => {
                    // Workflow command values: `%`, CR and LF escaped (and `,` `:` in
                    // properties), so a message cannot end the command early.
                    let data = |s: &str| {
                        s.replace('%', "%25")
                            .replace('\r', "%0D")
                            .replace('\n', "%0A")
                    };
                    let property = |s: &str| data(s).replace(':', "%3A").replace(',', "%2C");
                    let mut out = String::new();
                    for f in &findings {
                        out.push_str(&format!(
                            "::{} file={},line={},col={},title=portgate manifest lint::{}\n",
                            match f.level {
                                portgate_policy::LintLevel::Error => "error",
                                portgate_policy::LintLevel::Warning => "warning",
                            },
                            property(&f.location.file),
                            f.location.line,
                            f.location.column,
                            data(&f.message)
                        ));
                    }
                    out.push_str(&format!(
                        "portgate manifest lint: {}: {errors} error(s), {warnings} warning(s)\n",
                        loaded.source
                    ));
                    out
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
    match args.command {
        BaselineCommand::Init(args) => init(args),
        BaselineCommand::Approve(args) => approve(args),
    }
}

/// `portgate baseline approve`.
fn approve(args: ApproveArgs) -> Result<u8, Failure> {
    use portgate_policy::approve;
    let manifest = portgate_policy::Manifest::load(&args.manifest)?;
    let file = manifest.source.clone();
    let justification = args.justification.trim().to_string();
    if justification.is_empty() {
        return Err(Failure::usage("--justification: the reason is empty"));
    }
    if args.port == 0 {
        return Err(Failure::usage("--port 0 is not a port (ports are 1-65535)"));
    }
    let approved_until = args
        .until
        .map(|until| {
            portgate_policy::ApprovalDate::try_from(until.clone())
                .map_err(|e| Failure::usage(format!("--until: {e}")))
        })
        .transpose()?;
    if let Some(until) = approved_until
        && until.0 < chrono::Utc::now().date_naive()
    {
        return Err(Failure::usage(format!(
            "--until {until} is in the past: the approval would fail at once"
        )));
    }
    let approval = approve::Approval {
        asset: args.asset,
        entry: portgate_policy::ApprovedPort {
            port: args.port,
            protocol: match args.protocol {
                ProtocolArg::Tcp => portgate_policy::ProtocolName::Tcp,
                ProtocolArg::Udp => portgate_policy::ProtocolName::Udp,
            },
            service: args.service,
            tls: match args.tls {
                TlsArg::Optional => portgate_policy::TlsPolicy::Optional,
                TlsArg::Required => portgate_policy::TlsPolicy::Required,
            },
            justification,
            approved_until,
            application: args.application,
            accept: Vec::new(),
            addresses: args.addresses,
        },
        comment: args.comment,
    };
    let edit = approve::plan(&manifest, &approval).map_err(|e| Failure::usage(e.to_string()))?;
    let edited = edit.apply(&manifest.text);
    let place = edit.text_edit(&manifest.text, &file);
    if args.dry_run {
        let added: String = place
            .inserted
            .lines()
            .filter(|l| !l.is_empty())
            .map(|l| format!("+{l}\n"))
            .collect();
        crate::write_stdout(&format!(
            "--- {file}\n+++ {file}\n@@ line {} @@\n{added}",
            place.start_line
        ));
        return Ok(0);
    }
    write_in_place(&args.manifest, &edited)
        .map_err(|e| crate::exit::cannot_write(&args.manifest, &e))?;
    eprintln!(
        "portgate: {file}:{}: approved {}/{}{}",
        place.start_line,
        approval.entry.port,
        portgate_model::Protocol::from(approval.entry.protocol),
        approval
            .asset
            .as_deref()
            .map(|a| format!(" for asset {a}"))
            .unwrap_or_default()
    );
    Ok(0)
}

/// Replaces `path`'s content through a file beside it renamed over it (same permissions),
/// so a reader never sees half a manifest.
fn write_in_place(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let temporary = dir.join(format!(".{name}.portgate-{}", std::process::id()));
    let result = (|| {
        let mut file = std::fs::File::create(&temporary)?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        let permissions = std::fs::metadata(path)?.permissions();
        std::fs::set_permissions(&temporary, permissions)?;
        std::fs::rename(&temporary, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    result
}

/// `portgate baseline init`.
fn init(args: InitArgs) -> Result<u8, Failure> {
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
    let baseline = pipeline::baseline_from(&report, &targets, ports, args.env.as_deref());
    // Not an input error: the manifest was built here.
    let yaml =
        pipeline::baseline_yaml(&baseline, &report).map_err(|e| Failure::scan(e.to_string()))?;
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
