//! What a request asks of a replica: how fresh its reads must be, the session's open
//! transaction as the client carries it, how a script is to be run, and what comes back.

use super::command::StatementOutcome;
use super::consensus::Error;
use crate::raft::Index;
use crate::sql::planner::OutputColumn;
use crate::sql::types::Value;
use crate::storage::mvcc::{TransactionState, Version};

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

/// How a script is to be run.
#[derive(Clone, Debug, Default)]
pub struct Settings {
    /// The consistency of reads outside transactions.
    pub consistency: Consistency,
    /// The session's open transaction.
    pub transaction: Option<Transaction>,
    /// The cluster's proof that it issued `transaction` (see `proof.rs`).
    pub proof: Vec<u8>,
    /// Keep going after a failed statement.
    pub continue_on_error: bool,
    /// The client's id and request number, for at-most-once writes (client 0: none).
    pub client: u64,
    /// The request number.
    pub sequence: u64,
    /// Where the text starts in the whole script, and the number of its first log run.
    pub start_offset: u64,
    /// The number of the first log run.
    pub first_part: u64,
    /// Who the script runs as (the node authenticates the request; see `access.rs`).
    pub principal: super::access::Principal,
}

/// A piece of a script as it arrives.
#[derive(Clone, Debug, Default)]
pub struct Chunk {
    /// The text (a piece may end anywhere, even inside a statement or a character).
    pub text: Vec<u8>,
    /// The script ends here. A script whose stream ends without such a piece was cut off: its
    /// text after the last `;` is not run.
    pub last: bool,
}

/// What a replica sends back while it runs a script, in order: for each statement either a
/// query's columns, rows and end, or its result; the session whenever it changes and at the
/// end; or a refusal of the whole request.
#[derive(Debug)]
pub enum Response {
    /// A query's columns (before its first rows).
    Columns(Vec<OutputColumn>),
    /// A batch of a query's rows.
    Rows(Vec<Vec<Value>>),
    /// A query's end (or a write's with RETURNING): how many rows it sent.
    QueryEnd {
        /// The index the read reflects at least (a write's: the entry it was applied at).
        index: Index,
        /// How many rows it sent.
        rows: u64,
        /// The offset just past the statement in the script.
        end: u64,
        /// A logged write's part of the request (0 for a read).
        part: u64,
    },
    /// A statement's result (a write's, or any statement's failure).
    Result {
        /// The entry a write was applied at, or the index this node had applied.
        index: Index,
        /// What became of the statement.
        outcome: StatementOutcome,
        /// The offset just past the statement in the script.
        end: u64,
        /// The number of the statement's log run (0: it did not go through the log).
        part: u64,
    },
    /// The session's open transaction and the cluster's proof of it (none: no transaction).
    Session(Option<(Transaction, Vec<u8>)>),
    /// The whole request is refused (nothing after it is sent).
    Refused(Error),
}
