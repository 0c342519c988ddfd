//! Targets from the command line and from `-iL` files.

use crate::Failure;
use portgate_model::TargetSpec;
use std::path::Path;

/// Parses the positional targets, then each file's; errors name the file and line.
pub(crate) fn collect(
    positional: &[String],
    files: &[impl AsRef<Path>],
) -> Result<Vec<TargetSpec>, Failure> {
    let mut targets = Vec::new();
    for text in positional {
        let target = text
            .parse::<TargetSpec>()
            .map_err(|e| Failure::usage(format!("target {e}")))?;
        targets.push(target);
    }
    for file in files {
        targets.extend(read_file(file.as_ref())?);
    }
    if targets.is_empty() {
        return Err(Failure::usage(
            "no target given: name hosts, addresses or ranges, or a file with -iL FILE",
        ));
    }
    Ok(targets)
}

fn read_file(path: &Path) -> Result<Vec<TargetSpec>, Failure> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Failure::usage(format!("cannot read targets file {}: {e}", path.display())))?;
    parse_list(&text, &path.display().to_string())
}

/// One or more targets per line, separated by spaces, tabs or commas; `#` to the end of
/// the line is a comment.
pub(crate) fn parse_list(text: &str, origin: &str) -> Result<Vec<TargetSpec>, Failure> {
    let mut targets = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let content = line.split('#').next().unwrap_or_default();
        for (column, word) in words(content) {
            let target = word.parse::<TargetSpec>().map_err(|e| {
                Failure::usage(format!("{origin}:{}:{}: target {e}", index + 1, column + 1))
            })?;
            targets.push(target);
        }
    }
    Ok(targets)
}

/// Words and their 0-based character columns.
fn words(line: &str) -> impl Iterator<Item = (usize, &str)> {
    let mut start = None;
    let mut out = Vec::new();
    for (i, c) in line.char_indices() {
        let separator = c.is_whitespace() || c == ',';
        match (separator, start) {
            (false, None) => start = Some(i),
            (true, Some(s)) => {
                out.push((s, &line[s..i]));
                start = None;
            }
            _ => {}
        }
    }
    if let Some(s) = start {
        out.push((s, &line[s..]));
    }
    out.into_iter()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_lists_with_comments() {
        let text = "# staging\n127.0.0.1  ::1\n198.18.0.0/30, localhost # the box\n\n";
        let got = parse_list(text, "t.txt").map_err(|f| f.message);
        assert_eq!(
            got.map(|t| t.iter().map(ToString::to_string).collect::<Vec<_>>()),
            Ok(vec![
                "127.0.0.1".to_string(),
                "::1".to_string(),
                "198.18.0.0/30".to_string(),
                "localhost".to_string()
            ])
        );
    }

    #[test]
    fn errors_name_file_line_and_column() {
        let err = parse_list("127.0.0.1\n  198.18.0.0/40\n", "hosts.txt")
            .err()
            .map(|f| (f.code, f.message));
        assert_eq!(
            err,
            Some((
                2,
                "hosts.txt:2:3: target \"198.18.0.0/40\" is not a valid CIDR range: prefix /40 is longer than /32".to_string()
            ))
        );
    }
}
