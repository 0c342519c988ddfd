//! What the engine reports while it runs.

use portgate_model::{PortResult, TargetReport};
use std::net::IpAddr;

/// One thing that happened during a scan. Borrowed data is only valid during the call.
#[derive(Debug)]
#[non_exhaustive]
pub enum ScanEvent<'a> {
    /// A target was resolved or expanded (or failed to be: see its `error`).
    TargetResolved(&'a TargetReport),
    /// Something the user should know, in one line (e.g. a fallback to connect scanning).
    Notice(&'a str),
    /// Probing starts.
    Started {
        /// Addresses to probe.
        hosts: usize,
        /// (address, port) pairs to settle.
        ports_total: u64,
    },
    /// A port's state is settled.
    Port {
        /// The address.
        ip: IpAddr,
        /// The result.
        result: &'a PortResult,
    },
    /// Periodic progress (about ten times a second).
    Progress(Progress),
    /// Probing ended.
    Finished,
}

/// Counters for a progress display.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Ports settled so far.
    pub done: u64,
    /// Ports to settle in all.
    pub total: u64,
    /// Open ports found so far.
    pub open: u64,
    /// Attempts in flight now.
    pub in_flight: usize,
    /// Current window size.
    pub window: usize,
}

/// Receives the engine's events, in order, on the task that runs the scan. `Send`, so that
/// a scan can run on any task of a multi-threaded runtime (a server's worker).
pub trait ScanSink: Send {
    /// Called for each event.
    fn event(&mut self, event: ScanEvent<'_>);
}

impl<F: FnMut(ScanEvent<'_>) + Send> ScanSink for F {
    fn event(&mut self, event: ScanEvent<'_>) {
        self(event)
    }
}

/// A sink that ignores everything.
#[derive(Debug, Default, Clone, Copy)]
pub struct NullSink;

impl ScanSink for NullSink {
    fn event(&mut self, _event: ScanEvent<'_>) {}
}
