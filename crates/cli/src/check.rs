//! `portgate check`: scan every target of the manifest, evaluate, render, exit with the
//! decision (0 pass, 1 policy failure, 2 manifest or usage error, 3 scan incomplete).

use crate::Failure;
use clap::{Args, ValueEnum};
use portgate_model::TargetSpec;
use portgate_pipeline::{self as pipeline, CheckOptions, Detector, Saved};
use portgate_policy::{FailOn, Manifest, Mode};
use portgate_report::CheckReport;
use portgate_scan::TcpMethod;
use std::path::PathBuf;
use std::time::Duration;

/// `--mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ModeArg {
    /// Policy failures fail the check (exit 1).
    Enforce,
    /// Report everything, exit 0.
    Monitor,
}

/// `--fail-on`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum FailOnArg {
    /// Only critical failures fail the check.
    Critical,
    /// High and critical.
    High,
    /// Medium and above.
    Medium,
    /// Every failure.
    Low,
}

#[derive(Debug, Args)]
pub(crate) struct CheckArgs {
    /// The manifest (baseline) to check against.
    #[arg(long, value_name = "FILE", env = "PORTGATE_CHECK_MANIFEST")]
    pub(crate) manifest: PathBuf,

    /// Check the assets of this environment (and those without one) [default: every asset].
    #[arg(long, value_name = "ENV", env = "PORTGATE_ENV")]
    pub(crate) env: Option<String>,

    /// Check only this target (repeatable); a target no asset lists is checked against the
    /// manifest's global approved list alone (an ephemeral environment).
    #[arg(long = "target", value_name = "TARGET")]
    pub(crate) targets: Vec<String>,

    /// enforce: policy failures exit 1; monitor: report everything, exit 0 [default: the manifest's mode].
    #[arg(long, value_enum, env = "PORTGATE_MODE")]
    pub(crate) mode: Option<ModeArg>,

    /// The least severity that fails the check [default: the manifest's, else low].
    #[arg(
        long,
        value_enum,
        value_name = "SEVERITY",
        env = "PORTGATE_CHECK_FAIL_ON"
    )]
    pub(crate) fail_on: Option<FailOnArg>,

    /// Write the evidence (findings and the full scan) as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    pub(crate) json: Option<PathBuf>,

    /// Write SARIF 2.1.0 to FILE (code-scanning dashboards).
    #[arg(long, value_name = "FILE")]
    pub(crate) sarif: Option<PathBuf>,

    /// Write JUnit XML to FILE (a test case per asset and port).
    #[arg(long, value_name = "FILE")]
    pub(crate) junit: Option<PathBuf>,

    /// Write a Markdown summary to FILE (a pipeline step summary, a merge-request comment).
    #[arg(long, value_name = "FILE")]
    pub(crate) markdown: Option<PathBuf>,

    /// Write the check's scan to FILE in nmap's XML format (for tools that read it).
    #[arg(long, value_name = "FILE")]
    pub(crate) xml: Option<PathBuf>,

    /// Judge a scan made elsewhere instead of scanning: nmap's XML (-oX), masscan's JSON
    /// (-oJ) or list (-oL), or a portgate JSON report (the format is recognised). No probe
    /// is sent; ports the scanner did not list are not judged.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["connect", "ca_file", "apps", "try_default_credentials", "no_app_checks"])]
    pub(crate) from_scan: Option<PathBuf>,

    /// Verify TLS certificates against the CA certificates of this PEM file instead of the
    /// system's trust roots.
    #[arg(long = "ca", value_name = "FILE")]
    pub(crate) ca_file: Option<PathBuf>,

    /// Add the applications of this file to the built-in application database (same format
    /// as crates/detect/data/apps.toml; an application with a built-in's id replaces it).
    #[arg(long, value_name = "FILE")]
    pub(crate) apps: Option<PathBuf>,

    /// Try the vendors' documented default logins (e.g. RabbitMQ guest/guest, Grafana
    /// admin/admin, Tomcat manager tomcat/tomcat) on the management interfaces found, as
    /// HTTP Basic; every attempt is recorded. Only for your own assets.
    #[arg(long)]
    pub(crate) try_default_credentials: bool,

    /// Judge ports without asking HTTP ports for their application (the application rules
    /// then find nothing).
    #[arg(long, conflicts_with_all = ["apps", "try_default_credentials"])]
    pub(crate) no_app_checks: bool,

    /// Probe TCP with full handshakes even when raw sockets are permitted.
    #[arg(long)]
    pub(crate) connect: bool,

    /// Stop scanning after this long; what was not scanned is inconclusive (exit 3).
    #[arg(long, value_parser = crate::args::parse_duration, value_name = "DURATION", env = "PORTGATE_DEADLINE")]
    pub(crate) deadline: Option<Duration>,

    #[command(flatten)]
    pub(crate) remote: crate::remote::ServerArgs,

    /// Compare with the last scan of each target in this history database, then save the
    /// scan and the findings there: a SQLite file (created on first use) or a postgres://
    /// URL. When $PORTGATE_DB is set, every check is saved there.
    #[arg(long, value_name = "PATH|URL")]
    pub(crate) db: Option<String>,

    /// Use the history database $PORTGATE_DB, else $XDG_DATA_HOME/portgate/history.db,
    /// else ~/.local/share/portgate/history.db (as --db does).
    #[arg(long, conflicts_with = "db")]
    pub(crate) save: bool,

    /// Resolve the targets' names with this DNS server (IP or IP:PORT) instead of the
    /// system's (also for the DNS records of --enrich).
    #[arg(long, value_parser = crate::args::parse_dns_server, value_name = "ADDR", env = "PORTGATE_DNS_SERVER")]
    pub(crate) dns_server: Option<std::net::SocketAddr>,

    #[command(flatten)]
    pub(crate) enrich: crate::args::EnrichArgs,
}

/// A scan file another tool (or portgate) wrote, read into a report; an unreadable or
/// unrecognised file is a usage error naming it.
pub(crate) fn read_scan_file(
    path: &std::path::Path,
) -> Result<portgate_model::ScanReport, Failure> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Failure::usage(format!("{}: cannot read: {e}", path.display())))?;
    portgate_report::read_scan(&text)
        .map(|(_, report)| report)
        .map_err(|e| Failure::usage(format!("{}: {e}", path.display())))
}

/// Runs the check and returns its exit code.
pub(crate) fn run(args: CheckArgs) -> Result<u8, Failure> {
    let mut manifest = Manifest::load(&args.manifest)?;
    if let Some(mode) = args.mode {
        manifest.mode = match mode {
            ModeArg::Enforce => Mode::Enforce,
            ModeArg::Monitor => Mode::Monitor,
        };
    }
    if let Some(fail_on) = args.fail_on {
        manifest.defaults.fail_on = match fail_on {
            FailOnArg::Critical => FailOn::Critical,
            FailOnArg::High => FailOn::High,
            FailOnArg::Medium => FailOn::Medium,
            FailOnArg::Low => FailOn::Low,
        };
    }
    let targets = args
        .targets
        .iter()
        .map(|t| {
            t.parse::<TargetSpec>()
                .map_err(|e| Failure::usage(format!("--target {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let history = match pipeline::recording(args.db.as_deref(), args.save) {
        true => Some(pipeline::location(args.db.as_deref())?),
        false => None,
    };
    // The revision of the manifest as it was read, not as it may be after the scan.
    let revision = history
        .as_ref()
        .and_then(|_| pipeline::manifest_revision(&args.manifest));
    // Bootstrap and WHOIS tables are read (and refused) before anything is scanned; the
    // builder gives the enrichment the check's DNS server.
    let enrich = args.enrich.options(None);
    enrich.check()?;
    let options = CheckOptions::builder()
        .env(args.env.clone())
        .targets(targets)
        .tcp_method(if args.connect {
            TcpMethod::Connect
        } else {
            TcpMethod::Auto
        })
        .deadline(args.deadline)
        .revision(revision.clone())
        .enrich(enrich)
        .dns_server(args.dns_server)
        .build();
    if args.remote.server.is_some()
        && (args.connect
            || args.ca_file.is_some()
            || args.apps.is_some()
            || args.try_default_credentials
            || args.no_app_checks)
    {
        return Err(Failure::usage(
            "--connect, --ca, --apps, --try-default-credentials and --no-app-checks are not for --server: the server decides how it probes",
        ));
    }
    if args.from_scan.is_some() && args.remote.server.is_some() {
        return Err(Failure::usage(
            "--from-scan judges a scan made elsewhere: it takes no --server",
        ));
    }
    let given = match &args.from_scan {
        Some(path) => Some(read_scan_file(path)?),
        None => None,
    };
    let outcome = match (given, crate::remote::remote(&args.remote)?) {
        (Some(report), _) => crate::runtime()?.block_on(pipeline::check_report(
            &manifest,
            &options,
            report,
            history.as_ref(),
        ))?,
        (None, Some(remote)) => crate::runtime()?.block_on(pipeline::check_remote(
            &manifest,
            &options,
            &remote,
            history.as_ref(),
        ))?,
        (None, None) => {
            let mut detection = Detector::load(None, args.ca_file.as_deref())?
                .with_apps_file(args.apps.as_deref())?
                .try_default_credentials(args.try_default_credentials);
            if args.no_app_checks {
                detection.inspect.apps = None;
            }
            crate::scan::raise_open_file_limit();
            crate::runtime()?.block_on(pipeline::check(
                &manifest,
                &options,
                &detection,
                history.as_ref(),
                &mut crate::scan::ProgressSink::new(false),
            ))?
        }
    };
    for compared in &outcome.compared {
        eprintln!(
            "portgate: {}: compared with scan {} of {} UTC",
            compared.target,
            compared.scan,
            compared.started_at.format("%Y-%m-%d %H:%M:%S")
        );
    }
    let check = CheckReport {
        findings: &outcome.evaluation.findings,
        outcome: outcome.evaluation.outcome,
        monitor: outcome.evaluation.monitor,
        manifest: &manifest.source,
        env: options.env(),
        scan: &outcome.report,
    };
    let outputs: [(&Option<PathBuf>, Renderer); 4] = [
        (&args.json, portgate_report::check_json),
        (&args.sarif, portgate_report::sarif),
        (&args.junit, portgate_report::junit),
        (&args.markdown, portgate_report::markdown),
    ];
    for (path, render) in outputs {
        if let Some(path) = path {
            std::fs::write(path, render(&check))
                .map_err(|e| crate::exit::cannot_write(path, &e))?;
        }
    }
    if let Some(path) = &args.xml {
        let xml = portgate_report::nmap_xml(&outcome.report, &crate::args::command_line());
        std::fs::write(path, xml).map_err(|e| crate::exit::cannot_write(path, &e))?;
    }
    crate::write_stdout(&portgate_report::check_summary(&check));
    match outcome.saved {
        Saved::NotRecorded => {}
        Saved::Saved { scan, check, store } => eprintln!(
            "portgate: saved as scan {scan}, check {check}{} in {store}",
            revision
                .map(|r| format!(" (manifest revision {r})"))
                .unwrap_or_default(),
        ),
        Saved::Failed(e) => return Err(e.into()),
    }
    Ok(crate::exit::check_code(&outcome.evaluation))
}

/// A renderer of a check's outputs.
type Renderer = fn(&CheckReport<'_>) -> String;
