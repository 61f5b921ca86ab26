//! The node's metrics, in Prometheus' text format (`--metrics-listen ADDR` serves them at
//! `/metrics`, see `metrics_http.rs`).
//!
//! Counters and histograms are updated where things happen (the driver, the disk, the
//! services, the replica's statements); gauges that mirror state (term, indexes, storage size,
//! memory) are read when scraped, so an idle node does no work for them. Every label takes a
//! bounded set of values: roles, statement kinds, error kinds, the node's own gRPC methods
//! (anything else is `unknown`) and member ids.

use super::context::Context;
use crate::raft::{Disk, FileDisk, Role};
use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder, exponential_buckets,
};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a window of recent fsync latencies lasts (`chronos status` shows the p99 of the
/// current and the previous window).
const RECENT_WINDOW: Duration = Duration::from_secs(60);

/// A node's metrics. Cheap to update from any thread.
pub struct Metrics {
    registry: Registry,
    raft_term: IntGauge,
    raft_role: IntGaugeVec,
    raft_leader: IntGauge,
    raft_last_index: IntGauge,
    raft_commit_index: IntGauge,
    raft_applied_index: IntGauge,
    raft_snapshot_index: IntGauge,
    peer_match_index: IntGaugeVec,
    peer_lag_entries: IntGaugeVec,
    peer_last_contact_seconds: prometheus::GaugeVec,
    /// Leader changes this node has seen.
    pub leader_changes: IntCounter,
    /// Elections this node started.
    pub elections: IntCounter,
    /// Commands this node proposed as leader.
    pub proposals: IntCounter,
    /// Writes to the log's files (before the fsync).
    pub append_seconds: Histogram,
    /// Fsyncs of the log.
    pub fsync_seconds: Histogram,
    /// Bytes of Raft messages to peers, as encoded and as sent (after compression).
    pub raft_message_bytes: IntCounterVec,
    /// Snapshots sent and received (`direction`).
    pub snapshots: IntCounterVec,
    /// Bytes of snapshots sent and received.
    pub snapshot_bytes: IntCounterVec,
    /// How long snapshot transfers took.
    pub snapshot_seconds: HistogramVec,
    /// Statements served by kind and outcome (`ok` or the error kind).
    pub statements: IntCounterVec,
    /// Statement latency by kind, from arrival to result.
    pub statement_seconds: HistogramVec,
    /// Rows queries returned.
    pub rows_returned: IntCounter,
    /// Rows writes inserted, updated or deleted.
    pub rows_written: IntCounter,
    /// Statements that failed on a write conflict.
    pub conflicts: IntCounter,
    /// gRPC requests by method and status code.
    pub grpc_requests: IntCounterVec,
    /// On an edge's leader: batches of the outbox, by outcome (`acknowledged` and let go of,
    /// or `failed`: unreachable, login refused, refused upstream, or not let go of).
    pub edge_batches: IntCounterVec,
    /// On an edge's leader: rows in batches the upstream acknowledged.
    pub edge_rows_forwarded: IntCounter,
    /// `Sql.Ingest` batches from edges this node served, by outcome (`ok` or the error kind).
    pub ingest_batches: IntCounterVec,
    edge_backlog_rows: IntGauge,
    edge_lag_seconds: prometheus::Gauge,
    storage_bytes: IntGauge,
    mvcc_next_version: IntGauge,
    mvcc_gc_horizon: IntGauge,
    mvcc_live_versions: IntGauge,
    mvcc_open_transactions: IntGauge,
    resident_memory_bytes: IntGauge,
    uptime_seconds: prometheus::Gauge,
    recent_fsyncs: Mutex<RecentLatency>,
}

impl Metrics {
    /// A node's metrics, registered and at zero.
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let gauge = |name: &str, help: &str| -> Result<IntGauge, prometheus::Error> {
            let gauge = IntGauge::new(name, help)?;
            registry.register(Box::new(gauge.clone()))?;
            Ok(gauge)
        };
        let gauges = |name: &str, help: &str, labels: &[&str]| {
            let gauges = IntGaugeVec::new(Opts::new(name, help), labels)?;
            registry.register(Box::new(gauges.clone()))?;
            Ok::<_, prometheus::Error>(gauges)
        };
        let counter = |name: &str, help: &str| -> Result<IntCounter, prometheus::Error> {
            let counter = IntCounter::new(name, help)?;
            registry.register(Box::new(counter.clone()))?;
            Ok(counter)
        };
        let counters = |name: &str, help: &str, labels: &[&str]| {
            let counters = IntCounterVec::new(Opts::new(name, help), labels)?;
            registry.register(Box::new(counters.clone()))?;
            Ok::<_, prometheus::Error>(counters)
        };
        // From 50 µs to about 1.6 s: fsyncs, appends and statements.
        let latency = exponential_buckets(0.000_05, 2.0, 16)?;
        let histogram = |name: &str, help: &str| -> Result<Histogram, prometheus::Error> {
            let opts = HistogramOpts::new(name, help).buckets(latency.clone());
            let histogram = Histogram::with_opts(opts)?;
            registry.register(Box::new(histogram.clone()))?;
            Ok(histogram)
        };
        let histograms = |name: &str, help: &str, labels: &[&str], buckets: Vec<f64>| {
            let opts = HistogramOpts::new(name, help).buckets(buckets);
            let histograms = HistogramVec::new(opts, labels)?;
            registry.register(Box::new(histograms.clone()))?;
            Ok::<_, prometheus::Error>(histograms)
        };
        let float_gauge = |name: &str, help: &str| {
            let gauge = prometheus::Gauge::new(name, help)?;
            registry.register(Box::new(gauge.clone()))?;
            Ok::<_, prometheus::Error>(gauge)
        };
        let peer_last_contact_seconds = prometheus::GaugeVec::new(
            Opts::new(
                "chronos_raft_peer_last_contact_seconds",
                "On the leader: seconds since each member last answered.",
            ),
            &["peer"],
        )?;
        registry.register(Box::new(peer_last_contact_seconds.clone()))?;
        Ok(Self {
            raft_term: gauge("chronos_raft_term", "The node's Raft term.")?,
            raft_role: gauges(
                "chronos_raft_role",
                "1 for the node's Raft role (leader, follower, candidate, learner), 0 for the others.",
                &["role"],
            )?,
            raft_leader: gauge(
                "chronos_raft_leader_id",
                "The leader this node knows of (0: none).",
            )?,
            raft_last_index: gauge("chronos_raft_last_index", "The last index in the node's log.")?,
            raft_commit_index: gauge("chronos_raft_commit_index", "The node's commit index.")?,
            raft_applied_index: gauge(
                "chronos_raft_applied_index",
                "The index the node's state machine has applied.",
            )?,
            raft_snapshot_index: gauge(
                "chronos_raft_snapshot_index",
                "The index the node's log starts after.",
            )?,
            peer_match_index: gauges(
                "chronos_raft_peer_match_index",
                "On the leader: the last index known replicated on each member.",
                &["peer"],
            )?,
            peer_lag_entries: gauges(
                "chronos_raft_peer_lag_entries",
                "On the leader: entries each member is behind the leader's log.",
                &["peer"],
            )?,
            peer_last_contact_seconds,
            leader_changes: counter(
                "chronos_raft_leader_changes_total",
                "Changes of leader this node has seen.",
            )?,
            elections: counter("chronos_raft_elections_total", "Elections this node started.")?,
            proposals: counter(
                "chronos_raft_proposals_total",
                "Commands this node proposed to the log as leader.",
            )?,
            append_seconds: histogram(
                "chronos_raft_append_seconds",
                "Writes of Raft records to the log's files, before their fsync.",
            )?,
            fsync_seconds: histogram("chronos_raft_fsync_seconds", "Fsyncs of the Raft log.")?,
            raft_message_bytes: counters(
                "chronos_raft_message_bytes_total",
                "Bytes of Raft messages sent to peers: as encoded, and as sent after compression (lz4).",
                &["stage"],
            )?,
            snapshots: counters(
                "chronos_raft_snapshots_total",
                "Snapshots streamed to followers (sent) and installed from the leader (received).",
                &["direction"],
            )?,
            snapshot_bytes: counters(
                "chronos_raft_snapshot_bytes_total",
                "Bytes of snapshots sent and received.",
                &["direction"],
            )?,
            snapshot_seconds: histograms(
                "chronos_raft_snapshot_seconds",
                "How long snapshot transfers took.",
                &["direction"],
                exponential_buckets(0.01, 2.0, 14)?,
            )?,
            statements: counters(
                "chronos_sql_statements_total",
                "Statements served by this node, by kind and outcome (ok, or the error kind).",
                &["kind", "outcome"],
            )?,
            statement_seconds: histograms(
                "chronos_sql_statement_seconds",
                "Statement latency on the serving node, from arrival to result.",
                &["kind"],
                latency.clone(),
            )?,
            rows_returned: counter(
                "chronos_sql_rows_returned_total",
                "Rows returned by queries (and RETURNING clauses) served by this node.",
            )?,
            rows_written: counter(
                "chronos_sql_rows_written_total",
                "Rows inserted, updated or deleted by writes served by this node.",
            )?,
            conflicts: counter(
                "chronos_sql_conflicts_total",
                "Statements that failed on a write conflict with another transaction.",
            )?,
            grpc_requests: counters(
                "chronos_grpc_requests_total",
                "gRPC requests by method and status code (as the handler answered).",
                &["method", "code"],
            )?,
            edge_batches: counters(
                "chronos_edge_batches_total",
                "On an edge's leader: batches of outbox rows acknowledged upstream and let go of, or failed (upstream unreachable, login or batch refused, outbox not trimmed).",
                &["outcome"],
            )?,
            edge_rows_forwarded: counter(
                "chronos_edge_rows_forwarded_total",
                "On an edge's leader: rows in batches the upstream acknowledged and the outbox let go of.",
            )?,
            ingest_batches: counters(
                "chronos_ingest_batches_total",
                "Batches from edges (Sql.Ingest) served by this node, by outcome (ok, or the error kind such as edge_gap).",
                &["outcome"],
            )?,
            edge_backlog_rows: gauge(
                "chronos_edge_backlog_rows",
                "Rows in the edge's outbox the upstream has not acknowledged (0 when nothing is forwarded).",
            )?,
            edge_lag_seconds: float_gauge(
                "chronos_edge_lag_seconds",
                "How long ago the oldest row not yet acknowledged upstream committed (0 with no backlog).",
            )?,
            storage_bytes: gauge(
                "chronos_storage_size_bytes",
                "Bytes in the node's data directory (log, snapshots, SQL store).",
            )?,
            mvcc_next_version: gauge(
                "chronos_mvcc_next_version",
                "The next MVCC version (versions are counted from 1).",
            )?,
            mvcc_gc_horizon: gauge(
                "chronos_mvcc_gc_horizon_version",
                "Versions below this are garbage-collected; next_version minus this is the window of versions kept.",
            )?,
            mvcc_live_versions: gauge(
                "chronos_mvcc_live_versions",
                "MVCC versions still readable: from the GC horizon up to the next version.",
            )?,
            mvcc_open_transactions: gauge(
                "chronos_mvcc_open_transactions",
                "Read-write transactions in flight.",
            )?,
            resident_memory_bytes: gauge(
                "chronos_process_resident_memory_bytes",
                "The node process's resident memory.",
            )?,
            uptime_seconds: float_gauge(
                "chronos_process_uptime_seconds",
                "Seconds since the node started.",
            )?,
            recent_fsyncs: Mutex::new(RecentLatency::new(Instant::now())),
            registry,
        })
    }

    /// Records an fsync of the log.
    pub fn observe_fsync(&self, took: Duration) {
        self.fsync_seconds.observe(took.as_secs_f64());
        let mut recent = self.recent_fsyncs.lock().unwrap_or_else(|p| p.into_inner());
        recent.record(Instant::now(), took);
    }

    /// The 99th percentile of recent fsyncs (the last one to two minutes), if any happened.
    pub fn fsync_p99(&self) -> Option<Duration> {
        let mut recent = self.recent_fsyncs.lock().unwrap_or_else(|p| p.into_inner());
        recent.p99(Instant::now())
    }

    /// Records a statement's outcome (`None`: it succeeded; otherwise its error kind).
    pub fn observe_statement(&self, kind: &str, error: Option<&str>, took: Duration) {
        // Error kinds are the code's own words; anything else would be an unbounded label.
        let plain =
            |k: &&str| k.len() <= 40 && k.bytes().all(|b| b.is_ascii_lowercase() || b == b'_');
        let outcome = match error {
            None => "ok",
            Some(kind) if plain(&kind) => kind,
            Some(_) => "other",
        };
        self.statements.with_label_values(&[kind, outcome]).inc();
        self.statement_seconds.with_label_values(&[kind]).observe(took.as_secs_f64());
        if error == Some("serialization_failure") {
            self.conflicts.inc();
        }
    }

    /// The metrics now, in Prometheus' text format, with the gauges read from the node.
    pub fn render(&self, cx: &Context) -> Result<String, prometheus::Error> {
        self.refresh(cx);
        let mut text = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut text)?;
        Ok(String::from_utf8_lossy(&text).into_owned())
    }

    /// Reads the gauges that mirror the node's state.
    fn refresh(&self, cx: &Context) {
        let state = cx.state.borrow().clone();
        let status = &state.raft;
        self.raft_term.set(clamp(status.term));
        let learner = status.config.learners.contains(&cx.id());
        let current = match status.role {
            Role::Leader => "leader",
            Role::Candidate | Role::PreCandidate => "candidate",
            Role::Follower if learner => "learner",
            Role::Follower => "follower",
        };
        for role in ["leader", "follower", "candidate", "learner"] {
            self.raft_role.with_label_values(&[role]).set(i64::from(role == current));
        }
        self.raft_leader.set(clamp(status.leader.unwrap_or(0)));
        self.raft_last_index.set(clamp(status.last_index));
        self.raft_commit_index.set(clamp(status.commit_index));
        self.raft_applied_index.set(clamp(cx.applied_index()));
        self.raft_snapshot_index.set(clamp(state.snapshot_index));
        // Members come and go: only the current ones are reported.
        self.peer_match_index.reset();
        self.peer_lag_entries.reset();
        self.peer_last_contact_seconds.reset();
        for (id, peer) in &status.peers {
            let label = id.to_string();
            self.peer_match_index.with_label_values(&[&label]).set(clamp(peer.match_index));
            let lag = status.last_index.saturating_sub(peer.match_index);
            self.peer_lag_entries.with_label_values(&[&label]).set(clamp(lag));
            let contact = cx.opts.tick * peer.last_contact;
            self.peer_last_contact_seconds.with_label_values(&[&label]).set(contact.as_secs_f64());
        }
        self.storage_bytes.set(clamp(cx.data.size()));
        let mvcc = cx.database().mvcc().status();
        self.mvcc_next_version.set(clamp(mvcc.next_version));
        self.mvcc_gc_horizon.set(clamp(mvcc.gc_horizon));
        self.mvcc_live_versions.set(clamp(mvcc.next_version.saturating_sub(mvcc.gc_horizon)));
        self.mvcc_open_transactions.set(clamp(mvcc.active_txns));
        if let Some(bytes) = resident_memory_bytes() {
            self.resident_memory_bytes.set(clamp(bytes));
        }
        let edge = super::edge::status(cx).unwrap_or_default();
        self.edge_backlog_rows.set(clamp(edge.backlog));
        self.edge_lag_seconds.set(edge.lag_ms as f64 / 1000.0);
        self.uptime_seconds.set(cx.started.elapsed().as_secs_f64());
    }
}

impl crate::replica::StatementObserver for Metrics {
    fn statement(&self, seen: &crate::replica::SeenStatement<'_>) {
        self.observe_statement(seen.kind, seen.error, seen.latency);
        self.rows_returned.inc_by(seen.rows_returned);
        self.rows_written.inc_by(seen.rows_written);
    }
}

/// A gauge's value from a count (counts past `i64::MAX` do not occur; they would show as it).
fn clamp(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// The process's resident memory, from `/proc/self/status` (Linux; `None` elsewhere).
fn resident_memory_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Latencies of the current and the previous window, in microseconds.
struct RecentLatency {
    current: hdrhistogram::Histogram<u64>,
    previous: hdrhistogram::Histogram<u64>,
    started: Instant,
}

impl RecentLatency {
    fn new(now: Instant) -> Self {
        let histogram = || {
            // Three significant figures up to an hour; the bounds are valid constants.
            // Two significant figures up to a minute (longer counts as a minute): small
            // enough to merge on every status call.
            hdrhistogram::Histogram::new_with_bounds(1, 60_000_000, 2)
                .expect("valid histogram bounds")
        };
        Self { current: histogram(), previous: histogram(), started: now }
    }

    fn rotate(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.started);
        if elapsed >= RECENT_WINDOW * 2 {
            self.previous.reset();
            self.current.reset();
            self.started = now;
        } else if elapsed >= RECENT_WINDOW {
            std::mem::swap(&mut self.previous, &mut self.current);
            self.current.reset();
            self.started = now;
        }
    }

    fn record(&mut self, now: Instant, took: Duration) {
        self.rotate(now);
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX).max(1);
        self.current.saturating_record(micros);
    }

    fn p99(&mut self, now: Instant) -> Option<Duration> {
        self.rotate(now);
        let mut both = self.current.clone();
        both.add(&self.previous).ok()?;
        (!both.is_empty()).then(|| Duration::from_micros(both.value_at_quantile(0.99)))
    }
}

/// The log's disk, timed: appends and fsyncs feed the node's metrics.
pub struct MeteredDisk {
    disk: FileDisk,
    metrics: Arc<Metrics>,
}

impl MeteredDisk {
    /// Times `disk`'s appends and syncs into `metrics`.
    pub fn new(disk: FileDisk, metrics: Arc<Metrics>) -> Self {
        Self { disk, metrics }
    }
}

impl Disk for MeteredDisk {
    fn list(&self) -> crate::raft::Result<Vec<String>> {
        self.disk.list()
    }

    fn read(&self, name: &str) -> crate::raft::Result<Vec<u8>> {
        self.disk.read(name)
    }

    fn append(&mut self, name: &str, bytes: &[u8]) -> crate::raft::Result<()> {
        let started = Instant::now();
        let result = self.disk.append(name, bytes);
        self.metrics.append_seconds.observe(started.elapsed().as_secs_f64());
        result
    }

    fn sync(&mut self, name: &str) -> crate::raft::Result<()> {
        let started = Instant::now();
        let result = self.disk.sync(name);
        self.metrics.observe_fsync(started.elapsed());
        result
    }

    fn truncate(&mut self, name: &str, length: u64) -> crate::raft::Result<()> {
        self.disk.truncate(name, length)
    }

    fn remove(&mut self, name: &str) -> crate::raft::Result<()> {
        self.disk.remove(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recent_fsyncs_report_the_p99_of_the_last_two_windows_only() {
        let start = Instant::now();
        let mut recent = RecentLatency::new(start);
        assert_eq!(recent.p99(start), None);
        for _ in 0..99 {
            recent.record(start, Duration::from_micros(100));
        }
        recent.record(start, Duration::from_millis(50));
        let p99 = recent.p99(start).map(|d| d.as_micros());
        assert!(p99.is_some_and(|us| (99..=101).contains(&us)), "{p99:?}");
        // A window later the old samples still count; two windows later they are gone.
        let later = start + RECENT_WINDOW;
        recent.record(later, Duration::from_millis(10));
        assert!(recent.p99(later).is_some_and(|d| d >= Duration::from_micros(99)));
        assert_eq!(recent.p99(later + RECENT_WINDOW * 2), None);
    }

    #[test]
    fn statements_count_by_kind_and_outcome_and_conflicts_separately() {
        let metrics = Metrics::new().map_err(|e| e.to_string()).unwrap();
        metrics.observe_statement("insert", None, Duration::from_millis(1));
        metrics.observe_statement(
            "insert",
            Some("serialization_failure"),
            Duration::from_millis(2),
        );
        metrics.observe_statement("select", Some("unknown_column"), Duration::from_millis(3));
        assert_eq!(metrics.statements.with_label_values(&["insert", "ok"]).get(), 1);
        let conflicted = metrics.statements.with_label_values(&["insert", "serialization_failure"]);
        assert_eq!(conflicted.get(), 1);
        assert_eq!(metrics.statements.with_label_values(&["select", "unknown_column"]).get(), 1);
        assert_eq!(metrics.conflicts.get(), 1);
        assert_eq!(metrics.statement_seconds.with_label_values(&["insert"]).get_sample_count(), 2);
    }
}
