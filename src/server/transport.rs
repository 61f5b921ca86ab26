//! Node-to-node connections: a stream of Raft messages to each peer, and RPC channels for
//! forwarding requests to the leader and streaming snapshots (`snapshot.rs`).
//!
//! Each peer has a lane, a long-lived client stream (`Raft.Step`) of frames of messages, each
//! frame bounded in bytes ([`MAX_FRAME_BYTES`]; a larger message goes alone). Snapshots
//! travel on their own calls, so a large transfer never delays heartbeats. Sending never
//! blocks the Raft driver: a full lane drops the message, which Raft tolerates (it
//! retransmits). A lane with nothing to send holds no connection; a lane whose peer is down
//! drops what it holds and reconnects after a short delay.
//!
//! Limits are set deliberately on every client and server: a message may be up to
//! [`MAX_MESSAGE_BYTES`], above the largest entry Raft accepts plus framing.

use super::auth::PeerCredentials;
use crate::encoding::value as codec;
use crate::grpc::pb;
pub use crate::grpc::wire::{MAX_MESSAGE_BYTES, endpoint};
use crate::grpc::{tls::ClientTls, wire::endpoint_with};
use crate::raft::{Envelope, NodeId};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use tokio::sync::mpsc;
use tonic::transport::Channel;

/// The pause before reconnecting to a peer that could not be reached.
pub const RECONNECT_DELAY: Duration = Duration::from_millis(50);
/// Messages a lane holds before dropping new ones.
const LANE: usize = 4096;
/// The most messages in one frame of a stream.
const MAX_BATCH: usize = 256;
/// About the most bytes of messages in one frame (a larger message goes alone).
pub const MAX_FRAME_BYTES: usize = 4 << 20;
/// A Raft service client whose calls carry a node's credentials.
pub type RaftClient = pb::raft_client::RaftClient<
    tonic::service::interceptor::InterceptedService<Channel, PeerCredentials>,
>;

/// A Raft service client on `channel` that proves itself with `credentials`, with the
/// node's message limits.
pub fn raft_client(channel: Channel, credentials: PeerCredentials) -> RaftClient {
    pb::raft_client::RaftClient::with_interceptor(channel, credentials)
        .max_encoding_message_size(MAX_MESSAGE_BYTES)
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
}

/// The gRPC metadata key on a `Raft.Step` stream naming its sender: `ID=HOST:PORT`. A node
/// that joined without `--peers` learns the leader's address from it, so it can answer.
pub const FROM_HEADER: &str = "chronos-from";

/// The members' addresses (`host:port`), shared by everything that connects to peers.
pub type Addresses = Arc<RwLock<BTreeMap<NodeId, String>>>;

/// The address of `id`, if known.
pub fn address_of(addresses: &Addresses, id: NodeId) -> Option<String> {
    // A poisoned lock only means a writer panicked between whole-value inserts.
    addresses.read().unwrap_or_else(|p| p.into_inner()).get(&id).cloned()
}

/// Connections to the other members.
pub struct Transport {
    /// This node's id (its address is in `addresses`).
    id: NodeId,
    addresses: Addresses,
    runtime: tokio::runtime::Handle,
    lanes: Mutex<BTreeMap<NodeId, mpsc::Sender<Vec<u8>>>>,
    /// RPC channels by peer, with the address each was made for.
    channels: Mutex<BTreeMap<NodeId, (String, Channel)>>,
    /// What this node's calls to its peers carry to prove it is this node.
    credentials: PeerCredentials,
    /// TLS to peers (the cluster's CA and this node's certificate), if on.
    tls: Option<Arc<ClientTls>>,
    /// By peer: whether it announced that it reads compressed messages.
    compress_to: Mutex<BTreeMap<NodeId, Arc<AtomicBool>>>,
    /// Message bytes before and after compression (metrics).
    metrics: Arc<super::metrics::Metrics>,
}

impl Transport {
    /// A transport that runs its connections on `runtime`, its calls proving themselves with
    /// `credentials` (and over `tls`, if given).
    pub fn new(
        id: NodeId,
        addresses: Addresses,
        runtime: tokio::runtime::Handle,
        credentials: PeerCredentials,
        tls: Option<ClientTls>,
        metrics: Arc<super::metrics::Metrics>,
    ) -> Self {
        Self {
            id,
            addresses,
            runtime,
            lanes: Mutex::new(BTreeMap::new()),
            channels: Mutex::new(BTreeMap::new()),
            credentials,
            tls: tls.map(Arc::new),
            compress_to: Mutex::new(BTreeMap::new()),
            metrics,
        }
    }

    /// A Raft client to `peer` carrying this node's credentials, or `None` if its address is
    /// unknown.
    pub fn raft_client(&self, peer: NodeId) -> Option<RaftClient> {
        Some(raft_client(self.channel(peer)?, self.credentials.clone()))
    }

    /// The address book.
    pub fn addresses(&self) -> &Addresses {
        &self.addresses
    }

    /// The runtime the connections run on.
    pub fn runtime(&self) -> &tokio::runtime::Handle {
        &self.runtime
    }

    /// Queues a message for its recipient without blocking; drops it if the lane is full.
    pub fn send(&self, envelope: &Envelope) {
        let bytes = codec::encode(envelope);
        if bytes.len() > MAX_MESSAGE_BYTES {
            // Raft bounds entries and appends well below this: a bug, not a peer's doing.
            tracing::error!(
                to = envelope.to,
                bytes = bytes.len(),
                "a message over the limit was dropped"
            );
            return;
        }
        let mut lanes = self.lanes.lock().unwrap_or_else(|p| p.into_inner());
        let lane = lanes.entry(envelope.to).or_insert_with(|| self.open_lane(envelope.to));
        if lane.try_send(bytes).is_err() {
            tracing::trace!(to = envelope.to, "lane full or closed: message dropped");
        }
    }

    fn open_lane(&self, peer: NodeId) -> mpsc::Sender<Vec<u8>> {
        let (lane, lane_rx) = mpsc::channel(LANE);
        let from = (self.id, self.addresses.clone());
        let credentials = (self.credentials.clone(), self.tls.clone());
        let compress =
            Compress { to_peer: self.compress_flag(peer), metrics: self.metrics.clone() };
        let addresses = self.addresses.clone();
        self.runtime.spawn(run_lane(from, peer, addresses, credentials, compress, lane_rx));
        lane
    }

    fn compress_flag(&self, peer: NodeId) -> Arc<AtomicBool> {
        let mut flags = self.compress_to.lock().unwrap_or_else(|p| p.into_inner());
        flags.entry(peer).or_default().clone()
    }

    /// Whether `peer` has said it reads compressed messages.
    pub fn reads_compressed(&self, peer: NodeId) -> bool {
        self.compress_flag(peer).load(Ordering::Relaxed)
    }

    /// Records that `peer` reads compressed messages (it said so on its own stream).
    pub fn peer_reads_compressed(&self, peer: NodeId) {
        self.compress_flag(peer).store(true, Ordering::Relaxed);
    }

    /// An RPC channel to `peer` (connecting lazily), or `None` if its address is unknown.
    pub fn channel(&self, peer: NodeId) -> Option<Channel> {
        let address = address_of(&self.addresses, peer)?;
        let mut channels = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((known, channel)) = channels.get(&peer)
            && *known == address
        {
            return Some(channel.clone());
        }
        let channel = endpoint_with(&address, self.tls.as_deref())?.connect_lazy();
        channels.insert(peer, (address, channel.clone()));
        Some(channel)
    }
}

/// How a lane compresses its frames: whether its peer reads compressed messages, and where
/// the bytes saved are counted.
struct Compress {
    to_peer: Arc<AtomicBool>,
    metrics: Arc<super::metrics::Metrics>,
}

impl Compress {
    /// A frame of `messages`, each compressed where the peer reads it and it pays.
    fn frame(&self, messages: Vec<Vec<u8>>) -> pb::RaftBatch {
        let encoded: usize = messages.iter().map(Vec::len).sum();
        let batch = match self.to_peer.load(Ordering::Relaxed) {
            false => pb::RaftBatch { messages, lz4: Vec::new() },
            true => {
                let (messages, lz4) = messages.into_iter().map(super::compression::pack).unzip();
                pb::RaftBatch { messages, lz4 }
            }
        };
        let sent: usize = batch.messages.iter().map(Vec::len).sum();
        let bytes = &self.metrics.raft_message_bytes;
        bytes.with_label_values(&["encoded"]).inc_by(encoded as u64);
        bytes.with_label_values(&["sent"]).inc_by(sent as u64);
        batch
    }
}

/// Records a peer's address learned from its own connection, unless one is known already
/// (addresses from flags and the log win).
pub fn learn_address(addresses: &Addresses, header: &str) {
    let Some((id, address)) = header.split_once('=') else { return };
    let (Ok(id), true) = (id.parse::<NodeId>(), endpoint(address).is_some()) else { return };
    let mut book = addresses.write().unwrap_or_else(|p| p.into_inner());
    if let std::collections::btree_map::Entry::Vacant(entry) = book.entry(id) {
        tracing::info!(peer = id, %address, "learned a peer's address from its connection");
        entry.insert(address.to_string());
    }
}

/// Drains a lane into a `Raft.Step` stream to `peer`, reconnecting as needed. `from` is this
/// node's id and address book (its own address is sent along, see [`FROM_HEADER`]).
async fn run_lane(
    from: (NodeId, Addresses),
    peer: NodeId,
    addresses: Addresses,
    (credentials, tls): (PeerCredentials, Option<Arc<ClientTls>>),
    compress: Compress,
    mut lane: mpsc::Receiver<Vec<u8>>,
) {
    loop {
        // An idle lane holds no connection: wait for something to send.
        let Some(first) = lane.recv().await else { return };
        let endpoint = address_of(&addresses, peer).and_then(|a| endpoint_with(&a, tls.as_deref()));
        let connected = match endpoint {
            Some(endpoint) => endpoint.connect().await.ok(),
            None => None,
        };
        let Some(channel) = connected else {
            // The peer is down or unknown: what is queued is stale by the time it is back.
            while lane.try_recv().is_ok() {}
            tokio::time::sleep(RECONNECT_DELAY).await;
            continue;
        };
        let (frames, frames_rx) = mpsc::channel::<pb::RaftBatch>(16);
        let mut client = raft_client(channel, credentials.clone());
        let mut request =
            tonic::Request::new(tokio_stream::wrappers::ReceiverStream::new(frames_rx));
        if let Some(own) = address_of(&from.1, from.0)
            && let Ok(value) = format!("{}={own}", from.0).parse()
        {
            request.metadata_mut().insert(FROM_HEADER, value);
        }
        let announce = tonic::metadata::AsciiMetadataValue::from_static(super::compression::LZ4);
        request.metadata_mut().insert(super::compression::HEADER, announce);
        let call = tokio::spawn(async move { client.step(request).await });
        let mut next = Some(first);
        loop {
            let mut messages = Vec::new();
            match next.take() {
                Some(message) => messages.push(message),
                None => match lane.recv().await {
                    Some(message) => messages.push(message),
                    None => {
                        call.abort();
                        return;
                    }
                },
            }
            // A frame holds up to MAX_BATCH messages and about MAX_FRAME_BYTES; the message
            // that would pass the bound starts the next frame.
            let mut bytes: usize = messages.iter().map(Vec::len).sum();
            while messages.len() < MAX_BATCH && bytes < MAX_FRAME_BYTES {
                match lane.try_recv() {
                    Ok(message) if bytes + message.len() > MAX_FRAME_BYTES => {
                        next = Some(message);
                        break;
                    }
                    Ok(message) => {
                        bytes += message.len();
                        messages.push(message);
                    }
                    Err(_) => break,
                }
            }
            let batch = compress.frame(messages);
            // The send fails once the call has ended (the peer went away).
            if frames.send(batch).await.is_err() {
                break;
            }
        }
        call.abort();
        tokio::time::sleep(RECONNECT_DELAY).await;
    }
}
