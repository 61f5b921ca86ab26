//! A replica's store: the durable engine under a replicated state machine, with atomic
//! commits at entry boundaries and point-in-time snapshots that can be read while it changes.
//!
//! # Commits
//! Writes (from MVCC) go to an in-memory overlay that every reader sees at once, exactly as if
//! they were in the base engine. [`ReplicaStore::commit`] writes the overlay to the base engine
//! as one atomic batch (the caller commits when [`ReplicaStore::uncommitted_bytes`] grows, so
//! many small entries share one batch), then starts a fresh overlay; a reader that began
//! before keeps the old one, so it finds each key in the overlay it holds or in the base,
//! whether the base engine's scans are live or snapshots. The state machine can put its
//! applied index in the same batch as the writes of the entries it covers: after a crash the base holds every entry up to the
//! recorded applied index and nothing of later ones. Nothing here fsyncs; durability is
//! [`Engine::flush`] of the base (the Raft log is the durable record until then).
//!
//! # Snapshots
//! [`ReplicaStore::snapshot`] opens a read view of the base as it is at that moment (between
//! commits). It is copy-on-write: while a view is open, each commit first saves, in an undo
//! store of the view, the current value (or absence) of every key it is about to change, once
//! per key. A view reads the base and prefers the undo store's saved value, so it sees the
//! state at the moment it was opened however long it is read for, without stopping commits.
//! Undo stores live beside the base (tables of the same database) and are dropped with their
//! view.
//!
//! Invariants:
//! - A commit's batch reaches the base only after every open view has saved the pre-image of
//!   every key in it; a view reads a key from the base before it looks for a saved pre-image,
//!   so any value it takes from the base was current when the view was opened.
//! - Only one thread commits (the applier); readers may run on any thread.

use super::engine::{Engine, KeyValue, ScanIterator, Status, WriteBatch};
use super::{Error, MemoryEngine, Result};
use std::ops::Bound;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};

/// Makes an empty undo store for a new view; returns it and what to run when the view closes.
pub type UndoFactory =
    Box<dyn Fn() -> Result<(Arc<dyn Engine>, Box<dyn FnOnce() + Send + Sync>)> + Send + Sync>;

/// The overlay value of a key set since the last commit (`SET`) or deleted (`DELETE`).
const SET: u8 = 1;
const DELETE: u8 = 0;

/// The saved pre-image of a key that existed when a view opened, or the mark of one that did
/// not.
const EXISTED: u8 = 1;
const ABSENT: u8 = 0;

fn tagged(tag: u8, value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len() + 1);
    out.push(tag);
    out.extend_from_slice(value);
    out
}

/// Splits a tagged value into its tag and the value (`None` for a delete or an absence).
fn untag(mut stored: Vec<u8>) -> Result<Option<Vec<u8>>> {
    match stored.first() {
        Some(&SET) => {
            stored.remove(0);
            Ok(Some(stored))
        }
        Some(&DELETE) if stored.len() == 1 => Ok(None),
        _ => Err(Error::Corrupt("invalid tagged value in a replica overlay".into())),
    }
}

/// An open view's undo store.
struct Undo {
    engine: Arc<dyn Engine>,
    close: Mutex<Option<Box<dyn FnOnce() + Send + Sync>>>,
}

impl Drop for Undo {
    fn drop(&mut self) {
        let close = self.close.get_mut().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(close) = close {
            close();
        }
    }
}

/// A replica's store (see the module docs).
pub struct ReplicaStore {
    base: Arc<dyn Engine>,
    /// The writes since the last commit: keys tagged `SET` or `DELETE`. Replaced, not
    /// cleared, by a commit (readers may still hold the old one).
    overlay: RwLock<MemoryEngine>,
    /// About how many bytes were written to the overlay (overwrites count again).
    uncommitted: AtomicUsize,
    /// Makes undo stores for views.
    undo: UndoFactory,
    /// The open views.
    views: Mutex<Vec<Weak<Undo>>>,
    /// Run once the store is closed (after its engines are released).
    on_close: Mutex<Option<Box<dyn FnOnce() + Send>>>,
}

impl Drop for ReplicaStore {
    fn drop(&mut self) {
        let on_close = self.on_close.get_mut().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(on_close) = on_close {
            // Release the engines first (the undo factory holds the database too).
            self.base = Arc::new(MemoryEngine::new());
            self.undo = Box::new(|| Err(Error::Io("the store is closed".into())));
            on_close();
        }
    }
}

impl ReplicaStore {
    /// A store over `base`, whose batches must be atomic across a crash, making undo stores
    /// for views with `undo`.
    pub fn new(base: Arc<dyn Engine>, undo: UndoFactory) -> Self {
        Self {
            base,
            overlay: RwLock::new(MemoryEngine::new()),
            uncommitted: AtomicUsize::new(0),
            undo,
            views: Mutex::new(Vec::new()),
            on_close: Mutex::new(None),
        }
    }

    /// Runs `action` once the store is closed: after the last handle to it is dropped and its
    /// engines are released (a replaced store's files are removed this way). Open views keep
    /// the base engine alive beyond that.
    pub fn when_closed(&self, action: impl FnOnce() + Send + 'static) {
        *self.on_close.lock().unwrap_or_else(|p| p.into_inner()) = Some(Box::new(action));
    }

    /// A store in memory (tests and simulation).
    pub fn memory() -> Self {
        Self::new(
            Arc::new(MemoryEngine::new()),
            Box::new(|| {
                Ok((Arc::new(MemoryEngine::new()) as Arc<dyn Engine>, Box::new(|| {}) as _))
            }),
        )
    }

    /// The base engine (committed data only).
    pub fn base(&self) -> &Arc<dyn Engine> {
        &self.base
    }

    /// The overlay in use. A reader takes it before it reads the base: a commit writes the base
    /// before it replaces the overlay, so a reader holding the new overlay finds the base
    /// already written.
    fn overlay(&self) -> MemoryEngine {
        self.overlay.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn open_views(&self) -> Vec<Arc<Undo>> {
        let mut views = self.views.lock().unwrap_or_else(|p| p.into_inner());
        views.retain(|view| view.strong_count() > 0);
        views.iter().filter_map(Weak::upgrade).collect()
    }

    /// Writes everything since the last commit to the base as one atomic batch, with `extra` written
    /// after it (the caller's applied index, say). Not durable until [`Engine::flush`].
    pub fn commit(&self, extra: WriteBatch) -> Result<()> {
        let overlay = self.overlay();
        let mut batch = WriteBatch::new();
        for item in overlay.scan((Bound::Unbounded, Bound::Unbounded)) {
            let (key, stored) = item?;
            match untag(stored)? {
                Some(value) => batch.set(key, value),
                None => batch.delete(key),
            }
        }
        for (key, value) in extra.into_ops() {
            match value {
                Some(value) => batch.set(key, value),
                None => batch.delete(key),
            }
        }
        if batch.is_empty() {
            return Ok(());
        }
        self.save_pre_images(&batch)?;
        self.base.write(batch)?;
        // Readers now find the same values in the base; those that took the old overlay keep
        // it.
        *self.overlay.write().unwrap_or_else(|p| p.into_inner()) = MemoryEngine::new();
        self.uncommitted.store(0, Ordering::Relaxed);
        Ok(())
    }

    /// Saves, in each open view's undo store, what `batch` is about to change (once per key and
    /// view: a value saved by an earlier commit is the view's), as one write per view.
    fn save_pre_images(&self, batch: &WriteBatch) -> Result<()> {
        let views = self.open_views();
        if views.is_empty() {
            return Ok(());
        }
        let mut saves = vec![WriteBatch::new(); views.len()];
        let mut seen = std::collections::BTreeSet::new();
        for (key, _) in batch.ops() {
            if !seen.insert(key.as_slice()) {
                continue;
            }
            let mut current = None;
            for (view, save) in views.iter().zip(saves.iter_mut()) {
                if view.engine.get(key)?.is_some() {
                    continue;
                }
                if current.is_none() {
                    current = Some(match self.base.get(key)? {
                        Some(value) => tagged(EXISTED, &value),
                        None => vec![ABSENT],
                    });
                }
                if let Some(saved) = &current {
                    save.set(key.clone(), saved.clone());
                }
            }
        }
        for (view, save) in views.iter().zip(saves) {
            view.engine.write(save)?;
        }
        Ok(())
    }

    /// About how many bytes of writes wait for [`ReplicaStore::commit`] (the memory they hold).
    pub fn uncommitted_bytes(&self) -> usize {
        self.uncommitted.load(Ordering::Relaxed)
    }

    fn count(&self, key: &[u8], stored: &[u8]) {
        self.uncommitted.fetch_add(key.len() + stored.len(), Ordering::Relaxed);
    }

    /// Whether writes are waiting for [`ReplicaStore::commit`].
    pub fn has_uncommitted(&self) -> bool {
        self.overlay().scan((Bound::Unbounded, Bound::Unbounded)).next().is_some()
    }

    /// Opens a view of the committed state as it is now. Fails if writes are uncommitted (a
    /// view is taken between entries).
    pub fn snapshot(&self) -> Result<View> {
        if self.has_uncommitted() {
            return Err(Error::InvalidTransaction(
                "a snapshot view is taken between commits, not during one".into(),
            ));
        }
        let (engine, close) = (self.undo)()?;
        let undo = Arc::new(Undo { engine, close: Mutex::new(Some(close)) });
        self.views.lock().unwrap_or_else(|p| p.into_inner()).push(Arc::downgrade(&undo));
        Ok(View { base: self.base.clone(), undo })
    }
}

/// A point-in-time view of a [`ReplicaStore`]'s committed state (see the module docs). Send it
/// to another thread to read; dropping it releases its undo store.
pub struct View {
    base: Arc<dyn Engine>,
    undo: Arc<Undo>,
}

impl View {
    /// The pairs after `after` (all, when `None`), in key order, up to about `max_bytes` of
    /// keys and values (at least one pair); empty once the view is exhausted. Reading resumes
    /// anywhere: pass the last key returned.
    pub fn read(&self, after: Option<&[u8]>, max_bytes: usize) -> Result<Vec<KeyValue>> {
        let mut from = match after {
            Some(key) => Bound::Excluded(key.to_vec()),
            None => Bound::Unbounded,
        };
        loop {
            let (out, end) = self.read_stretch(from, max_bytes)?;
            match end {
                // Everything in this stretch was absent when the view opened: go on after it.
                Bound::Included(last) if out.is_empty() => from = Bound::Excluded(last),
                _ => return Ok(out),
            }
        }
    }

    /// One stretch of [`View::read`]: the pairs and how far the stretch reached.
    fn read_stretch(
        &self,
        from: Bound<Vec<u8>>,
        max_bytes: usize,
    ) -> Result<(Vec<KeyValue>, Bound<Vec<u8>>)> {
        // The base first, then the saved pre-images of the same range (see the invariants).
        let mut base = Vec::new();
        let mut bytes = 0;
        for item in self.base.scan((from.clone(), Bound::Unbounded)) {
            let (key, value) = item?;
            bytes += key.len() + value.len();
            base.push((key, value));
            if bytes >= max_bytes {
                break;
            }
        }
        let base_end = match base.last() {
            Some((key, _)) if bytes >= max_bytes => Bound::Included(key.clone()),
            _ => Bound::Unbounded,
        };
        let mut saved = Vec::new();
        let mut saved_bytes = 0;
        for item in self.undo.engine.scan((from, base_end.clone())) {
            let (key, value) = item?;
            saved_bytes += key.len() + value.len();
            saved.push((key, value));
            if saved_bytes >= max_bytes {
                break;
            }
        }
        // Both sides are complete up to the lower of their ends.
        let end = match (&base_end, saved.last()) {
            (_, Some((key, _))) if saved_bytes >= max_bytes => match &base_end {
                Bound::Included(base_key) if base_key < key => base_end.clone(),
                _ => Bound::Included(key.clone()),
            },
            _ => base_end,
        };
        let limit = end.clone();
        let within = |key: &Vec<u8>| match &limit {
            Bound::Included(limit) => key <= limit,
            _ => true,
        };
        let mut out = Vec::new();
        let mut base = base.into_iter().filter(|(k, _)| within(k)).peekable();
        let mut saved = saved.into_iter().filter(|(k, _)| within(k)).peekable();
        loop {
            let take_saved = match (base.peek(), saved.peek()) {
                (None, None) => break,
                (Some(_), None) => false,
                (None, Some(_)) => true,
                (Some((b, _)), Some((s, _))) => s <= b,
            };
            if take_saved {
                let Some((key, stored)) = saved.next() else { break };
                if base.peek().is_some_and(|(b, _)| *b == key) {
                    base.next(); // changed since the view opened: the saved value wins
                }
                match stored.split_first() {
                    Some((&EXISTED, value)) => out.push((key, value.to_vec())),
                    Some((&ABSENT, [])) => {}
                    _ => return Err(Error::Corrupt("invalid saved value in an undo store".into())),
                }
            } else if let Some(pair) = base.next() {
                out.push(pair);
            }
        }
        Ok((out, end))
    }
}

impl Engine for ReplicaStore {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        match self.overlay().get(key)? {
            Some(stored) => untag(stored),
            None => self.base.get(key),
        }
    }

    fn set(&self, key: &[u8], value: Vec<u8>) -> Result<()> {
        let stored = tagged(SET, &value);
        self.count(key, &stored);
        self.overlay().set(key, stored)
    }

    fn delete(&self, key: &[u8]) -> Result<()> {
        self.count(key, &[DELETE]);
        self.overlay().set(key, vec![DELETE])
    }

    fn last(&self, range: (Bound<Vec<u8>>, Bound<Vec<u8>>)) -> Result<Option<KeyValue>> {
        // The overlay first (see `overlay`). Its newest key wins over the base's unless the base
        // has a later one; a deletion in the overlay hides the key, so look below it.
        let overlay = self.overlay();
        let (start, mut end) = range;
        loop {
            let range = (start.clone(), end.clone());
            let from_overlay = overlay.last(range.clone())?;
            let from_base = self.base.last(range)?;
            match (from_overlay, from_base) {
                (None, base) => return Ok(base),
                (Some((key, _)), Some(base)) if base.0 > key => return Ok(Some(base)),
                (Some((key, stored)), _) => match untag(stored)? {
                    Some(value) => return Ok(Some((key, value))),
                    None => end = Bound::Excluded(key),
                },
            }
        }
    }

    fn scan(&self, range: (Bound<Vec<u8>>, Bound<Vec<u8>>)) -> ScanIterator<'_> {
        // The overlay first (see `overlay`).
        let overlay = self.overlay().scan_owned(range.clone());
        Box::new(Merge::new(self.base.scan(range), overlay))
    }

    fn write(&self, batch: WriteBatch) -> Result<()> {
        let mut tagged_batch = WriteBatch::new();
        for (key, value) in batch.into_ops() {
            let stored = match value {
                Some(value) => tagged(SET, &value),
                None => vec![DELETE],
            };
            self.count(&key, &stored);
            tagged_batch.set(key, stored);
        }
        self.overlay().write(tagged_batch)
    }

    fn flush(&self) -> Result<()> {
        self.base.flush()
    }

    fn status(&self) -> Result<Status> {
        let mut status = self.base.status()?;
        // Count what readers see, the entry in progress included.
        let (mut keys, mut size) = (0, 0);
        for item in self.scan((Bound::Unbounded, Bound::Unbounded)) {
            let (key, value) = item?;
            keys += 1;
            size += (key.len() + value.len()) as u64;
        }
        status.keys = keys;
        status.size = size;
        Ok(status)
    }
}

/// The base's pairs merged with the overlay's (which win, and hide deleted keys), from either
/// end.
struct Merge<'a> {
    base: std::iter::Peekable<ScanIterator<'a>>,
    overlay: std::iter::Peekable<ScanIterator<'a>>,
    base_back: Option<Result<KeyValue>>,
    overlay_back: Option<Result<KeyValue>>,
    /// The last key returned from the front and from the back: the ends stop where they meet.
    front_key: Option<Vec<u8>>,
    back_key: Option<Vec<u8>>,
}

impl<'a> Merge<'a> {
    fn new(base: ScanIterator<'a>, overlay: ScanIterator<'a>) -> Self {
        Self {
            base: base.peekable(),
            overlay: overlay.peekable(),
            base_back: None,
            overlay_back: None,
            front_key: None,
            back_key: None,
        }
    }

    fn crossed(&self, key: &[u8], front: bool) -> bool {
        match front {
            true => self.back_key.as_deref().is_some_and(|back| key >= back),
            false => self.front_key.as_deref().is_some_and(|front| key <= front),
        }
    }

    fn next_front(&mut self) -> Option<Result<KeyValue>> {
        loop {
            // Errors surface at once.
            if let Some(Err(_)) = self.base.peek() {
                return self.base.next();
            }
            if let Some(Err(_)) = self.overlay.peek() {
                return self.overlay.next();
            }
            // A pair held back by the other end belongs to the remaining range too. Keys are
            // compared where they lie: a scan allocates nothing here per pair.
            let (take_overlay, same_key) = {
                let base_key = match (self.base.peek(), &self.base_back) {
                    (Some(Ok((k, _))), _) | (None, Some(Ok((k, _)))) => Some(k.as_slice()),
                    _ => None,
                };
                let overlay_key = match (self.overlay.peek(), &self.overlay_back) {
                    (Some(Ok((k, _))), _) | (None, Some(Ok((k, _)))) => Some(k.as_slice()),
                    _ => None,
                };
                match (base_key, overlay_key) {
                    (None, None) => return None,
                    (Some(_), None) => (false, false),
                    (None, Some(_)) => (true, false),
                    (Some(b), Some(o)) => (o <= b, o == b),
                }
            };
            let pair = if take_overlay {
                let (key, stored) = match self.overlay.next().or_else(|| self.overlay_back.take()) {
                    Some(Ok(pair)) => pair,
                    other => return other,
                };
                if same_key {
                    let _ = self.base.next().or_else(|| self.base_back.take());
                }
                match untag(stored) {
                    Ok(Some(value)) => (key, value),
                    Ok(None) => continue,
                    Err(error) => return Some(Err(error)),
                }
            } else {
                match self.base.next().or_else(|| self.base_back.take()) {
                    Some(Ok(pair)) => pair,
                    other => return other,
                }
            };
            if self.crossed(&pair.0, true) {
                return None;
            }
            remember(&mut self.front_key, &pair.0);
            return Some(Ok(pair));
        }
    }

    fn next_back_pair(&mut self) -> Option<Result<KeyValue>> {
        loop {
            if self.base_back.is_none() {
                self.base_back = self.base.next_back();
            }
            if self.overlay_back.is_none() {
                self.overlay_back = self.overlay.next_back();
            }
            if let Some(Err(_)) = &self.base_back {
                return self.base_back.take();
            }
            if let Some(Err(_)) = &self.overlay_back {
                return self.overlay_back.take();
            }
            let (take_overlay, same_key) = {
                let base_key = self.base_back.as_ref().and_then(|r| r.as_ref().ok()).map(|p| &p.0);
                let overlay_key =
                    self.overlay_back.as_ref().and_then(|r| r.as_ref().ok()).map(|p| &p.0);
                match (base_key, overlay_key) {
                    (None, None) => return None,
                    (Some(_), None) => (false, false),
                    (None, Some(_)) => (true, false),
                    (Some(b), Some(o)) => (o >= b, o == b),
                }
            };
            let pair = if take_overlay {
                let (key, stored) = match self.overlay_back.take() {
                    Some(Ok(pair)) => pair,
                    other => return other,
                };
                if same_key {
                    self.base_back = None;
                }
                match untag(stored) {
                    Ok(Some(value)) => (key, value),
                    Ok(None) => continue,
                    Err(error) => return Some(Err(error)),
                }
            } else {
                match self.base_back.take() {
                    Some(Ok(pair)) => pair,
                    other => return other,
                }
            };
            if self.crossed(&pair.0, false) {
                return None;
            }
            remember(&mut self.back_key, &pair.0);
            return Some(Ok(pair));
        }
    }
}

/// Keeps a copy of `key` in `slot`, reusing its buffer.
fn remember(slot: &mut Option<Vec<u8>>, key: &[u8]) {
    match slot {
        Some(kept) => {
            kept.clear();
            kept.extend_from_slice(key);
        }
        None => *slot = Some(key.to_vec()),
    }
}

impl Iterator for Merge<'_> {
    type Item = Result<KeyValue>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_front()
    }
}

impl DoubleEndedIterator for Merge<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        self.next_back_pair()
    }
}

#[cfg(test)]
#[path = "replica_tests.rs"]
mod tests;
