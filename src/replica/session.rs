//! The session and transaction rules: where each statement of a script goes, given the
//! session's open transaction. This is the one place that decides what goes through the log
//! and what a node serves itself; the node carries the decision out.
//!
//! - Writes, and `BEGIN`, `COMMIT` and `ROLLBACK` of a read-write transaction, go through the
//!   log, with the writes around them in one entry.
//! - `BEGIN READ ONLY` (and `AS OF`) takes a snapshot on the node, after a read barrier; its
//!   `COMMIT` or `ROLLBACK` ends it there. A write inside it is refused.
//! - Queries are served by the node: in the open transaction, or after the read barrier.
//! - `BEGIN` inside a transaction, and `COMMIT` or `ROLLBACK` outside one, are refused.

use super::{StatementError, Transaction};
use crate::sql::parser::ast::Statement;
use crate::storage::mvcc::Version;

/// The kind of transaction a session has open (after the writes waiting to be logged).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Open {
    /// None: each statement commits on its own.
    #[default]
    None,
    /// A read-write transaction, whose statements go through the log.
    ReadWrite,
    /// A read-only snapshot, held by the session.
    ReadOnly,
}

impl Open {
    /// The kind of the transaction a client carries.
    pub fn of(transaction: Option<&Transaction>) -> Open {
        match transaction {
            None => Open::None,
            Some(Transaction::ReadWrite { .. }) => Open::ReadWrite,
            Some(Transaction::ReadOnly { .. }) => Open::ReadOnly,
        }
    }

    /// What is open once the log has run `statement` (routed to it from `self`), if it
    /// succeeds: `BEGIN` opens a read-write transaction, `COMMIT` and `ROLLBACK` end it, and
    /// other writes leave it as it was. The log's outcome has the last word.
    pub fn after_logging(self, statement: &Statement) -> Open {
        match statement {
            Statement::Begin { .. } => Open::ReadWrite,
            Statement::Commit | Statement::Rollback => Open::None,
            _ => self,
        }
    }
}

/// Where a statement goes.
#[derive(Clone, Debug, PartialEq)]
pub enum Route {
    /// Into the log, in one entry with the writes around it.
    Log,
    /// `BEGIN READ ONLY`: a snapshot taken on the node (of version `as_of`, if given).
    BeginReadOnly {
        /// The version to read at, for `AS OF`.
        as_of: Option<Version>,
    },
    /// `COMMIT` or `ROLLBACK` of the read-only transaction: it ends on the node.
    EndReadOnly,
    /// A query, served by the node in the open transaction if there is one.
    Read,
    /// Refused, with this error: the statement does not fit the session's state.
    Refuse(StatementError),
}

/// Where `statement` goes when the session has `open` open.
pub fn route(statement: &Statement, open: Open) -> Route {
    match (statement, open) {
        (Statement::Begin { read_only: false, .. }, Open::None) => Route::Log,
        (Statement::Begin { read_only: true, as_of }, Open::None) => {
            Route::BeginReadOnly { as_of: *as_of }
        }
        (Statement::Begin { .. }, _) => Route::Refuse(StatementError::new(
            "transaction_state",
            "a transaction is already in progress",
        )),
        (Statement::Commit | Statement::Rollback, Open::ReadWrite) => Route::Log,
        (Statement::Commit | Statement::Rollback, Open::ReadOnly) => Route::EndReadOnly,
        (Statement::Commit | Statement::Rollback, Open::None) => {
            Route::Refuse(StatementError::new("transaction_state", "no transaction is in progress"))
        }
        (statement, Open::ReadOnly) if !statement.is_read_only() => {
            Route::Refuse(crate::sql::Error::ReadOnly.into())
        }
        (statement, _) if !statement.is_read_only() => Route::Log,
        _ => Route::Read,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::parser::parse_statement;

    fn routed(sql: &str, open: Open) -> Route {
        route(&parse_statement(sql).unwrap(), open)
    }

    fn refused(route: Route) -> String {
        match route {
            Route::Refuse(error) => error.kind,
            other => panic!("not refused: {other:?}"),
        }
    }

    #[test]
    fn writes_and_read_write_transactions_go_through_the_log() {
        for open in [Open::None, Open::ReadWrite] {
            assert_eq!(routed("INSERT INTO t VALUES (1)", open), Route::Log);
            assert_eq!(routed("CREATE TABLE u (id INT PRIMARY KEY)", open), Route::Log);
        }
        assert_eq!(routed("BEGIN", Open::None), Route::Log);
        assert_eq!(routed("COMMIT", Open::ReadWrite), Route::Log);
        assert_eq!(routed("ROLLBACK", Open::ReadWrite), Route::Log);
    }

    #[test]
    fn read_only_transactions_and_queries_stay_on_the_node() {
        assert_eq!(routed("BEGIN READ ONLY", Open::None), Route::BeginReadOnly { as_of: None });
        assert_eq!(
            routed("BEGIN READ ONLY AS OF SYSTEM TIME 7", Open::None),
            Route::BeginReadOnly { as_of: Some(7) }
        );
        assert_eq!(routed("COMMIT", Open::ReadOnly), Route::EndReadOnly);
        assert_eq!(routed("ROLLBACK", Open::ReadOnly), Route::EndReadOnly);
        for open in [Open::None, Open::ReadWrite, Open::ReadOnly] {
            assert_eq!(routed("SELECT * FROM t", open), Route::Read);
            assert_eq!(routed("EXPLAIN SELECT * FROM t", open), Route::Read);
        }
    }

    #[test]
    fn statements_that_do_not_fit_the_session_are_refused() {
        for open in [Open::ReadWrite, Open::ReadOnly] {
            assert_eq!(refused(routed("BEGIN", open)), "transaction_state");
            assert_eq!(refused(routed("BEGIN READ ONLY", open)), "transaction_state");
        }
        assert_eq!(refused(routed("COMMIT", Open::None)), "transaction_state");
        assert_eq!(refused(routed("ROLLBACK", Open::None)), "transaction_state");
        assert_eq!(refused(routed("INSERT INTO t VALUES (1)", Open::ReadOnly)), "read_only");
    }

    #[test]
    fn what_the_log_leaves_open_follows_begin_commit_and_rollback() {
        let after = |open: Open, sql| open.after_logging(&parse_statement(sql).unwrap());
        assert_eq!(after(Open::None, "BEGIN"), Open::ReadWrite);
        assert_eq!(after(Open::None, "INSERT INTO t VALUES (1)"), Open::None);
        assert_eq!(after(Open::ReadWrite, "INSERT INTO t VALUES (1)"), Open::ReadWrite);
        assert_eq!(after(Open::ReadWrite, "COMMIT"), Open::None);
        assert_eq!(after(Open::ReadWrite, "ROLLBACK"), Open::None);
        let txn = Transaction::ReadWrite { version: 3, index: 9 };
        assert_eq!(Open::of(Some(&txn)), Open::ReadWrite);
        assert_eq!(Open::of(None), Open::None);
    }
}
