//! What can go wrong with the history database, with the database and operation it concerns.

use std::path::PathBuf;

/// An error of the history store. Each variant names the database (path or URL without its
/// password) and what was being done.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The `--db` value is neither a file path nor a `postgres://` URL.
    #[error("unsupported database \"{given}\": give a SQLite file path or a postgres:// URL")]
    UnsupportedLocation {
        /// The value given.
        given: String,
    },
    /// No default database path: neither `$XDG_DATA_HOME` nor `$HOME` is set.
    #[error(
        "no default history database: set PORTGATE_DB, XDG_DATA_HOME or HOME, or pass --db PATH"
    )]
    NoDefaultLocation,
    /// The directory for a SQLite file could not be made.
    #[error("cannot create the directory {dir} for the history database: {source}")]
    CreateDir {
        /// The directory.
        dir: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The database could not be opened or reached.
    #[error("cannot open the history database {db}: {source}")]
    Open {
        /// The database.
        db: String,
        /// Why.
        source: sqlx::Error,
    },
    /// The schema could not be brought up to date.
    #[error("cannot migrate the history database {db}: {source}")]
    Migrate {
        /// The database.
        db: String,
        /// Why.
        source: sqlx::migrate::MigrateError,
    },
    /// A query failed.
    #[error("history database {db}: cannot {operation}: {source}")]
    Query {
        /// The database.
        db: String,
        /// What was being done (e.g. `save scan 12`).
        operation: String,
        /// Why.
        source: sqlx::Error,
    },
    /// A stored value could not be read back.
    #[error("history database {db}: scan {scan_id}: stored {field} is unreadable: {message}")]
    Corrupt {
        /// The database.
        db: String,
        /// The scan.
        scan_id: crate::ScanId,
        /// The column.
        field: &'static str,
        /// What is wrong.
        message: String,
    },
    /// No scan has this id.
    #[error("history database {db}: no scan with id {scan_id}")]
    NoSuchScan {
        /// The database.
        db: String,
        /// The id asked for.
        scan_id: crate::ScanId,
    },
    /// The scan was already finalised (or never began here).
    #[error("history database {db}: scan {scan_id} is not running, it cannot be finalised")]
    NotRunning {
        /// The database.
        db: String,
        /// The scan.
        scan_id: crate::ScanId,
    },
    /// Imported data (vulnerability records, network tables) could not be written or read.
    #[error("history database {db}: {message}")]
    Data {
        /// The database.
        db: String,
        /// What is wrong, naming the record.
        message: String,
    },
    /// Writing an export failed.
    #[error("cannot write the export: {0}")]
    Export(std::io::Error),
}
