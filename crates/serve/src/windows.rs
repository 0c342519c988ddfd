//! Maintenance windows: what one covers (every finding, an asset, a target, or the assets of
//! a tag) and when it is open (once, from a start to an end; or from each start of a cron,
//! in its time zone, for a duration). A finding raised inside an open window is recorded and
//! marked suppressed, never dropped; when the window closes the team gets one digest of what
//! changed during it and what is still open, and the next scheduled check runs at once.

use chrono::{DateTime, Utc};
use portgate_model::Finding;
use portgate_store::StoredWindow;
use std::collections::BTreeMap;
use std::time::Duration;

/// What a window covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WindowScope {
    /// Every finding.
    All,
    /// The findings of one manifest asset.
    Asset(String),
    /// The findings of one target, as written in the manifest.
    Target(String),
    /// The findings of the assets tagged `key: value`.
    Tag(String, String),
}

impl WindowScope {
    /// Reads `all`, `asset:NAME`, `target:TARGET` or `tag:KEY=VALUE`.
    pub fn parse(text: &str) -> Result<WindowScope, String> {
        let text = text.trim();
        if text == "all" {
            return Ok(WindowScope::All);
        }
        let bad = || format!("\"{text}\": give all, asset:NAME, target:TARGET or tag:KEY=VALUE");
        let (kind, value) = text.split_once(':').ok_or_else(bad)?;
        let value = value.trim();
        if value.is_empty() {
            return Err(bad());
        }
        match kind.trim() {
            "asset" => Ok(WindowScope::Asset(value.to_string())),
            "target" => Ok(WindowScope::Target(value.to_string())),
            "tag" => match value.split_once('=') {
                Some((k, v)) if !k.trim().is_empty() => {
                    Ok(WindowScope::Tag(k.trim().to_string(), v.trim().to_string()))
                }
                _ => Err(bad()),
            },
            _ => Err(bad()),
        }
    }

    fn stored(&self) -> (&'static str, Option<String>) {
        match self {
            WindowScope::All => ("all", None),
            WindowScope::Asset(a) => ("asset", Some(a.clone())),
            WindowScope::Target(t) => ("target", Some(t.clone())),
            WindowScope::Tag(k, v) => ("tag", Some(format!("{k}={v}"))),
        }
    }
}

impl std::fmt::Display for WindowScope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.stored() {
            (kind, Some(value)) => write!(f, "{kind}:{value}"),
            (kind, None) => f.write_str(kind),
        }
    }
}

/// When a window is open.
#[derive(Debug, Clone)]
pub enum WindowTime {
    /// From `start` until `end`.
    Once {
        /// Opens.
        start: DateTime<Utc>,
        /// Closes.
        end: DateTime<Utc>,
    },
    /// From each start of `cron` (in `timezone`) for `duration`.
    Recurring {
        /// The starts.
        cron: Box<croner::Cron>,
        /// As given.
        cron_text: String,
        /// The cron's time zone.
        timezone: chrono_tz::Tz,
        /// How long each stays open.
        duration: Duration,
    },
}

/// A maintenance window.
#[derive(Debug, Clone)]
pub struct Window {
    /// Its name.
    pub name: String,
    /// What it covers.
    pub scope: WindowScope,
    /// When it is open.
    pub time: WindowTime,
    /// Why.
    pub comment: Option<String>,
    /// Who made it.
    pub created_by: Option<String>,
}

/// Reads a cron expression (five fields, or six with seconds first); `what` names it in the
/// error.
pub fn parse_cron(text: &str, what: &str) -> Result<croner::Cron, String> {
    let cron = croner::Cron::new(text)
        .with_seconds_optional()
        .parse()
        .map_err(|e| format!("{what}: cron \"{text}\": {e}"))?;
    // One that never comes (30 February) would be searched for at every tick.
    cron.find_next_occurrence(&chrono::Utc::now(), false)
        .map_err(|_| format!("{what}: cron \"{text}\": never matches"))?;
    Ok(cron)
}

/// Reads an IANA time zone name (`Europe/Berlin`, `UTC`); `what` names it in the error.
pub fn parse_timezone(text: &str, what: &str) -> Result<chrono_tz::Tz, String> {
    text.trim().parse::<chrono_tz::Tz>().map_err(|_| {
        format!(
            "{what}: timezone \"{text}\": not an IANA time zone name such as Europe/Berlin or UTC"
        )
    })
}

/// The longest opening of a recurring window.
pub const MAX_DURATION: Duration = Duration::from_secs(366 * 24 * 3600);

/// The most starts looked through for the last closing of a recurring window (a window of
/// every second, digested a day late, is 86,400).
const MAX_OCCURRENCES: usize = 100_000;

impl Window {
    /// A one-off window; `what` names it in errors.
    pub fn once(
        name: &str,
        scope: WindowScope,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        what: &str,
    ) -> Result<Window, String> {
        check_name(name, what)?;
        if end <= start {
            return Err(format!(
                "{what}: end {} is not after start {}",
                end.to_rfc3339(),
                start.to_rfc3339()
            ));
        }
        Ok(Window {
            name: name.to_string(),
            scope,
            time: WindowTime::Once { start, end },
            comment: None,
            created_by: None,
        })
    }

    /// A recurring window; `what` names it in errors.
    pub fn recurring(
        name: &str,
        scope: WindowScope,
        cron: &str,
        timezone: Option<&str>,
        duration: Duration,
        what: &str,
    ) -> Result<Window, String> {
        check_name(name, what)?;
        let parsed = parse_cron(cron, what)?;
        let timezone = timezone
            .map(|tz| parse_timezone(tz, what))
            .transpose()?
            .unwrap_or(chrono_tz::UTC);
        if duration.is_zero() || duration > MAX_DURATION {
            return Err(format!(
                "{what}: duration: give how long each opening lasts, above zero and at most 366 days"
            ));
        }
        Ok(Window {
            name: name.to_string(),
            scope,
            time: WindowTime::Recurring {
                cron: Box::new(parsed),
                cron_text: cron.to_string(),
                timezone,
                duration,
            },
            comment: None,
            created_by: None,
        })
    }

    /// The opening of the window that contains `now`: its start and end.
    pub fn open_at(&self, now: DateTime<Utc>) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
        match &self.time {
            WindowTime::Once { start, end } => {
                (*start <= now && now < *end).then_some((*start, *end))
            }
            WindowTime::Recurring {
                cron,
                timezone,
                duration,
                ..
            } => {
                let duration = chrono::Duration::from_std(*duration).ok()?;
                // The first start at or after now − duration is the only one that can
                // still be open.
                let from = now.checked_sub_signed(duration)?.with_timezone(timezone);
                let start = cron.find_next_occurrence(&from, true).ok()?;
                let start = start.with_timezone(&Utc);
                let end = start.checked_add_signed(duration)?;
                (start <= now && now < end).then_some((start, end))
            }
        }
    }

    /// The last opening that closed after `since` and by `now`: its start and end.
    pub fn last_closing(
        &self,
        since: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
        match &self.time {
            WindowTime::Once { start, end } => {
                (*end > since && *end <= now).then_some((*start, *end))
            }
            WindowTime::Recurring {
                cron,
                timezone,
                duration,
                ..
            } => {
                let duration = chrono::Duration::from_std(*duration).ok()?;
                let from = since.checked_sub_signed(duration)?.with_timezone(timezone);
                let mut last = None;
                for start in cron.iter_after(from).take(MAX_OCCURRENCES) {
                    let start = start.with_timezone(&Utc);
                    let Some(end) = start.checked_add_signed(duration) else {
                        break;
                    };
                    if end > now {
                        break;
                    }
                    if end > since {
                        last = Some((start, end));
                    }
                }
                last
            }
        }
    }

    /// Whether the window covers `finding`; `tags` are the tags of each manifest asset.
    pub fn covers(
        &self,
        finding: &Finding,
        tags: &BTreeMap<String, BTreeMap<String, String>>,
    ) -> bool {
        match &self.scope {
            WindowScope::All => true,
            WindowScope::Asset(asset) => finding.asset.as_deref() == Some(asset.as_str()),
            WindowScope::Target(target) => finding.target == *target,
            WindowScope::Tag(key, value) => finding
                .asset
                .as_ref()
                .and_then(|a| tags.get(a))
                .and_then(|t| t.get(key))
                .is_some_and(|v| v == value),
        }
    }

    /// The row the store keeps; `source` is `config` or `api`.
    pub fn to_stored(&self, source: &str, now: DateTime<Utc>) -> StoredWindow {
        let (scope_kind, scope_value) = self.scope.stored();
        let (starts_at, ends_at, cron, timezone, duration_ms) = match &self.time {
            WindowTime::Once { start, end } => (Some(*start), Some(*end), None, None, None),
            WindowTime::Recurring {
                cron_text,
                timezone,
                duration,
                ..
            } => (
                None,
                None,
                Some(cron_text.clone()),
                Some(timezone.name().to_string()),
                Some(i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)),
            ),
        };
        StoredWindow {
            name: self.name.clone(),
            scope_kind: scope_kind.to_string(),
            scope_value,
            starts_at,
            ends_at,
            cron,
            timezone,
            duration_ms,
            comment: self.comment.clone(),
            created_by: self.created_by.clone(),
            created_at: now,
            source: source.to_string(),
            digested_until: None,
        }
    }

    /// The window of a stored row.
    pub fn from_stored(row: &StoredWindow) -> Result<Window, String> {
        let what = format!("maintenance window {}", row.name);
        let scope = match (row.scope_kind.as_str(), &row.scope_value) {
            ("all", _) => WindowScope::All,
            (kind, Some(value)) => WindowScope::parse(&format!("{kind}:{value}"))
                .map_err(|e| format!("{what}: {e}"))?,
            (kind, None) => return Err(format!("{what}: scope {kind} without a value")),
        };
        let mut window = match (&row.cron, row.starts_at, row.ends_at) {
            (Some(cron), _, _) => {
                let ms = u64::try_from(row.duration_ms.unwrap_or(0)).unwrap_or(0);
                Window::recurring(
                    &row.name,
                    scope,
                    cron,
                    row.timezone.as_deref(),
                    Duration::from_millis(ms),
                    &what,
                )?
            }
            (None, Some(start), Some(end)) => Window::once(&row.name, scope, start, end, &what)?,
            _ => return Err(format!("{what}: neither a cron nor a start and an end")),
        };
        window.comment.clone_from(&row.comment);
        window.created_by.clone_from(&row.created_by);
        Ok(window)
    }
}

fn check_name(name: &str, what: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{what}: name \"{}\": use 1 to 64 letters, digits, '-', '_' or '.'",
            name.escape_default()
        ))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(h: u32, m: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 10, h, m, 0).unwrap()
    }

    #[test]
    fn a_one_off_window_is_open_from_its_start_until_its_end() {
        let w = Window::once("m", WindowScope::All, at(2, 0), at(4, 0), "w").unwrap();
        assert_eq!(w.open_at(at(1, 59)), None);
        assert_eq!(w.open_at(at(2, 0)), Some((at(2, 0), at(4, 0))));
        assert_eq!(w.open_at(at(4, 0)), None);
        assert_eq!(w.last_closing(at(0, 0), at(3, 0)), None);
        assert_eq!(
            w.last_closing(at(0, 0), at(5, 0)),
            Some((at(2, 0), at(4, 0)))
        );
        // Digested already.
        assert_eq!(w.last_closing(at(4, 0), at(5, 0)), None);
        assert!(
            Window::once("m", WindowScope::All, at(4, 0), at(2, 0), "w")
                .unwrap_err()
                .contains("not after start")
        );
    }

    #[test]
    fn a_recurring_window_follows_its_cron_in_its_time_zone() {
        // Every day at 02:00 in Berlin (UTC+1 in March before the change): 01:00 UTC.
        let w = Window::recurring(
            "nightly",
            WindowScope::All,
            "0 2 * * *",
            Some("Europe/Berlin"),
            Duration::from_secs(2 * 3600),
            "w",
        )
        .unwrap();
        assert_eq!(w.open_at(at(0, 59)), None);
        assert_eq!(w.open_at(at(1, 0)), Some((at(1, 0), at(3, 0))));
        assert_eq!(w.open_at(at(2, 59)), Some((at(1, 0), at(3, 0))));
        assert_eq!(w.open_at(at(3, 0)), None);
        assert_eq!(w.last_closing(at(0, 0), at(2, 0)), None);
        assert_eq!(
            w.last_closing(at(0, 0), at(3, 0)),
            Some((at(1, 0), at(3, 0)))
        );
        // Down for three days: the last closing is the one digested.
        let later = Utc.with_ymd_and_hms(2026, 3, 13, 12, 0, 0).unwrap();
        let (start, _) = w.last_closing(at(3, 0), later).unwrap();
        assert_eq!(start, Utc.with_ymd_and_hms(2026, 3, 13, 1, 0, 0).unwrap());
        let never = Window::recurring(
            "n",
            WindowScope::All,
            "0 0 30 2 *",
            None,
            Duration::from_secs(1),
            "w",
        );
        assert!(never.unwrap_err().contains("never matches"));
        let bad = Window::recurring(
            "n",
            WindowScope::All,
            "0 2 * * *",
            Some("Mars/Base"),
            Duration::from_secs(1),
            "windows[0]",
        );
        assert!(
            bad.unwrap_err()
                .contains("windows[0]: timezone \"Mars/Base\"")
        );
    }

    #[test]
    fn scopes_read_and_cover() {
        assert_eq!(WindowScope::parse("all").unwrap(), WindowScope::All);
        assert_eq!(
            WindowScope::parse("tag:role=db").unwrap(),
            WindowScope::Tag("role".into(), "db".into())
        );
        for bad in ["", "asset:", "tag:role", "host:x", "everything"] {
            assert!(WindowScope::parse(bad).is_err(), "{bad}");
        }
        let finding: Finding = serde_json::from_value(serde_json::json!({
            "rule": "unapproved-port", "outcome": "fail", "severity": "high",
            "target": "198.18.0.10", "ip": "198.18.0.10", "protocol": "tcp", "port": 6379,
            "state": "open", "service": null, "product": null, "version": null,
            "asset": "cache", "owner": null, "escalation": null, "message": "m", "location": null
        }))
        .unwrap();
        let tags = BTreeMap::from([(
            "cache".to_string(),
            BTreeMap::from([("role".to_string(), "db".to_string())]),
        )]);
        let window = |scope: &str| {
            Window::once(
                "w",
                WindowScope::parse(scope).unwrap(),
                at(0, 0),
                at(1, 0),
                "w",
            )
            .unwrap()
        };
        assert!(window("all").covers(&finding, &tags));
        assert!(window("asset:cache").covers(&finding, &tags));
        assert!(!window("asset:web").covers(&finding, &tags));
        assert!(window("target:198.18.0.10").covers(&finding, &tags));
        assert!(window("tag:role=db").covers(&finding, &tags));
        assert!(!window("tag:role=web").covers(&finding, &tags));
        assert!(!window("tag:role=db").covers(&finding, &BTreeMap::new()));
    }

    #[test]
    fn a_window_survives_the_store() {
        let w = Window::recurring(
            "sat",
            WindowScope::Tag("role".into(), "db".into()),
            "0 22 * * 6",
            Some("America/New_York"),
            Duration::from_secs(3600),
            "w",
        )
        .unwrap();
        let back = Window::from_stored(&w.to_stored("api", at(0, 0))).unwrap();
        assert_eq!(back.scope, w.scope);
        assert_eq!(back.open_at(at(0, 0)), w.open_at(at(0, 0)));
        let saturday = Utc.with_ymd_and_hms(2026, 3, 15, 2, 30, 0).unwrap();
        assert!(back.open_at(saturday).is_some());
    }
}
