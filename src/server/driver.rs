//! The two threads that run a replica: the Raft driver and the applier.
//!
//! The **driver** owns the Raft core and the log store. It loops: take every queued input
//! (peer messages, proposals, read requests, ...), tick the core on schedule, then handle one
//! `Ready`: send its messages, write and fsync the log once for everything it holds (group
//! commit: proposals that arrived during the previous fsync share this one), send the messages
//! that promise durability, and hand committed entries to the applier.
//!
//! The **applier** owns the SQL state machine. It applies committed entries in order, answers
//! the client waiting for each (if the entry is still the one it proposed), publishes the
//! applied index, and takes snapshots when the driver asks.
//!
//! Neither thread ever blocks on the network: messages go to the transport's lanes.

use super::command::Outcome;
use super::files::DataDir;
use super::state::{ApplyError, StateMachine};
use super::transport::{Addresses, Transport};
use crate::raft::{
    self, ConfChange, Entry, Envelope, Event, FileDisk, Index, LogStore, NodeId, Term,
};
use std::collections::BTreeMap;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::{broadcast, oneshot, watch};

/// Why a proposal has no outcome.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProposeError {
    /// The core refused it (not the leader, a transfer in progress, ...): it was not proposed.
    #[error(transparent)]
    Raft(#[from] raft::Error),
    /// A new leader replaced the entry before it committed: it was not applied.
    #[error("leadership changed before the write committed; it was not applied")]
    Replaced,
    /// A snapshot from the leader covered the entry, so whether it was applied is unknown.
    #[error("leadership changed while the write was in flight; its outcome is unknown")]
    Unknown,
    /// The node stopped.
    #[error("node halted: {0}")]
    Halted(String),
}

/// Where a proposal's outcome is sent.
pub type Reply = oneshot::Sender<Result<(Index, Outcome), ProposeError>>;

/// An input to the driver.
pub enum Input {
    /// A message from a peer.
    Step(Envelope),
    /// A command to propose (on the leader).
    Propose {
        /// The encoded command.
        command: Vec<u8>,
        /// Where the outcome goes.
        reply: Reply,
    },
    /// A membership change to propose (on the leader).
    ConfChange {
        /// The change.
        change: ConfChange,
        /// Where the outcome goes.
        reply: Reply,
    },
    /// A linearizable read: answered with the index to wait for.
    ReadIndex {
        /// Where the index goes.
        reply: oneshot::Sender<Result<Index, raft::Error>>,
    },
    /// Hand leadership to another voter.
    Transfer {
        /// The voter.
        to: NodeId,
        /// Whether the transfer started.
        reply: oneshot::Sender<Result<(), raft::Error>>,
    },
    /// The applier snapshotted the state at `index` (the file is durable).
    Compact {
        /// The snapshot's index.
        index: Index,
        /// Its data.
        data: Arc<Vec<u8>>,
    },
    /// The newest `count` log entries.
    LogTail {
        /// How many.
        count: usize,
        /// Where they go.
        reply: oneshot::Sender<Vec<Entry>>,
    },
    /// The applier failed: stop.
    Halt(String),
    /// Stop.
    Shutdown,
}

/// A proposal waiting for its entry to be applied.
pub struct Waiter {
    term: Term,
    reply: Reply,
}

/// Proposals waiting to be applied, by log index. The driver adds them before handing the
/// entry on, so the applier always finds the waiter of an entry it applies.
pub type Waiters = Arc<Mutex<BTreeMap<Index, Waiter>>>;

fn lock(waiters: &Waiters) -> std::sync::MutexGuard<'_, BTreeMap<Index, Waiter>> {
    waiters.lock().unwrap_or_else(|p| p.into_inner())
}

/// What the driver publishes after every round.
#[derive(Clone, Debug)]
pub struct DriverState {
    /// The core's status.
    pub raft: raft::Status,
    /// The latest snapshot's index.
    pub snapshot_index: Index,
    /// Why the node stopped, if it did.
    pub halted: Option<String>,
}

/// Something that happened on a node, for consoles.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeEvent {
    /// When.
    pub at: SystemTime,
    /// A short kind: `election`, `leader`, `snapshot`, `compaction`, `membership`, `halt`.
    pub kind: &'static str,
    /// What happened.
    pub message: String,
    /// The term.
    pub term: Term,
    /// The log index involved, if any.
    pub index: Index,
}

/// Work for the applier.
pub enum Apply {
    /// Committed entries, in order.
    Entries(Vec<Entry>),
    /// A snapshot from the leader to restore.
    Restore(raft::Snapshot),
    /// Take a snapshot at the applied index.
    Snapshot,
}

/// The driver thread's state.
pub struct Driver {
    /// The Raft core.
    pub node: raft::Node,
    /// The durable log.
    pub store: LogStore<FileDisk>,
    /// The data directory (snapshot files).
    pub data: Arc<DataDir>,
    /// Inputs.
    pub inbox: Receiver<Input>,
    /// Outgoing messages.
    pub transport: Arc<Transport>,
    /// Work for the applier.
    pub apply: Sender<Apply>,
    /// Proposals waiting for their outcome.
    pub waiters: Waiters,
    /// Where the state is published.
    pub state: watch::Sender<DriverState>,
    /// Where events are published.
    pub events: broadcast::Sender<NodeEvent>,
    /// The tick length.
    pub tick: Duration,
    /// Entries applied since the last snapshot that trigger a new one.
    pub snapshot_entries: u64,
    /// The term and vote as last synced.
    pub synced_term_vote: (Term, Option<NodeId>),
}

impl Driver {
    /// Runs until shut down or halted.
    pub fn run(mut self) {
        let mut reads: BTreeMap<u64, oneshot::Sender<Result<Index, raft::Error>>> = BTreeMap::new();
        let mut next_read = 0u64;
        let mut snapshot_requested = false;
        let mut next_tick = Instant::now() + self.tick;
        loop {
            // Work left by the last round (advance() may commit) must not wait for an input.
            let wait = match self.node.has_ready() {
                true => Duration::ZERO,
                false => next_tick.saturating_duration_since(Instant::now()),
            };
            let first = match self.inbox.recv_timeout(wait) {
                Ok(input) => Some(input),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => return,
            };
            // Everything queued meanwhile goes into this round (and its one fsync).
            for input in first.into_iter().chain(std::iter::from_fn(|| self.inbox.try_recv().ok()))
            {
                match input {
                    Input::Step(envelope) => {
                        if let Err(error) = self.node.step(envelope) {
                            tracing::debug!("ignored message: {error}");
                        }
                    }
                    Input::Propose { command, reply } => {
                        let proposed = self.node.propose(command);
                        self.register(proposed, reply);
                    }
                    Input::ConfChange { change, reply } => {
                        let proposed = self.node.propose_conf_change(change);
                        self.register(proposed, reply);
                    }
                    Input::ReadIndex { reply } => {
                        next_read += 1;
                        match self.node.read_index(next_read) {
                            Ok(()) => {
                                reads.insert(next_read, reply);
                            }
                            Err(error) => {
                                let _ = reply.send(Err(error));
                            }
                        }
                    }
                    Input::Transfer { to, reply } => {
                        let _ = reply.send(self.node.transfer_leadership(to));
                    }
                    Input::Compact { index, data } => {
                        snapshot_requested = false;
                        if let Err(error) = self.node.compact(index, data) {
                            tracing::warn!("compaction to {index} refused: {error}");
                        }
                    }
                    Input::LogTail { count, reply } => {
                        let log = self.node.log();
                        let from = log.last_index().saturating_sub(count as Index - 1);
                        let from = from.max(log.first_index());
                        let entries = log.slice(from, log.last_index(), count).to_vec();
                        let _ = reply.send(entries);
                    }
                    Input::Halt(reason) => return self.halt(reason),
                    Input::Shutdown => return,
                }
            }
            if Instant::now() >= next_tick {
                // Reads whose client gave up (their answer was lost) are forgotten.
                reads.retain(|_, reply| !reply.is_closed());
                self.node.tick();
                next_tick += self.tick;
                if next_tick < Instant::now() {
                    next_tick = Instant::now() + self.tick;
                }
            }
            if self.node.has_ready() {
                let ready = self.node.ready();
                if let Err(error) = self.handle(ready, &mut reads) {
                    return self.halt(error);
                }
                self.node.advance();
            }
            let status = self.node.status();
            let snapshot_index = self.node.log().snapshot().index;
            if !snapshot_requested && status.applied_index >= snapshot_index + self.snapshot_entries
            {
                snapshot_requested = self.apply.send(Apply::Snapshot).is_ok();
            }
            self.state.send_replace(DriverState { raft: status, snapshot_index, halted: None });
        }
    }

    /// Records a proposal's waiter, or answers its refusal.
    fn register(&self, proposed: raft::Result<(Index, Term)>, reply: Reply) {
        match proposed {
            Ok((index, term)) => {
                lock(&self.waiters).insert(index, Waiter { term, reply });
            }
            Err(error) => {
                let _ = reply.send(Err(error.into()));
            }
        }
    }

    /// Handles one `Ready` (see the module docs for the order).
    fn handle(
        &mut self,
        ready: raft::Ready,
        reads: &mut BTreeMap<u64, oneshot::Sender<Result<Index, raft::Error>>>,
    ) -> Result<(), String> {
        for envelope in &ready.messages {
            self.transport.send(envelope);
        }
        if let Some(snapshot) = &ready.snapshot {
            // The snapshot must be durable before the log refers to it.
            self.data
                .save_snapshot(snapshot.meta.index, &snapshot.data)
                .map_err(|e| format!("cannot save snapshot: {e}"))?;
        }
        // Entries, term and vote must be durable before anything that promises them goes out.
        // A commit index alone need not be: after a crash it is learned again from the
        // leader, and the state machine is rebuilt anyway. So a round that only moves the
        // commit index writes it without an fsync; the next fsync covers it.
        let promises = !ready.entries.is_empty()
            || ready.snapshot.is_some()
            || ready.compact.is_some()
            || ready.hard_state.is_some_and(|h| (h.term, h.vote) != self.synced_term_vote);
        let written = match promises {
            true => self.store.persist(&ready),
            false => self.store.write(&ready),
        };
        written.map_err(|e| format!("cannot write the Raft log: {e}"))?;
        if let Some(hard_state) = ready.hard_state
            && promises
        {
            self.synced_term_vote = (hard_state.term, hard_state.vote);
        }
        for envelope in &ready.persisted_messages {
            self.transport.send(envelope);
        }
        let checkpoint = ready
            .snapshot
            .as_ref()
            .map(|s| s.meta.index)
            .into_iter()
            .chain(ready.compact.as_ref().map(|m| m.index))
            .max();
        if let Some(index) = checkpoint
            && let Err(error) = self.data.prune_snapshots(index)
        {
            tracing::warn!("cannot remove old snapshots: {error}");
        }
        if let Some(snapshot) = ready.snapshot {
            let _ = self.apply.send(Apply::Restore(snapshot));
        }
        if !ready.committed.is_empty() {
            let _ = self.apply.send(Apply::Entries(ready.committed));
        }
        for read in ready.read_states {
            if let Some(reply) = reads.remove(&read.request) {
                let _ = reply.send(Ok(read.index));
            }
        }
        for request in ready.read_failures {
            if let Some(reply) = reads.remove(&request) {
                let _ = reply.send(Err(raft::Error::NotLeader { leader: self.node.leader() }));
            }
        }
        for event in ready.events {
            self.publish(event);
        }
        Ok(())
    }

    fn publish(&self, event: Event) {
        let term = self.node.term();
        let (kind, message, index) = match event {
            Event::ElectionStarted { term } => ("election", format!("election for term {term}"), 0),
            Event::BecameLeader { term } => ("leader", format!("became leader in term {term}"), 0),
            Event::LeaderChanged { term, leader } => {
                let leader = leader.map_or("none".to_string(), |l| format!("node {l}"));
                ("leader", format!("leader in term {term}: {leader}"), 0)
            }
            Event::SnapshotInstalled { index } => {
                ("snapshot", format!("installed a snapshot at index {index}"), index)
            }
            Event::Compacted { index } => {
                ("compaction", format!("compacted the log up to index {index}"), index)
            }
            Event::ConfigChanged { index } => {
                let config = self.node.status().config;
                let message = format!(
                    "configuration: voters {:?}, learners {:?}",
                    config.voters, config.learners
                );
                ("membership", message, index)
            }
        };
        tracing::info!(kind, "{message}");
        let _ = self.events.send(NodeEvent { at: SystemTime::now(), kind, message, term, index });
    }

    /// Stops after a failure that could let this replica diverge: waiting clients are told,
    /// and the node serves nothing more.
    fn halt(self, reason: String) {
        tracing::error!("node halted: {reason}");
        for (_, waiter) in std::mem::take(&mut *lock(&self.waiters)) {
            let _ = waiter.reply.send(Err(ProposeError::Halted(reason.clone())));
        }
        let event = NodeEvent {
            at: SystemTime::now(),
            kind: "halt",
            message: reason.clone(),
            term: self.node.term(),
            index: 0,
        };
        let _ = self.events.send(event);
        let snapshot_index = self.node.log().snapshot().index;
        self.state.send_replace(DriverState {
            raft: self.node.status(),
            snapshot_index,
            halted: Some(reason),
        });
    }
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
    /// The driver's inbox (for compactions and halts).
    pub driver: Sender<Input>,
    /// The data directory (snapshot files).
    pub data: Arc<DataDir>,
    /// The address book, updated from the log.
    pub addresses: Addresses,
    /// Where the session signing key is published once the log sets it.
    pub session_key: watch::Sender<Option<Arc<Vec<u8>>>>,
}

impl Applier {
    /// Runs until the driver goes away or applying fails.
    pub fn run(mut self) {
        while let Ok(work) = self.work.recv() {
            if let Err(error) = self.step(work) {
                let _ = self.driver.send(Input::Halt(error.to_string()));
                return;
            }
        }
    }

    fn step(&mut self, work: Apply) -> Result<(), ApplyError> {
        match work {
            Apply::Entries(entries) => {
                let addresses = self.machine.address_changes();
                for entry in &entries {
                    let outcome = self.machine.apply(entry)?;
                    if let Some(waiter) = lock(&self.waiters).remove(&entry.index) {
                        let result = match waiter.term == entry.term {
                            true => Ok((entry.index, outcome)),
                            false => Err(ProposeError::Replaced),
                        };
                        let _ = waiter.reply.send(result);
                    }
                }
                if self.machine.address_changes() != addresses {
                    self.merge_addresses();
                }
            }
            Apply::Restore(snapshot) => {
                self.machine.restore(&snapshot.data)?;
                // Entries the snapshot covers were applied (or not) elsewhere: unknown here.
                let covered: Vec<Index> =
                    lock(&self.waiters).range(..=snapshot.meta.index).map(|(i, _)| *i).collect();
                for index in covered {
                    if let Some(waiter) = lock(&self.waiters).remove(&index) {
                        let _ = waiter.reply.send(Err(ProposeError::Unknown));
                    }
                }
                self.merge_addresses();
            }
            Apply::Snapshot => {
                let data = self.machine.snapshot()?;
                let index = self.machine.applied();
                self.data.save_snapshot(index, &data).map_err(|e| ApplyError {
                    index,
                    message: format!("cannot save snapshot: {e}"),
                })?;
                let _ = self.driver.send(Input::Compact { index, data: Arc::new(data) });
            }
        }
        self.applied.send_replace(self.machine.applied());
        if self.session_key.borrow().is_none()
            && let Some(key) = self.machine.session_key()
        {
            self.session_key.send_replace(Some(Arc::new(key.clone())));
        }
        Ok(())
    }

    /// Adds the addresses recorded in the log to the address book (they win over flags).
    fn merge_addresses(&self) {
        let mut book = self.addresses.write().unwrap_or_else(|p| p.into_inner());
        for (id, address) in self.machine.addresses() {
            book.insert(*id, address.clone());
        }
    }
}
