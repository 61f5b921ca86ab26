//! The cluster view: a row per node, charts of commits per second and the term, and the event
//! log.

use super::{clock, health_style, role_style};
use crate::app::App;
use crate::model::NodeView;
use chronos::sql::format::human_bytes;
use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Style, Stylize};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Cell, Paragraph, Row, Sparkline, Table, Widget};

pub fn render(app: &App, area: Rect, buf: &mut Buffer) {
    let table_height = app.cluster.nodes.len() as u16 + 3;
    let [nodes, charts, events] = Layout::vertical([
        Constraint::Length(table_height),
        Constraint::Length(6),
        Constraint::Fill(1),
    ])
    .areas(area);
    render_nodes(app, nodes, buf);
    render_charts(app, charts, buf);
    render_events(app, events, buf);
}

fn dash(value: Option<u64>) -> String {
    value.map_or("-".to_string(), |v| v.to_string())
}

/// A column of the node table: its header, its width, and its cell for a node.
struct Column {
    header: &'static str,
    width: u16,
    cell: fn(&App, &NodeView) -> Cell<'static>,
}

fn number(node: &NodeView, field: fn(&chronos::grpc::pb::NodeStatus) -> u64) -> Cell<'static> {
    Cell::from(dash(node.status.as_ref().map(field)))
}

fn number_of(
    node: &NodeView,
    field: fn(&chronos::grpc::pb::NodeStatus) -> Option<u64>,
) -> Cell<'static> {
    Cell::from(dash(node.status.as_ref().and_then(field)))
}

fn optional_id(node: &NodeView, field: fn(&chronos::grpc::pb::NodeStatus) -> u64) -> Cell<'static> {
    let id = node.status.as_ref().map(field).filter(|id| *id != 0);
    Cell::from(dash(id))
}

/// The columns that fit `width`: the essential ones always (80 columns hold them), then last
/// contact, then the known leader and the process state of spawned nodes.
fn columns(app: &App, width: u16) -> Vec<Column> {
    let mut columns = vec![
        Column { header: "id", width: 2, cell: |_, n| Cell::from(n.id.to_string()) },
        Column { header: "address", width: 15, cell: |_, n| Cell::from(n.address.clone()) },
        Column {
            header: "role",
            width: 9,
            cell: |_, n| Cell::from(Span::styled(n.role(), role_style(n.role()))),
        },
        Column { header: "term", width: 4, cell: |_, n| number(n, |s| s.term) },
        Column { header: "vote", width: 4, cell: |_, n| optional_id(n, |s| s.voted_for) },
        Column { header: "last", width: 6, cell: |_, n| number(n, |s| s.last_index) },
        Column { header: "commit", width: 6, cell: |_, n| number(n, |s| s.commit_index) },
        Column { header: "applied", width: 7, cell: |_, n| number(n, |s| s.applied_index) },
        Column { header: "lag", width: 4, cell: |app, n| Cell::from(dash(app.cluster.lag(n))) },
    ];
    if width >= 100 {
        columns.push(Column {
            header: "lag ms",
            width: 6,
            cell: |app, n| Cell::from(dash(app.cluster.lag_ms(n, app.now_ms))),
        });
    }
    if width >= 130 {
        columns.push(Column {
            header: "fsync p99",
            width: 9,
            cell: |_, n| {
                let us = n.status.as_ref().map(|s| s.fsync_p99_us).filter(|us| *us > 0);
                Cell::from(us.map_or("-".into(), |us| format!("{:.2} ms", us as f64 / 1000.0)))
            },
        });
        columns.push(Column {
            header: "disk",
            width: 9,
            cell: |_, n| {
                Cell::from(n.status.as_ref().map_or("-".into(), |s| human_bytes(s.data_bytes)))
            },
        });
    }
    if width >= 90 {
        columns.push(Column {
            header: "contact",
            width: 8,
            cell: |app, n| {
                Cell::from(
                    app.cluster.last_contact(n.id).map_or("-".into(), crate::model::short_age),
                )
            },
        });
    }
    if width >= 110 {
        columns.push(Column {
            header: "leader",
            width: 6,
            cell: |_, n| optional_id(n, |s| s.leader),
        });
    }
    if app.cluster.nodes.values().any(|n| n.status.as_ref().is_some_and(|s| s.edge.is_some())) {
        // An edge cluster: the rows waiting to go upstream, and how long the oldest has.
        columns.push(Column {
            header: "backlog",
            width: 7,
            cell: |_, n| number_of(n, |s| s.edge.as_ref().map(|e| e.backlog)),
        });
        columns.push(Column {
            header: "fwd lag",
            width: 7,
            cell: |_, n| {
                let lag = n.status.as_ref().and_then(|s| s.edge.as_ref()).map(|e| e.lag_ms);
                Cell::from(lag.map_or("-".into(), crate::model::short_age))
            },
        });
    }
    columns.push(Column {
        header: "health",
        width: 11,
        cell: |app, n| match app.cluster.replication_health(n) {
            Some(replication) => Cell::from(Span::styled(replication, health_style("lagging"))),
            None => Cell::from(Span::styled(n.health_label(app.now_ms), health_style(n.health()))),
        },
    });
    if width >= 110 && app.spawned {
        columns.push(Column {
            header: "process",
            width: 8,
            cell: |_, n| {
                Cell::from(match n.spawned {
                    Some(true) => "running",
                    Some(false) => "stopped",
                    None => "",
                })
            },
        });
    }
    columns
}

fn render_nodes(app: &App, area: Rect, buf: &mut Buffer) {
    let columns = columns(app, area.width);
    let header = Row::new(columns.iter().map(|c| c.header)).style(Style::new().bold());
    let rows: Vec<Row> = app
        .cluster
        .nodes
        .values()
        .enumerate()
        .map(|(i, node)| {
            let mut row = Row::new(columns.iter().map(|c| (c.cell)(app, node)));
            if node.down.is_some() {
                row = row.style(Style::new().fg(Color::Red));
            }
            if i == app.cluster.selected { row.reversed() } else { row }
        })
        .collect();
    let widths: Vec<Constraint> = columns.iter().map(|c| Constraint::Length(c.width)).collect();
    Table::new(rows, widths)
        .header(header)
        .column_spacing(1)
        .block(Block::bordered().title(" Nodes "))
        .render(area, buf);
}

fn render_charts(app: &App, area: Rect, buf: &mut Buffer) {
    let [commits, terms] =
        Layout::horizontal([Constraint::Percentage(60), Constraint::Percentage(40)]).areas(area);
    let width = commits.width.saturating_sub(2) as usize;
    let recent: Vec<u64> = tail(&app.cluster.commits, width);
    Sparkline::default()
        .block(
            Block::bordered().title(format!(" Commits/s: {} ", app.cluster.commits_per_second())),
        )
        .data(&recent)
        .style(Style::new().fg(Color::Green))
        .render(commits, buf);
    let width = terms.width.saturating_sub(2) as usize;
    let recent_terms: Vec<u64> = tail(&app.cluster.terms, width);
    // The term only grows: chart it relative to the lowest term shown, so changes stand out.
    let floor = recent_terms.iter().copied().min().unwrap_or(0).saturating_sub(1);
    let relative: Vec<u64> = recent_terms.iter().map(|t| t - floor).collect();
    let term = recent_terms.last().copied().unwrap_or(0);
    Sparkline::default()
        .block(Block::bordered().title(format!(" Term: {term} ")))
        .data(&relative)
        .style(Style::new().fg(Color::Magenta))
        .render(terms, buf);
}

fn tail(history: &std::collections::VecDeque<u64>, width: usize) -> Vec<u64> {
    history.iter().skip(history.len().saturating_sub(width)).copied().collect()
}

fn render_events(app: &App, area: Rect, buf: &mut Buffer) {
    let height = area.height.saturating_sub(2) as usize;
    let events = &app.cluster.events;
    let end = events.len().saturating_sub(app.cluster.events_scroll);
    let start = end.saturating_sub(height);
    let lines: Vec<Line> = events
        .range(start..end)
        .map(|event| {
            let node = event.node.map_or("console".to_string(), |n| format!("node {n}"));
            let style = match event.kind.as_str() {
                "leader" => Style::new().fg(Color::Green),
                "election" => Style::new().fg(Color::Yellow),
                "down" | "error" | "halt" => Style::new().fg(Color::Red),
                _ => Style::new(),
            };
            Line::from(vec![
                Span::raw(format!("{} ", clock(event.at_ms))),
                Span::styled(format!("{node:<8} {:<11}", event.kind), style),
                Span::raw(event.message.clone()),
            ])
        })
        .collect();
    let title = match app.cluster.events_scroll {
        0 => " Events ".to_string(),
        n => format!(" Events (scrolled back {n}) "),
    };
    Paragraph::new(lines).block(Block::bordered().title(title)).render(area, buf);
}
