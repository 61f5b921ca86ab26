//! The Statements view: the statements every node served, by fingerprint, with counts,
//! errors, rows and latencies, sorted by total time, count or p99.

use crate::app::App;
use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Rect};
use ratatui::style::{Color, Style};
use ratatui::widgets::{Block, Row, Table, Widget};

fn millis(us: u64) -> String {
    format!("{:.2}", us as f64 / 1000.0)
}

pub fn render(app: &App, area: Rect, buf: &mut Buffer) {
    let model = &app.statements;
    let rows = model.rows();
    let height = area.height.saturating_sub(3) as usize;
    let header = Row::new([
        "node",
        "count",
        "errors",
        "rows",
        "total ms",
        "p50 ms",
        "p99 ms",
        "max ms",
        "statement",
    ])
    .style(Style::new().bold());
    let mut lines: Vec<Row> = rows
        .iter()
        .skip(model.scroll)
        .take(height)
        .map(|(node, s)| {
            let row = Row::new([
                node.to_string(),
                s.count.to_string(),
                s.errors.to_string(),
                (s.rows_returned + s.rows_written).to_string(),
                millis(s.total_us),
                millis(s.p50_us),
                millis(s.p99_us),
                millis(s.max_us),
                s.fingerprint.clone(),
            ]);
            if s.errors > 0 { row.style(Style::new().fg(Color::Yellow)) } else { row }
        })
        .collect();
    for (node, why) in model.failures() {
        lines.push(
            Row::new([
                node.to_string(),
                String::new(),
                String::new(),
                String::new(),
                String::new(),
                String::new(),
                String::new(),
                String::new(),
                format!("(not available: {why})"),
            ])
            .style(Style::new().fg(Color::Red)),
        );
    }
    let widths = [
        Constraint::Length(4),
        Constraint::Length(7),
        Constraint::Length(6),
        Constraint::Length(7),
        Constraint::Length(9),
        Constraint::Length(7),
        Constraint::Length(7),
        Constraint::Length(7),
        Constraint::Fill(1),
    ];
    let title = format!(
        " Statements by {} ({} fingerprints across the nodes) ",
        model.sort.name(),
        rows.len()
    );
    Table::new(lines, widths)
        .header(header)
        .column_spacing(1)
        .block(Block::bordered().title(title))
        .render(area, buf);
}
