//! Text from the network (DNS records, RDAP and WHOIS answers) is hostile: it may hold
//! terminal escape sequences, bidirectional overrides, NUL bytes or invalid UTF-8, and
//! be of any length. Every such string this crate keeps has been through
//! [`escape_text`] or [`escape_bytes`], so it can be printed, logged or stored as it is.

/// Escapes what could mislead a reader or a terminal and cuts the result to at most
/// `max_chars` characters of the original (a cut is marked with `…`).
///
/// Kept as they are: printable characters, including non-ASCII letters. Escaped:
/// control characters (`\n`, `\r`, `\t`, `\0`, others as `\u{1b}`), the bidirectional
/// and zero-width formatting characters (`\u{202e}` …), and the backslash itself (`\\`),
/// so an escaped text can be told from the original.
///
/// ```
/// use portgate_enrich::text::escape_text;
/// assert_eq!(escape_text("v=spf1 -all", 64), "v=spf1 -all");
/// assert_eq!(escape_text("a\x1b[31mb\n", 64), "a\\u{1b}[31mb\\n");
/// assert_eq!(escape_text("abcdef", 3), "abc…");
/// ```
pub fn escape_text(text: &str, max_chars: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max_chars.saturating_mul(2)));
    for (count, c) in text.chars().enumerate() {
        if count == max_chars {
            out.push('…');
            break;
        }
        push_escaped(&mut out, c);
    }
    out
}

/// Like [`escape_text`] for bytes that may not be UTF-8: valid UTF-8 sequences are
/// kept (escaped as there), other bytes shown as `\xHH`. At most `max_bytes` bytes of
/// the input are shown; a cut is marked with `…`.
///
/// ```
/// use portgate_enrich::text::escape_bytes;
/// assert_eq!(escape_bytes(b"ok\xff\"", 64), "ok\\xff\"");
/// assert_eq!(escape_bytes(b"abcdef", 4), "abcd…");
/// ```
pub fn escape_bytes(bytes: &[u8], max_bytes: usize) -> String {
    let cut = bytes.len() > max_bytes;
    let mut rest = &bytes[..bytes.len().min(max_bytes)];
    let mut out = String::with_capacity(rest.len());
    while !rest.is_empty() {
        match std::str::from_utf8(rest) {
            Ok(valid) => {
                valid.chars().for_each(|c| push_escaped(&mut out, c));
                break;
            }
            Err(e) => {
                let (valid, after) = rest.split_at(e.valid_up_to());
                // The prefix was just checked; from_utf8 cannot fail on it.
                if let Ok(valid) = std::str::from_utf8(valid) {
                    valid.chars().for_each(|c| push_escaped(&mut out, c));
                }
                let bad = e.error_len().unwrap_or(after.len()).max(1);
                for b in &after[..bad.min(after.len())] {
                    out.push_str(&format!("\\x{b:02x}"));
                }
                rest = &after[bad.min(after.len())..];
            }
        }
    }
    if cut {
        out.push('…');
    }
    out
}

fn push_escaped(out: &mut String, c: char) {
    match c {
        '\\' => out.push_str("\\\\"),
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        '\0' => out.push_str("\\0"),
        c if c.is_control() || is_format_char(c) => {
            out.push_str(&format!("\\u{{{:x}}}", u32::from(c)));
        }
        c => out.push(c),
    }
}

/// Invisible formatting characters that change how the text around them is shown.
fn is_format_char(c: char) -> bool {
    matches!(
        c,
        '\u{200b}'..='\u{200f}'
            | '\u{202a}'..='\u{202e}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{2069}'
            | '\u{feff}'
    )
}

/// A short, escaped excerpt of an answer body for an error message.
pub(crate) fn excerpt(bytes: &[u8]) -> String {
    escape_bytes(bytes, 120)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_controls_and_bidi() {
        assert_eq!(escape_text("a\u{202e}b", 10), "a\\u{202e}b");
        assert_eq!(escape_text("back\\slash", 20), "back\\\\slash");
        assert_eq!(escape_text("héllo", 20), "héllo");
        assert_eq!(escape_text("", 0), "");
        assert_eq!(escape_text("x", 0), "…");
    }

    #[test]
    fn escapes_invalid_utf8() {
        assert_eq!(escape_bytes(b"\xc3\xa9\xc3", 10), "é\\xc3");
        assert_eq!(escape_bytes(b"\x00\x80a", 10), "\\0\\x80a");
    }
}
