//! An in-memory engine over a `BTreeMap`, for tests and deterministic simulation.

use super::Result;
use super::engine::{Engine, KeyValue, ScanIterator, Status, WriteBatch};
use std::collections::{BTreeMap, VecDeque};
use std::ops::Bound;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// How many entries a scan cursor copies out per lock acquisition.
const SCAN_CHUNK: usize = 128;

/// An in-memory key/value engine. Cloning gives another handle to the same data, which is how
/// a simulated node "restarts" with what it had flushed.
#[derive(Clone, Debug, Default)]
pub struct MemoryEngine {
    /// The data, shared by every handle.
    data: Arc<RwLock<BTreeMap<Vec<u8>, Vec<u8>>>>,
}

impl MemoryEngine {
    /// A new, empty engine.
    pub fn new() -> Self {
        Self::default()
    }

    fn read(&self) -> RwLockReadGuard<'_, BTreeMap<Vec<u8>, Vec<u8>>> {
        // A poisoned lock only means another thread panicked mid-test; the map itself is intact
        // because every mutation below is a single BTreeMap call.
        self.data.read().unwrap_or_else(|poison| poison.into_inner())
    }

    fn write_lock(&self) -> RwLockWriteGuard<'_, BTreeMap<Vec<u8>, Vec<u8>>> {
        self.data.write().unwrap_or_else(|poison| poison.into_inner())
    }

    /// A copy of every key and value, in order (used to compare replicas byte for byte).
    pub fn dump(&self) -> Vec<KeyValue> {
        self.read().iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }

    /// Like [`Engine::scan`], but the cursor holds its own handle to the data, so it outlives
    /// this handle.
    pub fn scan_owned(&self, range: (Bound<Vec<u8>>, Bound<Vec<u8>>)) -> ScanIterator<'static> {
        Box::new(MemoryScan {
            engine: self.clone(),
            front: range.0,
            back: range.1,
            front_buffer: VecDeque::new(),
            back_buffer: VecDeque::new(),
            exhausted: false,
        })
    }

    /// An engine holding exactly `pairs`.
    pub fn from_dump(pairs: Vec<KeyValue>) -> Self {
        Self { data: Arc::new(RwLock::new(pairs.into_iter().collect())) }
    }
}

impl Engine for MemoryEngine {
    fn last(&self, range: (Bound<Vec<u8>>, Bound<Vec<u8>>)) -> Result<Option<KeyValue>> {
        if super::engine::is_empty_range(&range) {
            return Ok(None);
        }
        Ok(self.read().range(range).next_back().map(|(k, v)| (k.clone(), v.clone())))
    }

    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.read().get(key).cloned())
    }

    fn set(&self, key: &[u8], value: Vec<u8>) -> Result<()> {
        self.write_lock().insert(key.to_vec(), value);
        Ok(())
    }

    fn delete(&self, key: &[u8]) -> Result<()> {
        self.write_lock().remove(key);
        Ok(())
    }

    fn scan(&self, range: (Bound<Vec<u8>>, Bound<Vec<u8>>)) -> ScanIterator<'_> {
        self.scan_owned(range)
    }

    fn write(&self, batch: WriteBatch) -> Result<()> {
        let mut data = self.write_lock();
        for (key, value) in batch.into_ops() {
            match value {
                Some(value) => data.insert(key, value),
                None => data.remove(&key),
            };
        }
        Ok(())
    }

    fn flush(&self) -> Result<()> {
        Ok(())
    }

    fn status(&self) -> Result<Status> {
        let data = self.read();
        let size = data.iter().map(|(k, v)| (k.len() + v.len()) as u64).sum();
        Ok(Status { name: "memory".into(), keys: data.len() as u64, size, disk_size: 0 })
    }
}

/// A scan cursor that copies a chunk of entries at a time, so no lock is held between calls.
/// `front` and `back` are the remaining range; each refill narrows it past what was copied.
struct MemoryScan {
    engine: MemoryEngine,
    front: Bound<Vec<u8>>,
    back: Bound<Vec<u8>>,
    front_buffer: VecDeque<KeyValue>,
    back_buffer: VecDeque<KeyValue>,
    /// The remaining range is known to be empty.
    exhausted: bool,
}

impl MemoryScan {
    /// True when the remaining range cannot contain a key.
    fn range_is_empty(&self) -> bool {
        match (&self.front, &self.back) {
            (Bound::Included(a), Bound::Included(b)) => a > b,
            (Bound::Included(a), Bound::Excluded(b))
            | (Bound::Excluded(a), Bound::Included(b))
            | (Bound::Excluded(a), Bound::Excluded(b)) => a >= b,
            _ => false,
        }
    }

    /// Copies up to one chunk from the front (or back) of the remaining range.
    fn refill(&mut self, from_front: bool) {
        if self.exhausted || self.range_is_empty() {
            self.exhausted = true;
            return;
        }
        let data = self.engine.read();
        let range = data.range::<[u8], _>((as_slice(&self.front), as_slice(&self.back)));
        let chunk: Vec<KeyValue> = if from_front {
            range.take(SCAN_CHUNK).map(|(k, v)| (k.clone(), v.clone())).collect()
        } else {
            range.rev().take(SCAN_CHUNK).map(|(k, v)| (k.clone(), v.clone())).collect()
        };
        drop(data);
        let Some((last, _)) = chunk.last() else {
            self.exhausted = true;
            return;
        };
        if from_front {
            self.front = Bound::Excluded(last.clone());
            self.front_buffer.extend(chunk);
        } else {
            self.back = Bound::Excluded(last.clone());
            self.back_buffer.extend(chunk);
        }
    }
}

fn as_slice(bound: &Bound<Vec<u8>>) -> Bound<&[u8]> {
    match bound {
        Bound::Included(key) => Bound::Included(key.as_slice()),
        Bound::Excluded(key) => Bound::Excluded(key.as_slice()),
        Bound::Unbounded => Bound::Unbounded,
    }
}

impl Iterator for MemoryScan {
    type Item = Result<KeyValue>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.front_buffer.is_empty() {
            self.refill(true);
        }
        // Once the range is used up, what is left sits in the other end's buffer.
        self.front_buffer.pop_front().or_else(|| self.back_buffer.pop_back()).map(Ok)
    }
}

impl DoubleEndedIterator for MemoryScan {
    fn next_back(&mut self) -> Option<Self::Item> {
        if self.back_buffer.is_empty() {
            self.refill(false);
        }
        self.back_buffer.pop_front().or_else(|| self.front_buffer.pop_back()).map(Ok)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    crate::storage::test_suite::engine_tests!(MemoryEngine::new());

    #[test]
    fn clones_share_data() {
        let engine = MemoryEngine::new();
        let other = engine.clone();
        engine.set(b"k", b"v".to_vec()).unwrap();
        assert_eq!(other.get(b"k").unwrap(), Some(b"v".to_vec()));
        assert_eq!(other.dump(), vec![(b"k".to_vec(), b"v".to_vec())]);
    }
}
