//! The human-readable table.

use crate::{RenderOptions, visible_ports};
use portgate_model::{ScanReport, ScanStatus, service_name};
use std::fmt::Write;

/// Renders the report as text for a terminal: per host a table of ports, then the
/// targets that failed and a summary line.
pub fn table(report: &ScanReport, options: RenderOptions) -> String {
    let mut out = String::new();
    let summary = report.summary();
    let seconds = report.duration().as_secs_f64();
    for host in &report.hosts {
        let name = match &host.hostname {
            Some(name) => format!("{name} ({})", host.ip),
            None => host.ip.to_string(),
        };
        let _ = writeln!(out, "{name}");
        if let Some(n) = report
            .enrichment
            .as_ref()
            .and_then(|e| e.network_of(host.ip))
        {
            network_line(&mut out, n);
        }
        let (ports, hidden) = visible_ports(host, options);
        if !ports.is_empty() {
            let detected = !host.services.is_empty();
            let _ = write!(
                out,
                "{:<10} {:<9} {:<16} {:<12} {:>9}",
                "PORT", "STATE", "SERVICE", "REASON", "RTT"
            );
            out.push_str(if detected { "  VERSION\n" } else { "\n" });
            for port in ports {
                let rtt = port
                    .rtt_us
                    .map(|us| format!("{:.1} ms", f64::from(us) / 1000.0))
                    .unwrap_or_else(|| "-".into());
                let found = host.service_on(port.protocol, port.port);
                let service = found
                    .and_then(|d| d.service.as_deref())
                    .or_else(|| service_name(port.protocol, port.port))
                    .unwrap_or("-");
                let _ = write!(
                    out,
                    "{:<10} {:<9} {:<16} {:<12} {:>9}",
                    format!("{}/{}", port.port, port.protocol),
                    port.state.as_str(),
                    service,
                    port.reason.as_str(),
                    rtt
                );
                if let Some(d) = found {
                    let words: Vec<String> = [&d.product, &d.version]
                        .into_iter()
                        .flatten()
                        .cloned()
                        .chain(d.info.as_ref().map(|i| format!("({i})")))
                        .collect();
                    let mut words = words;
                    if let Some(tls) = &d.tls {
                        let via = tls
                            .starttls
                            .as_ref()
                            .map(|_| "STARTTLS ")
                            .unwrap_or_default();
                        words.push(if tls.valid {
                            format!("[{via}{}, certificate valid]", tls.protocol)
                        } else {
                            format!(
                                "[{via}{}, certificate: {}]",
                                tls.protocol,
                                tls.reasons_text()
                            )
                        });
                    }
                    if let Some(http) = &d.http {
                        let mut text = format!("[HTTP {}", http.status);
                        if let Some(to) = http.redirect_url.as_ref().or(http.location.as_ref()) {
                            text.push_str(&format!(" -> {to}"));
                        }
                        if let Some(title) = &http.title {
                            text.push_str(&format!(" \"{title}\""));
                        }
                        text.push(']');
                        words.push(text);
                    }
                    if !words.is_empty() {
                        let _ = write!(out, "  {}", words.join(" "));
                    }
                }
                out.push('\n');
                if let Some(a) = found.and_then(|d| d.applications.as_ref()) {
                    application_lines(&mut out, a);
                }
                if let Some(v) = found.and_then(|d| d.vulnerabilities.as_ref()) {
                    vulnerability_lines(&mut out, v);
                }
            }
        }
        if !hidden.is_empty() {
            let parts: Vec<String> = hidden
                .iter()
                .map(|(state, count)| format!("{count} {state}"))
                .collect();
            let _ = writeln!(out, "Not shown: {}", parts.join(", "));
        }
        if let Some(tarpit) = host.tarpit {
            let _ = writeln!(
                out,
                "Tarpit: {} of {} TCP ports answered as open ({} of {} sampled completed a handshake); reported as filtered (tarpit)",
                tarpit.answered, tarpit.probed, tarpit.handshakes, tarpit.sampled
            );
        }
        let missing = (host.ports_requested as usize).saturating_sub(host.ports.len());
        if missing > 0 {
            let _ = writeln!(out, "Not scanned: {missing} ports");
        }
        out.push('\n');
    }
    for target in &report.targets {
        if !target.cname_chain.is_empty() {
            let _ = writeln!(
                out,
                "{} is an alias: {} -> {}",
                target.input,
                target.input,
                target.cname_chain.join(" -> ")
            );
        }
    }
    for t in report.enrichment.iter().flat_map(|e| &e.targets) {
        target_lines(&mut out, t);
    }
    let status = match report.status {
        ScanStatus::Completed => "completed",
        ScanStatus::Incomplete => "INCOMPLETE",
    };
    let open_filtered = if summary.open_filtered > 0 {
        format!(", {} open|filtered", summary.open_filtered)
    } else {
        String::new()
    };
    let _ = writeln!(
        out,
        "{} host{}, {} ports scanned: {} open, {} closed, {} filtered{open_filtered}; {status} in {seconds:.2} s",
        summary.hosts,
        if summary.hosts == 1 { "" } else { "s" },
        summary.ports_scanned,
        summary.open,
        summary.closed,
        summary.filtered,
    );
    for reason in &report.incomplete_reasons {
        let _ = writeln!(out, "Incomplete: {reason}");
    }
    out
}

/// The applications under a port's line: name, version, identifier and category, then each
/// proven exposure with the request that proved it, and the default logins tried.
fn application_lines(out: &mut String, a: &portgate_model::ApplicationReport) {
    for app in &a.found {
        let version = app
            .version
            .as_deref()
            .map(|v| format!(" {v}"))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "           application: {}{version} ({}, {})",
            app.name, app.id, app.category
        );
        for e in &app.exposures {
            let with = e
                .proof
                .credentials
                .as_deref()
                .map(|c| format!(" with {c}"))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "             ! {:<22} {}: {}{with} -> {}",
                e.kind.as_str(),
                e.check,
                e.proof.request,
                e.proof.status
            );
        }
        for t in app.credential_attempts.iter().filter(|t| !t.accepted) {
            let status = t
                .status
                .map(|s| s.to_string())
                .unwrap_or_else(|| "no answer".into());
            let _ = writeln!(
                out,
                "             default login {} refused: {} -> {status}",
                t.user, t.request
            );
        }
    }
}

/// The known vulnerabilities under a port's line: one line each, highest score first, then
/// what the distribution has fixed and the data's date.
fn vulnerability_lines(out: &mut String, v: &portgate_model::VulnerabilityReport) {
    const SHOWN: usize = 20;
    let data: Vec<String> = v
        .data
        .iter()
        .map(|d| match d.date {
            Some(date) => format!("{} {}", d.source, date.format("%Y-%m-%d")),
            None => d.source.clone(),
        })
        .collect();
    let data = data.join(", ");
    if v.matches.is_empty() {
        let _ = writeln!(out, "           no known vulnerabilities ({data})");
    }
    for m in v.matches.iter().take(SHOWN) {
        let score = m
            .score()
            .map(|s| format!("{s:.1}"))
            .unwrap_or_else(|| "-".into());
        let _ = writeln!(
            out,
            "           {:<16} {:>4}  {}",
            m.id, score, m.confidence
        );
    }
    if v.matches.len() > SHOWN {
        let _ = writeln!(
            out,
            "           ... and {} more (see the JSON report)",
            v.matches.len() - SHOWN
        );
    }
    if !v.cleared.is_empty() {
        let ids: Vec<&str> = v.cleared.iter().map(|c| c.id.as_str()).collect();
        let _ = writeln!(
            out,
            "           fixed by the distribution in {}: {}",
            v.cleared[0].package_version,
            ids.join(", ")
        );
    }
    if !v.matches.is_empty() {
        let where_from = v
            .distribution
            .as_ref()
            .map(|d| format!("{d}; "))
            .unwrap_or_default();
        let _ = writeln!(out, "           ({where_from}data: {data})");
    }
}

/// `Network: AS64500 EXAMPLE-NET, ZZ (asn:iptoasn, 2025-01-01)` under a host.
fn network_line(out: &mut String, n: &portgate_model::AddressNetwork) {
    if n.owners.is_empty() && n.registration.is_none() {
        let _ = writeln!(out, "Network: not in the imported tables");
    }
    if let Some(r) = &n.registration {
        let parts: Vec<&str> = [&r.name, &r.handle, &r.range, &r.country]
            .into_iter()
            .flatten()
            .map(String::as_str)
            .collect();
        let _ = writeln!(out, "Registered: {} (RDAP, {})", parts.join(", "), r.server);
    }
    for note in &n.notes {
        let _ = writeln!(out, "Note: {note}");
    }
    for o in &n.owners {
        let asns: Vec<String> = o.asns.iter().map(|a| format!("AS{a}")).collect();
        let date = o
            .date
            .map(|d| format!(", {}", d.format("%Y-%m-%d")))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "Network: {}{}{} ({}{date})",
            asns.join("/"),
            o.org
                .as_deref()
                .map(|x| format!(" {x}"))
                .unwrap_or_default(),
            o.country
                .as_deref()
                .map(|c| format!(", {c}"))
                .unwrap_or_default(),
            o.dataset
        );
    }
}

/// What `--enrich` found about a host name: its DNS records and its domain's registration.
fn target_lines(out: &mut String, t: &portgate_model::TargetContext) {
    let _ = writeln!(out, "{}:", t.name);
    if let Some(d) = &t.dns {
        for (kind, values) in [
            ("CNAME", &d.cname_chain),
            ("A", &d.a),
            ("AAAA", &d.aaaa),
            ("MX", &d.mx),
            ("NS", &d.ns),
            ("TXT", &d.txt),
            ("CAA", &d.caa),
        ] {
            if !values.is_empty() {
                let _ = writeln!(out, "  {kind:<6} {}", values.join(", "));
            }
        }
        let _ = writeln!(out, "  (DNS from {})", d.resolver);
    }
    if let Some(r) = &t.registration {
        let expires = match (r.expires, r.days_left) {
            (Some(e), Some(days)) => format!(", expires {} ({days} days)", e.format("%Y-%m-%d")),
            (Some(e), None) => format!(", expires {}", e.format("%Y-%m-%d")),
            _ => String::new(),
        };
        let _ = writeln!(
            out,
            "  domain {}: registrar {}{expires}; {} via {}",
            r.domain,
            r.registrar.as_deref().unwrap_or("unknown"),
            r.source,
            r.server
        );
        if !r.nameservers.is_empty() {
            let _ = writeln!(out, "  name servers {}", r.nameservers.join(", "));
        }
    }
    for note in &t.notes {
        let _ = writeln!(out, "  note: {note}");
    }
}
