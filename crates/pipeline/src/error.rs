//! What can stop a use case, and of which kind it is: the caller's input (a front end
//! answers with a usage error) or the work itself (it could not run or complete).

use portgate_detect::LoadError;
use portgate_detect::TlsError;
use portgate_policy::ManifestError;
use portgate_scan::ScanError;
use portgate_store::StoreError;

/// Why a use case stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The scanner's settings or targets cannot be used.
    #[error(transparent)]
    Scan(#[from] ScanError),
    /// The manifest cannot be read, or the selection (environment, targets) is not in it.
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    /// The probe database cannot be loaded.
    #[error(transparent)]
    Probes(#[from] LoadError),
    /// The application database cannot be loaded.
    #[error(transparent)]
    Apps(#[from] portgate_detect::AppLoadError),
    /// The CA file given for TLS verification cannot be used.
    #[error(transparent)]
    Ca(#[from] TlsError),
    /// Other input that does not hold (an empty selection, an unknown scan id).
    #[error("{0}")]
    Input(String),
    /// The server that was to scan did not give a report (unreachable, failed, not done in
    /// time).
    #[error("{0}")]
    Server(String),
    /// The history database cannot be opened or read (before any work is done).
    #[error("{context}{source}")]
    History {
        /// What was being done, as a prefix (may be empty).
        context: &'static str,
        /// Why.
        source: StoreError,
    },
    /// The work was done but could not be saved to the history.
    #[error("the {what} finished but could not be saved to the history: {source}")]
    Save {
        /// `scan` or `check`.
        what: &'static str,
        /// Why.
        source: StoreError,
    },
}

/// The two kinds of failure a front end tells apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The request was wrong: fix the input (CLI exit 2, API 4xx).
    Input,
    /// The work could not run or complete (CLI exit 3, API 5xx or a failed job).
    Incomplete,
}

impl Error {
    /// Which kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Scan(_)
            | Error::Manifest(_)
            | Error::Probes(_)
            | Error::Apps(_)
            | Error::Ca(_)
            | Error::Input(_)
            | Error::History { .. } => ErrorKind::Input,
            Error::Save { .. } | Error::Server(_) => ErrorKind::Incomplete,
        }
    }

    pub(crate) fn history(source: StoreError) -> Self {
        Error::History {
            context: "",
            source,
        }
    }

    pub(crate) fn reading(source: StoreError) -> Self {
        Error::History {
            context: "cannot read the history: ",
            source,
        }
    }
}
