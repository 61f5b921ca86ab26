//! The executor: runs plans against a transaction.
//!
//! Queries are pull-based iterators of rows (`Rows`). Writes read all their target rows first
//! and then apply changes, so a statement never sees its own writes (no Halloween problem).
//!
//! Determinism: given the same stored data and plan, execution produces the same rows in the
//! same order and the same writes, on every replica. Grouping uses ordered maps, joins follow
//! the left input's order, sorting is stable, and nothing reads a clock or a random source.

mod aggregate;
mod apply;
mod evaluate;
mod executor;
mod functions;
mod join;
mod printf;
mod recursive;
mod retention;
mod rollup;
mod series;
mod set;
mod time_functions;
mod upsert;
mod window;

pub use evaluate::evaluate_constant;
pub use executor::{execute, execute_node};

use crate::sql::error::Result;
use crate::sql::planner::OutputColumn;
use crate::sql::types::Row;

/// A stream of rows from a query node.
pub type Rows<'a> = Box<dyn Iterator<Item = Result<Row>> + 'a>;

/// The outcome of one statement.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum StatementResult {
    /// BEGIN: the transaction's version.
    Begin {
        /// The MVCC version of the new transaction.
        version: u64,
        /// Whether it is read-only.
        read_only: bool,
    },
    /// COMMIT.
    Commit {
        /// The committed transaction's version.
        version: u64,
    },
    /// ROLLBACK.
    Rollback {
        /// The rolled-back transaction's version.
        version: u64,
    },
    /// CREATE TABLE.
    CreateTable {
        /// The table.
        name: String,
    },
    /// ALTER TABLE.
    AlterTable {
        /// The table.
        name: String,
    },
    /// CREATE VIEW.
    CreateView {
        /// The view.
        name: String,
    },
    /// DROP VIEW.
    DropView {
        /// The view.
        name: String,
        /// Whether it existed (false only with IF EXISTS).
        existed: bool,
    },
    /// DROP TABLE.
    DropTable {
        /// The table.
        name: String,
        /// Whether it existed (false only with IF EXISTS).
        existed: bool,
    },
    /// CREATE INDEX.
    CreateIndex {
        /// The index.
        name: String,
    },
    /// DROP INDEX.
    DropIndex {
        /// The index.
        name: String,
        /// Whether it existed (false only with IF EXISTS).
        existed: bool,
    },
    /// A statement on users (CREATE/ALTER/DROP USER, GRANT, REVOKE): what it did.
    Users {
        /// What it did, in words (`granted readonly to alice`).
        message: String,
    },
    /// REINDEX (nothing to rebuild).
    Reindex {
        /// The index or table named (empty for all).
        name: String,
    },
    /// INSERT: rows inserted.
    Insert {
        /// The number of rows.
        count: u64,
    },
    /// UPDATE: rows updated.
    Update {
        /// The number of rows.
        count: u64,
    },
    /// DELETE: rows deleted.
    Delete {
        /// The number of rows.
        count: u64,
    },
    /// A query's result (also EXPLAIN, as one `plan` column with a row per line).
    Query {
        /// The output columns.
        columns: Vec<OutputColumn>,
        /// The rows.
        rows: Vec<Row>,
    },
}

impl StatementResult {
    /// The number of rows written or returned.
    pub fn rows_affected(&self) -> u64 {
        match self {
            StatementResult::Insert { count }
            | StatementResult::Update { count }
            | StatementResult::Delete { count } => *count,
            StatementResult::Query { rows, .. } => rows.len() as u64,
            _ => 0,
        }
    }
}
