//! What a replica tells the node about each statement it serves: its text, kind, outcome,
//! rows and latency, for metrics and statement statistics. The replica calls a
//! [`StatementObserver`] once per statement result; it knows nothing of what the observer
//! does with it.

use crate::sql::parser::ast::Statement;
use std::time::{Duration, Instant};

/// Receives one call per statement served (after its result is sent).
pub trait StatementObserver: Send + Sync {
    /// A statement was served.
    fn statement(&self, seen: &SeenStatement<'_>);
}

/// An observer that ignores everything (the default).
pub struct Unobserved;

impl StatementObserver for Unobserved {
    fn statement(&self, _: &SeenStatement<'_>) {}
}

/// One statement served.
#[derive(Debug)]
pub struct SeenStatement<'a> {
    /// The statement's text, as the script held it (comments and literals included).
    pub text: &'a str,
    /// Its kind: `select`, `insert`, `create_table`, ... (`unparsed` if it did not parse).
    pub kind: &'static str,
    /// The error kind if it failed.
    pub error: Option<&'a str>,
    /// Rows it returned (a query, or RETURNING).
    pub rows_returned: u64,
    /// Rows it inserted, updated or deleted.
    pub rows_written: u64,
    /// From its arrival to its result.
    pub latency: Duration,
}

/// What a statement's result said, kept until it is reported.
#[derive(Clone, Debug, Default)]
pub(super) struct Summary {
    pub error: Option<String>,
    pub rows_returned: u64,
    pub rows_written: u64,
}

/// A statement on its way: where its text is and when it arrived.
#[derive(Clone, Debug)]
pub(super) struct Arrival {
    pub text: std::sync::Arc<str>,
    pub kind: &'static str,
    pub at: Instant,
}

impl Arrival {
    /// Reports the statement to `observer` with its result's summary.
    pub fn report(&self, observer: &dyn StatementObserver, summary: &Summary) {
        observer.statement(&SeenStatement {
            text: &self.text,
            kind: self.kind,
            error: summary.error.as_deref(),
            rows_returned: summary.rows_returned,
            rows_written: summary.rows_written,
            latency: self.at.elapsed(),
        });
    }
}

/// A statement's kind, as metrics label it.
pub fn statement_kind(statement: &Statement) -> &'static str {
    match statement {
        Statement::Begin { .. } => "begin",
        Statement::Commit => "commit",
        Statement::Rollback => "rollback",
        Statement::CreateView { .. } => "create_view",
        Statement::DropView { .. } => "drop_view",
        Statement::Explain(_) => "explain",
        Statement::CreateTable { .. } => "create_table",
        Statement::DropTable { .. } => "drop_table",
        Statement::AlterTable { .. } => "alter_table",
        Statement::CreateRollup { .. } => "create_rollup",
        Statement::DropRollup { .. } => "drop_rollup",
        Statement::CreateIndex { .. } => "create_index",
        Statement::DropIndex { .. } => "drop_index",
        Statement::Analyze { .. } => "analyze",
        Statement::Reindex { .. } => "reindex",
        Statement::Insert { .. } => "insert",
        Statement::Update { .. } => "update",
        Statement::Delete { .. } => "delete",
        Statement::Select(_) => "select",
        Statement::Users(_) => "users",
    }
}
