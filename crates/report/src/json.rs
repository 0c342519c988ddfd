//! The versioned JSON document (`-o json`). Its JSON Schema is generated from these
//! types ([`json_schema`]) and kept in `docs/scan-report.schema.json`.

use crate::{RenderOptions, visible_ports};
use chrono::{DateTime, SecondsFormat, Utc};
use portgate_model::{
    Detection, PortState, Protocol, Reason, ScanReport, ScanStatus, Summary, TargetReport,
    TarpitEvidence, service_name,
};
use schemars::JsonSchema;
use serde::Serialize;
use std::collections::BTreeMap;

/// Names this document's format and version. A change that removes or redefines a field
/// gets a new version; added fields do not.
pub const JSON_SCHEMA_ID: &str = "portgate.scan.v1";

/// A scan report as JSON.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[schemars(title = "portgate scan report", extend("$id" = JSON_SCHEMA_ID))]
pub struct JsonReport<'a> {
    /// Format and version of this document: `portgate.scan.v1`.
    pub schema: String,
    /// Version of portgate that wrote it.
    pub portgate_version: String,
    /// How TCP ports were probed: `connect` or `syn`; `udp` when only UDP ports were.
    pub method: String,
    /// `completed`, or `incomplete` when a target failed or the deadline cut the scan short.
    pub status: ScanStatus,
    /// Why the scan is incomplete; empty when it completed.
    pub incomplete_reasons: Vec<String>,
    /// Start, RFC 3339 UTC with milliseconds.
    pub started_at: String,
    /// End, RFC 3339 UTC with milliseconds.
    pub finished_at: String,
    /// Wall time in milliseconds.
    pub duration_ms: u64,
    /// Every target given, in order, with what it resolved to.
    pub targets: &'a [TargetReport],
    /// Every address scanned.
    pub hosts: Vec<JsonHost<'a>>,
    /// Counts over the whole scan.
    pub summary: Summary,
    /// The network of each address (imported tables) and, with `--enrich`, the DNS
    /// records and registration of each host name. Absent when there was none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enrichment: Option<&'a portgate_model::Enrichment>,
}

/// One address and its ports.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct JsonHost<'a> {
    /// The target it came from.
    pub target: String,
    /// The name it was resolved from, or null.
    pub hostname: Option<String>,
    /// The address.
    pub ip: String,
    /// Ports that were to be probed.
    pub ports_requested: u32,
    /// Ports per state on this host, complete whatever is listed.
    pub counts: JsonCounts,
    /// States whose ports are not listed in `ports`, with their counts: a state with more
    /// than 25 ports is summarised unless `--all-ports`; `--open` leaves out all but open.
    pub not_shown: BTreeMap<String, usize>,
    /// Listed ports, by protocol then number.
    pub ports: Vec<JsonPort<'a>>,
    /// Set when the host answered on nearly every TCP port (a tarpit): those ports are
    /// reported `filtered` with reason `tarpit`. Null otherwise.
    pub tarpit: Option<TarpitEvidence>,
}

/// Ports per state.
#[derive(Debug, Clone, Copy, Default, Serialize, JsonSchema)]
pub struct JsonCounts {
    /// Open.
    pub open: u64,
    /// Closed.
    pub closed: u64,
    /// Filtered.
    pub filtered: u64,
    /// Open|filtered (UDP).
    pub open_filtered: u64,
    /// Requested but not reached (deadline).
    pub not_scanned: u64,
}

/// One port.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct JsonPort<'a> {
    /// Number.
    pub port: u16,
    /// `tcp` or `udp`.
    #[schemars(with = "String")]
    pub protocol: Protocol,
    /// The conclusion.
    pub state: PortState,
    /// The observation behind it: `syn-ack`, `reset`, `udp-response`, `port-unreach`,
    /// `host-unreach`, `net-unreach`, `admin-prohibited`, `no-response`, `local-refusal`
    /// or `tarpit`.
    #[schemars(with = "String")]
    pub reason: Reason,
    /// The usual service on this port number (a guess from the number; see `detected`).
    pub service: Option<String>,
    /// Round trip of the answer in milliseconds, or null when nothing answered.
    pub rtt_ms: Option<f64>,
    /// Probes sent.
    pub attempts: u8,
    /// When the state was settled, RFC 3339 UTC with milliseconds.
    pub observed_at: String,
    /// What answers there (`--detect`); absent when detection did not run on the port.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detected: Option<&'a Detection>,
}

fn timestamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

impl<'a> JsonReport<'a> {
    /// Builds the document for a report.
    pub fn new(report: &'a ScanReport, options: RenderOptions) -> Self {
        let summary = report.summary();
        let hosts = report
            .hosts
            .iter()
            .map(|host| {
                let (ports, hidden) = visible_ports(host, options);
                let count = |state| host.count(state) as u64;
                JsonHost {
                    target: host.target.clone(),
                    hostname: host.hostname.clone(),
                    ip: host.ip.to_string(),
                    ports_requested: host.ports_requested,
                    counts: JsonCounts {
                        open: count(PortState::Open),
                        closed: count(PortState::Closed),
                        filtered: count(PortState::Filtered),
                        open_filtered: count(PortState::OpenFiltered),
                        not_scanned: u64::from(host.ports_requested)
                            .saturating_sub(host.ports.len() as u64),
                    },
                    not_shown: hidden
                        .into_iter()
                        .map(|(state, n)| (state.as_str().to_string(), n))
                        .collect(),
                    ports: ports
                        .into_iter()
                        .map(|p| JsonPort {
                            port: p.port,
                            protocol: p.protocol,
                            state: p.state,
                            reason: p.reason,
                            service: service_name(p.protocol, p.port).map(str::to_string),
                            rtt_ms: p.rtt_us.map(|us| f64::from(us) / 1000.0),
                            attempts: p.attempts,
                            observed_at: timestamp(
                                report.started_at
                                    + chrono::Duration::milliseconds(i64::from(p.at_ms)),
                            ),
                            detected: host.service_on(p.protocol, p.port),
                        })
                        .collect(),
                    tarpit: host.tarpit,
                }
            })
            .collect();
        JsonReport {
            schema: JSON_SCHEMA_ID.to_string(),
            portgate_version: env!("CARGO_PKG_VERSION").to_string(),
            method: report.method.as_str().to_string(),
            status: report.status,
            incomplete_reasons: report.incomplete_reasons.clone(),
            started_at: timestamp(report.started_at),
            finished_at: timestamp(report.finished_at),
            duration_ms: u64::try_from(report.duration().as_millis()).unwrap_or(u64::MAX),
            targets: &report.targets,
            hosts,
            summary,
            enrichment: report.enrichment.as_ref(),
        }
    }
}

/// Renders the report as pretty-printed JSON (with a trailing newline).
pub fn json(report: &ScanReport, options: RenderOptions) -> String {
    let mut text = serde_json::to_string_pretty(&JsonReport::new(report, options))
        .unwrap_or_else(|e| format!("{{\"error\": \"could not serialise the report: {e}\"}}"));
    text.push('\n');
    text
}

/// The JSON Schema of [`JsonReport`], pretty-printed.
pub fn json_schema() -> String {
    let schema = schemars::schema_for!(JsonReport<'static>);
    let mut text = serde_json::to_string_pretty(&schema).unwrap_or_default();
    text.push('\n');
    text
}

/// Reads a `portgate.scan.v1` document back into a report — one written with every port
/// listed (`--all-ports`; a server's `allPorts=true`): a document whose `not_shown` counts
/// ports it does not list cannot give their states, and is refused. Times keep the
/// document's millisecond precision.
pub fn read_json(text: &str) -> Result<ScanReport, String> {
    use portgate_model::{Detection, HostReport, PortResult, Protocol, Reason, ScanMethod};
    use serde_json::Value;
    fn field<T: serde::de::DeserializeOwned>(v: &Value, key: &str, at: &str) -> Result<T, String> {
        serde_json::from_value(v.get(key).cloned().unwrap_or(Value::Null))
            .map_err(|e| format!("{at}.{key}: {e}"))
    }
    let doc: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let schema: String = field(&doc, "schema", "report")?;
    if schema != JSON_SCHEMA_ID {
        return Err(format!("schema \"{schema}\", expected {JSON_SCHEMA_ID}"));
    }
    let time = |key: &str| -> Result<DateTime<Utc>, String> {
        let text: String = field(&doc, key, "report")?;
        DateTime::parse_from_rfc3339(&text)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|e| format!("report.{key}: {e}"))
    };
    let started_at = time("started_at")?;
    let finished_at = time("finished_at")?;
    let mut hosts = Vec::new();
    let listed = doc
        .get("hosts")
        .and_then(Value::as_array)
        .ok_or("report.hosts: missing")?;
    for (i, host) in listed.iter().enumerate() {
        let at = format!("hosts[{i}]");
        let not_shown: BTreeMap<String, u64> = field(host, "not_shown", &at)?;
        if not_shown.values().any(|n| *n > 0) {
            return Err(format!(
                "{at}: ports not listed ({not_shown:?}); read a report written with every port listed"
            ));
        }
        let mut ports = Vec::new();
        let mut services = Vec::new();
        for (j, p) in host
            .get("ports")
            .and_then(Value::as_array)
            .ok_or(format!("{at}.ports: missing"))?
            .iter()
            .enumerate()
        {
            let at = format!("{at}.ports[{j}]");
            let port: u16 = field(p, "port", &at)?;
            let protocol: Protocol = field(p, "protocol", &at)?;
            let observed: String = field(p, "observed_at", &at)?;
            let observed = DateTime::parse_from_rfc3339(&observed)
                .map_err(|e| format!("{at}.observed_at: {e}"))?;
            let rtt_ms: Option<f64> = field(p, "rtt_ms", &at)?;
            ports.push(PortResult {
                port,
                protocol,
                state: field(p, "state", &at)?,
                reason: field::<Reason>(p, "reason", &at)?,
                rtt_us: rtt_ms.map(|ms| (ms * 1000.0).round() as u32),
                attempts: field(p, "attempts", &at)?,
                at_ms: u32::try_from(
                    (observed.with_timezone(&Utc) - started_at).num_milliseconds(),
                )
                .unwrap_or(0),
            });
            if let Some(detected) = p.get("detected") {
                let detection: Detection = serde_json::from_value(detected.clone())
                    .map_err(|e| format!("{at}.detected: {e}"))?;
                services.push(portgate_model::DetectedService {
                    port,
                    protocol,
                    detection,
                });
            }
        }
        hosts.push(HostReport {
            target: field(host, "target", &at)?,
            hostname: field(host, "hostname", &at)?,
            ip: field(host, "ip", &at)?,
            ports_requested: field(host, "ports_requested", &at)?,
            ports,
            services,
            tarpit: field(host, "tarpit", &at)?,
        });
    }
    Ok(ScanReport {
        method: field::<ScanMethod>(&doc, "method", "report")?,
        started_at,
        finished_at,
        status: field(&doc, "status", "report")?,
        incomplete_reasons: field(&doc, "incomplete_reasons", "report")?,
        targets: field(&doc, "targets", "report")?,
        hosts,
        enrichment: field(&doc, "enrichment", "report")?,
    })
}
