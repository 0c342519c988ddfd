//! The `portgate` command line: parses arguments, runs the engine, renders the report,
//! and owns the process's exit code.
//!
//! Exit codes: 0 the scan completed (check: passed); 1 policy failure (`portgate check`);
//! 2 usage or input error; 3 the scan could not complete.

mod args;
mod audit;
mod baseline;
mod check;
mod history;
mod scan;
mod targets_file;

use clap::Parser;
use std::process::ExitCode;

/// An error with the exit code it calls for.
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) code: u8,
    pub(crate) message: String,
}

impl Failure {
    /// A usage or input error (exit 2).
    pub(crate) fn usage(message: impl Into<String>) -> Self {
        Failure {
            code: 2,
            message: message.into(),
        }
    }

    /// The scan could not run or complete (exit 3).
    pub(crate) fn scan(message: impl Into<String>) -> Self {
        Failure {
            code: 3,
            message: message.into(),
        }
    }
}

fn main() -> ExitCode {
    let cli = args::Cli::parse_from(args::normalise(std::env::args_os()));
    let result = match cli.command {
        args::Command::Scan(scan_args) => scan::run(scan_args),
        args::Command::Check(check_args) => check::run(check_args),
        args::Command::Baseline(baseline_args) => baseline::run(baseline_args),
        args::Command::Manifest(manifest_args) => baseline::run_manifest(manifest_args),
        args::Command::Audit(audit_args) => audit::run(audit_args),
        args::Command::History(history_args) => history::run_history(history_args),
        args::Command::Diff(diff_args) => history::run_diff(diff_args),
        args::Command::Db(db_args) => history::run_db(db_args),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(failure) => {
            eprintln!("portgate: {}", failure.message);
            ExitCode::from(failure.code)
        }
    }
}
