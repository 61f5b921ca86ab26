//! Multi-version concurrency control: snapshot-isolated transactions over any [`Engine`].
//!
//! Every write is stored as a new version of its key, tagged with the writing transaction's
//! version number. A transaction reads the newest version of each key that is visible to it:
//! versions below its own that were not in flight when it began, plus its own writes.
//!
//! # Transactions
//! - Read-write ([`Mvcc::begin`]) take a new version from a counter. Their writes are buffered
//!   in memory and written in one atomic batch by [`Transaction::flush`] (the SQL layer flushes
//!   after every statement, which makes statements atomic) or by [`Transaction::commit`].
//! - Read-only ([`Mvcc::begin_read_only`]) see everything committed when they began.
//! - As-of ([`Mvcc::begin_as_of`]) see the database as a transaction beginning at that version
//!   saw it.
//! - A write to a key whose newest version is not visible (written by a transaction that was in
//!   flight when we began, or that began after us) fails with [`Error::Serialization`]:
//!   first writer wins.
//!
//! # Storage layout (all under one engine; tags keep the spaces apart)
//! - `NextVersion` → the next version to hand out.
//! - `TxnActive(v)` → flags: transaction `v` is in flight and has written to the engine.
//! - `TxnSnapshot(v)` → the versions in flight when `v` began (for as-of reads and resume).
//! - `TxnWrite(v, key)` → the keys `v` has written, so a rollback can remove them.
//! - `Superseded(v, key)` → `v` wrote `key` over another transaction's version, or wrote a
//!   tombstone: garbage once `v` is below the horizon. Written in the same batch as the
//!   version and removed with it by a rollback, so garbage collection reads only these.
//! - `Version(key, v)` → the value `v` wrote, or a tombstone.
//! - `Unversioned(key)` → plain values outside MVCC (counters, metadata).
//!
//! # Invariants
//! - A transaction's markers and writes reach the engine together, in one batch, so after a
//!   crash a transaction is either absent or fully described by its `TxnActive`/`TxnWrite` keys.
//!   [`Mvcc::rollback_in_flight`] removes what a crash left in flight.
//! - Only one transaction at a time holds unflushed writes (the write latch): between its
//!   statements a transaction's writes are all in the engine, where others' conflict checks see
//!   them. The SQL layer runs write statements one at a time, so the latch is never contended
//!   there; misuse is an error, not silent corruption.
//! - A schema change takes the exclusive lock ([`Transaction::lock_exclusive`]): it fails while
//!   other read-write transactions are in flight, and no read-write transaction can begin while
//!   it is held. Rows written under an old schema therefore never meet a new index.
//! - Garbage collection ([`Mvcc::gc`]) is a pure function of the stored data and the horizon it
//!   is given, so replicas that collect at the same horizon stay byte-identical. Its cost is
//!   the writes since the previous pass, not the size of the data.
//! - Nothing here fsyncs: callers decide durability with [`Engine::flush`].

mod keys;
mod scan;
#[cfg(test)]
mod tests;
mod transaction;

pub use scan::Scan;
pub use transaction::{Transaction, TransactionState};

use super::engine::{Engine, WriteBatch};
use super::{Error, Result};
use crate::encoding::keycode;
use crate::encoding::value;
use keys::{
    FLAG_EXCLUSIVE, GC_BATCH, get_u64, split_version_key, split_versioned_tag_key, tag, u64_bytes,
    version_key, versioned_tag_key,
};
use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// A transaction version: the logical timestamp that orders transactions.
pub type Version = u64;

/// In-memory bookkeeping of transactions, mirrored on disk by the `NextVersion`, `TxnActive`
/// and `TxnSnapshot` keys. Guarded by one mutex; every batch that changes it is written while
/// the mutex is held, so the disk and memory views change in the same order.
#[derive(Debug)]
pub(crate) struct Registry {
    /// The next version to hand out.
    pub(super) next_version: Version,
    /// The `NextVersion` value last written to the engine.
    pub(super) persisted_next_version: Version,
    /// Read-write transactions in flight.
    pub(super) active: BTreeSet<Version>,
    /// For each transaction in flight, the oldest version its snapshot can still need (see
    /// [`TransactionState::floor`]): garbage collection never passes the lowest.
    pub(super) floors: BTreeMap<Version, Version>,
    /// The transaction holding the exclusive (schema) lock, if any.
    pub(super) exclusive: Option<Version>,
    /// The transaction holding unflushed writes, if any (the write latch).
    pub(super) latch: Option<Version>,
    /// Read-only snapshots open in this process, with a count per floor (the oldest version
    /// each can still need).
    pub(super) readers: BTreeMap<Version, usize>,
}

/// State shared by an [`Mvcc`] and its transactions.
pub(crate) struct Shared {
    pub(super) engine: Arc<dyn Engine>,
    pub(super) registry: Mutex<Registry>,
    /// The oldest version still readable. Raised before garbage collection deletes anything.
    pub(super) gc_horizon: AtomicU64,
    /// Bumped by every batch that adds versions (flush, commit), so a transaction knows
    /// whether what a read checked about conflicts still holds.
    pub(super) write_epoch: AtomicU64,
}

impl Shared {
    pub(super) fn registry(&self) -> MutexGuard<'_, Registry> {
        // The registry is updated only after the engine write it mirrors succeeded, so a
        // panic elsewhere cannot leave it half-changed.
        self.registry.lock().unwrap_or_else(|poison| poison.into_inner())
    }

    /// Writes a transaction's batch with the registry locked, adding the `NextVersion`
    /// record if the counter moved since it was last written. `adds_versions` says whether the
    /// batch adds versions, which makes earlier conflict checks stale.
    pub(super) fn write_batch(
        &self,
        registry: &mut Registry,
        mut batch: WriteBatch,
        adds_versions: bool,
    ) -> Result<()> {
        if registry.next_version != registry.persisted_next_version {
            batch.set(vec![tag::NEXT_VERSION], u64_bytes(registry.next_version));
        }
        self.engine.write(batch)?;
        if adds_versions {
            self.write_epoch.fetch_add(1, Ordering::AcqRel);
        }
        registry.persisted_next_version = registry.next_version;
        Ok(())
    }
}

/// A multi-version store over an engine. Cloning gives another handle to the same store.
#[derive(Clone)]
pub struct Mvcc {
    shared: Arc<Shared>,
}

/// What [`Mvcc::status`] reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    /// The next version to hand out.
    pub next_version: Version,
    /// Read-write transactions in flight.
    pub active_txns: u64,
    /// Read-only snapshots open in this process.
    pub readers: u64,
    /// The oldest readable version.
    pub gc_horizon: Version,
}

/// What one garbage-collection pass did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GcStats {
    /// The horizon the pass used (after clamping).
    pub horizon: Version,
    /// `Superseded` records examined (one per write that left garbage behind).
    pub scanned: u64,
    /// Stored versions deleted.
    pub deleted: u64,
}

impl Mvcc {
    /// Opens the store on `engine`, loading the transaction registry. Transactions left in
    /// flight by a previous process stay in flight (a replicated state machine resumes them);
    /// call [`Mvcc::rollback_in_flight`] to discard them instead.
    pub fn open(engine: Arc<dyn Engine>) -> Result<Self> {
        let next_version = get_u64(engine.as_ref(), &[tag::NEXT_VERSION])?.unwrap_or(1);
        let gc_horizon = get_u64(engine.as_ref(), &[tag::GC_HORIZON])?.unwrap_or(0);
        let mut active = BTreeSet::new();
        let mut floors = BTreeMap::new();
        let mut exclusive = None;
        for item in engine.scan_prefix(&[tag::TXN_ACTIVE]) {
            let (key, flags) = item?;
            let mut reader = keycode::KeyReader::new(&key[1..]);
            let version = reader.get_u64()?;
            reader.finish()?;
            if flags.first().is_some_and(|f| f & FLAG_EXCLUSIVE != 0) {
                exclusive = Some(version);
            }
            let snapshot: BTreeSet<Version> =
                match engine.get(&versioned_tag_key(tag::TXN_SNAPSHOT, version))? {
                    Some(bytes) => value::decode(&bytes)?,
                    None => BTreeSet::new(),
                };
            floors.insert(version, snapshot.first().copied().unwrap_or(version).min(version));
            active.insert(version);
        }
        let registry = Registry {
            next_version,
            persisted_next_version: next_version,
            active,
            floors,
            exclusive,
            latch: None,
            readers: BTreeMap::new(),
        };
        let shared = Shared {
            engine,
            registry: Mutex::new(registry),
            gc_horizon: AtomicU64::new(gc_horizon),
            write_epoch: AtomicU64::new(0),
        };
        Ok(Self { shared: Arc::new(shared) })
    }

    /// The engine underneath.
    pub fn engine(&self) -> &Arc<dyn Engine> {
        &self.shared.engine
    }

    /// Rolls back every transaction a previous process left in flight, returning their
    /// versions. Only call this when no transaction of this process is running.
    pub fn rollback_in_flight(&self) -> Result<Vec<Version>> {
        let in_flight: Vec<Version> = self.shared.registry().active.iter().copied().collect();
        for version in &in_flight {
            let state = self.load_state(*version)?;
            self.resume(state)?.rollback()?;
        }
        Ok(in_flight)
    }

    /// Begins a read-write transaction.
    pub fn begin(&self) -> Result<Transaction> {
        let mut registry = self.shared.registry();
        if let Some(holder) = registry.exclusive {
            return Err(Error::Serialization(format!(
                "a schema change (transaction {holder}) is in progress; retry the transaction"
            )));
        }
        let version = registry.next_version;
        registry.next_version += 1;
        let active = registry.active.clone();
        let state = TransactionState { version, read_only: false, active };
        registry.active.insert(version);
        registry.floors.insert(version, state.floor());
        drop(registry);
        Ok(Transaction::new(self.shared.clone(), state, false))
    }

    /// Begins a read-only transaction that sees everything committed so far.
    pub fn begin_read_only(&self) -> Result<Transaction> {
        let mut registry = self.shared.registry();
        let version = registry.next_version;
        let active = registry.active.clone();
        let state = TransactionState { version, read_only: true, active };
        *registry.readers.entry(state.floor()).or_default() += 1;
        drop(registry);
        Ok(Transaction::new(self.shared.clone(), state, false))
    }

    /// Begins a read-only transaction that sees the database as a transaction beginning at
    /// `version` saw it.
    pub fn begin_as_of(&self, version: Version) -> Result<Transaction> {
        let mut registry = self.shared.registry();
        if version > registry.next_version {
            return Err(Error::InvalidTransaction(format!(
                "version {version} is in the future (next version is {})",
                registry.next_version
            )));
        }
        if registry.active.contains(&version) {
            return Err(Error::InvalidTransaction(format!("version {version} is still in flight")));
        }
        let horizon = self.shared.gc_horizon.load(Ordering::Acquire);
        if version < horizon {
            return Err(Error::SnapshotTooOld { version, horizon });
        }
        let active = match self.shared.engine.get(&versioned_tag_key(tag::TXN_SNAPSHOT, version))? {
            Some(bytes) => value::decode(&bytes)?,
            // The snapshot is only stored when transactions were in flight.
            None if version == registry.next_version => registry.active.clone(),
            None => BTreeSet::new(),
        };
        let state = TransactionState { version, read_only: true, active };
        if state.floor() < horizon {
            return Err(Error::SnapshotTooOld { version, horizon });
        }
        *registry.readers.entry(state.floor()).or_default() += 1;
        drop(registry);
        Ok(Transaction::new(self.shared.clone(), state, false))
    }

    /// Reopens a read-only snapshot from its state (taken by [`Mvcc::begin_read_only`] here or
    /// on a replica that applied the same log): it sees exactly what it saw when it began.
    pub fn begin_read_only_at(&self, state: TransactionState) -> Result<Transaction> {
        if !state.read_only {
            return Err(Error::InvalidTransaction("not a read-only snapshot".into()));
        }
        let mut registry = self.shared.registry();
        if state.version > registry.next_version {
            return Err(Error::InvalidTransaction(format!(
                "snapshot {} is ahead of this store (next version {})",
                state.version, registry.next_version
            )));
        }
        let horizon = self.shared.gc_horizon.load(Ordering::Acquire);
        if state.floor() < horizon {
            return Err(Error::SnapshotTooOld { version: state.version, horizon });
        }
        *registry.readers.entry(state.floor()).or_default() += 1;
        drop(registry);
        Ok(Transaction::new(self.shared.clone(), state, false))
    }

    /// A read view of the in-flight read-write transaction `version`: it reads what that
    /// transaction reads (its flushed writes included) and cannot write or end it. A replica
    /// serves a transaction's reads this way while its writes go through the log.
    pub fn view(&self, version: Version) -> Result<Transaction> {
        let state = self.load_state(version)?;
        Ok(Transaction::new_view(self.shared.clone(), state))
    }

    /// Writes the version counter if it moved without a batch (a transaction that began and
    /// ended without writing), so the stored data alone describes the store: replicas stay
    /// byte-identical and a snapshot of the engine carries the counter.
    pub fn persist_counter(&self) -> Result<()> {
        let mut registry = self.shared.registry();
        if registry.next_version != registry.persisted_next_version {
            self.shared.engine.set(&[tag::NEXT_VERSION], u64_bytes(registry.next_version))?;
            registry.persisted_next_version = registry.next_version;
        }
        Ok(())
    }

    /// Loads the state of an in-flight read-write transaction from the engine.
    pub fn load_state(&self, version: Version) -> Result<TransactionState> {
        if !self.shared.registry().active.contains(&version) {
            return Err(Error::InvalidTransaction(format!(
                "transaction {version} is not in flight"
            )));
        }
        let active = match self.shared.engine.get(&versioned_tag_key(tag::TXN_SNAPSHOT, version))? {
            Some(bytes) => value::decode(&bytes)?,
            None => BTreeSet::new(),
        };
        Ok(TransactionState { version, read_only: false, active })
    }

    /// Resumes an in-flight read-write transaction from its state (after a restart, or on
    /// another handle). The transaction must have been flushed at least once.
    pub fn resume(&self, state: TransactionState) -> Result<Transaction> {
        if state.read_only {
            return Err(Error::InvalidTransaction(
                "read-only transactions cannot be resumed".into(),
            ));
        }
        let registry = self.shared.registry();
        if !registry.active.contains(&state.version) {
            return Err(Error::InvalidTransaction(format!(
                "transaction {} is not in flight",
                state.version
            )));
        }
        let exclusive = registry.exclusive == Some(state.version);
        drop(registry);
        let mut txn = Transaction::new(self.shared.clone(), state, true);
        txn.exclusive = exclusive;
        Ok(txn)
    }

    /// The versions of the read-write transactions in flight.
    pub fn active_versions(&self) -> BTreeSet<Version> {
        self.shared.registry().active.clone()
    }

    /// The oldest version any transaction of this process can still need: the lowest floor
    /// of a read-only snapshot or in-flight transaction, or the next version when there is
    /// none. A garbage-collection horizon at or below this is safe for local readers.
    pub fn oldest_visible_version(&self) -> Version {
        let registry = self.shared.registry();
        let mut oldest = registry.next_version;
        if let Some(reader) = registry.readers.keys().next() {
            oldest = oldest.min(*reader);
        }
        if let Some(floor) = registry.floors.values().min() {
            oldest = oldest.min(*floor);
        }
        oldest
    }

    /// Deletes the versions no snapshot at or above `horizon` can see: for each key, every
    /// version below the horizon except the newest, and that one too if it is a tombstone.
    ///
    /// The horizon is clamped to the next version and to the floor of every in-flight
    /// read-write transaction (its own version and every version its in-flight set hides, so
    /// the version it reads in their place survives). Both are replicated state, so the result
    /// depends only on the stored data and `horizon`. Local read-only snapshots below the horizon fail from then on with
    /// [`Error::SnapshotTooOld`]; pass [`Mvcc::oldest_visible_version`] to keep them valid.
    pub fn gc(&self, horizon: Version) -> Result<GcStats> {
        let horizon = {
            let registry = self.shared.registry();
            let mut horizon = horizon.min(registry.next_version);
            if let Some(floor) = registry.floors.values().min() {
                horizon = horizon.min(*floor);
            }
            if horizon <= self.shared.gc_horizon.load(Ordering::Acquire) {
                return Ok(GcStats { horizon, ..GcStats::default() });
            }
            // Raise the horizon before deleting: a reader checks it after reading, so it
            // either read before any delete or learns that its snapshot is gone.
            self.shared.gc_horizon.store(horizon, Ordering::Release);
            self.shared.engine.set(&[tag::GC_HORIZON], u64_bytes(horizon))?;
            horizon
        };
        // Writers only add versions at or above the horizon, and rollbacks only remove such
        // versions, so what is deleted below does not race with them.
        //
        // Only `Superseded` records below the horizon are read, so a pass costs what was
        // written since the last one, whatever the size of the data. Of a key's records, the
        // one at its newest version below the horizon does the work (everything older goes,
        // and that version too if it is a tombstone); the others only go themselves, so a key
        // written many times is still cleared in one pass over its versions.
        let engine = self.shared.engine.as_ref();
        let mut stats = GcStats { horizon, ..GcStats::default() };
        let mut batch = WriteBatch::new();
        let records_end = versioned_tag_key(tag::SUPERSEDED, horizon);
        for item in
            engine.scan((Bound::Included(vec![tag::SUPERSEDED]), Bound::Excluded(records_end)))
        {
            let (record, _) = item?;
            stats.scanned += 1;
            let (version, key) = split_versioned_tag_key(&record)?;
            let below_horizon =
                (Bound::Included(version_key(key, 0)), Bound::Excluded(version_key(key, horizon)));
            let newest_below = match engine.last(below_horizon)? {
                Some((raw, stored)) => {
                    Some((split_version_key(&raw)?.1, keys::is_tombstone(&stored), raw))
                }
                None => None,
            };
            if let Some((_, tombstone, newest)) =
                newest_below.filter(|(newest, _, _)| *newest == version)
            {
                let older = (
                    Bound::Included(version_key(key, 0)),
                    Bound::Excluded(version_key(key, version)),
                );
                for item in engine.scan(older) {
                    batch.delete(item?.0);
                    stats.deleted += 1;
                    // A key written a million times is cleared in bounded batches too; the
                    // record goes last, so a pass cut short is finished by the next one.
                    if batch.len() >= GC_BATCH {
                        engine.write(std::mem::take(&mut batch))?;
                    }
                }
                if tombstone {
                    batch.delete(newest); // a tombstone below the horizon hides nothing
                    stats.deleted += 1;
                }
            }
            batch.delete(record);
            if batch.len() >= GC_BATCH {
                engine.write(std::mem::take(&mut batch))?;
            }
        }
        let snapshots_end = versioned_tag_key(tag::TXN_SNAPSHOT, horizon);
        for item in
            engine.scan((Bound::Included(vec![tag::TXN_SNAPSHOT]), Bound::Excluded(snapshots_end)))
        {
            batch.delete(item?.0);
        }
        engine.write(batch)?;
        Ok(stats)
    }

    /// Reports the store's counters. Reads no data: the collector samples it on every pass,
    /// whatever the size of the database.
    pub fn status(&self) -> Status {
        let (next_version, active_txns, readers) = {
            let registry = self.shared.registry();
            (
                registry.next_version,
                registry.active.len() as u64,
                registry.readers.values().sum::<usize>() as u64,
            )
        };
        Status {
            next_version,
            active_txns,
            readers,
            gc_horizon: self.shared.gc_horizon.load(Ordering::Acquire),
        }
    }
}
