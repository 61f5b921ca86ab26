//! The node: the SQL engine and the Raft core wired together and served over gRPC.
//!
//! # Threads and tasks
//! - The **driver** thread owns the Raft core and its log (`driver.rs`): it steps messages,
//!   ticks, persists with one fsync per round (group commit) and sends.
//! - The **applier** thread owns the SQL state machine (`applier.rs`, `replica::StateMachine`): it applies
//!   committed entries in order, commits them to the durable store atomically with the
//!   applied index, and answers the waiting clients; the **flusher** thread syncs the store
//!   in the background, after which the log is compacted.
//! - **tokio** runs the gRPC services (`services.rs`, `admin.rs`), the connections to peers
//!   (`transport.rs`) and the background tasks (`background.rs`). Queries run on its blocking
//!   pool, against MVCC snapshots, concurrently with the applier.
//!
//! # A write
//! A client's script reaches any node, whose replica serves it (`replica::Replica`). Its writes become one
//! [`Command::Execute`] entry, proposed here if this node leads or forwarded to the leader
//! (`Raft.Forward`, many commands per message: `forward.rs`). The leader appends it, replicates it, and once a majority has fsynced it,
//! every replica applies it; the proposer answers with the outcome it applied.
//!
//! # A read
//! Linearizable by default: the node asks the leader for a read index (ReadIndex, confirmed by
//! a heartbeat quorum, with no log write), waits until its own state machine has applied that
//! far, and runs the query locally. Stale reads skip the barrier.
//!
//! # Invariants
//! - A write is acknowledged only after it is committed (on a majority's disks) and applied.
//! - Replicas apply the same commands to the same state: what could differ between them is
//!   decided by the leader and carried in the command.
//! - A request that cannot be served (no quorum) fails with `unavailable` within the request
//!   timeout; nothing a client or peer sends makes a node panic.
//! - Only nodes holding the cluster secret reach the Raft service, each only as itself, and
//!   only holders of the admin token change the cluster (`auth.rs`).

mod admin;
mod admin_data;
mod applier;
pub mod auth;
mod background;
mod compression;
mod context;
mod driver;
pub mod edge;
mod files;
mod forward;
mod grpc_metrics;
mod metrics;
mod metrics_http;
mod node;
mod services;
mod snapshot;
mod statements;
#[cfg(feature = "tls")]
pub mod tls;
#[cfg(not(feature = "tls"))]
#[path = "no_tls.rs"]
pub mod tls;
mod transport;

pub use driver::NodeEvent;
pub use edge::EdgeOptions;
pub use node::{Node, NodeStatus, Options};

use std::time::Duration;

/// The length of a Raft tick.
pub const TICK_INTERVAL: Duration = Duration::from_millis(25);
/// The base election timeout in ticks: followers wait 10-20 ticks (250-500 ms) without a leader.
pub const ELECTION_TICKS: crate::raft::Ticks = 10;
/// How long a request may wait for a leader, a commit or a read barrier.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a query may run before it is cancelled.
pub const QUERY_TIMEOUT: Duration = Duration::from_secs(60);
/// How many queries may run at once on a node (more wait, up to the request timeout).
pub const MAX_QUERIES: usize = 64;
/// What one statement may write (64 MiB of rows) and hold in memory (256 MiB of rows) by
/// default.
pub const STATEMENT_LIMITS: crate::sql::budget::Limits =
    crate::sql::budget::Limits { write_bytes: 64 << 20, hold_bytes: 256 << 20 };
/// How long a transaction may go unused before the leader rolls it back.
pub const TRANSACTION_TIMEOUT: Duration = Duration::from_secs(30);
/// Entries applied past the log's start that trigger a flush of the state and a compaction of
/// the log.
pub const SNAPSHOT_ENTRIES: u64 = 10_000;
/// Bytes of entries held in the log that trigger a flush and compaction too (the log in
/// memory stays about this size, whatever the entries).
pub const SNAPSHOT_BYTES: usize = 16 << 20;
/// How long a follower may be behind without progress before the leader reports it stalled.
pub const STALLED_AFTER: Duration = Duration::from_secs(5);
/// How often the leader garbage-collects old versions.
pub const GC_INTERVAL: Duration = Duration::from_secs(10);
/// How long old versions stay readable (for read-only transactions and AS OF reads).
pub const GC_RETENTION: Duration = Duration::from_secs(60);

/// Errors of a node.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Bad settings or a data directory that cannot be used.
    #[error("{0}")]
    Config(String),
    /// A disk or network failure.
    #[error("I/O error: {0}")]
    Io(String),
    /// The request cannot be served now (no leader, no quorum, not caught up); nothing was
    /// applied.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// The write was proposed but its fate is unknown (the leader was lost or the request timed
    /// out): it may or may not be applied.
    #[error("outcome unknown: {0}")]
    UnknownOutcome(String),
    /// The request is not valid.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// The node stopped after a failure that could make it diverge.
    #[error("node halted: {0}")]
    Halted(String),
}

impl Error {
    /// A stable machine-readable name of the kind (clients see it as a statement error kind).
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Config(_) => "config",
            Error::Io(_) => "io_error",
            Error::Unavailable(_) | Error::Halted(_) => "unavailable",
            // Not the same as unavailable: retrying may apply the write twice (unless the
            // request carries an id; see `client`).
            Error::UnknownOutcome(_) => "outcome_unknown",
            Error::InvalidRequest(_) => "invalid_request",
        }
    }
}

impl From<Error> for crate::replica::Error {
    fn from(error: Error) -> Self {
        use crate::replica::Error as Replica;
        match error {
            Error::Unavailable(message) => Replica::Unavailable(message),
            Error::Halted(_) => Replica::Unavailable(error.to_string()),
            Error::UnknownOutcome(message) => Replica::UnknownOutcome(message),
            Error::Config(message) | Error::InvalidRequest(message) => {
                Replica::InvalidRequest(message)
            }
            Error::Io(message) => Replica::Io(message),
        }
    }
}

impl From<crate::raft::Error> for Error {
    fn from(error: crate::raft::Error) -> Self {
        match error {
            crate::raft::Error::Io(message) | crate::raft::Error::Corrupt(message) => {
                Error::Io(message)
            }
            crate::raft::Error::NotLeader { .. } | crate::raft::Error::TransferInProgress => {
                Error::Unavailable(error.to_string())
            }
            other => Error::InvalidRequest(other.to_string()),
        }
    }
}

impl From<crate::storage::Error> for Error {
    fn from(error: crate::storage::Error) -> Self {
        Error::Io(error.to_string())
    }
}

impl From<Error> for tonic::Status {
    fn from(error: Error) -> Self {
        crate::replica::Error::from(error).into()
    }
}
