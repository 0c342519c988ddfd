//! `portgate scan`.

use crate::args::{Format, ScanArgs};
use crate::{Failure, targets_file};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use portgate_detect::probes::{DetectOptions, Detection, ProbeDb};
use portgate_model::ScanStatus;
use portgate_model::TlsSummary;
use portgate_report::RenderOptions;
use portgate_scan::{ScanEvent, ScanSink, Scanner, TcpMethod};
use std::io::{IsTerminal, Write};

/// Runs the scan and returns the exit code: 0 completed, 3 incomplete.
pub(crate) fn run(args: ScanArgs) -> Result<u8, Failure> {
    let targets = targets_file::collect(&args.targets, &args.input_list)?;
    raise_open_file_limit();
    let method = if args.connect {
        TcpMethod::Connect
    } else if args.syn {
        TcpMethod::Syn
    } else {
        TcpMethod::Auto
    };
    let mut builder = Scanner::builder()
        .ports(args.ports.clone())
        .tcp_method(method)
        .verify(args.verify)
        .retries(args.retries)
        .min_rtt_timeout(args.min_rtt_timeout)
        .max_rtt_timeout(args.max_rtt_timeout)
        .initial_rtt_timeout(args.initial_rtt_timeout)
        .rate_limit(args.rate)
        .deadline(args.deadline)
        .max_addresses(args.max_hosts)
        .dns_server(args.dns_server)
        .seed(args.seed);
    if let Some(n) = args.max_in_flight {
        builder = builder.max_in_flight(n);
    }
    if let Some(n) = args.host_concurrency {
        builder = builder.host_concurrency(n);
    }
    let scanner = builder.build().map_err(|e| Failure::usage(e.to_string()))?;
    scanner
        .check_targets(&targets)
        .map_err(|e| Failure::usage(e.to_string()))?;

    let probes = match (&args.detect, &args.probes) {
        (false, _) => None,
        (true, None) => Some(ProbeDb::builtin().map_err(|e| Failure::usage(e.to_string()))?),
        (true, Some(path)) => {
            Some(ProbeDb::from_file(path).map_err(|e| Failure::usage(e.to_string()))?)
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::scan(format!("could not start the async runtime: {e}")))?;
    let show_progress = !args.no_progress && std::io::stderr().is_terminal();
    let mut sink = ProgressSink::new(show_progress);
    let mut report = runtime
        .block_on(scanner.run(&targets, &mut sink))
        .map_err(|e| Failure::usage(e.to_string()))?;
    sink.finish();
    if let Some(db) = &probes {
        runtime.block_on(detect_services(&mut report, db));
    }

    let options = RenderOptions {
        only_open: args.open,
        all_ports: args.all_ports,
    };
    let text = match args.format {
        Format::Table => portgate_report::table(&report, options),
        Format::Json => portgate_report::json(&report, options),
    };
    match &args.output_file {
        Some(path) => std::fs::write(path, text).map_err(|e| {
            Failure::scan(format!(
                "cannot write the report to {}: {e}",
                path.display()
            ))
        })?,
        None => {
            let mut stdout = std::io::stdout().lock();
            // A closed pipe (e.g. `| head`) is not a scan failure.
            let _ = stdout
                .write_all(text.as_bytes())
                .and_then(|()| stdout.flush());
        }
    }
    Ok(match report.status {
        ScanStatus::Completed => 0,
        ScanStatus::Incomplete => {
            for reason in &report.incomplete_reasons {
                eprintln!("portgate: incomplete: {reason}");
            }
            3
        }
    })
}

/// Detections running at once.
const DETECT_PARALLEL: usize = 32;

/// Runs service detection on every open TCP port and records what answers there; a port
/// that answers no plaintext probe gets a TLS handshake.
async fn detect_services(report: &mut portgate_model::ScanReport, db: &ProbeDb) {
    use futures::stream::{self, StreamExt};
    use portgate_model::{DetectedService, PortState, Protocol};
    let options = DetectOptions::default();
    for host in &mut report.hosts {
        let ip = host.ip;
        let hostname = host.hostname.clone();
        let open: Vec<u16> = host
            .ports
            .iter()
            .filter(|p| p.protocol == Protocol::Tcp && p.state == PortState::Open)
            .map(|p| p.port)
            .collect();
        let found: Vec<(u16, Detection, Option<TlsSummary>)> = stream::iter(open)
            .map(|port| {
                let options = &options;
                let hostname = hostname.as_deref();
                async move {
                    let addr = std::net::SocketAddr::new(ip, port);
                    let detection = portgate_detect::probes::detect(addr, db, options).await;
                    // Nothing answered a plaintext probe: it may speak TLS.
                    let tls = if detection.service.is_none() {
                        tls_summary(addr, hostname).await
                    } else {
                        None
                    };
                    (port, detection, tls)
                }
            })
            .buffer_unordered(DETECT_PARALLEL)
            .collect()
            .await;
        host.services = found
            .into_iter()
            .map(|(port, d, tls)| DetectedService {
                port,
                protocol: Protocol::Tcp,
                service: d
                    .service
                    .or_else(|| tls.as_ref().map(|_| "tls".to_string())),
                product: d.product,
                version: d.version,
                info: d.info,
                cpe: d.cpe,
                probe: d.probe,
                soft: d.soft,
                evidence: d.evidence,
                tls,
            })
            .collect();
        host.services.sort_by_key(|s| s.port);
    }
}

/// A TLS handshake on the port, if it speaks TLS: what it showed, each failure separate.
async fn tls_summary(addr: std::net::SocketAddr, hostname: Option<&str>) -> Option<TlsSummary> {
    use portgate_detect::tls::{CertFailure, TlsOptions, inspect_tls_at};
    let options = TlsOptions {
        timeout: std::time::Duration::from_secs(3),
        ..TlsOptions::default()
    };
    let info = inspect_tls_at(addr, hostname, &options).await.ok()?;
    Some(TlsSummary {
        protocol: info.protocol,
        cipher_suite: info.cipher_suite,
        subject: info.subject,
        issuer: info.issuer,
        san_dns: info.san_dns,
        not_after: info.not_after,
        days_left: info.days_left,
        self_signed: info.self_signed,
        valid: info.valid,
        reasons: info
            .reasons
            .into_iter()
            .map(|reason| match reason {
                CertFailure::Expired => "expired".to_string(),
                CertFailure::NotYetValid => "not-yet-valid".to_string(),
                CertFailure::UntrustedIssuer => "untrusted-issuer".to_string(),
                CertFailure::NameMismatch => "name-mismatch".to_string(),
                CertFailure::SelfSigned => "self-signed".to_string(),
                CertFailure::Other(text) => text,
            })
            .collect(),
    })
}

/// Probes need one descriptor each: take the hard limit, which is often far above the
/// soft one. Failing to raise it only means a smaller window.
fn raise_open_file_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE)
        && soft < hard
    {
        let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
    }
}

/// Draws a progress bar on standard error when it is a terminal; otherwise does nothing.
struct ProgressSink {
    bar: Option<ProgressBar>,
}

impl ProgressSink {
    fn new(enabled: bool) -> Self {
        let bar = enabled.then(|| {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template(
                    "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} ports  {msg}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar
        });
        ProgressSink { bar }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

impl ScanSink for ProgressSink {
    fn event(&mut self, event: ScanEvent<'_>) {
        if let ScanEvent::Notice(notice) = event {
            match &self.bar {
                Some(bar) => bar.suspend(|| eprintln!("portgate: {notice}")),
                None => eprintln!("portgate: {notice}"),
            }
            return;
        }
        let Some(bar) = &self.bar else { return };
        match event {
            ScanEvent::Started { ports_total, .. } => bar.set_length(ports_total),
            ScanEvent::Progress(p) => {
                bar.set_position(p.done);
                bar.set_message(format!("{} open, {} in flight", p.open, p.in_flight));
            }
            _ => {}
        }
    }
}
