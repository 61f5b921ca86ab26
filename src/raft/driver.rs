//! The Ready loop: the one piece of code that turns the core's outputs into I/O, run by
//! `chronosd`'s driver thread and by the simulator alike. Only the [`Host`] (network, state
//! machine, clients) and the [`Disk`] under the log differ between them.
//!
//! A round has two halves so a host can let time pass during the fsync:
//! 1. [`Driver::start`] takes the core's `Ready`, sends the messages that need no durability,
//!    asks the host to stream snapshots to followers that need them, and writes the log (a
//!    checkpoint, entries, hard state) without syncing.
//! 2. [`Driver::finish`] syncs when the round promised durable state (entries, a vote, a
//!    checkpoint: a round that only moves the commit index writes it without an fsync, since
//!    the commit index is learned again after a crash), then switches the state machine to a
//!    received snapshot, sends the messages that promised durability, hands committed entries
//!    over, releases reads, reports events, and advances the core.
//!
//! Invariant: nothing that promises durable state leaves before the sync that makes it
//! durable, and the state machine switches to a received snapshot only once the log records it.

use super::{
    Disk, Entry, Envelope, Event, Index, LogStore, Node, NodeId, Ready, SnapshotMeta, Term,
};

/// What the loop needs from its surroundings.
pub trait Host {
    /// Sends a message to a peer (it may be lost; Raft retransmits).
    fn send(&mut self, envelope: Envelope);
    /// Starts streaming the state machine's state to `to`; report the end of the transfer
    /// with [`Node::report_snapshot`].
    fn send_snapshot(&mut self, to: NodeId);
    /// Switches the state machine to the received state that `meta` describes (staged when it
    /// arrived). The log records `meta` durably before this is called.
    fn install_snapshot(&mut self, meta: &SnapshotMeta) -> Result<(), String>;
    /// Committed entries to apply, in order.
    fn apply(&mut self, entries: Vec<Entry>);
    /// Read `request` may be served once the state machine has applied `index`.
    fn read_ready(&mut self, request: u64, index: Index);
    /// Read `request` failed (no leader, or leadership was lost): the client retries.
    fn read_failed(&mut self, request: u64);
    /// Something notable happened.
    fn event(&mut self, event: Event);
}

/// A round between its writes and its sync.
#[derive(Debug)]
pub struct Round {
    ready: Ready,
    /// The round promised durable state, so it needs an fsync.
    sync: bool,
}

impl Round {
    /// Whether finishing the round needs an fsync.
    pub fn needs_sync(&self) -> bool {
        self.sync
    }

    /// The entries this round appends (for checkers).
    pub fn entries(&self) -> &[Entry] {
        &self.ready.entries
    }
}

/// The core and its durable log, driven round by round.
pub struct Driver<D: Disk> {
    /// The Raft core.
    pub node: Node,
    /// The durable log.
    pub store: LogStore<D>,
    /// The term and vote as last synced.
    synced_term_vote: (Term, Option<NodeId>),
}

impl<D: Disk> Driver<D> {
    /// A driver for a core started from `store`'s recovered state, whose term and vote are
    /// durable.
    pub fn new(node: Node, store: LogStore<D>) -> Self {
        let synced_term_vote = (node.term(), node.status().vote);
        Self { node, store, synced_term_vote }
    }

    /// Starts a round if the core has work: sends, asks for snapshot streams, writes the log
    /// (see the module docs). An error is a failed disk: the node must stop.
    pub fn start(&mut self, host: &mut impl Host) -> Result<Option<Round>, String> {
        if !self.node.has_ready() {
            return Ok(None);
        }
        let ready = self.node.ready();
        for envelope in &ready.messages {
            host.send(envelope.clone());
        }
        for to in &ready.send_snapshots {
            host.send_snapshot(*to);
        }
        // Entries, term and vote must be durable before anything that promises them goes out;
        // a commit index alone need not be.
        let sync = !ready.entries.is_empty()
            || ready.snapshot.is_some()
            || ready.compact.is_some()
            || ready.hard_state.is_some_and(|h| (h.term, h.vote) != self.synced_term_vote);
        self.store.write(&ready).map_err(|e| format!("cannot write the Raft log: {e}"))?;
        Ok(Some(Round { ready, sync }))
    }

    /// Finishes a round (see the module docs). An error is a failed disk or state machine:
    /// the node must stop.
    pub fn finish(&mut self, round: Round, host: &mut impl Host) -> Result<(), String> {
        let Round { ready, sync } = round;
        if sync {
            self.store.sync().map_err(|e| format!("cannot sync the Raft log: {e}"))?;
            if let Some(hard_state) = ready.hard_state {
                self.synced_term_vote = (hard_state.term, hard_state.vote);
            }
        }
        if let Some(meta) = &ready.snapshot {
            host.install_snapshot(meta)?;
        }
        for envelope in ready.persisted_messages {
            host.send(envelope);
        }
        if !ready.committed.is_empty() {
            host.apply(ready.committed);
        }
        for read in ready.read_states {
            host.read_ready(read.request, read.index);
        }
        for request in ready.read_failures {
            host.read_failed(request);
        }
        for event in ready.events {
            host.event(event);
        }
        self.node.advance();
        Ok(())
    }

    /// Runs a whole round, if there is one. Returns whether there was.
    pub fn round(&mut self, host: &mut impl Host) -> Result<bool, String> {
        match self.start(host)? {
            Some(round) => {
                self.finish(round, host)?;
                Ok(true)
            }
            None => Ok(false),
        }
    }
}
