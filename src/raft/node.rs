//! The Raft node: a pure state machine. It never performs I/O, reads a clock or spawns
//! anything; it changes state in response to inputs and queues outputs for the driver:
//!
//! - inputs: [`Node::tick`], [`Node::step`], [`Node::propose`], [`Node::propose_conf_change`],
//!   [`Node::read_index`], [`Node::transfer_leadership`], [`Node::compact`],
//!   [`Node::install_snapshot`], [`Node::report_snapshot`];
//! - outputs: [`Node::ready`] returns a [`Ready`] batch, and [`Node::advance`] says it was handled.
//!
//! The driver handles a `Ready` in this order: persist `snapshot`, `entries`, `hard_state` and
//! `compact`, then sync (fsync); send `messages` (these may also go out before the sync); start
//! streaming the state to each of `send_snapshots`; switch the state machine to the received
//! `snapshot`; send `persisted_messages` only after the sync (they promise durable state:
//! votes, acknowledged entries); apply `committed` entries in order; serve `read_states` once
//! applied that far; then call `advance`. `raft::Driver` does exactly this for every host. Only one `Ready` is outstanding at a time, so everything that happens
//! during a sync is persisted together by the next one (group commit).

use super::log::RaftLog;
use super::message::{
    ConfChange, Configuration, Entry, Envelope, HardState, Message, Payload, SnapshotMeta,
};
use super::progress::Progress;
use super::{Error, Index, NodeId, Result, Term, Ticks};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// Tunables of a node. Times are in ticks; the driver decides how long a tick is.
#[derive(Clone, Debug)]
pub struct Options {
    /// This node's id.
    pub id: NodeId,
    /// Ticks between leader heartbeats.
    pub heartbeat_ticks: Ticks,
    /// The base election timeout; each wait is drawn from `[election_ticks, 2 * election_ticks)`.
    pub election_ticks: Ticks,
    /// The most entries in one append.
    pub max_append_entries: usize,
    /// The most bytes of entries in one append (an entry larger than this goes alone).
    pub max_append_bytes: usize,
    /// The largest entry the leader accepts.
    pub max_entry_bytes: usize,
    /// The most appends in flight to a follower that is replicating.
    pub max_inflight: usize,
    /// Ticks to wait after a failed snapshot transfer before starting another.
    pub snapshot_retry_ticks: Ticks,
    /// About the most bytes of committed entries one `Ready` hands out (at least one entry).
    pub max_committed_bytes: usize,
    /// Seeds the generator that randomizes election timeouts (the core has no randomness of
    /// its own: the same seed gives the same timeouts).
    pub seed: u64,
}

impl Options {
    /// Defaults for a node: heartbeats every tick, elections after 10-20 ticks.
    pub fn new(id: NodeId) -> Self {
        Self {
            id,
            heartbeat_ticks: super::HEARTBEAT_TICKS,
            election_ticks: super::ELECTION_TICKS,
            max_append_entries: super::MAX_APPEND_ENTRIES,
            max_append_bytes: super::MAX_APPEND_BYTES,
            max_entry_bytes: super::MAX_ENTRY_BYTES,
            max_inflight: super::MAX_INFLIGHT,
            snapshot_retry_ticks: super::SNAPSHOT_RETRY_TICKS,
            max_committed_bytes: super::MAX_COMMITTED_BYTES,
            seed: id,
        }
    }
}

/// What a node recovers from storage on start.
#[derive(Clone, Debug, Default)]
pub struct Recovered {
    /// Term, vote and commit index.
    pub hard_state: HardState,
    /// The snapshot the log starts after (its configuration is the initial one for a new log).
    pub snapshot: SnapshotMeta,
    /// The entries after the snapshot.
    pub entries: Vec<Entry>,
    /// The index the (durable) state machine has applied: entries up to it are committed and
    /// are not handed out again.
    pub applied: Index,
}

/// A node's role.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Role {
    /// Follows a leader (or waits for one).
    Follower,
    /// Asks, with a pre-vote, whether it could win an election.
    PreCandidate,
    /// Campaigns for votes.
    Candidate,
    /// Leads the cluster.
    Leader,
}

/// Role-specific state.
pub(super) enum RoleState {
    Follower,
    PreCandidate { granted: BTreeSet<NodeId>, rejected: BTreeSet<NodeId> },
    Candidate { granted: BTreeSet<NodeId>, rejected: BTreeSet<NodeId> },
    Leader(Box<LeaderState>),
}

/// What only a leader tracks.
pub(super) struct LeaderState {
    /// Replication progress of every other member.
    pub progress: BTreeMap<NodeId, Progress>,
    /// Ticks since the last heartbeat.
    pub heartbeat_elapsed: Ticks,
    /// Ticks since the last check-quorum round.
    pub quorum_elapsed: Ticks,
    /// A leadership transfer in progress: the target and ticks since it began.
    pub transfer: Option<(NodeId, Ticks)>,
    /// The current read round; heartbeats carry it and followers echo it.
    pub read_seq: u64,
    /// Reads are waiting for a round that has not started (it starts at the next `ready`).
    pub read_round_due: bool,
    /// Reads waiting for a heartbeat quorum of their round.
    pub pending_reads: VecDeque<PendingRead>,
    /// Reads waiting until an entry of this term commits.
    pub early_reads: Vec<(Option<NodeId>, u64)>,
}

/// A read waiting for leadership to be confirmed.
pub(super) struct PendingRead {
    /// The follower that asked, or `None` for this node's own client.
    pub from: Option<NodeId>,
    /// The request id.
    pub request: u64,
    /// The commit index when the read arrived: the state it must reflect.
    pub index: Index,
    /// The read round whose quorum confirms it.
    pub seq: u64,
}

/// A read that may be served once the state machine has applied `index`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadState {
    /// The request id given to [`Node::read_index`].
    pub request: u64,
    /// The index the read must wait for.
    pub index: Index,
}

/// Notable changes, for logs and consoles.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Event {
    /// An election started in `term`.
    ElectionStarted {
        /// The new term.
        term: Term,
    },
    /// This node became leader.
    BecameLeader {
        /// Its term.
        term: Term,
    },
    /// This node learned of a new leader.
    LeaderChanged {
        /// The term.
        term: Term,
        /// The leader, if known.
        leader: Option<NodeId>,
    },
    /// A snapshot was installed from the leader.
    SnapshotInstalled {
        /// Its last index.
        index: Index,
    },
    /// The log was compacted up to `index`.
    Compacted {
        /// The snapshot index.
        index: Index,
    },
    /// A new configuration took effect.
    ConfigChanged {
        /// The entry carrying it.
        index: Index,
    },
}

/// A batch of outputs for the driver (see the module docs for the order to handle them in).
#[derive(Clone, Debug, Default)]
pub struct Ready {
    /// Term, vote and commit to persist, if changed.
    pub hard_state: Option<HardState>,
    /// Entries to append. An entry whose index is already in the stored log replaces it and
    /// everything after it. With `snapshot` or `compact`, these are all the entries kept after
    /// the snapshot.
    pub entries: Vec<Entry>,
    /// A snapshot received from the leader (its data staged by the driver): persist it and
    /// switch the state machine to it (before applying `committed`).
    pub snapshot: Option<SnapshotMeta>,
    /// A local compaction to record: entries up to this index may be dropped from storage.
    pub compact: Option<SnapshotMeta>,
    /// Messages that may be sent at once.
    pub messages: Vec<Envelope>,
    /// Followers that need the state machine's state streamed to them (their log is gone
    /// here); report each transfer's end with [`Node::report_snapshot`].
    pub send_snapshots: Vec<NodeId>,
    /// Messages to send only after the above is durable.
    pub persisted_messages: Vec<Envelope>,
    /// Committed entries to apply, in order.
    pub committed: Vec<Entry>,
    /// Reads that are safe once the state machine has applied their index.
    pub read_states: Vec<ReadState>,
    /// Reads that failed (no leader, leadership lost): the client should retry.
    pub read_failures: Vec<u64>,
    /// What changed, for logs and consoles.
    pub events: Vec<Event>,
}

impl Ready {
    /// Whether there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.hard_state.is_none()
            && self.entries.is_empty()
            && self.snapshot.is_none()
            && self.compact.is_none()
            && self.messages.is_empty()
            && self.send_snapshots.is_empty()
            && self.persisted_messages.is_empty()
            && self.committed.is_empty()
            && self.read_states.is_empty()
            && self.read_failures.is_empty()
            && self.events.is_empty()
    }
}

/// A follower's replication, as the leader sees it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PeerStatus {
    /// The highest index known to match.
    pub match_index: Index,
    /// The next index to send.
    pub next_index: Index,
    /// Ticks since it last answered.
    pub last_contact: Ticks,
    /// Whether it is a voter.
    pub voter: bool,
    /// Ticks it has been behind the leader's log without its match index moving (0 when it
    /// is caught up or progressing): a follower that answers but never catches up shows here.
    pub stalled: Ticks,
    /// The leader is streaming it a snapshot.
    pub receiving_snapshot: bool,
}

/// A snapshot of a node's state.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Status {
    /// The node.
    pub id: NodeId,
    /// Its role.
    pub role: Role,
    /// Its term.
    pub term: Term,
    /// The leader it knows of.
    pub leader: Option<NodeId>,
    /// Whom it voted for in this term.
    pub vote: Option<NodeId>,
    /// The first index in its log.
    pub first_index: Index,
    /// Its last index.
    pub last_index: Index,
    /// Its commit index.
    pub commit_index: Index,
    /// The highest index handed to the state machine.
    pub applied_index: Index,
    /// The configuration in effect.
    pub config: Configuration,
    /// On a leader, each other member's replication.
    pub peers: BTreeMap<NodeId, PeerStatus>,
}

/// Marks what the outstanding `Ready` covered, for `advance`.
#[derive(Clone, Copy, Debug)]
pub(super) struct InFlight {
    stable: Index,
    applying: Index,
    hard_state: HardState,
}

/// A Raft node (see the module docs).
pub struct Node {
    pub(super) opts: Options,
    pub(super) term: Term,
    pub(super) vote: Option<NodeId>,
    pub(super) leader: Option<NodeId>,
    pub(super) role: RoleState,
    pub(super) log: RaftLog,
    /// The configuration in effect and the index of the entry that set it.
    pub(super) config: Configuration,
    pub(super) config_index: Index,
    /// Ticks since the last election timeout reset (hearing from a leader, granting a vote).
    pub(super) election_elapsed: Ticks,
    /// The current randomized election timeout.
    pub(super) election_timeout: Ticks,
    /// The generator of election timeouts, seeded by the caller.
    rng: crate::rng::Rng,
    /// The hard state as last persisted (or handed out to persist).
    pub(super) persisted_hard_state: HardState,
    /// A received snapshot to hand to the driver.
    pub(super) install: Option<SnapshotMeta>,
    /// Committed entries are handed out up to here (the driver keeps it a window ahead of
    /// what the state machine has applied, so a slow state machine bounds the queue).
    pub(super) apply_limit: Index,
    /// Followers that need a snapshot streamed to them.
    pub(super) snapshot_requests: Vec<NodeId>,
    /// A local compaction to hand to the driver.
    pub(super) compaction: Option<SnapshotMeta>,
    pub(super) messages: Vec<Envelope>,
    pub(super) persisted_messages: Vec<Envelope>,
    pub(super) read_states: Vec<ReadState>,
    pub(super) read_failures: Vec<u64>,
    pub(super) events: Vec<Event>,
    in_flight: Option<InFlight>,
}

impl Node {
    /// Starts a node from what it recovered. A brand-new node passes a `Recovered` whose
    /// snapshot carries the initial configuration.
    pub fn new(opts: Options, recovered: Recovered) -> Self {
        let log = RaftLog::recover(
            recovered.snapshot,
            recovered.entries,
            recovered.hard_state.commit,
            recovered.applied,
        );
        let (config_index, config) = log.config();
        let mut node = Self {
            term: recovered.hard_state.term,
            vote: recovered.hard_state.vote,
            leader: None,
            role: RoleState::Follower,
            config,
            config_index,
            election_elapsed: 0,
            election_timeout: opts.election_ticks,
            rng: crate::rng::Rng::new(opts.seed ^ 0x853c_49e6_748f_ea9b),
            persisted_hard_state: HardState {
                term: recovered.hard_state.term,
                vote: recovered.hard_state.vote,
                commit: log.commit,
            },
            install: None,
            snapshot_requests: Vec::new(),
            compaction: None,
            messages: Vec::new(),
            persisted_messages: Vec::new(),
            read_states: Vec::new(),
            read_failures: Vec::new(),
            events: Vec::new(),
            in_flight: None,
            apply_limit: Index::MAX,
            log,
            opts,
        };
        node.reset_election_timer();
        node
    }

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.opts.id
    }

    /// The current term.
    pub fn term(&self) -> Term {
        self.term
    }

    /// The node's role.
    pub fn role(&self) -> Role {
        match self.role {
            RoleState::Follower => Role::Follower,
            RoleState::PreCandidate { .. } => Role::PreCandidate,
            RoleState::Candidate { .. } => Role::Candidate,
            RoleState::Leader(_) => Role::Leader,
        }
    }

    /// The leader this node knows of.
    pub fn leader(&self) -> Option<NodeId> {
        self.leader
    }

    /// Restarts the election timer with a new random timeout.
    pub(super) fn reset_election_timer(&mut self) {
        self.election_elapsed = 0;
        let base = self.opts.election_ticks.max(1);
        self.election_timeout = base + (self.rng.next_u64() % u64::from(base)) as Ticks;
    }

    /// Queues a message to send at once.
    pub(super) fn send(&mut self, to: NodeId, message: Message) {
        self.messages.push(Envelope { from: self.opts.id, to, term: self.term, message });
    }

    /// Queues a message to send once this node's state is durable.
    pub(super) fn send_persisted(&mut self, to: NodeId, message: Message) {
        self.persisted_messages.push(Envelope { from: self.opts.id, to, term: self.term, message });
    }

    /// Advances logical time by one tick.
    pub fn tick(&mut self) {
        match self.role {
            RoleState::Leader(_) => self.tick_leader(),
            _ => self.tick_election(),
        }
    }

    /// Appends a command to the log (on the leader). Returns its index and term: the command
    /// is committed if the entry at that index, when applied, has that term.
    pub fn propose(&mut self, command: Vec<u8>) -> Result<(Index, Term)> {
        let size = command.len() + 32;
        if size > self.opts.max_entry_bytes {
            return Err(Error::TooLarge { size, limit: self.opts.max_entry_bytes });
        }
        self.append_as_leader(Payload::Command(command))
    }

    /// Proposes a membership change (one at a time, and only once an entry of the leader's
    /// term has committed).
    pub fn propose_conf_change(&mut self, change: ConfChange) -> Result<(Index, Term)> {
        if !matches!(self.role, RoleState::Leader(_)) {
            return Err(Error::NotLeader { leader: self.leader });
        }
        if self.config_index > self.log.commit {
            return Err(Error::ConfChangeInProgress);
        }
        if self.log.term(self.log.commit) != Some(self.term) {
            return Err(Error::ConfChangeInProgress);
        }
        let config = self.config.apply(change).map_err(Error::InvalidConfChange)?;
        self.append_as_leader(Payload::Config(config))
    }

    /// Records that the state machine's state is durable up to `index` (which must have been
    /// handed out for applying): the log up to it can go. A follower that needs what is
    /// dropped gets the state streamed instead.
    pub fn compact(&mut self, index: Index) -> Result<()> {
        if index > self.log.applied {
            return Err(Error::InvalidRequest(format!(
                "cannot compact to {index}: only {} applied",
                self.log.applied
            )));
        }
        if index <= self.log.snapshot().index {
            return Ok(());
        }
        let term = self
            .log
            .term(index)
            .ok_or_else(|| Error::InvalidRequest(format!("no entry at {index}")))?;
        let config = self.log.config_at(index);
        let meta = SnapshotMeta { index, term, config };
        self.log.compact(meta.clone());
        self.compaction = Some(meta);
        self.events.push(Event::Compacted { index });
        Ok(())
    }

    /// Recomputes the configuration from the log after entries were added, truncated or
    /// replaced by a snapshot.
    pub(super) fn refresh_config(&mut self) {
        let (index, config) = self.log.config();
        if index != self.config_index || config != self.config {
            self.config_index = index;
            self.config = config;
            self.events.push(Event::ConfigChanged { index });
            self.on_config_change();
        }
    }

    /// Hands out committed entries only up to `index` (the driver keeps this a window ahead of
    /// what its state machine has applied: a state machine that falls behind holds committed
    /// entries back in the log instead of in a queue).
    pub fn limit_apply(&mut self, index: Index) {
        self.apply_limit = index;
    }

    /// Whether a `Ready` has something to do.
    pub fn has_ready(&self) -> bool {
        let read_round_due =
            matches!(&self.role, RoleState::Leader(leader) if leader.read_round_due);
        self.in_flight.is_none()
            && (read_round_due
                || self.hard_state() != self.persisted_hard_state
                || !self.log.unstable().is_empty()
                || self.install.is_some()
                || self.compaction.is_some()
                || !self.snapshot_requests.is_empty()
                || !self.messages.is_empty()
                || !self.persisted_messages.is_empty()
                || self.log.commit.min(self.apply_limit) > self.log.applying
                || !self.read_states.is_empty()
                || !self.read_failures.is_empty()
                || !self.events.is_empty())
    }

    fn hard_state(&self) -> HardState {
        HardState { term: self.term, vote: self.vote, commit: self.log.commit }
    }

    /// Takes the pending outputs. Call [`Node::advance`] once they are handled.
    pub fn ready(&mut self) -> Ready {
        assert!(self.in_flight.is_none(), "ready() called before advance()");
        self.start_read_round();
        let hard_state = self.hard_state();
        let committed = self.log.slice_bounded(
            self.log.applying + 1,
            self.log.commit.min(self.apply_limit),
            usize::MAX,
            self.opts.max_committed_bytes,
        );
        let handed_out = committed.last().map_or(self.log.applying, |e| e.index);
        let snapshot = self.install.take();
        let compact = self.compaction.take();
        // With a snapshot or compaction, the store writes a checkpoint holding every entry
        // kept after it; otherwise only what is not yet persisted.
        let entries = match snapshot.is_some() || compact.is_some() {
            true => {
                self.log.slice(self.log.first_index(), self.log.last_index(), usize::MAX).to_vec()
            }
            false => self.log.unstable().to_vec(),
        };
        let ready = Ready {
            hard_state: (hard_state != self.persisted_hard_state).then_some(hard_state),
            entries,
            snapshot,
            compact,
            messages: std::mem::take(&mut self.messages),
            send_snapshots: std::mem::take(&mut self.snapshot_requests),
            persisted_messages: std::mem::take(&mut self.persisted_messages),
            read_states: std::mem::take(&mut self.read_states),
            read_failures: std::mem::take(&mut self.read_failures),
            events: std::mem::take(&mut self.events),
            committed,
        };
        self.log.applying = handed_out.max(self.log.applying);
        self.log.truncated = None;
        self.in_flight = Some(InFlight {
            stable: self.log.last_index(),
            applying: self.log.applying,
            hard_state,
        });
        ready
    }

    /// Acknowledges the last `Ready`: its state is durable and its entries applied.
    pub fn advance(&mut self) {
        let Some(done) = self.in_flight.take() else { return };
        // Entries replaced while the Ready was out are not stable, whatever it wrote: only
        // what precedes the truncation point is.
        let stable =
            done.stable.min(self.log.last_index()).min(self.log.truncated.unwrap_or(Index::MAX));
        self.log.stable = self.log.stable.max(stable);
        self.log.applied = self.log.applied.max(done.applying);
        self.persisted_hard_state = done.hard_state;
        // The leader's own entries count towards commit only once persisted.
        if matches!(self.role, RoleState::Leader(_)) {
            self.maybe_commit();
        }
    }

    /// The node's status.
    pub fn status(&self) -> Status {
        let peers = match &self.role {
            RoleState::Leader(leader) => leader
                .progress
                .iter()
                .map(|(id, p)| {
                    let status = PeerStatus {
                        match_index: p.match_index,
                        next_index: p.next_index,
                        last_contact: p.last_contact,
                        voter: self.config.voters.contains(id),
                        stalled: p.lagging,
                        receiving_snapshot: matches!(
                            p.state,
                            super::progress::ReplicationState::Snapshot { .. }
                        ),
                    };
                    (*id, status)
                })
                .collect(),
            _ => BTreeMap::new(),
        };
        Status {
            id: self.opts.id,
            role: self.role(),
            term: self.term,
            leader: self.leader,
            vote: self.vote,
            first_index: self.log.first_index(),
            last_index: self.log.last_index(),
            commit_index: self.log.commit,
            applied_index: self.log.applied,
            config: self.config.clone(),
            peers,
        }
    }

    /// The log, for inspection (tests and status pages).
    pub fn log(&self) -> &RaftLog {
        &self.log
    }
}
