//! The replica's engine on disk: one table of a redb database.
//!
//! redb keeps its memory within the cache it is given whatever the size of the database (sled
//! 0.34 does not: its memory grows with the number of keys, spacejam/sled#1093), and it
//! commits atomically with a durability level per transaction. So:
//! - A write is one transaction committed without an fsync ([`redb::Durability::None`]): it is
//!   atomic, visible at once, and after a crash either there or not.
//! - [`Engine::flush`] commits an empty transaction with an fsync, which makes every earlier
//!   write durable, and records redb's allocator state ("quick repair"), so opening after a
//!   crash does not walk the database. Every durable commit records it: one without would
//!   leave the next crash a full repair, reading the whole file.
//! - Every value is stored with a CRC-32 of its key and value, checked on every read: redb
//!   checks its page checksums only when it repairs, and a damaged value must never be served.
//! - Scans read a snapshot (a read transaction) taken when the scan starts.
//!
//! Several engines (the data, views' undo tables) can share one database through
//! [`RedbEngine::open_table`].

use super::engine::{Engine, KeyValue, ScanIterator, Status, WriteBatch, is_empty_range};
use super::{Error, ReplicaStore, Result, UndoFactory};
use redb::{Database, ReadableDatabase, ReadableTableMetadata, TableDefinition};
use std::ops::Bound;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// The memory redb may use for caching pages (reads and writes not yet on disk), unless the
/// node is given another size.
pub const CACHE_BYTES: usize = 32 << 20;

/// The file of a database in its directory.
const FILE: &str = "data.redb";

thread_local! {
    /// Full repairs run by opens on this thread (a test checks that a crash needs none).
    static REPAIRS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// The table holding a replica store's data.
const DATA_TABLE: &str = "data";
/// The prefix of the tables that hold snapshot views' pre-images (dropped at open).
const UNDO_TABLE: &str = "undo-";

type Table<'a> = TableDefinition<'a, &'static [u8], &'static [u8]>;

/// A key/value engine on one table of a redb database.
///
/// Reads share one read transaction until this engine (or a clone) next writes the table, so a
/// point read costs a lookup, not a transaction and a table open. Invariant: every write to a
/// table goes through its one engine or that engine's clones.
#[derive(Clone)]
pub struct RedbEngine {
    /// The table as of the last write, opened by the first read after it (declared before
    /// `db`, so it is dropped first: redb's closing commit then runs with no reader alive).
    reader: Arc<Mutex<Option<Arc<ReadTable>>>>,
    /// Whether reads share `reader`. A view's undo table does not: it is read for as long as
    /// a snapshot streams, and a long-lived read transaction would stop redb from reusing the
    /// pages every commit frees meanwhile.
    shared_reads: bool,
    db: Arc<Database>,
    table: String,
}

/// A table opened for reading, in its own read transaction.
type ReadTable = redb::ReadOnlyTable<&'static [u8], &'static [u8]>;

fn io(error: impl Into<redb::Error>) -> Error {
    match error.into() {
        redb::Error::Corrupted(message) => Error::Corrupt(format!("redb: {message}")),
        other => Error::Io(other.to_string()),
    }
}

/// Writes the stored form of a value into `stored` (cleared first, so a batch reuses one
/// buffer for all its values): a CRC-32 of the key and the value, then the value.
fn seal_into(stored: &mut Vec<u8>, key: &[u8], value: &[u8]) {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(key);
    hasher.update(value);
    stored.clear();
    stored.extend_from_slice(&hasher.finalize().to_le_bytes());
    stored.extend_from_slice(value);
}

/// The value of a stored pair, once its CRC matches.
fn open(key: &[u8], stored: &[u8]) -> Result<Vec<u8>> {
    let (crc, value) = stored
        .split_first_chunk::<4>()
        .ok_or_else(|| Error::Corrupt(format!("a stored value of key {key:x?} is cut short")))?;
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(key);
    hasher.update(value);
    if hasher.finalize() != u32::from_le_bytes(*crc) {
        return Err(Error::Corrupt(format!(
            "the stored value of key {key:x?} fails its checksum (damaged on disk)"
        )));
    }
    Ok(value.to_vec())
}

impl RedbEngine {
    /// Opens (or creates) the database in directory `path`.
    pub fn open_db(path: impl AsRef<Path>) -> Result<Arc<Database>> {
        Self::open_db_with_cache(path, CACHE_BYTES)
    }

    /// [`RedbEngine::open_db`] with a page cache of `cache_bytes`.
    pub fn open_db_with_cache(path: impl AsRef<Path>, cache_bytes: usize) -> Result<Arc<Database>> {
        let path = path.as_ref();
        std::fs::create_dir_all(path)?;
        let file = path.join(FILE);
        let shown = file.display().to_string();
        let db = Database::builder()
            .set_cache_size(cache_bytes)
            .set_repair_callback(move |session| {
                if session.progress() == 0.0 {
                    REPAIRS.with(|repairs| repairs.set(repairs.get() + 1));
                    tracing::warn!("{shown} records no allocator state: checking all of it");
                }
            })
            .create(&file)
            .map_err(|e| {
                let error = io(e);
                Error::Io(format!("cannot open database {}: {error}", file.display()))
            })?;
        Ok(Arc::new(db))
    }

    /// How many full repairs opens on this thread have run.
    pub fn repairs_on_this_thread() -> u64 {
        REPAIRS.with(|repairs| repairs.get())
    }

    /// The engine on table `name` of an open database (created by its first write).
    pub fn open_table(db: &Arc<Database>, name: &str) -> Self {
        Self { reader: Arc::default(), shared_reads: true, db: db.clone(), table: name.to_string() }
    }

    /// Opens (creating) a replica's store in directory `path`: its data in one table, and an
    /// undo table for each open view beside it (left-over ones are dropped: views do not
    /// outlive a process).
    pub fn replica_store(path: impl AsRef<Path>) -> Result<ReplicaStore> {
        Self::replica_store_with_cache(path, CACHE_BYTES)
    }

    /// [`RedbEngine::replica_store`] with a page cache of `cache_bytes`.
    pub fn replica_store_with_cache(
        path: impl AsRef<Path>,
        cache_bytes: usize,
    ) -> Result<ReplicaStore> {
        let db = Self::open_db_with_cache(path, cache_bytes)?;
        // Durable, and with the allocator state: also after a repair, whose own commit has none.
        let mut txn = db.begin_write().map_err(io)?;
        txn.set_quick_repair(true);
        let names: Vec<String> = txn
            .list_tables()
            .map_err(io)?
            .map(|handle| redb::TableHandle::name(&handle).to_string())
            .filter(|name| name.starts_with(UNDO_TABLE))
            .collect();
        for name in &names {
            txn.delete_table(Table::new(name)).map_err(io)?;
        }
        txn.commit().map_err(io)?;
        let base = Self::open_table(&db, DATA_TABLE);
        let next = AtomicU64::new(0);
        let undo: UndoFactory = Box::new(move || {
            let name = format!("{UNDO_TABLE}{}", next.fetch_add(1, Ordering::Relaxed));
            let engine = Self { shared_reads: false, ..Self::open_table(&db, &name) };
            let dropped = engine.clone();
            let close: Box<dyn FnOnce() + Send + Sync> = Box::new(move || {
                let _ = dropped.drop_table();
            });
            Ok((Arc::new(engine) as Arc<dyn Engine>, close))
        });
        Ok(ReplicaStore::new(Arc::new(base), undo))
    }

    fn definition(&self) -> Table<'_> {
        TableDefinition::new(&self.table)
    }

    /// Removes the table and its data.
    fn drop_table(&self) -> Result<()> {
        let txn = self.begin_write()?;
        txn.delete_table(self.definition()).map_err(io)?;
        let committed = txn.commit().map_err(io);
        self.forget_reader();
        committed
    }

    /// Drops the shared read transaction after a write: the next read sees the write.
    fn forget_reader(&self) {
        *self.reader.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    fn begin_write(&self) -> Result<redb::WriteTransaction> {
        let mut txn = self.db.begin_write().map_err(io)?;
        txn.set_durability(redb::Durability::None).map_err(|e| Error::Io(e.to_string()))?;
        Ok(txn)
    }

    /// The table as of the last write, or `None` before its first write. The lock is held
    /// while a new read transaction opens, so one opened before a write's commit is never
    /// kept after that write forgot the old one.
    fn read(&self) -> Result<Option<Arc<ReadTable>>> {
        let mut reader = self.reader.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(table) = reader.as_ref() {
            return Ok(Some(table.clone()));
        }
        let txn = self.db.begin_read().map_err(io)?;
        match txn.open_table(self.definition()) {
            Ok(table) => {
                let table = Arc::new(table);
                if self.shared_reads {
                    *reader = Some(table.clone());
                }
                Ok(Some(table))
            }
            Err(redb::TableError::TableDoesNotExist(_)) => Ok(None),
            Err(error) => Err(io(error)),
        }
    }
}

impl Engine for RedbEngine {
    fn last(&self, range: (Bound<Vec<u8>>, Bound<Vec<u8>>)) -> Result<Option<KeyValue>> {
        if is_empty_range(&range) {
            return Ok(None);
        }
        let Some(table) = self.read()? else { return Ok(None) };
        let bounds = (range.0.as_ref().map(Vec::as_slice), range.1.as_ref().map(Vec::as_slice));
        match table.range::<&[u8]>(bounds).map_err(io)?.next_back() {
            Some(pair) => {
                let (key, stored) = pair.map_err(io)?;
                let key = key.value().to_vec();
                let value = open(&key, stored.value())?;
                Ok(Some((key, value)))
            }
            None => Ok(None),
        }
    }

    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let Some(table) = self.read()? else { return Ok(None) };
        match table.get(key).map_err(io)? {
            Some(stored) => Ok(Some(open(key, stored.value())?)),
            None => Ok(None),
        }
    }

    fn set(&self, key: &[u8], value: Vec<u8>) -> Result<()> {
        let mut batch = WriteBatch::new();
        batch.set(key.to_vec(), value);
        self.write(batch)
    }

    fn delete(&self, key: &[u8]) -> Result<()> {
        let mut batch = WriteBatch::new();
        batch.delete(key.to_vec());
        self.write(batch)
    }

    fn scan(&self, range: (Bound<Vec<u8>>, Bound<Vec<u8>>)) -> ScanIterator<'_> {
        let empty = is_empty_range(&range);
        let table = match self.read() {
            Ok(Some(table)) if !empty => table,
            Ok(_) => return Box::new(std::iter::empty()),
            Err(error) => return Box::new(std::iter::once(Err(error))),
        };
        let bounds = (range.0.as_ref().map(Vec::as_slice), range.1.as_ref().map(Vec::as_slice));
        match table.range::<&[u8]>(bounds) {
            Ok(pairs) => Box::new(pairs.map(|pair| {
                let (key, stored) = pair.map_err(io)?;
                let key = key.value().to_vec();
                let value = open(&key, stored.value())?;
                Ok((key, value))
            })),
            Err(error) => Box::new(std::iter::once(Err(io(error)))),
        }
    }

    fn write(&self, batch: WriteBatch) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let txn = self.begin_write()?;
        {
            let mut table = txn.open_table(self.definition()).map_err(io)?;
            let mut sealed = Vec::new();
            for (key, value) in batch.into_ops() {
                match value {
                    Some(value) => {
                        seal_into(&mut sealed, &key, &value);
                        table.insert(key.as_slice(), sealed.as_slice()).map_err(io)?;
                    }
                    None => {
                        table.remove(key.as_slice()).map_err(io)?;
                    }
                }
            }
        }
        let committed = txn.commit().map_err(io);
        self.forget_reader();
        committed
    }

    fn flush(&self) -> Result<()> {
        // An fsynced commit makes every earlier (unsynced) commit durable with it.
        let mut txn = self.db.begin_write().map_err(io)?;
        txn.set_durability(redb::Durability::Immediate).map_err(|e| Error::Io(e.to_string()))?;
        txn.set_quick_repair(true);
        txn.commit().map_err(io)
    }

    fn status(&self) -> Result<Status> {
        let mut keys = 0;
        let mut size = 0;
        for pair in self.scan((Bound::Unbounded, Bound::Unbounded)) {
            let (key, value) = pair?;
            keys += 1;
            size += (key.len() + value.len()) as u64;
        }
        let disk_size = match self.read()? {
            Some(table) => table.stats().map_err(io)?.stored_bytes(),
            None => 0,
        };
        Ok(Status { name: "redb".into(), keys, size, disk_size })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn engine() -> (RedbEngine, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let db = RedbEngine::open_db(dir.path()).unwrap();
        (RedbEngine::open_table(&db, "test"), dir)
    }

    mod suite {
        use super::*;
        crate::storage::test_suite::engine_tests!(engine().0);
    }

    #[test]
    fn a_read_after_a_write_sees_it_and_a_scan_begun_before_keeps_its_state() {
        let (engine, _dir) = engine();
        engine.set(b"a", b"1".to_vec()).unwrap();
        assert_eq!(engine.get(b"a").unwrap(), Some(b"1".to_vec()));
        let mut before = engine.scan((Bound::Unbounded, Bound::Unbounded));
        engine.set(b"a", b"2".to_vec()).unwrap();
        engine.set(b"b", b"3".to_vec()).unwrap();
        assert_eq!(engine.get(b"a").unwrap(), Some(b"2".to_vec()));
        let clone = engine.clone();
        clone.delete(b"b").unwrap();
        assert_eq!(engine.get(b"b").unwrap(), None, "a clone's write is seen too");
        assert_eq!(before.next().unwrap().unwrap(), (b"a".to_vec(), b"1".to_vec()));
        assert!(before.next().is_none(), "the scan reads the state it began with");
    }

    #[test]
    fn flushed_writes_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = RedbEngine::open_db(dir.path()).unwrap();
            let engine = RedbEngine::open_table(&db, "t");
            engine.set(b"a", b"1".to_vec()).unwrap();
            engine.flush().unwrap();
        }
        let db = RedbEngine::open_db(dir.path()).unwrap();
        assert_eq!(RedbEngine::open_table(&db, "t").get(b"a").unwrap(), Some(b"1".to_vec()));
    }

    /// The store's file as `kill -9` leaves it: copied while the process has it open.
    fn crash_image(of: &Path) -> tempfile::TempDir {
        let image = tempfile::tempdir().unwrap();
        std::fs::copy(of.join(FILE), image.path().join(FILE)).unwrap();
        image
    }

    #[test]
    fn a_crash_after_a_restart_opens_without_a_full_repair() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = RedbEngine::replica_store(dir.path()).unwrap();
            store.base().set(b"a", b"1".to_vec()).unwrap();
            store.base().flush().unwrap();
        }
        // Restarted, the node writes without syncing, then is killed.
        let store = RedbEngine::replica_store(dir.path()).unwrap();
        store.base().set(b"b", b"2".to_vec()).unwrap();
        let image = crash_image(dir.path());
        let before = RedbEngine::repairs_on_this_thread();
        let reopened = RedbEngine::replica_store(image.path()).unwrap();
        assert_eq!(RedbEngine::repairs_on_this_thread(), before, "the open walked the whole file");
        assert_eq!(reopened.base().get(b"a").unwrap(), Some(b"1".to_vec()));
        drop(reopened);

        // The count is real: a durable commit without the allocator state needs a repair.
        let other = tempfile::tempdir().unwrap();
        let db = RedbEngine::open_db(other.path()).unwrap();
        RedbEngine::open_table(&db, "t").set(b"a", b"1".to_vec()).unwrap();
        db.begin_write().unwrap().commit().unwrap();
        let image = crash_image(other.path());
        drop(RedbEngine::replica_store(image.path()).unwrap());
        assert_eq!(RedbEngine::repairs_on_this_thread(), before + 1);
    }

    #[test]
    fn a_damaged_value_is_refused_not_served() {
        let (engine, _dir) = engine();
        engine.set(b"k", b"value".to_vec()).unwrap();
        // Write a stored form whose checksum does not match, as a flipped byte on disk would.
        let txn = engine.begin_write().unwrap();
        {
            let mut table = txn.open_table(engine.definition()).unwrap();
            let mut stored = Vec::new();
            seal_into(&mut stored, b"k", b"value");
            stored[5] ^= 1;
            table.insert(b"k".as_slice(), stored.as_slice()).unwrap();
        }
        txn.commit().unwrap();
        engine.forget_reader(); // written behind the engine's back
        assert!(matches!(engine.get(b"k"), Err(Error::Corrupt(_))));
        let scanned: Vec<_> = engine.scan((Bound::Unbounded, Bound::Unbounded)).collect();
        assert!(matches!(scanned.as_slice(), [Err(Error::Corrupt(_))]), "{scanned:?}");
    }
}
