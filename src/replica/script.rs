//! Cutting a script that arrives in pieces into statements, so a script of any size streams
//! through a node one statement at a time.
//!
//! A statement ends at a `;` outside a string (`'...'`, `''` escapes a quote), a quoted
//! identifier (`"..."`), a line comment (`-- ...`) and a block comment (`/* ... */`); the text
//! after the last `;` is a statement when the script ends. Pieces may end anywhere, even in
//! the middle of a character's bytes. Each statement comes with the byte offsets of its start
//! and end in the script, so a retry can resume exactly after the last result a client got.
//!
//! Invariant: the splitter holds at most one statement (bounded by `max_statement`) plus one
//! piece of text.

/// One statement's text and where it lies in the script.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Piece {
    /// The text, without its terminating `;`.
    pub text: String,
    /// The byte offset of the first byte after the `;` (or the script's end).
    pub end: u64,
}

/// Where the scanner is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Code,
    String,
    Identifier,
    LineComment,
    BlockComment,
}

/// Splits a script into statements as its pieces arrive.
pub struct Splitter {
    /// The text of the current piece and what is left of the one before; bytes from `start`
    /// on are not returned yet. Returned statements are dropped from the front only when a
    /// piece arrives, so taking a statement copies nothing but the statement.
    buffer: Vec<u8>,
    /// Where the text not yet returned begins in `buffer`.
    start: usize,
    /// The script offset of `buffer[start]`.
    offset: u64,
    /// How far `buffer` has been scanned (from its beginning), and the state there.
    scanned: usize,
    state: State,
    max_statement: usize,
}

impl Splitter {
    /// A splitter that refuses statements longer than `max_statement` bytes. The script's
    /// first byte is at offset `start` (a retry resumes part-way).
    pub fn new(max_statement: usize, start: u64) -> Self {
        let state = State::Code;
        Self { buffer: Vec::new(), start: 0, offset: start, scanned: 0, state, max_statement }
    }

    /// Adds the next piece of the script.
    pub fn push(&mut self, piece: &[u8]) {
        self.buffer.drain(..self.start);
        self.scanned -= self.start;
        self.start = 0;
        self.buffer.extend_from_slice(piece);
    }

    /// The next complete statement, if the text so far holds one; an error for a statement
    /// longer than the limit (or text that is not UTF-8).
    pub fn next_statement(&mut self) -> Result<Option<Piece>, String> {
        while self.scanned < self.buffer.len() {
            let byte = self.buffer[self.scanned];
            let next = self.buffer.get(self.scanned + 1).copied();
            match (self.state, byte) {
                (State::Code, b';') => {
                    let piece = self.take(self.scanned, self.scanned + 1)?;
                    return Ok(Some(piece));
                }
                (State::Code, b'\'') => self.state = State::String,
                (State::Code, b'"') => self.state = State::Identifier,
                (State::Code, b'-') if next == Some(b'-') => {
                    self.state = State::LineComment;
                    self.scanned += 1;
                }
                (State::Code, b'-') if next.is_none() => break, // wait for the next byte
                (State::Code, b'/') if next == Some(b'*') => {
                    self.state = State::BlockComment;
                    self.scanned += 1;
                }
                (State::Code, b'/') if next.is_none() => break,
                // A doubled quote is a quote inside the string (or identifier).
                (State::String, b'\'') if next == Some(b'\'') => self.scanned += 1,
                (State::String, b'\'') if next.is_none() => break,
                (State::String, b'\'') => self.state = State::Code,
                (State::Identifier, b'"') if next == Some(b'"') => self.scanned += 1,
                (State::Identifier, b'"') if next.is_none() => break,
                (State::Identifier, b'"') => self.state = State::Code,
                (State::LineComment, b'\n') => self.state = State::Code,
                (State::BlockComment, b'*') if next == Some(b'/') => {
                    self.state = State::Code;
                    self.scanned += 1;
                }
                (State::BlockComment, b'*') if next.is_none() => break,
                _ => {}
            }
            self.scanned += 1;
        }
        if self.buffer.len() - self.start > self.max_statement {
            return Err(format!(
                "a statement is longer than {} bytes (the limit of one statement)",
                self.max_statement
            ));
        }
        Ok(None)
    }

    /// The last statement, once the script has ended (text without a final `;`), or `None`
    /// when only blanks and comments are left.
    pub fn finish(&mut self) -> Result<Option<Piece>, String> {
        let length = self.buffer.len();
        let piece = self.take(length, length)?;
        Ok(piece_with_code(piece))
    }

    /// Takes the statement ending at `end` (exclusive) from the buffer; the text not yet
    /// returned then begins at `consumed` (past the statement and its `;`).
    fn take(&mut self, end: usize, consumed: usize) -> Result<Piece, String> {
        let text = String::from_utf8(self.buffer[self.start..end].to_vec())
            .map_err(|_| "the script is not valid UTF-8".to_string())?;
        self.offset += (consumed - self.start) as u64;
        self.start = consumed;
        self.scanned = consumed;
        self.state = State::Code;
        Ok(Piece { text, end: self.offset })
    }
}

/// `Some(piece)` unless its text is only blanks (and comments, which the parser skips too: a
/// piece of comments alone parses to no statement, so it can be passed on either way).
fn piece_with_code(piece: Piece) -> Option<Piece> {
    (!piece.text.trim().is_empty()).then_some(piece)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Splits `script` fed in pieces of `size` bytes.
    fn split(script: &str, size: usize) -> Vec<(String, u64)> {
        let mut splitter = Splitter::new(1 << 20, 0);
        let mut out = Vec::new();
        for piece in script.as_bytes().chunks(size.max(1)) {
            splitter.push(piece);
            while let Some(piece) = splitter.next_statement().unwrap() {
                out.push((piece.text, piece.end));
            }
        }
        if let Some(piece) = splitter.finish().unwrap() {
            out.push((piece.text, piece.end));
        }
        out
    }

    #[test]
    fn semicolons_in_strings_identifiers_and_comments_do_not_end_statements() {
        let script = "SELECT 'a;b', 'it''s;' FROM \"t;\"\"x\"; -- c;d\nSELECT 2 /* ; */;  SELECT 3";
        let expected = vec![
            ("SELECT 'a;b', 'it''s;' FROM \"t;\"\"x\"".to_string(), 36),
            (" -- c;d\nSELECT 2 /* ; */".to_string(), 61),
            ("  SELECT 3".to_string(), 71),
        ];
        // The same statements however the script is cut, down to one byte at a time.
        for size in [1, 2, 3, 7, 1000] {
            assert_eq!(split(script, size), expected, "pieces of {size} bytes");
        }
        // Multi-byte characters cut in the middle survive.
        assert_eq!(split("SELECT 'é;ü';", 1), vec![("SELECT 'é;ü'".to_string(), 15)]);
        assert!(split(";; \n", 1).iter().all(|(text, _)| text.trim().is_empty()));
    }

    #[test]
    fn a_statement_over_the_limit_is_refused_and_a_resumed_script_keeps_its_offsets() {
        let mut splitter = Splitter::new(10, 0);
        splitter.push(b"SELECT 'aaaaaaaaaaaaaaa");
        assert!(splitter.next_statement().unwrap_err().contains("longer than 10 bytes"));
        let mut resumed = Splitter::new(100, 40);
        resumed.push(b"SELECT 1; SELECT 2");
        assert_eq!(resumed.next_statement().unwrap().map(|p| p.end), Some(49));
        assert_eq!(resumed.finish().unwrap().map(|p| p.end), Some(58));
    }

    #[test]
    fn taking_a_statement_does_not_move_the_rest_of_the_piece() {
        // A piece of many statements: each is copied out once, and the text after it stays
        // where it is (moving it for every statement made a big piece cost its size squared).
        let script = "SELECT 1;".repeat(1000);
        let mut splitter = Splitter::new(1 << 20, 0);
        splitter.push(script.as_bytes());
        let (address, length) = (splitter.buffer.as_ptr(), splitter.buffer.len());
        let mut count = 0;
        while let Some(piece) = splitter.next_statement().unwrap() {
            assert_eq!(piece.text, "SELECT 1");
            assert_eq!((splitter.buffer.as_ptr(), splitter.buffer.len()), (address, length));
            count += 1;
        }
        assert_eq!(count, 1000);
        // The next piece drops what was returned.
        splitter.push(b"SELECT 2");
        assert_eq!(
            splitter.finish().unwrap().map(|p| (p.text, p.end)),
            Some(("SELECT 2".into(), 9008))
        );
    }
}
