//! The durable Raft log: append-only segment files of checksummed records.
//!
//! A segment is a file `NNNNNNNNNN.log` holding records, each framed as
//! `[length: u32 LE][crc32 of payload: u32 LE][payload]`; a payload is an entry, a hard state,
//! or a snapshot record. Records are buffered and written by [`LogStore::sync`], which fsyncs:
//! everything handed to the store since the last sync becomes durable at once (group commit).
//!
//! Recovery replays the segments in order. An entry whose index is already in the log replaces
//! it and everything after it, so truncating a conflicting suffix is just another append. A
//! record that is short or fails its checksum at the end of the last segment is a torn write
//! from a crash: the file is cut there and nothing after it is used. Anywhere else it is
//! corruption, and opening fails rather than losing acknowledged entries.
//!
//! Compaction and snapshot installation start a new segment with a checkpoint (hard state,
//! snapshot record, and the entries kept after the snapshot); only once it is synced are the
//! older segments deleted, newest first, so a crash part-way leaves the checkpoint behind a
//! contiguous run of old segments that still replays. A segment is synced whole before the
//! next one gets any data, so at most the newest segment can be torn.

use super::message::{Entry, HardState, SnapshotMeta};
use super::node::Recovered;
use super::{Error, Index, Result};
use crate::encoding::value as codec;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write as _;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// The segment size after which a new segment is started.
pub const MAX_SEGMENT_BYTES: u64 = 64 << 20;

/// Durable byte storage for the log: a directory of append-only files.
pub trait Disk: Send {
    /// The file names, in any order.
    fn list(&self) -> Result<Vec<String>>;
    /// A file's contents.
    fn read(&self, name: &str) -> Result<Vec<u8>>;
    /// Appends bytes to a file, creating it if needed (not durable until `sync`).
    fn append(&mut self, name: &str, bytes: &[u8]) -> Result<()>;
    /// Makes a file's contents (and its existence) durable.
    fn sync(&mut self, name: &str) -> Result<()>;
    /// Cuts a file to `length` bytes, durably.
    fn truncate(&mut self, name: &str, length: u64) -> Result<()>;
    /// Removes a file, durably.
    fn remove(&mut self, name: &str) -> Result<()>;
}

/// A record of the log.
#[derive(Clone, Debug, Serialize, Deserialize)]
enum Record {
    Entry(Entry),
    HardState(HardState),
    Snapshot(SnapshotMeta),
}

fn segment_name(sequence: u64) -> String {
    format!("{sequence:010}.log")
}

fn segment_sequence(name: &str) -> Option<u64> {
    name.strip_suffix(".log")?.parse().ok()
}

/// The durable log and hard state.
pub struct LogStore<D: Disk> {
    disk: D,
    /// The segments in order: sequence number and the highest entry index written to it.
    segments: BTreeMap<u64, Index>,
    /// The bytes in the newest segment.
    active_bytes: u64,
    /// Records encoded but not yet written.
    buffer: Vec<u8>,
    /// The highest entry index buffered for the newest segment.
    buffer_last_index: Index,
    max_segment_bytes: u64,
    /// The latest hard state written (for checkpoints).
    hard_state: HardState,
    /// The latest snapshot record written.
    snapshot: SnapshotMeta,
    /// Bytes were written to the newest segment since the last sync.
    dirty: bool,
}

impl<D: Disk> LogStore<D> {
    /// Opens the log on `disk`, recovering what it holds (cutting a torn tail).
    pub fn open(disk: D) -> Result<(Self, Recovered)> {
        Self::open_with(disk, MAX_SEGMENT_BYTES)
    }

    /// Opens the log with a custom segment size.
    pub fn open_with(mut disk: D, max_segment_bytes: u64) -> Result<(Self, Recovered)> {
        let mut sequences: Vec<u64> =
            disk.list()?.iter().filter_map(|name| segment_sequence(name)).collect();
        sequences.sort_unstable();
        let mut recovered = Recovered::default();
        let mut segments = BTreeMap::new();
        let mut active_bytes = 0;
        for (position, sequence) in sequences.iter().enumerate() {
            let name = segment_name(*sequence);
            let bytes = disk.read(&name)?;
            let last_segment = position + 1 == sequences.len();
            let (valid, highest) = replay(&bytes, &mut recovered)
                .map_err(|message| Error::Corrupt(format!("{name}: {message}")))?;
            if valid < bytes.len() {
                if !last_segment {
                    return Err(Error::Corrupt(format!(
                        "{name}: damaged record at byte {valid} before the last segment"
                    )));
                }
                // A torn write from a crash: it was never synced, so never acknowledged.
                disk.truncate(&name, valid as u64)?;
            }
            segments.insert(*sequence, highest);
            active_bytes = valid as u64;
        }
        let store = Self {
            disk,
            segments,
            active_bytes,
            buffer: Vec::new(),
            buffer_last_index: 0,
            max_segment_bytes,
            hard_state: recovered.hard_state,
            snapshot: recovered.snapshot.clone(),
            dirty: false,
        };
        Ok((store, recovered))
    }

    fn push(&mut self, record: &Record) {
        let payload = codec::encode(record);
        self.buffer.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        self.buffer.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
        self.buffer.extend_from_slice(&payload);
        if let Record::Entry(entry) = record {
            self.buffer_last_index = self.buffer_last_index.max(entry.index);
        }
    }

    /// Buffers entries (an entry at an index already stored replaces it and what follows).
    pub fn append(&mut self, entries: &[Entry]) {
        for entry in entries {
            self.push(&Record::Entry(entry.clone()));
        }
    }

    /// Buffers a new hard state.
    pub fn set_hard_state(&mut self, hard_state: HardState) {
        if hard_state != self.hard_state {
            self.hard_state = hard_state;
            self.push(&Record::HardState(hard_state));
        }
    }

    /// Writes what a `Ready` asks to persist. Checkpoints (snapshot or compaction) are durable
    /// when this returns; the rest needs [`LogStore::sync`].
    ///
    /// The hard state goes after the entries (and a checkpoint's snapshot record): replay
    /// stops at the first damaged record, so a commit index that survives a torn write always
    /// has the entries it counts.
    pub fn write(&mut self, ready: &super::Ready) -> Result<()> {
        let snapshot = ready.snapshot.iter().chain(&ready.compact).max_by_key(|m| m.index);
        match snapshot {
            Some(meta) => {
                if let Some(hard_state) = ready.hard_state {
                    self.hard_state = hard_state;
                }
                self.checkpoint(&meta.clone(), &ready.entries)
            }
            None => {
                self.append(&ready.entries);
                if let Some(hard_state) = ready.hard_state {
                    self.set_hard_state(hard_state);
                }
                self.write_buffer()
            }
        }
    }

    /// Writes and syncs what a `Ready` asks to persist.
    pub fn persist(&mut self, ready: &super::Ready) -> Result<()> {
        self.write(ready)?;
        self.sync()
    }

    /// Writes the buffered records to the newest segment (not durable yet), starting a new
    /// segment first when the current one is full.
    fn write_buffer(&mut self) -> Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        if self.segments.is_empty() || self.active_bytes >= self.max_segment_bytes {
            // The full segment is durable before the next one holds anything: after a crash
            // only the newest segment can end in a torn record.
            self.sync_active()?;
            self.roll(&[])?;
        }
        let name = segment_name(self.active_sequence());
        self.disk.append(&name, &self.buffer)?;
        self.active_bytes += self.buffer.len() as u64;
        if let Some(highest) = self.segments.values_mut().next_back() {
            *highest = (*highest).max(self.buffer_last_index);
        }
        self.buffer.clear();
        self.buffer_last_index = 0;
        self.dirty = true;
        Ok(())
    }

    /// Makes everything written so far durable (one fsync for all of it).
    pub fn sync(&mut self) -> Result<()> {
        self.write_buffer()?;
        self.sync_active()
    }

    fn sync_active(&mut self) -> Result<()> {
        if self.dirty && !self.segments.is_empty() {
            self.disk.sync(&segment_name(self.active_sequence()))?;
            self.dirty = false;
        }
        Ok(())
    }

    fn active_sequence(&self) -> u64 {
        self.segments.keys().next_back().copied().unwrap_or(0)
    }

    /// Starts a new segment with a checkpoint (snapshot record, `kept` entries, what is
    /// buffered, then the hard state: see [`LogStore::write`] on the order).
    fn roll(&mut self, kept: &[Entry]) -> Result<()> {
        let pending = std::mem::take(&mut self.buffer);
        let pending_last = std::mem::replace(&mut self.buffer_last_index, 0);
        self.push(&Record::Snapshot(self.snapshot.clone()));
        self.append(kept);
        self.buffer.extend_from_slice(&pending);
        self.buffer_last_index = self.buffer_last_index.max(pending_last);
        self.push(&Record::HardState(self.hard_state));
        let sequence = self.segments.keys().next_back().map_or(1, |s| s + 1);
        self.segments.insert(sequence, 0);
        self.active_bytes = 0;
        Ok(())
    }

    /// Records a snapshot covering the log up to `meta.index` (a local compaction, or one
    /// installed from the leader) with the entries kept after it, then deletes the segments it
    /// makes unnecessary. Durable when it returns.
    pub fn checkpoint(&mut self, meta: &SnapshotMeta, kept: &[Entry]) -> Result<()> {
        // Everything buffered so far belongs to the old segments.
        self.sync()?;
        self.snapshot = meta.clone();
        let old: Vec<u64> = self.segments.keys().copied().collect();
        self.roll(kept)?;
        self.sync()?;
        // Newest first: whatever a crash leaves is old segments from the first on, which
        // replay in order (each continues the one before), then the checkpoint.
        for sequence in old.into_iter().rev() {
            self.disk.remove(&segment_name(sequence))?;
            self.segments.remove(&sequence);
        }
        Ok(())
    }

    /// The number of segment files.
    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    /// The disk underneath (tests inspect and damage it).
    pub fn disk(&mut self) -> &mut D {
        &mut self.disk
    }
}

/// Replays the records of one segment into `recovered`. Returns how many bytes were valid and
/// the highest entry index seen; an error means a valid record could not be applied.
fn replay(bytes: &[u8], recovered: &mut Recovered) -> Result<(usize, Index), String> {
    let mut position = 0;
    let mut highest = 0;
    while position + 8 <= bytes.len() {
        let length = u32::from_le_bytes([
            bytes[position],
            bytes[position + 1],
            bytes[position + 2],
            bytes[position + 3],
        ]) as usize;
        let crc = u32::from_le_bytes([
            bytes[position + 4],
            bytes[position + 5],
            bytes[position + 6],
            bytes[position + 7],
        ]);
        let Some(payload) = bytes.get(position + 8..position + 8 + length) else { break };
        if crc32fast::hash(payload) != crc {
            break;
        }
        let Ok(record) = codec::decode::<Record>(payload) else { break };
        match record {
            Record::HardState(hard_state) => recovered.hard_state = hard_state,
            Record::Snapshot(meta) => {
                // Keep the entries after the snapshot only if they continue it.
                let continues =
                    recovered.entries.iter().any(|e| e.index == meta.index && e.term == meta.term)
                        || (recovered.snapshot.index == meta.index
                            && recovered.snapshot.term == meta.term);
                if continues {
                    recovered.entries.retain(|e| e.index > meta.index);
                } else {
                    recovered.entries.clear();
                }
                recovered.snapshot = meta;
            }
            Record::Entry(entry) => {
                if entry.index > recovered.snapshot.index {
                    let last =
                        recovered.entries.last().map_or(recovered.snapshot.index, |e| e.index);
                    if entry.index <= last {
                        let keep = (entry.index - recovered.snapshot.index - 1) as usize;
                        recovered.entries.truncate(keep);
                    } else if entry.index != last + 1 {
                        return Err(format!("entry {} follows entry {last}", entry.index));
                    }
                    highest = highest.max(entry.index);
                    recovered.entries.push(entry);
                }
            }
        }
        position += 8 + length;
    }
    Ok((position, highest))
}

/// A directory of files on the real file system.
pub struct FileDisk {
    dir: PathBuf,
    /// Open handles of files being appended.
    open: HashMap<String, std::fs::File>,
    /// Files created since the directory was last synced.
    created: HashSet<String>,
}

impl FileDisk {
    /// Opens (creating) the directory.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir)?;
        Ok(Self { dir, open: HashMap::new(), created: HashSet::new() })
    }

    fn sync_dir(&self) -> Result<()> {
        std::fs::File::open(&self.dir)?.sync_all()?;
        Ok(())
    }
}

impl Disk for FileDisk {
    fn list(&self) -> Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(&self.dir)? {
            if let Some(name) = entry?.file_name().to_str() {
                names.push(name.to_string());
            }
        }
        Ok(names)
    }

    fn read(&self, name: &str) -> Result<Vec<u8>> {
        Ok(std::fs::read(self.dir.join(name))?)
    }

    fn append(&mut self, name: &str, bytes: &[u8]) -> Result<()> {
        if !self.open.contains_key(name) {
            let path = self.dir.join(name);
            if !path.exists() {
                self.created.insert(name.to_string());
            }
            let file = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
            self.open.insert(name.to_string(), file);
        }
        if let Some(file) = self.open.get_mut(name) {
            file.write_all(bytes)?;
        }
        Ok(())
    }

    fn sync(&mut self, name: &str) -> Result<()> {
        if let Some(file) = self.open.get(name) {
            file.sync_data()?;
        }
        // A new file exists durably only once its directory entry is synced too.
        if self.created.remove(name) {
            self.sync_dir()?;
        }
        Ok(())
    }

    fn truncate(&mut self, name: &str, length: u64) -> Result<()> {
        self.open.remove(name);
        let file = std::fs::OpenOptions::new().write(true).open(self.dir.join(name))?;
        file.set_len(length)?;
        file.sync_all()?;
        Ok(())
    }

    fn remove(&mut self, name: &str) -> Result<()> {
        self.open.remove(name);
        std::fs::remove_file(self.dir.join(name))?;
        self.sync_dir()
    }
}

/// An in-memory disk that can crash: bytes appended but not synced are lost, except for a
/// prefix the caller chooses (modelling a torn write). Clones share the same files.
#[derive(Clone, Default)]
pub struct MemoryDisk {
    files: Arc<Mutex<BTreeMap<String, MemoryFile>>>,
    /// Changes (append, sync, truncate, remove) left before the disk fails every call, as a
    /// machine would at a crash; `None` for no limit.
    budget: Arc<Mutex<Option<u64>>>,
}

#[derive(Clone, Default)]
struct MemoryFile {
    durable: Vec<u8>,
    pending: Vec<u8>,
}

impl MemoryDisk {
    /// An empty disk.
    pub fn new() -> Self {
        Self::default()
    }

    fn files(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, MemoryFile>> {
        self.files.lock().unwrap_or_else(|poison| poison.into_inner())
    }

    /// Simulates a crash: each file keeps its synced bytes plus `keep(unsynced_len)` bytes of
    /// what was appended after (0 loses it all; a partial length tears the last record).
    pub fn crash(&self, mut keep: impl FnMut(usize) -> usize) {
        for file in self.files().values_mut() {
            let kept = keep(file.pending.len()).min(file.pending.len());
            let torn: Vec<u8> = file.pending.drain(..kept).collect();
            file.durable.extend(torn);
            file.pending.clear();
        }
    }

    /// Makes every change after the next `changes` fail (the moment of a crash); then
    /// [`MemoryDisk::crash`] decides what reached the platters.
    pub fn fail_after(&self, changes: u64) {
        *self.budget.lock().unwrap_or_else(|p| p.into_inner()) = Some(changes);
    }

    /// Lifts [`MemoryDisk::fail_after`].
    pub fn heal(&self) {
        *self.budget.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// Spends one change of the budget, failing when none is left.
    fn change(&self) -> Result<()> {
        let mut budget = self.budget.lock().unwrap_or_else(|p| p.into_inner());
        match budget.as_mut() {
            Some(0) => Err(Error::Io("the disk failed (simulated crash)".into())),
            Some(left) => {
                *left -= 1;
                Ok(())
            }
            None => Ok(()),
        }
    }

    /// Flips a byte of a file (for corruption tests).
    pub fn corrupt(&self, name: &str, offset: usize) {
        if let Some(file) = self.files().get_mut(name)
            && let Some(byte) = file.durable.get_mut(offset)
        {
            *byte ^= 0xff;
        }
    }

    /// The bytes of a file that are synced.
    pub fn durable_len(&self, name: &str) -> usize {
        self.files().get(name).map_or(0, |f| f.durable.len())
    }

    /// The total bytes stored (synced or not).
    pub fn size(&self) -> usize {
        self.files().values().map(|f| f.durable.len() + f.pending.len()).sum()
    }
}

impl Disk for MemoryDisk {
    fn list(&self) -> Result<Vec<String>> {
        Ok(self.files().keys().cloned().collect())
    }

    fn read(&self, name: &str) -> Result<Vec<u8>> {
        let files = self.files();
        let file = files.get(name).ok_or_else(|| Error::Io(format!("no file {name}")))?;
        Ok([file.durable.as_slice(), file.pending.as_slice()].concat())
    }

    fn append(&mut self, name: &str, bytes: &[u8]) -> Result<()> {
        self.change()?;
        self.files().entry(name.to_string()).or_default().pending.extend_from_slice(bytes);
        Ok(())
    }

    fn sync(&mut self, name: &str) -> Result<()> {
        self.change()?;
        if let Some(file) = self.files().get_mut(name) {
            let pending = std::mem::take(&mut file.pending);
            file.durable.extend(pending);
        }
        Ok(())
    }

    fn truncate(&mut self, name: &str, length: u64) -> Result<()> {
        self.change()?;
        if let Some(file) = self.files().get_mut(name) {
            let mut all = std::mem::take(&mut file.durable);
            all.extend(std::mem::take(&mut file.pending));
            all.truncate(length as usize);
            file.durable = all;
        }
        Ok(())
    }

    fn remove(&mut self, name: &str) -> Result<()> {
        self.change()?;
        self.files().remove(name);
        Ok(())
    }
}

#[cfg(test)]
#[path = "store_tests.rs"]
mod tests;
