//! Scans at a snapshot, merged with the transaction's unflushed writes.

use super::Transaction;
use super::keys::{decode_stored, decode_user_key, split_version_key};
use crate::storage::Result;

/// A user key and its newest visible value (`None`: deleted).
type Entry = (Vec<u8>, Option<Vec<u8>>);
use crate::storage::engine::{KeyValue, ScanIterator};

/// An iterator over the newest visible values in a range, merging the engine's versions with
/// the transaction's unflushed writes. Yields `(key, value)` pairs; deleted keys are skipped.
pub struct Scan<'a> {
    txn: &'a Transaction,
    engine: ScanIterator<'a>,
    /// The escaped key and newest visible stored value of the key being assembled.
    group: Option<(Vec<u8>, Option<Vec<u8>>)>,
    /// The next key/value from the engine side, decoded (a lookahead for the merge).
    engine_next: Option<Entry>,
    engine_done: bool,
    /// Unflushed writes in the range, in key order.
    pending: std::iter::Peekable<std::vec::IntoIter<Entry>>,
}

impl<'a> Scan<'a> {
    pub(super) fn new(
        txn: &'a Transaction,
        engine: ScanIterator<'a>,
        pending: Vec<(Vec<u8>, Option<Vec<u8>>)>,
    ) -> Self {
        Self {
            txn,
            engine,
            group: None,
            engine_next: None,
            engine_done: false,
            pending: pending.into_iter().peekable(),
        }
    }

    /// Returns the next key's newest visible version from the engine (tombstones included).
    fn next_from_engine(&mut self) -> Result<Option<Entry>> {
        loop {
            let Some(item) = self.engine.next() else {
                // The last group is complete.
                return match self.group.take() {
                    Some((prefix, Some(stored))) => {
                        Ok(Some((decode_user_key(&prefix)?, decode_stored(stored)?)))
                    }
                    _ => Ok(None),
                };
            };
            let (raw, stored) = item?;
            let (prefix, version) = split_version_key(&raw)?;
            let visible = self.txn.state.is_visible(version);
            match &mut self.group {
                Some((group_prefix, best)) if group_prefix.as_slice() == prefix => {
                    if visible {
                        *best = Some(stored);
                    }
                }
                _ => {
                    let finished = self.group.replace((prefix.to_vec(), visible.then_some(stored)));
                    if let Some((prefix, Some(stored))) = finished {
                        return Ok(Some((decode_user_key(&prefix)?, decode_stored(stored)?)));
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
                (Some((engine_key, _)), Some((pending_key, _))) => engine_key.cmp(pending_key),
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
