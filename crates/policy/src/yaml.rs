//! The one loader of the YAML files teams write — the manifest and the expected-listeners
//! file of `portgate audit --expect`: a size cap, UTF-8 checked with the place of the first
//! bad byte, serde-saphyr with the line and column of an error, its message on one line
//! without the source snippet, and the key and the token found at that place.

use serde::de::DeserializeOwned;

/// Why a YAML file was refused before any check of its content. Line and column are
/// 1-based; 0 when the error has no place (the file is too large).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct YamlError {
    /// Line.
    pub line: u64,
    /// Column.
    pub column: u64,
    /// What is wrong, on one line.
    pub message: String,
    /// The key whose value is at the place (or the unknown key itself).
    pub key: Option<String>,
    /// The token at the place.
    pub token: Option<String>,
}

/// `bytes` as text: at most `max` bytes, valid UTF-8. `what` names the file in messages
/// (`the manifest is … bytes, more than the limit of …`).
pub fn text<'a>(bytes: &'a [u8], max: usize, what: &str) -> Result<&'a str, YamlError> {
    let error = |line, column, message| YamlError {
        line,
        column,
        message,
        key: None,
        token: None,
    };
    if bytes.len() > max {
        return Err(error(
            0,
            0,
            format!(
                "the {what} is {} bytes, more than the limit of {max}",
                bytes.len()
            ),
        ));
    }
    std::str::from_utf8(bytes).map_err(|e| {
        let before = &bytes[..e.valid_up_to()];
        let line = before.iter().filter(|b| **b == b'\n').count() as u64 + 1;
        let column = before.iter().rev().take_while(|b| **b != b'\n').count() as u64 + 1;
        error(line, column, format!("the {what} is not valid UTF-8"))
    })
}

/// `text` deserialised, or where and why not.
pub fn parse<T: DeserializeOwned>(text: &str) -> Result<T, YamlError> {
    serde_saphyr::from_str(text).map_err(|e| {
        let (line, column) = e
            .location()
            .map(|l| (l.line(), l.column()))
            .unwrap_or((0, 0));
        YamlError {
            line,
            column,
            message: plain_message(&e),
            key: key_at(text, line, column),
            token: token_at(text, line, column),
        }
    })
}

/// The key whose value is at `line`:`column` (1-based): the last `key:` before the column
/// on that line, else the nearest less-indented `key:` line above (a list item's key).
fn key_at(text: &str, line: u64, column: u64) -> Option<String> {
    let lines: Vec<&str> = text.lines().collect();
    let index = usize::try_from(line).ok()?.checked_sub(1)?;
    let current = lines.get(index)?;
    let column = usize::try_from(column).unwrap_or(usize::MAX);
    let before: String = current.chars().take(column.saturating_sub(1)).collect();
    // The error is at a key itself (an unknown key).
    let rest: String = current.chars().skip(column.saturating_sub(1)).collect();
    if let Some((key, _)) = rest.split_once(':')
        && !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_alphanumeric() || c == '_' || c == '-')
    {
        return Some(key.to_string());
    }
    if let Some(key) = last_key(&before) {
        return Some(key);
    }
    // The value starts the line (a list item or a block scalar): look upwards.
    let indent = |l: &str| l.len() - l.trim_start_matches([' ', '-']).len();
    let mut limit = indent(current);
    for above in lines[..index].iter().rev() {
        let trimmed = above.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        if indent(above) < limit || (indent(above) == limit && !above.trim_start().starts_with('-'))
        {
            if let Some(key) = last_key(above) {
                return Some(key);
            }
            limit = indent(above);
        }
    }
    None
}

/// The last plain `key:` of a piece of a YAML line.
fn last_key(piece: &str) -> Option<String> {
    let mut found = None;
    for (at, _) in piece.match_indices(':') {
        let head = &piece[..at];
        // Past the last character that cannot be part of a key (which may be multi-byte).
        let start = head
            .char_indices()
            .rev()
            .find(|(_, c)| !(c.is_alphanumeric() || *c == '_' || *c == '-'))
            .map_or(0, |(i, c)| i + c.len_utf8());
        let key = &head[start..];
        let after = piece[at + 1..].chars().next();
        if !key.is_empty() && !key.starts_with('-') && after.is_none_or(char::is_whitespace) {
            found = Some(key.to_string());
        }
    }
    found
}

/// The message of a YAML error without the source snippet, on one line.
fn plain_message(error: &serde_saphyr::Error) -> String {
    let text = error.without_snippet().to_string();
    let first = text.lines().next().unwrap_or("invalid YAML").trim();
    // The location is printed separately, in file:line:column form.
    let first = match first.rfind(" at line ") {
        Some(at) => &first[..at],
        None => first,
    };
    first.to_string()
}

/// The token at `line`:`column` (1-based): up to whitespace or a flow delimiter, at most
/// 80 characters.
fn token_at(text: &str, line: u64, column: u64) -> Option<String> {
    let line = text
        .lines()
        .nth(usize::try_from(line).ok()?.checked_sub(1)?)?;
    let start = usize::try_from(column).ok()?.checked_sub(1)?;
    let token: String = line
        .chars()
        .skip(start)
        .take_while(|c| !c.is_whitespace() && !matches!(c, ',' | ']' | '}' | '#'))
        .take(80)
        .collect();
    (!token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Doc {
        name: String,
        port: u16,
    }

    #[test]
    fn errors_say_where_and_what() {
        let e = text(&[b'a'; 11], 10, "manifest").expect_err("too large");
        assert_eq!(
            e.message,
            "the manifest is 11 bytes, more than the limit of 10"
        );
        let e = text(b"name: x\nport: \xff\n", 100, "file").expect_err("not UTF-8");
        assert_eq!((e.line, e.column), (2, 7));
        assert_eq!(e.message, "the file is not valid UTF-8");
        let e = parse::<Doc>("name: web\nport: 70000\n").expect_err("port too large");
        assert_eq!((e.line, e.key.as_deref()), (2, Some("port")));
        assert_eq!(e.token.as_deref(), Some("70000"));
        assert!(!e.message.contains(" at line "), "{}", e.message);
        let e = parse::<Doc>("name: web\nport: 80\nowner: me\n").expect_err("unknown key");
        assert_eq!((e.line, e.key.as_deref()), (3, Some("owner")));
        assert!(parse::<Doc>("name: web\nport: 80\n").is_ok());
    }
}
