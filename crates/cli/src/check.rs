//! `portgate check`: scan every target of the manifest, evaluate, render, exit with the
//! decision (0 pass, 1 policy failure, 2 manifest or usage error, 3 scan incomplete).

use crate::Failure;
use clap::{Args, ValueEnum};
use portgate_detect::probes::ProbeDb;
use portgate_model::{ScanReport, TargetSpec};
use portgate_policy::{FailOn, Manifest, Mode, evaluate, merge_reports};
use portgate_report::CheckReport;
use portgate_scan::{Scanner, TcpMethod};
use portgate_store::{ScanId, Store};
use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

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
    #[arg(long, value_name = "FILE")]
    pub(crate) manifest: PathBuf,

    /// Check the assets of this environment (and those without one) [default: every asset].
    #[arg(long, value_name = "ENV")]
    pub(crate) env: Option<String>,

    /// Check only this target (repeatable); a target no asset lists is checked against the
    /// manifest's global approved list alone (an ephemeral environment).
    #[arg(long = "target", value_name = "TARGET")]
    pub(crate) targets: Vec<String>,

    /// enforce: policy failures exit 1; monitor: report everything, exit 0 [default: the manifest's mode].
    #[arg(long, value_enum)]
    pub(crate) mode: Option<ModeArg>,

    /// The least severity that fails the check [default: the manifest's, else low].
    #[arg(long, value_enum, value_name = "SEVERITY")]
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

    /// Verify TLS certificates against the CA certificates of this PEM file instead of the
    /// system's trust roots.
    #[arg(long = "ca", value_name = "FILE")]
    pub(crate) ca_file: Option<PathBuf>,

    /// Probe TCP with full handshakes even when raw sockets are permitted.
    #[arg(long)]
    pub(crate) connect: bool,

    /// Stop scanning after this long; what was not scanned is inconclusive (exit 3).
    #[arg(long, value_parser = crate::args::parse_duration, value_name = "DURATION")]
    pub(crate) deadline: Option<Duration>,

    /// Compare with the last scan of each target in this history database, then save the
    /// scan and the findings there: a SQLite file (created on first use) or a postgres://
    /// URL. When $PORTGATE_DB is set, every check is saved there.
    #[arg(long, value_name = "PATH|URL")]
    pub(crate) db: Option<String>,

    /// Use the history database $PORTGATE_DB, else $XDG_DATA_HOME/portgate/history.db,
    /// else ~/.local/share/portgate/history.db (as --db does).
    #[arg(long, conflicts_with = "db")]
    pub(crate) save: bool,
}

/// Runs the check and returns its exit code.
pub(crate) fn run(args: CheckArgs) -> Result<u8, Failure> {
    let mut manifest = Manifest::load(&args.manifest).map_err(|e| Failure::usage(e.to_string()))?;
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
    let env = args.env.as_deref();
    manifest
        .check_environment(env)
        .map_err(|e| Failure::usage(e.to_string()))?;
    let only = args
        .targets
        .iter()
        .map(|t| {
            t.parse::<TargetSpec>()
                .map_err(|e| Failure::usage(format!("--target {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let plan = manifest.scan_plan(env, &only);
    if plan.is_empty() {
        return Err(Failure::usage(format!(
            "{}: nothing to check{}: no asset lists a target",
            manifest.source,
            env.map(|e| format!(" in environment \"{e}\""))
                .unwrap_or_default()
        )));
    }
    let options = crate::scan::inspect_options(args.ca_file.as_deref())?;
    let db = ProbeDb::builtin().map_err(|e| Failure::usage(e.to_string()))?;
    crate::scan::raise_open_file_limit();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::scan(format!("could not start the async runtime: {e}")))?;
    // Opened before the first probe: a wrong --db is an error at once, not after the scan.
    let history = if crate::history::recording(args.db.as_deref(), args.save) {
        Some(runtime.block_on(crate::history::open_store(args.db.as_deref()))?)
    } else {
        None
    };
    // The revision of the manifest as it was read, not as it may be after the scan.
    let revision = history
        .as_ref()
        .and_then(|_| manifest_revision(&args.manifest));

    let mut parts: Vec<ScanReport> = Vec::new();
    for group in &plan {
        let scanner = Scanner::builder()
            .ports(group.ports.clone())
            .tcp_method(if args.connect {
                TcpMethod::Connect
            } else {
                TcpMethod::Auto
            })
            .deadline(args.deadline)
            .build()
            .map_err(|e| Failure::usage(e.to_string()))?;
        scanner
            .check_targets(&group.targets)
            .map_err(|e| Failure::usage(e.to_string()))?;
        let mut report = runtime
            .block_on(scanner.run(&group.targets, &mut crate::scan::ProgressSink::new(false)))
            .map_err(|e| Failure::usage(e.to_string()))?;
        // Service-aware rules need to know what answers: detection always runs.
        runtime.block_on(crate::scan::detect_services(&mut report, &db, &options));
        parts.push(report);
    }
    let report = merge_reports(parts)
        .ok_or_else(|| Failure::usage("nothing to check: the manifest lists no target"))?;
    let previous = match &history {
        Some(store) => runtime.block_on(previous_scans(store, &report))?,
        None => None,
    };
    let evaluation = evaluate(&manifest, env, &report, previous.as_ref());
    let check = CheckReport {
        findings: &evaluation.findings,
        outcome: evaluation.outcome,
        monitor: evaluation.monitor,
        manifest: &manifest.source,
        env,
        scan: &report,
    };
    let outputs: [(&Option<PathBuf>, Renderer); 4] = [
        (&args.json, portgate_report::check_json),
        (&args.sarif, portgate_report::sarif),
        (&args.junit, portgate_report::junit),
        (&args.markdown, portgate_report::markdown),
    ];
    for (path, render) in outputs {
        if let Some(path) = path {
            write_file(path, &render(&check))?;
        }
    }
    let mut stdout = std::io::stdout().lock();
    // A closed pipe is not a policy failure.
    let _ = stdout
        .write_all(portgate_report::check_summary(&check).as_bytes())
        .and_then(|()| stdout.flush());
    if let Some(store) = history {
        runtime.block_on(save(
            store,
            &report,
            &evaluation.findings,
            revision.as_deref(),
        ))?;
    }
    Ok(evaluation.exit_code())
}

/// The last finalised scan of each target of `report` in the history, as one report whose
/// hosts are the previous ones of each target (None when no target has been scanned before).
/// The current scan is not saved yet, so it is never its own previous scan.
async fn previous_scans(store: &Store, report: &ScanReport) -> Result<Option<ScanReport>, Failure> {
    let result = async {
        let targets: BTreeSet<&str> = report.hosts.iter().map(|h| h.target.as_str()).collect();
        let mut loaded: BTreeMap<ScanId, ScanReport> = BTreeMap::new();
        let mut hosts = Vec::new();
        for target in targets {
            let Some(record) = store
                .last_scan_of_target_before(target, report.started_at)
                .await
                .map_err(history_err)?
            else {
                continue;
            };
            let previous = match loaded.entry(record.id) {
                Entry::Occupied(slot) => slot.into_mut(),
                Entry::Vacant(slot) => {
                    slot.insert(store.load_report(record.id).await.map_err(history_err)?)
                }
            };
            eprintln!(
                "portgate: {target}: compared with scan {} of {} UTC",
                record.id,
                record.started_at.format("%Y-%m-%d %H:%M:%S")
            );
            hosts.extend(
                previous
                    .hosts
                    .iter()
                    .filter(|h| h.target == target)
                    .cloned(),
            );
        }
        // `evaluate` reads the hosts of the previous report; the rest is the newest one's.
        Ok(loaded
            .into_values()
            .next_back()
            .map(|newest| ScanReport { hosts, ..newest }))
    }
    .await;
    if result.is_err() {
        store.close().await;
    }
    result
}

/// Stores the scan and the check's findings, with the manifest's revision; says on standard
/// error where they went.
async fn save(
    store: Store,
    report: &ScanReport,
    findings: &[portgate_model::Finding],
    revision: Option<&str>,
) -> Result<(), Failure> {
    let result = async {
        let scan_id = store.save_scan(report, revision).await?;
        let check_id = store.save_check(scan_id, findings, revision).await?;
        Ok::<_, portgate_store::StoreError>((scan_id, check_id))
    }
    .await;
    store.close().await;
    let (scan_id, check_id) = result.map_err(|e| {
        Failure::scan(format!(
            "the check finished but could not be saved to the history: {e}"
        ))
    })?;
    eprintln!(
        "portgate: saved as scan {scan_id}, check {check_id}{} in {}",
        revision
            .map(|r| format!(" (manifest revision {r})"))
            .unwrap_or_default(),
        store.name()
    );
    Ok(())
}

fn history_err(e: portgate_store::StoreError) -> Failure {
    Failure::usage(format!("cannot read the history: {e}"))
}

/// How long a git command may take before the revision is left unknown.
const GIT_TIMEOUT: Duration = Duration::from_secs(5);

/// The git commit of the manifest when it lies in a git work tree, with `-dirty` when the
/// file differs from that commit (modified, staged or untracked). None without git, outside
/// a work tree, in a repository without commits, or when git does not answer in time: the
/// revision is recorded when known, never required.
fn manifest_revision(manifest: &Path) -> Option<String> {
    revision_with(Path::new("git"), GIT_TIMEOUT, manifest)
}

/// [`manifest_revision`] with this git program and time limit per git command.
fn revision_with(program: &Path, timeout: Duration, manifest: &Path) -> Option<String> {
    let dir = match manifest.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let file = manifest.file_name()?;
    let git = |args: &[&OsStr]| git_output(program, timeout, dir, args);
    let head = git(&["rev-parse", "--verify", "HEAD"].map(OsStr::new))?;
    let head = head.trim();
    if head.is_empty() || !head.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    // Unknown is not clean: a failed status leaves the revision unknown.
    let status = git(&[
        OsStr::new("status"),
        OsStr::new("--porcelain"),
        OsStr::new("--"),
        file,
    ])?;
    Some(if status.trim().is_empty() {
        head.to_string()
    } else {
        format!("{head}-dirty")
    })
}

/// Runs `program -C dir args…`; its standard output when it exits successfully within
/// `timeout` (at most 64 KiB of it), else None (a late one is killed). Takes no optional
/// lock on the repository and never prompts.
fn git_output(program: &Path, timeout: Duration, dir: &Path, args: &[&OsStr]) -> Option<String> {
    use std::io::Read;
    use std::process::{Command, Stdio};
    let mut child = Command::new(program)
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_OPTIONAL_LOCKS", "0")
        .env("GIT_TERMINAL_PROMPT", "0")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let mut stdout = child.stdout.take()?;
    let reader = std::thread::spawn(move || {
        let mut out = Vec::new();
        let _ = (&mut stdout).take(64 * 1024).read_to_end(&mut out);
        out
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    };
    let out = reader.join().ok()?;
    if !status.success() {
        return None;
    }
    String::from_utf8(out).ok()
}

/// A renderer of a check's outputs.
type Renderer = fn(&CheckReport<'_>) -> String;

fn write_file(path: &Path, text: &str) -> Result<(), Failure> {
    std::fs::write(path, text)
        .map_err(|e| Failure::usage(format!("cannot write {}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::expect_used)]

    use super::*;
    use std::process::Command;

    fn git(dir: &Path, args: &[&str]) {
        let status = Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(["-c", "user.name=t", "-c", "user.email=t@example.test"])
            .args(["-c", "commit.gpgsign=false"])
            .args(args)
            .output()
            .expect("git runs");
        assert!(status.status.success(), "git {args:?}: {status:?}");
    }

    fn head(dir: &Path) -> String {
        let out = Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(["rev-parse", "HEAD"])
            .output()
            .expect("git runs");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    #[test]
    fn the_revision_is_the_commit_and_dirty_when_the_file_differs() {
        let dir = tempfile::tempdir().expect("tempdir");
        let manifest = dir.path().join("exposure.yaml");
        std::fs::write(&manifest, "version: 1\n").expect("write");
        // Not a repository.
        assert_eq!(manifest_revision(&manifest), None);
        // A repository without a commit.
        git(dir.path(), &["init", "-q"]);
        assert_eq!(manifest_revision(&manifest), None);
        // Another file committed, the manifest untracked.
        std::fs::write(dir.path().join("other"), "x").expect("write");
        git(dir.path(), &["add", "other"]);
        git(dir.path(), &["commit", "-q", "-m", "other"]);
        let first = head(dir.path());
        assert_eq!(manifest_revision(&manifest), Some(format!("{first}-dirty")));
        // Committed: clean; another file's change does not make it dirty.
        git(dir.path(), &["add", "exposure.yaml"]);
        git(dir.path(), &["commit", "-q", "-m", "manifest"]);
        let second = head(dir.path());
        std::fs::write(dir.path().join("other"), "y").expect("write");
        assert_eq!(manifest_revision(&manifest), Some(second.clone()));
        // Modified, then staged: dirty.
        std::fs::write(&manifest, "version: 1\n# edit\n").expect("write");
        assert_eq!(
            manifest_revision(&manifest),
            Some(format!("{second}-dirty"))
        );
        git(dir.path(), &["add", "exposure.yaml"]);
        assert_eq!(
            manifest_revision(&manifest),
            Some(format!("{second}-dirty"))
        );
    }

    #[test]
    fn no_git_or_a_git_that_hangs_leaves_the_revision_unknown() {
        let dir = tempfile::tempdir().expect("tempdir");
        let manifest = dir.path().join("exposure.yaml");
        let missing = dir.path().join("no-such-git");
        assert_eq!(
            revision_with(&missing, Duration::from_secs(1), &manifest),
            None
        );
        let hangs = dir.path().join("git-hangs");
        std::fs::write(&hangs, "#!/bin/sh\ntouch \"$0.ran\"\nexec sleep 30\n").expect("write");
        Command::new("chmod")
            .arg("+x")
            .arg(&hangs)
            .status()
            .expect("chmod");
        let started = Instant::now();
        assert_eq!(
            revision_with(&hangs, Duration::from_millis(200), &manifest),
            None
        );
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
        assert!(
            dir.path().join("git-hangs.ran").exists(),
            "the stand-in git ran and was stopped"
        );
    }
}
