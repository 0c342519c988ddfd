//! A scan report in nmap's XML output format (`nmaprun`, XML output version 1.05), so that
//! the tools that read nmap's XML — ndiff, DefectDojo, Faraday, IVRE, Metasploit — read
//! portgate's scans. Written from the format's public DTD; valid against it (a test runs
//! `xmllint --dtdvalid` on the output).
//!
//! What portgate knows and nmap's format has a place for is written there: states and
//! reasons, the service with product, version, extra information, `tunnel="ssl"` and CPE
//! from `--detect`, and the scan's timing. The application behind HTTP and its proven
//! exposures go into a `<script id="portgate-application">` element of the port, as nmap's
//! own scripts report what they find. The DTD requires `scanner="nmap"`; the comment at the
//! top and `args` say that portgate wrote it.

use std::collections::BTreeMap;
use std::fmt::Write;

use portgate_model::{
    Detection, HostReport, PortResult, PortState, Protocol, Reason, ScanMethod, ScanReport,
};

/// The XML output version written (nmap's current one).
pub const NMAP_XML_VERSION: &str = "1.05";

/// Non-open states with more ports than this are summarised in `<extraports>`, as nmap
/// does.
const LISTED_AT_MOST: usize = 25;

/// `text` as an XML attribute value or text content: markup characters escaped, characters XML 1.0 does
/// not allow replaced by U+FFFD (a scanned service may send anything).
fn attr(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' => out.push_str("&#9;"),
            '\n' => out.push_str("&#10;"),
            '\r' => out.push_str("&#13;"),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// nmap's name for the observation behind a state.
fn reason(reason: Reason, method: ScanMethod) -> &'static str {
    match reason {
        Reason::Reset if method == ScanMethod::Connect => "conn-refused",
        Reason::LocalRefusal => "conn-refused",
        other => other.as_str(),
    }
}

/// `22,80,8000-8010`: a sorted port list with runs as ranges.
fn port_ranges(ports: &[u16]) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut i = 0;
    while i < ports.len() {
        let start = ports[i];
        let mut end = start;
        while i + 1 < ports.len() && ports[i + 1] == end.saturating_add(1) {
            i += 1;
            end = ports[i];
        }
        parts.push(if start == end {
            start.to_string()
        } else {
            format!("{start}-{end}")
        });
        i += 1;
    }
    parts.join(",")
}

/// The `<service>` of a port: what detection found (`method="probed"`), else the port
/// number's usual service (`method="table"`).
fn service(out: &mut String, port: &PortResult, d: Option<&Detection>) {
    match d.and_then(|d| d.service.as_deref().map(|name| (d, name))) {
        Some((d, name)) => {
            let name = match name {
                "https" => "http",
                other => other,
            };
            let _ = write!(out, "<service name=\"{}\"", attr(name));
            for (key, value) in [
                ("product", d.product.as_deref()),
                ("version", d.version.as_deref()),
                ("extrainfo", d.info.as_deref()),
            ] {
                if let Some(v) = value {
                    let _ = write!(out, " {key}=\"{}\"", attr(v));
                }
            }
            if d.tls.as_ref().is_some_and(|t| t.starttls.is_none()) {
                out.push_str(" tunnel=\"ssl\"");
            }
            let conf = if d.soft { 3 } else { 10 };
            let _ = write!(out, " method=\"probed\" conf=\"{conf}\"");
            match &d.cpe {
                Some(cpe) => {
                    let _ = write!(out, "><cpe>{}</cpe></service>", attr(cpe));
                }
                None => out.push_str("/>"),
            }
        }
        None => {
            if let Some(name) = portgate_model::service_name(port.protocol, port.port) {
                let _ = write!(
                    out,
                    "<service name=\"{}\" method=\"table\" conf=\"3\"/>",
                    attr(name)
                );
            }
        }
    }
}

/// The application behind HTTP, as a script's output and its structured table.
fn application_script(out: &mut String, detected: Option<&Detection>) {
    let Some(apps) = detected.and_then(|d| d.applications.as_ref()) else {
        return;
    };
    for app in &apps.found {
        let mut summary = app.name.clone();
        if let Some(v) = &app.version {
            summary.push_str(&format!(" {v}"));
        }
        for e in &app.exposures {
            summary.push_str(&format!(
                "\n  {}: {} ({} -> {})",
                e.kind, e.title, e.proof.request, e.proof.status
            ));
        }
        let _ = write!(
            out,
            "<script id=\"portgate-application\" output=\"{}\"><elem key=\"id\">{}</elem><elem key=\"name\">{}</elem><elem key=\"category\">{}</elem>",
            attr(&summary),
            attr(&app.id),
            attr(&app.name),
            attr(&app.category)
        );
        if let Some(v) = &app.version {
            let _ = write!(out, "<elem key=\"version\">{}</elem>", attr(v));
        }
        if !app.exposures.is_empty() {
            out.push_str("<table key=\"exposures\">");
            for e in &app.exposures {
                let _ = write!(
                    out,
                    "<table><elem key=\"check\">{}</elem><elem key=\"kind\">{}</elem><elem key=\"title\">{}</elem><elem key=\"request\">{}</elem><elem key=\"status\">{}</elem></table>",
                    attr(&e.check),
                    attr(e.kind.as_str()),
                    attr(&e.title),
                    attr(&e.proof.request),
                    e.proof.status
                );
            }
            out.push_str("</table>");
        }
        out.push_str("</script>");
    }
}

fn host(out: &mut String, report: &ScanReport, host: &HostReport) {
    let start = report.started_at.timestamp();
    let end = report.finished_at.timestamp();
    let _ = writeln!(
        out,
        "<host starttime=\"{start}\" endtime=\"{end}\"><status state=\"up\" reason=\"user-set\" reason_ttl=\"0\"/>"
    );
    let kind = if host.ip.is_ipv4() { "ipv4" } else { "ipv6" };
    let _ = writeln!(out, "<address addr=\"{}\" addrtype=\"{kind}\"/>", host.ip);
    out.push_str("<hostnames>\n");
    if let Some(name) = &host.hostname {
        let _ = writeln!(out, "<hostname name=\"{}\" type=\"user\"/>", attr(name));
    }
    out.push_str("</hostnames>\n<ports>");
    // Non-open states with many ports are summarised, as nmap does.
    let mut by_state: BTreeMap<(&str, Protocol), Vec<&PortResult>> = BTreeMap::new();
    for p in &host.ports {
        by_state
            .entry((p.state.as_str(), p.protocol))
            .or_default()
            .push(p);
    }
    let mut summarised: Vec<(PortState, Protocol)> = Vec::new();
    for ((_, protocol), ports) in &by_state {
        let state = ports[0].state;
        if state != PortState::Open && ports.len() > LISTED_AT_MOST {
            summarised.push((state, *protocol));
            let mut reasons: BTreeMap<&str, usize> = BTreeMap::new();
            for p in ports {
                *reasons.entry(reason(p.reason, report.method)).or_default() += 1;
            }
            let _ = writeln!(
                out,
                "<extraports state=\"{}\" count=\"{}\">",
                state.as_str(),
                ports.len()
            );
            for (why, count) in reasons {
                let _ = writeln!(
                    out,
                    "<extrareasons reason=\"{why}\" count=\"{count}\" proto=\"{}\"/>",
                    protocol.as_str()
                );
            }
            out.push_str("</extraports>\n");
        }
    }
    for p in &host.ports {
        if summarised.contains(&(p.state, p.protocol)) {
            continue;
        }
        let detected = host.service_on(p.protocol, p.port);
        let _ = write!(
            out,
            "<port protocol=\"{}\" portid=\"{}\"><state state=\"{}\" reason=\"{}\" reason_ttl=\"0\"/>",
            p.protocol.as_str(),
            p.port,
            p.state.as_str(),
            reason(p.reason, report.method)
        );
        service(out, p, detected);
        application_script(out, detected);
        out.push_str("</port>\n");
    }
    out.push_str("</ports>\n");
    // Timing: the round trips measured on this host, in microseconds, as nmap writes them.
    let rtts: Vec<u64> = host
        .ports
        .iter()
        .filter_map(|p| p.rtt_us.map(u64::from))
        .collect();
    if !rtts.is_empty() {
        let n = rtts.len() as u64;
        let mean = rtts.iter().sum::<u64>() / n;
        let var = rtts.iter().map(|r| r.abs_diff(mean)).sum::<u64>() / n;
        let to = (mean + 4 * var).max(100_000);
        let _ = writeln!(out, "<times srtt=\"{mean}\" rttvar=\"{var}\" to=\"{to}\"/>");
    }
    out.push_str("</host>\n");
}

/// The report in nmap's XML format; `args` is the command line that ran the scan.
pub fn nmap_xml(report: &ScanReport, args: &str) -> String {
    let mut out = String::new();
    let start = report.started_at.timestamp();
    let startstr = report.started_at.format("%a %b %e %H:%M:%S %Y").to_string();
    out.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!DOCTYPE nmaprun>\n");
    let _ = writeln!(
        out,
        "<!-- portgate {} scan initiated {startstr} as: {} -->",
        env!("CARGO_PKG_VERSION"),
        args.replace("--", "- -")
    );
    let _ = writeln!(
        out,
        "<nmaprun scanner=\"nmap\" args=\"{}\" start=\"{start}\" startstr=\"{}\" version=\"{}\" xmloutputversion=\"{NMAP_XML_VERSION}\">",
        attr(args),
        attr(&startstr),
        env!("CARGO_PKG_VERSION")
    );
    for protocol in [Protocol::Tcp, Protocol::Udp] {
        let mut ports: Vec<u16> = report
            .hosts
            .iter()
            .flat_map(|h| h.ports.iter())
            .filter(|p| p.protocol == protocol)
            .map(|p| p.port)
            .collect();
        ports.sort_unstable();
        ports.dedup();
        if ports.is_empty() {
            continue;
        }
        let kind = match (protocol, report.method) {
            (Protocol::Udp, _) => "udp",
            (Protocol::Tcp, ScanMethod::Syn) => "syn",
            (Protocol::Tcp, _) => "connect",
        };
        let _ = writeln!(
            out,
            "<scaninfo type=\"{kind}\" protocol=\"{}\" numservices=\"{}\" services=\"{}\"/>",
            protocol.as_str(),
            ports.len(),
            port_ranges(&ports)
        );
    }
    out.push_str("<verbose level=\"0\"/>\n<debugging level=\"0\"/>\n");
    for h in &report.hosts {
        host(&mut out, report, h);
    }
    let end = report.finished_at.timestamp();
    let elapsed = (report.finished_at - report.started_at)
        .to_std()
        .unwrap_or_default()
        .as_secs_f64();
    let endstr = report
        .finished_at
        .format("%a %b %e %H:%M:%S %Y")
        .to_string();
    let hosts = report.hosts.len();
    let (exit, error) = match report.status {
        portgate_model::ScanStatus::Completed => ("success", String::new()),
        portgate_model::ScanStatus::Incomplete => (
            "error",
            format!(
                " errormsg=\"{}\"",
                attr(&format!(
                    "incomplete: {}",
                    report.incomplete_reasons.join("; ")
                ))
            ),
        ),
    };
    let _ = write!(
        out,
        "<runstats><finished time=\"{end}\" timestr=\"{}\" summary=\"{}\" elapsed=\"{elapsed:.2}\" exit=\"{exit}\"{error}/><hosts up=\"{hosts}\" down=\"0\" total=\"{hosts}\"/>\n</runstats>\n</nmaprun>\n",
        attr(&endstr),
        attr(&format!(
            "portgate done at {endstr}; {hosts} IP address{} ({hosts} host{} up) scanned in {elapsed:.2} seconds",
            if hosts == 1 { "" } else { "es" },
            if hosts == 1 { "" } else { "s" }
        )),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_and_escapes() {
        assert_eq!(port_ranges(&[22, 80, 81, 82, 443]), "22,80-82,443");
        assert_eq!(port_ranges(&[]), "");
        assert_eq!(
            attr("a<b>&\"c'\u{1b}[31m\n"),
            "a&lt;b&gt;&amp;&quot;c&apos;\u{FFFD}[31m&#10;"
        );
    }
}
