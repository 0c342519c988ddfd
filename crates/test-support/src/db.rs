//! Throw-away history databases: a SQLite file in a temporary directory, and a fresh
//! database on the PostgreSQL server of 127.0.0.1:5432, dropped when the test is done.
//!
//! PostgreSQL is not optional: `.ci/run` starts it, and a test that cannot reach it fails
//! with a message saying so.

use sqlx::Connection;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};

/// The server the PostgreSQL tests use (trust authentication for `postgres`).
pub const PG_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// Where the test databases are made, as a URL without the database name.
const PG_SERVER_URL: &str = "postgres://postgres@127.0.0.1:5432";

/// The longest database name PostgreSQL keeps whole.
const PG_MAX_NAME: usize = 63;

/// A database made for one test, removed on drop.
pub struct TestDb {
    /// `sqlite` or `postgres`, for assertion messages.
    pub name: &'static str,
    /// The location as `--db` and `Location::parse` take it: the SQLite file's path, or
    /// the PostgreSQL URL.
    pub url: String,
    /// The SQLite file (not yet created); `None` for PostgreSQL.
    pub sqlite_path: Option<PathBuf>,
    _dir: Option<tempfile::TempDir>,
    pg_database: Option<String>,
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some(db) = self.pg_database.take() {
            // Drop may run inside or outside a runtime: use a thread of its own.
            let _ = std::thread::spawn(move || {
                on_own_runtime(async {
                    if let Ok(mut admin) = sqlx::PgConnection::connect(PG_ADMIN_URL).await {
                        let _ =
                            sqlx::query(&format!("DROP DATABASE IF EXISTS \"{db}\" WITH (FORCE)"))
                                .execute(&mut admin)
                                .await;
                    }
                });
            })
            .join();
        }
    }
}

fn on_own_runtime<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(f)
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A SQLite file in a new temporary directory, two directories below it (which do not
/// exist yet: opening the store makes them).
pub fn sqlite() -> TestDb {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("sub/dir/history.db");
    TestDb {
        name: "sqlite",
        url: path.display().to_string(),
        sqlite_path: Some(path),
        _dir: Some(dir),
        pg_database: None,
    }
}

/// A fresh database on the PostgreSQL server of 127.0.0.1:5432, named `portgate_test_…`.
pub async fn postgres() -> TestDb {
    postgres_named("portgate_test").await
}

/// A fresh database named after `prefix`, this process, the time and a counter.
pub async fn postgres_named(prefix: &str) -> TestDb {
    let suffix = format!(
        "_{}_{}_{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_micros())
            .unwrap_or_default(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    // PostgreSQL would cut a longer name, and the URL would then name another database.
    let keep = prefix
        .char_indices()
        .map(|(i, c)| i + c.len_utf8())
        .take_while(|&end| end + suffix.len() <= PG_MAX_NAME)
        .last()
        .unwrap_or(0);
    let name = format!("{}{suffix}", &prefix[..keep]);
    let mut admin = sqlx::PgConnection::connect(PG_ADMIN_URL)
        .await
        .unwrap_or_else(|e| {
            panic!(
                "PostgreSQL is needed on 127.0.0.1:5432 (user postgres, trust authentication; \
                 .ci/run starts it): {e}"
            )
        });
    sqlx::query(&format!("CREATE DATABASE \"{name}\""))
        .execute(&mut admin)
        .await
        .expect("create the test database");
    let _ = admin.close().await;
    TestDb {
        name: "postgres",
        url: format!("{PG_SERVER_URL}/{name}"),
        sqlite_path: None,
        _dir: None,
        pg_database: Some(name),
    }
}

/// [`postgres_named`] for a test without a runtime (or inside one): the database is made
/// on a thread and runtime of its own.
pub fn postgres_blocking(prefix: &str) -> TestDb {
    let prefix = prefix.to_string();
    std::thread::spawn(move || on_own_runtime(postgres_named(&prefix)))
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

/// Both backends, SQLite first.
pub async fn backends() -> Vec<TestDb> {
    vec![sqlite(), postgres().await]
}

/// Both backends, SQLite first, for a test without a runtime; the PostgreSQL database is
/// named after `prefix`.
pub fn backends_blocking(prefix: &str) -> Vec<TestDb> {
    vec![sqlite(), postgres_blocking(prefix)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_lies_in_a_directory_removed_on_drop() {
        let db = sqlite();
        let path = db.sqlite_path.clone().expect("a path");
        assert_eq!(db.url, path.display().to_string());
        let dir = path
            .ancestors()
            .nth(3)
            .expect("the temporary directory")
            .to_path_buf();
        assert!(dir.is_dir());
        drop(db);
        assert!(!dir.exists());
    }

    #[test]
    fn a_postgres_database_is_made_and_dropped() {
        let long = "portgate_a_prefix_much_too_long_for_a_postgresql_database_name";
        let db = postgres_blocking(long);
        let name = db.pg_database.clone().expect("a database");
        assert!(name.len() <= PG_MAX_NAME, "{name}");
        assert!(name.starts_with("portgate_a_prefix"), "{name}");
        assert_eq!(db.url, format!("{PG_SERVER_URL}/{name}"));
        let exists = |name: String| {
            on_own_runtime(async move {
                let mut admin = sqlx::PgConnection::connect(PG_ADMIN_URL)
                    .await
                    .expect("the admin database");
                let found: Option<(i32,)> =
                    sqlx::query_as("SELECT 1 FROM pg_database WHERE datname = $1")
                        .bind(name)
                        .fetch_optional(&mut admin)
                        .await
                        .expect("query pg_database");
                found.is_some()
            })
        };
        assert!(exists(name.clone()));
        on_own_runtime(async {
            let mut conn = sqlx::PgConnection::connect(&db.url)
                .await
                .expect("the test database accepts connections");
            let (one,): (i32,) = sqlx::query_as("SELECT 1")
                .fetch_one(&mut conn)
                .await
                .expect("a query");
            assert_eq!(one, 1);
        });
        drop(db);
        assert!(!exists(name));
    }
}
