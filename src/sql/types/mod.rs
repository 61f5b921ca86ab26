//! SQL data types and values.
//!
//! - [`DataType`]: the column types (BOOLEAN, INTEGER, FLOAT, STRING, TIMESTAMP, INTERVAL).
//! - [`Value`]: one SQL value, NULL included, with SQL semantics for comparison (three-valued),
//!   arithmetic (checked: overflow and division by zero are errors), casts and LIKE.
//! - [`Value::encode_key`]: the order-preserving key form of a value (see `encoding::keycode`).
//!
//! `Value` also has a total order ([`Ord`]) used for sorting, grouping and DISTINCT: NULL
//! first, then booleans, numbers (integers and floats compared by value, NaN last), strings,
//! timestamps, intervals.

mod interval;
pub mod time;
mod value;

pub use interval::Interval;
pub use value::{ArithmeticOp, MAX_TEXT_BYTES, Row, Value};

use serde::{Deserialize, Serialize};
use std::fmt;

/// A column's data type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DataType {
    /// BOOL, BOOLEAN.
    Boolean,
    /// INT, INTEGER, BIGINT (64-bit signed).
    Integer,
    /// FLOAT, REAL, DOUBLE (64-bit IEEE 754).
    Float,
    /// STRING, TEXT, VARCHAR(n) (UTF-8).
    String,
    /// TIMESTAMP, TIMESTAMPTZ, DATETIME: UTC, in microseconds (see `time.rs`).
    Timestamp,
    /// INTERVAL: months, days and microseconds (see `interval.rs`).
    Interval,
}

impl DataType {
    /// Parses a type name as written in SQL (case-insensitive); `None` if unknown.
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name.to_ascii_lowercase().as_str() {
            "bool" | "boolean" => DataType::Boolean,
            "int" | "integer" | "bigint" | "int8" | "int4" | "smallint" => DataType::Integer,
            "float" | "real" | "double" | "float8" | "float4" | "numeric" | "decimal" => {
                DataType::Float
            }
            "string" | "text" | "varchar" | "char" | "character" => DataType::String,
            "timestamp" | "timestamptz" | "datetime" => DataType::Timestamp,
            "interval" => DataType::Interval,
            _ => return None,
        })
    }
}

impl fmt::Display for DataType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DataType::Boolean => "BOOLEAN",
            DataType::Integer => "INTEGER",
            DataType::Float => "FLOAT",
            DataType::String => "STRING",
            DataType::Timestamp => "TIMESTAMP",
            DataType::Interval => "INTERVAL",
        })
    }
}
