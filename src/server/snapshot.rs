//! Streaming a node's state to a follower whose log the leader no longer has.
//!
//! The leader reads a point-in-time view of its store (taken by the applier between two
//! entries; commits go on meanwhile) in chunks of about [`CHUNK_BYTES`] and streams them over
//! `Raft.InstallSnapshot`. Each chunk carries a CRC-32 of its pairs; the last one carries the
//! number of pairs and a digest of every chunk's CRC. The follower writes each chunk into a
//! fresh generation of its store as it arrives, and once the last chunk verifies, syncs it,
//! marks it staged and hands it to its driver; the store in use is untouched until the log
//! records the snapshot (see `files.rs`). Memory on either side is a few chunks, whatever the
//! size of the state.

use super::context::Context;
use super::driver::Input;
use super::metrics::Metrics;
use super::transport::Transport;
use crate::encoding::value as codec;
use crate::grpc::pb;
use crate::raft::{Index, NodeId, SnapshotMeta, Term};
use crate::replica::Meta;
use crate::storage::{Engine, KeyValue, View, WriteBatch};
use std::sync::Arc;
use tonic::Status;

/// About how many bytes of pairs a chunk carries (one larger pair goes alone).
pub const CHUNK_BYTES: usize = 1 << 20;

/// Chunks read ahead of the network.
const READ_AHEAD: usize = 2;

/// Streams `view` (the state at `meta`) from `from` in `term` to `to`. Returns the index sent
/// and the bytes of data streamed, once the follower has staged it.
pub async fn send(
    transport: &Transport,
    from: NodeId,
    to: NodeId,
    term: Term,
    meta: SnapshotMeta,
    view: View,
) -> Result<(Index, u64), String> {
    let mut client =
        transport.raft_client(to).ok_or_else(|| format!("node {to}'s address is unknown"))?;
    let index = meta.index;
    let (chunks, stream) = tokio::sync::mpsc::channel::<pb::SnapshotChunk>(READ_AHEAD);
    let compress = transport.reads_compressed(to);
    let reader = tokio::task::spawn_blocking(move || -> Result<u64, String> {
        let encoded_meta = codec::encode(&meta);
        let mut last: Option<Vec<u8>> = None;
        let (mut seq, mut total, mut bytes) = (0u64, 0u64, 0u64);
        let mut digest = crc32fast::Hasher::new();
        loop {
            let pairs = view.read(last.as_deref(), CHUNK_BYTES).map_err(|e| e.to_string())?;
            let done = pairs.is_empty();
            total += pairs.len() as u64;
            last = pairs.last().map(|(key, _)| key.clone()).or(last);
            let (data, lz4) = match compress {
                true => super::compression::pack(codec::encode(&pairs)),
                false => (codec::encode(&pairs), false),
            };
            let crc = crc32fast::hash(&data);
            bytes += data.len() as u64;
            let mut chunk = pb::SnapshotChunk {
                from,
                term,
                meta: if seq == 0 { encoded_meta.clone() } else { Vec::new() },
                seq,
                pairs: data,
                crc,
                done,
                total_pairs: 0,
                digest: 0,
                lz4,
            };
            if done {
                chunk.total_pairs = total;
                chunk.digest = digest.clone().finalize();
            } else {
                digest.update(&crc.to_le_bytes());
            }
            if chunks.blocking_send(chunk).is_err() {
                return Err("the stream to the follower closed".into());
            }
            if done {
                return Ok(bytes);
            }
            seq += 1;
        }
    });
    let sent = client.install_snapshot(tokio_stream::wrappers::ReceiverStream::new(stream)).await;
    let read = reader.await.map_err(|e| format!("the snapshot reader failed: {e}"))?;
    sent.map_err(|status| status.message().to_string())?;
    Ok((index, read?))
}

/// Receives a stream from the leader into a new generation, stages it and hands it to the
/// driver. Returns the index it holds.
pub async fn receive(
    cx: &Arc<Context>,
    peer: NodeId,
    mut stream: tonic::Streaming<pb::SnapshotChunk>,
) -> Result<Index, Status> {
    let _one_at_a_time = cx
        .receiving_snapshot
        .try_lock()
        .map_err(|_| Status::resource_exhausted("a snapshot is already being received"))?;
    let first = stream
        .message()
        .await?
        .ok_or_else(|| Status::invalid_argument("an empty snapshot stream"))?;
    let meta: SnapshotMeta = codec::decode(&first.meta)
        .map_err(|e| Status::invalid_argument(format!("undecodable snapshot metadata: {e}")))?;
    if first.from != peer || first.seq != 0 {
        return Err(Status::invalid_argument("a snapshot stream starts with chunk 0 from a peer"));
    }
    let (from, term) = (first.from, first.term);
    let started = std::time::Instant::now();
    let data = cx.data.clone();
    let generation = data.next_generation()?;
    let opened = {
        let data = data.clone();
        tokio::task::spawn_blocking(move || data.open_store(generation)).await
    };
    let store = opened.map_err(|e| Status::internal(e.to_string()))??;
    let written = write_chunks(&store, first, &mut stream, &meta).await;
    let synced = match written {
        Ok(bytes) => {
            record(&cx.metrics, "received", bytes, started.elapsed());
            let store = store.clone();
            tokio::task::spawn_blocking(move || store.flush())
                .await
                .map_err(|e| Status::internal(e.to_string()))
                .and_then(|flushed| flushed.map_err(|e| Status::internal(e.to_string())))
        }
        Err(error) => Err(error),
    };
    drop(store);
    if let Err(error) = synced {
        data.remove_generation(generation);
        tracing::warn!(from, "refused a snapshot stream: {}", error.message());
        return Err(error);
    }
    data.mark_synced(generation, meta.index)?;
    data.mark_staged(generation, meta.index, meta.term)?;
    tracing::info!(from, index = meta.index, generation, "received a snapshot");
    let index = meta.index;
    cx.send(Input::SnapshotReceived { from, term, meta, generation })?;
    Ok(index)
}

/// Checks a chunk that should be number `expected`, after `total` pairs whose chunks' CRCs
/// make `digest`: its pairs, or `None` for a last chunk whose totals match.
fn check_chunk(
    chunk: &pb::SnapshotChunk,
    expected: u64,
    total: u64,
    digest: &crc32fast::Hasher,
) -> Result<Option<Vec<KeyValue>>, Status> {
    if chunk.seq != expected {
        return Err(Status::data_loss(format!(
            "snapshot chunk {} arrived where {expected} was expected",
            chunk.seq
        )));
    }
    if crc32fast::hash(&chunk.pairs) != chunk.crc {
        return Err(Status::data_loss(format!(
            "snapshot chunk {} is damaged (checksum)",
            chunk.seq
        )));
    }
    if chunk.done {
        if chunk.total_pairs != total || chunk.digest != digest.clone().finalize() {
            return Err(Status::data_loss(format!(
                "the snapshot is incomplete: {total} pairs received, {} sent",
                chunk.total_pairs
            )));
        }
        return Ok(None);
    }
    let limit = super::transport::MAX_MESSAGE_BYTES;
    let data = super::compression::unpack(chunk.pairs.clone(), chunk.lz4, limit)
        .map_err(|e| Status::data_loss(format!("snapshot chunk {}: {e}", chunk.seq)))?;
    let pairs = codec::decode(&data)
        .map_err(|e| Status::data_loss(format!("undecodable snapshot chunk: {e}")))?;
    Ok(Some(pairs))
}

/// Writes the chunks of a stream, starting with `first`, checking each one and the totals.
async fn write_chunks(
    store: &Arc<crate::storage::ReplicaStore>,
    first: pb::SnapshotChunk,
    stream: &mut tonic::Streaming<pb::SnapshotChunk>,
    meta: &SnapshotMeta,
) -> Result<u64, Status> {
    let mut digest = crc32fast::Hasher::new();
    let (mut total, mut bytes) = (0u64, 0u64);
    let mut chunk = first;
    let mut expected = 0u64;
    loop {
        let Some(pairs) = check_chunk(&chunk, expected, total, &digest)? else { break };
        digest.update(&chunk.crc.to_le_bytes());
        total += pairs.len() as u64;
        bytes += chunk.pairs.len() as u64;
        let mut batch = WriteBatch::new();
        for (key, value) in pairs {
            batch.set(key, value);
        }
        let base = store.base().clone();
        tokio::task::spawn_blocking(move || base.write(batch))
            .await
            .map_err(|e| Status::internal(e.to_string()))?
            .map_err(|e| Status::internal(format!("cannot write the received state: {e}")))?;
        expected += 1;
        chunk = stream
            .message()
            .await?
            .ok_or_else(|| Status::data_loss("the snapshot stream ended before its last chunk"))?;
    }
    // The state must be what the metadata says.
    let recorded = Meta::load(store.as_ref()).map_err(Status::data_loss)?;
    match recorded {
        Some(recorded) if recorded.applied == meta.index && recorded.term == meta.term => Ok(bytes),
        other => Err(Status::data_loss(format!(
            "the received state records {:?}, not the snapshot's index {} and term {}",
            other.map(|m| (m.applied, m.term)),
            meta.index,
            meta.term
        ))),
    }
}

/// Counts a snapshot transfer that completed (`direction`: `sent` or `received`).
pub fn record(metrics: &Metrics, direction: &str, bytes: u64, took: std::time::Duration) {
    metrics.snapshots.with_label_values(&[direction]).inc();
    metrics.snapshot_bytes.with_label_values(&[direction]).inc_by(bytes);
    metrics.snapshot_seconds.with_label_values(&[direction]).observe(took.as_secs_f64());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(seq: u64, pairs: &[KeyValue]) -> pb::SnapshotChunk {
        let data = codec::encode(&pairs.to_vec());
        pb::SnapshotChunk { seq, crc: crc32fast::hash(&data), pairs: data, ..Default::default() }
    }

    #[test]
    fn a_damaged_missing_or_incomplete_chunk_is_refused() {
        let digest = crc32fast::Hasher::new();
        let pairs = vec![(b"k".to_vec(), b"v".to_vec())];
        assert_eq!(check_chunk(&chunk(0, &pairs), 0, 0, &digest).unwrap(), Some(pairs.clone()));
        let mut damaged = chunk(0, &pairs);
        damaged.pairs[0] ^= 1;
        let refused = check_chunk(&damaged, 0, 0, &digest).unwrap_err();
        assert!(refused.message().contains("damaged"), "{refused:?}");
        assert!(check_chunk(&chunk(2, &pairs), 1, 0, &digest).is_err(), "a chunk went missing");
        // The last chunk's totals must match what arrived.
        let mut sent = crc32fast::Hasher::new();
        sent.update(&chunk(0, &pairs).crc.to_le_bytes());
        let last = pb::SnapshotChunk {
            seq: 1,
            done: true,
            total_pairs: 1,
            digest: sent.clone().finalize(),
            ..chunk(1, &[])
        };
        assert_eq!(check_chunk(&last, 1, 1, &sent).unwrap(), None);
        assert!(check_chunk(&last, 1, 0, &sent).is_err(), "a pair went missing");
        assert!(check_chunk(&last, 1, 1, &digest).is_err(), "a chunk's content differs");
    }
}
