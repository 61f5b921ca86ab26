//! Deterministic simulation of a Raft cluster, running the code that ships.
//!
//! Each node runs the real core through the real Ready loop ([`crate::raft::Driver`]) over the
//! real durable log on an in-memory disk; only the network, the disk's medium, the clock and
//! the application are simulated (as FoundationDB and TigerBeetle simulate theirs). One seed
//! drives everything: message delays (hence reordering), drops, duplicates, partitions
//! (symmetric and one-way), pauses, crashes that lose unsynced writes (tearing the last record
//! at a random byte), disks that fail at a random change, restarts, membership changes,
//! client proposals and reads. Events are ordered by time and then by creation, so a seed
//! always replays the same run.
//!
//! The application is durable like `chronosd`'s: it survives a crash as of its last flush, the
//! log is compacted only up to a flush, and a follower whose entries were compacted away is
//! streamed the leader's state in checksummed chunks over the simulated network, staged, and
//! switched to once its log records the snapshot.
//!
//! After every event the [`checker`] verifies Raft's safety properties; [`chaos`] runs a
//! random fault schedule, then heals everything and requires progress within a bound.
//! Scenario tests drive a [`Cluster`] by hand.

pub mod chaos;
pub mod checker;
mod host;
mod hostile;
mod node;

pub use node::{Incoming, Machine, PendingProposal, PendingRead, SimNode};

use crate::raft::{
    Configuration, Driver, Envelope, Error, Index, LogStore, Node, NodeId, Options, SnapshotMeta,
    Term,
};
use checker::Checker;
use host::Effects;
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
    /// Applied entries between flushes of the state machine.
    pub flush_every: Index,
    /// Flushed entries past the log's start that trigger a compaction.
    pub snapshot_every: Index,
    /// Snapshot chunk size (small, so snapshots take several chunks).
    pub snapshot_chunk: usize,
    /// Segment size of the durable log (small, so segments roll).
    pub segment_bytes: u64,
    /// Ticks between a leader's heartbeats.
    pub heartbeat_ticks: crate::raft::Ticks,
    /// The base election timeout in ticks.
    pub election_ticks: crate::raft::Ticks,
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
            flush_every: 15,
            snapshot_every: 40,
            snapshot_chunk: 64,
            segment_bytes: 4 << 10,
            heartbeat_ticks: 2,
            election_ticks: crate::raft::ELECTION_TICKS,
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
    /// A hostile message arrives at a node (which need not be its addressee).
    DeliverHostile(NodeId, Envelope),
    /// A node's fsync completes (for the given incarnation).
    SyncDone(NodeId, u64),
    /// A chunk of a snapshot transfer arrives.
    Chunk(Chunk),
    /// The sender of a snapshot learns how its transfer ended.
    SnapshotDone {
        /// The sender.
        leader: NodeId,
        /// Its incarnation when it started the transfer.
        incarnation: u64,
        /// The receiver.
        to: NodeId,
        /// The index sent whole, or `None` if the transfer failed.
        sent: Option<Index>,
    },
}

/// One chunk of a snapshot transfer.
#[derive(Clone, Debug)]
pub struct Chunk {
    /// The transfer.
    transfer: u64,
    /// The sender, its incarnation and its term.
    from: NodeId,
    from_incarnation: u64,
    term: Term,
    /// The receiver.
    to: NodeId,
    /// What the snapshot covers.
    meta: SnapshotMeta,
    /// The chunk's position, and how many there are.
    seq: usize,
    total: usize,
    /// The chunk and its checksum.
    data: Vec<u8>,
    crc: u32,
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
    /// Percent of messages followed by a hostile variant (see `hostile.rs`).
    pub hostile_percent: u64,
    /// Hostile messages delivered, and how many of them the node refused with an error.
    pub hostile: (u64, u64),
    /// The safety checker.
    pub checker: Checker,
    /// The next client command id.
    pub next_command: u64,
    /// The next read request id.
    next_read: u64,
    /// The next snapshot transfer id.
    next_transfer: u64,
    /// The highest term seen led by each node (to spot new leaders).
    led: BTreeMap<NodeId, Term>,
    /// Reads served (for reports).
    pub reads_served: u64,
    /// Snapshots installed (for reports and tests).
    pub snapshots_installed: u64,
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
            hostile_percent: 0,
            hostile: (0, 0),
            checker: Checker::default(),
            next_command: 1,
            next_read: 1,
            next_transfer: 1,
            led: BTreeMap::new(),
            reads_served: 0,
            snapshots_installed: 0,
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

    /// Starts (or restarts) a node from its disk, as `chronosd` does: the log, then the
    /// state machine as last flushed (or a staged snapshot the log already records). A node
    /// with an empty disk starts with the initial configuration if it is in it (a node added
    /// later starts with none).
    pub fn start(&mut self, id: NodeId) -> Result<(), String> {
        let initial = self.initial.clone();
        let (segment_bytes, seed) = (self.opts.segment_bytes, self.opts.seed);
        let sim = self.nodes.get_mut(&id).ok_or("no such node")?;
        let (mut store, mut recovered) = LogStore::open_with(sim.disk.clone(), segment_bytes)
            .map_err(|e| format!("node {id} cannot recover: {e}"))?;
        if recovered.entries.is_empty()
            && recovered.snapshot.index == 0
            && recovered.snapshot.config.voters.is_empty()
        {
            // A brand-new node: persist the initial configuration (empty for joiners).
            let config = if initial.contains(id) { initial } else { Configuration::default() };
            let meta = SnapshotMeta { index: 0, term: 0, config: config.clone() };
            store.checkpoint(&meta, &[]).map_err(|e| e.to_string())?;
            recovered.snapshot = meta;
            sim.saved = Machine::new(config);
        }
        // A snapshot the log records but the state machine had not switched to yet.
        if recovered.snapshot.index > sim.saved.applied {
            match sim.staged.remove(&recovered.snapshot.index) {
                Some(staged) => sim.saved = staged,
                None => {
                    return Err(format!(
                        "node {id}: the log starts after {} but the state machine is at {} with no staged snapshot",
                        recovered.snapshot.index, sim.saved.applied
                    ));
                }
            }
        }
        sim.staged.clear();
        sim.machine = sim.saved.clone();
        recovered.applied = sim.machine.applied;
        sim.incarnation += 1;
        let mut opts = Options::new(id);
        opts.heartbeat_ticks = self.opts.heartbeat_ticks;
        opts.election_ticks = self.opts.election_ticks;
        opts.seed = seed ^ (id << 32) ^ sim.incarnation;
        sim.driver = Some(Driver::new(Node::new(opts, recovered), store));
        sim.syncing = None;
        sim.incoming = None;
        let incarnation = sim.incarnation;
        let status = sim.node().map(|n| n.status());
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

    /// Crashes a node: it loses everything not synced (its last record possibly torn), its
    /// unflushed state machine and all volatile state.
    pub fn crash(&mut self, id: NodeId) {
        let Some(sim) = self.nodes.get_mut(&id) else { return };
        if !sim.is_up() {
            return;
        }
        sim.driver = None;
        sim.syncing = None;
        sim.incoming = None;
        sim.machine = Machine::default();
        sim.proposals.clear();
        sim.reads.clear();
        sim.inbox.clear();
        sim.paused = false;
        let tear = self.rng.next_u64();
        sim.disk.heal();
        sim.disk.crash(|pending| {
            if tear.is_multiple_of(2) { 0 } else { (tear as usize >> 8) % (pending + 1) }
        });
        self.trace(|| format!("node {id} crashes"));
    }

    /// Makes node `id`'s disk fail after `changes` more changes; the node crashes when its
    /// driver hits the failure.
    pub fn fail_disk_after(&mut self, id: NodeId, changes: u64) {
        if let Some(sim) = self.nodes.get_mut(&id).filter(|s| s.is_up()) {
            sim.disk.fail_after(changes);
        }
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

    /// Whether a message from `from` to `to` is lost now.
    fn lost(&mut self, from: NodeId, to: NodeId) -> bool {
        self.blocked.contains(&(from, to)) || self.rng.chance(self.drop_percent)
    }

    /// Sends a message over the simulated network.
    fn send(&mut self, envelope: Envelope) {
        if self.lost(envelope.from, envelope.to) {
            return;
        }
        let copies = if self.rng.chance(self.duplicate_percent) { 2 } else { 1 };
        for _ in 0..copies {
            let at = self.now + self.rng.between(self.opts.delay.0, self.opts.delay.1);
            self.schedule(at, Event::Deliver(envelope.clone()));
        }
        if self.rng.chance(self.hostile_percent) {
            let members: Vec<NodeId> = self.nodes.keys().copied().collect();
            if let Some((to, bad)) = hostile::variant(&envelope, &mut self.rng, &members) {
                let at = self.now + self.rng.between(self.opts.delay.0, self.opts.delay.1);
                self.schedule(at, Event::DeliverHostile(to, bad));
            }
        }
    }

    /// Delivers a hostile message: the node may refuse it (an error is fine here), and must
    /// stay safe whatever it does with it.
    fn deliver_hostile(&mut self, to: NodeId, envelope: Envelope) -> Result<(), String> {
        let Some(sim) = self.nodes.get_mut(&to) else { return Ok(()) };
        if sim.paused {
            return Ok(());
        }
        let Some(node) = sim.node_mut() else { return Ok(()) };
        self.hostile.0 += 1;
        if node.step(envelope).is_err() {
            self.hostile.1 += 1;
        }
        self.drive(to)
    }

    fn deliver(&mut self, envelope: Envelope) -> Result<(), String> {
        let to = envelope.to;
        let Some(sim) = self.nodes.get_mut(&to) else { return Ok(()) };
        if sim.paused {
            sim.inbox.push(envelope);
            return Ok(());
        }
        let Some(node) = sim.node_mut() else { return Ok(()) };
        *self.delivered.entry(kind(&envelope.message)).or_default() += 1;
        // Errors are for messages not meant for this node; the network never misroutes.
        node.step(envelope).map_err(|e| format!("node {to} rejected a message: {e}"))?;
        self.drive(to)
    }

    /// Crashes node `id` after its disk failed, as a node halts on a failed disk.
    fn disk_failed(&mut self, id: NodeId, error: String) {
        self.trace(|| format!("node {id} halts: {error}"));
        self.crash(id);
    }

    /// Runs the Ready loop of a node until a sync is pending or there is nothing to do.
    pub fn drive(&mut self, id: NodeId) -> Result<(), String> {
        loop {
            let Some(sim) = self.nodes.get_mut(&id) else { return Ok(()) };
            if sim.syncing.is_some() {
                break;
            }
            let Some(driver) = sim.driver.as_mut() else { return Ok(()) };
            if !driver.node.has_ready() {
                break;
            }
            let mut effects = Effects::default();
            let round = match driver.start(&mut effects) {
                Ok(Some(round)) => round,
                Ok(None) => break,
                Err(error) => {
                    self.disk_failed(id, error);
                    return Ok(());
                }
            };
            let node = &driver.node;
            let first_new = round.entries().first().map_or(u64::MAX, |e| e.index);
            self.checker.log(id, node.log(), first_new, false, node.term())?;
            if node.role() == crate::raft::Role::Leader {
                self.checker.leader_committed(node.term(), node.log(), node.log().commit);
            }
            let delay = match round.needs_sync() {
                true => self.rng.between(self.opts.fsync.0, self.opts.fsync.1),
                false => 0,
            };
            let incarnation = sim.incarnation;
            sim.syncing = Some(round);
            self.schedule(self.now + delay, Event::SyncDone(id, incarnation));
            self.perform(id, effects)?;
        }
        self.check_leader(id)
    }

    /// Completes a node's round: the sync is done; the driver sends, installs, applies.
    fn finish_sync(&mut self, id: NodeId) -> Result<(), String> {
        let sim = self.nodes.get_mut(&id).ok_or("no node")?;
        let Some(round) = sim.syncing.take() else { return Ok(()) };
        let Some(driver) = sim.driver.as_mut() else { return Ok(()) };
        let mut effects = Effects::default();
        if let Err(error) = driver.finish(round, &mut effects) {
            self.disk_failed(id, error);
            return Ok(());
        }
        self.perform(id, effects)?;
        self.maybe_flush(id)?;
        self.drive(id)
    }

    /// Flushes the state machine every so often, and compacts the log up to a flush.
    fn maybe_flush(&mut self, id: NodeId) -> Result<(), String> {
        let (flush_every, snapshot_every) = (self.opts.flush_every, self.opts.snapshot_every);
        let Some(sim) = self.nodes.get_mut(&id) else { return Ok(()) };
        if sim.machine.applied >= sim.saved.applied + flush_every {
            sim.saved = sim.machine.clone();
        }
        let saved = sim.saved.applied;
        let Some(node) = sim.node_mut() else { return Ok(()) };
        if saved >= node.log().snapshot().index + snapshot_every && saved <= node.log().applied {
            node.compact(saved).map_err(|e| format!("node {id} cannot compact: {e}"))?;
        }
        Ok(())
    }

    /// Records a new leader and checks it against the committed entries.
    fn check_leader(&mut self, id: NodeId) -> Result<(), String> {
        let Some(node) = self.nodes.get(&id).and_then(|s| s.node()) else { return Ok(()) };
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
                    && let Some(node) = sim.node_mut()
                {
                    node.tick();
                }
                self.schedule(at + tick, Event::Tick(id, incarnation));
                self.drive(id)?;
            }
            Event::Deliver(envelope) => self.deliver(envelope)?,
            Event::DeliverHostile(to, envelope) => self.deliver_hostile(to, envelope)?,
            Event::SyncDone(id, incarnation) => {
                if self.nodes.get(&id).is_some_and(|s| s.incarnation == incarnation && s.is_up()) {
                    self.finish_sync(id)?;
                }
            }
            Event::Chunk(chunk) => self.receive_chunk(chunk)?,
            Event::SnapshotDone { leader, incarnation, to, sent } => {
                let Some(sim) = self.nodes.get_mut(&leader) else { return Ok(true) };
                if sim.incarnation == incarnation
                    && let Some(node) = sim.node_mut()
                {
                    node.report_snapshot(to, sent);
                    self.drive(leader)?;
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
            .filter_map(|(id, sim)| sim.node().map(|n| (n.term(), *id, n.role())))
            .filter(|(_, _, role)| *role == crate::raft::Role::Leader)
            .map(|(term, id, _)| (term, id))
            .max()
            .map(|(_, id)| id)
    }

    /// The running node `id`.
    pub fn node(&self, id: NodeId) -> Option<&Node> {
        self.nodes.get(&id).and_then(|s| s.node())
    }

    /// Proposes a new command at node `id`; returns the command id and where it went.
    pub fn propose(&mut self, id: NodeId) -> Result<(u64, Index, Term), Error> {
        let command = self.next_command;
        let now = self.now;
        let sim = self.nodes.get_mut(&id).ok_or(Error::InvalidRequest("no node".into()))?;
        let node = sim.node_mut().ok_or(Error::InvalidRequest("node down".into()))?;
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
        let node = sim.node_mut().ok_or(Error::InvalidRequest("node down".into()))?;
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
            .and_then(|s| s.node_mut())
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

    /// The members of the leader's configuration (every node when there is no leader).
    pub fn members(&self) -> BTreeSet<NodeId> {
        match self.leader().and_then(|l| self.node(l)) {
            Some(node) => node.status().config.members().collect(),
            None => self.nodes.keys().copied().collect(),
        }
    }

    /// Whether every running member has applied `index`.
    pub fn all_applied(&self, index: Index) -> bool {
        let members = self.members();
        self.nodes
            .iter()
            .filter(|(id, s)| s.is_up() && members.contains(id))
            .all(|(_, s)| s.machine.applied >= index)
    }
}
