//! The syntax tree of table options (part of `ast.rs`): `WITH (ttl = '7 days', ttl_column =
//! ts)` on CREATE TABLE, and ALTER TABLE ... SET (...) / RESET (...).

use serde::{Deserialize, Serialize};

/// One `name = value` table option, as written (the planner checks names and values).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableOption {
    /// The option's name, lower-cased.
    pub name: String,
    /// Its value: a string literal's text or an identifier.
    pub value: String,
}

/// What ALTER TABLE changes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TableChange {
    /// SET (name = value, ...): sets options.
    Set(Vec<TableOption>),
    /// RESET (name, ...): removes options.
    Reset(Vec<String>),
}
