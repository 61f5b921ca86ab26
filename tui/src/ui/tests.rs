//! Rendering tests: each view in a fixed state drawn into a `TestBackend` and compared with
//! an insta snapshot (`src/ui/snapshots/`). Times are fixed by the test, so snapshots are
//! stable. Review changes with `cargo insta review` or by reading the `.snap.new` files.

use crate::app::{App, Msg};
use crate::model::SqlOutcome;
use chronos::grpc::pb;
use chronos::replica::StatementError;
use chronos::sql::StatementResult;
use chronos::sql::planner::OutputColumn;
use chronos::sql::types::Value;
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use std::time::Duration;

/// 2026-11-22 10:00:00 UTC.
const NOON: u64 = 1_795_341_600_000;

fn draw(app: &App, width: u16, height: u16) -> TestBackend {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).expect("test terminal");
    terminal.draw(|frame| frame.render_widget(app, frame.area())).expect("draw");
    terminal.backend().clone()
}

fn press(app: &mut App, code: KeyCode) {
    app.update(Msg::Key(KeyEvent::new(code, KeyModifiers::NONE)));
}

fn node_status(
    id: u64,
    role: pb::Role,
    term: u64,
    leader: u64,
    last: u64,
    applied: u64,
) -> pb::NodeStatus {
    let mut status = pb::NodeStatus {
        id,
        address: format!("127.0.0.1:700{id}"),
        term,
        leader,
        voted_for: leader,
        first_index: 1,
        last_index: last,
        commit_index: applied,
        applied_index: applied,
        ..Default::default()
    };
    status.set_role(role);
    status
}

/// A healthy 3-node cluster: node 1 leads in term 3 and has seen 40 commits a second.
fn healthy() -> App {
    let nodes: Vec<(u64, String)> = (1..=3).map(|id| (id, format!("127.0.0.1:700{id}"))).collect();
    let mut app = App::new(&nodes, true, NOON);
    app.update(Msg::Spawned(vec![(1, true), (2, true), (3, true)]));
    let mut leader = node_status(1, pb::Role::Leader, 3, 1, 120, 120);
    leader.peers = vec![
        pb::PeerStatus {
            id: 2,
            match_index: 120,
            next_index: 121,
            last_contact_ms: 25,
            voter: true,
            ..Default::default()
        },
        pb::PeerStatus {
            id: 3,
            match_index: 118,
            next_index: 121,
            last_contact_ms: 50,
            voter: true,
            ..Default::default()
        },
    ];
    for tick in 0..12u64 {
        leader.commit_index = 80 + tick * 4;
        leader.applied_index = leader.commit_index;
        app.update(Msg::Status(1, Box::new(leader.clone())));
        app.update(Msg::Tick(NOON + tick * 250));
    }
    leader.fsync_p99_us = 1_250;
    leader.data_bytes = 5 << 20;
    app.update(Msg::Status(1, Box::new(leader.clone())));
    let mut second = node_status(2, pb::Role::Follower, 3, 1, 124, 124);
    (second.fsync_p99_us, second.data_bytes) = (980, 5 << 20);
    app.update(Msg::Status(2, Box::new(second)));
    let mut third = node_status(3, pb::Role::Follower, 3, 1, 122, 118);
    (third.fsync_p99_us, third.data_bytes) = (14_800, 4_900_000);
    app.update(Msg::Status(3, Box::new(third)));
    for (node, kind, message) in [
        (1, "election", "election for term 3"),
        (1, "leader", "became leader in term 3"),
        (2, "leader", "leader in term 3: node 1"),
    ] {
        let event = pb::NodeEvent {
            at_ms: NOON,
            node,
            kind: kind.into(),
            message: message.into(),
            term: 3,
            index: 0,
        };
        app.update(Msg::NodeEvent(event));
    }
    app
}

#[test]
fn cluster_view_of_a_healthy_cluster() {
    insta::assert_snapshot!(draw(&healthy(), 120, 30));
}

#[test]
fn cluster_view_fits_80_by_24() {
    insta::assert_snapshot!(draw(&healthy(), 80, 24));
}

#[test]
fn cluster_view_with_a_node_down() {
    let mut app = healthy();
    app.update(Msg::Spawned(vec![(1, true), (2, true), (3, false)]));
    app.update(Msg::Down(3, "the node closed its status stream".into()));
    // Twelve seconds after the console last heard from node 3.
    app.update(Msg::Tick(NOON + 2_750 + 12_000));
    insta::assert_snapshot!(draw(&app, 100, 24));
    let narrow = format!("{:?}", draw(&app, 80, 24).buffer());
    assert!(narrow.contains("stopped 12s"), "80 columns keep the time since contact: {narrow}");
}

#[test]
fn cluster_view_during_an_election() {
    let mut app = healthy();
    app.update(Msg::Down(1, "connection refused".into()));
    let mut candidate = node_status(2, pb::Role::Candidate, 4, 0, 124, 124);
    candidate.voted_for = 2;
    app.update(Msg::Status(2, Box::new(candidate)));
    app.update(Msg::Status(3, Box::new(node_status(3, pb::Role::Follower, 4, 0, 124, 124))));
    insta::assert_snapshot!(draw(&app, 100, 24));
}

#[test]
fn help_popup_over_the_cluster_view() {
    let mut app = healthy();
    press(&mut app, KeyCode::Char('?'));
    insta::assert_snapshot!(draw(&app, 100, 24));
}

#[test]
fn data_view_with_a_lagging_node() {
    let mut app = healthy();
    press(&mut app, KeyCode::Char('2'));
    for (node, rows) in [(1, 3), (2, 3), (3, 2)] {
        let tables = vec![
            pb::TableInfo { name: "users".into(), rows },
            pb::TableInfo { name: "orders".into(), rows: 0 },
        ];
        app.update(Msg::Tables(node, tables));
    }
    press(&mut app, KeyCode::Down);
    let columns = chronos::grpc::convert::columns(&[
        OutputColumn { name: "id".into(), datatype: None },
        OutputColumn { name: "name".into(), datatype: None },
    ]);
    let rows = chronos::grpc::convert::rows(&[
        vec![Value::Integer(1), Value::String("Alice".into())],
        vec![Value::Integer(2), Value::String("Bob".into())],
        vec![Value::Integer(3), Value::Null],
    ]);
    let page = pb::ScanTableResponse { columns, rows, total: 3, index: 120 };
    app.update(Msg::Rows(1, Ok(page)));
    insta::assert_snapshot!(draw(&app, 80, 24));
}

#[test]
fn log_view_side_by_side() {
    let mut app = healthy();
    press(&mut app, KeyCode::Char('3'));
    for (node, last, commit, applied) in [(1, 6, 5, 5), (2, 6, 5, 4), (3, 4, 4, 4)] {
        let entries = (1..=last)
            .map(|index| pb::LogEntry {
                index,
                term: if index < 3 { 1 } else { 3 },
                kind: if index == 3 { "noop".into() } else { "command".into() },
                summary: if index == 3 {
                    String::new()
                } else {
                    format!("INSERT INTO t VALUES ({index})")
                },
            })
            .collect();
        let tail = pb::LogTailResponse { entries, commit_index: commit, applied_index: applied };
        app.update(Msg::Log(node, Ok(tail)));
    }
    insta::assert_snapshot!(draw(&app, 120, 14));
}

#[test]
fn sql_view_with_an_error() {
    let mut app = healthy();
    press(&mut app, KeyCode::Char('5'));
    app.editor.set_text("INSERT INTO users VALUES (1, 'again');\nSELECT * FROM users");
    let error = StatementError {
        kind: "unique_violation".into(),
        message: "duplicate primary key 1 in users".into(),
    };
    app.update(Msg::SqlDone(SqlOutcome::Ran {
        results: vec![(120, Err(error))],
        node: "127.0.0.1:7002".into(),
        elapsed: Duration::from_micros(2_400),
    }));
    insta::assert_snapshot!(draw(&app, 80, 24));
}

#[test]
fn sql_view_when_the_cluster_is_unavailable() {
    let mut app = healthy();
    press(&mut app, KeyCode::Char('5'));
    app.editor.set_text("INSERT INTO t VALUES (1)");
    app.update(Msg::SqlDone(SqlOutcome::Failed {
        message: "cluster unavailable: no leader: a quorum of nodes cannot be reached".into(),
        elapsed: Duration::from_secs(5),
    }));
    insta::assert_snapshot!(draw(&app, 80, 16));
}

#[test]
fn sql_view_scrolls_a_wide_result() {
    let mut app = healthy();
    press(&mut app, KeyCode::Char('5'));
    app.editor.set_text("SELECT * FROM wide");
    let columns: Vec<OutputColumn> =
        (0..12).map(|c| OutputColumn { name: format!("column_{c}"), datatype: None }).collect();
    let rows = (0..20)
        .map(|r| (0..12).map(|c| Value::String(format!("r{r}c{c}-value"))).collect())
        .collect();
    app.update(Msg::SqlDone(SqlOutcome::Ran {
        results: vec![(120, Ok(StatementResult::Query { columns, rows }))],
        node: "127.0.0.1:7001".into(),
        elapsed: Duration::from_micros(1_300),
    }));
    press(&mut app, KeyCode::Esc);
    press(&mut app, KeyCode::Right);
    press(&mut app, KeyCode::Right);
    press(&mut app, KeyCode::Down);
    insta::assert_snapshot!(draw(&app, 80, 24));
}

#[test]
fn every_view_draws_on_a_tiny_terminal_without_panicking() {
    let mut app = healthy();
    app.editor.set_text("SELECT a_long_column_name, another_long_column_name FROM t\nWHERE x = 1");
    for (width, height) in [(1, 1), (10, 3), (20, 6), (40, 10)] {
        for tab in ['1', '2', '3', '4'] {
            press(&mut app, KeyCode::Esc);
            press(&mut app, KeyCode::Char(tab));
            let screen = draw(&app, width, height);
            assert_eq!(screen.buffer().area.width, width);
        }
        press(&mut app, KeyCode::Esc);
        press(&mut app, KeyCode::Char('?'));
        draw(&app, width, height);
        press(&mut app, KeyCode::Esc);
    }
}

#[test]
fn a_wide_cluster_view_shows_lag_in_time_fsync_and_disk() {
    insta::assert_snapshot!(draw(&healthy(), 150, 14));
}

#[test]
fn statements_view_sorted_by_total_time() {
    let mut app = healthy();
    press(&mut app, KeyCode::Char('4'));
    let statistic = |fingerprint: &str, count, errors, total_us, p99_us| pb::StatementStatistic {
        fingerprint: fingerprint.into(),
        kind: "select".into(),
        count,
        errors,
        rows_returned: count,
        total_us,
        p50_us: total_us / count / 2,
        p99_us,
        max_us: p99_us + 100,
        ..Default::default()
    };
    let node1 = vec![
        statistic("select v from t where id = ?", 1200, 0, 960_000, 1_900),
        statistic("insert into t values (?, ...)", 300, 4, 2_400_000, 21_000),
    ];
    app.update(Msg::Statements(1, Ok(node1)));
    app.update(Msg::Statements(
        2,
        Ok(vec![statistic("select count(*) from t", 5, 0, 40_000, 9_500)]),
    ));
    app.update(Msg::Statements(3, Err("cannot reach the cluster".into())));
    insta::assert_snapshot!(draw(&app, 110, 12));
}

#[test]
fn an_edge_cluster_shows_its_forwarding_backlog_and_lag() {
    let mut app = healthy();
    let mut leader = app.cluster.nodes[&1].status.clone().unwrap();
    leader.edge = Some(pb::EdgeStatus {
        edge: "edge-7".into(),
        tables: vec!["readings".into()],
        upstream: vec!["10.0.0.1:7001".into()],
        backlog: 4321,
        forwarded: 900,
        lag_ms: 12_000,
        error: String::new(),
    });
    app.update(Msg::Status(1, Box::new(leader)));
    let screen = draw(&app, 110, 14).to_string();
    assert!(screen.contains("backlog") && screen.contains("fwd lag"), "{screen}");
    assert!(screen.contains("4321") && screen.contains("12s"), "{screen}");
    // A cluster that forwards nothing has no such columns.
    assert!(!draw(&healthy(), 110, 14).to_string().contains("backlog"));
}
