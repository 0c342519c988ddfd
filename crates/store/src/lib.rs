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

mod data;
mod error;
mod location;
mod maintain;
mod monitor;
mod read;
mod service;
mod types;
mod windows;
mod write;
mod writer;

pub use data::{AsnRow, DatasetInfo, NetworkOwner};
pub use error::StoreError;
pub use location::{DB_ENV, Location};
pub use maintain::EXPORT_SCHEMA;
pub use monitor::{FindingEvent, FindingUpdate, OutboxMessage, StoredFinding};
pub use portgate_model::history::{
    CheckId, CheckRecord, HostSnapshot, ScanId, ScanRecord, StoredPort, StoredService, StoredStatus,
};
pub use service::{ApiKey, Job, JobEnd, JobFilter, JobStatus, NewJob, worker_id};
pub use types::{Retention, ScanStart};
pub use windows::StoredWindow;

use chrono::{DateTime, TimeZone, Utc};
use portgate_model::PortState;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{ConnectOptions, Connection};
use std::str::FromStr;
use std::time::Duration;

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("migrations/postgres");

/// How long a SQLite writer waits for another writer's transaction before giving up.
pub const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(60);

/// Rows per multi-row `INSERT` (under SQLite's and PostgreSQL's bind-parameter limits).
const BATCH_ROWS: usize = 2000;

enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
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

    /// Closes the pool, waiting for its connections to finish.
    pub async fn close(&self) {
        on_pool!(self, pool => pool.close().await)
    }
}
