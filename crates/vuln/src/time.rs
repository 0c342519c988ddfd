//! Timestamps as the feeds write them.

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};

/// Parses an RFC 3339 timestamp (OSV: `2024-07-01T13:15:06Z`), NVD's timestamp without
/// a zone (`2024-07-01T13:15:06.467`, taken as UTC), or a date (`2024-07-01`, midnight
/// UTC).
pub(crate) fn parse_timestamp(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if s.len() > 64 {
        return None;
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    if let Ok(t) = NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f") {
        return Some(t.and_utc());
    }
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return d.and_hms_opt(0, 0, 0).map(|t| t.and_utc());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms() {
        assert!(parse_timestamp("2024-07-01T13:15:06.467").is_some());
        assert!(parse_timestamp("2024-07-01T13:15:06").is_some());
        assert!(parse_timestamp("2024-07-01T13:15:06Z").is_some());
        assert!(parse_timestamp("2026-09-12T11:00:05.986201214Z").is_some());
        assert!(parse_timestamp("2024-07-01T13:15:06+02:00").is_some());
        assert!(parse_timestamp("2024-07-01").is_some());
        assert!(parse_timestamp("yesterday").is_none());
        assert!(parse_timestamp("2024-13-01").is_none());
    }
}
