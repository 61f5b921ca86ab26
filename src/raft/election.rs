//! Terms, elections and roles: message dispatch, pre-vote, votes, check-quorum, leader ticks
//! and leadership transfer.

use super::message::{Envelope, Message, Payload};
use super::node::{Event, LeaderState, Node, RoleState};
use super::progress::Progress;
use super::{Error, MAX_TERM, MAX_TERM_STEP, NodeId, Result, Term};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

impl Node {
    /// Processes a message from another node. Messages addressed to someone else, with a term
    /// beyond [`MAX_TERM`] or of an unknown shape are refused before they touch any state: a
    /// peer can never make a node panic. A node outside the configuration cannot start or force
    /// an election here (its votes and `TimeoutNow` are dropped); its leader messages are still
    /// heard, as a node whose configuration lags must hear the leader of a newer one (the
    /// transport admits only authenticated cluster nodes).
    pub fn step(&mut self, msg: Envelope) -> Result<()> {
        if msg.to != self.opts.id || msg.from == self.opts.id {
            return Err(Error::InvalidRequest(format!(
                "message from {} to {} delivered to {}",
                msg.from, msg.to, self.opts.id
            )));
        }
        if !self.plausible_term(msg.term) {
            return Err(Error::InvalidRequest(format!(
                "message from {} with term {}, too far past ours ({}) or the highest possible",
                msg.from, msg.term, self.term
            )));
        }
        let configured = !self.config.voters.is_empty() || !self.config.learners.is_empty();
        let electoral = matches!(
            msg.message,
            Message::PreVote { .. } | Message::Vote { .. } | Message::TimeoutNow
        );
        if electoral && configured && !self.config.contains(msg.from) {
            return Ok(()); // e.g. a removed node that does not know it was removed
        }
        if msg.term > self.term {
            match &msg.message {
                // Pre-votes are answered without changing term; a granted pre-vote carries the
                // term the candidate would campaign in.
                Message::PreVote { .. } | Message::PreVoteResponse { granted: true } => {}
                // A node that hears from a live leader ignores a disruptive candidate (thesis
                // 4.2.3), unless the leader itself asked for the election (transfer).
                Message::Vote { transfer: false, .. } if self.in_lease() => return Ok(()),
                _ => {
                    let leader =
                        matches!(msg.message, Message::Append { .. } | Message::Heartbeat { .. })
                            .then_some(msg.from);
                    self.become_follower(msg.term, leader);
                }
            }
        } else if msg.term < self.term {
            match msg.message {
                // A stale leader: answer with our term so it steps down.
                Message::Append { .. } | Message::Heartbeat { .. } => {
                    self.send(msg.from, Message::HeartbeatResponse { read_seq: 0 });
                }
                // A stale pre-candidate learns our term from the rejection.
                Message::PreVote { .. } => {
                    self.send(msg.from, Message::PreVoteResponse { granted: false })
                }
                // Anything else from a past term is outdated: drop it.
                _ => {}
            }
            return Ok(());
        }

        match msg.message {
            Message::PreVote { last_index, last_term } => {
                let granted = msg.term > self.term
                    && !self.in_lease()
                    && self.log.is_up_to_date(last_index, last_term);
                let term = if granted { msg.term } else { self.term };
                self.messages.push(Envelope {
                    from: self.opts.id,
                    to: msg.from,
                    term,
                    message: Message::PreVoteResponse { granted },
                });
            }
            Message::PreVoteResponse { granted } => {
                self.on_pre_vote_response(msg.from, msg.term, granted)
            }
            Message::Vote { last_index, last_term, .. } => {
                let can_vote = self.vote.is_none_or(|v| v == msg.from) && self.leader.is_none();
                let granted = can_vote && self.log.is_up_to_date(last_index, last_term);
                if granted {
                    self.vote = Some(msg.from);
                    self.reset_election_timer();
                }
                // Sent once the vote is durable: a node must never vote twice in a term.
                self.send_persisted(msg.from, Message::VoteResponse { granted });
            }
            Message::VoteResponse { granted } => self.on_vote_response(msg.from, granted),
            Message::Append { prev_index, prev_term, entries, commit } => {
                self.follow(msg.from);
                self.on_append(msg.from, prev_index, prev_term, entries, commit);
            }
            Message::AppendResponse { result } => self.on_append_response(msg.from, result),
            Message::Heartbeat { commit, read_seq } => {
                self.follow(msg.from);
                let commit = commit.min(self.log.last_index());
                if commit > self.log.commit {
                    self.log.commit = commit;
                }
                self.send(msg.from, Message::HeartbeatResponse { read_seq });
            }
            Message::HeartbeatResponse { read_seq } => {
                self.on_heartbeat_response(msg.from, read_seq)
            }
            Message::ReadIndex { request } => self.on_read_index(msg.from, request),
            Message::ReadIndexResponse { request, index } => match index {
                Some(index) => self.read_states.push(super::node::ReadState { request, index }),
                None => self.read_failures.push(request),
            },
            Message::TimeoutNow => {
                // The leader hands over: campaign now, skipping the pre-vote. Only our leader
                // can ask for this.
                if !matches!(self.role, RoleState::Leader(_)) && self.leader == Some(msg.from) {
                    self.campaign(false, true);
                }
            }
        }
        Ok(())
    }

    /// Whether a peer's `term` may be taken: at most [`MAX_TERM_STEP`] past ours, and not past
    /// [`MAX_TERM`].
    pub(super) fn plausible_term(&self, term: Term) -> bool {
        term <= MAX_TERM && term <= self.term.saturating_add(MAX_TERM_STEP)
    }

    /// Whether this node heard from a live leader within the minimum election timeout (or is
    /// the leader): then it refuses to help depose that leader.
    pub(super) fn in_lease(&self) -> bool {
        match self.role {
            RoleState::Leader(_) => true,
            _ => self.leader.is_some() && self.election_elapsed < self.opts.election_ticks,
        }
    }

    /// Follows `leader` in the current term (an append, heartbeat or snapshot came from it).
    fn follow(&mut self, leader: NodeId) {
        if !matches!(self.role, RoleState::Follower) || self.leader != Some(leader) {
            self.become_follower(self.term, Some(leader));
        }
        self.election_elapsed = 0;
    }

    /// Becomes a follower in `term` (clearing the vote if the term is new).
    pub(super) fn become_follower(&mut self, term: Term, leader: Option<NodeId>) {
        if term > self.term {
            self.term = term;
            self.vote = None;
        }
        if let RoleState::Leader(state) = std::mem::replace(&mut self.role, RoleState::Follower) {
            self.fail_reads(*state);
        }
        if self.leader != leader || term != self.term {
            self.events.push(Event::LeaderChanged { term: self.term, leader });
        }
        self.leader = leader;
        self.reset_election_timer();
    }

    /// Fails the reads a deposed leader was holding.
    fn fail_reads(&mut self, state: LeaderState) {
        let forwarded =
            state.pending_reads.iter().map(|r| (r.from, r.request)).chain(state.early_reads);
        for (from, request) in forwarded.collect::<Vec<_>>() {
            match from {
                None => self.read_failures.push(request),
                Some(follower) => {
                    self.send(follower, Message::ReadIndexResponse { request, index: None })
                }
            }
        }
    }

    /// Election timer for followers and candidates.
    pub(super) fn tick_election(&mut self) {
        self.election_elapsed += 1;
        if self.election_elapsed >= self.election_timeout {
            self.reset_election_timer();
            self.campaign(true, false);
        }
    }

    /// Starts an election: a pre-vote first unless `pre_vote` is false (leadership transfer).
    /// Only voters campaign.
    pub(super) fn campaign(&mut self, pre_vote: bool, transfer: bool) {
        let id = self.opts.id;
        if !self.config.voters.contains(&id) {
            return;
        }
        let Some(next_term) = self.term.checked_add(1).filter(|term| *term <= MAX_TERM) else {
            return; // the term cannot grow further: never wrap it
        };
        let voters: Vec<NodeId> = self.config.voters.iter().copied().filter(|v| *v != id).collect();
        let (last_index, last_term) = (self.log.last_index(), self.log.last_term());
        if pre_vote {
            self.role = RoleState::PreCandidate {
                granted: BTreeSet::from([id]),
                rejected: BTreeSet::new(),
            };
            self.leader = None;
            if self.config.quorum() == 1 {
                return self.campaign(false, false);
            }
            for voter in voters {
                let message = Message::PreVote { last_index, last_term };
                self.messages.push(Envelope { from: id, to: voter, term: next_term, message });
            }
            return;
        }
        self.term = next_term;
        self.vote = Some(id);
        self.leader = None;
        self.role =
            RoleState::Candidate { granted: BTreeSet::from([id]), rejected: BTreeSet::new() };
        self.reset_election_timer();
        self.events.push(Event::ElectionStarted { term: self.term });
        if self.config.quorum() == 1 {
            return self.become_leader();
        }
        for voter in voters {
            // Sent once the new term and our own vote are durable.
            self.send_persisted(voter, Message::Vote { last_index, last_term, transfer });
        }
    }

    fn on_pre_vote_response(&mut self, from: NodeId, term: Term, granted: bool) {
        let quorum = self.config.quorum();
        let RoleState::PreCandidate { granted: yes, rejected: no } = &mut self.role else { return };
        if Some(term) != self.term.checked_add(1) && granted {
            return; // an answer to an older pre-vote
        }
        if granted {
            yes.insert(from)
        } else {
            no.insert(from)
        };
        if yes.len() >= quorum {
            self.campaign(false, false);
        } else if no.len() >= quorum {
            self.become_follower(self.term, None);
        }
    }

    fn on_vote_response(&mut self, from: NodeId, granted: bool) {
        let quorum = self.config.quorum();
        let RoleState::Candidate { granted: yes, rejected: no } = &mut self.role else { return };
        if granted {
            yes.insert(from)
        } else {
            no.insert(from)
        };
        if yes.len() >= quorum {
            self.become_leader();
        } else if no.len() >= quorum {
            self.become_follower(self.term, None);
        }
    }

    /// Becomes leader: starts tracking followers and appends a no-op, whose commit also
    /// commits everything before it (thesis 3.6.2).
    fn become_leader(&mut self) {
        let id = self.opts.id;
        let last = self.log.last_index();
        let progress: BTreeMap<NodeId, Progress> =
            self.config.members().filter(|m| *m != id).map(|m| (m, Progress::new(last))).collect();
        self.role = RoleState::Leader(Box::new(LeaderState {
            progress,
            heartbeat_elapsed: 0,
            quorum_elapsed: 0,
            transfer: None,
            read_seq: 0,
            read_round_due: false,
            pending_reads: VecDeque::new(),
            early_reads: Vec::new(),
        }));
        self.leader = Some(id);
        self.events.push(Event::BecameLeader { term: self.term });
        self.events.push(Event::LeaderChanged { term: self.term, leader: Some(id) });
        self.log.push(super::message::Entry {
            index: last + 1,
            term: self.term,
            payload: Payload::Noop,
        });
        self.broadcast_append(true);
    }

    /// Leader ticks: heartbeats, check-quorum, transfer timeout, replication bookkeeping.
    pub(super) fn tick_leader(&mut self) {
        let (election_ticks, heartbeat_ticks) =
            (self.opts.election_ticks, self.opts.heartbeat_ticks);
        let RoleState::Leader(leader) = &mut self.role else { return };
        leader.heartbeat_elapsed += 1;
        leader.quorum_elapsed += 1;
        let last_index = self.log.last_index();
        for progress in leader.progress.values_mut() {
            progress.last_contact = progress.last_contact.saturating_add(1);
            progress.stalled = match progress.inflight {
                0 => 0,
                _ => progress.stalled.saturating_add(1),
            };
            progress.lagging = match progress.match_index < last_index {
                true => progress.lagging.saturating_add(1),
                false => 0,
            };
            progress.snapshot_pause = progress.snapshot_pause.saturating_sub(1);
            if let super::progress::ReplicationState::Snapshot { elapsed } = &mut progress.state {
                *elapsed = elapsed.saturating_add(1);
            }
        }
        if let Some((_, elapsed)) = &mut leader.transfer {
            *elapsed += 1;
            if *elapsed >= election_ticks {
                leader.transfer = None; // the target did not take over in time
            }
        }
        if leader.quorum_elapsed >= election_ticks {
            leader.quorum_elapsed = 0;
            // Check quorum: a leader that cannot reach a majority steps down, so clients can
            // find the new one and reads are never served by a deposed leader.
            let active = self
                .config
                .voters
                .iter()
                .filter(|v| {
                    **v == self.opts.id || leader.progress.get(v).is_some_and(|p| p.recent_active)
                })
                .count();
            for progress in leader.progress.values_mut() {
                progress.recent_active = false;
            }
            if active < self.config.quorum() {
                self.become_follower(self.term, None);
                return;
            }
        }
        if leader.heartbeat_elapsed >= heartbeat_ticks {
            leader.heartbeat_elapsed = 0;
            self.broadcast_heartbeat();
        }
    }

    /// Hands leadership to `to` (a voter): stop taking proposals, bring it up to date, then
    /// tell it to campaign at once. Aborted if it has not taken over within an election
    /// timeout.
    pub fn transfer_leadership(&mut self, to: NodeId) -> Result<()> {
        let RoleState::Leader(leader) = &mut self.role else {
            return Err(Error::NotLeader { leader: self.leader });
        };
        if to == self.opts.id {
            return Ok(());
        }
        if !self.config.voters.contains(&to) {
            return Err(Error::InvalidRequest(format!("node {to} is not a voter")));
        }
        leader.transfer = Some((to, 0));
        let caught_up =
            leader.progress.get(&to).is_some_and(|p| p.match_index == self.log.last_index());
        if caught_up {
            self.send(to, Message::TimeoutNow);
        } else {
            self.send_append(to, true);
        }
        Ok(())
    }
}
