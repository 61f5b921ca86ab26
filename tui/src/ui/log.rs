//! The log view: the tail of every node's Raft log side by side, colored by term, with each
//! node's commit and applied marks, so replication, truncation and catch-up show as they
//! happen.
//!
//! Marks before each entry: `●` applied, `○` committed but not applied yet, `·` not committed
//! (dimmed).

use super::term_color;
use crate::app::App;
use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Style, Stylize};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph, Widget};

pub fn render(app: &App, area: Rect, buf: &mut Buffer) {
    let nodes: Vec<u64> = app.cluster.nodes.keys().copied().collect();
    if nodes.is_empty() {
        Block::bordered().title(" Log ").render(area, buf);
        return;
    }
    let columns = Layout::horizontal(vec![Constraint::Fill(1); nodes.len()]).split(area);
    for (id, column) in nodes.iter().zip(columns.iter()) {
        render_node(app, *id, *column, buf);
    }
}

fn render_node(app: &App, id: u64, area: Rect, buf: &mut Buffer) {
    let selected = app.cluster.selected_id() == Some(id);
    let down = app.cluster.nodes.get(&id).is_some_and(|n| n.down.is_some());
    let block = |title: String| {
        let block = Block::bordered().title(title);
        if selected { block.bold() } else { block }
    };
    let tail = match app.logs.get(&id) {
        None => {
            Paragraph::new("loading...").block(block(format!(" node {id} "))).render(area, buf);
            return;
        }
        Some(Err(error)) => {
            Paragraph::new(Line::styled(error.clone(), Style::new().fg(Color::Red)))
                .block(block(format!(" node {id}: down ")))
                .render(area, buf);
            return;
        }
        Some(Ok(tail)) => tail,
    };
    let state = if down { ": down (last seen)" } else { "" };
    let title =
        format!(" node {id}{state}  commit {}  applied {} ", tail.commit_index, tail.applied_index);
    let height = area.height.saturating_sub(2) as usize;
    let entries = &tail.entries[tail.entries.len().saturating_sub(height)..];
    let lines: Vec<Line> = entries
        .iter()
        .map(|entry| {
            let (mark, dim) = match entry.index {
                i if i <= tail.applied_index => ("●", false),
                i if i <= tail.commit_index => ("○", false),
                _ => ("·", true),
            };
            let mut style = Style::new().fg(term_color(entry.term));
            if dim {
                style = style.dim();
            }
            let kind = match entry.kind.as_str() {
                "command" => "",
                "config" => "config: ",
                other => other,
            };
            Line::from(vec![
                Span::styled(format!("{mark}{:>5} t{:<2} ", entry.index, entry.term), style),
                Span::styled(kind.to_string(), style),
                Span::raw(entry.summary.clone()),
            ])
        })
        .collect();
    Paragraph::new(lines).block(block(title)).render(area, buf);
}
