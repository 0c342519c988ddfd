//! Reading a manifest: YAML with line and column spans, the checks made while parsing and
//! the semantic checks after, every error naming file, line, column and key.

use super::*;

/// Why a manifest was refused: the file, the place in it, the key, and what is wrong.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ManifestError {
    /// The file could not be read.
    #[error("cannot read manifest {file}: {source}")]
    Read {
        /// The file.
        file: String,
        /// The reason.
        source: std::io::Error,
    },
    /// The file is not a valid manifest.
    #[error("{file}:{line}:{column}: {key}{message}", key = key_prefix(.key))]
    Invalid {
        /// The file.
        file: String,
        /// 1-based line (0 when unknown).
        line: u64,
        /// 1-based column (0 when unknown).
        column: u64,
        /// The key at fault, as a path (`assets[1].approved[0].port`), when known.
        key: Option<String>,
        /// What is wrong.
        message: String,
    },
    /// `--env` names an environment no asset has.
    #[error("{file}: no asset has environment \"{env}\" (environments in the manifest: {known})", known = known_list(.known))]
    UnknownEnvironment {
        /// The file.
        file: String,
        /// The environment asked for.
        env: String,
        /// Those the manifest has.
        known: Vec<String>,
    },
}

fn key_prefix(key: &Option<String>) -> String {
    key.as_ref().map(|k| format!("{k}: ")).unwrap_or_default()
}

fn known_list(known: &[String]) -> String {
    if known.is_empty() {
        "none".to_string()
    } else {
        known.join(", ")
    }
}

pub(crate) fn position<T>(spanned: &Spanned<T>) -> (u64, u64) {
    (spanned.referenced.line(), spanned.referenced.column())
}

impl Manifest {
    /// Reads and validates a manifest file.
    pub fn load(path: &Path) -> Result<Manifest, ManifestError> {
        let file = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|source| ManifestError::Read {
            file: file.clone(),
            source,
        })?;
        Manifest::from_bytes(&bytes, &file)
    }

    /// Parses and validates manifest bytes; `file` names them in errors and locations.
    pub fn from_bytes(bytes: &[u8], file: &str) -> Result<Manifest, ManifestError> {
        let invalid = |line, column, message: String| ManifestError::Invalid {
            file: file.to_string(),
            line,
            column,
            key: None,
            message,
        };
        let text = crate::yaml::text(bytes, MAX_MANIFEST_BYTES, "manifest")
            .map_err(|e| invalid(e.line, e.column, e.message))?;
        Manifest::from_yaml(text, file)
    }

    /// Parses and validates manifest text; `file` names it in errors and locations.
    pub fn from_yaml(text: &str, file: &str) -> Result<Manifest, ManifestError> {
        let mut manifest: Manifest =
            crate::yaml::parse(text).map_err(|e| ManifestError::Invalid {
                file: file.to_string(),
                line: e.line,
                column: e.column,
                key: e.key,
                message: e.message,
            })?;
        manifest.source = file.to_string();
        manifest.text = text.to_string();
        manifest.validate()?;
        Ok(manifest)
    }

    /// Checks what the types cannot: the version, names, ports, duplicates.
    fn validate(&self) -> Result<(), ManifestError> {
        let error = |(line, column): (u64, u64), key: String, message: String| {
            Err(ManifestError::Invalid {
                file: self.source.clone(),
                line,
                column,
                key: Some(key),
                message,
            })
        };
        if self.version != 1 {
            return error(
                (1, 1),
                "version".into(),
                format!(
                    "unsupported manifest version {}: this portgate reads version 1",
                    self.version
                ),
            );
        }
        check_approvals(&self.approved, "approved", &self.source)?;
        let mut names = BTreeSet::new();
        let mut claimed: Vec<(Option<String>, String, String)> = Vec::new();
        for (index, asset) in self.assets.iter().enumerate() {
            let key = format!("assets[{index}]");
            let at = position(asset);
            let a = &asset.value;
            if a.name.trim().is_empty() {
                return error(at, format!("{key}.name"), "the name is empty".into());
            }
            if !names.insert(a.name.as_str()) {
                return error(
                    at,
                    format!("{key}.name"),
                    format!("asset name \"{}\" is used twice", a.name),
                );
            }
            if a.targets.is_empty() {
                return error(
                    at,
                    format!("{key}.targets"),
                    format!("asset \"{}\" has no target", a.name),
                );
            }
            if let Some(env) = &a.environment
                && env.trim().is_empty()
            {
                return error(
                    at,
                    format!("{key}.environment"),
                    "the environment is empty".into(),
                );
            }
            for (t, target) in a.targets.iter().enumerate() {
                let text = target.value.0.to_string();
                // The same target in two assets checked together would make its findings
                // ambiguous (which owner, which approvals).
                let clash = claimed.iter().find(|(env, other, _)| {
                    *other == text
                        && (env.is_none() || a.environment.is_none() || *env == a.environment)
                });
                if let Some((_, _, first)) = clash {
                    return error(
                        position(target),
                        format!("{key}.targets[{t}]"),
                        format!("target \"{text}\" is already listed by asset \"{first}\""),
                    );
                }
                claimed.push((a.environment.clone(), text, a.name.clone()));
            }
            check_approvals(&a.approved, &format!("{key}.approved"), &self.source)?;
        }
        Ok(())
    }
}

fn check_approvals(
    approved: &[Spanned<ApprovedPort>],
    key: &str,
    file: &str,
) -> Result<(), ManifestError> {
    let mut seen = BTreeSet::new();
    for (index, entry) in approved.iter().enumerate() {
        let (line, column) = position(entry);
        let fail = |field: &str, message: String| {
            Err(ManifestError::Invalid {
                file: file.to_string(),
                line,
                column,
                key: Some(format!("{key}[{index}].{field}")),
                message,
            })
        };
        let a = &entry.value;
        if a.port == 0 {
            return fail("port", "port 0 is not a port (ports are 1-65535)".into());
        }
        if a.justification.trim().is_empty() {
            return fail(
                "justification",
                format!("the approval of port {} has an empty justification", a.port),
            );
        }
        let identifier = |v: &str| {
            !v.is_empty()
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        };
        if let Some(app) = &a.application
            && !identifier(app)
        {
            return fail(
                "application",
                format!(
                    "application {app:?} is not an application identifier (letters, digits and '-', e.g. grafana)"
                ),
            );
        }
        for (i, accepted) in a.accept.iter().enumerate() {
            if accepted.eq_ignore_ascii_case("default-credentials") {
                return fail(
                    &format!("accept[{i}]"),
                    "a vendor default login cannot be accepted: change the password".into(),
                );
            }
            if !identifier(accepted) {
                return fail(
                    &format!("accept[{i}]"),
                    format!(
                        "{accepted:?} is neither a check identifier (e.g. prometheus-targets) nor a rule (unauthenticated-api, debug-endpoint-exposed, exposed-management-ui)"
                    ),
                );
            }
        }
        if !seen.insert((a.port, a.protocol as u8)) {
            return fail(
                "port",
                format!(
                    "port {}/{} is approved twice in this list",
                    a.port,
                    Protocol::from(a.protocol)
                ),
            );
        }
    }
    Ok(())
}
