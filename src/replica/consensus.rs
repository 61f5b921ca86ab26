//! What a replica needs from the consensus under it, as a small trait: replicate a command,
//! find a linearizable read index, wait until the state machine has applied an index. The
//! node implements it with Raft (proposing on the leader or forwarding to it); tests
//! implement it with a state machine applied in place, so the replica's request handling is
//! tested without gRPC or Raft.

use super::command::{Outcome, StatementError};
use crate::raft::Index;
use crate::storage::mvcc::Version;
use std::future::Future;
use std::time::Instant;

/// Why consensus could not serve a request. What a client may do next depends on the kind:
/// `Unavailable` is safe to retry anywhere (nothing was applied), `UnknownOutcome` is not
/// (the write may still be applied; only a request id makes a retry safe).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Cannot be served now (no leader, no quorum, not caught up, stopping); nothing applied.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// The write was proposed but its fate is unknown: it may or may not be applied.
    #[error("outcome unknown: {0}")]
    UnknownOutcome(String),
    /// The request is not valid (and would not be on a retry).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// A disk or internal failure on the node.
    #[error("I/O error: {0}")]
    Io(String),
    /// The request proves no user (or a wrong password, a dropped user, an expired token).
    #[error("unauthenticated: {0}")]
    Unauthenticated(String),
    /// The user may not do this.
    #[error("permission denied: {0}")]
    PermissionDenied(String),
}

impl Error {
    /// A stable machine-readable name of the kind (clients see it as a statement error kind).
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Unavailable(_) => "unavailable",
            Error::UnknownOutcome(_) => "outcome_unknown",
            Error::InvalidRequest(_) => "invalid_request",
            Error::Io(_) => "io_error",
            Error::Unauthenticated(_) => "unauthenticated",
            Error::PermissionDenied(_) => "permission_denied",
        }
    }
}

impl From<Error> for StatementError {
    fn from(error: Error) -> Self {
        StatementError::new(error.kind(), error.to_string())
    }
}

/// The consensus a replica runs on. Every method may be called from many requests at once.
pub trait Consensus: Send + Sync + 'static {
    /// Replicates an encoded [`super::Command`] and returns the entry it was applied at and its
    /// outcome, once this node has applied it (so a read here afterwards sees it).
    /// `transaction` is the read-write transaction the command belongs to, if any.
    fn propose(
        &self,
        command: Vec<u8>,
        transaction: Option<Version>,
    ) -> impl Future<Output = Result<(Index, Outcome), Error>> + Send;

    /// A linearizable read index, once this node has applied it: a read served here
    /// afterwards reflects every write acknowledged before the call.
    fn read_index(&self) -> impl Future<Output = Result<Index, Error>> + Send;

    /// Waits until this node has applied `index`, or fails at `deadline`.
    fn wait_applied(
        &self,
        index: Index,
        deadline: Instant,
    ) -> impl Future<Output = Result<(), Error>> + Send;

    /// The index this node has applied.
    fn applied(&self) -> Index;

    /// Fails if the node cannot serve at all (it halted or is stopping).
    fn running(&self) -> Result<(), Error>;
}
