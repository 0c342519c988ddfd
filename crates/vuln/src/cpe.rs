//! CPE 2.3 formatted strings (`cpe:2.3:part:vendor:product:version:update:…`), as NVD's
//! `criteria` write them.

use std::fmt;

/// A CPE attribute value: any value (`*`), not applicable (`-`), or a literal.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CpeValue {
    /// `*`: any value.
    Any,
    /// `-`: not applicable (the product has no such attribute).
    NotApplicable,
    /// A literal value, unescaped (`\:` becomes `:`).
    Value(String),
}

impl CpeValue {
    fn parse(raw: &str) -> Self {
        match raw {
            "*" | "" => CpeValue::Any,
            "-" => CpeValue::NotApplicable,
            _ => CpeValue::Value(unescape(raw)),
        }
    }
}

impl fmt::Display for CpeValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CpeValue::Any => f.write_str("*"),
            CpeValue::NotApplicable => f.write_str("-"),
            CpeValue::Value(v) => f.write_str(&escape(v)),
        }
    }
}

/// The parts of a CPE 2.3 name used for matching.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cpe {
    /// `a` (application), `o` (operating system) or `h` (hardware).
    pub part: char,
    /// The vendor, lower-case, unescaped.
    pub vendor: String,
    /// The product, lower-case, unescaped.
    pub product: String,
    /// The version.
    pub version: CpeValue,
    /// The update (for example OpenSSH's `p1`).
    pub update: CpeValue,
}

impl Cpe {
    /// `vendor:product`, the key the index files entries under.
    pub fn key(&self) -> String {
        format!("{}:{}", self.vendor, self.product)
    }

    /// The CPE 2.3 formatted string of a product version (other attributes `*`).
    pub fn formatted(&self) -> String {
        format!(
            "cpe:2.3:{}:{}:{}:{}:{}:*:*:*:*:*:*",
            self.part,
            escape(&self.vendor),
            escape(&self.product),
            self.version,
            self.update
        )
    }
}

/// Why a CPE string was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpeError(pub String);

impl fmt::Display for CpeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Longest CPE string accepted, in bytes.
pub const MAX_CPE_LEN: usize = 1024;

/// Parses a CPE 2.3 formatted string: `cpe:2.3:` then 11 colon-separated attributes
/// (a backslash escapes the next character, so `\:` is not a separator).
pub fn parse_cpe23(s: &str) -> Result<Cpe, CpeError> {
    if s.len() > MAX_CPE_LEN {
        return Err(CpeError(format!("longer than {MAX_CPE_LEN} bytes")));
    }
    let rest = s
        .strip_prefix("cpe:2.3:")
        .ok_or_else(|| CpeError("does not start with \"cpe:2.3:\"".to_owned()))?;
    let fields = split_unescaped(rest);
    if fields.len() != 11 {
        return Err(CpeError(format!(
            "has {} attributes after \"cpe:2.3:\", expected 11",
            fields.len()
        )));
    }
    let part = match fields[0] {
        "a" => 'a',
        "o" => 'o',
        "h" => 'h',
        other => {
            return Err(CpeError(format!(
                "part {other:?} is not \"a\", \"o\" or \"h\""
            )));
        }
    };
    let vendor = unescape(fields[1]).to_ascii_lowercase();
    let product = unescape(fields[2]).to_ascii_lowercase();
    if vendor.is_empty() || product.is_empty() || vendor == "*" || product == "*" {
        return Err(CpeError("vendor and product must be named".to_owned()));
    }
    Ok(Cpe {
        part,
        vendor,
        product,
        version: CpeValue::parse(fields[3]),
        update: CpeValue::parse(fields[4]),
    })
}

fn split_unescaped(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == ':' {
            out.push(&s[start..i]);
            start = i + 1;
        }
    }
    out.push(&s[start..]);
    out
}

fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut escaped = false;
    for c in s.chars() {
        if escaped || c != '\\' {
            out.push(c);
            escaped = false;
        } else {
            escaped = true;
        }
    }
    out
}

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '-' {
            out.push(c);
        } else {
            out.push('\\');
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn parses_nvd_criteria() {
        let c = parse_cpe23("cpe:2.3:a:openbsd:openssh:9.7:p1:*:*:*:*:*:*").unwrap();
        assert_eq!(c.part, 'a');
        assert_eq!(c.key(), "openbsd:openssh");
        assert_eq!(c.version, CpeValue::Value("9.7".into()));
        assert_eq!(c.update, CpeValue::Value("p1".into()));
        let c = parse_cpe23("cpe:2.3:o:debian:debian_linux:12.0:-:*:*:*:*:*:*").unwrap();
        assert_eq!(c.update, CpeValue::NotApplicable);
        let c = parse_cpe23(r"cpe:2.3:a:x\:y:p\\q:1\.0:*:*:*:*:*:*:*").unwrap();
        assert_eq!(c.vendor, "x:y");
        assert_eq!(c.product, r"p\q");
        assert_eq!(c.version, CpeValue::Value("1.0".into()));
        assert_eq!(c.formatted(), r"cpe:2.3:a:x\:y:p\\q:1.0:*:*:*:*:*:*:*");
    }

    #[test]
    fn refuses_malformed() {
        for bad in [
            "",
            "cpe:/a:openbsd:openssh:9.7",
            "cpe:2.3:a:openbsd:openssh",
            "cpe:2.3:x:openbsd:openssh:*:*:*:*:*:*:*:*",
            "cpe:2.3:a:*:openssh:*:*:*:*:*:*:*:*",
            "cpe:2.3:a:openbsd:openssh:*:*:*:*:*:*:*:*:*",
        ] {
            assert!(parse_cpe23(bad).is_err(), "{bad}");
        }
        assert!(parse_cpe23(&format!("cpe:2.3:a:{}", "x".repeat(2000))).is_err());
    }
}
