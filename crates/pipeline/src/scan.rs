//! Scan with detection: the scanner's report, then what answers on every open TCP port.

use crate::Error;
use futures::stream::{self, StreamExt};
use portgate_detect::{AppDb, ProbeDb};
use portgate_detect::{InspectOptions, inspect_port};
use portgate_model::{ScanReport, TargetSpec};
use portgate_scan::{ScanSink, Scanner};
use std::net::SocketAddr;
use std::path::Path;

/// Detections running at once.
const DETECT_PARALLEL: usize = 32;

/// What service detection needs: the probe database and how to inspect a port.
#[derive(Debug)]
pub struct Detector {
    /// The probes (built in, or merged with a file).
    pub probes: ProbeDb,
    /// TLS, STARTTLS and HTTP inspection settings.
    pub inspect: InspectOptions,
}

impl Detector {
    /// The built-in probes, with `probes_file` merged in when given; TLS verified against
    /// the CA certificates of `ca_file` instead of the system roots when given. A file that
    /// cannot be used is an input error, found before anything is scanned.
    pub fn load(probes_file: Option<&Path>, ca_file: Option<&Path>) -> Result<Self, Error> {
        let probes = match probes_file {
            Some(path) => ProbeDb::from_file(path)?,
            None => ProbeDb::builtin()?,
        };
        Ok(Detector {
            probes,
            inspect: inspect_options(ca_file)?,
        })
    }

    /// The built-in application database with the applications of `apps_file` merged in
    /// (an application with a built-in's id replaces it).
    pub fn with_apps_file(mut self, apps_file: Option<&Path>) -> Result<Self, Error> {
        if let Some(path) = apps_file {
            self.inspect.apps = Some(std::sync::Arc::new(AppDb::from_file(path)?));
        }
        Ok(self)
    }

    /// Try the vendors' documented default logins of the management interfaces found
    /// (HTTP Basic, recorded in the evidence). Only for your own assets.
    pub fn try_default_credentials(mut self, on: bool) -> Self {
        self.inspect.app.try_default_credentials = on;
        self
    }
}

/// Inspection options: `ca_file` replaces the system trust roots. A CA file that cannot be
/// used is an input error.
pub fn inspect_options(ca_file: Option<&Path>) -> Result<InspectOptions, Error> {
    let mut options = InspectOptions::default();
    if let Some(path) = ca_file {
        portgate_detect::check_ca_file(path)?;
        options.tls.ca_file = Some(path.to_path_buf());
    }
    Ok(options)
}

/// Scans `targets` with `scanner` (events go to `sink`; the scanner refuses targets over
/// its limits before sending anything), then, with `detection`, names what answers on
/// every open TCP port.
pub async fn scan(
    scanner: &Scanner,
    targets: &[TargetSpec],
    detection: Option<&Detector>,
    sink: &mut dyn ScanSink,
) -> Result<ScanReport, Error> {
    let mut report = scanner.run(targets, sink).await?;
    if let Some(detection) = detection {
        detect_services(&mut report, detection).await;
    }
    Ok(report)
}

/// Runs service detection on every open TCP port of `report` and records what answers
/// there: service, product, version, TLS (direct or after STARTTLS) and HTTP.
pub async fn detect_services(report: &mut ScanReport, detection: &Detector) {
    for host in &mut report.hosts {
        let ip = host.ip;
        let hostname = host.hostname.clone();
        host.services = stream::iter(host.open_tcp_ports())
            .map(|port| {
                inspect_port(
                    SocketAddr::new(ip, port),
                    hostname.as_deref(),
                    &detection.probes,
                    &detection.inspect,
                )
            })
            .buffer_unordered(DETECT_PARALLEL)
            .collect()
            .await;
        host.services.sort_by_key(|s| s.port);
    }
}
