//! The on-disk engine: one tree of a sled 0.34 database.
//!
//! Rules followed here (see the style guide's storage section):
//! - `flush()` is sled's only durability barrier, and it flushes the whole database (every
//!   tree). Callers flush before acknowledging a write.
//! - A batch is atomic within one tree only, so an engine is exactly one tree. Several engines
//!   (SQL state, Raft log) can share one [`sled::Db`] through [`SledEngine::open_tree`].
//! - The cache is set explicitly ([`CACHE_CAPACITY`]) and the space-saving mode is kept.

use super::engine::{Engine, KeyValue, ScanIterator, Status, WriteBatch};
use super::{Error, Result};
use std::ops::Bound;
use std::path::Path;

/// The page cache size. sled counts on-disk bytes here, so resident memory can be several times
/// larger; the default of 1 GiB is too much for a small node.
pub const CACHE_CAPACITY: u64 = 32 << 20;

/// How long opening waits for a database lock that a handle of this process is releasing.
pub const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// The tree used by [`SledEngine::open`].
pub const DEFAULT_TREE: &str = "chronos";

/// A key/value engine on one sled tree.
#[derive(Clone)]
pub struct SledEngine {
    /// The database the tree belongs to (for flush and disk size).
    db: sled::Db,
    /// The tree holding this engine's keys.
    tree: sled::Tree,
}

impl SledEngine {
    /// Opens (or creates) the database in directory `path` and its default tree.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let db = Self::open_db(path)?;
        Self::open_tree(&db, DEFAULT_TREE)
    }

    /// Opens (or creates) a sled database in directory `path` with Chronos's settings.
    ///
    /// sled releases its file lock asynchronously after the last handle drops (its flusher
    /// thread holds it for a moment; spacejam/sled#1234), so a database reopened in the same
    /// process can find it still locked. Opening therefore waits up to [`LOCK_WAIT`] for the
    /// lock, then reports that another process holds the database.
    pub fn open_db(path: impl AsRef<Path>) -> Result<sled::Db> {
        let path = path.as_ref();
        let config = sled::Config::new()
            .path(path)
            .cache_capacity(CACHE_CAPACITY)
            .mode(sled::Mode::LowSpace);
        let deadline = std::time::Instant::now() + LOCK_WAIT;
        loop {
            match config.open() {
                Ok(db) => return Ok(db),
                Err(sled::Error::Io(error)) if is_lock_error(&error) => {
                    if std::time::Instant::now() >= deadline {
                        return Err(Error::Io(format!(
                            "database at {} is locked by another process (is another node running on this data directory?)",
                            path.display()
                        )));
                    }
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                Err(error) => {
                    return Err(match from_sled(error) {
                        Error::Io(message) => Error::Io(format!(
                            "cannot open database at {}: {message}",
                            path.display()
                        )),
                        other => other,
                    });
                }
            }
        }
    }

    /// Opens (or creates) the tree `name` of an open database.
    pub fn open_tree(db: &sled::Db, name: &str) -> Result<Self> {
        let tree = db.open_tree(name).map_err(from_sled)?;
        Ok(Self { db: db.clone(), tree })
    }

    /// A database in a temporary directory that is removed when the last handle drops.
    pub fn temporary() -> Result<Self> {
        let db = sled::Config::new().temporary(true).open().map_err(from_sled)?;
        Self::open_tree(&db, DEFAULT_TREE)
    }
}

/// True for sled's "could not acquire lock" error (sled reports it as a plain I/O error).
fn is_lock_error(error: &std::io::Error) -> bool {
    error.to_string().starts_with("could not acquire lock")
}

/// Maps a sled error to a storage error.
fn from_sled(error: sled::Error) -> Error {
    match error {
        sled::Error::Io(error) => Error::Io(error.to_string()),
        sled::Error::Corruption { at, .. } => Error::Corrupt(format!("sled corruption at {at:?}")),
        other => Error::Io(other.to_string()),
    }
}

impl Engine for SledEngine {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.tree.get(key).map_err(from_sled)?.map(|value| value.to_vec()))
    }

    fn set(&self, key: &[u8], value: Vec<u8>) -> Result<()> {
        self.tree.insert(key, value).map_err(from_sled)?;
        Ok(())
    }

    fn delete(&self, key: &[u8]) -> Result<()> {
        self.tree.remove(key).map_err(from_sled)?;
        Ok(())
    }

    fn scan(&self, range: (Bound<Vec<u8>>, Bound<Vec<u8>>)) -> ScanIterator<'_> {
        Box::new(SledScan { inner: self.tree.range(range), front: None, back: None, done: false })
    }

    fn write(&self, batch: WriteBatch) -> Result<()> {
        let mut sled_batch = sled::Batch::default();
        for (key, value) in batch.into_ops() {
            match value {
                Some(value) => sled_batch.insert(key, value),
                None => sled_batch.remove(key),
            }
        }
        self.tree.apply_batch(sled_batch).map_err(from_sled)
    }

    fn flush(&self) -> Result<()> {
        // Flushes the shared page cache and fsyncs: this covers every tree of the database.
        self.db.flush().map_err(from_sled)?;
        Ok(())
    }

    fn status(&self) -> Result<Status> {
        let mut keys = 0;
        let mut size = 0;
        for item in self.tree.iter() {
            let (key, value) = item.map_err(from_sled)?;
            keys += 1;
            size += (key.len() + value.len()) as u64;
        }
        let disk_size = self.db.size_on_disk().map_err(from_sled)?;
        Ok(Status { name: "sled".into(), keys, size, disk_size })
    }
}

/// sled's iterator, guarded so that its two ends never cross: mixing `next` and `next_back` on
/// one sled iterator can yield keys twice (spacejam/sled#1540), so each end stops at the last
/// key the other end returned.
struct SledScan {
    inner: sled::Iter,
    /// The last key returned from the front.
    front: Option<sled::IVec>,
    /// The last key returned from the back.
    back: Option<sled::IVec>,
    /// The ends have met.
    done: bool,
}

impl SledScan {
    fn emit(
        &mut self,
        item: Option<sled::Result<(sled::IVec, sled::IVec)>>,
        front: bool,
    ) -> Option<Result<KeyValue>> {
        if self.done {
            return None;
        }
        let (key, value) = match item? {
            Ok(pair) => pair,
            Err(error) => return Some(Err(from_sled(error))),
        };
        let crossed = if front {
            self.back.as_ref().is_some_and(|back| key >= *back)
        } else {
            self.front.as_ref().is_some_and(|front| key <= *front)
        };
        if crossed {
            self.done = true;
            return None;
        }
        let out = (key.to_vec(), value.to_vec());
        if front {
            self.front = Some(key);
        } else {
            self.back = Some(key);
        }
        Some(Ok(out))
    }
}

impl Iterator for SledScan {
    type Item = Result<KeyValue>;

    fn next(&mut self) -> Option<Self::Item> {
        let item = if self.done { None } else { self.inner.next() };
        self.emit(item, true)
    }
}

impl DoubleEndedIterator for SledScan {
    fn next_back(&mut self) -> Option<Self::Item> {
        let item = if self.done { None } else { self.inner.next_back() };
        self.emit(item, false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    crate::storage::test_suite::engine_tests!(SledEngine::temporary().unwrap());

    #[test]
    fn data_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let engine = SledEngine::open(dir.path()).unwrap();
            engine.set(b"k", b"v".to_vec()).unwrap();
            let mut batch = WriteBatch::new();
            batch.set(b"a".to_vec(), b"1".to_vec());
            batch.set(b"b".to_vec(), b"2".to_vec());
            engine.write(batch).unwrap();
            engine.flush().unwrap();
        }
        let engine = SledEngine::open(dir.path()).unwrap();
        assert_eq!(engine.get(b"k").unwrap(), Some(b"v".to_vec()));
        assert_eq!(engine.get(b"b").unwrap(), Some(b"2".to_vec()));
        assert!(engine.status().unwrap().disk_size > 0);
    }

    #[test]
    fn trees_are_separate_key_spaces() {
        let dir = tempfile::tempdir().unwrap();
        let db = SledEngine::open_db(dir.path()).unwrap();
        let a = SledEngine::open_tree(&db, "a").unwrap();
        let b = SledEngine::open_tree(&db, "b").unwrap();
        a.set(b"k", b"1".to_vec()).unwrap();
        assert_eq!(b.get(b"k").unwrap(), None);
    }

    #[test]
    fn a_database_held_open_is_reported_as_locked() {
        let dir = tempfile::tempdir().unwrap();
        let _held = SledEngine::open(dir.path()).unwrap();
        let error = SledEngine::open(dir.path()).err().unwrap();
        assert!(error.to_string().contains("locked by another process"), "{error}");
    }

    #[test]
    fn open_on_a_file_is_an_error() {
        let file = tempfile::NamedTempFile::new().unwrap();
        let error = SledEngine::open(file.path()).err().unwrap();
        assert!(matches!(error, Error::Io(_)), "{error:?}");
    }
}
