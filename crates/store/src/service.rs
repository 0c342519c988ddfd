//! What `portgate serve` keeps: API keys (only a hash of each) and the job queue, with
//! leases so that a job whose worker died is run again.

use crate::{Pool, Store, StoreError, from_ms, ms};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::Row;
use std::time::Duration;

/// An API key as stored: never the key itself, only its hash and visible prefix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKey {
    /// Its id.
    pub id: i64,
    /// The name given at creation (`ci-staging`).
    pub name: String,
    /// The key's first characters, to tell keys apart.
    pub prefix: String,
    /// CIDRs the key is narrowed to; empty: the server's whole scope.
    pub scope: Vec<String>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it was revoked.
    pub revoked_at: Option<DateTime<Utc>>,
}

/// Where a job stands.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobStatus {
    /// Waiting for a worker.
    #[default]
    Queued,
    /// A worker holds its lease.
    Running,
    /// Done, everything covered.
    Succeeded,
    /// Done, but something was left out (a target failed, a deadline cut it short).
    Partial,
    /// Could not be done.
    Failed,
    /// Cancelled before it finished.
    Cancelled,
}

impl JobStatus {
    /// Every status, in order.
    pub const ALL: [JobStatus; 6] = [
        JobStatus::Queued,
        JobStatus::Running,
        JobStatus::Succeeded,
        JobStatus::Partial,
        JobStatus::Failed,
        JobStatus::Cancelled,
    ];

    /// The name stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Queued => "queued",
            JobStatus::Running => "running",
            JobStatus::Succeeded => "succeeded",
            JobStatus::Partial => "partial",
            JobStatus::Failed => "failed",
            JobStatus::Cancelled => "cancelled",
        }
    }

    /// The status a name stands for.
    pub fn from_name(name: &str) -> Option<JobStatus> {
        JobStatus::ALL.into_iter().find(|s| s.as_str() == name)
    }

    /// Whether it is final.
    pub fn is_done(self) -> bool {
        !matches!(self, JobStatus::Queued | JobStatus::Running)
    }
}

/// A job as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    /// Its id.
    pub id: i64,
    /// `scan` or `check`.
    pub kind: String,
    /// Where it stands.
    pub status: JobStatus,
    /// The request as accepted (JSON).
    pub request: String,
    /// The targets as given.
    pub targets: Vec<String>,
    /// The key that asked for it.
    pub key_id: Option<i64>,
    /// When it was accepted.
    pub created_at: DateTime<Utc>,
    /// When a worker last started it.
    pub started_at: Option<DateTime<Utc>>,
    /// When it finished.
    pub finished_at: Option<DateTime<Utc>>,
    /// How many times a worker took it.
    pub attempts: i64,
    /// A cancel was asked for while it ran.
    pub cancel_requested: bool,
    /// Work done so far.
    pub progress_done: i64,
    /// Work in all.
    pub progress_total: i64,
    /// The stored scan it produced.
    pub scan_id: Option<i64>,
    /// The result document (JSON).
    pub result: Option<String>,
    /// Why it failed.
    pub error: Option<String>,
}

/// A new job.
#[derive(Debug, Clone)]
pub struct NewJob<'a> {
    /// `scan` or `check`.
    pub kind: &'a str,
    /// The request (JSON).
    pub request: &'a str,
    /// The targets as given.
    pub targets: &'a [String],
    /// The key that asks.
    pub key_id: Option<i64>,
    /// The client's `Idempotency-Key`.
    pub idempotency_key: Option<&'a str>,
}

/// How a job ended.
#[derive(Debug, Clone, Default)]
pub struct JobEnd<'a> {
    /// Its final status.
    pub status: JobStatus,
    /// The stored scan it produced.
    pub scan_id: Option<i64>,
    /// The result document (JSON).
    pub result: Option<&'a str>,
    /// Why it failed.
    pub error: Option<&'a str>,
    /// Work done, of how much.
    pub progress: (u64, u64),
}

/// Which jobs to list.
#[derive(Debug, Clone, Default)]
pub struct JobFilter {
    /// Only in this status.
    pub status: Option<JobStatus>,
    /// Only with this target among its targets.
    pub target: Option<String>,
    /// Only those with an id below this one (the cursor of the previous page).
    pub before: Option<i64>,
    /// Only those of this key.
    pub key_id: Option<i64>,
    /// At most this many.
    pub limit: u32,
}

const JOB_COLUMNS: &str = "id, kind, status, request, targets, key_id, created_at_ms, started_at_ms, \
     finished_at_ms, attempts, cancel_requested, progress_done, progress_total, scan_id, result, error";

fn job_from<R>(row: &R) -> Result<Job, sqlx::Error>
where
    R: Row,
    for<'r> &'r str: sqlx::ColumnIndex<R>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<i64>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<String>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> bool: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let targets: String = row.try_get("targets")?;
    Ok(Job {
        id: row.try_get("id")?,
        kind: row.try_get("kind")?,
        status: crate::read::named(row, "status", JobStatus::from_name)?,
        request: row.try_get("request")?,
        targets: serde_json::from_str(&targets).unwrap_or_default(),
        key_id: row.try_get("key_id")?,
        created_at: from_ms(row.try_get("created_at_ms")?),
        started_at: row.try_get::<Option<i64>, _>("started_at_ms")?.map(from_ms),
        finished_at: row
            .try_get::<Option<i64>, _>("finished_at_ms")?
            .map(from_ms),
        attempts: row.try_get("attempts")?,
        cancel_requested: row.try_get("cancel_requested")?,
        progress_done: row.try_get("progress_done")?,
        progress_total: row.try_get("progress_total")?,
        scan_id: row.try_get("scan_id")?,
        result: row.try_get("result")?,
        error: row.try_get("error")?,
    })
}

fn key_from<R>(row: &R) -> Result<ApiKey, sqlx::Error>
where
    R: Row,
    for<'r> &'r str: sqlx::ColumnIndex<R>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<i64>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let scope: String = row.try_get("scope")?;
    Ok(ApiKey {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        prefix: row.try_get("prefix")?,
        scope: serde_json::from_str(&scope).unwrap_or_default(),
        created_at: from_ms(row.try_get("created_at_ms")?),
        revoked_at: row.try_get::<Option<i64>, _>("revoked_at_ms")?.map(from_ms),
    })
}

impl Store {
    /// Stores a new key by its hash; returns it.
    pub async fn create_key(
        &self,
        name: &str,
        prefix: &str,
        hash: &str,
        scope: &[String],
    ) -> Result<ApiKey, StoreError> {
        let scope_json = serde_json::to_string(scope).unwrap_or_else(|_| "[]".into());
        let now = ms(Utc::now());
        let id: i64 = on_pool!(self, pool => {
            sqlx::query_scalar(
                "INSERT INTO api_keys (name, prefix, hash, scope, created_at_ms) \
                 VALUES ($1, $2, $3, $4, $5) RETURNING id",
            )
            .bind(name)
            .bind(prefix)
            .bind(hash)
            .bind(&scope_json)
            .bind(now)
            .fetch_one(pool)
            .await
        })
        .map_err(self.query_err("create an API key"))?;
        Ok(ApiKey {
            id,
            name: name.to_string(),
            prefix: prefix.to_string(),
            scope: scope.to_vec(),
            created_at: from_ms(now),
            revoked_at: None,
        })
    }

    /// Every key, revoked ones included, oldest first.
    pub async fn keys(&self) -> Result<Vec<ApiKey>, StoreError> {
        on_pool!(self, pool => {
            let rows = sqlx::query(
                "SELECT id, name, prefix, scope, created_at_ms, revoked_at_ms FROM api_keys ORDER BY id",
            )
            .fetch_all(pool)
            .await;
            rows.and_then(|rows| rows.iter().map(key_from).collect::<Result<Vec<_>, _>>())
        })
        .map_err(self.query_err("list API keys"))
    }

    /// The key with this hash, unless revoked.
    pub async fn key_by_hash(&self, hash: &str) -> Result<Option<ApiKey>, StoreError> {
        on_pool!(self, pool => {
            let row = sqlx::query(
                "SELECT id, name, prefix, scope, created_at_ms, revoked_at_ms FROM api_keys \
                 WHERE hash = $1 AND revoked_at_ms IS NULL",
            )
            .bind(hash)
            .fetch_optional(pool)
            .await;
            row.and_then(|row| row.as_ref().map(key_from).transpose())
        })
        .map_err(self.query_err("look up an API key"))
    }

    /// Revokes the keys named `name_or_prefix` (a name, a prefix or an id). Returns how many.
    pub async fn revoke_key(&self, name_or_prefix: &str) -> Result<u64, StoreError> {
        let id: i64 = name_or_prefix.parse().unwrap_or(-1);
        on_pool!(self, pool => {
            sqlx::query(
                "UPDATE api_keys SET revoked_at_ms = $1 \
                 WHERE revoked_at_ms IS NULL AND (name = $2 OR prefix = $2 OR id = $3)",
            )
            .bind(ms(Utc::now()))
            .bind(name_or_prefix)
            .bind(id)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })
        .map_err(self.query_err("revoke an API key"))
    }

    /// Queues a job. With an idempotency key already used by the same key, returns the
    /// job it created instead (`false`: not created now).
    pub async fn enqueue_job(&self, new: &NewJob<'_>) -> Result<(Job, bool), StoreError> {
        if let Some(existing) = self.job_by_idempotency(new).await? {
            return Ok((existing, false));
        }
        let targets = serde_json::to_string(new.targets).unwrap_or_else(|_| "[]".into());
        // The job as written (RETURNING): a worker may take it the moment it is committed,
        // and the answer is that it was accepted, queued.
        let sql = format!(
            "INSERT INTO jobs (kind, status, request, targets, key_id, idempotency_key, created_at_ms) \
             VALUES ($1, 'queued', $2, $3, $4, $5, $6) RETURNING {JOB_COLUMNS}"
        );
        let inserted: Result<Job, sqlx::Error> = on_pool!(self, pool => {
            let row = sqlx::query(&sql)
                .bind(new.kind)
                .bind(new.request)
                .bind(&targets)
                .bind(new.key_id)
                .bind(new.idempotency_key)
                .bind(ms(Utc::now()))
                .fetch_one(pool)
                .await;
            row.and_then(|row| job_from(&row))
        });
        match inserted {
            Ok(job) => Ok((job, true)),
            // The same idempotency key raced in: the other request's job is the answer.
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                if let Some(existing) = self.job_by_idempotency(new).await? {
                    return Ok((existing, false));
                }
                Err(self.query_err("queue a job")(sqlx::Error::Database(e)))
            }
            Err(e) => Err(self.query_err("queue a job")(e)),
        }
    }

    async fn job_by_idempotency(&self, new: &NewJob<'_>) -> Result<Option<Job>, StoreError> {
        let Some(key) = new.idempotency_key else {
            return Ok(None);
        };
        let sql = format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE idempotency_key = $1 AND \
             (key_id = $2 OR (key_id IS NULL AND $2 IS NULL))"
        );
        on_pool!(self, pool => {
            let row = sqlx::query(&sql)
                .bind(key)
                .bind(new.key_id)
                .fetch_optional(pool)
                .await;
            row.and_then(|row| row.as_ref().map(job_from).transpose())
        })
        .map_err(self.query_err("look up a job by idempotency key"))
    }

    /// One job.
    pub async fn job(&self, id: i64) -> Result<Option<Job>, StoreError> {
        let sql = format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1");
        on_pool!(self, pool => {
            let row = sqlx::query(&sql).bind(id).fetch_optional(pool).await;
            row.and_then(|row| row.as_ref().map(job_from).transpose())
        })
        .map_err(self.query_err(format!("read job {id}")))
    }

    /// Jobs, newest first, as `filter` says.
    pub async fn jobs(&self, filter: &JobFilter) -> Result<Vec<Job>, StoreError> {
        let pattern = filter.target.as_ref().map(|t| {
            let quoted = serde_json::to_string(t).unwrap_or_default();
            format!("%{}%", quoted.replace('%', "\\%").replace('_', "\\_"))
        });
        let sql = format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE ($1 IS NULL OR status = $1) \
             AND ($2 IS NULL OR targets LIKE $2 ESCAPE '\\') AND ($3 IS NULL OR id < $3) \
             AND ($4 IS NULL OR key_id = $4) ORDER BY id DESC LIMIT $5"
        );
        on_pool!(self, pool => {
            let rows = sqlx::query(&sql)
                .bind(filter.status.map(JobStatus::as_str))
                .bind(&pattern)
                .bind(filter.before)
                .bind(filter.key_id)
                .bind(i64::from(filter.limit))
                .fetch_all(pool)
                .await;
            rows.and_then(|rows| rows.iter().map(job_from).collect::<Result<Vec<_>, _>>())
        })
        .map_err(self.query_err("list jobs"))
    }

    /// Takes the oldest queued job for `owner`, with a lease of `lease`; `None` when no job
    /// waits.
    pub async fn claim_job(&self, owner: &str, lease: Duration) -> Result<Option<Job>, StoreError> {
        loop {
            let next: Option<i64> = on_pool!(self, pool => {
                sqlx::query_scalar(
                    "SELECT id FROM jobs WHERE status = 'queued' ORDER BY id LIMIT 1",
                )
                .fetch_optional(pool)
                .await
            })
            .map_err(self.query_err("find a queued job"))?;
            let Some(id) = next else { return Ok(None) };
            let now = Utc::now();
            let taken = on_pool!(self, pool => {
                sqlx::query(
                    "UPDATE jobs SET status = 'running', lease_owner = $1, lease_until_ms = $2, \
                     started_at_ms = $3, attempts = attempts + 1 WHERE id = $4 AND status = 'queued'",
                )
                .bind(owner)
                .bind(ms(now) + lease_ms(lease))
                .bind(ms(now))
                .bind(id)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
            })
            .map_err(self.query_err(format!("claim job {id}")))?;
            // Another worker took it first: look again.
            if taken == 1 {
                return self.job(id).await;
            }
        }
    }

    /// Renews `owner`'s lease of job `id` and records its progress. Returns whether the
    /// lease is still `owner`'s and whether a cancel was asked for.
    pub async fn heartbeat_job(
        &self,
        id: i64,
        owner: &str,
        lease: Duration,
        progress: (u64, u64),
    ) -> Result<(bool, bool), StoreError> {
        let done = i64::try_from(progress.0).unwrap_or(i64::MAX);
        let total = i64::try_from(progress.1).unwrap_or(i64::MAX);
        // One statement renews the lease and reads whether a cancel was asked for.
        let renewed: Option<bool> = on_pool!(self, pool => {
            sqlx::query_scalar(
                "UPDATE jobs SET lease_until_ms = $1, progress_done = $2, progress_total = $3 \
                 WHERE id = $4 AND lease_owner = $5 AND status = 'running' \
                 RETURNING cancel_requested",
            )
            .bind(ms(Utc::now()) + lease_ms(lease))
            .bind(done)
            .bind(total)
            .bind(id)
            .bind(owner)
            .fetch_optional(pool)
            .await
        })
        .map_err(self.query_err(format!("renew the lease of job {id}")))?;
        Ok((renewed.is_some(), renewed.unwrap_or(false)))
    }

    /// Finishes job `id` (when `owner` still holds it) as `end` says. Returns whether it was
    /// `owner`'s to finish.
    pub async fn finish_job(
        &self,
        id: i64,
        owner: &str,
        end: &JobEnd<'_>,
    ) -> Result<bool, StoreError> {
        let done = on_pool!(self, pool => {
            sqlx::query(
                "UPDATE jobs SET status = $1, scan_id = $2, result = $3, error = $4, \
                 finished_at_ms = $5, lease_owner = NULL, lease_until_ms = NULL, \
                 progress_done = $8, progress_total = $9 \
                 WHERE id = $6 AND lease_owner = $7 AND status = 'running'",
            )
            .bind(end.status.as_str())
            .bind(end.scan_id)
            .bind(end.result)
            .bind(end.error)
            .bind(ms(Utc::now()))
            .bind(id)
            .bind(owner)
            .bind(i64::try_from(end.progress.0).unwrap_or(i64::MAX))
            .bind(i64::try_from(end.progress.1).unwrap_or(i64::MAX))
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })
        .map_err(self.query_err(format!("finish job {id}")))?;
        Ok(done == 1)
    }

    /// Cancels job `id`: a queued job at once, a running one when its worker next looks.
    /// Returns the job as it now stands.
    pub async fn cancel_job(&self, id: i64) -> Result<Option<Job>, StoreError> {
        on_pool!(self, pool => {
            let queued = sqlx::query(
                "UPDATE jobs SET status = 'cancelled', finished_at_ms = $1 \
                 WHERE id = $2 AND status = 'queued'",
            )
            .bind(ms(Utc::now()))
            .bind(id)
            .execute(pool)
            .await;
            match queued {
                Ok(_) => {
                    sqlx::query(
                        "UPDATE jobs SET cancel_requested = TRUE WHERE id = $1 AND status = 'running'",
                    )
                    .bind(id)
                    .execute(pool)
                    .await
                    .map(|_| ())
                }
                Err(e) => Err(e),
            }
        })
        .map_err(self.query_err(format!("cancel job {id}")))?;
        self.job(id).await
    }

    /// Queues again the running jobs whose lease ended before `now` (their worker died)
    /// or, with `owner`, the running jobs of that worker. Returns how many.
    pub async fn requeue_jobs(
        &self,
        now: DateTime<Utc>,
        owner: Option<&str>,
    ) -> Result<u64, StoreError> {
        on_pool!(self, pool => {
            sqlx::query(
                "UPDATE jobs SET status = 'queued', lease_owner = NULL, lease_until_ms = NULL \
                 WHERE status = 'running' AND (lease_until_ms < $1 OR lease_owner = $2)",
            )
            .bind(ms(now))
            .bind(owner)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })
        .map_err(self.query_err("queue interrupted jobs again"))
    }

    /// Queues again the running jobs whose worker was a process of this host that has
    /// ended (a server killed mid-scan, then restarted). Returns how many.
    pub async fn requeue_dead_workers(&self) -> Result<u64, StoreError> {
        let rows: Vec<(i64, Option<String>)> = on_pool!(self, pool => {
            sqlx::query_as("SELECT id, lease_owner FROM jobs WHERE status = 'running'")
                .fetch_all(pool)
                .await
        })
        .map_err(self.query_err("list running jobs"))?;
        let mut queued = 0;
        for (id, owner) in rows {
            if owner.as_deref().is_some_and(|o| !crate::writer::is_dead(o)) {
                continue;
            }
            queued += on_pool!(self, pool => {
                sqlx::query(
                    "UPDATE jobs SET status = 'queued', lease_owner = NULL, lease_until_ms = NULL \
                     WHERE id = $1 AND status = 'running'",
                )
                .bind(id)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
            })
            .map_err(self.query_err(format!("queue job {id} again")))?;
        }
        Ok(queued)
    }

    /// Queued and running jobs of a key.
    pub async fn active_jobs_of_key(&self, key_id: Option<i64>) -> Result<i64, StoreError> {
        on_pool!(self, pool => {
            sqlx::query_scalar(
                "SELECT COUNT(*) FROM jobs WHERE status IN ('queued', 'running') \
                 AND (key_id = $1 OR (key_id IS NULL AND $1 IS NULL))",
            )
            .bind(key_id)
            .fetch_one(pool)
            .await
        })
        .map_err(self.query_err("count a key's jobs"))
    }

    /// Jobs per status.
    pub async fn job_counts(&self) -> Result<Vec<(JobStatus, i64)>, StoreError> {
        let rows: Vec<(String, i64)> = on_pool!(self, pool => {
            sqlx::query_as("SELECT status, COUNT(*) FROM jobs GROUP BY status")
                .fetch_all(pool)
                .await
        })
        .map_err(self.query_err("count jobs"))?;
        Ok(rows
            .into_iter()
            .filter_map(|(status, n)| JobStatus::from_name(&status).map(|s| (s, n)))
            .collect())
    }
}

/// The name this process holds leases under: host, pid and start time, so that a lease of
/// a process that has ended is recognised as such on this host.
pub fn worker_id() -> String {
    crate::writer::current()
}

fn lease_ms(lease: Duration) -> i64 {
    i64::try_from(lease.as_millis()).unwrap_or(i64::MAX / 2)
}
