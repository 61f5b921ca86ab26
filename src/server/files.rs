//! A node's data directory:
//!
//! ```text
//! <data-dir>/node_id          the id this directory belongs to
//! <data-dir>/raft/            the Raft log segments (raft::LogStore)
//! <data-dir>/snapshots/       state machine snapshots, one file per snapshot index
//! <data-dir>/sql/             the SQL store (sled), rebuilt from snapshot and log on start
//! ```
//!
//! A snapshot file is written to a temporary name, synced and renamed, so a file with a final
//! name is always complete. It is durable before the log refers to it.

use super::Error;
use crate::raft::{Index, NodeId};
use std::io::Write as _;
use std::path::{Path, PathBuf};

/// A node's data directory, locked for this process while it is open.
pub struct DataDir {
    root: PathBuf,
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
        let dir = Self { root: root.to_path_buf(), _lock: lock };
        for sub in [dir.raft_dir(), dir.snapshot_dir()] {
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

    /// The directory of the SQL store.
    pub fn sql_dir(&self) -> PathBuf {
        self.root.join("sql")
    }

    fn snapshot_dir(&self) -> PathBuf {
        self.root.join("snapshots")
    }

    fn snapshot_path(&self, index: Index) -> PathBuf {
        self.snapshot_dir().join(format!("{index:020}.snap"))
    }

    /// Writes snapshot `index` durably.
    pub fn save_snapshot(&self, index: Index, data: &[u8]) -> std::io::Result<()> {
        write_durably(&self.snapshot_path(index), data)
    }

    /// Reads snapshot `index`.
    pub fn load_snapshot(&self, index: Index) -> std::io::Result<Vec<u8>> {
        std::fs::read(self.snapshot_path(index))
    }

    /// Deletes the snapshots other than `keep` (once the log refers to `keep`, older ones are
    /// useless; newer ones were never referred to and are rewritten if needed).
    pub fn prune_snapshots(&self, keep: Index) -> std::io::Result<()> {
        for entry in std::fs::read_dir(self.snapshot_dir())? {
            let path = entry?.path();
            if path != self.snapshot_path(keep) {
                std::fs::remove_file(path)?;
            }
        }
        Ok(())
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

/// Writes a file so that it exists whole or not at all after a crash.
fn write_durably(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let temporary = path.with_extension("tmp");
    let mut file = std::fs::File::create(&temporary)?;
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
    fn snapshots_are_saved_loaded_and_pruned() {
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir::open(dir.path(), 1).unwrap();
        data.save_snapshot(5, b"five").unwrap();
        data.save_snapshot(9, b"nine").unwrap();
        data.prune_snapshots(9).unwrap();
        assert_eq!(data.load_snapshot(9).unwrap(), b"nine");
        assert!(data.load_snapshot(5).is_err());
        assert!(data.size() > 0);
    }
}
