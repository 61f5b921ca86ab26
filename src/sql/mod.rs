//! SQL: a parser, a planner and a deterministic executor over MVCC storage.
//!
//! A query travels through these steps:
//!
//! 1. [`Session::execute`] parses the text with [`parser::parse`]: pest matches the grammar
//!    in `parser/chronos.pest` and the pairs become [`parser::ast::Statement`]s.
//! 2. The session handles BEGIN/COMMIT/ROLLBACK itself; any other statement runs in the open
//!    transaction, or in its own (autocommit).
//! 3. [`planner::Planner`] resolves names against the catalog read through the transaction
//!    ([`engine::Txn`]) and builds a [`planner::Plan`] of nodes; the optimizer pushes filters
//!    down and picks key lookups, index lookups, ranges and hash joins.
//! 4. [`execution::execute`] runs the plan: query nodes are pulled as row iterators; writes
//!    read their targets first, then insert/update/delete rows and index entries.
//! 5. The session flushes the statement's writes to the engine in one batch (statement
//!    atomicity) and, in autocommit, commits (and fsyncs, for a durable database).
//!
//! Invariants:
//! - Execution is deterministic: the same statements on the same state produce the same
//!   results and byte-identical stored state (no clocks, no randomness, no hash-order output;
//!   `now()` is the time the statement was given, see [`clock`]).
//! - No input panics: parse errors, type errors and constraint violations are [`Error`] values
//!   with a [`Error::kind`] a client can act on.
//!
//! Deliberate simplifications (see the README's dialect section): no triggers; DDL takes a
//! database-wide schema lock.

pub mod budget;
pub mod clock;
pub mod engine;
mod error;
pub mod execution;
pub mod fingerprint;
pub mod format;
pub mod parser;
pub mod planner;
pub mod types;

pub use engine::{Database, Session};

/// Runs `f` with enough stack for one more level of recursion over an expression tree,
/// growing the stack onto the heap when it runs low. Parsing, planning and evaluation recurse
/// once per level of an expression (up to [`parser::MAX_EXPRESSION_DEPTH`] levels), and a debug
/// build's frames are large, so a thread's default stack alone is not enough.
pub(crate) fn with_stack<R>(f: impl FnOnce() -> R) -> R {
    /// Grow when less than this is left.
    const RED_ZONE: usize = 128 * 1024;
    /// How much to add each time.
    const SEGMENT: usize = 2 * 1024 * 1024;
    stacker::maybe_grow(RED_ZONE, SEGMENT, f)
}
pub use error::{Error, Result};
pub use execution::StatementResult;
