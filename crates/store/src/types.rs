//! What the store takes in: what is known of a scan when it starts, what to keep when
//! pruning. The records it hands out are the model's (`portgate_model::history`).

use chrono::{DateTime, Utc};

/// What is known of a scan when it starts.
#[derive(Debug, Clone, Default)]
pub struct ScanStart {
    /// When it started.
    pub started_at: Option<DateTime<Utc>>,
    /// The targets as given.
    pub targets: Vec<String>,
    /// `connect`, `syn`, `udp`, or none while not yet known.
    pub method: Option<String>,
    /// The git revision of the manifest the scan was run for, when there is one.
    pub manifest_revision: Option<String>,
}

/// What to keep when pruning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retention {
    /// Scans that started within this many days of `now`.
    KeepDays {
        /// Days.
        days: u32,
        /// The present (passed in, for tests).
        now: DateTime<Utc>,
    },
    /// The newest this many scans.
    KeepScans(u64),
}
