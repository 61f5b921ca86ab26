//! Starting and stopping a node, and its status.

use super::applier::{Applier, run_flusher};
use super::auth::ClusterSecret;
use super::context::Context;
use super::driver::{Compaction, DriverState, DriverThread, NodeEvent, NodeHost};
use super::files::DataDir;
use super::metrics::{MeteredDisk, Metrics};
use super::transport::{Addresses, Transport};
use super::{Error, admin, background, services};
use crate::grpc::pb;
use crate::raft::{
    self, Configuration, FileDisk, Index, LogStore, NodeId, PeerStatus, Role, SnapshotMeta,
};
use crate::replica::activity::Activity;
use crate::replica::{Meta, StateMachine};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};
use tokio::sync::{broadcast, watch};

/// How long a stopping node lets in-flight requests finish.
const SHUTDOWN_GRACE: Duration = Duration::from_millis(500);

/// How long a stopping node waits for its threads. An entry still being applied after this
/// is left to the next start, which replays it from the log (stopping then is as safe as a
/// crash, and nothing acknowledged is lost).
const THREADS_GRACE: Duration = Duration::from_secs(3);

/// A node's settings.
#[derive(Clone, Debug)]
pub struct Options {
    /// This node's id (non-zero, unique in the cluster).
    pub id: NodeId,
    /// The address to serve on (`host:port`; port 0 picks a free one).
    pub listen: String,
    /// The other members' addresses. With none, the node is a one-node cluster.
    pub peers: BTreeMap<NodeId, String>,
    /// Where the node keeps its data.
    pub data_dir: PathBuf,
    /// Join an existing cluster (wait to be added) instead of forming one with `peers`.
    pub join: bool,
    /// The cluster's secret, if given (`--cluster-secret-file`). Without it the node uses the
    /// one in its data directory, or makes one if it forms a cluster alone.
    pub cluster_secret: Option<ClusterSecret>,
    /// The length of a Raft tick.
    pub tick: Duration,
    /// The base election timeout in ticks.
    pub election_ticks: raft::Ticks,
    /// How long a request may wait for a leader, a commit or a read barrier.
    pub request_timeout: Duration,
    /// How long a query may run before it is cancelled.
    pub query_timeout: Duration,
    /// How many queries may run at once (more wait, up to the request timeout).
    pub max_queries: usize,
    /// What one statement may write and hold in memory. Written into each command this node
    /// proposes, so every replica enforces the same limits on it.
    pub statement_limits: crate::sql::budget::Limits,
    /// How long a transaction may go unused before it is rolled back.
    pub transaction_timeout: Duration,
    /// Entries applied past the log's start that trigger a flush and compaction.
    pub snapshot_entries: u64,
    /// Bytes of entries in the log that trigger a flush and compaction.
    pub snapshot_bytes: usize,
    /// How often the leader garbage-collects old versions.
    pub gc_interval: Duration,
    /// How long old versions stay readable.
    pub gc_retention: Duration,
    /// Where to serve Prometheus metrics over HTTP (`host:port`, at `/metrics`); none: not
    /// served.
    pub metrics_listen: Option<String>,
    /// Statements served here that take at least this long are logged with their plan (none:
    /// not logged).
    pub slow_statement: Option<Duration>,
    /// TLS for clients and peers (mutual between peers); none: plain TCP.
    pub tls: Option<super::tls::NodeTls>,
    /// A backup to start a new cluster from (the data directory must be empty).
    pub restore: Option<PathBuf>,
    /// The SQL store's page cache: more keeps a larger working set (rollup state, the pages
    /// inserts land on) in memory; the node's memory grows by as much.
    pub store_cache_bytes: usize,
    /// Forward tables to an upstream cluster (`--upstream`, `--forward`); none: not an edge.
    pub edge: Option<super::edge::EdgeOptions>,
}

impl Options {
    /// Defaults for node `id` serving on `listen` with data in `data_dir`.
    pub fn new(id: NodeId, listen: impl Into<String>, data_dir: impl Into<PathBuf>) -> Self {
        Self {
            id,
            listen: listen.into(),
            peers: BTreeMap::new(),
            data_dir: data_dir.into(),
            join: false,
            cluster_secret: None,
            tick: super::TICK_INTERVAL,
            election_ticks: super::ELECTION_TICKS,
            request_timeout: super::REQUEST_TIMEOUT,
            query_timeout: super::QUERY_TIMEOUT,
            max_queries: super::MAX_QUERIES,
            statement_limits: super::STATEMENT_LIMITS,
            transaction_timeout: super::TRANSACTION_TIMEOUT,
            snapshot_entries: super::SNAPSHOT_ENTRIES,
            snapshot_bytes: super::SNAPSHOT_BYTES,
            gc_interval: super::GC_INTERVAL,
            gc_retention: super::GC_RETENTION,
            metrics_listen: None,
            slow_statement: None,
            tls: None,
            restore: None,
            store_cache_bytes: crate::storage::REDB_CACHE_BYTES,
            edge: None,
        }
    }
}

/// A node's status, as the Admin service reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeStatus {
    /// The node.
    pub id: NodeId,
    /// Where it serves.
    pub address: String,
    /// Its Raft role.
    pub role: Role,
    /// Whether it is a learner (a non-voting member).
    pub learner: bool,
    /// Its term.
    pub term: raft::Term,
    /// The leader it knows of.
    pub leader: Option<NodeId>,
    /// Whom it voted for in this term.
    pub voted_for: Option<NodeId>,
    /// The first index in its log.
    pub first_index: Index,
    /// Its last index.
    pub last_index: Index,
    /// Its commit index.
    pub commit_index: Index,
    /// What its state machine has applied.
    pub applied_index: Index,
    /// The index its log starts after.
    pub snapshot_index: Index,
    /// On the leader: each other member's replication (last contact in milliseconds).
    pub peers: BTreeMap<NodeId, PeerStatus>,
    /// The members and their addresses (`true`: voter).
    pub members: Vec<(NodeId, String, bool)>,
    /// Time since it started.
    pub uptime: Duration,
    /// Bytes in its data directory.
    pub data_bytes: u64,
    /// The 99th percentile of its log's recent fsyncs, if there were any.
    pub fsync_p99: Option<Duration>,
    /// Why it stopped serving, if it did.
    pub halted: Option<String>,
    /// How far forwarding upstream has come, if the cluster is an edge.
    pub edge: Option<crate::grpc::pb::EdgeStatus>,
}

/// A running node.
pub struct Node {
    cx: Arc<Context>,
    address: std::net::SocketAddr,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<()>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Node {
    /// Starts a node: recovers its log and state, binds its port and joins the cluster.
    pub async fn start(opts: Options) -> Result<Node, Error> {
        if opts.id == 0 {
            return Err(Error::Config("node ids start at 1".into()));
        }
        if opts.peers.contains_key(&opts.id) {
            return Err(Error::Config(format!("node {} cannot be its own peer", opts.id)));
        }
        let listener = tokio::net::TcpListener::bind(&opts.listen)
            .await
            .map_err(|e| Error::Config(format!("cannot listen on {}: {e}", opts.listen)))?;
        let address = listener.local_addr().map_err(|e| Error::Io(e.to_string()))?;
        let metrics_listener =
            match &opts.metrics_listen {
                Some(listen) => Some(tokio::net::TcpListener::bind(listen).await.map_err(|e| {
                    Error::Config(format!("cannot serve metrics on {listen}: {e}"))
                })?),
                None => None,
            };
        let metrics = Arc::new(
            Metrics::new().map_err(|e| Error::Config(format!("cannot set up metrics: {e}")))?,
        );
        let opts_dir = opts.data_dir.clone();
        let (data, store, recovered, machine, generation, secret) = {
            let opts = opts.clone();
            let metrics = metrics.clone();
            tokio::task::spawn_blocking(move || recover(&opts, metrics))
                .await
                .map_err(|e| Error::Io(format!("recovery failed: {e}")))??
        };
        let data = Arc::new(data);
        let mut book = opts.peers.clone();
        book.insert(opts.id, address.to_string());
        for (id, recorded) in machine.addresses() {
            book.insert(*id, recorded.clone());
        }
        let addresses: Addresses = Arc::new(RwLock::new(book));
        let transport = Arc::new(Transport::new(
            opts.id,
            addresses.clone(),
            tokio::runtime::Handle::current(),
            secret.peer_credentials(opts.id),
            opts.tls.as_ref().map(|tls| tls.peers()),
            metrics.clone(),
        ));
        let mut raft_opts = raft::Options::new(opts.id);
        raft_opts.election_ticks = opts.election_ticks;
        raft_opts.seed = seed(opts.id);
        let node = raft::Node::new(raft_opts, recovered);
        let (inbox, inbox_rx) = std::sync::mpsc::channel();
        let (apply, apply_rx) = std::sync::mpsc::channel();
        let (flush, flush_rx) = std::sync::mpsc::channel();
        let (applied_tx, applied) = watch::channel(machine.applied());
        let (session_key_tx, session_key) =
            watch::channel(machine.session_key().map(|key| Arc::new(key.clone())));
        let initial = DriverState {
            raft: node.status(),
            snapshot_index: node.log().snapshot().index,
            halted: None,
        };
        let (state_tx, state) = watch::channel(initial);
        let (events, _) = broadcast::channel(256);
        let waiters = Arc::new(Mutex::new(BTreeMap::new()));
        let (db, position) = (machine.database(), machine.position());
        let applier = Applier {
            machine,
            work: apply_rx,
            waiters: waiters.clone(),
            applied: applied_tx,
            driver: inbox.clone(),
            data: data.clone(),
            generation,
            addresses: addresses.clone(),
            session_key: session_key_tx,
            flusher: flush,
        };
        let ticks = |duration: Duration| {
            (duration.as_millis() / opts.tick.as_millis().max(1)).max(1) as raft::Ticks
        };
        let host = NodeHost {
            transport: transport.clone(),
            apply,
            metrics: metrics.clone(),
            inbox: inbox.clone(),
            reads: BTreeMap::new(),
            events: Vec::new(),
            id: opts.id,
            term: node.term(),
            failed_reads: Vec::new(),
            handed: std::collections::VecDeque::new(),
        };
        let driver = DriverThread {
            driver: raft::Driver::new(node, store),
            host,
            data: data.clone(),
            inbox: inbox_rx,
            waiters,
            state: state_tx,
            events: events.clone(),
            tick: opts.tick,
            compaction: Compaction {
                entries: opts.snapshot_entries.max(1),
                bytes: opts.snapshot_bytes.max(1),
            },
            stalled_after: ticks(super::STALLED_AFTER),
            applied: applied.clone(),
            metrics: metrics.clone(),
        };
        let (flusher_inbox, flusher_data) = (inbox.clone(), data.clone());
        let threads = vec![
            spawn_thread("chronos-apply", move || applier.run())?,
            spawn_thread("chronos-flush", move || {
                run_flusher(flush_rx, flusher_data, flusher_inbox)
            })?,
            spawn_thread("chronos-raft", move || driver.run())?,
        ];
        let request_timeout = opts.request_timeout;
        let cx = Arc::new(Context {
            opts,
            secret,
            address: address.to_string(),
            inbox: Mutex::new(inbox),
            state,
            applied,
            session_key,
            db,
            position,
            transport,
            events,
            data,
            started: Instant::now(),
            activity: Arc::new(Activity::default()),
            stopping: watch::channel(false).0,
            receiving_snapshot: tokio::sync::Mutex::new(()),
            forwarder: super::forward::Forwarder::new(request_timeout),
            metrics,
            statistics: Arc::default(),
            forward_report: Default::default(),
        });
        let (shutdown, shutdown_rx) = tokio::sync::oneshot::channel();
        let server = services::serve(cx.clone(), listener, shutdown_rx);
        let mut tasks = background::spawn(cx.clone());
        tasks.extend(super::edge::spawn(&cx));
        if let Some(listener) = metrics_listener {
            tasks.push(super::metrics_http::serve(cx.clone(), listener));
        }
        tracing::info!(id = cx.id(), %address, data = %opts_dir.display(), "node started");
        Ok(Node { cx, address, shutdown: Some(shutdown), server: Some(server), tasks, threads })
    }

    /// The address the node serves on.
    pub fn address(&self) -> std::net::SocketAddr {
        self.address
    }

    /// The node's id.
    pub fn id(&self) -> NodeId {
        self.cx.id()
    }

    /// The node's status now.
    pub fn status(&self) -> NodeStatus {
        admin::node_status(&self.cx)
    }

    /// Events as they happen.
    pub fn events(&self) -> broadcast::Receiver<NodeEvent> {
        self.cx.events.subscribe()
    }

    /// Resolves when the node halts after a failure that could make it diverge.
    pub async fn halted(&self) -> String {
        let mut state = self.cx.state.clone();
        match state.wait_for(|s| s.halted.is_some()).await {
            Ok(state) => state.halted.clone().unwrap_or_default(),
            Err(_) => "the node stopped".into(),
        }
    }

    /// Stops gracefully: a leader first hands leadership to the most up-to-date voter (waiting
    /// at most an election timeout), then the node stops serving and its threads end.
    pub async fn stop(mut self) {
        super::admin::hand_over_leadership(&self.cx).await;
        self.shut_down().await;
    }

    /// Stops at once, as a crash would (minus losing unsynced writes: none are acknowledged).
    pub async fn kill(mut self) {
        self.shut_down().await;
    }

    async fn shut_down(&mut self) {
        tracing::info!(id = self.cx.id(), "stopping");
        self.cx.stopping.send_replace(true);
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        for task in self.tasks.drain(..) {
            task.abort();
        }
        if let Some(mut server) = self.server.take() {
            // A graceful stop waits for open connections, and peers keep their message streams
            // open: give in-flight requests a moment, then close everything.
            if tokio::time::timeout(SHUTDOWN_GRACE, &mut server).await.is_err() {
                server.abort();
            }
        }
        let _ = self.cx.send(super::driver::Input::Shutdown);
        let threads = std::mem::take(&mut self.threads);
        let joined = tokio::task::spawn_blocking(move || {
            for thread in threads {
                let _ = thread.join();
            }
        });
        if tokio::time::timeout(THREADS_GRACE, joined).await.is_err() {
            tracing::warn!(
                id = self.cx.id(),
                "stopping without waiting for the entry being applied: the next start replays it from the log"
            );
        }
        tracing::info!(id = self.cx.id(), "node stopped");
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.cx.stopping.send_replace(true);
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(server) = self.server.take() {
            server.abort();
        }
        for task in &self.tasks {
            task.abort();
        }
        let _ = self.cx.send(super::driver::Input::Shutdown);
    }
}

fn spawn_thread(
    name: &str,
    body: impl FnOnce() + Send + 'static,
) -> Result<std::thread::JoinHandle<()>, Error> {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(body)
        .map_err(|e| Error::Io(format!("cannot start thread {name}: {e}")))
}

/// A seed for election timeouts: different per node and per start.
fn seed(id: NodeId) -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    nanos ^ id.rotate_left(32)
}

/// What recovery returns: the data directory, the log, what the core starts from, the state
/// machine and the generation of its store.
type Recovery = (DataDir, LogStore<MeteredDisk>, raft::Recovered, StateMachine, u64, ClusterSecret);

/// Opens the data directory, the log and the state machine (blocking work). The state machine
/// is durable: it resumes at the index it recorded, and only the log after it is replayed.
fn recover(opts: &Options, metrics: Arc<Metrics>) -> Result<Recovery, Error> {
    let data = DataDir::open(&opts.data_dir, opts.id)?.with_store_cache(opts.store_cache_bytes);
    let disk = MeteredDisk::new(FileDisk::open(data.raft_dir())?, metrics);
    let (mut store, mut recovered) = LogStore::open(disk)?;
    let fresh = recovered.entries.is_empty()
        && recovered.snapshot.index == 0
        && recovered.snapshot.config.voters.is_empty()
        && recovered.snapshot.config.learners.is_empty();
    // Only a new node forming a cluster alone may make the secret: a node with a log may be
    // one of several (restarted without --peers), and a secret of its own would cut it off.
    let alone = fresh && opts.peers.is_empty() && !opts.join;
    let secret = data.cluster_secret(opts.cluster_secret.as_ref(), alone)?;
    if opts.restore.is_some() && (!fresh || opts.join) {
        return Err(Error::Config(format!(
            "--restore starts a new cluster in an empty data directory, and {} holds a Raft log",
            opts.data_dir.display()
        )));
    }
    if opts.restore.is_some() && !opts.peers.is_empty() {
        // Members started empty could elect a leader among themselves, without the data.
        return Err(Error::Config(
            "--restore starts a one-node cluster holding the backup; add the other members afterwards (chronosd --join, chronos member add), and they get the data from it"
                .into(),
        ));
    }
    if fresh && !opts.join {
        // A new cluster: every node listed starts as a voter of the initial configuration.
        let voters = opts.peers.keys().copied().chain([opts.id]);
        let mut meta = SnapshotMeta { index: 0, term: 0, config: Configuration::voters(voters) };
        let mut restored = None;
        if let Some(file) = &opts.restore {
            // The restored data is the new cluster's first snapshot: the log starts after it,
            // so members added later (empty) get it streamed from this node.
            (meta.index, meta.term) = (1, 1);
            restored = Some(restore_backup(&data, file, &meta)?);
        }
        store.checkpoint(&meta, &[])?;
        recovered.snapshot = meta;
        if let Some(generation) = restored {
            // Only now that the log records the snapshot (a crash before this leaves the
            // generation staged, and the next start switches to it).
            data.set_current_generation(generation)?;
        }
    }
    let mut generation = data.current_generation()?;
    if generation == 0 {
        generation = data.next_generation()?;
        drop(data.open_store(generation)?);
        data.set_current_generation(generation)?;
    }
    let mut sql = data.open_store(generation)?;
    let applied = Meta::load(sql.as_ref()).map_err(Error::Io)?.map_or(0, |m| m.applied);
    let synced = data.synced(generation)?;
    let start = recovered.snapshot.index;
    if start > applied {
        // The log records a snapshot received from the leader that the state machine had not
        // switched to when the node stopped: switch now. Without one, the store lost what the
        // log no longer has (its file was cut short or replaced by an older copy).
        let staged = data.staged_generation(start)?.ok_or_else(|| {
            Error::Io(format!(
                "the SQL store of {} is damaged: it holds the state up to index {applied} (index {synced} was synced), but the Raft log starts after {start}, so the difference cannot be replayed. Remove the member (chronos member remove {}), empty its data directory and add it again (chronosd --join, chronos member add): it then gets the state from the cluster",
                opts.data_dir.display(),
                opts.id
            ))
        })?;
        drop(sql);
        data.set_current_generation(staged)?;
        generation = staged;
        sql = data.open_store(generation)?;
        tracing::info!(index = start, "finished switching to the state received from the leader");
    }
    data.remove_generations_except(generation)?;
    let machine = StateMachine::open(sql, recovered.snapshot.config.clone())
        .map_err(|e| Error::Io(e.to_string()))?;
    if machine.applied() < synced {
        // A store that came back short (an older copy of its file, say) is repaired by
        // replaying the log, which still holds what it lost.
        tracing::warn!(
            applied = machine.applied(),
            synced,
            "the SQL store came back short of what was synced; replaying the Raft log to repair it"
        );
    }
    recovered.applied = machine.applied();
    tracing::info!(
        applied = machine.applied(),
        log_entries = recovered.entries.len(),
        "recovered: the state machine resumes at its applied index"
    );
    Ok((data, store, recovered, machine, generation, secret))
}

/// Loads a backup into a new store generation of `data`, recorded (synced and staged) as the
/// state at `meta`'s index; returns the generation. A refused backup leaves nothing behind.
fn restore_backup(
    data: &DataDir,
    file: &std::path::Path,
    meta: &SnapshotMeta,
) -> Result<u64, Error> {
    let input = std::fs::File::open(file)
        .map_err(|e| Error::Config(format!("--restore: cannot open {}: {e}", file.display())))?;
    let generation = data.next_generation()?;
    let store = data.open_store(generation)?;
    let target = (meta.index, meta.term, meta.config.clone());
    match crate::replica::backup::restore(input, &store, target) {
        Ok(summary) => {
            drop(store);
            data.mark_synced(generation, meta.index)?;
            data.mark_staged(generation, meta.index, meta.term)?;
            tracing::info!(
                file = %file.display(),
                version = summary.version,
                records = summary.records,
                "restored a backup: a new cluster starts from it"
            );
            Ok(generation)
        }
        Err(error) => {
            drop(store);
            data.remove_generation(generation);
            Err(Error::Config(format!("--restore {}: {error}", file.display())))
        }
    }
}

/// The gRPC role of a status.
pub(super) fn pb_role(status: &NodeStatus) -> pb::Role {
    match status.role {
        Role::Leader => pb::Role::Leader,
        Role::Candidate | Role::PreCandidate => pb::Role::Candidate,
        Role::Follower if status.learner => pb::Role::Learner,
        Role::Follower => pb::Role::Follower,
    }
}
