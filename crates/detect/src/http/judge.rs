//! Judging the head and body: headers parsed with caps, cookies' flags, CORS, the title.

use super::*;

/// A parsed response head.
pub(super) struct Head {
    pub(super) version: &'static str,
    pub(super) status: u16,
    pub(super) reason: String,
    /// Header names (lower case) and raw values, in order.
    pub(super) headers: Vec<(String, Vec<u8>)>,
}

impl Head {
    /// Every value of header `name`, as text.
    pub(super) fn values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = String> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| String::from_utf8_lossy(v).trim().to_string())
    }

    /// The values of header `name` joined with `, `, capped, if present.
    pub(super) fn value(&self, name: &str, notes: &mut Vec<String>) -> Option<String> {
        let all: Vec<String> = self.values(name).collect();
        if all.is_empty() {
            return None;
        }
        Some(cap_chars(all.join(", "), MAX_VALUE_CHARS, name, notes))
    }
}

/// `s` cut to `max` characters; a note says so when it was longer.
pub(super) fn cap_chars(mut s: String, max: usize, what: &str, notes: &mut Vec<String>) -> String {
    if let Some((cut, _)) = s.char_indices().nth(max) {
        notes.push(format!(
            "{what} cut to {max} characters (of {})",
            s.chars().count()
        ));
        s.truncate(cut);
    }
    s
}

pub(super) fn parse_head(
    head: &[u8],
    max_headers: usize,
    notes: &mut Vec<String>,
) -> Result<Head, HttpError> {
    // Lines after the status line, less the empty one: an upper bound on the headers.
    let lines = head
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        .saturating_sub(2);
    let cut;
    let head = if lines > max_headers {
        // Keep the status line and the first `max_headers` lines, then end the head there.
        let end = head
            .iter()
            .enumerate()
            .filter(|(_, b)| **b == b'\n')
            .nth(max_headers)
            .map_or(head.len(), |(i, _)| i + 1);
        let mut shortened = head[..end].to_vec();
        shortened.extend_from_slice(b"\r\n");
        cut = shortened;
        notes.push(format!(
            "{lines} header lines; only the first {max_headers} were read (the cap)"
        ));
        &cut[..]
    } else {
        head
    };

    let mut slots = vec![httparse::EMPTY_HEADER; lines.min(max_headers) + 1];
    let mut response = httparse::Response::new(&mut slots);
    let status = httparse::ParserConfig::default()
        .allow_spaces_after_header_name_in_responses(true)
        .allow_obsolete_multiline_headers_in_responses(true)
        .allow_multiple_spaces_in_response_status_delimiters(true)
        .parse_response(&mut response, head);
    let malformed = |reason: String| HttpError::Malformed {
        reason,
        start: escaped_start(head),
    };
    match status {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => return Err(malformed("incomplete head".to_string())),
        Err(e) => return Err(malformed(e.to_string())),
    }
    let version = match response.version {
        Some(0) => "HTTP/1.0",
        _ => "HTTP/1.1",
    };
    let status = response
        .code
        .ok_or_else(|| malformed("no status code".to_string()))?;
    let reason = response.reason.unwrap_or_default().to_string();
    let headers = response
        .headers
        .iter()
        .map(|h| (h.name.to_ascii_lowercase(), h.value.to_vec()))
        .collect();
    Ok(Head {
        version,
        status,
        reason,
        headers,
    })
}

pub(super) fn cookies(head: &Head, notes: &mut Vec<String>) -> Vec<CookieFlags> {
    let mut out = Vec::new();
    for (i, raw) in head.values("set-cookie").enumerate() {
        match cookie::Cookie::parse(raw.as_str()) {
            Ok(c) => out.push(CookieFlags {
                name: cap_chars(c.name().to_string(), 128, "cookie name", notes),
                secure: c.secure().unwrap_or(false),
                http_only: c.http_only().unwrap_or(false),
                same_site: c.same_site().map(|s| s.to_string()),
            }),
            Err(e) => notes.push(format!(
                "Set-Cookie #{} not understood ({e}): \"{}\"",
                i + 1,
                escaped_start(raw.as_bytes())
            )),
        }
    }
    out
}

pub(super) fn cors(head: &Head, notes: &mut Vec<String>) -> Option<Cors> {
    let allow_origin = head.value("access-control-allow-origin", notes);
    let credentials = head.value("access-control-allow-credentials", notes);
    if allow_origin.is_none() && credentials.is_none() {
        return None;
    }
    let allow_credentials = credentials
        .as_deref()
        .is_some_and(|c| c.trim().eq_ignore_ascii_case("true"));
    let origin = allow_origin.as_deref().map(str::trim);
    let wildcard = origin == Some("*");
    let reflects_origin = origin.is_some_and(|o| o.eq_ignore_ascii_case(CORS_PROBE_ORIGIN));
    if wildcard && allow_credentials {
        notes.push(
            "CORS: wildcard origin with credentials (browsers refuse this combination)".to_string(),
        );
    }
    if origin.is_some_and(|o| o.eq_ignore_ascii_case("null")) {
        notes.push("CORS: the null origin is allowed".to_string());
    }
    Some(Cors {
        request_origin: CORS_PROBE_ORIGIN.to_string(),
        allow_origin,
        allow_credentials,
        wildcard,
        reflects_origin,
        any_origin_with_credentials: reflects_origin && allow_credentials,
    })
}

/// The first `<title>` of an HTML body: entities decoded, whitespace collapsed, capped.
pub(super) fn extract_title(body: &[u8]) -> Option<String> {
    let mut from = 0;
    let open_end = loop {
        let at = from + find_ascii_ci(&body[from..], b"<title")?;
        let after = at + b"<title".len();
        match body.get(after) {
            // `<title>` or `<title lang=..>`, not `<titles>`.
            Some(b'>' | b' ' | b'\t' | b'\r' | b'\n') => {
                let close = body[after..].iter().position(|&b| b == b'>')?;
                break after + close + 1;
            }
            _ => from = after,
        }
    };
    let text = &body[open_end..];
    let text = &text[..find_ascii_ci(text, b"</title").unwrap_or(text.len())];
    let text = String::from_utf8_lossy(text);
    let decoded = html_escape::decode_html_entities(&text);
    let mut title = String::new();
    for word in decoded.split_whitespace() {
        if !title.is_empty() {
            title.push(' ');
        }
        title.push_str(word);
        if title.len() > MAX_TITLE_CHARS * 4 {
            break;
        }
    }
    if let Some((cut, _)) = title.char_indices().nth(MAX_TITLE_CHARS) {
        title.truncate(cut);
    }
    (!title.is_empty()).then_some(title)
}
