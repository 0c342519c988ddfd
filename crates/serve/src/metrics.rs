//! Counters for `/metrics` (Prometheus text format 0.0.4).

use crate::budget::Usage;
use portgate_store::JobStatus;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// Upper bounds of the job latency histogram, in seconds.
const BUCKETS: [f64; 10] = [0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0];

/// What the server counts.
#[derive(Debug, Default)]
pub struct Metrics {
    scans_finished: Mutex<Vec<(JobStatus, u64)>>,
    probes_sent: AtomicU64,
    port_checks: AtomicU64,
    port_check_cache_hits: AtomicU64,
    monitor_findings: AtomicU64,
    monitor_micros: AtomicU64,
    latency: Mutex<Histogram>,
}

#[derive(Debug, Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl Metrics {
    /// Monitoring evaluated a check's `findings` (their life, windows, routes) in `took`.
    pub fn findings_evaluated(&self, findings: usize, took: std::time::Duration) {
        self.monitor_findings.fetch_add(
            u64::try_from(findings).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        self.monitor_micros.fetch_add(
            u64::try_from(took.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    /// A job finished in `status` after `seconds` from its acceptance, having sent `probes`.
    pub fn job_finished(&self, status: JobStatus, seconds: f64, probes: u64) {
        if let Ok(mut list) = self.scans_finished.lock() {
            match list.iter_mut().find(|(s, _)| *s == status) {
                Some((_, n)) => *n += 1,
                None => list.push((status, 1)),
            }
        }
        self.probes_sent.fetch_add(probes, Ordering::Relaxed);
        if let Ok(mut h) = self.latency.lock() {
            for (i, bound) in BUCKETS.iter().enumerate() {
                if seconds <= *bound {
                    h.counts[i] += 1;
                }
            }
            h.count += 1;
            h.sum += seconds;
        }
    }

    /// A synchronous port check was answered (from the cache or not), having sent `probes`.
    pub fn port_check(&self, cached: bool, probes: u64) {
        self.port_checks.fetch_add(1, Ordering::Relaxed);
        if cached {
            self.port_check_cache_hits.fetch_add(1, Ordering::Relaxed);
        }
        self.probes_sent.fetch_add(probes, Ordering::Relaxed);
    }

    /// The text of `/metrics`, with the jobs per state as the store counts them and the
    /// memory budget's `usage`.
    pub fn render(&self, jobs: &[(JobStatus, i64)], usage: Usage) -> String {
        let mut out = String::new();
        head(
            &mut out,
            "portgate_jobs",
            "gauge",
            "Jobs in the queue, by state.",
        );
        for status in JobStatus::ALL {
            let n = jobs
                .iter()
                .find(|(s, _)| *s == status)
                .map_or(0, |(_, n)| *n);
            let _ = writeln!(out, "portgate_jobs{{state=\"{}\"}} {n}", status.as_str());
        }
        head(
            &mut out,
            "portgate_scans_finished_total",
            "counter",
            "Scan jobs finished by this process, by outcome.",
        );
        if let Ok(list) = self.scans_finished.lock() {
            for status in JobStatus::ALL.into_iter().filter(|s| s.is_done()) {
                let n = list
                    .iter()
                    .find(|(s, _)| *s == status)
                    .map_or(0, |(_, n)| *n);
                let _ = writeln!(
                    out,
                    "portgate_scans_finished_total{{status=\"{}\"}} {n}",
                    status.as_str()
                );
            }
        }
        for (name, kind, help, value) in [
            (
                "portgate_probes_sent_total",
                "counter",
                "Probes sent by this process's scans.",
                self.probes_sent.load(Ordering::Relaxed),
            ),
            (
                "portgate_port_checks_total",
                "counter",
                "Synchronous port checks answered.",
                self.port_checks.load(Ordering::Relaxed),
            ),
            (
                "portgate_port_check_cache_hits_total",
                "counter",
                "Synchronous port checks answered from the cache.",
                self.port_check_cache_hits.load(Ordering::Relaxed),
            ),
            (
                "portgate_monitor_findings_evaluated_total",
                "counter",
                "Findings of scheduled checks whose life was evaluated and stored.",
                self.monitor_findings.load(Ordering::Relaxed),
            ),
            (
                "portgate_monitor_evaluation_microseconds_total",
                "counter",
                "Time spent evaluating and storing them.",
                self.monitor_micros.load(Ordering::Relaxed),
            ),
            (
                "portgate_scans_scanning",
                "gauge",
                "Scans holding their share of the memory budget (probing or detecting).",
                usage.running,
            ),
            (
                "portgate_scans_waiting_for_memory",
                "gauge",
                "Scans taken from the queue that wait for their share of the memory budget.",
                usage.waiting,
            ),
            (
                "portgate_scan_memory_reserved_bytes",
                "gauge",
                "Memory reserved by the scans running (their estimates).",
                usage.reserved_bytes,
            ),
            (
                "portgate_scan_memory_budget_bytes",
                "gauge",
                "Memory the scans running at once may take together (--scan-memory).",
                usage.total_bytes,
            ),
        ] {
            head(&mut out, name, kind, help);
            let _ = writeln!(out, "{name} {value}");
        }
        head(
            &mut out,
            "portgate_job_latency_seconds",
            "histogram",
            "From a scan's acceptance to its end.",
        );
        if let Ok(h) = self.latency.lock() {
            for (i, bound) in BUCKETS.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "portgate_job_latency_seconds_bucket{{le=\"{bound}\"}} {}",
                    h.counts[i]
                );
            }
            let _ = writeln!(
                out,
                "portgate_job_latency_seconds_bucket{{le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(out, "portgate_job_latency_seconds_sum {}", h.sum);
            let _ = writeln!(out, "portgate_job_latency_seconds_count {}", h.count);
        }
        out
    }
}

/// A metric's HELP and TYPE lines.
fn head(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}
