//! What the console knows of the cluster: each node's latest status, a short history for the
//! charts, the event log, the data view's selection, and the SQL pane's last outcome.
//!
//! Everything here is plain data updated from messages; time is the wall-clock milliseconds
//! the runtime passes in with each tick, so tests can fix it.

use chronos::grpc::pb;
use chronos::replica::StatementOutcome;
use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

/// A node id.
pub type NodeId = u64;

/// Console ticks per second (samples for the charts, status staleness).
pub const TICKS_PER_SECOND: u64 = 4;
/// Samples kept for the charts (a minute).
pub const HISTORY: usize = 60 * TICKS_PER_SECOND as usize;
/// Lines kept in the event log.
pub const EVENTS: usize = 500;
/// Rows per page in the data view.
pub const PAGE_ROWS: u64 = 100;

/// One node as the console sees it.
#[derive(Clone, Debug, Default)]
pub struct NodeView {
    /// Its id.
    pub id: NodeId,
    /// Where it serves.
    pub address: String,
    /// Its latest status (kept while it is down, to show where it was).
    pub status: Option<pb::NodeStatus>,
    /// Why it cannot be reached, while it cannot.
    pub down: Option<String>,
    /// Whether this console spawned it, and if so whether it runs.
    pub spawned: Option<bool>,
    /// When the console last had a status from it (milliseconds since the Unix epoch).
    pub last_heard_ms: Option<u64>,
}

impl NodeView {
    /// The role as a word: `leader`, `follower`, `candidate`, `learner`, `down` or `unknown`.
    pub fn role(&self) -> &'static str {
        if self.down.is_some() {
            return "down";
        }
        match self.status.as_ref().map(|s| s.role()) {
            Some(pb::Role::Leader) => "leader",
            Some(pb::Role::Follower) => "follower",
            Some(pb::Role::Candidate) => "candidate",
            Some(pb::Role::Learner) => "learner",
            Some(pb::Role::Down) => "down",
            _ => "unknown",
        }
    }

    /// A one-word health: `ok`, `stopped` (a spawned node the operator stopped), `down`,
    /// `halted`, `electing`, `no leader` or `connecting`.
    pub fn health(&self) -> &'static str {
        if self.spawned == Some(false) {
            return "stopped";
        }
        match (&self.down, &self.status) {
            (Some(_), _) => "down",
            (None, None) => "connecting",
            (None, Some(s)) if !s.halted.is_empty() => "halted",
            (None, Some(s)) if s.role() == pb::Role::Candidate => "electing",
            (None, Some(s)) if s.leader == 0 => "no leader",
            _ => "ok",
        }
    }

    /// The health word, followed for an unreachable node by how long ago the console last
    /// heard from it (`down 12s`, `stopped 3m`).
    pub fn health_label(&self, now_ms: u64) -> String {
        let health = self.health();
        match (health, self.last_heard_ms) {
            ("down" | "stopped", Some(heard)) => {
                format!("{health} {}", short_age(now_ms.saturating_sub(heard)))
            }
            _ => health.to_string(),
        }
    }
}

/// How long a follower may be behind without progress before it shows as stalled (the
/// node's own threshold for logging it).
pub const STALLED_MS: u64 = 5_000;

/// A duration in milliseconds as a short age: `850ms`, `12s`, `4m`, `3h`.
pub fn short_age(ms: u64) -> String {
    match ms {
        0..1_000 => format!("{ms}ms"),
        1_000..60_000 => format!("{}s", ms / 1_000),
        60_000..3_600_000 => format!("{}m", ms / 60_000),
        _ => format!("{}h", ms / 3_600_000),
    }
}

/// A line of the event log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsoleEvent {
    /// Milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// The node it happened on, if one.
    pub node: Option<NodeId>,
    /// A short kind (`election`, `leader`, `down`, `action`, `error`, ...).
    pub kind: String,
    /// What happened.
    pub message: String,
}

impl ConsoleEvent {
    /// An outcome of the operator's action.
    pub fn info(at_ms: u64, message: String) -> Self {
        Self { at_ms, node: None, kind: "action".into(), message }
    }

    /// A failed action.
    pub fn error(at_ms: u64, message: String) -> Self {
        Self { at_ms, node: None, kind: "error".into(), message }
    }
}

/// The nodes, a history of the cluster for the charts, and the event log.
#[derive(Clone, Debug, Default)]
pub struct ClusterModel {
    /// Nodes by id.
    pub nodes: BTreeMap<NodeId, NodeView>,
    /// The selected row (an index into `nodes`).
    pub selected: usize,
    /// Entries committed per tick, newest last.
    pub commits: VecDeque<u64>,
    /// The highest term seen at each tick, newest last.
    pub terms: VecDeque<u64>,
    /// The highest commit index at the last sample.
    last_commit: Option<u64>,
    /// The highest commit index at each tick, with its time (ms), newest last: how long ago
    /// the cluster committed what a follower has not applied yet.
    commit_times: VecDeque<(u64, u64)>,
    /// The event log, newest last.
    pub events: VecDeque<ConsoleEvent>,
    /// Lines scrolled back from the newest event.
    pub events_scroll: usize,
}

impl ClusterModel {
    /// Adds a node to watch (no-op if known).
    pub fn add_node(&mut self, id: NodeId, address: String) -> bool {
        if self.nodes.contains_key(&id) {
            return false;
        }
        self.nodes.insert(id, NodeView { id, address, ..Default::default() });
        true
    }

    /// Takes a node's status; returns members it names that the console does not watch yet.
    pub fn on_status(
        &mut self,
        id: NodeId,
        status: pb::NodeStatus,
        now_ms: u64,
    ) -> Vec<(NodeId, String)> {
        let mut new = Vec::new();
        for member in &status.members {
            if !member.address.is_empty() && self.add_node(member.id, member.address.clone()) {
                new.push((member.id, member.address.clone()));
            }
        }
        let node = self.nodes.entry(id).or_insert_with(|| NodeView { id, ..Default::default() });
        if node.address.is_empty() {
            node.address = status.address.clone();
        }
        if node.down.take().is_some() {
            self.push_event(ConsoleEvent {
                at_ms: now_ms,
                node: Some(id),
                kind: "up".into(),
                message: "reachable again".into(),
            });
        }
        if let Some(node) = self.nodes.get_mut(&id) {
            node.status = Some(status);
            node.last_heard_ms = Some(now_ms);
        }
        new
    }

    /// Marks a node unreachable (logged once per outage).
    pub fn on_down(&mut self, id: NodeId, reason: String, now_ms: u64) {
        let Some(node) = self.nodes.get_mut(&id) else { return };
        if node.down.is_none() {
            node.down = Some(reason.clone());
            self.push_event(ConsoleEvent {
                at_ms: now_ms,
                node: Some(id),
                kind: "down".into(),
                message: reason,
            });
        }
    }

    /// Records which spawned nodes run.
    pub fn on_spawned(&mut self, nodes: &[(NodeId, bool)]) {
        for (id, running) in nodes {
            if let Some(node) = self.nodes.get_mut(id) {
                node.spawned = Some(*running);
            }
        }
    }

    /// Adds an event a node reported.
    pub fn on_node_event(&mut self, event: pb::NodeEvent) {
        self.push_event(ConsoleEvent {
            at_ms: event.at_ms,
            node: Some(event.node),
            kind: event.kind,
            message: event.message,
        });
    }

    /// Appends to the event log, dropping the oldest beyond [`EVENTS`].
    pub fn push_event(&mut self, event: ConsoleEvent) {
        self.events.push_back(event);
        if self.events.len() > EVENTS {
            self.events.pop_front();
        }
    }

    /// Scrolls the event log (positive: towards newer).
    pub fn scroll_events(&mut self, lines: isize) {
        let max = self.events.len().saturating_sub(1);
        self.events_scroll = self.events_scroll.saturating_add_signed(-lines).min(max);
    }

    /// Takes one chart sample.
    pub fn sample(&mut self, now_ms: u64) {
        let live = || self.nodes.values().filter(|n| n.down.is_none());
        let commit = live().filter_map(|n| n.status.as_ref()).map(|s| s.commit_index).max();
        let term = live().filter_map(|n| n.status.as_ref()).map(|s| s.term).max().unwrap_or(0);
        let delta = match (self.last_commit, commit) {
            (Some(before), Some(now)) => now.saturating_sub(before),
            _ => 0,
        };
        if let Some(commit) = commit {
            self.last_commit = Some(commit);
            self.commit_times.push_back((now_ms, commit));
            if self.commit_times.len() > HISTORY {
                self.commit_times.pop_front();
            }
        }
        push_bounded(&mut self.commits, delta);
        push_bounded(&mut self.terms, term);
    }

    /// Entries committed in the last second.
    pub fn commits_per_second(&self) -> u64 {
        self.commits.iter().rev().take(TICKS_PER_SECOND as usize).sum()
    }

    /// The leader, as the live nodes report it (the highest term wins).
    pub fn leader(&self) -> Option<&NodeView> {
        self.nodes
            .values()
            .filter(|n| n.down.is_none() && n.role() == "leader")
            .max_by_key(|n| n.status.as_ref().map_or(0, |s| s.term))
    }

    /// How many entries a node has still to apply compared with the leader's commit index.
    pub fn lag(&self, node: &NodeView) -> Option<u64> {
        let leader = self.leader()?.status.as_ref()?;
        let status = node.status.as_ref().filter(|_| node.down.is_none())?;
        Some(leader.commit_index.saturating_sub(status.applied_index))
    }

    /// How far behind a node is in time: how long ago the cluster committed the first entry
    /// it has not applied (0 when it has applied everything committed; at most the history
    /// the console keeps, about a minute).
    pub fn lag_ms(&self, node: &NodeView, now_ms: u64) -> Option<u64> {
        let status = node.status.as_ref().filter(|_| node.down.is_none())?;
        if self.lag(node)? == 0 {
            return Some(0);
        }
        let applied = status.applied_index;
        let behind_since = self.commit_times.iter().find(|(_, commit)| *commit > applied);
        match (behind_since, self.commit_times.front()) {
            // Behind since that sample (at most the history the console keeps).
            (Some((at, _)), _) => Some(now_ms.saturating_sub(*at)),
            // Committed after the last sample: behind for less than a tick.
            (None, Some(_)) => Some(0),
            (None, None) => None,
        }
    }

    /// The leader's view of a follower's replication when it needs attention: `stalled 12s`
    /// (it answers but its log has not moved for that long) or `snapshot` (it is being sent
    /// the leader's state). `None` when it replicates normally (or for the leader).
    pub fn replication_health(&self, node: &NodeView) -> Option<String> {
        if node.down.is_some() {
            return None;
        }
        let leader = self.leader()?.status.as_ref()?;
        let peer = leader.peers.iter().find(|p| p.id == node.id)?;
        if peer.stalled_ms >= STALLED_MS {
            Some(format!("stalled {}", short_age(peer.stalled_ms)))
        } else if peer.receiving_snapshot {
            Some("snapshot".into())
        } else {
            None
        }
    }

    /// When the leader last heard from a node, in milliseconds (None for the leader itself).
    pub fn last_contact(&self, id: NodeId) -> Option<u64> {
        let leader = self.leader()?.status.as_ref()?;
        leader.peers.iter().find(|p| p.id == id).map(|p| p.last_contact_ms)
    }

    /// Moves the selection.
    pub fn select(&mut self, by: isize) {
        let count = self.nodes.len();
        if count > 0 {
            self.selected = self.selected.saturating_add_signed(by).min(count - 1);
        }
    }

    /// The selected node's id.
    pub fn selected_id(&self) -> Option<NodeId> {
        self.nodes.keys().nth(self.selected).copied()
    }
}

fn push_bounded(history: &mut VecDeque<u64>, value: u64) {
    history.push_back(value);
    if history.len() > HISTORY {
        history.pop_front();
    }
}

/// A node's log tail, or why it could not be read.
pub type LogTail = Result<pb::LogTailResponse, String>;

/// The data view: row counts per table and node, and a page of one table on one node.
#[derive(Clone, Debug, Default)]
pub struct DataModel {
    /// Row counts: table, then node.
    pub counts: BTreeMap<String, BTreeMap<NodeId, u64>>,
    /// The selected table (an index into `counts`).
    pub selected: usize,
    /// The node whose rows are shown.
    pub node: Option<NodeId>,
    /// The first row of the page.
    pub offset: u64,
    /// The page, as the node returned it.
    pub page: Option<(NodeId, Result<pb::ScanTableResponse, String>)>,
    /// Rows scrolled within the page.
    pub scroll: usize,
}

impl DataModel {
    /// Takes a node's table list.
    pub fn on_tables(&mut self, node: NodeId, tables: Vec<pb::TableInfo>) {
        for counts in self.counts.values_mut() {
            counts.remove(&node);
        }
        for table in tables {
            self.counts.entry(table.name).or_default().insert(node, table.rows);
        }
        self.counts.retain(|_, counts| !counts.is_empty());
        self.selected = self.selected.min(self.counts.len().saturating_sub(1));
        if self.node.is_none() {
            self.node = Some(node);
        }
    }

    /// Takes a page of rows.
    pub fn on_rows(&mut self, node: NodeId, page: Result<pb::ScanTableResponse, String>) {
        self.page = Some((node, page));
    }

    /// The selected table's name.
    pub fn table(&self) -> Option<&str> {
        self.counts.keys().nth(self.selected).map(String::as_str)
    }

    /// Moves the table selection.
    pub fn select_table(&mut self, by: isize) {
        if !self.counts.is_empty() {
            self.selected = self.selected.saturating_add_signed(by).min(self.counts.len() - 1);
            self.offset = 0;
            self.scroll = 0;
        }
    }

    /// Moves to the previous or next node for the page of rows.
    pub fn select_node(&mut self, nodes: &[NodeId], by: isize) {
        if nodes.is_empty() {
            return;
        }
        let at = self.node.and_then(|n| nodes.iter().position(|m| *m == n)).unwrap_or(0);
        let at = at.saturating_add_signed(by).min(nodes.len() - 1);
        self.node = Some(nodes[at]);
    }

    /// Moves a page forwards or back.
    pub fn page(&mut self, by: i64) {
        let total = match &self.page {
            Some((_, Ok(page))) => page.total,
            _ => 0,
        };
        let last = total.saturating_sub(1) / PAGE_ROWS * PAGE_ROWS;
        self.offset = self.offset.saturating_add_signed(by * PAGE_ROWS as i64).min(last);
        self.scroll = 0;
    }

    /// Scrolls within the page.
    pub fn scroll(&mut self, lines: isize) {
        let rows = match &self.page {
            Some((_, Ok(page))) => page.rows.len(),
            _ => 0,
        };
        self.scroll = self.scroll.saturating_add_signed(lines).min(rows.saturating_sub(1));
    }

    /// The page to load for the current selection.
    pub fn page_request(&self) -> Option<crate::app::Effect> {
        Some(crate::app::Effect::LoadRows {
            node: self.node?,
            table: self.table()?.to_string(),
            offset: self.offset,
        })
    }
}

/// The outcome of running SQL in the pane.
#[derive(Clone, Debug, PartialEq)]
pub enum SqlOutcome {
    /// The cluster ran the script: each statement's outcome and the index it reflects.
    Ran {
        /// The statements' outcomes.
        results: Vec<(u64, StatementOutcome)>,
        /// The node that answered.
        node: String,
        /// How long the request took.
        elapsed: Duration,
    },
    /// The request failed (unreachable, unavailable, invalid).
    Failed {
        /// Why.
        message: String,
        /// How long it took to fail.
        elapsed: Duration,
    },
}

impl SqlOutcome {
    /// The last query's result set, if the script had one: columns and rows.
    pub fn last_query(
        &self,
    ) -> Option<(&[chronos::sql::planner::OutputColumn], &[Vec<chronos::sql::types::Value>])> {
        let SqlOutcome::Ran { results, .. } = self else { return None };
        results.iter().rev().find_map(|(_, outcome)| match outcome {
            Ok(chronos::sql::StatementResult::Query { columns, rows }) => {
                Some((columns.as_slice(), rows.as_slice()))
            }
            _ => None,
        })
    }

    /// How far the result can scroll: (rows, columns).
    pub fn extent(&self) -> (usize, usize) {
        self.last_query().map_or((0, 0), |(columns, rows)| {
            (rows.len().saturating_sub(1), columns.len().saturating_sub(1))
        })
    }
}
