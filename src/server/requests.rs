//! Running a client's script as it streams in, and streaming the results back
//! (`Sql.Run`).
//!
//! The script arrives in pieces; [`Splitter`] cuts it into statements, so a script of any size
//! goes through one statement at a time. Consecutive writes (and BEGIN, COMMIT and ROLLBACK of
//! a read-write transaction) form one log entry, up to [`MAX_RUN_BYTES`]: an autocommit INSERT
//! costs one entry, and a whole `BEGIN; ...; COMMIT` script costs one. Everything else is
//! served by this node:
//! - a query outside a transaction, after a ReadIndex barrier (linearizable) or at once
//!   (stale);
//! - a query inside a read-write transaction, once this node has applied the transaction's
//!   last write, through a read view of the transaction;
//! - a read-only transaction: BEGIN READ ONLY takes a snapshot here after a barrier, and its
//!   queries reopen that snapshot on whichever node serves them.
//!
//! A short read (a few rows by key) runs inline; other queries' rows stream back in batches of
//! about [`query::ROW_BATCH_BYTES`] as the executor produces them (`query.rs`); the stream is bounded, so a slow client slows the query down, a client that goes away
//! stops it, and a query that runs past the query timeout is cancelled. At most
//! `max_queries` queries run at once on a node.
//!
//! Each result carries the offset just past its statement in the script and, for a write,
//! the number of its log run: a client whose stream breaks resumes after the last result it
//! got, and its request id makes the log apply a write whose outcome it did not learn at most
//! once. The session lives with the client (see [`Transaction`]), signed by the cluster.

use super::Error;
use super::context::Context;
use super::query::{self, Reader};
use super::script::Splitter;
use crate::grpc::{convert, pb};
use crate::raft::Index;
use crate::replica::{
    Command, Consistency, Open, Outcome, RequestId, Route, Settings, StatementError,
    StatementOutcome, Transaction, route,
};
use crate::sql::budget::Budget;
use crate::sql::parser::{self, ast::Statement};
use crate::sql::{Database, StatementResult};
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::mpsc;
use tonic::Status;

/// The longest statement a script may hold.
pub const MAX_STATEMENT_BYTES: usize = 40 << 20;
/// About the most statement text one log entry carries (a longer statement goes alone).
pub const MAX_RUN_BYTES: usize = 8 << 20;
/// How many row batches may wait for a slow client before the query waits.
const ROW_BATCHES_AHEAD: usize = 2;

/// Where results go.
pub type Output = mpsc::Sender<Result<pb::RunResponse, Status>>;

/// The state of one run of a script.
struct Run {
    cx: Arc<Context>,
    out: Output,
    settings: Settings,
    /// The session's transaction now.
    transaction: Option<Transaction>,
    /// The next log run's number.
    part: u64,
    /// Writes waiting to go through the log as one entry, with their end offsets.
    pending: Vec<(Statement, u64)>,
    pending_bytes: usize,
    /// The transaction state once `pending` has run (to decide what the next statement does).
    in_read_write: bool,
    read_only_open: bool,
    /// A statement failed (and the script stops unless `continue_on_error`).
    failed: bool,
    /// The script must stop (an unknown outcome, or the client went away).
    stopped: bool,
}

/// Runs a script (see the module docs). Results go to `out`; an error is a refusal of the
/// whole request.
pub async fn run(
    cx: Arc<Context>,
    settings: Settings,
    first: Vec<u8>,
    mut input: tonic::Streaming<pb::RunRequest>,
    out: Output,
) -> Result<(), Status> {
    cx.check_running()?;
    if let Some(txn) = &settings.transaction {
        let key = cx.session_key().await?;
        if !super::session::verify(&key, txn, settings.client, &settings.proof) {
            return Err(Error::InvalidRequest(
                "the session's transaction was not issued by this cluster to this client (or was altered); start a new session".into(),
            )
            .into());
        }
    }
    let in_read_write = matches!(settings.transaction, Some(Transaction::ReadWrite { .. }));
    let read_only_open = matches!(settings.transaction, Some(Transaction::ReadOnly { .. }));
    let mut run = Run {
        transaction: settings.transaction.clone(),
        // Runs count from 1: a result with run 0 did not go through the log.
        part: settings.first_part.max(1),
        cx,
        out,
        pending: Vec::new(),
        pending_bytes: 0,
        in_read_write,
        read_only_open,
        failed: false,
        stopped: false,
        settings,
    };
    let mut splitter = Splitter::new(MAX_STATEMENT_BYTES, run.settings.start_offset);
    splitter.push(&first);
    let mut ended = false;
    while !run.stopped && (!run.failed || run.settings.continue_on_error) {
        let piece = match splitter.next_statement() {
            Ok(Some(piece)) => piece,
            Ok(None) if !ended => {
                match input.message().await? {
                    Some(message) => splitter.push(&message.sql),
                    None => ended = true,
                }
                continue;
            }
            Ok(None) => match splitter.finish() {
                Ok(Some(piece)) => piece,
                Ok(None) => break,
                Err(error) => {
                    run.refuse(error).await;
                    break;
                }
            },
            Err(error) => {
                run.refuse(error).await;
                break;
            }
        };
        let statements = match parser::parse(&piece.text) {
            Ok(statements) => statements,
            Err(error) => {
                run.flush().await;
                let index = run.cx.applied_index();
                run.result(index, Err(error.into()), piece.end, 0).await;
                continue;
            }
        };
        for statement in statements {
            run.statement(statement, piece.text.len(), piece.end).await;
        }
    }
    run.flush().await;
    run.send_session().await;
    Ok(())
}

impl Run {
    /// Takes one statement: into the pending log run, or served here (`replica::route`
    /// decides, from the transaction the session has once the pending writes have run).
    async fn statement(&mut self, statement: Statement, bytes: usize, end: u64) {
        let open = match (self.in_read_write, self.read_only_open) {
            (true, _) => Open::ReadWrite,
            (false, true) => Open::ReadOnly,
            (false, false) => Open::None,
        };
        if route(&statement, open) == Route::Log {
            return self.log(statement, bytes, end).await;
        }
        self.flush().await;
        if self.stopped || (self.failed && !self.settings.continue_on_error) {
            return;
        }
        self.serve_locally(statement, bytes, end).await;
    }

    /// Adds a statement to the pending log run.
    async fn log(&mut self, statement: Statement, bytes: usize, end: u64) {
        match statement {
            Statement::Begin { .. } => self.in_read_write = true,
            Statement::Commit | Statement::Rollback => self.in_read_write = false,
            _ => {}
        }
        self.read_only_open = false;
        if self.pending_bytes + bytes > MAX_RUN_BYTES {
            self.flush().await;
        }
        self.pending.push((statement, end));
        self.pending_bytes += bytes;
    }

    /// Replicates the pending writes as one entry and sends their results.
    async fn flush(&mut self) {
        if self.pending.is_empty() || self.stopped {
            return;
        }
        let pending = std::mem::take(&mut self.pending);
        self.pending_bytes = 0;
        let part = self.part;
        self.part += 1;
        let txn = match &self.transaction {
            Some(Transaction::ReadWrite { version, .. }) => {
                self.cx.activity.touch(*version);
                Some(*version)
            }
            _ => None,
        };
        let ends: Vec<u64> = pending.iter().map(|(_, end)| *end).collect();
        let count = pending.len();
        let request = (self.settings.client != 0).then_some(RequestId {
            client: self.settings.client,
            sequence: self.settings.sequence,
            part,
        });
        let statements = pending.into_iter().map(|(statement, _)| statement).collect();
        let command = Command::Execute {
            txn,
            statements,
            continue_on_error: self.settings.continue_on_error,
            request,
            limits: self.cx.opts.statement_limits,
        };
        match self.cx.propose(&command).await {
            Ok((index, Outcome::Executed { results, txn })) => {
                let ran = results.len();
                let failed = results.iter().any(Result::is_err) || ran < count;
                for (result, end) in results.into_iter().zip(ends) {
                    self.result(index, result, end, part).await;
                }
                let transaction = txn.map(|version| {
                    self.cx.activity.touch(version);
                    Transaction::ReadWrite { version, index }
                });
                self.in_read_write = transaction.is_some();
                self.read_only_open = false;
                if transaction != self.transaction {
                    self.transaction = transaction;
                    self.send_session().await;
                }
                self.failed |= failed;
            }
            Ok((index, Outcome::Done)) => {
                let error = StatementError::new("internal", "the log applied a different command");
                self.result(index, Err(error), ends[0], part).await;
                self.failed = true;
            }
            Err(error) => {
                // Unavailable: nothing was applied; unknown: it may have been. Either way the
                // script cannot go on (its next statements may depend on this one); the client
                // resumes here.
                let index = self.cx.applied_index();
                self.result(index, Err(error.into()), ends[0], part).await;
                self.stopped = true;
            }
        }
    }

    /// Sends a statement's result.
    async fn result(&mut self, index: Index, outcome: StatementOutcome, end: u64, part: u64) {
        if outcome.is_err() {
            self.failed = true;
        }
        let mut result = convert::statement_result(index, &outcome);
        result.end_offset = end;
        result.part = part;
        self.send(pb::run_response::Event::Result(result)).await;
    }

    /// Refuses the rest of the script (a statement too long, text that is not UTF-8).
    async fn refuse(&mut self, message: String) {
        self.flush().await;
        let index = self.cx.applied_index();
        let error = StatementError::new("invalid_request", message);
        self.result(index, Err(error), 0, 0).await;
        self.stopped = true;
    }

    async fn send(&mut self, event: pb::run_response::Event) {
        if self.out.send(Ok(pb::RunResponse { event: Some(event) })).await.is_err() {
            self.stopped = true; // the client went away
        }
    }

    /// Sends the session, signed.
    async fn send_session(&mut self) {
        let transaction = match &self.transaction {
            None => None,
            Some(txn) => match self.cx.session_key().await {
                Ok(key) => {
                    let proof = super::session::sign(&key, txn, self.settings.client);
                    Some(convert::transaction(txn, &proof))
                }
                Err(error) => {
                    let _ = self.out.send(Err(error.into())).await;
                    self.stopped = true;
                    return;
                }
            },
        };
        self.send(pb::run_response::Event::Session(pb::Session { transaction })).await;
    }

    /// Serves one statement on this node, as `replica::route` says for the session's
    /// transaction now.
    async fn serve_locally(&mut self, statement: Statement, bytes: usize, end: u64) {
        let cx = self.cx.clone();
        let deadline = Instant::now() + cx.opts.request_timeout;
        let applied = cx.applied_index();
        let open = match &self.transaction {
            None => Open::None,
            Some(Transaction::ReadWrite { .. }) => Open::ReadWrite,
            Some(Transaction::ReadOnly { .. }) => Open::ReadOnly,
        };
        match route(&statement, open) {
            Route::Refuse(error) => self.result(applied, Err(error), end, 0).await,
            // The session's state changed as the pending writes ran: log it on its own.
            Route::Log => {
                self.log(statement, bytes, end).await;
                self.flush().await;
            }
            Route::BeginReadOnly { as_of } => {
                let index = match self.barrier().await {
                    Ok(index) => index,
                    Err(error) => return self.result(applied, Err(error), end, 0).await,
                };
                let state = blocking(&cx, move |db| {
                    let txn = match as_of {
                        Some(version) => db.mvcc().begin_as_of(version)?,
                        None => db.mvcc().begin_read_only()?,
                    };
                    Ok(txn.state().clone())
                })
                .await;
                match state {
                    Ok(state) => {
                        let result =
                            StatementResult::Begin { version: state.version, read_only: true };
                        self.transaction = Some(Transaction::ReadOnly { state, index });
                        self.read_only_open = true;
                        self.result(index, Ok(result), end, 0).await;
                        self.send_session().await;
                    }
                    Err(error) => self.result(index, Err(error), end, 0).await,
                }
            }
            Route::EndReadOnly => {
                // Routed so because the session's transaction is read-only.
                let Some(Transaction::ReadOnly { state, .. }) = self.transaction.take() else {
                    return;
                };
                let version = state.version;
                self.read_only_open = false;
                let result = match statement {
                    Statement::Commit => StatementResult::Commit { version },
                    _ => StatementResult::Rollback { version },
                };
                self.result(applied, Ok(result), end, 0).await;
                self.send_session().await;
            }
            Route::Read => match self.transaction.clone() {
                None => {
                    let index = match self.barrier().await {
                        Ok(index) => index.max(cx.applied_index()),
                        Err(error) => return self.result(applied, Err(error), end, 0).await,
                    };
                    self.query(statement, Reader::Latest, index, end).await;
                }
                Some(Transaction::ReadOnly { state, index }) => {
                    if let Err(error) = cx.wait_applied(index, deadline).await {
                        return self.result(applied, Err(error.into()), end, 0).await;
                    }
                    let index = cx.applied_index();
                    self.query(statement, Reader::Snapshot(state), index, end).await;
                }
                Some(Transaction::ReadWrite { version, index }) => {
                    cx.activity.touch(version);
                    if let Err(error) = cx.wait_applied(index, deadline).await {
                        return self.result(applied, Err(error.into()), end, 0).await;
                    }
                    let index = cx.applied_index();
                    self.query(statement, Reader::Transaction(version), index, end).await;
                }
            },
        }
    }

    /// Waits until a read outside a transaction may be served: after a read index
    /// (linearizable) or at once (stale). Returns the index the read reflects at least.
    async fn barrier(&self) -> Result<Index, StatementError> {
        match self.settings.consistency {
            Consistency::Linearizable => Ok(self.cx.read_barrier().await?),
            Consistency::Stale => Ok(self.cx.applied_index()),
        }
    }

    /// Runs a query (or EXPLAIN): inline if it is short, otherwise on the blocking pool,
    /// streaming its rows (`query.rs`).
    async fn query(&mut self, statement: Statement, reader: Reader, index: Index, end: u64) {
        let permit = match self.cx.query_permit().await {
            Ok(permit) => permit,
            Err(error) => return self.result(index, Err(error.into()), end, 0).await,
        };
        let db = self.cx.database();
        let deadline = Instant::now() + self.cx.opts.query_timeout;
        let timeout = self.cx.opts.query_timeout;
        let limits = self.cx.opts.statement_limits;
        let stopping = self.cx.stopping.subscribe();
        let budget = Budget::new(limits).with_deadline(deadline, move || *stopping.borrow());
        if let Some((events, outcome)) = query::run_inline(&db, &statement, reader.clone(), budget)
        {
            drop(permit);
            for event in events {
                self.send(event).await;
            }
            return self.query_end(index, end, outcome).await;
        }
        let (rows, mut incoming) = mpsc::channel::<query::Event>(ROW_BATCHES_AHEAD);
        let stopping = self.cx.stopping.subscribe();
        let worker = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            // The query stops at its deadline, when the client (hence `rows`) is gone, or when
            // the node stops.
            let gone = rows.clone();
            let budget = Budget::new(limits)
                .with_deadline(deadline, move || gone.is_closed() || *stopping.borrow());
            query::run_on_pool(&db, &statement, reader, budget, &rows, deadline, timeout)
        });
        // Pass the batches on as they come (the channel bounds what waits).
        while let Some(event) = incoming.recv().await {
            self.send(event).await;
            if self.stopped {
                break; // the client went away: dropping `incoming` stops the query
            }
        }
        drop(incoming);
        let outcome = worker.await.unwrap_or_else(|error| {
            Err(StatementError::new("internal", format!("query task failed: {error}")))
        });
        self.query_end(index, end, outcome).await;
    }

    /// Sends a query's result: how many rows it sent, or why it failed.
    async fn query_end(&mut self, index: Index, end: u64, outcome: Result<u64, StatementError>) {
        match outcome {
            Ok(count) => {
                let result = pb::StatementResult {
                    index,
                    result: Some(pb::statement_result::Result::Query(pb::QueryEnd { rows: count })),
                    end_offset: end,
                    part: 0,
                };
                self.send(pb::run_response::Event::Result(result)).await;
            }
            Err(error) => self.result(index, Err(error), end, 0).await,
        }
    }
}

/// Runs SQL work on the blocking pool against the current database.
async fn blocking<T: Send + 'static>(
    cx: &Arc<Context>,
    work: impl FnOnce(&Arc<Database>) -> crate::sql::Result<T> + Send + 'static,
) -> Result<T, StatementError> {
    let db = cx.database();
    tokio::task::spawn_blocking(move || work(&db).map_err(StatementError::from))
        .await
        .map_err(|error| StatementError::new("internal", format!("query task failed: {error}")))?
}

impl From<Error> for StatementError {
    fn from(error: Error) -> Self {
        StatementError::new(error.kind(), error.to_string())
    }
}
