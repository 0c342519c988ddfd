//! Aligned columns for the human tables of every command.

use std::fmt::Write;

/// Rows as lines of columns, each padded to its widest cell (counted in characters) and
/// separated by two spaces; the last column is not padded and no line ends in spaces.
pub fn columns<R: AsRef<[String]>>(rows: &[R]) -> String {
    let width_of = |i: usize| {
        rows.iter()
            .map(|r| r.as_ref().get(i).map_or(0, |c| c.chars().count()))
            .max()
            .unwrap_or(0)
    };
    let n = rows.first().map_or(0, |r| r.as_ref().len());
    let widths: Vec<usize> = (0..n).map(width_of).collect();
    let mut out = String::new();
    for row in rows {
        let row = row.as_ref();
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                let width = widths.get(i).copied().unwrap_or(0);
                let _ = write!(line, "{cell:<width$}  ");
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::columns;

    #[test]
    fn pads_to_the_widest_cell_but_not_the_last_column() {
        let rows = vec![
            vec!["PORT".to_string(), "STATE".into(), "NOTE".into()],
            vec!["22/tcp".to_string(), "open".into(), "".into()],
            vec!["8080/tcp".to_string(), "filtered".into(), "ünïcode".into()],
        ];
        assert_eq!(
            columns(&rows),
            "PORT      STATE     NOTE\n22/tcp    open\n8080/tcp  filtered  ünïcode\n"
        );
        let arrays = [
            ["a".to_string(), "bb".into()],
            ["ccc".to_string(), "d".into()],
        ];
        assert_eq!(columns(&arrays), "a    bb\nccc  d\n");
        assert_eq!(columns::<Vec<String>>(&[]), "");
    }
}
