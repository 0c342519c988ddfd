//! The expected listeners of a host (`--expect FILE`): which process, as which user, may
//! listen on which port.
//!
//! ```yaml
//! expected_listeners:
//!   - port: 22
//!     protocol: tcp        # tcp (default) or udp
//!     process: sshd        # the kernel's process name or argv[0]'s file name; any when absent
//!     user: root           # any when absent
//!     bind: all-interfaces # loopback, interface or all-interfaces: the widest allowed
//! ```

use crate::BindScope;
use portgate_model::Protocol;
use serde::Deserialize;
use serde_saphyr::Spanned;
use std::collections::BTreeMap;
use std::path::Path;

/// Largest file read: a list of listeners is small, and a huge file is a mistake.
pub const MAX_EXPECT_BYTES: usize = 1024 * 1024;

/// The file: one section, `expected_listeners`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectedListeners {
    /// Every listener the host may have.
    pub expected_listeners: Vec<Spanned<ExpectedListener>>,
    /// The file as given (set by the loader).
    #[serde(skip)]
    pub source: String,
}

/// One listener the host may have.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectedListener {
    /// The port.
    pub port: u16,
    /// `tcp` (default) or `udp`.
    #[serde(default = "default_protocol")]
    pub protocol: Protocol,
    /// The process that must hold it (its `comm` or argv[0]'s file name); any when absent.
    #[serde(default)]
    pub process: Option<String>,
    /// The user it must run as (name, or a numeric uid); any when absent.
    #[serde(default)]
    pub user: Option<String>,
    /// The widest binding allowed (`loopback`, `interface`, `all-interfaces`); any when absent.
    #[serde(default)]
    pub bind: Option<BindScope>,
}

fn default_protocol() -> Protocol {
    Protocol::Tcp
}

/// Why an expected-listeners file was refused: file, line, column and what is wrong.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExpectError {
    /// The file could not be read.
    #[error("cannot read expected listeners {file}: {source}")]
    Read {
        /// The file.
        file: String,
        /// The reason.
        source: std::io::Error,
    },
    /// The file is not a valid list of expected listeners.
    #[error("{file}:{line}:{column}: {message}")]
    Invalid {
        /// The file.
        file: String,
        /// 1-based line (0 when unknown).
        line: u64,
        /// 1-based column (0 when unknown).
        column: u64,
        /// What is wrong.
        message: String,
    },
}

impl ExpectedListeners {
    /// Reads and validates a file.
    pub fn load(path: &Path) -> Result<ExpectedListeners, ExpectError> {
        let file = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|source| ExpectError::Read {
            file: file.clone(),
            source,
        })?;
        ExpectedListeners::from_bytes(&bytes, &file)
    }

    /// Parses and validates bytes; `file` names them in errors.
    pub fn from_bytes(bytes: &[u8], file: &str) -> Result<ExpectedListeners, ExpectError> {
        let invalid = |line, column, message: String| ExpectError::Invalid {
            file: file.to_string(),
            line,
            column,
            message,
        };
        let text = portgate_policy::yaml::text(bytes, MAX_EXPECT_BYTES, "file")
            .map_err(|e| invalid(e.line, e.column, e.message))?;
        ExpectedListeners::from_yaml(text, file)
    }

    /// Parses and validates YAML text; `file` names it in errors.
    pub fn from_yaml(text: &str, file: &str) -> Result<ExpectedListeners, ExpectError> {
        let mut parsed: ExpectedListeners = portgate_policy::yaml::parse(text).map_err(|e| {
            let mut message = e.message;
            if let Some(token) = e.token
                && !message.contains(&token)
            {
                message.push_str(&format!(" (found `{token}`)"));
            }
            ExpectError::Invalid {
                file: file.to_string(),
                line: e.line,
                column: e.column,
                message,
            }
        })?;
        parsed.source = file.to_string();
        parsed.validate()?;
        Ok(parsed)
    }

    fn validate(&self) -> Result<(), ExpectError> {
        let mut seen: BTreeMap<(Protocol, u16), (u64, u64)> = BTreeMap::new();
        for (index, entry) in self.expected_listeners.iter().enumerate() {
            let at = (entry.referenced.line(), entry.referenced.column());
            let error = |message: String| ExpectError::Invalid {
                file: self.source.clone(),
                line: at.0,
                column: at.1,
                message: format!("expected_listeners[{index}]: {message}"),
            };
            let e = &entry.value;
            if e.port == 0 {
                return Err(error("port 0 cannot be listened on".to_string()));
            }
            for (key, value) in [("process", &e.process), ("user", &e.user)] {
                if value.as_deref().is_some_and(|v| v.trim().is_empty()) {
                    return Err(error(format!("{key} is empty (leave it out to allow any)")));
                }
            }
            if let Some(first) = seen.insert((e.protocol, e.port), at) {
                return Err(error(format!(
                    "{}/{} is listed twice (first at line {}, column {})",
                    e.port, e.protocol, first.0, first.1
                )));
            }
        }
        Ok(())
    }

    /// The entry for a port, with its place in the file.
    pub fn find(&self, protocol: Protocol, port: u16) -> Option<&Spanned<ExpectedListener>> {
        self.expected_listeners
            .iter()
            .find(|e| e.value.protocol == protocol && e.value.port == port)
    }

    /// The place of an entry, for findings.
    pub fn location(&self, entry: &Spanned<ExpectedListener>) -> portgate_model::ManifestLocation {
        portgate_model::ManifestLocation {
            file: self.source.clone(),
            line: u32::try_from(entry.referenced.line()).unwrap_or(u32::MAX),
            column: u32::try_from(entry.referenced.column()).unwrap_or(u32::MAX),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_valid_file_loads_with_defaults_and_places() {
        let text = "expected_listeners:\n  - port: 22\n    process: sshd\n    user: root\n  - port: 53\n    protocol: udp\n    bind: loopback\n";
        let parsed = ExpectedListeners::from_yaml(text, "host.yaml").expect("valid file");
        assert_eq!(parsed.expected_listeners.len(), 2);
        let ssh = parsed.find(Protocol::Tcp, 22).expect("22/tcp");
        assert_eq!(ssh.value.process.as_deref(), Some("sshd"));
        assert_eq!(ssh.value.user.as_deref(), Some("root"));
        assert_eq!(parsed.location(ssh).line, 2);
        let dns = parsed.find(Protocol::Udp, 53).expect("53/udp");
        assert_eq!(dns.value.bind, Some(BindScope::Loopback));
        assert!(parsed.find(Protocol::Tcp, 53).is_none());
    }

    #[test]
    fn bad_files_name_the_place() {
        // (text, line, column, words the message must contain)
        let cases: &[(&str, u64, u64, &[&str])] = &[
            (
                "expected_listeners:\n  - port: 22\n    proces: sshd\n",
                3,
                5,
                &["proces"],
            ),
            (
                "expected_listener:\n  - port: 22\n",
                1,
                1,
                &["expected_listener"],
            ),
            ("expected_listeners:\n  - port: 70000\n", 2, 11, &["70000"]),
            (
                "expected_listeners:\n  - port: 22\n    protocol: sctp\n",
                3,
                15,
                &["sctp"],
            ),
            (
                "expected_listeners:\n  - port: 22\n    bind: everywhere\n",
                3,
                11,
                &["everywhere"],
            ),
            ("expected_listeners:\n  - port: 0\n", 2, 5, &["port 0"]),
            (
                "expected_listeners:\n  - port: 22\n    user: \"\"\n",
                2,
                5,
                &["user is empty"],
            ),
            (
                "expected_listeners:\n  - port: 22\n  - port: 22\n    protocol: tcp\n",
                3,
                5,
                &["listed twice", "line 2"],
            ),
        ];
        for (text, line, column, words) in cases {
            let err = ExpectedListeners::from_yaml(text, "host.yaml").expect_err(text);
            let ExpectError::Invalid {
                line: got_line,
                column: got_column,
                ref message,
                ..
            } = err
            else {
                panic!("not an Invalid error: {err}");
            };
            assert_eq!(
                (got_line, got_column),
                (*line, *column),
                "{text}: {message}"
            );
            for word in *words {
                assert!(message.contains(word), "{text}: {message} lacks {word}");
            }
            assert!(
                err.to_string()
                    .starts_with(&format!("host.yaml:{line}:{column}: "))
            );
        }
    }

    #[test]
    fn oversized_and_non_utf8_files_are_refused() {
        let big = vec![b'#'; MAX_EXPECT_BYTES + 1];
        assert!(ExpectedListeners::from_bytes(&big, "big.yaml").is_err());
        let err =
            ExpectedListeners::from_bytes(b"expected_listeners:\n  - port: \xff\n", "bin.yaml")
                .expect_err("not UTF-8");
        assert!(err.to_string().starts_with("bin.yaml:2:11: "), "{err}");
    }
}
