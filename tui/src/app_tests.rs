//! The console's rules without a terminal: keys, focus, confirmations, scrolling, history,
//! and how statuses and ticks turn into the cluster model and effects.

use super::*;
use crate::model::SqlOutcome;
use chronos::sql::StatementResult;
use chronos::sql::planner::OutputColumn;
use chronos::sql::types::Value;
use std::time::Duration;

fn key(code: KeyCode) -> Msg {
    Msg::Key(KeyEvent::new(code, KeyModifiers::NONE))
}

fn ctrl(c: char) -> Msg {
    Msg::Key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::CONTROL))
}

fn three_nodes() -> App {
    let nodes: Vec<(NodeId, String)> =
        (1..=3).map(|id| (id, format!("127.0.0.1:700{id}"))).collect();
    App::new(&nodes, true, 1_000)
}

fn status(id: NodeId, role: pb::Role, term: u64, leader: NodeId, commit: u64) -> Msg {
    let mut status = pb::NodeStatus {
        id,
        address: format!("127.0.0.1:700{id}"),
        term,
        leader,
        last_index: commit,
        commit_index: commit,
        applied_index: commit,
        ..Default::default()
    };
    status.set_role(role);
    Msg::Status(id, Box::new(status))
}

fn query(rows: usize, columns: usize) -> SqlOutcome {
    let columns: Vec<OutputColumn> =
        (0..columns).map(|c| OutputColumn { name: format!("c{c}"), datatype: None }).collect();
    let rows = (0..rows)
        .map(|r| (0..columns.len()).map(|c| Value::Integer((r * c) as i64)).collect())
        .collect();
    SqlOutcome::Ran {
        results: vec![(7, Ok(StatementResult::Query { columns, rows }))],
        node: "127.0.0.1:7001".into(),
        elapsed: Duration::from_millis(3),
    }
}

#[test]
fn tab_and_number_keys_switch_views_and_the_sql_view_starts_editing() {
    let mut app = three_nodes();
    app.update(key(KeyCode::Tab));
    assert_eq!(app.tab, Tab::Data);
    app.update(key(KeyCode::BackTab));
    app.update(key(KeyCode::BackTab));
    assert_eq!(app.tab, Tab::Sql);
    assert!(app.editing);
    // In the editor, digits and q are text.
    app.update(key(KeyCode::Char('q')));
    app.update(key(KeyCode::Char('3')));
    assert_eq!(app.editor.text(), "q3");
    assert_eq!(app.tab, Tab::Sql);
    app.update(key(KeyCode::Esc));
    app.update(key(KeyCode::Char('3')));
    assert_eq!(app.tab, Tab::Log);
    assert_eq!(app.update(key(KeyCode::Char('q'))), vec![Effect::Quit]);
}

#[test]
fn ctrl_c_quits_from_anywhere_even_the_editor() {
    let mut app = three_nodes();
    app.update(key(KeyCode::Char('5')));
    assert!(app.editing);
    assert_eq!(app.update(ctrl('c')), vec![Effect::Quit]);
}

#[test]
fn help_opens_with_question_mark_and_any_key_closes_it() {
    let mut app = three_nodes();
    app.update(key(KeyCode::Char('?')));
    assert!(app.help);
    assert_eq!(app.update(key(KeyCode::Char('q'))), vec![], "the key only closes the help");
    assert!(!app.help);
}

#[test]
fn running_sql_records_history_and_waits_for_the_outcome() {
    let mut app = three_nodes();
    app.update(key(KeyCode::Char('5')));
    assert_eq!(app.update(key(KeyCode::F(5))), vec![], "nothing to run");
    for c in "SELECT 1".chars() {
        app.update(key(KeyCode::Char(c)));
    }
    assert_eq!(app.update(key(KeyCode::F(5))), vec![Effect::Execute("SELECT 1".into())]);
    assert!(app.sql_running);
    assert_eq!(app.update(ctrl('r')), vec![], "one query at a time");
    app.update(Msg::SqlDone(query(1, 1)));
    assert!(!app.sql_running);
    assert_eq!(app.editor.history(), ["SELECT 1"]);
    assert_eq!(app.update(ctrl('r')), vec![Effect::Execute("SELECT 1".into())], "reruns");
}

#[test]
fn result_scrolling_stops_at_the_last_row_and_column() {
    let mut app = three_nodes();
    app.update(key(KeyCode::Char('5')));
    app.update(Msg::SqlDone(query(30, 4)));
    app.update(key(KeyCode::PageDown));
    app.update(key(KeyCode::PageDown));
    app.update(key(KeyCode::PageDown));
    assert_eq!(app.sql_scroll, (29, 0));
    app.update(key(KeyCode::Esc));
    for _ in 0..10 {
        app.update(key(KeyCode::Right));
    }
    assert_eq!(app.sql_scroll, (29, 3));
    app.update(Msg::Scroll(-100));
    assert_eq!(app.sql_scroll, (0, 3));
    app.update(Msg::SqlDone(query(2, 2)));
    assert_eq!(app.sql_scroll, (0, 0), "a new result starts at the top");
}

#[test]
fn stopping_and_removing_ask_first_and_only_yes_confirms() {
    let mut app = three_nodes();
    app.update(key(KeyCode::Down));
    assert_eq!(app.update(key(KeyCode::Char('s'))), vec![]);
    assert!(app.confirm.as_ref().is_some_and(|c| c.question.contains("Stop node 2")));
    assert_eq!(app.update(key(KeyCode::Char('n'))), vec![]);
    assert!(app.confirm.is_none());
    app.update(key(KeyCode::Char('x')));
    assert_eq!(app.update(key(KeyCode::Char('y'))), vec![Effect::Remove(2)]);
    assert_eq!(app.update(key(KeyCode::Char('t'))), vec![Effect::Transfer(2)], "no question");
    assert_eq!(app.update(key(KeyCode::Char('r'))), vec![Effect::Restart(2)]);
}

#[test]
fn stop_restart_and_add_need_a_spawned_cluster() {
    let nodes = vec![(1, "127.0.0.1:7001".to_string())];
    let mut app = App::new(&nodes, false, 0);
    for c in ['s', 'r', 'a'] {
        assert_eq!(app.update(key(KeyCode::Char(c))), vec![]);
        assert!(app.confirm.is_none());
    }
}

#[test]
fn statuses_find_new_members_and_a_node_going_down_is_logged_once() {
    let mut app = three_nodes();
    let mut leader = pb::NodeStatus { id: 1, leader: 1, ..Default::default() };
    leader.set_role(pb::Role::Leader);
    leader.members = vec![pb::Member { id: 4, address: "127.0.0.1:7004".into(), voter: false }];
    let effects = app.update(Msg::Status(1, Box::new(leader)));
    assert_eq!(effects, vec![Effect::Watch(4, "127.0.0.1:7004".into())]);
    assert!(app.update(Msg::Status(1, Box::default())).is_empty());
    app.update(Msg::Down(2, "connection refused".into()));
    app.update(Msg::Down(2, "connection refused".into()));
    let downs = app.cluster.events.iter().filter(|e| e.kind == "down").count();
    assert_eq!(downs, 1);
    app.update(status(2, pb::Role::Follower, 1, 1, 0));
    assert_eq!(app.cluster.events.back().map(|e| e.kind.as_str()), Some("up"));
}

#[test]
fn ticks_chart_commits_per_second_and_refresh_details_once_a_second() {
    let mut app = three_nodes();
    app.update(status(1, pb::Role::Leader, 2, 1, 100));
    let mut refreshes = 0;
    for tick in 1..=TICKS_PER_SECOND {
        app.update(status(1, pb::Role::Leader, 2, 1, 100 + tick * 10));
        let effects = app.update(Msg::Tick(1_000 + tick * 250));
        refreshes += effects.iter().filter(|e| **e == Effect::RefreshDetails).count();
    }
    assert_eq!(refreshes, 1);
    // The first sample has nothing to compare with; the next three saw 10 commits each.
    assert_eq!(app.cluster.commits_per_second(), 30);
    assert_eq!(app.cluster.terms.back(), Some(&2));
}

#[test]
fn lag_is_measured_against_the_leaders_commit_index() {
    let mut app = three_nodes();
    app.update(status(1, pb::Role::Leader, 3, 1, 50));
    app.update(status(2, pb::Role::Follower, 3, 1, 45));
    let follower = &app.cluster.nodes[&2];
    assert_eq!(app.cluster.lag(follower), Some(5));
    app.update(Msg::Down(2, "gone".into()));
    assert_eq!(app.cluster.lag(&app.cluster.nodes[&2]), None, "no lag for a node that is down");
}

#[test]
fn the_data_view_pages_within_the_table_and_reloads_on_selection() {
    let mut app = three_nodes();
    app.update(key(KeyCode::Char('2')));
    let tables = vec![
        pb::TableInfo { name: "a".into(), rows: 250 },
        pb::TableInfo { name: "b".into(), rows: 1 },
    ];
    app.update(Msg::Tables(1, tables.clone()));
    app.update(Msg::Tables(2, tables));
    let page = pb::ScanTableResponse { total: 250, ..Default::default() };
    app.update(Msg::Rows(1, Ok(page)));
    let load = |offset| Effect::LoadRows { node: 1, table: "a".into(), offset };
    assert_eq!(app.update(key(KeyCode::PageDown)), vec![load(100)]);
    assert_eq!(app.update(key(KeyCode::PageDown)), vec![load(200)]);
    assert_eq!(app.update(key(KeyCode::PageDown)), vec![load(200)], "the last page");
    let next_node = Effect::LoadRows { node: 2, table: "a".into(), offset: 200 };
    assert_eq!(app.update(key(KeyCode::Right)), vec![next_node]);
    let next_table = Effect::LoadRows { node: 2, table: "b".into(), offset: 0 };
    assert_eq!(app.update(key(KeyCode::Down)), vec![next_table]);
    // A table gone from every node disappears.
    app.update(Msg::Tables(1, vec![]));
    app.update(Msg::Tables(2, vec![]));
    assert!(app.data.counts.is_empty());
}

#[test]
fn a_down_node_shows_how_long_ago_the_console_last_heard_from_it() {
    let mut app = three_nodes();
    app.update(Msg::Tick(5_000));
    app.update(status(2, pb::Role::Follower, 1, 1, 10));
    app.update(Msg::Down(2, "connection refused".into()));
    let node = |app: &App| app.cluster.nodes[&2].clone();
    assert_eq!(node(&app).health_label(app.now_ms), "down 0ms");
    app.update(Msg::Tick(5_000 + 42_500));
    assert_eq!(node(&app).health_label(app.now_ms), "down 42s");
    app.update(Msg::Tick(5_000 + 3 * 60_000));
    assert_eq!(node(&app).health_label(app.now_ms), "down 3m");
    // A node never heard from has no age to show, and a live one shows only its health.
    assert_eq!(app.cluster.nodes[&3].health_label(app.now_ms), "connecting");
    app.update(status(2, pb::Role::Follower, 1, 1, 10));
    assert_eq!(node(&app).health_label(app.now_ms), "ok");
}

/// Issue 12, item 2: a follower that answers but does not catch up is visible in the console,
/// as is one being sent a snapshot.
#[test]
fn a_stalled_follower_and_one_receiving_a_snapshot_show_in_the_health_column() {
    let mut app = three_nodes();
    let Msg::Status(_, mut leader) = status(1, pb::Role::Leader, 2, 1, 500) else { panic!() };
    leader.peers = vec![
        pb::PeerStatus { id: 2, match_index: 120, stalled_ms: 12_000, ..Default::default() },
        pb::PeerStatus { id: 3, match_index: 0, receiving_snapshot: true, ..Default::default() },
    ];
    app.update(Msg::Status(1, leader));
    app.update(status(2, pb::Role::Follower, 2, 1, 120));
    app.update(status(3, pb::Role::Follower, 2, 1, 0));
    let health = |app: &App, id: NodeId| app.cluster.replication_health(&app.cluster.nodes[&id]);
    assert_eq!(health(&app, 1), None, "the leader itself");
    assert_eq!(health(&app, 2).as_deref(), Some("stalled 12s"));
    assert_eq!(health(&app, 3).as_deref(), Some("snapshot"));
}

#[test]
fn the_statements_view_fetches_on_entry_and_each_second_and_sorts_by_key() {
    let mut app = three_nodes();
    assert_eq!(app.update(key(KeyCode::Char('4'))), vec![Effect::RefreshStatements]);
    assert_eq!(app.tab, Tab::Statements);
    let statistic = |print: &str, count, total_us, p99_us| pb::StatementStatistic {
        fingerprint: print.into(),
        count,
        total_us,
        p99_us,
        ..Default::default()
    };
    app.update(Msg::Statements(
        1,
        Ok(vec![statistic("a", 1, 900, 900), statistic("b", 50, 500, 20)]),
    ));
    app.update(Msg::Statements(2, Ok(vec![statistic("a", 3, 600, 400)])));
    app.update(Msg::Statements(3, Err("unreachable".into())));
    let order = |app: &App| -> Vec<(u64, String)> {
        app.statements.rows().iter().map(|(n, s)| (*n, s.fingerprint.clone())).collect()
    };
    assert_eq!(order(&app), [(1, "a".into()), (2, "a".into()), (1, "b".into())], "by total time");
    app.update(key(KeyCode::Char('c')));
    assert_eq!(order(&app)[0], (1, "b".into()), "by count");
    app.update(key(KeyCode::Char('p')));
    assert_eq!(order(&app)[0], (1, "a".into()), "by p99");
    assert_eq!(app.statements.failures(), [(3, "unreachable")]);
    // The view refreshes with the other details once a second, and only while it is shown.
    let ticks = |app: &mut App| -> Vec<Effect> {
        (0..TICKS_PER_SECOND).flat_map(|_| app.update(Msg::Tick(0))).collect()
    };
    assert!(ticks(&mut app).contains(&Effect::RefreshStatements));
    app.update(key(KeyCode::Char('1')));
    assert!(!ticks(&mut app).contains(&Effect::RefreshStatements));
}

#[test]
fn lag_in_time_is_how_long_ago_the_cluster_committed_what_a_node_has_not_applied() {
    let mut app = three_nodes();
    // The leader commits 10 entries a tick (250 ms); node 2 keeps up, node 3 stops at 30.
    for tick in 1..=8u64 {
        app.update(status(1, pb::Role::Leader, 2, 1, tick * 10));
        app.update(status(2, pb::Role::Follower, 2, 1, tick * 10));
        app.update(status(3, pb::Role::Follower, 2, 1, (tick * 10).min(30)));
        app.update(Msg::Tick(1_000 + tick * 250));
    }
    let lag = |app: &App, id| app.cluster.lag_ms(&app.cluster.nodes[&id], app.now_ms);
    assert_eq!(lag(&app, 2), Some(0));
    // Index 40 was committed at tick 4 (2,000 ms); it is now 3,000 ms.
    assert_eq!(lag(&app, 3), Some(1_000));
    // A follower only just behind (the leader moved on after the last sample) shows 0.
    app.update(status(1, pb::Role::Leader, 2, 1, 85));
    assert_eq!(lag(&app, 2), Some(0));
}
