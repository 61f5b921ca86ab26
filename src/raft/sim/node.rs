//! A simulated node: the driver (the real Ready loop) over a log on an in-memory disk that can
//! crash, and a durable state machine that behaves like `chronosd`'s: its state survives a
//! crash as of its last flush, the log is compacted only up to that flush, and a snapshot
//! received from the leader is staged durably and switched to once the log records it.

use crate::raft::{
    Configuration, Driver, Entry, Index, MemoryDisk, Payload, Round, SnapshotMeta, Term,
};
use serde::{Deserialize, Serialize};

/// The simulated application: the commands applied, in order, and what a snapshot of it
/// needs to describe itself (the term and configuration at its applied index).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Machine {
    /// The last index applied.
    pub applied: Index,
    /// The term of that entry.
    pub applied_term: Term,
    /// The configuration as of the applied index.
    pub config: Configuration,
    /// The commands applied, in log order.
    pub commands: Vec<u64>,
}

impl Machine {
    /// A machine that has applied nothing, in the initial configuration.
    pub fn new(config: Configuration) -> Self {
        Self { config, ..Self::default() }
    }

    /// Applies one committed entry.
    pub fn apply(&mut self, entry: &Entry) -> Result<(), String> {
        match &entry.payload {
            Payload::Command(data) => {
                let bytes: [u8; 8] = data.as_slice().try_into().map_err(|_| "bad command")?;
                self.commands.push(u64::from_le_bytes(bytes));
            }
            Payload::Config(config) => self.config = config.clone(),
            Payload::Noop => {}
        }
        self.applied = entry.index;
        self.applied_term = entry.term;
        Ok(())
    }

    /// What a snapshot of the machine covers.
    pub fn meta(&self) -> SnapshotMeta {
        SnapshotMeta { index: self.applied, term: self.applied_term, config: self.config.clone() }
    }

    /// The machine as snapshot data.
    pub fn encode(&self) -> Vec<u8> {
        crate::encoding::value::encode(self)
    }

    /// A machine from snapshot data.
    pub fn decode(data: &[u8]) -> Result<Self, String> {
        crate::encoding::value::decode(data).map_err(|e| format!("bad snapshot: {e}"))
    }
}

/// A client proposal accepted by a node, waiting to be applied there.
#[derive(Clone, Copy, Debug)]
pub struct PendingProposal {
    /// The command.
    pub command: u64,
    /// Where the node put it.
    pub index: Index,
    /// In which term.
    pub term: Term,
    /// When it was proposed (µs).
    pub at: u64,
}

/// A client read accepted by a node.
#[derive(Clone, Copy, Debug)]
pub struct PendingRead {
    /// The request id.
    pub request: u64,
    /// The highest index acknowledged when the read began.
    pub required: Index,
    /// The read index, once the node has one.
    pub index: Option<Index>,
}

/// A snapshot being received, chunk by chunk.
#[derive(Clone, Debug)]
pub struct Incoming {
    /// The transfer.
    pub transfer: u64,
    /// The sender and its term.
    pub from: crate::raft::NodeId,
    /// The sender's term.
    pub term: Term,
    /// What the snapshot covers.
    pub meta: SnapshotMeta,
    /// The next chunk expected.
    pub next: usize,
    /// The bytes so far.
    pub data: Vec<u8>,
}

/// One node of the simulated cluster.
pub struct SimNode {
    /// The core and its log; `None` while crashed.
    pub driver: Option<Driver<MemoryDisk>>,
    /// The node's disk: survives crashes, minus what was not synced.
    pub disk: MemoryDisk,
    /// The state machine as it runs (lost in a crash).
    pub machine: Machine,
    /// The state machine as last flushed (survives a crash).
    pub saved: Machine,
    /// Received snapshots by index, stored durably, not yet switched to.
    pub staged: std::collections::BTreeMap<Index, Machine>,
    /// A snapshot being received.
    pub incoming: Option<Incoming>,
    /// A round whose sync is in progress.
    pub syncing: Option<Round>,
    /// Paused nodes neither tick nor receive; their mail waits.
    pub paused: bool,
    /// Messages held while paused.
    pub inbox: Vec<crate::raft::Envelope>,
    /// Bumped on every crash, so events of an earlier life are ignored.
    pub incarnation: u64,
    /// Proposals accepted by this node.
    pub proposals: Vec<PendingProposal>,
    /// Reads accepted by this node.
    pub reads: Vec<PendingRead>,
}

impl SimNode {
    /// A node with an empty disk (not started).
    pub fn new() -> Self {
        Self {
            driver: None,
            disk: MemoryDisk::new(),
            machine: Machine::default(),
            saved: Machine::default(),
            staged: Default::default(),
            incoming: None,
            syncing: None,
            paused: false,
            inbox: Vec::new(),
            incarnation: 0,
            proposals: Vec::new(),
            reads: Vec::new(),
        }
    }

    /// Whether the node is running.
    pub fn is_up(&self) -> bool {
        self.driver.is_some()
    }

    /// The Raft core, if running.
    pub fn node(&self) -> Option<&crate::raft::Node> {
        self.driver.as_ref().map(|d| &d.node)
    }

    /// The Raft core, mutably, if running.
    pub fn node_mut(&mut self) -> Option<&mut crate::raft::Node> {
        self.driver.as_mut().map(|d| &mut d.node)
    }
}

impl Default for SimNode {
    fn default() -> Self {
        Self::new()
    }
}
