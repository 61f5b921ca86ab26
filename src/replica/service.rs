//! A replica as a service: what serving scripts shares across requests (the consensus, the
//! database the state machine applies to, the session key, transaction use, query permits) and
//! [`Replica::run`], the entry for a script, which checks the request and hands it to
//! `serve.rs`.

use super::activity::Activity;
use super::consensus::{Consensus, Error};
use super::observe::{StatementObserver, Unobserved};
use super::proof;
use super::serve::Output;
use super::state::{SharedDatabase, read_database};
use super::{Chunk, Response, Settings};
use crate::sql::Database;
use crate::sql::budget::Limits;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;
use tokio::sync::{Semaphore, watch};
use tokio_stream::Stream;

/// How a replica serves requests.
#[derive(Clone, Copy, Debug)]
pub struct ServeOptions {
    /// How long a request may wait for a commit, a read barrier or a query permit.
    pub request_timeout: Duration,
    /// How long a query may run.
    pub query_timeout: Duration,
    /// How many queries may run at once (more wait, up to the request timeout).
    pub max_queries: usize,
    /// What one statement may write and hold.
    pub statement_limits: Limits,
}

/// A replica of the SQL database, serving scripts on top of a [`Consensus`].
pub struct Replica<C> {
    pub(super) consensus: Arc<C>,
    pub(super) database: SharedDatabase,
    /// The state machine's position (see [`super::StateMachine::position`]).
    pub(super) position: Arc<AtomicU64>,
    pub(super) session_key: watch::Receiver<Option<Arc<Vec<u8>>>>,
    pub(super) activity: Arc<Activity>,
    pub(super) queries: Arc<Semaphore>,
    pub(super) options: ServeOptions,
    pub(super) stopping: watch::Receiver<bool>,
    /// Told of every statement served.
    pub(super) observer: Arc<dyn StatementObserver>,
}

impl<C: Consensus> Replica<C> {
    /// A replica serving the state machine's `database` and `position` (as it applies the
    /// log) on `consensus`. `session_key` is the cluster's session key once the log has set it;
    /// `activity` records the transactions its clients use; `stopping` turns true when the
    /// node begins to stop.
    pub fn new(
        consensus: Arc<C>,
        (database, position): (SharedDatabase, Arc<AtomicU64>),
        session_key: watch::Receiver<Option<Arc<Vec<u8>>>>,
        activity: Arc<Activity>,
        options: ServeOptions,
        stopping: watch::Receiver<bool>,
    ) -> Self {
        let queries = Arc::new(Semaphore::new(options.max_queries));
        let observer = Arc::new(Unobserved);
        Self {
            consensus,
            database,
            position,
            session_key,
            activity,
            queries,
            options,
            stopping,
            observer,
        }
    }

    /// The same replica, telling `observer` of every statement it serves.
    pub fn with_observer(mut self, observer: Arc<dyn StatementObserver>) -> Self {
        self.observer = observer;
        self
    }

    /// Runs a script (see the module docs): `first` is its first piece, `input` the rest.
    /// Everything, including a refusal of the whole request, goes to `out`.
    pub async fn run(
        self: &Arc<Self>,
        settings: Settings,
        first: Chunk,
        input: impl Stream<Item = Result<Chunk, Error>> + Unpin + Send,
        out: Output,
    ) {
        if let Err(error) = self.consensus.running() {
            let _ = out.send(vec![Response::Refused(error)]).await;
            return;
        }
        if let Some(txn) = &settings.transaction {
            let verified = match self.session_key().await {
                Ok(key) => {
                    let holder = (settings.client, settings.principal.name());
                    proof::verify(&key, txn, holder, &settings.proof)
                }
                Err(error) => {
                    let _ = out.send(vec![Response::Refused(error)]).await;
                    return;
                }
            };
            if !verified {
                let error = Error::InvalidRequest(
                    "the session's transaction was not issued by this cluster to this client (or was altered); start a new session".into(),
                );
                let _ = out.send(vec![Response::Refused(error)]).await;
                return;
            }
        }
        super::serve::run_script(self.clone(), settings, first, input, out).await;
    }

    /// The current database.
    pub fn database(&self) -> Arc<Database> {
        read_database(&self.database)
    }

    /// The session signing key, waiting (up to the request timeout) for a new cluster's first
    /// leader to set it.
    pub(super) async fn session_key(&self) -> Result<Arc<Vec<u8>>, Error> {
        let mut key = self.session_key.clone();
        let wait = key.wait_for(Option::is_some);
        match tokio::time::timeout(self.options.request_timeout, wait).await {
            Ok(Ok(key)) => key.clone().ok_or_else(|| self.stopped()),
            Ok(Err(_)) => Err(self.stopped()),
            Err(_) => Err(Error::Unavailable(
                "the cluster has not set its session key yet (no leader has committed one)".into(),
            )),
        }
    }

    /// A permit to run a query, waiting (up to the request timeout) while `max_queries` run.
    pub(super) async fn query_permit(&self) -> Result<tokio::sync::OwnedSemaphorePermit, Error> {
        let wait = self.queries.clone().acquire_owned();
        match tokio::time::timeout(self.options.request_timeout, wait).await {
            Ok(Ok(permit)) => Ok(permit),
            Ok(Err(_)) => Err(self.stopped()),
            Err(_) => Err(Error::Unavailable(format!(
                "the node is busy: {} queries are running (--max-queries) and none finished within {:?}",
                self.options.max_queries, self.options.request_timeout
            ))),
        }
    }

    /// The error for a replica that is stopping.
    fn stopped(&self) -> Error {
        match self.consensus.running() {
            Err(error) => error,
            Ok(()) => Error::Unavailable("the node is shutting down".into()),
        }
    }
}
