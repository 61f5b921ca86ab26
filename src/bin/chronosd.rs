//! `chronosd`: a Chronos node. With no flags it is a one-node cluster on 127.0.0.1:7001 with its
//! data in `./chronos-data`; with `--peers` it forms (or rejoins) a cluster.
//!
//! Exit codes: 0 after a clean shutdown (SIGINT/SIGTERM), 1 when the node cannot start or halts,
//! 2 for bad flags.

use chronos::raft::NodeId;
use chronos::server::{Node, Options};
use clap::Parser;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

// Without unwind tables a panic cannot unwind: the node's guards (the applier halting with a
// message, tokio containing a task's panic) would silently become aborts.
#[cfg(all(feature = "edge-link", panic = "unwind"))]
compile_error!(
    "feature `edge-link` links chronosd without unwind tables, which panics that unwind need: \
     build it with a profile whose panics abort (`--profile release-edge`)"
);

/// mimalloc: a node allocates and frees on every request and every applied row, and the
/// system allocator's locking and consolidation showed as a tenth of its time.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A Chronos node: SQL over gRPC, replicated with Raft.
#[derive(Parser, Debug)]
#[command(name = "chronosd", version, about)]
struct Args {
    /// This node's id (1 or more, unique in the cluster).
    #[arg(long, default_value_t = 1)]
    id: NodeId,
    /// The address to serve clients and peers on.
    #[arg(long, default_value = "127.0.0.1:7001")]
    listen: String,
    /// The other members: ID=HOST:PORT,... (none: a one-node cluster).
    #[arg(long, value_delimiter = ',', value_parser = parse_peer)]
    peers: Vec<(NodeId, String)>,
    /// Where the node keeps its log, snapshots and data.
    #[arg(long, default_value = "chronos-data")]
    data_dir: PathBuf,
    /// Join an existing cluster: wait to be added (chronos member add) instead of forming one.
    #[arg(long)]
    join: bool,
    /// The file holding the cluster's secret, which every node must share (at least 16
    /// bytes; make one with `head -c 32 /dev/urandom | base64 > FILE`). Kept in the data
    /// directory after the first start. Without it, a node forming a cluster alone makes one.
    /// The environment variable CHRONOS_CLUSTER_SECRET_FILE may name the file instead.
    #[arg(long)]
    cluster_secret_file: Option<PathBuf>,
    /// How long a request may wait for a leader, a commit or a read, in milliseconds.
    #[arg(long, default_value_t = chronos::server::REQUEST_TIMEOUT.as_millis() as u64)]
    request_timeout_ms: u64,
    /// How long a query may run before it is cancelled, in milliseconds.
    #[arg(long, default_value_t = chronos::server::QUERY_TIMEOUT.as_millis() as u64)]
    query_timeout_ms: u64,
    /// How many queries may run at once (more wait, up to the request timeout).
    #[arg(long, default_value_t = chronos::server::MAX_QUERIES)]
    max_queries: usize,
    /// The most megabytes of rows one statement may write.
    #[arg(long, default_value_t = chronos::server::STATEMENT_LIMITS.write_bytes >> 20)]
    statement_write_mb: u64,
    /// The most megabytes of rows one statement may hold in memory (sorts, joins, groups, rows
    /// collected for a write).
    #[arg(long, default_value_t = chronos::server::STATEMENT_LIMITS.hold_bytes >> 20)]
    statement_memory_mb: u64,
    /// How long a transaction may sit unused before it is rolled back, in seconds.
    #[arg(long, default_value_t = chronos::server::TRANSACTION_TIMEOUT.as_secs())]
    transaction_timeout_secs: u64,
    /// Entries in the Raft log after which the node syncs its state and compacts the log.
    #[arg(long, default_value_t = chronos::server::SNAPSHOT_ENTRIES)]
    snapshot_entries: u64,
    /// Bytes of entries in the Raft log after which the node syncs its state and compacts the
    /// log (this bounds the log's memory).
    #[arg(long, default_value_t = chronos::server::SNAPSHOT_BYTES as u64)]
    snapshot_bytes: u64,
    /// The Raft tick in milliseconds: a leader sends a heartbeat every tick (elections take
    /// 10-20 ticks unless --election-timeout-ms says otherwise).
    #[arg(long, visible_alias = "heartbeat-ms", default_value_t = chronos::server::TICK_INTERVAL.as_millis() as u64)]
    tick_ms: u64,
    /// The base election timeout in milliseconds (a follower waits between it and twice it
    /// without hearing from a leader). Keep it at least 10 times the heartbeat and well above
    /// the round trip. For slow links (hundreds of ms, some loss): --heartbeat-ms 250
    /// --election-timeout-ms 5000.
    #[arg(long, value_name = "MS")]
    election_timeout_ms: Option<u64>,
    /// Serve Prometheus metrics over HTTP on this address (HOST:PORT), at /metrics. Off
    /// unless given.
    #[arg(long, value_name = "HOST:PORT")]
    metrics_listen: Option<String>,
    /// Log statements served by this node that take at least this many milliseconds, with
    /// their plan (at WARN). Off unless given.
    #[arg(long, value_name = "MS")]
    slow_statement_ms: Option<u64>,
    /// The SQL store's page cache, in MiB (at least 1). A larger cache keeps a larger working
    /// set in memory (rollup state, the pages inserts land on) at the cost of that much memory.
    #[arg(long, value_name = "MB", default_value_t = 32)]
    store_cache_mb: usize,
    /// Serve clients and peers over TLS with this node certificate (PEM; its common name is
    /// chronos-node-ID: make one with `chronos cert node ID`). Needs --tls-key and --tls-ca.
    #[arg(long, value_name = "FILE", requires_all = ["tls_key", "tls_ca"])]
    tls_cert: Option<PathBuf>,
    /// The node certificate's private key (PEM).
    #[arg(long, value_name = "FILE", requires_all = ["tls_cert", "tls_ca"])]
    tls_key: Option<PathBuf>,
    /// The cluster's CA certificate (PEM): peers must present a node certificate it signed
    /// (mutual TLS); clients must trust it.
    #[arg(long, value_name = "FILE", requires_all = ["tls_cert", "tls_key"])]
    tls_ca: Option<PathBuf>,
    /// Start a new one-node cluster from a backup (chronos backup), loaded into the empty
    /// --data-dir; members added afterwards (chronosd --join, chronos member add) get the data
    /// from this node.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["join", "peers"])]
    restore: Option<PathBuf>,
    /// Make this cluster an edge that forwards --forward tables to the upstream cluster at
    /// these addresses (HOST:PORT,...). Writes are accepted while the upstream is unreachable,
    /// kept in an outbox and forwarded in order, exactly once, when it is back.
    #[arg(long, value_name = "ADDRS", value_delimiter = ',', requires = "forward")]
    upstream: Vec<String>,
    /// The tables to forward upstream (TABLE,...): append-only on this cluster (UPDATE,
    /// DELETE and upserts are refused). Give every node of the edge the same list.
    #[arg(long, value_name = "TABLES", value_delimiter = ',', requires = "upstream")]
    forward: Vec<String>,
    /// The edge's id upstream (default: one made at the first start and kept). Rows are
    /// deduplicated upstream by this id and their sequence numbers: keep it stable.
    #[arg(long, value_name = "ID", requires = "upstream")]
    edge_id: Option<String>,
    /// Log in to the upstream as this user; the password comes from the environment variable
    /// CHRONOS_UPSTREAM_PASSWORD.
    #[arg(long, value_name = "NAME", requires = "upstream")]
    upstream_user: Option<String>,
    /// The upstream's CA certificate (PEM), if it serves TLS.
    #[arg(long, value_name = "FILE", requires = "upstream")]
    upstream_ca: Option<PathBuf>,
}

/// The environment variable holding the password for --upstream-user.
const UPSTREAM_PASSWORD_ENV: &str = "CHRONOS_UPSTREAM_PASSWORD";

/// The environment variable that may name the cluster secret file.
const SECRET_FILE_ENV: &str = "CHRONOS_CLUSTER_SECRET_FILE";

/// Parses `ID=HOST:PORT`.
fn parse_peer(text: &str) -> Result<(NodeId, String), String> {
    let (id, address) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?} is not ID=HOST:PORT (for example 2=127.0.0.1:7002)"))?;
    let id: NodeId = id.trim().parse().map_err(|_| format!("{id:?} is not a node id"))?;
    if id == 0 {
        return Err("node ids start at 1".into());
    }
    let address = address.trim();
    match address.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => {
            Ok((id, address.to_string()))
        }
        _ => Err(format!("{address:?} is not HOST:PORT")),
    }
}

impl Args {
    fn options(&self) -> Result<Options, String> {
        let mut peers = BTreeMap::new();
        for (id, address) in &self.peers {
            if peers.insert(*id, address.clone()).is_some() {
                return Err(format!("node {id} is listed twice in --peers"));
            }
        }
        if self.id == 0 {
            return Err("--id: node ids start at 1".into());
        }
        if peers.contains_key(&self.id) {
            return Err(format!("--peers: node {} cannot be its own peer", self.id));
        }
        if self.tick_ms == 0 {
            return Err("--tick-ms must be at least 1".into());
        }
        let mut opts = Options::new(self.id, self.listen.clone(), self.data_dir.clone());
        opts.peers = peers;
        opts.join = self.join;
        let from_environment = std::env::var_os(SECRET_FILE_ENV).map(PathBuf::from);
        if let Some(path) = self.cluster_secret_file.as_ref().or(from_environment.as_ref()) {
            let bytes = std::fs::read(path).map_err(|e| {
                format!("--cluster-secret-file: cannot read {}: {e}", path.display())
            })?;
            let secret = chronos::server::auth::ClusterSecret::parse(&bytes)
                .map_err(|e| format!("--cluster-secret-file {}: {e}", path.display()))?;
            opts.cluster_secret = Some(secret);
        }
        opts.request_timeout = Duration::from_millis(self.request_timeout_ms.max(1));
        opts.transaction_timeout = Duration::from_secs(self.transaction_timeout_secs.max(1));
        opts.query_timeout = Duration::from_millis(self.query_timeout_ms.max(1));
        opts.max_queries = self.max_queries.max(1);
        opts.statement_limits = chronos::sql::budget::Limits {
            write_bytes: self.statement_write_mb.max(1).saturating_mul(1 << 20),
            hold_bytes: self.statement_memory_mb.max(1).saturating_mul(1 << 20),
        };
        opts.snapshot_entries = self.snapshot_entries.max(1);
        opts.snapshot_bytes = usize::try_from(self.snapshot_bytes).unwrap_or(usize::MAX).max(1);
        opts.tick = Duration::from_millis(self.tick_ms);
        if let Some(timeout) = self.election_timeout_ms {
            let ticks = timeout / self.tick_ms;
            if ticks < 2 {
                return Err(format!(
                    "--election-timeout-ms {timeout} must be at least twice the heartbeat ({} ms)",
                    self.tick_ms
                ));
            }
            opts.election_ticks = u32::try_from(ticks).unwrap_or(u32::MAX);
        }
        opts.metrics_listen = self.metrics_listen.clone();
        opts.slow_statement = self.slow_statement_ms.map(Duration::from_millis);
        if self.store_cache_mb == 0 {
            return Err("--store-cache-mb must be at least 1".into());
        }
        opts.store_cache_bytes = self.store_cache_mb.saturating_mul(1 << 20);
        opts.restore = self.restore.clone();
        if let (Some(cert), Some(key), Some(ca)) = (&self.tls_cert, &self.tls_key, &self.tls_ca) {
            let tls = chronos::server::tls::NodeTls::load(self.id, cert, key, ca)
                .map_err(|e| format!("--tls-cert: {e}"))?;
            opts.tls = Some(tls);
        }
        opts.edge = self.edge()?;
        Ok(opts)
    }

    fn edge(&self) -> Result<Option<chronos::server::EdgeOptions>, String> {
        if self.upstream.is_empty() {
            return Ok(None);
        }
        for address in &self.upstream {
            if !matches!(address.rsplit_once(':'), Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok())
            {
                return Err(format!("--upstream: {address:?} is not HOST:PORT"));
            }
        }
        let tables: std::collections::BTreeSet<String> = self
            .forward
            .iter()
            .map(|t| t.trim().to_ascii_lowercase())
            .filter(|t| !t.is_empty())
            .collect();
        if tables.is_empty() {
            return Err("--forward: name at least one table".into());
        }
        if let Some(id) = &self.edge_id
            && (id.is_empty() || id.len() > 128)
        {
            return Err("--edge-id: 1 to 128 bytes".into());
        }
        let login = match &self.upstream_user {
            Some(user) => {
                let password = std::env::var(UPSTREAM_PASSWORD_ENV).map_err(|_| {
                    format!("--upstream-user: set the password in {UPSTREAM_PASSWORD_ENV}")
                })?;
                Some((user.clone(), password))
            }
            None => None,
        };
        let tls = match &self.upstream_ca {
            Some(path) => Some(
                chronos::grpc::tls::ClientTls::load(path, None, None)
                    .map_err(|e| format!("--upstream-ca: {e}"))?,
            ),
            None => None,
        };
        Ok(Some(chronos::server::EdgeOptions {
            upstream: self.upstream.clone(),
            tables,
            id: self.edge_id.clone(),
            login,
            tls,
        }))
    }
}

/// SIGINT and SIGTERM, listened to from the start, so a signal is never missed between two
/// waits for one.
struct Signals {
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
}

impl Signals {
    /// Starts listening (inside the runtime).
    fn listen() -> std::io::Result<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(Self {
                interrupt: signal(SignalKind::interrupt())?,
                terminate: signal(SignalKind::terminate())?,
            })
        }
        #[cfg(not(unix))]
        Ok(Self {})
    }

    /// Resolves on the next SIGINT or SIGTERM.
    async fn next(&mut self) {
        #[cfg(unix)]
        tokio::select! {
            _ = self.interrupt.recv() => {}
            _ = self.terminate.recv() => {}
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    // RUST_LOG as `target=level,...` with an optional default level (`chronos=debug,info`);
    // parsed without regular expressions, which keep the binary smaller.
    use tracing_subscriber::filter::{LevelFilter, Targets};
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|text| text.parse::<Targets>().ok())
        .unwrap_or_else(|| Targets::new().with_default(LevelFilter::INFO));
    use std::io::IsTerminal as _;
    tracing_subscriber::fmt()
        .with_max_level(LevelFilter::TRACE)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .finish()
        .with(filter)
        .init();
    let opts = match args.options() {
        Ok(opts) => opts,
        Err(error) => {
            eprintln!("chronosd: {error}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("chronosd: cannot start the runtime: {error}");
            return ExitCode::from(1);
        }
    };
    let code = runtime.block_on(async move {
        let node = match Node::start(opts).await {
            Ok(node) => node,
            Err(error) => {
                eprintln!("chronosd: {error}");
                return ExitCode::from(1);
            }
        };
        let mut signals = match Signals::listen() {
            Ok(signals) => signals,
            Err(error) => {
                eprintln!("chronosd: cannot listen for signals: {error}");
                node.kill().await;
                return ExitCode::from(1);
            }
        };
        println!("chronosd: node {} serving on {}", node.id(), node.address());
        let halted = tokio::select! {
            _ = signals.next() => None,
            reason = node.halted() => Some(reason),
        };
        match halted {
            None => {
                // A second signal does not wait for anything.
                tokio::spawn(async move {
                    signals.next().await;
                    eprintln!("chronosd: stopping at once (second signal)");
                    std::process::exit(130);
                });
                node.stop().await;
                ExitCode::SUCCESS
            }
            Some(reason) => {
                eprintln!("chronosd: node halted: {reason}");
                node.kill().await;
                ExitCode::from(1)
            }
        }
    });
    // Queries and applies still running on blocking threads are not waited for: what they
    // were doing is cancelled, or replayed from the log at the next start.
    runtime.shutdown_timeout(Duration::from_millis(500));
    code
}
