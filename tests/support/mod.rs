//! A test harness for real clusters: `chronosd` processes on 127.0.0.1 with free ports picked
//! at run time and temporary data directories, plus polling helpers (nothing sleeps for a
//! fixed time to wait for a cluster).

#![allow(dead_code)]

pub mod scrape;

use chronos::client::Client;
use chronos::client::Response;
use chronos::grpc::pb;
use chronos::grpc::tls::ClientTls;
use chronos::replica::StatementOutcome;
use chronos::sql::StatementResult;
use chronos::sql::types::Value;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// How long a test waits for a condition before failing.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// Cluster tests run one at a time: several clusters at once on two cores would starve each
/// other's heartbeats.
static SERIAL: Mutex<()> = Mutex::new(());

/// Takes the lock that serializes cluster tests.
pub fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|poison| poison.into_inner())
}

/// Polls `check` every few milliseconds until it returns `Some`, failing after `DEADLINE`.
pub fn eventually<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Free ports on 127.0.0.1, picked by binding port 0.
pub fn free_ports(count: usize) -> Vec<u16> {
    let listeners: Vec<std::net::TcpListener> = (0..count)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port"))
        .collect();
    listeners.iter().map(|l| l.local_addr().expect("local address").port()).collect()
}

/// A runtime for driving the async client from a test.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime")
}

/// The file in a cluster's directory holding its secret.
const SECRET_FILE: &str = "cluster.secret";

/// A cluster of `chronosd` processes.
pub struct Cluster {
    /// Holds the data directories.
    pub dir: tempfile::TempDir,
    /// Addresses by node id.
    pub addresses: BTreeMap<u64, String>,
    /// Running processes by node id.
    children: BTreeMap<u64, Child>,
    /// Extra flags for every node.
    args: Vec<String>,
    /// Extra flags of each node's own (kept across restarts).
    own_args: BTreeMap<u64, Vec<String>>,
    /// The ids of the initial configuration.
    initial: Vec<u64>,
    /// How clients reach the nodes over TLS, if they serve it.
    pub tls: Option<ClientTls>,
    /// A logged-in user's token the harness's clients carry, once the cluster has users.
    pub user_token: Option<String>,
    runtime: tokio::runtime::Runtime,
}

impl Cluster {
    /// Starts `n` nodes (ids 1..=n) with extra `args`, and waits for a leader.
    pub fn start(n: u64, args: &[&str]) -> Self {
        Self::start_each(n, args, |_| Vec::new())
    }

    /// Starts `n` nodes with extra `args`, each also with its `own` flags, and waits for a
    /// leader.
    pub fn start_each(n: u64, args: &[&str], own: impl Fn(u64) -> Vec<String>) -> Self {
        Self::start_with_tls(n, args, own, None)
    }

    /// Starts `n` nodes as [`Cluster::start_each`] does, reaching them over `tls` if given.
    pub fn start_with_tls(
        n: u64,
        args: &[&str],
        own: impl Fn(u64) -> Vec<String>,
        tls: Option<ClientTls>,
    ) -> Self {
        let ports = free_ports(n as usize);
        let addresses: BTreeMap<u64, String> =
            (1..=n).zip(ports).map(|(id, port)| (id, format!("127.0.0.1:{port}"))).collect();
        let dir = tempfile::tempdir().expect("temp dir");
        let secret = chronos::server::auth::ClusterSecret::generate().expect("secret");
        std::fs::write(dir.path().join(SECRET_FILE), secret.as_bytes()).expect("secret file");
        let mut cluster = Cluster {
            dir,
            addresses,
            children: BTreeMap::new(),
            args: args.iter().map(|a| a.to_string()).collect(),
            own_args: (1..=n).map(|id| (id, own(id))).collect(),
            initial: (1..=n).collect(),
            runtime: runtime(),
            tls,
            user_token: None,
        };
        for id in 1..=n {
            cluster.spawn(id);
        }
        cluster.leader();
        cluster
    }

    /// The file holding the cluster's secret, which every node is started with.
    pub fn secret_file(&self) -> PathBuf {
        self.dir.path().join(SECRET_FILE)
    }

    /// The token that authorizes changing the cluster.
    pub fn admin_token(&self) -> String {
        let bytes = std::fs::read(self.secret_file()).expect("secret file");
        chronos::server::auth::ClusterSecret::parse(&bytes).expect("secret").admin_token()
    }

    /// A client of node `id` that may change the cluster.
    pub fn admin_client(&self, id: u64) -> Client {
        let mut client = self.client(id);
        client.admin_token = Some(self.admin_token());
        client
    }

    /// The data directory of node `id`.
    pub fn data_dir(&self, id: u64) -> PathBuf {
        self.dir.path().join(format!("n{id}"))
    }

    /// The `--peers` flag value for node `id`.
    fn peers(&self, id: u64) -> String {
        self.addresses
            .iter()
            .filter(|(peer, _)| **peer != id && self.initial.contains(peer))
            .map(|(peer, address)| format!("{peer}={address}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Starts node `id` (again), with `extra` flags.
    pub fn spawn_with(&mut self, id: u64, extra: &[&str]) {
        let peers = self.peers(id);
        self.spawn_process(id, extra, &peers);
    }

    /// Starts node `id` with `extra` flags and no `--peers` (as the README starts a node that
    /// joins a running cluster).
    pub fn spawn_alone(&mut self, id: u64, extra: &[&str]) {
        self.spawn_process(id, extra, "");
    }

    fn spawn_process(&mut self, id: u64, extra: &[&str], peers: &str) {
        let log = std::fs::File::create(self.dir.path().join(format!("n{id}.log"))).expect("log");
        let mut command = Command::new(env!("CARGO_BIN_EXE_chronosd"));
        command
            .arg("--id")
            .arg(id.to_string())
            .arg("--listen")
            .arg(&self.addresses[&id])
            .arg("--data-dir")
            .arg(self.data_dir(id))
            .arg("--cluster-secret-file")
            .arg(self.secret_file())
            .args(&self.args)
            .args(self.own_args.get(&id).into_iter().flatten())
            .args(extra)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log);
        if !peers.is_empty() {
            command.arg("--peers").arg(peers);
        }
        let child = command.spawn().expect("start chronosd");
        self.children.insert(id, child);
    }

    /// Starts node `id` (again).
    pub fn spawn(&mut self, id: u64) {
        self.spawn_with(id, &[]);
    }

    /// Adds a node id with a fresh port (not started).
    pub fn reserve(&mut self, id: u64) -> String {
        let address = format!("127.0.0.1:{}", free_ports(1)[0]);
        self.addresses.insert(id, address.clone());
        address
    }

    /// Kills node `id` with SIGKILL (no chance to hand anything over).
    pub fn kill(&mut self, id: u64) {
        if let Some(mut child) = self.children.remove(&id) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends node `id` a signal (`TERM`, `INT`...) without waiting for anything.
    pub fn signal(&self, id: u64, signal: &str) {
        let pid = self.children[&id].id().to_string();
        let status = Command::new("kill").arg(format!("-{signal}")).arg(pid).status();
        assert!(status.is_ok_and(|s| s.success()), "kill -{signal}");
    }

    /// Stops node `id` with SIGTERM and waits for it to exit; returns its exit code.
    pub fn terminate(&mut self, id: u64) -> Option<i32> {
        let mut child = self.children.remove(&id)?;
        let status = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
        assert!(status.is_ok_and(|s| s.success()), "kill -TERM");
        let exited = eventually("the node to exit", || child.try_wait().ok().flatten());
        exited.code()
    }

    /// The log of node `id`.
    pub fn log(&self, id: u64) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("n{id}.log"))).unwrap_or_default()
    }

    /// The process id of node `id`, if it runs.
    pub fn pid(&self, id: u64) -> Option<u32> {
        self.children.get(&id).map(Child::id)
    }

    /// The ids of running nodes.
    pub fn running(&self) -> Vec<u64> {
        self.children.keys().copied().collect()
    }

    /// A client of node `id` alone.
    pub fn client(&self, id: u64) -> Client {
        let client = Client::new(vec![self.addresses[&id].clone()], Duration::from_secs(10))
            .expect("client");
        let client = match &self.tls {
            Some(tls) => client.with_tls(tls.clone()),
            None => client,
        };
        match &self.user_token {
            Some(token) => client.with_user_token(token.clone()),
            None => client,
        }
    }

    /// Replaces node `id`'s own flags (for its next start).
    pub fn set_own_args(&mut self, id: u64, args: Vec<String>) {
        self.own_args.insert(id, args);
    }

    /// Runs a future on the harness's runtime.
    pub fn block_on<F: std::future::Future>(&self, future: F) -> F::Output {
        self.runtime.block_on(future)
    }

    /// Node `id`'s status, if it answers.
    pub fn status(&self, id: u64) -> Option<pb::NodeStatus> {
        let mut client = self.client(id);
        self.block_on(async {
            tokio::time::timeout(Duration::from_secs(2), client.status()).await.ok()?.ok()
        })
    }

    /// Waits until every running node agrees on one leader in one term; returns the leader.
    pub fn leader(&self) -> u64 {
        self.leader_among(&self.running())
    }

    /// Waits until nodes `ids` agree on one leader in one term; returns the leader.
    pub fn leader_among(&self, ids: &[u64]) -> u64 {
        eventually("the nodes to agree on a leader", || {
            let statuses: Vec<pb::NodeStatus> =
                ids.iter().map(|id| self.status(*id)).collect::<Option<_>>()?;
            let first = statuses.first()?;
            let agreed = statuses.iter().all(|s| s.leader == first.leader && s.term == first.term);
            let leads =
                statuses.iter().any(|s| s.id == first.leader && s.role == pb::Role::Leader as i32);
            (first.leader != 0 && agreed && leads).then_some(first.leader)
        })
    }

    /// A running node other than `not`.
    pub fn other_than(&self, not: u64) -> u64 {
        *self.running().iter().find(|id| **id != not).expect("another running node")
    }

    /// Runs SQL on node `id` in a fresh session; panics on a request failure.
    pub fn execute(&self, id: u64, sql: &str) -> Response {
        let mut client = self.client(id);
        self.block_on(client.execute(sql, false)).unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// Runs SQL on node `id` and fails the test on any statement error.
    pub fn ok(&self, id: u64, sql: &str) -> Vec<StatementResult> {
        self.execute(id, sql)
            .results
            .into_iter()
            .map(|(_, outcome)| {
                outcome.unwrap_or_else(|e| panic!("{sql}: {} ({})", e.message, e.kind))
            })
            .collect()
    }

    /// The rows of `table` as stored on node `id` (through Admin.ScanTable, page by page).
    pub fn rows_on(&self, id: u64, table: &str) -> Option<Vec<Vec<Value>>> {
        let mut client = self.client(id);
        let mut rows = Vec::new();
        loop {
            let page = self.block_on(client.scan_table(table, rows.len() as u64, 10_000)).ok()?;
            let done = page.rows.is_empty() || rows.len() + page.rows.len() >= page.total as usize;
            rows.extend(chronos::grpc::convert::from_rows(page.rows));
            if done {
                return Some(rows);
            }
        }
    }

    /// Waits until every running node has applied the same index and stores the same rows of
    /// `table`; returns them.
    pub fn converged(&self, table: &str) -> Vec<Vec<Value>> {
        eventually(&format!("every node to hold the same {table}"), || {
            let applied: Vec<u64> = self
                .running()
                .iter()
                .map(|id| self.status(*id).map(|s| s.applied_index))
                .collect::<Option<_>>()?;
            if applied.iter().any(|a| *a != applied[0]) {
                return None;
            }
            let rows: Vec<Vec<Vec<Value>>> =
                self.running().iter().map(|id| self.rows_on(*id, table)).collect::<Option<_>>()?;
            rows.iter().all(|r| same_rows(r, &rows[0])).then(|| rows[0].clone())
        })
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for id in self.running() {
            self.kill(id);
        }
    }
}

/// Rows compared by their text (values have no total equality in Rust).
pub fn same_rows(a: &[Vec<Value>], b: &[Vec<Value>]) -> bool {
    text(a) == text(b)
}

/// Rows as text, for comparisons and messages.
pub fn text(rows: &[Vec<Value>]) -> Vec<String> {
    rows.iter().map(|row| row.iter().map(|v| v.to_string()).collect::<Vec<_>>().join(",")).collect()
}

/// The rows of a query result.
pub fn query_rows(outcome: &StatementOutcome) -> Vec<Vec<Value>> {
    match outcome {
        Ok(StatementResult::Query { rows, .. }) => rows.clone(),
        other => panic!("expected a query result, got {other:?}"),
    }
}

/// The single integer a query returned.
pub fn single_integer(outcome: &StatementOutcome) -> i64 {
    match query_rows(outcome).first().and_then(|row| row.first()) {
        Some(Value::Integer(i)) => *i,
        other => panic!("expected one integer, got {other:?}"),
    }
}
