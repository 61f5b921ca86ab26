//! Drawing the console: a pure function of [`App`] (rendering never awaits or mutates).
//!
//! The screen is a header (tabs and the cluster in one line), the current view, and a footer
//! of key hints; the help and confirmation popups draw over it. Colors are the terminal's
//! named ones plus bold and reverse, so the console reads on dark and light themes alike.

mod cluster;
mod data;
mod log;
mod sql;
mod statements;

use crate::app::{App, Tab};
use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style, Stylize};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Clear, Paragraph, Widget, Wrap};

impl Widget for &App {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let [header, body, footer] =
            Layout::vertical([Constraint::Length(1), Constraint::Fill(1), Constraint::Length(1)])
                .areas(area);
        render_header(self, header, buf);
        match self.tab {
            Tab::Cluster => cluster::render(self, body, buf),
            Tab::Data => data::render(self, body, buf),
            Tab::Log => log::render(self, body, buf),
            Tab::Sql => sql::render(self, body, buf),
            Tab::Statements => statements::render(self, body, buf),
        }
        render_footer(self, footer, buf);
        if self.help {
            render_help(area, buf);
        }
        if let Some(confirm) = &self.confirm {
            render_popup(" Confirm ", &[Line::from(confirm.question.as_str())], 50, 3, area, buf);
        }
    }
}

fn render_header(app: &App, area: Rect, buf: &mut Buffer) {
    let mut spans = vec![Span::styled(" Chronos ", Style::new().bold().reversed()), Span::raw(" ")];
    for (n, tab) in Tab::ALL.iter().enumerate() {
        let title = format!(" {} {} ", n + 1, tab.title());
        let style = match *tab == app.tab {
            true => Style::new().bold().reversed(),
            false => Style::new(),
        };
        spans.push(Span::styled(title, style));
    }
    let summary = match app.cluster.leader() {
        Some(leader) => {
            let term = leader.status.as_ref().map_or(0, |s| s.term);
            format!("  leader: node {}  term {}  ", leader.id, term)
        }
        None => "  no leader  ".to_string(),
    };
    let live = app.cluster.nodes.values().filter(|n| n.down.is_none()).count();
    spans.push(Span::styled(summary, role_style("leader")));
    spans.push(Span::raw(format!("{live}/{} up", app.cluster.nodes.len())));
    Line::from(spans).render(area, buf);
}

fn render_footer(app: &App, area: Rect, buf: &mut Buffer) {
    let hints: &[(&str, &str)] = match app.tab {
        Tab::Sql if app.editing => &[
            ("F5/Ctrl-R", "run"),
            ("↑↓", "history"),
            ("PgUp/PgDn", "scroll"),
            ("Esc", "leave editor"),
            ("Tab", "next view"),
            ("F1", "help"),
            ("Ctrl-C", "quit"),
        ],
        Tab::Sql => &[
            ("i/Enter", "edit"),
            ("←↓↑→", "scroll result"),
            ("Tab/1-5", "views"),
            ("?", "help"),
            ("q", "quit"),
        ],
        Tab::Cluster if app.spawned => &[
            ("↑↓", "select"),
            ("t", "transfer leader"),
            ("s/r", "stop/restart"),
            ("a", "add node"),
            ("p", "promote"),
            ("x", "remove"),
            ("?", "help"),
            ("q", "quit"),
        ],
        Tab::Cluster => &[
            ("↑↓", "select"),
            ("t", "transfer leader"),
            ("p", "promote"),
            ("x", "remove"),
            ("Tab/1-5", "views"),
            ("?", "help"),
            ("q", "quit"),
        ],
        Tab::Data => &[
            ("↑↓", "table"),
            ("←→", "node"),
            ("PgUp/PgDn", "page"),
            ("Tab/1-5", "views"),
            ("?", "help"),
            ("q", "quit"),
        ],
        Tab::Log => &[("Tab/1-5", "views"), ("?", "help"), ("q", "quit")],
        Tab::Statements => &[
            ("t/c/p", "sort by total/count/p99"),
            ("↑↓", "scroll"),
            ("Tab/1-5", "views"),
            ("?", "help"),
            ("q", "quit"),
        ],
    };
    let hint = |(key, what): &(&str, &str)| {
        [Span::styled(format!(" {key} "), Style::new().reversed()), Span::raw(format!(" {what}  "))]
    };
    let width = |hints: &[(&str, &str)]| -> usize {
        hints.iter().flat_map(hint).map(|span| span.width()).sum()
    };
    // Hints that do not fit are left out whole, and the help key (which lists them all)
    // always stays.
    let mut shown: Vec<(&str, &str)> = hints.to_vec();
    if width(&shown) > usize::from(area.width) {
        let help: Vec<_> = hints.iter().filter(|(_, what)| *what == "help").copied().collect();
        shown.retain(|(_, what)| *what != "help");
        while !shown.is_empty() && width(&shown) + width(&help) > usize::from(area.width) {
            shown.pop();
        }
        shown.extend(help);
    }
    Line::from(shown.iter().flat_map(hint).collect::<Vec<_>>()).render(area, buf);
}

const HELP: &[(&str, &str)] = &[
    ("Tab, Shift-Tab, 1-5", "switch views (Cluster, Data, Log, Statements, SQL)"),
    ("↑↓ or j/k", "move the selection"),
    ("←→ or h/l", "choose a node (Data) or scroll a result (SQL)"),
    ("PgUp/PgDn, wheel", "page or scroll"),
    ("t", "transfer leadership to the selected node"),
    ("s / r", "stop / restart the selected node (spawned clusters)"),
    ("a", "start a new node and add it as a learner (spawned)"),
    ("p / x", "promote the selected learner / remove the node"),
    ("Statements: t / c / p", "sort by total time / count / p99"),
    ("SQL: F5, Ctrl-R, Ctrl-Enter", "run the editor's statements"),
    ("SQL: Esc / i", "leave / enter the editor"),
    ("?, F1", "this help (any key closes it)"),
    ("q, Ctrl-C", "quit"),
];

fn render_help(area: Rect, buf: &mut Buffer) {
    let lines: Vec<Line> = HELP
        .iter()
        .map(|(key, what)| {
            Line::from(vec![
                Span::styled(format!("{key:<28}"), Style::new().bold()),
                Span::raw(*what),
            ])
        })
        .collect();
    let height = lines.len() as u16 + 2;
    render_popup(" Help ", &lines, 76, height, area, buf);
}

/// Draws a bordered popup of at most `width` x `height` in the middle of `area`.
fn render_popup(
    title: &str,
    lines: &[Line],
    width: u16,
    height: u16,
    area: Rect,
    buf: &mut Buffer,
) {
    let width = width.min(area.width);
    let height = height.min(area.height);
    let popup = Rect {
        x: area.x + (area.width - width) / 2,
        y: area.y + (area.height - height) / 2,
        width,
        height,
    };
    Clear.render(popup, buf);
    Paragraph::new(lines.to_vec())
        .wrap(Wrap { trim: false })
        .block(Block::bordered().title(title).bold())
        .render(popup, buf);
}

/// The style of a role word.
pub fn role_style(role: &str) -> Style {
    match role {
        "leader" => Style::new().fg(Color::Green).add_modifier(Modifier::BOLD),
        "candidate" => Style::new().fg(Color::Yellow),
        "learner" => Style::new().fg(Color::Cyan),
        "down" => Style::new().fg(Color::Red),
        _ => Style::new(),
    }
}

/// The style of a health word.
pub fn health_style(health: &str) -> Style {
    match health {
        "ok" => Style::new().fg(Color::Green),
        "down" | "halted" => Style::new().fg(Color::Red).add_modifier(Modifier::BOLD),
        _ => Style::new().fg(Color::Yellow),
    }
}

/// A color per term, so entries of one term share a color.
pub fn term_color(term: u64) -> Color {
    const PALETTE: [Color; 5] =
        [Color::Blue, Color::Magenta, Color::Cyan, Color::Green, Color::Yellow];
    PALETTE[(term % PALETTE.len() as u64) as usize]
}

/// `HH:MM:SS` (UTC) of a time in milliseconds since the Unix epoch.
pub fn clock(at_ms: u64) -> String {
    let seconds = at_ms / 1000 % 86_400;
    format!("{:02}:{:02}:{:02}", seconds / 3600, seconds / 60 % 60, seconds % 60)
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
