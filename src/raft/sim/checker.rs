//! The safety properties of Raft, checked as the simulation runs (thesis 3.6 and Figure 3.2):
//!
//! - Election safety: at most one leader per term.
//! - Log matching: two logs with an entry of the same index and term hold the same entry, and
//!   agree on everything before it (checked by induction: same payload, same previous term).
//! - Leader completeness: a new leader's log holds every committed entry.
//! - State machine safety: every node applies the same entry at each index, and only entries
//!   that are committed.
//! - Exactly once: every acknowledged proposal is applied, and no command is applied twice.
//! - Linearizable reads: a read reflects every write acknowledged before it began.

use crate::raft::{Entry, Index, NodeId, Payload, Term};
use std::collections::{BTreeMap, HashMap, HashSet};

/// A fingerprint of an entry's payload.
pub fn fingerprint(entry: &Entry) -> u64 {
    use std::hash::{DefaultHasher, Hash, Hasher};
    let mut hasher = DefaultHasher::new();
    match &entry.payload {
        Payload::Noop => 0u8.hash(&mut hasher),
        Payload::Command(data) => (1u8, data).hash(&mut hasher),
        Payload::Config(config) => (2u8, &config.voters, &config.learners).hash(&mut hasher),
    }
    hasher.finish()
}

/// Accumulates what the cluster did and reports the first violated property.
#[derive(Default)]
pub struct Checker {
    /// The leader of each term.
    leaders: BTreeMap<Term, NodeId>,
    /// Every (index, term) seen in a persisted log: its fingerprint and previous term.
    entries: HashMap<(Index, Term), (u64, Option<Term>)>,
    /// Every entry applied anywhere: (term, fingerprint) by index. Applied means committed.
    committed: BTreeMap<Index, (Term, u64)>,
    /// The term in which each index was first committed (by that term's leader), and the
    /// committed entry's term.
    commit_terms: BTreeMap<Index, (Term, Term)>,
    /// Commands proposed so far.
    proposed: HashSet<u64>,
    /// Commands acknowledged to clients, with their index.
    acknowledged: BTreeMap<u64, Index>,
}

impl Checker {
    /// Records that `node` is leader of `term`.
    pub fn leader(&mut self, term: Term, node: NodeId) -> Result<(), String> {
        match self.leaders.insert(term, node) {
            Some(other) if other != node => {
                Err(format!("election safety: nodes {other} and {node} both led term {term}"))
            }
            _ => Ok(()),
        }
    }

    /// Checks the entries of a node's log from `from` on against every other log (log
    /// matching), and a new leader's log against the committed entries (leader completeness).
    pub fn log(
        &mut self,
        node: NodeId,
        log: &crate::raft::RaftLog,
        from: Index,
        is_new_leader: bool,
        leader_term: Term,
    ) -> Result<(), String> {
        let first = log.first_index();
        for index in from.max(first)..=log.last_index() {
            let Some(entry) = log.entry(index) else { continue };
            let previous = log.term(index - 1);
            let print = fingerprint(entry);
            match self.entries.get(&(index, entry.term)) {
                Some((seen, seen_previous)) => {
                    if *seen != print
                        || (previous.is_some()
                            && seen_previous.is_some()
                            && previous != *seen_previous)
                    {
                        return Err(format!(
                            "log matching: node {node} holds a different entry at index {index} term {}",
                            entry.term
                        ));
                    }
                }
                None => {
                    self.entries.insert((index, entry.term), (print, previous));
                }
            }
        }
        if is_new_leader {
            // Leader completeness: an entry committed in term T is in the log of every leader
            // of a term after T (a stale leader of an older term may lack it).
            for (index, (commit_term, entry_term)) in self.commit_terms.range(first..) {
                if *commit_term < leader_term && log.term(*index) != Some(*entry_term) {
                    return Err(format!(
                        "leader completeness: leader {node} of term {leader_term} lacks entry {index}, committed in term {commit_term}"
                    ));
                }
            }
        }
        Ok(())
    }

    /// Records that the leader of `term` advanced its commit index to `commit`: the entries
    /// up to there are committed in `term` (if not earlier).
    pub fn leader_committed(&mut self, term: Term, log: &crate::raft::RaftLog, commit: Index) {
        let from = self.commit_terms.keys().next_back().map_or(0, |i| i + 1).max(log.first_index());
        for index in from..=commit {
            if let Some(entry_term) = log.term(index) {
                self.commit_terms.entry(index).or_insert((term, entry_term));
            }
        }
    }

    /// Records that `node` applied `entry` while its commit index was `commit`.
    pub fn applied(&mut self, node: NodeId, entry: &Entry, commit: Index) -> Result<(), String> {
        if entry.index > commit {
            return Err(format!(
                "state machine safety: node {node} applied {} beyond its commit {commit}",
                entry.index
            ));
        }
        let print = (entry.term, fingerprint(entry));
        match self.committed.get(&entry.index) {
            Some(seen) if *seen != print => Err(format!(
                "state machine safety: node {node} applied a different entry at index {}",
                entry.index
            )),
            Some(_) => Ok(()),
            None => {
                self.committed.insert(entry.index, print);
                Ok(())
            }
        }
    }

    /// Records a proposed command.
    pub fn proposed(&mut self, command: u64) {
        self.proposed.insert(command);
    }

    /// Records an acknowledgement to a client.
    pub fn acknowledged(&mut self, command: u64, index: Index) {
        self.acknowledged.insert(command, index);
    }

    /// The index at which a command was acknowledged, if it was.
    pub fn acknowledged_index(&self, command: u64) -> Option<Index> {
        self.acknowledged.get(&command).copied()
    }

    /// The highest index acknowledged so far (a read starting now must reflect it).
    pub fn max_acknowledged(&self) -> Index {
        self.acknowledged.values().copied().max().unwrap_or(0)
    }

    /// Checks a read: it began when `required` was the highest acknowledged index and was
    /// served from a state machine that had applied up to `served`.
    pub fn read(&self, node: NodeId, required: Index, served: Index) -> Result<(), String> {
        if served < required {
            return Err(format!(
                "linearizability: node {node} served a read at index {served}, but index {required} was acknowledged before it began"
            ));
        }
        Ok(())
    }

    /// Checks a node's applied commands at the end: each acknowledged command exactly once,
    /// nothing that was never proposed.
    pub fn final_state(
        &self,
        node: NodeId,
        commands: &[u64],
        applied: Index,
    ) -> Result<(), String> {
        let mut seen = HashSet::new();
        for command in commands {
            if !seen.insert(*command) {
                return Err(format!("exactly once: node {node} applied command {command} twice"));
            }
            if !self.proposed.contains(command) {
                return Err(format!(
                    "node {node} applied command {command}, which was never proposed"
                ));
            }
        }
        for (command, index) in &self.acknowledged {
            if !seen.contains(command) {
                return Err(format!(
                    "durability: command {command}, acknowledged at index {index}, is missing on node {node} (applied {applied})"
                ));
            }
        }
        Ok(())
    }

    /// How many commands were acknowledged.
    pub fn acknowledged_count(&self) -> usize {
        self.acknowledged.len()
    }
}
