//! The simulator's [`Host`]: what the Ready loop asks of its surroundings is recorded in
//! order, then carried out against the simulated world (network, state machine, clients),
//! including snapshot streams: the leader's state at its applied index, sent in checksummed
//! chunks over the simulated network, staged durably by the receiver and handed to its core.

use super::{Chunk, Cluster, Event, Machine};
use crate::raft::{Entry, Envelope, Host, Index, NodeId, Payload, SnapshotMeta};

/// One thing the Ready loop asked for.
pub(super) enum Effect {
    Send(Envelope),
    SendSnapshot(NodeId),
    Install(SnapshotMeta),
    Apply(Vec<Entry>),
    ReadReady(u64, Index),
    ReadFailed(u64),
    Event(crate::raft::Event),
}

/// The effects of a round, in order.
#[derive(Default)]
pub(super) struct Effects(Vec<Effect>);

impl Host for Effects {
    fn send(&mut self, envelope: Envelope) {
        self.0.push(Effect::Send(envelope));
    }

    fn send_snapshot(&mut self, to: NodeId) {
        self.0.push(Effect::SendSnapshot(to));
    }

    fn install_snapshot(&mut self, meta: &SnapshotMeta) -> Result<(), String> {
        self.0.push(Effect::Install(meta.clone()));
        Ok(())
    }

    fn apply(&mut self, entries: Vec<Entry>) {
        self.0.push(Effect::Apply(entries));
    }

    fn read_ready(&mut self, request: u64, index: Index) {
        self.0.push(Effect::ReadReady(request, index));
    }

    fn read_failed(&mut self, request: u64) {
        self.0.push(Effect::ReadFailed(request));
    }

    fn event(&mut self, event: crate::raft::Event) {
        self.0.push(Effect::Event(event));
    }
}

impl Cluster {
    /// Carries out node `id`'s effects in order.
    pub(super) fn perform(&mut self, id: NodeId, effects: Effects) -> Result<(), String> {
        for effect in effects.0 {
            match effect {
                Effect::Send(envelope) => self.send(envelope),
                Effect::SendSnapshot(to) => self.start_transfer(id, to),
                Effect::Install(meta) => self.install(id, &meta)?,
                Effect::Apply(entries) => self.apply(id, entries)?,
                Effect::ReadReady(request, index) => {
                    let sim = self.nodes.get_mut(&id).ok_or("no node")?;
                    if let Some(read) = sim.reads.iter_mut().find(|r| r.request == request) {
                        read.index = Some(index);
                    }
                }
                Effect::ReadFailed(request) => {
                    let sim = self.nodes.get_mut(&id).ok_or("no node")?;
                    sim.reads.retain(|r| r.request != request);
                }
                Effect::Event(event) => {
                    if self.trace {
                        let node = self.nodes.get(&id).and_then(|s| s.node());
                        let (last, commit) =
                            node.map_or((0, 0), |n| (n.log().last_index(), n.log().commit));
                        self.trace(|| format!("node {id} {event:?} (last {last} commit {commit})"));
                    }
                    self.events.push((self.now, id, event));
                }
            }
        }
        self.serve_reads(id)
    }

    /// Applies committed entries to node `id`'s state machine and answers its clients.
    fn apply(&mut self, id: NodeId, entries: Vec<Entry>) -> Result<(), String> {
        let sim = self.nodes.get_mut(&id).ok_or("no node")?;
        let commit = sim.node().map_or(0, |n| n.log().commit);
        let mut acknowledged = Vec::new();
        for entry in &entries {
            self.checker.applied(id, entry, commit)?;
            if entry.index <= sim.machine.applied {
                return Err(format!(
                    "exactly once: node {id} was handed entry {} again (applied {})",
                    entry.index, sim.machine.applied
                ));
            }
            if entry.index != sim.machine.applied + 1 {
                return Err(format!(
                    "node {id} was handed entry {} after applying {}",
                    entry.index, sim.machine.applied
                ));
            }
            sim.machine.apply(entry)?;
            sim.proposals.retain(|p| {
                if p.index != entry.index {
                    return true;
                }
                if p.term == entry.term && matches!(entry.payload, Payload::Command(_)) {
                    acknowledged.push((p.command, p.index));
                }
                false
            });
        }
        for (command, index) in acknowledged {
            self.trace(|| format!("node {id} acknowledges command {command} at index {index}"));
            self.checker.acknowledged(command, index);
        }
        Ok(())
    }

    /// Serves node `id`'s reads whose index its state machine has applied.
    fn serve_reads(&mut self, id: NodeId) -> Result<(), String> {
        let Some(sim) = self.nodes.get_mut(&id) else { return Ok(()) };
        let applied = sim.machine.applied;
        let mut served = Vec::new();
        sim.reads.retain(|r| match r.index {
            Some(index) if index <= applied => {
                served.push(r.required);
                false
            }
            _ => true,
        });
        for required in served {
            self.checker.read(id, required, applied)?;
            self.reads_served += 1;
        }
        Ok(())
    }

    /// Switches node `id`'s state machine to the staged snapshot `meta` describes (its log
    /// records it durably by now): the switch is durable too.
    fn install(&mut self, id: NodeId, meta: &SnapshotMeta) -> Result<(), String> {
        let sim = self.nodes.get_mut(&id).ok_or("no node")?;
        let machine = sim.staged.remove(&meta.index).ok_or_else(|| {
            format!("node {id} was told to install snapshot {} that it did not stage", meta.index)
        })?;
        // Older staged snapshots are superseded.
        sim.staged.retain(|index, _| *index > meta.index);
        sim.machine = machine.clone();
        sim.saved = machine;
        // Whatever this node proposed up to there has an unknown outcome here.
        sim.proposals.retain(|p| p.index > meta.index);
        self.snapshots_installed += 1;
        self.trace(|| format!("node {id} switches to snapshot {}", meta.index));
        Ok(())
    }

    /// Starts streaming `from`'s state, as of its applied index, to `to`.
    fn start_transfer(&mut self, from: NodeId, to: NodeId) {
        let (chunk_bytes, delay) = (self.opts.snapshot_chunk.max(1), self.opts.delay);
        let Some(sim) = self.nodes.get(&from) else { return };
        let Some(node) = sim.node() else { return };
        let (term, incarnation) = (node.term(), sim.incarnation);
        let meta = sim.machine.meta();
        let data = sim.machine.encode();
        let transfer = self.next_transfer;
        self.next_transfer += 1;
        self.trace(|| format!("node {from} streams snapshot {} to node {to}", meta.index));
        let pieces: Vec<Vec<u8>> = data.chunks(chunk_bytes).map(<[u8]>::to_vec).collect();
        let total = pieces.len();
        let mut at = self.now;
        for (seq, piece) in pieces.into_iter().enumerate() {
            // A stream delivers in order.
            at += self.rng.between(delay.0, delay.1) / 4 + 1;
            let crc = crc32fast::hash(&piece);
            let chunk = Chunk {
                transfer,
                from,
                from_incarnation: incarnation,
                term,
                to,
                meta: meta.clone(),
                seq,
                total,
                data: piece,
                crc,
            };
            self.schedule(at, Event::Chunk(chunk));
        }
    }

    /// Tells a snapshot's sender how its transfer ended.
    fn transfer_done(&mut self, chunk: &Chunk, sent: Option<Index>) {
        let at = self.now + self.rng.between(self.opts.delay.0, self.opts.delay.1);
        let done = Event::SnapshotDone {
            leader: chunk.from,
            incarnation: chunk.from_incarnation,
            to: chunk.to,
            sent,
        };
        self.schedule(at, done);
    }

    /// A chunk arrives: it is checked and staged; the last one hands the snapshot to the core.
    pub(super) fn receive_chunk(&mut self, chunk: Chunk) -> Result<(), String> {
        *self.delivered.entry("snapshot_chunk").or_default() += 1;
        let reachable = self.nodes.get(&chunk.to).is_some_and(|s| s.is_up() && !s.paused);
        if self.lost(chunk.from, chunk.to) || !reachable {
            self.transfer_done(&chunk, None);
            return Ok(());
        }
        if crc32fast::hash(&chunk.data) != chunk.crc {
            return Err(format!("node {} received a damaged snapshot chunk", chunk.to));
        }
        let sim = self.nodes.get_mut(&chunk.to).ok_or("no node")?;
        match &mut sim.incoming {
            Some(incoming) if incoming.transfer == chunk.transfer && incoming.next == chunk.seq => {
                incoming.data.extend_from_slice(&chunk.data);
                incoming.next += 1;
            }
            _ if chunk.seq == 0 => {
                sim.incoming = Some(super::Incoming {
                    transfer: chunk.transfer,
                    from: chunk.from,
                    term: chunk.term,
                    meta: chunk.meta.clone(),
                    next: 1,
                    data: chunk.data.clone(),
                });
            }
            _ => return Ok(()), // a duplicate, or a chunk of a transfer given up
        }
        if chunk.seq + 1 < chunk.total {
            return Ok(());
        }
        let Some(incoming) = sim.incoming.take() else { return Ok(()) };
        let machine = Machine::decode(&incoming.data)?;
        if machine.meta() != incoming.meta {
            return Err(format!(
                "node {} received a snapshot that does not match its metadata",
                chunk.to
            ));
        }
        // Staged durably, then offered to the core.
        // (Each transfer is staged on its own, as `chronosd` stages each in its own
        // generation: refusing this one must not drop an earlier copy an install awaits.)
        let index = incoming.meta.index;
        let earlier = sim.staged.insert(index, machine);
        let node = sim.node_mut().ok_or("node down")?;
        let install = node
            .install_snapshot(incoming.from, incoming.term, incoming.meta.clone())
            .map_err(|e| e.to_string())?;
        if !install {
            match earlier {
                Some(earlier) => sim.staged.insert(index, earlier),
                None => sim.staged.remove(&index),
            };
        }
        self.transfer_done(&chunk, Some(incoming.meta.index));
        self.drive(chunk.to)
    }
}
