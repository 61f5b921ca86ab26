//! The gRPC services of a node (Sql and Raft here, Admin in `admin.rs`) and the server that
//! hosts them, with the standard health service, on one port.

use super::context::Context;
use super::driver::Input;
use crate::encoding::value as codec;
use crate::grpc::{convert, pb};
use crate::raft::{Envelope, NodeId};
use crate::replica::{Chunk, Replica, ServeOptions};
use std::sync::Arc;
use std::time::Instant;
use tonic::{Request, Response, Status, Streaming};

/// Serves every service on `listener` until `shutdown` fires.
pub fn serve(
    cx: Arc<Context>,
    listener: tokio::net::TcpListener,
    shutdown: tokio::sync::oneshot::Receiver<()>,
) -> tokio::task::JoinHandle<()> {
    let (health_reporter, health) = tonic_health::server::health_reporter();
    let id = cx.id();
    let tls = cx.opts.tls.clone();
    let limit = super::transport::MAX_MESSAGE_BYTES;
    let metrics = super::grpc_metrics::GrpcMetricsLayer { metrics: cx.metrics.clone() };
    let router = tonic::transport::Server::builder()
        .tcp_nodelay(true)
        .layer(metrics)
        .add_service(health)
        .add_service(
            pb::sql_server::SqlServer::new(SqlService::new(&cx))
                .max_decoding_message_size(limit)
                .max_encoding_message_size(limit),
        )
        .add_service(
            pb::raft_server::RaftServer::new(RaftService { cx: cx.clone() })
                .max_decoding_message_size(limit)
                .max_encoding_message_size(limit),
        )
        .add_service(
            pb::admin_server::AdminServer::new(super::admin::AdminService::new(cx))
                .max_decoding_message_size(limit)
                .max_encoding_message_size(limit),
        );
    tokio::spawn(async move {
        health_reporter.set_serving::<pb::sql_server::SqlServer<SqlService>>().await;
        let shutdown = async {
            let _ = shutdown.await;
        };
        let stopped = match tls {
            #[cfg(not(feature = "tls"))]
            Some(tls) => match tls {},
            #[cfg(feature = "tls")]
            Some(tls) => {
                let incoming = super::tls::incoming(listener, &tls);
                router.serve_with_incoming_shutdown(incoming, shutdown).await
            }
            None => router.serve_with_incoming_shutdown(plain_incoming(listener), shutdown).await,
        };
        if let Err(error) = stopped {
            tracing::error!(id, "gRPC server failed: {error}");
        }
    })
}

/// The plain TCP connections accepted on `listener`.
fn plain_incoming(
    listener: tokio::net::TcpListener,
) -> impl tokio_stream::Stream<Item = std::io::Result<tokio::net::TcpStream>> {
    // Accepted sockets get TCP_NODELAY here: tonic sets it only on listeners it binds itself,
    // and a streamed reply is several small writes that Nagle's algorithm would hold back
    // for the peer's delayed acknowledgement (40 ms each).
    tokio_stream::StreamExt::map(
        tokio_stream::wrappers::TcpListenerStream::new(listener),
        |accepted| {
            accepted.inspect(|socket| {
                if let Err(error) = socket.set_nodelay(true) {
                    tracing::debug!("cannot set TCP_NODELAY: {error}");
                }
            })
        },
    )
}

/// The client SQL service: this node's replica, on Raft.
pub struct SqlService {
    replica: Arc<Replica<Context>>,
    cx: Arc<Context>,
}

impl SqlService {
    fn new(cx: &Arc<Context>) -> Self {
        let options = ServeOptions {
            request_timeout: cx.opts.request_timeout,
            query_timeout: cx.opts.query_timeout,
            max_queries: cx.opts.max_queries.max(1),
            statement_limits: cx.opts.statement_limits,
        };
        let replica = Replica::new(
            cx.clone(),
            (cx.db.clone(), cx.position.clone()),
            cx.session_key.clone(),
            cx.activity.clone(),
            options,
            cx.stopping.subscribe(),
        )
        .with_observer(Arc::new(super::statements::NodeObserver::new(
            cx.metrics.clone(),
            cx.statistics.clone(),
            cx.opts.slow_statement,
            cx.db.clone(),
        )));
        Self { replica: Arc::new(replica), cx: cx.clone() }
    }
}

/// How many result messages wait for a slow client before the script waits.
const RESULTS_AHEAD: usize = 4;

type RunStream = std::pin::Pin<
    Box<dyn tokio_stream::Stream<Item = Result<pb::RunResponse, Status>> + Send + 'static>,
>;

#[tonic::async_trait]
impl pb::sql_server::Sql for SqlService {
    type RunStream = RunStream;

    async fn run(
        &self,
        request: Request<Streaming<pb::RunRequest>>,
    ) -> Result<Response<Self::RunStream>, Status> {
        let principal = super::auth::principal(&self.cx, &request, "Sql.Run")?;
        let mut input = request.into_inner();
        let first = input
            .message()
            .await?
            .ok_or_else(|| Status::invalid_argument("an empty request: no settings, no script"))?;
        let mut settings = crate::grpc::convert::settings(first.settings);
        settings.principal = principal;
        let (results, stream) = tokio::sync::mpsc::channel(RESULTS_AHEAD);
        let replica = self.replica.clone();
        let input = tokio_stream::StreamExt::map(input, |piece| {
            use crate::replica::Error as E;
            let status = match piece {
                Ok(piece) => return Ok(Chunk { text: piece.sql, last: piece.end }),
                Err(status) => status,
            };
            let message = format!("the script's stream broke: {}", status.message());
            // A connection that went away leaves nothing run past it; a message this node
            // cannot take would fail the same way anywhere.
            Err(match status.code() {
                tonic::Code::Cancelled | tonic::Code::Unavailable | tonic::Code::Unknown => {
                    E::Unavailable(message)
                }
                _ => E::InvalidRequest(message),
            })
        });
        let first = Chunk { text: first.sql, last: first.end };
        tokio::spawn(async move { replica.run(settings, first, input, results).await });
        // The response's headers leave with its first statement's responses, in one write: most
        // calls are one short statement, and a separate write for the headers would cost a
        // system call.
        let mut batches = stream;
        let first = batches.recv().await.unwrap_or_default();
        Ok(Response::new(Box::pin(RunResponses { batches, ready: first.into_iter() })))
    }

    async fn ingest(
        &self,
        request: Request<pb::IngestRequest>,
    ) -> Result<Response<pb::IngestResponse>, Status> {
        let principal = super::auth::principal(&self.cx, &request, "Sql.Ingest")?;
        let limits = self.cx.opts.statement_limits;
        let ingest = super::edge::ingest_command(request.into_inner(), principal.caller(), limits)?;
        let through = super::edge::ingest(&self.cx, ingest).await?;
        Ok(Response::new(pb::IngestResponse { through }))
    }
}

/// A replica's batches of responses as the stream of `Sql.Run` messages.
struct RunResponses {
    batches: tokio::sync::mpsc::Receiver<Vec<crate::replica::Response>>,
    ready: std::vec::IntoIter<crate::replica::Response>,
}

impl tokio_stream::Stream for RunResponses {
    type Item = Result<pb::RunResponse, Status>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        use std::task::Poll;
        loop {
            if let Some(response) = self.ready.next() {
                return Poll::Ready(Some(convert::run_response(response)));
            }
            match self.batches.poll_recv(cx) {
                Poll::Ready(Some(batch)) => self.ready = batch.into_iter(),
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

/// The node-to-node service. Every call must carry a valid peer token (`auth.rs`); others
/// are refused with `unauthenticated`, logged with the caller's address, and change nothing.
/// Proposals and transaction activity come only from members. Messages and state transfers
/// come from any node of the cluster, as a node whose configuration lags must still hear the
/// leader of a newer one; the Raft core ignores elections from outside its configuration.
pub struct RaftService {
    cx: Arc<Context>,
}

impl RaftService {
    /// The member a call proves it comes from, for calls only members make (proposals and
    /// transaction activity go to the leader, whose configuration is the newest).
    fn authenticate_member<T>(&self, request: &Request<T>, call: &str) -> Result<NodeId, Status> {
        let peer = self.authenticate(request, call)?;
        if !self.cx.state.borrow().raft.config.contains(peer) {
            let from = super::auth::remote(request);
            tracing::warn!(%from, peer, call, "refused a Raft call from a node that is not a member");
            return Err(Status::unauthenticated(format!(
                "Raft.{call} is for the members of this cluster, and node {peer} is not one"
            )));
        }
        Ok(peer)
    }

    /// The node a call proves it comes from: its peer token, and with TLS on, the node
    /// certificate of its connection too (they must name the same node).
    fn authenticate<T>(&self, request: &Request<T>, call: &str) -> Result<NodeId, Status> {
        let from = super::auth::remote(request);
        let peer = match self.cx.secret.peer_of(request.metadata()) {
            Some(peer) if peer != self.cx.id() => peer,
            _ => {
                tracing::warn!(%from, call, "refused a Raft call without this cluster's credentials");
                return Err(Status::unauthenticated(format!(
                    "Raft.{call} is for the nodes of this cluster, and the call carries no valid credentials"
                )));
            }
        };
        if self.cx.opts.tls.is_some() {
            let certified = request.extensions().get::<super::tls::TlsPeer>().and_then(|p| p.node);
            if certified != Some(peer) {
                let shown = certified.map_or("no node certificate".into(), |n| {
                    format!("a certificate for node {n}")
                });
                tracing::warn!(%from, call, peer, "refused a Raft call claiming node {peer} with {shown}");
                return Err(Status::unauthenticated(format!(
                    "Raft.{call} from node {peer} needs node {peer}'s certificate, and the connection presented {shown}"
                )));
            }
        }
        Ok(peer)
    }
}

#[tonic::async_trait]
impl pb::raft_server::Raft for RaftService {
    async fn step(
        &self,
        request: Request<Streaming<pb::RaftBatch>>,
    ) -> Result<Response<pb::StepResponse>, Status> {
        let peer = self.authenticate(&request, "Step")?;
        if let Some(from) =
            request.metadata().get(super::transport::FROM_HEADER).and_then(|v| v.to_str().ok())
            && from.split_once('=').is_some_and(|(id, _)| id == peer.to_string())
        {
            super::transport::learn_address(self.cx.transport.addresses(), from);
        }
        let header = request.metadata().get(super::compression::HEADER);
        if header.is_some_and(|v| {
            v.to_str().is_ok_and(|v| v.split(',').any(|c| c.trim() == super::compression::LZ4))
        }) {
            self.cx.transport.peer_reads_compressed(peer);
        }
        let mut stream = request.into_inner();
        // One stop signal for the stream's life, not one per batch (this is the replication
        // path).
        let stopping = self.cx.until_stopping();
        tokio::pin!(stopping);
        loop {
            let batch = tokio::select! {
                batch = stream.message() => batch?,
                _ = &mut stopping => {
                    return Err(Status::unavailable("the node is stopping"));
                }
            };
            let Some(batch) = batch else { break };
            let limit = super::transport::MAX_MESSAGE_BYTES;
            for (i, bytes) in batch.messages.into_iter().enumerate() {
                let compressed = batch.lz4.get(i).copied().unwrap_or(false);
                let bytes = match super::compression::unpack(bytes, compressed, limit) {
                    Ok(bytes) => bytes,
                    Err(error) => {
                        tracing::warn!(peer, "dropped a message: {error}");
                        continue;
                    }
                };
                match codec::decode::<Envelope>(&bytes) {
                    Ok(envelope) if envelope.from != peer => {
                        tracing::warn!(
                            peer,
                            from = envelope.from,
                            "dropped a message sent in another node's name"
                        )
                    }
                    Ok(envelope) if envelope.to == self.cx.id() => {
                        self.cx.send(Input::Step(envelope))?;
                    }
                    Ok(envelope) => {
                        tracing::warn!(to = envelope.to, "dropped a message meant for another node")
                    }
                    Err(error) => tracing::warn!("dropped an undecodable message: {error}"),
                }
            }
        }
        Ok(Response::new(pb::StepResponse {}))
    }

    async fn install_snapshot(
        &self,
        request: Request<Streaming<pb::SnapshotChunk>>,
    ) -> Result<Response<pb::InstallSnapshotResponse>, Status> {
        let peer = self.authenticate(&request, "InstallSnapshot")?;
        self.cx.check_running()?;
        let index = super::snapshot::receive(&self.cx, peer, request.into_inner()).await?;
        Ok(Response::new(pb::InstallSnapshotResponse { index }))
    }

    type ForwardStream = tokio_stream::wrappers::ReceiverStream<Result<pb::ForwardResults, Status>>;

    async fn forward(
        &self,
        request: Request<Streaming<pb::ForwardBatch>>,
    ) -> Result<Response<Self::ForwardStream>, Status> {
        let peer = self.authenticate_member(&request, "Forward")?;
        let results = super::forward::serve(self.cx.clone(), peer, request.into_inner());
        Ok(Response::new(tokio_stream::wrappers::ReceiverStream::new(results)))
    }

    async fn touch(
        &self,
        request: Request<pb::TouchRequest>,
    ) -> Result<Response<pb::TouchResponse>, Status> {
        self.authenticate_member(&request, "Touch")?;
        self.cx.activity.record(&request.get_ref().transactions, Instant::now());
        Ok(Response::new(pb::TouchResponse {}))
    }
}
