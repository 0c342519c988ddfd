//! `check`: the manifest's scan plan → scan with detection → the stored scan of each
//! target → evaluation → saved with the manifest's revision.

use crate::{Detector, Error, scan};
use chrono::{DateTime, Utc};
use portgate_model::{Finding, ScanReport, TargetSpec};
use portgate_policy::{Evaluation, Manifest, evaluate, merge_reports};
use portgate_scan::{ScanSink, Scanner, TcpMethod};
use portgate_store::{CheckId, Location, ScanId, Store};
use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// What to check and how.
#[derive(Debug, Clone)]
pub struct CheckOptions {
    env: Option<String>,
    targets: Vec<TargetSpec>,
    ports: Option<portgate_model::PortSpec>,
    tcp_method: TcpMethod,
    deadline: Option<Duration>,
    revision: Option<String>,
    enrich: crate::EnrichOptions,
    dns_server: Option<std::net::SocketAddr>,
}

impl CheckOptions {
    /// Every asset, probed as the scanner decides, no deadline, no revision.
    pub fn builder() -> CheckOptionsBuilder {
        CheckOptionsBuilder::default()
    }

    /// The environment checked (None: every asset).
    pub fn env(&self) -> Option<&str> {
        self.env.as_deref()
    }
}

/// Builds [`CheckOptions`].
#[derive(Debug, Clone, Default)]
pub struct CheckOptionsBuilder {
    env: Option<String>,
    targets: Vec<TargetSpec>,
    ports: Option<portgate_model::PortSpec>,
    tcp_method: TcpMethod,
    deadline: Option<Duration>,
    revision: Option<String>,
    enrich: crate::EnrichOptions,
    dns_server: Option<std::net::SocketAddr>,
}

impl CheckOptionsBuilder {
    /// Check the assets of this environment (and those without one).
    pub fn env(mut self, env: Option<String>) -> Self {
        self.env = env;
        self
    }

    /// Check only these targets; one no asset lists is judged against the manifest's
    /// global approved list alone (an ephemeral environment).
    pub fn targets(mut self, targets: Vec<TargetSpec>) -> Self {
        self.targets = targets;
        self
    }

    /// Scan these ports on every asset instead of each asset's own port set (a monitoring
    /// schedule's tier: the critical ports hourly, the top 1,000 nightly).
    pub fn ports(mut self, ports: Option<portgate_model::PortSpec>) -> Self {
        self.ports = ports;
        self
    }

    /// How TCP ports are probed.
    pub fn tcp_method(mut self, method: TcpMethod) -> Self {
        self.tcp_method = method;
        self
    }

    /// Stop scanning after this long; what was not scanned is inconclusive.
    pub fn deadline(mut self, deadline: Option<Duration>) -> Self {
        self.deadline = deadline;
        self
    }

    /// The manifest's revision, stored with the check (see [`crate::manifest_revision`]).
    pub fn revision(mut self, revision: Option<String>) -> Self {
        self.revision = revision;
        self
    }

    /// Enrichment: the network tables are always read when the history holds them;
    /// `enrich.lookups` adds DNS records and domain registrations.
    pub fn enrich(mut self, enrich: crate::EnrichOptions) -> Self {
        self.enrich = enrich;
        self
    }

    /// Resolve the targets' names with this DNS server instead of the system's (it also
    /// answers the DNS records of enrichment).
    pub fn dns_server(mut self, server: Option<std::net::SocketAddr>) -> Self {
        self.dns_server = server;
        self
    }

    /// The options.
    pub fn build(self) -> CheckOptions {
        CheckOptions {
            env: self.env,
            targets: self.targets,
            ports: self.ports,
            tcp_method: self.tcp_method,
            deadline: self.deadline,
            revision: self.revision,
            enrich: crate::EnrichOptions {
                dns_server: self.enrich.dns_server.or(self.dns_server),
                ..self.enrich
            },
            dns_server: self.dns_server,
        }
    }
}

/// A stored scan a target's results were compared with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compared {
    /// The target.
    pub target: String,
    /// The stored scan.
    pub scan: ScanId,
    /// When it started.
    pub started_at: DateTime<Utc>,
}

/// Whether the check went into the history.
#[derive(Debug)]
pub enum Saved {
    /// No history was given.
    NotRecorded,
    /// Saved: the scan, the check, the database's display name.
    Saved {
        /// The scan's id.
        scan: ScanId,
        /// The check's id.
        check: CheckId,
        /// Where (file or URL without its password).
        store: String,
    },
    /// The check finished but saving failed.
    Failed(Error),
}

/// What a check found.
#[derive(Debug)]
pub struct CheckOutcome {
    /// The scan of every planned target, with detection.
    pub report: ScanReport,
    /// The findings and the decision.
    pub evaluation: Evaluation,
    /// The stored scans compared with, one per target that had one.
    pub compared: Vec<Compared>,
    /// Whether it was saved.
    pub saved: Saved,
}

/// Checks the targets `options` selects in `manifest`: scans each with its port set and
/// detection, compares with the last stored scan of each target when `history` is given,
/// evaluates, and saves the scan and the findings there. The history is opened (and
/// created on first use) after the selection is known to be valid and before the first
/// probe, so a wrong database is reported at once.
pub async fn check(
    manifest: &Manifest,
    options: &CheckOptions,
    detection: &Detector,
    history: Option<&Location>,
    sink: &mut dyn ScanSink,
) -> Result<CheckOutcome, Error> {
    let plan = plan_of(manifest, options)?;
    let mut scanners = Vec::with_capacity(plan.len());
    for group in &plan {
        let scanner = Scanner::builder()
            .ports(group.ports.clone())
            .tcp_method(options.tcp_method)
            .deadline(options.deadline)
            .dns_server(options.dns_server)
            .build()?;
        scanner.check_targets(&group.targets)?;
        scanners.push(scanner);
    }
    let scans = Scans::Here {
        scanners,
        detection,
        sink,
    };
    run_in_history(manifest, options, scans, &plan, history).await
}

/// [`run_plan`] with the history at `history` opened for it and closed after.
async fn run_in_history(
    manifest: &Manifest,
    options: &CheckOptions,
    scans: Scans<'_>,
    plan: &[portgate_policy::ScanGroup],
    history: Option<&Location>,
) -> Result<CheckOutcome, Error> {
    let store = match history {
        Some(location) => Some(Store::open(location).await.map_err(Error::history)?),
        None => None,
    };
    let result = run_plan(manifest, options, scans, plan, store.as_ref()).await;
    if let Some(store) = &store {
        store.close().await;
    }
    result
}

/// [`check`] on a scan made elsewhere (`portgate check --from-scan`: nmap's XML, masscan's
/// output, a portgate JSON report): no probe is sent; the report is judged against the
/// manifest, compared with the history and saved there like a scan made here.
pub async fn check_report(
    manifest: &Manifest,
    options: &CheckOptions,
    report: ScanReport,
    history: Option<&Location>,
) -> Result<CheckOutcome, Error> {
    let plan = plan_of(manifest, options)?;
    run_in_history(manifest, options, Scans::Given(report), &plan, history).await
}

/// Who scans the groups of a check's plan.
enum Scans<'a> {
    /// Nobody: the scan was made elsewhere.
    Given(ScanReport),
    /// This process, with a scanner per group.
    Here {
        scanners: Vec<Scanner>,
        detection: &'a Detector,
        sink: &'a mut dyn ScanSink,
    },
    /// A server.
    Remote(&'a dyn RemoteScan),
}

/// A server that scans for a check (`portgate check --server`): each group's targets and
/// ports, with detection, within the check's deadline.
pub trait RemoteScan: Sync {
    /// Scans `targets` on `ports` with detection.
    fn scan<'a>(
        &'a self,
        ports: &'a portgate_model::PortSpec,
        targets: &'a [TargetSpec],
        deadline: Option<Duration>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<ScanReport, Error>> + Send + 'a>>;
}

/// [`check`] with the scans done by a server: the same plan, evaluation, history and
/// outcome.
pub async fn check_remote(
    manifest: &Manifest,
    options: &CheckOptions,
    remote: &dyn RemoteScan,
    history: Option<&Location>,
) -> Result<CheckOutcome, Error> {
    let plan = plan_of(manifest, options)?;
    run_in_history(manifest, options, Scans::Remote(remote), &plan, history).await
}

/// [`check_remote`] on a history that is already open (a server's store): compared with
/// the last scan of each target there, and saved there.
pub async fn check_remote_in(
    manifest: &Manifest,
    options: &CheckOptions,
    remote: &dyn RemoteScan,
    store: &Store,
) -> Result<CheckOutcome, Error> {
    let plan = plan_of(manifest, options)?;
    run_plan(manifest, options, Scans::Remote(remote), &plan, Some(store)).await
}

/// The manifest's scan plan for `options`; an empty plan is an input error.
fn plan_of(
    manifest: &Manifest,
    options: &CheckOptions,
) -> Result<Vec<portgate_policy::ScanGroup>, Error> {
    let env = options.env.as_deref();
    manifest.check_environment(env)?;
    let mut plan = manifest.scan_plan(env, &options.targets);
    if let Some(ports) = &options.ports {
        for group in &mut plan {
            group.ports = ports.clone();
        }
    }
    if plan.is_empty() {
        return Err(Error::Input(format!(
            "{}: nothing to check{}: no asset lists a target",
            manifest.source,
            env.map(|e| format!(" in environment \"{e}\""))
                .unwrap_or_default()
        )));
    }
    Ok(plan)
}

async fn run_plan(
    manifest: &Manifest,
    options: &CheckOptions,
    scans: Scans<'_>,
    plan: &[portgate_policy::ScanGroup],
    store: Option<&Store>,
) -> Result<CheckOutcome, Error> {
    let mut parts: Vec<ScanReport> = Vec::with_capacity(plan.len());
    match scans {
        Scans::Here {
            scanners,
            detection,
            sink,
        } => {
            for (group, scanner) in plan.iter().zip(&scanners) {
                // Service-aware rules need to know what answers: detection always runs.
                parts.push(scan(scanner, &group.targets, Some(detection), sink).await?);
            }
        }
        Scans::Given(report) => parts.push(report),
        Scans::Remote(remote) => {
            for group in plan {
                parts.push(
                    remote
                        .scan(&group.ports, &group.targets, options.deadline)
                        .await?,
                );
            }
        }
    }
    let mut report = merge_reports(parts)
        .ok_or_else(|| Error::Input("nothing to check: the manifest lists no target".into()))?;
    if let Some(store) = store {
        crate::annotate_vulnerabilities(&mut report, store).await?;
    }
    let mut enrich = options.enrich.clone();
    for asset in manifest.assets_in(options.env()) {
        if asset.value.enrich {
            enrich
                .lookup_targets
                .extend(asset.value.targets.iter().map(|t| t.value.0.to_string()));
        }
    }
    crate::enrich(&mut report, store, &enrich).await?;
    let (previous, compared) = match store {
        Some(store) => previous_scans(store, &report).await?,
        None => (None, Vec::new()),
    };
    let evaluation = evaluate(manifest, options.env(), &report, previous.as_ref());
    let saved = match store {
        None => Saved::NotRecorded,
        Some(store) => {
            match save(
                store,
                &report,
                &evaluation.findings,
                options.revision.as_deref(),
            )
            .await
            {
                Ok((scan, check)) => Saved::Saved {
                    scan,
                    check,
                    store: store.name().to_string(),
                },
                Err(e) => Saved::Failed(e),
            }
        }
    };
    Ok(CheckOutcome {
        report,
        evaluation,
        compared,
        saved,
    })
}

/// The last finalised scan of each target of `report` in the history, as one report whose
/// hosts are the previous ones of each target (None when no target has been scanned before).
/// The current scan is not saved yet, so it is never its own previous scan.
async fn previous_scans(
    store: &Store,
    report: &ScanReport,
) -> Result<(Option<ScanReport>, Vec<Compared>), Error> {
    let targets: BTreeSet<&str> = report.hosts.iter().map(|h| h.target.as_str()).collect();
    let mut loaded: BTreeMap<ScanId, ScanReport> = BTreeMap::new();
    let mut hosts = Vec::new();
    let mut compared = Vec::new();
    for target in targets {
        let Some(record) = store
            .last_scan_of_target_before(target, report.started_at)
            .await
            .map_err(Error::reading)?
        else {
            continue;
        };
        let previous = match loaded.entry(record.id) {
            Entry::Occupied(slot) => slot.into_mut(),
            Entry::Vacant(slot) => {
                slot.insert(store.load_report(record.id).await.map_err(Error::reading)?)
            }
        };
        compared.push(Compared {
            target: target.to_string(),
            scan: record.id,
            started_at: record.started_at,
        });
        hosts.extend(
            previous
                .hosts
                .iter()
                .filter(|h| h.target == target)
                .cloned(),
        );
    }
    // `evaluate` reads the hosts of the previous report; the rest is the newest one's.
    let previous = loaded
        .into_values()
        .next_back()
        .map(|newest| ScanReport { hosts, ..newest });
    Ok((previous, compared))
}

/// Stores the scan and the check's findings, with the manifest's revision.
async fn save(
    store: &Store,
    report: &ScanReport,
    findings: &[Finding],
    revision: Option<&str>,
) -> Result<(ScanId, CheckId), Error> {
    let save_err = |source| Error::Save {
        what: "check",
        source,
    };
    let scan_id = store.save_scan(report, revision).await.map_err(save_err)?;
    let check_id = store
        .save_check(scan_id, findings, revision)
        .await
        .map_err(save_err)?;
    Ok((scan_id, check_id))
}
