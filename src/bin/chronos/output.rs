//! Printing statement results as tables, CSV or JSON lines.

use chronos::replica::StatementOutcome;
use chronos::sql::planner::OutputColumn;
use chronos::sql::types::{Row, Value};
use chronos::sql::{StatementResult, format};
use std::io::Write;

/// How many bytes of a query's rows a table holds back to size its columns; past this the
/// table streams with the widths it has (wider cells stretch their row).
const TABLE_BUFFER_BYTES: usize = 8 << 20;

/// An output format of `chronos exec`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// ASCII tables for queries, a summary line for other statements.
    Table,
    /// A header and rows for queries; nothing for other statements.
    Csv,
    /// One JSON object per statement per line.
    Json,
}

/// Renders one statement's outcome. Errors are rendered for stdout only in JSON; in the other
/// formats they go to stderr (see [`error_line`]).
pub fn render(format: Format, outcome: &StatementOutcome) -> String {
    match (format, outcome) {
        (Format::Json, outcome) => json_line(outcome),
        (_, Err(_)) => String::new(),
        (Format::Table, Ok(StatementResult::Query { columns, rows })) => {
            let names: Vec<String> = columns.iter().map(|c| c.name.clone()).collect();
            format::render_table(&names, rows)
        }
        (Format::Table, Ok(result)) => format!("{}\n", format::summary(result)),
        (Format::Csv, Ok(StatementResult::Query { columns, rows })) => {
            let mut out = String::new();
            let names: Vec<String> = columns.iter().map(|c| csv_field(&c.name)).collect();
            out.push_str(&names.join(","));
            out.push('\n');
            for row in rows {
                let fields: Vec<String> = row.iter().map(csv_value).collect();
                out.push_str(&fields.join(","));
                out.push('\n');
            }
            out
        }
        (Format::Csv, Ok(_)) => String::new(),
    }
}

/// Prints a script's results as they arrive, holding at most [`TABLE_BUFFER_BYTES`] of rows:
/// CSV and JSON lines stream row by row; a table is printed whole when its rows fit in the
/// buffer (exactly as [`render`] would), and streams with the widths of its first rows when
/// they do not.
pub struct Printer {
    format: Format,
    /// The current query's column names.
    columns: Vec<String>,
    /// Rows held back (tables only), and their size.
    held: Vec<Row>,
    held_bytes: usize,
    /// A table streaming with these widths.
    widths: Option<Vec<usize>>,
    /// Rows printed of the current query (JSON: whether a comma is needed).
    printed: u64,
}

impl Printer {
    /// A printer in `format`.
    pub fn new(format: Format) -> Self {
        Self {
            format,
            columns: Vec::new(),
            held: Vec::new(),
            held_bytes: 0,
            widths: None,
            printed: 0,
        }
    }

    /// A query starts.
    pub fn columns(
        &mut self,
        out: &mut dyn Write,
        columns: &[OutputColumn],
    ) -> std::io::Result<()> {
        self.columns = columns.iter().map(|c| c.name.clone()).collect();
        self.held.clear();
        self.held_bytes = 0;
        self.widths = None;
        self.printed = 0;
        match self.format {
            Format::Csv => {
                let names: Vec<String> = self.columns.iter().map(|c| csv_field(c)).collect();
                writeln!(out, "{}", names.join(","))
            }
            Format::Json => {
                write!(out, "{{\"columns\":{},\"rows\":[", serde_json::json!(self.columns))
            }
            Format::Table => Ok(()),
        }
    }

    /// A batch of the query's rows.
    pub fn rows(&mut self, out: &mut dyn Write, rows: Vec<Row>) -> std::io::Result<()> {
        match self.format {
            Format::Csv => {
                for row in rows {
                    let fields: Vec<String> = row.iter().map(csv_value).collect();
                    writeln!(out, "{}", fields.join(","))?;
                }
                Ok(())
            }
            Format::Json => {
                for row in rows {
                    let values: Vec<serde_json::Value> = row.iter().map(json_value).collect();
                    let comma = if self.printed > 0 { "," } else { "" };
                    write!(out, "{comma}{}", serde_json::Value::Array(values))?;
                    self.printed += 1;
                }
                Ok(())
            }
            Format::Table => {
                if let Some(widths) = &self.widths {
                    return write!(out, "{}", format::table_rows(widths, &rows));
                }
                self.held_bytes += rows.iter().flatten().map(Value::size).sum::<usize>();
                self.held.extend(rows);
                if self.held_bytes >= TABLE_BUFFER_BYTES {
                    // Too many rows to size the columns on all of them: stream from here on.
                    let widths = format::table_widths(&self.columns, &self.held);
                    write!(out, "{}", format::table_head(&widths, &self.columns))?;
                    write!(out, "{}", format::table_rows(&widths, &self.held))?;
                    self.held.clear();
                    self.held_bytes = 0;
                    self.widths = Some(widths);
                }
                Ok(())
            }
        }
    }

    /// A statement ends. Errors are printed for stdout only in JSON; in the other formats they
    /// go to stderr (see [`error_line`]), after what the statement printed.
    pub fn result(
        &mut self,
        out: &mut dyn Write,
        outcome: &StatementOutcome,
    ) -> std::io::Result<()> {
        let query = matches!(outcome, Ok(StatementResult::Query { .. }));
        let in_query = !self.columns.is_empty();
        let columns = std::mem::take(&mut self.columns);
        match self.format {
            Format::Json if in_query => {
                writeln!(out, "]}}")?;
                if let Err(error) = outcome {
                    write!(out, "{}", json_line(&Err(error.clone())))?;
                }
                Ok(())
            }
            Format::Table if in_query => {
                match self.widths.take() {
                    Some(widths) => write!(out, "{}", format::table_foot(&widths))?,
                    None if query => {
                        write!(out, "{}", format::render_table(&columns, &self.held))?;
                    }
                    None => {}
                }
                self.held.clear();
                self.held_bytes = 0;
                Ok(())
            }
            Format::Csv if in_query => Ok(()),
            _ => write!(out, "{}", render(self.format, outcome)),
        }
    }
}

/// The line printed to stderr for a failed statement.
pub fn error_line(kind: &str, message: &str) -> String {
    format!("ERROR ({kind}): {message}")
}

/// A CSV field, quoted when it holds a separator, quote or line break (RFC 4180).
fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}

/// A value as a CSV field: NULL is empty.
fn csv_value(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        value => csv_field(&value.to_string()),
    }
}

/// A value as JSON.
fn json_value(value: &Value) -> serde_json::Value {
    match value {
        Value::Null => serde_json::Value::Null,
        Value::Boolean(b) => serde_json::Value::Bool(*b),
        Value::Integer(i) => serde_json::Value::from(*i),
        // JSON has no NaN or infinity: those become their SQL text.
        Value::Float(f) => serde_json::Number::from_f64(*f).map_or_else(
            || serde_json::Value::String(value.to_string()),
            serde_json::Value::Number,
        ),
        Value::String(s) => serde_json::Value::String(s.clone()),
        // RFC 3339, which JSON readers parse: 2024-05-01T12:00:00Z.
        Value::Timestamp(_) => {
            serde_json::Value::String(format!("{}Z", value).replacen(' ', "T", 1))
        }
        Value::Interval(_) => serde_json::Value::String(value.to_string()),
    }
}

/// One statement's outcome as a JSON line (with its newline).
fn json_line(outcome: &StatementOutcome) -> String {
    let object = match outcome {
        Ok(StatementResult::Query { columns, rows }) => serde_json::json!({
            "columns": columns.iter().map(|c| c.name.clone()).collect::<Vec<_>>(),
            "rows": rows
                .iter()
                .map(|row| row.iter().map(json_value).collect::<Vec<_>>())
                .collect::<Vec<_>>(),
        }),
        Ok(result) => serde_json::json!({ "rows_affected": result.rows_affected() }),
        Err(error) => serde_json::json!({
            "error": { "kind": error.kind, "message": error.message }
        }),
    };
    format!("{object}\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use chronos::replica::StatementError;
    use chronos::sql::planner::OutputColumn;

    fn query() -> StatementOutcome {
        Ok(StatementResult::Query {
            columns: vec![
                OutputColumn { name: "id".into(), datatype: None },
                OutputColumn { name: "name".into(), datatype: None },
            ],
            rows: vec![
                vec![Value::Integer(1), Value::String("a,\"b\"".into())],
                vec![Value::Float(2.5), Value::Null],
            ],
        })
    }

    #[test]
    fn csv_quotes_what_needs_quoting_and_leaves_null_empty() {
        assert_eq!(render(Format::Csv, &query()), "id,name\n1,\"a,\"\"b\"\"\"\n2.5,\n");
        assert_eq!(render(Format::Csv, &Ok(StatementResult::Insert { count: 2 })), "");
    }

    #[test]
    fn json_lines_carry_typed_values_counts_and_errors() {
        assert_eq!(
            render(Format::Json, &query()),
            "{\"columns\":[\"id\",\"name\"],\"rows\":[[1,\"a,\\\"b\\\"\"],[2.5,null]]}\n"
        );
        assert_eq!(
            render(Format::Json, &Ok(StatementResult::Update { count: 3 })),
            "{\"rows_affected\":3}\n"
        );
        let error = Err(StatementError::new("unknown_table", "table \"x\" does not exist"));
        assert_eq!(
            render(Format::Json, &error),
            "{\"error\":{\"kind\":\"unknown_table\",\"message\":\"table \\\"x\\\" does not exist\"}}\n"
        );
    }
}
