//! What a node's services and background tasks share, and the three things they do with the
//! Raft layer: propose a command (here or through the leader), wait for a linearizable read
//! index, and wait until the state machine has applied an index: the replica's [`Consensus`],
//! implemented with Raft.

use super::Error;
use super::Options;
use super::driver::{DriverState, Input, NodeEvent, ProposeError};
use super::files::DataDir;
use super::forward::{Forwarded, Forwarder};
use super::transport::Transport;
use crate::raft::{self, ConfChange, Index, NodeId, Role};
use crate::replica::activity::Activity;
use crate::replica::{Command, Consensus, Outcome, SharedDatabase, read_database};
use crate::sql::Database;
use crate::storage::mvcc::Version;
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{broadcast, oneshot, watch};

/// How long a follower waits for the leader's answer to a read index before asking again (the
/// question or the answer may have been lost).
const READ_INDEX_RETRY: Duration = Duration::from_millis(300);

/// Shared by a node's services and tasks.
pub struct Context {
    /// The node's settings.
    pub opts: Options,
    /// The cluster's secret: what peers and admins prove themselves with (`auth.rs`).
    pub secret: super::auth::ClusterSecret,
    /// The address clients and peers reach this node at.
    pub address: String,
    /// The driver's inbox.
    pub inbox: Mutex<Sender<Input>>,
    /// The driver's published state.
    pub state: watch::Receiver<DriverState>,
    /// The state machine's applied index.
    pub applied: watch::Receiver<Index>,
    /// The session signing key, once the log has set it.
    pub session_key: watch::Receiver<Option<Arc<Vec<u8>>>>,
    /// The current database.
    pub db: SharedDatabase,
    /// The state machine's position (see [`crate::replica::StateMachine::position`]).
    pub position: Arc<std::sync::atomic::AtomicU64>,
    /// Connections to peers.
    pub transport: Arc<Transport>,
    /// Node events.
    pub events: broadcast::Sender<NodeEvent>,
    /// The data directory.
    pub data: Arc<DataDir>,
    /// When the node started.
    pub started: Instant,
    /// Transaction use, for the abandonment timeout.
    pub activity: Arc<Activity>,
    /// Set when the node begins to stop: long-lived streams (peer messages, Watch) end on it,
    /// so no connection outlives the node.
    pub stopping: watch::Sender<bool>,
    /// Held while a snapshot is received: one at a time.
    pub receiving_snapshot: tokio::sync::Mutex<()>,
    /// The lanes forwarding writes to the leader.
    pub forwarder: Forwarder,
    /// The node's metrics.
    pub metrics: Arc<super::metrics::Metrics>,
    /// Statistics of the statements served here, by fingerprint.
    pub statistics: Arc<super::statements::StatementStatistics>,
    /// Why forwarding upstream last failed, if it did (`edge.rs`).
    pub forward_report: super::edge::ForwardReport,
}

impl Context {
    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.opts.id
    }

    /// The current database.
    pub fn database(&self) -> Arc<Database> {
        read_database(&self.db)
    }

    /// The applied index now.
    pub fn applied_index(&self) -> Index {
        *self.applied.borrow()
    }

    /// Resolves once the node begins to stop.
    pub async fn until_stopping(&self) {
        let mut stopping = self.stopping.subscribe();
        let _ = stopping.wait_for(|stopping| *stopping).await;
    }

    /// Sends an input to the driver.
    pub fn send(&self, input: Input) -> Result<(), Error> {
        let inbox = self.inbox.lock().unwrap_or_else(|p| p.into_inner());
        inbox.send(input).map_err(|_| self.stopped())
    }

    /// The error for a node whose driver has stopped.
    pub fn stopped(&self) -> Error {
        match self.state.borrow().halted.clone() {
            Some(reason) => Error::Halted(reason),
            None => Error::Unavailable("the node is shutting down".into()),
        }
    }

    /// Fails if the node has halted.
    pub fn check_running(&self) -> Result<(), Error> {
        match self.state.borrow().halted.clone() {
            Some(reason) => Err(Error::Halted(reason)),
            None => Ok(()),
        }
    }

    /// Waits until the state changes or `deadline` passes; false at the deadline.
    async fn wait_change(&self, deadline: Instant) -> bool {
        let mut state = self.state.clone();
        state.mark_unchanged();
        // A short cap: a leader may appear without a state change reaching us promptly.
        let until = deadline.min(Instant::now() + Duration::from_millis(50));
        let _ = tokio::time::timeout_at(until.into(), state.changed()).await;
        Instant::now() < deadline
    }

    /// Replicates a command and returns its outcome once applied, proposing it here if this
    /// node leads or forwarding it to the leader otherwise. Refusals that prove the command was
    /// not proposed are retried until the request timeout.
    pub async fn propose(&self, command: &Command) -> Result<(Index, Outcome), Error> {
        let transaction = match command {
            Command::Execute { txn, .. } => *txn,
            _ => None,
        };
        self.propose_encoded(command.encode(), transaction).await
    }

    /// [`Context::propose`] for an encoded command, which belongs to read-write transaction
    /// `transaction` if any.
    async fn propose_encoded(
        &self,
        bytes: Vec<u8>,
        transaction: Option<Version>,
    ) -> Result<(Index, Outcome), Error> {
        let deadline = Instant::now() + self.opts.request_timeout;
        loop {
            self.check_running()?;
            let (role, leader) = {
                let state = self.state.borrow();
                (state.raft.role, state.raft.leader)
            };
            let attempt = if role == Role::Leader {
                let (tx, rx) = oneshot::channel();
                let input = Input::Propose { command: bytes.clone(), reply: tx };
                self.propose_here(input, rx, deadline).await
            } else if let Some(leader) = leader.filter(|l| *l != self.id()) {
                self.forward(leader, &bytes, transaction, deadline).await
            } else {
                Attempt::Retry
            };
            match attempt {
                Attempt::Done(result) => return result,
                Attempt::Retry => {
                    if !self.wait_change(deadline).await {
                        return Err(self.no_quorum());
                    }
                }
            }
        }
    }

    /// Proposes an encoded command on this node, which must lead (for commands forwarded to
    /// it, proposed byte for byte). `None` means it certainly was not applied (this node does
    /// not lead, or stopped leading first).
    pub async fn propose_bytes_on_leader(
        &self,
        command: Vec<u8>,
    ) -> Result<Option<(Index, Outcome)>, Error> {
        let deadline = Instant::now() + self.opts.request_timeout;
        let (tx, rx) = oneshot::channel();
        let input = Input::Propose { command, reply: tx };
        match self.propose_here(input, rx, deadline).await {
            Attempt::Done(result) => result.map(Some),
            Attempt::Retry => Ok(None),
        }
    }

    /// Proposes a membership change on the leader (forwarding is done by the caller).
    pub async fn propose_conf_change(&self, change: ConfChange) -> Result<Index, Error> {
        let deadline = Instant::now() + self.opts.request_timeout;
        loop {
            let (tx, rx) = oneshot::channel();
            let input = Input::ConfChange { change, reply: tx };
            match self.propose_here(input, rx, deadline).await {
                Attempt::Done(result) => return result.map(|(index, _)| index),
                Attempt::Retry => {
                    if !self.wait_change(deadline).await {
                        return Err(self.no_quorum());
                    }
                }
            }
        }
    }

    async fn propose_here(
        &self,
        input: Input,
        reply: OutcomeReceiver,
        deadline: Instant,
    ) -> Attempt {
        if let Err(error) = self.send(input) {
            return Attempt::Done(Err(error));
        }
        match tokio::time::timeout_at(deadline.into(), reply).await {
            Err(_) => Attempt::Done(Err(Error::UnknownOutcome(format!(
                "the write did not commit within {:?}: a majority of the cluster may be down or partitioned; it may still be applied later",
                self.opts.request_timeout
            )))),
            // Sent, then the node stopped or halted before answering: the entry may be in
            // the log, and another leader (or this node, restarted) may still apply it.
            Ok(Err(_)) => Attempt::Done(Err(Error::UnknownOutcome(
                "the node stopped before the write's outcome was known; it may still be applied"
                    .into(),
            ))),
            Ok(Ok(Ok(result))) => Attempt::Done(Ok(result)),
            // Not proposed, or replaced before it committed: safe to try again.
            Ok(Ok(Err(ProposeError::Raft(raft::Error::NotLeader { .. }))))
            | Ok(Ok(Err(ProposeError::Raft(raft::Error::TransferInProgress))))
            | Ok(Ok(Err(ProposeError::Raft(raft::Error::ConfChangeInProgress))))
            | Ok(Ok(Err(ProposeError::Replaced))) => Attempt::Retry,
            Ok(Ok(Err(ProposeError::Raft(error)))) => {
                Attempt::Done(Err(Error::InvalidRequest(error.to_string())))
            }
            Ok(Ok(Err(ProposeError::Unknown))) => {
                Attempt::Done(Err(Error::UnknownOutcome(ProposeError::Unknown.to_string())))
            }
            Ok(Ok(Err(ProposeError::Halted(reason)))) => {
                Attempt::Done(Err(Error::UnknownOutcome(format!(
                    "the node halted after the write was proposed ({reason}); the rest of the cluster may still apply it"
                ))))
            }
        }
    }

    /// Forwards a command to the leader, on the lane to it (`forward.rs`).
    async fn forward(
        &self,
        leader: NodeId,
        command: &[u8],
        transaction: Option<u64>,
        deadline: Instant,
    ) -> Attempt {
        let lane = self.forwarder.forward(&self.transport, leader, command.to_vec(), transaction);
        let answer = match lane {
            Ok(Some(answer)) => answer,
            // The leader's address is not known yet (a node that joined without --peers
            // learns it from the leader's first message): wait for it.
            Ok(None) => return Attempt::Retry,
            Err(error) => return Attempt::Done(Err(error)),
        };
        let (index, outcome) = match tokio::time::timeout_at(deadline.into(), answer).await {
            Err(_) => {
                return Attempt::Done(Err(Error::UnknownOutcome(format!(
                    "the leader (node {leader}) did not answer within {:?}",
                    self.opts.request_timeout
                ))));
            }
            Ok(Err(_)) => {
                return Attempt::Done(Err(Error::UnknownOutcome(
                    "the lane to the leader dropped the write's answer".into(),
                )));
            }
            Ok(Ok(Forwarded::Applied { index, outcome })) => (index, outcome),
            Ok(Ok(Forwarded::NotApplied)) => return Attempt::Retry,
            Ok(Ok(Forwarded::Invalid(message))) => {
                return Attempt::Done(Err(Error::InvalidRequest(message)));
            }
            Ok(Ok(Forwarded::Unknown(message))) => {
                return Attempt::Done(Err(Error::UnknownOutcome(message)));
            }
        };
        let outcome = match Outcome::decode(&outcome) {
            Ok(outcome) => outcome,
            Err(error) => {
                return Attempt::Done(Err(Error::InvalidRequest(format!(
                    "the leader sent an undecodable outcome: {error}"
                ))));
            }
        };
        // Read-your-writes on this node: later reads here see the write. It is committed
        // either way, so a slow catch-up does not fail the request.
        let _ = self.wait_applied(index, deadline).await;
        Attempt::Done(Ok((index, outcome)))
    }

    /// The error for a request that found no leader able to serve it in time.
    fn no_quorum(&self) -> Error {
        let state = self.state.borrow();
        let leader = match state.raft.leader {
            Some(leader) => format!("the last known leader is node {leader}"),
            None => "no leader is known".to_string(),
        };
        Error::Unavailable(format!(
            "no leader could serve the request within {:?} ({leader}); a majority of the cluster may be down or partitioned",
            self.opts.request_timeout
        ))
    }

    /// Waits for a linearizable read index (ReadIndex through the leader) and until this node
    /// has applied it. Returns the index.
    pub async fn read_barrier(&self) -> Result<Index, Error> {
        let deadline = Instant::now() + self.opts.request_timeout;
        loop {
            self.check_running()?;
            let (tx, rx) = oneshot::channel();
            self.send(Input::ReadIndex { reply: tx })?;
            let retry_at = deadline.min(Instant::now() + READ_INDEX_RETRY);
            match tokio::time::timeout_at(retry_at.into(), rx).await {
                Ok(Ok(Ok(index))) => {
                    self.wait_applied(index, deadline).await?;
                    return Ok(index);
                }
                Ok(Err(_)) => return Err(self.stopped()),
                // No leader yet, or the question or its answer was lost: ask again.
                Ok(Ok(Err(_))) => {
                    if !self.wait_change(deadline).await {
                        return Err(self.no_quorum());
                    }
                }
                Err(_) if Instant::now() >= deadline => return Err(self.no_quorum()),
                Err(_) => {}
            }
        }
    }

    /// Waits until the state machine has applied `index`.
    pub async fn wait_applied(&self, index: Index, deadline: Instant) -> Result<(), Error> {
        let mut applied = self.applied.clone();
        match tokio::time::timeout_at(deadline.into(), applied.wait_for(|a| *a >= index)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(_)) => Err(self.stopped()),
            Err(_) => Err(Error::Unavailable(format!(
                "this node has not caught up to index {index} within {:?} (applied: {})",
                self.opts.request_timeout,
                *self.applied.borrow()
            ))),
        }
    }

    /// Tells consoles something happened.
    pub fn publish(&self, kind: &'static str, message: String) {
        let state = self.state.borrow();
        let event = NodeEvent {
            at: std::time::SystemTime::now(),
            kind,
            message,
            term: state.raft.term,
            index: state.raft.commit_index,
        };
        let _ = self.events.send(event);
    }
}

/// The node's consensus for its replica: Raft, through this node's driver.
impl Consensus for Context {
    async fn propose(
        &self,
        command: Vec<u8>,
        transaction: Option<Version>,
    ) -> Result<(Index, Outcome), crate::replica::Error> {
        Ok(self.propose_encoded(command, transaction).await?)
    }

    async fn read_index(&self) -> Result<Index, crate::replica::Error> {
        Ok(self.read_barrier().await?)
    }

    async fn wait_applied(
        &self,
        index: Index,
        deadline: Instant,
    ) -> Result<(), crate::replica::Error> {
        Ok(Context::wait_applied(self, index, deadline).await?)
    }

    fn applied(&self) -> Index {
        self.applied_index()
    }

    fn running(&self) -> Result<(), crate::replica::Error> {
        Ok(self.check_running()?)
    }
}

/// The result of one attempt at a proposal.
enum Attempt {
    Done(Result<(Index, Outcome), Error>),
    Retry,
}

/// Where a proposal's outcome arrives.
type OutcomeReceiver = oneshot::Receiver<Result<(Index, Outcome), ProposeError>>;
