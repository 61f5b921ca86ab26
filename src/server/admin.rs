//! The Admin service: status, data inspection, membership, leadership transfer and a live
//! stream of status and events. Membership changes and transfers must run on the leader; any
//! other node forwards them there.

use super::context::Context;
use super::driver::{Input, NodeEvent};
use super::node::{NodeStatus, pb_role};
use super::{Error, transport};
use crate::grpc::{convert, pb};
use crate::raft::{ConfChange, Index, NodeId, Payload, Role};
use crate::replica::Command;
use crate::replica::access::Principal;
use crate::sql::engine::Privilege;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant, UNIX_EPOCH};
use tokio::sync::oneshot;
use tonic::{Request, Response, Status};

/// How long a node waits for a peer's status before calling it down.
const PEER_STATUS_TIMEOUT: Duration = Duration::from_millis(500);
/// How often the Watch stream sends the node's status.
const WATCH_INTERVAL: Duration = Duration::from_millis(250);
/// The default and largest page of ScanTable, in rows; a page also stops at about
/// [`PAGE_BYTES`] (at least one row), so a page of large rows stays within message limits.
const PAGE: u64 = 100;
const MAX_PAGE: u64 = 10_000;
const PAGE_BYTES: usize = 4 << 20;
/// The default and largest LogTail.
const LOG_TAIL: u64 = 20;
const MAX_LOG_TAIL: u64 = 1_000;

/// This node's status now.
pub fn node_status(cx: &Context) -> NodeStatus {
    let state = cx.state.borrow().clone();
    let raft = state.raft;
    let addresses = cx.transport.addresses().read().unwrap_or_else(|p| p.into_inner()).clone();
    let members = raft
        .config
        .voters
        .iter()
        .map(|id| (*id, true))
        .chain(raft.config.learners.iter().map(|id| (*id, false)))
        .map(|(id, voter)| (id, addresses.get(&id).cloned().unwrap_or_default(), voter))
        .collect();
    NodeStatus {
        id: cx.id(),
        address: cx.address.clone(),
        role: raft.role,
        learner: raft.config.learners.contains(&cx.id()),
        term: raft.term,
        leader: raft.leader,
        voted_for: raft.vote,
        first_index: raft.first_index,
        last_index: raft.last_index,
        commit_index: raft.commit_index,
        applied_index: cx.applied_index(),
        snapshot_index: state.snapshot_index,
        peers: raft.peers,
        members,
        uptime: cx.started.elapsed(),
        data_bytes: cx.data.size(),
        fsync_p99: cx.metrics.fsync_p99(),
        halted: state.halted,
        edge: super::edge::status(cx),
    }
}

/// The protobuf form of a status.
fn pb_status(status: &NodeStatus, tick: Duration) -> pb::NodeStatus {
    pb::NodeStatus {
        id: status.id,
        address: status.address.clone(),
        role: pb_role(status) as i32,
        term: status.term,
        leader: status.leader.unwrap_or(0),
        voted_for: status.voted_for.unwrap_or(0),
        first_index: status.first_index,
        last_index: status.last_index,
        commit_index: status.commit_index,
        applied_index: status.applied_index,
        snapshot_index: status.snapshot_index,
        peers: status
            .peers
            .iter()
            .map(|(id, peer)| pb::PeerStatus {
                id: *id,
                match_index: peer.match_index,
                next_index: peer.next_index,
                last_contact_ms: tick.as_millis() as u64 * u64::from(peer.last_contact),
                voter: peer.voter,
                stalled_ms: tick.as_millis() as u64 * u64::from(peer.stalled),
                receiving_snapshot: peer.receiving_snapshot,
            })
            .collect(),
        members: status
            .members
            .iter()
            .map(|(id, address, voter)| pb::Member {
                id: *id,
                address: address.clone(),
                voter: *voter,
            })
            .collect(),
        uptime_ms: status.uptime.as_millis() as u64,
        data_bytes: status.data_bytes,
        halted: status.halted.clone().unwrap_or_default(),
        fsync_p99_us: status
            .fsync_p99
            .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX)),
        edge: status.edge.clone(),
    }
}

/// Hands leadership to the most up-to-date other voter, if this node leads, and waits (at most
/// two election timeouts) until it has.
pub async fn hand_over_leadership(cx: &Context) {
    let target = {
        let state = cx.state.borrow();
        if state.raft.role != Role::Leader {
            return;
        }
        state
            .raft
            .peers
            .iter()
            .filter(|(_, peer)| peer.voter)
            .max_by_key(|(_, peer)| peer.match_index)
            .map(|(id, _)| *id)
    };
    let Some(target) = target else { return };
    if transfer(cx, target).await.is_ok() {
        tracing::info!(to = target, "handed leadership over before stopping");
    }
}

/// Transfers leadership from this node (the leader) to `to` and waits until it took over.
async fn transfer(cx: &Context, to: NodeId) -> Result<(), Error> {
    let (tx, rx) = oneshot::channel();
    cx.send(Input::Transfer { to, reply: tx })?;
    rx.await.map_err(|_| cx.stopped())??;
    let wait = cx.opts.tick * cx.opts.election_ticks * 2;
    let mut state = cx.state.clone();
    let took_over = tokio::time::timeout(wait, state.wait_for(|s| s.raft.leader == Some(to))).await;
    match took_over {
        Ok(Ok(_)) => Ok(()),
        _ => Err(Error::Unavailable(format!("node {to} did not take over within {wait:?}"))),
    }
}

/// The Admin service.
pub struct AdminService {
    cx: Arc<Context>,
    /// Held through a membership change, from validation to the configuration entry, so a
    /// change checks the configuration no other change is about to alter.
    membership: tokio::sync::Mutex<()>,
}

impl AdminService {
    /// The service of a node.
    pub fn new(cx: Arc<Context>) -> Self {
        Self { cx, membership: tokio::sync::Mutex::new(()) }
    }

    fn status(&self) -> pb::NodeStatus {
        pb_status(&node_status(&self.cx), self.cx.opts.tick)
    }

    /// Refuses a call that changes the cluster unless it carries the admin token or comes
    /// from a user with the admin role.
    fn authorize<T>(&self, request: &Request<T>, call: &str) -> Result<(), Status> {
        if self.cx.secret.is_admin(request.metadata()) {
            return Ok(());
        }
        let from = super::auth::remote(request);
        let principal = super::auth::principal(&self.cx, request, call)?;
        if let Principal::User(_) = principal {
            return self.require(&principal, Privilege::Admin, request, call);
        }
        tracing::warn!(%from, call, "refused an admin call without the admin token");
        Err(super::auth::admin_required(&format!("Admin.{call}")))
    }

    /// Refuses a call whose principal lacks `privilege`.
    fn require<T>(
        &self,
        principal: &Principal,
        privilege: Privilege,
        request: &Request<T>,
        call: &str,
    ) -> Result<(), Status> {
        if principal.may(privilege) {
            return Ok(());
        }
        let from = super::auth::remote(request);
        let message = principal.refusal(privilege, &format!("call Admin.{call}"));
        tracing::warn!(%from, call, user = principal.name(), "refused: {message}");
        Err(Status::permission_denied(message))
    }

    /// Refuses a call that reads data unless its principal may read.
    fn authorize_read<T>(&self, request: &Request<T>, call: &str) -> Result<(), Status> {
        let principal = super::auth::principal(&self.cx, request, call)?;
        self.require(&principal, Privilege::Read, request, call)
    }

    /// A client of the leader's Admin service, or `None` if this node leads; an error if no
    /// leader is known.
    fn leader_client(
        &self,
    ) -> Result<Option<pb::admin_client::AdminClient<crate::grpc::wire::Authenticated>>, Status>
    {
        let state = self.cx.state.borrow().raft.clone();
        if state.role == Role::Leader {
            return Ok(None);
        }
        let leader = state.leader.ok_or_else(|| {
            Status::unavailable("no leader is known: the cluster may have lost its quorum")
        })?;
        let channel = self.cx.transport.channel(leader).ok_or_else(|| {
            Status::unavailable(format!("the leader's (node {leader}) address is unknown"))
        })?;
        // The forwarded request carries the caller's own credentials.
        Ok(Some(crate::grpc::wire::admin_client(channel, Default::default())))
    }

    async fn change(&self, change: ConfChange) -> Result<pb::MembershipResponse, Status> {
        let index = self.cx.propose_conf_change(change).await?;
        // The configuration is in effect once appended; report it as of its commit.
        let deadline = Instant::now() + self.cx.opts.request_timeout;
        let _ = self.cx.wait_applied(index, deadline).await;
        Ok(pb::MembershipResponse { index, members: self.status().members })
    }

    fn read_txn(&self) -> Result<(Arc<crate::sql::Database>, crate::sql::engine::Txn), Status> {
        let db = self.cx.database();
        let txn = db.mvcc().begin_read_only().map_err(|e| Status::internal(e.to_string()))?;
        Ok((db, crate::sql::engine::Txn::new(txn)))
    }
}

fn sql_status(error: crate::sql::Error) -> Status {
    match error {
        crate::sql::Error::UnknownTable(_) => Status::not_found(error.to_string()),
        other => Status::internal(other.to_string()),
    }
}

type WatchStream = tokio_stream::wrappers::ReceiverStream<Result<pb::WatchEvent, Status>>;

#[tonic::async_trait]
impl pb::admin_server::Admin for AdminService {
    async fn status(
        &self,
        _: Request<pb::StatusRequest>,
    ) -> Result<Response<pb::NodeStatus>, Status> {
        Ok(Response::new(self.status()))
    }

    async fn cluster_status(
        &self,
        _: Request<pb::ClusterStatusRequest>,
    ) -> Result<Response<pb::ClusterStatusResponse>, Status> {
        let own = self.status();
        let mut members: BTreeMap<NodeId, String> =
            own.members.iter().map(|m| (m.id, m.address.clone())).collect();
        members.insert(own.id, own.address.clone());
        let mut asks = Vec::new();
        for (id, address) in members {
            if id == own.id {
                continue;
            }
            let channel = self.cx.transport.channel(id);
            asks.push(tokio::spawn(async move {
                let down = pb::NodeStatus {
                    id,
                    address: address.clone(),
                    role: pb::Role::Down as i32,
                    ..Default::default()
                };
                let Some(channel) = channel else { return down };
                let mut client = crate::grpc::wire::admin_client(channel, Default::default());
                let mut request = Request::new(pb::StatusRequest {});
                request.set_timeout(PEER_STATUS_TIMEOUT);
                match tokio::time::timeout(PEER_STATUS_TIMEOUT, client.status(request)).await {
                    Ok(Ok(status)) => status.into_inner(),
                    _ => down,
                }
            }));
        }
        let learners = self.cx.state.borrow().raft.config.learners.clone();
        let mut nodes = vec![own];
        for ask in asks {
            if let Ok(status) = ask.await {
                nodes.push(status);
            }
        }
        // A learner that has not yet received the entry adding it calls itself a follower; the
        // configuration says what it is.
        for node in &mut nodes {
            if node.role == pb::Role::Follower as i32 && learners.contains(&node.id) {
                node.role = pb::Role::Learner as i32;
            }
        }
        nodes.sort_by_key(|n| n.id);
        Ok(Response::new(pb::ClusterStatusResponse { nodes }))
    }

    async fn list_tables(
        &self,
        request: Request<pb::ListTablesRequest>,
    ) -> Result<Response<pb::ListTablesResponse>, Status> {
        self.authorize_read(&request, "ListTables")?;
        let index = self.cx.applied_index();
        let (_db, txn) = self.read_txn()?;
        let tables = tokio::task::spawn_blocking(move || -> crate::sql::Result<_> {
            let mut out = Vec::new();
            for table in txn.list_tables()? {
                let rows = txn.count_rows(&table)?;
                out.push(pb::TableInfo { name: table.name, rows });
            }
            Ok(out)
        })
        .await
        .map_err(|e| Status::internal(e.to_string()))?
        .map_err(sql_status)?;
        Ok(Response::new(pb::ListTablesResponse { tables, index }))
    }

    async fn scan_table(
        &self,
        request: Request<pb::ScanTableRequest>,
    ) -> Result<Response<pb::ScanTableResponse>, Status> {
        self.authorize_read(&request, "ScanTable")?;
        let request = request.into_inner();
        let index = self.cx.applied_index();
        let limit = match request.limit {
            0 => PAGE,
            n => n.min(MAX_PAGE),
        };
        let (_db, txn) = self.read_txn()?;
        let page = tokio::task::spawn_blocking(move || -> crate::sql::Result<_> {
            let table = txn.must_get_table(&request.table)?;
            let total = txn.count_rows(&table)?;
            let mut rows = Vec::new();
            let mut bytes = 0;
            let scan = txn
                .scan_rows(&table, (std::ops::Bound::Unbounded, std::ops::Bound::Unbounded))
                .skip(request.offset as usize)
                .take(limit as usize);
            for row in scan {
                let row = row?;
                bytes += row.iter().map(crate::sql::types::Value::size).sum::<usize>();
                rows.push(row);
                if bytes >= PAGE_BYTES {
                    break;
                }
            }
            let columns = table
                .columns
                .iter()
                .map(|c| pb::Column {
                    name: c.name.clone(),
                    r#type: convert::data_type(Some(c.datatype)) as i32,
                })
                .collect();
            Ok(pb::ScanTableResponse { columns, rows: convert::rows(&rows), total, index })
        })
        .await
        .map_err(|e| Status::internal(e.to_string()))?
        .map_err(sql_status)?;
        Ok(Response::new(page))
    }

    async fn log_tail(
        &self,
        request: Request<pb::LogTailRequest>,
    ) -> Result<Response<pb::LogTailResponse>, Status> {
        self.authorize_read(&request, "LogTail")?;
        let count = match request.get_ref().count {
            0 => LOG_TAIL,
            n => n.min(MAX_LOG_TAIL),
        };
        let (tx, rx) = oneshot::channel();
        self.cx.send(Input::LogTail { count: count as usize, reply: tx })?;
        let entries = rx.await.map_err(|_| Status::from(self.cx.stopped()))?;
        let entries = entries
            .iter()
            .map(|entry| {
                let (kind, summary) = match &entry.payload {
                    Payload::Noop => ("noop", String::new()),
                    Payload::Config(config) => (
                        "config",
                        format!("voters {:?}, learners {:?}", config.voters, config.learners),
                    ),
                    Payload::Command(bytes) => match Command::decode(bytes) {
                        Ok(command) => ("command", command.summary()),
                        Err(_) => ("command", "(undecodable)".into()),
                    },
                };
                pb::LogEntry { index: entry.index, term: entry.term, kind: kind.into(), summary }
            })
            .collect();
        let state = self.cx.state.borrow().raft.clone();
        Ok(Response::new(pb::LogTailResponse {
            entries,
            commit_index: state.commit_index,
            applied_index: self.cx.applied_index(),
        }))
    }

    async fn add_learner(
        &self,
        request: Request<pb::AddLearnerRequest>,
    ) -> Result<Response<pb::MembershipResponse>, Status> {
        self.authorize(&request, "AddLearner")?;
        if let Some(mut leader) = self.leader_client()? {
            return leader.add_learner(request).await;
        }
        let pb::AddLearnerRequest { id, address } = request.into_inner();
        if id == 0 {
            return Err(Status::invalid_argument("node ids start at 1"));
        }
        if transport::endpoint(&address).is_none() || !address.contains(':') {
            return Err(Status::invalid_argument(format!(
                "{address:?} is not a host:port address"
            )));
        }
        // Validate before changing anything: a refused add must not touch the address book.
        let _membership = self.membership.lock().await;
        let config = self.cx.state.borrow().raft.config.clone();
        if config.contains(id) {
            let kind = if config.voters.contains(&id) { "voter" } else { "learner" };
            return Err(Status::already_exists(format!(
                "node {id} is already a member ({kind}); remove it first to give it a new address"
            )));
        }
        // Everyone, the new node included, learns every member's address through the log
        // before the node joins the configuration: a node started with --join and no --peers
        // knows nobody until then.
        let book = self.cx.transport.addresses().read().unwrap_or_else(|p| p.into_inner()).clone();
        for member in config.members() {
            if let Some(known) = book.get(&member) {
                let command = Command::SetAddress { id: member, address: known.clone() };
                self.cx.propose(&command).await?;
            }
        }
        self.cx.propose(&Command::SetAddress { id, address }).await?;
        Ok(Response::new(self.change(ConfChange::AddLearner(id)).await?))
    }

    async fn promote(
        &self,
        request: Request<pb::PromoteRequest>,
    ) -> Result<Response<pb::MembershipResponse>, Status> {
        self.authorize(&request, "Promote")?;
        if let Some(mut leader) = self.leader_client()? {
            return leader.promote(request).await;
        }
        let _membership = self.membership.lock().await;
        Ok(Response::new(self.change(ConfChange::Promote(request.get_ref().id)).await?))
    }

    async fn remove_node(
        &self,
        request: Request<pb::RemoveNodeRequest>,
    ) -> Result<Response<pb::MembershipResponse>, Status> {
        self.authorize(&request, "RemoveNode")?;
        if let Some(mut leader) = self.leader_client()? {
            return leader.remove_node(request).await;
        }
        let id = request.get_ref().id;
        if id == self.cx.id() {
            // The leader leaves last: hand over first, then the new leader removes it.
            transfer_to_another(&self.cx).await?;
            let mut leader = self
                .leader_client()?
                .ok_or_else(|| Status::unavailable("leadership did not move; try again"))?;
            return leader.remove_node(request).await;
        }
        let _membership = self.membership.lock().await;
        Ok(Response::new(self.change(ConfChange::Remove(id)).await?))
    }

    async fn transfer_leadership(
        &self,
        request: Request<pb::TransferLeadershipRequest>,
    ) -> Result<Response<pb::TransferLeadershipResponse>, Status> {
        self.authorize(&request, "TransferLeadership")?;
        if let Some(mut leader) = self.leader_client()? {
            return leader.transfer_leadership(request).await;
        }
        let to = request.get_ref().to;
        if to != self.cx.id() {
            transfer(&self.cx, to).await?;
        }
        let leader = self.cx.state.borrow().raft.leader.unwrap_or(0);
        Ok(Response::new(pb::TransferLeadershipResponse { leader }))
    }

    type WatchStream = WatchStream;

    async fn watch(
        &self,
        _: Request<pb::WatchRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        let cx = self.cx.clone();
        let mut events = cx.events.subscribe();
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(WATCH_INTERVAL);
            let stopping = cx.until_stopping();
            tokio::pin!(stopping);
            loop {
                let message = tokio::select! {
                    _ = &mut stopping => return, // the stream ends with the node
                    _ = ticker.tick() => pb::watch_event::Event::Status(pb_status(&node_status(&cx), cx.opts.tick)),
                    event = events.recv() => match event {
                        Ok(event) => pb::watch_event::Event::NodeEvent(pb_event(cx.id(), &event)),
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                    },
                };
                if tx.send(Ok(pb::WatchEvent { event: Some(message) })).await.is_err() {
                    return; // the client went away
                }
            }
        });
        Ok(Response::new(tokio_stream::wrappers::ReceiverStream::new(rx)))
    }

    type BackupStream = tokio_stream::wrappers::ReceiverStream<Result<pb::BackupChunk, Status>>;

    async fn backup(
        &self,
        request: Request<pb::BackupRequest>,
    ) -> Result<Response<Self::BackupStream>, Status> {
        self.authorize(&request, "Backup")?;
        let as_of = Some(request.get_ref().as_of).filter(|v| *v > 0);
        // A backup of "now" holds every write acknowledged before it was asked for, on
        // whichever node serves it: wait until this node has applied a read index.
        crate::replica::Consensus::read_index(self.cx.as_ref()).await?;
        let from = super::auth::remote(&request);
        Ok(Response::new(super::admin_data::stream_backup(&self.cx, as_of, from)))
    }

    async fn login(
        &self,
        request: Request<pb::LoginRequest>,
    ) -> Result<Response<pb::LoginResponse>, Status> {
        let from = super::auth::remote(&request);
        let pb::LoginRequest { user, password } = request.into_inner();
        super::admin_data::login(&self.cx, &from, user, password).await.map(Response::new)
    }

    async fn statement_statistics(
        &self,
        request: Request<pb::StatementStatisticsRequest>,
    ) -> Result<Response<pb::StatementStatisticsResponse>, Status> {
        self.authorize_read(&request, "StatementStatistics")?;
        Ok(Response::new(super::admin_data::statement_statistics(&self.cx)))
    }
}

/// Hands leadership to any other up-to-date voter.
async fn transfer_to_another(cx: &Context) -> Result<(), Error> {
    hand_over_leadership(cx).await;
    match cx.state.borrow().raft.role {
        Role::Leader => Err(Error::Unavailable("no other voter could take over leadership".into())),
        _ => Ok(()),
    }
}

fn pb_event(node: NodeId, event: &NodeEvent) -> pb::NodeEvent {
    let at_ms = event.at.duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
    pb::NodeEvent {
        at_ms,
        node,
        kind: event.kind.to_string(),
        message: event.message.clone(),
        term: event.term,
        index: event.index as Index,
    }
}
