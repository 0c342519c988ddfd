//! The workers: each takes a queued job with a lease, renews the lease while the scan
//! runs (recording its progress), and stores the result. A cancel asked for stops the scan
//! at the next heartbeat; a job whose lease this worker lost is left to its new owner.

use crate::State;
use crate::budget::Budget;
use crate::targets::{self, Checked};
use portgate_model::{PortSpec, ScanReport, ScanStatus};
use portgate_pipeline::{self as pipeline, Detector};
use portgate_scan::{ScanEvent, ScanSink, Scanner, TcpMethod};
use portgate_store::{Job, JobEnd, JobStatus};
use serde::{Deserialize, Serialize};
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// A scan job as stored: the request, and the addresses it was checked as.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScanJob {
    /// Targets as given.
    pub targets: Vec<String>,
    /// The port specification.
    pub ports: String,
    /// Service detection on open ports.
    pub detect: bool,
    /// With detection: try the vendors' default logins of the management interfaces.
    #[serde(default)]
    pub try_default_credentials: bool,
    /// The scan's deadline in seconds.
    pub timeout_s: Option<u64>,
    /// The targets as resolved and checked.
    pub checked: Vec<Checked>,
}

/// Ports settled so far, of how many.
#[derive(Debug, Default)]
pub struct Progress {
    /// Settled.
    pub done: AtomicU64,
    /// In all.
    pub total: AtomicU64,
}

struct ProgressSink(Arc<Progress>);

impl ScanSink for ProgressSink {
    fn event(&mut self, event: ScanEvent<'_>) {
        match event {
            ScanEvent::Started { ports_total, .. } => {
                self.0.total.store(ports_total, Ordering::Relaxed)
            }
            ScanEvent::Progress(p) => self.0.done.store(p.done, Ordering::Relaxed),
            _ => {}
        }
    }
}

/// The port specification of a request: the CLI's syntax.
pub fn parse_ports(spec: &str) -> Result<PortSpec, String> {
    PortSpec::from_str(spec).map_err(|e| format!("ports: {e}"))
}

/// Scans `job`'s checked addresses once the memory `budget` has room for it; the report
/// names the targets as they were given.
pub async fn scan(
    job: &ScanJob,
    progress: Arc<Progress>,
    budget: &Budget,
) -> Result<ScanReport, String> {
    let ports = parse_ports(&job.ports)?;
    let port_count = ports.len() as u128;
    let scanner = Scanner::builder()
        .ports(ports)
        .tcp_method(TcpMethod::Auto)
        .deadline(job.timeout_s.map(Duration::from_secs))
        .build()
        .map_err(|e| e.to_string())?;
    let specs = targets::specs(&job.checked);
    scanner.check_targets(&specs).map_err(|e| e.to_string())?;
    let addresses: u128 = specs.iter().map(|s| s.address_count()).sum();
    let pairs = u64::try_from(addresses.saturating_mul(port_count)).unwrap_or(u64::MAX);
    let _reserved = budget.reserve(pairs).await;
    let detector = if job.detect {
        let mut detector = Detector::load(None, None)
            .map_err(|e| e.to_string())?
            .try_default_credentials(job.try_default_credentials);
        // Detection stays within the request's time too: at most half of it more.
        if let Some(t) = job.timeout_s {
            let budget = Duration::from_millis(t.saturating_mul(500).max(1000));
            let detect = &mut detector.inspect.detect;
            detect.total_timeout = detect.total_timeout.min(budget);
            let app = &mut detector.inspect.app;
            app.total = app.total.min(budget);
        }
        Some(detector)
    } else {
        None
    };
    let mut sink = ProgressSink(progress);
    let mut report = pipeline::scan(&scanner, &specs, detector.as_ref(), &mut sink)
        .await
        .map_err(|e| e.to_string())?;
    targets::relabel(&mut report, &job.checked);
    Ok(report)
}

/// Starts the configured number of workers.
pub fn spawn(state: &State) -> Vec<tokio::task::JoinHandle<()>> {
    (0..state.0.config.workers.max(1))
        .map(|_| {
            let state = state.clone();
            tokio::spawn(async move { work(state).await })
        })
        .collect()
}

async fn work(state: State) {
    let owner = portgate_store::worker_id();
    let inner = &state.0;
    let mut swept = std::time::Instant::now();
    while !state.draining() {
        // Jobs whose lease ran out (their worker died, on any host) go back to the queue.
        if swept.elapsed() >= inner.config.lease / 3 {
            swept = std::time::Instant::now();
            if let Err(e) = inner.store.requeue_jobs(chrono::Utc::now(), None).await {
                tracing::error!(error = %e, "cannot queue expired jobs again: {e}");
            }
        }
        let next = inner
            .queue
            .next(
                &inner.store,
                &owner,
                inner.config.lease,
                Duration::from_secs(1),
            )
            .await;
        match next {
            Ok(Some(job)) => run(&state, &owner, job).await,
            Ok(None) => {}
            Err(e) => {
                tracing::error!(error = %e, "cannot take a job: {e}");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// How a job ended.
enum End {
    Done(Output),
    Failed(String),
    Cancelled,
    LeaseLost,
}

/// What a job produced.
enum Output {
    Scan(Box<ScanReport>),
    Check(crate::checks::Ran),
}

async fn perform(state: &State, job: &Job, progress: Arc<Progress>) -> Result<Output, String> {
    if job.kind == "check" {
        return crate::checks::run(job.id, &job.request, progress, state)
            .await
            .map(Output::Check);
    }
    let request: ScanJob = serde_json::from_str(&job.request)
        .map_err(|e| format!("the stored request is unreadable: {e}"))?;
    let mut report = scan(&request, progress, &state.0.budget).await?;
    // What the server's history holds about it: the known vulnerabilities of what was
    // detected, the network of every address (data imported with `portgate data import`).
    let store = &state.0.store;
    if request.detect {
        pipeline::annotate_vulnerabilities(&mut report, store)
            .await
            .map_err(|e| e.to_string())?;
    }
    pipeline::enrich(
        &mut report,
        Some(store),
        &pipeline::EnrichOptions::default(),
    )
    .await
    .map_err(|e| e.to_string())?;
    Ok(Output::Scan(Box::new(report)))
}

async fn run(state: &State, owner: &str, job: Job) {
    let inner = &state.0;
    let progress = Arc::new(Progress::default());
    let scan_fut = perform(state, &job, progress.clone());
    tokio::pin!(scan_fut);
    let beat = (inner.config.lease / 3).max(Duration::from_millis(200));
    let mut ticker = tokio::time::interval(beat);
    ticker.tick().await;
    let end = loop {
        tokio::select! {
            result = &mut scan_fut => break match result {
                Ok(output) => End::Done(output),
                Err(e) => End::Failed(e),
            },
            _ = ticker.tick() => {
                let seen = (
                    progress.done.load(Ordering::Relaxed),
                    progress.total.load(Ordering::Relaxed),
                );
                match inner.store.heartbeat_job(job.id, owner, inner.config.lease, seen).await {
                    Ok((true, false)) => {}
                    Ok((true, true)) => break End::Cancelled,
                    Ok((false, _)) => break End::LeaseLost,
                    Err(e) => tracing::error!(job_id = job.id, error = %e, "job {}: heartbeat: {e}", job.id),
                }
            }
        }
    };
    let seconds = (chrono::Utc::now() - job.created_at).num_milliseconds() as f64 / 1000.0;
    let progress = (
        progress.done.load(Ordering::Relaxed),
        progress.total.load(Ordering::Relaxed),
    );
    match end {
        End::LeaseLost => {}
        End::Cancelled => {
            let end = JobEnd {
                status: JobStatus::Cancelled,
                progress,
                ..JobEnd::default()
            };
            let _ = inner.store.finish_job(job.id, owner, &end).await;
            inner.metrics.job_finished(JobStatus::Cancelled, seconds, 0);
        }
        End::Failed(reason) => {
            let end = JobEnd {
                status: JobStatus::Failed,
                error: Some(&reason),
                progress,
                ..JobEnd::default()
            };
            let _ = inner.store.finish_job(job.id, owner, &end).await;
            inner.metrics.job_finished(JobStatus::Failed, seconds, 0);
        }
        End::Done(Output::Check(ran)) => {
            let end = JobEnd {
                status: JobStatus::Succeeded,
                scan_id: ran.scan_id,
                result: Some(&ran.text),
                progress,
                ..JobEnd::default()
            };
            if let Err(e) = inner.store.finish_job(job.id, owner, &end).await {
                tracing::error!(
                    job_id = job.id,
                    error = %e,
                    "job {}: cannot store its result: {e}",
                    job.id
                );
            }
            inner.metrics.job_finished(JobStatus::Succeeded, seconds, 0);
        }
        End::Done(Output::Scan(report)) => {
            let status = match report.status {
                ScanStatus::Completed => JobStatus::Succeeded,
                ScanStatus::Incomplete => JobStatus::Partial,
            };
            let scan_id = save(state, &report).await;
            // The history keeps the report (compressed); the job keeps it, in the model's
            // form, only when that failed. Each view renders the v1 document it asks for.
            let text = match scan_id {
                Some(_) => None,
                None => Some(serde_json::to_string(&*report).unwrap_or_default()),
            };
            // Every port is settled: the progress is complete, whatever was last sampled.
            let settled = report.summary().ports_scanned;
            let end = JobEnd {
                status,
                scan_id,
                result: text.as_deref(),
                error: None,
                progress: (settled, progress.1.max(settled)),
            };
            tracing::debug!(
                job_id = job.id,
                scan_id,
                status = ?status,
                "job {}: scan finished ({status:?})",
                job.id
            );
            let finished = inner.store.finish_job(job.id, owner, &end).await;
            if let Err(e) = finished {
                tracing::error!(
                    job_id = job.id,
                    error = %e,
                    "job {}: cannot store its result: {e}",
                    job.id
                );
            }
            inner
                .metrics
                .job_finished(status, seconds, report.summary().probes_sent);
        }
    }
}

/// Keeps the scan in the history; its id, or `None` (said on stderr) when that failed.
async fn save(state: &State, report: &ScanReport) -> Option<i64> {
    match state.0.store.save_scan(report, None).await {
        Ok(id) => Some(id.0),
        Err(e) => {
            tracing::error!(hosts = report.hosts.len(), error = %e, "cannot keep the scan in the history: {e}");
            None
        }
    }
}
