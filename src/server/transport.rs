//! Node-to-node connections: a stream of Raft messages to each peer, and RPC channels for
//! forwarding requests to the leader.
//!
//! Each peer has two lanes, each a long-lived client stream (`Raft.Step`): one for protocol
//! messages and one for snapshot chunks, so a large transfer never delays heartbeats. Sending
//! never blocks the Raft driver: a full lane drops the message, which Raft tolerates (it
//! retransmits). A lane with nothing to send holds no connection; a lane whose peer is down
//! drops what it holds and reconnects after a short delay.

use crate::encoding::value as codec;
use crate::grpc::pb;
use crate::raft::{Envelope, Message, NodeId};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use tokio::sync::mpsc;
use tonic::transport::{Channel, Endpoint};

/// How long a connection attempt to a peer may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
/// The pause before reconnecting to a peer that could not be reached.
pub const RECONNECT_DELAY: Duration = Duration::from_millis(50);
/// Messages a protocol lane holds before dropping new ones.
const CONTROL_LANE: usize = 4096;
/// Snapshot chunks a snapshot lane holds.
const SNAPSHOT_LANE: usize = 8;
/// The most messages in one frame of a stream.
const MAX_BATCH: usize = 256;

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

/// The two lanes to one peer.
struct Lanes {
    control: mpsc::Sender<Vec<u8>>,
    snapshot: mpsc::Sender<Vec<u8>>,
}

/// Connections to the other members.
pub struct Transport {
    /// This node's id (its address is in `addresses`).
    id: NodeId,
    addresses: Addresses,
    runtime: tokio::runtime::Handle,
    lanes: Mutex<BTreeMap<NodeId, Lanes>>,
    /// RPC channels by peer, with the address each was made for.
    channels: Mutex<BTreeMap<NodeId, (String, Channel)>>,
}

impl Transport {
    /// A transport that runs its connections on `runtime`.
    pub fn new(id: NodeId, addresses: Addresses, runtime: tokio::runtime::Handle) -> Self {
        Self {
            id,
            addresses,
            runtime,
            lanes: Mutex::new(BTreeMap::new()),
            channels: Mutex::new(BTreeMap::new()),
        }
    }

    /// The address book.
    pub fn addresses(&self) -> &Addresses {
        &self.addresses
    }

    /// Queues a message for its recipient without blocking; drops it if the lane is full.
    pub fn send(&self, envelope: &Envelope) {
        let bytes = codec::encode(envelope);
        let mut lanes = self.lanes.lock().unwrap_or_else(|p| p.into_inner());
        let lanes = lanes.entry(envelope.to).or_insert_with(|| self.open_lanes(envelope.to));
        let lane = match envelope.message {
            Message::Snapshot { .. } => &lanes.snapshot,
            _ => &lanes.control,
        };
        if lane.try_send(bytes).is_err() {
            tracing::trace!(to = envelope.to, "lane full or closed: message dropped");
        }
    }

    fn open_lanes(&self, peer: NodeId) -> Lanes {
        let (control, control_rx) = mpsc::channel(CONTROL_LANE);
        let (snapshot, snapshot_rx) = mpsc::channel(SNAPSHOT_LANE);
        let from = (self.id, self.addresses.clone());
        self.runtime.spawn(run_lane(from.clone(), peer, self.addresses.clone(), control_rx));
        self.runtime.spawn(run_lane(from, peer, self.addresses.clone(), snapshot_rx));
        Lanes { control, snapshot }
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
        let channel = endpoint(&address)?.connect_lazy();
        channels.insert(peer, (address, channel.clone()));
        Some(channel)
    }
}

/// The endpoint for a peer address, with Chronos's connection settings.
pub fn endpoint(address: &str) -> Option<Endpoint> {
    let endpoint = Endpoint::from_shared(format!("http://{address}")).ok()?;
    Some(endpoint.connect_timeout(CONNECT_TIMEOUT).tcp_nodelay(true))
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
    mut lane: mpsc::Receiver<Vec<u8>>,
) {
    loop {
        // An idle lane holds no connection: wait for something to send.
        let Some(first) = lane.recv().await else { return };
        let connected = match address_of(&addresses, peer).as_deref().and_then(endpoint) {
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
        let mut client = pb::raft_client::RaftClient::new(channel);
        let mut request =
            tonic::Request::new(tokio_stream::wrappers::ReceiverStream::new(frames_rx));
        if let Some(own) = address_of(&from.1, from.0)
            && let Ok(value) = format!("{}={own}", from.0).parse()
        {
            request.metadata_mut().insert(FROM_HEADER, value);
        }
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
            while messages.len() < MAX_BATCH {
                match lane.try_recv() {
                    Ok(message) => messages.push(message),
                    Err(_) => break,
                }
            }
            // The send fails once the call has ended (the peer went away).
            if frames.send(pb::RaftBatch { messages }).await.is_err() {
                break;
            }
        }
        call.abort();
        tokio::time::sleep(RECONNECT_DELAY).await;
    }
}
