//! `portgate scan`.

use crate::args::{Format, ScanArgs};
use crate::{Failure, targets_file};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use portgate_model::ScanStatus;
use portgate_pipeline::{self as pipeline, Detector, ScanRecorder};
use portgate_report::RenderOptions;
use portgate_scan::{ScanEvent, ScanSink, Scanner, TcpMethod};
use std::io::IsTerminal;

/// Runs the scan and returns the exit code: 0 completed, 3 incomplete.
pub(crate) fn run(args: ScanArgs) -> Result<u8, Failure> {
    let targets = targets_file::collect(&args.targets, &args.input_list)?;
    if let Some(remote) = crate::remote::remote(&args.remote)? {
        let local_only = [
            (args.syn, "--syn"),
            (args.connect, "--connect"),
            (args.verify, "--verify"),
            (args.probes.is_some(), "--probes"),
            (args.ca_file.is_some(), "--ca"),
            (args.apps.is_some(), "--apps"),
            (args.try_default_credentials, "--try-default-credentials"),
            (args.no_app_checks, "--no-app-checks"),
            (args.rate.is_some(), "--rate"),
            (args.max_in_flight.is_some(), "--max-in-flight"),
            (args.host_concurrency.is_some(), "--host-concurrency"),
            (args.dns_server.is_some(), "--dns-server"),
            (args.db.is_some() || args.save, "--db/--save"),
            (args.enrich.enrich, "--enrich"),
        ];
        if let Some((_, flag)) = local_only.iter().find(|(set, _)| *set) {
            return Err(Failure::usage(format!(
                "{flag} is not for --server: the server decides how it probes and keeps its own history"
            )));
        }
        let runtime = crate::runtime()?;
        let report =
            runtime.block_on(remote.scan(&args.ports, &targets, args.detect, args.deadline))?;
        return finish(&args, &report, None, &runtime);
    }
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
    let scanner = builder.build()?;
    scanner.check_targets(&targets)?;
    let enrich = args.enrich.options(args.dns_server);
    enrich.check()?;
    let detection = if args.detect {
        let mut detector = Detector::load(args.probes.as_deref(), args.ca_file.as_deref())?
            .with_apps_file(args.apps.as_deref())?
            .try_default_credentials(args.try_default_credentials);
        if args.no_app_checks {
            detector.inspect.apps = None;
        }
        Some(detector)
    } else {
        None // (`--ca` requires `--detect`)
    };
    let runtime = crate::runtime()?;
    // In the history as `running` before the first probe (--db, --save or $PORTGATE_DB).
    let recorder = if pipeline::recording(args.db.as_deref(), args.save) {
        let location = pipeline::location(args.db.as_deref())?;
        let names: Vec<String> = targets.iter().map(ToString::to_string).collect();
        let method = [(args.connect, "connect"), (args.syn, "syn")]
            .into_iter()
            .find_map(|(set, name)| set.then_some(name));
        Some(runtime.block_on(ScanRecorder::begin(&location, &names, method))?)
    } else {
        None
    };
    let show_progress = !args.no_progress && std::io::stderr().is_terminal();
    let mut sink = ProgressSink::new(show_progress);
    let mut report = runtime.block_on(pipeline::scan(
        &scanner,
        &targets,
        detection.as_ref(),
        &mut sink,
    ))?;
    sink.finish();
    // The known vulnerabilities of what was detected, when the history holds an index.
    if let (Some(recorder), true) = (&recorder, args.detect) {
        runtime.block_on(pipeline::annotate_vulnerabilities(
            &mut report,
            recorder.store(),
        ))?;
    }
    runtime.block_on(pipeline::enrich(
        &mut report,
        recorder.as_ref().map(ScanRecorder::store),
        &enrich,
    ))?;

    finish(&args, &report, recorder, &runtime)
}

/// Writes the report, saves it when recording, and gives the exit code.
fn finish(
    args: &ScanArgs,
    report: &portgate_model::ScanReport,
    recorder: Option<ScanRecorder>,
    runtime: &tokio::runtime::Runtime,
) -> Result<u8, Failure> {
    let options = RenderOptions {
        only_open: args.open,
        all_ports: args.all_ports,
    };
    let text = match args.format {
        Format::Table => portgate_report::table(report, options),
        Format::Json => portgate_report::json(report, options),
        Format::NmapXml => portgate_report::nmap_xml(report, &crate::args::command_line()),
    };
    match &args.output_file {
        Some(path) => {
            std::fs::write(path, text).map_err(|e| crate::exit::cannot_write(path, &e))?
        }
        None => crate::write_stdout(&text),
    }
    if let Some(recorder) = recorder {
        let (id, store) = runtime.block_on(recorder.finish(report))?;
        eprintln!("portgate: saved as scan {id} in {store}");
    }
    Ok(match report.status {
        ScanStatus::Completed => 0,
        ScanStatus::Incomplete => {
            for reason in &report.incomplete_reasons {
                eprintln!("portgate: incomplete: {reason}");
            }
            crate::exit::INCOMPLETE
        }
    })
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

    pub(crate) fn finish(&self) {
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
