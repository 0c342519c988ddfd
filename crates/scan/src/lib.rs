//! portgate's scan engine.
//!
//! Expands and resolves targets, then probes ports with an adaptive TCP connect scan,
//! reporting through typed [`ScanEvent`]s to a [`ScanSink`] and returning a
//! [`ScanReport`]. This crate never prints, never exits the process, and turns whatever
//! the network or the user can cause into a result or an error value, not a panic.
//!
//! ```no_run
//! # async fn demo() -> Result<(), portgate_scan::ScanError> {
//! use portgate_scan::{NullSink, Scanner};
//! let scanner = Scanner::builder().ports("22,80,443".parse().expect("valid")).build()?;
//! let report = scanner.run(&["127.0.0.1".parse().expect("valid")], &mut NullSink).await?;
//! println!("{} open", report.summary().open);
//! # Ok(()) }
//! ```

mod config;
mod confirm;
mod engine;
mod error;
mod event;
mod permute;
mod probe;
mod raw;
mod syn;
mod targets;
mod timing;
mod udp_payloads;

pub use config::{
    DEFAULT_MAX_ADDRESSES, DEFAULT_MAX_IN_FLIGHT, ScanConfig, ScannerBuilder, TcpMethod,
};
pub use error::ScanError;
pub use event::{NullSink, Progress, ScanEvent, ScanSink};
pub use portgate_model::{ScanReport, TargetSpec};

use chrono::Utc;
use engine::HostState;
use portgate_model::{HostReport, ScanMethod, ScanStatus};
use tokio::time::Instant;

/// A configured scanner; run it on targets with [`Scanner::run`].
#[derive(Debug, Clone)]
pub struct Scanner {
    config: ScanConfig,
}

impl Scanner {
    /// Starts a configuration with the defaults.
    pub fn builder() -> ScannerBuilder {
        ScannerBuilder::default()
    }

    /// The configuration in force.
    pub fn config(&self) -> &ScanConfig {
        &self.config
    }

    /// Checks targets against the address limit without sending anything.
    pub fn check_targets(&self, targets: &[TargetSpec]) -> Result<(), ScanError> {
        targets::check_limits(targets, &self.config)
    }

    /// Picks how TCP ports are probed: SYN when asked for (or by default) and raw sockets
    /// can be opened, else connect, with a notice saying why.
    fn tcp_prober(
        &self,
        hosts: &[HostState],
        answers: tokio::sync::mpsc::UnboundedSender<syn::SynAnswer>,
        sink: &mut dyn ScanSink,
    ) -> (engine::TcpProber, ScanMethod, Option<syn::SynGuard>) {
        if self.config.tcp_ports.is_empty() {
            return (engine::TcpProber::Connect, ScanMethod::Udp, None);
        }
        if self.config.tcp_method == TcpMethod::Connect {
            return (engine::TcpProber::Connect, ScanMethod::Connect, None);
        }
        match syn::SynProber::start(hosts.iter().map(|h| h.entry.ip), answers) {
            Ok((prober, guard)) => (engine::TcpProber::Syn(prober), ScanMethod::Syn, Some(guard)),
            Err(error) => {
                let notice = match error {
                    raw::RawError::NotPermitted { .. } => "raw sockets are not permitted (SYN scanning needs root or CAP_NET_RAW): scanning TCP with connect()".to_string(),
                    other => format!("raw sockets unavailable ({other}): scanning TCP with connect()"),
                };
                sink.event(ScanEvent::Notice(&notice));
                (engine::TcpProber::Connect, ScanMethod::Connect, None)
            }
        }
    }

    /// Resolves the targets and probes every configured port on every address.
    ///
    /// Targets that cannot be resolved are reported in the result (and make it
    /// [`ScanStatus::Incomplete`]); the rest are scanned. Fails only for targets beyond
    /// the address limit, before anything is sent.
    pub async fn run(
        &self,
        targets: &[TargetSpec],
        sink: &mut dyn ScanSink,
    ) -> Result<ScanReport, ScanError> {
        targets::check_limits(targets, &self.config)?;
        let started_at = Utc::now();
        let started = Instant::now();
        let (target_reports, entries) = targets::resolve(targets, &self.config).await?;
        for report in &target_reports {
            sink.event(ScanEvent::TargetResolved(report));
        }
        let mut hosts: Vec<HostState> = entries.into_iter().map(HostState::new).collect();
        let ports_per_host = (self.config.tcp_ports.len() + self.config.udp_ports.len()) as u64;
        sink.event(ScanEvent::Started {
            hosts: hosts.len(),
            ports_total: hosts.len() as u64 * ports_per_host,
        });
        let mut report_method = match self.config.tcp_method {
            _ if self.config.tcp_ports.is_empty() => ScanMethod::Udp,
            TcpMethod::Connect => ScanMethod::Connect,
            TcpMethod::Auto | TcpMethod::Syn => ScanMethod::Syn,
        };
        let end = if hosts.is_empty() {
            sink.event(ScanEvent::Finished);
            engine::EngineEnd {
                deadline_hit: false,
            }
        } else {
            let seed = engine::order_seed(&self.config);
            let (answers_tx, answers_rx) = tokio::sync::mpsc::unbounded_channel();
            let (tcp, method, _receiver) = self.tcp_prober(&hosts, answers_tx, sink);
            report_method = method;
            let syn = matches!(tcp, engine::TcpProber::Syn(_));
            let syn_answers = syn.then_some(answers_rx);
            let config = if syn {
                self.config.for_syn()
            } else {
                self.config.clone()
            };
            let probers = engine::Probers {
                tcp,
                udp_payloads: std::sync::Arc::new(|port| {
                    udp_payloads::udp_payloads()
                        .for_port(port)
                        .iter()
                        .map(|p| p.bytes.clone())
                        .collect()
                }),
            };
            engine::run(
                &config,
                &probers,
                syn_answers,
                &mut hosts,
                started,
                seed,
                sink,
            )
            .await
        };

        let mut incomplete_reasons: Vec<String> = target_reports
            .iter()
            .filter_map(|t| t.error.as_ref().map(|e| format!("target {}: {e}", t.input)))
            .collect();
        let hosts: Vec<HostReport> = hosts
            .into_iter()
            .map(|h| HostReport {
                target: h.entry.target,
                hostname: h.entry.hostname,
                ip: h.entry.ip,
                ports_requested: u32::try_from(ports_per_host).unwrap_or(u32::MAX),
                ports: h.results,
                services: Vec::new(),
                tarpit: None,
            })
            .collect();
        let mut hosts = hosts;
        if !end.deadline_hit {
            // A connect scan's open ports already completed a handshake.
            let verify = self.config.verify && report_method == ScanMethod::Syn;
            confirm::confirm(&mut hosts, verify).await;
        }
        let mut report = ScanReport {
            method: report_method,
            started_at,
            finished_at: Utc::now(),
            status: ScanStatus::Completed,
            incomplete_reasons: Vec::new(),
            targets: target_reports,
            hosts,
            enrichment: None,
        };
        if end.deadline_hit {
            let summary = report.summary();
            incomplete_reasons.push(format!(
                "the deadline of {:?} was reached with {} of {} ports not scanned",
                self.config.deadline.unwrap_or_default(),
                summary.not_scanned,
                summary.ports_requested
            ));
        }
        if !incomplete_reasons.is_empty() {
            report.status = ScanStatus::Incomplete;
            report.incomplete_reasons = incomplete_reasons;
        }
        Ok(report)
    }
}
