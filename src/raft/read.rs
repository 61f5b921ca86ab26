//! Linearizable reads without log writes (ReadIndex, thesis 6.4).
//!
//! The leader records its commit index for the read, then confirms it is still leader with a
//! round of heartbeats: once a quorum of voters has answered a heartbeat of that round, no
//! other leader can have committed anything newer, and the read may be served by any node
//! that has applied up to the recorded index. A new leader first waits until an entry of its
//! own term is committed, since only then does it know the commit index. A follower forwards
//! the request to the leader and serves the read locally with the index it gets back.
//!
//! Reads that arrive between two `Ready`s share one heartbeat round.

use super::message::Message;
use super::node::{Node, PendingRead, ReadState, RoleState};
use super::{Error, NodeId, Result};

impl Node {
    /// Asks for a read index for request `request` (an id chosen by the caller). The answer
    /// comes in a later `Ready`: a [`ReadState`] to serve once applied that far, or a failure.
    pub fn read_index(&mut self, request: u64) -> Result<()> {
        match &self.role {
            RoleState::Leader(_) => {
                self.leader_read(None, request);
                Ok(())
            }
            _ => match self.leader {
                Some(leader) => {
                    self.send(leader, Message::ReadIndex { request });
                    Ok(())
                }
                None => Err(Error::NotLeader { leader: None }),
            },
        }
    }

    /// Leader: a follower forwarded a read.
    pub(super) fn on_read_index(&mut self, from: NodeId, request: u64) {
        if matches!(self.role, RoleState::Leader(_)) {
            self.leader_read(Some(from), request);
        } else {
            self.send(from, Message::ReadIndexResponse { request, index: None });
        }
    }

    /// Leader: queues a read for confirmation (or until this term has a committed entry).
    fn leader_read(&mut self, from: Option<NodeId>, request: u64) {
        let committed_this_term = self.log.term(self.log.commit) == Some(self.term);
        let single_voter = self.config.quorum() == 1;
        let commit = self.log.commit;
        let RoleState::Leader(leader) = &mut self.role else { return };
        if !committed_this_term {
            leader.early_reads.push((from, request));
            return;
        }
        if single_voter {
            // No one else can be leader: the read is safe at once.
            self.answer_read(from, request, commit);
            return;
        }
        let seq = leader.read_seq + 1;
        leader.read_round_due = true;
        leader.pending_reads.push_back(PendingRead { from, request, index: commit, seq });
    }

    /// Leader: the first entry of this term committed; queue the reads that waited for it.
    pub(super) fn release_early_reads(&mut self) {
        let RoleState::Leader(leader) = &mut self.role else { return };
        for (from, request) in std::mem::take(&mut leader.early_reads) {
            self.leader_read(from, request);
        }
    }

    /// Leader: starts the heartbeat round that confirms the reads queued since the last one.
    pub(super) fn start_read_round(&mut self) {
        let RoleState::Leader(leader) = &mut self.role else { return };
        if !leader.read_round_due {
            return;
        }
        leader.read_round_due = false;
        leader.read_seq += 1;
        self.broadcast_heartbeat();
    }

    /// Leader: answers the reads whose round a quorum has confirmed.
    pub(super) fn process_reads(&mut self) {
        let quorum = self.config.quorum();
        let RoleState::Leader(leader) = &mut self.role else { return };
        let mut ready = Vec::new();
        while let Some(read) = leader.pending_reads.front() {
            let acks = 1 + self
                .config
                .voters
                .iter()
                .filter(|v| leader.progress.get(v).is_some_and(|p| p.read_ack >= read.seq))
                .count();
            if acks < quorum {
                break;
            }
            if let Some(read) = leader.pending_reads.pop_front() {
                ready.push(read);
            }
        }
        for read in ready {
            self.answer_read(read.from, read.request, read.index);
        }
    }

    fn answer_read(&mut self, from: Option<NodeId>, request: u64, index: super::Index) {
        match from {
            None => self.read_states.push(ReadState { request, index }),
            Some(follower) => {
                self.send(follower, Message::ReadIndexResponse { request, index: Some(index) })
            }
        }
    }
}
