//! Where the history lives: a SQLite file or a PostgreSQL URL, and the default path.

use crate::StoreError;
use std::fmt;
use std::path::{Path, PathBuf};

/// The environment variable naming the history database (path or URL).
pub const DB_ENV: &str = "PORTGATE_DB";

/// A history database: a SQLite file (the default) or a PostgreSQL server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A SQLite file, created on first use.
    Sqlite(PathBuf),
    /// A PostgreSQL URL (`postgres://user@host:port/database`).
    Postgres(String),
}

impl Location {
    /// Reads `--db`: `postgres://…` or `postgresql://…` is PostgreSQL; `sqlite://PATH`,
    /// `sqlite:PATH` or any other text without a scheme is a SQLite file path.
    pub fn parse(text: &str) -> Result<Location, StoreError> {
        let trimmed = text.trim();
        if trimmed.is_empty() {
            return Err(StoreError::UnsupportedLocation {
                given: text.to_string(),
            });
        }
        if trimmed.starts_with("postgres://") || trimmed.starts_with("postgresql://") {
            return Ok(Location::Postgres(trimmed.to_string()));
        }
        if let Some(path) = trimmed
            .strip_prefix("sqlite://")
            .or_else(|| trimmed.strip_prefix("sqlite:"))
        {
            if path.is_empty() {
                return Err(StoreError::UnsupportedLocation {
                    given: text.to_string(),
                });
            }
            return Ok(Location::Sqlite(PathBuf::from(path)));
        }
        if let Some((scheme, _)) = trimmed.split_once("://")
            && !scheme.is_empty()
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '+')
        {
            return Err(StoreError::UnsupportedLocation {
                given: text.to_string(),
            });
        }
        Ok(Location::Sqlite(PathBuf::from(trimmed)))
    }

    /// The database to use when `--db` is not given: `$PORTGATE_DB`, else
    /// `$XDG_DATA_HOME/portgate/history.db`, else `~/.local/share/portgate/history.db`.
    pub fn from_env_or_default() -> Result<Location, StoreError> {
        Self::resolve(
            std::env::var_os(DB_ENV).and_then(|v| v.into_string().ok()),
            std::env::var_os("XDG_DATA_HOME").map(PathBuf::from),
            std::env::var_os("HOME").map(PathBuf::from),
        )
    }

    /// [`Location::from_env_or_default`] with the environment passed in (for tests).
    pub fn resolve(
        portgate_db: Option<String>,
        xdg_data_home: Option<PathBuf>,
        home: Option<PathBuf>,
    ) -> Result<Location, StoreError> {
        if let Some(db) = portgate_db.filter(|v| !v.trim().is_empty()) {
            return Location::parse(&db);
        }
        // The XDG base directory specification ignores relative values.
        if let Some(dir) = xdg_data_home.filter(|d| d.is_absolute()) {
            return Ok(Location::Sqlite(dir.join("portgate").join("history.db")));
        }
        match home.filter(|h| !h.as_os_str().is_empty()) {
            Some(home) => Ok(Location::Sqlite(
                home.join(".local/share/portgate/history.db"),
            )),
            None => Err(StoreError::NoDefaultLocation),
        }
    }

    /// The SQLite file, when this is one.
    pub fn sqlite_path(&self) -> Option<&Path> {
        match self {
            Location::Sqlite(path) => Some(path),
            Location::Postgres(_) => None,
        }
    }
}

impl fmt::Display for Location {
    /// The path, or the URL with any password replaced by `***`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Sqlite(path) => write!(f, "{}", path.display()),
            Location::Postgres(url) => f.write_str(&redact_password(url)),
        }
    }
}

/// `postgres://user:secret@host/db` → `postgres://user:***@host/db`.
fn redact_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    match authority.rfind('@') {
        Some(at) => {
            let userinfo = &authority[..at];
            match userinfo.split_once(':') {
                Some((user, _)) => {
                    format!("{scheme}://{user}:***{}", &rest[at..])
                }
                None => url.to_string(),
            }
        }
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_paths_and_urls() {
        let cases: &[(&str, Option<Location>)] = &[
            (
                "postgres://postgres@127.0.0.1/x",
                Some(Location::Postgres("postgres://postgres@127.0.0.1/x".into())),
            ),
            (
                "postgresql://u@h/db",
                Some(Location::Postgres("postgresql://u@h/db".into())),
            ),
            ("history.db", Some(Location::Sqlite("history.db".into()))),
            ("/tmp/a b.db", Some(Location::Sqlite("/tmp/a b.db".into()))),
            (
                "sqlite:///tmp/h.db",
                Some(Location::Sqlite("/tmp/h.db".into())),
            ),
            ("sqlite:h.db", Some(Location::Sqlite("h.db".into()))),
            ("mysql://root@localhost/x", None),
            ("", None),
            ("sqlite:", None),
        ];
        for (text, want) in cases {
            let got = Location::parse(text).ok();
            assert_eq!(&got, want, "{text}");
        }
    }

    #[test]
    fn default_location_follows_env_then_xdg_then_home() {
        let got =
            Location::resolve(Some("/x/h.db".into()), Some("/xdg".into()), None).expect("env wins");
        assert_eq!(got, Location::Sqlite("/x/h.db".into()));
        let got =
            Location::resolve(None, Some("/xdg".into()), Some("/home/u".into())).expect("xdg");
        assert_eq!(got, Location::Sqlite("/xdg/portgate/history.db".into()));
        let got =
            Location::resolve(None, Some("relative".into()), Some("/home/u".into())).expect("home");
        assert_eq!(
            got,
            Location::Sqlite("/home/u/.local/share/portgate/history.db".into())
        );
        assert!(matches!(
            Location::resolve(None, None, None),
            Err(StoreError::NoDefaultLocation)
        ));
    }

    #[test]
    fn display_hides_the_password() {
        let loc = Location::parse("postgres://u:secret@h:5432/db").expect("url");
        assert_eq!(loc.to_string(), "postgres://u:***@h:5432/db");
        let loc = Location::parse("postgres://u@h/db").expect("url");
        assert_eq!(loc.to_string(), "postgres://u@h/db");
    }
}
