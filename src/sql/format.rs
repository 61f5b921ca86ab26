//! Rendering results for people: the ASCII table and one-line summaries.

use crate::sql::execution::StatementResult;
use crate::sql::types::{Row, Value};
use std::fmt::Write as _;

/// Bytes as people read them: binary units with one decimal (`5.0 MiB`), plain bytes under
/// a KiB.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let (mut value, mut unit) = (bytes as f64, 0);
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    match unit {
        0 => format!("{bytes} B"),
        _ => format!("{value:.1} {}", UNITS[unit]),
    }
}

/// Renders rows as an ASCII table with a header, columns left-aligned and as wide as their
/// widest value:
///
/// ```text
/// +----+-------+
/// | id | name  |
/// +----+-------+
/// | 1  | Alice |
/// +----+-------+
/// ```
pub fn render_table(columns: &[String], rows: &[Row]) -> String {
    let widths = table_widths(columns, rows);
    let mut out = table_head(&widths, columns);
    out.push_str(&table_rows(&widths, rows));
    out.push_str(&table_foot(&widths));
    out
}

/// The column widths of a table: each as wide as its header and widest value.
pub fn table_widths(columns: &[String], rows: &[Row]) -> Vec<usize> {
    let mut widths: Vec<usize> = columns.iter().map(|c| c.chars().count()).collect();
    for row in rows {
        for (width, value) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell_text(value).chars().count());
        }
    }
    widths
}

/// A table's top border, header line and the border under it.
pub fn table_head(widths: &[usize], columns: &[String]) -> String {
    let border = table_border(widths);
    let mut out = format!("{border}\n");
    table_line(&mut out, widths, &mut columns.iter().map(String::as_str));
    out.push_str(&border);
    out.push('\n');
    out
}

/// A table's rows (a cell wider than its column stretches its own line).
pub fn table_rows(widths: &[usize], rows: &[Row]) -> String {
    let mut out = String::new();
    for row in rows {
        let cells: Vec<String> = row.iter().map(cell_text).collect();
        table_line(&mut out, widths, &mut cells.iter().map(String::as_str));
    }
    out
}

/// A table's bottom border.
pub fn table_foot(widths: &[usize]) -> String {
    format!("{}\n", table_border(widths))
}

fn table_border(widths: &[usize]) -> String {
    let mut border = String::from("+");
    for width in widths {
        border.push_str(&"-".repeat(width + 2));
        border.push('+');
    }
    border
}

fn table_line(out: &mut String, widths: &[usize], values: &mut dyn Iterator<Item = &str>) {
    out.push('|');
    for (value, width) in values.zip(widths) {
        let pad = width.saturating_sub(value.chars().count());
        let _ = write!(out, " {value}{} |", " ".repeat(pad));
    }
    out.push('\n');
}

/// A value as a table cell: its text, with control characters escaped so rows stay on one line.
fn cell_text(value: &Value) -> String {
    let text = value.to_string();
    if text.chars().any(char::is_control) { text.escape_default().to_string() } else { text }
}

/// A one-line summary of a statement's outcome (queries are summarized by their row count).
pub fn summary(result: &StatementResult) -> String {
    let rows = |n: u64| if n == 1 { "1 row".to_string() } else { format!("{n} rows") };
    match result {
        StatementResult::Begin { version, read_only: false } => {
            format!("BEGIN (transaction {version})")
        }
        StatementResult::Begin { version, read_only: true } => {
            format!("BEGIN READ ONLY (snapshot {version})")
        }
        StatementResult::Commit { .. } => "COMMIT".into(),
        StatementResult::Rollback { .. } => "ROLLBACK".into(),
        StatementResult::CreateTable { .. }
        | StatementResult::CreateIndex { .. }
        | StatementResult::AlterTable { .. }
        | StatementResult::CreateView { .. }
        | StatementResult::Reindex { .. } => "Query OK".into(),
        StatementResult::Users { message } => format!("Query OK, {message}"),
        StatementResult::DropTable { existed, .. }
        | StatementResult::DropIndex { existed, .. }
        | StatementResult::DropView { existed, .. } => {
            if *existed {
                "Query OK".into()
            } else {
                "Query OK (nothing to drop)".into()
            }
        }
        StatementResult::Insert { count }
        | StatementResult::Update { count }
        | StatementResult::Delete { count } => {
            format!("Query OK, {} affected", rows(*count))
        }
        StatementResult::Query { rows: r, .. } => format!("({})", rows(r.len() as u64)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::types::Value;

    #[test]
    fn table_widths_follow_the_widest_cell_in_characters() {
        let columns = vec!["id".to_string(), "name".to_string()];
        let rows = vec![
            vec![Value::Integer(1), Value::String("Zoë".into())],
            vec![Value::Null, Value::String("a\nb".into())],
        ];
        assert_eq!(
            render_table(&columns, &rows),
            "+------+------+\n\
             | id   | name |\n\
             +------+------+\n\
             | 1    | Zoë  |\n\
             | NULL | a\\nb |\n\
             +------+------+\n"
        );
    }

    #[test]
    fn empty_results_keep_their_header() {
        let columns = vec!["x".to_string()];
        assert_eq!(render_table(&columns, &[]), "+---+\n| x |\n+---+\n+---+\n");
    }

    #[test]
    fn summaries() {
        assert_eq!(summary(&StatementResult::Insert { count: 1 }), "Query OK, 1 row affected");
        assert_eq!(summary(&StatementResult::Delete { count: 0 }), "Query OK, 0 rows affected");
        assert_eq!(
            summary(&StatementResult::Query { columns: vec![], rows: vec![vec![], vec![]] }),
            "(2 rows)"
        );
        let dropped = StatementResult::DropTable { name: "t".into(), existed: false };
        assert_eq!(summary(&dropped), "Query OK (nothing to drop)");
    }
}
