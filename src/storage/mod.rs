//! Storage: an ordered key/value [`Engine`] and multi-version concurrency control on top of it.
//!
//! - [`Engine`] is the only interface that sees a concrete store. [`RedbEngine`] keeps a
//!   replica's state on disk in one redb table (memory bounded by its cache, values
//!   checksummed); [`SledEngine`] keeps the embedded database in one sled tree;
//!   [`MemoryEngine`] keeps data in a `BTreeMap` for tests and simulation. All pass one shared
//!   test suite.
//! - [`mvcc`] gives snapshot-isolated transactions over any engine.
//!
//! Invariants:
//! - A [`WriteBatch`] is applied atomically: after a crash either all of it or none of it is
//!   visible.
//! - Nothing is durable until [`Engine::flush`] returns; callers that acknowledge writes must
//!   flush first.
//!
//! Deliberate simplifications: an engine's scan may or may not see writes made while it runs
//! (MVCC provides snapshots): the memory engine refills its cursor in chunks under a lock and
//! sees them, as sled's mostly does; redb's scans read the snapshot they started at.

mod engine;
mod memory;
pub mod mvcc;
mod redb;
mod replica;
mod sled;

pub use engine::{Engine, KeyValue, ScanIterator, Status, WriteBatch};
pub use memory::MemoryEngine;
pub use redb::{CACHE_BYTES as REDB_CACHE_BYTES, RedbEngine};
pub use replica::{ReplicaStore, UndoFactory, View};
pub use sled::SledEngine;

#[cfg(test)]
pub(crate) use engine::test_suite;

/// Errors from the storage layer.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The underlying store failed to read or write (disk full, read-only file system, ...).
    #[error("storage I/O error: {0}")]
    Io(String),
    /// Stored bytes could not be decoded: the data is corrupt or of an unknown format.
    #[error("corrupt storage: {0}")]
    Corrupt(String),
    /// A write conflicted with a concurrent transaction; retrying the transaction may succeed.
    #[error("serialization failure: {0}")]
    Serialization(String),
    /// A write was attempted in a read-only transaction.
    #[error("cannot write in a read-only transaction")]
    ReadOnly,
    /// A read-only snapshot is older than the garbage-collection horizon.
    #[error(
        "snapshot at version {version} is too old: versions below {horizon} were garbage-collected"
    )]
    SnapshotTooOld {
        /// The snapshot's version.
        version: u64,
        /// The oldest version still readable.
        horizon: u64,
    },
    /// A transaction was used in a way its state does not allow.
    #[error("invalid transaction use: {0}")]
    InvalidTransaction(String),
}

impl Error {
    /// True when the error follows from the data and the request alone, so every replica
    /// applying the same command gets the same error. I/O failures and corruption are local to
    /// one node: a replica that hits them must stop rather than report a result others won't.
    pub fn is_deterministic(&self) -> bool {
        !matches!(self, Error::Io(_) | Error::Corrupt(_))
    }
}

impl From<crate::encoding::DecodeError> for Error {
    fn from(error: crate::encoding::DecodeError) -> Self {
        Error::Corrupt(error.0)
    }
}

impl From<std::io::Error> for Error {
    fn from(error: std::io::Error) -> Self {
        Error::Io(error.to_string())
    }
}

/// The result type of the storage layer.
pub type Result<T, E = Error> = std::result::Result<T, E>;
