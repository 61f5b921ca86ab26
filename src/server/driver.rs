//! The driver thread: the Raft core and its log, run by the shared Ready loop
//! ([`raft::Driver`], the same code the simulator runs) with this node's I/O as the host.
//!
//! It loops: take every queued input (peer messages, proposals, read requests, snapshot
//! transfers that ended, ...), tick the core on schedule, then run one round: send, write and
//! fsync the log once for everything it holds (group commit: proposals that arrived during the
//! previous fsync share this one), send the messages that promise durability, and hand
//! committed entries to the applier. It asks the applier to flush (and then compacts the log)
//! when the log grows past a number of entries or bytes.
//!
//! The driver never blocks on the network: messages go to the transport's lanes, and snapshot
//! streams run as tasks.

use super::applier::Apply;
use super::files::DataDir;
use super::snapshot;
use super::transport::Transport;
use crate::raft::{
    self, ConfChange, Entry, Envelope, Event, Host, Index, NodeId, SnapshotMeta, Term,
};
use crate::replica::Outcome;
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
    /// The state machine is durable up to `index`: the log up to it may go.
    Compact {
        /// The index.
        index: Index,
    },
    /// The leader `from` (in `term`) streamed its state here; it is staged in `generation`.
    SnapshotReceived {
        /// The sender.
        from: NodeId,
        /// Its term.
        term: Term,
        /// What the state covers.
        meta: SnapshotMeta,
        /// Where it is staged.
        generation: u64,
    },
    /// A snapshot stream to `to` ended: sent whole up to an index, or failed.
    SnapshotSent {
        /// The follower.
        to: NodeId,
        /// The index sent, or `None`.
        sent: Option<Index>,
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
    /// The term the entry was proposed in: applied with another term, it was replaced.
    pub term: Term,
    /// Where the outcome goes.
    pub reply: Reply,
}

/// Proposals waiting to be applied, by log index. The driver adds them before handing the
/// entry on, so the applier always finds the waiter of an entry it applies.
pub type Waiters = Arc<Mutex<BTreeMap<Index, Waiter>>>;

/// The waiters, locked.
pub fn lock(waiters: &Waiters) -> std::sync::MutexGuard<'_, BTreeMap<Index, Waiter>> {
    waiters.lock().unwrap_or_else(|p| p.into_inner())
}

/// What the driver publishes after every round.
#[derive(Clone, Debug)]
pub struct DriverState {
    /// The core's status.
    pub raft: raft::Status,
    /// The index the log starts after (what the state machine had made durable when the log
    /// was last compacted, or a received snapshot's).
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

/// When the driver compacts the log (after the state machine is flushed).
#[derive(Clone, Copy, Debug)]
pub struct Compaction {
    /// Entries applied past the log's start.
    pub entries: u64,
    /// Bytes of entries held.
    pub bytes: usize,
}

/// The driver's host: this node's network, state machine and clients.
pub struct NodeHost {
    /// Outgoing messages.
    pub transport: Arc<Transport>,
    /// Work for the applier.
    pub apply: Sender<Apply>,
    /// The node's metrics (snapshots sent).
    pub metrics: Arc<super::metrics::Metrics>,
    /// The driver's own inbox (snapshot streams report there).
    pub inbox: Sender<Input>,
    /// Linearizable reads waiting for their index.
    pub reads: BTreeMap<u64, oneshot::Sender<Result<Index, raft::Error>>>,
    /// Events of the round, published once it is done.
    pub events: Vec<Event>,
    /// This node's id and term (for snapshot streams).
    pub id: NodeId,
    /// The term when the round started.
    pub term: Term,
    /// Read failures of the round (answered once the leader is known).
    pub failed_reads: Vec<u64>,
    /// Batches handed to the applier and not yet applied: their last index and bytes.
    pub handed: std::collections::VecDeque<(Index, usize)>,
}

/// About how many bytes of committed entries may wait for the applier: past this the core
/// holds further entries back in the log (a follower whose applier is slower than the
/// leader's commits does not queue without bound).
pub const MAX_APPLY_BACKLOG: usize = 32 << 20;

impl Host for NodeHost {
    fn send(&mut self, envelope: Envelope) {
        self.transport.send(&envelope);
    }

    fn send_snapshot(&mut self, to: NodeId) {
        // The applier takes a view between two entries; a task streams it.
        let (reply, view) = oneshot::channel();
        if self.apply.send(Apply::View(reply)).is_err() {
            return;
        }
        let (transport, inbox, id, term) =
            (self.transport.clone(), self.inbox.clone(), self.id, self.term);
        let metrics = self.metrics.clone();
        let runtime = transport.runtime().clone();
        runtime.spawn(async move {
            let started = Instant::now();
            let sent = match view.await {
                Ok(Ok((meta, view))) => {
                    match snapshot::send(&transport, id, to, term, meta, view).await {
                        Ok((index, bytes)) => {
                            snapshot::record(&metrics, "sent", bytes, started.elapsed());
                            Some(index)
                        }
                        Err(error) => {
                            tracing::warn!(to, "snapshot transfer failed: {error}");
                            None
                        }
                    }
                }
                Ok(Err(error)) => {
                    tracing::warn!(to, "cannot take a snapshot view: {error}");
                    None
                }
                Err(_) => None,
            };
            let _ = inbox.send(Input::SnapshotSent { to, sent });
        });
    }

    fn install_snapshot(&mut self, meta: &SnapshotMeta) -> Result<(), String> {
        self.apply.send(Apply::Install(meta.clone())).map_err(|_| "the applier stopped".to_string())
    }

    fn apply(&mut self, entries: Vec<Entry>) {
        if let Some(last) = entries.last() {
            let bytes = entries.iter().map(Entry::size).sum();
            self.handed.push_back((last.index, bytes));
        }
        let _ = self.apply.send(Apply::Entries(entries));
    }

    fn read_ready(&mut self, request: u64, index: Index) {
        if let Some(reply) = self.reads.remove(&request) {
            let _ = reply.send(Ok(index));
        }
    }

    fn read_failed(&mut self, request: u64) {
        self.failed_reads.push(request);
    }

    fn event(&mut self, event: Event) {
        self.events.push(event);
    }
}

/// The driver thread's state.
pub struct DriverThread {
    /// The core and its log, run by the shared Ready loop.
    pub driver: raft::Driver<super::metrics::MeteredDisk>,
    /// The host: network, applier, clients.
    pub host: NodeHost,
    /// The data directory (staged snapshots).
    pub data: Arc<DataDir>,
    /// Inputs.
    pub inbox: Receiver<Input>,
    /// Proposals waiting for their outcome.
    pub waiters: Waiters,
    /// Where the state is published.
    pub state: watch::Sender<DriverState>,
    /// Where events are published.
    pub events: broadcast::Sender<NodeEvent>,
    /// The tick length.
    pub tick: Duration,
    /// When to compact the log.
    pub compaction: Compaction,
    /// How long a follower may fall behind without progress before it is reported stalled.
    pub stalled_after: raft::Ticks,
    /// What the state machine has applied.
    pub applied: watch::Receiver<Index>,
    /// The node's metrics (elections, leader changes, proposals).
    pub metrics: Arc<super::metrics::Metrics>,
}

impl DriverThread {
    /// Runs until shut down or halted.
    pub fn run(mut self) {
        let mut next_read = 0u64;
        let mut flush_requested = false;
        let mut reported_stalled: BTreeMap<NodeId, bool> = BTreeMap::new();
        let mut next_tick = Instant::now() + self.tick;
        loop {
            // Work left by the last round (advance() may commit) must not wait for an input.
            let wait = match self.driver.node.has_ready() {
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
                let node = &mut self.driver.node;
                match input {
                    Input::Step(envelope) => {
                        if let Err(error) = node.step(envelope) {
                            tracing::debug!("ignored message: {error}");
                        }
                    }
                    Input::Propose { command, reply } => {
                        let proposed = node.propose(command);
                        self.register(proposed, reply);
                    }
                    Input::ConfChange { change, reply } => {
                        let proposed = node.propose_conf_change(change);
                        self.register(proposed, reply);
                    }
                    Input::ReadIndex { reply } => {
                        next_read += 1;
                        match node.read_index(next_read) {
                            Ok(()) => {
                                self.host.reads.insert(next_read, reply);
                            }
                            Err(error) => {
                                let _ = reply.send(Err(error));
                            }
                        }
                    }
                    Input::Transfer { to, reply } => {
                        let _ = reply.send(node.transfer_leadership(to));
                    }
                    Input::Compact { index } => {
                        flush_requested = false;
                        if let Err(error) = node.compact(index) {
                            tracing::debug!("compaction to {index} skipped: {error}");
                        }
                    }
                    Input::SnapshotReceived { from, term, meta, generation } => {
                        match node.install_snapshot(from, term, meta) {
                            Ok(true) => {}
                            Ok(false) | Err(_) => self.data.remove_generation(generation),
                        }
                    }
                    Input::SnapshotSent { to, sent } => node.report_snapshot(to, sent),
                    Input::LogTail { count, reply } => {
                        let log = node.log();
                        let from = log.last_index().saturating_sub(count as Index - 1);
                        let from = from.max(log.first_index());
                        let _ = reply.send(log.slice(from, log.last_index(), count).to_vec());
                    }
                    Input::Halt(reason) => return self.halt(reason),
                    Input::Shutdown => return,
                }
            }
            if Instant::now() >= next_tick {
                // Reads whose client gave up (their answer was lost) are forgotten.
                self.host.reads.retain(|_, reply| !reply.is_closed());
                self.driver.node.tick();
                next_tick += self.tick;
                if next_tick < Instant::now() {
                    next_tick = Instant::now() + self.tick;
                }
            }
            self.host.term = self.driver.node.term();
            self.bound_apply_backlog();
            if let Err(error) = self.driver.round(&mut self.host) {
                return self.halt(error);
            }
            self.after_round();
            let status = self.driver.node.status();
            let log = self.driver.node.log();
            let snapshot_index = log.snapshot().index;
            let due = status.applied_index >= snapshot_index + self.compaction.entries
                || log.bytes() >= self.compaction.bytes;
            if !flush_requested && due && status.applied_index > snapshot_index {
                flush_requested = self.host.apply.send(Apply::Flush).is_ok();
            }
            self.report_stalled(&status, &mut reported_stalled);
            self.state.send_replace(DriverState { raft: status, snapshot_index, halted: None });
        }
    }

    /// Lets the core hand out committed entries while less than [`MAX_APPLY_BACKLOG`] bytes
    /// wait for the applier, and holds them back otherwise (checked again every tick).
    fn bound_apply_backlog(&mut self) {
        let applied = *self.applied.borrow();
        while self.host.handed.front().is_some_and(|(last, _)| *last <= applied) {
            self.host.handed.pop_front();
        }
        let waiting: usize = self.host.handed.iter().map(|(_, bytes)| bytes).sum();
        let node = &mut self.driver.node;
        match waiting < MAX_APPLY_BACKLOG {
            true => node.limit_apply(Index::MAX),
            false => node.limit_apply(node.log().applied()),
        }
    }

    /// Records a proposal's waiter, or answers its refusal.
    fn register(&self, proposed: raft::Result<(Index, Term)>, reply: Reply) {
        match proposed {
            Ok((index, term)) => {
                self.metrics.proposals.inc();
                lock(&self.waiters).insert(index, Waiter { term, reply });
            }
            Err(error) => {
                let _ = reply.send(Err(error.into()));
            }
        }
    }

    /// Answers the round's failed reads and publishes its events.
    fn after_round(&mut self) {
        let leader = self.driver.node.leader();
        for request in std::mem::take(&mut self.host.failed_reads) {
            if let Some(reply) = self.host.reads.remove(&request) {
                let _ = reply.send(Err(raft::Error::NotLeader { leader }));
            }
        }
        for event in std::mem::take(&mut self.host.events) {
            self.publish(event);
        }
    }

    /// Logs (once per episode) a follower that answers but has not caught up for a while.
    fn report_stalled(&self, status: &raft::Status, reported: &mut BTreeMap<NodeId, bool>) {
        for (id, peer) in &status.peers {
            let stalled = peer.stalled >= self.stalled_after;
            let was = reported.insert(*id, stalled).unwrap_or(false);
            if stalled && !was {
                let message = format!(
                    "node {id} has made no replication progress for {:?} (at index {} of {}{})",
                    self.tick * peer.stalled,
                    peer.match_index,
                    status.last_index,
                    if peer.receiving_snapshot { ", receiving a snapshot" } else { "" }
                );
                tracing::warn!("{message}");
                self.notify("replication", message, peer.match_index);
            } else if !stalled && was {
                let message = format!("node {id} is replicating again");
                tracing::info!("{message}");
                self.notify("replication", message, peer.match_index);
            }
        }
    }

    /// Publishes an event of the driver's own (not the core's).
    fn notify(&self, kind: &'static str, message: String, index: Index) {
        let term = self.driver.node.term();
        let _ = self.events.send(NodeEvent { at: SystemTime::now(), kind, message, term, index });
    }

    fn publish(&self, event: Event) {
        let term = self.driver.node.term();
        match event {
            Event::ElectionStarted { .. } => self.metrics.elections.inc(),
            Event::LeaderChanged { leader: Some(_), .. } => self.metrics.leader_changes.inc(),
            _ => {}
        }
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
                let config = self.driver.node.status().config;
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
            term: self.driver.node.term(),
            index: 0,
        };
        let _ = self.events.send(event);
        let snapshot_index = self.driver.node.log().snapshot().index;
        self.state.send_replace(DriverState {
            raft: self.driver.node.status(),
            snapshot_index,
            halted: Some(reason),
        });
    }
}
