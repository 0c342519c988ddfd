//! portgate's scan history: every scan (and every check) stored in a SQLite file (the
//! default, nothing to start) or a PostgreSQL database (for teams), with the same schema and
//! migrations on both.
//!
//! A scan is written in two steps: [`Store::begin_scan`] inserts it as `running` before any
//! probe is sent, and [`Store::finish_scan`] writes its hosts, ports and services and the
//! whole report in one transaction. A process killed in between leaves the scan `running`,
//! which the next [`Store::open`] on the same host marks `incomplete`; earlier scans are
//! never touched by a later one.
//!
//! Per-port rows are kept for every port except those in the most common state of their
//! host and protocol among closed, filtered and open|filtered (usually closed; filtered
//! behind a dropping firewall): those are only counted, as scanners usually report them
//! ("not shown: 65,000 closed ports"). Everything, those ports included, is kept in the
//! zstd-compressed report, from which any scan reloads exactly ([`Store::load_report`]).
//!
//! This crate stores and reads: it never scans, prints or exits.

mod error;
mod location;
mod writer;

pub use error::StoreError;
pub use location::{DB_ENV, Location};

use chrono::{DateTime, TimeZone, Utc};
use portgate_model::{
    DetectedService, Finding, HostReport, Outcome, PortState, Protocol, ScanReport, ScanStatus,
};
use serde::{Deserialize, Serialize};
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{ConnectOptions, Connection, QueryBuilder, Row};
use std::str::FromStr;
use std::time::Duration;

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("migrations/postgres");

/// How long a SQLite writer waits for another writer's transaction before giving up.
pub const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(60);

/// Rows per multi-row `INSERT` (under SQLite's and PostgreSQL's bind-parameter limits).
const BATCH_ROWS: usize = 2000;

/// The id of a stored scan.
pub type ScanId = i64;
/// The id of a stored check.
pub type CheckId = i64;

/// Where a stored scan stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoredStatus {
    /// Begun and not finalised: still going, or its writer died on another host.
    Running,
    /// Finalised; covered everything asked.
    Completed,
    /// Finalised with parts left out, or interrupted before it was finalised.
    Incomplete,
}

impl StoredStatus {
    /// `running`, `completed` or `incomplete`.
    pub fn as_str(self) -> &'static str {
        match self {
            StoredStatus::Running => "running",
            StoredStatus::Completed => "completed",
            StoredStatus::Incomplete => "incomplete",
        }
    }

    fn parse(text: &str) -> Option<StoredStatus> {
        match text {
            "running" => Some(StoredStatus::Running),
            "completed" => Some(StoredStatus::Completed),
            "incomplete" => Some(StoredStatus::Incomplete),
            _ => None,
        }
    }
}

/// What is known of a scan when it starts.
#[derive(Debug, Clone, Default)]
pub struct ScanStart {
    /// When it started.
    pub started_at: Option<DateTime<Utc>>,
    /// The targets as given.
    pub targets: Vec<String>,
    /// `connect`, `syn`, `udp`, or none while not yet known.
    pub method: Option<String>,
    /// The git revision of the manifest the scan was run for, when there is one.
    pub manifest_revision: Option<String>,
}

/// One stored scan, without its ports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScanRecord {
    /// Its id.
    pub id: ScanId,
    /// Where it stands.
    pub status: StoredStatus,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// When it was finalised.
    pub finished_at: Option<DateTime<Utc>>,
    /// How ports were probed.
    pub method: Option<String>,
    /// The targets as given.
    pub targets: Vec<String>,
    /// The manifest's git revision.
    pub manifest_revision: Option<String>,
    /// Why it is incomplete.
    pub incomplete_reasons: Vec<String>,
    /// Addresses scanned.
    pub hosts: i64,
    /// Ports with a state.
    pub ports_scanned: i64,
    /// Open ports.
    pub open: i64,
    /// Closed ports.
    pub closed: i64,
    /// Filtered ports.
    pub filtered: i64,
    /// Open|filtered ports.
    pub open_filtered: i64,
}

/// A port with a row of its own (open, or not in its host's most common state).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredPort {
    /// `tcp` or `udp`.
    pub protocol: String,
    /// Port number.
    pub port: u16,
    /// `open`, `filtered` or `open|filtered`.
    pub state: String,
    /// The observation behind the state.
    pub reason: String,
}

/// What detection found on a port, as stored.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredService {
    /// `tcp` or `udp`.
    pub protocol: String,
    /// Port number.
    pub port: u16,
    /// Service name.
    pub service: Option<String>,
    /// Product.
    pub product: Option<String>,
    /// Version.
    pub version: Option<String>,
    /// TLS issuer of the leaf certificate.
    pub tls_issuer: Option<String>,
    /// Leaf expiry (RFC 3339).
    pub tls_not_after: Option<String>,
    /// SHA-256 of the leaf certificate.
    pub tls_fingerprint_sha256: Option<String>,
    /// Whether the certificate verified.
    pub tls_valid: Option<bool>,
    /// Why it did not.
    pub tls_reasons: Vec<String>,
    /// HTTP status.
    pub http_status: Option<u16>,
    /// HTTP `Server` header.
    pub http_server: Option<String>,
    /// HTML title.
    pub http_title: Option<String>,
}

/// One address of a target in one scan: a point of the target's timeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostSnapshot {
    /// The scan.
    pub scan: ScanRecord,
    /// The target as given.
    pub target: String,
    /// The name the address came from.
    pub hostname: Option<String>,
    /// The address.
    pub ip: String,
    /// Ports asked for.
    pub ports_requested: i64,
    /// Open ports.
    pub open: i64,
    /// Closed ports.
    pub closed: i64,
    /// Filtered ports.
    pub filtered: i64,
    /// Open|filtered ports.
    pub open_filtered: i64,
    /// Whether the host looked like a tarpit.
    pub tarpit: bool,
    /// The state of the TCP ports that have no row (only counted), if any.
    pub unlisted_tcp: Option<String>,
    /// The state of the UDP ports that have no row (only counted), if any.
    pub unlisted_udp: Option<String>,
    /// Every port with a row: open ones, and those not in the state of [`HostSnapshot::unlisted_tcp`]
    /// (TCP) or [`HostSnapshot::unlisted_udp`] (UDP).
    pub ports: Vec<StoredPort>,
    /// What detection found.
    pub services: Vec<StoredService>,
}

/// What to keep when pruning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retention {
    /// Scans that started within this many days of `now`.
    KeepDays {
        /// Days.
        days: u32,
        /// The present (passed in, for tests).
        now: DateTime<Utc>,
    },
    /// The newest this many scans.
    KeepScans(u64),
}

/// A stored check's summary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckRecord {
    /// Its id.
    pub id: CheckId,
    /// The scan it judged.
    pub scan_id: ScanId,
    /// When it was stored.
    pub created_at: DateTime<Utc>,
    /// The manifest's git revision.
    pub manifest_revision: Option<String>,
    /// The findings, in the order given.
    pub findings: Vec<Finding>,
}

enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Runs `$body` with `$pool` bound to the SQLite or the PostgreSQL pool: the SQL of this
/// crate is written once, in the dialect both accept (`$1` placeholders, standard types).
macro_rules! on_pool {
    ($self:expr, $pool:ident => $body:expr) => {
        match &$self.pool {
            Pool::Sqlite($pool) => $body,
            Pool::Postgres($pool) => $body,
        }
    };
}

/// The history database.
pub struct Store {
    pool: Pool,
    name: String,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("db", &self.name).finish()
    }
}

fn ms(at: DateTime<Utc>) -> i64 {
    at.timestamp_millis()
}

fn from_ms(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms)
        .single()
        .unwrap_or(DateTime::<Utc>::UNIX_EPOCH)
}

fn state_str(state: PortState) -> &'static str {
    state.as_str()
}

impl Store {
    /// Opens (and on first use creates) the database, brings its schema up to date and marks
    /// `running` scans whose writer died on this host as incomplete.
    pub async fn open(location: &Location) -> Result<Store, StoreError> {
        let name = location.to_string();
        let open_err = |source| StoreError::Open {
            db: name.clone(),
            source,
        };
        let pool = match location {
            Location::Sqlite(path) => {
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir {
                        dir: dir.to_path_buf(),
                        source,
                    })?;
                }
                let options = SqliteConnectOptions::new()
                    .filename(path)
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    // With WAL, NORMAL loses nothing when the process dies; only a power
                    // loss may drop the last transactions.
                    .synchronous(SqliteSynchronous::Normal)
                    .busy_timeout(SQLITE_BUSY_TIMEOUT)
                    .foreign_keys(true)
                    .disable_statement_logging();
                Pool::Sqlite(
                    SqlitePoolOptions::new()
                        .max_connections(4)
                        .acquire_timeout(SQLITE_BUSY_TIMEOUT)
                        .connect_with(options)
                        .await
                        .map_err(open_err)?,
                )
            }
            Location::Postgres(url) => {
                let options = PgConnectOptions::from_str(url)
                    .map_err(open_err)?
                    .disable_statement_logging();
                // One connection first, so an unreachable server or a missing database is
                // reported at once instead of after the pool's acquire timeout.
                sqlx::PgConnection::connect_with(&options)
                    .await
                    .map_err(open_err)?
                    .close()
                    .await
                    .map_err(open_err)?;
                Pool::Postgres(
                    PgPoolOptions::new()
                        .max_connections(4)
                        .acquire_timeout(Duration::from_secs(30))
                        .connect_with(options)
                        .await
                        .map_err(open_err)?,
                )
            }
        };
        let store = Store { pool, name };
        store.migrate().await?;
        store.recover_interrupted().await?;
        Ok(store)
    }

    /// The database, as shown in messages (a URL's password hidden).
    pub fn name(&self) -> &str {
        &self.name
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        let mut attempt = 0;
        loop {
            let result = match &self.pool {
                Pool::Sqlite(pool) => SQLITE_MIGRATIONS.run(pool).await,
                Pool::Postgres(pool) => POSTGRES_MIGRATIONS.run(pool).await,
            };
            match result {
                Ok(()) => return Ok(()),
                // Two processes creating the same new SQLite file race to apply the first
                // migration (sqlx takes no lock on SQLite); the loser sees it applied on retry.
                Err(_) if attempt < 5 && matches!(self.pool, Pool::Sqlite(_)) => {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(100 * attempt)).await;
                }
                Err(source) => {
                    return Err(StoreError::Migrate {
                        db: self.name.clone(),
                        source,
                    });
                }
            }
        }
    }

    fn query_err(&self, operation: impl Into<String>) -> impl FnOnce(sqlx::Error) -> StoreError {
        let db = self.name.clone();
        let operation = operation.into();
        move |source| StoreError::Query {
            db,
            operation,
            source,
        }
    }

    /// Marks as incomplete every `running` scan whose writer was a process of this host that
    /// has ended. Returns how many.
    pub async fn recover_interrupted(&self) -> Result<u64, StoreError> {
        let rows: Vec<(i64, Option<String>)> = on_pool!(self, pool => {
            sqlx::query_as("SELECT id, writer FROM scans WHERE status = 'running'")
                .fetch_all(pool)
                .await
        })
        .map_err(self.query_err("list running scans"))?;
        let mut marked = 0;
        for (id, writer) in rows {
            let Some(writer) = writer else { continue };
            if !writer::is_dead(&writer) {
                continue;
            }
            let reasons = serde_json::json!([format!(
                "interrupted: the process writing the scan ({writer}) ended before the scan was finalised"
            )])
            .to_string();
            let done = on_pool!(self, pool => {
                sqlx::query(
                    "UPDATE scans SET status = 'incomplete', incomplete_reasons = $1 \
                     WHERE id = $2 AND status = 'running'",
                )
                .bind(&reasons)
                .bind(id)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
            })
            .map_err(self.query_err(format!("mark scan {id} incomplete")))?;
            marked += done;
        }
        Ok(marked)
    }

    /// Inserts a scan as `running` and returns its id. Call before the first probe.
    pub async fn begin_scan(&self, start: &ScanStart) -> Result<ScanId, StoreError> {
        let started = ms(start.started_at.unwrap_or_else(Utc::now));
        let targets = serde_json::to_string(&start.targets).unwrap_or_else(|_| "[]".into());
        let writer = writer::current();
        let row: (i64,) = on_pool!(self, pool => {
            sqlx::query_as(
                "INSERT INTO scans (status, started_at_ms, method, targets, manifest_revision, writer) \
                 VALUES ('running', $1, $2, $3, $4, $5) RETURNING id",
            )
            .bind(started)
            .bind(&start.method)
            .bind(&targets)
            .bind(&start.manifest_revision)
            .bind(&writer)
            .fetch_one(pool)
            .await
        })
        .map_err(self.query_err("begin a scan"))?;
        Ok(row.0)
    }

    /// Finalises a `running` scan with its report, in one transaction: status, counts, the
    /// host, port and service rows, and the compressed report.
    pub async fn finish_scan(&self, id: ScanId, report: &ScanReport) -> Result<(), StoreError> {
        let compressed = compress_report(report).map_err(|message| StoreError::Corrupt {
            db: self.name.clone(),
            scan_id: id,
            field: "report",
            message,
        })?;
        let summary = report.summary();
        let status = match report.status {
            ScanStatus::Completed => StoredStatus::Completed,
            ScanStatus::Incomplete => StoredStatus::Incomplete,
        };
        let reasons =
            serde_json::to_string(&report.incomplete_reasons).unwrap_or_else(|_| "[]".into());
        let targets: Vec<&str> = report.targets.iter().map(|t| t.input.as_str()).collect();
        let targets = serde_json::to_string(&targets).unwrap_or_else(|_| "[]".into());
        let err = self.query_err(format!("save scan {id}"));
        let updated = on_pool!(self, pool => {
            async {
                let mut tx = pool.begin().await?;
                // The first statement writes, so a SQLite transaction takes the write lock
                // at once (waiting out other writers) instead of failing on a stale snapshot.
                let updated = sqlx::query(
                    "UPDATE scans SET status = $1, finished_at_ms = $2, method = $3, targets = $4, \
                     incomplete_reasons = $5, hosts = $6, ports_scanned = $7, open_ports = $8, \
                     closed_ports = $9, filtered_ports = $10, open_filtered_ports = $11, \
                     report_zstd = $12, started_at_ms = $13 \
                     WHERE id = $14 AND status = 'running'",
                )
                .bind(status.as_str())
                .bind(ms(report.finished_at))
                .bind(report.method.as_str())
                .bind(&targets)
                .bind(&reasons)
                .bind(summary.hosts as i64)
                .bind(summary.ports_scanned as i64)
                .bind(summary.open as i64)
                .bind(summary.closed as i64)
                .bind(summary.filtered as i64)
                .bind(summary.open_filtered as i64)
                .bind(&compressed)
                .bind(ms(report.started_at))
                .bind(id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if updated == 0 {
                    tx.rollback().await?;
                    return Ok(false);
                }
                for chunk in indexed_hosts(&report.hosts).chunks(BATCH_ROWS) {
                    let mut q = QueryBuilder::new(
                        "INSERT INTO scan_hosts (scan_id, host_index, target, hostname, ip, \
                         ports_requested, open_ports, closed_ports, filtered_ports, \
                         open_filtered_ports, tarpit, unlisted_tcp, unlisted_udp) ",
                    );
                    q.push_values(chunk, |mut b, (index, host)| {
                        b.push_bind(id)
                            .push_bind(*index as i64)
                            .push_bind(host.target.clone())
                            .push_bind(host.hostname.clone())
                            .push_bind(host.ip.to_string())
                            .push_bind(i64::from(host.ports_requested))
                            .push_bind(host.count(PortState::Open) as i64)
                            .push_bind(host.count(PortState::Closed) as i64)
                            .push_bind(host.count(PortState::Filtered) as i64)
                            .push_bind(host.count(PortState::OpenFiltered) as i64)
                            .push_bind(host.tarpit.is_some())
                            .push_bind(unlisted_state(host, Protocol::Tcp).map(PortState::as_str))
                            .push_bind(unlisted_state(host, Protocol::Udp).map(PortState::as_str));
                    });
                    q.build().execute(&mut *tx).await?;
                }
                let ports: Vec<(usize, &portgate_model::PortResult)> = report
                    .hosts
                    .iter()
                    .enumerate()
                    .flat_map(|(i, h)| {
                        let tcp = unlisted_state(h, Protocol::Tcp);
                        let udp = unlisted_state(h, Protocol::Udp);
                        h.ports
                            .iter()
                            .filter(move |p| {
                                let unlisted = match p.protocol {
                                    Protocol::Tcp => tcp,
                                    Protocol::Udp => udp,
                                };
                                Some(p.state) != unlisted
                            })
                            .map(move |p| (i, p))
                    })
                    .collect();
                for chunk in ports.chunks(BATCH_ROWS) {
                    let mut q = QueryBuilder::new(
                        "INSERT INTO scan_ports (scan_id, host_index, protocol, port, state, \
                         reason, rtt_us) ",
                    );
                    q.push_values(chunk, |mut b, (index, p)| {
                        b.push_bind(id)
                            .push_bind(*index as i64)
                            .push_bind(p.protocol.as_str())
                            .push_bind(i32::from(p.port))
                            .push_bind(state_str(p.state))
                            .push_bind(p.reason.as_str())
                            .push_bind(p.rtt_us.map(i64::from));
                    });
                    q.build().execute(&mut *tx).await?;
                }
                let services: Vec<(usize, &DetectedService)> = report
                    .hosts
                    .iter()
                    .enumerate()
                    .flat_map(|(i, h)| h.services.iter().map(move |s| (i, s)))
                    .collect();
                for chunk in services.chunks(BATCH_ROWS / 2) {
                    let mut q = QueryBuilder::new(
                        "INSERT INTO scan_services (scan_id, host_index, protocol, port, service, \
                         product, version, info, tls_protocol, tls_subject, tls_issuer, \
                         tls_not_after, tls_fingerprint_sha256, tls_valid, tls_reasons, \
                         http_status, http_server, http_title) ",
                    );
                    q.push_values(chunk, |mut b, (index, s)| {
                        let tls = s.tls.as_ref();
                        let http = s.http.as_ref();
                        b.push_bind(id)
                            .push_bind(*index as i64)
                            .push_bind(s.protocol.as_str())
                            .push_bind(i32::from(s.port))
                            .push_bind(s.service.clone())
                            .push_bind(s.product.clone())
                            .push_bind(s.version.clone())
                            .push_bind(s.info.clone())
                            .push_bind(tls.map(|t| t.protocol.clone()))
                            .push_bind(tls.map(|t| t.subject.clone()))
                            .push_bind(tls.map(|t| t.issuer.clone()))
                            .push_bind(tls.and_then(|t| t.not_after.clone()))
                            .push_bind(tls.map(|t| t.fingerprint_sha256.clone()))
                            .push_bind(tls.map(|t| t.valid))
                            .push_bind(tls.map(|t| {
                                serde_json::to_string(&t.reasons).unwrap_or_else(|_| "[]".into())
                            }))
                            .push_bind(http.map(|h| i32::from(h.status)))
                            .push_bind(http.and_then(|h| h.server.clone()))
                            .push_bind(http.and_then(|h| h.title.clone()));
                    });
                    q.build().execute(&mut *tx).await?;
                }
                tx.commit().await?;
                Ok::<bool, sqlx::Error>(true)
            }
            .await
        })
        .map_err(err)?;
        if updated {
            Ok(())
        } else {
            Err(StoreError::NotRunning {
                db: self.name.clone(),
                scan_id: id,
            })
        }
    }

    /// Stores a finished scan in one go ([`Store::begin_scan`] then [`Store::finish_scan`]).
    pub async fn save_scan(
        &self,
        report: &ScanReport,
        manifest_revision: Option<&str>,
    ) -> Result<ScanId, StoreError> {
        let id = self
            .begin_scan(&ScanStart {
                started_at: Some(report.started_at),
                targets: report.targets.iter().map(|t| t.input.clone()).collect(),
                method: Some(report.method.as_str().to_string()),
                manifest_revision: manifest_revision.map(str::to_string),
            })
            .await?;
        self.finish_scan(id, report).await?;
        Ok(id)
    }

    /// Stores the findings of a check of scan `scan_id`, in one transaction.
    pub async fn save_check(
        &self,
        scan_id: ScanId,
        findings: &[Finding],
        manifest_revision: Option<&str>,
    ) -> Result<CheckId, StoreError> {
        let count = |o: Outcome| findings.iter().filter(|f| f.outcome == o).count() as i64;
        let err = self.query_err(format!("save a check of scan {scan_id}"));
        let now = ms(Utc::now());
        let id = on_pool!(self, pool => {
            async {
                let mut tx = pool.begin().await?;
                let (id,): (i64,) = sqlx::query_as(
                    "INSERT INTO checks (scan_id, created_at_ms, manifest_revision, pass_count, \
                     warn_count, fail_count, inconclusive_count) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
                )
                .bind(scan_id)
                .bind(now)
                .bind(manifest_revision)
                .bind(count(Outcome::Pass))
                .bind(count(Outcome::Warn))
                .bind(count(Outcome::Fail))
                .bind(count(Outcome::Inconclusive))
                .fetch_one(&mut *tx)
                .await?;
                let indexed: Vec<(usize, &Finding)> = findings.iter().enumerate().collect();
                for chunk in indexed.chunks(BATCH_ROWS / 2) {
                    let mut q = QueryBuilder::new(
                        "INSERT INTO check_findings (check_id, finding_index, rule, outcome, \
                         severity, target, ip, protocol, port, state, service, product, version, \
                         asset, message, finding) ",
                    );
                    q.push_values(chunk, |mut b, (index, f)| {
                        b.push_bind(id)
                            .push_bind(*index as i64)
                            .push_bind(f.rule.id())
                            .push_bind(f.outcome.as_str())
                            .push_bind(f.severity.as_str())
                            .push_bind(f.target.clone())
                            .push_bind(f.ip.map(|ip| ip.to_string()))
                            .push_bind(f.protocol.map(|p| p.as_str()))
                            .push_bind(f.port.map(i32::from))
                            .push_bind(f.state.map(|s| s.as_str()))
                            .push_bind(f.service.clone())
                            .push_bind(f.product.clone())
                            .push_bind(f.version.clone())
                            .push_bind(f.asset.clone())
                            .push_bind(f.message.clone())
                            .push_bind(serde_json::to_string(f).unwrap_or_default());
                    });
                    q.build().execute(&mut *tx).await?;
                }
                tx.commit().await?;
                Ok::<i64, sqlx::Error>(id)
            }
            .await
        })
        .map_err(err)?;
        Ok(id)
    }

    /// The checks stored for a scan, oldest first, with their findings.
    pub async fn checks_of_scan(&self, scan_id: ScanId) -> Result<Vec<CheckRecord>, StoreError> {
        let checks: Vec<(i64, i64, Option<String>)> = on_pool!(self, pool => {
            sqlx::query_as(
                "SELECT id, created_at_ms, manifest_revision FROM checks WHERE scan_id = $1 ORDER BY id",
            )
            .bind(scan_id)
            .fetch_all(pool)
            .await
        })
        .map_err(self.query_err(format!("list the checks of scan {scan_id}")))?;
        let mut out = Vec::with_capacity(checks.len());
        for (id, created, revision) in checks {
            let rows: Vec<(String,)> = on_pool!(self, pool => {
                sqlx::query_as(
                    "SELECT finding FROM check_findings WHERE check_id = $1 ORDER BY finding_index",
                )
                .bind(id)
                .fetch_all(pool)
                .await
            })
            .map_err(self.query_err(format!("read the findings of check {id}")))?;
            let mut findings = Vec::with_capacity(rows.len());
            for (json,) in rows {
                findings.push(
                    serde_json::from_str(&json).map_err(|e| StoreError::Corrupt {
                        db: self.name.clone(),
                        scan_id,
                        field: "finding",
                        message: e.to_string(),
                    })?,
                );
            }
            out.push(CheckRecord {
                id,
                scan_id,
                created_at: from_ms(created),
                manifest_revision: revision,
                findings,
            });
        }
        Ok(out)
    }

    /// One scan's record.
    pub async fn scan(&self, id: ScanId) -> Result<ScanRecord, StoreError> {
        let row = on_pool!(self, pool => {
            sqlx::query(&format!("{SCAN_COLUMNS} WHERE id = $1"))
                .bind(id)
                .fetch_optional(pool)
                .await
                .and_then(|r| r.map(|r| scan_record(&r)).transpose())
        })
        .map_err(self.query_err(format!("read scan {id}")))?;
        row.ok_or(StoreError::NoSuchScan {
            db: self.name.clone(),
            scan_id: id,
        })
    }

    /// Every scan, newest first, at most `limit`.
    pub async fn scans(&self, limit: i64) -> Result<Vec<ScanRecord>, StoreError> {
        on_pool!(self, pool => {
            sqlx::query(&format!("{SCAN_COLUMNS} ORDER BY started_at_ms DESC, id DESC LIMIT $1"))
                .bind(limit)
                .fetch_all(pool)
                .await
                .and_then(|rows| rows.iter().map(scan_record).collect::<Result<Vec<_>, _>>())
        })
        .map_err(self.query_err("list scans"))
    }

    /// The finalised scans that covered `target` (as given, or one of its addresses), oldest
    /// first, that started at or after `since` (all when none).
    pub async fn scans_of_target(
        &self,
        target: &str,
        since: Option<DateTime<Utc>>,
    ) -> Result<Vec<ScanRecord>, StoreError> {
        let since = since.map(ms).unwrap_or(i64::MIN);
        on_pool!(self, pool => {
            sqlx::query(&format!(
                "{SCAN_COLUMNS} WHERE status <> 'running' AND started_at_ms >= $2 AND id IN \
                 (SELECT scan_id FROM scan_hosts WHERE target = $1 OR ip = $1) \
                 ORDER BY started_at_ms, id"
            ))
            .bind(target)
            .bind(since)
            .fetch_all(pool)
            .await
            .and_then(|rows| rows.iter().map(scan_record).collect::<Result<Vec<_>, _>>())
        })
        .map_err(self.query_err(format!("list the scans of {target}")))
    }

    /// The newest finalised scan of `target` that started before `before`.
    pub async fn last_scan_of_target_before(
        &self,
        target: &str,
        before: DateTime<Utc>,
    ) -> Result<Option<ScanRecord>, StoreError> {
        on_pool!(self, pool => {
            sqlx::query(&format!(
                "{SCAN_COLUMNS} WHERE status <> 'running' AND started_at_ms < $2 AND id IN \
                 (SELECT scan_id FROM scan_hosts WHERE target = $1 OR ip = $1) \
                 ORDER BY started_at_ms DESC, id DESC LIMIT 1"
            ))
            .bind(target)
            .bind(ms(before))
            .fetch_optional(pool)
            .await
            .and_then(|r| r.map(|r| scan_record(&r)).transpose())
        })
        .map_err(self.query_err(format!("find the last scan of {target}")))
    }

    /// The scans of `target` (as given) that were never finalised — still running, or
    /// interrupted — newest first, at most `limit`. They have no host rows, so
    /// [`Store::history`] cannot show them.
    pub async fn unfinished_scans_of_target(
        &self,
        target: &str,
        limit: usize,
    ) -> Result<Vec<ScanRecord>, StoreError> {
        let records = on_pool!(self, pool => {
            sqlx::query(&format!(
                "{SCAN_COLUMNS} WHERE finished_at_ms IS NULL ORDER BY started_at_ms DESC, id DESC"
            ))
            .fetch_all(pool)
            .await
            .and_then(|rows| rows.iter().map(scan_record).collect::<Result<Vec<_>, _>>())
        })
        .map_err(self.query_err(format!("list the unfinished scans of {target}")))?;
        Ok(records
            .into_iter()
            .filter(|r| r.targets.iter().any(|t| t == target))
            .take(limit)
            .collect())
    }

    /// The report of a finalised scan, exactly as it was stored.
    pub async fn load_report(&self, id: ScanId) -> Result<ScanReport, StoreError> {
        let row: Option<(Option<Vec<u8>>,)> = on_pool!(self, pool => {
            sqlx::query_as("SELECT report_zstd FROM scans WHERE id = $1")
                .bind(id)
                .fetch_optional(pool)
                .await
        })
        .map_err(self.query_err(format!("read the report of scan {id}")))?;
        let corrupt = |message: String| StoreError::Corrupt {
            db: self.name.clone(),
            scan_id: id,
            field: "report",
            message,
        };
        match row {
            None => Err(StoreError::NoSuchScan {
                db: self.name.clone(),
                scan_id: id,
            }),
            Some((None,)) => Err(corrupt(
                "none: the scan was never finalised (it is running or was interrupted)".into(),
            )),
            Some((Some(bytes),)) => {
                let decoder = zstd::stream::read::Decoder::new(bytes.as_slice())
                    .map_err(|e| corrupt(format!("not zstd: {e}")))?;
                serde_json::from_reader(std::io::BufReader::new(decoder))
                    .map_err(|e| corrupt(format!("not a report: {e}")))
            }
        }
    }

    /// The timeline of `target` (as given, or one of its addresses): one snapshot per address
    /// per scan, newest first, at most `limit` scans, with the ports that have rows
    /// and what detection found.
    pub async fn history(&self, target: &str, limit: i64) -> Result<Vec<HostSnapshot>, StoreError> {
        let err = self.query_err(format!("read the history of {target}"));
        on_pool!(self, pool => {
            async {
                let hosts = sqlx::query(&format!(
                    "SELECT h.host_index, h.target, h.hostname, h.ip, h.ports_requested, \
                     h.open_ports AS h_open, h.closed_ports AS h_closed, \
                     h.filtered_ports AS h_filtered, h.open_filtered_ports AS h_open_filtered, \
                     h.tarpit, h.unlisted_tcp, h.unlisted_udp, s.* FROM scan_hosts h JOIN ({SCAN_COLUMNS} WHERE id IN \
                     (SELECT scan_id FROM scan_hosts WHERE target = $1 OR ip = $1) \
                     ORDER BY started_at_ms DESC, id DESC LIMIT $2) s ON s.id = h.scan_id \
                     WHERE h.target = $1 OR h.ip = $1 \
                     ORDER BY s.started_at_ms DESC, s.id DESC, h.host_index"
                ))
                .bind(target)
                .bind(limit)
                .fetch_all(pool)
                .await?;
                let mut out = Vec::with_capacity(hosts.len());
                for row in &hosts {
                    let scan = scan_record(row)?;
                    let host_index: i64 = row.try_get("host_index")?;
                    let ports = sqlx::query(
                        "SELECT protocol, port, state, reason FROM scan_ports \
                         WHERE scan_id = $1 AND host_index = $2 ORDER BY protocol, port",
                    )
                    .bind(scan.id)
                    .bind(host_index)
                    .fetch_all(pool)
                    .await?
                    .iter()
                    .map(|r| {
                        Ok::<_, sqlx::Error>(StoredPort {
                            protocol: r.try_get("protocol")?,
                            port: port_of(r.try_get::<i32, _>("port")?),
                            state: r.try_get("state")?,
                            reason: r.try_get("reason")?,
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                    let services = sqlx::query(
                        "SELECT protocol, port, service, product, version, tls_issuer, \
                         tls_not_after, tls_fingerprint_sha256, tls_valid, tls_reasons, \
                         http_status, http_server, http_title FROM scan_services \
                         WHERE scan_id = $1 AND host_index = $2 ORDER BY protocol, port",
                    )
                    .bind(scan.id)
                    .bind(host_index)
                    .fetch_all(pool)
                    .await?
                    .iter()
                    .map(|r| {
                        let reasons: Option<String> = r.try_get("tls_reasons")?;
                        Ok::<_, sqlx::Error>(StoredService {
                            protocol: r.try_get("protocol")?,
                            port: port_of(r.try_get::<i32, _>("port")?),
                            service: r.try_get("service")?,
                            product: r.try_get("product")?,
                            version: r.try_get("version")?,
                            tls_issuer: r.try_get("tls_issuer")?,
                            tls_not_after: r.try_get("tls_not_after")?,
                            tls_fingerprint_sha256: r.try_get("tls_fingerprint_sha256")?,
                            tls_valid: r.try_get("tls_valid")?,
                            tls_reasons: reasons
                                .and_then(|j| serde_json::from_str(&j).ok())
                                .unwrap_or_default(),
                            http_status: r
                                .try_get::<Option<i32>, _>("http_status")?
                                .map(port_of),
                            http_server: r.try_get("http_server")?,
                            http_title: r.try_get("http_title")?,
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                    out.push(HostSnapshot {
                        scan,
                        target: row.try_get("target")?,
                        hostname: row.try_get("hostname")?,
                        ip: row.try_get("ip")?,
                        ports_requested: row.try_get("ports_requested")?,
                        open: row.try_get("h_open")?,
                        closed: row.try_get("h_closed")?,
                        filtered: row.try_get("h_filtered")?,
                        open_filtered: row.try_get("h_open_filtered")?,
                        tarpit: row.try_get("tarpit")?,
                        unlisted_tcp: row.try_get("unlisted_tcp")?,
                        unlisted_udp: row.try_get("unlisted_udp")?,
                        ports,
                        services,
                    });
                }
                Ok::<_, sqlx::Error>(out)
            }
            .await
        })
        .map_err(err)
    }

    /// Deletes the scans (with their ports, services and checks) that `retention` does not
    /// keep. A scan still `running` is never deleted. Returns how many scans were deleted.
    pub async fn prune(&self, retention: Retention) -> Result<u64, StoreError> {
        let err = self.query_err("prune scans");
        on_pool!(self, pool => {
            match retention {
                Retention::KeepDays { days, now } => {
                    let cutoff = ms(now - chrono::Duration::days(i64::from(days)));
                    sqlx::query("DELETE FROM scans WHERE status <> 'running' AND started_at_ms < $1")
                        .bind(cutoff)
                        .execute(pool)
                        .await
                }
                Retention::KeepScans(n) => {
                    sqlx::query(
                        "DELETE FROM scans WHERE status <> 'running' AND id NOT IN \
                         (SELECT id FROM scans ORDER BY started_at_ms DESC, id DESC LIMIT $1)",
                    )
                    .bind(i64::try_from(n).unwrap_or(i64::MAX))
                    .execute(pool)
                    .await
                }
            }
            .map(|r| r.rows_affected())
        })
        .map_err(err)
    }

    /// Writes every scan, oldest first, as one JSON object per line: the scan's record, its
    /// report (none when it was never finalised) and its checks. Returns how many lines.
    pub async fn export_jsonl(&self, out: &mut dyn std::io::Write) -> Result<u64, StoreError> {
        let ids: Vec<(i64,)> = on_pool!(self, pool => {
            sqlx::query_as("SELECT id FROM scans ORDER BY started_at_ms, id")
                .fetch_all(pool)
                .await
        })
        .map_err(self.query_err("list scans to export"))?;
        let mut lines = 0;
        for (id,) in ids {
            // A scan pruned meanwhile by another process is skipped, not an error.
            let record = match self.scan(id).await {
                Ok(r) => r,
                Err(StoreError::NoSuchScan { .. }) => continue,
                Err(e) => return Err(e),
            };
            let report = match record.status {
                StoredStatus::Running => None,
                _ => match self.load_report(id).await {
                    Ok(r) => Some(r),
                    // Interrupted before finalising: there is no report.
                    Err(StoreError::Corrupt { .. }) if record.finished_at.is_none() => None,
                    Err(StoreError::NoSuchScan { .. }) => continue,
                    Err(e) => return Err(e),
                },
            };
            let checks = self.checks_of_scan(id).await?;
            let line = ExportLine {
                schema: EXPORT_SCHEMA,
                scan: &record,
                report: report.as_ref(),
                checks: &checks,
            };
            serde_json::to_writer(&mut *out, &line)
                .map_err(|e| StoreError::Export(std::io::Error::other(e)))?;
            out.write_all(b"\n").map_err(StoreError::Export)?;
            lines += 1;
        }
        out.flush().map_err(StoreError::Export)?;
        Ok(lines)
    }

    /// Closes the pool, waiting for its connections to finish.
    pub async fn close(&self) {
        on_pool!(self, pool => pool.close().await)
    }
}

/// The `schema` of each line of [`Store::export_jsonl`].
pub const EXPORT_SCHEMA: &str = "portgate.history.v1";

#[derive(Serialize)]
struct ExportLine<'a> {
    schema: &'static str,
    scan: &'a ScanRecord,
    report: Option<&'a ScanReport>,
    checks: &'a [CheckRecord],
}

const SCAN_COLUMNS: &str = "SELECT id, status, started_at_ms, finished_at_ms, method, targets, \
     manifest_revision, incomplete_reasons, hosts, ports_scanned, open_ports, closed_ports, \
     filtered_ports, open_filtered_ports FROM scans";

/// The report as JSON, compressed while it is written (a full scan of many hosts is
/// hundreds of megabytes of JSON, a few of zstd).
fn compress_report(report: &ScanReport) -> Result<Vec<u8>, String> {
    let mut encoder =
        zstd::stream::write::Encoder::new(Vec::new(), ZSTD_LEVEL).map_err(|e| e.to_string())?;
    let mut writer = std::io::BufWriter::new(&mut encoder);
    serde_json::to_writer(&mut writer, report).map_err(|e| e.to_string())?;
    std::io::Write::flush(&mut writer).map_err(|e| e.to_string())?;
    drop(writer);
    encoder.finish().map_err(|e| e.to_string())
}

/// zstd's fast end: the report is written once per scan and read rarely.
const ZSTD_LEVEL: i32 = 3;

/// The state whose ports of `protocol` get no row on `host`: the most common of closed,
/// filtered and open|filtered (closed on a tie), when the host has any such port.
fn unlisted_state(host: &HostReport, protocol: Protocol) -> Option<PortState> {
    let mut counts = [0usize; 3];
    let states = [
        PortState::Closed,
        PortState::Filtered,
        PortState::OpenFiltered,
    ];
    for port in host.ports.iter().filter(|p| p.protocol == protocol) {
        if let Some(i) = states.iter().position(|s| *s == port.state) {
            counts[i] += 1;
        }
    }
    let (best, count) =
        counts.iter().enumerate().fold(
            (0, 0),
            |(bi, bc), (i, c)| if *c > bc { (i, *c) } else { (bi, bc) },
        );
    (count > 0).then_some(states[best])
}

fn port_of(value: i32) -> u16 {
    u16::try_from(value).unwrap_or(0)
}

fn indexed_hosts(hosts: &[HostReport]) -> Vec<(usize, &HostReport)> {
    hosts.iter().enumerate().collect()
}

fn scan_record<R: Row>(row: &R) -> Result<ScanRecord, sqlx::Error>
where
    for<'c> &'c str: sqlx::ColumnIndex<R>,
    for<'d> i64: sqlx::Decode<'d, R::Database> + sqlx::Type<R::Database>,
    for<'d> String: sqlx::Decode<'d, R::Database> + sqlx::Type<R::Database>,
{
    let status: String = row.try_get("status")?;
    let targets: String = row.try_get("targets")?;
    let reasons: Option<String> = row.try_get("incomplete_reasons")?;
    let decode_err = |field: &str, message: String| sqlx::Error::ColumnDecode {
        index: field.to_string(),
        source: message.into(),
    };
    Ok(ScanRecord {
        id: row.try_get("id")?,
        status: StoredStatus::parse(&status)
            .ok_or_else(|| decode_err("status", format!("unknown status {status:?}")))?,
        started_at: from_ms(row.try_get("started_at_ms")?),
        finished_at: row
            .try_get::<Option<i64>, _>("finished_at_ms")?
            .map(from_ms),
        method: row.try_get("method")?,
        targets: serde_json::from_str(&targets)
            .map_err(|e| decode_err("targets", e.to_string()))?,
        manifest_revision: row.try_get("manifest_revision")?,
        incomplete_reasons: match reasons {
            Some(json) => serde_json::from_str(&json)
                .map_err(|e| decode_err("incomplete_reasons", e.to_string()))?,
            None => Vec::new(),
        },
        hosts: row.try_get("hosts")?,
        ports_scanned: row.try_get("ports_scanned")?,
        open: row.try_get("open_ports")?,
        closed: row.try_get("closed_ports")?,
        filtered: row.try_get("filtered_ports")?,
        open_filtered: row.try_get("open_filtered_ports")?,
    })
}
