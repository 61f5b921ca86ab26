//! What a request asks of a replica: how fresh its reads must be, the session's open
//! transaction as the client carries it, and how a script is to be run.

use crate::raft::Index;
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
    /// The cluster's proof that it issued `transaction` (see `session.rs`).
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
}
