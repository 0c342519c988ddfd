//! The decision matrix: a scan report (and the previous one, when there is history)
//! against the manifest, into findings and an outcome.

use crate::drift::{Change, ChangeKind, host_diff};
use crate::manifest::{ApprovedPort, Asset, Manifest, Mode, OnMissing, TlsPolicy, Unlisted};
use crate::risk;
use chrono::NaiveDate;
use portgate_model::{
    Detection, Finding, HostReport, ManifestLocation, Outcome, PortResult, PortState, Protocol,
    Reason, Rule, ScanReport, ScanStatus, Severity, TargetSpec, service_name,
};
use serde::Serialize;
use serde_saphyr::Spanned;
use std::collections::BTreeMap;

/// What a check concluded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Evaluation {
    /// Every finding, failures first.
    pub findings: Vec<Finding>,
    /// The decision: `fail` when any finding fails, else `inconclusive` when the scan
    /// could not conclude somewhere, else `warn` when any finding warns, else `pass`.
    pub outcome: Outcome,
    /// `enforce` or `monitor`, as the manifest (or the command line) said.
    pub monitor: bool,
}

impl Evaluation {
    /// Findings with an outcome.
    pub fn with_outcome(&self, outcome: Outcome) -> impl Iterator<Item = &Finding> {
        self.findings.iter().filter(move |f| f.outcome == outcome)
    }
}

/// The asset a report's target belongs to, with where it is written.
struct AssetRef<'a> {
    asset: &'a Asset,
    spanned: &'a Spanned<Asset>,
}

/// Evaluates `report` against `manifest` for environment `env` (all assets when none).
///
/// A host whose target no selected asset lists is checked against the global approved list
/// alone. `previous` (an earlier report of the same targets) adds the changes since then.
/// The day of the scan (`report.started_at`) decides whether approvals have expired, so the
/// result depends on nothing but the arguments.
pub fn evaluate(
    manifest: &Manifest,
    env: Option<&str>,
    report: &ScanReport,
    previous: Option<&ScanReport>,
) -> Evaluation {
    let today = report.started_at.date_naive();
    let mut by_target: BTreeMap<String, AssetRef<'_>> = BTreeMap::new();
    for spanned in manifest.assets_in(env) {
        for target in &spanned.value.targets {
            by_target
                .entry(target.value.0.to_string())
                .or_insert(AssetRef {
                    asset: &spanned.value,
                    spanned,
                });
        }
    }
    let asset_of = |target: &str| -> Option<&AssetRef<'_>> {
        let normal = target
            .parse::<TargetSpec>()
            .map(|t| t.to_string())
            .unwrap_or_else(|_| target.to_string());
        by_target.get(&normal)
    };

    let mut findings = Vec::new();
    for target in &report.targets {
        if let Some(error) = &target.error {
            let owner = asset_of(&target.input);
            findings.push(Finding {
                rule: Rule::ScanInconclusive,
                outcome: Outcome::Inconclusive,
                severity: Severity::Medium,
                message: format!("{} could not be scanned: {error}", target.input),
                ..base(manifest, owner, &target.input, None)
            });
        }
    }
    for host in &report.hosts {
        let owner = asset_of(&host.target);
        let previous_host = previous.and_then(|p| {
            p.hosts
                .iter()
                .find(|h| h.ip == host.ip && h.target == host.target)
        });
        let network = report
            .enrichment
            .as_ref()
            .and_then(|e| e.network_of(host.ip));
        evaluate_host(
            manifest,
            owner,
            host,
            previous_host,
            network,
            today,
            &mut findings,
        );
    }
    // The registration of each host name's domain, when it was looked up (`--enrich`).
    let warn_days = i64::from(manifest.defaults.domain_expiry_warn_days);
    for t in report.enrichment.iter().flat_map(|e| &e.targets) {
        let Some(reg) = &t.registration else { continue };
        let (Some(days), Some(expires)) = (reg.days_left, reg.expires) else {
            continue;
        };
        if days > warn_days {
            continue;
        }
        let owner = asset_of(&t.name);
        let when = if days < 0 {
            format!("expired {} days ago", -days)
        } else {
            format!("expires in {days} days")
        };
        findings.push(Finding {
            rule: Rule::DomainExpiring,
            outcome: Outcome::Warn,
            severity: if days < 0 {
                Severity::High
            } else {
                Severity::Medium
            },
            message: format!(
                "the domain {} of {} {when} ({}; {} via {}{})",
                reg.domain,
                t.name,
                expires.format("%Y-%m-%d"),
                reg.source,
                reg.server,
                reg.registrar
                    .as_deref()
                    .map(|r| format!(", registrar {r}"))
                    .unwrap_or_default()
            ),
            ..base(manifest, owner, &t.name, None)
        });
    }
    if report.status == ScanStatus::Incomplete
        && !findings.iter().any(|f| f.outcome == Outcome::Inconclusive)
    {
        for reason in &report.incomplete_reasons {
            findings.push(Finding {
                rule: Rule::ScanInconclusive,
                outcome: Outcome::Inconclusive,
                severity: Severity::Medium,
                message: format!("the scan is incomplete: {reason}"),
                ..base(manifest, None, "scan", None)
            });
        }
    }

    // Failures below the threshold do not fail the check; they stay visible as warnings.
    let threshold = manifest.defaults.fail_on.severity();
    for finding in &mut findings {
        if finding.outcome == Outcome::Fail && finding.severity < threshold {
            finding.outcome = Outcome::Warn;
            finding.message = format!(
                "{} (severity {} is below the fail-on threshold {threshold})",
                finding.message, finding.severity
            );
        }
    }
    // A target without a baseline of its own (a review app) blocks no one when the manifest
    // says so: its failures are warnings, for review.
    if manifest.defaults.unlisted == Unlisted::Review {
        for finding in &mut findings {
            if finding.outcome == Outcome::Fail && finding.asset.is_none() {
                finding.outcome = Outcome::Warn;
                finding.message = format!(
                    "{} (a target no asset lists: for review, not a failure)",
                    finding.message
                );
            }
        }
    }
    crate::approve::propose_fixes(manifest, report, &mut findings);
    findings.sort_by(|a, b| {
        rank(a.outcome)
            .cmp(&rank(b.outcome))
            .then(b.severity.cmp(&a.severity))
            .then(a.target.cmp(&b.target))
            .then(a.ip.cmp(&b.ip))
            .then(a.protocol.cmp(&b.protocol))
            .then(a.port.cmp(&b.port))
            .then(a.rule.cmp(&b.rule))
    });
    let any = |o| findings.iter().any(|f: &Finding| f.outcome == o);
    let outcome = if any(Outcome::Fail) {
        Outcome::Fail
    } else if any(Outcome::Inconclusive) || report.status == ScanStatus::Incomplete {
        Outcome::Inconclusive
    } else if any(Outcome::Warn) {
        Outcome::Warn
    } else {
        Outcome::Pass
    };
    Evaluation {
        findings,
        outcome,
        monitor: manifest.mode == Mode::Monitor,
    }
}

fn rank(outcome: Outcome) -> u8 {
    match outcome {
        Outcome::Fail => 0,
        Outcome::Inconclusive => 1,
        Outcome::Warn => 2,
        Outcome::Pass => 3,
    }
}

/// A finding about `target` (and `host`), with the asset's owner and location filled in.
fn base(
    manifest: &Manifest,
    owner: Option<&AssetRef<'_>>,
    target: &str,
    host: Option<&HostReport>,
) -> Finding {
    Finding {
        rule: Rule::Approved,
        outcome: Outcome::Pass,
        severity: Severity::Info,
        target: target.to_string(),
        ip: host.map(|h| h.ip),
        protocol: None,
        port: None,
        state: None,
        service: None,
        product: None,
        version: None,
        asset: owner.map(|o| o.asset.name.clone()),
        owner: owner.and_then(|o| o.asset.owner.clone()),
        escalation: owner.and_then(|o| o.asset.escalation.clone()),
        message: String::new(),
        location: owner.map(|o| manifest.location(o.spanned)),
        references: Vec::new(),
        proof: None,
        fix: None,
    }
}

fn evaluate_host(
    manifest: &Manifest,
    owner: Option<&AssetRef<'_>>,
    host: &HostReport,
    previous: Option<&HostReport>,
    network: Option<&portgate_model::AddressNetwork>,
    today: NaiveDate,
    findings: &mut Vec<Finding>,
) {
    let host_finding = || base(manifest, owner, &host.target, Some(host));
    let asset = owner.map(|o| o.asset);

    if let Some(asset) = asset
        && !asset.expected_network.is_empty()
        && let Some(f) = outside_expected_network(&asset.expected_network, host, network)
    {
        findings.push(f.with(host_finding()));
    }

    let unreachable = !host.ports.is_empty()
        && host
            .ports
            .iter()
            .all(|p| matches!(p.reason, Reason::HostUnreachable | Reason::NetUnreachable));
    if unreachable {
        findings.push(Finding {
            rule: Rule::ScanInconclusive,
            outcome: Outcome::Inconclusive,
            severity: Severity::Medium,
            message: format!(
                "{} ({}) is unreachable: every port answered host or network unreachable",
                host.target, host.ip
            ),
            ..host_finding()
        });
        return;
    }
    let not_scanned = u64::from(host.ports_requested).saturating_sub(host.ports.len() as u64);
    if not_scanned > 0 {
        findings.push(Finding {
            rule: Rule::ScanInconclusive,
            outcome: Outcome::Inconclusive,
            severity: Severity::Medium,
            message: format!(
                "{} of {} ports of {} ({}) were not scanned (the deadline was reached)",
                not_scanned, host.ports_requested, host.target, host.ip
            ),
            ..host_finding()
        });
    }

    let role = asset.and_then(|a| a.tags.get("role")).map(String::as_str);
    let on_missing = asset
        .and_then(|a| a.on_missing)
        .unwrap_or(manifest.defaults.on_missing);
    let own: &[Spanned<ApprovedPort>] = asset.map_or(&[], |a| a.approved.as_slice());

    // What changed since the previous scan of this address: the drift engine's verdict,
    // without flap control (one scan to the next).
    let changed = previous.map(|p| host_diff(p, host)).unwrap_or_default();
    for port in &host.ports {
        let approval = own
            .iter()
            .find(|a| matches_port(&a.value, port) && a.value.holds_on(host.ip))
            .map(|a| (a, true))
            .or_else(|| {
                manifest
                    .approved
                    .iter()
                    .find(|a| matches_port(&a.value, port) && a.value.holds_on(host.ip))
                    .map(|a| (a, false))
            });
        let detected = host.service_on(port.protocol, port.port);
        let port_finding = |approval: Option<&Spanned<ApprovedPort>>| {
            let mut f = host_finding();
            f.protocol = Some(port.protocol);
            f.port = Some(port.port);
            f.state = Some(port.state);
            f.service = detected
                .and_then(|d| d.service.clone())
                .or_else(|| service_name(port.protocol, port.port).map(str::to_string));
            f.product = detected.and_then(|d| d.product.clone());
            f.version = detected.and_then(|d| d.version.clone());
            if let Some(approval) = approval {
                f.location = Some(manifest.location(approval));
            }
            f
        };
        match port.state {
            PortState::Open => {}
            PortState::Closed | PortState::Filtered => {
                // An approved service that is not reachable (only the asset's own
                // approvals: the global list does not say every host runs everything).
                if let Some((approval, true)) = approval
                    && on_missing != OnMissing::Ignore
                {
                    findings.push(Finding {
                        rule: Rule::ApprovedPortMissing,
                        outcome: if on_missing == OnMissing::Fail {
                            Outcome::Fail
                        } else {
                            Outcome::Warn
                        },
                        severity: Severity::Medium,
                        message: format!(
                            "approved port {}/{} is {} ({})",
                            port.port, port.protocol, port.state, port.reason
                        ),
                        ..port_finding(Some(approval))
                    });
                }
                continue;
            }
            // UDP without an answer: an open service and a filter look the same, so
            // neither an exposure nor a missing service can be claimed.
            PortState::OpenFiltered => continue,
        }

        let shown_service = port_finding(None).service;
        let mut risk = risk::assess(
            detected.and_then(|d| d.service.as_deref()),
            detected.and_then(|d| d.product.as_deref()),
            port.protocol,
            port.port,
            role,
        );
        let applications: &[portgate_model::Application] = detected
            .and_then(|d| d.applications.as_ref())
            .map_or(&[], |a| a.found.as_slice());
        // The application behind HTTP is what is exposed: its risk when it is higher.
        for app in applications {
            let app_risk = risk::assess_application(&app.id);
            if app_risk.severity > risk.severity {
                risk = app_risk;
            }
        }
        let what = describe(port, detected, shown_service.as_deref());
        match approval {
            None => findings.push(Finding {
                rule: Rule::UnapprovedPort,
                outcome: Outcome::Fail,
                severity: risk.severity,
                message: format!(
                    "{what} is open and not approved ({} risk: {})",
                    risk.severity, risk.category
                ),
                ..port_finding(None)
            }),
            Some((approval, _)) => {
                let a = &approval.value;
                let expected_service = a.service.as_deref();
                let detected_service = detected.and_then(|d| d.service.as_deref());
                if let Some(until) = a.approved_until
                    && until.0 < today
                {
                    findings.push(Finding {
                        rule: Rule::ApprovalExpired,
                        outcome: Outcome::Fail,
                        severity: risk.severity.max(Severity::Medium),
                        message: format!(
                            "{what} is open and its approval expired on {until} ({})",
                            a.justification
                        ),
                        ..port_finding(Some(approval))
                    });
                } else if let Some(expected) = a.application.as_deref()
                    && !applications.is_empty()
                    && !applications
                        .iter()
                        .any(|app| a.approves_application(&app.id))
                {
                    let found: Vec<&str> =
                        applications.iter().map(|app| app.name.as_str()).collect();
                    findings.push(Finding {
                        rule: Rule::ServiceMismatch,
                        outcome: Outcome::Fail,
                        severity: risk.severity.max(Severity::Medium),
                        message: format!(
                            "{what} is approved for the application {expected}, but {} answers there",
                            found.join(", ")
                        ),
                        ..port_finding(Some(approval))
                    });
                } else if let (Some(expected), Some(found)) = (expected_service, detected_service)
                    && !same_service(expected, found)
                {
                    findings.push(Finding {
                        rule: Rule::ServiceMismatch,
                        outcome: Outcome::Fail,
                        severity: risk.severity.max(Severity::Medium),
                        message: format!(
                            "{what} is approved for {expected}, but {found} answers there"
                        ),
                        ..port_finding(Some(approval))
                    });
                } else {
                    findings.push(Finding {
                        rule: Rule::Approved,
                        outcome: Outcome::Pass,
                        severity: Severity::Info,
                        message: format!("{what} is approved: {}", a.justification),
                        ..port_finding(Some(approval))
                    });
                }
                if a.tls == TlsPolicy::Required
                    && port.protocol == Protocol::Tcp
                    && detected.is_some_and(|d| d.tls.is_none())
                {
                    findings.push(Finding {
                        rule: Rule::TlsRequired,
                        outcome: Outcome::Fail,
                        severity: Severity::High,
                        message: format!("{what} must speak TLS (tls: required) and does not"),
                        ..port_finding(Some(approval))
                    });
                }
            }
        }

        if let Some(tls) = detected.and_then(|d| d.tls.as_ref()) {
            let approval = approval.map(|(a, _)| a);
            let expiry = tls
                .not_after
                .as_deref()
                .map(|n| format!(" (not after {n})"))
                .unwrap_or_default();
            if !tls.valid {
                let reasons = if tls.reasons.is_empty() {
                    "verification failed".to_string()
                } else {
                    tls.reasons_text()
                };
                findings.push(Finding {
                    rule: Rule::TlsInvalid,
                    outcome: Outcome::Fail,
                    severity: Severity::High,
                    message: format!(
                        "{what}: the certificate for \"{}\" is invalid: {reasons}{expiry}",
                        tls.subject
                    ),
                    ..port_finding(approval)
                });
            } else if let Some(days) = tls.days_left
                && days <= i64::from(manifest.defaults.tls_expiry_warn_days)
            {
                findings.push(Finding {
                    rule: Rule::TlsExpiring,
                    outcome: Outcome::Warn,
                    severity: Severity::Medium,
                    message: format!(
                        "{what}: the certificate for \"{}\" expires in {days} days{expiry}",
                        tls.subject
                    ),
                    ..port_finding(approval)
                });
            }
        }

        if let Some(v) = detected.and_then(|d| d.vulnerabilities.as_ref())
            && let Some(f) = known_vulnerability(&manifest.defaults, v, &what)
        {
            findings.push(f.with(port_finding(approval.map(|(a, _)| a))));
        }

        for app in applications {
            let approval = approval.map(|(a, _)| a);
            for c in application_findings(app, approval.map(|a| &a.value), &what) {
                findings.push(c.with(port_finding(approval)));
            }
        }

        if let Some(change) = described_changes(&changed, port) {
            findings.push(Finding {
                rule: Rule::ChangedSinceLastScan,
                outcome: Outcome::Warn,
                severity: Severity::Low,
                message: format!("{what} changed since the last scan: {change}"),
                ..port_finding(approval.map(|(a, _)| a))
            });
        }
    }
}

/// A rule's conclusion, completed by the finding of its host or port.
struct Conclusion {
    rule: Rule,
    outcome: Outcome,
    severity: Severity,
    message: String,
    references: Vec<String>,
    proof: Option<portgate_model::Proof>,
}

impl Conclusion {
    fn with(self, base: Finding) -> Finding {
        Finding {
            rule: self.rule,
            outcome: self.outcome,
            severity: self.severity,
            message: self.message,
            references: self.references,
            proof: self.proof,
            ..base
        }
    }
}

/// `outside-expected-network`: an address in none of the asset's expected networks (CIDR
/// ranges; AS numbers and organisations as the imported network tables give them). When
/// only AS numbers or organisations could place it and no table knows the address, it is
/// a warning that the check could not be made.
fn outside_expected_network(
    expected: &[crate::manifest::ExpectedNetwork],
    host: &HostReport,
    network: Option<&portgate_model::AddressNetwork>,
) -> Option<Conclusion> {
    use crate::manifest::ExpectedNetwork as N;
    let owners = network.map(|n| n.owners.as_slice()).unwrap_or_default();
    let inside = expected.iter().any(|e| match e {
        N::Cidr(net) => net.contains(&host.ip),
        N::Asn(asn) => owners.iter().any(|o| o.asns.contains(asn)),
        N::Org(org) => owners.iter().any(|o| {
            o.org
                .as_deref()
                .is_some_and(|x| x.eq_ignore_ascii_case(org))
        }),
    });
    if inside {
        return None;
    }
    let listed: Vec<String> = expected.iter().map(ToString::to_string).collect();
    let by_owner = expected.iter().any(|e| !matches!(e, N::Cidr(_)));
    if owners.is_empty() && by_owner {
        return Some(Conclusion {
            rule: Rule::OutsideExpectedNetwork,
            outcome: Outcome::Warn,
            severity: Severity::Medium,
            message: format!(
                "{} resolved to {}, which no imported network table places: it cannot be compared with its expected network {} (import one with `portgate data import asn`)",
                host.target,
                host.ip,
                listed.join(", ")
            ),
            references: Vec::new(),
            proof: None,
        });
    }
    let found: Vec<String> = owners
        .iter()
        .map(|o| {
            let asns: Vec<String> = o.asns.iter().map(|a| format!("AS{a}")).collect();
            let mut text = asns.join("/");
            if let Some(org) = &o.org {
                text.push_str(&format!(" {org}"));
            }
            if let Some(country) = &o.country {
                text.push_str(&format!(", {country}"));
            }
            text
        })
        .collect();
    let found = if found.is_empty() {
        String::new()
    } else {
        format!(" ({})", found.join("; "))
    };
    Some(Conclusion {
        rule: Rule::OutsideExpectedNetwork,
        outcome: Outcome::Fail,
        severity: Severity::High,
        message: format!(
            "{} resolved to {}{found}, outside its expected network {}",
            host.target,
            host.ip,
            listed.join(", ")
        ),
        references: Vec::new(),
        proof: None,
    })
}

/// The severity of a CVSS base score (the CVSS v3.1 qualitative scale).
fn cvss_severity(score: f64) -> Severity {
    if score >= 9.0 {
        Severity::Critical
    } else if score >= 7.0 {
        Severity::High
    } else if score >= 4.0 {
        Severity::Medium
    } else if score > 0.0 {
        Severity::Low
    } else {
        Severity::Info
    }
}

/// Matches at or above `min_confidence` fail at `fail_on_cvss` and warn below it (a match
/// without a score counts as below); less sure matches are left to the report.
fn known_vulnerability(
    defaults: &crate::manifest::Defaults,
    report: &portgate_model::VulnerabilityReport,
    what: &str,
) -> Option<Conclusion> {
    const NAMED: usize = 5;
    let floor = defaults.min_confidence.confidence();
    let threshold = defaults.fail_on_cvss.0;
    let mut counted: Vec<&portgate_model::Vulnerability> = report
        .matches
        .iter()
        .filter(|m| m.confidence.at_least(floor))
        .collect();
    if counted.is_empty() {
        return None;
    }
    counted.sort_by(|a, b| {
        b.score()
            .unwrap_or(0.0)
            .total_cmp(&a.score().unwrap_or(0.0))
            .then(a.confidence.cmp(&b.confidence))
            .then(a.id.cmp(&b.id))
    });
    let top = counted[0].score().unwrap_or(0.0);
    let failing = counted
        .iter()
        .filter(|m| m.score().is_some_and(|s| s >= threshold))
        .count();
    let named: Vec<String> = counted
        .iter()
        .take(NAMED)
        .map(|m| {
            let score = m
                .score()
                .map(|s| format!("CVSS {s:.1}, "))
                .unwrap_or_default();
            format!("{} ({score}{})", m.id, m.confidence)
        })
        .collect();
    let more = counted.len().saturating_sub(NAMED);
    let more = if more > 0 {
        format!(" and {more} more")
    } else {
        String::new()
    };
    let data: Vec<String> = report
        .data
        .iter()
        .map(|d| match d.date {
            Some(date) => format!("{} of {}", d.source, date.format("%Y-%m-%d")),
            None => d.source.clone(),
        })
        .collect();
    let (outcome, verdict) = if failing > 0 {
        (
            Outcome::Fail,
            format!("{failing} at or above CVSS {threshold:.1}"),
        )
    } else {
        (
            Outcome::Warn,
            format!("none at or above CVSS {threshold:.1}"),
        )
    };
    Some(Conclusion {
        rule: Rule::KnownVulnerability,
        outcome,
        severity: cvss_severity(top),
        message: format!(
            "{what} has {} known vulnerabilit{} ({verdict}): {}{more} (data: {})",
            counted.len(),
            if counted.len() == 1 { "y" } else { "ies" },
            named.join(", "),
            data.join(", ")
        ),
        references: counted.iter().map(|m| m.id.clone()).collect(),
        proof: None,
    })
}

/// The application rules on one application: its management interface reachable without
/// an approval naming it, and each proven exposure the approval does not accept (an
/// accepted one passes, for the record).
fn application_findings(
    app: &portgate_model::Application,
    approval: Option<&ApprovedPort>,
    what: &str,
) -> Vec<Conclusion> {
    let risk = risk::assess_application(&app.id);
    let named = match &app.version {
        Some(v) => format!("{} {v}", app.name),
        None => app.name.clone(),
    };
    let approved_app = approval.is_some_and(|a| a.approves_application(&app.id));
    let mut out = Vec::new();
    if app.category == "management-ui" && !approved_app {
        let how = app
            .evidence
            .first()
            .map(|e| format!(" (recognised by {e})"))
            .unwrap_or_default();
        out.push(Conclusion {
            rule: Rule::ExposedManagementUi,
            outcome: Outcome::Fail,
            severity: risk.severity,
            message: format!(
                "{what}: the management interface {named} is reachable{how}; if it must be, approve it with `application: {}`",
                app.id
            ),
            references: Vec::new(),
            proof: None,
        });
    }
    for e in &app.exposures {
        let accepted = approval.is_some_and(|a| a.accepts(&e.check, e.kind));
        let severity = if e.kind == portgate_model::ExposureKind::DefaultCredentials {
            Severity::Critical
        } else {
            risk.severity
        };
        let (outcome, severity, verdict) = if accepted {
            (Outcome::Pass, Severity::Info, " (accepted by the approval)")
        } else {
            (Outcome::Fail, severity, "")
        };
        out.push(Conclusion {
            rule: Rule::from(e.kind),
            outcome,
            severity,
            message: format!(
                "{what}: {named}: {} — proven by {} → {} [{}]{verdict}",
                e.title, e.proof.request, e.proof.status, e.check
            ),
            references: Vec::new(),
            proof: Some(e.proof.clone()),
        });
    }
    out
}

fn matches_port(approval: &ApprovedPort, port: &PortResult) -> bool {
    approval.port == port.port && Protocol::from(approval.protocol) == port.protocol
}

/// `6379/tcp (redis, Redis 7.0.15, no authentication)`.
fn describe(port: &PortResult, detected: Option<&Detection>, service: Option<&str>) -> String {
    let mut parts: Vec<String> = Vec::new();
    if let Some(service) = service {
        parts.push(service.to_string());
    }
    if let Some(d) = detected {
        match (&d.product, &d.version) {
            (Some(p), Some(v)) => parts.push(format!("{p} {v}")),
            (Some(p), None) => parts.push(p.clone()),
            (None, Some(v)) => parts.push(format!("version {v}")),
            (None, None) => {}
        }
        if let Some(info) = &d.info {
            parts.push(info.clone());
        }
    }
    if parts.is_empty() {
        format!("{}/{}", port.port, port.protocol)
    } else {
        format!("{}/{} ({})", port.port, port.protocol, parts.join(", "))
    }
}

/// Whether a detected service is the expected one (`https` is HTTP over TLS).
fn same_service(expected: &str, found: &str) -> bool {
    let norm = |s: &str| -> String {
        match s.to_ascii_lowercase().as_str() {
            "https" | "http" | "http-alt" | "https-alt" => "http".to_string(),
            "postgres" => "postgresql".to_string(),
            "mariadb" => "mysql".to_string(),
            other => other.to_string(),
        }
    };
    let (e, f) = (norm(expected), norm(found));
    // A TLS port whose inner protocol was not identified matches any TLS service.
    e == f || f == "tls" || (f == "ssl")
}

/// What changed between two detections of a port, if anything.
/// The service, version and certificate changes of `port` among `changes`, as
/// `version 0.9 -> 1.0; certificate issuer A -> B` (None when there are none). State
/// changes are left out: an open port's other findings already say what it is.
fn described_changes(changes: &[Change], port: &PortResult) -> Option<String> {
    let show = |v: &Option<String>| v.clone().unwrap_or_else(|| "none".into());
    let parts: Vec<String> = changes
        .iter()
        .filter(|c| c.protocol == port.protocol && c.port == port.port)
        .filter_map(|c| {
            let what = match c.kind {
                ChangeKind::ServiceChanged => "service",
                ChangeKind::ProductChanged => "product",
                ChangeKind::VersionChanged => "version",
                ChangeKind::CertificateIssuerChanged => "certificate issuer",
                ChangeKind::CertificateExpiryChanged => "certificate expiry",
                ChangeKind::CertificateChanged => "certificate",
                ChangeKind::TlsVerdictChanged => "certificate verdict",
                ChangeKind::NewlyOpen
                | ChangeKind::OpenToClosed
                | ChangeKind::OpenToFiltered
                | ChangeKind::StateChanged => return None,
            };
            Some(format!("{what} {} -> {}", show(&c.before), show(&c.after)))
        })
        .collect();
    (!parts.is_empty()).then(|| parts.join("; "))
}

/// Where a finding without an asset points: the top of the manifest.
pub fn manifest_top(manifest: &Manifest) -> ManifestLocation {
    ManifestLocation {
        file: manifest.source.clone(),
        line: 1,
        column: 1,
    }
}

/// One report from several scans of disjoint targets (one per port set): targets and
/// hosts in order, the earliest start, the latest end, incomplete when any part is.
pub fn merge_reports(parts: Vec<ScanReport>) -> Option<ScanReport> {
    let mut parts = parts.into_iter();
    let mut merged = parts.next()?;
    for part in parts {
        merged.started_at = merged.started_at.min(part.started_at);
        merged.finished_at = merged.finished_at.max(part.finished_at);
        if part.status == ScanStatus::Incomplete {
            merged.status = ScanStatus::Incomplete;
        }
        merged.incomplete_reasons.extend(part.incomplete_reasons);
        merged.targets.extend(part.targets);
        merged.hosts.extend(part.hosts);
        if merged.method != part.method && part.method != portgate_model::ScanMethod::Udp {
            merged.method = part.method;
        }
    }
    Some(merged)
}
