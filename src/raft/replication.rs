//! Log replication: appends (leader and follower side), commit, heartbeats, snapshots and
//! membership bookkeeping.

use super::message::{AppendResult, Entry, Message, Payload, SnapshotMeta};
use super::node::{Event, Node, RoleState};
use super::progress::{Progress, ReplicationState};
use super::{Error, Index, NodeId, Result, Term};

impl Node {
    /// Appends an entry as leader and starts replicating it.
    pub(super) fn append_as_leader(&mut self, payload: Payload) -> Result<(Index, Term)> {
        let RoleState::Leader(leader) = &self.role else {
            return Err(Error::NotLeader { leader: self.leader });
        };
        if leader.transfer.is_some() {
            return Err(Error::TransferInProgress);
        }
        let is_config = matches!(payload, Payload::Config(_));
        let entry = Entry { index: self.log.last_index() + 1, term: self.term, payload };
        let position = (entry.index, entry.term);
        self.log.push(entry);
        if is_config {
            self.refresh_config();
        }
        self.broadcast_append(false);
        Ok(position)
    }

    /// Sends appends to every follower that can take one (`allow_empty`: also when there are
    /// no new entries, to carry the commit index).
    pub(super) fn broadcast_append(&mut self, allow_empty: bool) {
        let RoleState::Leader(leader) = &self.role else { return };
        let peers: Vec<NodeId> = leader.progress.keys().copied().collect();
        for peer in peers {
            self.send_append(peer, allow_empty);
        }
    }

    /// Sends the next append to `to` (or asks the driver to stream it a snapshot), if its flow
    /// control allows. An append carries at most `max_append_entries` entries and about
    /// `max_append_bytes` bytes (one larger entry goes alone).
    pub(super) fn send_append(&mut self, to: NodeId, allow_empty: bool) {
        let (id, term, max_entries, max_bytes, max_inflight) = (
            self.opts.id,
            self.term,
            self.opts.max_append_entries,
            self.opts.max_append_bytes,
            self.opts.max_inflight,
        );
        let RoleState::Leader(leader) = &mut self.role else { return };
        let Some(progress) = leader.progress.get_mut(&to) else { return };
        if !progress.can_send(max_inflight) {
            return;
        }
        let next = progress.next_index;
        if next < self.log.first_index() {
            // The entries it needs are compacted: the driver streams it the state instead.
            if progress.snapshot_pause == 0 {
                progress.start_snapshot();
                self.snapshot_requests.push(to);
            }
            return;
        }
        let prev_index = next - 1;
        let Some(prev_term) = self.log.term(prev_index) else { return };
        let entries = self.log.slice_bounded(next, self.log.last_index(), max_entries, max_bytes);
        if entries.is_empty() && !allow_empty && progress.state == ReplicationState::Replicate {
            return;
        }
        progress.sent(entries.last().map(|e| e.index));
        let message = Message::Append { prev_index, prev_term, entries, commit: self.log.commit };
        self.messages.push(super::message::Envelope { from: id, to, term, message });
    }

    /// Follower: merges entries after `prev_index` if our logs match there, else rejects with
    /// a hint.
    pub(super) fn on_append(
        &mut self,
        from: NodeId,
        prev_index: Index,
        prev_term: Term,
        entries: Vec<Entry>,
        commit: Index,
    ) {
        // A correct leader sends entries that directly follow `prev_index`, in order, with
        // terms that never decrease and never pass its own (ours by now: `step` matched it);
        // anything else is malformed and dropped before it touches the log.
        let well_formed = entries
            .iter()
            .enumerate()
            .all(|(i, e)| prev_index.checked_add(1 + i as Index) == Some(e.index))
            && entries.windows(2).all(|pair| pair[0].term <= pair[1].term)
            && entries.first().is_none_or(|e| e.term >= prev_term)
            && entries.last().map_or(prev_term, |e| e.term) <= self.term;
        if !well_formed {
            return;
        }
        let (mut prev_index, mut prev_term, mut entries) = (prev_index, prev_term, entries);
        // What we have committed matches the leader's log: skip it (old or duplicated appends).
        if prev_index < self.log.commit {
            entries.retain(|e| e.index > self.log.commit);
            prev_index = self.log.commit;
            prev_term = match self.log.term(prev_index) {
                Some(term) => term,
                None => return, // cannot happen: the commit index is always in the log
            };
        }
        if self.log.term(prev_index) != Some(prev_term) {
            let conflict = if prev_index > self.log.last_index() {
                None
            } else {
                self.log.first_index_of_term(prev_index)
            };
            let result = AppendResult::Rejected {
                rejected: prev_index,
                last_index: self.log.last_index(),
                conflict,
            };
            self.send(from, Message::AppendResponse { result });
            return;
        }
        let last_new = prev_index + entries.len() as Index;
        if self.log.merge(entries).is_some() {
            self.refresh_config();
        }
        let commit = commit.min(last_new);
        if commit > self.log.commit {
            self.log.commit = commit;
        }
        // Sent once the entries are durable.
        self.send_persisted(
            from,
            Message::AppendResponse { result: AppendResult::Accepted { match_index: last_new } },
        );
    }

    /// Leader: records a follower's answer to an append.
    pub(super) fn on_append_response(&mut self, from: NodeId, result: AppendResult) {
        let last_index = self.log.last_index();
        let hinted_next = match result {
            AppendResult::Rejected { rejected, last_index, conflict } => Some(match conflict {
                None => (last_index + 1).min(rejected),
                Some((term, first)) => match self.log.last_index_of_term(term) {
                    Some(index) => (index + 1).min(rejected),
                    None => first,
                },
            }),
            AppendResult::Accepted { .. } => None,
        };
        let RoleState::Leader(leader) = &mut self.role else { return };
        let Some(progress) = leader.progress.get_mut(&from) else { return };
        progress.recent_active = true;
        progress.last_contact = 0;
        match (result, hinted_next) {
            (AppendResult::Accepted { match_index }, _) => {
                // A follower cannot match entries the leader does not have.
                let advanced = progress.accept(match_index.min(last_index));
                let transfer_ready = leader.transfer.is_some_and(|(to, _)| to == from)
                    && progress.match_index == last_index;
                if advanced {
                    self.maybe_commit();
                }
                if transfer_ready {
                    self.send(from, Message::TimeoutNow);
                }
                self.send_append(from, false);
            }
            (AppendResult::Rejected { rejected, .. }, Some(next))
                if progress.reject(rejected, next) =>
            {
                self.send_append(from, true);
            }
            _ => {}
        }
    }

    /// Leader: commits the highest index a quorum of voters has, if it is from this term
    /// (entries of earlier terms commit only through it: thesis Figure 3.7).
    pub(super) fn maybe_commit(&mut self) {
        let RoleState::Leader(leader) = &self.role else { return };
        let mut matched: Vec<Index> = self
            .config
            .voters
            .iter()
            .map(|v| match *v == self.opts.id {
                true => self.log.stable,
                false => leader.progress.get(v).map_or(0, |p| p.match_index),
            })
            .collect();
        if matched.is_empty() {
            return;
        }
        matched.sort_unstable_by(|a, b| b.cmp(a));
        let quorum_index = matched[self.config.quorum() - 1];
        if quorum_index > self.log.commit && self.log.term(quorum_index) == Some(self.term) {
            self.log.commit = quorum_index;
            self.release_early_reads();
            // A leader that removed itself steps down once the change is committed.
            if self.config_index <= self.log.commit && !self.config.voters.contains(&self.opts.id) {
                self.become_follower(self.term, None);
                return;
            }
            self.broadcast_append(true);
        }
    }

    /// Leader: sends heartbeats, which carry the commit (capped at what each follower is known
    /// to have) and the current read round.
    pub(super) fn broadcast_heartbeat(&mut self) {
        let (id, term, commit) = (self.opts.id, self.term, self.log.commit);
        let RoleState::Leader(leader) = &self.role else { return };
        let read_seq = leader.read_seq;
        for (peer, progress) in &leader.progress {
            let message = Message::Heartbeat { commit: commit.min(progress.match_index), read_seq };
            self.messages.push(super::message::Envelope { from: id, to: *peer, term, message });
        }
    }

    /// Leader: a follower answered a heartbeat. It is alive; confirm reads; resume replication
    /// if it is behind (a lost append is resent this way).
    pub(super) fn on_heartbeat_response(&mut self, from: NodeId, read_seq: u64) {
        let last_index = self.log.last_index();
        let lost_after = (self.opts.election_ticks / 2).max(2 * self.opts.heartbeat_ticks);
        let RoleState::Leader(leader) = &mut self.role else { return };
        let Some(progress) = leader.progress.get_mut(&from) else { return };
        progress.recent_active = true;
        progress.last_contact = 0;
        // Only rounds that were actually started count.
        progress.read_ack = progress.read_ack.max(read_seq.min(leader.read_seq));
        let behind = progress.match_index < last_index;
        if behind && progress.state == ReplicationState::Probe {
            progress.probe_sent = false;
        }
        // Appends in flight are normal while the follower is behind; only a long silence
        // means one was lost (falling back at every heartbeat would resend entries in flight
        // and stall the pipeline under steady load).
        let lost = progress.inflight > 0 && progress.stalled >= lost_after;
        if behind && progress.state == ReplicationState::Replicate && lost {
            // Appends were lost: fall back to probing from the last known match.
            progress.state = ReplicationState::Probe;
            progress.next_index = progress.match_index + 1;
            progress.inflight = 0;
            progress.probe_sent = false;
        }
        self.process_reads();
        if behind {
            self.send_append(from, true);
        }
    }

    /// Leader: a snapshot transfer to `to` ended: the state up to `sent` reached it whole
    /// (it confirms with an append response once installed), or the transfer failed (`None`:
    /// try again after a pause).
    pub fn report_snapshot(&mut self, to: NodeId, sent: Option<Index>) {
        let pause = self.opts.snapshot_retry_ticks;
        let RoleState::Leader(leader) = &mut self.role else { return };
        let Some(progress) = leader.progress.get_mut(&to) else { return };
        progress.finish_snapshot(sent, pause);
        if sent.is_some() {
            self.send_append(to, true);
        }
    }

    /// Follower: the driver received, from `from` in `term`, the leader's state up to
    /// `meta.index` and staged it. Returns whether to install it: then `Ready::snapshot`
    /// carries `meta`, and the driver switches the state machine to the staged state once the
    /// log records it. `false` means the staged state is not needed (stale, or everything it
    /// covers is already committed here) and can be dropped.
    pub fn install_snapshot(
        &mut self,
        from: NodeId,
        term: Term,
        meta: SnapshotMeta,
    ) -> Result<bool> {
        if from == self.opts.id {
            return Err(Error::InvalidRequest("a node does not send itself snapshots".into()));
        }
        if !self.plausible_term(term) {
            return Err(Error::InvalidRequest(format!(
                "a snapshot sent in term {term}, too far past ours ({}) or the highest possible",
                self.term
            )));
        }
        if term < self.term {
            return Ok(false); // from a deposed leader
        }
        if meta.term > term {
            return Err(Error::InvalidRequest(format!(
                "a snapshot of term {} sent in the earlier term {term}",
                meta.term
            )));
        }
        if term > self.term || self.leader != Some(from) {
            self.become_follower(term, Some(from));
        }
        if matches!(self.role, RoleState::Leader(_)) {
            return Ok(false);
        }
        self.election_elapsed = 0;
        let index = meta.index;
        if index <= self.log.commit {
            // Everything it covers is committed here: our log matches the leader's that far.
            let result = AppendResult::Accepted { match_index: self.log.commit };
            self.send(from, Message::AppendResponse { result });
            return Ok(false);
        }
        self.log.restore(meta.clone());
        self.install = Some(meta);
        self.refresh_config();
        self.events.push(Event::SnapshotInstalled { index });
        // Sent once the log records the snapshot.
        self.send_persisted(
            from,
            Message::AppendResponse { result: AppendResult::Accepted { match_index: index } },
        );
        Ok(true)
    }

    /// Leader: follows a configuration change with the set of followers it tracks.
    pub(super) fn on_config_change(&mut self) {
        let (id, last) = (self.opts.id, self.log.last_index());
        let members: Vec<NodeId> = self.config.members().filter(|m| *m != id).collect();
        let RoleState::Leader(leader) = &mut self.role else { return };
        leader.progress.retain(|peer, _| members.contains(peer));
        for member in members {
            leader.progress.entry(member).or_insert_with(|| Progress::new(last));
        }
        if leader.transfer.is_some_and(|(to, _)| !self.config.voters.contains(&to)) {
            leader.transfer = None;
        }
    }
}
