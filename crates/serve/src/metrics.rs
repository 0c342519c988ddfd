//! Counters for `/metrics` (Prometheus text format 0.0.4).

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
    latency: Mutex<Histogram>,
}

#[derive(Debug, Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl Metrics {
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

    /// The text of `/metrics`, with the jobs per state as the store counts them.
    pub fn render(&self, jobs: &[(JobStatus, i64)]) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "# HELP portgate_jobs Jobs in the queue, by state.");
        let _ = writeln!(out, "# TYPE portgate_jobs gauge");
        for status in JobStatus::ALL {
            let n = jobs
                .iter()
                .find(|(s, _)| *s == status)
                .map_or(0, |(_, n)| *n);
            let _ = writeln!(out, "portgate_jobs{{state=\"{}\"}} {n}", status.as_str());
        }
        let _ = writeln!(
            out,
            "# HELP portgate_scans_finished_total Scan jobs finished by this process, by outcome."
        );
        let _ = writeln!(out, "# TYPE portgate_scans_finished_total counter");
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
        let _ = writeln!(
            out,
            "# HELP portgate_probes_sent_total Probes sent by this process's scans."
        );
        let _ = writeln!(out, "# TYPE portgate_probes_sent_total counter");
        let _ = writeln!(
            out,
            "portgate_probes_sent_total {}",
            self.probes_sent.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP portgate_port_checks_total Synchronous port checks answered."
        );
        let _ = writeln!(out, "# TYPE portgate_port_checks_total counter");
        let _ = writeln!(
            out,
            "portgate_port_checks_total {}",
            self.port_checks.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP portgate_port_check_cache_hits_total Synchronous port checks answered from the cache."
        );
        let _ = writeln!(out, "# TYPE portgate_port_check_cache_hits_total counter");
        let _ = writeln!(
            out,
            "portgate_port_check_cache_hits_total {}",
            self.port_check_cache_hits.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP portgate_job_latency_seconds From a scan's acceptance to its end."
        );
        let _ = writeln!(out, "# TYPE portgate_job_latency_seconds histogram");
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
