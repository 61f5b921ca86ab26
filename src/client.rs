//! The client library: the one way the command line, the console and tests talk to a cluster.
//!
//! A [`Client`] knows one or more node addresses and talks to one at a time, moving to the
//! next when a node cannot be reached. Any node serves any request (followers forward writes),
//! so the client never looks for the leader. It keeps the session (the open transaction) that
//! the server returns with every response and sends it back with the next request.
//!
//! Failover never repeats a write that may have reached a node: a request moves to another
//! node only when the connection could not be made, or when the request only reads.

use crate::grpc::pb;
use crate::server::never_sent;
use crate::server::{Consistency, Request, Response, Transaction};
use std::time::Duration;
use tonic::transport::Channel;

/// How long a client waits for an answer by default. Longer than the server's request timeout,
/// so an unavailable cluster is reported by the server with its reason.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Errors of the client.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// No node could be reached.
    #[error("cannot reach the cluster: {0}")]
    Unreachable(String),
    /// The cluster answered that it cannot serve the request now (no quorum): nothing was
    /// applied, so the request may be retried.
    #[error("cluster unavailable: {0}")]
    Unavailable(String),
    /// A request that may write was cut off (timeout, lost connection, lost leader) after it
    /// was sent: it may or may not have been applied.
    #[error("outcome unknown: {0}")]
    OutcomeUnknown(String),
    /// The request was refused as invalid.
    #[error("invalid request: {0}")]
    Invalid(String),
    /// Anything else the server reported.
    #[error("server error: {0}")]
    Server(String),
}

impl Error {
    /// Whether the cluster (rather than the request) is at fault.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Error::Unreachable(_) | Error::Unavailable(_))
    }

    /// The error for a failed call. `may_write`: the request could have applied writes, so a
    /// failure after it was sent leaves its outcome unknown unless the server said otherwise.
    fn from_status(status: tonic::Status, may_write: bool) -> Self {
        let message = status.message().to_string();
        let outcome = status
            .metadata()
            .get(crate::server::OUTCOME_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        match outcome.as_deref() {
            Some("unknown") => return Error::OutcomeUnknown(message),
            Some("not_applied") => return Error::Unavailable(message),
            _ => {}
        }
        let cut_off = matches!(
            status.code(),
            tonic::Code::Unavailable
                | tonic::Code::DeadlineExceeded
                | tonic::Code::Cancelled
                | tonic::Code::Unknown
        );
        if may_write && cut_off && !never_sent(&status) {
            return Error::OutcomeUnknown(format!(
                "the request was cut off after it was sent and may or may not have been applied: {message}"
            ));
        }
        match status.code() {
            tonic::Code::Unavailable | tonic::Code::DeadlineExceeded | tonic::Code::Cancelled => {
                Error::Unavailable(message)
            }
            tonic::Code::InvalidArgument | tonic::Code::NotFound | tonic::Code::AlreadyExists => {
                Error::Invalid(message)
            }
            _ => Error::Server(message),
        }
    }
}

/// A connection to a cluster, with a session.
pub struct Client {
    addresses: Vec<String>,
    /// The address in use and its channel.
    current: usize,
    channel: Option<Channel>,
    timeout: Duration,
    /// The session's open transaction.
    transaction: Option<Transaction>,
    /// The cluster's proof for `transaction`, sent back with it.
    proof: Vec<u8>,
    /// The consistency of reads outside transactions.
    pub consistency: Consistency,
}

impl Client {
    /// A client of the nodes at `addresses` (`host:port`), tried in order. Nothing is connected
    /// until the first request.
    pub fn new(addresses: Vec<String>, timeout: Duration) -> Result<Self, Error> {
        if addresses.is_empty() {
            return Err(Error::Invalid("no node address given".into()));
        }
        for address in &addresses {
            if crate::server::endpoint(address).is_none() {
                return Err(Error::Invalid(format!("{address:?} is not a host:port address")));
            }
        }
        Ok(Self {
            addresses,
            current: 0,
            channel: None,
            timeout,
            transaction: None,
            proof: Vec::new(),
            consistency: Consistency::Linearizable,
        })
    }

    /// The address of the node in use.
    pub fn address(&self) -> &str {
        &self.addresses[self.current]
    }

    /// The session's open transaction, if any.
    pub fn transaction(&self) -> Option<&Transaction> {
        self.transaction.as_ref()
    }

    /// A connected channel, trying each address in turn from the current one.
    async fn channel(&mut self) -> Result<Channel, Error> {
        if let Some(channel) = &self.channel {
            return Ok(channel.clone());
        }
        let mut failures = Vec::new();
        for offset in 0..self.addresses.len() {
            let index = (self.current + offset) % self.addresses.len();
            let address = &self.addresses[index];
            let Some(endpoint) = crate::server::endpoint(address) else { continue };
            match endpoint.timeout(self.timeout).connect().await {
                Ok(channel) => {
                    self.current = index;
                    self.channel = Some(channel.clone());
                    return Ok(channel);
                }
                Err(error) => failures.push(format!("{address}: {error}")),
            }
        }
        Err(Error::Unreachable(failures.join("; ")))
    }

    /// Forgets the connection and moves to the next address.
    fn next_node(&mut self) {
        self.channel = None;
        self.current = (self.current + 1) % self.addresses.len();
    }

    /// Runs one request: on another node if this one cannot be reached, and for requests that
    /// only read also if it fails in any way that says the node is unavailable.
    async fn call<T, F, Fut>(&mut self, read_only: bool, mut request: F) -> Result<T, Error>
    where
        F: FnMut(Channel) -> Fut,
        Fut: std::future::Future<Output = Result<T, tonic::Status>>,
    {
        let mut last = None;
        for _ in 0..self.addresses.len() {
            let channel = self.channel().await?;
            match request(channel).await {
                Ok(value) => return Ok(value),
                Err(status) => {
                    let error = Error::from_status(status.clone(), !read_only);
                    let retry = never_sent(&status)
                        || matches!(error, Error::Unavailable(_))
                        || (read_only && status.code() == tonic::Code::Unavailable);
                    if !retry {
                        return Err(error);
                    }
                    last = Some(error);
                    self.next_node();
                }
            }
        }
        Err(last.unwrap_or_else(|| Error::Unreachable("no node answered".into())))
    }

    /// Runs a script in the session. Statement errors are results, not `Err`.
    pub async fn execute(&mut self, sql: &str, continue_on_error: bool) -> Result<Response, Error> {
        let request = Request {
            sql: sql.to_string(),
            consistency: self.consistency,
            transaction: self.transaction.clone(),
            proof: self.proof.clone(),
            continue_on_error,
        };
        let message = pb::ExecuteRequest::from(&request);
        let timeout = self.timeout;
        let response = self
            .call(false, |channel| {
                let mut client = pb::sql_client::SqlClient::new(channel);
                let mut request = tonic::Request::new(message.clone());
                request.set_timeout(timeout);
                async move { client.execute(request).await.map(|r| r.into_inner()) }
            })
            .await?;
        let response = Response::from(response);
        self.transaction = response.transaction.clone();
        self.proof = response.proof.clone();
        Ok(response)
    }

    /// Admin calls, each on the node in use (or the next reachable one).
    async fn admin<T, F, Fut>(&mut self, read_only: bool, call: F) -> Result<T, Error>
    where
        F: Fn(pb::admin_client::AdminClient<Channel>) -> Fut,
        Fut: std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        self.call(read_only, |channel| {
            let future = call(pb::admin_client::AdminClient::new(channel));
            async move { future.await.map(tonic::Response::into_inner) }
        })
        .await
    }

    /// The status of the node in use.
    pub async fn status(&mut self) -> Result<pb::NodeStatus, Error> {
        self.admin(true, |mut c| async move { c.status(pb::StatusRequest {}).await }).await
    }

    /// Every member's status as the node in use sees it.
    pub async fn cluster_status(&mut self) -> Result<Vec<pb::NodeStatus>, Error> {
        let response = self
            .admin(true, |mut c| async move { c.cluster_status(pb::ClusterStatusRequest {}).await })
            .await?;
        Ok(response.nodes)
    }

    /// The tables and their row counts on the node in use.
    pub async fn list_tables(&mut self) -> Result<pb::ListTablesResponse, Error> {
        self.admin(true, |mut c| async move { c.list_tables(pb::ListTablesRequest {}).await }).await
    }

    /// A page of a table's rows as stored on the node in use.
    pub async fn scan_table(
        &mut self,
        table: &str,
        offset: u64,
        limit: u64,
    ) -> Result<pb::ScanTableResponse, Error> {
        let request = pb::ScanTableRequest { table: table.to_string(), offset, limit };
        self.admin(true, |mut c| {
            let request = request.clone();
            async move { c.scan_table(request).await }
        })
        .await
    }

    /// The newest `count` entries of the Raft log of the node in use.
    pub async fn log_tail(&mut self, count: u64) -> Result<pb::LogTailResponse, Error> {
        self.admin(true, |mut c| async move { c.log_tail(pb::LogTailRequest { count }).await })
            .await
    }

    /// Adds node `id`, serving at `address`, as a learner.
    pub async fn add_learner(
        &mut self,
        id: u64,
        address: &str,
    ) -> Result<pb::MembershipResponse, Error> {
        let request = pb::AddLearnerRequest { id, address: address.to_string() };
        self.admin(false, |mut c| {
            let request = request.clone();
            async move { c.add_learner(request).await }
        })
        .await
    }

    /// Makes learner `id` a voter.
    pub async fn promote(&mut self, id: u64) -> Result<pb::MembershipResponse, Error> {
        self.admin(false, |mut c| async move { c.promote(pb::PromoteRequest { id }).await }).await
    }

    /// Removes node `id` from the cluster.
    pub async fn remove_node(&mut self, id: u64) -> Result<pb::MembershipResponse, Error> {
        self.admin(false, |mut c| async move { c.remove_node(pb::RemoveNodeRequest { id }).await })
            .await
    }

    /// Hands leadership to node `to`; returns the leader afterwards.
    pub async fn transfer_leadership(&mut self, to: u64) -> Result<u64, Error> {
        let response = self
            .admin(false, |mut c| async move {
                c.transfer_leadership(pb::TransferLeadershipRequest { to }).await
            })
            .await?;
        Ok(response.leader)
    }

    /// The status and event stream of the node in use.
    pub async fn watch(&mut self) -> Result<tonic::Streaming<pb::WatchEvent>, Error> {
        self.admin(true, |mut c| async move { c.watch(pb::WatchRequest {}).await }).await
    }
}
