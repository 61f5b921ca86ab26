//! The applier thread owns the SQL state machine: it applies committed entries in order,
//! answers the client waiting for each, commits the store atomically once enough is applied,
//! switches to a store received from the leader, and hands out point-in-time views for
//! followers. The flusher thread makes the store durable in the background; once it has, the
//! driver may drop the log up to the index it covers.
//!
//! Invariants:
//! - The applier is guarded: a panic while applying halts the node with a message rather than
//!   leaving a node that commits but never applies.
//! - Applied entries wait in the store's memory until [`COMMIT_BYTES`] of writes gather (one
//!   atomic batch for many small entries: each batch costs the base a log write), or until a
//!   flush or a view needs them committed. A crash loses them from the store, not from the
//!   log, which replays them.
//! - An index is reported for compaction only after a flush that started after the commit of
//!   that index, so the log is never dropped beyond what the disk holds.

use super::driver::{Input, ProposeError, Waiters, lock};
use super::files::{DataDir, remove_dir};
use super::transport::Addresses;
use crate::raft::{Entry, Index, SnapshotMeta};
use crate::replica::Outcome;
use crate::replica::{ApplyError, StateMachine};
use crate::storage::{Engine, ReplicaStore, View};

use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender};
use tokio::sync::{oneshot, watch};

/// About how many bytes of applied writes wait in memory before the store commits them.
const COMMIT_BYTES: usize = 1 << 20;

/// Work for the applier.
pub enum Apply {
    /// Committed entries, in order.
    Entries(Vec<Entry>),
    /// Switch to the received state at this snapshot (staged; the log records it).
    Install(SnapshotMeta),
    /// A point-in-time view of the state, for streaming to a follower.
    View(oneshot::Sender<Result<(SnapshotMeta, View), String>>),
    /// Make the state durable, then let the log be compacted up to it.
    Flush,
}

/// The applier thread's state.
pub struct Applier {
    /// The state machine.
    pub machine: StateMachine,
    /// Work from the driver.
    pub work: Receiver<Apply>,
    /// Proposals waiting for their outcome.
    pub waiters: Waiters,
    /// Where the applied index is published.
    pub applied: watch::Sender<Index>,
    /// The driver's inbox (for halts).
    pub driver: Sender<Input>,
    /// The data directory (generations of the store).
    pub data: Arc<DataDir>,
    /// The generation of the store in use.
    pub generation: u64,
    /// The address book, updated from the log.
    pub addresses: Addresses,
    /// Where the session signing key is published once the log sets it.
    pub session_key: watch::Sender<Option<Arc<Vec<u8>>>>,
    /// The flusher's inbox.
    pub flusher: Sender<Flush>,
}

/// A request to sync a store: everything up to `index` is committed to it.
pub struct Flush {
    /// The store.
    pub store: Arc<ReplicaStore>,
    /// Its generation (the sync is recorded there).
    pub generation: u64,
    /// The applied index its commits cover.
    pub index: Index,
}

impl Applier {
    /// Runs until the driver goes away or applying fails (then the node halts).
    pub fn run(mut self) {
        self.publish();
        while let Ok(work) = self.work.recv() {
            let applied = self.machine.applied();
            if let Err(failure) = guarded(applied, || self.step(work)) {
                tracing::error!("{failure}");
                let _ = self.driver.send(Input::Halt(failure));
                return;
            }
        }
    }

    fn step(&mut self, work: Apply) -> Result<(), ApplyError> {
        match work {
            Apply::Entries(entries) => {
                let addresses = self.machine.address_changes();
                for entry in &entries {
                    if entry.index <= self.machine.applied() {
                        continue; // covered by a store this node switched to
                    }
                    let outcome = self.machine.apply(entry)?;
                    self.answer(entry, outcome);
                    if self.machine.store().uncommitted_bytes() >= COMMIT_BYTES {
                        self.machine.commit()?;
                    }
                }
                if self.machine.address_changes() != addresses {
                    self.merge_addresses();
                }
            }
            Apply::Install(meta) => self.install(&meta)?,
            Apply::View(reply) => {
                let _ = reply.send(self.machine.snapshot().map_err(|e| e.to_string()));
            }
            Apply::Flush => {
                self.machine.commit()?;
                let store = self.machine.store().clone();
                let flush =
                    Flush { store, generation: self.generation, index: self.machine.applied() };
                let _ = self.flusher.send(flush);
            }
        }
        self.publish();
        Ok(())
    }

    /// Answers the client waiting for `entry`, if any.
    fn answer(&self, entry: &Entry, outcome: Outcome) {
        if let Some(waiter) = lock(&self.waiters).remove(&entry.index) {
            let result = match waiter.term == entry.term {
                true => Ok((entry.index, outcome)),
                false => Err(ProposeError::Replaced),
            };
            let _ = waiter.reply.send(result);
        }
    }

    /// Switches to the staged store holding the state at `meta` and makes it the one in use.
    fn install(&mut self, meta: &SnapshotMeta) -> Result<(), ApplyError> {
        let fail = |message: String| ApplyError { index: meta.index, message };
        let generation =
            self.data.staged_generation(meta.index).map_err(|e| fail(e.to_string()))?.ok_or_else(
                || fail(format!("the received state at index {} is missing", meta.index)),
            )?;
        let store = self.data.open_store(generation).map_err(|e| fail(e.to_string()))?;
        let old = self.machine.store().clone();
        self.machine.switch(store)?;
        self.data.set_current_generation(generation).map_err(|e| fail(e.to_string()))?;
        // The old store's files go once the queries still reading it finish.
        let old_path = self.data.generation_path(self.generation);
        old.when_closed(move || remove_dir(&old_path));
        drop(old);
        self.generation = generation;
        // Entries the snapshot covers were applied (or not) elsewhere: unknown here.
        let covered: Vec<Index> =
            lock(&self.waiters).range(..=meta.index).map(|(i, _)| *i).collect();
        for index in covered {
            if let Some(waiter) = lock(&self.waiters).remove(&index) {
                let _ = waiter.reply.send(Err(ProposeError::Unknown));
            }
        }
        tracing::info!(
            index = meta.index,
            generation,
            "switched to the state received from the leader"
        );
        self.merge_addresses();
        Ok(())
    }

    /// Publishes the applied index and the session key.
    fn publish(&self) {
        self.applied.send_replace(self.machine.applied());
        if self.session_key.borrow().is_none()
            && let Some(key) = self.machine.session_key()
        {
            self.session_key.send_replace(Some(Arc::new(key.clone())));
        }
    }

    /// Adds the addresses recorded in the log to the address book (they win over flags).
    fn merge_addresses(&self) {
        let mut book = self.addresses.write().unwrap_or_else(|p| p.into_inner());
        for (id, address) in self.machine.addresses() {
            book.insert(*id, address.clone());
        }
    }
}

/// Runs a step of the applier, turning a failure or a panic into the message the node halts
/// with (a panic must not leave a node that commits but never applies).
fn guarded(applied: Index, step: impl FnOnce() -> Result<(), ApplyError>) -> Result<(), String> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(step)) {
        Ok(Ok(())) => Ok(()),
        Ok(Err(error)) => Err(error.to_string()),
        Err(panic) => Err(format!(
            "the state machine panicked after index {applied}: {}",
            panic_message(&panic)
        )),
    }
}

/// The text of a panic's payload.
fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    match (panic.downcast_ref::<&str>(), panic.downcast_ref::<String>()) {
        (Some(text), _) => text.to_string(),
        (_, Some(text)) => text.clone(),
        _ => "(no message)".into(),
    }
}

/// The flusher thread: makes a store durable (an fsync of everything committed so far),
/// records the index it covers (`SYNCED`, checked at the next start), then tells the driver
/// the log may be compacted up to there. Requests that queue up while a flush runs are served
/// by one flush.
pub fn run_flusher(work: Receiver<Flush>, data: Arc<DataDir>, driver: Sender<Input>) {
    while let Ok(mut request) = work.recv() {
        while let Ok(later) = work.try_recv() {
            request = later;
        }
        let Flush { store, generation, index } = request;
        let synced = store
            .flush()
            .map_err(|e| format!("cannot sync the SQL store: {e}"))
            .and_then(|()| data.mark_synced(generation, index).map_err(|e| e.to_string()));
        let next = match synced {
            Ok(()) => Input::Compact { index },
            Err(error) => Input::Halt(error),
        };
        let halted = matches!(next, Input::Halt(_));
        if driver.send(next).is_err() || halted {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_or_a_failure_while_applying_becomes_a_halt_message() {
        assert_eq!(guarded(3, || Ok(())), Ok(()));
        let failed = guarded(3, || Err(ApplyError { index: 4, message: "disk full".into() }));
        assert_eq!(failed, Err("state machine failed at index 4: disk full".to_string()));
        let panicked = guarded(7, || panic!("index out of bounds"));
        assert_eq!(
            panicked,
            Err("the state machine panicked after index 7: index out of bounds".to_string())
        );
    }
}
