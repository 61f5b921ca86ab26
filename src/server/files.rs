//! A node's data directory:
//!
//! ```text
//! <data-dir>/node_id              the id this directory belongs to
//! <data-dir>/raft/                the Raft log segments (raft::LogStore)
//! <data-dir>/sql/CURRENT          the generation of the SQL store in use
//! <data-dir>/sql/<generation>/    a SQL store (a redb database): the one in use, or one
//!                                 being received from the leader
//! <data-dir>/sql/<generation>/STAGED   in a received store, once it is complete: the index
//!                                 and term it holds the state of
//! <data-dir>/sql/<generation>/SYNCED   the applied index the store was last synced at, with a
//!                                 CRC-32 (what a damaged store lost, for the message)
//! ```
//!
//! Everything read back is checked: the log's records carry CRCs, received chunks too, marker
//! files are parsed strictly, the SQL store's values carry CRCs (`storage::RedbEngine`). A
//! store that fails to open is refused with a clear message; one that opens short of what was
//! synced (its file replaced by an older copy, say) shows at start, where the store's applied
//! index is checked against the log: the log replays what the store lost if it still holds
//! it, otherwise the node refuses to start.
//!
//! The SQL store in use is durable; it records the index it has applied. A store received
//! from the leader is written into a new generation, marked `STAGED` once complete and synced,
//! recorded in the Raft log, and only then named in `CURRENT` (written to a temporary file,
//! synced and renamed). A crash between the log and `CURRENT` is finished at the next start:
//! the log's snapshot index names the staged generation to switch to.

use super::Error;
use super::auth::ClusterSecret;
use crate::raft::{Index, NodeId, Term};
use crate::storage::{RedbEngine, ReplicaStore};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A node's data directory, locked for this process while it is open.
pub struct DataDir {
    root: PathBuf,
    /// The page cache of each SQL store opened here (see `storage::redb::CACHE_BYTES`).
    store_cache_bytes: usize,
    /// Holds the directory's lock: two nodes on one directory would destroy each other's data.
    _lock: std::fs::File,
}

impl DataDir {
    /// Opens (creating if needed) the data directory of node `id`. A directory that belongs to
    /// another node id is refused.
    pub fn open(root: &Path, id: NodeId) -> Result<Self, Error> {
        std::fs::create_dir_all(root).map_err(|e| {
            Error::Config(format!("cannot create data directory {}: {e}", root.display()))
        })?;
        let lock_path = root.join("LOCK");
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| Error::Config(format!("cannot open {}: {e}", lock_path.display())))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(Error::Config(format!(
                    "data directory {} is in use by another running node",
                    root.display()
                )));
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(Error::Io(format!("cannot lock {}: {e}", lock_path.display())));
            }
        }
        let dir = Self {
            root: root.to_path_buf(),
            store_cache_bytes: crate::storage::REDB_CACHE_BYTES,
            _lock: lock,
        };
        if dir.root.join("snapshots").exists() {
            return Err(Error::Config(format!(
                "data directory {} was written by an earlier Chronos (it keeps snapshot files); this version keeps its SQL state durable and cannot read it: start from an empty directory and let the node catch up from the cluster",
                root.display()
            )));
        }
        for sub in [dir.raft_dir(), dir.sql_dir()] {
            std::fs::create_dir_all(&sub).map_err(|e| {
                Error::Config(format!("cannot create data directory {}: {e}", sub.display()))
            })?;
        }
        let id_file = dir.root.join("node_id");
        match std::fs::read_to_string(&id_file) {
            Ok(text) => {
                let stored: NodeId = text.trim().parse().map_err(|_| {
                    Error::Config(format!("{} is damaged: {text:?}", id_file.display()))
                })?;
                if stored != id {
                    return Err(Error::Config(format!(
                        "data directory {} belongs to node {stored}, not node {id}; start node {stored} with it, or give node {id} its own directory",
                        root.display()
                    )));
                }
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                write_durably(&id_file, format!("{id}\n").as_bytes())
                    .map_err(|e| Error::Io(format!("cannot write {}: {e}", id_file.display())))?;
            }
            Err(error) => {
                return Err(Error::Io(format!("cannot read {}: {error}", id_file.display())));
            }
        }
        Ok(dir)
    }

    /// The directory of the Raft log.
    pub fn raft_dir(&self) -> PathBuf {
        self.root.join("raft")
    }

    /// The directory of the SQL store's generations.
    pub fn sql_dir(&self) -> PathBuf {
        self.root.join("sql")
    }

    fn generation_dir(&self, generation: u64) -> PathBuf {
        self.sql_dir().join(format!("{generation:020}"))
    }

    /// The generations present, in order.
    fn generations(&self) -> Result<Vec<u64>, Error> {
        let entries = std::fs::read_dir(self.sql_dir())
            .map_err(|e| Error::Io(format!("cannot list {}: {e}", self.sql_dir().display())))?;
        let mut generations: Vec<u64> = entries
            .flatten()
            .filter_map(|entry| entry.file_name().to_str()?.parse().ok())
            .collect();
        generations.sort_unstable();
        Ok(generations)
    }

    /// The generation in use (0 before the first store is made).
    pub fn current_generation(&self) -> Result<u64, Error> {
        let path = self.sql_dir().join("CURRENT");
        match std::fs::read_to_string(&path) {
            Ok(text) => text.trim().parse().map_err(|_| {
                Error::Io(format!(
                    "{} is damaged ({text:?}): the data directory cannot be used",
                    path.display()
                ))
            }),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(0),
            Err(error) => Err(Error::Io(format!("cannot read {}: {error}", path.display()))),
        }
    }

    /// Makes `generation` the one in use, durably.
    pub fn set_current_generation(&self, generation: u64) -> Result<(), Error> {
        let path = self.sql_dir().join("CURRENT");
        write_durably(&path, format!("{generation}\n").as_bytes())
            .map_err(|e| Error::Io(format!("cannot write {}: {e}", path.display())))
    }

    /// A number for a new generation, above every existing one.
    pub fn next_generation(&self) -> Result<u64, Error> {
        let newest = self.generations()?.last().copied().unwrap_or(0);
        Ok(newest.max(self.current_generation()?) + 1)
    }

    /// The cluster secret this node proves itself with. A secret `given` is kept in the data
    /// directory (later starts need not give it again) and must match the one kept there; with
    /// none given, the kept one is used, or a new one is made if the node is new and forms a
    /// cluster `alone`. Any other node must be given the cluster's. The admin token derived from it
    /// is written beside it for the operator (`admin_token`). Both files are private (0600).
    pub fn cluster_secret(
        &self,
        given: Option<&ClusterSecret>,
        alone: bool,
    ) -> Result<ClusterSecret, Error> {
        let path = self.root.join("cluster_secret");
        let kept = match std::fs::read(&path) {
            Ok(bytes) => Some(
                ClusterSecret::parse(&bytes)
                    .map_err(|e| Error::Config(format!("{} is damaged: {e}", path.display())))?,
            ),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => None,
            Err(error) => {
                return Err(Error::Io(format!("cannot read {}: {error}", path.display())));
            }
        };
        let secret = match (kept, given) {
            (Some(kept), Some(given)) if kept != *given => {
                return Err(Error::Config(format!(
                    "data directory {} belongs to a cluster with another secret than the one given (--cluster-secret-file)",
                    self.root.display()
                )));
            }
            (Some(kept), _) => kept,
            (None, Some(given)) => given.clone(),
            (None, None) if alone => ClusterSecret::generate().map_err(Error::Io)?,
            (None, None) => {
                return Err(Error::Config(
                    "this node needs its cluster's secret (only a new node forming a cluster alone makes one): give every node the same --cluster-secret-file FILE, or CHRONOS_CLUSTER_SECRET_FILE=FILE (make one with: head -c 32 /dev/urandom | base64 > FILE); a node joining a running cluster gets that cluster's file (every node keeps a copy as DATA_DIR/cluster_secret), and a cluster of one node may be given any new one".into(),
                ));
            }
        };
        write_private(&path, secret.as_bytes())?;
        write_private(
            &self.root.join("admin_token"),
            format!("{}\n", secret.admin_token()).as_bytes(),
        )?;
        Ok(secret)
    }

    /// Opens (creating) the SQL store of `generation`.
    pub fn open_store(&self, generation: u64) -> Result<Arc<ReplicaStore>, Error> {
        open_store(&self.generation_dir(generation), self.store_cache_bytes)
    }

    /// Gives the SQL stores opened from now on a page cache of `bytes`.
    pub fn with_store_cache(mut self, bytes: usize) -> Self {
        self.store_cache_bytes = bytes;
        self
    }

    /// Marks a received generation complete: it holds the state up to `index` (of `term`).
    pub fn mark_staged(&self, generation: u64, index: Index, term: Term) -> Result<(), Error> {
        let path = self.generation_dir(generation).join("STAGED");
        write_durably(&path, format!("{index} {term}\n").as_bytes())
            .map_err(|e| Error::Io(format!("cannot write {}: {e}", path.display())))
    }

    /// Records durably that `generation`'s store was synced with everything up to `index`.
    pub fn mark_synced(&self, generation: u64, index: Index) -> Result<(), Error> {
        let path = self.generation_dir(generation).join("SYNCED");
        let text = format!("{index} {:08x}\n", crc32fast::hash(&index.to_le_bytes()));
        write_durably(&path, text.as_bytes())
            .map_err(|e| Error::Io(format!("cannot write {}: {e}", path.display())))
    }

    /// The index `generation`'s store was last synced at (0 if never); an error if the
    /// record is damaged.
    pub fn synced(&self, generation: u64) -> Result<Index, Error> {
        let path = self.generation_dir(generation).join("SYNCED");
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(error) => {
                return Err(Error::Io(format!("cannot read {}: {error}", path.display())));
            }
        };
        let mut fields = text.split_whitespace();
        let index = fields.next().and_then(|i| i.parse::<Index>().ok());
        let crc = fields.next().and_then(|c| u32::from_str_radix(c, 16).ok());
        match (index, crc) {
            (Some(index), Some(crc)) if crc == crc32fast::hash(&index.to_le_bytes()) => Ok(index),
            _ => Err(Error::Io(format!("{} is damaged: {text:?}", path.display()))),
        }
    }

    /// The complete received generation holding the state up to `index`, if any.
    pub fn staged_generation(&self, index: Index) -> Result<Option<u64>, Error> {
        for generation in self.generations()?.into_iter().rev() {
            let path = self.generation_dir(generation).join("STAGED");
            let Ok(text) = std::fs::read_to_string(&path) else { continue };
            let staged = text.split_whitespace().next().and_then(|i| i.parse::<Index>().ok());
            if staged == Some(index) {
                return Ok(Some(generation));
            }
        }
        Ok(None)
    }

    /// Removes a generation's files (one not in use).
    pub fn remove_generation(&self, generation: u64) {
        remove_dir(&self.generation_dir(generation));
    }

    /// Removes every generation but `keep`.
    pub fn remove_generations_except(&self, keep: u64) -> Result<(), Error> {
        for generation in self.generations()? {
            if generation != keep {
                self.remove_generation(generation);
            }
        }
        Ok(())
    }

    /// The directory of `generation` (to remove once its store closes).
    pub fn generation_path(&self, generation: u64) -> PathBuf {
        self.generation_dir(generation)
    }

    /// The bytes the directory holds.
    pub fn size(&self) -> u64 {
        fn walk(path: &Path) -> u64 {
            let Ok(entries) = std::fs::read_dir(path) else { return 0 };
            entries
                .flatten()
                .map(|entry| match entry.metadata() {
                    Ok(meta) if meta.is_dir() => walk(&entry.path()),
                    Ok(meta) => meta.len(),
                    Err(_) => 0,
                })
                .sum()
        }
        walk(&self.root)
    }
}

/// Removes a directory, logging (not failing on) what cannot be removed: a leftover is
/// removed at the next start.
pub fn remove_dir(path: &Path) {
    if let Err(error) = std::fs::remove_dir_all(path)
        && error.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!("cannot remove {}: {error}", path.display());
    }
}

/// Opens (creating) a SQL store in `path` (see `storage::RedbEngine::replica_store`).
fn open_store(path: &Path, cache_bytes: usize) -> Result<Arc<ReplicaStore>, Error> {
    // An engine that panics on damage it finds must not take the node down unexplained.
    match std::panic::catch_unwind(|| RedbEngine::replica_store_with_cache(path, cache_bytes)) {
        Ok(Ok(store)) => Ok(Arc::new(store)),
        Ok(Err(error)) => Err(Error::Io(format!(
            "the SQL store in {} is damaged or unreadable: {error}",
            path.display()
        ))),
        Err(_) => Err(Error::Io(format!(
            "the SQL store in {} is damaged (it cannot be opened)",
            path.display()
        ))),
    }
}

/// Writes a file only its owner can read, durably (unchanged contents are not rewritten).
fn write_private(path: &Path, data: &[u8]) -> Result<(), Error> {
    #[cfg(unix)]
    let private = |meta: std::fs::Metadata| {
        use std::os::unix::fs::PermissionsExt;
        meta.permissions().mode() & 0o077 == 0
    };
    #[cfg(not(unix))]
    let private = |_: std::fs::Metadata| true;
    let unchanged = std::fs::read(path).is_ok_and(|existing| existing == data);
    if unchanged && std::fs::metadata(path).is_ok_and(private) {
        return Ok(());
    }
    write_file(path, data, true)
        .map_err(|e| Error::Io(format!("cannot write {}: {e}", path.display())))
}

/// Writes a file so that it exists whole or not at all after a crash.
fn write_durably(path: &Path, data: &[u8]) -> std::io::Result<()> {
    write_file(path, data, false)
}

/// Writes a file whole or not at all; `private`: readable by its owner only from the start.
fn write_file(path: &Path, data: &[u8], private: bool) -> std::io::Result<()> {
    let temporary = path.with_extension("tmp");
    // A left-over temporary file would keep its permissions: start from none.
    let _ = std::fs::remove_file(&temporary);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = private;
    let mut file = options.open(&temporary)?;
    file.write_all(data)?;
    file.sync_all()?;
    std::fs::rename(&temporary, path)?;
    if let Some(parent) = path.parent() {
        std::fs::File::open(parent)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_belongs_to_one_node_and_one_process() {
        let dir = tempfile::tempdir().unwrap();
        let open = DataDir::open(dir.path(), 1).unwrap();
        let error = DataDir::open(dir.path(), 1).err().unwrap().to_string();
        assert!(error.contains("in use by another running node"), "{error}");
        drop(open);
        DataDir::open(dir.path(), 1).unwrap();
        let error = DataDir::open(dir.path(), 2).err().unwrap().to_string();
        assert!(error.contains("belongs to node 1"), "{error}");
    }

    #[test]
    fn generations_are_staged_found_switched_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir::open(dir.path(), 1).unwrap();
        assert_eq!(data.current_generation().unwrap(), 0);
        let first = data.next_generation().unwrap();
        drop(data.open_store(first).unwrap());
        data.set_current_generation(first).unwrap();
        let received = data.next_generation().unwrap();
        assert!(received > first);
        drop(data.open_store(received).unwrap());
        assert_eq!(data.staged_generation(40).unwrap(), None, "not complete yet");
        data.mark_staged(received, 40, 3).unwrap();
        assert_eq!(data.synced(received).unwrap(), 0);
        data.mark_synced(received, 40).unwrap();
        assert_eq!(data.synced(received).unwrap(), 40);
        let record = data.generation_path(received).join("SYNCED");
        std::fs::write(&record, "41 00000000\n").unwrap();
        assert!(data.synced(received).is_err(), "a damaged record is refused");
        data.mark_synced(received, 40).unwrap();
        assert_eq!(data.staged_generation(40).unwrap(), Some(received));
        data.set_current_generation(received).unwrap();
        data.remove_generations_except(received).unwrap();
        assert_eq!(data.generations().unwrap(), vec![received]);
        assert_eq!(data.current_generation().unwrap(), received);
        assert!(data.size() > 0);
    }

    #[test]
    fn a_directory_of_an_earlier_version_is_refused_with_a_clear_message() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("snapshots")).unwrap();
        let error = DataDir::open(dir.path(), 1).err().unwrap().to_string();
        assert!(error.contains("earlier Chronos"), "{error}");
    }
}
