//! Deterministic simulation of a Raft cluster.
//!
//! N nodes run the real core and the real durable log (on in-memory disks) under a virtual
//! clock. One seed drives everything: message delays (hence reordering), drops, duplicates,
//! partitions (symmetric and one-way), pauses, crashes that lose unsynced writes (tearing the
//! last record at a random byte), restarts, client proposals and reads. Events are ordered by
//! time and then by creation, so a seed always replays the same run.
//!
//! After every event the [`checker`] verifies Raft's safety properties; [`chaos`] runs a
//! random fault schedule, then heals everything and requires progress within a bound.
//! Scenario tests drive a [`Cluster`] by hand.

pub mod chaos;
pub mod checker;
mod node;

pub use node::{Machine, PendingProposal, PendingRead, SimNode};

use crate::raft::{
    Configuration, Envelope, Error, Index, LogStore, Node, NodeId, Options, Payload, Recovered,
    SnapshotMeta, Term,
};
use checker::Checker;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};

/// Microseconds of virtual time.
pub type Micros = u64;

/// Settings of a simulation.
#[derive(Clone, Debug)]
pub struct SimOptions {
    /// The number of voters.
    pub nodes: usize,
    /// The seed of everything random.
    pub seed: u64,
    /// Virtual time between ticks.
    pub tick: Micros,
    /// Message delay range (a random delay per message; reordering follows).
    pub delay: (Micros, Micros),
    /// Fsync latency range.
    pub fsync: (Micros, Micros),
    /// Applied entries between snapshots (then the log is compacted).
    pub snapshot_every: Index,
    /// Snapshot chunk size (small, so snapshots take several chunks).
    pub snapshot_chunk: usize,
    /// Segment size of the durable log (small, so segments roll).
    pub segment_bytes: u64,
}

impl SimOptions {
    /// Defaults for `nodes` voters: 10 ms ticks, elections after 100-200 ms.
    pub fn new(nodes: usize, seed: u64) -> Self {
        Self {
            nodes,
            seed,
            tick: 10_000,
            delay: (200, 4_000),
            fsync: (100, 2_000),
            snapshot_every: 40,
            snapshot_chunk: 64,
            segment_bytes: 4 << 10,
        }
    }
}

/// A scheduled event.
#[derive(Clone, Debug)]
enum Event {
    /// A node's clock ticks (for the given incarnation).
    Tick(NodeId, u64),
    /// A message arrives.
    Deliver(Envelope),
    /// A node's fsync completes (for the given incarnation).
    SyncDone(NodeId, u64),
}

/// A message's kind, for counting.
fn kind(message: &crate::raft::Message) -> &'static str {
    use crate::raft::{AppendResult, Message};
    match message {
        Message::PreVote { .. } => "pre_vote",
        Message::PreVoteResponse { .. } => "pre_vote_response",
        Message::Vote { .. } => "vote",
        Message::VoteResponse { .. } => "vote_response",
        Message::Append { .. } => "append",
        Message::AppendResponse { result: AppendResult::Accepted { .. } } => "append_accepted",
        Message::AppendResponse { result: AppendResult::Rejected { .. } } => "append_rejected",
        Message::Heartbeat { .. } => "heartbeat",
        Message::HeartbeatResponse { .. } => "heartbeat_response",
        Message::ReadIndex { .. } => "read_index",
        Message::ReadIndexResponse { .. } => "read_index_response",
        Message::Snapshot { .. } => "snapshot",
        Message::SnapshotResponse { .. } => "snapshot_response",
        Message::TimeoutNow => "timeout_now",
    }
}

/// An event in the queue, ordered by time and then by when it was scheduled.
struct Scheduled {
    at: Micros,
    sequence: u64,
    event: Event,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.sequence) == (other.at, other.sequence)
    }
}

impl Eq for Scheduled {}

impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Scheduled {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at, self.sequence).cmp(&(other.at, other.sequence))
    }
}

pub use crate::rng::Rng;

/// A simulated cluster.
pub struct Cluster {
    /// The settings.
    pub opts: SimOptions,
    /// The current virtual time.
    pub now: Micros,
    /// The random source of the whole run.
    pub rng: Rng,
    queue: BinaryHeap<Reverse<Scheduled>>,
    sequence: u64,
    /// The nodes, by id.
    pub nodes: BTreeMap<NodeId, SimNode>,
    /// The initial configuration.
    pub initial: Configuration,
    /// Directed links that drop every message.
    pub blocked: BTreeSet<(NodeId, NodeId)>,
    /// Percent of messages dropped.
    pub drop_percent: u64,
    /// Percent of messages duplicated.
    pub duplicate_percent: u64,
    /// The safety checker.
    pub checker: Checker,
    /// The next client command id.
    pub next_command: u64,
    /// The next read request id.
    next_read: u64,
    /// The highest term seen led by each node (to spot new leaders).
    led: BTreeMap<NodeId, Term>,
    /// Reads served (for reports).
    pub reads_served: u64,
    /// Print a trace of notable events (set `RAFT_TRACE=1`).
    pub trace: bool,
    /// Messages delivered, by kind (for tests of message economy).
    pub delivered: BTreeMap<&'static str, u64>,
    /// Every node's events, in order, with the time.
    pub events: Vec<(Micros, NodeId, crate::raft::Event)>,
}

impl Cluster {
    /// A cluster of `opts.nodes` voters (ids 1..=n), all started.
    pub fn new(opts: SimOptions) -> Self {
        let initial = Configuration::voters(1..=opts.nodes as NodeId);
        let mut cluster = Self {
            now: 0,
            rng: Rng::new(opts.seed),
            queue: BinaryHeap::new(),
            sequence: 0,
            nodes: BTreeMap::new(),
            initial,
            blocked: BTreeSet::new(),
            drop_percent: 0,
            duplicate_percent: 0,
            checker: Checker::default(),
            next_command: 1,
            next_read: 1,
            led: BTreeMap::new(),
            reads_served: 0,
            trace: std::env::var_os("RAFT_TRACE").is_some(),
            delivered: BTreeMap::new(),
            events: Vec::new(),
            opts,
        };
        for id in 1..=cluster.opts.nodes as NodeId {
            cluster.add_node(id);
            cluster.start(id).unwrap_or_else(|e| panic!("starting node {id}: {e}"));
        }
        cluster
    }

    /// Adds a node with an empty disk, not started.
    pub fn add_node(&mut self, id: NodeId) {
        self.nodes.entry(id).or_default();
    }

    fn schedule(&mut self, at: Micros, event: Event) {
        self.sequence += 1;
        self.queue.push(Reverse(Scheduled { at, sequence: self.sequence, event }));
    }

    /// Starts (or restarts) a node from its disk. A node with an empty disk starts with the
    /// initial configuration if it is in it (a new node added later starts with none).
    pub fn start(&mut self, id: NodeId) -> Result<(), String> {
        let initial = self.initial.clone();
        let (segment_bytes, chunk, seed) =
            (self.opts.segment_bytes, self.opts.snapshot_chunk, self.opts.seed);
        let sim = self.nodes.get_mut(&id).ok_or("no such node")?;
        let (mut store, mut recovered) = LogStore::open_with(sim.disk.clone(), segment_bytes)
            .map_err(|e| format!("node {id} cannot recover: {e}"))?;
        if recovered.entries.is_empty()
            && recovered.snapshot.index == 0
            && recovered.snapshot.config.voters.is_empty()
        {
            // A brand-new node: persist the initial configuration (empty for joiners).
            let config = if initial.contains(id) { initial } else { Configuration::default() };
            let meta = SnapshotMeta { index: 0, term: 0, config };
            store.checkpoint(&meta, &[]).map_err(|e| e.to_string())?;
            recovered.snapshot = meta;
        }
        sim.machine = match recovered.snapshot.index {
            0 => Machine::default(),
            index => {
                let data = sim
                    .snapshots
                    .get(&index)
                    .ok_or(format!("node {id}: snapshot file {index} is missing"))?;
                recovered.snapshot_data = Some(data.clone());
                Machine::restore(data)?
            }
        };
        sim.incarnation += 1;
        let mut opts = Options::new(id);
        opts.heartbeat_ticks = 2;
        opts.snapshot_chunk_bytes = chunk;
        opts.seed = seed ^ (id << 32) ^ sim.incarnation;
        sim.node = Some(Node::new(opts, Recovered { ..recovered }));
        sim.store = Some(store);
        sim.syncing = None;
        let incarnation = sim.incarnation;
        let status = sim.node.as_ref().map(|n| n.status());
        self.trace(|| format!("node {id} starts: {status:?}"));
        let first_tick = self.now + self.rng.between(1, self.opts.tick);
        self.schedule(first_tick, Event::Tick(id, incarnation));
        Ok(())
    }

    /// Prints a trace line when tracing.
    pub fn trace(&self, line: impl FnOnce() -> String) {
        if self.trace {
            println!("{:>9.3} ms  {}", self.now as f64 / 1000.0, line());
        }
    }

    /// Crashes a node: it loses everything not synced (its last record possibly torn) and all
    /// volatile state.
    pub fn crash(&mut self, id: NodeId) {
        let Some(sim) = self.nodes.get_mut(&id) else { return };
        if !sim.is_up() {
            return;
        }
        sim.node = None;
        sim.store = None;
        sim.syncing = None;
        sim.machine = Machine::default();
        sim.proposals.clear();
        sim.reads.clear();
        sim.inbox.clear();
        sim.paused = false;
        let tear = self.rng.next_u64();
        sim.disk.crash(|pending| {
            if tear.is_multiple_of(2) { 0 } else { (tear as usize >> 8) % (pending + 1) }
        });
        self.trace(|| format!("node {id} crashes"));
    }

    /// Pauses a node (no ticks, messages wait).
    pub fn pause(&mut self, id: NodeId) {
        if let Some(sim) = self.nodes.get_mut(&id) {
            sim.paused = sim.is_up();
        }
    }

    /// Resumes a paused node and delivers its held messages.
    pub fn resume(&mut self, id: NodeId) -> Result<(), String> {
        let Some(sim) = self.nodes.get_mut(&id) else { return Ok(()) };
        if !sim.paused {
            return Ok(());
        }
        sim.paused = false;
        for envelope in std::mem::take(&mut sim.inbox) {
            self.deliver(envelope)?;
        }
        Ok(())
    }

    /// Blocks messages between the groups (symmetric partition).
    pub fn partition(&mut self, group: &[NodeId]) {
        let others: Vec<NodeId> =
            self.nodes.keys().copied().filter(|n| !group.contains(n)).collect();
        for a in group {
            for b in &others {
                self.blocked.insert((*a, *b));
                self.blocked.insert((*b, *a));
            }
        }
    }

    /// Removes all partitions.
    pub fn heal(&mut self) {
        self.blocked.clear();
    }

    /// Sends a message over the simulated network.
    fn send(&mut self, envelope: Envelope) {
        if self.blocked.contains(&(envelope.from, envelope.to))
            || self.rng.chance(self.drop_percent)
        {
            return;
        }
        let copies = if self.rng.chance(self.duplicate_percent) { 2 } else { 1 };
        for _ in 0..copies {
            let at = self.now + self.rng.between(self.opts.delay.0, self.opts.delay.1);
            self.schedule(at, Event::Deliver(envelope.clone()));
        }
    }

    fn deliver(&mut self, envelope: Envelope) -> Result<(), String> {
        let to = envelope.to;
        let Some(sim) = self.nodes.get_mut(&to) else { return Ok(()) };
        if sim.paused {
            sim.inbox.push(envelope);
            return Ok(());
        }
        let Some(node) = sim.node.as_mut() else { return Ok(()) };
        *self.delivered.entry(kind(&envelope.message)).or_default() += 1;
        // Errors are for messages not meant for this node; the network never misroutes.
        node.step(envelope).map_err(|e| format!("node {to} rejected a message: {e}"))?;
        self.drive(to)
    }

    /// Runs the driver loop of a node: takes its `Ready`, persists it (the sync completes
    /// later, after a simulated fsync latency), sends, applies, answers clients.
    pub fn drive(&mut self, id: NodeId) -> Result<(), String> {
        loop {
            let Some(sim) = self.nodes.get_mut(&id) else { return Ok(()) };
            let Some(node) = sim.node.as_mut() else { return Ok(()) };
            if sim.syncing.is_some() || !node.has_ready() {
                break;
            }
            let ready = node.ready();
            if self.trace {
                for event in &ready.events {
                    println!(
                        "{:>9.3} ms  node {id} {event:?} (last {} commit {})",
                        self.now as f64 / 1000.0,
                        node.log().last_index(),
                        node.log().commit
                    );
                }
            }
            let now = self.now;
            self.events.extend(ready.events.iter().map(|event| (now, id, event.clone())));
            let first_new = ready.entries.first().map_or(u64::MAX, |e| e.index);
            self.checker.log(id, node.log(), first_new, false, node.term())?;
            if node.role() == crate::raft::Role::Leader {
                self.checker.leader_committed(node.term(), node.log(), node.log().commit);
            }
            if let Some(snapshot) = &ready.snapshot {
                // The snapshot file is durable before the log refers to it.
                sim.save_snapshot(snapshot.meta.index, snapshot.data.clone());
            }
            let store = sim.store.as_mut().ok_or("node without store")?;
            store.write(&ready).map_err(|e| format!("node {id} write: {e}"))?;
            for message in ready.messages.clone() {
                self.send(message);
            }
            let (low, high) = self.opts.fsync;
            let at = self.now + self.rng.between(low, high);
            let sim = self.nodes.get_mut(&id).ok_or("no node")?;
            sim.syncing = Some(ready);
            let incarnation = sim.incarnation;
            self.schedule(at, Event::SyncDone(id, incarnation));
        }
        self.check_leader(id)
    }

    /// Completes a node's sync: the `Ready` is durable; send what waited for it, apply, answer.
    fn finish_sync(&mut self, id: NodeId) -> Result<(), String> {
        let snapshot_every = self.opts.snapshot_every;
        let now = self.now;
        let sim = self.nodes.get_mut(&id).ok_or("no node")?;
        let Some(ready) = sim.syncing.take() else { return Ok(()) };
        let store = sim.store.as_mut().ok_or("node without store")?;
        store.sync().map_err(|e| format!("node {id} sync: {e}"))?;
        let node = sim.node.as_mut().ok_or("node down")?;
        if let Some(snapshot) = &ready.snapshot {
            sim.machine = Machine::restore(&snapshot.data)?;
        }
        let commit = node.log().commit;
        let mut acknowledged = Vec::new();
        for entry in &ready.committed {
            self.checker.applied(id, entry, commit)?;
            if entry.index <= sim.machine.applied {
                continue; // already in the snapshot
            }
            if let Payload::Command(data) = &entry.payload {
                let command =
                    u64::from_le_bytes(data.as_slice().try_into().map_err(|_| "bad command")?);
                sim.machine.commands.push(command);
            }
            sim.machine.applied = entry.index;
            sim.proposals.retain(|p| {
                if p.index != entry.index {
                    return true;
                }
                if p.term == entry.term {
                    acknowledged.push((p.command, p.index));
                }
                false
            });
        }
        for read in &ready.read_states {
            if let Some(pending) = sim.reads.iter_mut().find(|r| r.request == read.request) {
                pending.index = Some(read.index);
            }
        }
        sim.reads.retain(|r| !ready.read_failures.contains(&r.request));
        node.advance();
        // Serve the reads whose index has been applied.
        let applied = sim.machine.applied;
        let mut served = Vec::new();
        sim.reads.retain(|r| match r.index {
            Some(index) if index <= applied => {
                served.push(r.required);
                false
            }
            _ => true,
        });
        // Snapshot every so often, then compact the log.
        if applied >= node.log().snapshot().index + snapshot_every {
            let data = sim.machine.snapshot();
            sim.save_snapshot(applied, data.clone());
            let node = sim.node.as_mut().ok_or("node down")?;
            node.compact(applied, data).map_err(|e| e.to_string())?;
        }
        for message in ready.persisted_messages {
            self.send(message);
        }
        for (command, index) in acknowledged {
            self.trace(|| format!("node {id} acknowledges command {command} at index {index}"));
            self.checker.acknowledged(command, index);
        }
        for required in served {
            self.checker.read(id, required, applied)?;
            self.reads_served += 1;
        }
        let _ = now;
        self.drive(id)
    }

    /// Records a new leader and checks it against the committed entries.
    fn check_leader(&mut self, id: NodeId) -> Result<(), String> {
        let Some(node) = self.nodes.get(&id).and_then(|s| s.node.as_ref()) else { return Ok(()) };
        if node.role() != crate::raft::Role::Leader || self.led.get(&id) == Some(&node.term()) {
            return Ok(());
        }
        self.led.insert(id, node.term());
        self.checker.leader(node.term(), id)?;
        self.checker.log(id, node.log(), 0, true, node.term())
    }

    /// Processes the next event. Returns false when none is left.
    pub fn step(&mut self) -> Result<bool, String> {
        let Some(Reverse(Scheduled { at, event, .. })) = self.queue.pop() else { return Ok(false) };
        self.now = at;
        match event {
            Event::Tick(id, incarnation) => {
                let tick = self.opts.tick;
                let Some(sim) = self.nodes.get_mut(&id) else { return Ok(true) };
                if sim.incarnation != incarnation || !sim.is_up() {
                    return Ok(true); // a tick of an earlier life
                }
                if !sim.paused
                    && let Some(node) = sim.node.as_mut()
                {
                    node.tick();
                }
                self.schedule(at + tick, Event::Tick(id, incarnation));
                self.drive(id)?;
            }
            Event::Deliver(envelope) => self.deliver(envelope)?,
            Event::SyncDone(id, incarnation) => {
                if self.nodes.get(&id).is_some_and(|s| s.incarnation == incarnation && s.is_up()) {
                    self.finish_sync(id)?;
                }
            }
        }
        Ok(true)
    }

    /// Runs until virtual time `until`.
    pub fn run_until_time(&mut self, until: Micros) -> Result<(), String> {
        while self.queue.peek().is_some_and(|Reverse(next)| next.at <= until) {
            self.step()?;
        }
        self.now = self.now.max(until);
        Ok(())
    }

    /// Runs until `condition` holds (checked after every event) or `within` has passed.
    /// Returns whether it held.
    pub fn run_until(
        &mut self,
        within: Micros,
        mut condition: impl FnMut(&Cluster) -> bool,
    ) -> Result<bool, String> {
        let deadline = self.now + within;
        while !condition(self) {
            match self.queue.peek() {
                Some(Reverse(next)) if next.at <= deadline => {
                    self.step()?;
                }
                _ => return Ok(false),
            }
        }
        Ok(true)
    }

    /// The node leading the highest term among running nodes, if any.
    pub fn leader(&self) -> Option<NodeId> {
        self.nodes
            .iter()
            .filter_map(|(id, sim)| sim.node.as_ref().map(|n| (n.term(), *id, n.role())))
            .filter(|(_, _, role)| *role == crate::raft::Role::Leader)
            .map(|(term, id, _)| (term, id))
            .max()
            .map(|(_, id)| id)
    }

    /// The running node `id`.
    pub fn node(&self, id: NodeId) -> Option<&Node> {
        self.nodes.get(&id).and_then(|s| s.node.as_ref())
    }

    /// Proposes a new command at node `id`; returns the command id and where it went.
    pub fn propose(&mut self, id: NodeId) -> Result<(u64, Index, Term), Error> {
        let command = self.next_command;
        let now = self.now;
        let sim = self.nodes.get_mut(&id).ok_or(Error::InvalidRequest("no node".into()))?;
        let node = sim.node.as_mut().ok_or(Error::InvalidRequest("node down".into()))?;
        let (index, term) = node.propose(command.to_le_bytes().to_vec())?;
        self.next_command += 1;
        sim.proposals.push(PendingProposal { command, index, term, at: now });
        self.checker.proposed(command);
        let _ = self.drive(id);
        Ok((command, index, term))
    }

    /// Starts a linearizable read at node `id`.
    pub fn read(&mut self, id: NodeId) -> Result<u64, Error> {
        let request = self.next_read;
        let required = self.checker.max_acknowledged();
        let sim = self.nodes.get_mut(&id).ok_or(Error::InvalidRequest("no node".into()))?;
        let node = sim.node.as_mut().ok_or(Error::InvalidRequest("node down".into()))?;
        node.read_index(request)?;
        self.next_read += 1;
        sim.reads.push(PendingRead { request, required, index: None });
        let _ = self.drive(id);
        Ok(request)
    }

    /// Runs `action` on the leader's core, then its driver loop.
    fn on_leader<T>(
        &mut self,
        action: impl FnOnce(&mut Node) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let leader = self.leader().ok_or(Error::NotLeader { leader: None })?;
        let node = self
            .nodes
            .get_mut(&leader)
            .and_then(|s| s.node.as_mut())
            .ok_or(Error::NotLeader { leader: None })?;
        let result = action(node)?;
        let _ = self.drive(leader);
        Ok(result)
    }

    /// Proposes a membership change at the leader.
    pub fn conf_change(&mut self, change: crate::raft::ConfChange) -> Result<(Index, Term), Error> {
        self.on_leader(|node| node.propose_conf_change(change))
    }

    /// Asks the leader to hand over to `to`.
    pub fn transfer(&mut self, to: NodeId) -> Result<(), Error> {
        self.on_leader(|node| node.transfer_leadership(to))
    }

    /// The index applied by node `id` (0 when down).
    pub fn applied(&self, id: NodeId) -> Index {
        self.nodes.get(&id).filter(|s| s.is_up()).map_or(0, |s| s.machine.applied)
    }

    /// Whether every running node has applied `index`.
    pub fn all_applied(&self, index: Index) -> bool {
        self.nodes.values().filter(|s| s.is_up()).all(|s| s.machine.applied >= index)
    }
}
