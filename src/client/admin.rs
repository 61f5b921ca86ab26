//! The client's Admin calls: status, data inspection, membership, statement statistics and
//! the event stream, each on the node in use (or the next reachable one); and an edge's
//! `Sql.Ingest`.

use super::{Client, Error};
use crate::grpc::{pb, wire};

impl Client {
    /// Admin calls, each on the node in use (or the next reachable one).
    async fn admin<T, F, Fut>(&mut self, read_only: bool, call: F) -> Result<T, Error>
    where
        F: Fn(pb::admin_client::AdminClient<wire::Authenticated>) -> Fut,
        Fut: std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        let (timeout, credentials) = (self.timeout, self.credentials());
        self.call(read_only, |channel| {
            let future = call(wire::admin_client(channel, credentials.clone()));
            async move {
                match tokio::time::timeout(timeout, future).await {
                    Ok(result) => result.map(tonic::Response::into_inner),
                    Err(_) => Err(tonic::Status::deadline_exceeded(format!(
                        "no answer within {timeout:?}"
                    ))),
                }
            }
        })
        .await
    }

    /// Logs in as `user`: the node checks the password and returns a token, which every call
    /// of this client (and of its siblings) carries from then on.
    pub async fn login(&mut self, user: &str, password: &str) -> Result<(), Error> {
        let request = pb::LoginRequest { user: user.to_string(), password: password.to_string() };
        let response = self
            .admin(true, |mut c| {
                let request = request.clone();
                async move { c.login(request).await }
            })
            .await?;
        self.user_token = Some(response.token);
        Ok(())
    }

    /// Sends a batch of an edge's outbox (`Sql.Ingest`); returns the highest sequence number of
    /// the edge the cluster holds. Safe to send again: rows held already are skipped.
    pub async fn ingest(&mut self, request: pb::IngestRequest) -> Result<u64, Error> {
        let (timeout, credentials) = (self.timeout, self.credentials());
        let response = self
            .call(false, |channel| {
                let mut client = wire::sql_client(channel, credentials.clone());
                let request = request.clone();
                async move {
                    match tokio::time::timeout(timeout, client.ingest(request)).await {
                        Ok(result) => result.map(tonic::Response::into_inner),
                        Err(_) => Err(tonic::Status::deadline_exceeded(format!(
                            "no answer within {timeout:?}"
                        ))),
                    }
                }
            })
            .await?;
        Ok(response.through)
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

    /// A page of a table's rows as stored on the node in use (at most `limit` rows, and a
    /// page stops at a few megabytes).
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
        let token = self.admin_token.clone();
        self.admin(false, |mut c| {
            let request = admin_request(request.clone(), token.as_deref());
            async move { c.add_learner(request?).await }
        })
        .await
    }

    /// Makes learner `id` a voter.
    pub async fn promote(&mut self, id: u64) -> Result<pb::MembershipResponse, Error> {
        let token = self.admin_token.clone();
        self.admin(false, |mut c| {
            let request = admin_request(pb::PromoteRequest { id }, token.as_deref());
            async move { c.promote(request?).await }
        })
        .await
    }

    /// Removes node `id` from the cluster.
    pub async fn remove_node(&mut self, id: u64) -> Result<pb::MembershipResponse, Error> {
        let token = self.admin_token.clone();
        self.admin(false, |mut c| {
            let request = admin_request(pb::RemoveNodeRequest { id }, token.as_deref());
            async move { c.remove_node(request?).await }
        })
        .await
    }

    /// Hands leadership to node `to`; returns the leader afterwards.
    pub async fn transfer_leadership(&mut self, to: u64) -> Result<u64, Error> {
        let token = self.admin_token.clone();
        let response = self
            .admin(false, |mut c| {
                let request = admin_request(pb::TransferLeadershipRequest { to }, token.as_deref());
                async move { c.transfer_leadership(request?).await }
            })
            .await?;
        Ok(response.leader)
    }

    /// The statistics of the statements the node in use served, by fingerprint.
    pub async fn statement_statistics(&mut self) -> Result<pb::StatementStatisticsResponse, Error> {
        self.admin(true, |mut c| async move {
            c.statement_statistics(pb::StatementStatisticsRequest {}).await
        })
        .await
    }

    /// Streams a backup of the cluster's data as of `as_of` (now if 0) into `out`; returns
    /// the version it is as of and its record count. Fails (with part of the file written)
    /// if the stream ends before the backup is complete.
    pub async fn backup(
        &mut self,
        as_of: u64,
        out: &mut (dyn std::io::Write + Send),
    ) -> Result<(u64, u64), Error> {
        let mut stream = self
            .admin(true, |mut c| async move { c.backup(pb::BackupRequest { as_of }).await })
            .await?;
        loop {
            let chunk = stream
                .message()
                .await
                .map_err(|status| Error::from_status(status, false))?
                .ok_or_else(|| Error::Unavailable("the backup stream ended early".into()))?;
            out.write_all(&chunk.data)
                .map_err(|e| Error::Invalid(format!("cannot write the backup: {e}")))?;
            if chunk.done {
                return Ok((chunk.version, chunk.records));
            }
        }
    }

    /// The status and event stream of the node in use.
    pub async fn watch(&mut self) -> Result<tonic::Streaming<pb::WatchEvent>, Error> {
        let credentials = self.credentials();
        self.call(true, |channel| {
            let credentials = credentials.clone();
            async move {
                wire::admin_client(channel, credentials)
                    .watch(pb::WatchRequest {})
                    .await
                    .map(tonic::Response::into_inner)
            }
        })
        .await
    }
}

/// A request carrying the admin token, if there is one.
fn admin_request<T>(message: T, token: Option<&str>) -> Result<tonic::Request<T>, tonic::Status> {
    let request = tonic::Request::new(message);
    match token {
        Some(token) => wire::with_admin_token(request, token),
        None => Ok(request),
    }
}
