//! The replicated SQL state machine: applies committed log entries to the database, takes
//! snapshots of it and restores them.
//!
//! Invariants:
//! - Determinism: the same entries applied to the same snapshot give byte-identical stored
//!   data and identical outcomes on every replica. Nothing here reads a clock, a random source
//!   or iterates a hash map; a statement error that depends only on the data is an outcome, and
//!   any other failure (I/O) is an [`ApplyError`] that stops the node.
//! - After every entry the stored data alone describes the state: open transactions are
//!   flushed (so their in-flight markers exist) and the version counter is written. A snapshot
//!   is therefore just a copy of the stored pairs.
//! - The database is volatile: a node rebuilds it from its latest snapshot and the log on start,
//!   so the store never needs an fsync of its own.

use super::command::{Command, Outcome, StatementError};
use crate::encoding::value as codec;
use crate::raft::{Entry, Index, NodeId, Payload};
use crate::sql::Database;
use crate::sql::engine::Txn;
use crate::sql::parser::ast::Statement;
use crate::storage::mvcc::Version;
use crate::storage::{Engine, KeyValue, MemoryEngine, SledEngine, WriteBatch};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

/// A failure that is not a deterministic result of the log (I/O, corruption): the replica must
/// stop rather than diverge.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("state machine failed at index {index}: {message}")]
pub struct ApplyError {
    /// The entry being applied.
    pub index: Index,
    /// What failed.
    pub message: String,
}

/// Where the state machine's databases live: each restore starts from a fresh, empty engine.
pub trait EngineSource: Send {
    /// A new, empty engine. Earlier engines may still be read by in-flight queries.
    fn fresh(&mut self) -> crate::storage::Result<Arc<dyn Engine>>;
}

/// Engines in memory (tests).
#[derive(Default)]
pub struct MemorySource;

impl EngineSource for MemorySource {
    fn fresh(&mut self) -> crate::storage::Result<Arc<dyn Engine>> {
        Ok(Arc::new(MemoryEngine::new()))
    }
}

/// Engines as trees of one volatile sled database (never synced, removed when the node
/// stops: the log rebuilds it). Each generation gets a new tree, and the tree two generations
/// back is dropped (the previous one may still serve a query in flight).
pub struct SledSource {
    db: sled::Db,
    generation: u64,
}

impl SledSource {
    /// Opens a sled database in `path`, discarding what it held (the log rebuilds it).
    pub fn open(path: &std::path::Path) -> crate::storage::Result<Self> {
        if path.exists() {
            std::fs::remove_dir_all(path)?;
        }
        Ok(Self { db: SledEngine::open_volatile_db(path)?, generation: 0 })
    }

    fn tree_name(generation: u64) -> String {
        format!("sql-{generation}")
    }
}

impl EngineSource for SledSource {
    fn fresh(&mut self) -> crate::storage::Result<Arc<dyn Engine>> {
        self.generation += 1;
        if self.generation > 2 {
            let old = Self::tree_name(self.generation - 2);
            self.db
                .drop_tree(old.as_bytes())
                .map_err(|e| crate::storage::Error::Io(e.to_string()))?;
        }
        Ok(Arc::new(SledEngine::open_volatile_tree(&self.db, &Self::tree_name(self.generation))?))
    }
}

/// What a snapshot holds.
#[derive(Serialize, Deserialize)]
struct SnapshotData {
    /// The last index applied.
    applied: Index,
    /// Member addresses recorded through the log.
    addresses: BTreeMap<NodeId, String>,
    /// The session signing key, once set.
    session_key: Option<Vec<u8>>,
    /// Every stored key and value, in key order.
    pairs: Vec<KeyValue>,
}

/// How many pairs a restore writes per batch.
const RESTORE_BATCH: usize = 4096;

/// The current database, shared with the threads that serve reads. A restore swaps it.
pub type SharedDatabase = Arc<RwLock<Arc<Database>>>;

/// The state machine (see the module docs).
pub struct StateMachine {
    source: Box<dyn EngineSource>,
    db: SharedDatabase,
    /// Open read-write transactions, by version. Transactions of a restored snapshot are
    /// resumed from the store when next used.
    txns: BTreeMap<Version, Txn>,
    applied: Index,
    addresses: BTreeMap<NodeId, String>,
    /// Counts changes of `addresses` (volatile: only for noticing them).
    address_changes: u64,
    /// The key that signs client sessions, once the log has set it.
    session_key: Option<Vec<u8>>,
}

impl StateMachine {
    /// An empty state machine on a fresh engine of `source`.
    pub fn new(mut source: Box<dyn EngineSource>) -> Result<Self, ApplyError> {
        let engine = source.fresh().map_err(|e| fatal(0, e))?;
        let db = Database::open_replicated(engine).map_err(|e| fatal(0, e))?;
        Ok(Self {
            source,
            db: Arc::new(RwLock::new(Arc::new(db))),
            txns: BTreeMap::new(),
            applied: 0,
            addresses: BTreeMap::new(),
            address_changes: 0,
            session_key: None,
        })
    }

    /// The shared handle to the current database.
    pub fn database(&self) -> SharedDatabase {
        self.db.clone()
    }

    fn current(&self) -> Arc<Database> {
        read_database(&self.db)
    }

    /// The last index applied.
    pub fn applied(&self) -> Index {
        self.applied
    }

    /// Member addresses recorded through the log.
    pub fn addresses(&self) -> &BTreeMap<NodeId, String> {
        &self.addresses
    }

    /// The key that signs client sessions, if the log has set one.
    pub fn session_key(&self) -> Option<&Vec<u8>> {
        self.session_key.as_ref()
    }

    /// A counter that moves whenever the addresses change.
    pub fn address_changes(&self) -> u64 {
        self.address_changes
    }

    /// Applies a committed entry. Returns the outcome for the client that proposed it.
    pub fn apply(&mut self, entry: &Entry) -> Result<Outcome, ApplyError> {
        let index = entry.index;
        let outcome = match &entry.payload {
            Payload::Noop | Payload::Config(_) => Outcome::Done,
            Payload::Command(bytes) => match Command::decode(bytes) {
                Ok(command) => self.execute(index, command)?,
                // Every replica decodes the same bytes the same way.
                Err(error) => Outcome::Executed {
                    results: vec![Err(StatementError::new(
                        "invalid_command",
                        format!("undecodable command: {error}"),
                    ))],
                    txn: None,
                },
            },
        };
        self.current().mvcc().persist_counter().map_err(|e| fatal(index, e))?;
        self.applied = index;
        Ok(outcome)
    }

    fn execute(&mut self, index: Index, command: Command) -> Result<Outcome, ApplyError> {
        let db = self.current();
        match command {
            Command::Execute { txn, statements, continue_on_error } => {
                let mut session = match txn {
                    None => db.session(),
                    Some(version) => match self.take_txn(&db, version) {
                        Some(txn) => db.resume_session(txn),
                        None => {
                            let error = StatementError::new(
                                "transaction_state",
                                format!(
                                    "transaction {version} is no longer open: it ended, or was rolled back after its client was idle too long"
                                ),
                            );
                            return Ok(Outcome::Executed { results: vec![Err(error)], txn: None });
                        }
                    },
                };
                let mut results = Vec::with_capacity(statements.len());
                for statement in &statements {
                    let result = match statement {
                        Statement::Begin { read_only: true, .. } => {
                            Err(crate::sql::Error::Invalid(
                                "read-only transactions are not replicated".into(),
                            ))
                        }
                        statement => session.execute_statement(statement),
                    };
                    match result {
                        Ok(result) => results.push(Ok(result)),
                        Err(error) if error.is_deterministic() => {
                            results.push(Err(error.into()));
                            if !continue_on_error {
                                break;
                            }
                        }
                        Err(error) => return Err(fatal(index, error)),
                    }
                }
                session.flush().map_err(|e| fatal(index, e))?;
                let txn = session.into_transaction().map(|txn| {
                    let version = txn.mvcc().version();
                    self.txns.insert(version, txn);
                    version
                });
                Ok(Outcome::Executed { results, txn })
            }
            Command::Abort { txns } => {
                for version in txns {
                    if let Some(txn) = self.take_txn(&db, version) {
                        txn.into_inner().rollback().map_err(|e| fatal(index, e))?;
                    }
                }
                Ok(Outcome::Done)
            }
            Command::Collect { horizon } => {
                db.mvcc().gc(horizon).map_err(|e| fatal(index, e))?;
                Ok(Outcome::Done)
            }
            Command::SetSessionKey { key } => {
                // The first key wins on every replica; a second proposal (from a leader that
                // had not applied the first yet) changes nothing.
                if self.session_key.is_none() {
                    self.session_key = Some(key);
                }
                Ok(Outcome::Done)
            }
            Command::SetAddress { id, address } => {
                self.addresses.insert(id, address);
                self.address_changes += 1;
                Ok(Outcome::Done)
            }
        }
    }

    /// Takes the open transaction `version` out of the map, resuming it from the store if this
    /// replica restored it from a snapshot. `None` if it is not in flight.
    fn take_txn(&mut self, db: &Database, version: Version) -> Option<Txn> {
        if let Some(txn) = self.txns.remove(&version) {
            return Some(txn);
        }
        // Not in flight is the only way this fails on a healthy store; a damaged store fails
        // the next write instead.
        db.resume_transaction(version).ok()
    }

    /// The state as snapshot data.
    pub fn snapshot(&self) -> Result<Vec<u8>, ApplyError> {
        let db = self.current();
        let pairs = db
            .mvcc()
            .engine()
            .scan((std::ops::Bound::Unbounded, std::ops::Bound::Unbounded))
            .collect::<crate::storage::Result<Vec<_>>>()
            .map_err(|e| fatal(self.applied, e))?;
        let data = SnapshotData {
            applied: self.applied,
            addresses: self.addresses.clone(),
            session_key: self.session_key.clone(),
            pairs,
        };
        Ok(codec::encode(&data))
    }

    /// Replaces the state with a snapshot's.
    pub fn restore(&mut self, data: &[u8]) -> Result<(), ApplyError> {
        let data: SnapshotData =
            codec::decode(data).map_err(|e| fatal(self.applied, format!("bad snapshot: {e}")))?;
        // The old transactions belong to the old database; dropping them touches only it.
        self.txns.clear();
        let engine = self.source.fresh().map_err(|e| fatal(data.applied, e))?;
        let mut batch = WriteBatch::new();
        for (key, value) in data.pairs {
            batch.set(key, value);
            if batch.len() >= RESTORE_BATCH {
                engine.write(std::mem::take(&mut batch)).map_err(|e| fatal(data.applied, e))?;
            }
        }
        engine.write(batch).map_err(|e| fatal(data.applied, e))?;
        let db = Database::open_replicated(engine).map_err(|e| fatal(data.applied, e))?;
        *self.db.write().unwrap_or_else(|poison| poison.into_inner()) = Arc::new(db);
        self.applied = data.applied;
        self.addresses = data.addresses;
        self.session_key = data.session_key;
        self.address_changes += 1;
        Ok(())
    }

    /// Open read-write transactions, by version (for the leader's abandonment timeout).
    pub fn open_transactions(&self) -> Vec<Version> {
        self.current().mvcc().active_versions().into_iter().collect()
    }
}

/// The current database of a shared handle.
pub fn read_database(db: &SharedDatabase) -> Arc<Database> {
    // The lock only guards an Arc swap; a panic while holding it cannot leave it half-written.
    db.read().unwrap_or_else(|poison| poison.into_inner()).clone()
}

fn fatal(index: Index, error: impl std::fmt::Display) -> ApplyError {
    ApplyError { index, message: error.to_string() }
}

#[cfg(test)]
#[path = "state_tests.rs"]
mod tests;
