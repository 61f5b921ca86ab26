//! Raft consensus: a pure state machine, a durable log, and a deterministic simulator.
//!
//! # The core
//! [`Node`] implements Raft as described in Diego Ongaro's thesis (2014). It performs no I/O,
//! reads no clock and has no randomness of its own: inputs are ticks, messages and requests;
//! outputs come out in [`Ready`] batches for a driver to persist, send and apply (see
//! `node.rs`). The same core runs in the server and in the simulator.
//!
//! # Protocol features
//! - Leader election with randomized timeouts, pre-vote (a node first asks whether it could win,
//!   so a partitioned node does not inflate terms) and check-quorum (a leader that loses
//!   contact with a majority steps down; followers that hear from a live leader ignore
//!   disruptive candidates).
//! - Log replication with batching, pipelining under a flow-control window, and backtracking
//!   by term hints, so a lagging follower catches up in a few round trips.
//! - Commit by counting replicas of entries of the leader's own term only (Figure 3.7 of the
//!   thesis, "Figure 8" of the paper); a new leader appends a no-op to commit its predecessors'.
//! - Linearizable reads without log writes (ReadIndex), on the leader or through it.
//! - Leadership transfer (TimeoutNow).
//! - Snapshots: the application's state is durable, so the log before its durably applied
//!   index can be dropped ([`Node::compact`]). A follower too far behind gets the
//!   application's state streamed by the driver (the core only asks for it, in
//!   [`Ready::send_snapshots`], and learns the outcome); the follower's driver hands the
//!   received state's metadata to [`Node::install_snapshot`].
//! - Single-server membership changes (learners, promotion, removal), one at a time, carried in
//!   the log and in effect as soon as appended.
//!
//! # Durability
//! [`LogStore`] keeps entries and hard state in append-only segment files, each record framed
//! with its length and a CRC: a torn or corrupt tail after a crash is detected and cut off,
//! never applied. Hard state shares the log's fsync, so a burst of proposals costs one fsync
//! (group commit). It runs on a [`Disk`]: real files, or an in-memory disk that loses unsynced
//! bytes on a simulated crash.
//!
//! # Invariants
//! - Term and vote are durable before a vote is answered; entries before they are
//!   acknowledged (the driver sends `persisted_messages` only after syncing).
//! - A committed entry is never truncated; entries are applied in order, once, and only when
//!   committed.
//! - A node never panics on a message from a peer: malformed or misrouted messages are
//!   errors or ignored.
//!
//! # Simplifications
//! - Membership changes are single-server only (no joint consensus).

mod driver;
mod election;
mod log;
mod message;
mod node;
#[cfg(test)]
mod node_tests;
mod progress;
mod read;
mod replication;
mod store;
#[cfg(test)]
mod wire_tests;

pub mod sim;

pub use driver::{Driver, Host, Round};
pub use log::RaftLog;
pub use message::{
    AppendResult, ConfChange, Configuration, Entry, Envelope, HardState, Message, Payload,
    SnapshotMeta,
};
pub use node::{Event, Node, Options, PeerStatus, ReadState, Ready, Recovered, Role, Status};
pub use store::{Disk, FileDisk, LogStore, MemoryDisk};

/// A node's identifier (non-zero).
pub type NodeId = u64;
/// A leader's term.
pub type Term = u64;
/// A log index (the first entry is 1; 0 means "before the log").
pub type Index = u64;
/// A count of logical clock ticks.
pub type Ticks = u32;

/// The highest term a node accepts or reaches. Terms grow by one per election, so no real
/// cluster gets near it; a node that somehow reached it stops campaigning rather than
/// wrapping, and a message claiming a term beyond it is malformed and dropped.
pub const MAX_TERM: Term = 1 << 62;

/// The most one message may raise a node's term. Live nodes' terms differ by the elections
/// between them (pre-vote keeps a partitioned node from inflating its own), never by billions:
/// a message further ahead is malformed or forged and is dropped, so no single message (even
/// one of a member's, or replayed) can take a node near [`MAX_TERM`].
pub const MAX_TERM_STEP: Term = 1 << 32;

/// Ticks between leader heartbeats (default).
pub const HEARTBEAT_TICKS: Ticks = 1;
/// The base election timeout in ticks (default): followers wait 10-20 ticks.
pub const ELECTION_TICKS: Ticks = 10;
/// The most entries in one append message (default).
pub const MAX_APPEND_ENTRIES: usize = 256;
/// The most bytes of entries in one append message (default); an entry larger than this
/// goes alone.
pub const MAX_APPEND_BYTES: usize = 1 << 20;
/// The largest entry a leader accepts (default): every message carrying it stays within the
/// transport's message limit.
pub const MAX_ENTRY_BYTES: usize = 48 << 20;
/// The most appends in flight to one follower (default).
pub const MAX_INFLIGHT: usize = 16;
/// Ticks a leader waits after a failed snapshot transfer before trying again (default).
pub const SNAPSHOT_RETRY_TICKS: Ticks = 20;
/// About the most bytes of committed entries one `Ready` hands out (default).
pub const MAX_COMMITTED_BYTES: usize = 8 << 20;

/// Errors from the Raft layer.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The request needs the leader; this node is not it (the leader is named if known).
    #[error("not the leader (leader: {})", leader.map_or("unknown".to_string(), |l| l.to_string()))]
    NotLeader {
        /// The current leader, if known.
        leader: Option<NodeId>,
    },
    /// A leadership transfer is in progress; proposals wait until it ends.
    #[error("leadership transfer in progress")]
    TransferInProgress,
    /// A membership change is pending (or the leader has not committed an entry yet).
    #[error("a membership change is already in progress")]
    ConfChangeInProgress,
    /// The membership change is not valid for the current configuration.
    #[error("invalid membership change: {0}")]
    InvalidConfChange(String),
    /// A proposed entry is larger than the leader accepts.
    #[error("the write is too large: {size} bytes, the limit is {limit} bytes")]
    TooLarge {
        /// The entry's size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The request is not valid (misrouted message, compacting past the applied index, ...).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// Reading or writing the log failed.
    #[error("raft log I/O error: {0}")]
    Io(String),
    /// The stored log is corrupt beyond its tail.
    #[error("raft log corrupt: {0}")]
    Corrupt(String),
}

impl From<std::io::Error> for Error {
    fn from(error: std::io::Error) -> Self {
        Error::Io(error.to_string())
    }
}

/// The result type of the Raft layer.
pub type Result<T, E = Error> = std::result::Result<T, E>;
