//! A simulated node: the Raft core, a durable log on an in-memory disk that can crash, a state
//! machine, and the driver loop that connects them as the real server does.

use crate::raft::{Index, LogStore, MemoryDisk, Node, Ready};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

/// The simulated application: the commands applied, in order. Its snapshot is its encoding.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Machine {
    /// The last index applied.
    pub applied: Index,
    /// The commands applied, in log order.
    pub commands: Vec<u64>,
}

impl Machine {
    /// Restores a machine from snapshot data.
    pub fn restore(data: &[u8]) -> Result<Self, String> {
        crate::encoding::value::decode(data).map_err(|e| format!("bad snapshot: {e}"))
    }

    /// The machine as snapshot data.
    pub fn snapshot(&self) -> Arc<Vec<u8>> {
        Arc::new(crate::encoding::value::encode(self))
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
    pub term: crate::raft::Term,
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

/// One node of the simulated cluster.
pub struct SimNode {
    /// The Raft core; `None` while crashed.
    pub node: Option<Node>,
    /// The durable log; `None` while crashed.
    pub store: Option<LogStore<MemoryDisk>>,
    /// The node's disk: survives crashes, minus what was not synced.
    pub disk: MemoryDisk,
    /// Durable snapshot files by index (written before the log refers to them).
    pub snapshots: BTreeMap<Index, Arc<Vec<u8>>>,
    /// The state machine (volatile: rebuilt from snapshot and log after a restart).
    pub machine: Machine,
    /// A `Ready` whose sync is in progress.
    pub syncing: Option<Ready>,
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
            node: None,
            store: None,
            disk: MemoryDisk::new(),
            snapshots: BTreeMap::new(),
            machine: Machine::default(),
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
        self.node.is_some()
    }

    /// Keeps a snapshot file durably, pruning all but the newest three.
    pub fn save_snapshot(&mut self, index: Index, data: Arc<Vec<u8>>) {
        self.snapshots.insert(index, data);
        while self.snapshots.len() > 3 {
            self.snapshots.pop_first();
        }
    }
}

impl Default for SimNode {
    fn default() -> Self {
        Self::new()
    }
}
