//! Online backups and restores. A backup is the SQL data (catalog, users, rows, index
//! entries, the tables' counters) as one MVCC snapshot saw it, taken while the database keeps
//! serving writes; a restore loads one into a new, empty store.
//!
//! The file: [`MAGIC`], then frames of `[length u32][crc32 u32][payload]` (little-endian),
//! each payload a [`Frame`]: a header (the snapshot's version), records in batches of about
//! [`FRAME_BYTES`], and an end carrying the record count and a digest of every frame's CRC.
//! Reading checks every frame's CRC, their order and the end, so a damaged, truncated or
//! reordered file is refused. Records are written as they are read, so both sides hold about
//! one frame in memory; a refused restore leaves a partial store, which the caller discards.

use crate::encoding::value as codec;
use crate::raft::{Configuration, Index, Term};
use crate::replica::state::{META_KEY, Meta};
use crate::sql::Database;
use crate::sql::engine::Txn;
use crate::storage::mvcc::Version;
use crate::storage::{ReplicaStore, WriteBatch};
use serde::{Deserialize, Serialize};
use std::io::Read;
use std::sync::Arc;

/// What a backup file starts with.
pub const MAGIC: &[u8] = b"CHRONOS-BACKUP v1\n";
/// About the most bytes of records in a frame (one larger record goes alone).
pub const FRAME_BYTES: usize = 1 << 20;
/// The largest frame a restore reads (a record holds at most one row, under 64 MiB).
const MAX_FRAME_BYTES: usize = 80 << 20;

/// A frame's payload.
#[derive(Debug, Serialize, Deserialize)]
enum Frame {
    /// The first frame: the snapshot's version and the log index the node had applied.
    Header { version: Version, index: Index },
    /// A batch of records.
    Records(Vec<Record>),
    /// The last frame.
    End { records: u64, digest: u32 },
}

/// One stored key and its value.
#[derive(Debug, Serialize, Deserialize)]
enum Record {
    /// A key of the SQL data, as of the snapshot.
    Versioned(Vec<u8>, Vec<u8>),
    /// A table's counter (the next hidden row id, the row count), outside MVCC.
    Unversioned(Vec<u8>, Vec<u8>),
}

/// What a backup or restore did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Summary {
    /// The MVCC version the data is as of (`BEGIN READ ONLY AS OF` it shows the same rows).
    pub version: Version,
    /// Records (keys) in the backup.
    pub records: u64,
    /// Bytes of the backup file.
    pub bytes: u64,
}

/// Writes frames, keeping the running digest.
struct Writer<'a> {
    out: &'a mut dyn FnMut(Vec<u8>) -> Result<(), String>,
    digest: crc32fast::Hasher,
    bytes: u64,
}

impl Writer<'_> {
    fn frame(&mut self, frame: &Frame) -> Result<(), String> {
        let payload = codec::encode(frame);
        let length = u32::try_from(payload.len()).map_err(|_| "a frame over 4 GiB".to_string())?;
        let crc = crc32fast::hash(&payload);
        let mut bytes = Vec::with_capacity(payload.len() + 8);
        bytes.extend_from_slice(&length.to_le_bytes());
        bytes.extend_from_slice(&crc.to_le_bytes());
        bytes.extend_from_slice(&payload);
        self.digest.update(&crc.to_le_bytes());
        self.bytes += bytes.len() as u64;
        (self.out)(bytes)
    }
}

/// Writes a backup of `db` as of `as_of` (now if `None`; it must be within the GC retention
/// window), calling `out` with the file's bytes in order, a frame at a time. `index` is the
/// log index the node had applied, recorded for information.
pub fn dump(
    db: &Arc<Database>,
    as_of: Option<Version>,
    index: Index,
    out: &mut dyn FnMut(Vec<u8>) -> Result<(), String>,
) -> Result<Summary, String> {
    let mvcc = match as_of {
        Some(version) => db.mvcc().begin_as_of(version).map_err(|e| e.to_string())?,
        None => settled_snapshot(db)?,
    };
    let txn = Txn::new(mvcc);
    let version = txn.mvcc().version();
    out(MAGIC.to_vec())?;
    let mut writer = Writer { out, digest: crc32fast::Hasher::new(), bytes: MAGIC.len() as u64 };
    writer.frame(&Frame::Header { version, index })?;
    let (mut batch, mut batch_bytes, mut records) = (Vec::new(), 0usize, 0u64);
    let counters = txn.counters().map_err(|e| e.to_string())?;
    let counters = counters.into_iter().map(|(k, v)| Ok(Record::Unversioned(k, v)));
    let versioned = txn.mvcc().scan_prefix(&[]).map(|item| {
        item.map(|(key, value)| Record::Versioned(key, value)).map_err(|e| e.to_string())
    });
    for record in versioned.chain(counters) {
        let record = record?;
        let size = match &record {
            Record::Versioned(k, v) | Record::Unversioned(k, v) => k.len() + v.len(),
        };
        // A frame stays about FRAME_BYTES, or one record alone (a row is under 64 MiB).
        if !batch.is_empty() && batch_bytes + size > FRAME_BYTES {
            writer.frame(&Frame::Records(std::mem::take(&mut batch)))?;
            batch_bytes = 0;
        }
        batch_bytes += size;
        batch.push(record);
        records += 1;
    }
    if !batch.is_empty() {
        writer.frame(&Frame::Records(batch))?;
    }
    let digest = writer.digest.clone().finalize();
    writer.frame(&Frame::End { records, digest })?;
    Ok(Summary { version, records, bytes: writer.bytes })
}

/// How long a backup of "now" waits for a moment with no transaction in flight.
const SETTLE: std::time::Duration = std::time::Duration::from_secs(2);

/// A snapshot of now taken when no read-write transaction is in flight, so that its version
/// says exactly what it holds (`AS OF` that version shows the same rows later). An entry being
/// applied is in flight for microseconds; an interactive transaction may stay open longer:
/// after [`SETTLE`] the snapshot is taken anyway, without that transaction's writes (which
/// `AS OF` its version would show if it commits), and a warning says so.
fn settled_snapshot(db: &Arc<Database>) -> Result<crate::storage::mvcc::Transaction, String> {
    let deadline = std::time::Instant::now() + SETTLE;
    loop {
        let txn = db.mvcc().begin_read_only().map_err(|e| e.to_string())?;
        if txn.state().active.is_empty() {
            return Ok(txn);
        }
        if std::time::Instant::now() >= deadline {
            let open = txn.state().active.len();
            tracing::warn!(
                open,
                "backing up while transactions stay open: their writes are not in it"
            );
            return Ok(txn);
        }
        drop(txn);
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

/// Reads frames from a backup, checking each.
struct Reader<R> {
    input: R,
    digest: crc32fast::Hasher,
    frames: u64,
    bytes: u64,
}

impl<R: Read> Reader<R> {
    fn next(&mut self) -> Result<Frame, String> {
        let mut head = [0u8; 8];
        self.input.read_exact(&mut head).map_err(|e| self.broken(&e.to_string()))?;
        let length = u32::from_le_bytes([head[0], head[1], head[2], head[3]]) as usize;
        let crc = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
        if length > MAX_FRAME_BYTES {
            return Err(self.broken(&format!("a frame claims {length} bytes")));
        }
        let mut payload = vec![0u8; length];
        self.input.read_exact(&mut payload).map_err(|e| self.broken(&e.to_string()))?;
        if crc32fast::hash(&payload) != crc {
            return Err(self.broken("its checksum does not match"));
        }
        let frame = codec::decode(&payload).map_err(|e| self.broken(&e.to_string()))?;
        self.frames += 1;
        self.bytes += 8 + length as u64;
        if !matches!(frame, Frame::End { .. }) {
            self.digest.update(&crc.to_le_bytes());
        }
        Ok(frame)
    }

    fn broken(&self, why: &str) -> String {
        format!(
            "the backup is damaged or incomplete at frame {} (byte {}): {why}",
            self.frames, self.bytes
        )
    }
}

/// Loads a backup from `input` into `store`, a new and empty store, and records it as the
/// state after log index `index` of `term` with configuration `config` (a new cluster's
/// first snapshot). Checks everything it reads; on an error the store holds part of the data
/// and must be discarded.
pub fn restore(
    input: impl Read,
    store: &Arc<ReplicaStore>,
    (index, term, config): (Index, Term, Configuration),
) -> Result<Summary, String> {
    let mut input = std::io::BufReader::new(input);
    let mut magic = vec![0u8; MAGIC.len()];
    input.read_exact(&mut magic).map_err(|e| format!("not a Chronos backup: {e}"))?;
    if magic != MAGIC {
        return Err("not a Chronos backup (its first bytes are not CHRONOS-BACKUP v1)".into());
    }
    let mut reader =
        Reader { input, digest: crc32fast::Hasher::new(), frames: 0, bytes: MAGIC.len() as u64 };
    let Frame::Header { version, .. } = reader.next()? else {
        return Err(reader.broken("it does not start with a header"));
    };
    let db = Arc::new(Database::open_replicated(store.clone()).map_err(|e| e.to_string())?);
    let mut records = 0u64;
    loop {
        match reader.next()? {
            Frame::Records(batch) => {
                records += batch.len() as u64;
                let mut txn = Txn::new(db.mvcc().begin().map_err(|e| e.to_string())?);
                for record in batch {
                    let written = match record {
                        Record::Versioned(key, value) => {
                            txn.mvcc_mut().write_fresh(&key, value).map_err(|e| e.to_string())
                        }
                        Record::Unversioned(key, value) => {
                            txn.restore_counter(&key, value).map_err(|e| e.to_string())
                        }
                    };
                    written?;
                }
                txn.into_inner().commit().map_err(|e| e.to_string())?;
                if store.uncommitted_bytes() >= FRAME_BYTES {
                    store.commit(WriteBatch::new()).map_err(|e| e.to_string())?;
                }
            }
            Frame::End { records: total, digest } => {
                if total != records || digest != reader.digest.clone().finalize() {
                    return Err(reader.broken("its end does not match the frames before it"));
                }
                let mut rest = [0u8; 1];
                if !matches!(reader.input.read(&mut rest), Ok(0)) {
                    return Err(reader.broken("bytes follow its end"));
                }
                break;
            }
            Frame::Header { .. } => return Err(reader.broken("a second header")),
        }
    }
    // A restored edge numbers its rows in a new life: the upstream may hold rows numbered
    // after the backup was taken.
    let incarnation = super::proof::random_u64()?;
    db.restart_outbox(incarnation).map_err(|e| e.to_string())?;
    let meta = Meta { applied: index, term, config, ..Meta::default() };
    let mut record = WriteBatch::new();
    record.set(META_KEY.to_vec(), codec::encode(&meta));
    store.commit(record).map_err(|e| e.to_string())?;
    store.base().flush().map_err(|e| e.to_string())?;
    Ok(Summary { version, records, bytes: reader.bytes })
}

#[cfg(test)]
#[path = "backup_tests.rs"]
mod tests;
