//! Templates: `$1`-style references to a match's captures, filled from the response.

use super::*;

// ---------------------------------------------------------------------------------------
// Templates (`$1`-style capture references)
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Part {
    Literal(String),
    Group(usize),
}

/// A product / version / info / cpe template: literal text with `$1`..`$9` capture
/// references (`$$` is a literal dollar).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    pub(super) parts: Vec<Part>,
}

impl Template {
    /// Parse a template; `groups` is the number of capture groups of the pattern
    /// (a reference beyond it is an error).
    pub fn parse(text: &str, groups: usize) -> Result<Self, String> {
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            if c != '$' {
                literal.push(c);
                continue;
            }
            match chars.next() {
                Some('$') => literal.push('$'),
                Some(d @ '1'..='9') => {
                    let n = d.to_digit(10).map_or(0, |n| n as usize);
                    if n > groups {
                        return Err(format!(
                            "template `{text}` refers to ${n} but the pattern has {groups} capture group(s)"
                        ));
                    }
                    if !literal.is_empty() {
                        parts.push(Part::Literal(std::mem::take(&mut literal)));
                    }
                    parts.push(Part::Group(n));
                }
                _ => {
                    return Err(format!(
                        "template `{text}`: `$` must be followed by a digit 1-9 or `$`"
                    ));
                }
            }
        }
        if !literal.is_empty() {
            parts.push(Part::Literal(literal));
        }
        Ok(Self { parts })
    }

    /// Substitute the captures; control characters are dropped, whitespace runs collapsed,
    /// the result trimmed and capped. Groups that did not take part expand to nothing.
    /// An empty result is `None`.
    pub fn render(&self, caps: &Captures<'_>) -> Option<String> {
        let mut raw = String::new();
        for part in &self.parts {
            match part {
                Part::Literal(text) => raw.push_str(text),
                Part::Group(n) => {
                    if let Some(m) = caps.get(*n) {
                        raw.push_str(&String::from_utf8_lossy(m.as_bytes()));
                    }
                }
            }
        }
        let mut out = String::new();
        let mut pending_space = false;
        for c in raw.chars() {
            if c.is_whitespace() {
                pending_space = !out.is_empty();
            } else if !c.is_control() {
                if pending_space {
                    out.push(' ');
                    pending_space = false;
                }
                out.push(c);
            }
            if out.chars().count() >= MAX_FIELD_CHARS {
                break;
            }
        }
        if out.is_empty() { None } else { Some(out) }
    }
}
