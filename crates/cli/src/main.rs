//! The `portgate` command line: parses arguments, runs the engine, renders the report,
//! and owns the process's exit code.
//!
//! Exit codes (chosen by the type of the failure, in `exit.rs`): 0 the scan completed
//! (check: passed); 1 policy failure (`portgate check`); 2 usage or input error; 3 the
//! scan could not complete.

mod args;
mod audit;
mod baseline;
mod check;
mod config;
mod data;
mod docs;
mod exit;
mod history;
mod log;
mod remote;
mod scan;
mod serve;
mod targets_file;

use std::process::ExitCode;

pub(crate) use exit::Failure;

/// The async runtime the commands run their work on.
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::scan(format!("could not start the async runtime: {e}")))
}

/// Writes `text` to standard output; a closed pipe (e.g. `| head`) is not an error.
pub(crate) fn write_stdout(text: &str) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    let _ = stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush());
}

fn main() -> ExitCode {
    let result = config::parse(args::normalise(std::env::args_os())).and_then(run);
    match result {
        Ok(code) => ExitCode::from(code),
        Err(failure) => {
            if log::is_json() {
                tracing::error!(exit_code = failure.code, "{}", failure.message);
            } else {
                eprintln!("portgate: {}", failure.message);
            }
            ExitCode::from(failure.code)
        }
    }
}

/// Runs the command the layered arguments name.
fn run(layered: config::Layered) -> Result<u8, Failure> {
    if layered.cli.print_config {
        write_stdout(&config::print(&layered));
        return Ok(0);
    }
    let file = layered.file;
    match layered.cli.command {
        args::Command::Scan(scan_args) => scan::run(scan_args),
        args::Command::Check(check_args) => check::run(check_args),
        args::Command::Baseline(baseline_args) => baseline::run(baseline_args),
        args::Command::Manifest(manifest_args) => baseline::run_manifest(manifest_args),
        args::Command::Audit(audit_args) => audit::run(audit_args),
        args::Command::History(history_args) => history::run_history(history_args),
        args::Command::Diff(diff_args) => history::run_diff(diff_args),
        args::Command::Db(db_args) => history::run_db(db_args),
        args::Command::Data(data_args) => data::run(data_args),
        args::Command::Import(import_args) => history::import(import_args),
        args::Command::Completions(completions_args) => docs::completions(completions_args),
        args::Command::Man(man_args) => docs::man(man_args),
        args::Command::Serve(serve_args) => serve::run(serve_args, file.as_ref()),
        args::Command::Keys(keys_args) => serve::run_keys(keys_args),
        args::Command::Ack(ack_args) => serve::run_ack(ack_args),
        args::Command::Window(window_args) => serve::run_window(window_args),
    }
}
