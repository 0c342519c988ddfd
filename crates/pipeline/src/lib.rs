//! The use cases every front end shares — scan with detection, check against a manifest,
//! baseline from a scan, and the history's timeline and diff — joined from the stage
//! crates (`scan`, `detect`, `policy`, `store`). Typed in, typed out: nothing here prints,
//! exits or parses flags. The CLI (and any other front end) builds the inputs, calls these
//! functions, renders the results with `portgate-report` and chooses its exit code from
//! [`Error::kind`].

mod baseline;
mod check;
mod data;
mod enrich;
mod error;
mod history;
mod revision;
mod scan;
mod vulnerabilities;

pub use baseline::{Baseline, baseline_from, baseline_yaml};
pub use check::{
    CheckOptions, CheckOptionsBuilder, CheckOutcome, Compared, RemoteScan, Saved, check,
    check_remote, check_remote_in, check_report,
};
pub use data::{AsnImport, VulnFeed, datasets, import_asn, import_vulnerabilities};
pub use enrich::{EnrichOptions, enrich};
pub use error::{Error, ErrorKind};
pub use history::{
    DiffSpan, Diffed, ScanRecorder, Timeline, changes_since, diff_scans, export_jsonl, import_scan,
    location, open_store, prune, recording, timeline,
};
pub use revision::{manifest_revision, revision_with};
pub use scan::{Detector, detect_services, inspect_options, scan};
pub use vulnerabilities::{annotate_vulnerabilities, annotate_with, vulnerability_keys};
