//! Exit codes, chosen in one place by the type of what went wrong, the same for every
//! command: 0 done (check: passed, warnings allowed, or monitor mode); 1 policy failure;
//! 2 usage or input error (arguments, manifest, CA or probe file, history database
//! location); 3 the work could not run or complete (scan incomplete, runtime, saving).

use portgate_pipeline::{Error, ErrorKind};
use portgate_policy::{Evaluation, ManifestError, Outcome};
use portgate_scan::ScanError;

/// Exit code: a usage or input error.
pub(crate) const USAGE: u8 = 2;
/// Exit code: the work could not run or complete.
pub(crate) const INCOMPLETE: u8 = 3;

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
            code: USAGE,
            message: message.into(),
        }
    }

    /// The work could not run or complete (exit 3).
    pub(crate) fn scan(message: impl Into<String>) -> Self {
        Failure {
            code: INCOMPLETE,
            message: message.into(),
        }
    }
}

/// An output file that cannot be written or created: the path given is wrong (exit 2), in
/// every command.
pub(crate) fn cannot_write(path: &std::path::Path, error: &std::io::Error) -> Failure {
    Failure::usage(format!("cannot write {}: {error}", path.display()))
}

impl From<Error> for Failure {
    fn from(error: Error) -> Self {
        match error.kind() {
            ErrorKind::Input => Failure::usage(error.to_string()),
            ErrorKind::Incomplete => Failure::scan(error.to_string()),
        }
    }
}

impl From<ManifestError> for Failure {
    fn from(error: ManifestError) -> Self {
        Error::from(error).into()
    }
}

impl From<ScanError> for Failure {
    fn from(error: ScanError) -> Self {
        Error::from(error).into()
    }
}

/// The exit code of a check: 0 pass or warn (and always in monitor mode), 1 policy
/// failure, 3 inconclusive.
pub(crate) fn check_code(evaluation: &Evaluation) -> u8 {
    if evaluation.monitor {
        return 0;
    }
    match evaluation.outcome {
        Outcome::Pass | Outcome::Warn => 0,
        Outcome::Fail => 1,
        Outcome::Inconclusive => INCOMPLETE,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use portgate_store::{Location, StoreError};

    fn store_error() -> StoreError {
        match Location::parse("mysql://db.example.test/x") {
            Err(e) => e,
            Ok(_) => StoreError::NoDefaultLocation,
        }
    }

    #[test]
    fn each_kind_of_error_has_its_exit_code() {
        let manifest = portgate_policy::Manifest::from_yaml("version: 2\n", "exposure.yaml")
            .err()
            .map(Error::from);
        let rows: Vec<(&str, Option<Error>, u8)> = vec![
            (
                "scanner settings",
                Some(Error::Scan(ScanError::NoPorts)),
                USAGE,
            ),
            ("manifest", manifest, USAGE),
            (
                "other input",
                Some(Error::Input("nothing to check".into())),
                USAGE,
            ),
            (
                "history location",
                Some(Error::History {
                    context: "",
                    source: store_error(),
                }),
                USAGE,
            ),
            (
                "saving after the work",
                Some(Error::Save {
                    what: "scan",
                    source: store_error(),
                }),
                INCOMPLETE,
            ),
        ];
        for (what, error, code) in rows {
            let error = error.unwrap_or_else(|| panic!("{what}: the example is an error"));
            let message = error.to_string();
            let failure = Failure::from(error);
            assert_eq!(failure.code, code, "{what}");
            assert_eq!(failure.message, message, "{what}: the message is kept");
        }
    }

    #[test]
    fn a_check_exits_by_its_outcome_and_mode() {
        let evaluation = |outcome, monitor| Evaluation {
            findings: Vec::new(),
            outcome,
            monitor,
        };
        for (outcome, code) in [
            (Outcome::Pass, 0),
            (Outcome::Warn, 0),
            (Outcome::Fail, 1),
            (Outcome::Inconclusive, INCOMPLETE),
        ] {
            assert_eq!(check_code(&evaluation(outcome, false)), code, "{outcome:?}");
            assert_eq!(
                check_code(&evaluation(outcome, true)),
                0,
                "{outcome:?} monitor"
            );
        }
    }
}
