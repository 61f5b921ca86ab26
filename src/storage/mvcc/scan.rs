//! Scans at a snapshot, merged with the transaction's unflushed writes: the transaction's
//! range and prefix scans, and the iterator they return.

use super::keys::{decode_stored, decode_user_key, split_version_key, tag, version_key};
use super::{Transaction, Version};
use crate::encoding::keycode;
use crate::storage::Result;
use crate::storage::engine::{KeyValue, ScanIterator};
use std::ops::Bound;

/// A user key and its newest visible value (`None`: deleted).
type Entry = (Vec<u8>, Option<Vec<u8>>);

/// An iterator over the newest visible values in a range, merging the engine's versions with
/// the transaction's unflushed writes. Yields `(key, value)` pairs; deleted keys are skipped.
/// Without `decode_keys` (and no unflushed writes to merge) the keys are left empty.
pub struct Scan<'a> {
    txn: &'a Transaction,
    engine: ScanIterator<'a>,
    /// The raw engine key first seen for the user key being assembled, and the newest
    /// visible stored value of it so far.
    group: Option<(Vec<u8>, Option<Vec<u8>>)>,
    /// The next key/value from the engine side, decoded (a lookahead for the merge).
    engine_next: Option<Entry>,
    engine_done: bool,
    /// Unflushed writes in the range, in key order.
    pending: std::iter::Peekable<std::vec::IntoIter<Entry>>,
    /// Whether keys are decoded (always when there are unflushed writes to merge).
    decode_keys: bool,
    /// Keys come last first.
    reverse: bool,
}

impl<'a> Scan<'a> {
    pub(super) fn new(
        txn: &'a Transaction,
        engine: ScanIterator<'a>,
        pending: Vec<Entry>,
        decode_keys: bool,
    ) -> Self {
        Self {
            txn,
            engine,
            group: None,
            engine_next: None,
            engine_done: false,
            decode_keys: decode_keys || !pending.is_empty(),
            pending: pending.into_iter().peekable(),
            reverse: false,
        }
    }

    /// The same scan, last key first.
    pub fn rev(mut self) -> Self {
        let mut pending: Vec<Entry> = self.pending.collect();
        pending.reverse();
        self.pending = pending.into_iter().peekable();
        self.reverse = true;
        self
    }

    /// Turns a finished group into an entry (or nothing, if no version was visible).
    fn finish(&self, group: Option<(Vec<u8>, Option<Vec<u8>>)>) -> Result<Option<Entry>> {
        let Some((raw, Some(stored))) = group else { return Ok(None) };
        let key = match self.decode_keys {
            true => decode_user_key(&raw[..raw.len() - 8])?,
            false => Vec::new(),
        };
        Ok(Some((key, decode_stored(stored)?)))
    }

    /// Returns the next key's newest visible version from the engine (tombstones included).
    fn next_from_engine(&mut self) -> Result<Option<Entry>> {
        loop {
            let item = match self.reverse {
                true => self.engine.next_back(),
                false => self.engine.next(),
            };
            let Some(item) = item else {
                // The last group is complete.
                let group = self.group.take();
                return self.finish(group);
            };
            let (raw, stored) = item?;
            let (prefix, version) = split_version_key(&raw)?;
            let visible = self.txn.state.is_visible(version);
            match &mut self.group {
                Some((group_raw, best)) if &group_raw[..group_raw.len() - 8] == prefix => {
                    // Versions come oldest first: a later visible one is newer (reversed,
                    // newest first: the first visible one stays).
                    if visible && (!self.reverse || best.is_none()) {
                        *best = Some(stored);
                    }
                }
                _ => {
                    let finished = self.group.replace((raw, visible.then_some(stored)));
                    if let Some(entry) = self.finish(finished)? {
                        return Ok(Some(entry));
                    }
                }
            }
        }
    }

    fn step(&mut self) -> Result<Option<KeyValue>> {
        loop {
            if self.engine_next.is_none() && !self.engine_done {
                self.engine_next = self.next_from_engine()?;
                self.engine_done = self.engine_next.is_none();
            }
            // Merge by key; on a tie our own unflushed write replaces the stored version.
            let order = match (&self.engine_next, self.pending.peek()) {
                (None, None) => return Ok(None),
                (Some(_), None) => std::cmp::Ordering::Less,
                (None, Some(_)) => std::cmp::Ordering::Greater,
                (Some((engine_key, _)), Some((pending_key, _))) => match self.reverse {
                    false => engine_key.cmp(pending_key),
                    true => pending_key.cmp(engine_key),
                },
            };
            let next = match order {
                std::cmp::Ordering::Less => self.engine_next.take(),
                std::cmp::Ordering::Equal => {
                    self.engine_next = None;
                    self.pending.next()
                }
                std::cmp::Ordering::Greater => self.pending.next(),
            };
            let Some((key, value)) = next else { continue };
            if let Some(value) = value {
                self.txn.check_horizon()?;
                return Ok(Some((key, value)));
            }
        }
    }
}

impl Iterator for Scan<'_> {
    type Item = Result<KeyValue>;

    fn next(&mut self) -> Option<Self::Item> {
        self.step().transpose()
    }
}

impl Transaction {
    /// Iterates over the newest visible values of the keys in `range`, in key order.
    pub fn scan(&self, range: (Bound<Vec<u8>>, Bound<Vec<u8>>)) -> Scan<'_> {
        self.scan_range(range, true)
    }

    /// Like [`Transaction::scan`], but yields only the values (skipping key decoding).
    pub fn scan_values(
        &self,
        range: (Bound<Vec<u8>>, Bound<Vec<u8>>),
    ) -> impl Iterator<Item = Result<Vec<u8>>> + '_ {
        self.scan_range(range, false).map(|item| item.map(|(_, value)| value))
    }

    fn scan_range(&self, range: (Bound<Vec<u8>>, Bound<Vec<u8>>), decode_keys: bool) -> Scan<'_> {
        let start = match &range.0 {
            Bound::Included(key) => Bound::Included(version_key(key, 0)),
            Bound::Excluded(key) => Bound::Excluded(version_key(key, Version::MAX)),
            Bound::Unbounded => Bound::Included(vec![tag::VERSION]),
        };
        let end = match &range.1 {
            Bound::Included(key) => Bound::Included(version_key(key, Version::MAX)),
            Bound::Excluded(key) => Bound::Excluded(version_key(key, 0)),
            Bound::Unbounded => Bound::Excluded(vec![tag::VERSION + 1]),
        };
        // An empty or inverted range (`a > 5 AND a < 3`) holds nothing; BTreeMap::range would
        // panic on it.
        let inverted = match (&range.0, &range.1) {
            (Bound::Included(a), Bound::Included(b)) => a > b,
            (Bound::Included(a) | Bound::Excluded(a), Bound::Excluded(b))
            | (Bound::Excluded(a), Bound::Included(b)) => a >= b,
            _ => false,
        };
        let pending: Vec<_> = if self.pending.is_empty() || inverted {
            Vec::new()
        } else {
            self.pending.range(range).map(|(k, v)| (k.clone(), v.clone())).collect()
        };
        Scan::new(self, self.shared.engine.scan((start, end)), pending, decode_keys)
    }

    /// Iterates over the newest visible values of the keys starting with `prefix`.
    pub fn scan_prefix(&self, prefix: &[u8]) -> Scan<'_> {
        self.scan_prefix_with(prefix, true)
    }

    /// Like [`Transaction::scan_prefix`], but yields only the values.
    pub fn scan_prefix_values(&self, prefix: &[u8]) -> impl Iterator<Item = Result<Vec<u8>>> + '_ {
        self.scan_prefix_with(prefix, false).map(|item| item.map(|(_, value)| value))
    }

    fn scan_prefix_with(&self, prefix: &[u8], decode_keys: bool) -> Scan<'_> {
        let mut engine_prefix = vec![tag::VERSION];
        keycode::put_bytes_unterminated(&mut engine_prefix, prefix);
        let pending: Vec<_> = if self.pending.is_empty() {
            Vec::new()
        } else {
            let end = match keycode::prefix_end(prefix) {
                Some(end) => Bound::Excluded(end),
                None => Bound::Unbounded,
            };
            self.pending
                .range((Bound::Included(prefix.to_vec()), end))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        };
        Scan::new(self, self.shared.engine.scan_prefix(&engine_prefix), pending, decode_keys)
    }
}
