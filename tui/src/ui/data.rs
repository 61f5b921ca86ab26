//! The data view: each table's row count on every node side by side (so replication lag and
//! catch-up show), and a page of the selected table's rows as stored on the chosen node.

use crate::app::App;
use crate::model::PAGE_ROWS;
use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Style, Stylize};
use ratatui::text::Line;
use ratatui::widgets::{Block, Cell, Paragraph, Row, Table, Widget};

pub fn render(app: &App, area: Rect, buf: &mut Buffer) {
    // At least 4 lines, at most half the view (a tiny terminal gets what there is).
    let counts_height = (app.data.counts.len() as u16 + 3).max(4).min(area.height / 2);
    let [counts, page] =
        Layout::vertical([Constraint::Length(counts_height), Constraint::Fill(1)]).areas(area);
    render_counts(app, counts, buf);
    render_page(app, page, buf);
}

fn render_counts(app: &App, area: Rect, buf: &mut Buffer) {
    let nodes: Vec<u64> = app.cluster.nodes.keys().copied().collect();
    let mut header = vec![Cell::from("table")];
    header.extend(nodes.iter().map(|id| Cell::from(format!("node {id}"))));
    let rows: Vec<Row> = app
        .data
        .counts
        .iter()
        .enumerate()
        .map(|(i, (table, counts))| {
            let most = counts.values().copied().max().unwrap_or(0);
            let mut cells = vec![Cell::from(table.clone())];
            for id in &nodes {
                let down = app.cluster.nodes.get(id).is_some_and(|n| n.down.is_some());
                let cell = match counts.get(id) {
                    _ if down => Cell::from("down").style(Style::new().fg(Color::Red)),
                    Some(n) if *n < most => {
                        Cell::from(n.to_string()).style(Style::new().fg(Color::Yellow))
                    }
                    Some(n) => Cell::from(n.to_string()),
                    None => Cell::from("-"),
                };
                cells.push(cell);
            }
            let row = Row::new(cells);
            if i == app.data.selected { row.reversed() } else { row }
        })
        .collect();
    let mut widths = vec![Constraint::Min(16)];
    widths.extend(nodes.iter().map(|_| Constraint::Length(10)));
    let title = match app.data.counts.is_empty() {
        true => " Tables (none yet: create one in the SQL view) ",
        false => " Tables: rows on each node ",
    };
    Table::new(rows, widths)
        .header(Row::new(header).style(Style::new().bold()))
        .block(Block::bordered().title(title))
        .render(area, buf);
}

fn render_page(app: &App, area: Rect, buf: &mut Buffer) {
    let (Some(table), Some(node)) = (app.data.table(), app.data.node) else {
        Block::bordered().title(" Rows ").render(area, buf);
        return;
    };
    let title = format!(" {table} on node {node} ");
    let Some((page_node, page)) = &app.data.page else {
        Paragraph::new("loading...").block(Block::bordered().title(title)).render(area, buf);
        return;
    };
    let page = match page {
        Ok(page) if *page_node == node => page,
        Ok(_) => {
            Paragraph::new("loading...").block(Block::bordered().title(title)).render(area, buf);
            return;
        }
        Err(error) => {
            Paragraph::new(Line::styled(error.clone(), Style::new().fg(Color::Red)))
                .block(Block::bordered().title(title))
                .render(area, buf);
            return;
        }
    };
    let first = app.data.offset + 1;
    let last = app.data.offset + page.rows.len() as u64;
    let title = format!(
        " {table} on node {node}: rows {first}-{last} of {} (index {}, {} per page) ",
        page.total, page.index, PAGE_ROWS
    );
    let header = Row::new(page.columns.iter().map(|c| Cell::from(c.name.clone())))
        .style(Style::new().bold());
    let rows: Vec<Row> = page
        .rows
        .iter()
        .skip(app.data.scroll)
        .map(|row| {
            let values = chronos::grpc::convert::from_rows(vec![row.clone()]);
            let cells = values.into_iter().flatten().map(|v| Cell::from(v.to_string()));
            Row::new(cells)
        })
        .collect();
    let widths = vec![Constraint::Fill(1); page.columns.len().max(1)];
    Table::new(rows, widths).header(header).block(Block::bordered().title(title)).render(area, buf);
}
