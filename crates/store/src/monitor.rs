//! What monitoring keeps: each schedule's next run, the findings with their life and its
//! events, and the alert outbox with its delivery log (a message is written here before it
//! is sent, so a receiver that is down, or a server that restarts, loses nothing).

use crate::{Pool, Store, StoreError, from_ms, ms};
use chrono::{DateTime, Utc};
use portgate_model::Finding;
use portgate_model::lifecycle::{FindingState, Tracked};
use serde::{Deserialize, Serialize};
use sqlx::Row;
use std::time::Duration;

/// A finding as stored, with its life.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredFinding {
    /// Its fingerprint.
    pub fingerprint: String,
    /// Where it stands.
    pub state: FindingState,
    /// The finding as last seen.
    pub finding: Finding,
    /// First seen.
    pub first_seen: DateTime<Utc>,
    /// Last seen.
    pub last_seen: DateTime<Utc>,
    /// Checks in a row of its target that did not show it.
    pub missing_runs: u32,
    /// Who acknowledged it.
    pub acknowledged_by: Option<String>,
    /// What they said.
    pub ack_comment: Option<String>,
    /// When.
    pub acknowledged_at: Option<DateTime<Utc>>,
    /// When it was last resolved.
    pub resolved_at: Option<DateTime<Utc>>,
    /// The maintenance window it was (last) raised inside: kept as the mark of it.
    pub suppressed_by: Option<String>,
    /// When its opening was last sent (the repeat interval and escalation count from here);
    /// none while it waits for a window to close.
    pub notified_at: Option<DateTime<Utc>>,
    /// When it was last escalated.
    pub escalated_at: Option<DateTime<Utc>>,
    /// How often it was escalated since it was (re)opened.
    pub escalations: u32,
    /// `review`: a finding of a target no asset lists, in the review queue.
    pub queue: Option<String>,
}

/// One change in a finding's life.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FindingEvent {
    /// When.
    pub at: DateTime<Utc>,
    /// `opened`, `reopened`, `acknowledged`, `resolved`.
    pub event: String,
    /// Who (an acknowledgement).
    pub actor: Option<String>,
    /// What they said.
    pub comment: Option<String>,
    /// The check job that saw it.
    pub job_id: Option<i64>,
    /// The window of a `suppressed` event, the channel of an `escalated` one.
    pub detail: Option<String>,
}

/// What a check did to one finding, to be stored.
#[derive(Debug, Clone)]
pub enum FindingUpdate<'a> {
    /// First seen.
    Opened(&'a Finding),
    /// Seen again after it was resolved.
    Reopened(&'a Finding),
    /// Still there.
    Seen(&'a Finding),
    /// Not shown, not yet confirmed gone.
    Pending(u32),
    /// Gone.
    Resolved,
}

/// An alert message waiting in the outbox, or sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxMessage {
    /// Its row.
    pub id: i64,
    /// The channel's name.
    pub channel: String,
    /// The message's id, the same on every attempt.
    pub message_id: String,
    /// The alert (JSON).
    pub alert: String,
    /// Attempts so far.
    pub attempts: i64,
    /// When it was written.
    pub created_at: DateTime<Utc>,
    /// `pending`, `delivered`, `failed`.
    pub status: String,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
}

/// A row of `finding_events`: at, event, actor, comment, job.
type EventRow = (
    i64,
    String,
    Option<String>,
    Option<String>,
    Option<i64>,
    Option<String>,
);

const FINDING_COLUMNS: &str = "fingerprint, state, finding, first_seen_ms, last_seen_ms, \
     missing_runs, acknowledged_by, ack_comment, acknowledged_at_ms, resolved_at_ms, \
     suppressed_by, notified_at_ms, escalated_at_ms, escalations, queue";

fn finding_from<R>(row: &R) -> Result<StoredFinding, sqlx::Error>
where
    R: Row,
    for<'c> &'c str: sqlx::ColumnIndex<R>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<String>: sqlx::Decode<'r, R::Database>,
    for<'r> Option<i64>: sqlx::Decode<'r, R::Database>,
{
    let state: String = row.try_get("state")?;
    let text: String = row.try_get("finding")?;
    let decode = |e: String| sqlx::Error::Decode(e.into());
    Ok(StoredFinding {
        fingerprint: row.try_get("fingerprint")?,
        state: FindingState::parse(&state)
            .ok_or_else(|| decode(format!("unknown finding state \"{state}\"")))?,
        finding: serde_json::from_str(&text).map_err(|e| decode(e.to_string()))?,
        first_seen: from_ms(row.try_get("first_seen_ms")?),
        last_seen: from_ms(row.try_get("last_seen_ms")?),
        missing_runs: u32::try_from(row.try_get::<i64, _>("missing_runs")?).unwrap_or(u32::MAX),
        acknowledged_by: row.try_get("acknowledged_by")?,
        ack_comment: row.try_get("ack_comment")?,
        acknowledged_at: row
            .try_get::<Option<i64>, _>("acknowledged_at_ms")?
            .map(from_ms),
        resolved_at: row
            .try_get::<Option<i64>, _>("resolved_at_ms")?
            .map(from_ms),
        suppressed_by: row.try_get("suppressed_by")?,
        notified_at: row
            .try_get::<Option<i64>, _>("notified_at_ms")?
            .map(from_ms),
        escalated_at: row
            .try_get::<Option<i64>, _>("escalated_at_ms")?
            .map(from_ms),
        escalations: u32::try_from(row.try_get::<i64, _>("escalations")?).unwrap_or(u32::MAX),
        queue: row.try_get("queue")?,
    })
}

const OUTBOX_COLUMNS: &str =
    "id, channel, message_id, alert, attempts, created_at_ms, status, last_error";

fn outbox_from<R>(row: &R) -> Result<OutboxMessage, sqlx::Error>
where
    R: Row,
    for<'c> &'c str: sqlx::ColumnIndex<R>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<String>: sqlx::Decode<'r, R::Database>,
{
    Ok(OutboxMessage {
        id: row.try_get("id")?,
        channel: row.try_get("channel")?,
        message_id: row.try_get("message_id")?,
        alert: row.try_get("alert")?,
        attempts: row.try_get("attempts")?,
        created_at: from_ms(row.try_get("created_at_ms")?),
        status: row.try_get("status")?,
        last_error: row.try_get("last_error")?,
    })
}

impl Store {
    /// The next run of schedule `name`, if it has run or been planned before.
    pub async fn schedule_next_run(&self, name: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
        let row: Option<(i64,)> = on_pool!(self, pool => {
            sqlx::query_as("SELECT next_run_at_ms FROM schedules WHERE name = $1")
                .bind(name)
                .fetch_optional(pool)
                .await
        })
        .map_err(self.query_err(format!("read schedule {name}")))?;
        Ok(row.map(|(at,)| from_ms(at)))
    }

    /// Records schedule `name`'s next run (and, when it just ran, that run and its job).
    pub async fn set_schedule(
        &self,
        name: &str,
        next_run: DateTime<Utc>,
        ran: Option<(DateTime<Utc>, i64)>,
    ) -> Result<(), StoreError> {
        let (last_run, last_job) = ran.map_or((None, None), |(at, job)| (Some(ms(at)), Some(job)));
        on_pool!(self, pool => {
            sqlx::query(
                "INSERT INTO schedules (name, next_run_at_ms, last_run_at_ms, last_job_id) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT (name) DO UPDATE SET \
                 next_run_at_ms = excluded.next_run_at_ms, \
                 last_run_at_ms = COALESCE(excluded.last_run_at_ms, schedules.last_run_at_ms), \
                 last_job_id = COALESCE(excluded.last_job_id, schedules.last_job_id)",
            )
            .bind(name)
            .bind(ms(next_run))
            .bind(last_run)
            .bind(last_job)
            .execute(pool)
            .await
            .map(|_| ())
        })
        .map_err(self.query_err(format!("record schedule {name}")))?;
        Ok(())
    }

    /// The tracked findings of `targets` (any state), for the lifecycle of one check.
    pub async fn tracked_findings(&self, targets: &[String]) -> Result<Vec<Tracked>, StoreError> {
        let mut out = Vec::new();
        for target in targets {
            let rows: Vec<(String, String, i64)> = on_pool!(self, pool => {
                sqlx::query_as(
                    "SELECT fingerprint, state, missing_runs FROM findings WHERE target = $1",
                )
                .bind(target)
                .fetch_all(pool)
                .await
            })
            .map_err(self.query_err(format!("read the findings of {target}")))?;
            out.extend(
                rows.into_iter()
                    .filter_map(|(fingerprint, state, missing)| {
                        Some(Tracked {
                            fingerprint,
                            target: target.clone(),
                            state: FindingState::parse(&state)?,
                            missing_runs: u32::try_from(missing).unwrap_or(u32::MAX),
                        })
                    }),
            );
        }
        Ok(out)
    }

    /// Stores what check job `job_id` did to each finding, with an event for each change of
    /// state, in one transaction.
    pub async fn update_findings(
        &self,
        job_id: Option<i64>,
        updates: &[(String, FindingUpdate<'_>)],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let now = ms(now);
        on_pool!(self, pool => {
            async {
                let mut tx = pool.begin().await?;
                for (fp, update) in updates {
                    let event = match update {
                        FindingUpdate::Opened(f) => {
                            let text = serde_json::to_string(f).unwrap_or_default();
                            sqlx::query(
                                "INSERT INTO findings (fingerprint, state, rule, severity, target, \
                                 endpoint, asset, finding, first_seen_ms, last_seen_ms) \
                                 VALUES ($1, 'open', $2, $3, $4, $5, $6, $7, $8, $8)",
                            )
                            .bind(fp)
                            .bind(f.rule.id())
                            .bind(f.severity.as_str())
                            .bind(&f.target)
                            .bind(f.endpoint())
                            .bind(&f.asset)
                            .bind(text)
                            .bind(now)
                            .execute(&mut *tx)
                            .await?;
                            Some("opened")
                        }
                        FindingUpdate::Reopened(f) => {
                            sqlx::query(
                                "UPDATE findings SET state = 'open', finding = $2, last_seen_ms = $3, \
                                 missing_runs = 0, acknowledged_by = NULL, ack_comment = NULL, \
                                 acknowledged_at_ms = NULL, suppressed_by = NULL, \
                                 escalated_at_ms = NULL, escalations = 0 WHERE fingerprint = $1",
                            )
                            .bind(fp)
                            .bind(serde_json::to_string(f).unwrap_or_default())
                            .bind(now)
                            .execute(&mut *tx)
                            .await?;
                            Some("reopened")
                        }
                        FindingUpdate::Seen(f) => {
                            sqlx::query(
                                "UPDATE findings SET finding = $2, last_seen_ms = $3, missing_runs = 0 \
                                 WHERE fingerprint = $1",
                            )
                            .bind(fp)
                            .bind(serde_json::to_string(f).unwrap_or_default())
                            .bind(now)
                            .execute(&mut *tx)
                            .await?;
                            None
                        }
                        FindingUpdate::Pending(missing) => {
                            sqlx::query("UPDATE findings SET missing_runs = $2 WHERE fingerprint = $1")
                                .bind(fp)
                                .bind(i64::from(*missing))
                                .execute(&mut *tx)
                                .await?;
                            None
                        }
                        FindingUpdate::Resolved => {
                            sqlx::query(
                                "UPDATE findings SET state = 'resolved', resolved_at_ms = $2, \
                                 missing_runs = 0 WHERE fingerprint = $1",
                            )
                            .bind(fp)
                            .bind(now)
                            .execute(&mut *tx)
                            .await?;
                            Some("resolved")
                        }
                    };
                    if let Some(event) = event {
                        sqlx::query(
                            "INSERT INTO finding_events (fingerprint, at_ms, event, job_id) \
                             VALUES ($1, $2, $3, $4)",
                        )
                        .bind(fp)
                        .bind(now)
                        .bind(event)
                        .bind(job_id)
                        .execute(&mut *tx)
                        .await?;
                    }
                }
                tx.commit().await
            }
            .await
        })
        .map_err(self.query_err("record the findings of a check"))
    }

    /// Acknowledges an open finding: `Ok(None)` when there is no such finding; an
    /// acknowledged or resolved one is returned unchanged.
    pub async fn acknowledge_finding(
        &self,
        fingerprint: &str,
        by: &str,
        comment: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<StoredFinding>, StoreError> {
        let at = ms(now);
        let changed = on_pool!(self, pool => {
            async {
                let mut tx = pool.begin().await?;
                let done = sqlx::query(
                    "UPDATE findings SET state = 'acknowledged', acknowledged_by = $2, \
                     ack_comment = $3, acknowledged_at_ms = $4 \
                     WHERE fingerprint = $1 AND state = 'open'",
                )
                .bind(fingerprint)
                .bind(by)
                .bind(comment)
                .bind(at)
                .execute(&mut *tx)
                .await?;
                if done.rows_affected() > 0 {
                    sqlx::query(
                        "INSERT INTO finding_events (fingerprint, at_ms, event, actor, comment) \
                         VALUES ($1, $2, 'acknowledged', $3, $4)",
                    )
                    .bind(fingerprint)
                    .bind(at)
                    .bind(by)
                    .bind(comment)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await
            }
            .await
        });
        changed.map_err(self.query_err(format!("acknowledge finding {fingerprint}")))?;
        self.finding(fingerprint).await
    }

    /// One finding.
    pub async fn finding(&self, fingerprint: &str) -> Result<Option<StoredFinding>, StoreError> {
        let sql = format!("SELECT {FINDING_COLUMNS} FROM findings WHERE fingerprint = $1");
        on_pool!(self, pool => {
            let row = sqlx::query(&sql).bind(fingerprint).fetch_optional(pool).await;
            row.and_then(|row| row.as_ref().map(finding_from).transpose())
        })
        .map_err(self.query_err(format!("read finding {fingerprint}")))
    }

    /// The findings in `state` (all when none), in the review queue or not (both when
    /// none), newest seen first, at most `limit`.
    pub async fn findings(
        &self,
        state: Option<FindingState>,
        review: Option<bool>,
        limit: i64,
    ) -> Result<Vec<StoredFinding>, StoreError> {
        let sql = format!(
            "SELECT {FINDING_COLUMNS} FROM findings WHERE ($1 IS NULL OR state = $1) \
             AND ($2 IS NULL OR (COALESCE(queue, '') = 'review') = $2) \
             ORDER BY last_seen_ms DESC, fingerprint LIMIT $3"
        );
        on_pool!(self, pool => {
            let rows = sqlx::query(&sql)
                .bind(state.map(FindingState::as_str))
                .bind(review)
                .bind(limit)
                .fetch_all(pool)
                .await;
            rows.and_then(|rows| rows.iter().map(finding_from).collect())
        })
        .map_err(self.query_err("list findings"))
    }

    /// The life of a finding, oldest first.
    pub async fn finding_events(&self, fingerprint: &str) -> Result<Vec<FindingEvent>, StoreError> {
        let rows: Vec<EventRow> = on_pool!(self, pool => {
            sqlx::query_as(
                "SELECT at_ms, event, actor, comment, job_id, detail FROM finding_events \
                 WHERE fingerprint = $1 ORDER BY id",
            )
            .bind(fingerprint)
            .fetch_all(pool)
            .await
        })
        .map_err(self.query_err(format!("read the events of finding {fingerprint}")))?;
        Ok(rows
            .into_iter()
            .map(|(at, event, actor, comment, job_id, detail)| FindingEvent {
                at: from_ms(at),
                event,
                actor,
                comment,
                job_id,
                detail,
            })
            .collect())
    }

    /// Writes an alert for `channel` to the outbox; a message already there (the same
    /// channel and message id) is not written twice. Whether it was written.
    pub async fn enqueue_alert(
        &self,
        channel: &str,
        message_id: &str,
        alert: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let done = on_pool!(self, pool => {
            sqlx::query(
                "INSERT INTO outbox (channel, message_id, alert, created_at_ms, next_attempt_at_ms, status) \
                 VALUES ($1, $2, $3, $4, $4, 'pending') ON CONFLICT (channel, message_id) DO NOTHING",
            )
            .bind(channel)
            .bind(message_id)
            .bind(alert)
            .bind(ms(now))
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })
        .map_err(self.query_err(format!("queue an alert for {channel}")))?;
        Ok(done > 0)
    }

    /// Takes up to `limit` messages due at `now` (pending, attempt time reached, no live
    /// lease) for `owner`, leased for `lease`.
    pub async fn claim_alerts(
        &self,
        owner: &str,
        now: DateTime<Utc>,
        lease: Duration,
        limit: i64,
    ) -> Result<Vec<OutboxMessage>, StoreError> {
        let now_ms = ms(now);
        let until = now_ms.saturating_add(i64::try_from(lease.as_millis()).unwrap_or(i64::MAX));
        let sql = format!(
            "UPDATE outbox SET lease_owner = $1, lease_until_ms = $2 WHERE id IN \
             (SELECT id FROM outbox WHERE status = 'pending' AND next_attempt_at_ms <= $3 \
              AND (lease_until_ms IS NULL OR lease_until_ms < $3) ORDER BY id LIMIT $4) \
             AND (lease_until_ms IS NULL OR lease_until_ms < $3) RETURNING {OUTBOX_COLUMNS}"
        );
        on_pool!(self, pool => {
            let rows = sqlx::query(&sql)
                .bind(owner)
                .bind(until)
                .bind(now_ms)
                .bind(limit)
                .fetch_all(pool)
                .await;
            rows.and_then(|rows| rows.iter().map(outbox_from).collect())
        })
        .map_err(self.query_err("take alerts due"))
    }

    /// Records an attempt of message `id` by `owner`: delivered (`Ok`), or failed with the
    /// next attempt at `retry_at` (`None`: given up). Written with the delivery log.
    pub async fn record_delivery(
        &self,
        id: i64,
        owner: &str,
        outcome: Result<&str, (&str, Option<DateTime<Utc>>)>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let at = ms(now);
        on_pool!(self, pool => {
            async {
                let mut tx = pool.begin().await?;
                let (ok, detail) = match outcome {
                    Ok(detail) => {
                        sqlx::query(
                            "UPDATE outbox SET status = 'delivered', delivered_at_ms = $3, \
                             attempts = attempts + 1, lease_owner = NULL, lease_until_ms = NULL \
                             WHERE id = $1 AND lease_owner = $2",
                        )
                        .bind(id)
                        .bind(owner)
                        .bind(at)
                        .execute(&mut *tx)
                        .await?;
                        (true, detail)
                    }
                    Err((error, retry_at)) => {
                        sqlx::query(
                            "UPDATE outbox SET status = $3, next_attempt_at_ms = $4, last_error = $5, \
                             attempts = attempts + 1, lease_owner = NULL, lease_until_ms = NULL \
                             WHERE id = $1 AND lease_owner = $2",
                        )
                        .bind(id)
                        .bind(owner)
                        .bind(if retry_at.is_some() { "pending" } else { "failed" })
                        .bind(retry_at.map_or(at, ms))
                        .bind(error)
                        .execute(&mut *tx)
                        .await?;
                        (false, error)
                    }
                };
                sqlx::query("INSERT INTO deliveries (outbox_id, at_ms, ok, detail) VALUES ($1, $2, $3, $4)")
                    .bind(id)
                    .bind(at)
                    .bind(ok)
                    .bind(detail)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await
            }
            .await
        })
        .map_err(self.query_err(format!("record a delivery of alert {id}")))
    }

    /// The outbox, newest first, at most `limit` messages.
    pub async fn outbox(&self, limit: i64) -> Result<Vec<OutboxMessage>, StoreError> {
        let sql = format!("SELECT {OUTBOX_COLUMNS} FROM outbox ORDER BY id DESC LIMIT $1");
        on_pool!(self, pool => {
            let rows = sqlx::query(&sql).bind(limit).fetch_all(pool).await;
            rows.and_then(|rows| rows.iter().map(outbox_from).collect())
        })
        .map_err(self.query_err("read the outbox"))
    }

    /// Marks findings raised inside maintenance window `window`: kept, not sent until the
    /// window closes (its digest), with a `suppressed` event.
    pub async fn mark_suppressed(
        &self,
        fingerprints: &[String],
        window: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let at = ms(now);
        on_pool!(self, pool => {
            async {
                let mut tx = pool.begin().await?;
                for fp in fingerprints {
                    sqlx::query(
                        "UPDATE findings SET suppressed_by = $2, notified_at_ms = NULL \
                         WHERE fingerprint = $1",
                    )
                    .bind(fp)
                    .bind(window)
                    .execute(&mut *tx)
                    .await?;
                    sqlx::query(
                        "INSERT INTO finding_events (fingerprint, at_ms, event, detail) \
                         VALUES ($1, $2, 'suppressed', $3)",
                    )
                    .bind(fp)
                    .bind(at)
                    .bind(window)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await
            }
            .await
        })
        .map_err(self.query_err(format!("mark findings suppressed by window {window}")))
    }

    /// Records that the opening of these findings was sent at `now`.
    pub async fn mark_notified(
        &self,
        fingerprints: &[String],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let at = ms(now);
        on_pool!(self, pool => {
            async {
                let mut tx = pool.begin().await?;
                for fp in fingerprints {
                    sqlx::query("UPDATE findings SET notified_at_ms = $2 WHERE fingerprint = $1")
                        .bind(fp)
                        .bind(at)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await
            }
            .await
        })
        .map_err(self.query_err("record findings sent"))
    }

    /// Takes escalation number `seen + 1` of open finding `fingerprint` to `channel`: true
    /// when this caller took it (another server, or a finding acknowledged meanwhile, makes
    /// it false). Recorded with an `escalated` event.
    pub async fn claim_escalation(
        &self,
        fingerprint: &str,
        seen: u32,
        channel: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let at = ms(now);
        on_pool!(self, pool => {
            async {
                let mut tx = pool.begin().await?;
                let done = sqlx::query(
                    "UPDATE findings SET escalated_at_ms = $3, escalations = escalations + 1 \
                     WHERE fingerprint = $1 AND state = 'open' AND escalations = $2",
                )
                .bind(fingerprint)
                .bind(i64::from(seen))
                .bind(at)
                .execute(&mut *tx)
                .await?;
                let taken = done.rows_affected() > 0;
                if taken {
                    sqlx::query(
                        "INSERT INTO finding_events (fingerprint, at_ms, event, detail) \
                         VALUES ($1, $2, 'escalated', $3)",
                    )
                    .bind(fingerprint)
                    .bind(at)
                    .bind(channel)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await.map(|()| taken)
            }
            .await
        })
        .map_err(self.query_err(format!("escalate finding {fingerprint}")))
    }

    /// The findings with a change of state (opened, reopened, suppressed, resolved,
    /// acknowledged) between `from` and `until`, as they stand now.
    pub async fn findings_changed(
        &self,
        from: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Vec<StoredFinding>, StoreError> {
        let sql = format!(
            "SELECT {FINDING_COLUMNS} FROM findings WHERE fingerprint IN \
             (SELECT fingerprint FROM finding_events WHERE at_ms >= $1 AND at_ms <= $2) \
             ORDER BY first_seen_ms, fingerprint"
        );
        on_pool!(self, pool => {
            let rows = sqlx::query(&sql)
                .bind(ms(from))
                .bind(ms(until))
                .fetch_all(pool)
                .await;
            rows.and_then(|rows| rows.iter().map(finding_from).collect())
        })
        .map_err(self.query_err("read the findings changed in a window"))
    }

    /// Gives back the messages `owner` took and has not sent (a sender stopping), so that
    /// the next sender need not wait for the lease to run out.
    pub async fn release_alerts(&self, owner: &str) -> Result<u64, StoreError> {
        on_pool!(self, pool => {
            sqlx::query(
                "UPDATE outbox SET lease_owner = NULL, lease_until_ms = NULL \
                 WHERE lease_owner = $1 AND status = 'pending'",
            )
            .bind(owner)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })
        .map_err(self.query_err("give back the alerts taken"))
    }

    /// Puts findings in the review queue (targets no asset lists: reviewed, never alerted).
    pub async fn mark_review(&self, fingerprints: &[String]) -> Result<(), StoreError> {
        on_pool!(self, pool => {
            async {
                let mut tx = pool.begin().await?;
                for fp in fingerprints {
                    sqlx::query("UPDATE findings SET queue = 'review' WHERE fingerprint = $1")
                        .bind(fp)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await
            }
            .await
        })
        .map_err(self.query_err("put findings in the review queue"))
    }

    /// Open findings outside the review queue that escalation may take: alerted at or
    /// before `told_before`, and either never escalated or, when `repeated_before` is
    /// given, last escalated at or before it. Oldest alert first, at most `limit`.
    pub async fn escalation_candidates(
        &self,
        told_before: DateTime<Utc>,
        repeated_before: Option<DateTime<Utc>>,
        limit: i64,
    ) -> Result<Vec<StoredFinding>, StoreError> {
        let sql = format!(
            "SELECT {FINDING_COLUMNS} FROM findings WHERE state = 'open' \
             AND COALESCE(queue, '') <> 'review' AND notified_at_ms <= $1 \
             AND (escalations = 0 OR escalated_at_ms <= $2) \
             ORDER BY notified_at_ms, fingerprint LIMIT $3"
        );
        on_pool!(self, pool => {
            let rows = sqlx::query(&sql)
                .bind(ms(told_before))
                .bind(repeated_before.map(ms))
                .bind(limit)
                .fetch_all(pool)
                .await;
            rows.and_then(|rows| rows.iter().map(finding_from).collect())
        })
        .map_err(self.query_err("read the findings escalation may take"))
    }
}
