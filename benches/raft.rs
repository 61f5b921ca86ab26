//! Raft core benchmarks: commit throughput of a 3-node group on an in-memory network, with
//! proposals batched between `Ready`s. Messages are delivered at once and nothing is persisted,
//! so this measures the core alone.

use chronos::raft::{
    Configuration, Envelope, Node, NodeId, Options, Recovered, Role, SnapshotMeta,
};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group};
use std::collections::{BTreeMap, VecDeque};

/// Three nodes and a queue of messages in flight.
struct Group {
    nodes: BTreeMap<NodeId, Node>,
    network: VecDeque<Envelope>,
}

impl Group {
    fn new() -> Self {
        let config = Configuration::voters([1, 2, 3]);
        let nodes = (1..=3)
            .map(|id| {
                let recovered = Recovered {
                    snapshot: SnapshotMeta { index: 0, term: 0, config: config.clone() },
                    ..Recovered::default()
                };
                (id, Node::new(Options::new(id), recovered))
            })
            .collect();
        let mut group = Self { nodes, network: VecDeque::new() };
        while group.leader().is_none() {
            if let Some(node) = group.nodes.get_mut(&1) {
                node.tick();
            }
            group.settle();
        }
        group
    }

    fn leader(&self) -> Option<NodeId> {
        self.nodes.iter().find(|(_, n)| n.role() == Role::Leader).map(|(id, _)| *id)
    }

    /// Handles every node's `Ready` and delivers messages until nothing is left to do.
    /// Returns the entries committed (counted on the leader).
    fn settle(&mut self) -> usize {
        let mut committed = 0;
        loop {
            let mut progress = false;
            for (id, node) in self.nodes.iter_mut() {
                if node.has_ready() {
                    let ready = node.ready();
                    if node.role() == Role::Leader || *id == 1 {
                        committed += ready.committed.len();
                    }
                    self.network.extend(ready.messages);
                    self.network.extend(ready.persisted_messages);
                    node.advance();
                    progress = true;
                }
            }
            while let Some(message) = self.network.pop_front() {
                if let Some(node) = self.nodes.get_mut(&message.to) {
                    let _ = node.step(message);
                }
                progress = true;
            }
            if !progress {
                return committed;
            }
        }
    }
}

/// Proposes `batch` commands, then runs until they are committed.
fn commit_throughput(c: &mut Criterion) {
    let mut group = c.benchmark_group("raft/commit");
    for batch in [1u64, 16, 256] {
        let mut cluster = Group::new();
        let leader = cluster.leader().unwrap_or(1);
        group.throughput(Throughput::Elements(batch));
        group.bench_function(BenchmarkId::from_parameter(batch), |b| {
            b.iter(|| {
                let node = cluster.nodes.get_mut(&leader).expect("leader");
                for i in 0..batch {
                    node.propose(i.to_le_bytes().to_vec()).expect("propose");
                }
                cluster.settle()
            })
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = super::config();
    targets = commit_throughput
}
