//! The client library: the one way the command line, the console and tests talk to a cluster.
//!
//! A [`Client`] knows one or more node addresses and talks to one at a time, moving to the
//! next when a node cannot be reached. Any node serves any request (followers forward writes),
//! so the client never looks for the leader. It keeps the session (the open transaction, with
//! the cluster's signature) that the server returns and sends it back with the next request.
//!
//! Scripts stream both ways ([`Client::run`]): the script is sent in pieces as it is read (a
//! file of any size), and results arrive as they are ready (a query's rows in batches), so
//! neither side holds a whole script or result.
//!
//! Retries are safe. A client has a random id and numbers its requests; the log applies each
//! write of a request at most once. When a request is cut off (a node or the connection
//! failed, the leader changed) the client resumes it just after the last result it received,
//! with the same id: a write that was applied is not applied again, and its result comes back
//! as it was. Only if that keeps failing for [`Client::retry_for`] does the caller see
//! [`Error::OutcomeUnknown`]. A request refused before anything was applied (no quorum, a
//! node unreachable) moves on to each other address once, then reports
//! [`Error::Unavailable`] (or the server's error result).

mod admin;
mod source;

use crate::grpc::wire::{self, never_sent};
use crate::grpc::{convert, pb};
use crate::raft::Index;
use crate::replica::{Consistency, StatementError, StatementOutcome, Transaction};
use crate::sql::StatementResult;
use crate::sql::parser::locate::locate_name_error;
use crate::sql::planner::OutputColumn;
use crate::sql::types::Row;
use source::{Feeder, Source, feed};
use std::io::Read;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tonic::transport::Channel;

/// How long a client waits for an answer to an admin call by default. Longer than the
/// server's request timeout, so an unavailable cluster is reported by the server with its
/// reason.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// The largest gRPC message the client sends or accepts (the node's own limit).
pub const MAX_MESSAGE_BYTES: usize = wire::MAX_MESSAGE_BYTES;

/// The pause between retries of a request that was cut off.
const RETRY_PAUSE: Duration = Duration::from_millis(100);

/// Errors of the client.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// No node could be reached.
    #[error("cannot reach the cluster: {0}")]
    Unreachable(String),
    /// The cluster answered that it cannot serve the request now (no quorum): nothing was
    /// applied, so the request may be retried.
    #[error("cluster unavailable: {0}")]
    Unavailable(String),
    /// A request that may write was cut off (timeout, lost connection, lost leader) after it
    /// was sent: it may or may not have been applied.
    #[error("outcome unknown: {0}")]
    OutcomeUnknown(String),
    /// The request was refused as invalid.
    #[error("invalid request: {0}")]
    Invalid(String),
    /// The request proves no user: no login where the cluster has users, a wrong password,
    /// a dropped user, an expired token.
    #[error("unauthenticated: {0}")]
    Unauthenticated(String),
    /// The user may not do this.
    #[error("permission denied: {0}")]
    PermissionDenied(String),
    /// Anything else the server reported.
    #[error("server error: {0}")]
    Server(String),
}

impl Error {
    /// Whether the cluster (rather than the request) is at fault.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Error::Unreachable(_) | Error::Unavailable(_))
    }

    /// The error for a failed call. `may_write`: the request could have applied writes, so a
    /// failure after it was sent leaves its outcome unknown unless the server said otherwise.
    fn from_status(status: tonic::Status, may_write: bool) -> Self {
        let mut message = status.message().to_string();
        if message.contains("h2 protocol error") {
            // What a plain connection to a node that serves TLS (or the reverse) looks like.
            message.push_str(
                " (if the cluster serves TLS, connect with its CA: --ca FILE; if it does not, connect without)",
            );
        }
        let outcome = status
            .metadata()
            .get(wire::OUTCOME_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        match outcome.as_deref() {
            Some("unknown") => return Error::OutcomeUnknown(message),
            Some("not_applied") => return Error::Unavailable(message),
            _ => {}
        }
        let cut_off = matches!(
            status.code(),
            tonic::Code::Unavailable
                | tonic::Code::DeadlineExceeded
                | tonic::Code::Cancelled
                | tonic::Code::Unknown
        );
        if may_write && cut_off && !never_sent(&status) {
            return Error::OutcomeUnknown(format!(
                "the request was cut off after it was sent and may or may not have been applied: {message}"
            ));
        }
        match status.code() {
            tonic::Code::Unavailable | tonic::Code::DeadlineExceeded | tonic::Code::Cancelled => {
                Error::Unavailable(message)
            }
            tonic::Code::InvalidArgument | tonic::Code::NotFound | tonic::Code::AlreadyExists => {
                Error::Invalid(message)
            }
            tonic::Code::Unauthenticated => Error::Unauthenticated(message),
            tonic::Code::PermissionDenied => Error::PermissionDenied(message),
            _ => Error::Server(message),
        }
    }
}

/// A script to run.
pub enum Script {
    /// Text in memory.
    Text(String),
    /// Text read as it is sent (a file, stdin): any size.
    Reader(Box<dyn Read + Send>),
}

/// What a running script produces, in order.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// A query starts: its columns.
    Columns(Vec<OutputColumn>),
    /// A batch of the query's rows.
    Rows(Vec<Row>),
    /// A statement finished: the log index its result reflects, and its outcome. A query's
    /// outcome holds no rows (they came as [`Event::Rows`]).
    Result(Index, StatementOutcome),
}

/// A script's results, collected (for short scripts: tests, the console).
#[derive(Clone, Debug, Default)]
pub struct Response {
    /// Each statement run, with the log index its result reflects; a query's rows included.
    pub results: Vec<(Index, StatementOutcome)>,
    /// The session's open transaction afterwards.
    pub transaction: Option<Transaction>,
}

/// A connection to a cluster, with a session.
pub struct Client {
    addresses: Vec<String>,
    /// The address in use and its channel.
    current: usize,
    channel: Option<Channel>,
    timeout: Duration,
    /// The session's open transaction.
    transaction: Option<Transaction>,
    /// The cluster's proof for `transaction`, sent back with it.
    proof: Vec<u8>,
    /// This client's random id (its requests' writes are applied at most once).
    id: u64,
    /// The last request number used.
    sequence: u64,
    /// The consistency of reads outside transactions.
    pub consistency: Consistency,
    /// How long a request that was cut off keeps being resumed before the caller sees the
    /// failure (zero: never resumed).
    pub retry_for: Duration,
    /// The admin token, sent with calls that change the cluster (membership, leadership).
    pub admin_token: Option<String>,
    /// TLS to the nodes (the cluster's CA, and a client certificate if given); none: plain.
    tls: Option<crate::grpc::tls::ClientTls>,
    /// The logged-in user's token (see [`Client::login`]).
    user_token: Option<String>,
}

impl Client {
    /// A client of the nodes at `addresses` (`host:port`), tried in order. Nothing is connected
    /// until the first request.
    pub fn new(addresses: Vec<String>, timeout: Duration) -> Result<Self, Error> {
        if addresses.is_empty() {
            return Err(Error::Invalid("no node address given".into()));
        }
        for address in &addresses {
            if wire::endpoint(address).is_none() {
                return Err(Error::Invalid(format!("{address:?} is not a host:port address")));
            }
        }
        let mut id = [0u8; 8];
        getrandom::fill(&mut id)
            .map_err(|e| Error::Invalid(format!("no random source for the client id: {e}")))?;
        Ok(Self {
            addresses,
            current: 0,
            channel: None,
            timeout,
            transaction: None,
            proof: Vec::new(),
            id: u64::from_le_bytes(id).max(1),
            sequence: 0,
            consistency: Consistency::Linearizable,
            retry_for: timeout,
            admin_token: None,
            tls: None,
            user_token: None,
        })
    }

    /// The same client, connecting over TLS.
    pub fn with_tls(mut self, tls: crate::grpc::tls::ClientTls) -> Self {
        self.tls = Some(tls);
        self.channel = None;
        self
    }

    /// What this client's calls carry: its user's token and the admin token, if it has them.
    fn credentials(&self) -> wire::Credentials {
        wire::Credentials {
            user_token: self.user_token.as_deref().and_then(|t| t.trim().parse().ok()),
            admin_token: self.admin_token.as_deref().and_then(|t| t.trim().parse().ok()),
        }
    }

    /// The logged-in user's token, to hand to other clients ([`Client::with_user_token`]).
    pub fn user_token(&self) -> Option<&str> {
        self.user_token.as_deref()
    }

    /// The same client, carrying a token another client got by logging in.
    pub fn with_user_token(mut self, token: String) -> Self {
        self.user_token = Some(token);
        self
    }

    /// A new client (its own session and id) of the nodes at `addresses`, with this one's
    /// timeout, TLS settings and admin token.
    pub fn sibling(&self, addresses: Vec<String>) -> Result<Client, Error> {
        let mut client = Client::new(addresses, self.timeout)?;
        client.tls = self.tls.clone();
        client.admin_token = self.admin_token.clone();
        client.user_token = self.user_token.clone();
        Ok(client)
    }

    /// The address of the node in use.
    pub fn address(&self) -> &str {
        &self.addresses[self.current]
    }

    /// The session's open transaction, if any.
    pub fn transaction(&self) -> Option<&Transaction> {
        self.transaction.as_ref()
    }

    /// A connected channel, trying each address in turn from the current one.
    async fn channel(&mut self) -> Result<Channel, Error> {
        if let Some(channel) = &self.channel {
            return Ok(channel.clone());
        }
        let mut failures = Vec::new();
        for offset in 0..self.addresses.len() {
            let index = (self.current + offset) % self.addresses.len();
            let address = &self.addresses[index];
            let Some(endpoint) = wire::endpoint_with(address, self.tls.as_ref()) else {
                failures.push(format!("{address}: the TLS settings cannot be used"));
                continue;
            };
            // Keep-alives find a dead node under a long stream (no timeout bounds a stream).
            let endpoint = endpoint
                .http2_keep_alive_interval(Duration::from_secs(10))
                .keep_alive_timeout(Duration::from_secs(20))
                .keep_alive_while_idle(true);
            match endpoint.connect().await {
                Ok(channel) => {
                    self.current = index;
                    self.channel = Some(channel.clone());
                    return Ok(channel);
                }
                Err(error) => failures.push(format!("{address}: {error}")),
            }
        }
        Err(Error::Unreachable(failures.join("; ")))
    }

    /// Forgets the connection and moves to the next address.
    fn next_node(&mut self) {
        self.channel = None;
        self.current = (self.current + 1) % self.addresses.len();
    }

    /// Runs one unary request: on another node if this one cannot be reached, and for
    /// requests that only read also if it fails in any way that says the node is unavailable.
    async fn call<T, F, Fut>(&mut self, read_only: bool, mut request: F) -> Result<T, Error>
    where
        F: FnMut(Channel) -> Fut,
        Fut: std::future::Future<Output = Result<T, tonic::Status>>,
    {
        let mut last = None;
        for _ in 0..self.addresses.len() {
            let channel = self.channel().await?;
            match request(channel).await {
                Ok(value) => return Ok(value),
                Err(status) => {
                    let error = Error::from_status(status.clone(), !read_only);
                    let retry = never_sent(&status)
                        || matches!(error, Error::Unavailable(_))
                        || (read_only && status.code() == tonic::Code::Unavailable);
                    if !retry {
                        return Err(error);
                    }
                    last = Some(error);
                    self.next_node();
                }
            }
        }
        Err(last.unwrap_or_else(|| Error::Unreachable("no node answered".into())))
    }

    /// Runs a script in the session, passing each event to `on_event` as it arrives (see the
    /// module docs on retries). Statement errors are results, not `Err`.
    pub async fn run(
        &mut self,
        script: Script,
        continue_on_error: bool,
        mut on_event: impl FnMut(Event),
    ) -> Result<(), Error> {
        self.sequence += 1;
        let source = Arc::new(Mutex::new(Source::new(script)));
        let deadline = Instant::now() + self.retry_for;
        let mut progress = Progress { next_part: 1, ..Progress::default() };
        // Once an attempt's write may have been applied, the outcome stays unknown until a
        // later attempt (deduplicated) gets its result.
        let mut unknown: Option<Failure> = None;
        // The last failed result the server sent (its reason beats a later "unreachable").
        let mut reported: Option<Failure> = None;
        // Without an unknown outcome to settle, a refusal moves on to each other node once.
        let mut other_nodes = self.addresses.len() - 1;
        loop {
            let attempt = self.attempt(&source, continue_on_error, &mut progress, &mut on_event);
            let failure = match attempt.await {
                Ok(()) => return Ok(()),
                Err(failure) => failure,
            };
            if matches!(failure.error, Error::OutcomeUnknown(_)) {
                unknown = Some(failure.clone());
            }
            if failure.result.is_some() {
                reported = Some(failure.clone());
            }
            // Resume unless the failure was final or a query's rows were half sent: while an
            // outcome is unknown, until the retries run out; otherwise on each other node.
            let retryable = matches!(
                failure.error,
                Error::Unavailable(_) | Error::OutcomeUnknown(_) | Error::Unreachable(_)
            ) && !progress.in_query
                && match unknown {
                    Some(_) => Instant::now() < deadline,
                    None => other_nodes > 0,
                };
            if !retryable {
                let last = match (&failure.error, unknown, reported) {
                    (Error::Invalid(_) | Error::Server(_), _, _) => failure,
                    (_, Some(unknown), _) => unknown,
                    (_, None, Some(reported)) => reported,
                    (_, None, None) => failure,
                };
                if let Some((index, error)) = last.result {
                    on_event(Event::Result(index, Err(error)));
                    return Ok(());
                }
                return Err(last.error);
            }
            if unknown.is_none() {
                other_nodes -= 1;
                self.next_node();
            } else if failure.next_node {
                self.next_node();
            }
            tokio::time::sleep(RETRY_PAUSE).await;
        }
    }

    /// One attempt at the rest of a script.
    async fn attempt(
        &mut self,
        source: &Arc<Mutex<Source>>,
        continue_on_error: bool,
        progress: &mut Progress,
        on_event: &mut impl FnMut(Event),
    ) -> Result<(), Failure> {
        let channel = self.channel().await.map_err(|error| Failure::new(error, true))?;
        let settings = pb::RunSettings {
            consistency: convert::consistency(self.consistency) as i32,
            session: Some(pb::Session {
                transaction: self
                    .transaction
                    .as_ref()
                    .map(|t| convert::transaction(t, &self.proof)),
            }),
            continue_on_error,
            client_id: self.id,
            sequence: self.sequence,
            start_offset: progress.acknowledged,
            first_part: progress.next_part,
        };
        let mut client = wire::sql_client(channel, self.credentials());
        // A script in memory that fits one piece goes as one message, with no feeding task.
        let whole = source.lock().unwrap_or_else(|p| p.into_inner()).whole(progress.acknowledged);
        let (feeder, stream) = match whole {
            Some(sql) => {
                let request = pb::RunRequest { settings: Some(settings), sql, end: true };
                (Feeder(None), client.run(tokio_stream::once(request)).await)
            }
            None => {
                let (pieces, requests) = tokio::sync::mpsc::channel::<pb::RunRequest>(2);
                let task =
                    tokio::spawn(feed(source.clone(), progress.acknowledged, settings, pieces));
                let requests = tokio_stream::wrappers::ReceiverStream::new(requests);
                (Feeder(Some(task)), client.run(requests).await)
            }
        };
        let mut stream = match stream {
            Ok(stream) => stream.into_inner(),
            Err(status) => {
                feeder.abort();
                let next_node = never_sent(&status);
                return Err(Failure::new(Error::from_status(status, true), next_node));
            }
        };
        let mut columns = Vec::new();
        loop {
            let message = match stream.message().await {
                Ok(Some(message)) => message,
                Ok(None) => break,
                Err(status) => {
                    feeder.abort();
                    let next_node = never_sent(&status);
                    return Err(Failure::new(Error::from_status(status, true), next_node));
                }
            };
            match message.event {
                Some(pb::run_response::Event::Columns(c)) => {
                    progress.in_query = true;
                    columns = convert::from_columns(c.columns);
                    on_event(Event::Columns(columns.clone()));
                }
                Some(pb::run_response::Event::Rows(rows)) => {
                    on_event(Event::Rows(convert::from_rows(rows.rows)));
                }
                Some(pb::run_response::Event::Session(session)) => {
                    let transaction = session.transaction;
                    self.proof = transaction.as_ref().map(|t| t.proof.clone()).unwrap_or_default();
                    self.transaction = transaction.map(Transaction::from);
                }
                Some(pb::run_response::Event::Result(result)) => {
                    let (end, part) = (result.end_offset, result.part);
                    let (index, outcome) = convert::from_statement_result(result);
                    progress.in_query = false;
                    // A write cut off (or refused) is resumed from its own start.
                    if let Err(error) = &outcome
                        && matches!(error.kind.as_str(), "outcome_unknown" | "unavailable")
                        && part > 0
                    {
                        progress.next_part = part;
                        feeder.abort();
                        let failure = match error.kind.as_str() {
                            "outcome_unknown" => Error::OutcomeUnknown(error.message.clone()),
                            _ => Error::Unavailable(error.message.clone()),
                        };
                        return Err(Failure {
                            error: failure,
                            next_node: false,
                            result: Some((index, error.clone())),
                        });
                    }
                    if part > 0 {
                        progress.next_part = part + 1;
                    }
                    let outcome = match outcome {
                        Err(error) => Err(locate(source, progress.acknowledged, end, error)),
                        ok => ok,
                    };
                    if end > progress.acknowledged {
                        progress.acknowledged = end;
                        source.lock().unwrap_or_else(|p| p.into_inner()).acknowledge(end);
                    }
                    let outcome = match outcome {
                        Ok(StatementResult::Query { .. }) => Ok(StatementResult::Query {
                            columns: std::mem::take(&mut columns),
                            rows: Vec::new(),
                        }),
                        other => other,
                    };
                    on_event(Event::Result(index, outcome));
                }
                None => {}
            }
        }
        match feeder.finish().await {
            Ok(()) => Ok(()),
            Err(message) => Err(Failure::new(Error::Invalid(message), false)),
        }
    }

    /// Runs a script in the session and collects its results (queries with their rows).
    pub async fn execute(&mut self, sql: &str, continue_on_error: bool) -> Result<Response, Error> {
        let mut results = Vec::new();
        let mut rows = Vec::new();
        self.run(Script::Text(sql.to_string()), continue_on_error, |event| match event {
            Event::Columns(_) => rows.clear(),
            Event::Rows(batch) => rows.extend(batch),
            Event::Result(index, Ok(StatementResult::Query { columns, .. })) => {
                let rows = std::mem::take(&mut rows);
                results.push((index, Ok(StatementResult::Query { columns, rows })));
            }
            Event::Result(index, outcome) => results.push((index, outcome)),
        })
        .await?;
        Ok(Response { results, transaction: self.transaction.clone() })
    }
}

/// How far a request got, across attempts.
#[derive(Default)]
struct Progress {
    /// The script offset just past the last result received (an attempt resumes there).
    acknowledged: u64,
    /// The number of the next log run (the first run of a resumed attempt); runs count from
    /// 1 (a result with run 0 did not go through the log).
    next_part: u64,
    /// A query's rows are arriving (a failure now cannot be resumed without repeating them).
    in_query: bool,
}

/// Why an attempt ended early.
#[derive(Clone)]
struct Failure {
    error: Error,
    /// The node could not be reached: try the next one.
    next_node: bool,
    /// The failed statement's result, to report if no retry succeeds.
    result: Option<(Index, StatementError)>,
}

impl Failure {
    fn new(error: Error, next_node: bool) -> Self {
        Self { error, next_node, result: None }
    }
}

/// An error about a name (an unknown or ambiguous column or table) with where the script
/// names it: the statement ran from `start` to `end` in the script, whose text the source
/// still holds until its result is acknowledged.
fn locate(
    source: &Mutex<Source>,
    start: u64,
    end: u64,
    mut error: StatementError,
) -> StatementError {
    let source = source.lock().unwrap_or_else(|p| p.into_inner());
    let Some(text) = source.text(start, end) else { return error };
    let Some(at) = locate_name_error(&error.kind, &error.message, &text) else { return error };
    let (line, column) = source.position(start, &text, at.offset);
    error.message = format!("{} (line {line}, column {column})", error.message);
    error
}
