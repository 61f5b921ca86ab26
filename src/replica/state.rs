//! The replicated SQL state machine: applies committed log entries to a durable store, hands
//! out point-in-time views of it for followers, and switches to a store received from the
//! leader.
//!
//! Invariants:
//! - Determinism: the same entries applied to the same state give byte-identical stored data
//!   and identical outcomes on every replica. Nothing here reads a clock, a random source or
//!   iterates a hash map; a statement error that depends only on the data is an outcome, and
//!   any other failure (I/O) is an [`ApplyError`] that stops the node.
//! - The store records the last applied index (with its term, the configuration there, the
//!   member addresses and the session key) in the same atomic batch as the writes of the
//!   entries it covers ([`StateMachine::commit`]), so after a crash it holds exactly the
//!   entries up to that index and a restart replays only the log after it.
//! - After every entry the stored data alone describes the state: open transactions are
//!   flushed (so their in-flight markers exist) and the version counter is written. A view of
//!   the store is therefore a complete copy of the state.
//! - A command with a request id is applied at most once: for each client the store keeps the
//!   last id applied and its outcome, and a command carrying that id again gets the same
//!   outcome without running (so a client may retry a write whose outcome it does not know).
//!   The [`MAX_CLIENTS`] most recently active clients are remembered; the least recently
//!   active one (by log index, the same choice on every replica) makes room for a new one.

use crate::encoding::value as codec;
use crate::raft::{Configuration, Entry, Index, NodeId, Payload, SnapshotMeta, Term};
use crate::replica::{Command, Outcome, RequestId, StatementError};
use crate::sql::Database;
use crate::sql::budget::Limits;
use crate::sql::engine::Txn;
use crate::sql::parser::ast::Statement;
use crate::storage::mvcc::Version;
use crate::storage::{Engine, ReplicaStore, View, WriteBatch};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

/// The key of the state machine's own record, outside the keys MVCC and SQL use.
pub const META_KEY: &[u8] = &[0xf0, b'm', b'e', b't', b'a'];
/// The prefix of the clients' records (the last request each applied), then the client id.
const CLIENT_PREFIX: u8 = 0xf1;
/// How many clients' last requests are remembered for deduplication.
pub const MAX_CLIENTS: usize = 10_000;
/// The most bytes of RETURNING rows a client's remembered outcome keeps; past that a retry
/// is told the write was applied but its rows are not kept (see [`for_replay`]).
pub const MAX_REMEMBERED_ROWS_BYTES: usize = 64 << 10;

/// The outcome a retry of the same request gets: the outcome itself, except RETURNING rows
/// past [`MAX_REMEMBERED_ROWS_BYTES`] in all, which would make every remembered client cost
/// that much: such a statement's result becomes an error saying it was applied.
fn for_replay(outcome: &Outcome) -> Outcome {
    let Outcome::Executed { results, txn } = outcome else { return outcome.clone() };
    let mut budget = MAX_REMEMBERED_ROWS_BYTES;
    let results = results
        .iter()
        .map(|result| match result {
            Ok(crate::sql::StatementResult::Query { rows, .. }) => {
                let bytes: usize =
                    rows.iter().flatten().map(crate::sql::types::Value::size).sum();
                match budget.checked_sub(bytes) {
                    Some(left) => {
                        budget = left;
                        result.clone()
                    }
                    None => Err(StatementError::new(
                        "returning_not_kept",
                        format!(
                            "the write was applied, but its RETURNING rows ({bytes} bytes) are too large to return again on a retry"
                        ),
                    )),
                }
            }
            other => other.clone(),
        })
        .collect();
    Outcome::Executed { results, txn: *txn }
}

/// The last command a client had applied.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct ClientRecord {
    /// Its request number and run.
    sequence: u64,
    part: u64,
    /// The log index it was applied at (the least recent client is forgotten first).
    index: Index,
    /// Its outcome, returned again to a retry.
    outcome: Outcome,
}

fn client_key(client: u64) -> Vec<u8> {
    let mut key = vec![CLIENT_PREFIX];
    key.extend_from_slice(&client.to_be_bytes());
    key
}

/// The clients' records in a store.
fn load_clients(store: &dyn Engine) -> Result<BTreeMap<u64, ClientRecord>, String> {
    let mut clients = BTreeMap::new();
    for item in store.scan_prefix(&[CLIENT_PREFIX]) {
        let (key, value) = item.map_err(|e| e.to_string())?;
        let id: [u8; 8] =
            key[1..].try_into().map_err(|_| "a client record's key is damaged".to_string())?;
        let record: ClientRecord =
            codec::decode(&value).map_err(|e| format!("a client record is damaged: {e}"))?;
        clients.insert(u64::from_be_bytes(id), record);
    }
    Ok(clients)
}

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

/// What the state machine records beside the SQL data.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Meta {
    /// The last index applied.
    pub applied: Index,
    /// The term of that entry.
    pub term: Term,
    /// The configuration as of the applied index.
    pub config: Configuration,
    /// Member addresses recorded through the log.
    pub addresses: BTreeMap<NodeId, String>,
    /// The key that signs client sessions, once the log has set it.
    pub session_key: Option<Vec<u8>>,
    /// The log clock: the latest time any applied command carried (microseconds since 1970,
    /// UTC), or a microsecond past the previous entry's if that is later. It never goes back,
    /// even when the nodes' clocks disagree, and every replica has the same one at the same
    /// index: `now()` in a replicated statement is this time.
    pub clock: i64,
}

impl Meta {
    /// The record stored in `store`, if any.
    pub fn load(store: &dyn Engine) -> Result<Option<Meta>, String> {
        match store.get(META_KEY).map_err(|e| e.to_string())? {
            Some(bytes) => codec::decode(&bytes)
                .map(Some)
                .map_err(|e| format!("the state machine's record is damaged: {e}")),
            None => Ok(None),
        }
    }
}

/// The current database, shared with the threads that serve reads. Installing a snapshot
/// swaps it.
pub type SharedDatabase = Arc<RwLock<Arc<Database>>>;

/// The state machine (see the module docs).
pub struct StateMachine {
    store: Arc<ReplicaStore>,
    db: SharedDatabase,
    /// Open read-write transactions, by version. Transactions of a switched-to store are
    /// resumed from it when next used.
    txns: BTreeMap<Version, Txn>,
    meta: Meta,
    /// The last command each client had applied (mirrors the store's client records).
    clients: BTreeMap<u64, ClientRecord>,
    /// Counts changes of the addresses (volatile: only for noticing them).
    address_changes: u64,
    /// The entry being applied, or the last applied (see [`StateMachine::position`]).
    position: Arc<AtomicU64>,
}

impl StateMachine {
    /// The state machine on `store`, resuming from what it recorded; a new store starts in
    /// `initial` (the configuration the log starts with).
    pub fn open(store: Arc<ReplicaStore>, initial: Configuration) -> Result<Self, ApplyError> {
        let meta = Meta::load(store.as_ref()).map_err(|e| fatal(0, e))?;
        let meta = meta.unwrap_or(Meta { config: initial, ..Meta::default() });
        let clients = load_clients(store.as_ref()).map_err(|e| fatal(meta.applied, e))?;
        let db = Database::open_replicated(store.clone()).map_err(|e| fatal(meta.applied, e))?;
        db.observe_log_clock(meta.clock);
        Ok(Self {
            store,
            db: Arc::new(RwLock::new(Arc::new(db))),
            txns: BTreeMap::new(),
            position: Arc::new(AtomicU64::new(meta.applied)),
            clients,
            address_changes: 0,
            meta,
        })
    }

    /// How far the state readers see may have come: set to an entry's index before its
    /// effects become visible, so a reader that saw an entry's effects reads at least its
    /// index afterwards. (The applied index is published later, after a batch of entries.)
    pub fn position(&self) -> Arc<AtomicU64> {
        self.position.clone()
    }

    /// The shared handle to the current database.
    pub fn database(&self) -> SharedDatabase {
        self.db.clone()
    }

    fn current(&self) -> Arc<Database> {
        read_database(&self.db)
    }

    /// The store in use.
    pub fn store(&self) -> &Arc<ReplicaStore> {
        &self.store
    }

    /// The last index applied.
    pub fn applied(&self) -> Index {
        self.meta.applied
    }

    /// What the state machine records beside the data.
    pub fn meta(&self) -> &Meta {
        &self.meta
    }

    /// Member addresses recorded through the log.
    pub fn addresses(&self) -> &BTreeMap<NodeId, String> {
        &self.meta.addresses
    }

    /// The key that signs client sessions, if the log has set one.
    pub fn session_key(&self) -> Option<&Vec<u8>> {
        self.meta.session_key.as_ref()
    }

    /// A counter that moves whenever the addresses change.
    pub fn address_changes(&self) -> u64 {
        self.address_changes
    }

    /// Applies a committed entry. Returns the outcome for the client that proposed it. The
    /// effects are visible to readers at once and reach the disk with the next
    /// [`StateMachine::commit`].
    pub fn apply(&mut self, entry: &Entry) -> Result<Outcome, ApplyError> {
        let index = entry.index;
        if index <= self.meta.applied {
            return Err(fatal(
                index,
                format!("entry {index} handed over again (applied {})", self.meta.applied),
            ));
        }
        self.position.store(index, Ordering::SeqCst);
        let outcome = match &entry.payload {
            Payload::Noop => Outcome::Done,
            Payload::Config(config) => {
                self.meta.config = config.clone();
                Outcome::Done
            }
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
        self.meta.applied = index;
        self.meta.term = entry.term;
        Ok(outcome)
    }

    /// Writes everything applied since the last commit to the store, with the record of the
    /// applied index, as one atomic batch (no fsync: see the module docs).
    pub fn commit(&mut self) -> Result<(), ApplyError> {
        let mut record = WriteBatch::new();
        record.set(META_KEY.to_vec(), codec::encode(&self.meta));
        self.store.commit(record).map_err(|e| fatal(self.meta.applied, e))
    }

    fn execute(&mut self, index: Index, command: Command) -> Result<Outcome, ApplyError> {
        let db = self.current();
        match command {
            Command::Execute {
                txn,
                statements,
                continue_on_error,
                request,
                limits,
                caller,
                now,
            } => {
                self.meta.clock = self.advance_clock(now);
                let now = self.meta.clock;
                db.observe_log_clock(now);
                let run =
                    Run { txn, statements: &statements, continue_on_error, limits, caller, now };
                if let Some(request) = request {
                    match self.seen(request) {
                        Some(outcome) => return Ok(outcome),
                        None => {
                            let outcome = self.run(index, &db, run)?;
                            self.remember(index, request, &outcome)?;
                            return Ok(outcome);
                        }
                    }
                }
                self.run(index, &db, run)
            }
            Command::Abort { txns } => {
                for version in txns {
                    if let Some(txn) = self.take_txn(&db, version) {
                        txn.rollback().map_err(|e| fatal(index, e))?;
                    }
                }
                Ok(Outcome::Done)
            }
            Command::Expire { now, limit } => {
                self.meta.clock = self.advance_clock(now);
                db.observe_log_clock(self.meta.clock);
                let result = match db.expire(self.meta.clock, limit) {
                    Ok(count) => Ok(crate::sql::StatementResult::Delete { count }),
                    Err(error) if error.is_deterministic() => Err(error.into()),
                    Err(error) => return Err(fatal(index, error)),
                };
                Ok(Outcome::Executed { results: vec![result], txn: None })
            }
            Command::Collect { horizon } => {
                db.mvcc().gc(horizon).map_err(|e| fatal(index, e))?;
                Ok(Outcome::Done)
            }
            Command::SetSessionKey { key } => {
                // The first key wins on every replica; a second proposal (from a leader that
                // had not applied the first yet) changes nothing.
                if self.meta.session_key.is_none() {
                    self.meta.session_key = Some(key);
                }
                Ok(Outcome::Done)
            }
            Command::SetAddress { id, address } => {
                self.meta.addresses.insert(id, address);
                self.address_changes += 1;
                Ok(Outcome::Done)
            }
            Command::SetForward { settings, keep_id } => {
                Self::outcome_of(index, db.set_forward_settings(&settings, keep_id))
            }
            Command::Forwarded { through } => Self::outcome_of(index, db.trim_outbox(through)),
            Command::Ingest(mut ingest) => {
                self.meta.clock = self.advance_clock(ingest.now);
                ingest.now = self.meta.clock;
                db.observe_log_clock(ingest.now);
                self.ingest(index, &db, *ingest)
            }
        }
    }

    /// The outcome of a command's SQL work: done, a deterministic error, or a fatal one.
    fn outcome_of(index: Index, result: crate::sql::Result<()>) -> Result<Outcome, ApplyError> {
        match result {
            Ok(()) => Ok(Outcome::Done),
            Err(error) if error.is_deterministic() => {
                Ok(Outcome::Executed { results: vec![Err(error.into())], txn: None })
            }
            Err(error) => Err(fatal(index, error)),
        }
    }

    /// The log clock after an entry carrying `now`: `now`, but always past the last entry's
    /// time, so every entry's `now()` is distinct and increasing even when the nodes' clocks
    /// disagree (rows keyed by `now()` do not collide).
    fn advance_clock(&self, now: i64) -> i64 {
        now.max(self.meta.clock.saturating_add(1))
    }

    /// The outcome to give `request` if it was applied before: the same outcome if it is the
    /// client's last command, an error if it is older (its outcome is no longer kept).
    fn seen(&self, request: RequestId) -> Option<Outcome> {
        let record = self.clients.get(&request.client)?;
        match (request.sequence, request.part).cmp(&(record.sequence, record.part)) {
            std::cmp::Ordering::Equal => Some(record.outcome.clone()),
            std::cmp::Ordering::Less => Some(Outcome::Executed {
                results: vec![Err(StatementError::new(
                    "duplicate_request",
                    "this request was applied before and its result is no longer kept",
                ))],
                txn: None,
            }),
            std::cmp::Ordering::Greater => None,
        }
    }

    /// Records `request` as its client's last applied command, forgetting the least recently
    /// active client when the table is full.
    fn remember(
        &mut self,
        index: Index,
        request: RequestId,
        outcome: &Outcome,
    ) -> Result<(), ApplyError> {
        if !self.clients.contains_key(&request.client) && self.clients.len() >= MAX_CLIENTS {
            let oldest = self.clients.iter().min_by_key(|(_, record)| record.index);
            if let Some(oldest) = oldest.map(|(client, _)| *client) {
                self.clients.remove(&oldest);
                self.store.delete(&client_key(oldest)).map_err(|e| fatal(index, e))?;
            }
        }
        let record = ClientRecord {
            sequence: request.sequence,
            part: request.part,
            index,
            outcome: for_replay(outcome),
        };
        self.store
            .set(&client_key(request.client), codec::encode(&record))
            .map_err(|e| fatal(index, e))?;
        self.clients.insert(request.client, record);
        Ok(())
    }

    /// Runs statements in one session (autocommit or the open transaction `txn`).
    fn run(
        &mut self,
        index: Index,
        db: &Arc<Database>,
        run: Run<'_>,
    ) -> Result<Outcome, ApplyError> {
        let Run { txn, statements, continue_on_error, limits, caller, now } = run;
        // Who may do what is decided by the users applied before this entry.
        let rights = match super::access::rights_at_apply(db, &caller) {
            Ok(rights) => rights,
            Err(super::Error::Io(message)) => return Err(fatal(index, message)),
            Err(error) => {
                let results = vec![Err(StatementError::from(error))];
                return Ok(Outcome::Executed { results, txn });
            }
        };
        let mut session = match txn {
            None => db.session(),
            Some(version) => match self.take_txn(db, version) {
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
        session.set_limits(limits);
        session.set_clock(now);
        let mut results = Vec::with_capacity(statements.len());
        for statement in statements {
            let privilege = crate::sql::engine::Privilege::of(statement);
            if !rights.may(privilege) {
                let message = rights.refusal(privilege, &statement.summary());
                results.push(Err(StatementError::new("permission_denied", message)));
                if !continue_on_error {
                    break;
                }
                continue;
            }
            let result = match statement {
                Statement::Begin { read_only: true, .. } => Err(crate::sql::Error::Invalid(
                    "read-only transactions are not replicated".into(),
                )),
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

    /// Takes the open transaction `version` out of the map, resuming it from the store if this
    /// replica switched to a store received from the leader. `None` if it is not in flight.
    fn take_txn(&mut self, db: &Database, version: Version) -> Option<Txn> {
        if let Some(txn) = self.txns.remove(&version) {
            return Some(txn);
        }
        // Not in flight is the only way this fails on a healthy store; a damaged store fails
        // the next write instead.
        db.resume_transaction(version).ok()
    }

    /// A point-in-time view of the state as of the applied index (committed first), and what
    /// it covers: the index, its term and the configuration there.
    pub fn snapshot(&mut self) -> Result<(SnapshotMeta, View), ApplyError> {
        self.commit()?;
        let view = self.store.snapshot().map_err(|e| fatal(self.meta.applied, e))?;
        let meta = SnapshotMeta {
            index: self.meta.applied,
            term: self.meta.term,
            config: self.meta.config.clone(),
        };
        Ok((meta, view))
    }

    /// Switches to `store`, a complete copy of the leader's state (received and staged). The
    /// old store closes once the queries still reading it finish.
    pub fn switch(&mut self, store: Arc<ReplicaStore>) -> Result<(), ApplyError> {
        let meta = Meta::load(store.as_ref())
            .map_err(|e| fatal(self.meta.applied, e))?
            .ok_or_else(|| fatal(self.meta.applied, "the received state has no record"))?;
        let clients = load_clients(store.as_ref()).map_err(|e| fatal(meta.applied, e))?;
        let db = Database::open_replicated(store.clone()).map_err(|e| fatal(meta.applied, e))?;
        db.observe_log_clock(meta.clock);
        // The old transactions belong to the old store; dropping them touches only it.
        self.txns.clear();
        self.position.fetch_max(meta.applied, Ordering::SeqCst);
        self.clients = clients;
        *self.db.write().unwrap_or_else(|poison| poison.into_inner()) = Arc::new(db);
        self.store = store;
        self.meta = meta;
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

pub(super) fn fatal(index: Index, error: impl std::fmt::Display) -> ApplyError {
    ApplyError { index, message: error.to_string() }
}

/// What an Execute command asks the state machine to run.
struct Run<'a> {
    txn: Option<Version>,
    statements: &'a [Statement],
    continue_on_error: bool,
    limits: Limits,
    caller: super::Caller,
    /// The statements' time: the log clock as of this entry.
    now: i64,
}

#[cfg(test)]
#[path = "state_tests.rs"]
mod tests;
