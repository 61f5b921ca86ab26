//! The node's view of its log: the snapshot it starts from, the entries after it, and which of
//! them are persisted, committed and applied.
//!
//! Invariants: `snapshot.index <= applied <= commit <= last_index()` and `stable <= last_index()`;
//! `entries[i].index == snapshot.index + 1 + i`; entries are never applied before they are
//! committed, and a committed entry is never truncated.

use super::message::{Configuration, Entry, Payload, SnapshotMeta};
use super::{Index, Term};

/// The log as the core sees it.
#[derive(Clone, Debug, Default)]
pub struct RaftLog {
    /// The snapshot the log continues from (index 0 when there is none).
    snapshot: SnapshotMeta,
    /// The entries after the snapshot.
    entries: Vec<Entry>,
    /// The highest index the driver has persisted.
    pub(super) stable: Index,
    /// The highest index known committed.
    pub(super) commit: Index,
    /// The highest index handed to the state machine.
    pub(super) applied: Index,
    /// The highest index handed out for applying but not yet acknowledged by `advance`.
    pub(super) applying: Index,
    /// The lowest index the log was truncated to since the last `Ready` was taken: entries
    /// that `Ready` persisted beyond it were replaced, so they are not stable.
    pub(super) truncated: Option<Index>,
    /// The indexes of the configuration entries in `entries`, in order (so finding the
    /// configuration in effect does not scan the log).
    configs: Vec<Index>,
    /// The bytes of `entries` (by [`Entry::size`]).
    bytes: usize,
}

impl RaftLog {
    /// A log recovered from storage: a snapshot and the entries after it, all persisted, and
    /// the index the durable state machine has applied (committed, so the commit index is at
    /// least that; entries up to it are not handed out again).
    pub fn recover(
        snapshot: SnapshotMeta,
        entries: Vec<Entry>,
        commit: Index,
        applied: Index,
    ) -> Self {
        let last = entries.last().map_or(snapshot.index, |e| e.index);
        let applied = applied.clamp(snapshot.index, last);
        let commit = commit.clamp(snapshot.index, last).max(applied);
        Self {
            applied,
            applying: applied,
            stable: last,
            commit,
            snapshot,
            truncated: None,
            configs: entries
                .iter()
                .filter(|e| matches!(e.payload, Payload::Config(_)))
                .map(|e| e.index)
                .collect(),
            bytes: entries.iter().map(Entry::size).sum(),
            entries,
        }
    }

    /// The bytes of the entries held (the log's memory, about).
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    fn recount(&mut self) {
        self.bytes = self.entries.iter().map(Entry::size).sum();
    }

    /// The highest index handed to the state machine.
    pub fn applied(&self) -> Index {
        self.applied
    }

    /// The snapshot the log starts after.
    pub fn snapshot(&self) -> &SnapshotMeta {
        &self.snapshot
    }

    /// The first index still in the log.
    pub fn first_index(&self) -> Index {
        self.snapshot.index + 1
    }

    /// The last index in the log (the snapshot's, if no entries follow it).
    pub fn last_index(&self) -> Index {
        self.entries.last().map_or(self.snapshot.index, |e| e.index)
    }

    /// The term of the last entry.
    pub fn last_term(&self) -> Term {
        self.entries.last().map_or(self.snapshot.term, |e| e.term)
    }

    /// The term of the entry at `index`, if the log still knows it (compacted entries are
    /// known only at the snapshot index).
    pub fn term(&self, index: Index) -> Option<Term> {
        if index == self.snapshot.index {
            return Some(self.snapshot.term);
        }
        self.entry(index).map(|e| e.term)
    }

    /// The entry at `index`, if it is in the log.
    pub fn entry(&self, index: Index) -> Option<&Entry> {
        let position = index.checked_sub(self.first_index())?;
        self.entries.get(usize::try_from(position).ok()?)
    }

    /// The entries from `from` to `to` (inclusive), at most `max` of them.
    pub fn slice(&self, from: Index, to: Index, max: usize) -> &[Entry] {
        if from < self.first_index() || from > to || from > self.last_index() {
            return &[];
        }
        let start = (from - self.first_index()) as usize;
        let end = ((to.min(self.last_index()) - self.first_index()) as usize + 1)
            .min(start.saturating_add(max));
        &self.entries[start..end]
    }

    /// Copies of the entries from `from` to `to` (inclusive): at most `max` of them and, past
    /// the first, at most `max_bytes` in all (one entry always goes, however large, so a big
    /// entry cannot block the log).
    pub fn slice_bounded(
        &self,
        from: Index,
        to: Index,
        max: usize,
        max_bytes: usize,
    ) -> Vec<Entry> {
        let mut bytes = 0;
        self.slice(from, to, max)
            .iter()
            .take_while(|entry| {
                let first = bytes == 0;
                bytes += entry.size();
                first || bytes <= max_bytes
            })
            .cloned()
            .collect()
    }

    /// The entries not yet persisted.
    pub fn unstable(&self) -> &[Entry] {
        self.slice(self.stable + 1, self.last_index(), usize::MAX)
    }

    /// Whether a log ending at (`last_index`, `last_term`) is at least as up to date as ours
    /// (thesis 3.6.1: compare last terms, then lengths).
    pub fn is_up_to_date(&self, last_index: Index, last_term: Term) -> bool {
        (last_term, last_index) >= (self.last_term(), self.last_index())
    }

    /// Appends an entry the leader just created.
    pub fn push(&mut self, entry: Entry) {
        debug_assert_eq!(entry.index, self.last_index() + 1, "log gap");
        if matches!(entry.payload, Payload::Config(_)) {
            self.configs.push(entry.index);
        }
        self.bytes += entry.size();
        self.entries.push(entry);
    }

    /// Merges entries received from the leader after `prev_index` (which matched): entries we
    /// already have are kept, the first conflicting one and everything after it is replaced.
    /// Returns the first index written, if any.
    pub fn merge(&mut self, entries: Vec<Entry>) -> Option<Index> {
        let mut first_new = None;
        for entry in entries {
            if entry.index <= self.snapshot.index {
                continue; // covered by our snapshot
            }
            match self.term(entry.index) {
                Some(term) if term == entry.term => continue,
                Some(_) => {
                    assert!(
                        entry.index > self.commit,
                        "truncating committed entry {}",
                        entry.index
                    );
                    self.truncate_after(entry.index - 1);
                }
                None => {}
            }
            if entry.index != self.last_index() + 1 {
                break; // a gap: the rest cannot be placed (the leader sends contiguous entries)
            }
            first_new.get_or_insert(entry.index);
            self.push(entry);
        }
        first_new
    }

    /// Removes every entry after `index`.
    fn truncate_after(&mut self, index: Index) {
        let keep = (index + 1).saturating_sub(self.first_index()) as usize;
        self.entries.truncate(keep);
        self.recount();
        self.configs.retain(|i| *i <= index);
        self.stable = self.stable.min(index);
        self.truncated = Some(self.truncated.map_or(index, |t| t.min(index)));
    }

    /// The first index of the term of the entry at `index`, searching back (for append hints).
    pub fn first_index_of_term(&self, index: Index) -> Option<(Term, Index)> {
        let term = self.term(index)?;
        let mut first = index;
        while first > self.first_index() && self.term(first - 1) == Some(term) {
            first -= 1;
        }
        Some((term, first))
    }

    /// The last index holding an entry of `term`, if any (for append hints).
    pub fn last_index_of_term(&self, term: Term) -> Option<Index> {
        if let Some(entry) = self.entries.iter().rev().find(|e| e.term <= term) {
            return (entry.term == term).then_some(entry.index);
        }
        (self.snapshot.term == term && self.snapshot.index > 0).then_some(self.snapshot.index)
    }

    /// The configuration in effect: the newest in the log, else the snapshot's.
    pub fn config(&self) -> (Index, Configuration) {
        if let Some(index) = self.configs.last()
            && let Some(Entry { payload: Payload::Config(config), .. }) = self.entry(*index)
        {
            return (*index, config.clone());
        }
        (self.snapshot.index, self.snapshot.config.clone())
    }

    /// The configuration in effect at `index` (in the log or at its snapshot).
    pub fn config_at(&self, index: Index) -> Configuration {
        match self.configs.iter().rev().find(|i| **i <= index).and_then(|i| self.entry(*i)) {
            Some(Entry { payload: Payload::Config(config), .. }) => config.clone(),
            _ => self.snapshot.config.clone(),
        }
    }

    /// Drops the entries up to `meta.index`, which the durable state now covers.
    pub fn compact(&mut self, meta: SnapshotMeta) {
        assert!(meta.index <= self.applied, "compacting past the applied index");
        if meta.index <= self.snapshot.index {
            return;
        }
        let drop = (meta.index - self.snapshot.index) as usize;
        self.entries.drain(..drop.min(self.entries.len()));
        self.recount();
        self.configs.retain(|i| *i > meta.index);
        self.snapshot = meta;
    }

    /// Replaces the log by a snapshot received from the leader. Entries after it are kept if
    /// they continue it (the entry at its index has its term).
    pub fn restore(&mut self, meta: SnapshotMeta) {
        if self.term(meta.index) == Some(meta.term) {
            let drop = (meta.index - self.snapshot.index) as usize;
            self.entries.drain(..drop.min(self.entries.len()));
            self.configs.retain(|i| *i > meta.index);
        } else {
            self.entries.clear();
            self.configs.clear();
            self.truncated = Some(self.truncated.map_or(meta.index, |t| t.min(meta.index)));
        }
        self.recount();
        self.commit = self.commit.max(meta.index);
        self.applied = meta.index;
        self.applying = meta.index;
        self.stable = self.stable.max(meta.index).min(self.last_index().max(meta.index));
        self.snapshot = meta;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(index: Index, term: Term) -> Entry {
        Entry { index, term, payload: Payload::Noop }
    }

    fn log(terms: &[Term]) -> RaftLog {
        let entries = terms.iter().enumerate().map(|(i, t)| entry(i as Index + 1, *t)).collect();
        RaftLog::recover(SnapshotMeta::default(), entries, 0, 0)
    }

    #[test]
    fn merge_keeps_matching_and_replaces_conflicting_entries() {
        let mut log = log(&[1, 1, 2, 2]);
        assert_eq!(log.merge(vec![entry(2, 1), entry(3, 2)]), None);
        assert_eq!(log.last_index(), 4);
        assert_eq!(log.merge(vec![entry(3, 3), entry(4, 3), entry(5, 3)]), Some(3));
        assert_eq!(log.last_index(), 5);
        assert_eq!(log.term(3), Some(3));
        assert_eq!(log.stable, 2, "truncation moved the stable mark back");
    }

    #[test]
    fn up_to_date_compares_terms_then_length() {
        let log = log(&[1, 2, 2]);
        assert!(log.is_up_to_date(3, 2));
        assert!(log.is_up_to_date(1, 3));
        assert!(!log.is_up_to_date(5, 1));
        assert!(!log.is_up_to_date(2, 2));
    }

    #[test]
    fn term_hints() {
        let log = log(&[1, 1, 3, 3, 3, 5]);
        assert_eq!(log.first_index_of_term(5), Some((3, 3)));
        assert_eq!(log.last_index_of_term(3), Some(5));
        assert_eq!(log.last_index_of_term(2), None);
        assert_eq!(log.last_index_of_term(1), Some(2));
    }

    #[test]
    fn compaction_and_restore() {
        let mut log = log(&[1, 1, 2, 2]);
        log.commit = 3;
        log.applied = 3;
        log.compact(SnapshotMeta { index: 2, term: 1, config: Configuration::voters([1]) });
        assert_eq!(log.first_index(), 3);
        assert_eq!(log.term(2), Some(1));
        assert_eq!(log.term(1), None);
        assert_eq!(log.slice(1, 4, 10).len(), 0);
        assert_eq!(log.slice(3, 4, 10).len(), 2);
        // A snapshot that agrees with our entry at its index keeps the entries after it.
        log.restore(SnapshotMeta { index: 3, term: 2, config: Configuration::voters([1]) });
        assert_eq!((log.first_index(), log.last_index()), (4, 4));
        // One that does not replaces everything.
        log.restore(SnapshotMeta { index: 10, term: 7, config: Configuration::voters([1]) });
        assert_eq!((log.last_index(), log.last_term(), log.commit, log.applied), (10, 7, 10, 10));
    }
}
