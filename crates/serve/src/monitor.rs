//! Monitoring: schedules that queue checks of the configured manifests on a cron, and the
//! life of what those checks find (opened, pending, resolved, reopened — `policy::lifecycle`)
//! kept in the store, with the news written to the alert outbox.
//!
//! A schedule's next run is kept in the store: after downtime a missed run runs once (not
//! once per missed slot), and a run is queued under an idempotency key of its slot, so that
//! two servers on one database, or a restart in the middle, queue it once.

use crate::State;
use crate::windows::Window;
use chrono::{DateTime, Utc};
use portgate_model::lifecycle::FindingState;
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
    /// The cron's time zone (UTC unless set).
    pub timezone: chrono_tz::Tz,
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
        let parsed = crate::windows::parse_cron(cron, what)?;
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
            timezone: chrono_tz::UTC,
        })
    }

    /// The first slot strictly after `after`, plus a random share of the jitter.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let slot = self
            .cron
            .find_next_occurrence(&after.with_timezone(&self.timezone), false)
            .ok()?
            .with_timezone(&Utc);
        let jitter_ms = u64::try_from(self.jitter.as_millis()).unwrap_or(u64::MAX);
        let delay = if jitter_ms == 0 {
            0
        } else {
            rand::random_range(0..jitter_ms)
        };
        slot.checked_add_signed(chrono::Duration::milliseconds(
            i64::try_from(delay).unwrap_or(0),
        ))
    }
}

/// An alert route: a channel and what goes to it.
#[derive(Debug, Clone)]
pub struct AlertRoute {
    /// Its name (the outbox names it).
    pub name: String,
    /// Findings below this severity are not sent.
    pub min_severity: Severity,
    /// Only the findings of these assets (all when empty).
    pub assets: Vec<String>,
    /// Only the findings of assets of these owners (all when empty).
    pub owners: Vec<String>,
    /// Where to.
    pub channel: portgate_alert::ChannelConfig,
}

impl AlertRoute {
    /// Whether `finding` goes to this route (escalations aside).
    pub fn takes(&self, finding: &Finding) -> bool {
        let listed = |list: &[String], value: &Option<String>| {
            list.is_empty() || value.as_ref().is_some_and(|v| list.contains(v))
        };
        finding.severity >= self.min_severity
            && listed(&self.assets, &finding.asset)
            && listed(&self.owners, &finding.owner)
    }
}

/// The tags of each manifest asset, by asset name.
pub type AssetTags = std::collections::BTreeMap<String, std::collections::BTreeMap<String, String>>;

/// An escalation rule: an open finding at or above `min_severity` that nobody acknowledged
/// `after` its alert goes to route `to` (or to the route its asset's `escalation:` names),
/// and again every `repeat` until someone acknowledges it or it is resolved.
#[derive(Debug, Clone)]
pub struct Escalation {
    /// The least severity escalated.
    pub min_severity: Severity,
    /// How long after the alert.
    pub after: Duration,
    /// Again this often (once when none).
    pub repeat: Option<Duration>,
    /// The route it goes to.
    pub to: String,
}

/// Where, if anywhere, finding `f` escalates at `now`: the route's name. The first rule
/// whose severity it reaches decides; the asset's own `escalation:` channel, when it names
/// a route, comes before the rule's. `routes` are the configured route names.
pub(crate) fn escalation_due(
    f: &portgate_store::StoredFinding,
    rules: &[Escalation],
    routes: &[String],
    now: DateTime<Utc>,
) -> Option<String> {
    if f.state != portgate_model::lifecycle::FindingState::Open {
        return None;
    }
    let notified = f.notified_at?;
    let rule = rules
        .iter()
        .find(|r| f.finding.severity >= r.min_severity)?;
    let since = |at: DateTime<Utc>, wait: Duration| {
        chrono::Duration::from_std(wait)
            .ok()
            .and_then(|wait| at.checked_add_signed(wait))
            .is_some_and(|due| now >= due)
    };
    let due = if f.escalations == 0 {
        since(notified, rule.after)
    } else {
        match (rule.repeat, f.escalated_at) {
            (Some(repeat), Some(last)) => since(last, repeat),
            _ => false,
        }
    };
    if !due {
        return None;
    }
    let own = f
        .finding
        .escalation
        .as_ref()
        .filter(|name| routes.contains(name));
    Some(own.cloned().unwrap_or_else(|| rule.to.clone()))
}

/// Runs the schedules until the server drains: sleeps until the next run is due (at most
/// a second), queues it, and records the one after.
pub(crate) async fn run_schedules(state: State) {
    let config = &state.0.config;
    if config.schedules.is_empty() && config.alerts.is_empty() && config.windows.is_empty() {
        return;
    }
    let rows: Vec<_> = config
        .windows
        .iter()
        .map(|w| w.to_stored("config", Utc::now()))
        .collect();
    if let Err(e) = state.0.store.sync_config_windows(&rows).await {
        tracing::error!(error = %e, "cannot keep the configured maintenance windows: {e}");
    }
    let mut watched = Utc::now() - chrono::Duration::seconds(1);
    while !state.draining() {
        let now = Utc::now();
        for schedule in &config.schedules {
            if let Err(e) = tick(&state, schedule, now).await {
                tracing::error!(schedule = %schedule.name, error = %e, "schedule {}: {e}", schedule.name);
            }
        }
        if now - watched >= chrono::Duration::milliseconds(900) {
            watched = now;
            if let Err(e) = watch(&state, now).await {
                tracing::error!(error = %e, "monitoring: {e}");
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
            Err(e) => tracing::error!(
                schedule = %schedule.name,
                manifest = %manifest,
                error = %e,
                "schedule {}: manifest {manifest}: {e}",
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
/// one message per route for the check. A finding raised inside an open maintenance window
/// is stored and marked suppressed instead (its window's digest tells of it); a reopening
/// within the repeat interval of the last alert of it is not sent again.
pub(crate) async fn record(
    state: &State,
    job_id: i64,
    schedule: &str,
    targets: &BTreeSet<String>,
    findings: &[Finding],
    tags: AssetTags,
    review: bool,
) -> Result<usize, String> {
    let store = &state.0.store;
    if let Ok(mut known) = state.0.asset_tags.lock() {
        known.extend(tags);
    }
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
    // Read before the update: a reopening is held back by the last alert of the opening.
    let mut before = std::collections::HashMap::new();
    for (fp, t) in &transitions {
        if matches!(t, Transition::Reopened(_))
            && let Some(stored) = store.finding(fp).await.map_err(|e| e.to_string())?
        {
            before.insert(fp.clone(), stored);
        }
    }
    store
        .update_findings(Some(job_id), &updates, now)
        .await
        .map_err(|e| e.to_string())?;
    let windows = open_windows(state, now).await;
    let tags = state
        .0
        .asset_tags
        .lock()
        .map(|t| t.clone())
        .unwrap_or_default();
    let window_of = |f: &Finding| {
        windows
            .iter()
            .find(|w| w.covers(f, &tags))
            .map(|w| w.name.clone())
    };
    let repeat = chrono::Duration::from_std(state.0.config.repeat_interval).unwrap_or_default();
    let mut items = Vec::new();
    let mut suppressed: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    let mut notified = Vec::new();
    let mut for_review = Vec::new();
    for (fp, t) in &transitions {
        let (item_state, finding, was_suppressed) = match t {
            // A target no asset lists: the review queue, never an alert.
            Transition::Opened(f) | Transition::Reopened(f) if review && f.asset.is_none() => {
                for_review.push(fp.clone());
                continue;
            }
            Transition::Opened(f) | Transition::Reopened(f) => {
                if let Some(window) = window_of(f) {
                    suppressed.entry(window).or_default().push(fp.clone());
                    continue;
                }
                let recent = before
                    .get(fp)
                    .and_then(|s| s.notified_at)
                    .is_some_and(|at| now - at < repeat);
                if recent {
                    continue;
                }
                notified.push(fp.clone());
                let item_state = if matches!(t, Transition::Opened(_)) {
                    portgate_alert::ItemState::Open
                } else {
                    portgate_alert::ItemState::Reopened
                };
                (item_state, f.clone(), false)
            }
            Transition::Resolved => match store.finding(fp).await {
                // Resolved inside a window: its digest tells; in the review queue: no alert.
                Ok(Some(stored))
                    if window_of(&stored.finding).is_none() && stored.queue.is_none() =>
                {
                    (
                        portgate_alert::ItemState::Resolved,
                        stored.finding,
                        stored.suppressed_by.is_some(),
                    )
                }
                _ => continue,
            },
            Transition::Seen(_) | Transition::Pending(_) => continue,
        };
        items.push(portgate_alert::AlertItem {
            ack_url: ack_url(state, fp, item_state, now),
            fingerprint: fp.clone(),
            state: item_state,
            suppressed: was_suppressed,
            finding,
        });
    }
    for (window, fps) in &suppressed {
        store
            .mark_suppressed(fps, window, now)
            .await
            .map_err(|e| e.to_string())?;
    }
    store
        .mark_notified(&notified, now)
        .await
        .map_err(|e| e.to_string())?;
    store
        .mark_review(&for_review)
        .await
        .map_err(|e| e.to_string())?;
    if items.is_empty() {
        return Ok(0);
    }
    let mut queued = 0;
    for (route, routed) in routes_of(state, &items) {
        let opened = still_open(&routed);
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
        if enqueue(state, &route.name, &alert, now).await? {
            queued += 1;
        }
    }
    Ok(queued)
}

/// Each route that takes some of `items`, with those.
fn routes_of<'a>(
    state: &'a State,
    items: &[portgate_alert::AlertItem],
) -> Vec<(&'a AlertRoute, Vec<portgate_alert::AlertItem>)> {
    state
        .0
        .config
        .alerts
        .iter()
        .map(|route| {
            let routed = items
                .iter()
                .filter(|i| route.takes(&i.finding))
                .cloned()
                .collect::<Vec<_>>();
            (route, routed)
        })
        .filter(|(_, routed)| !routed.is_empty())
        .collect()
}

/// How many of `items` are not resolved.
fn still_open(items: &[portgate_alert::AlertItem]) -> usize {
    items
        .iter()
        .filter(|i| i.state != portgate_alert::ItemState::Resolved)
        .count()
}

/// Writes `alert` for route `route` to the outbox and wakes the sender: whether it was new.
async fn enqueue(
    state: &State,
    route: &str,
    alert: &portgate_alert::Alert,
    now: DateTime<Utc>,
) -> Result<bool, String> {
    let text = serde_json::to_string(alert).map_err(|e| e.to_string())?;
    let written = state
        .0
        .store
        .enqueue_alert(route, &alert.id, &text, now)
        .await
        .map_err(|e| e.to_string())?;
    if written {
        state.0.outbox_wake.notify_one();
    }
    Ok(written)
}

fn ack_url(
    state: &State,
    fingerprint: &str,
    item: portgate_alert::ItemState,
    now: DateTime<Utc>,
) -> Option<String> {
    let links = state.0.config.ack_links.as_ref()?;
    (item != portgate_alert::ItemState::Resolved).then(|| links.url(fingerprint, now))
}

/// Every maintenance window in the store (the configuration file's and the API's).
pub(crate) async fn windows(state: &State) -> Vec<(Window, portgate_store::StoredWindow)> {
    match state.0.store.windows().await {
        Ok(rows) => rows
            .into_iter()
            .filter_map(|row| match Window::from_stored(&row) {
                Ok(w) => Some((w, row)),
                Err(e) => {
                    tracing::error!(window = %row.name, error = %e, "{e}");
                    None
                }
            })
            .collect(),
        Err(e) => {
            tracing::error!(error = %e, "{e}");
            Vec::new()
        }
    }
}

async fn open_windows(state: &State, now: DateTime<Utc>) -> Vec<Window> {
    windows(state)
        .await
        .into_iter()
        .map(|(w, _)| w)
        .filter(|w| w.open_at(now).is_some())
        .collect()
}

/// What monitoring does between checks, about once a second: the digest of each window
/// that closed (and the next check brought forward), and the escalations that are due.
pub(crate) async fn watch(state: &State, now: DateTime<Utc>) -> Result<(), String> {
    let all = windows(state).await;
    for (window, row) in &all {
        let since = row.digested_until.unwrap_or(row.created_at);
        if let Some((start, end)) = window.last_closing(since, now) {
            digest(state, window, start, end, now).await?;
        }
    }
    let open: Vec<Window> = all
        .into_iter()
        .map(|(w, _)| w)
        .filter(|w| w.open_at(now).is_some())
        .collect();
    escalate(state, &open, now).await
}

/// The digest of window `window`'s opening from `start` to `end`, once.
async fn digest(
    state: &State,
    window: &Window,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<(), String> {
    let store = &state.0.store;
    if !store
        .claim_window_digest(&window.name, end)
        .await
        .map_err(|e| e.to_string())?
    {
        return Ok(());
    }
    let tags = state
        .0
        .asset_tags
        .lock()
        .map(|t| t.clone())
        .unwrap_or_default();
    let changed = store
        .findings_changed(start, end)
        .await
        .map_err(|e| e.to_string())?;
    let mine = |f: &portgate_store::StoredFinding| {
        f.suppressed_by.as_deref() == Some(window.name.as_str()) || window.covers(&f.finding, &tags)
    };
    let mut items = Vec::new();
    let mut now_told = Vec::new();
    for f in changed.into_iter().filter(mine) {
        let was_suppressed = f.suppressed_by.as_deref() == Some(window.name.as_str());
        let item_state = match f.state {
            FindingState::Open => portgate_alert::ItemState::Open,
            FindingState::Acknowledged => portgate_alert::ItemState::Acknowledged,
            FindingState::Resolved => portgate_alert::ItemState::Resolved,
        };
        if was_suppressed && f.state == FindingState::Open && f.notified_at.is_none() {
            now_told.push(f.fingerprint.clone());
        }
        items.push(portgate_alert::AlertItem {
            ack_url: ack_url(state, &f.fingerprint, item_state, now),
            fingerprint: f.fingerprint,
            state: item_state,
            suppressed: was_suppressed,
            finding: f.finding,
        });
    }
    // Escalation of what is still open counts from this digest.
    store
        .mark_notified(&now_told, now)
        .await
        .map_err(|e| e.to_string())?;
    for (route, routed) in routes_of(state, &items) {
        let open = still_open(&routed);
        let alert = portgate_alert::Alert {
            id: format!(
                "portgate-window-{}-{}-{}",
                window.name,
                end.timestamp_millis(),
                route.name
            ),
            kind: portgate_alert::AlertKind::Digest,
            title: format!(
                "Maintenance window {} closed: {} finding{} changed, {open} still open",
                window.name,
                routed.len(),
                if routed.len() == 1 { "" } else { "s" }
            ),
            created_at: now,
            items: routed,
        };
        enqueue(state, &route.name, &alert, now).await?;
    }
    // Evaluation at once: the schedule due next runs now.
    let mut next: Option<(DateTime<Utc>, &str)> = None;
    for schedule in &state.0.config.schedules {
        if let Ok(Some(at)) = store.schedule_next_run(&schedule.name).await
            && next.is_none_or(|(n, _)| at < n)
        {
            next = Some((at, &schedule.name));
        }
    }
    if let Some((at, name)) = next
        && at > now
    {
        store
            .set_schedule(name, now, None)
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Sends the escalations due at `now`: one message per route with its findings, each
/// finding taken once (also with two servers on one database).
async fn escalate(
    state: &State,
    open_windows: &[Window],
    now: DateTime<Utc>,
) -> Result<(), String> {
    let config = &state.0.config;
    if config.escalations.is_empty() {
        return Ok(());
    }
    let store = &state.0.store;
    // Only what can be due is read: told at least the shortest `after` ago (a repeat comes
    // after a first escalation, which came that long after the alert), and, once escalated,
    // last escalated at least the shortest `repeat` ago.
    let before = |wait: Duration| {
        chrono::Duration::from_std(wait)
            .ok()
            .and_then(|w| now.checked_sub_signed(w))
    };
    let Some(told_before) = config
        .escalations
        .iter()
        .filter_map(|r| before(r.after))
        .max()
    else {
        return Ok(());
    };
    let repeated_before = config
        .escalations
        .iter()
        .filter_map(|r| r.repeat.and_then(before))
        .max();
    let open = store
        .escalation_candidates(told_before, repeated_before, ESCALATION_BATCH)
        .await
        .map_err(|e| e.to_string())?;
    let routes: Vec<String> = config.alerts.iter().map(|r| r.name.clone()).collect();
    let tags = state
        .0
        .asset_tags
        .lock()
        .map(|t| t.clone())
        .unwrap_or_default();
    let mut by_route: std::collections::BTreeMap<String, Vec<portgate_alert::AlertItem>> =
        Default::default();
    for f in open {
        if open_windows.iter().any(|w| w.covers(&f.finding, &tags)) {
            continue;
        }
        let Some(route) = escalation_due(&f, &config.escalations, &routes, now) else {
            continue;
        };
        if !store
            .claim_escalation(&f.fingerprint, f.escalations, &route, now)
            .await
            .map_err(|e| e.to_string())?
        {
            continue;
        }
        by_route
            .entry(route)
            .or_default()
            .push(portgate_alert::AlertItem {
                ack_url: ack_url(state, &f.fingerprint, portgate_alert::ItemState::Open, now),
                fingerprint: f.fingerprint,
                state: portgate_alert::ItemState::Open,
                suppressed: f.suppressed_by.is_some(),
                finding: f.finding,
            });
    }
    for (route, items) in by_route {
        let n = items.len();
        let alert = portgate_alert::Alert {
            id: format!("portgate-escalation-{}-{route}", now.timestamp_millis()),
            kind: portgate_alert::AlertKind::Escalated,
            title: format!(
                "{n} finding{} open and not acknowledged",
                if n == 1 { "" } else { "s" }
            ),
            created_at: now,
            items,
        };
        enqueue(state, &route, &alert, now).await?;
    }
    Ok(())
}

/// The most open findings looked at for escalation in one pass.
const ESCALATION_BATCH: i64 = 10_000;

fn title(schedule: &str, opened: usize, resolved: usize) -> String {
    let plural = |n: usize| if n == 1 { "" } else { "s" };
    match (opened, resolved) {
        (o, 0) => format!("{o} new finding{} ({schedule})", plural(o)),
        (0, r) => format!("{r} finding{} resolved ({schedule})", plural(r)),
        (o, r) => format!("{o} new finding{}, {r} resolved ({schedule})", plural(o)),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use portgate_store::StoredFinding;

    fn finding(severity: &str, escalation: Option<&str>) -> Finding {
        serde_json::from_value(serde_json::json!({
            "rule": "unapproved-port", "outcome": "fail", "severity": severity,
            "target": "198.18.0.10", "ip": "198.18.0.10", "protocol": "tcp", "port": 6379,
            "state": "open", "service": null, "product": null, "version": null,
            "asset": "cache", "owner": null, "escalation": escalation, "message": "m",
            "location": null
        }))
        .unwrap()
    }

    fn stored(f: Finding, notified: Option<DateTime<Utc>>) -> StoredFinding {
        let t0 = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        StoredFinding {
            fingerprint: "fp".into(),
            state: FindingState::Open,
            finding: f,
            first_seen: t0,
            last_seen: t0,
            missing_runs: 0,
            acknowledged_by: None,
            ack_comment: None,
            acknowledged_at: None,
            resolved_at: None,
            suppressed_by: None,
            notified_at: notified,
            escalated_at: None,
            escalations: 0,
            queue: None,
        }
    }

    /// The clock is an argument: the escalation times are checked minute by minute
    /// without waiting for them.
    #[test]
    fn escalation_waits_repeats_and_stops() {
        let t0 = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let min = |m: i64| t0 + chrono::Duration::minutes(m);
        let rules = [
            Escalation {
                min_severity: Severity::Critical,
                after: Duration::from_secs(5 * 60),
                repeat: None,
                to: "cto".into(),
            },
            Escalation {
                min_severity: Severity::High,
                after: Duration::from_secs(30 * 60),
                repeat: Some(Duration::from_secs(60 * 60)),
                to: "pager".into(),
            },
        ];
        let routes = [
            "ops".to_string(),
            "pager".to_string(),
            "cto".to_string(),
            "dba".to_string(),
        ];
        let mut f = stored(finding("high", None), Some(t0));
        assert_eq!(escalation_due(&f, &rules, &routes, min(29)), None);
        assert_eq!(
            escalation_due(&f, &rules, &routes, min(30)).as_deref(),
            Some("pager")
        );
        // Escalated at 30: again an hour later, not before.
        f.escalations = 1;
        f.escalated_at = Some(min(30));
        assert_eq!(escalation_due(&f, &rules, &routes, min(89)), None);
        assert_eq!(
            escalation_due(&f, &rules, &routes, min(90)).as_deref(),
            Some("pager")
        );
        // Acknowledged or resolved: never.
        f.state = FindingState::Acknowledged;
        assert_eq!(escalation_due(&f, &rules, &routes, min(600)), None);
        f.state = FindingState::Resolved;
        assert_eq!(escalation_due(&f, &rules, &routes, min(600)), None);
        // Below every rule: never. Critical: the first rule, once.
        let low = stored(finding("medium", None), Some(t0));
        assert_eq!(escalation_due(&low, &rules, &routes, min(600)), None);
        let mut critical = stored(finding("critical", None), Some(t0));
        assert_eq!(
            escalation_due(&critical, &rules, &routes, min(5)).as_deref(),
            Some("cto")
        );
        critical.escalations = 1;
        critical.escalated_at = Some(min(5));
        assert_eq!(escalation_due(&critical, &rules, &routes, min(600)), None);
        // Waiting for a window's digest (not told yet): not escalated.
        let waiting = stored(finding("high", None), None);
        assert_eq!(escalation_due(&waiting, &rules, &routes, min(600)), None);
        // The asset's own escalation channel, when it is a route, comes first.
        let own = stored(finding("high", Some("dba")), Some(t0));
        assert_eq!(
            escalation_due(&own, &rules, &routes, min(30)).as_deref(),
            Some("dba")
        );
        let unknown = stored(finding("high", Some("nobody")), Some(t0));
        assert_eq!(
            escalation_due(&unknown, &rules, &routes, min(30)).as_deref(),
            Some("pager")
        );
    }

    #[test]
    fn a_route_takes_by_severity_asset_and_owner() {
        let mut route = AlertRoute {
            name: "ops".into(),
            min_severity: Severity::High,
            assets: Vec::new(),
            owners: Vec::new(),
            channel: serde_json::from_value(serde_json::json!({"webhook": {"url": "http://hooks.example.test/x", "secret": "s"}})).unwrap(),
        };
        assert!(route.takes(&finding("high", None)));
        assert!(!route.takes(&finding("medium", None)));
        route.assets = vec!["web".into()];
        assert!(!route.takes(&finding("high", None)));
        route.assets = vec!["cache".into()];
        assert!(route.takes(&finding("high", None)));
        route.owners = vec!["dba".into()];
        assert!(
            !route.takes(&finding("high", None)),
            "the asset has no owner"
        );
    }
}
