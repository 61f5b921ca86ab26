//! The console's state and how it changes: the "model" and "update" of the Elm architecture.
//!
//! [`App::update`] takes one [`Msg`] (a key, a status from a node, a finished query, a tick)
//! and returns the [`Effect`]s the runtime should carry out (network calls, node restarts).
//! It never does I/O and never looks at the clock: time comes in as ticks. That keeps every
//! rule of the console testable without a terminal or a cluster.

use crate::editor::Editor;
use crate::model::{
    ClusterModel, ConsoleEvent, DataModel, LogTail, NodeId, SqlOutcome, TICKS_PER_SECOND,
};
use chronos::grpc::pb;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers, MouseEventKind};

/// The console's views.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tab {
    /// Nodes, roles, indexes, charts and events.
    Cluster,
    /// Tables with per-node row counts, and a page of rows.
    Data,
    /// The tail of each node's Raft log.
    Log,
    /// The statements each node served, by fingerprint.
    Statements,
    /// The SQL editor and results.
    Sql,
}

impl Tab {
    /// Every tab, in order (number keys 1-5 pick them).
    pub const ALL: [Tab; 5] = [Tab::Cluster, Tab::Data, Tab::Log, Tab::Statements, Tab::Sql];

    /// The tab's title.
    pub fn title(self) -> &'static str {
        match self {
            Tab::Cluster => "Cluster",
            Tab::Data => "Data",
            Tab::Log => "Log",
            Tab::Statements => "Statements",
            Tab::Sql => "SQL",
        }
    }

    fn next(self) -> Tab {
        let at = Tab::ALL.iter().position(|t| *t == self).unwrap_or(0);
        Tab::ALL[(at + 1) % Tab::ALL.len()]
    }

    fn previous(self) -> Tab {
        let at = Tab::ALL.iter().position(|t| *t == self).unwrap_or(0);
        Tab::ALL[(at + Tab::ALL.len() - 1) % Tab::ALL.len()]
    }
}

/// Something that happened, for the console to take in.
#[derive(Clone, Debug)]
pub enum Msg {
    /// A key press.
    Key(KeyEvent),
    /// The terminal was resized (nothing changes but the next drawing).
    Resize,
    /// The mouse wheel: positive scrolls down.
    Scroll(i32),
    /// A tick of the console's clock (`TICKS_PER_SECOND` a second), with the wall-clock time
    /// in milliseconds since the Unix epoch.
    Tick(u64),
    /// A node's status, from its Watch stream.
    Status(NodeId, Box<pb::NodeStatus>),
    /// A node could not be reached.
    Down(NodeId, String),
    /// An event a node reported (election, leader change, snapshot, ...).
    NodeEvent(pb::NodeEvent),
    /// A node's tables and row counts.
    Tables(NodeId, Vec<pb::TableInfo>),
    /// A page of a table's rows, as stored on one node.
    Rows(NodeId, Result<pb::ScanTableResponse, String>),
    /// A node's log tail.
    Log(NodeId, LogTail),
    /// A node's statement statistics (for the Statements view).
    Statements(NodeId, Result<Vec<pb::StatementStatistic>, String>),
    /// The SQL pane's query finished.
    SqlDone(SqlOutcome),
    /// An operator action finished (or failed), in words.
    ActionDone(Result<String, String>),
    /// The set of nodes this console spawned, and which of them run.
    Spawned(Vec<(NodeId, bool)>),
}

/// Work for the runtime.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    /// Start watching a node at an address.
    Watch(NodeId, String),
    /// Fetch every node's tables and log tail.
    RefreshDetails,
    /// Fetch every node's statement statistics.
    RefreshStatements,
    /// Fetch a page of a table from a node.
    LoadRows {
        /// The node.
        node: NodeId,
        /// The table.
        table: String,
        /// The first row.
        offset: u64,
    },
    /// Run SQL through any live node.
    Execute(String),
    /// Hand leadership to a node.
    Transfer(NodeId),
    /// Stop a spawned node.
    Stop(NodeId),
    /// Restart a spawned node.
    Restart(NodeId),
    /// Spawn a new node and add it as a learner.
    AddNode,
    /// Make a learner a voter.
    Promote(NodeId),
    /// Remove a node from the cluster.
    Remove(NodeId),
    /// Leave the console.
    Quit,
}

/// A question the operator must answer before an action runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Confirm {
    /// The question.
    pub question: String,
    /// What runs on `y`.
    pub effect: Effect,
}

/// The whole console state.
pub struct App {
    /// The current view.
    pub tab: Tab,
    /// The nodes, their history and the event log.
    pub cluster: ClusterModel,
    /// The data view's selection and page.
    pub data: DataModel,
    /// Each node's log tail.
    pub logs: std::collections::BTreeMap<NodeId, LogTail>,
    /// The Statements view: each node's statement statistics.
    pub statements: crate::statements::StatementsModel,
    /// The SQL editor.
    pub editor: Editor,
    /// Whether keys go to the SQL editor (in the SQL tab).
    pub editing: bool,
    /// The last query's outcome.
    pub sql: Option<SqlOutcome>,
    /// Whether a query is running.
    pub sql_running: bool,
    /// Result scroll: first row and first column shown.
    pub sql_scroll: (usize, usize),
    /// Whether the help popup is open.
    pub help: bool,
    /// A pending confirmation.
    pub confirm: Option<Confirm>,
    /// Whether this console spawned the cluster (stop/restart/add are possible).
    pub spawned: bool,
    /// Ticks so far.
    pub ticks: u64,
    /// The wall-clock time of the latest tick (milliseconds since the Unix epoch).
    pub now_ms: u64,
}

impl App {
    /// A console for the given nodes (`spawned`: started by this console), at wall-clock
    /// time `now_ms`.
    pub fn new(nodes: &[(NodeId, String)], spawned: bool, now_ms: u64) -> Self {
        let mut cluster = ClusterModel::default();
        for (id, address) in nodes {
            cluster.add_node(*id, address.clone());
        }
        let data = DataModel { node: cluster.nodes.keys().next().copied(), ..Default::default() };
        Self {
            tab: Tab::Cluster,
            cluster,
            data,
            logs: Default::default(),
            statements: Default::default(),
            editor: Editor::default(),
            editing: false,
            sql: None,
            sql_running: false,
            sql_scroll: (0, 0),
            help: false,
            confirm: None,
            spawned,
            ticks: 0,
            now_ms,
        }
    }

    /// The effects to start with: watch every known node.
    pub fn start(&self) -> Vec<Effect> {
        let mut effects: Vec<Effect> =
            self.cluster.nodes.values().map(|n| Effect::Watch(n.id, n.address.clone())).collect();
        effects.push(Effect::RefreshDetails);
        effects
    }

    /// Takes in one message and returns what to do about it.
    pub fn update(&mut self, msg: Msg) -> Vec<Effect> {
        match msg {
            Msg::Key(key) if key.kind != KeyEventKind::Release => self.on_key(key),
            Msg::Key(_) | Msg::Resize => vec![],
            Msg::Scroll(lines) => {
                self.scroll(lines);
                vec![]
            }
            Msg::Tick(now_ms) => self.on_tick(now_ms),
            Msg::Status(id, status) => self
                .cluster
                .on_status(id, *status, self.now_ms)
                .into_iter()
                .map(|(id, address)| Effect::Watch(id, address))
                .collect(),
            Msg::Down(id, reason) => {
                self.cluster.on_down(id, reason, self.now_ms);
                vec![]
            }
            Msg::NodeEvent(event) => {
                self.cluster.on_node_event(event);
                vec![]
            }
            Msg::Tables(id, tables) => {
                self.data.on_tables(id, tables);
                vec![]
            }
            Msg::Rows(id, page) => {
                self.data.on_rows(id, page);
                vec![]
            }
            Msg::Log(id, tail) => {
                self.logs.insert(id, tail);
                vec![]
            }
            Msg::Statements(id, statistics) => {
                self.statements.on_statistics(id, statistics);
                vec![]
            }
            Msg::SqlDone(outcome) => {
                self.sql_running = false;
                self.sql_scroll = (0, 0);
                self.sql = Some(outcome);
                vec![]
            }
            Msg::ActionDone(result) => {
                let event = match result {
                    Ok(text) => ConsoleEvent::info(self.now_ms, text),
                    Err(text) => ConsoleEvent::error(self.now_ms, text),
                };
                self.cluster.push_event(event);
                vec![]
            }
            Msg::Spawned(nodes) => {
                self.cluster.on_spawned(&nodes);
                vec![]
            }
        }
    }

    fn on_tick(&mut self, now_ms: u64) -> Vec<Effect> {
        self.ticks += 1;
        self.now_ms = now_ms;
        self.cluster.sample(now_ms);
        if !self.ticks.is_multiple_of(TICKS_PER_SECOND) {
            return vec![];
        }
        let mut effects = vec![Effect::RefreshDetails];
        if self.tab == Tab::Statements {
            effects.push(Effect::RefreshStatements);
        }
        if let Some(load) = self.data.page_request() {
            effects.push(load);
        }
        effects
    }

    fn on_key(&mut self, key: KeyEvent) -> Vec<Effect> {
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        if ctrl && key.code == KeyCode::Char('c') {
            return vec![Effect::Quit];
        }
        if let Some(confirm) = self.confirm.take() {
            return match key.code {
                KeyCode::Char('y') | KeyCode::Char('Y') => vec![confirm.effect],
                _ => vec![],
            };
        }
        if self.help {
            self.help = false;
            return vec![];
        }
        if self.tab == Tab::Sql && self.editing {
            return self.on_editor_key(key);
        }
        match key.code {
            KeyCode::Char('q') => return vec![Effect::Quit],
            KeyCode::Char('?') | KeyCode::F(1) => self.help = true,
            KeyCode::Tab => return self.switch(self.tab.next()),
            KeyCode::BackTab => return self.switch(self.tab.previous()),
            KeyCode::Char(c @ '1'..='5') => {
                return self.switch(Tab::ALL[c as usize - '1' as usize]);
            }
            _ => return self.on_view_key(key),
        }
        vec![]
    }

    /// Shows `tab`; the Statements view fetches its data at once.
    fn switch(&mut self, tab: Tab) -> Vec<Effect> {
        self.tab = tab;
        self.editing = tab == Tab::Sql;
        match tab {
            Tab::Statements => vec![Effect::RefreshStatements],
            _ => vec![],
        }
    }

    fn on_view_key(&mut self, key: KeyEvent) -> Vec<Effect> {
        let down = matches!(key.code, KeyCode::Down | KeyCode::Char('j'));
        let up = matches!(key.code, KeyCode::Up | KeyCode::Char('k'));
        let left = matches!(key.code, KeyCode::Left | KeyCode::Char('h'));
        let right = matches!(key.code, KeyCode::Right | KeyCode::Char('l'));
        match self.tab {
            Tab::Cluster => {
                if down || up {
                    self.cluster.select(if down { 1 } else { -1 });
                    return vec![];
                }
                return self.on_action_key(key.code);
            }
            Tab::Data => {
                if down || up {
                    self.data.select_table(if down { 1 } else { -1 });
                } else if left || right {
                    let nodes: Vec<NodeId> = self.cluster.nodes.keys().copied().collect();
                    self.data.select_node(&nodes, if right { 1 } else { -1 });
                } else if key.code == KeyCode::PageDown {
                    self.data.page(1);
                } else if key.code == KeyCode::PageUp {
                    self.data.page(-1);
                } else {
                    return vec![];
                }
                return self.data.page_request().into_iter().collect();
            }
            Tab::Log => {
                if down || up {
                    self.cluster.select(if down { 1 } else { -1 });
                }
            }
            Tab::Statements => match key.code {
                KeyCode::Char('t') => self.statements.sort = crate::statements::SortBy::Total,
                KeyCode::Char('c') => self.statements.sort = crate::statements::SortBy::Count,
                KeyCode::Char('p') => self.statements.sort = crate::statements::SortBy::P99,
                _ if down || up => self.statements.scroll_by(if down { 1 } else { -1 }),
                _ => {}
            },
            Tab::Sql => match key.code {
                KeyCode::Char('i') | KeyCode::Enter => self.editing = true,
                _ if down || up || left || right => {
                    let (dr, dc) = match (down, up, left) {
                        (true, _, _) => (1, 0),
                        (_, true, _) => (-1, 0),
                        (_, _, true) => (0, -1),
                        _ => (0, 1),
                    };
                    self.scroll_results(dr, dc);
                }
                _ => {}
            },
        }
        vec![]
    }

    /// Actions on the selected node (cluster view).
    fn on_action_key(&mut self, code: KeyCode) -> Vec<Effect> {
        let Some(id) = self.cluster.selected_id() else { return vec![] };
        let (question, effect) = match code {
            KeyCode::Char('t') => return vec![Effect::Transfer(id)],
            KeyCode::Char('p') => return vec![Effect::Promote(id)],
            KeyCode::Char('s') if self.spawned => (format!("Stop node {id}?"), Effect::Stop(id)),
            KeyCode::Char('r') if self.spawned => return vec![Effect::Restart(id)],
            KeyCode::Char('a') if self.spawned => return vec![Effect::AddNode],
            KeyCode::Char('x') => {
                (format!("Remove node {id} from the cluster?"), Effect::Remove(id))
            }
            _ => return vec![],
        };
        self.confirm = Some(Confirm { question: format!("{question} (y/n)"), effect });
        vec![]
    }

    fn on_editor_key(&mut self, key: KeyEvent) -> Vec<Effect> {
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        let alt = key.modifiers.contains(KeyModifiers::ALT);
        match key.code {
            KeyCode::F(5) => return self.run_sql(),
            KeyCode::Enter if ctrl || alt => return self.run_sql(),
            KeyCode::Char('r') if ctrl => return self.run_sql(),
            KeyCode::Esc => self.editing = false,
            KeyCode::Tab => return self.switch(self.tab.next()),
            KeyCode::BackTab => return self.switch(self.tab.previous()),
            KeyCode::F(1) => self.help = true,
            KeyCode::PageDown => self.scroll_results(10, 0),
            KeyCode::PageUp => self.scroll_results(-10, 0),
            _ => self.editor.key(key),
        }
        vec![]
    }

    fn run_sql(&mut self) -> Vec<Effect> {
        let text = self.editor.text();
        if text.trim().is_empty() || self.sql_running {
            return vec![];
        }
        self.editor.commit_to_history();
        self.sql_running = true;
        vec![Effect::Execute(text)]
    }

    fn scroll(&mut self, lines: i32) {
        match self.tab {
            Tab::Sql => self.scroll_results(lines as isize, 0),
            Tab::Data => self.data.scroll(lines as isize),
            Tab::Cluster => self.cluster.scroll_events(lines as isize),
            Tab::Statements => self.statements.scroll_by(lines as isize),
            Tab::Log => {}
        }
    }

    fn scroll_results(&mut self, rows: isize, columns: isize) {
        let (row, column) = self.sql_scroll;
        let (max_row, max_column) = self.sql.as_ref().map_or((0, 0), SqlOutcome::extent);
        self.sql_scroll = (
            row.saturating_add_signed(rows).min(max_row),
            column.saturating_add_signed(columns).min(max_column),
        );
    }

    /// Whether a scroll event is worth handling (the wheel, not clicks or moves).
    pub fn scroll_lines(kind: MouseEventKind) -> Option<i32> {
        match kind {
            MouseEventKind::ScrollDown => Some(3),
            MouseEventKind::ScrollUp => Some(-3),
            _ => None,
        }
    }
}

#[cfg(test)]
#[path = "app_tests.rs"]
mod tests;
