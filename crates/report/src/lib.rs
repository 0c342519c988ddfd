//! Renderers of portgate scan reports: a human table and versioned JSON.
//!
//! Pure functions from a [`ScanReport`] to text. This crate never probes, never reads
//! files and never prints: the caller decides where the text goes.

mod check;
mod columns;
mod evidence;
mod history;
mod import;
mod json;
mod junit;
mod markdown;
mod nmap_xml;
mod sarif;
mod summary;
mod table;

pub use check::CheckReport;
pub use columns::columns;
pub use evidence::{CHECK_SCHEMA_ID, check_json};
pub use history::{
    DIFF_SCHEMA_ID, DiffChange, DiffDocument, DiffScan, HISTORY_SCHEMA_ID, TimelineDocument,
    diff_json, diff_table, history_schemas, timeline_json, timeline_table,
};
pub use import::{
    ScanFormat, read_masscan_json, read_masscan_list, read_nmap_xml, read_scan, scan_format,
};
pub use json::{JSON_SCHEMA_ID, JsonReport, json, json_schema, read_json};
pub use junit::junit;
pub use markdown::markdown;
pub use nmap_xml::{NMAP_XML_VERSION, nmap_xml};
pub use sarif::{FINGERPRINT_KEY, SARIF_VERSION, sarif};
pub use summary::check_summary;
pub use table::table;

use portgate_model::{HostReport, PortResult, PortState};

/// A state with more ports than this on one host is summarised ("Not shown: 65530
/// closed") instead of listed port by port, unless every port is asked for.
pub const COLLAPSE_THRESHOLD: usize = 25;

/// What to list.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RenderOptions {
    /// List open ports only; count the rest.
    pub only_open: bool,
    /// List every port, whatever its state.
    pub all_ports: bool,
}

/// The ports of a host to list, and the states left out with their counts.
pub(crate) fn visible_ports(
    host: &HostReport,
    options: RenderOptions,
) -> (Vec<&PortResult>, Vec<(PortState, usize)>) {
    let mut hidden = Vec::new();
    let mut shown_states = Vec::new();
    for state in PortState::ALL {
        let count = host.count(state);
        if count == 0 {
            continue;
        }
        let show = state == PortState::Open
            || options.all_ports
            || (!options.only_open && count <= COLLAPSE_THRESHOLD);
        if show {
            shown_states.push(state);
        } else {
            hidden.push((state, count));
        }
    }
    let ports = host
        .ports
        .iter()
        .filter(|p| shown_states.contains(&p.state))
        .collect();
    (ports, hidden)
}
