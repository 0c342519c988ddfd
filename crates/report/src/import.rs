//! Scans written by other tools, read into a [`ScanReport`]: nmap's XML (`-oX`), masscan's
//! JSON (`-oJ`) and list (`-oL`) output, and portgate's own JSON. The format is recognised
//! from the content. Every error names the format and the place (line, host, port).

use std::collections::BTreeMap;
use std::net::IpAddr;

use chrono::{DateTime, TimeZone, Utc};
use portgate_model::{
    DetectedService, Detection, HostReport, PortResult, PortState, Protocol, Reason, ScanMethod,
    ScanReport, ScanStatus, TargetReport,
};

/// The formats [`read_scan`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScanFormat {
    /// `portgate scan -o json` (written with every port listed).
    PortgateJson,
    /// nmap's XML output.
    NmapXml,
    /// masscan's `-oJ`.
    MasscanJson,
    /// masscan's `-oL`.
    MasscanList,
}

impl ScanFormat {
    /// Its name in messages.
    pub fn as_str(self) -> &'static str {
        match self {
            ScanFormat::PortgateJson => "portgate JSON",
            ScanFormat::NmapXml => "nmap XML",
            ScanFormat::MasscanJson => "masscan JSON",
            ScanFormat::MasscanList => "masscan list",
        }
    }
}

/// The format of `text`, from its content.
pub fn scan_format(text: &str) -> Option<ScanFormat> {
    let start = text.trim_start();
    if start.starts_with("<?xml") || start.starts_with("<nmaprun") || start.contains("<nmaprun") {
        return Some(ScanFormat::NmapXml);
    }
    if start.starts_with('{') && text.contains(crate::JSON_SCHEMA_ID) {
        return Some(ScanFormat::PortgateJson);
    }
    if start.starts_with('[') || start.starts_with('{') {
        return Some(ScanFormat::MasscanJson);
    }
    let listed = start.lines().any(|l| {
        let mut w = l.split_whitespace();
        matches!(w.next(), Some("open" | "closed")) && matches!(w.next(), Some("tcp" | "udp"))
    });
    (start.starts_with("#masscan") || listed).then_some(ScanFormat::MasscanList)
}

/// Read a scan in any of the [`ScanFormat`]s.
pub fn read_scan(text: &str) -> Result<(ScanFormat, ScanReport), String> {
    let format = scan_format(text).ok_or(
        "not a scan portgate reads: expected nmap XML (-oX), masscan JSON (-oJ) or list (-oL), or portgate JSON",
    )?;
    let report = match format {
        ScanFormat::PortgateJson => crate::read_json(text),
        ScanFormat::NmapXml => read_nmap_xml(text),
        ScanFormat::MasscanJson => read_masscan_json(text),
        ScanFormat::MasscanList => read_masscan_list(text),
    }
    .map_err(|e| format!("{}: {e}", format.as_str()))?;
    Ok((format, report))
}

/// A report of `hosts` (one target per address, in order of appearance).
fn report(
    method: ScanMethod,
    started_at: DateTime<Utc>,
    finished_at: DateTime<Utc>,
    mut hosts: Vec<HostReport>,
) -> ScanReport {
    for h in &mut hosts {
        h.ports.sort_by_key(|p| (p.protocol, p.port));
        h.services.sort_by_key(|s| (s.protocol, s.port));
        h.ports_requested = u32::try_from(h.ports.len()).unwrap_or(u32::MAX);
    }
    let targets = hosts
        .iter()
        .map(|h| TargetReport {
            input: h.target.clone(),
            kind: if h.hostname.is_some() {
                "hostname"
            } else {
                "ip"
            }
            .into(),
            addresses: vec![h.ip],
            address_count: 1,
            cname_chain: Vec::new(),
            error: None,
        })
        .collect();
    ScanReport {
        method,
        started_at,
        finished_at: finished_at.max(started_at),
        status: ScanStatus::Completed,
        incomplete_reasons: Vec::new(),
        targets,
        hosts,
        enrichment: None,
    }
}

fn new_host(ip: IpAddr, hostname: Option<String>) -> HostReport {
    HostReport {
        target: hostname.clone().unwrap_or_else(|| ip.to_string()),
        hostname,
        ip,
        ports_requested: 0,
        ports: Vec::new(),
        services: Vec::new(),
        tarpit: None,
    }
}

/// portgate's reason for a reason another scanner wrote.
fn reason_of(name: &str, state: PortState) -> Reason {
    match name {
        "syn-ack" => Reason::SynAck,
        "reset" | "rst" | "conn-refused" => Reason::Reset,
        "host-unreach" | "host-unreachable" => Reason::HostUnreachable,
        "net-unreach" | "net-unreachable" => Reason::NetUnreachable,
        "admin-prohibited" | "host-prohibited" | "net-prohibited" => Reason::AdminProhibited,
        "port-unreach" => Reason::PortUnreachable,
        "udp-response" => Reason::UdpResponse,
        _ => match state {
            PortState::Open => Reason::SynAck,
            PortState::Closed => Reason::Reset,
            PortState::Filtered | PortState::OpenFiltered => Reason::NoResponse,
        },
    }
}

fn protocol_of(name: &str, at: &str) -> Result<Protocol, String> {
    match name {
        "tcp" => Ok(Protocol::Tcp),
        "udp" => Ok(Protocol::Udp),
        other => Err(format!(
            "{at}: protocol \"{other}\" (only tcp and udp are read)"
        )),
    }
}

fn time_of(seconds: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(seconds, 0).single().unwrap_or_default()
}

/// nmap's XML (`-oX`).
pub fn read_nmap_xml(text: &str) -> Result<ScanReport, String> {
    let opts = roxmltree::ParsingOptions {
        allow_dtd: true,
        ..roxmltree::ParsingOptions::default()
    };
    let doc = roxmltree::Document::parse_with_options(text, opts).map_err(|e| e.to_string())?;
    let root = doc.root_element();
    if root.tag_name().name() != "nmaprun" {
        return Err(format!(
            "the document is <{}>, not <nmaprun>",
            root.tag_name().name()
        ));
    }
    let line = |n: roxmltree::Node<'_, '_>| doc.text_pos_at(n.range().start).row;
    let start = root
        .attribute("start")
        .and_then(|s| s.parse().ok())
        .map(time_of);
    let finished = root
        .descendants()
        .find(|n| n.has_tag_name("finished"))
        .and_then(|n| n.attribute("time"))
        .and_then(|s| s.parse().ok())
        .map(time_of);
    let method = root
        .children()
        .filter(|n| n.has_tag_name("scaninfo"))
        .find_map(|n| match n.attribute("type") {
            Some("syn") => Some(ScanMethod::Syn),
            Some("connect") => Some(ScanMethod::Connect),
            _ => None,
        })
        .unwrap_or(ScanMethod::Udp);
    let mut hosts = Vec::new();
    for h in root.children().filter(|n| n.has_tag_name("host")) {
        let at = format!("line {}: <host>", line(h));
        let Some(address) = h.children().find(|n| {
            n.has_tag_name("address")
                && matches!(n.attribute("addrtype"), None | Some("ipv4" | "ipv6"))
        }) else {
            return Err(format!("{at} has no IP <address>"));
        };
        let addr = address.attribute("addr").unwrap_or_default();
        let ip: IpAddr = addr
            .parse()
            .map_err(|_| format!("{at}: address \"{addr}\" is not an IP address"))?;
        let hostname = h
            .descendants()
            .filter(|n| n.has_tag_name("hostname"))
            .find(|n| n.attribute("type") == Some("user"))
            .and_then(|n| n.attribute("name"))
            .map(str::to_owned);
        let mut host = new_host(ip, hostname);
        for p in h.descendants().filter(|n| n.has_tag_name("port")) {
            let at = format!("line {}: <port>", line(p));
            let protocol = protocol_of(p.attribute("protocol").unwrap_or_default(), &at)?;
            let portid = p.attribute("portid").unwrap_or_default();
            let port: u16 = portid
                .parse()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| format!("{at}: portid \"{portid}\" is not a port"))?;
            let state_node = p
                .children()
                .find(|n| n.has_tag_name("state"))
                .ok_or_else(|| format!("{at} has no <state>"))?;
            let state_name = state_node.attribute("state").unwrap_or_default();
            let state = PortState::from_name(state_name).ok_or_else(|| {
                format!("{at}: state \"{state_name}\" (open, closed, filtered, open|filtered)")
            })?;
            host.ports.push(PortResult {
                port,
                protocol,
                state,
                reason: reason_of(state_node.attribute("reason").unwrap_or_default(), state),
                rtt_us: None,
                attempts: 1,
                at_ms: 0,
            });
            let Some(s) = p.children().find(|n| n.has_tag_name("service")) else {
                continue;
            };
            if s.attribute("method") != Some("probed") {
                continue;
            }
            let owned = |key: &str| s.attribute(key).map(str::to_owned);
            let mut service = owned("name");
            if s.attribute("tunnel") == Some("ssl") && service.as_deref() == Some("http") {
                service = Some("https".into());
            }
            let cpe = s
                .children()
                .find(|n| n.has_tag_name("cpe"))
                .and_then(|n| n.text())
                .map(str::to_owned);
            host.services.push(DetectedService {
                port,
                protocol,
                detection: Detection {
                    service,
                    product: owned("product"),
                    version: owned("version"),
                    info: owned("extrainfo"),
                    cpe,
                    probe: Some("nmap".into()),
                    soft: s
                        .attribute("conf")
                        .and_then(|c| c.parse::<u8>().ok())
                        .unwrap_or(10)
                        < 10,
                    evidence: Default::default(),
                    tls: None,
                    http: None,
                    notes: vec!["named by nmap (imported)".into()],
                    vulnerabilities: None,
                    applications: None,
                },
            });
        }
        hosts.push(host);
    }
    let started_at = start.unwrap_or_default();
    Ok(report(
        method,
        started_at,
        finished.unwrap_or(started_at),
        hosts,
    ))
}

/// Hosts and ports gathered from masscan's records, in order of appearance.
#[derive(Default)]
struct Gathered {
    by_ip: BTreeMap<IpAddr, HostReport>,
    order: Vec<IpAddr>,
    first: Option<i64>,
    last: Option<i64>,
}

impl Gathered {
    /// One port of `ip` (the first record of a port counts), seen at `seen` (Unix time).
    fn port(&mut self, ip: IpAddr, result: PortResult, seen: Option<i64>) {
        if let Some(t) = seen {
            self.first = Some(self.first.map_or(t, |f| f.min(t)));
            self.last = Some(self.last.map_or(t, |l| l.max(t)));
        }
        let order = &mut self.order;
        let host = self.by_ip.entry(ip).or_insert_with(|| {
            order.push(ip);
            new_host(ip, None)
        });
        if !host
            .ports
            .iter()
            .any(|x| x.port == result.port && x.protocol == result.protocol)
        {
            host.ports.push(result);
        }
    }

    fn report(mut self) -> ScanReport {
        let hosts = self
            .order
            .iter()
            .filter_map(|ip| self.by_ip.remove(ip))
            .collect();
        let started = self.first.unwrap_or(0);
        let finished = self.last.unwrap_or(started);
        report(ScanMethod::Syn, time_of(started), time_of(finished), hosts)
    }
}

/// A port as masscan reports it.
fn masscan_port(port: u16, protocol: Protocol, state: PortState, reason: Reason) -> PortResult {
    PortResult {
        port,
        protocol,
        state,
        reason,
        rtt_us: None,
        attempts: 1,
        at_ms: 0,
    }
}

/// masscan's JSON (`-oJ`): a list of `{ip, timestamp, ports: [{port, proto, status,
/// reason, ttl}]}`, one per answer (older versions leave a trailing comma and a
/// `{"finished": 1}` record, both accepted).
pub fn read_masscan_json(text: &str) -> Result<ScanReport, String> {
    // Older masscan writes `,\n]` at the end: drop a comma before the closing bracket.
    let trimmed = text.trim_end();
    let fixed = match trimmed.strip_suffix(']') {
        Some(body) => format!("{}]", body.trim_end().trim_end_matches(',')),
        None => trimmed.to_owned(),
    };
    let records: Vec<serde_json::Value> =
        serde_json::from_str(&fixed).map_err(|e| format!("line {}: {e}", e.line()))?;
    let mut gathered = Gathered::default();
    for (i, r) in records.iter().enumerate() {
        let at = format!("record {}", i + 1);
        if r.get("finished").is_some() && r.get("ip").is_none() {
            continue;
        }
        let addr = r.get("ip").and_then(|v| v.as_str()).unwrap_or_default();
        let ip: IpAddr = addr
            .parse()
            .map_err(|_| format!("{at}: ip \"{addr}\" is not an IP address"))?;
        let seen = r
            .get("timestamp")
            .and_then(|v| v.as_str().and_then(|s| s.parse().ok()).or(v.as_i64()));
        for p in r
            .get("ports")
            .and_then(|v| v.as_array())
            .ok_or_else(|| format!("{at}: no ports"))?
        {
            let port = p
                .get("port")
                .and_then(|v| v.as_u64())
                .and_then(|n| u16::try_from(n).ok())
                .filter(|n| *n > 0)
                .ok_or_else(|| format!("{at}: port {:?} is not a port", p.get("port")))?;
            let protocol = protocol_of(
                p.get("proto").and_then(|v| v.as_str()).unwrap_or("tcp"),
                &at,
            )?;
            let status = p.get("status").and_then(|v| v.as_str()).unwrap_or("open");
            let state =
                PortState::from_name(status).ok_or_else(|| format!("{at}: status \"{status}\""))?;
            let reason = reason_of(
                p.get("reason").and_then(|v| v.as_str()).unwrap_or_default(),
                state,
            );
            gathered.port(ip, masscan_port(port, protocol, state, reason), seen);
        }
    }
    Ok(gathered.report())
}

/// masscan's list (`-oL`): `open tcp 80 198.18.0.2 1700000000` per line, `#` comments.
pub fn read_masscan_list(text: &str) -> Result<ScanReport, String> {
    let mut gathered = Gathered::default();
    for (n, l) in text.lines().enumerate() {
        let line = l.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let at = format!("line {}", n + 1);
        let words: Vec<&str> = line.split_whitespace().collect();
        let [status, proto, port, addr, rest @ ..] = words.as_slice() else {
            return Err(format!(
                "{at}: \"{line}\": expected `STATE PROTOCOL PORT ADDRESS TIMESTAMP`"
            ));
        };
        let state =
            PortState::from_name(status).ok_or_else(|| format!("{at}: state \"{status}\""))?;
        let protocol = protocol_of(proto, &at)?;
        let port: u16 = port
            .parse()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| format!("{at}: \"{port}\" is not a port"))?;
        let ip: IpAddr = addr
            .parse()
            .map_err(|_| format!("{at}: \"{addr}\" is not an IP address"))?;
        let seen = rest.first().and_then(|t| t.parse::<i64>().ok());
        let result = masscan_port(port, protocol, state, reason_of("", state));
        gathered.port(ip, result, seen);
    }
    Ok(gathered.report())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_are_recognised_and_errors_have_a_place() {
        assert_eq!(
            scan_format("<?xml version=\"1.0\"?>\n<nmaprun"),
            Some(ScanFormat::NmapXml)
        );
        assert_eq!(
            scan_format("#masscan\nopen tcp 80 198.18.0.2 1\n"),
            Some(ScanFormat::MasscanList)
        );
        assert_eq!(
            scan_format("[\n{\"ip\": \"198.18.0.2\"}\n]"),
            Some(ScanFormat::MasscanJson)
        );
        assert_eq!(scan_format("hello"), None);
        let err = read_scan("#masscan\nopen tcp 99999 198.18.0.2 1\n").expect_err("refused");
        assert!(err.contains("masscan list: line 2"), "{err}");
        let err = read_scan("#masscan\nopen tcp 80 host.example.test 1\n").expect_err("refused");
        assert!(err.contains("not an IP address"), "{err}");
        let err = read_scan("<nmaprun><host><status/></host></nmaprun>").expect_err("refused");
        assert!(
            err.contains("nmap XML: line 1: <host> has no IP <address>"),
            "{err}"
        );
    }

    #[test]
    fn masscan_json_with_a_trailing_comma_reads() {
        let text = "[\n{   \"ip\": \"198.18.0.2\",   \"timestamp\": \"1700000000\", \"ports\": [ {\"port\": 80, \"proto\": \"tcp\", \"status\": \"open\", \"reason\": \"syn-ack\", \"ttl\": 64} ] }\n,\n{   \"ip\": \"198.18.0.2\",   \"timestamp\": \"1700000001\", \"ports\": [ {\"port\": 22, \"proto\": \"tcp\", \"status\": \"open\", \"reason\": \"syn-ack\", \"ttl\": 64} ] }\n,\n]\n";
        let (format, r) = read_scan(text).expect("reads");
        assert_eq!(format, ScanFormat::MasscanJson);
        assert_eq!(r.hosts.len(), 1);
        let ports: Vec<u16> = r.hosts[0].ports.iter().map(|p| p.port).collect();
        assert_eq!(ports, [22, 80]);
        assert_eq!((r.finished_at - r.started_at).num_seconds(), 1);
    }
}
