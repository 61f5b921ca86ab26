//! Printing statement results as tables, CSV or JSON lines.

use chronos::server::StatementOutcome;
use chronos::sql::types::Value;
use chronos::sql::{StatementResult, format};

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
    use chronos::server::StatementError;
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
