//! Running a client's script: which statements go through the log and which are served here.
//!
//! A script is split into runs. Consecutive writes (and BEGIN, COMMIT and ROLLBACK of a
//! read-write transaction) form one log entry: an autocommit INSERT costs one entry, and a
//! whole `BEGIN; ...; COMMIT` script costs one. Everything else is served by this node:
//! - a query outside a transaction, after a ReadIndex barrier (linearizable) or at once
//!   (stale);
//! - a query inside a read-write transaction, once this node has applied the transaction's
//!   last write, through a read view of the transaction;
//! - a read-only transaction: BEGIN READ ONLY takes a snapshot here after a barrier, and its
//!   queries reopen that snapshot on whichever node serves them.
//!
//! The session lives with the client (see [`Transaction`]), so any node can continue it.

use super::Error;
use super::command::{Command, Outcome, StatementError, StatementOutcome};
use super::context::Context;
use crate::raft::Index;
use crate::sql::parser::{self, ast::Statement};
use crate::sql::{Database, StatementResult};
use crate::storage::mvcc::{TransactionState, Version};
use std::sync::Arc;
use std::time::Instant;

/// How fresh a read must be.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Consistency {
    /// Reflects every write acknowledged before the read began.
    #[default]
    Linearizable,
    /// Served from this node's state at once.
    Stale,
}

/// An open transaction, as the client carries it between requests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Transaction {
    /// A read-write transaction: its writes go through the log.
    ReadWrite {
        /// Its version.
        version: Version,
        /// The entry of its last write: its reads wait until this node applied it.
        index: Index,
    },
    /// A read-only snapshot.
    ReadOnly {
        /// The snapshot.
        state: TransactionState,
        /// Where it was taken: its reads wait until this node applied it.
        index: Index,
    },
}

/// A script to run.
#[derive(Clone, Debug, Default)]
pub struct Request {
    /// The statements.
    pub sql: String,
    /// The consistency of reads outside transactions.
    pub consistency: Consistency,
    /// The session's open transaction.
    pub transaction: Option<Transaction>,
    /// The cluster's proof that it issued `transaction` (see `session.rs`).
    pub proof: Vec<u8>,
    /// Keep going after a failed statement.
    pub continue_on_error: bool,
}

/// What a script did.
#[derive(Clone, Debug, Default)]
pub struct Response {
    /// Each statement run, with the log index its result reflects.
    pub results: Vec<(Index, StatementOutcome)>,
    /// The session's open transaction afterwards.
    pub transaction: Option<Transaction>,
    /// The cluster's proof that it issued `transaction`, to send back with it.
    pub proof: Vec<u8>,
}

/// Runs a script (see the module docs).
pub async fn execute(cx: &Arc<Context>, request: Request) -> Result<Response, Error> {
    cx.check_running()?;
    if let Some(txn) = &request.transaction {
        let key = cx.session_key().await?;
        if !super::session::verify(&key, txn, &request.proof) {
            return Err(Error::InvalidRequest(
                "the session's transaction was not issued by this cluster (or was altered); start a new session".into(),
            ));
        }
    }
    let mut response =
        Response { results: Vec::new(), transaction: request.transaction, proof: Vec::new() };
    let statements = match parser::parse(&request.sql) {
        Ok(statements) => statements,
        Err(error) => {
            response.results.push((cx.applied_index(), Err(error.into())));
            return Ok(response);
        }
    };
    let mut next = 0;
    while next < statements.len() {
        let in_read_write = matches!(response.transaction, Some(Transaction::ReadWrite { .. }));
        let run = log_run(&statements[next..], in_read_write, response.transaction.is_some());
        let failed = if run > 0 {
            let statements = statements[next..next + run].to_vec();
            next += run;
            replicate(cx, statements, &mut response, request.continue_on_error).await
        } else {
            let statement = statements[next].clone();
            next += 1;
            let result =
                serve_locally(cx, statement, &mut response.transaction, request.consistency)
                    .await
                    .unwrap_or_else(|error| (cx.applied_index(), Err(error)));
            let failed = result.1.is_err();
            response.results.push(result);
            failed
        };
        if failed && !request.continue_on_error {
            break;
        }
    }
    if let Some(txn) = &response.transaction {
        response.proof = super::session::sign(&cx.session_key().await?, txn);
    }
    Ok(response)
}

/// How many statements from the start of `statements` go into one log entry.
fn log_run(statements: &[Statement], mut in_read_write: bool, in_transaction: bool) -> usize {
    let mut read_only_open = in_transaction && !in_read_write;
    let mut run = 0;
    for statement in statements {
        let logged = match statement {
            Statement::Begin { read_only: false, .. } => !in_read_write && !read_only_open,
            Statement::Commit | Statement::Rollback => in_read_write,
            statement => !statement.is_read_only() && !read_only_open,
        };
        if !logged {
            break;
        }
        match statement {
            Statement::Begin { .. } => in_read_write = true,
            Statement::Commit | Statement::Rollback => in_read_write = false,
            _ => {}
        }
        read_only_open = false;
        run += 1;
    }
    run
}

/// Replicates a run of statements as one entry. Returns whether a statement failed.
async fn replicate(
    cx: &Arc<Context>,
    statements: Vec<Statement>,
    response: &mut Response,
    continue_on_error: bool,
) -> bool {
    let count = statements.len();
    let txn = match &response.transaction {
        Some(Transaction::ReadWrite { version, .. }) => {
            cx.activity.touch(*version);
            Some(*version)
        }
        _ => None,
    };
    let command = Command::Execute { txn, statements, continue_on_error };
    match cx.propose(&command).await {
        Ok((index, Outcome::Executed { results, txn })) => {
            let ran = results.len();
            let failed = results.iter().any(Result::is_err);
            response.results.extend(results.into_iter().map(|result| (index, result)));
            response.transaction = txn.map(|version| {
                cx.activity.touch(version);
                Transaction::ReadWrite { version, index }
            });
            failed || ran < count
        }
        Ok((index, Outcome::Done)) => {
            let error = StatementError::new("internal", "the log applied a different command");
            response.results.push((index, Err(error)));
            true
        }
        Err(error) => {
            response.results.push((cx.applied_index(), Err(error.into())));
            true
        }
    }
}

/// Serves one statement on this node.
async fn serve_locally(
    cx: &Arc<Context>,
    statement: Statement,
    transaction: &mut Option<Transaction>,
    consistency: Consistency,
) -> Result<(Index, StatementOutcome), StatementError> {
    let deadline = Instant::now() + cx.opts.request_timeout;
    match (&statement, transaction.clone()) {
        (Statement::Begin { .. }, Some(_)) => Ok((
            cx.applied_index(),
            Err(StatementError::new("transaction_state", "a transaction is already in progress")),
        )),
        (Statement::Begin { read_only: true, as_of }, None) => {
            let index = barrier(cx, consistency).await?;
            let as_of = *as_of;
            let state = blocking(cx, move |db| {
                let txn = match as_of {
                    Some(version) => db.mvcc().begin_as_of(version)?,
                    None => db.mvcc().begin_read_only()?,
                };
                Ok(txn.state().clone())
            })
            .await?;
            let state = match state {
                Ok(state) => state,
                Err(error) => return Ok((index, Err(error))),
            };
            let result = StatementResult::Begin { version: state.version, read_only: true };
            *transaction = Some(Transaction::ReadOnly { state, index });
            Ok((index, Ok(result)))
        }
        (Statement::Commit | Statement::Rollback, Some(Transaction::ReadOnly { state, .. })) => {
            *transaction = None;
            let version = state.version;
            let result = match statement {
                Statement::Commit => StatementResult::Commit { version },
                _ => StatementResult::Rollback { version },
            };
            Ok((cx.applied_index(), Ok(result)))
        }
        (Statement::Commit | Statement::Rollback, _) => Ok((
            cx.applied_index(),
            Err(StatementError::new("transaction_state", "no transaction is in progress")),
        )),
        (statement, Some(Transaction::ReadOnly { .. })) if !statement.is_read_only() => {
            Ok((cx.applied_index(), Err(crate::sql::Error::ReadOnly.into())))
        }
        (_, None) => {
            let index = barrier(cx, consistency).await?;
            let result = blocking(cx, move |db| db.session().execute_statement(&statement)).await?;
            Ok((index.max(cx.applied_index()), result))
        }
        (_, Some(Transaction::ReadOnly { state, index })) => {
            cx.wait_applied(index, deadline).await?;
            let applied = cx.applied_index();
            let result = blocking(cx, move |db| {
                let txn = db.read_only_transaction(state)?;
                db.resume_session(txn).execute_statement(&statement)
            })
            .await?;
            Ok((applied, result))
        }
        (_, Some(Transaction::ReadWrite { version, index })) => {
            cx.activity.touch(version);
            cx.wait_applied(index, deadline).await?;
            let applied = cx.applied_index();
            let result = blocking(cx, move |db| {
                let view = db.view_transaction(version).map_err(|_| {
                    crate::sql::Error::Transaction(format!(
                        "transaction {version} is no longer open: it ended, or was rolled back after its client was idle too long"
                    ))
                })?;
                db.resume_session(view).execute_statement(&statement)
            })
            .await?;
            Ok((applied, result))
        }
    }
}

/// Waits until a read outside a transaction may be served: after a read index (linearizable)
/// or at once (stale). Returns the index the read reflects at least.
async fn barrier(cx: &Arc<Context>, consistency: Consistency) -> Result<Index, StatementError> {
    match consistency {
        Consistency::Linearizable => Ok(cx.read_barrier().await?),
        Consistency::Stale => Ok(cx.applied_index()),
    }
}

/// Runs SQL work on the blocking pool against the current database.
async fn blocking<T: Send + 'static>(
    cx: &Arc<Context>,
    work: impl FnOnce(&Arc<Database>) -> crate::sql::Result<T> + Send + 'static,
) -> Result<Result<T, StatementError>, StatementError> {
    let db = cx.database();
    tokio::task::spawn_blocking(move || work(&db).map_err(StatementError::from))
        .await
        .map_err(|error| StatementError::new("internal", format!("query task failed: {error}")))
}

impl From<Error> for StatementError {
    fn from(error: Error) -> Self {
        StatementError::new(error.kind(), error.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runs(sql: &str, in_read_write: bool, in_transaction: bool) -> Vec<usize> {
        let statements = parser::parse(sql).unwrap();
        let mut out = Vec::new();
        let mut rest = &statements[..];
        while !rest.is_empty() {
            let run = log_run(rest, in_read_write, in_transaction);
            out.push(run);
            rest = &rest[run.max(1)..];
        }
        out
    }

    #[test]
    fn writes_and_read_write_transaction_control_share_an_entry() {
        // One entry for a whole transaction; the query in the middle is served locally.
        assert_eq!(runs("BEGIN; INSERT INTO t VALUES (1); COMMIT", false, false), vec![3]);
        assert_eq!(
            runs("INSERT INTO t VALUES (1); SELECT * FROM t; DELETE FROM t", false, false),
            vec![1, 0, 1]
        );
        // Read-only transactions never reach the log, nor do their statements.
        assert_eq!(runs("BEGIN READ ONLY; SELECT 1; COMMIT", false, false), vec![0, 0, 0]);
        assert_eq!(runs("COMMIT", false, true), vec![0]);
        assert_eq!(runs("UPDATE t SET a = 1; COMMIT", true, true), vec![2]);
        // A BEGIN inside a transaction is answered here with an error.
        assert_eq!(runs("BEGIN", true, true), vec![0]);
    }
}
