//! Maintenance windows as stored: those of the configuration file (kept in step with it at
//! each start) and those made over the API or the CLI. What a window means (when it is open,
//! what it covers) is the service's; this module keeps the rows.

use crate::{Pool, Store, StoreError, from_ms, ms};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::Row;

/// A maintenance window as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredWindow {
    /// Its name (unique).
    pub name: String,
    /// What it covers: `all`, `asset`, `target` or `tag`.
    pub scope_kind: String,
    /// The asset, the target, or `key=value` of a tag.
    pub scope_value: Option<String>,
    /// One-off: from.
    pub starts_at: Option<DateTime<Utc>>,
    /// One-off: until.
    pub ends_at: Option<DateTime<Utc>>,
    /// Recurring: each start.
    pub cron: Option<String>,
    /// Recurring: the cron's time zone (IANA name); UTC when none.
    pub timezone: Option<String>,
    /// Recurring: how long each stays open, in milliseconds.
    pub duration_ms: Option<i64>,
    /// Why.
    pub comment: Option<String>,
    /// Who made it.
    pub created_by: Option<String>,
    /// When.
    pub created_at: DateTime<Utc>,
    /// `config` or `api`.
    pub source: String,
    /// The end of the last closing whose digest was written.
    pub digested_until: Option<DateTime<Utc>>,
}

const WINDOW_COLUMNS: &str = "name, scope_kind, scope_value, starts_at_ms, ends_at_ms, cron, \
     timezone, duration_ms, comment, created_by, created_at_ms, source, digested_until_ms";

fn window_from<R>(row: &R) -> Result<StoredWindow, sqlx::Error>
where
    R: Row,
    for<'c> &'c str: sqlx::ColumnIndex<R>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<String>: sqlx::Decode<'r, R::Database>,
    for<'r> Option<i64>: sqlx::Decode<'r, R::Database>,
{
    let at = |name: &str| row.try_get::<Option<i64>, _>(name).map(|v| v.map(from_ms));
    Ok(StoredWindow {
        name: row.try_get("name")?,
        scope_kind: row.try_get("scope_kind")?,
        scope_value: row.try_get("scope_value")?,
        starts_at: at("starts_at_ms")?,
        ends_at: at("ends_at_ms")?,
        cron: row.try_get("cron")?,
        timezone: row.try_get("timezone")?,
        duration_ms: row.try_get("duration_ms")?,
        comment: row.try_get("comment")?,
        created_by: row.try_get("created_by")?,
        created_at: from_ms(row.try_get("created_at_ms")?),
        source: row.try_get("source")?,
        digested_until: at("digested_until_ms")?,
    })
}

impl Store {
    /// Writes window `w` (a new one, or a change of the one of its name; the record of its
    /// last digest is kept).
    pub async fn put_window(&self, w: &StoredWindow) -> Result<(), StoreError> {
        on_pool!(self, pool => {
            sqlx::query(
                "INSERT INTO maintenance_windows (name, scope_kind, scope_value, starts_at_ms, \
                 ends_at_ms, cron, timezone, duration_ms, comment, created_by, created_at_ms, \
                 source) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
                 ON CONFLICT (name) DO UPDATE SET scope_kind = excluded.scope_kind, \
                 scope_value = excluded.scope_value, starts_at_ms = excluded.starts_at_ms, \
                 ends_at_ms = excluded.ends_at_ms, cron = excluded.cron, \
                 timezone = excluded.timezone, duration_ms = excluded.duration_ms, \
                 comment = excluded.comment, created_by = excluded.created_by, \
                 source = excluded.source",
            )
            .bind(&w.name)
            .bind(&w.scope_kind)
            .bind(&w.scope_value)
            .bind(w.starts_at.map(ms))
            .bind(w.ends_at.map(ms))
            .bind(&w.cron)
            .bind(&w.timezone)
            .bind(w.duration_ms)
            .bind(&w.comment)
            .bind(&w.created_by)
            .bind(ms(w.created_at))
            .bind(&w.source)
            .execute(pool)
            .await
            .map(|_| ())
        })
        .map_err(self.query_err(format!("write maintenance window {}", w.name)))
    }

    /// Every window, by name.
    pub async fn windows(&self) -> Result<Vec<StoredWindow>, StoreError> {
        let sql = format!("SELECT {WINDOW_COLUMNS} FROM maintenance_windows ORDER BY name");
        on_pool!(self, pool => {
            let rows = sqlx::query(&sql).fetch_all(pool).await;
            rows.and_then(|rows| rows.iter().map(window_from).collect())
        })
        .map_err(self.query_err("read the maintenance windows"))
    }

    /// Deletes window `name`: whether there was one.
    pub async fn delete_window(&self, name: &str) -> Result<bool, StoreError> {
        let done = on_pool!(self, pool => {
            sqlx::query("DELETE FROM maintenance_windows WHERE name = $1")
                .bind(name)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })
        .map_err(self.query_err(format!("delete maintenance window {name}")))?;
        Ok(done > 0)
    }

    /// Keeps the configuration file's windows in step with `windows`: each written, and a
    /// `config` window the file no longer names deleted (those of the API are left alone).
    pub async fn sync_config_windows(&self, windows: &[StoredWindow]) -> Result<(), StoreError> {
        for w in windows {
            self.put_window(w).await?;
        }
        let names: Vec<String> = windows.iter().map(|w| w.name.clone()).collect();
        for stored in self.windows().await? {
            if stored.source == "config" && !names.contains(&stored.name) {
                self.delete_window(&stored.name).await?;
            }
        }
        Ok(())
    }

    /// Takes the digest of window `name`'s closing at `end`: true for the one caller that
    /// took it (a closing is digested once, also with two servers on one database).
    pub async fn claim_window_digest(
        &self,
        name: &str,
        end: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let done = on_pool!(self, pool => {
            sqlx::query(
                "UPDATE maintenance_windows SET digested_until_ms = $2 WHERE name = $1 \
                 AND (digested_until_ms IS NULL OR digested_until_ms < $2)",
            )
            .bind(name)
            .bind(ms(end))
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })
        .map_err(self.query_err(format!("record the digest of window {name}")))?;
        Ok(done > 0)
    }
}
