//! What the replicated log carries, and what applying it returns.
//!
//! A [`Command`] is a Raft log entry's payload. It carries parsed statements, never storage
//! operations: every replica runs them through the same deterministic executor. Everything a
//! replica could decide differently (when to garbage-collect, which transactions were
//! abandoned) is decided by the leader and written into the command before it is proposed.

use crate::encoding::value as codec;
use crate::raft::NodeId;
use crate::sql::StatementResult;
use crate::sql::budget::Limits;
use crate::sql::engine::ForwardSettings;
use crate::sql::parser::ast::Statement;
use crate::sql::types::Row;
use crate::storage::mvcc::Version;
use serde::{Deserialize, Serialize};

/// A log entry's payload.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Command {
    /// Statements run in order in one session: outside a transaction (`txn: None`) or inside
    /// the open read-write transaction `txn`. Execution stops at the first failed statement
    /// unless `continue_on_error`.
    Execute {
        /// The transaction the statements continue, if any.
        txn: Option<Version>,
        /// The statements.
        statements: Vec<Statement>,
        /// Run every statement even after one fails.
        continue_on_error: bool,
        /// Identifies the command so that a retry is applied at most once (`None`: no
        /// deduplication).
        request: Option<RequestId>,
        /// What each statement may write and hold, fixed by the node that wrote the command
        /// so every replica enforces the same.
        limits: Limits,
        /// Who runs the statements: every replica checks their privileges against the users
        /// it has applied so far (see `access.rs`), so the outcome is the same everywhere.
        caller: Caller,
        /// The proposing node's clock (microseconds since 1970, UTC). The statements' time
        /// is the log clock: the largest such time applied so far (see `Meta::clock`).
        now: i64,
    },
    /// Rolls back transactions whose clients went away (chosen by the leader's timeout).
    Abort {
        /// The transactions.
        txns: Vec<Version>,
    },
    /// Deletes at most `limit` rows of tables with a TTL that expired as of the log clock
    /// (`now` moves it forward, as an Execute's does): chosen by the leader when it sees
    /// expired rows, so every replica deletes the same rows, a bounded batch at a time.
    Expire {
        /// The leader's clock (microseconds since 1970, UTC).
        now: i64,
        /// The most rows to delete.
        limit: u64,
    },
    /// Garbage-collects versions below `horizon` (chosen by the leader).
    Collect {
        /// The oldest version that must stay readable.
        horizon: Version,
    },
    /// Sets the key that signs sessions handed to clients (see `proof.rs`). The first leader
    /// proposes a random one; once set it never changes (a later one is ignored).
    SetSessionKey {
        /// The key.
        key: Vec<u8>,
    },
    /// Records the address a member serves on (before it joins the configuration).
    SetAddress {
        /// The node.
        id: NodeId,
        /// Its `host:port`.
        address: String,
    },
    /// Sets which tables this cluster forwards upstream as an edge: proposed by the leader
    /// when its `--forward` differs from the state's.
    SetForward {
        /// The tables, and the edge's id and incarnation.
        settings: ForwardSettings,
        /// The id and incarnation are only a candidate: an edge that has them keeps its own.
        keep_id: bool,
    },
    /// The upstream acknowledged the outbox up to `through`: those entries are deleted.
    Forwarded {
        /// The highest sequence number the upstream holds.
        through: u64,
    },
    /// Rows an edge forwarded, applied at most once (see `ingest.rs`).
    Ingest(Box<Ingest>),
}

/// Rows an edge forwarded: its outbox entries `first`, `first + 1`, ... in order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Ingest {
    /// The edge's id.
    pub edge: String,
    /// The life of the edge's numbering (see `ForwardSettings::incarnation`).
    pub incarnation: u64,
    /// The sequence number of the first row.
    pub first: u64,
    /// The tables the rows go to, with the edge's column names (empty: in column order).
    pub tables: Vec<(String, Vec<String>)>,
    /// The rows: an index into `tables` and the values.
    pub rows: Vec<(u32, Row)>,
    /// Who forwards them (checked like an INSERT's caller).
    pub caller: Caller,
    /// What the insert may write and hold.
    pub limits: Limits,
    /// The proposing node's clock (as in [`Command::Execute`]).
    pub now: i64,
}

/// Who runs a command's statements.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Caller {
    /// No user: allowed only while the cluster has no users.
    #[default]
    Anonymous,
    /// The holder of the cluster's admin token.
    Operator,
    /// A user, by name.
    User(String),
}

impl Command {
    /// The command as log entry bytes.
    pub fn encode(&self) -> Vec<u8> {
        codec::encode(self)
    }

    /// A command from log entry bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, crate::encoding::DecodeError> {
        codec::decode(bytes)
    }

    /// A one-line description, for log views.
    pub fn summary(&self) -> String {
        match self {
            Command::Execute { txn, statements, .. } => {
                let text: Vec<String> = statements.iter().map(Statement::summary).collect();
                let text = text.join("; ");
                match txn {
                    Some(txn) => format!("[txn {txn}] {text}"),
                    None => text,
                }
            }
            Command::Abort { txns } => format!("abort abandoned transactions {txns:?}"),
            Command::Collect { horizon } => format!("garbage-collect below version {horizon}"),
            Command::Expire { limit, .. } => format!("delete up to {limit} expired rows"),
            Command::SetSessionKey { .. } => "set the session signing key".to_string(),
            Command::SetAddress { id, address } => format!("node {id} serves on {address}"),
            Command::SetForward { settings, .. } => {
                let tables: Vec<&str> = settings.tables.iter().map(String::as_str).collect();
                format!("forward {} upstream as edge {}", tables.join(", "), settings.edge)
            }
            Command::Forwarded { through } => {
                format!("upstream holds the outbox through {through}")
            }
            Command::Ingest(ingest) => format!(
                "{} rows from edge {} from {}",
                ingest.rows.len(),
                ingest.edge,
                ingest.first
            ),
        }
    }
}

/// A command's identity: the client's random id, its request number, and the log run within
/// the request. The state machine applies each at most once (Ongaro's thesis, 6.3): a command
/// whose id it has seen last for that client gets the outcome it had.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RequestId {
    /// The client.
    pub client: u64,
    /// The client's request number (increasing).
    pub sequence: u64,
    /// The log run within the request (from the request's first run on).
    pub part: u64,
}

/// A failed statement, as clients see it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatementError {
    /// A stable machine-readable kind (`unique_violation`, `unavailable`, ...).
    pub kind: String,
    /// A message for people.
    pub message: String,
}

impl StatementError {
    /// An error of `kind` with `message`.
    pub fn new(kind: &str, message: impl Into<String>) -> Self {
        Self { kind: kind.to_string(), message: message.into() }
    }
}

impl From<crate::sql::Error> for StatementError {
    fn from(error: crate::sql::Error) -> Self {
        Self { kind: error.kind().to_string(), message: error.to_string() }
    }
}

/// One statement's outcome.
pub type StatementOutcome = Result<StatementResult, StatementError>;

/// What applying a command produced, identical on every replica.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Outcome {
    /// The results of an [`Command::Execute`], one per statement run, and the transaction
    /// still open afterwards.
    Executed {
        /// The statements' outcomes.
        results: Vec<StatementOutcome>,
        /// The open read-write transaction after the last statement.
        txn: Option<Version>,
    },
    /// Any other command was applied.
    Done,
    /// An [`Command::Ingest`] was applied (or had been): the upstream holds the edge's rows
    /// through this sequence number.
    Ingested {
        /// The highest sequence number held.
        through: u64,
    },
}

impl Outcome {
    /// The outcome as bytes (forwarded from the leader to the node a client talks to).
    pub fn encode(&self) -> Vec<u8> {
        codec::encode(self)
    }

    /// An outcome from bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, crate::encoding::DecodeError> {
        codec::decode(bytes)
    }
}
