//! The product table: detector product names → NVD CPE vendor:product pairs and
//! distribution source packages. The built-in table is `data/products.toml`; its header
//! documents the format.

use std::collections::HashMap;
use std::sync::LazyLock;

use serde::{Deserialize, Serialize};

use crate::banner::DistroFamily;
use crate::error::VulnError;

const BUILTIN: &str = include_str!("../data/products.toml");

static BUILTIN_TABLE: LazyLock<ProductTable> = LazyLock::new(|| {
    // The embedded table is checked by this crate's tests; it cannot fail at run time.
    ProductTable::from_toml(BUILTIN, "data/products.toml (built in)")
        .expect("the built-in product table is valid")
});

/// Longest version accepted, in bytes; a longer one is not matched.
pub const MAX_VERSION_LEN: usize = 128;

/// How a detected version is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum VersionScheme {
    /// As it is.
    #[default]
    Plain,
    /// OpenSSH portable: `9.2p1` is NVD version `9.2` with update `p1`.
    Openssh,
    /// Trailing letters are the update: ProFTPD `1.3.5b` is `1.3.5` update `b`.
    LetterSuffix,
    /// Semantic versions: a leading `v` and `+build` metadata are dropped.
    Semver,
}

/// A detected version made ready for matching.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NormalizedVersion {
    /// The whole version, compared with NVD range bounds (`9.2p1`).
    pub full: String,
    /// The release part, compared with an exact CPE's version field (`9.2`).
    pub base: String,
    /// The update part, compared with an exact CPE's update field (`p1`).
    pub update: Option<String>,
}

/// A distribution's packaging of a product.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DistroPackaging {
    /// Source package names as the distribution's advisories write them, tried in order;
    /// `{major}` and `{minor}` stand for the first two numbers of the upstream version.
    pub sources: Vec<String>,
    /// The epoch of its package versions (0 for none).
    #[serde(default)]
    pub epoch: u32,
}

impl DistroPackaging {
    /// The source package names for an upstream version, templates filled in.
    pub fn source_names(&self, upstream: &str) -> Vec<String> {
        let mut numbers = upstream
            .split(|c: char| !c.is_ascii_digit())
            .filter(|s| !s.is_empty());
        let major = numbers.next().unwrap_or_default();
        let minor = numbers.next().unwrap_or_default();
        let mut out: Vec<String> = Vec::new();
        for s in &self.sources {
            if (s.contains("{major}") && major.is_empty())
                || (s.contains("{minor}") && minor.is_empty())
            {
                continue;
            }
            let name = s.replace("{major}", major).replace("{minor}", minor);
            if !out.contains(&name) {
                out.push(name);
            }
        }
        out
    }
}

/// One product of the table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProductEntry {
    /// The detector's product name.
    pub name: String,
    /// Other names for it.
    #[serde(default)]
    pub aliases: Vec<String>,
    /// NVD `vendor:product` pairs (part `a`).
    pub cpes: Vec<String>,
    /// How its versions are read.
    #[serde(default, rename = "version")]
    pub version_scheme: VersionScheme,
    /// Debian's packaging, if any.
    #[serde(default)]
    pub debian: Option<DistroPackaging>,
    /// Ubuntu's packaging, if any.
    #[serde(default)]
    pub ubuntu: Option<DistroPackaging>,
}

impl ProductEntry {
    /// A distribution's packaging of this product.
    pub fn packaging(&self, family: &DistroFamily) -> Option<&DistroPackaging> {
        match family {
            DistroFamily::Debian => self.debian.as_ref(),
            DistroFamily::Ubuntu => self.ubuntu.as_ref(),
            DistroFamily::Other(_) => None,
        }
    }

    /// Reads a detected version by this product's scheme; `None` when it is empty, longer
    /// than [`MAX_VERSION_LEN`], or has no digit.
    pub fn normalize_version(&self, version: &str) -> Option<NormalizedVersion> {
        normalize_version(self.version_scheme, version)
    }
}

/// Reads a detected version by a scheme (see [`ProductEntry::normalize_version`]).
pub fn normalize_version(scheme: VersionScheme, version: &str) -> Option<NormalizedVersion> {
    let mut v = version.trim();
    if v.is_empty() || v.len() > MAX_VERSION_LEN || !v.bytes().any(|b| b.is_ascii_digit()) {
        return None;
    }
    if v.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return None;
    }
    if let Some(rest) = v.strip_prefix(['v', 'V'])
        && rest.starts_with(|c: char| c.is_ascii_digit())
    {
        v = rest;
    }
    match scheme {
        VersionScheme::Plain => Some(NormalizedVersion {
            full: v.to_owned(),
            base: v.to_owned(),
            update: None,
        }),
        VersionScheme::Semver => {
            let v = v.split('+').next().unwrap_or(v);
            Some(NormalizedVersion {
                full: v.to_owned(),
                base: v.to_owned(),
                update: None,
            })
        }
        VersionScheme::Openssh | VersionScheme::LetterSuffix => {
            let split = v
                .find(|c: char| !(c.is_ascii_digit() || c == '.'))
                .unwrap_or(v.len());
            let (base, rest) = v.split_at(split);
            let base = base.trim_end_matches('.');
            let update = (!rest.is_empty() && rest.starts_with(|c: char| c.is_ascii_alphabetic()))
                .then(|| rest.to_owned());
            if base.is_empty() || (!rest.is_empty() && update.is_none()) {
                return Some(NormalizedVersion {
                    full: v.to_owned(),
                    base: v.to_owned(),
                    update: None,
                });
            }
            Some(NormalizedVersion {
                full: v.to_owned(),
                base: base.to_owned(),
                update,
            })
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTable {
    product: Vec<ProductEntry>,
}

/// The product table.
#[derive(Debug, Clone)]
pub struct ProductTable {
    entries: Vec<ProductEntry>,
    by_name: HashMap<String, usize>,
}

fn name_key(name: &str) -> String {
    name.trim().to_lowercase()
}

fn valid_key_part(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_-.~!".contains(&b))
}

impl ProductTable {
    /// The table built into this crate (`data/products.toml`).
    pub fn builtin() -> &'static ProductTable {
        &BUILTIN_TABLE
    }

    /// Reads a table in the format of `data/products.toml`; `origin` names it in errors.
    pub fn from_toml(text: &str, origin: &str) -> Result<ProductTable, VulnError> {
        let err = |message: String| VulnError::Products {
            origin: origin.to_owned(),
            message,
        };
        let raw: RawTable = toml::from_str(text).map_err(|e| err(e.to_string()))?;
        let mut by_name = HashMap::new();
        for (i, entry) in raw.product.iter().enumerate() {
            if entry.cpes.is_empty() {
                return Err(err(format!("product {:?}: no cpes", entry.name)));
            }
            for cpe in &entry.cpes {
                let ok = cpe
                    .split_once(':')
                    .is_some_and(|(v, p)| valid_key_part(v) && valid_key_part(p));
                if !ok {
                    return Err(err(format!(
                        "product {:?}: cpes entry {cpe:?} is not a lower-case vendor:product",
                        entry.name
                    )));
                }
            }
            for packaging in [&entry.debian, &entry.ubuntu].into_iter().flatten() {
                if packaging.sources.is_empty() {
                    return Err(err(format!("product {:?}: no source packages", entry.name)));
                }
            }
            for name in std::iter::once(&entry.name).chain(&entry.aliases) {
                let key = name_key(name);
                if key.is_empty() {
                    return Err(err(format!("product #{i}: empty name")));
                }
                if by_name.insert(key, i).is_some() {
                    return Err(err(format!("product name {name:?} is given twice")));
                }
            }
        }
        Ok(ProductTable {
            entries: raw.product,
            by_name,
        })
    }

    /// The entry for a product name or alias (case does not matter).
    pub fn get(&self, name: &str) -> Option<&ProductEntry> {
        self.by_name.get(&name_key(name)).map(|&i| &self.entries[i])
    }

    /// Every entry, in the table's order.
    pub fn entries(&self) -> &[ProductEntry] {
        &self.entries
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn builtin_table_loads() {
        let t = ProductTable::builtin();
        let ssh = t.get("openssh").unwrap();
        assert_eq!(ssh.cpes, ["openbsd:openssh"]);
        assert_eq!(ssh.debian.as_ref().unwrap().epoch, 1);
        assert_eq!(t.get("Apache").unwrap().name, "Apache httpd");
    }

    #[test]
    fn versions_normalise() {
        let n = |s, v| normalize_version(s, v).unwrap();
        let v = n(VersionScheme::Openssh, "9.2p1");
        assert_eq!((v.base.as_str(), v.update.as_deref()), ("9.2", Some("p1")));
        let v = n(VersionScheme::Openssh, "9.6");
        assert_eq!((v.base.as_str(), v.update), ("9.6", None));
        let v = n(VersionScheme::LetterSuffix, "1.3.6rc2");
        assert_eq!(
            (v.base.as_str(), v.update.as_deref()),
            ("1.3.6", Some("rc2"))
        );
        assert_eq!(n(VersionScheme::Semver, "v1.28.3+k3s1").full, "1.28.3");
        assert_eq!(n(VersionScheme::Plain, "2.4.58").full, "2.4.58");
        assert!(normalize_version(VersionScheme::Plain, "").is_none());
        assert!(normalize_version(VersionScheme::Plain, "abc").is_none());
        assert!(normalize_version(VersionScheme::Plain, &"1".repeat(200)).is_none());
    }

    #[test]
    fn source_templates() {
        let p = DistroPackaging {
            sources: vec!["mariadb".into(), "mariadb-{major}.{minor}".into()],
            epoch: 1,
        };
        assert_eq!(p.source_names("10.6.16"), ["mariadb", "mariadb-10.6"]);
        let p = DistroPackaging {
            sources: vec!["postgresql-{major}".into()],
            epoch: 0,
        };
        assert_eq!(p.source_names("15.8"), ["postgresql-15"]);
    }

    #[test]
    fn bad_tables_are_refused() {
        for bad in [
            "[[product]]\nname = \"x\"\ncpes = []\n",
            "[[product]]\nname = \"x\"\ncpes = [\"X:Y\"]\n",
            "[[product]]\nname = \"x\"\ncpes = [\"x:y\"]\nbogus = 1\n",
            "[[product]]\nname = \"x\"\ncpes = [\"x:y\"]\n[[product]]\nname = \"X\"\ncpes = [\"x:y\"]\n",
            "[[product]]\nname = \"x\"\ncpes = [\"x:y\"]\ndebian = { sources = [] }\n",
        ] {
            assert!(ProductTable::from_toml(bad, "test").is_err(), "{bad}");
        }
    }
}
