//! Format-preserving approvals: `portgate baseline approve` and the fixes a failing check
//! proposes.
//!
//! A new approval is inserted as text at the end of the list it belongs to (an asset's
//! `approved:` or the global one), indented like its neighbours; nothing else in the file
//! changes — comments, key order, quoting, blank lines and line endings stay as written.
//! The result is read back by the manifest loader and compared with the old manifest plus
//! the new entry before it is accepted, so an edit that would not load, or would mean
//! anything else, is refused instead of written.

use crate::manifest::{ApprovedPort, Manifest, ManifestError, ProtocolName, TlsPolicy};
use portgate_model::{Finding, Fix, Protocol, Rule, ScanReport, TextEdit};
use serde_saphyr::Spanned;
use std::collections::BTreeMap;
use std::net::IpAddr;

/// A new approval: the entry and where it goes.
#[derive(Debug, Clone)]
pub struct Approval {
    /// The asset whose list takes it; `None`: the global `approved:` list.
    pub asset: Option<String>,
    /// The entry.
    pub entry: ApprovedPort,
    /// Comment lines written above the entry (without `#`).
    pub comment: Vec<String>,
}

/// A replacement of the bytes `start..end` of a text (an insertion when they are equal).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edit {
    /// First byte replaced.
    pub start: usize,
    /// Byte after the last one replaced.
    pub end: usize,
    /// What is put there.
    pub inserted: String,
}

impl Edit {
    /// The text with the edit made.
    pub fn apply(&self, text: &str) -> String {
        let mut out = String::with_capacity(text.len() + self.inserted.len());
        out.push_str(&text[..self.start]);
        out.push_str(&self.inserted);
        out.push_str(&text[self.end..]);
        out
    }

    /// The edit in lines and columns of `text` (1-based; columns in characters).
    pub fn text_edit(&self, text: &str, file: &str) -> TextEdit {
        let place = |at: usize| {
            let before = &text[..at];
            let line = before.matches('\n').count() + 1;
            let line_start = before.rfind('\n').map_or(0, |i| i + 1);
            let column = text[line_start..at].chars().count() + 1;
            (clamp(line), clamp(column))
        };
        let (start_line, start_column) = place(self.start);
        let (end_line, end_column) = place(self.end);
        TextEdit {
            file: file.to_string(),
            start_line,
            start_column,
            end_line,
            end_column,
            inserted: self.inserted.clone(),
        }
    }
}

fn clamp(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Why an approval cannot be written.
#[derive(Debug, thiserror::Error)]
pub enum ApproveError {
    /// `--asset` names no asset.
    #[error("{file}: no asset named \"{name}\" (assets: {known})")]
    UnknownAsset {
        /// The manifest.
        file: String,
        /// The name asked for.
        name: String,
        /// The assets there are.
        known: String,
    },
    /// The list already approves the port.
    #[error("{file}:{line}:{column}: {list} already approves {port}/{protocol}")]
    AlreadyApproved {
        /// The manifest.
        file: String,
        /// The existing approval's line.
        line: u64,
        /// Its column.
        column: u64,
        /// `asset web` or `the global list`.
        list: String,
        /// The port.
        port: u16,
        /// The protocol.
        protocol: String,
    },
    /// The list is written in a style this editor does not extend.
    #[error(
        "{file}:{line}: {what} is written as `{text}`; an approval is added to a block list (one `- port:` entry per line) — write the list that way first"
    )]
    Unsupported {
        /// The manifest.
        file: String,
        /// The line.
        line: usize,
        /// What.
        what: String,
        /// The text found.
        text: String,
    },
    /// The manifest with the approval would not load.
    #[error("the manifest with this approval would not load: {0}")]
    Invalid(ManifestError),
    /// The manifest with the approval loads but reads as something else.
    #[error(
        "{file}: the edited manifest does not read as the old one plus the approval; nothing was written (the file's layout around {what} is unusual: add the entry by hand)"
    )]
    Changed {
        /// The manifest.
        file: String,
        /// Where.
        what: String,
    },
    /// The manifest was built in code, not read from text.
    #[error("the manifest has no text to edit")]
    NoText,
}

/// One line of the text: its bytes (without the line break) and where it starts.
struct Line<'a> {
    start: usize,
    /// Byte after the line break (or the text's end).
    next: usize,
    text: &'a str,
}

impl Line<'_> {
    fn indent(&self) -> usize {
        self.text.len() - self.text.trim_start_matches(' ').len()
    }
    /// Blank or only a comment: belongs to no block.
    fn is_filler(&self) -> bool {
        let t = self.text.trim();
        t.is_empty() || t.starts_with('#')
    }
}

fn lines(text: &str) -> Vec<Line<'_>> {
    let mut out = Vec::new();
    let mut start = 0;
    while start < text.len() {
        let end = text[start..].find('\n').map_or(text.len(), |i| start + i);
        let next = (end + 1).min(text.len());
        let body = text[start..end]
            .strip_suffix('\r')
            .unwrap_or(&text[start..end]);
        out.push(Line {
            start,
            next: if end == text.len() { end } else { next },
            text: body,
        });
        start = end + 1;
    }
    out
}

/// Whether `line` holds the key `key` at column `column` (after any `- ` of the sequence
/// entries the mapping starts).
fn key_at(line: &Line<'_>, column: usize, key: &str) -> Option<usize> {
    let text = line.text;
    if text.len() < column {
        return None;
    }
    let (lead, rest) = text.split_at(column);
    if !lead.chars().all(|c| c == ' ' || c == '-') {
        return None;
    }
    let after = rest.strip_prefix(key)?.strip_prefix(':')?;
    if !(after.is_empty() || after.starts_with(' ')) {
        return None;
    }
    Some(line.start + column + key.len() + 1)
}

/// A scalar as YAML writes it here: plain when it reads back as the same string,
/// double-quoted (JSON escapes are YAML's) otherwise.
pub fn scalar(text: &str) -> String {
    let reserved = [
        "true", "false", "yes", "no", "on", "off", "null", "y", "n", "~",
    ];
    let first_ok = text
        .chars()
        .next()
        .is_some_and(|c| c.is_alphanumeric() || c == '/' || c == '(');
    let plain = first_ok
        && text.trim() == text
        && !text.contains(": ")
        && !text.contains(" #")
        && !text.ends_with(':')
        && !text.chars().any(|c| {
            c.is_control() || matches!(c, '"' | '\'' | '`' | '{' | '}' | '[' | ']' | '|' | '>')
        })
        && !reserved.contains(&text.to_ascii_lowercase().as_str())
        && text.parse::<f64>().is_err()
        && !looks_like_date(text);
    if plain {
        text.to_string()
    } else {
        serde_json::Value::String(text.to_string()).to_string()
    }
}

fn looks_like_date(text: &str) -> bool {
    let b = text.as_bytes();
    b.len() >= 8 && b[..4].iter().all(u8::is_ascii_digit) && b[4] == b'-'
}

/// The YAML lines of `entry` as a block-sequence entry: the dash at column `dash`, the
/// keys at column `keys` (line breaks `eol`), with `comment` lines above it.
pub fn entry_lines(
    entry: &ApprovedPort,
    comment: &[String],
    dash: usize,
    keys: usize,
    eol: &str,
) -> String {
    let mut fields: Vec<(&str, String)> = vec![("port", entry.port.to_string())];
    if entry.protocol == ProtocolName::Udp {
        fields.push(("protocol", "udp".into()));
    }
    if let Some(service) = &entry.service {
        fields.push(("service", scalar(service)));
    }
    if entry.tls == TlsPolicy::Required {
        fields.push(("tls", "required".into()));
    }
    fields.push(("justification", scalar(&entry.justification)));
    if let Some(until) = entry.approved_until {
        fields.push(("approved_until", until.to_string()));
    }
    if let Some(application) = &entry.application {
        fields.push(("application", scalar(application)));
    }
    if !entry.accept.is_empty() {
        let items: Vec<String> = entry.accept.iter().map(|a| scalar(a)).collect();
        fields.push(("accept", format!("[{}]", items.join(", "))));
    }
    if !entry.addresses.is_empty() {
        let items: Vec<String> = entry
            .addresses
            .iter()
            .map(|ip| match ip {
                IpAddr::V4(v4) => v4.to_string(),
                IpAddr::V6(v6) => format!("\"{v6}\""),
            })
            .collect();
        fields.push(("addresses", format!("[{}]", items.join(", "))));
    }
    let mut out = String::new();
    for line in comment {
        let line: String = line.chars().filter(|c| !c.is_control()).collect();
        out.push_str(&format!("{:dash$}# {line}{eol}", ""));
    }
    for (i, (key, value)) in fields.iter().enumerate() {
        if i == 0 {
            let gap = keys.saturating_sub(dash + 1).max(1);
            out.push_str(&format!("{:dash$}-{:gap$}{key}: {value}{eol}", "", ""));
        } else {
            out.push_str(&format!("{:keys$}{key}: {value}{eol}", ""));
        }
    }
    out
}

/// Where the entries of a new list go: as far right of their key as those of another
/// block list of the same mapping (`targets:`), else two columns.
fn list_indent(all: &[Line<'_>], region: std::ops::Range<usize>, key_column: usize) -> usize {
    for i in region.clone() {
        let line = &all[i];
        let Some(colon) = line.text.find(':') else {
            continue;
        };
        let key = line.text[..colon].trim_start_matches([' ', '-']);
        let starts = colon - key.len();
        let bare = line.text[colon + 1..].trim().is_empty();
        if starts != key_column || key.is_empty() || key.contains(' ') || !bare {
            continue;
        }
        if let Some(next) = all[i + 1..region.end].iter().find(|l| !l.is_filler())
            && next.text[next.indent()..].starts_with('-')
            && next.indent() >= key_column
        {
            return next.indent();
        }
    }
    key_column + 2
}

/// Plans the insertion of `approval` into `manifest`'s text (see the module's comment).
pub fn plan(manifest: &Manifest, approval: &Approval) -> Result<Edit, ApproveError> {
    let text = manifest.text.as_str();
    if text.is_empty() {
        return Err(ApproveError::NoText);
    }
    let file = manifest.source.clone();
    let eol = if text.contains("\r\n") { "\r\n" } else { "\n" };
    let all = lines(text);
    let entry = &approval.entry;

    // The list and the lines of the mapping that holds it.
    let (list, list_name, key_column, region): (&[Spanned<ApprovedPort>], String, usize, _) =
        match &approval.asset {
            Some(name) => {
                let Some(asset) = manifest.assets.iter().find(|a| a.value.name == *name) else {
                    return Err(ApproveError::UnknownAsset {
                        file,
                        name: name.clone(),
                        known: manifest
                            .assets
                            .iter()
                            .map(|a| a.value.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", "),
                    });
                };
                let first = usize::try_from(asset.referenced.line().max(1) - 1).unwrap_or(0);
                let column = usize::try_from(asset.referenced.column().max(1) - 1).unwrap_or(0);
                // The mapping runs until a line written left of its keys.
                let end = all
                    .iter()
                    .enumerate()
                    .skip(first + 1)
                    .find(|(_, l)| !l.is_filler() && l.indent() < column)
                    .map_or(all.len(), |(i, _)| i);
                (
                    asset.value.approved.as_slice(),
                    format!("asset {name}"),
                    column,
                    first..end,
                )
            }
            None => (
                manifest.approved.as_slice(),
                "the global list".to_string(),
                0,
                0..all.len(),
            ),
        };
    if let Some(existing) = list
        .iter()
        .find(|a| a.value.port == entry.port && a.value.protocol == entry.protocol)
    {
        return Err(ApproveError::AlreadyApproved {
            file,
            line: existing.referenced.line(),
            column: existing.referenced.column(),
            list: list_name,
            port: entry.port,
            protocol: Protocol::from(entry.protocol).to_string(),
        });
    }

    let key_line = region
        .clone()
        .find(|&i| key_at(&all[i], key_column, "approved").is_some());
    let edit = match key_line {
        Some(k) => {
            let after_key = key_at(&all[k], key_column, "approved").unwrap_or(all[k].start);
            let line_end = all[k].start + all[k].text.len();
            let rest = text[after_key..line_end].trim();
            let (value, comment) = match rest.find('#') {
                Some(i) if i == 0 || rest[..i].ends_with(' ') => (rest[..i].trim(), &rest[i..]),
                _ => (rest, ""),
            };
            match value {
                "" => {
                    // A block list (or nothing yet): its entries are the lines after the
                    // key written right of it, or at its column starting with `-`.
                    let mut dash = None;
                    let mut last = k;
                    for (i, line) in all.iter().enumerate().skip(k + 1) {
                        if line.is_filler() {
                            continue;
                        }
                        let indent = line.indent();
                        let is_dash = line.text[indent..].starts_with('-');
                        let belongs = match dash {
                            None => indent > key_column || (indent == key_column && is_dash),
                            Some(d) => indent > d || (indent == d && is_dash),
                        };
                        if !belongs {
                            break;
                        }
                        if dash.is_none() {
                            if !is_dash {
                                return Err(ApproveError::Unsupported {
                                    file,
                                    line: i + 1,
                                    what: format!("the approved list of {list_name}"),
                                    text: line.text.trim().to_string(),
                                });
                            }
                            dash = Some(indent);
                        }
                        last = i;
                    }
                    let (dash, keys) = match dash {
                        Some(d) => {
                            // The first entry shows how far its keys sit from the dash.
                            let first = all
                                .iter()
                                .skip(k + 1)
                                .find(|l| !l.is_filler())
                                .map_or("", |l| l.text);
                            let after_dash = &first[d + 1..];
                            let gap = after_dash.len() - after_dash.trim_start().len();
                            let keys = if after_dash.trim().is_empty() {
                                d + 2
                            } else {
                                d + 1 + gap
                            };
                            (d, keys)
                        }
                        None => (key_column + 2, key_column + 4),
                    };
                    let at = all[last].next;
                    let mut inserted = String::new();
                    if at == text.len() && !text.ends_with('\n') {
                        inserted.push_str(eol);
                    }
                    inserted.push_str(&entry_lines(entry, &approval.comment, dash, keys, eol));
                    Edit {
                        start: at,
                        end: at,
                        inserted,
                    }
                }
                "[]" => {
                    // An empty flow list becomes a block list.
                    let dash = list_indent(&all, region.clone(), key_column);
                    let body = entry_lines(entry, &approval.comment, dash, dash + 2, eol);
                    let comment = if comment.is_empty() {
                        String::new()
                    } else {
                        format!(" {comment}")
                    };
                    Edit {
                        start: after_key,
                        end: line_end,
                        inserted: format!(
                            "{comment}{eol}{}",
                            body.strip_suffix(eol).unwrap_or(&body)
                        ),
                    }
                }
                other => {
                    return Err(ApproveError::Unsupported {
                        file,
                        line: k + 1,
                        what: format!("the approved list of {list_name}"),
                        text: other.to_string(),
                    });
                }
            }
        }
        None => {
            // No list yet: `approved:` at the end of the asset's mapping, or before the
            // top-level `assets:` (and the comments right above it) for the global list.
            let at_line = match &approval.asset {
                Some(_) => region
                    .clone()
                    .rev()
                    .find(|&i| !all[i].is_filler())
                    .map_or(region.end, |i| i + 1),
                None => match all.iter().position(|l| key_at(l, 0, "assets").is_some()) {
                    Some(mut i) => {
                        while i > 0 && all[i - 1].text.trim_start().starts_with('#') {
                            i -= 1;
                        }
                        i
                    }
                    None => all.len(),
                },
            };
            let at = all.get(at_line).map_or(text.len(), |l| l.start);
            let mut inserted = String::new();
            if at == text.len() && !text.is_empty() && !text.ends_with('\n') {
                inserted.push_str(eol);
            }
            let dash = list_indent(&all, region.clone(), key_column);
            inserted.push_str(&format!("{:key_column$}approved:{eol}", ""));
            inserted.push_str(&entry_lines(entry, &approval.comment, dash, dash + 2, eol));
            Edit {
                start: at,
                end: at,
                inserted,
            }
        }
    };
    verify(manifest, approval, &edit)?;
    Ok(edit)
}

/// Reads the edited text back: it must load, and read as the old manifest plus the entry.
fn verify(manifest: &Manifest, approval: &Approval, edit: &Edit) -> Result<(), ApproveError> {
    let edited = edit.apply(&manifest.text);
    let read = Manifest::from_yaml(&edited, &manifest.source).map_err(ApproveError::Invalid)?;
    let mut expected = manifest.clone();
    let list = match &approval.asset {
        Some(name) => expected
            .assets
            .iter_mut()
            .find(|a| a.value.name == *name)
            .map(|a| &mut a.value.approved),
        None => Some(&mut expected.approved),
    };
    if let Some(list) = list {
        list.push(Spanned::new(
            approval.entry.clone(),
            serde_saphyr::Location::UNKNOWN,
            serde_saphyr::Location::UNKNOWN,
        ));
    }
    let as_json = |m: &Manifest| serde_json::to_value(m).unwrap_or_default();
    if as_json(&expected) != as_json(&read) {
        return Err(ApproveError::Changed {
            file: manifest.source.clone(),
            what: match &approval.asset {
                Some(name) => format!("asset {name}"),
                None => "the global approved list".into(),
            },
        });
    }
    Ok(())
}

/// A word for a shell: as it is when it needs no quoting, else in single quotes.
pub fn shell_word(word: &str) -> String {
    let safe = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._/:@%+=,-".contains(c));
    if safe {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}

/// The `portgate baseline approve` command that writes `approval` into `manifest_file`.
pub fn approve_command(manifest_file: &str, approval: &Approval) -> String {
    let e = &approval.entry;
    let mut words = vec![
        "portgate".to_string(),
        "baseline".into(),
        "approve".into(),
        "--manifest".into(),
        shell_word(manifest_file),
    ];
    if let Some(asset) = &approval.asset {
        words.extend(["--asset".into(), shell_word(asset)]);
    }
    words.extend(["--port".into(), e.port.to_string()]);
    if e.protocol == ProtocolName::Udp {
        words.extend(["--protocol".into(), "udp".into()]);
    }
    if let Some(service) = &e.service {
        words.extend(["--service".into(), shell_word(service)]);
    }
    if e.tls == TlsPolicy::Required {
        words.extend(["--tls".into(), "required".into()]);
    }
    if let Some(application) = &e.application {
        words.extend(["--application".into(), shell_word(application)]);
    }
    for ip in &e.addresses {
        words.extend(["--address".into(), ip.to_string()]);
    }
    words.extend(["--justification".into(), shell_word(&e.justification)]);
    if let Some(until) = e.approved_until {
        words.extend(["--until".into(), until.to_string()]);
    }
    words.join(" ")
}

/// The justification a proposed approval carries until a person writes one.
pub const PROPOSED_JUSTIFICATION: &str = "TODO: why this port must be reachable";

/// Gives each unapproved port of `findings` the approval that would let it pass: the
/// command and the manifest lines (with their place when the manifest's text is known).
/// A port open on only some addresses of its asset is approved for those addresses.
pub fn propose_fixes(manifest: &Manifest, report: &ScanReport, findings: &mut [Finding]) {
    // The addresses each asset (or the global list) had scanned.
    let mut scanned: BTreeMap<Option<&str>, Vec<IpAddr>> = BTreeMap::new();
    let asset_of = |target: &str| {
        let target = target
            .parse::<portgate_model::TargetSpec>()
            .map_or_else(|_| target.to_string(), |t| t.to_string());
        manifest.assets.iter().find(|a| {
            a.value
                .targets
                .iter()
                .any(|t| t.value.0.to_string() == target)
        })
    };
    for host in &report.hosts {
        let asset = asset_of(&host.target).map(|a| a.value.name.as_str());
        let list = scanned.entry(asset).or_default();
        if !list.contains(&host.ip) {
            list.push(host.ip);
        }
    }
    // The addresses each unapproved port was found open on.
    let mut open: BTreeMap<(Option<String>, Protocol, u16), Vec<IpAddr>> = BTreeMap::new();
    for f in findings.iter() {
        if let (Rule::UnapprovedPort, Some(protocol), Some(port), Some(ip)) =
            (f.rule, f.protocol, f.port, f.ip)
        {
            let list = open.entry((f.asset.clone(), protocol, port)).or_default();
            if !list.contains(&ip) {
                list.push(ip);
            }
        }
    }
    let mut planned: BTreeMap<String, Fix> = BTreeMap::new();
    for f in findings.iter_mut() {
        let (Rule::UnapprovedPort, Some(protocol), Some(port), Some(ip)) =
            (f.rule, f.protocol, f.port, f.ip)
        else {
            continue;
        };
        let detected = report
            .hosts
            .iter()
            .find(|h| h.ip == ip && h.target == f.target)
            .and_then(|h| h.service_on(protocol, port));
        let mut addresses = open
            .get(&(f.asset.clone(), protocol, port))
            .cloned()
            .unwrap_or_default();
        let all = scanned.get(&f.asset.as_deref()).map_or(0, |l| l.len());
        if addresses.len() >= all {
            addresses.clear();
        }
        addresses.sort();
        let entry = ApprovedPort {
            port,
            protocol: match protocol {
                Protocol::Tcp => ProtocolName::Tcp,
                Protocol::Udp => ProtocolName::Udp,
            },
            service: detected
                .and_then(|d| d.service.clone())
                .filter(|s| s != "tls"),
            tls: if detected.is_some_and(|d| d.tls.is_some()) {
                TlsPolicy::Required
            } else {
                TlsPolicy::Optional
            },
            justification: PROPOSED_JUSTIFICATION.to_string(),
            approved_until: None,
            application: detected
                .and_then(|d| d.applications.as_ref())
                .and_then(|a| a.found.first())
                .map(|a| a.id.clone()),
            accept: Vec::new(),
            addresses,
        };
        let approval = Approval {
            asset: f.asset.clone(),
            entry,
            comment: Vec::new(),
        };
        // The command names everything the approval holds: one plan (and one read-back
        // of the manifest) per distinct approval, however many addresses share it.
        let command = approve_command(&manifest.source, &approval);
        if let Some(fix) = planned.get(&command) {
            f.fix = Some(fix.clone());
            continue;
        }
        let (dash, keys) = if approval.asset.is_some() {
            (6, 8)
        } else {
            (2, 4)
        };
        let edit = plan(manifest, &approval)
            .ok()
            .map(|e| e.text_edit(&manifest.text, &manifest.source));
        let yaml = match &edit {
            Some(e) => e.inserted.trim_start_matches(['\r', '\n']).to_string(),
            None => entry_lines(&approval.entry, &[], dash, keys, "\n"),
        };
        let fix = Fix {
            description: format!(
                "approve {port}/{protocol} {}",
                match &approval.asset {
                    Some(asset) => format!("for asset {asset}"),
                    None => "in the global approved list".into(),
                }
            ),
            command: command.clone(),
            yaml,
            edit,
        };
        planned.insert(command, fix.clone());
        f.fix = Some(fix);
    }
}
