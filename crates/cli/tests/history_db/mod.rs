//! For the tests of the history database: a fresh database on the PostgreSQL server of
//! 127.0.0.1:5432 (dropped afterwards) and one runtime per test binary.

#![allow(dead_code)]

use sqlx::Connection;

/// The PostgreSQL server's maintenance database (trust authentication, user postgres).
pub const PG_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// One runtime for every test of a binary: a store's connections belong to the runtime that
/// opened them.
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    static RUNTIME: std::sync::LazyLock<tokio::runtime::Runtime> = std::sync::LazyLock::new(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime")
    });
    RUNTIME.block_on(f)
}

/// A database made on the PostgreSQL server for one test, dropped afterwards.
pub struct PgDatabase {
    /// Its URL, as `--db` takes it.
    pub url: String,
    name: String,
}

impl PgDatabase {
    /// A new database named after `prefix`, this process and the time.
    pub fn create(prefix: &str) -> PgDatabase {
        let name = format!(
            "{prefix}_{}_{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_micros())
                .unwrap_or_default()
        );
        block_on(async {
            let mut admin = sqlx::PgConnection::connect(PG_ADMIN_URL)
                .await
                .unwrap_or_else(|e| {
                    panic!(
                        "PostgreSQL is needed on 127.0.0.1:5432 (user postgres, trust \
                         authentication; .ci/run starts it): {e}"
                    )
                });
            sqlx::query(&format!("CREATE DATABASE \"{name}\""))
                .execute(&mut admin)
                .await
                .expect("create the test database");
        });
        PgDatabase {
            url: format!("postgres://postgres@127.0.0.1:5432/{name}"),
            name,
        }
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let name = self.name.clone();
        block_on(async {
            if let Ok(mut admin) = sqlx::PgConnection::connect(PG_ADMIN_URL).await {
                let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                    .execute(&mut admin)
                    .await;
            }
        });
    }
}
