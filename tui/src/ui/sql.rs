//! The SQL view: the editor, then the outcome of the last run (each statement's summary, the
//! last query's rows in a scrollable table, the index the result reflects and the time taken),
//! or the error.

use crate::app::App;
use crate::model::SqlOutcome;
use chronos::sql::format::summary;
use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Cell, Paragraph, Row, Table, Widget, Wrap};

pub fn render(app: &App, area: Rect, buf: &mut Buffer) {
    let editor_height = (app.editor.lines().len() as u16 + 2).clamp(5, 12);
    let [editor, outcome, results] = Layout::vertical([
        Constraint::Length(editor_height),
        Constraint::Length(4),
        Constraint::Fill(1),
    ])
    .areas(area);
    render_editor(app, editor, buf);
    render_outcome(app, outcome, buf);
    render_results(app, results, buf);
}

fn render_editor(app: &App, area: Rect, buf: &mut Buffer) {
    let title = match (app.editing, app.sql_running) {
        (_, true) => " SQL (running...) ",
        (true, false) => " SQL (F5 runs; Esc leaves the editor) ",
        (false, false) => " SQL (i or Enter to edit) ",
    };
    let (row, column) = app.editor.cursor();
    // Scroll so the cursor stays in view: down to its line, right to its column (a terminal
    // too small for even one line of text shows what fits and no cursor).
    let inner_height = (area.height.saturating_sub(2) as usize).max(1);
    let inner_width = (area.width.saturating_sub(2) as usize).max(1);
    let first = (row + 1).saturating_sub(inner_height);
    let left = (column + 1).saturating_sub(inner_width);
    let lines: Vec<Line> = app.editor.lines()[first..]
        .iter()
        .map(|line| Line::raw(line.chars().skip(left).collect::<String>()))
        .collect();
    let block = Block::bordered().title(title);
    let block = if app.editing { block.border_style(Style::new().fg(Color::Cyan)) } else { block };
    let inner = block.inner(area);
    Paragraph::new(lines).block(block).render(area, buf);
    let x = inner.x.saturating_add((column - left) as u16);
    let y = inner.y.saturating_add((row - first) as u16);
    if app.editing && x < inner.right() && y < inner.bottom() {
        buf[(x, y)].set_style(Style::new().reversed());
    }
}

fn render_outcome(app: &App, area: Rect, buf: &mut Buffer) {
    let block = Block::bordered().title(" Result ");
    let lines: Vec<Line> = match &app.sql {
        None => vec![Line::raw("Nothing run yet.")],
        Some(SqlOutcome::Failed { message, elapsed }) => vec![
            Line::styled(format!("ERROR: {message}"), Style::new().fg(Color::Red).bold()),
            Line::raw(format!("after {:.1} ms", elapsed.as_secs_f64() * 1000.0)),
        ],
        Some(SqlOutcome::Ran { results, node, elapsed }) => {
            let mut spans = Vec::new();
            for (_, outcome) in results {
                match outcome {
                    Ok(result) => spans.push(Span::raw(format!("{}  ", summary(result)))),
                    Err(error) => spans.push(Span::styled(
                        format!("ERROR ({}): {}  ", error.kind, error.message),
                        Style::new().fg(Color::Red).bold(),
                    )),
                }
            }
            let index = results.last().map_or(0, |(index, _)| *index);
            vec![
                Line::from(spans),
                Line::raw(format!(
                    "{} statement(s), log index {index}, served by {node}, {:.1} ms",
                    results.len(),
                    elapsed.as_secs_f64() * 1000.0
                )),
            ]
        }
    };
    Paragraph::new(lines).wrap(Wrap { trim: false }).block(block).render(area, buf);
}

fn render_results(app: &App, area: Rect, buf: &mut Buffer) {
    let Some((columns, rows)) = app.sql.as_ref().and_then(SqlOutcome::last_query) else {
        Block::bordered().title(" Rows ").render(area, buf);
        return;
    };
    let (first_row, first_column) = app.sql_scroll;
    let first_column = first_column.min(columns.len());
    // Each column as wide as its widest value (at least its name, at most 40). Only the
    // columns that fit whole are drawn, so a wide result scrolls instead of squeezing.
    let width_of = |i: usize| {
        let widest = rows.iter().filter_map(|r| r.get(i)).map(|v| v.to_string().chars().count());
        let widest = widest.max().unwrap_or(0).max(columns[i].name.chars().count());
        widest.min(40) as u16
    };
    let room = area.width.saturating_sub(2);
    let mut used = 0u16;
    let mut widths = Vec::new();
    for i in first_column..columns.len() {
        let width = width_of(i);
        let needed = if widths.is_empty() { width } else { width + 2 };
        if !widths.is_empty() && used + needed > room {
            break;
        }
        used += needed;
        widths.push(Constraint::Length(width));
    }
    let shown = first_column..first_column + widths.len();
    let header = Row::new(columns[shown.clone()].iter().map(|c| Cell::from(c.name.clone())))
        .style(Style::new().bold());
    let body: Vec<Row> = rows
        .iter()
        .skip(first_row)
        .map(|row| {
            // A row shorter than its header (a malformed answer) shows what it has.
            let values = row.get(shown.clone()).or_else(|| row.get(shown.start..)).unwrap_or(&[]);
            Row::new(values.iter().map(|v| Cell::from(v.to_string())))
        })
        .collect();
    let more = if first_column > 0 || first_row > 0 {
        format!(", scrolled to row {} column {}", first_row + 1, first_column + 1)
    } else {
        String::new()
    };
    let title = format!(
        " Rows: {} x {} columns, showing {}-{}{more} (←↓↑→ scroll) ",
        rows.len(),
        columns.len(),
        shown.start + 1,
        shown.end
    );
    Table::new(body, widths)
        .header(header)
        .column_spacing(2)
        .block(Block::bordered().title(title))
        .render(area, buf);
}
