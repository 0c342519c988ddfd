//! `portgate scan`.

use crate::args::{Format, ScanArgs};
use crate::{Failure, targets_file};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use portgate_detect::inspect::{InspectOptions, inspect_port};
use portgate_detect::probes::ProbeDb;
use portgate_model::ScanStatus;
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
    let inspect = inspect_options(args.ca_file.as_deref())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::scan(format!("could not start the async runtime: {e}")))?;
    // In the history as `running` before the first probe (--db, --save or $PORTGATE_DB).
    let method_name = [(args.connect, "connect"), (args.syn, "syn")]
        .into_iter()
        .find_map(|(set, name)| set.then_some(name));
    let recorder = crate::history::begin_scan(
        &runtime,
        args.db.as_deref(),
        args.save,
        &targets,
        method_name,
    )?;
    let show_progress = !args.no_progress && std::io::stderr().is_terminal();
    let mut sink = ProgressSink::new(show_progress);
    let mut report = runtime
        .block_on(scanner.run(&targets, &mut sink))
        .map_err(|e| Failure::usage(e.to_string()))?;
    sink.finish();
    if let Some(db) = &probes {
        runtime.block_on(detect_services(&mut report, db, &inspect));
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
    crate::history::finish_scan(&runtime, recorder, &report)?;
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

/// Runs service detection on every open TCP port and records what answers there: service,
/// product, version, TLS (direct or after STARTTLS) and HTTP.
pub(crate) async fn detect_services(
    report: &mut portgate_model::ScanReport,
    db: &ProbeDb,
    options: &InspectOptions,
) {
    use futures::stream::{self, StreamExt};
    use portgate_model::{PortState, Protocol};
    for host in &mut report.hosts {
        let ip = host.ip;
        let hostname = host.hostname.clone();
        let open: Vec<u16> = host
            .ports
            .iter()
            .filter(|p| p.protocol == Protocol::Tcp && p.state == PortState::Open)
            .map(|p| p.port)
            .collect();
        host.services = stream::iter(open)
            .map(|port| {
                let hostname = hostname.as_deref();
                let addr = std::net::SocketAddr::new(ip, port);
                inspect_port(addr, hostname, db, options)
            })
            .buffer_unordered(DETECT_PARALLEL)
            .collect()
            .await;
        host.services.sort_by_key(|s| s.port);
    }
}

/// Inspection options from the command line: `--ca` replaces the system trust roots.
/// A CA file that cannot be used is a usage error, found before the scan starts.
pub(crate) fn inspect_options(
    ca_file: Option<&std::path::Path>,
) -> Result<InspectOptions, Failure> {
    let mut options = InspectOptions::default();
    if let Some(path) = ca_file {
        portgate_detect::tls::check_ca_file(path).map_err(|e| Failure::usage(e.to_string()))?;
        options.tls.ca_file = Some(path.to_path_buf());
    }
    Ok(options)
}

/// Probes need one descriptor each: take the hard limit, which is often far above the
/// soft one. Failing to raise it only means a smaller window.
pub(crate) fn raise_open_file_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE)
        && soft < hard
    {
        let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
    }
}

/// Draws a progress bar on standard error when it is a terminal; otherwise does nothing.
pub(crate) struct ProgressSink {
    bar: Option<ProgressBar>,
}

impl ProgressSink {
    pub(crate) fn new(enabled: bool) -> Self {
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
