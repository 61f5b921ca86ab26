//! The SQL pane's multi-line editor, with a history of the scripts run.
//!
//! The cursor is a (line, character) position that always lies inside the text. Up on the
//! first line and Down on the last move through the history; the text being written is kept
//! as a draft while browsing and comes back past the newest entry.

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

/// Scripts kept in the history.
const HISTORY: usize = 200;

/// A multi-line text editor with history.
#[derive(Clone, Debug)]
pub struct Editor {
    lines: Vec<String>,
    /// Cursor line.
    row: usize,
    /// Cursor position in characters within the line.
    column: usize,
    history: Vec<String>,
    /// The history entry shown, while browsing.
    browsing: Option<usize>,
    /// The text being written before browsing began.
    draft: String,
}

impl Default for Editor {
    fn default() -> Self {
        Self {
            lines: vec![String::new()],
            row: 0,
            column: 0,
            history: Vec::new(),
            browsing: None,
            draft: String::new(),
        }
    }
}

impl Editor {
    /// The text, lines joined with newlines.
    pub fn text(&self) -> String {
        self.lines.join("\n")
    }

    /// The lines.
    pub fn lines(&self) -> &[String] {
        &self.lines
    }

    /// The cursor: (line, character).
    pub fn cursor(&self) -> (usize, usize) {
        (self.row, self.column)
    }

    /// The history, oldest first.
    pub fn history(&self) -> &[String] {
        &self.history
    }

    /// Replaces the text and puts the cursor at its end.
    pub fn set_text(&mut self, text: &str) {
        self.lines = text.split('\n').map(str::to_string).collect();
        self.row = self.lines.len() - 1;
        self.column = self.line_len();
    }

    /// Records the text in the history (unless it repeats the newest entry).
    pub fn commit_to_history(&mut self) {
        let text = self.text();
        if !text.trim().is_empty() && self.history.last() != Some(&text) {
            self.history.push(text);
            if self.history.len() > HISTORY {
                self.history.remove(0);
            }
        }
        self.browsing = None;
    }

    /// Applies an editing key.
    pub fn key(&mut self, key: KeyEvent) {
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        match key.code {
            KeyCode::Char('u') if ctrl => self.set_text(""),
            KeyCode::Char('a') if ctrl => self.column = 0,
            KeyCode::Char('e') if ctrl => self.column = self.line_len(),
            KeyCode::Char(c) if !ctrl => self.insert(c),
            KeyCode::Enter => self.newline(),
            KeyCode::Backspace => self.backspace(),
            KeyCode::Delete => self.delete(),
            KeyCode::Left => self.left(),
            KeyCode::Right => self.right(),
            KeyCode::Home => self.column = 0,
            KeyCode::End => self.column = self.line_len(),
            KeyCode::Up if self.row == 0 => self.history_back(),
            KeyCode::Up => {
                self.row -= 1;
                self.column = self.column.min(self.line_len());
            }
            KeyCode::Down if self.row + 1 == self.lines.len() => self.history_forward(),
            KeyCode::Down => {
                self.row += 1;
                self.column = self.column.min(self.line_len());
            }
            _ => {}
        }
    }

    fn line_len(&self) -> usize {
        self.lines[self.row].chars().count()
    }

    /// The byte offset of the cursor in its line.
    fn byte(&self) -> usize {
        let line = &self.lines[self.row];
        line.char_indices().nth(self.column).map_or(line.len(), |(i, _)| i)
    }

    fn insert(&mut self, c: char) {
        let at = self.byte();
        self.lines[self.row].insert(at, c);
        self.column += 1;
    }

    fn newline(&mut self) {
        let at = self.byte();
        let rest = self.lines[self.row].split_off(at);
        self.lines.insert(self.row + 1, rest);
        self.row += 1;
        self.column = 0;
    }

    fn backspace(&mut self) {
        if self.column > 0 {
            self.column -= 1;
            let at = self.byte();
            self.lines[self.row].remove(at);
        } else if self.row > 0 {
            let line = self.lines.remove(self.row);
            self.row -= 1;
            self.column = self.line_len();
            self.lines[self.row].push_str(&line);
        }
    }

    fn delete(&mut self) {
        if self.column < self.line_len() {
            let at = self.byte();
            self.lines[self.row].remove(at);
        } else if self.row + 1 < self.lines.len() {
            let next = self.lines.remove(self.row + 1);
            self.lines[self.row].push_str(&next);
        }
    }

    fn left(&mut self) {
        if self.column > 0 {
            self.column -= 1;
        } else if self.row > 0 {
            self.row -= 1;
            self.column = self.line_len();
        }
    }

    fn right(&mut self) {
        if self.column < self.line_len() {
            self.column += 1;
        } else if self.row + 1 < self.lines.len() {
            self.row += 1;
            self.column = 0;
        }
    }

    fn history_back(&mut self) {
        let at = match self.browsing {
            None if self.history.is_empty() => return,
            None => {
                self.draft = self.text();
                self.history.len() - 1
            }
            Some(0) => return,
            Some(at) => at - 1,
        };
        self.browsing = Some(at);
        let text = self.history[at].clone();
        self.set_text(&text);
    }

    fn history_forward(&mut self) {
        let Some(at) = self.browsing else { return };
        if at + 1 < self.history.len() {
            self.browsing = Some(at + 1);
            let text = self.history[at + 1].clone();
            self.set_text(&text);
        } else {
            self.browsing = None;
            let draft = std::mem::take(&mut self.draft);
            self.set_text(&draft);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn press(editor: &mut Editor, code: KeyCode) {
        editor.key(KeyEvent::new(code, KeyModifiers::NONE));
    }

    fn typed(editor: &mut Editor, text: &str) {
        for c in text.chars() {
            match c {
                '\n' => press(editor, KeyCode::Enter),
                c => press(editor, KeyCode::Char(c)),
            }
        }
    }

    #[test]
    fn typing_joins_and_splits_lines_at_the_cursor() {
        let mut editor = Editor::default();
        typed(&mut editor, "SELECT 1\nFROM t");
        assert_eq!(editor.text(), "SELECT 1\nFROM t");
        assert_eq!(editor.cursor(), (1, 6));
        press(&mut editor, KeyCode::Home);
        press(&mut editor, KeyCode::Backspace);
        assert_eq!(editor.text(), "SELECT 1FROM t");
        assert_eq!(editor.cursor(), (0, 8));
        press(&mut editor, KeyCode::Char(' '));
        press(&mut editor, KeyCode::Delete);
        assert_eq!(editor.text(), "SELECT 1 ROM t");
    }

    #[test]
    fn multi_byte_characters_are_edited_whole() {
        let mut editor = Editor::default();
        typed(&mut editor, "'héllo'");
        press(&mut editor, KeyCode::Left);
        press(&mut editor, KeyCode::Left);
        press(&mut editor, KeyCode::Backspace);
        assert_eq!(editor.text(), "'hélo'");
        press(&mut editor, KeyCode::Left);
        press(&mut editor, KeyCode::Backspace);
        assert_eq!(editor.text(), "'hlo'");
    }

    #[test]
    fn up_and_down_browse_the_history_and_bring_back_the_draft() {
        let mut editor = Editor::default();
        for script in ["SELECT 1", "SELECT 2", "SELECT 2"] {
            editor.set_text(script);
            editor.commit_to_history();
        }
        assert_eq!(editor.history(), ["SELECT 1", "SELECT 2"], "a repeat is recorded once");
        editor.set_text("draft");
        press(&mut editor, KeyCode::Up);
        assert_eq!(editor.text(), "SELECT 2");
        press(&mut editor, KeyCode::Up);
        press(&mut editor, KeyCode::Up);
        assert_eq!(editor.text(), "SELECT 1", "the oldest entry stops the browsing");
        press(&mut editor, KeyCode::Down);
        assert_eq!(editor.text(), "SELECT 2");
        press(&mut editor, KeyCode::Down);
        assert_eq!(editor.text(), "draft");
    }

    #[test]
    fn up_within_a_multi_line_script_moves_the_cursor_not_the_history() {
        let mut editor = Editor::default();
        editor.set_text("old");
        editor.commit_to_history();
        editor.set_text("SELECT *\nFROM t");
        press(&mut editor, KeyCode::Up);
        assert_eq!(editor.text(), "SELECT *\nFROM t");
        assert_eq!(editor.cursor(), (0, 6));
        press(&mut editor, KeyCode::Up);
        assert_eq!(editor.text(), "old");
    }
}
