//! Transactions: reads at a snapshot, buffered writes, flush, commit and rollback.

use super::keys::{
    FLAG_EXCLUSIVE, decode_stored, encode_stored, split_version_key, split_versioned_tag_key,
    superseded_key, tag, txn_write_key, unversioned_key, version_key, versioned_tag_key,
};
use super::{Registry, Shared, Version};
use crate::encoding::value;
use crate::storage::engine::WriteBatch;
use crate::storage::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// The state that identifies a transaction and decides what it sees. It is plain data, so a
/// replica can resume a transaction another process began.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransactionState {
    /// The transaction's version. Read-only transactions read below it and never write.
    pub version: Version,
    /// Whether the transaction is read-only.
    pub read_only: bool,
    /// The read-write transactions in flight when this one began; their writes are invisible.
    pub active: BTreeSet<Version>,
}

impl TransactionState {
    /// The oldest version this snapshot can still need: the newest version below it that is
    /// not hidden stays readable only while garbage collection keeps everything from the
    /// lowest hidden (in-flight) version up. A horizon above the floor breaks the snapshot.
    pub fn floor(&self) -> Version {
        self.active.first().copied().unwrap_or(self.version).min(self.version)
    }

    /// Whether a version written by `version` is visible to this transaction.
    pub fn is_visible(&self, version: Version) -> bool {
        if self.active.contains(&version) {
            false
        } else if self.read_only {
            version < self.version
        } else {
            version <= self.version
        }
    }
}

/// A transaction. Dropping an unfinished read-write transaction rolls it back.
pub struct Transaction {
    pub(super) shared: Arc<Shared>,
    pub(super) state: TransactionState,
    /// Writes not yet in the engine: `None` deletes.
    pub(super) pending: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    /// The pending keys whose write leaves garbage behind: it covers another transaction's
    /// version, or it is a tombstone. Each gets a `Superseded` record with the write.
    superseding: BTreeSet<Vec<u8>>,
    /// Keys a read found writable without conflict (their newest version is visible), each
    /// with whether a write would supersede another transaction's version, and the write
    /// epoch they belong to: once another batch has added versions, they are stale.
    write_checked: std::cell::RefCell<(u64, std::collections::HashMap<Vec<u8>, bool>)>,
    /// Unversioned writes not yet in the engine.
    pending_unversioned: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    /// The engine holds this transaction's `TxnActive` marker.
    persisted: bool,
    /// This transaction holds the exclusive (schema) lock.
    pub(super) exclusive: bool,
    /// The exclusive flag changed since the marker was written.
    exclusive_dirty: bool,
    /// Committed or rolled back.
    finished: bool,
    /// A read view of another handle's read-write transaction: it reads as that transaction
    /// does (its own writes included) but never writes, commits or rolls back.
    view: bool,
}

impl Transaction {
    pub(super) fn new(shared: Arc<Shared>, state: TransactionState, persisted: bool) -> Self {
        Self {
            shared,
            state,
            pending: BTreeMap::new(),
            superseding: BTreeSet::new(),
            pending_unversioned: BTreeMap::new(),
            write_checked: Default::default(),
            persisted,
            exclusive: false,
            exclusive_dirty: false,
            finished: false,
            view: false,
        }
    }

    /// A read view of an in-flight read-write transaction (see [`super::Mvcc::view`]).
    pub(super) fn new_view(shared: Arc<Shared>, state: TransactionState) -> Self {
        let mut txn = Self::new(shared, state, true);
        txn.view = true;
        txn
    }

    /// Whether this handle may write.
    fn writable(&self) -> Result<()> {
        if self.state.read_only || self.view {
            return Err(Error::ReadOnly);
        }
        if self.finished {
            return Err(Error::InvalidTransaction("transaction already finished".into()));
        }
        Ok(())
    }

    /// The transaction's version.
    pub fn version(&self) -> Version {
        self.state.version
    }

    /// Whether the transaction is read-only.
    pub fn read_only(&self) -> bool {
        self.state.read_only
    }

    /// The transaction's state, for resuming it elsewhere.
    pub fn state(&self) -> &TransactionState {
        &self.state
    }

    /// Whether the transaction holds the exclusive (schema) lock.
    pub fn is_exclusive(&self) -> bool {
        self.exclusive
    }

    /// Fails if garbage collection has removed versions this snapshot may need.
    pub(super) fn check_horizon(&self) -> Result<()> {
        let horizon = self.shared.gc_horizon.load(Ordering::Acquire);
        if self.state.read_only && self.state.floor() < horizon {
            return Err(Error::SnapshotTooOld { version: self.state.version, horizon });
        }
        Ok(())
    }

    /// Reads the newest visible value of `key`.
    ///
    /// The versions are read newest first, so the same scan also tells whether a write of the
    /// key would conflict; a read-write transaction remembers that it would not, and its next
    /// write of the key skips its own conflict scan unless another batch landed meanwhile.
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        if let Some(value) = self.pending.get(key) {
            return Ok(value.clone());
        }
        // Read the epoch before scanning: a batch landing during the scan makes the check stale.
        let epoch = self.shared.write_epoch.load(Ordering::Acquire);
        let versions = || {
            (Bound::Included(version_key(key, 0)), Bound::Included(version_key(key, Version::MAX)))
        };
        // Usually the newest version is visible (or there is none): one seek answers.
        let visible_newest = match self.shared.engine.last(versions())? {
            None => Some(None),
            Some((raw, stored)) => {
                let (_, version) = split_version_key(&raw)?;
                self.state.is_visible(version).then_some(Some((version, stored)))
            }
        };
        if let Some(newest) = visible_newest {
            if !self.state.read_only {
                let supersedes = newest.as_ref().is_some_and(|(v, _)| *v != self.state.version);
                self.remember_checked(key, epoch, supersedes);
            }
            self.check_horizon()?;
            return match newest {
                Some((_, stored)) => decode_stored(stored),
                None => Ok(None),
            };
        }
        // A newer version this transaction cannot see: read back to the one it can.
        let mut found = None;
        let mut newest = true;
        for item in self.shared.engine.scan(versions()).rev() {
            let (raw, stored) = item?;
            let (_, version) = split_version_key(&raw)?;
            let visible = self.state.is_visible(version);
            if newest && visible && !self.state.read_only {
                self.remember_checked(key, epoch, version != self.state.version);
            }
            newest = false;
            if visible {
                found = decode_stored(stored)?;
                break;
            }
        }
        if newest && !self.state.read_only {
            // No version at all: nothing to conflict with, nothing to supersede.
            self.remember_checked(key, epoch, false);
        }
        self.check_horizon()?;
        Ok(found)
    }

    /// Remembers that `key` can be written without conflict, as of write epoch `epoch`, and
    /// whether the write would supersede another transaction's version.
    fn remember_checked(&self, key: &[u8], epoch: u64, supersedes: bool) {
        let mut checked = self.write_checked.borrow_mut();
        if checked.0 != epoch {
            *checked = (epoch, Default::default());
        }
        checked.1.insert(key.to_vec(), supersedes);
    }

    /// If a read found `key` writable and no batch has added versions since: whether the
    /// write supersedes another transaction's version.
    fn take_checked(&self, key: &[u8]) -> Option<bool> {
        let mut checked = self.write_checked.borrow_mut();
        if checked.0 != self.shared.write_epoch.load(Ordering::Acquire) {
            return None;
        }
        checked.1.remove(key)
    }

    /// Sets `key` to `value`.
    pub fn set(&mut self, key: &[u8], value: Vec<u8>) -> Result<()> {
        self.write(key, Some(value))
    }

    /// Deletes `key` (writes a tombstone).
    pub fn delete(&mut self, key: &[u8]) -> Result<()> {
        self.write(key, None)
    }

    /// Sets (`Some`) or deletes (`None`) `key` without a conflict check of its own. Only for
    /// keys always written together with another key that is checked (a non-unique index
    /// entry together with its row).
    pub fn write_covered(&mut self, key: &[u8], value: Option<Vec<u8>>) -> Result<()> {
        self.writable()?;
        self.latch_for_write()?;
        let supersedes = match self.pending.contains_key(key) || value.is_none() {
            true => false, // decided by the first write, or recorded as a tombstone below
            false => match self.newest_version(key) {
                Ok(newest) => newest.is_some_and(|v| v != self.state.version),
                Err(error) => {
                    // Nothing was buffered: don't keep other writers out.
                    if self.pending.is_empty() {
                        self.release_latch();
                    }
                    return Err(error);
                }
            },
        };
        self.buffer(key, value, supersedes);
        Ok(())
    }

    /// Claims the keys from `first` to `last` (inclusive) for [`Transaction::write_fresh`]:
    /// true when no transaction has a version of any of them, in the store or among this
    /// transaction's unflushed writes. One seek answers for the whole span (a bulk load past
    /// the end of a table). The check runs under the write latch, which this transaction then
    /// holds until its writes are flushed or discarded, so no other writer can add a version
    /// in the span meanwhile.
    pub fn claim_unwritten(&mut self, first: &[u8], last: &[u8]) -> Result<bool> {
        self.writable()?;
        if first > last || self.pending.range(first.to_vec()..=last.to_vec()).next().is_some() {
            return Ok(false);
        }
        self.latch_for_write()?;
        let span = (
            Bound::Included(version_key(first, 0)),
            Bound::Included(version_key(last, Version::MAX)),
        );
        let unwritten = self.shared.engine.last(span)?.is_none();
        self.check_horizon()?;
        Ok(unwritten)
    }

    /// Sets `key`, which no version of any transaction has ever had (a freshly allocated,
    /// never reused id): no conflict check and nothing to supersede.
    pub fn write_fresh(&mut self, key: &[u8], value: Vec<u8>) -> Result<()> {
        self.writable()?;
        self.latch_for_write()?;
        self.buffer(key, Some(value), false);
        Ok(())
    }

    /// Takes the write latch before the first buffered write, so no other transaction holds
    /// unflushed writes that a conflict check could miss.
    fn latch_for_write(&self) -> Result<()> {
        match self.pending.is_empty() {
            true => self.acquire_latch(),
            false => Ok(()),
        }
    }

    /// Buffers a checked write (the latch is held); `supersedes`: it covers another
    /// transaction's version.
    fn buffer(&mut self, key: &[u8], value: Option<Vec<u8>>, supersedes: bool) {
        // A tombstone is garbage itself once below the horizon: it is always recorded.
        if supersedes || value.is_none() {
            self.superseding.insert(key.to_vec());
        }
        self.pending.insert(key.to_vec(), value);
    }

    /// The newest stored version of `key`, whoever wrote it.
    fn newest_version(&self, key: &[u8]) -> Result<Option<Version>> {
        let range =
            (Bound::Included(version_key(key, 0)), Bound::Included(version_key(key, Version::MAX)));
        match self.shared.engine.last(range)? {
            Some((raw, _)) => Ok(Some(split_version_key(&raw)?.1)),
            None => Ok(None),
        }
    }

    fn write(&mut self, key: &[u8], value: Option<Vec<u8>>) -> Result<()> {
        self.writable()?;
        if self.pending.contains_key(key) {
            self.buffer(key, value, false);
            return Ok(());
        }
        self.latch_for_write()?;
        if let Some(supersedes) = self.take_checked(key) {
            // A read in this statement already saw that the newest version is ours to see.
            self.buffer(key, value, supersedes);
            return Ok(());
        }
        // Only the newest version can conflict: versions below the oldest in-flight
        // transaction are committed and visible to us.
        let newest = self.newest_version(key)?;
        if let Some(version) = newest.filter(|v| !self.state.is_visible(*v)) {
            // Nothing was buffered: don't keep other writers out.
            if self.pending.is_empty() {
                self.release_latch();
            }
            return Err(Error::Serialization(format!(
                "write conflict: key was written by concurrent transaction {version}; retry the transaction"
            )));
        }
        self.buffer(key, value, newest.is_some_and(|v| v != self.state.version));
        Ok(())
    }

    fn release_latch(&self) {
        let mut registry = self.shared.registry();
        if registry.latch == Some(self.state.version) {
            registry.latch = None;
        }
    }

    fn acquire_latch(&self) -> Result<()> {
        let mut registry = self.shared.registry();
        match registry.latch {
            Some(holder) if holder != self.state.version => {
                Err(Error::InvalidTransaction(format!(
                    "transaction {holder} has unflushed writes; write statements must run one at a time"
                )))
            }
            _ => {
                registry.latch = Some(self.state.version);
                Ok(())
            }
        }
    }

    /// Reads an unversioned value (outside MVCC: the last write wins, also across
    /// transactions). This transaction's unflushed unversioned writes are seen.
    pub fn get_unversioned(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        if let Some(value) = self.pending_unversioned.get(key) {
            return Ok(value.clone());
        }
        self.shared.engine.get(&unversioned_key(key))
    }

    /// Sets an unversioned value; it is written with this transaction's next flush or commit
    /// and discarded by a rollback before then.
    pub fn set_unversioned(&mut self, key: &[u8], value: Vec<u8>) -> Result<()> {
        self.writable()?;
        if self.pending.is_empty() && self.pending_unversioned.is_empty() {
            self.acquire_latch()?;
        }
        self.pending_unversioned.insert(key.to_vec(), Some(value));
        Ok(())
    }

    /// Deletes an unversioned value, as [`Transaction::set_unversioned`] sets one.
    pub fn delete_unversioned(&mut self, key: &[u8]) -> Result<()> {
        self.writable()?;
        if self.pending.is_empty() && self.pending_unversioned.is_empty() {
            self.acquire_latch()?;
        }
        self.pending_unversioned.insert(key.to_vec(), None);
        Ok(())
    }

    /// Takes the exclusive (schema) lock. Fails with a serialization error while other
    /// read-write transactions are in flight.
    pub fn lock_exclusive(&mut self) -> Result<()> {
        self.writable()?;
        if self.exclusive {
            return Ok(());
        }
        let mut registry = self.shared.registry();
        let others = registry.active.iter().filter(|v| **v != self.state.version).count();
        if others > 0 {
            return Err(Error::Serialization(format!(
                "schema changes need exclusive access, but {others} other transaction(s) are in flight; retry"
            )));
        }
        registry.exclusive = Some(self.state.version);
        self.exclusive = true;
        self.exclusive_dirty = true;
        Ok(())
    }

    /// Adds this transaction's buffered writes to `batch`, plus `TxnWrite` records when they
    /// must survive as in-flight writes.
    fn drain_pending(&mut self, batch: &mut WriteBatch, record_writes: bool) {
        // The statement ends here: what its reads checked no longer holds.
        self.write_checked.get_mut().1.clear();
        let version = self.state.version;
        for (key, value) in std::mem::take(&mut self.pending) {
            if record_writes {
                batch.set(txn_write_key(version, &key), vec![]);
            }
            batch.set(version_key(&key, version), encode_stored(value.as_deref()));
        }
        for key in std::mem::take(&mut self.superseding) {
            batch.set(superseded_key(version, &key), vec![]);
        }
        for (key, value) in std::mem::take(&mut self.pending_unversioned) {
            match value {
                Some(value) => batch.set(unversioned_key(&key), value),
                None => batch.delete(unversioned_key(&key)),
            }
        }
    }

    /// Writes the buffered writes and the transaction's in-flight markers to the engine in one
    /// batch (no fsync). Afterwards the transaction can be resumed, and a crash leaves it to be
    /// rolled back.
    pub fn flush(&mut self) -> Result<()> {
        if self.state.read_only || self.finished || self.view {
            return Ok(());
        }
        let shared = self.shared.clone();
        let mut registry = shared.registry();
        let mut batch = WriteBatch::new();
        if !self.persisted || self.exclusive_dirty {
            let flags = if self.exclusive { FLAG_EXCLUSIVE } else { 0 };
            batch.set(versioned_tag_key(tag::TXN_ACTIVE, self.state.version), vec![flags]);
        }
        if !self.persisted && !self.state.active.is_empty() {
            batch.set(
                versioned_tag_key(tag::TXN_SNAPSHOT, self.state.version),
                value::encode(&self.state.active),
            );
        }
        self.drain_pending(&mut batch, true);
        if batch.is_empty() {
            // A claim may hold the latch with nothing written.
            if registry.latch == Some(self.state.version) {
                registry.latch = None;
            }
            return Ok(());
        }
        shared.write_batch(&mut registry, batch, true)?;
        self.persisted = true;
        self.exclusive_dirty = false;
        if registry.latch == Some(self.state.version) {
            registry.latch = None;
        }
        Ok(())
    }

    /// Discards the writes not yet flushed: what a failed statement wrote since the last
    /// flush. Earlier (flushed) writes stay part of the transaction.
    pub fn discard_pending(&mut self) {
        self.pending.clear();
        self.superseding.clear();
        self.write_checked.get_mut().1.clear();
        self.pending_unversioned.clear();
        let mut registry = self.shared.registry();
        if registry.latch == Some(self.state.version) {
            registry.latch = None;
        }
    }

    /// Commits: makes the transaction's writes visible to transactions that begin afterwards.
    pub fn commit(mut self) -> Result<()> {
        if self.view {
            return Err(Error::InvalidTransaction("a read view cannot commit".into()));
        }
        if self.state.read_only {
            self.finish_reader();
            return Ok(());
        }
        let shared = self.shared.clone();
        let engine = shared.engine.as_ref();
        let mut registry = shared.registry();
        let mut batch = WriteBatch::new();
        let version = self.state.version;
        self.drain_pending(&mut batch, false);
        if self.persisted {
            for item in engine.scan_prefix(&versioned_tag_key(tag::TXN_WRITE, version)) {
                batch.delete(item?.0);
            }
            batch.delete(versioned_tag_key(tag::TXN_ACTIVE, version));
        }
        if !self.persisted && !batch.is_empty() && !self.state.active.is_empty() {
            batch.set(
                versioned_tag_key(tag::TXN_SNAPSHOT, version),
                value::encode(&self.state.active),
            );
        }
        if !batch.is_empty() {
            shared.write_batch(&mut registry, batch, true)?;
        }
        self.release(&mut registry);
        Ok(())
    }

    /// Rolls back: removes every write of the transaction.
    pub fn rollback(mut self) -> Result<()> {
        self.rollback_inner()
    }

    fn rollback_inner(&mut self) -> Result<()> {
        if self.finished || self.view {
            // A view owns nothing: the transaction it shows lives on elsewhere.
            return Ok(());
        }
        if self.state.read_only {
            self.finish_reader();
            return Ok(());
        }
        let shared = self.shared.clone();
        let engine = shared.engine.as_ref();
        let mut registry = shared.registry();
        let version = self.state.version;
        self.pending.clear();
        self.superseding.clear();
        self.pending_unversioned.clear();
        let mut batch = WriteBatch::new();
        if self.persisted {
            for item in engine.scan_prefix(&versioned_tag_key(tag::TXN_WRITE, version)) {
                let (raw, _) = item?;
                let (_, key) = split_versioned_tag_key(&raw)?;
                batch.delete(version_key(key, version));
                batch.delete(superseded_key(version, key));
                batch.delete(raw);
            }
            batch.delete(versioned_tag_key(tag::TXN_ACTIVE, version));
        } else if !self.state.active.is_empty() {
            // Keep as-of reads at this version exact even though it wrote nothing.
            batch.set(
                versioned_tag_key(tag::TXN_SNAPSHOT, version),
                value::encode(&self.state.active),
            );
        }
        if !batch.is_empty() {
            // A rollback only removes versions.
            shared.write_batch(&mut registry, batch, false)?;
        }
        self.release(&mut registry);
        Ok(())
    }

    /// Removes a finished read-write transaction from the registry.
    fn release(&mut self, registry: &mut Registry) {
        let version = self.state.version;
        registry.active.remove(&version);
        registry.floors.remove(&version);
        if registry.latch == Some(version) {
            registry.latch = None;
        }
        if registry.exclusive == Some(version) {
            registry.exclusive = None;
        }
        self.finished = true;
    }

    /// Removes a finished read-only transaction from the registry.
    fn finish_reader(&mut self) {
        if self.finished {
            return;
        }
        let mut registry = self.shared.registry();
        let floor = self.state.floor();
        if let Some(count) = registry.readers.get_mut(&floor) {
            *count -= 1;
            if *count == 0 {
                registry.readers.remove(&floor);
            }
        }
        self.finished = true;
    }
}

impl Drop for Transaction {
    fn drop(&mut self) {
        // An error here is an I/O failure; the transaction stays in flight and is rolled back
        // by `rollback_in_flight` after a restart.
        let _ = self.rollback_inner();
    }
}
