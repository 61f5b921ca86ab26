//! Statement fingerprints: a statement's text with its literals replaced by `?`, so that
//! statements that differ only in their values count as one in statement statistics.
//!
//! The text is read as tokens (no parse is needed, so text that does not parse gets one too):
//! comments and spacing go, words are lowercased, quoted names are kept, strings, numbers and
//! `X'..'` become `?`. A list of several literals becomes `?, ...`, and a repeated
//! parenthesized group (the rows of a multi-row `VALUES`) becomes `(..), ...`. The result is
//! at most [`MAX_FINGERPRINT_BYTES`] long (the rest becomes `…`), and reading stops there, so
//! a statement of any size costs at most one pass over the text.

/// The longest fingerprint, in bytes (before the closing `…`).
pub const MAX_FINGERPRINT_BYTES: usize = 1024;

/// Words after which a `(` is set apart by a space (elsewhere a word before `(` is a name
/// being called or a table's column list, and the two are written together).
const SPACED_BEFORE_PARENTHESIS: &[&str] = &[
    "and",
    "as",
    "exists",
    "from",
    "in",
    "join",
    "not",
    "on",
    "or",
    "select",
    "using",
    "values",
    "where",
    "with",
    "when",
    "then",
    "else",
    "union",
    "all",
    "intersect",
    "except",
    "set",
    "do",
    "by",
    "returning",
    "recursive",
    "key",
    "unique",
    "distinct",
    "into",
];

/// The fingerprint of a statement's text.
pub fn fingerprint(text: &str) -> String {
    let mut builder = Builder::default();
    let mut chars = text.char_indices().peekable();
    while let Some((start, c)) = chars.next() {
        if builder.full() {
            break;
        }
        let rest = &text[start..];
        if c.is_whitespace() {
            continue;
        }
        if rest.starts_with("--") {
            while chars.next_if(|(_, c)| *c != '\n').is_some() {}
            continue;
        }
        if rest.starts_with("/*") {
            chars.next();
            let mut previous = ' ';
            for (_, c) in chars.by_ref() {
                if previous == '*' && c == '/' {
                    break;
                }
                previous = c;
            }
            continue;
        }
        if c == '\'' || ((c == 'x' || c == 'X') && rest[1..].starts_with('\'')) {
            if c != '\'' {
                chars.next();
            }
            skip_quoted(&mut chars, '\'', text.len());
            builder.literal();
            continue;
        }
        if c == '"' {
            let end = skip_quoted(&mut chars, '"', text.len());
            builder.word(&text[start..end]);
            continue;
        }
        let digit_after_dot = c == '.' && rest[1..].starts_with(|d: char| d.is_ascii_digit());
        if c.is_ascii_digit() || digit_after_dot {
            let mut previous = c;
            while let Some((_, next)) = chars.next_if(|(_, n)| {
                n.is_ascii_alphanumeric()
                    || *n == '.'
                    || ((*n == '+' || *n == '-') && matches!(previous, 'e' | 'E'))
            }) {
                previous = next;
            }
            builder.literal();
            continue;
        }
        if c.is_alphabetic() || c == '_' {
            let mut end = start + c.len_utf8();
            while let Some((at, next)) =
                chars.next_if(|(_, n)| n.is_alphanumeric() || *n == '_' || *n == '$')
            {
                end = at + next.len_utf8();
            }
            let word = text[start..end].to_lowercase();
            match word.as_str() {
                "null" | "true" | "false" => builder.literal(),
                _ => builder.word(&word),
            }
            continue;
        }
        let pair = rest.get(..2).filter(|p| ["<=", ">=", "<>", "!=", "||", "::"].contains(p));
        match pair {
            Some(pair) => {
                chars.next();
                builder.push(Token::Symbol(pair.to_string()));
            }
            None if c == ';' => {}
            None => builder.push(Token::Symbol(c.to_string())),
        }
    }
    builder.finish()
}

/// Skips a quoted text whose opening quote was read (a doubled quote stands for one); returns
/// the byte offset just past it (`text_len` if it is not closed).
fn skip_quoted(
    chars: &mut std::iter::Peekable<std::str::CharIndices<'_>>,
    quote: char,
    text_len: usize,
) -> usize {
    let mut end = text_len;
    while let Some((at, c)) = chars.next() {
        end = at + c.len_utf8();
        if c == quote {
            if chars.next_if(|(_, next)| *next == quote).is_some() {
                continue;
            }
            return end;
        }
    }
    end
}

/// A token of a fingerprint.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Token {
    /// A word (lowercased) or a quoted name (as written).
    Word(String),
    /// A literal.
    Literal,
    /// Several literals in a row: `?, ...`.
    Literals,
    /// Punctuation or an operator.
    Symbol(String),
    /// More of the same parenthesized group: `...`.
    More,
}

impl Token {
    /// About the bytes it renders to (with its space).
    fn size(&self) -> usize {
        match self {
            Token::Word(w) | Token::Symbol(w) => w.len() + 1,
            Token::Literal => 2,
            Token::Literals => 7,
            Token::More => 4,
        }
    }
}

/// Builds a fingerprint token by token, collapsing lists as they complete.
#[derive(Default)]
struct Builder {
    tokens: Vec<Token>,
    /// The start of each open parenthesis in `tokens`.
    open: Vec<usize>,
    /// About the length rendered so far.
    bytes: usize,
}

impl Builder {
    fn full(&self) -> bool {
        self.bytes >= MAX_FINGERPRINT_BYTES
    }

    /// Adds a word or quoted name, cut to the room left (and whatever follows the word
    /// PASSWORD becomes `?`, even where the text does not parse).
    fn word(&mut self, word: &str) {
        if self.after_password() {
            return self.literal();
        }
        let room = MAX_FINGERPRINT_BYTES.saturating_sub(self.bytes).max(1);
        let mut end = word.len().min(room);
        while !word.is_char_boundary(end) {
            end -= 1;
        }
        self.push(Token::Word(word[..end].to_string()));
    }

    fn after_password(&self) -> bool {
        matches!(self.tokens.last(), Some(Token::Word(w)) if w == "password")
    }

    fn literal(&mut self) {
        // A sign right after an operator, `(` or `,` belongs to the number: `= -1` is `= ?`.
        let n = self.tokens.len();
        if n >= 2
            && matches!(&self.tokens[n - 1], Token::Symbol(s) if s == "-" || s == "+")
            && matches!(&self.tokens[n - 2], Token::Symbol(s) if s != ")")
        {
            self.truncate(n - 1);
        }
        let n = self.tokens.len();
        let comma = Token::Symbol(",".into());
        if n >= 2
            && self.tokens[n - 1] == comma
            && matches!(self.tokens[n - 2], Token::Literal | Token::Literals)
        {
            self.truncate(n - 2);
            self.push_plain(Token::Literals);
        } else {
            self.push_plain(Token::Literal);
        }
    }

    fn push(&mut self, token: Token) {
        match &token {
            Token::Symbol(s) if s == "(" => {
                self.open.push(self.tokens.len());
                self.push_plain(token);
            }
            Token::Symbol(s) if s == ")" => {
                self.push_plain(token);
                if let Some(start) = self.open.pop() {
                    self.collapse_group(start);
                }
            }
            _ => self.push_plain(token),
        }
    }

    fn push_plain(&mut self, token: Token) {
        self.bytes += token.size();
        self.tokens.push(token);
    }

    /// Drops the tokens from `n` on.
    fn truncate(&mut self, n: usize) {
        let dropped: usize = self.tokens.get(n..).unwrap_or_default().iter().map(Token::size).sum();
        self.bytes -= dropped;
        self.tokens.truncate(n);
    }

    /// After a group `( .. )` starting at `start` closes: if `, (same group)` follows the same
    /// group (or the same group and `, ...`), the new one becomes (or joins) `, ...`.
    fn collapse_group(&mut self, start: usize) {
        let group = self.tokens[start..].to_vec();
        let comma = Token::Symbol(",".into());
        let len = group.len();
        let before = &self.tokens[..start];
        let follows = |tail: &[Token]| {
            tail.len() > len
                && tail[tail.len() - 1] == comma
                && tail[tail.len() - 1 - len..tail.len() - 1] == group[..]
        };
        if follows(before) {
            // `(g), (g)` becomes `(g), ...`
            self.truncate(start);
            self.push_plain(Token::More);
        } else if before.len() >= 2
            && before[before.len() - 1] == comma
            && before[before.len() - 2] == Token::More
            && follows(&before[..before.len() - 2])
        {
            // `(g), ..., (g)` stays `(g), ...`
            self.truncate(start - 1);
        }
    }

    fn finish(self) -> String {
        let mut out = String::new();
        let mut previous: Option<&Token> = None;
        for token in &self.tokens {
            let text = match token {
                Token::Word(w) | Token::Symbol(w) => w.as_str(),
                Token::Literal => "?",
                Token::Literals => "?, ...",
                Token::More => "...",
            };
            let spaced = match (previous, token) {
                (None, _) => false,
                (_, Token::Symbol(s)) if s == "," || s == ")" || s == "." => false,
                (Some(Token::Symbol(p)), _) if p == "(" || p == "." => false,
                (Some(Token::Word(w)), Token::Symbol(s)) if s == "(" => {
                    SPACED_BEFORE_PARENTHESIS.contains(&w.as_str())
                }
                _ => true,
            };
            if spaced {
                out.push(' ');
            }
            out.push_str(text);
            previous = Some(token);
        }
        if self.full() {
            out.push_str(" …");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::fingerprint;

    #[test]
    fn literals_become_placeholders_and_spacing_and_case_go() {
        assert_eq!(
            fingerprint("SELECT  a, b FROM t WHERE id = 42 AND name = 'it''s' -- note\n;"),
            "select a, b from t where id = ? and name = ?"
        );
        assert_eq!(
            fingerprint("select A,B from T where ID=7 and NAME='x'"),
            "select a, b from t where id = ? and name = ?"
        );
        assert_eq!(
            fingerprint("SELECT 1.5e-3, .5, X'00ff', \"Mixed Case\" /* c */"),
            "select ?, ..., \"Mixed Case\""
        );
    }

    #[test]
    fn lists_and_rows_of_literals_collapse() {
        let one = fingerprint("INSERT INTO t VALUES (1, 'a')");
        let many = fingerprint("INSERT INTO t (id, v) VALUES (1, 'a'), (2, 'b'), (3, 'c')");
        assert_eq!(one, "insert into t values (?, ...)");
        assert_eq!(many, "insert into t(id, v) values (?, ...), ...");
        assert_eq!(
            fingerprint("insert into t(id, v) values (9, 'z'), (8, 'y')"),
            many,
            "two rows and three rows are the same statement"
        );
        assert_eq!(
            fingerprint("SELECT * FROM t WHERE id IN (1, 2, 3) AND f(x, 4)"),
            "select * from t where id in (?, ...) and f(x, ?)"
        );
        assert_eq!(
            fingerprint("UPDATE t SET v = NULL WHERE id = -1"),
            "update t set v = ? where id = ?"
        );
        assert_eq!(
            fingerprint("SELECT a - 1, b FROM t WHERE x IN (-1, +2, -3)"),
            "select a - ?, b from t where x in (?, ...)"
        );
        assert_eq!(
            fingerprint("INSERT INTO t VALUES (1, NULL), (2, 'x'), (NULL, TRUE)"),
            "insert into t values (?, ...), ..."
        );
    }

    #[test]
    fn a_huge_statement_gives_a_bounded_fingerprint() {
        let mut text = String::from("INSERT INTO t VALUES ");
        for i in 0..100_000 {
            text.push_str(&format!("({i}, 'v{i}', {i}.5, NULL), "));
        }
        text.push_str("(0, 'v', 0.5, NULL)");
        let print = fingerprint(&text);
        assert_eq!(print, "insert into t values (?, ...), ...");
        let mut long = String::from("SELECT ");
        for i in 0..10_000 {
            long.push_str(&format!("c{i} + "));
        }
        long.push('1');
        let print = fingerprint(&long);
        assert!(print.len() < super::MAX_FINGERPRINT_BYTES + 64 && print.ends_with(" …"));
    }

    #[test]
    fn a_long_word_or_name_is_cut_and_a_password_never_shows() {
        let long = format!("SELECT {} FROM \"{}\"", "a".repeat(1 << 20), "é".repeat(1 << 19));
        let print = fingerprint(&long);
        assert!(print.len() <= super::MAX_FINGERPRINT_BYTES + 8, "{}", print.len());
        // Also where the text does not parse (a typo without quotes).
        assert_eq!(
            fingerprint("CREATE USER u WITH PASSWORD secret1"),
            "create user u with password ?"
        );
        assert_eq!(
            fingerprint("alter user u with password \"secret2\""),
            "alter user u with password ?"
        );
    }

    #[test]
    fn unterminated_quotes_and_odd_text_do_not_panic() {
        for text in ["'open", "\"open", "x'", "/* open", "é'ü", "--", "1e", "..", "ö(ü)"] {
            let _ = fingerprint(text);
        }
    }
}
