//! Finding where statement text names something, for errors found after parsing: an unknown
//! or ambiguous column or table is found by the planner, which works on the syntax tree (it
//! keeps no positions, and in a cluster it may be planned on another node from the log), so
//! whoever holds the text finds the name in it ([`locate_name_error`]).

/// Where an error about a name points: the byte offset of the name in the text, and the name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NameAt {
    /// The byte offset where the name starts.
    pub offset: usize,
    /// The name as the error gives it.
    pub name: String,
}

/// For an error of `kind` `unknown_column`, `ambiguous_column` or `unknown_table` whose
/// message quotes the name (`column "t.x" does not exist`), the first place `text` names it;
/// `None` for other errors, or if the text does not name it.
pub fn locate_name_error(kind: &str, message: &str, text: &str) -> Option<NameAt> {
    if !matches!(kind, "unknown_column" | "ambiguous_column" | "unknown_table") {
        return None;
    }
    let start = message.find('"')? + 1;
    let end = start + message[start..].rfind('"')?;
    let name = &message[start..end];
    let offset = find_name(text, name)?;
    Some(NameAt { offset, name: name.to_string() })
}

/// The byte offset of the first place `text` names `name` (`qualifier.name` or a bare name) as
/// an identifier: outside string literals and comments, case-insensitively for unquoted
/// identifiers. A bare name prefers a place where it is neither qualified nor a qualifier.
pub fn find_name(text: &str, name: &str) -> Option<usize> {
    let tokens = tokens(text);
    let ident =
        |i: usize, want: &str| matches!(tokens.get(i), Some(Token::Ident(_, n)) if n == want);
    let dot = |i: usize| matches!(tokens.get(i), Some(Token::Dot));
    let start = |i: usize| match tokens.get(i) {
        Some(Token::Ident(offset, _)) => Some(*offset),
        _ => None,
    };
    if let Some((qualifier, column)) = name.split_once('.') {
        return (0..tokens.len())
            .find(|&i| ident(i, qualifier) && dot(i + 1) && ident(i + 2, column))
            .and_then(start);
    }
    let bare = (0..tokens.len())
        .find(|&i| ident(i, name) && !(i > 0 && dot(i - 1)) && !dot(i + 1))
        .or_else(|| (0..tokens.len()).find(|&i| ident(i, name)));
    bare.and_then(start)
}

/// A 1-based line and column (in characters) of byte `offset` in `text`.
pub fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..floor_char_boundary(text, offset)];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

fn floor_char_boundary(text: &str, offset: usize) -> usize {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    offset
}

/// The tokens that matter for finding names.
#[derive(Debug, PartialEq)]
enum Token {
    /// An identifier or keyword at a byte offset, lower-cased unless it was quoted.
    Ident(usize, String),
    Dot,
    Other,
}

/// Splits text into identifiers, dots and anything else, skipping literals and comments.
fn tokens(text: &str) -> Vec<Token> {
    let bytes = text.as_bytes();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        match c {
            b'\'' => i = skip_quoted(bytes, i, b'\''),
            b'"' => {
                let end = skip_quoted(bytes, i, b'"');
                // Closed: without the quotes; not closed: to the end of the text.
                let inner_end = match bytes.get(end.wrapping_sub(1)) {
                    Some(b'"') if end > i + 1 => end - 1,
                    _ => end,
                };
                let inner = &text[i + 1..inner_end];
                tokens.push(Token::Ident(i, inner.replace("\"\"", "\"")));
                i = end;
            }
            b'-' if bytes.get(i + 1) == Some(&b'-') => {
                i = text[i..].find('\n').map_or(bytes.len(), |n| i + n);
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                i = text[i + 2..].find("*/").map_or(bytes.len(), |n| i + 2 + n + 2);
            }
            b'.' => {
                tokens.push(Token::Dot);
                i += 1;
            }
            c if c.is_ascii_alphabetic() || c == b'_' => {
                let end = bytes[i..]
                    .iter()
                    .position(|b| !(b.is_ascii_alphanumeric() || *b == b'_'))
                    .map_or(bytes.len(), |n| i + n);
                tokens.push(Token::Ident(i, text[i..end].to_ascii_lowercase()));
                i = end;
            }
            c if c.is_ascii_digit() => {
                // A number (with its own dot and exponent) is not a qualifier.
                let end = bytes[i..]
                    .iter()
                    .position(|b| !(b.is_ascii_alphanumeric() || *b == b'.' || *b == b'_'))
                    .map_or(bytes.len(), |n| i + n);
                tokens.push(Token::Other);
                i = end;
            }
            c if c.is_ascii_whitespace() => i += 1,
            _ => {
                tokens.push(Token::Other);
                i += text[i..].chars().next().map_or(1, char::len_utf8);
            }
        }
    }
    tokens
}

/// The offset just past a literal quoted with `quote` starting at `start` (a doubled quote
/// inside it is one quote character); the end of the text if it is not closed.
fn skip_quoted(bytes: &[u8], start: usize, quote: u8) -> usize {
    let mut i = start + 1;
    while i < bytes.len() {
        if bytes[i] == quote {
            if bytes.get(i + 1) == Some(&quote) {
                i += 2;
                continue;
            }
            return i + 1;
        }
        i += 1;
    }
    bytes.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_is_found_as_an_identifier_outside_literals_and_comments() {
        let text = "SELECT 'nope', x -- nope\n, /* nope */ t.nope FROM t WHERE \"Nope\" = 1";
        assert_eq!(find_name(text, "t.nope"), text.find("t.nope"));
        // A bare name prefers a place where it is not qualified; quoted names keep their case.
        assert_eq!(find_name(text, "nope"), text.find("t.nope").map(|o| o + 2));
        assert_eq!(find_name(text, "Nope"), text.find("\"Nope\""));
        assert_eq!(find_name("SELECT a FROM t, u WHERE u.a = 1 AND a = 2", "a"), Some(7));
        assert_eq!(find_name("SELECT 1.5, x", "x"), Some(12));
        assert_eq!(find_name("SELECT 'it''s x'", "x"), None);
        // Text that is not whole SQL never panics: an open quote, a character of several bytes.
        assert_eq!(find_name("SELECT \"é", "é"), Some(7));
        assert_eq!(find_name("SELECT \"", "x"), None);
    }

    #[test]
    fn a_name_error_points_at_its_line_and_column() {
        let text = "SELECT a,\n  é, nothing FROM t";
        let at = locate_name_error("unknown_column", "column \"nothing\" does not exist", text);
        let at = at.expect("found");
        assert_eq!(line_column(text, at.offset), (2, 6));
        let table = locate_name_error("unknown_table", "table \"t\" does not exist", text);
        assert_eq!(table.map(|t| line_column(text, t.offset)), Some((2, 19)));
        assert_eq!(locate_name_error("type_mismatch", "column \"a\"", text), None);
        assert_eq!(locate_name_error("unknown_column", "column \"zz\" does not exist", text), None);
    }
}
