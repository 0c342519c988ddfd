//! Monitoring: schedules that queue checks of the configured manifests on a cron, and the
//! life of what those checks find (opened, pending, resolved, reopened — `policy::lifecycle`)
//! kept in the store, with the news written to the alert outbox.
//!
//! A schedule's next run is kept in the store: after downtime a missed run runs once (not
//! once per missed slot), and a run is queued under an idempotency key of its slot, so that
//! two servers on one database, or a restart in the middle, queue it once.

use crate::State;
use chrono::{DateTime, Utc};
use portgate_model::{Finding, PortSpec, Severity};
use portgate_policy::drift::DriftOptions;
use portgate_policy::lifecycle::{self, Transition};
use portgate_store::FindingUpdate;
use std::collections::BTreeSet;
use std::str::FromStr;
use std::time::Duration;

/// A scan tier: which manifests' assets, which ports, when.
#[derive(Debug, Clone)]
pub struct Schedule {
    /// Its name (`critical`, `nightly`).
    pub name: String,
    /// The ports scanned on every asset (instead of each asset's own set).
    pub ports: Option<PortSpec>,
    /// When, as cron (five fields, or six with seconds first).
    pub cron: croner::Cron,
    /// The cron text as given.
    pub cron_text: String,
    /// Up to this much later than the slot, chosen at random for each run (spreads the
    /// load of many schedules on one slot).
    pub jitter: Duration,
    /// The configured manifests it checks, by name; empty: all of them.
    pub manifests: Vec<String>,
    /// Only this environment's assets.
    pub env: Option<String>,
}

impl Schedule {
    /// A schedule; `what` names it in errors (`schedules[0]`).
    pub fn new(
        name: &str,
        ports: Option<&str>,
        cron: &str,
        jitter: Duration,
        what: &str,
    ) -> Result<Schedule, String> {
        let parsed = croner::Cron::new(cron)
            .with_seconds_optional()
            .parse()
            .map_err(|e| format!("{what}: cron \"{cron}\": {e}"))?;
        let ports = ports
            .map(|p| PortSpec::from_str(p).map_err(|e| format!("{what}: ports: {e}")))
            .transpose()?;
        if name.is_empty() {
            return Err(format!("{what}: name: give the schedule a name"));
        }
        Ok(Schedule {
            name: name.to_string(),
            ports,
            cron: parsed,
            cron_text: cron.to_string(),
            jitter,
            manifests: Vec::new(),
            env: None,
        })
    }

    /// The first slot strictly after `after`, plus a random share of the jitter.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let slot = self.cron.find_next_occurrence(&after, false).ok()?;
        let jitter_ms = u64::try_from(self.jitter.as_millis()).unwrap_or(u64::MAX);
        let delay = if jitter_ms == 0 {
            0
        } else {
            rand::random_range(0..jitter_ms)
        };
        Some(slot + chrono::Duration::milliseconds(i64::try_from(delay).unwrap_or(0)))
    }
}

/// An alert route: a channel and what goes to it.
#[derive(Debug, Clone)]
pub struct AlertRoute {
    /// Its name (the outbox names it).
    pub name: String,
    /// Findings below this severity are not sent.
    pub min_severity: Severity,
    /// Where to.
    pub channel: portgate_alert::ChannelConfig,
}

/// Runs the schedules until the server drains: sleeps until the next run is due (at most
/// a second), queues it, and records the one after.
pub(crate) async fn run_schedules(state: State) {
    if state.0.config.schedules.is_empty() {
        return;
    }
    while !state.draining() {
        let now = Utc::now();
        for schedule in &state.0.config.schedules {
            if let Err(e) = tick(&state, schedule, now).await {
                eprintln!("portgate serve: schedule {}: {e}", schedule.name);
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn tick(state: &State, schedule: &Schedule, now: DateTime<Utc>) -> Result<(), String> {
    let store = &state.0.store;
    let next = store
        .schedule_next_run(&schedule.name)
        .await
        .map_err(|e| e.to_string())?;
    let Some(due) = next else {
        // First start: the first slot from now on.
        let first = schedule
            .next_after(now)
            .ok_or_else(|| format!("cron \"{}\" never matches", schedule.cron_text))?;
        return store
            .set_schedule(&schedule.name, first, None)
            .await
            .map_err(|e| e.to_string());
    };
    if due > now {
        return Ok(());
    }
    // Due (or missed while the server was down): one run now, then the next slot from now.
    let mut last_job = 0;
    let names: Vec<String> = if schedule.manifests.is_empty() {
        state.0.config.manifests.keys().cloned().collect()
    } else {
        schedule.manifests.clone()
    };
    for manifest in names {
        let idempotency = format!(
            "schedule:{}:{}:{}",
            schedule.name,
            manifest,
            due.timestamp_millis()
        );
        match crate::checks::queue_scheduled(state, &manifest, schedule, &idempotency).await {
            Ok(id) => last_job = id,
            Err(e) => eprintln!(
                "portgate serve: schedule {}: manifest {manifest}: {e}",
                schedule.name
            ),
        }
    }
    let after = schedule
        .next_after(now)
        .ok_or_else(|| format!("cron \"{}\" never matches again", schedule.cron_text))?;
    store
        .set_schedule(&schedule.name, after, Some((now, last_job)))
        .await
        .map_err(|e| e.to_string())
}

/// What a finished scheduled check did to the findings of its targets: stored, and the
/// news (opened, reopened, resolved) written to the outbox of every route it concerns, as
/// one message per route for the check.
pub(crate) async fn record(
    state: &State,
    job_id: i64,
    schedule: &str,
    targets: &BTreeSet<String>,
    findings: &[Finding],
) -> Result<usize, String> {
    let store = &state.0.store;
    let targets_list: Vec<String> = targets.iter().cloned().collect();
    let known = store
        .tracked_findings(&targets_list)
        .await
        .map_err(|e| e.to_string())?;
    let confirm = DriftOptions::default().confirm_disappeared;
    let transitions = lifecycle::transitions(&known, targets, findings, confirm);
    let updates: Vec<(String, FindingUpdate<'_>)> = transitions
        .iter()
        .map(|(fp, t)| {
            let update = match t {
                Transition::Opened(f) => FindingUpdate::Opened(f),
                Transition::Reopened(f) => FindingUpdate::Reopened(f),
                Transition::Seen(f) => FindingUpdate::Seen(f),
                Transition::Pending(n) => FindingUpdate::Pending(*n),
                Transition::Resolved => FindingUpdate::Resolved,
            };
            (fp.clone(), update)
        })
        .collect();
    let now = Utc::now();
    store
        .update_findings(Some(job_id), &updates, now)
        .await
        .map_err(|e| e.to_string())?;
    let mut items = Vec::new();
    for (fp, t) in &transitions {
        let (item_state, finding) = match t {
            Transition::Opened(f) => (portgate_alert::ItemState::Open, f.clone()),
            Transition::Reopened(f) => (portgate_alert::ItemState::Reopened, f.clone()),
            Transition::Resolved => match store.finding(fp).await {
                Ok(Some(stored)) => (portgate_alert::ItemState::Resolved, stored.finding),
                _ => continue,
            },
            Transition::Seen(_) | Transition::Pending(_) => continue,
        };
        items.push(portgate_alert::AlertItem {
            fingerprint: fp.clone(),
            state: item_state,
            suppressed: false,
            finding,
            ack_url: None,
        });
    }
    if items.is_empty() {
        return Ok(0);
    }
    let mut queued = 0;
    for route in &state.0.config.alerts {
        let routed: Vec<portgate_alert::AlertItem> = items
            .iter()
            .filter(|i| i.finding.severity >= route.min_severity)
            .cloned()
            .collect();
        if routed.is_empty() {
            continue;
        }
        let opened = routed
            .iter()
            .filter(|i| i.state != portgate_alert::ItemState::Resolved)
            .count();
        let resolved = routed.len() - opened;
        let alert = portgate_alert::Alert {
            id: format!("portgate-check-{job_id}-{}", route.name),
            kind: if opened > 0 {
                portgate_alert::AlertKind::Opened
            } else {
                portgate_alert::AlertKind::Resolved
            },
            title: title(schedule, opened, resolved),
            created_at: now,
            items: routed,
        };
        let text = serde_json::to_string(&alert).map_err(|e| e.to_string())?;
        if store
            .enqueue_alert(&route.name, &alert.id, &text, now)
            .await
            .map_err(|e| e.to_string())?
        {
            queued += 1;
            state.0.outbox_wake.notify_one();
        }
    }
    Ok(queued)
}

fn title(schedule: &str, opened: usize, resolved: usize) -> String {
    let plural = |n: usize| if n == 1 { "" } else { "s" };
    match (opened, resolved) {
        (o, 0) => format!("{o} new finding{} ({schedule})", plural(o)),
        (0, r) => format!("{r} finding{} resolved ({schedule})", plural(r)),
        (o, r) => format!("{o} new finding{}, {r} resolved ({schedule})", plural(o)),
    }
}
