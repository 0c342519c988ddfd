//! The versioned JSON document (`-o json`). Its JSON Schema is generated from these
//! types ([`json_schema`]) and kept in `docs/scan-report.schema.json`.

use crate::{RenderOptions, visible_ports};
use chrono::{DateTime, SecondsFormat, Utc};
use portgate_model::{
    DetectedService, PortState, ScanReport, ScanStatus, TlsSummary, service_name,
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
pub struct JsonReport {
    /// Format and version of this document: `portgate.scan.v1`.
    pub schema: String,
    /// Version of portgate that wrote it.
    pub portgate_version: String,
    /// How TCP ports were probed: `connect` or `syn`; `udp` when only UDP ports were.
    pub method: String,
    /// `completed`, or `incomplete` when a target failed or the deadline cut the scan short.
    pub status: JsonStatus,
    /// Why the scan is incomplete; empty when it completed.
    pub incomplete_reasons: Vec<String>,
    /// Start, RFC 3339 UTC with milliseconds.
    pub started_at: String,
    /// End, RFC 3339 UTC with milliseconds.
    pub finished_at: String,
    /// Wall time in milliseconds.
    pub duration_ms: u64,
    /// Every target given, in order, with what it resolved to.
    pub targets: Vec<JsonTarget>,
    /// Every address scanned.
    pub hosts: Vec<JsonHost>,
    /// Counts over the whole scan.
    pub summary: JsonSummary,
}

/// Whether the scan covered everything.
#[derive(Debug, Clone, Copy, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum JsonStatus {
    /// Every port of every resolvable address has a state.
    Completed,
    /// Something was left out.
    Incomplete,
}

/// A port's state.
#[derive(Debug, Clone, Copy, Serialize, JsonSchema)]
pub enum JsonState {
    /// The handshake completed.
    #[serde(rename = "open")]
    Open,
    /// Refused (TCP reset).
    #[serde(rename = "closed")]
    Closed,
    /// No answer after retries, an ICMP unreachable, or a tarpit's answer.
    #[serde(rename = "filtered")]
    Filtered,
    /// UDP: no answer.
    #[serde(rename = "open|filtered")]
    OpenFiltered,
}

impl From<PortState> for JsonState {
    fn from(state: PortState) -> Self {
        match state {
            PortState::Open => JsonState::Open,
            PortState::Closed => JsonState::Closed,
            PortState::Filtered => JsonState::Filtered,
            PortState::OpenFiltered => JsonState::OpenFiltered,
        }
    }
}

/// One target as given.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct JsonTarget {
    /// As the user wrote it.
    pub input: String,
    /// `ip`, `cidr` or `hostname`.
    pub kind: String,
    /// Addresses scanned for it (empty for a CIDR range: see `address_count`).
    pub addresses: Vec<String>,
    /// Number of addresses it stood for.
    pub address_count: u64,
    /// For a hostname: the CNAMEs followed, in order (empty when none).
    pub cname_chain: Vec<String>,
    /// Why it could not be scanned, or null.
    pub error: Option<String>,
}

/// One address and its ports.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct JsonHost {
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
    pub ports: Vec<JsonPort>,
    /// Set when the host answered on nearly every TCP port (a tarpit): those ports are
    /// reported `filtered` with reason `tarpit`. Null otherwise.
    pub tarpit: Option<JsonTarpit>,
}

/// Evidence that a host is a tarpit.
#[derive(Debug, Clone, Copy, Serialize, JsonSchema)]
pub struct JsonTarpit {
    /// TCP ports that answered as if open.
    pub answered: u32,
    /// TCP ports probed.
    pub probed: u32,
    /// Ports of a random sample checked with a full connect.
    pub sampled: u32,
    /// Of those, how many completed the handshake.
    pub handshakes: u32,
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
pub struct JsonPort {
    /// Number.
    pub port: u16,
    /// `tcp` or `udp`.
    pub protocol: String,
    /// The conclusion.
    pub state: JsonState,
    /// The observation behind it: `syn-ack`, `reset`, `udp-response`, `port-unreach`,
    /// `host-unreach`, `net-unreach`, `admin-prohibited`, `no-response`, `local-refusal`
    /// or `tarpit`.
    pub reason: String,
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
    pub detected: Option<JsonDetected>,
}

/// Service detection on one port, with its evidence.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct JsonDetected {
    /// Service name (`ssh`, `http`, `redis`, ...), or null when nothing matched.
    pub service: Option<String>,
    /// Product, when the service tells it.
    pub product: Option<String>,
    /// Version, when the service tells it.
    pub version: Option<String>,
    /// Extra information, e.g. `no authentication`.
    pub info: Option<String>,
    /// CPE of the product.
    pub cpe: Option<String>,
    /// The probe whose answer matched.
    pub probe: Option<String>,
    /// True when only the service is known (a soft match).
    pub soft: bool,
    /// The answer the claim rests on: printable ASCII kept, other bytes as `\xNN`,
    /// at most 512 bytes of it.
    pub evidence: String,
    /// What a TLS handshake showed, when the port speaks TLS; absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<JsonTls>,
    /// What an HTTP request showed, when the port speaks HTTP (plain or inside TLS).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http: Option<JsonHttp>,
    /// What else inspection noticed, e.g. that STARTTLS is not offered.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// The answer of an HTTP service to one `GET /`.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct JsonHttp {
    /// The URL requested (relative redirects resolve against it).
    pub url: String,
    /// `HTTP/1.1` or `HTTP/1.0`.
    pub version: String,
    /// Status code.
    pub status: u16,
    /// Reason phrase as sent.
    pub reason: String,
    /// `Location` as sent.
    pub location: Option<String>,
    /// For a redirect, `Location` resolved to an absolute URL.
    pub redirect_url: Option<String>,
    /// For a redirect, whether it leads to `https`; null when not a redirect.
    pub redirects_to_https: Option<bool>,
    /// `Server` header.
    pub server: Option<String>,
    /// `Content-Type` header.
    pub content_type: Option<String>,
    /// Page title (entities decoded, whitespace collapsed, capped).
    pub title: Option<String>,
    /// Security headers present, with their values.
    pub security_headers: portgate_model::SecurityHeaders,
    /// Security headers absent (`Strict-Transport-Security` only expected over TLS).
    pub missing_security_headers: Vec<String>,
    /// Flags of each cookie set.
    pub cookies: Vec<portgate_model::CookieFlags>,
    /// CORS answer to a foreign `Origin`; null when no `Access-Control-Allow-*` header.
    pub cors: Option<portgate_model::Cors>,
    /// The response head as evidence: escaped like `evidence`, at most 512 bytes.
    pub head: String,
    /// Oddities met (header cap reached, body cut short, unparsable cookie, ...).
    pub notes: Vec<String>,
}

impl From<&portgate_model::HttpInfo> for JsonHttp {
    fn from(h: &portgate_model::HttpInfo) -> Self {
        Self {
            url: h.url.clone(),
            version: h.version.clone(),
            status: h.status,
            reason: h.reason.clone(),
            location: h.location.clone(),
            redirect_url: h.redirect_url.clone(),
            redirects_to_https: h.redirects_to_https,
            server: h.server.clone(),
            content_type: h.content_type.clone(),
            title: h.title.clone(),
            security_headers: h.security_headers.clone(),
            missing_security_headers: h.missing_security_headers.clone(),
            cookies: h.cookies.clone(),
            cors: h.cors.clone(),
            head: escape_evidence(&h.head),
            notes: h.notes.clone(),
        }
    }
}

impl From<&DetectedService> for JsonDetected {
    fn from(d: &DetectedService) -> Self {
        Self {
            service: d.service.clone(),
            product: d.product.clone(),
            version: d.version.clone(),
            info: d.info.clone(),
            cpe: d.cpe.clone(),
            probe: d.probe.clone(),
            soft: d.soft,
            evidence: escape_evidence(&d.evidence),
            tls: d.tls.as_ref().map(JsonTls::from),
            http: d.http.as_ref().map(JsonHttp::from),
            notes: d.notes.clone(),
        }
    }
}

/// A TLS handshake on a port.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct JsonTls {
    /// How TLS was reached: absent for TLS from the first byte, else the plaintext
    /// upgrade used (`smtp`, `imap`, `pop3`, `ftp`, `postgresql`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub starttls: Option<String>,
    /// `TLSv1.3` or `TLSv1.2`.
    pub protocol: String,
    /// Negotiated cipher suite.
    pub cipher_suite: String,
    /// Negotiated ALPN protocol, if any.
    pub alpn: Option<String>,
    /// The name sent as SNI and checked against the certificate; null for a bare address.
    pub server_name: Option<String>,
    /// Leaf certificate subject.
    pub subject: String,
    /// Leaf certificate issuer.
    pub issuer: String,
    /// DNS names of the leaf.
    pub san_dns: Vec<String>,
    /// IP addresses of the leaf.
    pub san_ips: Vec<String>,
    /// Leaf start of validity, RFC 3339.
    pub not_before: Option<String>,
    /// Leaf expiry, RFC 3339.
    pub not_after: Option<String>,
    /// Days until expiry, negative once expired.
    pub days_left: Option<i64>,
    /// The leaf is issued by itself.
    pub self_signed: bool,
    /// Certificates the server sent.
    pub chain_len: usize,
    /// SHA-256 of the leaf certificate (DER), lower-case hex.
    pub fingerprint_sha256: String,
    /// The chain and the name verified.
    pub valid: bool,
    /// Each reason it did not: `expired`, `not-yet-valid`, `untrusted-issuer`,
    /// `name-mismatch`, `self-signed`, or other text.
    pub reasons: Vec<String>,
}

impl From<&TlsSummary> for JsonTls {
    fn from(t: &TlsSummary) -> Self {
        Self {
            starttls: t.starttls.clone(),
            protocol: t.protocol.clone(),
            cipher_suite: t.cipher_suite.clone(),
            alpn: t.alpn.clone(),
            server_name: t.server_name.clone(),
            subject: t.subject.clone(),
            issuer: t.issuer.clone(),
            san_dns: t.san_dns.clone(),
            san_ips: t.san_ips.clone(),
            not_before: t.not_before.clone(),
            not_after: t.not_after.clone(),
            days_left: t.days_left,
            self_signed: t.self_signed,
            chain_len: t.chain_len,
            fingerprint_sha256: t.fingerprint_sha256.clone(),
            valid: t.valid,
            reasons: t.reasons.clone(),
        }
    }
}

/// Bytes as text: printable ASCII kept, `\r`, `\n`, `\t` and `\\` escaped, other
/// bytes as `\xNN`; at most `EVIDENCE_BYTES` bytes, then `...`.
fn escape_evidence(bytes: &[u8]) -> String {
    const EVIDENCE_BYTES: usize = 512;
    let mut out = String::new();
    for &b in bytes.iter().take(EVIDENCE_BYTES) {
        match b {
            b'\\' => out.push_str("\\\\"),
            b'\r' => out.push_str("\\r"),
            b'\n' => out.push_str("\\n"),
            b'\t' => out.push_str("\\t"),
            0x20..=0x7e => out.push(char::from(b)),
            _ => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    if bytes.len() > EVIDENCE_BYTES {
        out.push_str("...");
    }
    out
}

/// Counts over the whole scan.
#[derive(Debug, Clone, Copy, Serialize, JsonSchema)]
pub struct JsonSummary {
    /// Targets given.
    pub targets: usize,
    /// Targets that could not be scanned.
    pub targets_failed: usize,
    /// Addresses scanned.
    pub hosts: usize,
    /// (address, port) pairs requested.
    pub ports_requested: u64,
    /// Pairs with a state.
    pub ports_scanned: u64,
    /// Open.
    pub open: u64,
    /// Closed.
    pub closed: u64,
    /// Filtered.
    pub filtered: u64,
    /// Open|filtered.
    pub open_filtered: u64,
    /// Requested pairs not reached.
    pub not_scanned: u64,
    /// Probes sent to learn the states: every first try and retry of every scanned pair
    /// (connect attempts, SYNs, UDP datagrams; detection's requests are not counted).
    pub probes_sent: u64,
}

fn timestamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

impl JsonReport {
    /// Builds the document for a report.
    pub fn new(report: &ScanReport, options: RenderOptions) -> Self {
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
                            protocol: p.protocol.as_str().to_string(),
                            state: p.state.into(),
                            reason: p.reason.as_str().to_string(),
                            service: service_name(p.protocol, p.port).map(str::to_string),
                            rtt_ms: p.rtt_us.map(|us| f64::from(us) / 1000.0),
                            attempts: p.attempts,
                            observed_at: timestamp(
                                report.started_at
                                    + chrono::Duration::milliseconds(i64::from(p.at_ms)),
                            ),
                            detected: host.service_on(p.protocol, p.port).map(JsonDetected::from),
                        })
                        .collect(),
                    tarpit: host.tarpit.map(|t| JsonTarpit {
                        answered: t.answered,
                        probed: t.probed,
                        sampled: t.sampled,
                        handshakes: t.handshakes,
                    }),
                }
            })
            .collect();
        JsonReport {
            schema: JSON_SCHEMA_ID.to_string(),
            portgate_version: env!("CARGO_PKG_VERSION").to_string(),
            method: report.method.as_str().to_string(),
            status: match report.status {
                ScanStatus::Completed => JsonStatus::Completed,
                ScanStatus::Incomplete => JsonStatus::Incomplete,
            },
            incomplete_reasons: report.incomplete_reasons.clone(),
            started_at: timestamp(report.started_at),
            finished_at: timestamp(report.finished_at),
            duration_ms: u64::try_from(report.duration().as_millis()).unwrap_or(u64::MAX),
            targets: report
                .targets
                .iter()
                .map(|t| JsonTarget {
                    input: t.input.clone(),
                    kind: t.kind.clone(),
                    addresses: t.addresses.iter().map(ToString::to_string).collect(),
                    address_count: t.address_count,
                    cname_chain: t.cname_chain.clone(),
                    error: t.error.clone(),
                })
                .collect(),
            hosts,
            summary: JsonSummary {
                targets: summary.targets,
                targets_failed: summary.targets_failed,
                hosts: summary.hosts,
                ports_requested: summary.ports_requested,
                ports_scanned: summary.ports_scanned,
                open: summary.open,
                closed: summary.closed,
                filtered: summary.filtered,
                open_filtered: summary.open_filtered,
                not_scanned: summary.not_scanned,
                probes_sent: summary.probes_sent,
            },
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
    let schema = schemars::schema_for!(JsonReport);
    let mut text = serde_json::to_string_pretty(&schema).unwrap_or_default();
    text.push('\n');
    text
}
