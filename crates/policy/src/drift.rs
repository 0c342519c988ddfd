//! Drift: what changed on a target's ports between its scans, with flap control.
//!
//! [`drift`] walks a target's scans oldest to newest and follows, for every address, protocol
//! and port, the port's state and what detection found there (service, product, version,
//! certificate issuer, expiry and fingerprint, TLS verdict). A change is *confirmed* only
//! once the new value has been seen in enough consecutive scans ([`DriftOptions`]: by
//! default 1 for a port that opens, 2 for an open port that goes away, so one lost packet
//! pages nobody); until then it is *pending*. A value that comes back to the confirmed one
//! before that is a flap and is dropped.
//!
//! Pure functions of their arguments: no I/O, no clock.

pub use portgate_model::{Change, ChangeKind, ChangeStatus};
use portgate_model::{Detection, HostReport, PortState, Protocol, ScanReport};
use serde::Serialize;
use std::collections::BTreeMap;
use std::net::IpAddr;

/// How many consecutive observations confirm a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct DriftOptions {
    /// For a port that becomes open (default 1: exposure is reported at once).
    pub confirm_appeared: u32,
    /// For an open port that becomes closed or filtered, and other state changes (default 2).
    pub confirm_disappeared: u32,
    /// For a changed service, product, version, certificate or TLS verdict (default 1).
    pub confirm_changed: u32,
}

impl Default for DriftOptions {
    fn default() -> Self {
        DriftOptions {
            confirm_appeared: 1,
            confirm_disappeared: 2,
            confirm_changed: 1,
        }
    }
}

impl DriftOptions {
    /// Every change confirmed at once: a plain difference of two scans.
    pub fn immediate() -> Self {
        DriftOptions {
            confirm_appeared: 1,
            confirm_disappeared: 1,
            confirm_changed: 1,
        }
    }

    fn needed(&self, kind: ChangeKind) -> u32 {
        let n = match kind {
            ChangeKind::NewlyOpen => self.confirm_appeared,
            ChangeKind::OpenToClosed | ChangeKind::OpenToFiltered | ChangeKind::StateChanged => {
                self.confirm_disappeared
            }
            _ => self.confirm_changed,
        };
        n.max(1)
    }
}

/// What one scan showed of one port.
#[derive(Debug, Clone)]
struct Observation<'a> {
    target: &'a str,
    state: PortState,
    /// Detection's result, when detection ran on the port (it runs only on open ports).
    service: Option<&'a Detection>,
    detected: bool,
}

type Endpoint = (IpAddr, Protocol, u16);

/// The aspects of a port followed across scans, each with its own confirmation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Aspect {
    Service,
    Product,
    Version,
    Issuer,
    Expiry,
    Fingerprint,
    Verdict,
}

const DETECTION_ASPECTS: [Aspect; 7] = [
    Aspect::Service,
    Aspect::Product,
    Aspect::Version,
    Aspect::Issuer,
    Aspect::Expiry,
    Aspect::Fingerprint,
    Aspect::Verdict,
];

impl Aspect {
    fn kind(self) -> ChangeKind {
        match self {
            Aspect::Service => ChangeKind::ServiceChanged,
            Aspect::Product => ChangeKind::ProductChanged,
            Aspect::Version => ChangeKind::VersionChanged,
            Aspect::Issuer => ChangeKind::CertificateIssuerChanged,
            Aspect::Expiry => ChangeKind::CertificateExpiryChanged,
            Aspect::Fingerprint => ChangeKind::CertificateChanged,
            Aspect::Verdict => ChangeKind::TlsVerdictChanged,
        }
    }

    /// The value of a detection aspect; `None` when the scan says nothing about it (the
    /// port was not open there, or detection did not run).
    fn value(self, obs: &Observation<'_>) -> Option<Option<String>> {
        if obs.state != PortState::Open || !obs.detected {
            return None;
        }
        let svc = obs.service;
        let tls = svc.and_then(|s| s.tls.as_ref());
        Some(match self {
            Aspect::Service => svc.and_then(|s| s.service.clone()),
            Aspect::Product => svc.and_then(|s| s.product.clone()),
            Aspect::Version => svc.and_then(|s| s.version.clone()),
            Aspect::Issuer => tls.map(|t| t.issuer.clone()),
            Aspect::Expiry => tls.and_then(|t| t.not_after.clone()),
            Aspect::Fingerprint => tls
                .map(|t| t.fingerprint_sha256.clone())
                .filter(|f| !f.is_empty()),
            Aspect::Verdict => tls.map(|t| {
                if t.valid {
                    "valid".to_string()
                } else if t.reasons.is_empty() {
                    "invalid".to_string()
                } else {
                    format!("invalid ({})", t.reasons_text())
                }
            }),
        })
    }
}

/// The kind of a state change from `before` (none: never observed) to `after`.
fn state_change(before: Option<PortState>, after: PortState) -> Option<ChangeKind> {
    match (before, after) {
        (Some(b), a) if b == a => None,
        (_, PortState::Open) => Some(ChangeKind::NewlyOpen),
        // A port seen for the first time in a state other than open is no change.
        (None, _) => None,
        (Some(PortState::Open), PortState::Closed) => Some(ChangeKind::OpenToClosed),
        (Some(PortState::Open), PortState::Filtered | PortState::OpenFiltered) => {
            Some(ChangeKind::OpenToFiltered)
        }
        (Some(_), _) => Some(ChangeKind::StateChanged),
    }
}

/// Follows one value across scans: the confirmed value and a candidate that differs from it.
struct Tracker<T> {
    confirmed: Option<T>,
    /// The differing value, how many consecutive scans showed it, where it was first seen.
    candidate: Option<(T, u32, usize)>,
}

impl<T: Clone + PartialEq> Tracker<T> {
    fn new() -> Self {
        Tracker {
            confirmed: None,
            candidate: None,
        }
    }

    /// Feeds the value seen in scan `index`. `kind_of(before, after)` names the change
    /// (`None`: not a change worth following); `continues(candidate, new)` says whether `new`
    /// continues the candidate's run. Returns a confirmed change as (before, after,
    /// first_seen, kind).
    fn observe(
        &mut self,
        index: usize,
        value: T,
        kind_of: impl Fn(Option<&T>, &T) -> Option<ChangeKind>,
        needed: impl Fn(ChangeKind) -> u32,
        continues: impl Fn(&T, &T) -> bool,
    ) -> Option<(Option<T>, T, usize, ChangeKind)> {
        if self.confirmed.as_ref() == Some(&value) {
            // Back to the confirmed value before confirmation: a flap, forgotten.
            self.candidate = None;
            return None;
        }
        let Some(kind) = kind_of(self.confirmed.as_ref(), &value) else {
            // Not a change to follow (a port first seen closed): it becomes the baseline.
            self.confirmed = Some(value);
            self.candidate = None;
            return None;
        };
        let (count, first) = match &self.candidate {
            Some((c, n, first)) if continues(c, &value) => (n + 1, *first),
            _ => (1, index),
        };
        if count >= needed(kind) {
            let before = self.confirmed.replace(value.clone());
            self.candidate = None;
            Some((before, value, first, kind))
        } else {
            self.candidate = Some((value, count, first));
            None
        }
    }
}

/// Every change on the ports of `history` (one target's scans, oldest first): each change
/// confirmed after the first scan, with the scan that confirmed it, and the changes still
/// pending after the last.
///
/// A port counts as observed in a scan when the scan has a state for it; detection aspects
/// are observed when the port is open and detection ran on the host. A scan that did not
/// observe a port neither confirms nor breaks a run.
pub fn drift(history: &[ScanReport], options: &DriftOptions) -> Vec<Change> {
    let scans: Vec<&[HostReport]> = history.iter().map(|r| r.hosts.as_slice()).collect();
    drift_of(&scans, options)
}

/// Every difference between two scans of one address, confirmed at once: what the
/// evaluation of a check reports as changed since the last scan.
pub fn host_diff(before: &HostReport, after: &HostReport) -> Vec<Change> {
    drift_of(
        &[std::slice::from_ref(before), std::slice::from_ref(after)],
        &DriftOptions::immediate(),
    )
}

/// [`drift`] over the hosts of each scan.
fn drift_of(history: &[&[HostReport]], options: &DriftOptions) -> Vec<Change> {
    // Every observation of every port, by scan.
    let mut seen: BTreeMap<Endpoint, Vec<(usize, Observation<'_>)>> = BTreeMap::new();
    for (index, hosts) in history.iter().enumerate() {
        for host in hosts.iter() {
            let detected = !host.services.is_empty();
            for port in &host.ports {
                seen.entry((host.ip, port.protocol, port.port))
                    .or_default()
                    .push((
                        index,
                        Observation {
                            target: &host.target,
                            state: port.state,
                            service: host.service_on(port.protocol, port.port),
                            detected,
                        },
                    ));
            }
        }
    }
    let mut changes = Vec::new();
    for ((ip, protocol, port), observations) in &seen {
        let latest_target = observations
            .last()
            .map(|(_, o)| o.target.to_string())
            .unwrap_or_default();
        let change = |kind, status, before, after, first_seen, at| Change {
            kind,
            status,
            target: latest_target.clone(),
            ip: *ip,
            protocol: *protocol,
            port: *port,
            before,
            after,
            first_seen,
            at,
        };
        let last_index = history.len().saturating_sub(1);

        // The port's state. A port first seen after the first scan had no state before.
        let mut state = Tracker::<PortState>::new();
        if let Some((first, _)) = observations.first()
            && *first == 0
        {
            state.confirmed = observations.first().map(|(_, o)| o.state);
        }
        let state_continues = |cand: &PortState, new: &PortState| {
            cand == new || (*cand != PortState::Open && *new != PortState::Open)
        };
        for (index, obs) in observations {
            if let Some((before, after, first, kind)) = state.observe(
                *index,
                obs.state,
                |b, a| state_change(b.copied(), *a),
                |k| options.needed(k),
                |c, n| {
                    // Open going away as closed then filtered is one disappearance.
                    state_continues(c, n)
                },
            ) {
                changes.push(change(
                    kind,
                    ChangeStatus::Confirmed,
                    before.map(|s| s.as_str().to_string()),
                    Some(after.as_str().to_string()),
                    first,
                    *index,
                ));
            }
        }
        if let Some((value, count, first)) = &state.candidate
            && let Some(kind) = state_change(state.confirmed, *value)
        {
            changes.push(change(
                kind,
                ChangeStatus::Pending {
                    seen: *count,
                    needed: options.needed(kind),
                },
                state.confirmed.map(|s| s.as_str().to_string()),
                Some(value.as_str().to_string()),
                *first,
                last_index,
            ));
        }

        // What detection found; first observation is the baseline.
        for aspect in DETECTION_ASPECTS {
            let kind = aspect.kind();
            let mut tracker = Tracker::<Option<String>>::new();
            let mut baseline_set = false;
            for (index, obs) in observations {
                let Some(value) = aspect.value(obs) else {
                    continue;
                };
                if !baseline_set {
                    tracker.confirmed = Some(value);
                    baseline_set = true;
                    continue;
                }
                if let Some((before, after, first, kind)) = tracker.observe(
                    *index,
                    value,
                    |_, _| Some(kind),
                    |k| options.needed(k),
                    |c, n| c == n,
                ) {
                    changes.push(change(
                        kind,
                        ChangeStatus::Confirmed,
                        before.flatten(),
                        after,
                        first,
                        *index,
                    ));
                }
            }
            if let Some((value, count, first)) = tracker.candidate {
                changes.push(change(
                    kind,
                    ChangeStatus::Pending {
                        seen: count,
                        needed: options.needed(kind),
                    },
                    tracker.confirmed.flatten(),
                    value,
                    first,
                    last_index,
                ));
            }
        }
    }
    changes.sort_by(|a, b| {
        (a.at, a.ip, a.protocol.as_str(), a.port, a.kind).cmp(&(
            b.at,
            b.ip,
            b.protocol.as_str(),
            b.port,
            b.kind,
        ))
    });
    changes
}

/// The changes a new scan brings: those the newest scan of `history` confirmed, and those
/// still pending after it. This is what alerts (and `changed since the last scan`) use.
pub fn latest_changes(history: &[ScanReport], options: &DriftOptions) -> Vec<Change> {
    let last = history.len().saturating_sub(1);
    drift(history, options)
        .into_iter()
        .filter(|c| c.at == last)
        .collect()
}

/// Every difference between two scans, confirmed at once (no flap control).
pub fn diff(before: &ScanReport, after: &ScanReport) -> Vec<Change> {
    drift(&[before.clone(), after.clone()], &DriftOptions::immediate())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};
    use portgate_model::{HostReport, PortResult, Reason, ScanMethod, ScanStatus, TlsSummary};

    const IP: &str = "198.18.0.10";

    /// One scan of one port: its state and, when open, what detection found as
    /// (service, product, version, tls (issuer, not_after, fingerprint, valid)).
    #[derive(Clone)]
    struct Obs {
        state: PortState,
        svc: Option<(&'static str, &'static str, &'static str)>,
        tls: Option<(&'static str, &'static str, &'static str, bool)>,
    }

    fn st(state: PortState) -> Obs {
        Obs {
            state,
            svc: None,
            tls: None,
        }
    }
    const O: PortState = PortState::Open;
    const C: PortState = PortState::Closed;
    const F: PortState = PortState::Filtered;

    fn svc(product: &'static str, version: &'static str) -> Obs {
        Obs {
            state: O,
            svc: Some(("ssh", product, version)),
            tls: None,
        }
    }

    fn cert(issuer: &'static str, not_after: &'static str, fp: &'static str, valid: bool) -> Obs {
        Obs {
            state: O,
            svc: Some(("https", "nginx", "1.24")),
            tls: Some((issuer, not_after, fp, valid)),
        }
    }

    fn scan(minute: i64, port: u16, obs: Option<&Obs>) -> ScanReport {
        let started = Utc
            .with_ymd_and_hms(2026, 11, 1, 0, 0, 0)
            .single()
            .unwrap_or_default()
            + chrono::Duration::minutes(minute);
        let mut host = HostReport {
            target: "app.example".into(),
            hostname: None,
            ip: IP.parse().unwrap_or(IpAddr::from([0, 0, 0, 0])),
            ports_requested: 1,
            ports: vec![],
            services: vec![],
            tarpit: None,
        };
        if let Some(obs) = obs {
            host.ports.push(PortResult {
                port,
                protocol: Protocol::Tcp,
                state: obs.state,
                reason: Reason::SynAck,
                rtt_us: None,
                attempts: 1,
                at_ms: 0,
            });
            if let Some((service, product, version)) = obs.svc {
                host.services.push(portgate_model::DetectedService {
                    port,
                    protocol: Protocol::Tcp,
                    detection: Detection {
                        service: Some(service.into()),
                        product: Some(product.into()),
                        version: Some(version.into()),
                        info: None,
                        cpe: None,
                        probe: None,
                        soft: false,
                        evidence: Default::default(),
                        tls: obs.tls.map(|(issuer, not_after, fp, valid)| TlsSummary {
                            starttls: None,
                            protocol: "TLSv1.3".into(),
                            cipher_suite: "TLS13_AES_128_GCM_SHA256".into(),
                            alpn: None,
                            server_name: None,
                            subject: "CN=app.example".into(),
                            issuer: issuer.into(),
                            san_dns: vec![],
                            san_ips: vec![],
                            not_before: None,
                            not_after: Some(not_after.into()),
                            days_left: None,
                            self_signed: false,
                            chain_len: 1,
                            fingerprint_sha256: fp.into(),
                            valid,
                            reasons: if valid {
                                vec![]
                            } else {
                                vec![portgate_model::CertFailure::Expired]
                            },
                        }),
                        http: None,
                        notes: vec![],
                        vulnerabilities: None,
                        applications: None,
                    },
                });
            }
        }
        ScanReport {
            method: ScanMethod::Connect,
            started_at: started,
            finished_at: started,
            status: ScanStatus::Completed,
            incomplete_reasons: vec![],
            targets: vec![],
            hosts: vec![host],
            enrichment: None,
        }
    }

    fn history(obs: &[Option<Obs>]) -> Vec<ScanReport> {
        obs.iter()
            .enumerate()
            .map(|(i, o)| scan(i as i64, 443, o.as_ref()))
            .collect()
    }

    /// (kind, before, after, confirmed?, at)
    type Want = (
        ChangeKind,
        Option<&'static str>,
        Option<&'static str>,
        bool,
        usize,
    );
    /// [`Want`] with owned text, as produced.
    type Got = (ChangeKind, Option<String>, Option<String>, bool, usize);
    /// (case name, one observation per scan, the changes expected)
    type Case = (&'static str, Vec<Option<Obs>>, Vec<Want>);

    fn summarise(changes: &[Change]) -> Vec<Got> {
        changes
            .iter()
            .map(|c| {
                (
                    c.kind,
                    c.before.clone(),
                    c.after.clone(),
                    c.is_confirmed(),
                    c.at,
                )
            })
            .collect()
    }

    fn want(w: &[Want]) -> Vec<Got> {
        w.iter()
            .map(|(k, b, a, c, at)| (*k, b.map(String::from), a.map(String::from), *c, *at))
            .collect()
    }

    #[test]
    fn state_changes_with_default_flap_control() {
        use ChangeKind::*;
        let cases: Vec<Case> = vec![
            (
                "steady open",
                vec![Some(st(O)), Some(st(O)), Some(st(O))],
                vec![],
            ),
            (
                "newly open is confirmed at once",
                vec![Some(st(C)), Some(st(O))],
                vec![(NewlyOpen, Some("closed"), Some("open"), true, 1)],
            ),
            (
                "filtered to open is newly open",
                vec![Some(st(F)), Some(st(O))],
                vec![(NewlyOpen, Some("filtered"), Some("open"), true, 1)],
            ),
            (
                "a port first seen open after the first scan is newly open",
                vec![None, Some(st(O))],
                vec![(NewlyOpen, None, Some("open"), true, 1)],
            ),
            (
                "one closed observation is pending",
                vec![Some(st(O)), Some(st(C))],
                vec![(OpenToClosed, Some("open"), Some("closed"), false, 1)],
            ),
            (
                "two closed observations confirm",
                vec![Some(st(O)), Some(st(C)), Some(st(C))],
                vec![(OpenToClosed, Some("open"), Some("closed"), true, 2)],
            ),
            (
                "open to filtered confirmed after two",
                vec![Some(st(O)), Some(st(F)), Some(st(F)), Some(st(F))],
                vec![(OpenToFiltered, Some("open"), Some("filtered"), true, 2)],
            ),
            (
                "closed then filtered is one disappearance, named by the latest",
                vec![Some(st(O)), Some(st(C)), Some(st(F))],
                vec![(OpenToFiltered, Some("open"), Some("filtered"), true, 2)],
            ),
            (
                "a flap is forgotten",
                vec![Some(st(O)), Some(st(C)), Some(st(O)), Some(st(O))],
                vec![],
            ),
            (
                "a scan that did not see the port does not break the run",
                vec![Some(st(O)), Some(st(C)), None, Some(st(C))],
                vec![(OpenToClosed, Some("open"), Some("closed"), true, 3)],
            ),
            (
                "gone, then back: both confirmed",
                vec![Some(st(O)), Some(st(C)), Some(st(C)), Some(st(O))],
                vec![
                    (OpenToClosed, Some("open"), Some("closed"), true, 2),
                    (NewlyOpen, Some("closed"), Some("open"), true, 3),
                ],
            ),
            (
                "closed and filtered swapping is a state change, with flap control",
                vec![Some(st(C)), Some(st(F)), Some(st(F))],
                vec![(StateChanged, Some("closed"), Some("filtered"), true, 2)],
            ),
            (
                "a port first seen closed is no change",
                vec![None, Some(st(C))],
                vec![],
            ),
        ];
        for (name, obs, expected) in cases {
            let got = drift(&history(&obs), &DriftOptions::default());
            assert_eq!(summarise(&got), want(&expected), "{name}");
        }
    }

    #[test]
    fn detection_changes() {
        use ChangeKind::*;
        let cases: Vec<Case> = vec![
            (
                "version upgrade",
                vec![Some(svc("OpenSSH", "9.6")), Some(svc("OpenSSH", "9.7"))],
                vec![(VersionChanged, Some("9.6"), Some("9.7"), true, 1)],
            ),
            (
                "product replaced",
                vec![Some(svc("OpenSSH", "9.6")), Some(svc("Dropbear", "9.6"))],
                vec![(ProductChanged, Some("OpenSSH"), Some("Dropbear"), true, 1)],
            ),
            (
                "a scan where the port is closed observes no service",
                vec![
                    Some(svc("OpenSSH", "9.6")),
                    Some(st(C)),
                    Some(svc("OpenSSH", "9.6")),
                ],
                vec![],
            ),
            (
                "renewed certificate: expiry and fingerprint",
                vec![
                    Some(cert("CN=CA", "2027-01-01T00:00:00Z", "aa", true)),
                    Some(cert("CN=CA", "2027-04-01T00:00:00Z", "bb", true)),
                ],
                vec![
                    (
                        CertificateExpiryChanged,
                        Some("2027-01-01T00:00:00Z"),
                        Some("2027-04-01T00:00:00Z"),
                        true,
                        1,
                    ),
                    (CertificateChanged, Some("aa"), Some("bb"), true, 1),
                ],
            ),
            (
                "new issuer and a failing verdict",
                vec![
                    Some(cert("CN=CA", "2027-01-01T00:00:00Z", "aa", true)),
                    Some(cert("CN=Other", "2027-01-01T00:00:00Z", "aa", false)),
                ],
                vec![
                    (
                        CertificateIssuerChanged,
                        Some("CN=CA"),
                        Some("CN=Other"),
                        true,
                        1,
                    ),
                    (
                        TlsVerdictChanged,
                        Some("valid"),
                        Some("invalid (expired)"),
                        true,
                        1,
                    ),
                ],
            ),
            (
                "TLS going away",
                vec![
                    Some(cert("CN=CA", "2027-01-01T00:00:00Z", "aa", true)),
                    Some(svc("nginx", "1.24")),
                ],
                vec![
                    (ServiceChanged, Some("https"), Some("ssh"), true, 1),
                    (CertificateIssuerChanged, Some("CN=CA"), None, true, 1),
                    (
                        CertificateExpiryChanged,
                        Some("2027-01-01T00:00:00Z"),
                        None,
                        true,
                        1,
                    ),
                    (CertificateChanged, Some("aa"), None, true, 1),
                    (TlsVerdictChanged, Some("valid"), None, true, 1),
                ],
            ),
        ];
        for (name, obs, expected) in cases {
            let got = drift(&history(&obs), &DriftOptions::default());
            assert_eq!(summarise(&got), want(&expected), "{name}");
        }
    }

    #[test]
    fn thresholds_are_configurable() {
        use ChangeKind::*;
        let options = DriftOptions {
            confirm_appeared: 2,
            confirm_disappeared: 3,
            confirm_changed: 2,
        };
        let cases: Vec<Case> = vec![
            (
                "newly open needs two",
                vec![Some(st(C)), Some(st(O))],
                vec![(NewlyOpen, Some("closed"), Some("open"), false, 1)],
            ),
            (
                "newly open confirmed on the second",
                vec![Some(st(C)), Some(st(O)), Some(st(O))],
                vec![(NewlyOpen, Some("closed"), Some("open"), true, 2)],
            ),
            (
                "closed needs three",
                vec![Some(st(O)), Some(st(C)), Some(st(C))],
                vec![(OpenToClosed, Some("open"), Some("closed"), false, 2)],
            ),
            (
                "version change needs two",
                vec![Some(svc("OpenSSH", "9.6")), Some(svc("OpenSSH", "9.7"))],
                vec![(VersionChanged, Some("9.6"), Some("9.7"), false, 1)],
            ),
        ];
        for (name, obs, expected) in cases {
            let got = drift(&history(&obs), &options);
            assert_eq!(summarise(&got), want(&expected), "{name}");
        }
        let pending = drift(&history(&[Some(st(O)), Some(st(C)), Some(st(C))]), &options);
        assert_eq!(
            pending[0].status,
            ChangeStatus::Pending { seen: 2, needed: 3 }
        );
        assert_eq!(pending[0].first_seen, 1);
    }

    #[test]
    fn latest_changes_and_plain_diff() {
        let h = history(&[Some(st(O)), Some(st(C)), Some(st(C)), Some(st(C))]);
        // Confirmed at scan 2: nothing new at scan 3.
        assert!(latest_changes(&h, &DriftOptions::default()).is_empty());
        assert_eq!(latest_changes(&h[..3], &DriftOptions::default()).len(), 1);
        let d = diff(&h[0], &h[1]);
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].kind, ChangeKind::OpenToClosed);
        assert!(d[0].is_confirmed());
        assert_eq!(
            d[0].to_string(),
            "198.18.0.10:443/tcp open-to-closed: open → closed"
        );
        let pending = latest_changes(&h[..2], &DriftOptions::default());
        assert_eq!(
            pending[0].to_string(),
            "198.18.0.10:443/tcp open-to-closed: open → closed (pending: seen 1 of 2)"
        );
    }

    #[test]
    fn kinds_have_unique_ids() {
        let mut ids: Vec<&str> = ChangeKind::ALL.iter().map(|k| k.id()).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), ChangeKind::ALL.len());
    }
}
