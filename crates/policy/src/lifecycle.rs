//! The life of a finding between checks: a stable fingerprint, and what one more check of
//! its targets does to it — opened, seen again, pending (missing once), resolved (missing
//! as often as the drift rules confirm a disappearance), reopened.
//!
//! Only the findings that need someone (outcome `fail` or `warn`) have a life; a passing
//! approval does not. Nothing here stores or sends anything.

pub use portgate_model::lifecycle::{FindingState, Tracked};
use portgate_model::{Finding, Outcome};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};

/// What one check does to a finding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transition {
    /// First seen: open, news.
    Opened(Finding),
    /// Seen again after it was resolved: open again, news.
    Reopened(Finding),
    /// Still there (open or acknowledged): no news.
    Seen(Finding),
    /// Not shown by this check, not yet confirmed gone: `missing_runs` now, no news.
    Pending(u32),
    /// Gone, confirmed: resolved, news.
    Resolved,
}

impl Transition {
    /// Whether the change is news for the people the finding concerns.
    pub fn is_news(&self) -> bool {
        matches!(
            self,
            Transition::Opened(_) | Transition::Reopened(_) | Transition::Resolved
        )
    }
}

/// Whether `finding` has a life (it needs someone: fail or warn).
pub fn tracked(finding: &Finding) -> bool {
    matches!(finding.outcome, Outcome::Fail | Outcome::Warn)
}

/// The finding's stable fingerprint: target, address, protocol, port and rule (hex of
/// their SHA-256, 32 characters). The same exposure found by two checks has the same one.
pub fn fingerprint(finding: &Finding) -> String {
    let key = format!(
        "{}|{}|{}|{}|{}",
        finding.target,
        finding.ip.map(|ip| ip.to_string()).unwrap_or_default(),
        finding.protocol.map(|p| p.to_string()).unwrap_or_default(),
        finding.port.map(|p| p.to_string()).unwrap_or_default(),
        finding.rule.id()
    );
    let digest = Sha256::digest(key.as_bytes());
    let mut hex = String::with_capacity(32);
    for byte in &digest[..16] {
        hex.push_str(&format!("{byte:02x}"));
    }
    hex
}

/// What a check of `checked_targets` that found `current` does to the `known` findings of
/// those targets (and to new ones): one transition per fingerprint. A known finding that
/// the check did not show is resolved once it has been missing `confirm_missing` checks in
/// a row (at least 1); before that it is pending.
pub fn transitions(
    known: &[Tracked],
    checked_targets: &BTreeSet<String>,
    current: &[Finding],
    confirm_missing: u32,
) -> BTreeMap<String, Transition> {
    let confirm_missing = confirm_missing.max(1);
    let by_fingerprint: BTreeMap<&str, &Tracked> =
        known.iter().map(|t| (t.fingerprint.as_str(), t)).collect();
    let mut out = BTreeMap::new();
    for finding in current.iter().filter(|f| tracked(f)) {
        let fp = fingerprint(finding);
        let transition = match by_fingerprint.get(fp.as_str()) {
            None => Transition::Opened(finding.clone()),
            Some(t) if t.state == FindingState::Resolved => Transition::Reopened(finding.clone()),
            Some(_) => Transition::Seen(finding.clone()),
        };
        out.insert(fp, transition);
    }
    for t in known {
        if out.contains_key(&t.fingerprint)
            || t.state == FindingState::Resolved
            || !checked_targets.contains(&t.target)
        {
            continue;
        }
        let missing = t.missing_runs.saturating_add(1);
        let transition = if missing >= confirm_missing {
            Transition::Resolved
        } else {
            Transition::Pending(missing)
        };
        out.insert(t.fingerprint.clone(), transition);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use portgate_model::{Protocol, Rule, Severity};

    fn finding(port: u16, outcome: Outcome) -> Finding {
        Finding {
            rule: Rule::UnapprovedPort,
            outcome,
            severity: Severity::High,
            target: "app".into(),
            ip: "198.18.0.10".parse().ok(),
            protocol: Some(Protocol::Tcp),
            port: Some(port),
            state: None,
            service: None,
            product: None,
            version: None,
            asset: Some("web".into()),
            owner: None,
            escalation: None,
            message: format!("port {port} is open"),
            location: None,
            references: Vec::new(),
            proof: None,
            fix: None,
        }
    }

    fn known(f: &Finding, state: FindingState, missing_runs: u32) -> Tracked {
        Tracked {
            fingerprint: fingerprint(f),
            target: f.target.clone(),
            state,
            missing_runs,
        }
    }

    fn targets() -> BTreeSet<String> {
        ["app".to_string()].into()
    }

    #[test]
    fn the_fingerprint_is_stable_and_tells_ports_apart() {
        let a = finding(6379, Outcome::Fail);
        let mut b = a.clone();
        b.message = "another wording".into();
        b.severity = Severity::Critical;
        assert_eq!(fingerprint(&a), fingerprint(&b));
        assert_eq!(fingerprint(&a).len(), 32);
        assert_ne!(fingerprint(&a), fingerprint(&finding(6380, Outcome::Fail)));
    }

    #[test]
    fn a_check_opens_keeps_reopens_and_resolves() {
        let redis = finding(6379, Outcome::Fail);
        let db = finding(5432, Outcome::Warn);
        let approved = finding(443, Outcome::Pass);
        let old = finding(9090, Outcome::Fail);
        let was_resolved = finding(8080, Outcome::Fail);
        let known = vec![
            known(&db, FindingState::Acknowledged, 0),
            known(&old, FindingState::Open, 1),
            known(&was_resolved, FindingState::Resolved, 0),
        ];
        let current = vec![
            redis.clone(),
            db.clone(),
            approved.clone(),
            was_resolved.clone(),
        ];
        let t = transitions(&known, &targets(), &current, 2);
        assert_eq!(t[&fingerprint(&redis)], Transition::Opened(redis.clone()));
        assert_eq!(t[&fingerprint(&db)], Transition::Seen(db.clone()));
        assert_eq!(
            t[&fingerprint(&was_resolved)],
            Transition::Reopened(was_resolved.clone())
        );
        assert_eq!(t[&fingerprint(&old)], Transition::Resolved);
        assert!(
            !t.contains_key(&fingerprint(&approved)),
            "a pass has no life"
        );
        let news: Vec<bool> = t.values().map(Transition::is_news).collect();
        assert_eq!(news.iter().filter(|n| **n).count(), 3);
    }

    #[test]
    fn a_finding_missing_once_is_pending_not_resolved() {
        let redis = finding(6379, Outcome::Fail);
        let known = vec![known(&redis, FindingState::Open, 0)];
        let t = transitions(&known, &targets(), &[], 2);
        assert_eq!(t[&fingerprint(&redis)], Transition::Pending(1));
        assert!(!t[&fingerprint(&redis)].is_news());
        // Back the next time: seen, no news either way.
        let t = transitions(&known, &targets(), std::slice::from_ref(&redis), 2);
        assert_eq!(t[&fingerprint(&redis)], Transition::Seen(redis.clone()));
    }

    #[test]
    fn findings_of_targets_not_checked_are_left_alone() {
        let redis = finding(6379, Outcome::Fail);
        let known = vec![known(&redis, FindingState::Open, 5)];
        let t = transitions(&known, &["other".to_string()].into(), &[], 1);
        assert!(t.is_empty());
    }
}
