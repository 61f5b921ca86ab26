//! Table schemas: columns, the primary key and secondary indexes.

use crate::sql::error::{Error, Result};
use crate::sql::types::{DataType, Row, Value};
use serde::{Deserialize, Serialize};

/// A table's schema, stored in the catalog.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Table {
    /// The table name (unique in the database).
    pub name: String,
    /// The columns in order.
    pub columns: Vec<Column>,
    /// The primary key column. `None` means the table has a hidden row id as its key,
    /// allocated in insertion order.
    pub primary_key: Option<usize>,
    /// Secondary indexes, including those enforcing UNIQUE columns.
    pub indexes: Vec<Index>,
    /// What the last ANALYZE measured, if any.
    pub statistics: Option<Box<Statistics>>,
    /// Retention: rows expire this long after the time in a column (see
    /// `planner::retention`).
    pub ttl: Option<Ttl>,
    /// The rollups this table's inserted rows feed (see `engine/rollup.rs`).
    pub rollups: Vec<super::Rollup>,
    /// The rollup whose state this table holds, if it is one's: only the rollup writes it.
    pub rollup_of: Option<String>,
    /// Whether an edge forwards this table's rows upstream (see `outbox.rs`): it is then
    /// append-only.
    pub forwarded: bool,
    /// How many rows the engine counts in the table (see `Txn::live_rows`), when the planner
    /// asked for it; not stored.
    #[serde(skip)]
    pub live_rows: Option<Box<u64>>,
}

/// A table's retention: a row expires `after` past the time in its `column` (a TIMESTAMP NOT
/// NULL column).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ttl {
    /// How long a row lives.
    pub after: crate::sql::types::Interval,
    /// The column holding each row's time.
    pub column: usize,
}

/// What ANALYZE measured of a table's rows, for the planner's estimates (a snapshot: rows
/// written since are not counted until the next ANALYZE).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Statistics {
    /// How many rows there were.
    pub rows: u64,
    /// About how many distinct non-NULL values each column had (by column position).
    pub distinct: Vec<u64>,
}

/// A column of a table.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Column {
    /// The column name (unique in the table).
    pub name: String,
    /// The column type.
    pub datatype: DataType,
    /// VARCHAR(n): the declared length in characters. Kept for the schema, not enforced:
    /// as in SQLite, a longer text is stored whole.
    pub max_length: Option<u32>,
    /// Whether NULL may be stored.
    pub nullable: bool,
    /// The value stored when an INSERT does not give one (NULL when absent).
    pub default: Option<Value>,
    /// DEFAULT now(): the INSERT's statement time is stored (the planner sets `default`).
    pub default_now: bool,
}

/// A secondary index on one or more columns.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Index {
    /// The index name (unique in the database).
    pub name: String,
    /// The indexed columns, most significant first.
    pub columns: Vec<usize>,
    /// Whether two rows may not share values (rows with a NULL in them never clash).
    pub unique: bool,
    /// It enforces the table's PRIMARY KEY or a UNIQUE constraint (so DROP INDEX refuses it).
    pub constraint: bool,
}

impl Index {
    /// The index's values of a row.
    pub fn values(&self, row: &Row) -> Vec<Value> {
        self.columns.iter().map(|c| row.get(*c).cloned().unwrap_or(Value::Null)).collect()
    }

    /// The indexed columns' names, joined by ", ".
    pub fn column_names(&self, table: &Table) -> String {
        let names: Vec<&str> = self
            .columns
            .iter()
            .map(|c| table.columns.get(*c).map_or("?", |column| column.name.as_str()))
            .collect();
        names.join(", ")
    }
}

impl Table {
    /// Checks the schema's own consistency: a column, unique column names, a valid key and
    /// indexes, defaults of the right type.
    pub fn validate(&self) -> Result<()> {
        if self.columns.is_empty() {
            return Err(Error::Invalid(format!(
                "table \"{}\" must have at least one column",
                self.name
            )));
        }
        for (i, column) in self.columns.iter().enumerate() {
            if self.columns[..i].iter().any(|c| c.name == column.name) {
                return Err(Error::Invalid(format!(
                    "column \"{}\" specified more than once",
                    column.name
                )));
            }
            if let Some(default) = &column.default {
                let value = default.clone().coerce_to(column.datatype)?;
                column.check(&self.name, &value)?;
            }
        }
        if let Some(key) = self.primary_key {
            let column = self
                .columns
                .get(key)
                .ok_or_else(|| Error::Invalid("invalid primary key".into()))?;
            if column.nullable {
                return Err(Error::Invalid(format!(
                    "primary key column \"{}\" must be NOT NULL",
                    column.name
                )));
            }
        }
        if let Some(ttl) = &self.ttl
            && self.columns.get(ttl.column).is_none_or(|c| c.nullable)
        {
            return Err(Error::Invalid("the TTL column must be a NOT NULL column".into()));
        }
        for (i, index) in self.indexes.iter().enumerate() {
            if index.columns.is_empty() || index.columns.iter().any(|c| *c >= self.columns.len()) {
                return Err(Error::Invalid(format!(
                    "index \"{}\" refers to a missing column",
                    index.name
                )));
            }
            if self.indexes[..i].iter().any(|other| other.name == index.name) {
                return Err(Error::IndexExists(index.name.clone()));
            }
        }
        Ok(())
    }

    /// The position of the column named `name`.
    pub fn column_index(&self, name: &str) -> Result<usize> {
        self.columns
            .iter()
            .position(|c| c.name == name)
            .ok_or_else(|| Error::UnknownColumn(format!("{}.{name}", self.name)))
    }

    /// The key of a row: its primary key value. Tables with a hidden row id have no key
    /// column; callers supply the row id instead.
    pub fn row_key(&self, row: &Row) -> Option<Value> {
        self.primary_key.map(|key| row[key].clone())
    }

    /// Converts a row for storage: coerces each value to its column's type and checks
    /// NOT NULL and length limits.
    pub fn prepare_row(&self, row: Row) -> Result<Row> {
        if row.len() != self.columns.len() {
            return Err(Error::Invalid(format!(
                "table \"{}\" has {} columns, but {} values were given",
                self.name,
                self.columns.len(),
                row.len()
            )));
        }
        row.into_iter()
            .zip(&self.columns)
            .map(|(value, column)| {
                let value = value.coerce_to(column.datatype).map_err(|error| match error {
                    Error::TypeMismatch(message) => {
                        Error::TypeMismatch(format!("column \"{}\": {message}", column.name))
                    }
                    other => other,
                })?;
                column.check(&self.name, &value)?;
                Ok(value)
            })
            .collect()
    }
}

impl Column {
    /// Checks a value (already of the column's type) against NOT NULL.
    pub fn check(&self, table: &str, value: &Value) -> Result<()> {
        match value {
            Value::Null if !self.nullable => {
                Err(Error::NotNull { table: table.to_string(), column: self.name.clone() })
            }
            _ => Ok(()),
        }
    }
}

/// A view: a named query, stored in the catalog and planned wherever it is read.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct View {
    /// The view's name (no table has it).
    pub name: String,
    /// Names for its columns (none: the query's own).
    pub columns: Vec<String>,
    /// The query.
    pub query: crate::sql::parser::ast::Select,
}
