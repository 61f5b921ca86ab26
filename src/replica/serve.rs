//! A replica serving clients' scripts on top of a [`Consensus`]: running a script as it
//! streams in, and streaming the results back (the node serves it as `Sql.Run`).
//!
//! The script arrives in pieces; [`Splitter`] cuts it into statements, so a script of any size
//! goes through one statement at a time. Consecutive writes (and BEGIN, COMMIT and ROLLBACK of
//! a read-write transaction) form one log entry, up to [`MAX_RUN_BYTES`]: an autocommit INSERT
//! costs one entry, and a whole `BEGIN; ...; COMMIT` script costs one. Everything else is
//! served by this node:
//! - a query outside a transaction, after a ReadIndex barrier (linearizable; the statements
//!   that arrived before the barrier was asked for share it) or at once (stale);
//! - a query inside a read-write transaction, once this node has applied the transaction's
//!   last write, through a read view of the transaction;
//! - a read-only transaction: BEGIN READ ONLY takes a snapshot here after a barrier, and its
//!   queries reopen that snapshot on whichever node serves them.
//!
//! A short read (a few rows by key) runs inline; other queries' rows stream back in batches of
//! about [`query::ROW_BATCH_BYTES`] as the executor produces them (`query.rs`); the stream is
//! bounded, so a slow client slows the query down, a client that goes away stops it, and a query that runs past the query timeout is cancelled. At most
//! `max_queries` queries run at once on a node.
//!
//! Each result carries the offset just past its statement in the script and, for a write,
//! the number of its log run: a client whose stream breaks resumes after the last result it
//! got, and its request id makes the log apply a write whose outcome it did not learn at most
//! once. The session lives with the client (see [`Transaction`]), signed by the cluster.

use super::consensus::{Consensus, Error};
use super::observe::{Arrival, Summary, statement_kind};
use super::proof;
use super::query::{self, Reader};
use super::script::Splitter;
use super::service::Replica;
use super::{
    Chunk, Command, Open, Outcome, RequestId, Response, Route, Settings, StatementError,
    StatementOutcome, Transaction, route,
};
use crate::raft::Index;
use crate::sql::engine::Privilege;
use crate::sql::parser::{self, ast::Statement};
use crate::sql::{Database, StatementResult};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;
use tokio::sync::mpsc;
use tokio_stream::{Stream, StreamExt};

/// The longest statement a script may hold.
pub const MAX_STATEMENT_BYTES: usize = 40 << 20;
/// About the most statement text one log entry carries (a longer statement goes alone).
pub const MAX_RUN_BYTES: usize = 8 << 20;
/// The most responses delivered in one batch.
const RESPONSES_PER_BATCH: usize = 256;
/// How many row batches may wait for a slow client before the query waits.
const ROW_BATCHES_AHEAD: usize = 2;

/// Where responses go: in batches, each sent when a statement (or a batch of a query's rows)
/// is done, so a short statement's columns, rows and result reach the network together.
pub type Output = mpsc::Sender<Vec<Response>>;

/// Runs a script the replica has accepted (see the module docs).
pub(super) async fn run_script<C: Consensus>(
    replica: Arc<Replica<C>>,
    settings: Settings,
    first: Chunk,
    input: impl Stream<Item = Result<Chunk, Error>> + Unpin + Send,
    out: Output,
) {
    let mut run = Run {
        transaction: settings.transaction.clone(),
        // Runs count from 1: a result with run 0 did not go through the log.
        part: settings.first_part.max(1),
        replica,
        out,
        outgoing: Vec::new(),
        pending: Vec::new(),
        pending_bytes: 0,
        open: Open::of(settings.transaction.as_ref()),
        failed: false,
        stopped: false,
        received: 0,
        read_index: None,
        summary: None,
        settings,
    };
    if let Err(error) = run.script(first, input).await {
        run.send(Response::Refused(error)).await;
        run.deliver().await;
        return;
    }
    run.flush().await;
    run.send_session().await;
    run.deliver().await;
}

/// The state of one run of a script.
struct Run<C> {
    replica: Arc<Replica<C>>,
    out: Output,
    /// Responses not yet delivered to `out`.
    outgoing: Vec<Response>,
    settings: Settings,
    /// The session's transaction now.
    transaction: Option<Transaction>,
    /// The next log run's number.
    part: u64,
    /// Writes waiting to go through the log as one entry, with their end offsets and
    /// arrivals.
    pending: Vec<(Statement, u64, Arrival)>,
    pending_bytes: usize,
    /// The transaction state once `pending` has run (to decide what the next statement does).
    open: Open,
    /// A statement failed (and the script stops unless `continue_on_error`).
    failed: bool,
    /// The script must stop (an unknown outcome, or the client went away).
    stopped: bool,
    /// The offset in the script just past the text received so far.
    received: u64,
    /// The last read index: how far the script had arrived when it was asked for, and the
    /// index (see [`Run::barrier`]); forgotten once a write goes through the log.
    read_index: Option<(u64, Index)>,
    /// What the last result said, until its statement is reported to the observer.
    summary: Option<Summary>,
}

impl<C: Consensus> Run<C> {
    /// Cuts the script into statements as it streams in and runs each. Fails if the script's
    /// stream breaks.
    async fn script(
        &mut self,
        first: Chunk,
        mut input: impl Stream<Item = Result<Chunk, Error>> + Unpin + Send,
    ) -> Result<(), Error> {
        let mut splitter = Splitter::new(MAX_STATEMENT_BYTES, self.settings.start_offset);
        splitter.push(&first.text);
        self.received = self.settings.start_offset + first.text.len() as u64;
        // The stream is done, and whether the client said so (or it was cut off).
        let (mut ended, mut complete) = (first.last, first.last);
        while !self.stopped && (!self.failed || self.settings.continue_on_error) {
            let piece = match splitter.next_statement() {
                Ok(Some(piece)) => piece,
                Ok(None) if !ended => {
                    self.deliver().await;
                    match input.next().await {
                        Some(chunk) => {
                            let chunk = chunk?;
                            splitter.push(&chunk.text);
                            self.received += chunk.text.len() as u64;
                            (ended, complete) = (chunk.last, chunk.last);
                        }
                        None => ended = true,
                    }
                    continue;
                }
                Ok(None) => match splitter.finish() {
                    Ok(Some(_)) if !complete => {
                        self.refuse(
                            "the script was cut off before its end: its last statement, which \
                             has no ';', was not run"
                                .into(),
                        )
                        .await;
                        break;
                    }
                    Ok(Some(piece)) => piece,
                    Ok(None) => break,
                    Err(error) => {
                        self.refuse(error).await;
                        break;
                    }
                },
                Err(error) => {
                    self.refuse(error).await;
                    break;
                }
            };
            let arrived = Instant::now();
            let parsed = parser::parse(&piece.text);
            let bytes = piece.text.len();
            let text: Arc<str> = Arc::from(piece.text);
            let statements = match parsed {
                Ok(statements) => statements,
                Err(error) => {
                    self.flush().await;
                    let index = self.replica.consensus.applied();
                    self.result(index, Err(error.into()), piece.end, 0).await;
                    let arrival = Arrival { text, kind: "unparsed", at: arrived };
                    self.report(&arrival);
                    continue;
                }
            };
            for statement in statements {
                // The last statement's responses go with the session at the end.
                self.deliver().await;
                let kind = statement_kind(&statement);
                let arrival = Arrival { text: text.clone(), kind, at: arrived };
                self.statement(statement, bytes, piece.end, arrival).await;
            }
        }
        Ok(())
    }

    /// Takes one statement: into the pending log run, or served here (`replica::route`
    /// decides, from the transaction the session has once the pending writes have run).
    async fn statement(&mut self, statement: Statement, bytes: usize, end: u64, arrival: Arrival) {
        let privilege = Privilege::of(&statement);
        if !self.settings.principal.may(privilege) {
            let message = self.settings.principal.refusal(privilege, &statement.summary());
            return self
                .refuse_statement(StatementError::new("permission_denied", message), end, &arrival)
                .await;
        }
        let statement = match seal(statement).await {
            Ok(statement) => statement,
            Err(error) => return self.refuse_statement(error, end, &arrival).await,
        };
        if route(&statement, self.open) == Route::Log {
            return self.log(statement, bytes, end, arrival).await;
        }
        self.flush().await;
        if self.stopped || (self.failed && !self.settings.continue_on_error) {
            return;
        }
        self.summary = None;
        self.serve_locally(statement, bytes, end, arrival.clone()).await;
        // Unless it went through the log after all (reported there).
        self.report(&arrival);
    }

    /// Answers a statement with an error without running it (after the writes before it).
    async fn refuse_statement(&mut self, error: StatementError, end: u64, arrival: &Arrival) {
        self.flush().await;
        if self.stopped || (self.failed && !self.settings.continue_on_error) {
            return;
        }
        let index = self.replica.consensus.applied();
        self.result(index, Err(error), end, 0).await;
        self.report(arrival);
    }

    /// Reports a statement whose result was just sent to the replica's observer.
    fn report(&mut self, arrival: &Arrival) {
        if let Some(summary) = self.summary.take() {
            arrival.report(self.replica.observer.as_ref(), &summary);
        }
    }

    /// Adds a statement to the pending log run.
    async fn log(&mut self, statement: Statement, bytes: usize, end: u64, arrival: Arrival) {
        self.open = self.open.after_logging(&statement);
        if self.pending_bytes + bytes > MAX_RUN_BYTES {
            self.flush().await;
        }
        self.pending.push((statement, end, arrival));
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
                self.replica.activity.touch(*version);
                Some(*version)
            }
            _ => None,
        };
        let ends: Vec<u64> = pending.iter().map(|(_, end, _)| *end).collect();
        let arrivals: Vec<Arrival> =
            pending.iter().map(|(_, _, arrival)| arrival.clone()).collect();
        let count = pending.len();
        let request = (self.settings.client != 0).then_some(RequestId {
            client: self.settings.client,
            sequence: self.settings.sequence,
            part,
        });
        let statements = pending.into_iter().map(|(statement, ..)| statement).collect();
        let command = Command::Execute {
            txn,
            statements,
            continue_on_error: self.settings.continue_on_error,
            request,
            limits: self.replica.options.statement_limits,
            caller: self.settings.principal.caller(),
            now: crate::sql::clock::wall_clock(),
        };
        // A read after these writes must see them: its read index must come after them (the
        // consensus answers once the write is applied here, but may give up waiting for that).
        self.read_index = None;
        match self.replica.consensus.propose(command.encode(), txn).await {
            Ok((index, Outcome::Executed { results, txn })) => {
                let ran = results.len();
                let failed = results.iter().any(stops_script) || ran < count;
                for ((result, end), arrival) in results.into_iter().zip(ends).zip(&arrivals) {
                    self.result(index, result, end, part).await;
                    self.report(arrival);
                }
                let transaction = txn.map(|version| {
                    self.replica.activity.touch(version);
                    Transaction::ReadWrite { version, index }
                });
                self.open = Open::of(transaction.as_ref());
                if transaction != self.transaction {
                    self.transaction = transaction;
                    self.send_session().await;
                }
                self.failed |= failed;
            }
            Ok((index, Outcome::Done | Outcome::Ingested { .. })) => {
                let error = StatementError::new("internal", "the log applied a different command");
                self.result(index, Err(error), ends[0], part).await;
                self.report(&arrivals[0]);
                self.failed = true;
            }
            Err(error) => {
                // Unavailable: nothing was applied; unknown: it may have been. Either way the
                // script cannot go on (its next statements may depend on this one); the client
                // resumes here.
                let index = self.replica.consensus.applied();
                self.result(index, Err(error.into()), ends[0], part).await;
                self.report(&arrivals[0]);
                self.stopped = true;
            }
        }
        self.deliver().await;
    }

    /// Sends a statement's result; a write's RETURNING rows go as a query's, in batches.
    async fn result(&mut self, index: Index, outcome: StatementOutcome, end: u64, part: u64) {
        self.summary = Some(summarize(&outcome, part > 0));
        let (columns, rows) = match outcome {
            Ok(StatementResult::Query { columns, rows }) => (columns, rows),
            outcome => {
                if stops_script(&outcome) {
                    self.failed = true;
                }
                self.send(Response::Result { index, outcome, end, part }).await;
                return;
            }
        };
        let count = rows.len() as u64;
        self.send(Response::Columns(columns)).await;
        let (mut batch, mut bytes) = (Vec::new(), 0);
        for row in rows {
            bytes += row.iter().map(crate::sql::types::Value::size).sum::<usize>();
            batch.push(row);
            if bytes >= query::ROW_BATCH_BYTES {
                self.send(Response::Rows(std::mem::take(&mut batch))).await;
                bytes = 0;
            }
        }
        if !batch.is_empty() {
            self.send(Response::Rows(batch)).await;
        }
        self.send(Response::QueryEnd { index, rows: count, end, part }).await;
    }

    /// Refuses the rest of the script (a statement too long, text that is not UTF-8).
    async fn refuse(&mut self, message: String) {
        self.flush().await;
        let index = self.replica.consensus.applied();
        let error = StatementError::new("invalid_request", message);
        self.result(index, Err(error), 0, 0).await;
        self.deliver().await;
        self.stopped = true;
    }

    /// Queues a response; [`Run::deliver`] sends what is queued (or this, once a batch is
    /// full: a run of many writes has as many results).
    async fn send(&mut self, response: Response) {
        self.outgoing.push(response);
        if self.outgoing.len() >= RESPONSES_PER_BATCH {
            self.deliver().await;
        }
    }

    /// Sends the queued responses, as one batch.
    async fn deliver(&mut self) {
        if self.outgoing.is_empty() {
            return;
        }
        let batch = std::mem::take(&mut self.outgoing);
        if self.out.send(batch).await.is_err() {
            self.stopped = true; // the client went away
        }
    }

    /// Sends the session, signed.
    async fn send_session(&mut self) {
        let transaction = match &self.transaction {
            None => None,
            Some(txn) => match self.replica.session_key().await {
                Ok(key) => {
                    let holder = (self.settings.client, self.settings.principal.name());
                    Some((txn.clone(), proof::sign(&key, txn, holder)))
                }
                Err(error) => {
                    self.send(Response::Refused(error)).await;
                    self.stopped = true;
                    return;
                }
            },
        };
        self.send(Response::Session(transaction)).await;
    }

    /// Serves one statement on this node, as `replica::route` says for the session's
    /// transaction now.
    async fn serve_locally(
        &mut self,
        statement: Statement,
        bytes: usize,
        end: u64,
        arrival: Arrival,
    ) {
        let replica = self.replica.clone();
        let consensus = &replica.consensus;
        let deadline = Instant::now() + replica.options.request_timeout;
        let applied = consensus.applied();
        match route(&statement, Open::of(self.transaction.as_ref())) {
            Route::Refuse(error) => self.result(applied, Err(error), end, 0).await,
            // The session's state changed as the pending writes ran: log it on its own.
            Route::Log => {
                self.log(statement, bytes, end, arrival).await;
                self.flush().await;
            }
            Route::BeginReadOnly { as_of } => {
                let index = match self.barrier(end).await {
                    Ok(index) => index,
                    Err(error) => return self.result(applied, Err(error), end, 0).await,
                };
                let state = blocking(&replica, move |db| {
                    let txn = match as_of {
                        Some(version) => db.mvcc().begin_as_of(version)?,
                        None => db.mvcc().begin_read_only()?,
                    };
                    Ok(txn.state().clone())
                })
                .await;
                // A node that continues the snapshot must have applied all it sees, which may
                // be more than the read index: the state machine's position covers it.
                let index = index.max(replica.position.load(Ordering::SeqCst));
                match state {
                    Ok(state) => {
                        let result =
                            StatementResult::Begin { version: state.version, read_only: true };
                        self.transaction = Some(Transaction::ReadOnly { state, index });
                        self.open = Open::ReadOnly;
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
                self.open = Open::None;
                let result = match statement {
                    Statement::Commit => StatementResult::Commit { version },
                    _ => StatementResult::Rollback { version },
                };
                self.result(applied, Ok(result), end, 0).await;
                self.send_session().await;
            }
            Route::Read => match self.transaction.clone() {
                None => {
                    let index = match self.barrier(end).await {
                        Ok(index) => index.max(consensus.applied()),
                        Err(error) => return self.result(applied, Err(error), end, 0).await,
                    };
                    self.query(statement, Reader::Latest, index, end).await;
                }
                Some(Transaction::ReadOnly { state, index }) => {
                    if let Err(error) = consensus.wait_applied(index, deadline).await {
                        return self.result(applied, Err(error.into()), end, 0).await;
                    }
                    let index = consensus.applied();
                    self.query(statement, Reader::Snapshot(state), index, end).await;
                }
                Some(Transaction::ReadWrite { version, index }) => {
                    replica.activity.touch(version);
                    if let Err(error) = consensus.wait_applied(index, deadline).await {
                        return self.result(applied, Err(error.into()), end, 0).await;
                    }
                    let index = consensus.applied();
                    self.query(statement, Reader::Transaction(version), index, end).await;
                }
            },
        }
    }
}

/// Runs SQL work on the blocking pool against the current database.
async fn blocking<C: Consensus, T: Send + 'static>(
    replica: &Replica<C>,
    work: impl FnOnce(&Arc<Database>) -> crate::sql::Result<T> + Send + 'static,
) -> Result<T, StatementError> {
    let db = replica.database();
    tokio::task::spawn_blocking(move || work(&db).map_err(StatementError::from))
        .await
        .map_err(|error| StatementError::new("internal", format!("query task failed: {error}")))?
}

/// A statement as it may go into the log: a password becomes its salted hash (hashed on the
/// blocking pool), so no password is logged or stored.
async fn seal(statement: Statement) -> Result<Statement, StatementError> {
    use crate::sql::parser::ast::{Credential, UserStatement};
    let (name, password, make): (String, String, fn(String, Credential) -> UserStatement) =
        match statement {
            Statement::Users(UserStatement::Create {
                name,
                credential: Credential::Password(password),
                if_not_exists,
            }) => {
                let make = if if_not_exists {
                    |name, credential| UserStatement::Create {
                        name,
                        credential,
                        if_not_exists: true,
                    }
                } else {
                    |name, credential| UserStatement::Create {
                        name,
                        credential,
                        if_not_exists: false,
                    }
                };
                (name, password, make)
            }
            Statement::Users(UserStatement::SetPassword {
                name,
                credential: Credential::Password(password),
            }) => {
                (name, password, |name, credential| UserStatement::SetPassword { name, credential })
            }
            other => return Ok(other),
        };
    if password.is_empty() || password.len() > super::access::MAX_PASSWORD_BYTES {
        let message =
            format!("a password is 1 to {} bytes long", super::access::MAX_PASSWORD_BYTES);
        return Err(StatementError::new("invalid_statement", message));
    }
    let _turn = super::access::hashing_turn().await.map_err(StatementError::from)?;
    let hashed = tokio::task::spawn_blocking(move || super::access::hash_password(&password))
        .await
        .map_err(|e| StatementError::new("internal", format!("hashing failed: {e}")))?
        .map_err(|e| StatementError::new("internal", e))?;
    Ok(Statement::Users(make(name, Credential::Hash(hashed))))
}

/// What a statement's outcome says for the observer: its error, or its rows. `logged`: it
/// went through the log, so rows it returns are RETURNING rows, one per row written.
fn summarize(outcome: &StatementOutcome, logged: bool) -> Summary {
    match outcome {
        Err(error) => Summary { error: Some(error.kind.clone()), ..Summary::default() },
        Ok(StatementResult::Query { rows, .. }) => {
            let rows = rows.len() as u64;
            Summary {
                rows_returned: rows,
                rows_written: if logged { rows } else { 0 },
                ..Summary::default()
            }
        }
        Ok(
            StatementResult::Insert { count }
            | StatementResult::Update { count }
            | StatementResult::Delete { count },
        ) => Summary { rows_written: *count, ..Summary::default() },
        Ok(_) => Summary::default(),
    }
}

/// Whether a statement's outcome ends the script (unless it goes on after errors): any error
/// but that of a retried write whose RETURNING rows were not kept, which was applied, so the
/// script goes on as it did the first time.
fn stops_script(outcome: &StatementOutcome) -> bool {
    outcome.as_ref().is_err_and(|error| error.kind != "returning_not_kept")
}

#[path = "serve_reads.rs"]
mod reads;

#[cfg(test)]
#[path = "serve_tests.rs"]
mod tests;
