//! What Raft nodes exchange and store: log entries, configurations, hard state, snapshot
//! metadata and messages.

use super::{Index, NodeId, Term};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// A log entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The entry's position in the log (from 1).
    pub index: Index,
    /// The term of the leader that created it.
    pub term: Term,
    /// What the entry carries.
    pub payload: Payload,
}

impl Entry {
    /// About how many bytes the entry takes in a message or on disk (its payload plus a
    /// fixed allowance for the rest): what byte limits count.
    pub fn size(&self) -> usize {
        let payload = match &self.payload {
            Payload::Noop => 0,
            Payload::Command(bytes) => bytes.len(),
            Payload::Config(config) => 8 * (config.voters.len() + config.learners.len()),
        };
        payload + 32
    }
}

/// The content of a log entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Payload {
    /// Appended by a new leader, so it can commit entries of its term (and earlier ones).
    Noop,
    /// An application command, opaque to Raft.
    Command(Vec<u8>),
    /// A new cluster configuration, in effect as soon as it is in a node's log.
    Config(Configuration),
}

/// The members of a cluster. Voters elect leaders and count towards quorums; learners only
/// receive the log.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Configuration {
    /// Members that vote and count towards commit and read quorums.
    pub voters: BTreeSet<NodeId>,
    /// Members that replicate the log without voting.
    pub learners: BTreeSet<NodeId>,
}

/// A single-server membership change.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConfChange {
    /// Add a node as a learner.
    AddLearner(NodeId),
    /// Make a learner a voter.
    Promote(NodeId),
    /// Remove a voter or learner.
    Remove(NodeId),
}

impl Configuration {
    /// A configuration of voters only.
    pub fn voters(ids: impl IntoIterator<Item = NodeId>) -> Self {
        Self { voters: ids.into_iter().collect(), learners: BTreeSet::new() }
    }

    /// The number of voters that make a majority.
    pub fn quorum(&self) -> usize {
        self.voters.len() / 2 + 1
    }

    /// Whether the node is a voter or a learner.
    pub fn contains(&self, id: NodeId) -> bool {
        self.voters.contains(&id) || self.learners.contains(&id)
    }

    /// Every member, voters and learners, in increasing id order.
    pub fn members(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.voters.union(&self.learners).copied()
    }

    /// The configuration after a change, or why the change is not valid.
    pub fn apply(&self, change: ConfChange) -> Result<Configuration, String> {
        let mut next = self.clone();
        match change {
            ConfChange::AddLearner(id) => {
                if self.contains(id) {
                    return Err(format!("node {id} is already a member"));
                }
                next.learners.insert(id);
            }
            ConfChange::Promote(id) => {
                if !self.learners.contains(&id) {
                    return Err(format!("node {id} is not a learner"));
                }
                next.learners.remove(&id);
                next.voters.insert(id);
            }
            ConfChange::Remove(id) => {
                if !self.contains(id) {
                    return Err(format!("node {id} is not a member"));
                }
                next.voters.remove(&id);
                next.learners.remove(&id);
                if next.voters.is_empty() {
                    return Err("cannot remove the last voter".into());
                }
            }
        }
        Ok(next)
    }
}

/// The state a node must persist before it answers a vote or acknowledges entries.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HardState {
    /// The current term.
    pub term: Term,
    /// Whom the node voted for in this term.
    pub vote: Option<NodeId>,
    /// The highest index known committed (persisted lazily: restarts resume from it).
    pub commit: Index,
}

/// What a snapshot replaces: the log up to `index`, and the configuration in effect there.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotMeta {
    /// The last log index the snapshot covers.
    pub index: Index,
    /// The term of that entry.
    pub term: Term,
    /// The configuration at that index.
    pub config: Configuration,
}

/// A message between nodes. `term` is the sender's term (for pre-votes: the term it would
/// campaign in).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// The sender.
    pub from: NodeId,
    /// The recipient.
    pub to: NodeId,
    /// The sender's term.
    pub term: Term,
    /// The message.
    pub message: Message,
}

/// The messages of the protocol. Each variant says who sends it and when.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message {
    /// A follower whose election timer fired asks whether it could win an election in the next
    /// term, without disrupting anyone (thesis 9.6). Sent with `term` = current term + 1.
    PreVote {
        /// The sender's last log index.
        last_index: Index,
        /// The term of that entry.
        last_term: Term,
    },
    /// The answer to a pre-vote.
    PreVoteResponse {
        /// Whether the vote would be granted.
        granted: bool,
    },
    /// A candidate asks for a vote.
    Vote {
        /// The candidate's last log index.
        last_index: Index,
        /// The term of that entry.
        last_term: Term,
        /// The election follows a leadership transfer: voters ignore their leader lease.
        transfer: bool,
    },
    /// The answer to a vote request (sent after the vote is persisted).
    VoteResponse {
        /// Whether the vote was granted.
        granted: bool,
    },
    /// The leader replicates entries following `prev_index`.
    Append {
        /// The index before the first entry.
        prev_index: Index,
        /// The term of that entry.
        prev_term: Term,
        /// The entries (possibly none, to probe).
        entries: Vec<Entry>,
        /// The leader's commit index.
        commit: Index,
    },
    /// A follower's answer to an append (a success is sent after the entries are persisted).
    AppendResponse {
        /// Accepted, or rejected with a hint for backtracking.
        result: AppendResult,
    },
    /// The leader asserts leadership, advances commit, and confirms reads.
    Heartbeat {
        /// The commit index, capped at what the follower is known to have.
        commit: Index,
        /// The read round this heartbeat confirms.
        read_seq: u64,
    },
    /// A follower's answer to a heartbeat.
    HeartbeatResponse {
        /// The read round acknowledged.
        read_seq: u64,
    },
    /// A follower asks the leader for a read index on behalf of its client.
    ReadIndex {
        /// The follower's request id.
        request: u64,
    },
    /// The leader's answer to a forwarded read: the index to wait for, or a refusal.
    ReadIndexResponse {
        /// The follower's request id.
        request: u64,
        /// The read index, or `None` if the leader could not serve it.
        index: Option<Index>,
    },
    /// The leader tells a caught-up voter to campaign at once (leadership transfer).
    TimeoutNow,
}

/// The outcome of an append, as reported to the leader.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AppendResult {
    /// The follower's log matches the leader's up to `match_index`.
    Accepted {
        /// The last index known to match.
        match_index: Index,
    },
    /// The entry at `rejected` did not match. The hint lets the leader skip a whole term at a
    /// time (thesis 5.3): the follower's last index, and the term of its entry at `rejected`
    /// with the first index it holds of that term.
    Rejected {
        /// The `prev_index` of the rejected append.
        rejected: Index,
        /// The follower's last index.
        last_index: Index,
        /// The follower's term at `rejected` and the first index of that term, if it has one.
        conflict: Option<(Term, Index)>,
    },
}
